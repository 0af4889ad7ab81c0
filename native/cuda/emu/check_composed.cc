// attention_gemm.cu's composed forward, row log-sum-exp and gradient on the emulation
// (its products through host.cc's loop in place of cuBLASLt), against double-precision
// references.
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention_gemm.h"
#include "attention_problem.h"
#include "check.h"

namespace perceiver::emu::check {

using perceiver::AttentionArgs;

namespace {

struct ComposedCase {
  const char* name;
  AttentionShape s;  // with a mask, batch row 0's query 3 has every key masked too
  bool dropout;      // keep 80%, scale 1.25
  bool same_kv = false;  // v is k's own array (Dqk == Dv), as the image encoders' call has it
  // The mask a view broadcast over the queries (stride 0), as the op layer passes a
  // padding mask [B, 1, Nk]: every query row of a batch row reads its first.
  bool broadcast_mask = false;
};

void check_case(const ComposedCase& c, DType dt, bool chunked) {
  namespace pc = perceiver::cuda;
  const AttentionShape& s = c.s;
  AttentionProblem pr(s, dt, 4321, true);
  if (s.mask && c.broadcast_mask) {
    // Batch row 0's keys from 64 on masked (whole chunks, with 64-key chunks); the call
    // reads only each batch row's first query row (below).
    pr.mask_row(0, 0, 64);
    pr.broadcast_mask();
  } else if (s.mask) {
    pr.mask_row(0, 3);
    // With 64-key chunks: a row whose first chunk is wholly masked (its running max
    // starts at -inf after a chunk), and one whose later chunks are.
    if (s.nq > 5 && s.nk > 128) pr.mask_row(0, 4, 0, 70), pr.mask_row(0, 5, 64);
  }
  AttentionArgs& a = pr.a;
  if (c.same_kv) pr.share_kv();  // the reference reads v, which holds k's values; the call reads k twice
  const int64_t rows = s.B * s.H * s.nq;
  std::vector<float> lse(rows + 1), gq(s.B * s.nq * s.H * s.dqk + 1), gk(s.B * s.nk * s.H * s.dqk + 1),
      gv(s.B * s.nk * s.H * s.dv + 1);
  a.lse = lse.data();
  if (c.dropout) a.dropout_seed = 99, a.dropout_keep_below = 0.8f, a.dropout_scale = 1.25f;
  const AttentionProblem::Reference ref = pr.reference();
  if (c.broadcast_mask) pr.spoil_unread_mask_rows();

  perceiver::cuda::GemmContext ctx{};
  pc::DeviceAllocator alloc(0);
  const size_t chunk_bytes = chunked ? 1 : pc::kAttentionChunkBytes;  // 1: chunks of 64 keys
  char label[200];
  std::snprintf(label, sizeof label, "%-13s %-8s %s %s%s", c.name, dtype_name(dt), chunked ? "64-key chunks" : "one chunk    ",
                s.label().c_str(), c.dropout ? " dropout" : "");
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
  // The first n elements of an array as stored.
  auto got = [&](const std::vector<float>& t, size_t n) {
    std::vector<double> r(n);
    for (size_t i = 0; i < n; i++) r[i] = pr.at(t, (int64_t)i);
    return r;
  };

  pc::attention_forward_gemm(ctx, alloc, a, nullptr, chunk_bytes);
  // +inf (no key kept) compares as equal to +inf, and as 0 apart from it.
  std::vector<double> wl(rows), gl(rows);
  for (int64_t r = 0; r < rows; r++) {
    wl[r] = std::isinf(ref.lse[r]) ? 0 : ref.lse[r];
    gl[r] = std::isinf(lse[r]) != std::isinf(ref.lse[r]) ? NAN : std::isinf(lse[r]) ? 0 : lse[r];
  }
  report("forward", {{"out", worst_of(ref.o, got(pr.out, ref.o.size()))}, {"lse", worst_of(wl, gl)}});

  // The gradient from the forward's out as stored, with the forward's row statistics
  // and with them recomputed.
  const AttentionProblem::Gradient w = pr.gradient(ref);
  for (bool reuse_lse : {true, false}) {
    perceiver::AttentionBackwardArgs g{a, pr.gout.data(), gq.data(), gk.data(), gv.data()};
    if (!reuse_lse) g.a.lse = nullptr;
    for (auto* t : {&gq, &gk, &gv})
      for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, NAN);
    pc::attention_backward(ctx, alloc, g, nullptr, chunk_bytes);
    report(reuse_lse ? "gradient" : "gradient, own lse",
           {{"dq", worst_of(w.q, got(gq, w.q.size()))}, {"dk", worst_of(w.k, got(gk, w.k.size()))},
            {"dv", worst_of(w.v, got(gv, w.v.size()))}});
  }
}

}  // namespace

void check_composed(const std::string& filter) {
  // Several heads (products over the heads of a batch row), one head and more batch
  // rows than heads (products over the batch rows of a head), masks with wholly masked
  // rows and chunks, dropout, rows that go through padded copies (16-bit rows of 20,
  // 12 or 13 elements, odd strides), rows over 1024 keys (a block per row), and no
  // keys at all.
  const ComposedCase cases[] = {
      // name, {B, H, Nq, Nk, Dqk, Dv, odd stride, mask}, dropout
      {"heads-mask", {2, 3, 20, 150, 16, 24, false, true}, false},
      {"one-head", {3, 1, 17, 130, 20, 12, false, true}, true},
      {"heads-dropout", {1, 2, 9, 70, 8, 8, true, false}, true},
      {"batch-heads", {5, 2, 11, 140, 16, 24, false, true}, false},
      {"batch-odd", {3, 2, 7, 90, 13, 13, true, false}, true},
      {"long-rows", {1, 2, 6, 1500, 20, 12, false, true}, false},
      {"shared-kv", {3, 1, 9, 200, 13, 13, true, true}, false, true},
      {"broadcast-mask", {2, 4, 10, 150, 16, 24, false, true}, false, false, true},
      {"no-keys", {2, 2, 5, 0, 8, 8, false, false}, false},
  };
  for (const ComposedCase& c : cases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16})
      for (bool chunked : {false, true}) check_case(c, dt, chunked);
  }
}

}  // namespace perceiver::emu::check
