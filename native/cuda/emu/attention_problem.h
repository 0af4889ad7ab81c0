// An attention problem on the emulated device and its double-precision reference,
// shared by check_attention.cc (attention.cu's fused kernels), check_composed.cc
// (attention_gemm.cu) and check_flash.cc (attention_backward.cu): inputs drawn in the
// dtype, AttentionArgs over them, and the forward and gradient computed from the
// inputs as stored.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../backend.h"
#include "../random.cuh"
#include "check.h"

namespace perceiver::emu::check {

struct AttentionShape {
  int64_t B, H, nq, nk, dqk, dv;
  bool odd_stride;  // rows at a stride of H * D + 3 (no 16-byte loads: the padded copies)
  bool mask;        // a [B, Nq, Nk] mask with about a quarter of the keys masked

  // "[B1 H2 Nq70 Nk160 Dqk128 Dv128 mask]"
  std::string label() const {
    char s[120];
    std::snprintf(s, sizeof s, "[B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld%s%s]", (long long)B, (long long)H,
                  (long long)nq, (long long)nk, (long long)dqk, (long long)dv, odd_stride ? " odd" : "",
                  mask ? " mask" : "");
    return s;
  }
};

// q, k, v (and dO, with_gout) uniform in [-1.5, 1.5) as [B, N, H, D] rows, out NaN until
// written. Arrays hold 4 bytes per element whatever the dtype (16-bit ones use the
// first half) and one spare, so that an empty one still has an address; out also
// kGuardRows rows past its last (out_rows() elements before them), which a kernel that
// writes past its query count would fill (a 128-row block over the last few rows), and
// so which stay NaN. Not copyable: `a` points into it.
struct AttentionProblem {
  static constexpr int64_t kGuardRows = 128;
  AttentionShape s;
  DType dt;
  int64_t sq, sv, so;  // row strides of q and k, v, out
  std::vector<float> q, k, v, out, gout;
  std::vector<uint8_t> mask;
  AttentionArgs a{};

  AttentionProblem(const AttentionShape& shape, DType dtype, unsigned seed, bool with_gout)
      : s(shape),
        dt(dtype),
        sq(s.H * s.dqk + (s.odd_stride ? 3 : 0)),
        sv(s.H * s.dv + (s.odd_stride ? 3 : 0)),
        so(s.H * s.dv),
        q(s.B * s.nq * sq + 1),
        k(s.B * s.nk * sq + 1),
        v(s.B * s.nk * sv + 1),
        out((s.B * s.nq + kGuardRows) * so + 1),
        gout(with_gout ? out.size() : 0) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.5f, 1.5f);
    for (auto* t : {&q, &k, &v, &gout})
      for (size_t i = 0; i + 1 < t->size(); i++) store(t->data(), dt, (int64_t)i, u(rng));
    for (size_t i = 0; i < out.size(); i++) store(out.data(), dt, (int64_t)i, NAN);
    if (s.mask) {
      mask.resize(s.B * s.nq * s.nk + 1);
      for (size_t i = 0; i + 1 < mask.size(); i++) mask[i] = rng() % 4 != 0;
    }
    a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = out.data();
    a.mask = s.mask ? mask.data() : nullptr;
    a.batch = s.B; a.heads = s.H; a.nq = s.nq; a.nk = s.nk; a.dqk = s.dqk; a.dv = s.dv;
    a.q_sb = s.nq * sq; a.q_sn = sq; a.q_sh = s.dqk;
    a.k_sb = s.nk * sq; a.k_sn = sq; a.k_sh = s.dqk;
    a.v_sb = s.nk * sv; a.v_sn = sv; a.v_sh = s.dv;
    a.o_sb = s.nq * so; a.o_sn = so; a.o_sh = s.dv;
    a.m_sb = s.nq * s.nk; a.m_sq = s.nk; a.m_sk = 1;
    a.scale = 1.f / std::sqrt((float)std::max<int64_t>(s.dqk, 1));
    a.dtype = dt;
  }
  AttentionProblem(const AttentionProblem&) = delete;
  AttentionProblem& operator=(const AttentionProblem&) = delete;

  // Every key of query i of batch row b masked (a row whose output is 0).
  // Masks keys [j0, j1) of query i in batch row b (every key by default).
  void mask_row(int64_t b, int64_t i, int64_t j0 = 0, int64_t j1 = -1) {
    for (int64_t j = j0; j < (j1 < 0 ? s.nk : std::min(j1, s.nk)); j++) mask[(b * s.nq + i) * s.nk + j] = 0;
  }

  // The mask as a view broadcast over the queries (stride 0), as the op layer passes a
  // padding mask [B, 1, Nk]. broadcast_mask copies each batch row's first query row
  // into the others, for the reference; once that is computed, spoil_unread_mask_rows
  // inverts those copies and sets the stride to 0: a kernel that reads them goes wrong.
  void broadcast_mask() {
    for (int64_t b = 0; b < s.B; b++)
      for (int64_t i = 1; i < s.nq; i++)
        std::copy_n(mask.begin() + b * s.nq * s.nk, s.nk, mask.begin() + (b * s.nq + i) * s.nk);
  }
  void spoil_unread_mask_rows() {
    for (int64_t b = 0; b < s.B; b++)
      for (int64_t i = 1; i < s.nq; i++)
        for (int64_t j = 0; j < s.nk; j++) mask[(b * s.nq + i) * s.nk + j] ^= 1;
    a.m_sq = 0;
  }

  // K and V one array (k = v = X, as the single-head encoders attend to their input):
  // v takes k's values, for the reference, and the call reads k for both.
  void share_kv() {
    if (s.dqk != s.dv) throw std::logic_error("share_kv: dqk != dv");
    v = k;
    a.v = a.k;
    a.v_sb = a.k_sb; a.v_sn = a.k_sn; a.v_sh = a.k_sh;
  }

  // The output's elements before the guard rows.
  int64_t out_rows() const { return s.B * s.nq * so; }
  // Element i of an array as stored.
  double at(const std::vector<float>& t, int64_t i) const { return load(t.data(), dt, i); }
  // Element i of the dense [B, N, H, D] arrays' offsets: row n of (b, h).
  int64_t q_at(int64_t b, int64_t n, int64_t h) const { return b * a.q_sb + n * sq + h * s.dqk; }
  int64_t k_at(int64_t b, int64_t n, int64_t h) const { return b * a.k_sb + n * sq + h * s.dqk; }
  int64_t v_at(int64_t b, int64_t n, int64_t h) const { return b * a.v_sb + n * sv + h * s.dv; }
  int64_t o_at(int64_t b, int64_t n, int64_t h) const { return b * a.o_sb + n * so + h * s.dv; }

  // The forward in double: P = softmax of the scaled, masked logits [B, H, Nq, Nk] (0 in
  // a row with no key kept), F dropout's factors (1 without), each row's log-sum-exp
  // (+inf with no key kept), and O = (P ∘ F) V laid out as out.
  struct Reference {
    std::vector<double> P, F, lse, o;
  };
  Reference reference() const {
    const int64_t rows = s.B * s.H * s.nq;
    const cuda::DropoutSpec drop{a.dropout_seed, a.dropout_keep_below, a.dropout_scale};
    Reference r{std::vector<double>(rows * s.nk, 0.0), std::vector<double>(rows * s.nk, 1.0),
                std::vector<double>(rows), std::vector<double>(out_rows())};
    for (int64_t b = 0; b < s.B; b++)
      for (int64_t h = 0; h < s.H; h++)
        for (int64_t i = 0; i < s.nq; i++) {
          const int64_t row = (b * s.H + h) * s.nq + i;
          std::vector<double> logit(s.nk);
          double mx = -INFINITY;
          for (int64_t j = 0; j < s.nk; j++) {
            double dot = 0;
            for (int64_t d = 0; d < s.dqk; d++) dot += at(q, q_at(b, i, h) + d) * at(k, k_at(b, j, h) + d);
            const bool keep = !s.mask || mask[(b * s.nq + i) * s.nk + j];
            logit[j] = keep ? dot * a.scale : -INFINITY;
            mx = std::max(mx, logit[j]);
          }
          double l = 0;
          for (double x : logit) l += mx == -INFINITY ? 0 : std::exp(x - mx);
          r.lse[row] = l > 0 ? mx + std::log(l) : INFINITY;
          for (int64_t j = 0; j < s.nk; j++) {
            r.P[row * s.nk + j] = l > 0 ? std::exp(logit[j] - r.lse[row]) : 0;
            r.F[row * s.nk + j] = drop.at((uint64_t)(row * s.nk + j));
          }
          for (int64_t d = 0; d < s.dv; d++) {
            double o = 0;
            for (int64_t j = 0; j < s.nk; j++) o += r.P[row * s.nk + j] * r.F[row * s.nk + j] * at(v, v_at(b, j, h) + d);
            r.o[o_at(b, i, h) + d] = o;
          }
        }
    return r;
  }

  // The gradient in double with dO = gout, from P and F of `ref` and the forward's out
  // as stored (D = rowsum(dO ∘ O) reads it, as the kernels do): dq, dk, dv contiguous
  // [B, N, H, D].
  struct Gradient {
    std::vector<double> q, k, v;
  };
  Gradient gradient(const Reference& ref) const {
    Gradient w{std::vector<double>(s.B * s.nq * s.H * s.dqk, 0.0), std::vector<double>(s.B * s.nk * s.H * s.dqk, 0.0),
               std::vector<double>(s.B * s.nk * s.H * s.dv, 0.0)};
    for (int64_t b = 0; b < s.B; b++)
      for (int64_t h = 0; h < s.H; h++)
        for (int64_t i = 0; i < s.nq; i++) {
          const int64_t r = (b * s.H + h) * s.nq + i, oi = o_at(b, i, h);
          double D = 0;
          for (int64_t d = 0; d < s.dv; d++) D += at(gout, oi + d) * at(out, oi + d);
          for (int64_t j = 0; j < s.nk; j++) {
            const double p = ref.P[r * s.nk + j], f = ref.F[r * s.nk + j];
            double dp = 0;
            for (int64_t d = 0; d < s.dv; d++) {
              dp += at(gout, oi + d) * at(v, v_at(b, j, h) + d);
              w.v[((b * s.nk + j) * s.H + h) * s.dv + d] += p * f * at(gout, oi + d);
            }
            const double ds = p * (dp * f - D);
            for (int64_t d = 0; d < s.dqk; d++) {
              w.q[((b * s.nq + i) * s.H + h) * s.dqk + d] += a.scale * ds * at(k, k_at(b, j, h) + d);
              w.k[((b * s.nk + j) * s.H + h) * s.dqk + d] += a.scale * ds * at(q, q_at(b, i, h) + d);
            }
          }
        }
    return w;
  }
};

}  // namespace perceiver::emu::check
