// Byte counts of an allocator, the figures memory() reports next to the live
// storages' logical bytes: what is physically held, comparable with torch's
// memory_allocated and memory_reserved.
#pragma once
#include <algorithm>
#include <cstddef>

namespace perceiver {

// `allocated`: blocks handed out and not yet freed, at their rounded sizes;
// `reserved`: those plus the freed blocks cached for reuse, i.e. what the allocator
// holds from the system (driver); `cached` = reserved - allocated. The peaks are the
// most held at once since the process started or the last reset.
struct AllocatorStats {
  size_t allocated = 0, peak_allocated = 0;
  size_t reserved = 0, peak_reserved = 0;
  size_t cached = 0;
};

// Kept under its allocator's lock.
class AllocCounter {
 public:
  // A block of n bytes handed out: from the cache (fresh = false) or the system.
  void on_alloc(size_t n, bool fresh) {
    allocated_ += n;
    if (fresh) reserved_ += n;
    peak_allocated_ = std::max(peak_allocated_, allocated_);
    peak_reserved_ = std::max(peak_reserved_, reserved_);
  }
  // A block freed by its user: kept in the cache, or returned to the system.
  void on_free(size_t n, bool cached) {
    allocated_ -= n;
    if (!cached) reserved_ -= n;
  }
  // Cached blocks returned to the system.
  void on_release(size_t n) { reserved_ -= n; }
  // Freed blocks held for reuse.
  size_t cached() const { return reserved_ - allocated_; }
  void reset_peaks() {
    peak_allocated_ = allocated_;
    peak_reserved_ = reserved_;
  }
  AllocatorStats stats() const {
    AllocatorStats s;
    s.allocated = allocated_;
    s.peak_allocated = peak_allocated_;
    s.reserved = reserved_;
    s.peak_reserved = peak_reserved_;
    s.cached = cached();
    return s;
  }

 private:
  size_t allocated_ = 0, peak_allocated_ = 0, reserved_ = 0, peak_reserved_ = 0;
};

}  // namespace perceiver
