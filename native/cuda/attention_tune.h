// Which of the two forwards an attention call takes where both serve it: the fused
// tensor-core kernel (attention.cu: 16-bit heads within one pass; float32 through the
// 3xTF32 kernel where its switch is on) or the products (attention_gemm.cu), chosen by
// timing both on
// the first call of each shape, as the GEMM's candidate tuning (gemm.cu) times
// cuBLASLt's algorithms. Neither wins everywhere, and where the line runs depends on
// the device: on an H200 the fused kernel took 0.016 ms against the products' 0.045 at
// 8 heads of 128 over 512 latents, but the ImageNet encoder's one head of 261 over
// 50,176 pixels ran at 46 TFLOP/s fused, where torch's own products took 0.42 ms to
// our 0.58. Rules by shape (PERCEIVER_CUDA_ATTENTION_LONG_KEYS) are guesses until a
// GPU has timed both at every shape; a timing on the user's own device is not.
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "../backend.h"
#include "common.cuh"

namespace perceiver::cuda {

enum class AttentionPath : int { Fused = 0, Products = 1 };

// PERCEIVER_CUDA_ATTENTION_TUNE: unset, empty or "1": 1 (tune); "verbose": 2 (also
// print each choice and its timings to stderr); "0": 0 (the fused kernel wherever it
// serves, as before: the same path, so the same bits, in every process).
int attention_tune_mode_from_env();

// Timed runs of each path after one untimed (module loading, scratch allocation): the
// best of them counts.
constexpr int kAttentionTuneRuns = 3;
// A call whose first timed run takes longer than this is timed once per path: the
// timing's cost is repaid only by calls to come.
constexpr float kAttentionTuneLongMs = 20.f;
// The products must beat the fused kernel by 10% to be taken: the fused kernel needs
// no scratch (the products hold up to a GiB per chunk of keys), and a choice near the
// line would flip with the timings' noise from one process to the next.
constexpr float kAttentionTuneMargin = 0.9f;

// What the timing of one shape found.
struct AttentionTuning {
  float fused_ms = INFINITY;     // best timed run; infinite where the path did not run
  float products_ms = INFINITY;  // infinite where the products ran out of memory
  AttentionPath path = AttentionPath::Fused;
};

class AttentionTuner {
 public:
  // Calls of fewer flops (2 B H Nq Nk (Dqk + Dv)) than min_flops take the fused kernel
  // untimed: at that size launches, not the products' rates, decide.
  explicit AttentionTuner(double min_flops) : min_flops_(min_flops) {}

  // Enqueues the forward of `a` on `stream` by the path its shape takes, through
  // run(path) (which enqueues that path's forward and throws on failure), and returns
  // the path. The first call of a shape runs both paths on its own operands, times
  // them and keeps the faster for the process; its a.out and a.lse end as the chosen
  // path's last run left them, so the call's result is that path's. A products run
  // that runs out of memory leaves the fused kernel's; any other error is thrown.
  // Calls that cannot be run more than once (out or lse overlapping an input, a stream
  // capturing a graph) and whose shape has nothing kept yet, or that are below
  // min_flops, take the fused kernel, untimed and uncached. verbosity 2 prints each timing to stderr.
  AttentionPath run(const AttentionArgs& a, cudaStream_t stream, const std::function<void(AttentionPath)>& run,
                    int verbosity);

  // The timing of a's shape, if one has been kept (for checks and logs).
  bool find(const AttentionArgs& a, AttentionTuning* t) const;

 private:
  using Key = std::array<int64_t, 29>;  // a fixed array: no allocation per call
  static Key key_of(const AttentionArgs& a);
  bool worth_timing(const AttentionArgs& a) const;
  // Whether the call may run more than once: out and lse overlap no input, and the
  // stream is not capturing a graph.
  static bool rerunnable(const AttentionArgs& a, cudaStream_t stream);
  AttentionTuning tune(const AttentionArgs& a, cudaStream_t stream, const std::function<void(AttentionPath)>& run);

  double min_flops_;
  mutable std::mutex mu_;
  std::map<Key, AttentionTuning> kept_;
  EventTimer timer_;
};

// "[B32 H1 Nq512 Nk50176 Dqk261 Dv261 bfloat16 mask lse]", for logs.
std::string describe_attention(const AttentionArgs& a);

}  // namespace perceiver::cuda
