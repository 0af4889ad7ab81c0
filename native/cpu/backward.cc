// Training kernels (gradients) for the CPU backend. Sums over rows (a LayerNorm's
// weight and bias gradients) are taken over fixed blocks of rows, each block's partial
// in double, then the blocks in order: the result does not depend on the thread count,
// as every other kernel's.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "kernels.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {

void layer_norm_backward(const float* x, const float* weight, const float* g, float* gx, float* gw,
                         float* gb, int64_t rows, int64_t n, float eps, const GradAddends& add) {
  const float *add_gx = static_cast<const float*>(add.gx), *add_gw = static_cast<const float*>(add.gw),
              *add_gb = static_cast<const float*>(add.gb);
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  const bool sums = gw || gb;
  std::vector<double> partial(sums ? (size_t)(blocks * 2 * n) : 0, 0.0);
  parallel_for(blocks, 1, [&](int64_t lo, int64_t hi, int) {
    std::vector<float> xhat((size_t)n), gxhat((size_t)n);
    for (int64_t blk = lo; blk < hi; blk++) {
      double* pw = sums ? partial.data() + blk * 2 * n : nullptr;
      double* pb = sums ? pw + n : nullptr;
      for (int64_t r = blk * kBlock; r < std::min(rows, (blk + 1) * kBlock); r++) {
        const float* a = x + r * n;
        const float* gr = g + r * n;
        // The forward's statistics, bit for bit.
        const float mean = (float)(lane_sum(a, n) / (double)n);
        const float rstd = (float)(1.0 / std::sqrt(lane_sq_dev(a, n, mean) / (double)n + (double)eps));
        for (int64_t j = 0; j < n; j++) {
          xhat[j] = (a[j] - mean) * rstd;
          gxhat[j] = weight ? gr[j] * weight[j] : gr[j];
        }
        if (pw)
          for (int64_t j = 0; j < n; j++) pw[j] += (double)gr[j] * xhat[j];
        if (pb)
          for (int64_t j = 0; j < n; j++) pb[j] += gr[j];
        // Eight interleaved double sums: a fixed order, not one latency-bound chain.
        double mg8[8] = {0, 0, 0, 0, 0, 0, 0, 0}, mgx8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
          for (int l = 0; l < 8; l++) {
            mg8[l] += gxhat[j + l];
            mgx8[l] += (double)gxhat[j + l] * xhat[j + l];
          }
        double mg = 0, mgx = 0;
        for (int l = 0; l < 8; l++) {
          mg += mg8[l];
          mgx += mgx8[l];
        }
        for (; j < n; j++) {
          mg += gxhat[j];
          mgx += (double)gxhat[j] * xhat[j];
        }
        const float fmg = (float)(mg / (double)n), fmgx = (float)(mgx / (double)n);
        float* o = gx + r * n;
        if (add_gx) {
          const float* ar = add_gx + r * n;
          for (int64_t j = 0; j < n; j++) o[j] = rstd * (gxhat[j] - fmg - xhat[j] * fmgx) + ar[j];
        } else {
          for (int64_t j = 0; j < n; j++) o[j] = rstd * (gxhat[j] - fmg - xhat[j] * fmgx);
        }
      }
    }
  });
  if (!sums) return;
  for (int64_t j = 0; j < n; j++) {
    double sw = 0, sb = 0;
    for (int64_t blk = 0; blk < blocks; blk++) {
      sw += partial[blk * 2 * n + j];
      sb += partial[blk * 2 * n + n + j];
    }
    if (gw) gw[j] = (float)(add_gw ? sw + add_gw[j] : sw);
    if (gb) gb[j] = (float)(add_gb ? sb + add_gb[j] : sb);
  }
}

void gelu_backward(const float* x, const float* g, float* gx, int64_t n, bool tanh_form) {
  // Vectorised like the forward's activation (scalar erf and exp cost ~5 ns an element).
  parallel_for(n, 16384, [&](int64_t lo, int64_t hi, int) { gelu_grad(x + lo, g + lo, gx + lo, hi - lo, tanh_form); });
}

void softmax_backward(const float* y, const float* g, float* gx, int64_t rows, int64_t n) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n));
  parallel_for(rows, grain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; r++) {
      const float* yr = y + r * n;
      const float* gr = g + r * n;
      float* o = gx + r * n;
      // The dot product in double, eight interleaved partials (a fixed order).
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)gr[j + l] * yr[j + l];
      double dot = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; j < n; j++) dot += (double)gr[j] * yr[j];
      const float d = (float)dot;
      for (int64_t k = 0; k < n; k++) o[k] = yr[k] * (gr[k] - d);
    }
  });
}

void max_pool2d_backward(const Pool2dArgs& a, const float* g, float* gx) {
  // Each image is one task: windows of one image overlap, images never do.
  parallel_for(a.batch, 1, [&](int64_t lo, int64_t hi, int) {
    std::vector<int64_t> arg((size_t)a.c);
    std::vector<float> best((size_t)a.c);
    for (int64_t b = lo; b < hi; b++) {
      const float* xb = a.x + b * a.h * a.w * a.c;
      float* gb = gx + b * a.h * a.w * a.c;
      std::memset(gb, 0, sizeof(float) * (size_t)(a.h * a.w * a.c));
      for (int64_t oy = 0; oy < a.oh; oy++)
        for (int64_t ox = 0; ox < a.ow; ox++) {
          for (int64_t c = 0; c < a.c; c++) {
            best[c] = -INFINITY;
            arg[c] = -1;
          }
          // Only the taps that land on the input (as the forward).
          const int64_t y0 = oy * a.stride_h - a.pad_top, x0 = ox * a.stride_w - a.pad_left;
          for (int64_t ky = std::max<int64_t>(0, -y0); ky < std::min(a.kh, a.h - y0); ky++) {
            const int64_t iy = y0 + ky;
            for (int64_t kx = std::max<int64_t>(0, -x0); kx < std::min(a.kw, a.w - x0); kx++) {
              const int64_t ix = x0 + kx;
              const int64_t at = (iy * a.w + ix) * a.c;
              // As the forward (and torch): a NaN takes the window, the last one if
              // several; the forward's output is NaN there, so its gradient goes to it.
              for (int64_t c = 0; c < a.c; c++)
                if (xb[at + c] > best[c] || arg[c] < 0 || xb[at + c] != xb[at + c]) {
                  best[c] = xb[at + c];
                  arg[c] = at + c;
                }
            }
          }
          const float* go = g + ((b * a.oh + oy) * a.ow + ox) * a.c;
          for (int64_t c = 0; c < a.c; c++)
            if (arg[c] >= 0) gb[arg[c]] += go[c];
        }
    }
  });
}

}  // namespace cpu
}  // namespace perceiver
