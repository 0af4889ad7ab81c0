// The fused attention's gradient on CUDA. With P = softmax(scale Q Kᵀ, masked),
// O = P V and the incoming dO (as on the CPU, attention_backward.cc):
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ∘ (dP − D) with D = rowsum(dO ∘ O),
//   dQ = scale dS K,  dK = scale dSᵀ Q.
// The products run on cuBLASLt (tensor cores for 16-bit operands, float32
// accumulation), one chunk of keys at a time: S, P, dP and dS exist only for the
// chunk (at most kChunkBytes for all four together), where the gradient composed
// in lib/autograd holds [B, H, Nq, Nk] matrices of each (3.3 GB at the ImageNet
// encoder's cross-attention for a batch of 8). Per chunk of keys [j0, j0 + n):
//   S = scale Q K_cᵀ (float32)            P = exp(S − L) masked to 0, with L the
//   dV_c = Pᵀ dO     (complete: a chunk   row's log-sum-exp (the forward's, or
//                     owns its keys)      computed first by the same chunked pass)
//   dP = dO V_cᵀ (float32)                dS = P ∘ (dP − D)
//   dK_c = scale dSᵀ Q                    dQ += scale dS K_c (float32 accumulator)
// 16-bit operands: P and dS are rounded to the operands' dtype for the products
// that take them, as the composed gradient does; S, P and dP stay float32.
//
// Batching: a product batches over heads (one call per batch row) or, with one
// head, over the batch: q, k, v are [B, N, H, D] views, which one batch stride
// cannot walk in both.
#include <cmath>

#include "attention_backward.h"
#include "common.cuh"

namespace perceiver::cuda {
namespace {

constexpr size_t kChunkBytes = size_t(128) << 20;
constexpr int64_t kKeyAlign = 64;

// How the (batch, head) pairs map onto batched products: `count` matrices per call,
// `calls` calls; a pair's row statistics live at (b * H + h) * Nq.
struct Groups {
  bool over_b;  // one head: one call over the batch
  int64_t count, calls;
  explicit Groups(const AttentionArgs& a)
      : over_b(a.heads == 1), count(a.heads == 1 ? a.batch : a.heads), calls(a.heads == 1 ? 1 : a.batch) {}
  // Batch stride of an operand with strides (per batch row, per head).
  int64_t stride(int64_t sb, int64_t sh) const { return over_b ? sb : sh; }
};

// The pair (b, h) of matrix g in call b0.
struct Pair {
  int64_t b, h;
};
__device__ __forceinline__ Pair pair_of(int64_t g, bool over_b, int64_t b0) {
  return over_b ? Pair{g, 0} : Pair{b0, g};
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
                                 int64_t b0, int64_t heads, MaskView mask, float* m, float* l) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < count * nq; r += gridDim.x) {
    const int64_t g = r / nq, i = r % nq;
    const Pair ph = pair_of(g, over_b, b0);
    const float* sr = s + r * n;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (mask.keep(ph.b, i, j0 + j)) mx = fmaxf(mx, sr[j]);
    mx = block_max(mx, scratch);
    const int64_t row = (ph.b * heads + ph.h) * nq + i;
    const float m_old = m[row], m_new = fmaxf(m_old, mx);
    if (m_new == -INFINITY) continue;  // the block agrees: mx came from block_max
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (mask.keep(ph.b, i, j0 + j)) sum += expf(sr[j] - m_new);
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) {
      l[row] = l[row] * expf(m_old - m_new) + sum;
      m[row] = m_new;
    }
  }
}

__global__ void finish_lse_kernel(const float* m, const float* l, float* lse, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    lse[i] = l[i] > 0.f ? m[i] + logf(l[i]) : INFINITY;
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

// P = exp(S - L) where kept, else 0: in place in float32, and rounded to T into p16
// (null for float32 operands).
template <class T>
__global__ void probs_kernel(float* s, T* p16, int64_t count, int64_t nq, int64_t n, int64_t j0, bool over_b,
                             int64_t b0, int64_t heads, MaskView mask, const float* lse) {
  const int64_t total = count * nq * n;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = e % n, r = e / n, i = r % nq;
    const Pair ph = pair_of(r / nq, over_b, b0);
    // L is +inf for a row with every key masked: exp(-inf) = 0.
    const float p = mask.keep(ph.b, i, j0 + j) ? expf(s[e] - lse[(ph.b * heads + ph.h) * nq + i]) : 0.f;
    s[e] = p;
    if (p16) p16[e] = from_f<T>(p);
  }
}

// dS = P (dP - D), written as T (in place over dP for float32).
template <class T>
__global__ void dscores_kernel(const float* p, const float* dp, T* ds, int64_t count, int64_t nq, int64_t n,
                               bool over_b, int64_t b0, int64_t heads, const float* d) {
  const int64_t total = count * nq * n;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = e / n, i = r % nq;
    const Pair ph = pair_of(r / nq, over_b, b0);
    ds[e] = from_f<T>(p[e] * (dp[e] - d[(ph.b * heads + ph.h) * nq + i]));
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
  x.lda = p.lda; x.ldb = p.ldb; x.ldc = p.ldc;
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

// Keys per chunk for `per_key` bytes of scratch per key.
int64_t chunk_keys(const AttentionArgs& a, size_t per_key) {
  int64_t n = (int64_t)(kChunkBytes / std::max<size_t>(per_key, 1)) / kKeyAlign * kKeyAlign;
  return std::min(a.nk, std::max(n, kKeyAlign));
}

// S = scale Q K_cᵀ for keys [j0, j0 + n) of call b0, float32 into s [count, Nq, n].
void logits(GemmContext& ctx, const AttentionArgs& a, const Groups& gr, int64_t b0, int64_t j0, int64_t n, float* s,
            cudaStream_t st) {
  const size_t es = dtype_size(a.dtype);
  Product p{at(a.q, b0 * a.q_sb, es), a.q_sn, gr.stride(a.q_sb, a.q_sh), false,
            at(a.k, b0 * a.k_sb + j0 * a.k_sn, es), a.k_sn, gr.stride(a.k_sb, a.k_sh), true,
            s, n, a.nq * n};
  product(ctx, a.dtype, true, gr.count, a.nq, n, a.dqk, a.scale, 0.f, p, st);
}

void row_lse(GemmContext& ctx, DeviceAllocator& alloc, const AttentionArgs& a, float* lse, cudaStream_t st) {
  const Groups gr(a);
  const int64_t rows = a.batch * a.heads * a.nq;
  const int64_t nc = chunk_keys(a, (size_t)(gr.count * a.nq) * 4);
  Scratch s(alloc, (size_t)(gr.count * a.nq * nc) * 4), ml(alloc, (size_t)rows * 8);
  float *m = ml.f(), *l = ml.f() + rows;
  init_stats_kernel<<<grid_for(rows), kThreads, 0, st>>>(m, l, rows);
  const MaskView mask{a.mask, a.m_sb, a.m_sq, a.m_sk};
  for (int64_t c = 0; c < gr.calls; c++)
    for (int64_t j0 = 0; j0 < a.nk; j0 += nc) {
      const int64_t n = std::min(nc, a.nk - j0);
      // dqk == 0: every logit is 0 (an empty product), as the forward kernels define.
      logits(ctx, a, gr, c, j0, n, s.f(), st);
      row_stats_kernel<<<rows_grid(gr.count * a.nq), kThreads, 0, st>>>(s.f(), gr.count, a.nq, n, j0, gr.over_b, c,
                                                                         a.heads, mask, m, l);
    }
  finish_lse_kernel<<<grid_for(rows), kThreads, 0, st>>>(m, l, lse, rows);
  check_launch("attention (row statistics)", st);
}

}  // namespace

void attention_row_lse(GemmContext& ctx, DeviceAllocator& alloc, const AttentionArgs& a, float* lse, cudaStream_t st) {
  const int64_t rows = a.batch * a.heads * a.nq;
  if (rows == 0) return;
  if (a.nk == 0) {  // no key: every row's L is +inf
    Scratch ml(alloc, (size_t)rows * 8);
    init_stats_kernel<<<grid_for(rows), kThreads, 0, st>>>(ml.f(), ml.f() + rows, rows);
    finish_lse_kernel<<<grid_for(rows), kThreads, 0, st>>>(ml.f(), ml.f() + rows, lse, rows);
    check_launch("attention (row statistics)", st);
    return;
  }
  row_lse(ctx, alloc, a, lse, st);
}

void attention_backward(GemmContext& ctx, DeviceAllocator& alloc, const AttentionBackwardArgs& g, cudaStream_t st) {
  const AttentionArgs& a = g.a;
  // The op layer asks for dropout only where has_attention_dropout() (not here).
  if (a.dropout_scale != 0.f) throw Error(ErrorKind::Value, "attention_backward: no dropout inside the CUDA kernels");
  const DType dt = a.dtype;
  const size_t es = dtype_size(dt);
  const bool low = dt != DType::Float32;
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
  const int64_t nc = chunk_keys(a, (size_t)(gr.count * a.nq) * (low ? 8 + 2 * es : 8));
  const int64_t block = gr.count * a.nq * nc;
  Scratch s(alloc, (size_t)block * 4), dp(alloc, (size_t)block * 4);
  Scratch p16(alloc, low ? (size_t)block * es : 0), ds16(alloc, low ? (size_t)block * es : 0);
  Scratch stats(alloc, (size_t)rows * 4 * (a.lse ? 1 : 2));
  Scratch dq32(alloc, low && a.dqk > 0 ? (size_t)(nq_all * a.dqk) * 4 : 0);
  float* d = stats.f();
  float* lse = a.lse;
  if (!lse) {
    lse = stats.f() + rows;
    row_lse(ctx, alloc, a, lse, st);
  }
  const MaskView mask{a.mask, a.m_sb, a.m_sq, a.m_sk};
  const int64_t ldq = a.heads * a.dqk, ldv = a.heads * a.dv;  // row strides of the gradients
  // Batch strides of the gradients (contiguous [B, N, H, D]).
  const int64_t gq_s = gr.over_b ? a.nq * ldq : a.dqk, gk_s = gr.over_b ? a.nk * ldq : a.dqk;
  const int64_t gv_s = gr.over_b ? a.nk * ldv : a.dv;
  DISPATCH_FLOAT("attention_backward", dt, T, {
    row_dot_kernel<T><<<grid_for(rows * 32), kThreads, 0, st>>>(static_cast<const T*>((const void*)a.out),
                                                                 static_cast<const T*>((const void*)g.gout), d, a.batch,
                                                                 a.heads, a.nq, a.dv, a.o_sb, a.o_sn, a.o_sh);
    for (int64_t c = 0; c < gr.calls; c++) {
      const void* qb = at(a.q, c * a.q_sb, es);
      const void* gob = at(g.gout, c * a.o_sb, es);
      const int64_t qs = gr.stride(a.q_sb, a.q_sh), os = gr.stride(a.o_sb, a.o_sh);
      for (int64_t j0 = 0; j0 < a.nk; j0 += nc) {
        const int64_t n = std::min(nc, a.nk - j0);
        const int64_t elems = gr.count * a.nq * n;
        logits(ctx, a, gr, c, j0, n, s.f(), st);
        T* pt = low ? static_cast<T*>(p16.p) : nullptr;
        probs_kernel<T><<<grid_for(elems), kThreads, 0, st>>>(s.f(), pt, gr.count, a.nq, n, j0, gr.over_b, c, a.heads,
                                                              mask, lse);
        const void* pm = low ? p16.p : s.p;  // P as the products take it
        // dV_c = Pᵀ dO
        product(ctx, dt, false, gr.count, n, a.dv, a.nq, 1.f, 0.f,
                Product{pm, n, a.nq * n, true, gob, a.o_sn, os, false,
                        at(g.gv, (c * a.nk + j0) * ldv, es), ldv, gv_s},
                st);
        // dP = dO V_cᵀ
        product(ctx, dt, true, gr.count, a.nq, n, a.dv, 1.f, 0.f,
                Product{gob, a.o_sn, os, false, at(a.v, c * a.v_sb + j0 * a.v_sn, es), a.v_sn,
                        gr.stride(a.v_sb, a.v_sh), true, dp.p, n, a.nq * n},
                st);
        T* dst = low ? static_cast<T*>(ds16.p) : reinterpret_cast<T*>(dp.f());
        dscores_kernel<T><<<grid_for(elems), kThreads, 0, st>>>(s.f(), dp.f(), dst, gr.count, a.nq, n, gr.over_b, c,
                                                                a.heads, d);
        check_launch("attention_backward", st);
        if (a.dqk == 0) continue;
        const void* dsm = low ? ds16.p : dp.p;
        // dK_c = scale dSᵀ Q
        product(ctx, dt, false, gr.count, n, a.dqk, a.nq, a.scale, 0.f,
                Product{dsm, n, a.nq * n, true, qb, a.q_sn, qs, false, at(g.gk, (c * a.nk + j0) * ldq, es), ldq, gk_s},
                st);
        // dQ += scale dS K_c, accumulated in float32 across chunks
        void* dq = low ? static_cast<void*>(dq32.f() + c * a.nq * ldq) : at(g.gq, c * a.nq * ldq, es);
        product(ctx, dt, true, gr.count, a.nq, a.dqk, n, a.scale, j0 == 0 ? 0.f : 1.f,
                Product{dsm, n, a.nq * n, false, at(a.k, c * a.k_sb + j0 * a.k_sn, es), a.k_sn,
                        gr.stride(a.k_sb, a.k_sh), false, dq, ldq, gq_s},
                st);
      }
    }
    if (low && a.dqk > 0)
      round_kernel<T><<<grid_for(nq_all * a.dqk), kThreads, 0, st>>>(dq32.f(), static_cast<T*>((void*)g.gq),
                                                                     nq_all * a.dqk);
  });
  check_launch("attention_backward", st);
}

}  // namespace perceiver::cuda
