// max_pool2d over NHWC, one thread per output element (channel fastest, so reads
// are coalesced). Padded positions are skipped and NaN wins, as on the CPU.
#include <cmath>

#include "common.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

template <class T>
__global__ void max_pool_kernel(Pool2dArgs a, const T* x, T* out) {
  int64_t total = a.batch * a.oh * a.ow * a.c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t c = i % a.c;
    int64_t pix = i / a.c;
    int64_t ox = pix % a.ow;
    int64_t oy = (pix / a.ow) % a.oh;
    int64_t b = pix / (a.ow * a.oh);
    float m = -INFINITY;
    // Only the window's taps that land on the input (as the CPU's max_pool2d).
    const int64_t y0 = oy * a.stride_h - a.pad_top, x0 = ox * a.stride_w - a.pad_left;
    for (int64_t ky = max((int64_t)0, -y0); ky < min(a.kh, a.h - y0); ky++) {
      int64_t iy = y0 + ky;
      for (int64_t kx = max((int64_t)0, -x0); kx < min(a.kw, a.w - x0); kx++) {
        int64_t ix = x0 + kx;
        float v = to_f(x[((b * a.h + iy) * a.w + ix) * a.c + c]);
        if (v > m || v != v) m = v;
      }
    }
    out[i] = from_f<T>(m);
  }
}

}  // namespace

void max_pool2d(const Pool2dArgs& a, cudaStream_t s) {
  int64_t total = a.batch * a.oh * a.ow * a.c;
  if (total == 0) return;
  DISPATCH_FLOAT("max_pool2d", a.dtype, T,
                 PERCEIVER_LAUNCH(grid_for(total), kThreads, 0, s, max_pool_kernel<T>)(
                     a, reinterpret_cast<const T*>(a.x), reinterpret_cast<T*>(a.out)));
  check_launch("max_pool2d", s);
}

}  // namespace cuda
}  // namespace perceiver
