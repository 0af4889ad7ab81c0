// AVX-512F microkernel: a 14 x 32 tile of C lives in 28 zmm accumulators (two
// vectors along n per row); each k step loads one 32-wide row of B (packed, or in
// place) into two registers and broadcasts 14 values of the packed A, so 31 of the
// 32 registers are in use and 28 independent FMA chains cover the FMA latency on
// both FMA pipes (alone, on cached panels, the kernel measured at FMA peak). Only
// functions carry target("avx512f"); the file is compiled with the baseline flags
// and reached only after a run-time CPU check.
#include "gemm_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace perceiver {
namespace cpu {
namespace gemm_detail {
namespace {

constexpr int kMR = 14;
constexpr int kNR = 32;

#define P_TARGET __attribute__((target("avx512f")))

typedef float v16f __attribute__((vector_size(64)));

__attribute__((noinline)) P_TARGET void activation(float* x, int64_t n, Activation act) {
  vm::activate_array<v16f>(x, n, act);
}

__attribute__((noinline)) P_TARGET void gelu_grad(const float* x, const float* g, float* gx, int64_t n, bool tanh_form) {
  vm::gelu_grad_array<v16f>(x, g, gx, n, tanh_form);
}

__attribute__((noinline)) P_TARGET void softmax_row(const float* a, float* o, int64_t n, bool log) {
  vm::softmax_row<v16f>(a, o, n, log);
}

template <int ROWS>
P_TARGET void tile(int nr, int64_t k, const float* __restrict a, const float* __restrict b,
                   int64_t ldb, float* c, int64_t ldc, const Epilogue& ep) {
  __m512 acc0[ROWS], acc1[ROWS];
#pragma GCC unroll 14
  for (int i = 0; i < ROWS; i++) {
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  // Pull the C tile towards L1 while the k loop runs; it is touched only at the
  // end. Even when C is only written this saves the stores' read-for-ownership
  // misses at the end.
#pragma GCC unroll 14
  for (int i = 0; i < ROWS; i++) {
    _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char*)(c + i * ldc + 16), _MM_HINT_T0);
  }
  for (int64_t p = 0; p < k; p++) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < ROWS; i++) {
      const __m512 av = _mm512_set1_ps(a[i]);
      acc0[i] = _mm512_fmadd_ps(av, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(av, b1, acc1[i]);
    }
    a += kMR;
    b += ldb;
  }

  const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
  const __mmask16 m1 =
      nr >= 32 ? (__mmask16)0xFFFF : nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1);
  // Locals, so that the stores to C below cannot force reloads of ep.
  const bool scale = ep.alpha != 1.0f, read_c = ep.beta != 0, add_bias = ep.bias != nullptr;
  const Activation act = ep.act;
  const bool full = nr == kNR;
  const __m512 alpha = _mm512_set1_ps(ep.alpha);
  const __m512 beta = _mm512_set1_ps(ep.beta);
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  if (add_bias) {
    bias0 = _mm512_maskz_loadu_ps(m0, ep.bias);
    bias1 = _mm512_maskz_loadu_ps(m1, ep.bias + 16);
  }
#pragma GCC unroll 14
  for (int i = 0; i < ROWS; i++) {
    float* cr = c + i * ldc;
    __m512 v0 = acc0[i], v1 = acc1[i];
    if (scale) {
      v0 = _mm512_mul_ps(v0, alpha);
      v1 = _mm512_mul_ps(v1, alpha);
    }
    if (read_c) {
      const __m512 c0 = full ? _mm512_loadu_ps(cr) : _mm512_maskz_loadu_ps(m0, cr);
      const __m512 c1 = full ? _mm512_loadu_ps(cr + 16) : _mm512_maskz_loadu_ps(m1, cr + 16);
      v0 = _mm512_fmadd_ps(beta, c0, v0);
      v1 = _mm512_fmadd_ps(beta, c1, v1);
    }
    if (add_bias) {
      v0 = _mm512_add_ps(v0, bias0);
      v1 = _mm512_add_ps(v1, bias1);
    }
    if (full) {
      _mm512_storeu_ps(cr, v0);
      _mm512_storeu_ps(cr + 16, v1);
    } else {
      _mm512_mask_storeu_ps(cr, m0, v0);
      _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
  }
  // Out of line and after the stores: inlining the GELU polynomials into every
  // unrolled row of every tile height would bloat the code for no gain, and the
  // tile is still in L1.
  if (act != Activation::None) {
    for (int i = 0; i < ROWS; i++) activation(c + i * ldc, nr, act);
  }
}

// In-register transpose of a 16 x 16 block: r[i] holds row i on entry and
// column i on exit. Written with __builtin_shufflevector (GCC picks unpck/shufps/
// shuff32x4) because GCC 12's _mm512_unpacklo_ps & co. draw false
// -Wuninitialized warnings from their undefined pass-through operand.
P_TARGET inline __attribute__((always_inline)) void transpose16(v16f r[16]) {
  v16f t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    // unpacklo / unpackhi: interleave the low / high pairs of each 128-bit lane.
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31);
  }
  // u[4q + j] holds element j (mod 4) of rows 4q..4q+3 in each 128-bit lane.
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) {
    const v16f lo0 = t[4 * q], hi0 = t[4 * q + 1], lo1 = t[4 * q + 2], hi1 = t[4 * q + 3];
    u[4 * q + 0] = __builtin_shufflevector(lo0, lo1, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    u[4 * q + 1] = __builtin_shufflevector(lo0, lo1, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    u[4 * q + 2] = __builtin_shufflevector(hi0, hi1, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    u[4 * q + 3] = __builtin_shufflevector(hi0, hi1, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  }
  // Gather the four 128-bit lanes of each column: even lanes, then odd lanes.
#define P_EVEN_LANES 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27
#define P_ODD_LANES 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    const v16f v0 = __builtin_shufflevector(u[j], u[4 + j], P_EVEN_LANES);
    const v16f v1 = __builtin_shufflevector(u[j], u[4 + j], P_ODD_LANES);
    const v16f v2 = __builtin_shufflevector(u[8 + j], u[12 + j], P_EVEN_LANES);
    const v16f v3 = __builtin_shufflevector(u[8 + j], u[12 + j], P_ODD_LANES);
    r[j] = __builtin_shufflevector(v0, v2, P_EVEN_LANES);
    r[j + 8] = __builtin_shufflevector(v0, v2, P_ODD_LANES);
    r[j + 4] = __builtin_shufflevector(v1, v3, P_EVEN_LANES);
    r[j + 12] = __builtin_shufflevector(v1, v3, P_ODD_LANES);
  }
#undef P_EVEN_LANES
#undef P_ODD_LANES
}

// A not transposed: 14 rows -> [kc][14]. 16 k-steps at a time go through one
// 16 x 16 transpose (two zero rows); the 14-wide output rows are contiguous, so
// each store may spill two lanes into the next row, which the next store
// overwrites; only the block's last store is masked.
P_TARGET void pack_a_rows(const float* src, int64_t ld, int64_t kc, float* dst) {
  int64_t p = 0;
  for (; p + 16 <= kc; p += 16) {
    v16f r[16];
#pragma GCC unroll 14
    for (int i = 0; i < kMR; i++) r[i] = (v16f)_mm512_loadu_ps(src + i * ld + p);
    r[14] = r[15] = v16f{};
    transpose16(r);
    float* d = dst + p * kMR;
#pragma GCC unroll 15
    for (int j = 0; j < 15; j++) _mm512_storeu_ps(d + j * kMR, (__m512)r[j]);
    _mm512_mask_storeu_ps(d + 15 * kMR, (__mmask16)0x3FFF, (__m512)r[15]);
  }
  for (; p < kc; p++)
    for (int i = 0; i < kMR; i++) dst[p * kMR + i] = src[i * ld + p];
}

// B transposed: 32 rows of B^T -> [kc][32], as two 16 x 16 transposes.
P_TARGET void pack_bt_rows(const float* src, int64_t ld, int64_t kc, float* dst) {
  int64_t p = 0;
  for (; p + 16 <= kc; p += 16) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      v16f r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++) r[i] = (v16f)_mm512_loadu_ps(src + (16 * h + i) * ld + p);
      transpose16(r);
#pragma GCC unroll 16
      for (int j = 0; j < 16; j++) _mm512_storeu_ps(dst + (p + j) * kNR + 16 * h, (__m512)r[j]);
    }
  }
  for (; p < kc; p++)
    for (int j = 0; j < kNR; j++) dst[p * kNR + j] = src[j * ld + p];
}

P_TARGET void skinny(const SkinnyArgs& s, int64_t n0, int64_t n1) {
  vm::skinny_product<v16f>(s, n0, n1);
}

P_TARGET void kernel(int mr, int nr, int64_t k, const float* a, const float* b, int64_t ldb,
                     float* c, int64_t ldc, const Epilogue& ep) {
  switch (mr) {
    case 14: return tile<14>(nr, k, a, b, ldb, c, ldc, ep);
    case 13: return tile<13>(nr, k, a, b, ldb, c, ldc, ep);
    case 12: return tile<12>(nr, k, a, b, ldb, c, ldc, ep);
    case 11: return tile<11>(nr, k, a, b, ldb, c, ldc, ep);
    case 10: return tile<10>(nr, k, a, b, ldb, c, ldc, ep);
    case 9: return tile<9>(nr, k, a, b, ldb, c, ldc, ep);
    case 8: return tile<8>(nr, k, a, b, ldb, c, ldc, ep);
    case 7: return tile<7>(nr, k, a, b, ldb, c, ldc, ep);
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

const IsaKernels* avx512_kernels() {
  // kc 512: the A micro-panel (14 x 512 x 4 B = 28 KiB) stays in the 48 KiB L1
  //   while the B micro-panels stream past it; deeper passes mean fewer trips of
  //   the C tile through memory (256 measured ~5% slower at 2048^3).
  // mc 1024: the packed A block (up to 2 MiB) lives in L3.
  // nc 256: the B block (512 x 256 x 4 B = 512 KiB, packed or read in place) that
  //   every A micro-panel sweeps fits the 1 MiB L2 with room for A.
  static const IsaKernels k{Isa::Avx512, "avx512", kMR, kNR, 512, 1024, 256, true, kernel, activation,
                            pack_a_rows, pack_bt_rows, skinny, gelu_grad, softmax_row};
  return &k;
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace perceiver

#else

namespace perceiver {
namespace cpu {
namespace gemm_detail {
const IsaKernels* avx512_kernels() { return nullptr; }
}  // namespace gemm_detail
}  // namespace cpu
}  // namespace perceiver

#endif
