// Fused optimizer updates for the CPU backend: each element's moments, direction and
// new value in one pass over memory (the composed form reads and writes ~10 arrays).
// The arithmetic follows the composed ops step by step (same float32 roundings,
// same order), so the two agree to the last bit or within a rounding of it.
// LAMB's norms are sums over fixed blocks of elements, each block's partial in
// double, then the blocks in order: the result does not depend on the thread count.
#include <cmath>
#include <vector>

#include "kernels.h"
#include "../threadpool.h"

// Every product rounded on its own, as the composed ops round it: no a * b + c fused
// into one rounding, which compilers do by default where the target has FMA (every
// arm64 build, and Apple's clang), and which made the updates differ from the
// composed rule in the last bit there. Placed after the includes: only this file's
// functions are affected.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace perceiver {
namespace cpu {
namespace {

constexpr int64_t kGrain = 16384;

// The AdamW direction of element i; updates the moments.
inline float adam_direction(const AdamArgs& a, int64_t i) {
  const float g = a.g[i];
  const float m = a.m[i] * a.beta1 + g * a.one_minus_beta1;
  const float v = a.v[i] * a.beta2 + (g * g) * a.one_minus_beta2;
  a.m[i] = m;
  a.v[i] = v;
  float u = (m * a.bc1) / (std::sqrt(v * a.bc2) + a.eps);
  if (a.weight_decay > 0) u = u + a.p[i] * a.weight_decay;
  return u;
}

}  // namespace

void adam_update(const AdamArgs& a) {
  parallel_for(a.n, kGrain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; i++) {
      const float u = adam_direction(a, i);
      a.p[i] = a.p[i] - u * a.lr;
    }
  });
}

void lamb_update(const AdamArgs& a, float* u) {
  const int64_t blocks = (a.n + kGrain - 1) / kGrain;
  std::vector<double> partial((size_t)(2 * blocks), 0.0);
  parallel_for(blocks, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t b = lo; b < hi; b++) {
      double pp = 0, uu = 0;
      for (int64_t i = b * kGrain; i < std::min(a.n, (b + 1) * kGrain); i++) {
        const float p = a.p[i];  // before the direction reads it for weight decay: same value
        u[i] = adam_direction(a, i);
        pp += (double)p * p;
        uu += (double)u[i] * u[i];
      }
      partial[2 * b] = pp;
      partial[2 * b + 1] = uu;
    }
  });
  double pp = 0, uu = 0;
  for (int64_t b = 0; b < blocks; b++) {
    pp += partial[2 * b];
    uu += partial[2 * b + 1];
  }
  const float pn = (float)std::sqrt(pp), un = (float)std::sqrt(uu);
  const float trust = pn > 0 && un > 0 ? pn / un : 1.f;
  parallel_for(a.n, kGrain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; i++) a.p[i] = a.p[i] - (u[i] * trust) * a.lr;
  });
}

void sgd_update(const SgdArgs& a) {
  parallel_for(a.n, kGrain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; i++) {
      const float g = a.g[i];
      float d = g;
      if (a.buf) {
        const float b = a.buf[i] * a.momentum + g;
        a.buf[i] = b;
        d = a.nesterov ? g + b * a.momentum : b;
      }
      const float p = a.p[i];
      float next = p - d * a.lr;
      if (a.lr_wd > 0) next = next - p * a.lr_wd;
      a.p[i] = next;
    }
  });
}

}  // namespace cpu
}  // namespace perceiver
