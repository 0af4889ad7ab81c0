// attention.cu's forward on the emulation against a double-precision reference: every
// tc tier, path and key split, the fixed-width kernel, padded copies, masks and the
// routing of the public entry (which kernel ran ends each line). A shared-memory race
// fails its check whatever the numbers (emu.h).
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention.h"
#include "check.h"

namespace perceiver::cuda::detail {
// attention.cu's hooks for its harnesses (as native/cuda/attention_check.cu declares them).
cudaError_t attention_forward_forced(const AttentionArgs& a, void* workspace, size_t workspace_bytes, int sm_count,
                                     cudaStream_t stream, int path, int splits);
size_t attention_workspace_bytes_forced(const AttentionArgs& a, int splits);
const char* attention_last_kernel();
}  // namespace perceiver::cuda::detail

namespace perceiver::emu::check {

using perceiver::AttentionArgs;

namespace {

struct Case {
  const char* name;
  int64_t B, H, nq, nk, dqk, dv;
  bool odd_stride;  // rows at a stride of H * D + 3 (no 16-byte loads: the padded copies)
  bool mask;        // a [B, Nq, Nk] mask with about a quarter of the keys masked
};

void check(const Case& c, DType dt, int path, int splits) {
  const int64_t sq = c.H * c.dqk + (c.odd_stride ? 3 : 0), sv = c.H * c.dv + (c.odd_stride ? 3 : 0);
  const int64_t so = c.H * c.dv;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  // 4 bytes per element whatever the dtype (16-bit arrays use the first half).
  std::vector<float> q(c.B * c.nq * sq), k(c.B * c.nk * sq), v(c.B * c.nk * sv), out(c.B * c.nq * so);
  for (auto* t : {&q, &k, &v})
    for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, u(rng));
  for (size_t i = 0; i < out.size(); i++) store(out.data(), dt, (int64_t)i, NAN);
  std::vector<uint8_t> mask;
  if (c.mask) {
    mask.resize(c.B * c.nq * c.nk);
    for (auto& m : mask) m = rng() % 4 != 0;
  }
  AttentionArgs a{};
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.out = out.data();
  a.mask = c.mask ? mask.data() : nullptr;
  a.batch = c.B; a.heads = c.H; a.nq = c.nq; a.nk = c.nk; a.dqk = c.dqk; a.dv = c.dv;
  a.q_sb = c.nq * sq; a.q_sn = sq; a.q_sh = c.dqk;
  a.k_sb = c.nk * sq; a.k_sn = sq; a.k_sh = c.dqk;
  a.v_sb = c.nk * sv; a.v_sn = sv; a.v_sh = c.dv;
  a.o_sb = c.nq * so; a.o_sn = so; a.o_sh = c.dv;
  a.m_sb = c.nq * c.nk; a.m_sq = c.nk; a.m_sk = 1;
  a.scale = 1.f / std::sqrt((float)c.dqk);
  a.dtype = dt;
  const size_t ws_bytes = perceiver::cuda::detail::attention_workspace_bytes_forced(a, splits);
  std::vector<unsigned char> ws(ws_bytes + 256);
  void* wsp = ws.data() + (256 - reinterpret_cast<uintptr_t>(ws.data()) % 256) % 256;
  const long races_before = perceiver::emu::g_races;
  const cudaError_t e = perceiver::cuda::detail::attention_forward_forced(a, wsp, ws_bytes, 132, nullptr, path, splits);
  const long races = perceiver::emu::g_races - races_before;
  char label[200];
  std::snprintf(label, sizeof label, "%-16s %-8s path %d splits %d [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld%s%s]", c.name,
                dtype_label(dt), path, splits, (long long)c.B, (long long)c.H,
                (long long)c.nq, (long long)c.nk, (long long)c.dqk, (long long)c.dv, c.odd_stride ? " odd" : "",
                c.mask ? " mask" : "");
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
  double worst = 0;
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.H; h++)
      for (int64_t i = 0; i < c.nq; i++) {
        std::vector<double> logit(c.nk);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.nk; j++) {
          double s = 0;
          for (int64_t d = 0; d < c.dqk; d++)
            s += (double)load(q.data(), dt, b * a.q_sb + i * sq + h * c.dqk + d) * load(k.data(), dt, b * a.k_sb + j * sq + h * c.dqk + d);
          const bool keep = !c.mask || mask[(b * c.nq + i) * c.nk + j];
          logit[j] = keep ? s * a.scale : -INFINITY;
          mx = std::max(mx, logit[j]);
        }
        double l = 0;
        for (auto& x : logit) l += (x = mx == -INFINITY ? 0 : std::exp(x - mx));
        for (int64_t d = 0; d < c.dv; d++) {
          double o = 0;
          for (int64_t j = 0; j < c.nk; j++) o += logit[j] * load(v.data(), dt, b * a.v_sb + j * sv + h * c.dv + d);
          o = l > 0 ? o / l : 0;
          const double got = load(out.data(), dt, b * a.o_sb + i * so + h * c.dv + d);
          const double tol = dt == DType::Float32 ? 1e-5 : 1e-2;
          const double err = std::isnan(got) ? INFINITY : std::fabs(got - o) / (tol + tol * std::fabs(o));
          worst = std::max(worst, err);
        }
      }
  // A race fails the check whatever the numbers: on a GPU its result depends on timing.
  const bool ok = worst <= 1.0 && races == 0;
  if (!ok) g_failures++;
  std::printf("%s %s worst=%.2f of tol -> %s\n", ok ? "PASS" : "FAIL", label, worst,
              perceiver::cuda::detail::attention_last_kernel());
  if (races > 0) {
    std::printf("  %ld shared-memory race(s); the first: %s\n", races, perceiver::emu::g_first_race.c_str());
    perceiver::emu::g_races = 0;  // so that the next check's first race is reported
  }
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
      {"w261", 1, 1, 20, 70, 261, 261, true, false},
      {"qk32-v322", 1, 1, 17, 40, 32, 322, false, false},
      // Wider than the widest tier: Dv in chunks (272 + 248; 4 x 256 with a Q tile of
      // 1024 columns, one stage).
      {"qk40-v520", 1, 2, 20, 45, 40, 520, false, true},
      {"w1024-odd", 1, 1, 3, 30, 1024, 1024, true, false},
      // The fixed-width kernel's other classes: the language model's decoder heads
      // (qk 32, v 96), optical flow's 32-wide heads, and 120-wide heads, which pad to
      // its 128 class.
      {"qk32-v96", 2, 2, 90, 130, 32, 96, false, false},
      {"w32-mask", 1, 3, 50, 400, 32, 32, false, true},
      {"w120", 1, 2, 40, 140, 120, 120, false, false},
  };
  for (const Case& c : cases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (DType dt : {DType::BFloat16, DType::Float16})
      // auto (the public entry: PERCEIVER_CUDA_ATTENTION_OCCUPANCY=1 in the
      // environment makes it take the occupancy tiers), tc (the planned tier), tco (the
      // occupancy tiers), tcw (two row tiles per warp), tc1 (one stage), tcf, tcf8 and
      // tcf2 (the fixed-width kernel: 4 warps, 8 warps, 4 warps of two row tiles); one key
      // range, and three with the merge.
      for (int path : {0, 1, 7, 4, 3, 8, 9, 10})
        for (int splits : {1, 3}) check(c, dt, path, splits);
    // float32: auto, and the SIMT kernel.
    for (int path : {0, 2})
      for (int splits : {1, 3}) check(c, DType::Float32, path, splits);
  }
  // The public entry only, where 128-row blocks fill all 132 SMs (33 x 8 of them), which
  // is where auto takes the wide kernel or, with its switch, the 128-row fixed variants.
  const Case full = {"rows-fill-sms", 33, 8, 128, 16, 128, 128, false, false};
  if (filter.empty() || std::string(full.name).find(filter) != std::string::npos) check(full, DType::BFloat16, 0, 1);
}

}  // namespace perceiver::emu::check
