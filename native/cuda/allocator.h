// The caching device allocator of one GPU (see allocator.cu).
#pragma once
#include <cstddef>
#include <map>
#include <mutex>

#include "../alloc_stats.h"

namespace perceiver {
namespace cuda {

class DeviceAllocator {
 public:
  explicit DeviceAllocator(int device) : device_(device) {}
  // Throws Error(Memory) naming the size and the device's free memory.
  void* alloc(size_t bytes);
  void free(void* p, size_t bytes);
  AllocatorStats stats();
  void reset_peak_stats();
  // Waits for the device, then returns every cached block to the driver.
  void empty_cache();

 private:
  void release_cached();  // empty_cache's work; the caller holds release_mu_
  int device_;
  std::mutex mu_;
  // Held from emptying the cache to the retry after it: a second thread out of memory
  // waits for a release in progress instead of retrying before its blocks are freed
  // (and failing with the cache's memory still held).
  std::mutex release_mu_;
  std::multimap<size_t, void*> free_;  // rounded size -> block
  AllocCounter counter_;  // its cached bytes are those of free_
};

// Workspace for one op from the caching allocator, returned when the op has been
// enqueued: stream order keeps it valid for the kernels enqueued before it is freed
// (see allocator.cu).
struct Scratch {
  DeviceAllocator& alloc;
  size_t bytes;
  void* p;
  Scratch(DeviceAllocator& a, size_t n) : alloc(a), bytes(n), p(n ? a.alloc(n) : nullptr) {}
  ~Scratch() {
    if (p) alloc.free(p, bytes);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* f() const { return static_cast<float*>(p); }
};

}  // namespace cuda
}  // namespace perceiver
