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
  int device_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;  // rounded size -> block
  AllocCounter counter_;  // its cached bytes are those of free_
};

}  // namespace cuda
}  // namespace perceiver
