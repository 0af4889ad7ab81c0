// max_pool2d over NHWC. Padded positions are skipped (never win the max), which is
// TF's SAME semantics and PyTorch's -inf padding.
#include <algorithm>
#include <cmath>

#include "kernels.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {

void max_pool2d(const Pool2dArgs& a) {
  parallel_for(a.batch * a.oh, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; r++) {
      int64_t b = r / a.oh, oy = r % a.oh;
      const float* xb = a.x + b * a.h * a.w * a.c;
      for (int64_t ox = 0; ox < a.ow; ox++) {
        float* o = a.out + ((b * a.oh + oy) * a.ow + ox) * a.c;
        for (int64_t c = 0; c < a.c; c++) o[c] = -INFINITY;
        // The window's taps that land on the input: a kernel far wider than the
        // image (padding just under it) visits only those.
        const int64_t y0 = oy * a.stride_h - a.pad_top, x0 = ox * a.stride_w - a.pad_left;
        for (int64_t ky = std::max<int64_t>(0, -y0); ky < std::min(a.kh, a.h - y0); ky++) {
          int64_t iy = y0 + ky;
          for (int64_t kx = std::max<int64_t>(0, -x0); kx < std::min(a.kw, a.w - x0); kx++) {
            int64_t ix = x0 + kx;
            const float* xp = xb + (iy * a.w + ix) * a.c;
            for (int64_t c = 0; c < a.c; c++) {
              float v = xp[c];
              if (v > o[c] || v != v) o[c] = v;
            }
          }
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace perceiver
