// The one C entry point of the CUDA backend library (perceiver_cuda.so) and the
// table it returns. The addon dlopens the library and calls perceiver_cuda_api()
// with the ABI version it was compiled against; a library built from a different
// backend.h (whose vtable layout may differ) refuses with a reason instead of
// crashing. Bump kCudaAbiVersion whenever anything that crosses the boundary changes
// its layout: backend.h, storage.h, queue.h, task.h, small_pool.h, alloc_stats.h, or
// this table.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "../alloc_stats.h"
#include "../backend.h"
#include "../queue.h"
#include "../small_pool.h"
#include "../storage.h"
#include "../task.h"

namespace perceiver {

constexpr uint32_t kCudaAbiVersion = 14;

struct CudaDeviceInfo;
struct CudaApi;

// The sizes and alignments of what crosses the boundary, hashed (FNV-1a) by each side
// from its own headers: a layout change whose kCudaAbiVersion bump was forgotten (the
// history has three) is refused too. It cannot see a virtual added to Backend, nor
// same-sized fields reordered: the version is still bumped by hand.
constexpr uint32_t abi_layout(std::initializer_list<size_t> sizes) {
  uint32_t h = 2166136261u;
  for (size_t v : sizes) h = (h ^ (uint32_t)v) * 16777619u;
  return h;
}

struct CudaDeviceInfo {
  char name[256];
  int major, minor;            // compute capability
  int multiprocessors;
  uint64_t total_bytes, free_bytes;
  int driver_version;          // e.g. 13000 for CUDA 13.0 (cudaDriverGetVersion)
  int runtime_version;         // the statically linked runtime's
  uint64_t cublas_version;     // cublasLtGetVersion(), e.g. 130100
  char cublas_path[512];       // the cuBLASLt file loaded (as dlopen was given it)
};

struct CudaApi {
  uint32_t abi_version;
  uint32_t table_size;  // sizeof(CudaApi) as the library sees it
  uint32_t layout;      // kCudaAbiLayout as the library sees it
  // Loads the driver, counts devices and loads cuBLASLt. Returns the device count,
  // or 0 with `reason` saying why CUDA cannot be used. Idempotent.
  int (*init)(char* reason, size_t reason_len);
  // 0 on success; else -1 with `err` filled.
  int (*device_info)(int device, CudaDeviceInfo* out, char* err, size_t err_len);
  // The backend of one device (created on first call, then the same pointer), or
  // null with `err` filled.
  Backend* (*backend)(int device, char* err, size_t err_len);
};

constexpr uint32_t kCudaAbiLayout = abi_layout({
    sizeof(View), alignof(View), sizeof(MatmulArgs), sizeof(AttentionArgs), sizeof(AttentionBackwardArgs),
    sizeof(Conv2dArgs), sizeof(Pool2dArgs), sizeof(AdamArgs), sizeof(SgdArgs), sizeof(GradAddends),
    sizeof(Backend), sizeof(CudaStatus), sizeof(Device), sizeof(MemoryStats), sizeof(Storage), alignof(Storage),
    sizeof(Queue), alignof(Queue), sizeof(Task), sizeof(SmallAllocator<Task>), sizeof(AllocatorStats),
    sizeof(AllocCounter), sizeof(CudaDeviceInfo), sizeof(CudaApi)});

}  // namespace perceiver

// Returns null (and fills `err`) when `abi_version` differs from the library's.
extern "C" const perceiver::CudaApi* perceiver_cuda_api(uint32_t abi_version, char* err,
                                                         size_t err_len);
using perceiver_cuda_api_fn = const perceiver::CudaApi* (*)(uint32_t, char*, size_t);
