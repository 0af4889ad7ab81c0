// GELU and its gradient as the kernels compute them (elementwise.cu's unary ops and
// the GEMM's activation pass, backward.cu's gradient), and as the emulation's
// bit-for-bit checks take them (emu/check_rows.cc).
#pragma once
#include <cmath>

namespace perceiver {
namespace cuda {

// As the CPU computes them (native/cpu/elementwise.cc): erfc below 0, where 1 + erf
// cancels (gelu(-5.5) kept 2 of its digits, gelu(-6) came out -0), and the tanh form as
// x * sigmoid(2u), which cancels nowhere (1 + tanh(u) is 0 in float from x = -5.5).
__device__ __forceinline__ float gelu_erf(float x) {
  return x < 0.f ? 0.5f * x * erfcf(-x * 0.70710678118654752f) : 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
}
__device__ __forceinline__ float gelu_tanh(float x) {
  return x / (1.f + expf(-2.f * 0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

// The CPU's forms (native/cpu/gemm_kernels.h): the erf form's cdf from erfc below 0,
// the tanh form's through s = sigmoid(2u) = 1 / (1 + e), e = exp(-2u), where
// 1 + t = 2 s and 1 - t^2 = 4 e s^2: no term cancels where tanh is near -1.
__device__ __forceinline__ float gelu_derivative(float v, bool tanh_form) {
  if (tanh_form) {
    const float c = 0.7978845608028654f, k = 0.044715f;
    const float x2 = v * v;
    const float a = -2.f * c * (v + k * x2 * v);
    // Past exp's range s is 0 and so is the gradient; below it s is 1 and so is the
    // gradient (v^3's overflow would otherwise make 0 * inf = NaN).
    if (a > 88.f) return 0.f;
    if (a < -87.f) return 1.f;
    const float e = expf(a), s = 1.f / (1.f + e);
    return s + (2.f * c) * v * (1.f + 3.f * k * x2) * (e * s * s);
  }
  const float z = v * 0.70710678118654752f;
  const float cdf = v < 0.f ? 0.5f * erfcf(-z) : 0.5f * (1.f + erff(z));
  const float pdf = 0.3989422804014327f * expf(-0.5f * v * v);
  return cdf + v * pdf;
}

}  // namespace cuda
}  // namespace perceiver
