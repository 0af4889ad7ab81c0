// Direct NHWC convolution: one thread per output element with the output channel
// fastest, so a warp reads one input pixel (a broadcast) and 32 consecutive
// weights of the HWIO filter (coalesced). The backend sends 1x1 stride-1
// convolutions to cuBLASLt instead (they are plain GEMMs); the Perceiver's other
// convolutions (the 7x7 stem of the conv preprocessor) are small enough that the
// direct form is not the bottleneck.
#include "common.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

template <class T>
__global__ void conv2d_kernel(Conv2dArgs a, const T* x, const T* w, const T* bias, T* out) {
  int64_t total = a.batch * a.oh * a.ow * a.cout;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t co = i % a.cout;
    int64_t pix = i / a.cout;
    int64_t ox = pix % a.ow;
    int64_t oy = (pix / a.ow) % a.oh;
    int64_t b = pix / (a.ow * a.oh);
    float acc = bias ? to_f(bias[co]) : 0.f;
    for (int64_t ky = 0; ky < a.kh; ky++) {
      int64_t iy = oy * a.stride_h - a.pad_top + ky;
      if (iy < 0 || iy >= a.h) continue;
      for (int64_t kx = 0; kx < a.kw; kx++) {
        int64_t ix = ox * a.stride_w - a.pad_left + kx;
        if (ix < 0 || ix >= a.w_in) continue;
        const T* xp = x + ((b * a.h + iy) * a.w_in + ix) * a.cin;
        const T* wp = w + (ky * a.kw + kx) * a.cin * a.cout + co;
        for (int64_t c = 0; c < a.cin; c++) acc += to_f(xp[c]) * to_f(wp[c * a.cout]);
      }
    }
    out[i] = from_f<T>(acc);
  }
}

}  // namespace

void conv2d_direct(const Conv2dArgs& a, cudaStream_t s) {
  int64_t total = a.batch * a.oh * a.ow * a.cout;
  if (total == 0) return;
  DISPATCH_FLOAT("conv2d", a.dtype, T,
                 PERCEIVER_LAUNCH(grid_for(total), kThreads, 0, s, conv2d_kernel<T>)(
                     a, reinterpret_cast<const T*>(a.x), reinterpret_cast<const T*>(a.w),
                     reinterpret_cast<const T*>(a.bias), reinterpret_cast<T*>(a.out)));
  check_launch("conv2d", s);
}

}  // namespace cuda
}  // namespace perceiver
