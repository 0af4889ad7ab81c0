// Internal interface between the GEMM driver (gemm.cc) and the per-ISA
// microkernels (gemm_avx512.cc, gemm_avx2.cc, generic in gemm.cc). Not part of the
// addon's API; gemm_check.cc uses it to force each path.
#pragma once
#include <cstdint>

#include "../backend.h"

namespace perceiver {
namespace cpu {
namespace gemm_detail {

enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

// What the microkernel does with its register tile T before storing it to C:
//   C = act(alpha * T + beta * C + bias)
// beta == 0 never reads C. The driver passes beta = 1 and no bias for the later
// K blocks of a tile and act = None for all but the last one.
struct Epilogue {
  float alpha;
  float beta;
  const float* bias;  // already offset to the tile's first column, or null
  Activation act;
};

// Computes an mr x nr tile (mr <= MR, nr <= NR) of C over k steps.
//   a: packed A micro-panel, k groups of MR floats (row i of the tile at a[p*MR + i]).
//   b: k rows of NR floats, row p at b + p*ldb (packed: ldb == NR; zero padded
//      past nr, so the kernel may read all NR columns).
using MicroKernel = void (*)(int mr, int nr, int64_t k, const float* a, const float* b,
                             int64_t ldb, float* c, int64_t ldc, const Epilogue& ep);
using ActivationFn = void (*)(float* x, int64_t n, Activation act);
// gx = g * gelu'(x) over n floats (see vm::gelu_grad_array).
using GeluGradFn = void (*)(const float* x, const float* g, float* gx, int64_t n, bool tanh_form);
// One row's softmax or log-softmax (see vm::softmax_row).
using SoftmaxRowFn = void (*)(const float* a, float* o, int64_t n, bool log);
// Transposing pack of one full micro-panel: R rows of src (row stride ld, kc values
// each) -> dst[p * R + r], R = MR (A, not transposed) or NR (B, transposed).
using PackFn = void (*)(const float* src, int64_t ld, int64_t kc, float* dst);

// Products with very few rows of C (m <= kSkinnyMaxM) skip packing: packing B
// would cost as much as the whole product. For the column range [n0, n1) of C:
// without trans_b, C rows accumulate alpha a_ip B[p, :] while B streams row by row;
// with trans_b, each element is a dot product of two contiguous rows. `a` must have
// contiguous rows (row stride lda) when trans_b is set; the driver copies a
// transposed A first.
constexpr int64_t kSkinnyMaxM = 4;
struct SkinnyArgs {
  bool ta, tb;
  int64_t m, k;
  float alpha, beta;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  const float* bias;
  Activation act;
};
using SkinnyFn = void (*)(const SkinnyArgs& s, int64_t n0, int64_t n1);

struct IsaKernels {
  Isa isa;
  const char* name;
  int mr, nr;          // register tile
  int64_t kc, mc, nc;  // cache blocks (see gemm.cc)
  // Read a non-transposed B in place instead of packing it (see gemm.cc).
  bool direct_b;
  MicroKernel kernel;
  ActivationFn activation;
  PackFn pack_a_rows;  // null: the driver's portable loop
  PackFn pack_bt_rows;
  SkinnyFn skinny;
  GeluGradFn gelu_grad;
  SoftmaxRowFn softmax_row;
};

// Null when the build target has no such path (non-x86).
const IsaKernels* avx512_kernels();
const IsaKernels* avx2_kernels();
const IsaKernels* generic_kernels();

// Best path the CPU supports, or PERCEIVER_CPU_ISA's choice (read once).
const IsaKernels& active_kernels();
bool isa_supported(Isa isa);
// Tests only: switches every later sgemm/apply_activation call to `isa` (must be
// supported). Not synchronised with calls in flight.
void force_isa(Isa isa);

// ---------------------------------------------------------------------------
// Vector math shared by every path, written with GCC/Clang vector extensions so the
// same source becomes zmm code when inlined into a target("avx512f") function, ymm
// in a target("avx2,fma") one and SSE/NEON in the generic path. Everything is
// force-inlined and passes vectors by reference (never by value, which would
// tie them to the baseline calling convention and draw -Wpsabi warnings).
namespace vm {

#define PERCEIVER_VM_INLINE static inline __attribute__((always_inline))

// The matching int32 vector type of the float vector V.
template <class V>
struct IntVec {
  typedef int32_t type __attribute__((vector_size(sizeof(V))));
};
template <class V>
using IntOf = typename IntVec<V>::type;

// e^x for x in [-87.3, 88.3] (clamped), ~2 ulp: x = n ln2 + r, |r| <= ln2/2.
template <class V>
PERCEIVER_VM_INLINE void exp_inplace(V& x) {
  using VI = IntOf<V>;
  const V lo = (V{} + -87.3f), hi = (V{} + 88.3f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  // Adding 1.5*2^23 rounds to an integer held in the low mantissa bits.
  const V magic = (V{} + 12582912.0f);
  V t = x * 1.44269504088896341f + magic;
  VI n = (VI)t - 0x4B400000;
  V nf = t - magic;
  V r = x - nf * 0.693145751953125f;  // ln2 split so nf*hi is exact
  r = r - nf * 1.428606765330187e-06f;
  V p = (V{} + 1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  VI scale = (n + 127) << 23;
  x = p * (V)scale;
}

// GELU with the exact erf: 1e-6 relative for |x| <= 3, a few 1e-6 further out
// (the float rounding of z^2 inside exp). erf is a polynomial in z^2 (least-squares
// fit, degree 5) up to |z| = 0.9; past that erfc(z) = exp(-z^2) t Q(t) with
// t = 1/(1 + z/2) (degree-8 fit), so negative inputs, where 1 + erf(z) cancels,
// keep their relative accuracy.
// The two pieces of erf at z >= 0: erf(z) as z P(z^2), accurate up to z = 0.9, and
// erfc(z) = exp(-z^2) t Q(t), t = 1/(1 + z/2), for the rest.
template <class V>
PERCEIVER_VM_INLINE void erf_pieces(const V& z, V& erf_small, V& erfc_big) {
  V s = z * z;
  V p = (V{} + -6.086069625e-04f);
  p = p * s + 5.011085421e-03f;
  p = p * s - 2.677827887e-02f;
  p = p * s + 1.128212214e-01f;
  p = p * s - 3.761252165e-01f;
  p = p * s + 1.128379107e+00f;
  erf_small = z * p;

  const V zmax = (V{} + 9.0f);  // erfc(9) ~ 4e-37: the product underflows anyway
  V zc = z > zmax ? zmax : z;
  V t = 1.0f / (1.0f + 0.5f * zc);
  V q = (V{} + -4.500418901e-02f);
  q = q * t + 2.426567972e-01f;
  q = q * t - 4.370489717e-01f;
  q = q * t + 2.479968518e-01f;
  q = q * t - 1.786213554e-02f;
  q = q * t + 2.020788342e-01f;
  q = q * t + 2.428024262e-01f;
  q = q * t + 2.824499905e-01f;
  q = q * t + 2.820813060e-01f;
  V e = -(zc * zc);
  exp_inplace(e);
  // Past the cap erfc is under 4e-37: 0, or 0.5 v erfc would grow with |v| (the
  // capped value times v is -62 at v = -3e38).
  erfc_big = z > zmax ? V{} : e * t * q;
}

// |v|, z = |v| / sqrt 2 and the erf pieces at z: what GELU and its gradient share.
template <class V>
PERCEIVER_VM_INLINE void gelu_pieces(const V& v, V& ax, V& z, V& erf_abs, V& erfc) {
  using VI = IntOf<V>;
  ax = (V)((VI)v & 0x7fffffff);
  z = ax * 0.70710678118654752f;
  erf_pieces(z, erf_abs, erfc);
}

template <class V>
PERCEIVER_VM_INLINE void gelu_erf_inplace(V& v) {
  V ax, z, erf_abs, erfc;
  gelu_pieces(v, ax, z, erf_abs, erfc);
  V small = 0.5f * (v + ax * erf_abs);
  const V zero = {};
  V big = v > zero ? v * (1.0f - 0.5f * erfc) : 0.5f * v * erfc;
  v = z < 0.9f ? small : big;
}

// d/dx of the exact GELU, Phi(x) + x phi(x), with Phi from the same erf pieces.
template <class V>
PERCEIVER_VM_INLINE void gelu_erf_grad_inplace(V& v) {
  V ax, z, erf_abs, erfc;
  gelu_pieces(v, ax, z, erf_abs, erfc);
  const V zero = {};
  V cdf_small = v < zero ? 0.5f - 0.5f * erf_abs : 0.5f + 0.5f * erf_abs;
  V cdf_big = v > zero ? 1.0f - 0.5f * erfc : 0.5f * erfc;
  V cdf = z < 0.9f ? cdf_small : cdf_big;
  V e = -0.5f * (v * v);
  // Below exp's range the density is 0, not the clamped exp(-87.3) times v.
  auto vanishes = e < -87.0f;
  exp_inplace(e);
  e = vanishes ? V{} : e;
  v = cdf + v * (0.3989422804014327f * e);
}

// d/dx of the tanh form, 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2), t = tanh(u),
// written with s = sigmoid(2u) = 1 / (1 + e), e = exp(-2u): 1 + t = 2 s and
// 1 - t^2 = 4 e s^2, so no term cancels where t is near -1.
template <class V>
PERCEIVER_VM_INLINE void gelu_tanh_grad_inplace(V& v) {
  const float c = 0.7978845608028654f, k = 0.044715f;
  V x2 = v * v;
  V e = -2.0f * c * (v + k * x2 * v);
  // Past exp's range s is 0 and so is the gradient; below it e is 0, s is 1 and so is
  // the gradient (the clamped exp would leave terms that grow with |v|, and overflow).
  auto saturated = e > 88.0f;
  auto vanishes = e < -87.0f;
  exp_inplace(e);
  V s = 1.0f / (1.0f + e);
  V grad = s + (2.0f * c) * v * (1.0f + 3.0f * k * x2) * (e * s * s);
  v = saturated ? V{} : vanishes ? s : grad;
}

// gx = g * gelu'(x) over n floats (the erf or the tanh form).
template <class V>
PERCEIVER_VM_INLINE void gelu_grad_array(const float* x, const float* g, float* gx, int64_t n, bool tanh_form) {
  constexpr int L = sizeof(V) / sizeof(float);
  auto one = [&](V& v) {
    if (tanh_form) gelu_tanh_grad_inplace(v);
    else gelu_erf_grad_inplace(v);
  };
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V v, gv;
    __builtin_memcpy(&v, x + i, sizeof(V));
    __builtin_memcpy(&gv, g + i, sizeof(V));
    one(v);
    v = v * gv;
    __builtin_memcpy(gx + i, &v, sizeof(V));
  }
  if (i < n) {  // the tail goes through zero-filled stack vectors
    V v = {}, gv = {};
    __builtin_memcpy(&v, x + i, (n - i) * sizeof(float));
    __builtin_memcpy(&gv, g + i, (n - i) * sizeof(float));
    one(v);
    v = v * gv;
    __builtin_memcpy(gx + i, &v, (n - i) * sizeof(float));
  }
}

// 0.5 v (1 + tanh(u)) == v * sigmoid(2u): one exp, no cancellation for v < 0.
template <class V>
PERCEIVER_VM_INLINE void gelu_tanh_inplace(V& v) {
  V u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
  V e = -2.0f * u;
  // Past exp's range the sigmoid is 0: v * 0 (-0, or NaN for -inf as in the formula),
  // not v over the clamped exp, which grows with |v|.
  auto saturated = e > 88.0f;
  exp_inplace(e);
  V r = v / (1.0f + e);
  v = saturated ? v * 0.0f : r;
}

template <class V>
PERCEIVER_VM_INLINE void relu_inplace(V& v) {
  const V zero = {};
  // NaN stays NaN, as relu() and torch keep it: a diverging run must not look finite.
  v = v < zero ? zero : v;
}

template <class V>
PERCEIVER_VM_INLINE void activate(V& v, Activation act) {
  switch (act) {
    case Activation::None: return;
    case Activation::Relu: relu_inplace(v); return;
    case Activation::Gelu: gelu_erf_inplace(v); return;
    case Activation::GeluTanh: gelu_tanh_inplace(v); return;
  }
}

template <class V, Activation A>
PERCEIVER_VM_INLINE void activate_fixed(V& v) {
  if constexpr (A == Activation::Relu) relu_inplace(v);
  if constexpr (A == Activation::Gelu) gelu_erf_inplace(v);
  if constexpr (A == Activation::GeluTanh) gelu_tanh_inplace(v);
}

template <class V, Activation A>
PERCEIVER_VM_INLINE void activate_array_fixed(float* x, int64_t n) {
  constexpr int L = sizeof(V) / sizeof(float);
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V v;
    __builtin_memcpy(&v, x + i, sizeof(V));
    activate_fixed<V, A>(v);
    __builtin_memcpy(x + i, &v, sizeof(V));
  }
  if (i < n) {  // the tail goes through a zero-filled stack vector
    V v = {};
    __builtin_memcpy(&v, x + i, (n - i) * sizeof(float));
    activate_fixed<V, A>(v);
    __builtin_memcpy(x + i, &v, (n - i) * sizeof(float));
  }
}

// In-place activation over n floats; the switch sits outside the loop.
template <class V>
PERCEIVER_VM_INLINE void activate_array(float* x, int64_t n, Activation act) {
  switch (act) {
    case Activation::None: return;
    case Activation::Relu: activate_array_fixed<V, Activation::Relu>(x, n); return;
    case Activation::Gelu: activate_array_fixed<V, Activation::Gelu>(x, n); return;
    case Activation::GeluTanh: activate_array_fixed<V, Activation::GeluTanh>(x, n); return;
  }
}

// softmax (or log-softmax) of one contiguous row of n floats into o: the row max, then
// exp(x - max) with the vector exp (0 below its range, as exp underflows there) summed
// in float lanes combined in double, then the scale (or the log-sum subtracted).
template <class V>
PERCEIVER_VM_INLINE void softmax_row(const float* a, float* o, int64_t n, bool log) {
  constexpr int L = sizeof(V) / sizeof(float);
  float m = -__builtin_inff();
  int64_t j = 0;
  if (n >= L) {
    V vmax;
    __builtin_memcpy(&vmax, a, sizeof(V));
    for (j = L; j + L <= n; j += L) {
      V v;
      __builtin_memcpy(&v, a + j, sizeof(V));
      vmax = v > vmax ? v : vmax;
    }
    for (int l = 0; l < L; l++) m = vmax[l] > m ? vmax[l] : m;
  }
  for (; j < n; j++) m = a[j] > m ? a[j] : m;
  // A row of -inf (or NaN) has no finite max: subtract nothing, as the scalar form does.
  const float mu = m == m && m != -__builtin_inff() ? m : 0.f;
  const V lo = (V{} + -87.3f);
  V acc = {};
  double s = 0;
  j = 0;
  for (; j + L <= n; j += L) {
    V d;
    __builtin_memcpy(&d, a + j, sizeof(V));
    d = d - mu;
    V e = d;
    exp_inplace(e);
    e = d < lo ? V{} : e;
    if (!log) __builtin_memcpy(o + j, &e, sizeof(V));
    acc += e;
  }
  for (int l = 0; l < L; l++) s += acc[l];
  for (; j < n; j++) {
    const float e = __builtin_expf(a[j] - mu);
    if (!log) o[j] = e;
    s += e;
  }
  if (log) {
    const float ls = (float)__builtin_log(s);
    for (int64_t k = 0; k < n; k++) o[k] = a[k] - mu - ls;
  } else {
    const float inv = (float)(1.0 / s);
    for (int64_t k = 0; k < n; k++) o[k] *= inv;
  }
}

// The two skinny-product forms (see SkinnyArgs), over any vector type.
template <class V>
PERCEIVER_VM_INLINE void skinny_product(const SkinnyArgs& s, int64_t n0, int64_t n1) {
  constexpr int L = sizeof(V) / sizeof(float);
  if (!s.tb) {
    // C starts as beta C + bias and accumulates in place, four k steps per pass so
    // each load/store of C carries four multiply-adds. 4096-column blocks keep the
    // m C rows in L1/L2 while every row of B streams past once, front to back.
    constexpr int64_t W = 4096;
    for (int64_t jb = n0; jb < n1; jb += W) {
      const int64_t w = n1 - jb < W ? n1 - jb : W;
      for (int64_t i = 0; i < s.m; i++) {
        float* cr = s.c + i * s.ldc + jb;
        for (int64_t j = 0; j < w; j++) {
          float v = s.beta == 0 ? 0.0f : s.beta * cr[j];
          cr[j] = s.bias ? v + s.bias[jb + j] : v;
        }
      }
      auto a_at = [&](int64_t i, int64_t p) {
        return s.alpha * (s.ta ? s.a[p * s.lda + i] : s.a[i * s.lda + p]);
      };
      int64_t p = 0;
      for (; p + 4 <= s.k; p += 4) {
        const float* b0 = s.b + p * s.ldb + jb;
        const float* b1 = b0 + s.ldb;
        const float* b2 = b1 + s.ldb;
        const float* b3 = b2 + s.ldb;
        for (int64_t i = 0; i < s.m; i++) {
          const float a0 = a_at(i, p), a1 = a_at(i, p + 1), a2 = a_at(i, p + 2), a3 = a_at(i, p + 3);
          const V va0 = V{} + a0, va1 = V{} + a1, va2 = V{} + a2, va3 = V{} + a3;
          float* cr = s.c + i * s.ldc + jb;
          int64_t j = 0;
          for (; j + L <= w; j += L) {
            V cv, v0, v1, v2, v3;
            __builtin_memcpy(&cv, cr + j, sizeof(V));
            __builtin_memcpy(&v0, b0 + j, sizeof(V));
            __builtin_memcpy(&v1, b1 + j, sizeof(V));
            __builtin_memcpy(&v2, b2 + j, sizeof(V));
            __builtin_memcpy(&v3, b3 + j, sizeof(V));
            cv += va0 * v0 + va1 * v1 + va2 * v2 + va3 * v3;
            __builtin_memcpy(cr + j, &cv, sizeof(V));
          }
          for (; j < w; j++) cr[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
      }
      for (; p < s.k; p++) {
        const float* br = s.b + p * s.ldb + jb;
        for (int64_t i = 0; i < s.m; i++) {
          const float av = a_at(i, p);
          const V va = V{} + av;
          float* cr = s.c + i * s.ldc + jb;
          int64_t j = 0;
          for (; j + L <= w; j += L) {
            V bv, cv;
            __builtin_memcpy(&bv, br + j, sizeof(V));
            __builtin_memcpy(&cv, cr + j, sizeof(V));
            cv += va * bv;
            __builtin_memcpy(cr + j, &cv, sizeof(V));
          }
          for (; j < w; j++) cr[j] += av * br[j];
        }
      }
      for (int64_t i = 0; i < s.m; i++) activate_array<V>(s.c + i * s.ldc + jb, w, s.act);
    }
    return;
  }
  // Eight rows of B at a time, so each A vector load feeds eight independent
  // accumulation chains (enough to cover FMA latency and keep eight streams of B in
  // flight); a ragged last group repeats its last row rather than reading past B.
  constexpr int J = 8;
  for (int64_t j = n0; j < n1; j += J) {
    const int64_t nj = n1 - j < J ? n1 - j : J;
    const float* br[J];
    for (int q = 0; q < J; q++) br[q] = s.b + (j + (q < nj ? q : nj - 1)) * s.ldb;
    for (int64_t i = 0; i < s.m; i++) {
      const float* ar = s.a + i * s.lda;
      V acc[J];
      for (int q = 0; q < J; q++) acc[q] = V{};
      int64_t p = 0;
      for (; p + L <= s.k; p += L) {
        V av;
        __builtin_memcpy(&av, ar + p, sizeof(V));
#pragma GCC unroll 8
        for (int q = 0; q < J; q++) {
          V bv;
          __builtin_memcpy(&bv, br[q] + p, sizeof(V));
          acc[q] += av * bv;
        }
      }
      float d[J];
      for (int q = 0; q < J; q++) {
        d[q] = 0;
        for (int l = 0; l < L; l++) d[q] += acc[q][l];
      }
      for (; p < s.k; p++)
        for (int q = 0; q < J; q++) d[q] += ar[p] * br[q][p];
      float* cr = s.c + i * s.ldc + j;
      for (int64_t q = 0; q < nj; q++) {
        float v = s.alpha * d[q];
        if (s.beta != 0) v += s.beta * cr[q];
        if (s.bias) v += s.bias[j + q];
        cr[q] = v;
      }
    }
  }
  for (int64_t i = 0; i < s.m; i++) activate_array<V>(s.c + i * s.ldc + n0, n1 - n0, s.act);
}

#undef PERCEIVER_VM_INLINE
}  // namespace vm

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace perceiver
