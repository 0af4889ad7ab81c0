// attention.cu's forward on the emulation against a double-precision reference: every
// tc tier, path and key split, the fixed-width kernel, padded copies, masks and the
// routing of the public entry (which kernel ran ends each line). A shared-memory race
// fails its check whatever the numbers (emu.h).
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention.h"
#include "../attention_diagnose.h"
#include "../attention_probe.h"
#include "attention_problem.h"
#include "check.h"

namespace perceiver::cuda::detail {
// attention.cu's hooks for its harnesses (as native/cuda/attention_check.cu declares them).
cudaError_t attention_forward_forced(const AttentionArgs& a, void* workspace, size_t workspace_bytes, int sm_count,
                                     cudaStream_t stream, int path, int splits, bool* lse_written = nullptr);
size_t attention_workspace_bytes_forced(const AttentionArgs& a, int splits);
int attention_planned_splits(const AttentionArgs& a, int sm_count);
const char* attention_last_kernel();
}  // namespace perceiver::cuda::detail

namespace perceiver::emu::check {

using perceiver::AttentionArgs;

namespace {

struct Case {
  const char* name;
  AttentionShape s;
  bool broadcast_mask = false;  // the mask a view broadcast over the queries (stride 0)
  bool shared_kv = false;       // k and v one array (AttentionProblem::share_kv)
  int out_shift = 0;            // the output starts this many elements into its array
};

void check(const Case& c, DType dt, int path, int splits) {
  AttentionProblem pr(c.s, dt, 1234, false);
  if (c.broadcast_mask) pr.broadcast_mask();
  if (c.shared_kv) pr.share_kv();
  // An output off 4 (or 16) bytes, within the guard rows: element i at out[i + shift].
  const int64_t shift = c.out_shift;
  pr.a.out = reinterpret_cast<float*>(reinterpret_cast<char*>(pr.out.data()) + shift * (int64_t)dtype_size(dt));
  const AttentionProblem::Reference ref = pr.reference();
  const std::vector<double>& want = ref.o;
  if (c.broadcast_mask) pr.spoil_unread_mask_rows();
  // Every call asks for the rows' log-sum-exp (as a forward whose gradient is the flash
  // kernel's does), NaN until written: the kernels that write it must match the
  // reference's, the rest must leave it alone.
  std::vector<float> lse(ref.lse.size() + 1, NAN);
  pr.a.lse = lse.data();
  const AttentionArgs& a = pr.a;
  const size_t ws_bytes = perceiver::cuda::detail::attention_workspace_bytes_forced(a, splits);
  std::vector<unsigned char> ws(ws_bytes + 256);
  void* wsp = ws.data() + (256 - reinterpret_cast<uintptr_t>(ws.data()) % 256) % 256;
  const long races_before = perceiver::emu::g_races;
  bool lse_written = false;
  const cudaError_t e =
      perceiver::cuda::detail::attention_forward_forced(a, wsp, ws_bytes, 132, nullptr, path, splits, &lse_written);
  const long races = perceiver::emu::g_races - races_before;
  char label[200];
  std::snprintf(label, sizeof label, "%-16s %-8s path %d splits %d %s", c.name, dtype_name(dt), path, splits,
                c.s.label().c_str());
  if (e == cudaErrorNotSupported) {
    std::printf("SKIP %s (not available for this shape)\n", label);
    return;
  }
  g_checks++;
  if (e != cudaSuccess) {
    std::printf("FAIL %s: error %d\n", label, (int)e);
    g_failures++;
    return;
  }
  const double tol = dt == DType::Float32 ? 1e-5 : 1e-2;
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const double got = pr.at(pr.out, (int64_t)i + shift);
    worst = std::max(worst, std::isnan(got) ? INFINITY : std::fabs(got - want[i]) / (tol + tol * std::fabs(want[i])));
  }
  // Written: within 1e-5 (1 + |lse|) of the reference's, +inf where it is; not written:
  // untouched.
  double worst_lse = 0;
  for (size_t r = 0; r < ref.lse.size(); r++) worst_lse = std::max(worst_lse, lse_error(lse_written, ref.lse[r], lse[r]));
  if (!std::isnan(lse.back())) worst_lse = INFINITY;  // the spare past the last row: written out of range
  // The rows past the output's last (AttentionProblem::kGuardRows), and the elements
  // before a shifted output: untouched.
  int64_t guard_written = 0;
  for (int64_t i = 0; i < (int64_t)pr.out.size(); i++)
    if ((i < shift || i >= (int64_t)want.size() + shift) && !std::isnan(pr.at(pr.out, i))) guard_written++;
  if (guard_written > 0) worst = INFINITY;
  // A race fails the check whatever the numbers: on a GPU its result depends on timing.
  const bool ok = worst <= 1.0 && worst_lse <= 1.0 && races == 0;
  if (!ok) g_failures++;
  std::printf("%s %s worst=%.2f of tol, lse %s %.2f -> %s\n", ok ? "PASS" : "FAIL", label, worst,
              lse_written ? "written" : "untouched", worst_lse, perceiver::cuda::detail::attention_last_kernel());
  if (guard_written > 0) std::printf("  %lld elements written outside the output\n", (long long)guard_written);
  if (worst > 1.0) {  // where: [b, h][i][d], as the GPU harness reports it
    const AttentionShape& sh = c.s;
    std::vector<double> g, w;
    std::vector<int64_t> rows(sh.nq);
    for (int64_t i = 0; i < sh.nq; i++) rows[i] = i;
    for (int64_t b = 0; b < sh.B; b++)
      for (int64_t h = 0; h < sh.H; h++)
        for (int64_t i = 0; i < sh.nq; i++)
          for (int64_t d = 0; d < sh.dv; d++) {
            g.push_back(pr.at(pr.out, pr.o_at(b, i, h) + d + shift));
            w.push_back(want[pr.o_at(b, i, h) + d]);
          }
    std::printf("  where: %s\n", attention_error_pattern(g, w, sh.B * sh.H, rows, sh.dv, tol).c_str());
  }
  if (races > 0) {
    std::printf("  %ld shared-memory race(s); the first: %s\n", races, perceiver::emu::g_first_race.c_str());
    perceiver::emu::g_races = 0;  // so that the next check's first race is reported
  }
}

// A NaN score makes its row NaN (not the 0 of a row whose keys are all masked, which
// the kernels' online softmax took it for: its maximum skips NaN, and a NaN sum failed
// their "l > 0"): one query's elements in batch 0, head 0 (every score of that row)
// and one key's in batch 0, the last head (one score of each row that keeps it). Every
// other row finite; the log-sum-exp, where written, NaN on exactly those rows.
void check_nan(const Case& c, DType dt, int path, int splits) {
  AttentionProblem pr(c.s, dt, 99, false);
  const AttentionShape& sh = c.s;
  const int64_t hk = sh.H - 1, jk = sh.nk - 2;
  store(pr.q.data(), dt, pr.q_at(0, 1, 0) + std::min<int64_t>(3, sh.dqk - 1), NAN);
  store(pr.k.data(), dt, pr.k_at(0, jk, hk) + std::min<int64_t>(5, sh.dqk - 1), NAN);
  std::vector<float> lse((size_t)(sh.B * sh.H * sh.nq) + 1, -1.f);
  pr.a.lse = lse.data();
  const AttentionArgs& a = pr.a;
  const size_t ws_bytes = perceiver::cuda::detail::attention_workspace_bytes_forced(a, splits);
  std::vector<unsigned char> ws(ws_bytes + 256);
  void* wsp = ws.data() + (256 - reinterpret_cast<uintptr_t>(ws.data()) % 256) % 256;
  bool lse_written = false;
  const cudaError_t e =
      perceiver::cuda::detail::attention_forward_forced(a, wsp, ws_bytes, 132, nullptr, path, splits, &lse_written);
  char label[200];
  std::snprintf(label, sizeof label, "NaN %-12s %-8s path %d splits %d %s", c.name, dtype_name(dt), path, splits,
                sh.label().c_str());
  if (e == cudaErrorNotSupported) {
    std::printf("SKIP %s (not available for this shape)\n", label);
    return;
  }
  auto kept = [&](int64_t b, int64_t i, int64_t j) {
    return !a.mask || a.mask[b * a.m_sb + i * a.m_sq + j * a.m_sk] != 0;
  };
  int64_t wrong = 0, wrong_lse = 0;
  for (int64_t b = 0; b < sh.B; b++)
    for (int64_t h = 0; h < sh.H; h++)
      for (int64_t i = 0; i < sh.nq; i++) {
        bool any = false;
        for (int64_t j = 0; j < sh.nk; j++) any |= kept(b, i, j);
        const bool nan = (b == 0 && h == 0 && i == 1 && any) || (b == 0 && h == hk && kept(b, i, jk));
        for (int64_t d = 0; d < sh.dv; d++) {
          const double o = pr.at(pr.out, pr.o_at(b, i, h) + d);
          wrong += nan ? !std::isnan(o) : !std::isfinite(o);
        }
        const float l = lse[(size_t)((b * sh.H + h) * sh.nq + i)];
        if (lse_written) wrong_lse += std::isnan(l) != nan;
      }
  g_checks++;
  const bool ok = e == cudaSuccess && wrong == 0 && wrong_lse == 0;
  if (!ok) g_failures++;
  std::printf("%s %s %lld elements and %lld lse wrong -> %s\n", ok ? "PASS" : "FAIL", label, (long long)wrong,
              (long long)wrong_lse, perceiver::cuda::detail::attention_last_kernel());
}

// The layout probes (attention_probe.h) through one path at one width class: every
// output element must read exactly the V element it should.
void probe(int64_t dqk, int64_t dv, int path) {
  const DType dt = path == 13 ? DType::Float32 : DType::Float16;
  for (AttentionProbe::Kind kind : {AttentionProbe::Keys, AttentionProbe::Columns}) {
    const AttentionProbe pb(kind, 128, dqk, dv);
    AttentionProblem pr({1, 1, pb.nq, pb.nk, dqk, dv, false, false}, dt, 1, false);
    for (size_t i = 0; i < pb.q.size(); i++) store(pr.q.data(), dt, (int64_t)i, pb.q[i]);
    for (size_t i = 0; i < pb.k.size(); i++) store(pr.k.data(), dt, (int64_t)i, pb.k[i]);
    for (size_t i = 0; i < pb.v.size(); i++) store(pr.v.data(), dt, (int64_t)i, pb.v[i]);
    pr.a.scale = pb.scale;
    const size_t ws_bytes = perceiver::cuda::detail::attention_workspace_bytes_forced(pr.a, 1);
    std::vector<unsigned char> ws(ws_bytes + 256);
    void* wsp = ws.data() + (256 - reinterpret_cast<uintptr_t>(ws.data()) % 256) % 256;
    const cudaError_t e = perceiver::cuda::detail::attention_forward_forced(pr.a, wsp, ws_bytes, 132, nullptr, path, 1);
    char label[120];
    // Named as the GPU harness names the paths (not "path N", which the tests count).
    std::snprintf(label, sizeof label, "probe %-7s %-4s qk%lld v%lld", pb.name(),
                  attention_path_name(path), (long long)dqk, (long long)dv);
    if (e == cudaErrorNotSupported) {
      std::printf("SKIP %s (not available for this shape)\n", label);
      continue;
    }
    std::vector<float> out((size_t)(pb.nq * dv));
    for (size_t i = 0; i < out.size(); i++) out[i] = (float)pr.at(pr.out, (int64_t)i);
    const std::string r = e == cudaSuccess ? pb.report(out) : "error " + std::to_string((int)e);
    g_checks++;
    if (r != "ok") g_failures++;
    std::printf("%s %-60s %s -> %s\n", r == "ok" ? "PASS" : "FAIL", label, r.c_str(),
                perceiver::cuda::detail::attention_last_kernel());
  }
}

// What the CUDA backend asks before it sends a float32 call to the 3xTF32 kernel rather
// than to the products (backend.cu: fast_attention, products_attention): yes on sm_80+,
// at its widths, with 16-byte rows, unless PERCEIVER_CUDA_ATTENTION_TF32X3=0.
void check_tf32_routing() {
  const bool on = [] {
    const char* e = std::getenv("PERCEIVER_CUDA_ATTENTION_TF32X3");
    return !(e && std::string(e) == "0");
  }();
  alignas(16) static float buf[64];
  AttentionArgs a{};
  a.dtype = DType::Float32;
  a.batch = 2; a.heads = 8; a.nq = 512; a.nk = 512; a.dqk = 128; a.dv = 128;
  a.q = a.k = a.v = buf;
  a.q_sb = a.k_sb = a.v_sb = 512 * 1024; a.q_sn = a.k_sn = a.v_sn = 1024; a.q_sh = a.k_sh = a.v_sh = 128;
  AttentionArgs odd = a;
  odd.k = buf + 1;  // K rows start off 16 bytes
  AttentionArgs bf = a;
  bf.dtype = DType::BFloat16;
  const struct {
    const char* what;
    bool got, want;
  } cases[] = {
      {"widths 128 x 128 on sm_90", perceiver::cuda::attention_tf32_widths(128, 128, 90), on},
      {"widths 120 x 120 (pad to 128) on sm_80", perceiver::cuda::attention_tf32_widths(120, 120, 80), on},
      {"widths 32 x 160", perceiver::cuda::attention_tf32_widths(32, 160, 90), on},
      {"widths 261 x 261 (no class)", perceiver::cuda::attention_tf32_widths(261, 261, 90), false},
      {"widths 128 x 128 on sm_75", perceiver::cuda::attention_tf32_widths(128, 128, 75), false},
      {"aligned float32 call", perceiver::cuda::attention_tf32_serves(a, 90), on},
      {"K rows off 16 bytes", perceiver::cuda::attention_tf32_serves(odd, 90), false},
      {"a bfloat16 call", perceiver::cuda::attention_tf32_serves(bf, 90), false},
  };
  for (const auto& c : cases) {
    const bool ok = c.got == c.want;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s tf32 routing: %-40s %s\n", ok ? "PASS" : "FAIL", c.what, c.got ? "takes it" : "does not");
  }
}

// The key splits planned for 132 SMs (two blocks each: 264 slots) at the models' shapes:
// enough 64-row blocks to fill the slots, one split fewer where the fewest that do
// would spill a mostly idle second wave, none where the keys are too few.
void check_split_plan() {
  struct {
    const char* what;
    int64_t batch, heads, nq, nk;
    int want;
  } cases[] = {
      {"ImageNet encoder, 8 query tiles", 1, 1, 512, 50176, 33},                // 264 blocks
      {"optical flow's encoder, 32 query tiles", 1, 1, 2048, 182528, 8},       // 256, not 9 (288)
      {"8 heads over 512 latents, batch 1 (keys too few)", 1, 8, 512, 512, 1},  // 512 keys
      {"100 query tiles", 1, 100, 64, 100000, 2},                              // 200, not 3 (300)
      {"16 query tiles", 1, 16, 64, 100000, 16},                               // 256, not 17 (272)
      {"blocks enough already", 32, 8, 512, 512, 1},
  };
  for (const auto& c : cases) {
    AttentionArgs a{};
    a.dtype = DType::BFloat16;
    a.batch = c.batch; a.heads = c.heads; a.nq = c.nq; a.nk = c.nk; a.dqk = 128; a.dv = 128;
    const int got = perceiver::cuda::detail::attention_planned_splits(a, 132);
    const bool ok = got == c.want;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s split plan: %-50s %d splits (want %d)\n", ok ? "PASS" : "FAIL", c.what, got, c.want);
  }
}

// The diagnostics themselves, which only speak on a failure: on outputs made wrong on
// purpose they must name what was done to them.
void check_diagnostics() {
  auto expect = [](const char* what, const std::string& said, const std::string& want) {
    const bool ok = said.find(want) != std::string::npos;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s diagnose: %-48s %s\n", ok ? "PASS" : "FAIL", what, said.substr(0, 160).c_str());
  };
  const int64_t slices = 2, nq = 80, dv = 48;
  std::vector<int64_t> rows(nq);
  for (int64_t i = 0; i < nq; i++) rows[i] = i;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> ref((size_t)(slices * nq * dv));
  for (double& x : ref) x = u(rng);
  auto moved = [&](int64_t row_xor, int64_t col_xor) {
    std::vector<double> got(ref.size());
    for (int64_t s = 0; s < slices; s++)
      for (int64_t i = 0; i < nq; i++)
        for (int64_t d = 0; d < dv; d++) {
          const int64_t i2 = (i ^ row_xor) < nq ? i ^ row_xor : i, d2 = (d ^ col_xor) < dv ? d ^ col_xor : d;
          got[(size_t)((s * nq + i) * dv + d)] = ref[(size_t)((s * nq + i2) * dv + d2)];
        }
    return got;
  };
  expect("right output", attention_error_pattern(ref, ref, slices, rows, dv, 1e-2), "bad 0 of 7680 (0.0%)");
  expect("columns swapped in blocks of 8", attention_error_pattern(moved(0, 8), ref, slices, rows, dv, 1e-2),
         "columns: 0-47; right values in the wrong place: column^8 100%");
  expect("rows swapped in blocks of 16", attention_error_pattern(moved(16, 0), ref, slices, rows, dv, 1e-2),
         "rows mod 64: 0-63; columns: 0-47; right values in the wrong place: row^16 100%");
  std::vector<double> one = ref;
  one[(size_t)((1 * nq + 70) * dv + 9)] = NAN;
  expect("one NaN", attention_error_pattern(one, ref, slices, rows, dv, 1e-2),
         "bad 1 of 7680 (0.0%); rows mod 64: 6; columns: 9; right values in the wrong place: none found");
  const AttentionProbe keys(AttentionProbe::Keys, 16, 32, 16), cols(AttentionProbe::Columns, 16, 32, 16);
  std::vector<float> ko(16 * 16), co(16 * 16);
  for (int64_t i = 0; i < 16; i++)
    for (int64_t d = 0; d < 16; d++) {
      ko[(size_t)(i * 16 + d)] = (float)(i == 3 ? 6 : i + 1);       // row 3 read key 5
      co[(size_t)(i * 16 + d)] = (float)((d ^ 8) + 1);              // columns swapped by 8
    }
  expect("probe: a row that read another key", keys.report(ko), "16 of 256 wrong; q3 d0 read key 5 (want 3); q3 d8 read key 5");
  expect("probe: columns swapped", cols.report(co), "256 of 256 wrong; q0 d0 read column 8 (want 0); q0 d8 read column 0 (want 8); q8 d0");
  expect("probe: right output", keys.report(std::vector<float>{[&] {
                                  std::vector<float> v(16 * 16);
                                  for (int64_t i = 0; i < 16; i++)
                                    for (int64_t d = 0; d < 16; d++) v[(size_t)(i * 16 + d)] = (float)(i + 1);
                                  return v;
                                }()}),
         "ok");
}

}  // namespace

void check_attention(const std::string& filter) {
  // Shapes for every tier: heads of 64 (tier 0), 128 (1, and the occupancy tier 7),
  // the language model's qk 32 / v 160 (2, and 8), 261 (3 and 9, through the padded
  // copies), 322 (4), and past it (column chunks of V); the fixed-width kernel's classes
  // (128, qk 32 / v 160, qk 32 / v 96, 64, 32); ragged query and key counts so that partial
  // tiles and masked tails run.
  const Case cases[] = {
      {"w64", 1, 2, 70, 140, 64, 64, false, false},
      {"w128", 1, 2, 70, 160, 128, 128, false, true},
      {"w96-odd", 1, 1, 40, 75, 96, 96, true, false},
      {"qk32-v160", 2, 1, 33, 140, 32, 160, false, true},
      {"qk40-v150-odd", 1, 1, 20, 50, 40, 150, true, false},
      {"w261", 1, 1, 20, 70, 261, 261, false, false},
      {"qk32-v322", 1, 1, 17, 40, 32, 322, false, false},
      // Wider than the widest tier: Dv in chunks (272 + 248; 4 x 256 with a Q tile of
      // 1024 columns, one stage).
      {"qk40-v520", 1, 2, 20, 45, 40, 520, false, true},
      {"w1024-odd", 1, 1, 3, 30, 1024, 1024, true, false},
      // The fixed-width kernel's other classes: the language model's decoder heads
      // (qk 32, v 96), optical flow's 32-wide heads, and 120-wide heads, which pad to
      // its 128 class.
      {"qk32-v96", 2, 2, 90, 130, 32, 96, false, false},
      // The language model's latent widths over more than 128 queries: every warp of
      // the 8-warp variant's first block holds rows, its second block a ragged few.
      {"qk32-v160-rows", 1, 1, 150, 70, 32, 160, false, false},
      {"w32-mask", 1, 3, 50, 400, 32, 32, false, true},
      {"w120", 1, 2, 40, 140, 120, 120, false, false},
      // A padding mask as the op layer passes it: a view broadcast over the queries.
      {"padding-mask", 2, 1, 24, 90, 128, 128, false, true, true},
      // The single-head encoders' calls, k = v = X (the fixed-width kernel's 272 and 336
      // classes read one tile as both): 261 wide at stride 261 (Q read element by
      // element, X through one padded copy), masked, two query tiles; 264 wide,
      // aligned, read in place; optical flow's 322.
      {"w261-kv", 1, 1, 70, 75, 261, 261, false, true, false, true},
      {"w264-kv", 2, 1, 20, 40, 264, 264, false, false, false, true},
      {"w322-kv", 1, 1, 20, 40, 322, 322, false, false, false, true},
      // Unaligned rows at a multi-head width: the fixed-width kernel reads its Q with
      // 16-byte copies, so these stay on the tiers (K and V through the padded copies).
      {"w128-odd", 1, 1, 20, 40, 128, 128, true, false},
  };
  for (const Case& c : cases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (DType dt : {DType::BFloat16, DType::Float16})
      // auto (the public entry, routed by PERCEIVER_CUDA_ATTENTION_FIXED and
      // PERCEIVER_CUDA_ATTENTION_OCCUPANCY as on a GPU), tc (the planned tier), tco (the
      // occupancy tiers), tcw (two row tiles per warp), tc1 (one stage), tcf, tcf8 and
      // tcf2 (the fixed-width kernel: 4 warps, 8 warps, 4 warps of two row tiles), tcf3
      // (its occupancy variant: 32-key tiles, at the language model's classes), tcg and
      // tcg1 (the warpgroup kernel, two and one warpgroups per block, which the
      // emulation's H100 takes), tcgp (two that take turns), tcgk (two over 128-key
      // tiles); one key range, and three with the merge.
      for (int path : {0, 1, 7, 4, 3, 8, 9, 10, 14, 11, 12, 15, 16})
        for (int splits : {1, 3}) check(c, dt, path, splits);
    // float32: auto, the SIMT kernel and the 3xTF32 tensor-core kernel (path 13).
    for (int path : {0, 2, 13})
      for (int splits : {1, 3}) check(c, DType::Float32, path, splits);
  }
  // The warpgroup kernel's stages reused (five or six key tiles through three stages)
  // where both warpgroups of a block hold rows, with ragged last tiles and blocks: two
  // warpgroups sharing tiles, one, and two apart taking turns (paths 11, 12, 15); and
  // two over 128-key tiles (16: the -k128 shapes are five of them, qk32-v96-reuse four).
  // The walking copies of every one of these (rows at 128, pattern columns at v 160 and
  // 96) rewrite each stage.
  for (const Case& c : {Case{"w128-reuse", {1, 2, 130, 330, 128, 128, false, true}},
                        Case{"qk32-v160-reuse", {1, 2, 150, 300, 32, 160, false, false}},
                        Case{"w128-reuse-k128", {1, 2, 130, 600, 128, 128, false, true}},
                        Case{"qk32-v160-reuse-k128", {1, 2, 150, 600, 32, 160, false, true}},
                        Case{"qk32-v96-reuse", {2, 1, 140, 450, 32, 96, false, true}}}) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (int path : {11, 12, 15, 16}) check(c, DType::BFloat16, path, 1);
  }
  // The public entry only, where 128-row blocks fill all 132 SMs (33 x 8 of them), which
  // is where auto takes the 128-row fixed variants, or with the fixed-width kernel off
  // the occupancy tier, or with that off too the wide kernel.
  const Case full = {"rows-fill-sms", 33, 8, 128, 16, 128, 128, false, false};
  if (filter.empty() || std::string(full.name).find(filter) != std::string::npos) check(full, DType::BFloat16, 0, 1);
  // Outputs that start off their arrays' alignment (o_store_for): one element in, the
  // kernels write element by element; two in (4 bytes of 16-bit data, 8 of float32),
  // in pairs. The fixed-width kernel (path 8), a tier (path 1) and the 3xTF32 kernel
  // (path 13, float32) at the language model's latent widths.
  for (int shift : {1, 2}) {
    const Case c = {shift == 1 ? "out-shift-1" : "out-shift-2", {2, 1, 33, 140, 32, 160, false, true}, false, false, shift};
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (int path : {8, 1}) check(c, DType::BFloat16, path, 1);
    check(c, DType::Float32, 13, 1);
  }
  // Heads of no qk width (Dqk = 0: every score 0, each row V's mean), which the op
  // layer passes on: the occupancy tiers' stepped copy divided by the row's chunk count,
  // 0 (SIGFPE here; on a GPU, garbage steps). Through a tier, the occupancy tier forced,
  // and auto where 128-row blocks fill the SMs (132 heads). By name only ("qk0").
  if (filter == "qk0") {
    const Case narrow = {"qk0", {1, 2, 16, 40, 0, 128, false, false}};
    const Case many = {"qk0-fill", {1, 132, 16, 40, 0, 128, false, false}};
    for (int path : {1, 7}) check(narrow, DType::BFloat16, path, 1);
    check(many, DType::BFloat16, 0, 1);
  }
  // NaN scores through every path and the merge, at tier 0's, tier 1's (masked), the
  // language model's latent and decoder widths: asked for by name only (the filter
  // "nan"), as a family of their own.
  if (filter == "nan")
    for (const Case& c : cases) {
      const std::string n = c.name;
      if (n != "w64" && n != "w128" && n != "qk32-v160" && n != "qk32-v96") continue;
      for (int splits : {1, 3}) {
        for (int path : {0, 1, 7, 4, 3, 8, 9, 10, 14, 11, 12, 15, 16}) check_nan(c, DType::BFloat16, path, splits);
        for (int path : {0, 2, 13}) check_nan(c, DType::Float32, path, splits);
      }
    }
  // The layout probes at each width class of the fixed-width (path 8), warpgroup (11,
  // 12) and float32 tensor-core (13, in float32) kernels; 261 takes the warpgroup
  // kernel's 272 class.
  if (filter.empty() || std::string("probe").find(filter) != std::string::npos) check_diagnostics();
  if (filter.empty() || std::string("routing").find(filter) != std::string::npos) check_tf32_routing();
  if (filter.empty() || std::string("split plan").find(filter) != std::string::npos) check_split_plan();
  if (filter.empty() || std::string("probe").find(filter) != std::string::npos)
    for (const auto& w : {std::pair<int64_t, int64_t>{128, 128}, {32, 160}, {32, 96}, {64, 64}, {32, 32}, {261, 261}})
      for (int path : {8, 14, 11, 12, 15, 16, 13}) probe(w.first, w.second, path);
}

}  // namespace perceiver::emu::check
