// Inference batch norm, channels last: folded into one scale and shift per channel.
#include <cmath>
#include <vector>

#include "kernels.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {

void batch_norm(const float* x, const float* mean, const float* var, const float* weight,
                const float* bias, float* out, int64_t rows, int64_t c, float eps) {
  std::vector<float> scale((size_t)c), shift((size_t)c);
  for (int64_t j = 0; j < c; j++) {
    float s = (float)(1.0 / std::sqrt((double)var[j] + (double)eps)) * (weight ? weight[j] : 1.f);
    scale[j] = s;
    shift[j] = (bias ? bias[j] : 0.f) - mean[j] * s;
  }
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, c));
  parallel_for(rows, grain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; r++)
      for (int64_t j = 0; j < c; j++) out[r * c + j] = x[r * c + j] * scale[j] + shift[j];
  });
}

}  // namespace cpu
}  // namespace perceiver
