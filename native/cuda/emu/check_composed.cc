// attention_gemm.cu's composed forward, row log-sum-exp and gradient on the emulation
// (its products through host.cc's loop in place of cuBLASLt), against double-precision
// references.
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention_gemm.h"
#include "../random.cuh"
#include "check.h"

namespace perceiver::emu::check {

using perceiver::AttentionArgs;

namespace {

struct ComposedCase {
  const char* name;
  int64_t B, H, nq, nk, dqk, dv;
  bool mask;     // about a quarter of the keys masked, and batch row 0's query 3 wholly
  bool dropout;  // keep 80%, scale 1.25
  bool odd_stride;
};

void check_case(const ComposedCase& c, DType dt, bool chunked) {
  namespace pc = perceiver::cuda;
  const int64_t sq = c.H * c.dqk + (c.odd_stride ? 3 : 0), sv = c.H * c.dv + (c.odd_stride ? 3 : 0);
  const int64_t so = c.H * c.dv;
  std::mt19937 rng(4321);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  // 4 bytes per element whatever the dtype (16-bit arrays use the first half); one
  // element more than needed, so that an empty array still has an address.
  std::vector<float> q(c.B * c.nq * sq + 1), k(c.B * c.nk * sq + 1), v(c.B * c.nk * sv + 1), out(c.B * c.nq * so + 1),
      gout(c.B * c.nq * so + 1), gq(c.B * c.nq * c.H * c.dqk + 1), gk(c.B * c.nk * c.H * c.dqk + 1),
      gv(c.B * c.nk * c.H * c.dv + 1), lse(c.B * c.H * c.nq + 1);
  for (auto* t : {&q, &k, &v, &gout})
    for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, u(rng));
  std::vector<uint8_t> mask;
  if (c.mask) {
    mask.resize(c.B * c.nq * c.nk + 1);
    for (auto& m : mask) m = rng() % 4 != 0;
    for (int64_t j = 0; j < c.nk; j++) mask[3 * c.nk + j] = 0;
  }
  AttentionArgs a{};
  a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = out.data();
  a.mask = c.mask ? mask.data() : nullptr;
  a.batch = c.B; a.heads = c.H; a.nq = c.nq; a.nk = c.nk; a.dqk = c.dqk; a.dv = c.dv;
  a.q_sb = c.nq * sq; a.q_sn = sq; a.q_sh = c.dqk;
  a.k_sb = c.nk * sq; a.k_sn = sq; a.k_sh = c.dqk;
  a.v_sb = c.nk * sv; a.v_sn = sv; a.v_sh = c.dv;
  a.o_sb = c.nq * so; a.o_sn = so; a.o_sh = c.dv;
  a.m_sb = c.nq * c.nk; a.m_sq = c.nk; a.m_sk = 1;
  a.scale = 1.f / std::sqrt((float)std::max<int64_t>(c.dqk, 1));
  a.dtype = dt;
  a.lse = lse.data();
  if (c.dropout) a.dropout_seed = 99, a.dropout_keep_below = 0.8f, a.dropout_scale = 1.25f;
  const pc::DropoutSpec drop{a.dropout_seed, a.dropout_keep_below, a.dropout_scale};

  // The reference, in double: P, F and O from the inputs as stored.
  auto at = [&](const std::vector<float>& t, int64_t i) { return (double)load(t.data(), dt, i); };
  const int64_t rows = c.B * c.H * c.nq;
  std::vector<double> P(rows * c.nk, 0.0), F(rows * c.nk, 1.0), want_lse(rows), want_o(c.B * c.nq * so);
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.H; h++)
      for (int64_t i = 0; i < c.nq; i++) {
        const int64_t r = (b * c.H + h) * c.nq + i;
        std::vector<double> s(c.nk);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.nk; j++) {
          double dot = 0;
          for (int64_t d = 0; d < c.dqk; d++)
            dot += at(q, b * a.q_sb + i * sq + h * c.dqk + d) * at(k, b * a.k_sb + j * sq + h * c.dqk + d);
          const bool keep = !c.mask || mask[(b * c.nq + i) * c.nk + j];
          s[j] = keep ? dot * a.scale : -INFINITY;
          mx = std::max(mx, s[j]);
        }
        double l = 0;
        for (double x : s) l += mx == -INFINITY ? 0 : std::exp(x - mx);
        want_lse[r] = l > 0 ? mx + std::log(l) : INFINITY;
        for (int64_t j = 0; j < c.nk; j++) {
          P[r * c.nk + j] = l > 0 ? std::exp(s[j] - want_lse[r]) : 0;
          if (c.dropout) F[r * c.nk + j] = drop.at((uint64_t)(r * c.nk + j));
        }
        for (int64_t d = 0; d < c.dv; d++) {
          double o = 0;
          for (int64_t j = 0; j < c.nk; j++) o += P[r * c.nk + j] * F[r * c.nk + j] * at(v, b * a.v_sb + j * sv + h * c.dv + d);
          want_o[b * a.o_sb + i * so + h * c.dv + d] = o;
        }
      }

  perceiver::cuda::GemmContext ctx{};
  pc::DeviceAllocator alloc(0);
  const size_t chunk_bytes = chunked ? 1 : pc::kAttentionChunkBytes;  // 1: chunks of 64 keys
  char label[200];
  std::snprintf(label, sizeof label, "%-13s %-8s %s [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld%s%s%s]", c.name,
                dtype_label(dt), chunked ? "64-key chunks" : "one chunk    ", (long long)c.B, (long long)c.H,
                (long long)c.nq, (long long)c.nk, (long long)c.dqk, (long long)c.dv, c.mask ? " mask" : "",
                c.dropout ? " dropout" : "", c.odd_stride ? " odd" : "");
  const double tol = dt == DType::Float32 ? 1e-5 : dt == DType::BFloat16 ? 2e-2 : 4e-3;
  // One line per pass: the worst of each array it wrote.
  auto report = [&](const char* what, std::initializer_list<std::pair<const char*, double>> worst) {
    g_checks++;
    bool ok = true;
    std::string figures;
    for (const auto& [name, w] : worst) {
      ok = ok && w <= tol;
      char f[40];
      std::snprintf(f, sizeof f, " %s %.1e", name, w);
      figures += f;
    }
    if (!ok) g_failures++;
    std::printf("%s composed %-18s %s worst:%s (tol %.0e)\n", ok ? "PASS" : "FAIL", what, label, figures.c_str(), tol);
  };

  pc::attention_forward_gemm(ctx, alloc, a, nullptr, chunk_bytes);
  std::vector<double> got_o(want_o.size()), got_lse(rows);
  for (size_t i = 0; i < got_o.size(); i++) got_o[i] = at(out, (int64_t)i);
  // +inf (no key kept) compares as equal to +inf, and as 0 apart from it.
  std::vector<double> wl(rows), gl(rows);
  for (int64_t r = 0; r < rows; r++) {
    wl[r] = std::isinf(want_lse[r]) ? 0 : want_lse[r];
    gl[r] = std::isinf(lse[r]) != std::isinf(want_lse[r]) ? NAN : std::isinf(lse[r]) ? 0 : lse[r];
  }
  report("forward", {{"out", worst_of(want_o, got_o)}, {"lse", worst_of(wl, gl)}});

  // The gradient from the forward's out as stored (D = rowsum(dO ∘ O) reads it), with
  // the forward's row statistics and with them recomputed.
  std::vector<double> wq(gq.size() - 1, 0.0), wk(gk.size() - 1, 0.0), wv(gv.size() - 1, 0.0);
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.H; h++)
      for (int64_t i = 0; i < c.nq; i++) {
        const int64_t r = (b * c.H + h) * c.nq + i, oi = b * a.o_sb + i * so + h * c.dv;
        double D = 0;
        for (int64_t d = 0; d < c.dv; d++) D += at(gout, oi + d) * at(out, oi + d);
        for (int64_t j = 0; j < c.nk; j++) {
          const double p = P[r * c.nk + j], f = F[r * c.nk + j];
          double dp = 0;
          for (int64_t d = 0; d < c.dv; d++) {
            dp += at(gout, oi + d) * at(v, b * a.v_sb + j * sv + h * c.dv + d);
            wv[((b * c.nk + j) * c.H + h) * c.dv + d] += p * f * at(gout, oi + d);
          }
          const double ds = p * (dp * f - D);
          for (int64_t d = 0; d < c.dqk; d++) {
            wq[((b * c.nq + i) * c.H + h) * c.dqk + d] += a.scale * ds * at(k, b * a.k_sb + j * sq + h * c.dqk + d);
            wk[((b * c.nk + j) * c.H + h) * c.dqk + d] += a.scale * ds * at(q, b * a.q_sb + i * sq + h * c.dqk + d);
          }
        }
      }
  for (bool reuse_lse : {true, false}) {
    perceiver::AttentionBackwardArgs g{a, gout.data(), gq.data(), gk.data(), gv.data()};
    if (!reuse_lse) g.a.lse = nullptr;
    for (auto* t : {&gq, &gk, &gv})
      for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, NAN);
    pc::attention_backward(ctx, alloc, g, nullptr, chunk_bytes);
    auto got = [&](const std::vector<float>& t, size_t n) {
      std::vector<double> r(n);
      for (size_t i = 0; i < n; i++) r[i] = at(t, (int64_t)i);
      return r;
    };
    report(reuse_lse ? "gradient" : "gradient, own lse",
           {{"dq", worst_of(wq, got(gq, wq.size()))}, {"dk", worst_of(wk, got(gk, wk.size()))},
            {"dv", worst_of(wv, got(gv, wv.size()))}});
  }
}

}  // namespace

void check_composed(const std::string& filter) {
  // Several heads (one product per batch row), one head (one product over the batch),
  // masks with a wholly masked row, dropout, unaligned rows, and no keys at all.
  const ComposedCase cases[] = {
      {"heads-mask", 2, 3, 20, 150, 16, 24, true, false, false},
      {"one-head", 3, 1, 17, 130, 20, 12, true, true, false},
      {"heads-dropout", 1, 2, 9, 70, 8, 8, false, true, true},
      {"no-keys", 2, 2, 5, 0, 8, 8, false, false, false},
  };
  for (const ComposedCase& c : cases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16})
      for (bool chunked : {false, true}) check_case(c, dt, chunked);
  }
}

}  // namespace perceiver::emu::check
