// Fused multi-head attention, streamed over keys (online softmax), so that no
// [Nq, Nk] matrix ever exists: the image encoder attends 512 latents to 50,176
// pixels, whose logits alone would be 100 MB.
//
// One unit of work is (batch, head, block of up to kMaxBlockQ query rows, range of
// keys). It walks its keys in blocks of kBlockK:
//   S = scale * Q_blk K_blkᵀ                        (serial sgemm, S is bq x kBlockK)
//   S[i, j] = -inf where mask[b, i, j] == 0
//   m_new = max(m, rowmax S); P = exp(S - m_new)    (vectorised exp, in place)
//   l = l * exp(m - m_new) + rowsum P;  acc *= exp(m - m_new)   (rows whose max grew)
//   P *= dropout factors (training with dropout only; after l, which keeps them all)
//   acc += P V_blk                                  (serial sgemm, beta = 1)
// and finally out = acc / l, or 0 where l == 0 (every key of the row masked), and,
// when the gradient will need it, the row's log-sum-exp m + log l.
//
// Block sizes (measured on a 2-core AVX-512 machine against the packed sgemm):
// 256 query rows, because every query block re-reads all of K and V and re-packs
// each K block, so fewer, taller blocks win until the thread count asks for more;
// 256 keys, so that S/P (256 KiB) stays cache-resident between the two products and
// the per-block fixed costs (re-packing the Q block, rescaling acc) are small next
// to the 2 * 256 * 256 * (Dqk + Dv) flops of a block. Scratch per thread is then
// 256 x 256 + 256 x Dv floats (~0.5 MiB at Dv = 261), whatever Nq and Nk are.
//
// Parallelism: units are claimed from an atomic counter by one task per thread. The
// query rows are cut into equal blocks whose count is rounded so that units divide
// evenly among kPlanThreads (a fixed width, so that the plan, and with it every bit of
// the result, is the same on any machine); when that would make blocks shorter than kMinBlockQ, or
// (batch, head, query block) gives too few units (one decoder query over many
// keys), the key range is split instead. Split units write their partial (m, l, acc)
// to a buffer and the caller merges them afterwards by the usual rescale-and-add
// of online softmax.
#include "attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <numeric>

#include "../threadpool.h"
#include "attention_rows.h"
#include "gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace perceiver {
namespace cpu {
namespace {

constexpr int64_t kMaxBlockQ = 256;
constexpr int64_t kBlockK = 256;
// Query blocks are not cut below this to share work among threads (each block
// re-reads all of K and V); keys are split instead.
constexpr int64_t kMinBlockQ = 64;
// A key split shorter than this is not worth its partial buffer and merge.
constexpr int64_t kMinKeysPerSplit = 64;
// Key splits keep one (acc, m, l) per unit until the merge; with many threads the
// unit count could otherwise grow with threads squared.
constexpr int64_t kMaxPartialBytes = 16 << 20;
// The width the blocks and key splits are planned for, whatever the machine's thread
// count: a key split changes the order of the sums (the merge rescales and adds
// partials), so a plan that followed the thread count would give other bits on
// another machine. Machines with more threads than this share fewer units on the
// few shapes that have fewer.
constexpr int kPlanThreads = 16;

using namespace expc;

float row_max_scalar(const float* s, int64_t n) {
  float m = kNegInf;
  for (int64_t j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
  return m;
}

float masked_max_scalar(float* s, const uint8_t* keep, int64_t n) {
  float m = kNegInf;
  for (int64_t j = 0; j < n; j++) {
    if (!keep[j]) s[j] = kNegInf;
    m = s[j] > m ? s[j] : m;
  }
  return m;
}

void scale_scalar(float* dst, const float* src, int64_t n, float f) {
  for (int64_t j = 0; j < n; j++) dst[j] = src[j] * f;
}

void softmax_grad_scalar(float* dp, const float* p, int64_t n, float d) {
  for (int64_t j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - d);
}

float exp_sum_scalar(float* s, int64_t n, float m) {
  float sum = 0.f;
  for (int64_t j = 0; j < n; j++) {
    s[j] = exp_scalar(s[j] - m);
    sum += s[j];
  }
  return sum;
}

#if defined(__x86_64__)

// GCC 12 reports its own _mm512_undefined_ps() placeholders inside the intrinsics
// as uninitialised (a false positive); keep -Wall builds quiet.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning: clang would warn of the unknown name
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

__attribute__((target("avx2,fma"))) inline __m256 exp_avx2(__m256 x) {
  const __m256 lo = _mm256_set1_ps(kExpLo);
  __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  // Operand order makes a NaN x pass through max/min rather than be replaced.
  x = _mm256_min_ps(_mm256_set1_ps(kExpHi), _mm256_max_ps(lo, x));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC6);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC0));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(under, p);
}

__attribute__((target("avx2,fma"))) float row_max_avx2(const float* s, int64_t n) {
  __m256 m0 = _mm256_set1_ps(kNegInf), m1 = m0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(s + j + 8));
  }
  for (; j + 8 <= n; j += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
  m0 = _mm256_max_ps(m0, m1);
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  float m = _mm_cvtss_f32(h);
  for (; j < n; j++) m = s[j] > m ? s[j] : m;
  return m;
}

__attribute__((target("avx2,fma"))) float masked_max_avx2(float* s, const uint8_t* keep,
                                                           int64_t n) {
  const __m256 ninf = _mm256_set1_ps(kNegInf);
  __m256 mx = ninf;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m128i k8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(keep + j));
    __m256 drop = _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_cvtepu8_epi32(k8), _mm256_setzero_si256()));
    __m256 v = _mm256_blendv_ps(_mm256_loadu_ps(s + j), ninf, drop);
    _mm256_storeu_ps(s + j, v);
    mx = _mm256_max_ps(mx, v);
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  float m = _mm_cvtss_f32(h);
  for (; j < n; j++) {
    if (!keep[j]) s[j] = kNegInf;
    m = s[j] > m ? s[j] : m;
  }
  return m;
}

__attribute__((target("avx2,fma"))) void scale_avx2(float* dst, const float* src, int64_t n,
                                                    float f) {
  const __m256 vf = _mm256_set1_ps(f);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_loadu_ps(src + j), vf));
  for (; j < n; j++) dst[j] = src[j] * f;
}

__attribute__((target("avx2,fma"))) void softmax_grad_avx2(float* dp, const float* p, int64_t n,
                                                           float d) {
  const __m256 vd = _mm256_set1_ps(d);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(dp + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(dp + j), vd)));
  for (; j < n; j++) dp[j] = p[j] * (dp[j] - d);
}

__attribute__((target("avx2,fma"))) float exp_sum_avx2(float* s, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 a = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    __m256 b = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), vm));
    _mm256_storeu_ps(s + j, a);
    _mm256_storeu_ps(s + j + 8, b);
    acc0 = _mm256_add_ps(acc0, a);
    acc1 = _mm256_add_ps(acc1, b);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 a = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    _mm256_storeu_ps(s + j, a);
    acc0 = _mm256_add_ps(acc0, a);
  }
  acc0 = _mm256_add_ps(acc0, acc1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float sum = _mm_cvtss_f32(h);
  for (; j < n; j++) {
    s[j] = exp_scalar(s[j] - m);
    sum += s[j];
  }
  return sum;
}

__attribute__((target("avx512f"))) inline __m512 exp_avx512(__m512 x) {
  const __m512 lo = _mm512_set1_ps(kExpLo);
  __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), _mm512_max_ps(lo, x));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kC6);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC5));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kC0));
  return _mm512_maskz_scalef_ps((__mmask16)~under, p, n);
}

__attribute__((target("avx512f"))) float row_max_avx512(const float* s, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  __m512 m0 = ninf, m1 = ninf;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(s + j));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(s + j + 16));
  }
  for (; j < n; j += 16) {
    __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
    m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(ninf, k, s + j));
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

__attribute__((target("avx512f"))) float masked_max_avx512(float* s, const uint8_t* keep,
                                                          int64_t n) {
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  __m512 mx = ninf;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m128i k8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(keep + j));
    __m512i k32 = _mm512_cvtepu8_epi32(k8);
    __m512 v = _mm512_mask_loadu_ps(ninf, _mm512_test_epi32_mask(k32, k32), s + j);
    _mm512_storeu_ps(s + j, v);
    mx = _mm512_max_ps(mx, v);
  }
  float m = _mm512_reduce_max_ps(mx);
  for (; j < n; j++) {
    if (!keep[j]) s[j] = kNegInf;
    m = s[j] > m ? s[j] : m;
  }
  return m;
}

__attribute__((target("avx512f"))) void scale_avx512(float* dst, const float* src, int64_t n,
                                                     float f) {
  const __m512 vf = _mm512_set1_ps(f);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(dst + j, _mm512_mul_ps(_mm512_loadu_ps(src + j), vf));
  if (j < n) {
    __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
    _mm512_mask_storeu_ps(dst + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, src + j), vf));
  }
}

__attribute__((target("avx512f"))) void softmax_grad_avx512(float* dp, const float* p, int64_t n,
                                                            float d) {
  const __m512 vd = _mm512_set1_ps(d);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(dp + j, _mm512_mul_ps(_mm512_loadu_ps(p + j), _mm512_sub_ps(_mm512_loadu_ps(dp + j), vd)));
  if (j < n) {
    __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
    _mm512_mask_storeu_ps(dp + j, k,
                          _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + j), _mm512_sub_ps(_mm512_maskz_loadu_ps(k, dp + j), vd)));
  }
}

__attribute__((target("avx512f"))) float exp_sum_avx512(float* s, int64_t n, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    __m512 a = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + j), vm));
    __m512 b = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(s + j + 16), vm));
    _mm512_storeu_ps(s + j, a);
    _mm512_storeu_ps(s + j + 16, b);
    acc0 = _mm512_add_ps(acc0, a);
    acc1 = _mm512_add_ps(acc1, b);
  }
  for (; j < n; j += 16) {
    __mmask16 k = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
    __m512 a = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm));
    _mm512_mask_storeu_ps(s + j, k, a);
    acc0 = _mm512_mask_add_ps(acc0, k, acc0, a);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

#pragma GCC diagnostic pop
#endif  // __x86_64__

RowKernels pick_row_kernels() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f"))
    return {row_max_avx512, masked_max_avx512, exp_sum_avx512, scale_avx512, softmax_grad_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {row_max_avx2, masked_max_avx2, exp_sum_avx2, scale_avx2, softmax_grad_avx2};
#endif
  return {row_max_scalar, masked_max_scalar, exp_sum_scalar, scale_scalar, softmax_grad_scalar};
}

// Mutable only so that the harness can force each instruction set in turn.
RowKernels& row_kernels() {
  static RowKernels k = pick_row_kernels();
  return k;
}

// ---- plan and scratch -----------------------------------------------------------

struct Plan {
  int64_t bq = 0, nqb = 0;  // query rows per block (last may be shorter), block count
  int64_t bk = 0;           // keys per inner block
  int64_t nks = 1;          // key splits per (batch, head, query block)
  int64_t units = 0;
  int chunks = 1;           // tasks given to parallel_for
  int64_t ld_s = 0, ld_acc = 0, ld_vec = 0;  // row strides of S and acc; size of m/l
  // Float counts; every piece starts on a 64-byte boundary.
  int64_t per_chunk = 0;  // S, and acc/m/l when keys are not split
  int64_t per_unit = 0;   // acc/m/l of one split unit
  int64_t scratch_bytes() const {
    return (int64_t)sizeof(float) * (per_chunk * chunks + (nks > 1 ? per_unit * units : 0));
  }
};

Plan make_plan(const AttentionArgs& a, int threads, int64_t force_bq, int64_t force_bk,
               int64_t force_splits) {
  Plan p;
  const int64_t heads = a.batch * a.heads;
  double work = (double)heads * (double)(a.nq + 16) * (double)a.nk * (double)(a.dqk + a.dv);
  const bool serial = work < kAttentionMinParallelWork;
  const int t = serial ? 1 : kPlanThreads;

  p.bk = force_bk > 0 ? force_bk : std::min<int64_t>(kBlockK, a.nk);
  if (force_bq > 0) {
    p.nqb = ceil_div(a.nq, force_bq);
  } else {
    p.nqb = ceil_div(a.nq, kMaxBlockQ);
    // Round the block count so (batch*head*query-block) units divide evenly among
    // threads, while blocks stay big enough for the GEMMs.
    int64_t per_thread = t / std::gcd<int64_t>(heads, t);
    int64_t aligned = round_up(p.nqb, per_thread);
    if (aligned != p.nqb && heads * p.nqb < 4 * (int64_t)t && ceil_div(a.nq, aligned) >= kMinBlockQ)
      p.nqb = aligned;
  }
  p.bq = ceil_div(a.nq, p.nqb);
  p.nqb = ceil_div(a.nq, p.bq);

  p.ld_s = round_up(p.bk, 16);
  p.ld_acc = round_up(a.dv, 16);
  p.ld_vec = round_up(p.bq, 16);
  int64_t acc_ml = p.bq * p.ld_acc + 2 * p.ld_vec;

  int64_t base = heads * p.nqb;
  if (force_splits > 0) {
    p.nks = force_splits;
  } else if (base % t != 0 && base < 4 * (int64_t)t) {
    // Too few units to share evenly: split keys so that the unit count is a
    // multiple of the planned width, within the partials' memory cap.
    p.nks = t / std::gcd<int64_t>(base, t);
    p.nks = std::min(p.nks, std::max<int64_t>(1, a.nk / kMinKeysPerSplit));
    p.nks = std::min(p.nks, std::max<int64_t>(1, kMaxPartialBytes / (base * acc_ml * 4)));
  }
  p.nks = std::max<int64_t>(1, std::min(p.nks, a.nk));
  p.units = base * p.nks;
  p.chunks = (int)std::min<int64_t>(serial ? 1 : std::max(threads, 1), p.units);

  p.per_chunk = p.bq * p.ld_s + (p.nks == 1 ? acc_ml : 0);
  p.per_unit = p.nks > 1 ? acc_ml : 0;
  return p;
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

std::unique_ptr<float, AlignedFree> alloc_floats(int64_t n) {
  size_t bytes = (size_t)round_up(std::max<int64_t>(n, 16), 16) * sizeof(float);
  float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return std::unique_ptr<float, AlignedFree>(p);
}

// ---- the streaming loop ---------------------------------------------------------

// Processes query rows [i0, i0 + mq) of (b, h) against keys [j0, j1). Leaves the
// unnormalised accumulator in acc (ld_acc) and the running max and sum in m and l.
void attend_block(const AttentionArgs& a, const Plan& p, int64_t b, int64_t h, int64_t i0,
                  int64_t mq, int64_t j0, int64_t j1, float* s, float* acc, float* m, float* l) {
  const RowKernels& rk = row_kernels();
  const float* q = a.q + b * a.q_sb + h * a.q_sh + i0 * a.q_sn;
  const float* kb = a.k + b * a.k_sb + h * a.k_sh;
  const float* vb = a.v + b * a.v_sb + h * a.v_sh;
  for (int64_t r = 0; r < mq; r++) {
    m[r] = kNegInf;
    l[r] = 0.f;
  }
  bool first = true;
  for (int64_t jb = j0; jb < j1; jb += p.bk) {
    const int64_t nb = std::min(p.bk, j1 - jb);
    if (a.dqk > 0) {
      sgemm(false, true, mq, nb, a.dqk, a.scale, q, a.q_sn, kb + jb * a.k_sn, a.k_sn, 0.f, s,
            p.ld_s, nullptr, Activation::None, false);
    } else {
      for (int64_t r = 0; r < mq; r++) std::fill(s + r * p.ld_s, s + r * p.ld_s + nb, 0.f);
    }
    for (int64_t r = 0; r < mq; r++) {
      float* sr = s + r * p.ld_s;
      float row_max;
      if (!a.mask) {
        row_max = rk.max(sr, nb);
      } else {
        const uint8_t* mr = a.mask + b * a.m_sb + (i0 + r) * a.m_sq + jb * a.m_sk;
        if (a.m_sk == 1) {
          row_max = rk.masked_max(sr, mr, nb);
        } else {
          // Broadcast (stride 0) or strided key axis: rare, so plain.
          for (int64_t j = 0; j < nb; j++) sr[j] = mr[j * a.m_sk] ? sr[j] : kNegInf;
          row_max = rk.max(sr, nb);
        }
      }
      const float m_new = std::max(m[r], row_max);
      if (m_new == kNegInf) {
        // Nothing unmasked in this row yet: its P row must still be defined for the
        // product below, and acc/l stay 0. Unless its scores were NaN, which the
        // maximum skips: then l is NaN from here on, and the row's output NaN, as
        // softmax's (torch's too) would be.
        for (int64_t j = 0; j < nb; j++)
          if (sr[j] != sr[j]) l[r] = std::numeric_limits<float>::quiet_NaN();
        std::fill(sr, sr + nb, 0.f);
        continue;
      }
      if (m_new > m[r]) {
        // exp(-inf) is 0, which is right: l and acc hold nothing yet.
        const float corr = exp_scalar(m[r] - m_new);
        l[r] *= corr;
        // (On the first block acc is not yet written: the product below assigns it.)
        if (!first) rk.scale(acc + r * p.ld_acc, acc + r * p.ld_acc, a.dv, corr);
        m[r] = m_new;
      }
      l[r] += rk.exp_sum(sr, nb, m_new);
      // Dropout acts on the weights after the softmax: l keeps every weight.
      if (a.dropout_scale != 0.f) attention_dropout_apply(a, b, h, i0 + r, jb, nb, sr);
    }
    sgemm(false, false, mq, a.dv, nb, 1.f, s, p.ld_s, vb + jb * a.v_sn, a.v_sn, first ? 0.f : 1.f,
          acc, p.ld_acc, nullptr, Activation::None, false);
    first = false;
  }
  if (first) {
    // Empty key range: define acc so callers can treat it like any other.
    for (int64_t r = 0; r < mq; r++) std::fill(acc + r * p.ld_acc, acc + r * p.ld_acc + a.dv, 0.f);
  }
}

void write_rows(const AttentionArgs& a, int64_t b, int64_t h, int64_t i0, int64_t mq,
                const float* acc, int64_t ld_acc, const float* m, const float* l) {
  const RowKernels& rk = row_kernels();
  if (a.lse) {
    float* lse = a.lse + (b * a.heads + h) * a.nq + i0;
    for (int64_t r = 0; r < mq; r++)
      lse[r] = l[r] == 0.f ? std::numeric_limits<float>::infinity() : m[r] + std::log(l[r]);
  }
  // l is 0 where every key was masked (the row is 0), NaN where a score was (NaN).
  for (int64_t r = 0; r < mq; r++) {
    float* o = a.out + b * a.o_sb + h * a.o_sh + (i0 + r) * a.o_sn;
    if (l[r] == 0.f) {
      std::fill(o, o + a.dv, 0.f);
    } else {
      rk.scale(o, acc + r * ld_acc, a.dv, 1.f / l[r]);
    }
  }
}

void run(const AttentionArgs& a, const Plan& p) {
  auto chunk_mem = alloc_floats(p.per_chunk * p.chunks);
  std::unique_ptr<float, AlignedFree> unit_mem;
  if (p.nks > 1) unit_mem = alloc_floats(p.per_unit * p.units);

  std::atomic<int64_t> next{0};
  parallel_for(p.chunks, 1, [&](int64_t lo, int64_t hi, int chunk) {
    (void)lo;
    (void)hi;
    float* mem = chunk_mem.get() + (int64_t)chunk * p.per_chunk;
    float* s = mem;
    for (int64_t u; (u = next.fetch_add(1, std::memory_order_relaxed)) < p.units;) {
      // Unit order (batch, head, query block, key split): neighbouring units read
      // the same K and V, so threads running side by side share them in cache.
      const int64_t ks = u % p.nks;
      const int64_t qb = (u / p.nks) % p.nqb;
      const int64_t bh = u / (p.nks * p.nqb);
      const int64_t b = bh / a.heads, h = bh % a.heads;
      const int64_t i0 = qb * p.bq, mq = std::min(p.bq, a.nq - i0);
      const int64_t j0 = a.nk * ks / p.nks, j1 = a.nk * (ks + 1) / p.nks;
      float* acc = p.nks > 1 ? unit_mem.get() + u * p.per_unit : mem + p.bq * p.ld_s;
      float* m = acc + p.bq * p.ld_acc;
      float* l = m + p.ld_vec;
      attend_block(a, p, b, h, i0, mq, j0, j1, s, acc, m, l);
      if (p.nks == 1) write_rows(a, b, h, i0, mq, acc, p.ld_acc, m, l);
    }
  });
  if (p.nks == 1) return;

  // Merge key splits: rescale each partial to the common max, then add. Cheap
  // (nks * rows * dv) next to the attention itself, so the caller does it alone.
  for (int64_t g = 0; g < p.units / p.nks; g++) {
    const int64_t qb = g % p.nqb, bh = g / p.nqb;
    const int64_t b = bh / a.heads, h = bh % a.heads;
    const int64_t i0 = qb * p.bq, mq = std::min(p.bq, a.nq - i0);
    float* first = unit_mem.get() + g * p.nks * p.per_unit;
    float* acc0 = first;
    float* m0 = acc0 + p.bq * p.ld_acc;
    float* l0 = m0 + p.ld_vec;
    for (int64_t r = 0; r < mq; r++) {
      float mx = kNegInf;
      bool nan = false;  // a split whose scores were NaN (its l is): so is the row
      for (int64_t ks = 0; ks < p.nks; ks++) {
        const float* mk = first + ks * p.per_unit + p.bq * p.ld_acc;
        mx = std::max(mx, mk[r]);
        nan |= mk[p.ld_vec + r] != mk[p.ld_vec + r];
      }
      float* a0 = acc0 + r * p.ld_acc;
      if (nan || mx == kNegInf) {
        l0[r] = nan ? std::numeric_limits<float>::quiet_NaN() : 0.f;
        continue;
      }
      const float c0 = exp_scalar(m0[r] - mx);
      l0[r] *= c0;
      m0[r] = mx;  // l0 is now relative to mx (the row's log-sum-exp reads both)
      row_kernels().scale(a0, a0, a.dv, c0);
      for (int64_t ks = 1; ks < p.nks; ks++) {
        const float* acck = first + ks * p.per_unit;
        const float* mk = acck + p.bq * p.ld_acc;
        const float* lk = mk + p.ld_vec;
        if (mk[r] == kNegInf) continue;
        const float c = exp_scalar(mk[r] - mx);
        l0[r] += lk[r] * c;
        const float* ak = acck + r * p.ld_acc;
        for (int64_t d = 0; d < a.dv; d++) a0[d] += ak[d] * c;
      }
    }
    write_rows(a, b, h, i0, mq, acc0, p.ld_acc, m0, l0);
  }
}

bool nothing_to_do(const AttentionArgs& a) {
  return a.batch <= 0 || a.heads <= 0 || a.nq <= 0 || a.dv <= 0;
}

void zero_output(const AttentionArgs& a) {
  if (a.lse) std::fill(a.lse, a.lse + a.batch * a.heads * a.nq, std::numeric_limits<float>::infinity());
  for (int64_t b = 0; b < a.batch; b++)
    for (int64_t i = 0; i < a.nq; i++)
      for (int64_t h = 0; h < a.heads; h++) {
        float* o = a.out + b * a.o_sb + i * a.o_sn + h * a.o_sh;
        std::fill(o, o + a.dv, 0.f);
      }
}

}  // namespace

const RowKernels& attention_rows() { return row_kernels(); }

void attention(const AttentionArgs& a) {
  if (nothing_to_do(a)) return;
  if (a.nk <= 0) return zero_output(a);
  run(a, make_plan(a, num_threads(), 0, 0, 0));
}

// Hooks for native/cpu/attention_check.cc: force block sizes and key splits so that
// small shapes exercise every path, and report the scratch a call would allocate.
namespace detail {

void attention_forced(const AttentionArgs& a, int64_t bq, int64_t bk, int64_t key_splits) {
  if (nothing_to_do(a)) return;
  if (a.nk <= 0) return zero_output(a);
  run(a, make_plan(a, num_threads(), bq, bk, key_splits));
}

int64_t attention_scratch_bytes(const AttentionArgs& a, int64_t bq, int64_t bk) {
  if (nothing_to_do(a) || a.nk <= 0) return 0;
  return make_plan(a, num_threads(), bq, bk, 0).scratch_bytes();
}

const char* attention_isa() {
  const RowKernels& k = row_kernels();
#if defined(__x86_64__)
  if (k.max == row_max_avx512) return "avx512f";
  if (k.max == row_max_avx2) return "avx2";
#endif
  (void)k;
  return "scalar";
}

// Switches the row kernels to "avx512f", "avx2" or "scalar" (not while a call
// runs); false when this CPU lacks that instruction set.
bool attention_set_isa(const char* isa) {
  RowKernels& k = row_kernels();
  if (std::strcmp(isa, "scalar") == 0) {
    k = {row_max_scalar, masked_max_scalar, exp_sum_scalar, scale_scalar, softmax_grad_scalar};
    return true;
  }
#if defined(__x86_64__)
  if (std::strcmp(isa, "avx512f") == 0 && __builtin_cpu_supports("avx512f")) {
    k = {row_max_avx512, masked_max_avx512, exp_sum_avx512, scale_avx512, softmax_grad_avx512};
    return true;
  }
  if (std::strcmp(isa, "avx2") == 0 && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma")) {
    k = {row_max_avx2, masked_max_avx2, exp_sum_avx2, scale_avx2, softmax_grad_avx2};
    return true;
  }
#endif
  return false;
}

float attention_exp_sum(float* s, int64_t n, float m) { return row_kernels().exp_sum(s, n, m); }

}  // namespace detail
}  // namespace cpu
}  // namespace perceiver
