// max_pool2d over NHWC. Padded positions are skipped (never win the max), which is
// TF's SAME semantics and PyTorch's -inf padding.
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
        for (int64_t ky = 0; ky < a.kh; ky++) {
          int64_t iy = oy * a.stride_h - a.pad_top + ky;
          if (iy < 0 || iy >= a.h) continue;
          for (int64_t kx = 0; kx < a.kw; kx++) {
            int64_t ix = ox * a.stride_w - a.pad_left + kx;
            if (ix < 0 || ix >= a.w) continue;
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
