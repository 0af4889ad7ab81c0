// Attention composed of cuBLASLt products on CUDA, one chunk of keys at a time
// (tensor cores for 16-bit operands, float32 accumulation). With S = scale Q Kᵀ
// (masked), L each row's log-sum-exp, P = exp(S − L), F the dropout factors (1
// without dropout; the mask rand() draws with the call's seed, as on the CPU) and
// O = (P ∘ F) V:
//
// Forward, where the fused kernels of attention.cu fall short: float32 (their SIMT
// path runs far below the GEMMs' rate) and dropout (they have none). L comes first,
// from a pass of S = scale Q K_cᵀ over every chunk; then per chunk P_c = exp(S_c − L)
// ∘ F and O += P_c V_c. When one chunk holds every key, S is computed once.
//
// Gradient, as on the CPU (attention_backward.cc), with dO incoming:
//   dV = (P ∘ F)ᵀ dO,  dP = (dO Vᵀ) ∘ F,  dS = P ∘ (dP − D) with D = rowsum(dO ∘ O),
//   dQ = scale dS K,  dK = scale dSᵀ Q.
// Per chunk of keys [j0, j0 + n): S (float32), P = exp(S − L) masked to 0, dV_c
// (complete: a chunk owns its keys), dP (float32), dS, dK_c, and dQ += scale dS K_c
// into a float32 accumulator. S, P, dP and dS exist only for the chunk (at most
// chunk_bytes for all of them), where the gradient composed in lib/autograd holds
// [B, H, Nq, Nk] matrices of each (3.3 GB at the ImageNet encoder's cross-attention
// for a batch of 8). 16-bit operands: P ∘ F and dS are rounded to the operands'
// dtype for the products that take them, as the composed gradient does; S, P and
// dP stay float32.
//
// Batching: q, k, v are [B, N, H, D] views, which one batch stride cannot walk in
// both B and H, so a product batches over the heads of one batch row or over the
// batch rows of one head: whichever needs fewer calls (with one head, the batch).
#include <cmath>

#include "attention_gemm.h"
#include "common.cuh"
#include "copy_matrices.cuh"
#include "random.cuh"

namespace perceiver::cuda {
namespace {

constexpr int64_t kKeyAlign = 64;

// How the (batch, head) pairs map onto batched products: `count` matrices per call,
// `calls` calls; a pair's row statistics live at (b * H + h) * Nq. over_b: call c
// batches over the batch rows of head c, else over the heads of batch row c.
struct Groups {
  bool over_b;
  int64_t count, calls;
  explicit Groups(const AttentionArgs& a)
      : over_b(a.heads == 1 || a.batch > a.heads), count(over_b ? a.batch : a.heads), calls(over_b ? a.heads : a.batch) {}
  // Batch stride of an operand with strides (per batch row, per head).
  int64_t stride(int64_t sb, int64_t sh) const { return over_b ? sb : sh; }
  // Offset of call c's first matrix in that operand.
  int64_t base(int64_t c, int64_t sb, int64_t sh) const { return c * (over_b ? sh : sb); }
};

// The pair (b, h) of matrix g in call c.
struct Pair {
  int64_t b, h;
};
__device__ __forceinline__ Pair pair_of(int64_t g, bool over_b, int64_t c) {
  return over_b ? Pair{g, c} : Pair{c, g};
}

struct MaskView {
  const uint8_t* p;
  int64_t sb, sq, sk;
  __device__ __forceinline__ bool keep(int64_t b, int64_t i, int64_t j) const {
    return !p || p[b * sb + i * sq + j * sk] != 0;
  }
};

__global__ void init_stats_kernel(float* m, float* l, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    m[i] = -INFINITY;
    l[i] = 0.f;
  }
}

// One block per row of the chunk's S [count, Nq, n]: the streaming max and sum.
__global__ void row_stats_kernel(const float* s, int64_t count, int64_t nq, int64_t n, int64_t j0, bool over_b,
                                 int64_t c, int64_t heads, MaskView mask, float* m, float* l) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < count * nq; r += gridDim.x) {
    const int64_t g = r / nq, i = r % nq;
    const Pair ph = pair_of(g, over_b, c);
    const float* sr = s + r * n;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (mask.keep(ph.b, i, j0 + j)) mx = fmaxf(mx, sr[j]);
    mx = block_max(mx, scratch);
    const int64_t row = (ph.b * heads + ph.h) * nq + i;
    const float m_old = m[row], m_new = fmaxf(m_old, mx);
    // No chunk is skipped while the maximum is -inf: kept scores that are all NaN
    // (which the maximum skips) must leave l NaN, as the kernels' online softmax does,
    // not 0, which reads as "every key masked" (lse +inf, P = 0).
    const float m_use = m_new == -INFINITY ? 0.f : m_new;
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (mask.keep(ph.b, i, j0 + j)) sum += expf(sr[j] - m_use);
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) {
      // 0 * l while m was -inf: l is 0 (or NaN) then, and exp(-inf + inf) is NaN.
      l[row] = (m_old == -INFINITY ? 0.f * l[row] : l[row] * expf(m_old - m_new)) + sum;
      m[row] = m_new;
    }
  }
}

__global__ void finish_lse_kernel(const float* m, const float* l, float* lse, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    lse[i] = l[i] == 0.f ? INFINITY : m[i] + logf(l[i]);
}

// D per row: one warp per (b, h, i).
template <class T>
__global__ void row_dot_kernel(const T* o, const T* go, float* d, int64_t batch, int64_t heads, int64_t nq, int64_t dv,
                               int64_t sb, int64_t sn, int64_t sh) {
  const int64_t lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; r < batch * heads * nq; r += warps) {
    const int64_t i = r % nq, h = (r / nq) % heads, b = r / (nq * heads);
    const int64_t off = b * sb + i * sn + h * sh;
    float s = 0.f;
    for (int64_t c = lane; c < dv; c += 32) s += to_f(o[off + c]) * to_f(go[off + c]);
    s = warp_sum(s);
    if (lane == 0) d[r] = s;
  }
}

// Flat index of weight (b, h, i, j) in the dropout draw: the CPU's, and dropout()'s
// over a [B, H, Nq, Nk] tensor.
__device__ __forceinline__ uint64_t weight_index(Pair ph, int64_t heads, int64_t nq, int64_t i, int64_t nk,
                                                 int64_t j) {
  return (uint64_t)(((ph.b * heads + ph.h) * nq + i) * nk + j);
}

// The rows of a chunk's [count, Nq, n] matrices, each owned by kWarps warps (each_row):
// f(r, i, pair, t, step) for row r, query i of pair, so that (g, i) and the pair are
// formed once per row rather than per element.
template <int kWarps, class F>
__device__ __forceinline__ void each_pair_row(int64_t count, int64_t nq, bool over_b, int64_t c, F&& f) {
  each_row<kWarps>(count * nq, [&](int64_t r, int t, int step) { f(r, r % nq, pair_of(r / nq, over_b, c), t, step); });
}

// P = exp(S − L) where kept, else 0, from the chunk's S [count, Nq, n] in s: kept
// there as float32 when keep_p, and P ∘ F written as T into op when op is set (op
// may be s itself, for float32, when P alone is not needed).
template <class T, int kWarps>
__global__ void probs_kernel(float* s, T* op, bool keep_p, int64_t count, int64_t nq, int64_t n, int64_t j0,
                             int64_t nk, bool over_b, int64_t c, int64_t heads, MaskView mask, const float* lse,
                             DropoutSpec drop) {
  each_pair_row<kWarps>(count, nq, over_b, c, [&](int64_t r, int64_t i, Pair ph, int t, int step) {
    // L is +inf for a row with every key masked: exp(-inf) = 0.
    const float L = lse[(ph.b * heads + ph.h) * nq + i];
    const uint64_t w0 = weight_index(ph, heads, nq, i, nk, j0);
    float* sr = s + r * n;
    for (int64_t j = t; j < n; j += step) {
      const float p = mask.keep(ph.b, i, j0 + j) ? expf(sr[j] - L) : 0.f;
      if (keep_p) sr[j] = p;
      if (op) op[r * n + j] = from_f<T>(p == 0.f ? 0.f : p * drop.at(w0 + j));
    }
  });
}

// dS = P ∘ (dP F − D), written as T (in place over dP for float32).
template <class T, int kWarps>
__global__ void dscores_kernel(const float* p, const float* dp, T* ds, int64_t count, int64_t nq, int64_t n,
                               int64_t j0, int64_t nk, bool over_b, int64_t c, int64_t heads, const float* d,
                               DropoutSpec drop) {
  each_pair_row<kWarps>(count, nq, over_b, c, [&](int64_t r, int64_t i, Pair ph, int t, int step) {
    const float D = d[(ph.b * heads + ph.h) * nq + i];
    const uint64_t w0 = weight_index(ph, heads, nq, i, nk, j0);
    for (int64_t j = t; j < n; j += step) {
      const int64_t e = r * n + j;
      const float pe = p[e];
      const float f = pe == 0.f ? 1.f : drop.at(w0 + j);
      ds[e] = from_f<T>(pe * (dp[e] * f - D));
    }
  });
}

// out (a strided [B, Nq, H, Dv] view) = x, a contiguous float32 [B, Nq, H, Dv]; 0
// where x is null.
template <class T>
__global__ void store_kernel(const float* x, T* out, int64_t batch, int64_t nq, int64_t heads, int64_t dv,
                             int64_t sb, int64_t sn, int64_t sh) {
  const int64_t total = batch * nq * heads * dv;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = e % dv, h = (e / dv) % heads, i = (e / (dv * heads)) % nq, b = e / (dv * heads * nq);
    out[b * sb + i * sn + h * sh + d] = from_f<T>(x ? x[e] : 0.f);
  }
}

template <class T>
__global__ void round_kernel(const float* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = from_f<T>(x[i]);
}

// Element offset -> pointer, for operands whose elements are `es` bytes.
inline const void* at(const void* base, int64_t elems, size_t es) {
  return static_cast<const char*>(base) + elems * (int64_t)es;
}
inline void* at(void* base, int64_t elems, size_t es) { return static_cast<char*>(base) + elems * (int64_t)es; }

struct Product {
  const void* a; int64_t lda, sa; bool ta;
  const void* b; int64_t ldb, sb; bool tb;
  void* c; int64_t ldc, sc;
};

// The leading dimension cuBLASLt accepts for an operand stored as rows x cols: a
// single row's stride is arbitrary in a view (0 where it was broadcast), but the
// layout needs at least cols.
inline int64_t ld_for(int64_t ld, int64_t rows, int64_t cols) { return rows <= 1 ? std::max(ld, cols) : ld; }

// C[count] = alpha op(A) op(B) + beta C; C float32 when c32 (A and B in dtype).
void product(GemmContext& ctx, DType dtype, bool c32, int64_t count, int64_t m, int64_t n, int64_t k, float alpha,
             float beta, const Product& p, cudaStream_t s) {
  MatmulArgs x;
  x.a = static_cast<const float*>(p.a);
  x.b = static_cast<const float*>(p.b);
  x.c = static_cast<float*>(p.c);
  x.bias = nullptr;
  x.batch = count;
  x.m = m; x.n = n; x.k = k;
  x.lda = ld_for(p.lda, p.ta ? k : m, p.ta ? m : k);
  x.ldb = ld_for(p.ldb, p.tb ? n : k, p.tb ? k : n);
  x.ldc = ld_for(p.ldc, m, n);
  x.stride_a = count > 1 ? p.sa : 0;
  x.stride_b = count > 1 ? p.sb : 0;
  x.stride_c = count > 1 ? p.sc : 0;
  x.trans_a = p.ta; x.trans_b = p.tb;
  x.alpha = alpha;
  x.beta = beta;
  x.act = Activation::None;
  x.dtype = dtype;
  x.c_float32 = c32 && dtype != DType::Float32;
  matmul(ctx, x, s);
}

// Keys per chunk for `per_key` bytes of scratch per key, within `bytes`.
int64_t chunk_keys(const AttentionArgs& a, size_t bytes, size_t per_key) {
  int64_t n = (int64_t)(bytes / std::max<size_t>(per_key, 1)) / kKeyAlign * kKeyAlign;
  return std::min(a.nk, std::max(n, kKeyAlign));
}

// S = scale Q K_cᵀ for keys [j0, j0 + n) of call c, float32 into s [count, Nq, n].
void logits(GemmContext& ctx, const AttentionArgs& a, const Groups& gr, int64_t c, int64_t j0, int64_t n, float* s,
            cudaStream_t st) {
  const size_t es = dtype_size(a.dtype);
  Product p{at(a.q, gr.base(c, a.q_sb, a.q_sh), es), a.q_sn, gr.stride(a.q_sb, a.q_sh), false,
            at(a.k, gr.base(c, a.k_sb, a.k_sh) + j0 * a.k_sn, es), a.k_sn, gr.stride(a.k_sb, a.k_sh), true,
            s, n, a.nq * n};
  product(ctx, a.dtype, true, gr.count, a.nq, n, a.dqk, a.scale, 0.f, p, st);
}

// Each row's log-sum-exp into lse (every row), through the running max m and sum l
// (rows floats each), with nc keys per chunk of S in s. Needs nk > 0.
void stats_pass(GemmContext& ctx, const AttentionArgs& a, const Groups& gr, int64_t nc, float* s, float* m, float* l,
                float* lse, cudaStream_t st) {
  const int64_t rows = a.batch * a.heads * a.nq;
  PERCEIVER_LAUNCH(grid_for(rows), kThreads, 0, st, init_stats_kernel)(m, l, rows);
  const MaskView mask{a.mask, a.m_sb, a.m_sq, a.m_sk};
  for (int64_t c = 0; c < gr.calls; c++)
    for (int64_t j0 = 0; j0 < a.nk; j0 += nc) {
      const int64_t n = std::min(nc, a.nk - j0);
      // dqk == 0: every logit is 0 (an empty product), as the forward kernels define.
      logits(ctx, a, gr, c, j0, n, s, st);
      PERCEIVER_LAUNCH(rows_grid(gr.count * a.nq), kThreads, 0, st, row_stats_kernel)(
          s, gr.count, a.nq, n, j0, gr.over_b, c, a.heads, mask, m, l);
    }
  PERCEIVER_LAUNCH(grid_for(rows), kThreads, 0, st, finish_lse_kernel)(m, l, lse, rows);
  check_launch("attention (row statistics)", st);
}

DropoutSpec dropout_of(const AttentionArgs& a) {
  return DropoutSpec{a.dropout_seed, a.dropout_keep_below, a.dropout_scale};
}

// A batch of matrices as a product reads them: first element, row stride, matrix stride.
struct Mat {
  const void* p;
  int64_t ld, stride;
};

// Whether cuBLASLt would read an operand of `width` columns with strides (per batch
// row, per row, per head) in 16-byte units; where it could not (the ImageNet
// encoder's 261-wide rows: 522 bytes in bf16), it takes far slower kernels, so the
// operand is copied at `width` rounded up to 16 bytes, zero-filled.
struct Layout {
  bool pad;
  int64_t width;  // the copy's, or the operand's own
};
Layout layout_of(const void* p, int64_t width, int64_t sb, int64_t sn, int64_t sh, size_t es) {
  return vec16_ok(p, sb, sn, sh, 16 / (int)es) ? Layout{false, width} : Layout{true, round_up16(width, es)};
}

// m's rows copied into dst [count, rows, dp], columns past d zero.
Mat pack(const Mat& m, int64_t count, int64_t rows, int64_t d, int64_t dp, size_t es, void* dst, cudaStream_t st) {
  copy_matrices(m.p, m.ld, m.stride, dst, dp, rows * dp, count, rows, d, es, st, dp);
  return Mat{dst, dp, rows * dp};
}

// The max and sum over a row's group of kWarps warps (a whole block when kWarps is
// the block's warps).
template <int kWarps>
__device__ __forceinline__ float group_max(float v, float* scratch) {
  if constexpr (kWarps == 1) return warp_max(v);
  else return block_max(v, scratch);
}
template <int kWarps>
__device__ __forceinline__ float group_sum(float v, float* scratch) {
  if constexpr (kWarps == 1) return warp_sum(v);
  else return block_sum(v, scratch);
}

// One chunk's rows of S [count, Nq, n] (row stride lds), each row owned by kWarps
// warps: the running max M (-inf before the first chunk) takes the chunk's kept keys,
// P = exp(S − M) where kept (else 0), P ∘ F is written as T to op (over s for float32),
// L = L f + sum P, and f = exp(M_old − M) (0 while M_old was -inf) goes to fac for O's
// rows. M, L and fac are the call's rows, (g, i) at g * Nq + i.
template <class T, int kWarps>
__global__ void chunk_probs_kernel(float* s, T* op, int64_t lds, int64_t count, int64_t nq, int64_t n, int64_t j0,
                                   int64_t nk, bool over_b, int64_t c, int64_t heads, MaskView mask,
                                   DropoutSpec drop, float* m, float* l, float* fac) {
  __shared__ float scratch[32];
  each_pair_row<kWarps>(count, nq, over_b, c, [&](int64_t r, int64_t i, Pair ph, int t, int step) {
    const float* sr = s + r * lds;
    T* pr = op + r * lds;
    float mx = -INFINITY;
    for (int64_t j = t; j < n; j += step)
      if (mask.keep(ph.b, i, j0 + j)) mx = fmaxf(mx, sr[j]);
    // Every thread of the group reads M before any writes it: the reductions below
    // synchronise them.
    const float m_old = m[r], m_new = fmaxf(m_old, group_max<kWarps>(mx, scratch));
    const uint64_t w0 = weight_index(ph, heads, nq, i, nk, j0);
    float sum = 0.f;
    for (int64_t j = t; j < n; j += step) {
      // A kept key's logit is at most m_new, which is then finite.
      const float p = mask.keep(ph.b, i, j0 + j) ? expf(sr[j] - m_new) : 0.f;
      sum += p;
      pr[j] = from_f<T>(p == 0.f ? 0.f : p * drop.at(w0 + j));
    }
    sum = group_sum<kWarps>(sum, scratch);
    if (t == 0) {
      const float f = m_old == -INFINITY ? 0.f : expf(m_old - m_new);
      l[r] = l[r] * f + sum;
      m[r] = m_new;
      fac[r] = f;
    }
  });
}

// O's rows [rows, ldo] *= fac, the first dv columns. A warp per row.
__global__ void rescale_rows_kernel(float* o, int64_t ldo, int64_t dv, const float* fac, int64_t rows) {
  each_row(rows, [&](int64_t r, int t, int step) {
    const float f = fac[r];
    for (int64_t d = t; d < dv; d += step) o[r * ldo + d] *= f;
  });
}

// out (the strided [B, Nq, H, Dv] view) = O / L for call c's rows (0 where no key was
// kept), and lse = M + log L (+inf there) when asked for. A warp per row.
template <class T>
__global__ void finish_rows_kernel(const float* o, int64_t ldo, const float* m, const float* l, T* out, float* lse,
                                   int64_t count, int64_t nq, int64_t dv, bool over_b, int64_t c, int64_t heads,
                                   int64_t sb, int64_t sn, int64_t sh) {
  each_pair_row<1>(count, nq, over_b, c, [&](int64_t r, int64_t i, Pair ph, int t, int step) {
    const float sum = l[r], inv = sum == 0.f ? 0.f : 1.f / sum;
    T* orow = out + ph.b * sb + i * sn + ph.h * sh;
    for (int64_t d = t; d < dv; d += step) orow[d] = from_f<T>(o[r * ldo + d] * inv);
    if (lse && t == 0) lse[(ph.b * heads + ph.h) * nq + i] = sum == 0.f ? INFINITY : m[r] + logf(sum);
  });
}

}  // namespace

void attention_row_dots(const AttentionBackwardArgs& g, float* d, cudaStream_t st) {
  const AttentionArgs& a = g.a;
  const int64_t rows = a.batch * a.heads * a.nq;
  if (rows == 0) return;
  DISPATCH_FLOAT("attention_backward", a.dtype, T, {
    PERCEIVER_LAUNCH(grid_for(rows * 32), kThreads, 0, st, row_dot_kernel<T>)(
        static_cast<const T*>((const void*)a.out), static_cast<const T*>((const void*)g.gout), d, a.batch, a.heads,
        a.nq, a.dv, a.o_sb, a.o_sn, a.o_sh);
  });
}

void attention_row_lse(GemmContext& ctx, DeviceAllocator& alloc, const AttentionArgs& a, float* lse, cudaStream_t st,
                       size_t chunk_bytes) {
  const int64_t rows = a.batch * a.heads * a.nq;
  if (rows == 0) return;
  Scratch ml(alloc, (size_t)rows * 8);
  float *m = ml.f(), *l = ml.f() + rows;
  if (a.nk == 0) {  // no key: every row's L is +inf
    PERCEIVER_LAUNCH(grid_for(rows), kThreads, 0, st, init_stats_kernel)(m, l, rows);
    PERCEIVER_LAUNCH(grid_for(rows), kThreads, 0, st, finish_lse_kernel)(m, l, lse, rows);
    check_launch("attention (row statistics)", st);
    return;
  }
  const Groups gr(a);
  const int64_t nc = chunk_keys(a, chunk_bytes, (size_t)(gr.count * a.nq) * 4);
  Scratch s(alloc, (size_t)(gr.count * a.nq * nc) * 4);
  stats_pass(ctx, a, gr, nc, s.f(), m, l, lse, st);
}

void attention_forward_gemm(GemmContext& ctx, DeviceAllocator& alloc, const AttentionArgs& a, cudaStream_t st,
                            size_t chunk_bytes) {
  const DType dt = a.dtype;
  const size_t es = dtype_size(dt);
  const bool low = dt != DType::Float32;
  const int64_t rows = a.batch * a.heads * a.nq;
  if (rows == 0) return;
  if (a.nk == 0 || a.dv == 0) {  // every row is 0 (or empty)
    if (a.dv > 0)
      DISPATCH_FLOAT("attention", dt, T, {
        PERCEIVER_LAUNCH(grid_for(rows * a.dv), kThreads, 0, st, store_kernel<T>)(
            nullptr, static_cast<T*>((void*)a.out), a.batch, a.nq, a.heads, a.dv, a.o_sb, a.o_sn, a.o_sh);
      });
    if (a.lse) attention_row_lse(ctx, alloc, a, a.lse, st, chunk_bytes);
    check_launch("attention", st);
    return;
  }
  const Groups gr(a);
  const int64_t crow = gr.count * a.nq;  // rows of one call
  // Operands whose rows cuBLASLt could not read 16 bytes at a time go through padded
  // copies: Q once per call, K and V per chunk.
  // Q and K share the width the product reduces over, so both are copied or neither.
  const Layout lq = layout_of(a.q, a.dqk, a.q_sb, a.q_sn, a.q_sh, es), lk = layout_of(a.k, a.dqk, a.k_sb, a.k_sn, a.k_sh, es);
  const Layout lv = layout_of(a.v, a.dv, a.v_sb, a.v_sn, a.v_sh, es);
  const bool pad_qk = lq.pad || lk.pad;
  const int64_t dqk = std::max(lq.width, lk.width);
  const int64_t dv = lv.width;  // O's columns (V's padded width where V is copied)
  // K and V one view (the image encoders' cross-attention without projections, k = v
  // = the normalised inputs: models/fast-attention.ts), both copied: one copy.
  const bool same_kv = pad_qk && lv.pad && a.k == a.v && a.k_sb == a.v_sb && a.k_sn == a.v_sn && a.k_sh == a.v_sh &&
                       a.dqk == a.dv;
  const int64_t ldo = round_up(a.dv, 8);
  const size_t per_key = (size_t)crow * (4 + (low ? es : 0)) +
                         (size_t)gr.count * ((pad_qk ? dqk : 0) + (lv.pad && !same_kv ? dv : 0)) * es;
  const int64_t nc = chunk_keys(a, chunk_bytes, per_key);
  const int64_t lds = round_up(nc, 8);  // S's and P's row stride: aligned rows for any chunk
  Scratch s(alloc, (size_t)(crow * lds) * 4), p16(alloc, low ? (size_t)(crow * lds) * es : 0);
  Scratch kc(alloc, pad_qk ? (size_t)(gr.count * nc * dqk) * es : 0), vc(alloc, lv.pad && !same_kv ? (size_t)(gr.count * nc * dv) * es : 0);
  Scratch qc(alloc, pad_qk ? (size_t)(crow * dqk) * es : 0);
  Scratch o(alloc, (size_t)(crow * ldo) * 4), stats(alloc, (size_t)crow * 3 * 4);
  float *m = stats.f(), *l = m + crow, *fac = l + crow;
  const MaskView mask{a.mask, a.m_sb, a.m_sq, a.m_sk};
  const DropoutSpec drop = dropout_of(a);
  const bool wide = nc > 1024;  // a block per row, else a warp
  DISPATCH_FLOAT("attention", dt, T, {
    T* op = low ? static_cast<T*>(p16.p) : reinterpret_cast<T*>(s.f());  // P ∘ F as the product takes it
    for (int64_t c = 0; c < gr.calls; c++) {
      PERCEIVER_LAUNCH(grid_for(crow), kThreads, 0, st, init_stats_kernel)(m, l, crow);
      Mat q{at(a.q, gr.base(c, a.q_sb, a.q_sh), es), a.q_sn, gr.stride(a.q_sb, a.q_sh)};
      if (pad_qk) q = pack(q, gr.count, a.nq, a.dqk, dqk, es, qc.p, st);
      for (int64_t j0 = 0; j0 < a.nk; j0 += nc) {
        const int64_t n = std::min(nc, a.nk - j0);
        Mat k{at(a.k, gr.base(c, a.k_sb, a.k_sh) + j0 * a.k_sn, es), a.k_sn, gr.stride(a.k_sb, a.k_sh)};
        Mat v{at(a.v, gr.base(c, a.v_sb, a.v_sh) + j0 * a.v_sn, es), a.v_sn, gr.stride(a.v_sb, a.v_sh)};
        if (pad_qk) k = pack(k, gr.count, n, a.dqk, dqk, es, kc.p, st);
        if (same_kv) v = k;  // one copy serves both
        else if (lv.pad) v = pack(v, gr.count, n, a.dv, dv, es, vc.p, st);
        // S = scale Q K_cᵀ (padded columns are 0 in both)
        product(ctx, dt, true, gr.count, a.nq, n, dqk, a.scale, 0.f,
                Product{q.p, q.ld, q.stride, false, k.p, k.ld, k.stride, true, s.f(), lds, a.nq * lds}, st);
        // M, L and P against this chunk's running max; O's rows rescaled to it
        if (wide)
          PERCEIVER_LAUNCH(rows_grid(crow), kThreads, 0, st, (chunk_probs_kernel<T, kThreads / 32>))(
              s.f(), op, lds, gr.count, a.nq, n, j0, a.nk, gr.over_b, c, a.heads, mask, drop, m, l, fac);
        else
          PERCEIVER_LAUNCH(warp_rows_grid(crow, kThreads / 32), kThreads, 0, st, (chunk_probs_kernel<T, 1>))(
              s.f(), op, lds, gr.count, a.nq, n, j0, a.nk, gr.over_b, c, a.heads, mask, drop, m, l, fac);
        if (j0 > 0)
          PERCEIVER_LAUNCH(warp_rows_grid(crow, kThreads / 32), kThreads, 0, st, rescale_rows_kernel)(
              o.f(), ldo, a.dv, fac, crow);
        check_launch("attention", st);
        // O (+)= (P ∘ F)_c V_c, in float32
        product(ctx, dt, low, gr.count, a.nq, dv, n, 1.f, j0 == 0 ? 0.f : 1.f,
                Product{op, lds, a.nq * lds, false, v.p, v.ld, v.stride, false, o.f(), ldo, a.nq * ldo}, st);
      }
      PERCEIVER_LAUNCH(warp_rows_grid(crow, kThreads / 32), kThreads, 0, st, finish_rows_kernel<T>)(
          o.f(), ldo, m, l, static_cast<T*>((void*)a.out), a.lse, gr.count, a.nq, a.dv, gr.over_b, c, a.heads,
          a.o_sb, a.o_sn, a.o_sh);
    }
  });
  check_launch("attention", st);
}

void attention_backward(GemmContext& ctx, DeviceAllocator& alloc, const AttentionBackwardArgs& g, cudaStream_t st,
                        size_t chunk_bytes) {
  const AttentionArgs& a = g.a;
  const DType dt = a.dtype;
  const size_t es = dtype_size(dt);
  const bool low = dt != DType::Float32;
  const bool dropped = a.dropout_scale != 0.f;
  const int64_t rows = a.batch * a.heads * a.nq;
  const int64_t nq_all = a.batch * a.nq * a.heads, nk_all = a.batch * a.nk * a.heads;
  if (a.batch * a.heads == 0) return;
  if (a.nq == 0 || a.nk == 0 || a.dv == 0) {
    // No query rows: nothing reaches the keys. No keys or no values: every output
    // row is a constant 0 (or empty), so no input moves it.
    CUDA_CHECK("attention_backward", cudaMemsetAsync(g.gq, 0, (size_t)(nq_all * a.dqk) * es, st));
    CUDA_CHECK("attention_backward", cudaMemsetAsync(g.gk, 0, (size_t)(nk_all * a.dqk) * es, st));
    CUDA_CHECK("attention_backward", cudaMemsetAsync(g.gv, 0, (size_t)(nk_all * a.dv) * es, st));
    return;
  }
  const Groups gr(a);
  const int64_t crow = gr.count * a.nq;  // rows of one call
  // Per key of a chunk: S and dP in float32, and P ∘ F and dS as operands (16-bit),
  // or P ∘ F apart from P (float32 with dropout).
  const size_t per_key = (size_t)(gr.count * a.nq) * (low ? 8 + 2 * es : dropped ? 12 : 8);
  const int64_t nc = chunk_keys(a, chunk_bytes, per_key);
  const bool wide = nc > 1024;  // a block per row, else a warp
  const int64_t block = gr.count * a.nq * nc;
  Scratch s(alloc, (size_t)block * 4), dp(alloc, (size_t)block * 4);
  Scratch pf(alloc, low || dropped ? (size_t)block * (low ? es : 4) : 0), ds16(alloc, low ? (size_t)block * es : 0);
  Scratch stats(alloc, (size_t)rows * 4 * (a.lse ? 1 : 4));
  Scratch dq32(alloc, low && a.dqk > 0 ? (size_t)(nq_all * a.dqk) * 4 : 0);
  float* d = stats.f();
  float* lse = a.lse;
  if (!lse) {
    lse = stats.f() + rows;
    stats_pass(ctx, a, gr, nc, s.f(), lse + rows, lse + 2 * rows, lse, st);
  }
  const MaskView mask{a.mask, a.m_sb, a.m_sq, a.m_sk};
  const DropoutSpec drop = dropout_of(a);
  const int64_t ldq = a.heads * a.dqk, ldv = a.heads * a.dv;  // row strides of the gradients
  // Batch strides of the gradients (contiguous [B, N, H, D]).
  const int64_t gq_s = gr.over_b ? a.nq * ldq : a.dqk, gk_s = gr.over_b ? a.nk * ldq : a.dqk;
  const int64_t gv_s = gr.over_b ? a.nk * ldv : a.dv;
  attention_row_dots(g, d, st);
  DISPATCH_FLOAT("attention_backward", dt, T, {
    T* op = low || dropped ? static_cast<T*>(pf.p) : nullptr;  // P ∘ F where it is not s
    for (int64_t c = 0; c < gr.calls; c++) {
      const void* qb = at(a.q, gr.base(c, a.q_sb, a.q_sh), es);
      const void* gob = at(g.gout, gr.base(c, a.o_sb, a.o_sh), es);
      // Call c's first matrix in the contiguous [B, N, H, D] gradients.
      const int64_t gq0 = gr.base(c, a.nq * ldq, a.dqk), gk0 = gr.base(c, a.nk * ldq, a.dqk);
      const int64_t gv0 = gr.base(c, a.nk * ldv, a.dv);
      const int64_t qs = gr.stride(a.q_sb, a.q_sh), os = gr.stride(a.o_sb, a.o_sh);
      for (int64_t j0 = 0; j0 < a.nk; j0 += nc) {
        const int64_t n = std::min(nc, a.nk - j0);
        logits(ctx, a, gr, c, j0, n, s.f(), st);
        if (wide)
          PERCEIVER_LAUNCH(rows_grid(crow), kThreads, 0, st, (probs_kernel<T, kThreads / 32>))(
              s.f(), op, true, gr.count, a.nq, n, j0, a.nk, gr.over_b, c, a.heads, mask, lse, drop);
        else
          PERCEIVER_LAUNCH(warp_rows_grid(crow, kThreads / 32), kThreads, 0, st, (probs_kernel<T, 1>))(
              s.f(), op, true, gr.count, a.nq, n, j0, a.nk, gr.over_b, c, a.heads, mask, lse, drop);
        const void* pm = op ? static_cast<const void*>(op) : s.p;  // P ∘ F as the products take it
        // dV_c = (P ∘ F)ᵀ dO
        product(ctx, dt, false, gr.count, n, a.dv, a.nq, 1.f, 0.f,
                Product{pm, n, a.nq * n, true, gob, a.o_sn, os, false,
                        at(g.gv, gv0 + j0 * ldv, es), ldv, gv_s},
                st);
        // dP = dO V_cᵀ (F applied by dscores_kernel)
        product(ctx, dt, true, gr.count, a.nq, n, a.dv, 1.f, 0.f,
                Product{gob, a.o_sn, os, false, at(a.v, gr.base(c, a.v_sb, a.v_sh) + j0 * a.v_sn, es), a.v_sn,
                        gr.stride(a.v_sb, a.v_sh), true, dp.p, n, a.nq * n},
                st);
        T* dst = low ? static_cast<T*>(ds16.p) : reinterpret_cast<T*>(dp.f());
        if (wide)
          PERCEIVER_LAUNCH(rows_grid(crow), kThreads, 0, st, (dscores_kernel<T, kThreads / 32>))(
              s.f(), dp.f(), dst, gr.count, a.nq, n, j0, a.nk, gr.over_b, c, a.heads, d, drop);
        else
          PERCEIVER_LAUNCH(warp_rows_grid(crow, kThreads / 32), kThreads, 0, st, (dscores_kernel<T, 1>))(
              s.f(), dp.f(), dst, gr.count, a.nq, n, j0, a.nk, gr.over_b, c, a.heads, d, drop);
        check_launch("attention_backward", st);
        if (a.dqk == 0) continue;
        const void* dsm = low ? ds16.p : dp.p;
        // dK_c = scale dSᵀ Q
        product(ctx, dt, false, gr.count, n, a.dqk, a.nq, a.scale, 0.f,
                Product{dsm, n, a.nq * n, true, qb, a.q_sn, qs, false, at(g.gk, gk0 + j0 * ldq, es), ldq, gk_s},
                st);
        // dQ += scale dS K_c, accumulated in float32 across chunks
        void* dq = low ? static_cast<void*>(dq32.f() + gq0) : at(g.gq, gq0, es);
        product(ctx, dt, true, gr.count, a.nq, a.dqk, n, a.scale, j0 == 0 ? 0.f : 1.f,
                Product{dsm, n, a.nq * n, false, at(a.k, gr.base(c, a.k_sb, a.k_sh) + j0 * a.k_sn, es), a.k_sn,
                        gr.stride(a.k_sb, a.k_sh), false, dq, ldq, gq_s},
                st);
      }
    }
    if (low && a.dqk > 0)
      PERCEIVER_LAUNCH(grid_for(nq_all * a.dqk), kThreads, 0, st, round_kernel<T>)(
          dq32.f(), static_cast<T*>((void*)g.gq), nq_all * a.dqk);
  });
  check_launch("attention_backward", st);
}

}  // namespace perceiver::cuda
