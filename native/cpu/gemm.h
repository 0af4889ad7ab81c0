// Single-precision GEMM for the CPU backend.
//
// The kernels are picked at run time from what the CPU supports: AVX-512F, else
// AVX2+FMA, else portable vector code. PERCEIVER_CPU_ISA=avx512|avx2|generic
// (read once, at the first call) pins a path, e.g. to test or benchmark a slower
// one; a path the CPU lacks falls back to the best supported one with a warning
// on stderr. Threads come from the pool (PERCEIVER_NUM_THREADS).
#pragma once
#include <cstdint>

#include "../backend.h"

namespace perceiver {
namespace cpu {

// C[m, n] = act(alpha * op(A) @ op(B) + beta * C + bias[n]), row-major.
// op(A) is A [m, k] at row stride lda, or A [k, m] when trans_a; likewise B [k, n]
// or [n, k] when trans_b. bias may be null; beta == 0 never reads C (it may hold
// garbage). With parallel, work is split over the thread pool; attention calls it
// from inside parallel_for with parallel = false.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, const float* bias, Activation act, bool parallel);

// Applies an activation in place to n contiguous floats. Gelu is the exact-erf
// GELU, GeluTanh the tanh approximation; both are vectorised, within 1e-6 relative
// of the exact function for |x| <= 3 and a few 1e-6 in the negative tail (where
// evaluating 0.5 x (1 + erf(x / sqrt 2)) in float would lose every digit).
void apply_activation(float* x, int64_t n, Activation act);
// gx = g * gelu'(x) over n contiguous floats, vectorised like apply_activation.
void gelu_grad(const float* x, const float* g, float* gx, int64_t n, bool tanh_form);
// One contiguous row's softmax (or log-softmax) of n floats, vectorised like the above.
void softmax_row(const float* a, float* o, int64_t n, bool log);

}  // namespace cpu
}  // namespace perceiver
