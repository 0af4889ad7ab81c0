// AVX2+FMA microkernel: a 6 x 16 tile of C in 12 ymm accumulators (two vectors
// along n per row), two registers for the row of packed B and one for the broadcast
// A value: 15 of the 16 ymm registers, and 12 independent FMA chains, enough to
// cover FMA latency x throughput on Haswell-to-Zen cores. Only functions carry
// target("avx2,fma"); the file is compiled with the baseline flags.
#include "gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace perceiver {
namespace cpu {
namespace gemm_detail {
namespace {

constexpr int kMR = 6;
constexpr int kNR = 16;

#define P_TARGET __attribute__((target("avx2,fma")))

typedef float v8f __attribute__((vector_size(32)));

__attribute__((noinline)) P_TARGET void activation(float* x, int64_t n, Activation act) {
  vm::activate_array<v8f>(x, n, act);
}

__attribute__((noinline)) P_TARGET void gelu_grad(const float* x, const float* g, float* gx, int64_t n, bool tanh_form) {
  vm::gelu_grad_array<v8f>(x, g, gx, n, tanh_form);
}

__attribute__((noinline)) P_TARGET void softmax_row(const float* a, float* o, int64_t n, bool log) {
  vm::softmax_row<v8f>(a, o, n, log);
}

// Lane mask for the first `n` of 8 columns (n may be <= 0 or >= 8).
P_TARGET inline __m256i lane_mask(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

P_TARGET void skinny(const SkinnyArgs& s, int64_t n0, int64_t n1) {
  vm::skinny_product<v8f>(s, n0, n1);
}

template <int ROWS>
P_TARGET void tile(int nr, int64_t k, const float* __restrict a, const float* __restrict b,
                   int64_t ldb, float* c, int64_t ldc, const Epilogue& ep) {
  __m256 acc0[ROWS], acc1[ROWS];
#pragma GCC unroll 6
  for (int i = 0; i < ROWS; i++) {
    acc0[i] = _mm256_setzero_ps();
    acc1[i] = _mm256_setzero_ps();
  }
  if (ep.beta != 0) {
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++) _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
  }
  for (int64_t p = 0; p < k; p++) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++) {
      const __m256 av = _mm256_broadcast_ss(a + i);
      acc0[i] = _mm256_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(av, b1, acc1[i]);
    }
    a += kMR;
    b += ldb;
  }

  const bool scale = ep.alpha != 1.0f, read_c = ep.beta != 0, add_bias = ep.bias != nullptr;
  const Activation act = ep.act;
  const __m256 alpha = _mm256_set1_ps(ep.alpha);
  const __m256 beta = _mm256_set1_ps(ep.beta);
  const bool full = nr == kNR;
  const __m256i m0 = lane_mask(nr), m1 = lane_mask(nr - 8);
  __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
  if (add_bias) {
    bias0 = _mm256_maskload_ps(ep.bias, m0);
    bias1 = _mm256_maskload_ps(ep.bias + 8, m1);
  }
#pragma GCC unroll 6
  for (int i = 0; i < ROWS; i++) {
    float* cr = c + i * ldc;
    __m256 v0 = acc0[i], v1 = acc1[i];
    if (scale) {
      v0 = _mm256_mul_ps(v0, alpha);
      v1 = _mm256_mul_ps(v1, alpha);
    }
    if (read_c) {
      __m256 c0 = full ? _mm256_loadu_ps(cr) : _mm256_maskload_ps(cr, m0);
      __m256 c1 = full ? _mm256_loadu_ps(cr + 8) : _mm256_maskload_ps(cr + 8, m1);
      v0 = _mm256_fmadd_ps(beta, c0, v0);
      v1 = _mm256_fmadd_ps(beta, c1, v1);
    }
    if (add_bias) {
      v0 = _mm256_add_ps(v0, bias0);
      v1 = _mm256_add_ps(v1, bias1);
    }
    // vmaskmov stores are slow on some AMD parts, so full tiles use plain stores.
    if (full) {
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {
      _mm256_maskstore_ps(cr, m0, v0);
      _mm256_maskstore_ps(cr + 8, m1, v1);
    }
  }
  if (act != Activation::None) {
    for (int i = 0; i < ROWS; i++) activation(c + i * ldc, nr, act);
  }
}

P_TARGET void kernel(int mr, int nr, int64_t k, const float* a, const float* b, int64_t ldb,
                     float* c, int64_t ldc, const Epilogue& ep) {
  switch (mr) {
    case 6: return tile<6>(nr, k, a, b, ldb, c, ldc, ep);
    case 5: return tile<5>(nr, k, a, b, ldb, c, ldc, ep);
    case 4: return tile<4>(nr, k, a, b, ldb, c, ldc, ep);
    case 3: return tile<3>(nr, k, a, b, ldb, c, ldc, ep);
    case 2: return tile<2>(nr, k, a, b, ldb, c, ldc, ep);
    case 1: return tile<1>(nr, k, a, b, ldb, c, ldc, ep);
  }
}

#undef P_TARGET

}  // namespace

const IsaKernels* avx2_kernels() {
  // Sized for the smallest AVX2 parts (32 KiB L1, 256 KiB L2): the A micro-panel
  // (6 x 256 x 4 B = 6 KiB) stays in L1, the B block (256 x 128 x 4 B = 128 KiB)
  // in L2, the A block (1024 x 256 x 4 B = 1 MiB) in L3.
  static const IsaKernels k{Isa::Avx2, "avx2", kMR, kNR, 256, 1024, 128, false, kernel, activation,
                            nullptr, nullptr, skinny, gelu_grad, softmax_row};
  return &k;
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace perceiver

#else

namespace perceiver {
namespace cpu {
namespace gemm_detail {
const IsaKernels* avx2_kernels() { return nullptr; }
}  // namespace gemm_detail
}  // namespace cpu
}  // namespace perceiver

#endif
