// What the emulated kernels need from outside their files (native/cuda/emu): the CUDA
// runtime calls attention.cu makes (an H100's figures), check_launch, and Storage
// as plain host memory, in place of native/storage.cc and the backends behind it.
#include <cstdlib>
#include <cstring>

#include "emu.h"

#include "../../storage.h"
#include "../kernels.h"

extern "C" {
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
// Compute capability 9.0, 227 KB of shared memory per block: the tiers an H100 takes.
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = 232448; break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
cudaError_t cudaGetLastError() { return cudaSuccess; }
}

namespace perceiver {

namespace cuda {
void check_launch(const char*, cudaStream_t) {}
}  // namespace cuda

Storage::Storage(Backend* backend, Device device, size_t bytes) : backend_(backend), device_(device), bytes_(bytes) {
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  std::memset(p, 0, bytes);
  data_.store(p);
}
Storage::~Storage() { std::free(data_.load()); }
void* Storage::allocate() { return data_.load(); }

}  // namespace perceiver
