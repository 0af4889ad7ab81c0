// attention_backward.cu's flash gradient on the emulation, against the double-precision
// gradient of attention_problem.h: every tier, ragged key and query tiles, padded
// widths, masks with a wholly masked row, dQ's slots in one launch and in one launch
// per (batch, head) pair, blocks of 4 and of 8 warps, dQ by atomics (the harness's
// timing variant), and the row statistics both from the reference and from
// attention_gemm.cu's pass; then which calls flash_backward_serves turns away. A
// shared-memory race fails a check whatever the numbers.
#include <random>
#include <string>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention_backward.h"
#include "../attention_gemm.h"
#include "attention_problem.h"
#include "check.h"

namespace perceiver::emu::check {

namespace {

constexpr int kCc = 90, kSmemOptin = 227 * 1024;  // host.cc's H100

struct FlashCase {
  const char* name;
  AttentionShape s;  // with a mask, batch row 0's query 3 has every key masked too
  bool broadcast_mask = false;  // instead, the mask a view broadcast over the queries
};

void check_case(const FlashCase& c, DType dt) {
  namespace pc = perceiver::cuda;
  const AttentionShape& s = c.s;
  AttentionProblem pr(s, dt, 1234, true);
  if (s.mask && c.broadcast_mask) pr.broadcast_mask();
  else if (s.mask) pr.mask_row(0, 3);
  AttentionArgs& a = pr.a;
  const AttentionProblem::Reference ref = pr.reference();
  if (c.broadcast_mask) pr.spoil_unread_mask_rows();
  // The forward's out as stored in the dtype, as the gradient reads it.
  for (size_t i = 0; i < ref.o.size(); i++) store(pr.out.data(), dt, (int64_t)i, (float)ref.o[i]);
  const AttentionProblem::Gradient w = pr.gradient(ref);
  const int64_t rows = s.B * s.H * s.nq;
  std::vector<float> lse_ref(rows + 1), lse_pass(rows + 1);
  for (int64_t r = 0; r < rows; r++) lse_ref[r] = (float)ref.lse[r];
  perceiver::cuda::GemmContext ctx{};
  pc::DeviceAllocator alloc(0);
  pc::attention_row_lse(ctx, alloc, a, lse_pass.data(), nullptr);

  const bool serves = pc::flash_backward_serves({a, pr.gout.data()}, kCc, kSmemOptin) &&
                      pc::flash_backward_serves({a, pr.gout.data()}, kCc, kSmemOptin, 8) &&
                      pc::flash_row_lse_serves(a, kCc);
  g_checks++;
  if (!serves) g_failures++;
  std::printf("%s flash %-10s %-8s %s taken\n", serves ? "PASS" : "FAIL", c.name, dtype_name(dt), s.label().c_str());
  if (!serves) return;

  // The row statistics' own kernel against the reference: float32 logits of 16-bit
  // operands either way; +inf (no key kept) must match exactly.
  {
    std::vector<float> lse_k(rows + 1, NAN);
    const long races_before = perceiver::emu::g_races;
    const cudaError_t e = pc::flash_row_lse(a, lse_k.data(), nullptr);
    const long races = perceiver::emu::g_races - races_before;
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
      const double x = ref.lse[r], y = lse_k[r];
      worst = std::max(worst, std::isinf(x) || std::isinf(y) ? (x == y ? 0.0 : INFINITY)
                                                               : std::isnan(y) ? INFINITY : std::fabs(x - y) / (1e-5 + 1e-5 * std::fabs(x)));
    }
    const bool ok = e == cudaSuccess && races == 0 && worst <= 1.0;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s flash %-10s %-8s %s row lse worst %.2f of tol (1e-5)%s\n", ok ? "PASS" : "FAIL", c.name,
                dtype_name(dt), s.label().c_str(), worst, races ? " races" : "");
    if (races > 0) {
      std::printf("  %ld shared-memory race(s); the first: %s\n", races, perceiver::emu::g_first_race.c_str());
      perceiver::emu::g_races = 0;
    }
  }

  const double tol = dt == DType::BFloat16 ? 2e-2 : 4e-3;
  std::vector<float> gq(w.q.size() + 1), gk(w.k.size() + 1), gv(w.v.size() + 1);
  auto got = [&](const std::vector<float>& t, size_t n) {
    std::vector<double> r(n);
    for (size_t i = 0; i < n; i++) r[i] = pr.at(t, (int64_t)i);
    return r;
  };
  struct Pass {
    const char* what;
    const float* lse;
    int warps;
    size_t slot_bytes;
    bool atomic_dq;
  };
  for (const Pass& ps : {Pass{"reference lse", lse_ref.data(), 4, pc::kFlashSlotBytes, false},
                         Pass{"pass's lse   ", lse_pass.data(), 4, pc::kFlashSlotBytes, false},
                         Pass{"pair by pair ", lse_ref.data(), 4, 1, false},
                         Pass{"8 warps      ", lse_ref.data(), 8, pc::kFlashSlotBytes, false},
                         Pass{"atomic dQ    ", lse_ref.data(), 4, 1, true}}) {
    for (auto* t : {&gq, &gk, &gv})
      for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, NAN);
    std::vector<float> ws(pc::flash_backward_workspace_bytes(a, ps.warps, ps.slot_bytes) / 4 + 1, NAN);
    perceiver::AttentionBackwardArgs g{a, pr.gout.data(), gq.data(), gk.data(), gv.data()};
    const long races_before = perceiver::emu::g_races;
    const cudaError_t e = pc::flash_attention_backward(g, ps.lse, ws.data(), nullptr, ps.warps, ps.slot_bytes, ps.atomic_dq);
    const long races = perceiver::emu::g_races - races_before;
    const double wq = worst_of(w.q, got(gq, w.q.size())), wk = worst_of(w.k, got(gk, w.k.size())),
                 wv = worst_of(w.v, got(gv, w.v.size()));
    const bool ok = e == cudaSuccess && races == 0 && wq <= tol && wk <= tol && wv <= tol;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s flash %-10s %-8s %s %s worst: dq %.1e dk %.1e dv %.1e (tol %.0e)%s\n", ok ? "PASS" : "FAIL", c.name,
                dtype_name(dt), s.label().c_str(), ps.what, wq, wk, wv, tol, e == cudaSuccess ? "" : " launch failed");
    if (races > 0) {
      std::printf("  %ld shared-memory race(s); the first: %s\n", races, perceiver::emu::g_first_race.c_str());
      perceiver::emu::g_races = 0;
    }
  }
}

// Calls the flash gradient must leave to the products.
void check_refusals() {
  namespace pc = perceiver::cuda;
  struct Refusal {
    const char* why;
    AttentionShape s;
    DType dt;
    int cc;
    bool dropout;
  };
  const Refusal cases[] = {
      {"float32", {1, 2, 16, 16, 32, 32, false, false}, DType::Float32, kCc, false},
      {"sm_75", {1, 2, 16, 16, 32, 32, false, false}, DType::Float16, 75, false},
      {"dropout", {1, 2, 16, 16, 32, 32, false, false}, DType::BFloat16, kCc, true},
      {"unaligned rows", {1, 2, 16, 16, 32, 32, true, false}, DType::BFloat16, kCc, false},
      {"width 36", {1, 2, 16, 16, 36, 36, false, false}, DType::BFloat16, kCc, false},
      {"dv past 160", {1, 2, 16, 16, 32, 168, false, false}, DType::BFloat16, kCc, false},
      {"dqk 40, dv 160", {1, 2, 16, 16, 40, 160, false, false}, DType::BFloat16, kCc, false},
      {"no keys", {1, 2, 16, 0, 32, 32, false, false}, DType::BFloat16, kCc, false},
  };
  // One (batch, head) pair whose dQ slots alone pass kFlashSlotBytes: 2^20 queries over
  // 2^12 keys at width 32 (64 key tiles x 128 MiB). Only the arguments are read.
  {
    alignas(16) static uint16_t dummy[8];
    AttentionArgs big{};
    big.q = big.k = big.v = reinterpret_cast<const float*>(dummy);
    big.out = reinterpret_cast<float*>(dummy);
    big.batch = 1, big.heads = 1, big.nq = 1 << 20, big.nk = 1 << 12, big.dqk = 32, big.dv = 32;
    big.q_sb = big.nq * 32, big.q_sn = 32, big.q_sh = 32;
    big.k_sb = big.v_sb = big.nk * 32, big.k_sn = big.v_sn = 32, big.k_sh = big.v_sh = 32;
    big.o_sb = big.q_sb, big.o_sn = 32, big.o_sh = 32;
    big.scale = 1.f, big.dtype = DType::BFloat16;
    const bool serves = pc::flash_backward_serves({big, big.out}, kCc, kSmemOptin);
    g_checks++;
    if (serves) g_failures++;
    std::printf("%s flash refuses dQ slots past %zu MiB for one pair [Nq%lld Nk%lld Dqk32]\n", serves ? "FAIL" : "PASS",
                pc::kFlashSlotBytes >> 20, (long long)big.nq, (long long)big.nk);
  }
  // 8 warps at 128 x 128 need 123 KB of shared memory: not on an sm_86 (99 KB).
  {
    AttentionProblem pr({1, 2, 16, 16, 128, 128, false, false}, DType::BFloat16, 7, true);
    const bool four = pc::flash_backward_serves({pr.a, pr.gout.data()}, 86, 99 * 1024, 4);
    const bool eight = pc::flash_backward_serves({pr.a, pr.gout.data()}, 86, 99 * 1024, 8);
    g_checks++;
    if (!four || eight) g_failures++;
    std::printf("%s flash refuses 8 warps at 128 x 128 on 99 KB of shared memory (4 warps: %s)\n",
                four && !eight ? "PASS" : "FAIL", four ? "taken" : "refused");
  }
  for (const Refusal& r : cases) {
    AttentionProblem pr(r.s, r.dt, 7, true);
    if (r.dropout) pr.a.dropout_seed = 1, pr.a.dropout_keep_below = 0.9f, pr.a.dropout_scale = 1.f / 0.9f;
    const bool serves = pc::flash_backward_serves({pr.a, pr.gout.data()}, r.cc, kSmemOptin);
    g_checks++;
    if (serves) g_failures++;
    std::printf("%s flash refuses %-16s %s\n", serves ? "FAIL" : "PASS", r.why, r.s.label().c_str());
  }
}

// Rows whose logits are all far below 0 (L about -18 in float16, -200 in bfloat16)
// over a ragged last key tile, unmasked: the tile's keys past Nk had P = exp(0 - L),
// which overflowed float16 and made every dQ element of the row NaN (0 x inf) while
// dK and dV stayed right. In 64-key tiles (4 warps) and 128-key tiles (8 warps; Nk 64
// is then ragged too).
// finite_only: logits so far out (bfloat16 overflows only past L = -88) that dQ, a small
// difference of terms near 2^8 times larger, keeps no digits in 8-bit dS either way:
// only that no element is NaN or infinite.
void check_far_logits(DType dt, int64_t nk, float q, float k, bool finite_only = false) {
  namespace pc = perceiver::cuda;
  AttentionProblem pr({1, 1, 16, nk, 32, 32, false, false}, dt, 99, true);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  for (size_t i = 0; i + 1 < pr.q.size(); i++) store(pr.q.data(), dt, (int64_t)i, q + u(rng));
  for (size_t i = 0; i + 1 < pr.k.size(); i++) store(pr.k.data(), dt, (int64_t)i, k + u(rng));
  const AttentionProblem::Reference ref = pr.reference();
  for (size_t i = 0; i < ref.o.size(); i++) store(pr.out.data(), dt, (int64_t)i, (float)ref.o[i]);
  const AttentionProblem::Gradient w = pr.gradient(ref);
  std::vector<float> lse(ref.lse.size() + 1);
  for (size_t r = 0; r < ref.lse.size(); r++) lse[r] = (float)ref.lse[r];
  auto as_doubles = [&](const std::vector<float>& t, size_t n) {
    std::vector<double> r(n);
    for (size_t i = 0; i < n; i++) r[i] = pr.at(t, (int64_t)i);
    return r;
  };
  // Against the products' gradient on the same inputs, which rounds P and dS to the
  // dtype where the flash kernel does: dQ here is a small difference of large terms
  // (the keys nearly equal), which 16-bit dS cannot give to the double reference's
  // tolerance either way.
  std::vector<float> pq(w.q.size() + 1, NAN), pk(w.k.size() + 1, NAN), pv(w.v.size() + 1, NAN);
  {
    perceiver::cuda::GemmContext ctx{};
    pc::DeviceAllocator alloc(0);
    AttentionArgs a = pr.a;
    a.lse = lse.data();
    pc::attention_backward(ctx, alloc, {a, pr.gout.data(), pq.data(), pk.data(), pv.data()}, nullptr);
  }
  const std::vector<double> want_q = as_doubles(pq, w.q.size()), want_k = as_doubles(pk, w.k.size()),
                            want_v = as_doubles(pv, w.v.size());
  const double tol = dt == DType::BFloat16 ? 2e-2 : 4e-3;
  for (int warps : {4, 8}) {
    std::vector<float> gq(w.q.size() + 1, NAN), gk(w.k.size() + 1, NAN), gv(w.v.size() + 1, NAN);
    std::vector<float> ws(pc::flash_backward_workspace_bytes(pr.a, warps) / 4 + 1, NAN);
    perceiver::AttentionBackwardArgs g{pr.a, pr.gout.data(), gq.data(), gk.data(), gv.data()};
    const cudaError_t e = pc::flash_attention_backward(g, lse.data(), ws.data(), nullptr, warps);
    const double wq = worst_of(want_q, as_doubles(gq, w.q.size())), wk = worst_of(want_k, as_doubles(gk, w.k.size())),
                 wv = worst_of(want_v, as_doubles(gv, w.v.size()));
    const double rq = worst_of(w.q, as_doubles(gq, w.q.size()));
    const bool finite = std::isfinite(wq) && std::isfinite(wk) && std::isfinite(wv);
    const bool ok = e == cudaSuccess && finite && (finite_only || (wq <= tol && wk <= tol && wv <= tol));
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s flash far logits %-8s [Nk%lld q %+.0f k %+.0f, L %.0f] %d warps against the products: dq %.1e dk %.1e dv %.1e (%s; dq against doubles %.1e)\n",
                ok ? "PASS" : "FAIL", dtype_name(dt), (long long)nk, q, k, ref.lse[0], warps, wq, wk, wv,
                finite_only ? "finite" : dt == DType::BFloat16 ? "tol 2e-02" : "tol 4e-03", rq);
  }
}

// The products' row statistics (attention_gemm.cu's pass, which float32 and the widths
// the flash kernel lacks train with) for a query whose every score is NaN, and for one
// whose NaN scores fill the first chunk of keys: NaN, as the kernels' own log-sum-exp
// (it was +inf, "every key masked", and a finite value from the later chunks).
void check_nan_lse() {
  namespace pc = perceiver::cuda;
  AttentionProblem pr({1, 1, 8, 100, 32, 32, false, false}, DType::BFloat16, 3, false);
  perceiver::cuda::GemmContext ctx{};
  pc::DeviceAllocator alloc(0);
  auto row2 = [&](int64_t chunk_bytes) {
    std::vector<float> lse(9, 0.f);
    if (chunk_bytes) pc::attention_row_lse(ctx, alloc, pr.a, lse.data(), nullptr, chunk_bytes);
    else pc::attention_row_lse(ctx, alloc, pr.a, lse.data(), nullptr);
    return lse;
  };
  for (int d = 0; d < 32; d++) store(pr.q.data(), DType::BFloat16, pr.q_at(0, 2, 0) + d, NAN);
  const std::vector<float> all = row2(0);
  for (int d = 0; d < 32; d++) store(pr.q.data(), DType::BFloat16, pr.q_at(0, 2, 0) + d, 0.5f);
  for (int64_t j = 0; j < 64; j++) store(pr.k.data(), DType::BFloat16, pr.k_at(0, j, 0), NAN);
  const std::vector<float> first = row2(64 * 8 * 4);  // chunks of 64 keys
  const bool ok = std::isnan(all[2]) && std::isfinite(all[0]) && std::isnan(first[2]) && std::isnan(first[0]);
  g_checks++;
  if (!ok) g_failures++;
  std::printf("%s products' row lse with NaN scores: every score %g (row 0 %g), the first chunk's %g\n", ok ? "PASS" : "FAIL",
              all[2], all[0], first[2]);
}

}  // namespace

void check_flash(const std::string& filter) {
  const FlashCase cases[] = {
      // name, {B, H, Nq, Nk, Dqk, Dv, odd stride, mask}
      {"w32-mask", {2, 3, 100, 150, 32, 32, false, true}},  // ragged query and key tiles
      {"w64", {1, 2, 70, 130, 64, 64, false, false}},
      {"w64-pad", {2, 1, 33, 90, 56, 48, false, true}},  // widths padded to the tier's
      {"w128-mask", {1, 2, 45, 70, 128, 128, false, true}},
      {"w128-pad", {1, 1, 20, 64, 120, 128, false, false}},
      {"lm", {2, 2, 40, 70, 32, 160, false, false}},  // the language model's 32 x 160
      {"lm-pad", {1, 2, 17, 33, 24, 136, false, true}},
      {"lm-bcast-mask", {2, 2, 40, 70, 32, 160, false, true}, true},  // a padding mask's view
  };
  for (const FlashCase& c : cases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (DType dt : {DType::BFloat16, DType::Float16}) check_case(c, dt);
  }
  if (filter.empty() || std::string("refusals").find(filter) != std::string::npos) check_refusals();
  if (filter.empty() || std::string("far logits").find(filter) != std::string::npos) {
    check_far_logits(DType::Float16, 70, -2.f, 2.f);
    check_far_logits(DType::Float16, 64, -2.f, 2.f);
    check_far_logits(DType::BFloat16, 70, -6.f, 6.f, true);
    check_far_logits(DType::Float16, 70, 0.3f, 0.3f);  // and ordinary logits, the same shapes
  }
  if (filter.empty() || std::string("nan lse").find(filter) != std::string::npos) check_nan_lse();
}

}  // namespace perceiver::emu::check
