// The fused attention's gradient, FlashAttention-2's backward on the CPU. With
// P = softmax(scale Q Kᵀ, masked), O = P V and the incoming dO:
//   dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ∘ (dP − D) with D = rowsum(dO ∘ O),
//   dQ = scale dS K,   dK = scale dSᵀ Q,
// block by block, so that no [Nq, Nk] matrix exists: the gradient composed from
// products holds four (logits, P, dP, dS), 100 MB each for one image's encoder
// cross-attention (512 latents x 50,176 pixels), and streams each through memory.
//
// Phase 1, one unit per (batch, head, query block): D, and each row's log-sum-exp L
//   of its logits, so that P = exp(S − L) needs no running max. The forward kernel
//   writes L as it finishes each row; when the forward did not (it ran composed),
//   phase 1 recomputes it as the forward does, streaming over keys without the
//   product with V.
// Phase 2, one unit per (batch, head, key range): for each key block of the range
//   and each query block, S = scale Q Kᵀ (masked to −inf), P = exp(S − L) in place,
//   then dV += Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − D) in place, dK += scale dSᵀ Q and
//   dQ += scale dS K. A unit owns its keys' rows of dK and dV. dQ is a sum over all
//   keys: a (batch, head) with one key range writes it directly, several ranges
//   each write a partial that phase 3 adds up in range order.
//
// With dropout (factors F regenerated from the forward's seed, Z = P ∘ F the weights
// that multiplied V): dV = Zᵀ dO and dP = (dO Vᵀ) ∘ F; D stays rowsum(dO ∘ O).
//
// The plan (block sizes, key ranges) depends on the shape only, never on the thread
// count, and every sum runs in a fixed order, so the gradient is bit-identical
// whatever PERCEIVER_NUM_THREADS is. Blocks of 256 query rows by 256 keys, as the
// forward's: S/P and dP (2 x 256 KiB) stay in cache between the products that reuse
// them, and each product is large enough for the GEMM to run at the forward's rate.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "../threadpool.h"
#include "allocator.h"
#include "attention.h"
#include "attention_rows.h"
#include "gemm.h"

namespace perceiver {
namespace cpu {
namespace {

constexpr int64_t kBlockQ = 256;
constexpr int64_t kBlockK = 256;
// Phase 2 aims for this many units so that machines with many cores have work for
// each; a fixed number, not the thread count, keeps the result independent of it.
constexpr int64_t kTargetUnits = 64;
// A key range shorter than this is not worth its dQ partial.
constexpr int64_t kMinKeysPerRange = 256;
constexpr int64_t kMaxPartialBytes = 16 << 20;

// Scratch from the host allocator: its cache keeps the (up to 16 MiB of) dQ partials
// mapped between calls instead of faulting fresh pages in each time, and memory()
// counts them.
class Scratch {
 public:
  explicit Scratch(int64_t floats)
      : bytes_((size_t)std::max<int64_t>(floats, 0) * sizeof(float)),
        p_(bytes_ ? static_cast<float*>(host_alloc(bytes_)) : nullptr) {}
  ~Scratch() {
    if (p_) host_free(p_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* get() const { return p_; }

 private:
  size_t bytes_;
  float* p_;
};

struct Plan {
  int64_t bq = 0, bk = 0, ld_s = 0;
  int64_t ranges = 1;  // key ranges per (batch, head)
  int threads = 1;
};

Plan make_plan(const AttentionArgs& a) {
  Plan p;
  p.bq = std::min(kBlockQ, a.nq);
  p.bk = std::min(kBlockK, a.nk);
  p.ld_s = round_up(p.bk, 16);
  const int64_t heads = a.batch * a.heads;
  int64_t r = ceil_div(kTargetUnits, heads);
  r = std::min(r, std::max<int64_t>(1, a.nk / kMinKeysPerRange));
  const int64_t partial_bytes = heads * a.nq * a.dqk * (int64_t)sizeof(float);
  if (partial_bytes > 0) r = std::min(r, std::max<int64_t>(1, kMaxPartialBytes / partial_bytes));
  p.ranges = std::max<int64_t>(1, r);
  const double work = (double)heads * (double)a.nq * (double)a.nk * (double)(2 * a.dqk + 2 * a.dv);
  p.threads = work < kAttentionMinParallelWork ? 1 : num_threads();
  return p;
}

// Runs fn(unit, s) for units [0, units) on the pool, each thread with its own
// `blocks` blocks of bq x ld_s floats at s (S/P, dP, and with dropout its factors).
template <typename Fn>
void for_units(const Plan& p, int64_t units, int blocks, Fn&& fn) {
  const int chunks = (int)std::max<int64_t>(1, std::min<int64_t>(p.threads, units));
  const int64_t per = blocks * p.bq * p.ld_s;
  Scratch scratch(per * chunks);
  std::atomic<int64_t> next{0};
  parallel_for(chunks, 1, [&](int64_t, int64_t, int chunk) {
    float* s = scratch.get() + per * chunk;
    for (int64_t u; (u = next.fetch_add(1, std::memory_order_relaxed)) < units;) fn(u, s);
  });
}

// S = scale Q Kᵀ for query rows [i0, i0 + mq) and keys [j0, j0 + nb) of (b, h), with
// masked entries -inf.
void logits_block(const AttentionArgs& a, const Plan& p, int64_t b, int64_t h, int64_t i0, int64_t mq,
                  int64_t j0, int64_t nb, float* s) {
  if (a.dqk > 0) {
    sgemm(false, true, mq, nb, a.dqk, a.scale, a.q + b * a.q_sb + h * a.q_sh + i0 * a.q_sn, a.q_sn,
          a.k + b * a.k_sb + h * a.k_sh + j0 * a.k_sn, a.k_sn, 0.f, s, p.ld_s, nullptr, Activation::None, false);
  } else {
    for (int64_t r = 0; r < mq; r++) std::fill(s + r * p.ld_s, s + r * p.ld_s + nb, 0.f);
  }
  if (!a.mask) return;
  for (int64_t r = 0; r < mq; r++) {
    float* sr = s + r * p.ld_s;
    const uint8_t* mr = a.mask + b * a.m_sb + (i0 + r) * a.m_sq + j0 * a.m_sk;
    if (a.m_sk == 1) {
      attention_rows().masked_max(sr, mr, nb);
    } else {
      for (int64_t j = 0; j < nb; j++) sr[j] = mr[j * a.m_sk] ? sr[j] : kNegInf;
    }
  }
}

// Phase 1 for query rows [i0, i0 + mq) of (b, h): D, and L (+inf for a row whose
// keys are all masked, so that its P is 0) unless the forward gave it.
void row_stats(const AttentionBackwardArgs& g, const Plan& p, int64_t b, int64_t h, int64_t i0, int64_t mq,
               float* s, float* lse, float* dd) {
  const AttentionArgs& a = g.a;
  for (int64_t r = 0; r < mq; r++) {
    const float* o = a.out + b * a.o_sb + h * a.o_sh + (i0 + r) * a.o_sn;
    const float* go = g.gout + b * a.o_sb + h * a.o_sh + (i0 + r) * a.o_sn;
    float d = 0.f;
    for (int64_t c = 0; c < a.dv; c++) d += o[c] * go[c];
    dd[r] = d;
  }
  if (a.lse) return;
  const RowKernels& rk = attention_rows();
  float m[kBlockQ], l[kBlockQ];
  std::fill(m, m + mq, kNegInf);
  std::fill(l, l + mq, 0.f);
  for (int64_t j0 = 0; j0 < a.nk; j0 += p.bk) {
    const int64_t nb = std::min(p.bk, a.nk - j0);
    logits_block(a, p, b, h, i0, mq, j0, nb, s);
    for (int64_t r = 0; r < mq; r++) {
      float* sr = s + r * p.ld_s;
      const float m_new = std::max(m[r], rk.max(sr, nb));
      if (m_new == kNegInf) {  // masked so far; or NaN scores, which the maximum skips
        for (int64_t j = 0; j < nb; j++)
          if (sr[j] != sr[j]) l[r] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
      l[r] = l[r] * exp_scalar(m[r] - m_new) + rk.exp_sum(sr, nb, m_new);
      m[r] = m_new;
    }
  }
  // +inf where every key was masked (P = 0); NaN where a score was, as the forward's.
  for (int64_t r = 0; r < mq; r++)
    lse[r] = l[r] == 0.f ? std::numeric_limits<float>::infinity() : m[r] + std::log(l[r]);
}

// Phase 2 for keys [j0, j1) of (b, h); dq (row stride ld_dq) receives this range's
// share of dQ for all query rows.
// With dropout (factors F, Z = P ∘ F the weights the forward used): dV = Zᵀ dO and
// dP = (dO Vᵀ) ∘ F; D = rowsum(dO ∘ O) is still rowsum(P ∘ dP).
void key_range(const AttentionBackwardArgs& g, const Plan& p, int64_t b, int64_t h, int64_t j0, int64_t j1,
               const float* lse, const float* dd, float* dq, int64_t ld_dq, float* s, float* dp, float* f) {
  const AttentionArgs& a = g.a;
  const RowKernels& rk = attention_rows();
  const int64_t H = a.heads;
  const float* qb = a.q + b * a.q_sb + h * a.q_sh;
  const float* kb = a.k + b * a.k_sb + h * a.k_sh;
  const float* vb = a.v + b * a.v_sb + h * a.v_sh;
  const float* gob = g.gout + b * a.o_sb + h * a.o_sh;
  float* gkb = g.gk + (b * a.nk * H + h) * a.dqk;
  float* gvb = g.gv + (b * a.nk * H + h) * a.dv;
  const int64_t gk_sn = H * a.dqk, gv_sn = H * a.dv;
  for (int64_t jb = j0; jb < j1; jb += p.bk) {
    const int64_t nb = std::min(p.bk, j1 - jb);
    for (int64_t i0 = 0; i0 < a.nq; i0 += p.bq) {
      const int64_t mq = std::min(p.bq, a.nq - i0);
      const float first_q = i0 == 0 ? 0.f : 1.f;  // the key block's dK, dV: assign, then add
      logits_block(a, p, b, h, i0, mq, jb, nb, s);
      for (int64_t r = 0; r < mq; r++) rk.exp_sum(s + r * p.ld_s, nb, lse[i0 + r]);
      const float* z = s;  // the weights the forward multiplied V by
      if (f) {
        for (int64_t r = 0; r < mq; r++) {
          float *fr = f + r * p.ld_s, *zr = dp + r * p.ld_s;
          const float* pr = s + r * p.ld_s;
          attention_dropout_factors(a, b, h, i0 + r, jb, nb, fr);
          for (int64_t j = 0; j < nb; j++) zr[j] = pr[j] * fr[j];
        }
        z = dp;
      }
      sgemm(true, false, nb, a.dv, mq, 1.f, z, p.ld_s, gob + i0 * a.o_sn, a.o_sn, first_q, gvb + jb * gv_sn, gv_sn,
            nullptr, Activation::None, false);
      sgemm(false, true, mq, nb, a.dv, 1.f, gob + i0 * a.o_sn, a.o_sn, vb + jb * a.v_sn, a.v_sn, 0.f, dp, p.ld_s,
            nullptr, Activation::None, false);
      if (f)
        for (int64_t r = 0; r < mq; r++) {
          float* dr = dp + r * p.ld_s;
          const float* fr = f + r * p.ld_s;
          for (int64_t j = 0; j < nb; j++) dr[j] *= fr[j];
        }
      for (int64_t r = 0; r < mq; r++) rk.softmax_grad(dp + r * p.ld_s, s + r * p.ld_s, nb, dd[i0 + r]);
      if (a.dqk == 0) continue;
      sgemm(true, false, nb, a.dqk, mq, a.scale, dp, p.ld_s, qb + i0 * a.q_sn, a.q_sn, first_q, gkb + jb * gk_sn,
            gk_sn, nullptr, Activation::None, false);
      sgemm(false, false, mq, a.dqk, nb, a.scale, dp, p.ld_s, kb + jb * a.k_sn, a.k_sn, jb == j0 ? 0.f : 1.f,
            dq + i0 * ld_dq, ld_dq, nullptr, Activation::None, false);
    }
  }
}

void zero(float* p, int64_t n) { std::fill(p, p + n, 0.f); }

}  // namespace

void attention_backward(const AttentionBackwardArgs& g) {
  const AttentionArgs& a = g.a;
  const int64_t heads = a.batch * a.heads;
  const int64_t nq_all = a.batch * a.nq * a.heads, nk_all = a.batch * a.nk * a.heads;
  if (heads == 0) return;
  if (a.nq == 0 || a.nk == 0 || a.dv == 0) {
    // No query rows: nothing reaches the keys. No keys or no values: every output
    // row is a constant 0 (or empty), so no input moves it.
    zero(g.gq, nq_all * a.dqk);
    zero(g.gk, nk_all * a.dqk);
    zero(g.gv, nk_all * a.dv);
    return;
  }
  const Plan p = make_plan(a);

  Scratch stats((a.lse ? 1 : 2) * heads * a.nq);
  float* dd = stats.get();
  float* lse = a.lse ? a.lse : dd + heads * a.nq;
  const int64_t nqb = ceil_div(a.nq, p.bq);
  for_units(p, heads * nqb, 1, [&](int64_t u, float* s) {
    const int64_t bh = u / nqb, i0 = (u % nqb) * p.bq;
    const int64_t off = bh * a.nq + i0;
    row_stats(g, p, bh / a.heads, bh % a.heads, i0, std::min(p.bq, a.nq - i0), s, lse + off, dd + off);
  });

  Scratch partials(p.ranges > 1 ? p.ranges * heads * a.nq * a.dqk : 0);
  const bool dropout = a.dropout_scale != 0.f;
  const int64_t block = p.bq * p.ld_s;
  for_units(p, heads * p.ranges, dropout ? 3 : 2, [&](int64_t u, float* s) {
    // Unit order (batch, head, key range): neighbours share Q and dO in cache.
    const int64_t bh = u / p.ranges, kr = u % p.ranges;
    const int64_t b = bh / a.heads, h = bh % a.heads;
    const int64_t j0 = a.nk * kr / p.ranges, j1 = a.nk * (kr + 1) / p.ranges;
    float* dq = p.ranges > 1 ? partials.get() + u * a.nq * a.dqk : g.gq + (b * a.nq * a.heads + h) * a.dqk;
    const int64_t ld_dq = p.ranges > 1 ? a.dqk : a.heads * a.dqk;
    key_range(g, p, b, h, j0, j1, lse + bh * a.nq, dd + bh * a.nq, dq, ld_dq, s, s + block,
              dropout ? s + 2 * block : nullptr);
  });
  if (p.ranges == 1 || a.dqk == 0) return;

  // Phase 3: dQ = the ranges' partials summed in range order.
  const int64_t rows_per = 64, row_blocks = ceil_div(a.nq, rows_per);
  for_units(p, heads * row_blocks, 0, [&](int64_t u, float*) {
    const int64_t bh = u / row_blocks, r0 = (u % row_blocks) * rows_per, r1 = std::min(a.nq, r0 + rows_per);
    const int64_t b = bh / a.heads, h = bh % a.heads;
    const float* first = partials.get() + bh * p.ranges * a.nq * a.dqk;
    for (int64_t r = r0; r < r1; r++) {
      float* out = g.gq + ((b * a.nq + r) * a.heads + h) * a.dqk;
      std::copy(first + r * a.dqk, first + (r + 1) * a.dqk, out);
      for (int64_t kr = 1; kr < p.ranges; kr++) {
        const float* part = first + (kr * a.nq + r) * a.dqk;
        for (int64_t c = 0; c < a.dqk; c++) out[c] += part[c];
      }
    }
  });
}

}  // namespace cpu
}  // namespace perceiver
