// Packed, cache-blocked SGEMM (the GotoBLAS/BLIS loop nest) with run-time ISA
// dispatch.
//
// C is row-major, so the microkernel vectorises along n: its register tile is
// MR rows x NR columns (AVX-512: 14 x 32 in 28 zmm, AVX2: 6 x 16, generic: 6 x 8)
// and each k step broadcasts MR values of A against one NR-wide row of B.
// Loops, outermost first:
//   ic over m in MC rows    - the packed A block (MC x KC) lives in L3
//   pc over k in KC steps   - one KC slice of the product per pass over C
//   jc over n in NC columns - the B block (KC x NC) lives in L2
//   ir over MC in MR rows   - one A micro-panel (MR x KC) stays in L1 ...
//   jr over NC in NR cols   - ... while the B micro-panels stream past it from L2
// AVX-512 blocks are KC = 512, MC = 1024, NC = 256 (28 KiB A micro-panel in the
// 48 KiB L1, 512 KiB B block in the 1 MiB L2 of the Zen 5 this was tuned on; why
// in gemm_avx512.cc). Blocks are evened out: k = 600 runs as two 300-deep passes,
// not 512 + 88.
//
// A is always packed into MR-row micro-panels ([k][MR], a transpose when A is not
// transposed, done with in-register 16 x 16 transposes on AVX-512), so the
// broadcasts walk memory with unit stride whatever the layout. A transposed B is
// packed into NR-column micro-panels ([k][NR], zero-padded). A row-major B is read
// in place on AVX-512 (and for m <= 4 MR on the other paths): there the kernel's
// two 64-byte loads per k step stream from L2/L3 as fast as from a packed copy,
// and skipping the copy measured 0-10% faster from 512 x 1024 x 1024 up to 2048^3;
// only a ragged last panel is packed, so the kernel can load whole vectors. On
// AVX2 (NR = 16, one cache line per row) the in-place read measured 30% slower,
// so B is packed there.
//
// Products with m <= 4 take a separate path without packing (skinny_product in
// gemm_kernels.h): there, packing would cost as much as the whole product.
//
// Threads: with `parallel`, C is cut into one rectangle per thread (whole
// micro-tiles; m is split unless that would duplicate more packing than splitting
// n), and each thread runs the serial loop nest on its rectangle with its own
// thread_local packing buffers, so threads never synchronise inside a product.
// Products under ~4M multiply-adds stay on the calling thread (see
// kMinParallelMacs). Serial calls (attention calls sgemm from inside
// parallel_for) use the same thread_local buffers, so concurrent calls on
// different threads are safe and steady-state calls allocate nothing.
//
// Alpha, beta * C (never read when beta == 0), bias and activation are applied by
// the kernel when it stores a tile: alpha, beta and bias on the first KC pass,
// the activation (GELU via a vectorised erf, see gemm_kernels.h) on the last,
// while the tile is in registers or L1.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../threadpool.h"
#include "gemm_kernels.h"

namespace perceiver {
namespace cpu {
namespace gemm_detail {

// ---------------------------------------------------------------------------
// Portable kernel: GCC/Clang vector extensions, 4-wide (SSE2 on baseline x86-64,
// NEON on arm64). 6 x 8 keeps 12 accumulators + 3 temporaries within 16 registers.
namespace {

constexpr int kGenericMR = 6;
constexpr int kGenericNR = 8;
typedef float v4f __attribute__((vector_size(16)));

__attribute__((noinline)) void generic_activation(float* x, int64_t n, Activation act) {
  vm::activate_array<v4f>(x, n, act);
}

__attribute__((noinline)) void generic_gelu_grad(const float* x, const float* g, float* gx, int64_t n, bool tanh_form) {
  vm::gelu_grad_array<v4f>(x, g, gx, n, tanh_form);
}

__attribute__((noinline)) void generic_softmax_row(const float* a, float* o, int64_t n, bool log) {
  vm::softmax_row<v4f>(a, o, n, log);
}

void generic_skinny(const SkinnyArgs& s, int64_t n0, int64_t n1) {
  vm::skinny_product<v4f>(s, n0, n1);
}

template <int ROWS>
void generic_tile(int nr, int64_t k, const float* __restrict a, const float* __restrict b,
                  int64_t ldb, float* c, int64_t ldc, const Epilogue& ep) {
  v4f acc0[ROWS], acc1[ROWS];
  for (int i = 0; i < ROWS; i++) acc0[i] = acc1[i] = v4f{};
  for (int64_t p = 0; p < k; p++) {
    v4f b0, b1;
    std::memcpy(&b0, b, sizeof b0);
    std::memcpy(&b1, b + 4, sizeof b1);
#pragma GCC unroll 6
    for (int i = 0; i < ROWS; i++) {
      const v4f av = v4f{} + a[i];
      acc0[i] += av * b0;
      acc1[i] += av * b1;
    }
    a += kGenericMR;
    b += ldb;
  }
  const float alpha = ep.alpha, beta = ep.beta;
  const float* bias = ep.bias;
  const Activation act = ep.act;
  for (int i = 0; i < ROWS; i++) {
    float t[kGenericNR];
    std::memcpy(t, &acc0[i], sizeof acc0[i]);
    std::memcpy(t + 4, &acc1[i], sizeof acc1[i]);
    float* cr = c + i * ldc;
    for (int j = 0; j < nr; j++) {
      float v = alpha * t[j];
      if (beta != 0) v += beta * cr[j];
      if (bias) v += bias[j];
      cr[j] = v;
    }
    if (act != Activation::None) generic_activation(cr, nr, act);
  }
}

void generic_kernel(int mr, int nr, int64_t k, const float* a, const float* b, int64_t ldb,
                    float* c, int64_t ldc, const Epilogue& ep) {
  switch (mr) {
    case 6: return generic_tile<6>(nr, k, a, b, ldb, c, ldc, ep);
    case 5: return generic_tile<5>(nr, k, a, b, ldb, c, ldc, ep);
    case 4: return generic_tile<4>(nr, k, a, b, ldb, c, ldc, ep);
    case 3: return generic_tile<3>(nr, k, a, b, ldb, c, ldc, ep);
    case 2: return generic_tile<2>(nr, k, a, b, ldb, c, ldc, ep);
    case 1: return generic_tile<1>(nr, k, a, b, ldb, c, ldc, ep);
  }
}

}  // namespace

const IsaKernels* generic_kernels() {
  // As AVX2: A micro-panel (6 KiB) in L1, B block (128 KiB) in L2, A block in L3.
  static const IsaKernels k{Isa::Generic, "generic", kGenericMR, kGenericNR, 256, 1024, 128, false,
                            generic_kernel, generic_activation, nullptr, nullptr,
                            generic_skinny, generic_gelu_grad, generic_softmax_row};
  return &k;
}

// ---------------------------------------------------------------------------
// Dispatch.
namespace {

const IsaKernels* kernels_for(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return avx512_kernels();
    case Isa::Avx2: return avx2_kernels();
    case Isa::Generic: return generic_kernels();
  }
  return generic_kernels();
}

const IsaKernels* detect() {
  Isa best = Isa::Generic;
  if (isa_supported(Isa::Avx512)) best = Isa::Avx512;
  else if (isa_supported(Isa::Avx2)) best = Isa::Avx2;
  Isa pick = best;
  // Lets tests and benchmarks pin a slower path on a faster CPU.
  const char* env = std::getenv("PERCEIVER_CPU_ISA");
  if (env && *env) {
    bool known = true;
    Isa want = best;
    if (!std::strcmp(env, "avx512")) want = Isa::Avx512;
    else if (!std::strcmp(env, "avx2")) want = Isa::Avx2;
    else if (!std::strcmp(env, "generic")) want = Isa::Generic;
    else known = false;
    if (!known) {
      std::fprintf(stderr, "perceiver-io: ignoring PERCEIVER_CPU_ISA=%s (avx512|avx2|generic)\n", env);
    } else if (!isa_supported(want)) {
      std::fprintf(stderr, "perceiver-io: PERCEIVER_CPU_ISA=%s is not supported here, using %s\n",
                   env, kernels_for(best)->name);
    } else {
      pick = want;
    }
  }
  return kernels_for(pick);
}

std::atomic<const IsaKernels*> g_active{nullptr};

}  // namespace

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Generic: return true;
#if defined(__x86_64__)
    case Isa::Avx2:
      __builtin_cpu_init();
      return avx2_kernels() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::Avx512:
      __builtin_cpu_init();
      return avx512_kernels() && __builtin_cpu_supports("avx512f");
#else
    default: return false;
#endif
  }
  return false;
}

const IsaKernels& active_kernels() {
  const IsaKernels* k = g_active.load(std::memory_order_acquire);
  if (k) return *k;
  static const IsaKernels* detected = detect();
  const IsaKernels* expected = nullptr;
  g_active.compare_exchange_strong(expected, detected, std::memory_order_acq_rel);
  return *g_active.load(std::memory_order_acquire);
}

void force_isa(Isa isa) {
  if (isa_supported(isa)) g_active.store(kernels_for(isa), std::memory_order_release);
}

}  // namespace gemm_detail

// ---------------------------------------------------------------------------
// Driver.
namespace {

using namespace gemm_detail;

struct Problem {
  bool ta, tb;
  int64_t m, n, k;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
  const float* bias;
  Activation act;
};

// Grows, never shrinks: after the first call of a given size, steady-state calls
// allocate nothing.
class AlignedBuffer {
 public:
  ~AlignedBuffer() { std::free(p_); }
  float* get(size_t floats) {
    if (floats > cap_) {
      std::free(p_);
      size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
      cap_ = bytes / sizeof(float);
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

struct Scratch {
  AlignedBuffer a, b;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Splits `total` into ceil(total / target) near-equal blocks, rounded up to `unit`.
inline int64_t even_block(int64_t total, int64_t target, int64_t unit) {
  int64_t blocks = ceil_div(total, target);
  return ceil_div(ceil_div(total, blocks), unit) * unit;
}

// A[i0 : i0+mc, p0 : p0+kc] -> MR-row micro-panels, [kc][MR] each. Rows past the
// edge of the last panel are left unset: the kernel is told how many rows exist.
template <int MR>
void pack_a(const IsaKernels& K, const Problem& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc,
            float* dst) {
  for (int64_t ir = 0; ir < mc; ir += MR, dst += kc * MR) {
    const int rows = (int)std::min<int64_t>(MR, mc - ir);
    if (g.ta) {
      // A is [k][m]: each k step is a contiguous run of `rows` values.
      const float* src = g.a + p0 * g.lda + i0 + ir;
      if (rows == MR) {
        for (int64_t p = 0; p < kc; p++)
          std::memcpy(dst + p * MR, src + p * g.lda, MR * sizeof(float));
      } else {
        for (int64_t p = 0; p < kc; p++)
          std::memcpy(dst + p * MR, src + p * g.lda, rows * sizeof(float));
      }
    } else if (rows == MR && K.pack_a_rows) {
      K.pack_a_rows(g.a + (i0 + ir) * g.lda + p0, g.lda, kc, dst);
    } else {
      // A is [m][k]: a transpose. Read 4 k-steps of every row, write 4 MR-groups,
      // so both sides move in cache-friendly runs.
      const float* src = g.a + (i0 + ir) * g.lda + p0;
      const int64_t lda = g.lda;
      int64_t p = 0;
      if (rows == MR) {
        for (; p + 4 <= kc; p += 4) {
          float* d = dst + p * MR;
#pragma GCC unroll 16
          for (int r = 0; r < MR; r++) {
            const float* s = src + r * lda + p;
            d[r] = s[0];
            d[MR + r] = s[1];
            d[2 * MR + r] = s[2];
            d[3 * MR + r] = s[3];
          }
        }
      }
      for (; p < kc; p++)
        for (int r = 0; r < rows; r++) dst[p * MR + r] = src[r * lda + p];
    }
  }
}

// B[p0 : p0+kc, j0 : j0+nc] -> NR-column micro-panels, [kc][NR] each, zero-padded
// past nc so the kernel can load whole vectors.
template <int NR>
void pack_b(const IsaKernels& K, const Problem& g, int64_t j0, int64_t nc, int64_t p0, int64_t kc,
            float* dst) {
  const int64_t full = nc / NR, tail = nc - full * NR;
  if (!g.tb) {
    // Row by row, so each source row is read front to back (one stream the
    // prefetcher follows) rather than once per panel at a 4 KiB-ish stride.
    for (int64_t p = 0; p < kc; p++) {
      const float* src = g.b + (p0 + p) * g.ldb + j0;
      float* d = dst + p * NR;
      for (int64_t jp = 0; jp < full; jp++)
        std::memcpy(d + jp * kc * NR, src + jp * NR, NR * sizeof(float));
      if (tail) {
        float* dt = d + full * kc * NR;
        std::memcpy(dt, src + full * NR, tail * sizeof(float));
        std::memset(dt + tail, 0, (NR - tail) * sizeof(float));
      }
    }
    return;
  }
  // B is [n][k]: a transpose, 4 k-steps of each column at a time.
  const int64_t ldb = g.ldb;
  for (int64_t jr = 0; jr < nc; jr += NR, dst += kc * NR) {
    const int cols = (int)std::min<int64_t>(NR, nc - jr);
    const float* src = g.b + (j0 + jr) * ldb + p0;
    if (cols == NR && K.pack_bt_rows) {
      K.pack_bt_rows(src, ldb, kc, dst);
      continue;
    }
    int64_t p = 0;
    if (cols == NR) {
      for (; p + 4 <= kc; p += 4) {
        float* d = dst + p * NR;
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++) {
          const float* s = src + j * ldb + p;
          d[j] = s[0];
          d[NR + j] = s[1];
          d[2 * NR + j] = s[2];
          d[3 * NR + j] = s[3];
        }
      }
    }
    for (; p < kc; p++) {
      for (int j = 0; j < cols; j++) dst[p * NR + j] = src[j * ldb + p];
      for (int j = cols; j < NR; j++) dst[p * NR + j] = 0.0f;
    }
  }
}

// The serial loop nest over the rectangle C[m0:m1, n0:n1] (k >= 1).
template <int MR, int NR>
void gemm_rect(const IsaKernels& K, const Problem& g, int64_t m0, int64_t m1, int64_t n0,
               int64_t n1) {
  const int64_t mt = m1 - m0, nt = n1 - n0, k = g.k;
  const int64_t kc = even_block(k, K.kc, 1);
  const int64_t mc = even_block(mt, K.mc, MR);
  const int64_t nc = even_block(nt, K.nc, NR);
  const bool direct_b = !g.tb && (K.direct_b || mt <= 4 * MR);

  Scratch& s = scratch();
  float* abuf = s.a.get(std::min(mc, ceil_div(mt, MR) * MR) * kc);
  // Direct B still packs the ragged last panel, so it needs one panel of space.
  float* bbuf = s.b.get(direct_b ? kc * NR : std::min(nc, ceil_div(nt, NR) * NR) * kc);

  for (int64_t ic = m0; ic < m1; ic += mc) {
    const int64_t mcur = std::min(mc, m1 - ic);
    for (int64_t pc = 0; pc < k; pc += kc) {
      const int64_t kcur = std::min(kc, k - pc);
      const bool first = pc == 0, last = pc + kcur == k;
      pack_a<MR>(K, g, ic, mcur, pc, kcur, abuf);
      for (int64_t jc = n0; jc < n1; jc += nc) {
        const int64_t ncur = std::min(nc, n1 - jc);
        if (!direct_b) pack_b<NR>(K, g, jc, ncur, pc, kcur, bbuf);
        for (int64_t ir = 0; ir < mcur; ir += MR) {
          const int mr = (int)std::min<int64_t>(MR, mcur - ir);
          const float* ap = abuf + ir * kcur;
          float* cp = g.c + (ic + ir) * g.ldc + jc;
          for (int64_t jr = 0; jr < ncur; jr += NR) {
            const int nr = (int)std::min<int64_t>(NR, ncur - jr);
            const float* bp;
            int64_t ldbp;
            if (!direct_b) {
              bp = bbuf + jr * kcur;
              ldbp = NR;
            } else if (nr == NR) {
              bp = g.b + pc * g.ldb + jc + jr;
              ldbp = g.ldb;
            } else {
              pack_b<NR>(K, g, jc + jr, nr, pc, kcur, bbuf);
              bp = bbuf;
              ldbp = NR;
            }
            Epilogue ep{g.alpha, first ? g.beta : 1.0f,
                        first && g.bias ? g.bias + jc + jr : nullptr,
                        last ? g.act : Activation::None};
            K.kernel(mr, nr, kcur, ap, bp, ldbp, cp + jr, g.ldc, ep);
          }
        }
      }
    }
  }
}

void run_rect(const IsaKernels& K, const Problem& g, int64_t m0, int64_t m1, int64_t n0,
              int64_t n1) {
  if (m0 >= m1 || n0 >= n1) return;
  switch (K.isa) {
    case Isa::Avx512: return gemm_rect<14, 32>(K, g, m0, m1, n0, n1);
    case Isa::Avx2: return gemm_rect<6, 16>(K, g, m0, m1, n0, n1);
    case Isa::Generic: return gemm_rect<kGenericMR, kGenericNR>(K, g, m0, m1, n0, n1);
  }
}

// C = act(beta * C + bias): the k == 0 / alpha == 0 case, where A and B are not read.
void scale_only(const IsaKernels& K, const Problem& g) {
  for (int64_t i = 0; i < g.m; i++) {
    float* cr = g.c + i * g.ldc;
    for (int64_t j = 0; j < g.n; j++) {
      float v = g.beta == 0 ? 0.0f : g.beta * cr[j];
      if (g.bias) v += g.bias[j];
      cr[j] = v;
    }
    K.activation(cr, g.n, g.act);
  }
}

// Below this many multiply-adds (~50 us on one core) a second thread costs more
// to wake than it saves: a pool thread that sleeps on a condition variable takes
// tens of microseconds to get going on a virtual machine (measured crossover: a
// 64 x 256 x 256 product runs as fast on one thread as on two).
constexpr double kMinParallelMacs = 4.0 * 1024 * 1024;

// Runs fn(t) for every t in [0, tasks) on the pool. Tasks are claimed one at a time,
// so a worker that wakes late (a sleeping pool thread can take 100+ us to get a
// CPU on a virtual machine) just takes fewer of them, instead of the caller
// waiting for a half that was pre-assigned to it.
template <class F>
void dynamic_tasks(int64_t tasks, const F& fn) {
  std::atomic<int64_t> next{0};
  parallel_for(std::min<int64_t>(tasks, num_threads()), 1, [&](int64_t, int64_t, int) {
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) fn(t);
  });
}

// Each thread owns one rectangle of C and runs the serial loop nest on it with its
// own packing buffers. Sharing one packed B between the threads was tried: the
// blocks then travel between the cores' L2 caches, and it measured 5-15% slower
// here than packing twice.
void run_parallel_split(const IsaKernels& K, const Problem& g) {
  const int threads = num_threads();
  const int64_t MR = K.mr, NR = K.nr;
  const int64_t um = ceil_div(g.m, MR), un = ceil_div(g.n, NR);
  // Splitting m duplicates the packing of B (none when B is read in place),
  // splitting n duplicates the packing of A: split the side that copies less, as
  // long as it has a micro-tile for every thread; the other side takes the rest.
  const bool b_in_place = !g.tb && K.direct_b;
  const bool split_m = um >= threads ? (b_in_place || g.n <= g.m) : um >= un;
  int tm, tn;
  if (split_m) {
    tm = (int)std::min<int64_t>(threads, um);
    tn = (int)std::min<int64_t>(threads / tm, un);
  } else {
    tn = (int)std::min<int64_t>(threads, un);
    tm = (int)std::min<int64_t>(threads / tn, um);
  }
  dynamic_tasks(tm * tn, [&](int64_t t) {
    const int64_t im = t / tn, jn = t % tn;
    const int64_t m0 = std::min(g.m, um * im / tm * MR);
    const int64_t m1 = std::min(g.m, um * (im + 1) / tm * MR);
    const int64_t n0 = std::min(g.n, un * jn / tn * NR);
    const int64_t n1 = std::min(g.n, un * (jn + 1) / tn * NR);
    run_rect(K, g, m0, m1, n0, n1);
  });
}

void run_parallel(const IsaKernels& K, const Problem& g) {
  if (num_threads() <= 1 || (double)g.m * g.n * g.k < kMinParallelMacs) {
    run_rect(K, g, 0, g.m, 0, g.n);
    return;
  }
  run_parallel_split(K, g);
}

// m <= kSkinnyMaxM: no packing, threads split the columns.
void run_skinny(const IsaKernels& K, const Problem& g, bool parallel) {
  SkinnyArgs s{g.ta, g.tb, g.m, g.k, g.alpha, g.beta, g.a, g.lda, g.b, g.ldb, g.c, g.ldc, g.bias, g.act};
  if (g.tb && g.ta) {
    // The dot-product form wants contiguous rows of A: transpose the few rows.
    float* t = scratch().a.get(g.m * g.k);
    for (int64_t i = 0; i < g.m; i++)
      for (int64_t p = 0; p < g.k; p++) t[i * g.k + p] = g.a[p * g.lda + i];
    s.a = t;
    s.lda = g.k;
    s.ta = false;
  }
  if (!parallel || num_threads() <= 1 || (double)g.m * g.n * g.k < kMinParallelMacs) {
    K.skinny(s, 0, g.n);
    return;
  }
  // About 8 column chunks per thread; without trans_b each chunk reads its slice of
  // every row of B, so those slices stay at least 256 floats long.
  const int64_t min_chunk = g.tb ? 64 : 256;
  const int64_t chunk = std::max<int64_t>(min_chunk, ceil_div(ceil_div(g.n, 8 * num_threads()), 16) * 16);
  dynamic_tasks(ceil_div(g.n, chunk), [&](int64_t t) {
    K.skinny(s, t * chunk, std::min(g.n, (t + 1) * chunk));
  });
}

}  // namespace

void apply_activation(float* x, int64_t n, Activation act) {
  if (n <= 0 || act == Activation::None) return;
  active_kernels().activation(x, n, act);
}

void gelu_grad(const float* x, const float* g, float* gx, int64_t n, bool tanh_form) {
  if (n <= 0) return;
  active_kernels().gelu_grad(x, g, gx, n, tanh_form);
}

void softmax_row(const float* a, float* o, int64_t n, bool log) {
  if (n <= 0) return;
  active_kernels().softmax_row(a, o, n, log);
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, const float* bias, Activation act, bool parallel) {
  if (m <= 0 || n <= 0) return;
  const IsaKernels& K = active_kernels();
  const Problem g{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act};
  if (k <= 0 || alpha == 0.0f) {
    scale_only(K, g);
    return;
  }
  if (m <= kSkinnyMaxM && K.skinny) run_skinny(K, g, parallel);
  else if (parallel) run_parallel(K, g);
  else run_rect(K, g, 0, m, 0, n);
}

}  // namespace cpu
}  // namespace perceiver
