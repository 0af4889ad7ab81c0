// Caching device allocator. cudaMalloc and cudaFree synchronise the device and
// cost tens of microseconds, more than most kernels of a forward pass, so freed
// blocks are kept by rounded size and handed to the next request of that size.
// Reuse is safe without events because every use of a device's memory is
// ordered on that device's one stream: a block freed after the last kernel that
// reads it was enqueued can only be handed to a kernel enqueued later.
// The cache is unbounded (a forward pass reuses the same shapes) and emptied
// when a cudaMalloc fails, before retrying once.
#include "allocator.h"

#include <cuda_runtime.h>

#include <string>

#include "../error.h"

namespace perceiver {
namespace cuda {
namespace {

constexpr size_t kSmall = size_t(1) << 20;
size_t round_size(size_t bytes) {
  if (bytes == 0) return 512;
  if (bytes < kSmall) return (bytes + 511) & ~size_t(511);
  return (bytes + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1);
}

}  // namespace

void* DeviceAllocator::alloc(size_t bytes) {
  size_t n = round_size(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(n);
    if (it != free_.end()) {
      void* p = it->second;
      free_.erase(it);
      counter_.on_alloc(n, false);
      return p;
    }
  }
  // Any thread allocates (the CPU queue's copies to this GPU, another GPU's), and
  // cudaMalloc takes the calling thread's current device.
  if (cudaError_t d = cudaSetDevice(device_); d != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorKind::Runtime, "cudaSetDevice(" + std::to_string(device_) + ") failed before allocating " +
                                        std::to_string(bytes) + " bytes: " + cudaGetErrorName(d));
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, n);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the (non-sticky) allocation error
    std::lock_guard<std::mutex> release(release_mu_);
    release_cached();
    e = cudaMalloc(&p, n);
  }
  if (e != cudaSuccess && e != cudaErrorMemoryAllocation)  // e.g. an earlier kernel's fault
    throw Error(ErrorKind::Runtime, std::string("cudaMalloc of ") + std::to_string(bytes) + " bytes on cuda:" +
                                        std::to_string(device_) + " failed: " + cudaGetErrorName(e) + " (" +
                                        cudaGetErrorString(e) + ")");
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error(ErrorKind::Memory, "out of memory: could not allocate " + std::to_string(bytes) + " bytes" +
                                       (n != bytes ? " (" + std::to_string(n) + " as the allocator rounds it)" : std::string()) +
                                       " on cuda:" + std::to_string(device_) + " (" + cudaGetErrorName(e) + "; the device has " +
                                       std::to_string(free_b) + " of " + std::to_string(total_b) + " bytes free)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  counter_.on_alloc(n, true);
  return p;
}

void DeviceAllocator::free(void* p, size_t bytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = round_size(bytes);
  free_.emplace(n, p);
  counter_.on_free(n, true);
}

AllocatorStats DeviceAllocator::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return counter_.stats();
}

void DeviceAllocator::reset_peak_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  counter_.reset_peaks();
}

void DeviceAllocator::empty_cache() {
  std::lock_guard<std::mutex> release(release_mu_);
  release_cached();
}

void DeviceAllocator::release_cached() {
  if (cudaSetDevice(device_) != cudaSuccess) {  // the blocks stay cached, not freed on another device
    cudaGetLastError();
    return;
  }
  std::multimap<size_t, void*> blocks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    blocks.swap(free_);
    counter_.on_release(counter_.cached());
  }
  if (blocks.empty()) return;
  cudaDeviceSynchronize();  // a cached block may still be read by a running kernel
  for (auto& b : blocks) cudaFree(b.second);
}

}  // namespace cuda
}  // namespace perceiver
