// Layout probes for the attention kernels: inputs under which every query attends to
// exactly one key, and V holds, exactly, either the index of its key or of its column.
// The output then says which V element each output element read: a kernel whose shared
// memory layout or fragments are misread (a descriptor's strides, an ldmatrix address)
// shows where, on its first failing run, where random inputs only say "wrong". For the
// GPU harness (attention_check.cu) and the CPU emulation (emu/check_attention.cc), on
// one batch and one head, dense rows, float16 (integers to 2048 are exact).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace perceiver {

struct AttentionProbe {
  enum Kind { Keys, Columns };
  Kind kind;
  int64_t nq, nk, dqk, dv;
  float scale;                // large: the one matching key takes all of the softmax
  std::vector<float> q, k, v; // [nq][dqk], [nk][dqk], [nk][dv]

  // Query i attends to key i % nk (nk = min(dqk, 128): up to two 64-key tiles): Q's row
  // and K's row are one-hot on that key's coordinate, so their product is 1 there and 0
  // at every other key, and the scale makes the softmax one-hot (e^-40 elsewhere).
  AttentionProbe(Kind kind_, int64_t nq_, int64_t dqk_, int64_t dv_)
      : kind(kind_), nq(nq_), nk(std::min<int64_t>(dqk_, 128)), dqk(dqk_), dv(dv_), scale(40.f),
        q((size_t)(nq_ * dqk_), 0.f), k((size_t)(std::min<int64_t>(dqk_, 128) * dqk_), 0.f),
        v((size_t)(std::min<int64_t>(dqk_, 128) * dv_)) {
    for (int64_t i = 0; i < nq; i++) q[(size_t)(i * dqk + key_of(i))] = 1.f;
    for (int64_t j = 0; j < nk; j++) k[(size_t)(j * dqk + j)] = 1.f;
    for (int64_t j = 0; j < nk; j++)
      for (int64_t d = 0; d < dv; d++) v[(size_t)(j * dv + d)] = (float)(kind == Keys ? j + 1 : d + 1);
  }
  int64_t key_of(int64_t i) const { return i % nk; }
  const char* name() const { return kind == Keys ? "keys" : "columns"; }

  // out: [nq][dv]. "ok", or how many elements read the wrong V element and a few of
  // them, the first of each 8 x 8 block of the output (a core matrix's worth): query
  // row, output column, and the key or column they read (or a value that is no index:
  // several keys mixed, or a value never written).
  std::string report(const std::vector<float>& out) const {
    int64_t wrong = 0;
    std::string first;
    int shown = 0;
    std::vector<bool> block_shown((size_t)(((nq + 7) / 8) * ((dv + 7) / 8)), false);
    for (int64_t i = 0; i < nq; i++)
      for (int64_t d = 0; d < dv; d++) {
        const float want = (float)(kind == Keys ? key_of(i) + 1 : d + 1);
        const float got = out[(size_t)(i * dv + d)];
        if (got == want) continue;
        wrong++;
        const size_t block = (size_t)((i / 8) * ((dv + 7) / 8) + d / 8);
        if (shown == 12 || block_shown[block]) continue;
        block_shown[block] = true;
        shown++;
        char buf[96];
        const double idx = (double)got - 1;
        if (std::isfinite(got) && idx == std::floor(idx) && idx >= 0)
          std::snprintf(buf, sizeof buf, "; q%lld d%lld read %s %lld (want %lld)", (long long)i, (long long)d,
                        kind == Keys ? "key" : "column", (long long)idx, (long long)(want - 1));
        else
          std::snprintf(buf, sizeof buf, "; q%lld d%lld got %.4g (want %s %lld)", (long long)i, (long long)d,
                        (double)got, kind == Keys ? "key" : "column", (long long)(want - 1));
        first += buf;
      }
    if (!wrong) return "ok";
    return std::to_string(wrong) + " of " + std::to_string(nq * dv) + " wrong" + first;
  }
};

// The harnesses' names of the forward paths (attention_forward_forced's path numbers),
// as cuda_attention_check's --paths and its lines, and both harnesses' probe lines, give
// them.
inline const char* attention_path_name(int p) {
  return p == 1 ? "tc" : p == 2 ? "simt" : p == 3 ? "tc1" : p == 4 ? "tcw" : p == 5 ? "gemm" : p == 6 ? "gemm64"
       : p == 7 ? "tco" : p == 8 ? "tcf" : p == 9 ? "tcf8" : p == 10 ? "tcf2" : p == 11 ? "tcg" : p == 12 ? "tcg1"
       : p == 13 ? "tcx" : p == 14 ? "tcf3" : p == 15 ? "tcgp" : p == 16 ? "tcgk" : "auto";
}

}  // namespace perceiver
