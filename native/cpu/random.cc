// Counter-based random numbers: element i depends only on (seed, i), so results are
// the same whatever the thread count or chunking.
#include <cmath>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels.h"
#include "random.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {

void random_normal(const View& out, uint64_t seed, float mean, float stddev) {
  float* o = out.ptr<float>();
  int64_t n = out.numel();
  int64_t pairs = (n + 1) / 2;
  parallel_for(pairs, 8192, [&](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; p++) {
      double u1 = random_uniform01(seed, 2 * (uint64_t)p), u2 = random_uniform01(seed, 2 * (uint64_t)p + 1);
      double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
      o[2 * p] = (float)(mean + stddev * r * std::cos(th));
      if (2 * p + 1 < n) o[2 * p + 1] = (float)(mean + stddev * r * std::sin(th));
    }
  });
}

void random_uniform(const View& out, uint64_t seed, float low, float high) {
  float* o = out.ptr<float>();
  int64_t n = out.numel();
  parallel_for(n, 16384, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; i++) o[i] = random_uniform_at(seed, (uint64_t)i, low, high);
  });
}

namespace {

void dropout_factors_scalar(const DropoutMask& dm, uint64_t base, int64_t n, float* f) {
  for (int64_t j = 0; j < n; j++) f[j] = dm.at(base + (uint64_t)j);
}

#if defined(__x86_64__)
// GCC 12 reports its own _mm512_undefined placeholders inside the intrinsics as
// uninitialised (a false positive, as in attention.cc).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning: clang would warn of the unknown name
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// at() eight lanes at a time: the same integer mixing, the same double arithmetic
// (the top 53 bits, + 0.5, times 2^-53), rounded to float as the scalar cast rounds.
__attribute__((target("avx512f,avx512dq"))) inline __m512i mix8(__m512i x) {
  x = _mm512_add_epi64(x, _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ull));
  x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 30)), _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ull));
  x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 27)), _mm512_set1_epi64((long long)0x94d049bb133111ebull));
  return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}

__attribute__((target("avx512f,avx512dq"))) void dropout_factors_avx512(const DropoutMask& dm, uint64_t base, int64_t n,
                                                                         float* f) {
  const __m512i seed = _mm512_set1_epi64((long long)((dm.seed ^ 0x5bd1e995ull) * 0xd1342543de82ef95ull));
  const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512d half = _mm512_set1_pd(0.5), unit = _mm512_set1_pd(1.0 / 9007199254740992.0);
  const __m256 one = _mm256_set1_ps(1.f), keep_below = _mm256_set1_ps(dm.keep_below), scale = _mm256_set1_ps(dm.scale);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512i i = _mm512_add_epi64(_mm512_set1_epi64((long long)(base + (uint64_t)j)), lanes);
    const __m512i r = mix8(_mm512_xor_si512(seed, mix8(i)));
    const __m512d u = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepu64_pd(_mm512_srli_epi64(r, 11)), half), unit);
    __m256 v = _mm512_cvtpd_ps(u);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, one, _CMP_LT_OQ));  // [0, 1): a 1 from rounding is 0
    _mm256_storeu_ps(f + j, _mm256_and_ps(_mm256_cmp_ps(v, keep_below, _CMP_LT_OQ), scale));
  }
  dropout_factors_scalar(dm, base + (uint64_t)j, n - j, f + j);
}
#pragma GCC diagnostic pop
#endif

using DropoutFn = void (*)(const DropoutMask&, uint64_t, int64_t, float*);

DropoutFn pick_dropout() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return dropout_factors_avx512;
#endif
  return dropout_factors_scalar;
}

}  // namespace

void dropout_factors(const DropoutMask& dm, uint64_t base, int64_t n, float* f) {
  static const DropoutFn fn = pick_dropout();
  fn(dm, base, n, f);
}

}  // namespace cpu
}  // namespace perceiver
