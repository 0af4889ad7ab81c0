// attention.cu's forward on the emulation against a double-precision reference: every
// tc tier, path and key split, the fixed-width kernel, padded copies, masks and the
// routing of the public entry (which kernel ran ends each line). A shared-memory race
// fails its check whatever the numbers (emu.h).
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention.h"
#include "attention_problem.h"
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
  AttentionShape s;
};

void check(const Case& c, DType dt, int path, int splits) {
  AttentionProblem pr(c.s, dt, 1234, false);
  const AttentionArgs& a = pr.a;
  const size_t ws_bytes = perceiver::cuda::detail::attention_workspace_bytes_forced(a, splits);
  std::vector<unsigned char> ws(ws_bytes + 256);
  void* wsp = ws.data() + (256 - reinterpret_cast<uintptr_t>(ws.data()) % 256) % 256;
  const long races_before = perceiver::emu::g_races;
  const cudaError_t e = perceiver::cuda::detail::attention_forward_forced(a, wsp, ws_bytes, 132, nullptr, path, splits);
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
  const std::vector<double> want = pr.reference().o;
  const double tol = dt == DType::Float32 ? 1e-5 : 1e-2;
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const double got = pr.at(pr.out, (int64_t)i);
    worst = std::max(worst, std::isnan(got) ? INFINITY : std::fabs(got - want[i]) / (tol + tol * std::fabs(want[i])));
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
      // auto (the public entry, routed by PERCEIVER_CUDA_ATTENTION_FIXED and
      // PERCEIVER_CUDA_ATTENTION_OCCUPANCY as on a GPU), tc (the planned tier), tco (the
      // occupancy tiers), tcw (two row tiles per warp), tc1 (one stage), tcf, tcf8 and
      // tcf2 (the fixed-width kernel: 4 warps, 8 warps, 4 warps of two row tiles), tcg and
      // tcg1 (the warpgroup kernel, two and one warpgroups per block, which the
      // emulation's H100 takes); one key range, and three with the merge.
      for (int path : {0, 1, 7, 4, 3, 8, 9, 10, 11, 12})
        for (int splits : {1, 3}) check(c, dt, path, splits);
    // float32: auto, and the SIMT kernel.
    for (int path : {0, 2})
      for (int splits : {1, 3}) check(c, DType::Float32, path, splits);
  }
  // The public entry only, where 128-row blocks fill all 132 SMs (33 x 8 of them), which
  // is where auto takes the 128-row fixed variants, or with the fixed-width kernel off
  // the occupancy tier, or with that off too the wide kernel.
  const Case full = {"rows-fill-sms", 33, 8, 128, 16, 128, 128, false, false};
  if (filter.empty() || std::string(full.name).find(filter) != std::string::npos) check(full, DType::BFloat16, 0, 1);
}

}  // namespace perceiver::emu::check
