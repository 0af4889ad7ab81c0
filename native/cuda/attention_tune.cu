// AttentionTuner (attention_tune.h): the first call of each shape times the fused kernel
// against the products on the call's own operands, on its stream, and the faster is
// kept for the process.
#include "attention_tune.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "../dtype.h"
#include "../error.h"
#include "attention.h"

namespace perceiver::cuda {

int attention_tune_mode_from_env() {
  const char* e = std::getenv("PERCEIVER_CUDA_ATTENTION_TUNE");
  if (!e || !*e || std::strcmp(e, "1") == 0) return 1;
  if (std::strcmp(e, "verbose") == 0) return 2;
  return std::strcmp(e, "0") == 0 ? 0 : 1;
}

std::string describe_attention(const AttentionArgs& a) {
  char s[200];
  std::snprintf(s, sizeof s, "[B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld %s%s%s]", (long long)a.batch, (long long)a.heads,
                (long long)a.nq, (long long)a.nk, (long long)a.dqk, (long long)a.dv, dtype_name(a.dtype),
                a.mask ? " mask" : "", a.lse ? " lse" : "");
  return s;
}

namespace {

// The bytes [lo, hi) an array of dims (count, stride in elements) spans from p, or
// nothing (lo == hi) where it holds no element. Negative strides: the whole address
// space, so that such a call counts as overlapping and is not timed.
struct Span {
  uintptr_t lo = 0, hi = 0;
};
Span span_of(const void* p, int64_t elem_bytes, std::initializer_list<std::pair<int64_t, int64_t>> dims) {
  int64_t last = 0;
  for (const auto& [n, stride] : dims) {
    if (n <= 0) return {};
    if (stride < 0) return {0, UINTPTR_MAX};
    last += (n - 1) * stride;
  }
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p);
  return {lo, lo + (uintptr_t)((last + 1) * elem_bytes)};
}
bool overlap(Span x, Span y) { return x.lo < x.hi && y.lo < y.hi && x.lo < y.hi && y.lo < x.hi; }

}  // namespace

// Everything that decides which paths serve a call and what each costs: the sizes,
// every stride, the operands' 16-byte alignment (which takes the padded copies), k and
// v being one array, the mask's layout and whether the row statistics are asked for.
AttentionTuner::Key AttentionTuner::key_of(const AttentionArgs& a) {
  auto mod16 = [](const void* p) { return (int64_t)(reinterpret_cast<uintptr_t>(p) % 16); };
  return {(int64_t)a.dtype, a.batch, a.heads, a.nq, a.nk, a.dqk, a.dv,
          a.q_sb, a.q_sn, a.q_sh, a.k_sb, a.k_sn, a.k_sh, a.v_sb, a.v_sn, a.v_sh, a.o_sb, a.o_sn, a.o_sh,
          mod16(a.q), mod16(a.k), mod16(a.v), mod16(a.out), a.k == a.v ? 1 : 0,
          a.mask ? 1 : 0, a.mask ? a.m_sb : 0, a.mask ? a.m_sq : 0, a.mask ? a.m_sk : 0, a.lse ? 1 : 0};
}

bool AttentionTuner::worth_timing(const AttentionArgs& a) const {
  const double flops = 2.0 * (double)a.batch * (double)a.heads * (double)a.nq * (double)a.nk * (double)(a.dqk + a.dv);
  // Empty products (no keys, zero-width heads) are the fused kernel's alone.
  return flops >= min_flops_ && a.nq > 0 && a.nk > 0 && a.dqk > 0 && a.dv > 0 && a.batch > 0 && a.heads > 0;
}

bool AttentionTuner::rerunnable(const AttentionArgs& a, cudaStream_t stream) {
  const int64_t eb = (int64_t)dtype_size(a.dtype);
  const Span out = span_of(a.out, eb, {{a.batch, a.o_sb}, {a.nq, a.o_sn}, {a.heads, a.o_sh}, {a.dv, 1}});
  const Span lse = a.lse ? span_of(a.lse, 4, {{a.batch * a.heads * a.nq, 1}}) : Span{};
  const Span in[] = {span_of(a.q, eb, {{a.batch, a.q_sb}, {a.nq, a.q_sn}, {a.heads, a.q_sh}, {a.dqk, 1}}),
                     span_of(a.k, eb, {{a.batch, a.k_sb}, {a.nk, a.k_sn}, {a.heads, a.k_sh}, {a.dqk, 1}}),
                     span_of(a.v, eb, {{a.batch, a.v_sb}, {a.nk, a.v_sn}, {a.heads, a.v_sh}, {a.dv, 1}}),
                     a.mask ? span_of(a.mask, 1, {{a.batch, a.m_sb}, {a.nq, a.m_sq}, {a.nk, a.m_sk}}) : Span{}};
  for (const Span& s : in)
    if (overlap(s, out) || overlap(s, lse)) return false;
  if (overlap(out, lse)) return false;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return capture == cudaStreamCaptureStatusNone;
}

AttentionTuning AttentionTuner::tune(const AttentionArgs& a, cudaStream_t stream,
                                     const std::function<void(AttentionPath)>& run) {
  AttentionTuning t;
  bool products_ok = true;
  int last = -1;  // the path whose run last completed; -1 after one that failed
  // Throws what a run throws, but for the products running out of memory: that path is
  // then out of the running.
  auto time_run = [&](AttentionPath p) -> float {
    try {
      const float ms = timer_.time("attention (tuning)", stream, [&] { run(p); });
      last = (int)p;
      return ms;
    } catch (const Error& e) {
      if (p != AttentionPath::Products || e.kind != ErrorKind::Memory) throw;
      products_ok = false;
      last = -1;
      return INFINITY;
    }
  };
  // Once each untimed (modules load, scratch is allocated), then alternately.
  time_run(AttentionPath::Fused);
  time_run(AttentionPath::Products);
  for (int i = 0; i < kAttentionTuneRuns && products_ok; i++) {
    t.fused_ms = std::min(t.fused_ms, time_run(AttentionPath::Fused));
    t.products_ms = std::min(t.products_ms, time_run(AttentionPath::Products));
    if (t.fused_ms > kAttentionTuneLongMs) break;
  }
  if (!products_ok) {
    t.products_ms = INFINITY;
    if (!std::isfinite(t.fused_ms)) t.fused_ms = time_run(AttentionPath::Fused);
  }
  t.path = t.products_ms < kAttentionTuneMargin * t.fused_ms ? AttentionPath::Products : AttentionPath::Fused;
  // The call's result is the chosen path's, whole: a products run that failed may have
  // written part of it.
  if (last != (int)t.path) run(t.path);
  return t;
}

AttentionPath AttentionTuner::run(const AttentionArgs& a, cudaStream_t stream,
                                  const std::function<void(AttentionPath)>& run, int verbosity) {
  if (!worth_timing(a)) {
    run(AttentionPath::Fused);
    return AttentionPath::Fused;
  }
  // A kept path runs once, which any call allows, rerunnable or not.
  const Key key = key_of(a);
  int kept = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = kept_.find(key);
    if (it != kept_.end()) kept = (int)it->second.path;
  }
  if (kept >= 0) {
    run((AttentionPath)kept);
    return (AttentionPath)kept;
  }
  if (!rerunnable(a, stream)) {
    run(AttentionPath::Fused);
    return AttentionPath::Fused;
  }
  const AttentionTuning t = tune(a, stream, run);
  // The fused side's kernel by name: the timings say which kernel they timed.
  if (verbosity >= 2)
    std::fprintf(stderr, "perceiver cuda: attention tuning %s: fused %.4f ms (%s), products %.4f ms; takes %s\n",
                 describe_attention(a).c_str(), t.fused_ms, detail::attention_last_kernel(), t.products_ms,
                 t.path == AttentionPath::Products ? "the products" : "the fused kernel");
  std::lock_guard<std::mutex> lock(mu_);
  kept_[key] = t;
  return t.path;
}

bool AttentionTuner::find(const AttentionArgs& a, AttentionTuning* t) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = kept_.find(key_of(a));
  if (it == kept_.end()) return false;
  *t = it->second;
  return true;
}

}  // namespace perceiver::cuda
