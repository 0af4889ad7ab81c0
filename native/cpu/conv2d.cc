// conv2d, NHWC input and HWIO weights, as im2col + GEMM. Rows of output pixels are
// gathered in chunks so the patch buffer stays bounded (a few MiB) however large
// the image; a 1x1 stride-1 unpadded conv is a plain GEMM with no gathering.
#include <algorithm>
#include <cstring>
#include <vector>

#include "../storage.h"
#include "gemm.h"
#include "kernels.h"

namespace perceiver {
namespace cpu {

void conv2d(const Conv2dArgs& a) {
  const int64_t patch = a.kh * a.kw * a.cin;
  const int64_t pixels = a.oh * a.ow;
  if (a.kh == 1 && a.kw == 1 && a.stride_h == 1 && a.stride_w == 1 && a.pad_top == 0 &&
      a.pad_left == 0 && a.oh == a.h && a.ow == a.w_in) {
    sgemm(false, false, a.batch * pixels, a.cout, a.cin, 1.f, a.x, a.cin, a.w, a.cout, 0.f, a.out,
          a.cout, a.bias, Activation::None, true);
    return;
  }
  const int64_t budget = (int64_t(4) << 20) / 4;  // floats in the patch buffer
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(pixels, budget / std::max<int64_t>(1, patch)));
  std::vector<float> cols((size_t)(chunk * patch));
  for (int64_t b = 0; b < a.batch; b++) {
    const float* xb = a.x + b * a.h * a.w_in * a.cin;
    float* ob = a.out + b * pixels * a.cout;
    for (int64_t p0 = 0; p0 < pixels; p0 += chunk) {
      int64_t np = std::min(chunk, pixels - p0);
      for (int64_t p = 0; p < np; p++) {
        int64_t oy = (p0 + p) / a.ow, ox = (p0 + p) % a.ow;
        float* dst = cols.data() + p * patch;
        for (int64_t ky = 0; ky < a.kh; ky++) {
          int64_t iy = oy * a.stride_h - a.pad_top + ky;
          for (int64_t kx = 0; kx < a.kw; kx++) {
            int64_t ix = ox * a.stride_w - a.pad_left + kx;
            float* d = dst + (ky * a.kw + kx) * a.cin;
            if (iy < 0 || iy >= a.h || ix < 0 || ix >= a.w_in) {
              std::memset(d, 0, sizeof(float) * (size_t)a.cin);
            } else {
              std::memcpy(d, xb + (iy * a.w_in + ix) * a.cin, sizeof(float) * (size_t)a.cin);
            }
          }
        }
      }
      sgemm(false, false, np, a.cout, patch, 1.f, cols.data(), patch, a.w, a.cout, 0.f,
            ob + p0 * a.cout, a.cout, a.bias, Activation::None, true);
    }
  }
}

}  // namespace cpu
}  // namespace perceiver
