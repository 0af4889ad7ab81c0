// Fresh pages from the OS cost a page fault on first touch (about 6 us per 4 KiB
// on the VMs this was measured on: more than the GEMM that writes a 1024x1024
// output). So blocks of 1 MiB and up are rounded to 2 MiB, 2 MiB-aligned, marked
// for transparent huge pages, and kept on free when they are released, for the
// next tensor of the same size class: a model's forward pass allocates the same
// shapes every time. Blocks from 64 KiB are cached too, rounded to 64 KiB: glibc
// serves those with mmap or from the top of its heap, both of which go back to the
// system on free, so a 800 KB layer-norm output paid ~1.2 ms of page faults on
// every training step. The cache is bounded; smaller blocks go to malloc, whose
// own free lists recycle them.
#include "allocator.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../error.h"

namespace perceiver {
namespace cpu {
namespace {

constexpr size_t kLarge = size_t(1) << 20;
constexpr size_t kHuge = size_t(2) << 20;

size_t cache_limit() {
  static size_t limit = [] {
    const char* env = std::getenv("PERCEIVER_CPU_CACHE_MB");
    if (env && *env) {
      char* end = nullptr;
      unsigned long long mb = std::strtoull(env, &end, 10);
      // strtoull takes "-1" as 2^64 - 1 and "abc" as 0: only plain digits are a size.
      if (*end == '\0' && env[0] >= '0' && env[0] <= '9' && mb <= (1ull << 40)) return (size_t)mb << 20;
      std::fprintf(stderr, "perceiver-io: ignoring PERCEIVER_CPU_CACHE_MB=%s (a whole number of MiB; 0 disables the cache)\n", env);
    }
    return size_t(1) << 30;
  }();
  return limit;
}

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  AllocCounter counter;  // small blocks too (under mu); its cached bytes are free_blocks'
};

Cache& cache() {
  static Cache* c = new Cache();  // leaked: blocks may be freed during exit
  return *c;
}

constexpr size_t kMid = size_t(64) << 10;

// The cached size class of a block of at least kMid bytes.
size_t round_cached(size_t bytes) {
  if (bytes < kLarge) return (bytes + kMid - 1) & ~(kMid - 1);
  return (bytes + kHuge - 1) & ~(kHuge - 1);
}
size_t small_size(size_t bytes) { return bytes ? (bytes + 63) & ~size_t(63) : 64; }

[[noreturn]] void oom(size_t bytes) {
  throw Error(ErrorKind::Memory, "out of memory: could not allocate " + std::to_string(bytes) + " bytes on cpu");
}

}  // namespace

void* host_alloc(size_t bytes) {
  Cache& c = cache();
  if (bytes < kMid) {
    size_t n = small_size(bytes);
    void* p = std::aligned_alloc(64, n);
    if (!p) oom(bytes);
    std::lock_guard<std::mutex> lock(c.mu);
    c.counter.on_alloc(n, true);
    return p;
  }
  size_t n = round_cached(bytes);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(n);
    if (it != c.free_blocks.end()) {
      void* p = it->second;
      c.free_blocks.erase(it);
      c.counter.on_alloc(n, false);
      return p;
    }
  }
  const size_t align = n >= kLarge ? kHuge : 4096;
  void* p = std::aligned_alloc(align, n);
  if (!p) {
    host_empty_cache();  // the cache may be what stands in the way
    p = std::aligned_alloc(align, n);
    if (!p) oom(bytes);
  }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (n >= kLarge) madvise(p, n, MADV_HUGEPAGE);
#endif
  std::lock_guard<std::mutex> lock(c.mu);
  c.counter.on_alloc(n, true);
  return p;
}

void host_free(void* p, size_t bytes) {
  if (!p) return;
  Cache& c = cache();
  if (bytes < kMid) {
    {
      std::lock_guard<std::mutex> lock(c.mu);
      c.counter.on_free(small_size(bytes), false);
    }
    std::free(p);
    return;
  }
  size_t n = round_cached(bytes);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    bool keep = c.counter.cached() + n <= cache_limit();
    c.counter.on_free(n, keep);
    if (keep) {
      c.free_blocks.emplace(n, p);
      return;
    }
  }
  std::free(p);
}

void host_empty_cache() {
  Cache& c = cache();
  std::multimap<size_t, void*> blocks;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    blocks.swap(c.free_blocks);
    c.counter.on_release(c.counter.cached());
  }
  for (auto& b : blocks) std::free(b.second);
}

AllocatorStats host_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.counter.stats();
}

void host_reset_peak_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.counter.reset_peaks();
}

}  // namespace cpu
}  // namespace perceiver
