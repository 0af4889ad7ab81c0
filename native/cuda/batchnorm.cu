// Inference batch norm, channels last, folded into one scale and shift per
// channel computed in double as on the CPU; one thread per element (channel
// fastest, so the per-channel parameters are read coalesced and stay in L1).
#include "common.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

template <class T>
__global__ void batch_norm_kernel(const T* x, const T* mean, const T* var, const T* w, const T* b, T* out,
                                  int64_t rows, int64_t c, float eps) {
  int64_t total = rows * c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t j = i % c;
    float s = (float)(1.0 / sqrt((double)to_f(var[j]) + (double)eps)) * (w ? to_f(w[j]) : 1.f);
    float shift = (b ? to_f(b[j]) : 0.f) - to_f(mean[j]) * s;
    out[i] = from_f<T>(to_f(x[i]) * s + shift);
  }
}

}  // namespace

void batch_norm(const void* x, const void* mean, const void* var, const void* weight, const void* bias,
                void* out, int64_t rows, int64_t c, float eps, DType dtype, cudaStream_t s) {
  if (rows * c == 0) return;
  DISPATCH_FLOAT("batch_norm", dtype, T,
                 PERCEIVER_LAUNCH(grid_for(rows * c), kThreads, 0, s, batch_norm_kernel<T>)(
                     static_cast<const T*>(x), static_cast<const T*>(mean), static_cast<const T*>(var),
                     static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<T*>(out), rows, c, eps));
  check_launch("batch_norm", s);
}

}  // namespace cuda
}  // namespace perceiver
