// attention_tune.cu's choice between the fused kernel (attention.cu) and the products
// (attention_gemm.cu) on the emulation, both paths running from their own source and
// timed by the host's clock: the choice follows the timings and the margin, the first
// call's result is the chosen path's own bits, later calls of the shape run that path
// once and untimed, a shape that differs in what the key holds is timed afresh, the
// products running out of memory leave the fused kernel, and calls that cannot be
// rerun or are too small are not timed.
#include <chrono>
#include <random>
#include <thread>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../../error.h"
#include "../attention.h"
#include "../attention_gemm.h"
#include "../attention_tune.h"
#include "attention_problem.h"
#include "check.h"

namespace perceiver::emu::check {

using perceiver::AttentionArgs;
namespace pc = perceiver::cuda;

namespace {

void expect(bool ok, const std::string& what) {
  g_checks++;
  if (!ok) g_failures++;
  std::printf("%s tune %s\n", ok ? "PASS" : "FAIL", what.c_str());
}

// Runs a path of the forward on the emulation, counting runs. The products throw
// out-of-memory while `oom` is set, and take `products_extra_ms` longer (the host
// sleeping after them: emulated, the fused kernel is the slower) to make the fused
// kernel the faster.
struct Paths {
  int runs[2] = {0, 0};
  bool oom = false;
  int products_extra_ms = 0;
  pc::GemmContext ctx{};
  pc::DeviceAllocator alloc{0};
  void operator()(const AttentionArgs& a, pc::AttentionPath p) {
    runs[(int)p]++;
    if (p == pc::AttentionPath::Products) {
      if (oom) throw perceiver::Error(perceiver::ErrorKind::Memory, "out of memory (the check's)");
      pc::attention_forward_gemm(ctx, alloc, a, nullptr);
      if (products_extra_ms) std::this_thread::sleep_for(std::chrono::milliseconds(products_extra_ms));
      return;
    }
    // As the backend's fused path runs it (backend.cu's fused_attention).
    pc::Scratch ws(alloc, pc::attention_workspace_bytes(a, 132));
    if (pc::attention_forward(a, ws.p, ws.bytes, 132, nullptr) != cudaSuccess)
      throw perceiver::Error(perceiver::ErrorKind::Runtime, "fused");
    // The backend's fused path writes the row statistics by a pass of its own.
    if (a.lse) pc::attention_row_lse(ctx, alloc, a, a.lse, nullptr);
  }
  int total() const { return runs[0] + runs[1]; }
};

bool same_bits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

const char* name_of(pc::AttentionPath p) { return p == pc::AttentionPath::Products ? "products" : "fused"; }

void check_shape(const AttentionShape& s, DType dt, int products_extra_ms) {
  const std::string label = s.label() + " " + dtype_name(dt) + (products_extra_ms ? " slowed products" : "");
  AttentionProblem pr(s, dt, 77, false), again(s, dt, 77, false);
  std::vector<float> lse(s.B * s.H * s.nq + 1, NAN), lse_again(lse.size(), NAN);
  pr.a.lse = lse.data();
  again.a.lse = lse_again.data();
  pc::AttentionTuner tuner(0);
  Paths paths;
  paths.products_extra_ms = products_extra_ms;
  auto run = [&](const AttentionArgs& a) {
    return tuner.run(a, nullptr, [&](pc::AttentionPath p) { paths(a, p); }, 0);
  };

  pc::AttentionTuning t;
  expect(!tuner.find(pr.a, &t), "nothing kept before the first call " + label);
  const pc::AttentionPath p = run(pr.a);
  const bool kept = tuner.find(pr.a, &t);
  // Each path once untimed, then timed alike (up to kAttentionTuneRuns times, once
  // where a run is long, as emulated ones are), then the fused kernel once more where it
  // is the choice: the call's result is then its.
  const int timed = paths.runs[1] - 1;
  expect(kept && timed >= 1 && timed <= pc::kAttentionTuneRuns &&
             paths.runs[0] == paths.runs[1] + (p == pc::AttentionPath::Fused ? 1 : 0),
         "first call times both " + label + ": fused " + std::to_string(paths.runs[0]) + " runs, products " +
             std::to_string(paths.runs[1]));
  char figures[160];
  std::snprintf(figures, sizeof figures, ": fused %.3f ms, products %.3f ms, takes %s", t.fused_ms, t.products_ms,
                name_of(t.path));
  expect(kept && t.path == p && (products_extra_ms == 0 || p == pc::AttentionPath::Fused) && std::isfinite(t.fused_ms) && std::isfinite(t.products_ms) &&
             p == (t.products_ms < pc::kAttentionTuneMargin * t.fused_ms ? pc::AttentionPath::Products
                                                                         : pc::AttentionPath::Fused),
         "the faster by the margin " + label + figures);

  // The same inputs through the chosen path alone, untuned.
  Paths plain;
  plain(again.a, p);
  expect(same_bits(pr.out, again.out) && same_bits(lse, lse_again),
         "first call's out and lse are the chosen path's bits " + label);

  // Later calls: one run of the kept path, no timing, the same bits.
  for (size_t i = 0; i < pr.out.size(); i++) store(pr.out.data(), dt, (int64_t)i, NAN);
  const int before[2] = {paths.runs[0], paths.runs[1]};
  const pc::AttentionPath p2 = run(pr.a);
  expect(p2 == p && paths.runs[(int)p] == before[(int)p] + 1 && paths.runs[1 - (int)p] == before[1 - (int)p] &&
             same_bits(pr.out, again.out),
         "a later call runs the kept path once " + label);

  // Without the row statistics the paths cost differently: a shape of its own.
  AttentionArgs no_lse = pr.a;
  no_lse.lse = nullptr;
  const int n0 = paths.total();
  expect(!tuner.find(no_lse, &t), "no lse is not the lse shape's key " + label);
  run(no_lse);
  expect(paths.total() - n0 >= 4 && tuner.find(no_lse, &t), "no lse is timed afresh " + label);
}

void check_oom(const AttentionShape& s, DType dt) {
  const std::string label = s.label() + " " + dtype_name(dt);
  AttentionProblem pr(s, dt, 78, false), again(s, dt, 78, false);
  pc::AttentionTuner tuner(0);
  Paths paths;
  paths.oom = true;
  auto run = [&](const AttentionArgs& a) {
    return tuner.run(a, nullptr, [&](pc::AttentionPath p) { paths(a, p); }, 0);
  };
  // The products fail (as out of memory) after the fused kernel's untimed run.
  const pc::AttentionPath p = run(pr.a);
  pc::AttentionTuning t;
  const bool kept = tuner.find(pr.a, &t);
  Paths plain;
  plain(again.a, pc::AttentionPath::Fused);
  expect(p == pc::AttentionPath::Fused && kept && t.path == p && std::isfinite(t.fused_ms) && !std::isfinite(t.products_ms) &&
             paths.runs[1] == 1 && same_bits(pr.out, again.out),
         "products out of memory keep the fused kernel and its bits " + label);
  const int f = paths.runs[0];
  run(pr.a);
  expect(paths.runs[0] == f + 1 && paths.runs[1] == 1, "and later calls run it once " + label);

  // Any other error of a run is the call's.
  AttentionProblem other(s, dt, 79, false);
  other.a.nq = s.nq - 1;  // a shape not yet kept
  bool thrown = false;
  try {
    tuner.run(other.a, nullptr, [&](pc::AttentionPath p) {
      if (p == pc::AttentionPath::Products) throw perceiver::Error(perceiver::ErrorKind::Runtime, "a fault");
      paths(other.a, p);
    }, 0);
  } catch (const perceiver::Error& e) {
    thrown = e.kind == perceiver::ErrorKind::Runtime;
  }
  expect(thrown && !tuner.find(other.a, &t), "a products fault is thrown, nothing kept " + label);
}

void check_untimed(const AttentionShape& s, DType dt) {
  const std::string label = s.label() + " " + dtype_name(dt);
  AttentionProblem pr(s, dt, 80, false);
  pc::AttentionTuning t;
  {  // Below the tuner's flops.
    pc::AttentionTuner tuner(1e18);
    Paths paths;
    const pc::AttentionPath p = tuner.run(pr.a, nullptr, [&](pc::AttentionPath q) { paths(pr.a, q); }, 0);
    expect(p == pc::AttentionPath::Fused && paths.runs[0] == 1 && paths.runs[1] == 0 && !tuner.find(pr.a, &t),
           "a call under the flops runs fused once, untimed " + label);
  }
  // Out over an input (here k's array): a call that cannot run twice.
  for (int which = 0; which < 2; which++) {
    pc::AttentionTuner tuner(0);
    Paths paths;
    AttentionArgs a = pr.a;
    std::vector<float> lse(s.B * s.H * s.nq + 1);
    if (which == 0) a.out = const_cast<float*>(a.k);
    else a.lse = reinterpret_cast<float*>(const_cast<float*>(a.q)) + 1;
    std::vector<float> keep_q = pr.q, keep_k = pr.k;
    const pc::AttentionPath p = tuner.run(a, nullptr, [&](pc::AttentionPath q) { paths(a, q); }, 0);
    expect(p == pc::AttentionPath::Fused && paths.runs[0] == 1 && paths.runs[1] == 0 && !tuner.find(a, &t),
           std::string(which == 0 ? "out over k" : "lse over q") + " runs fused once, untimed " + label);
    pr.q = keep_q, pr.k = keep_k;
  }
  {  // A shape already kept runs its path once, whether or not the call could run twice.
    // With lse: emulated, the products are then kept (the fused path's statistics pass
    // is the slower), which a tuner that skipped the kept path would not run.
    pc::AttentionTuner tuner(0);
    Paths paths;
    std::vector<float> lse(s.B * s.H * s.nq + 1);
    AttentionArgs first = pr.a;
    first.lse = lse.data();
    const pc::AttentionPath kept = tuner.run(first, nullptr, [&](pc::AttentionPath q) { paths(first, q); }, 0);
    AttentionArgs a = first;
    a.out = const_cast<float*>(a.k);  // same strides and 16-byte alignment: the same key
    std::vector<float> keep_k = pr.k;
    const int before[2] = {paths.runs[0], paths.runs[1]};
    const pc::AttentionPath p = tuner.run(a, nullptr, [&](pc::AttentionPath q) { paths(a, q); }, 0);
    expect(p == kept && paths.runs[(int)p] == before[(int)p] + 1 && paths.runs[1 - (int)p] == before[1 - (int)p],
           std::string("out over k, its shape kept, runs the kept path (") + name_of(kept) + ") once " + label);
    pr.k = keep_k;
  }
}

}  // namespace

void check_tune() {
  // A head over many keys (the encoders' kind of call), 8 heads with a mask, rows that
  // take the padded copies; bf16 and fp16.
  const AttentionShape shapes[] = {
      {1, 1, 32, 600, 40, 40, false, false},
      {2, 8, 20, 48, 16, 16, false, true},
      {1, 2, 17, 130, 13, 13, true, false},
      {1, 1, 16, 64, 16, 16, false, false},  // fast enough emulated to be timed kAttentionTuneRuns times
  };
  for (const AttentionShape& s : shapes)
    for (DType dt : {DType::BFloat16, DType::Float16}) check_shape(s, dt, 0);
  // The fused kernel the faster: the first call's last timed run is the products', so
  // the call ends with one more of the fused kernel's.
  check_shape(shapes[2], DType::BFloat16, 250);
  check_oom(shapes[0], DType::BFloat16);
  check_untimed(shapes[1], DType::BFloat16);
}

}  // namespace perceiver::emu::check
