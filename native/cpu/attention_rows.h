// Row kernels of the fused attention (its forward in attention.cc, its gradient in
// attention_backward.cc): one vectorised set per instruction set, picked once at
// startup. They are explicit rather than left to the auto-vectoriser, which at -O2
// leaves loops of unknown length scalar.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../backend.h"
#include "random.h"

namespace perceiver {
namespace cpu {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Below roughly this much work (flop-ish units), waking the pool costs more than it
// saves (the forward and the gradient alike).
constexpr double kAttentionMinParallelWork = 1 << 20;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t x, int64_t m) { return ceil_div(x, m) * m; }

struct RowKernels {
  float (*max)(const float* s, int64_t n);
  // s[j] = -inf where keep[j] == 0; returns the max of the result.
  float (*masked_max)(float* s, const uint8_t* keep, int64_t n);
  // s[j] = exp(s[j] - m) in place; returns the sum.
  float (*exp_sum)(float* s, int64_t n, float m);
  // dst[j] = src[j] * f (dst == src allowed).
  void (*scale)(float* dst, const float* src, int64_t n, float f);
  // dp[j] = p[j] * (dp[j] - d) in place: the softmax's gradient given the row's
  // sum d of dP * P.
  void (*softmax_grad)(float* dp, const float* p, int64_t n, float d);
};

// The set for this CPU (attention.cc; its check harness may switch it).
const RowKernels& attention_rows();

// exp(x) = 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2. ln 2 is split so that
// n * kLn2Hi is exact even without FMA (kLn2Hi has 16 significant bits, |n| <= 127).
// e^r is a degree-6 polynomial interpolating e^r at the Chebyshev nodes of
// [-ln2/2, ln2/2] (coefficients computed for this file; truncation error 2.5e-9), so
// the result is within about 1e-7 relative, i.e. float rounding. Inputs below
// kExpLo (where the result would be subnormal) give 0, including -inf, which is how
// masked logits vanish; the softmax only ever passes x <= 0.
namespace expc {
constexpr float kExpLo = -87.33654f;  // ln(2^-126)
constexpr float kExpHi = 88.0f;       // keeps n <= 127
constexpr float kLog2e = 1.44269504f;
constexpr float kLn2Hi = 0.693145751953125f;
constexpr float kLn2Lo = 1.42860682e-6f;
constexpr float kC0 = 1.0f;
constexpr float kC1 = 1.00000004f;
constexpr float kC2 = 0.500000005f;
constexpr float kC3 = 0.166664155f;
constexpr float kC4 = 0.0416663529f;
constexpr float kC5 = 0.00837512640f;
constexpr float kC6 = 0.00139411084f;
}  // namespace expc

inline float exp_scalar(float x) {
  using namespace expc;
  if (!(x >= kExpLo)) return x != x ? x : 0.f;  // NaN stays NaN
  if (x > kExpHi) x = kExpHi;
  float n = std::nearbyint(x * kLog2e);
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = kC6;
  p = p * r + kC5;
  p = p * r + kC4;
  p = p * r + kC3;
  p = p * r + kC2;
  p = p * r + kC1;
  p = p * r + kC0;
  int32_t bits = (int32_t)(n + 127.f) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

// The dropout factors (AttentionArgs' dropout_*) of weights [j0, j0 + n) in row i of
// (b, h): f[j] = dropout_scale where kept, else 0 (random.h's dropout_factors).
inline void attention_dropout_factors(const AttentionArgs& a, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t n,
                                      float* f) {
  const DropoutMask dm{a.dropout_seed, a.dropout_keep_below, a.dropout_scale};
  dropout_factors(dm, (uint64_t)(((b * a.heads + h) * a.nq + i) * a.nk + j0), n, f);
}

// s[j] *= the factor above, in place.
inline void attention_dropout_apply(const AttentionArgs& a, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t n,
                                    float* s) {
  float f[256];
  for (int64_t c = 0; c < n; c += 256) {
    const int64_t m = n - c < 256 ? n - c : 256;
    attention_dropout_factors(a, b, h, i, j0 + c, m, f);
    for (int64_t j = 0; j < m; j++) s[c + j] *= f[j];
  }
}

}  // namespace cpu
}  // namespace perceiver
