// What the emulated kernels need from outside their files (native/cuda/emu): the CUDA
// runtime calls the emulated kernel files make (an H100's figures; copies and
// allocations on the host), check_launch, Storage and the device allocator as plain
// host memory, in place of native/storage.cc and the backends behind it, and
// cuBLASLt's products (gemm.cu's matmul) as a plain loop.
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "emu.h"

#include "../../storage.h"
#include "../allocator.h"
#include "../gemm.h"
#include "../kernels.h"
#include "bits.h"

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
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMallocAsync(void** p, size_t bytes, cudaStream_t) {
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  return cudaSuccess;
}
cudaError_t cudaFreeAsync(void* p, cudaStream_t) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* status) {
  *status = cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
// Launches run to completion before they return, so an event is the host's clock when
// it is recorded, and a timing between two is the emulated work's own (attention_tune.cu).
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
};
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
const char* cudaGetErrorName(cudaError_t) { return "cudaError (emulation)"; }
const char* cudaGetErrorString(cudaError_t) { return "an error in the emulated runtime"; }
}

namespace perceiver {

namespace cuda {
void check_launch(const char*, cudaStream_t) {}

// Scratch starts as all-ones bytes (NaN in every float type), so that a kernel or
// product that reads what nothing wrote shows in the results.
void* DeviceAllocator::alloc(size_t bytes) {
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  std::memset(p, 0xff, bytes);
  return p;
}
void DeviceAllocator::free(void* p, size_t) { std::free(p); }

// gemm.cu's contract (backend.h's MatmulArgs, row-major): C[g] = alpha op(A[g]) op(B[g])
// + bias + beta C[g], op(A) [m, k], op(B) [k, n], accumulated in float as cuBLASLt's
// products are (though not in its order). Only what attention_gemm.cu asks for: no
// activation and no addend.
void matmul(GemmContext&, const MatmulArgs& a, cudaStream_t) {
  if (a.act != Activation::None || a.addend) std::abort();
  const DType ct = a.c_float32 ? DType::Float32 : a.dtype;
  for (int64_t g = 0; g < a.batch; g++)
    for (int64_t i = 0; i < a.m; i++)
      for (int64_t j = 0; j < a.n; j++) {
        float acc = 0.f;
        for (int64_t k = 0; k < a.k; k++) {
          const int64_t ia = g * a.stride_a + (a.trans_a ? k * a.lda + i : i * a.lda + k);
          const int64_t ib = g * a.stride_b + (a.trans_b ? j * a.ldb + k : k * a.ldb + j);
          acc += emu::load(a.a, a.dtype, ia) * emu::load(a.b, a.dtype, ib);
        }
        const int64_t ic = g * a.stride_c + i * a.ldc + j;
        float c = a.alpha * acc + (a.bias ? emu::load(a.bias, a.dtype, j) : 0.f);
        if (a.beta != 0.f) c += a.beta * emu::load(a.c, ct, ic);
        emu::store(a.c, ct, ic, c);
      }
}
}  // namespace cuda

Storage::Storage(Backend* backend, Device device, size_t bytes) : backend_(backend), device_(device), bytes_(bytes) {
  void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  std::memset(p, 0, bytes);
  data_.store(p);
}
Storage::~Storage() { std::free(data_.load()); }
void* Storage::allocate() { return data_.load(); }

}  // namespace perceiver
