// GEMM through cuBLASLt, which is column-major: a row-major C = op(A) op(B) is
// computed as the column-major C^T = op(B)^T op(A)^T, i.e. with the operands
// swapped and no data moved. Bias and ReLU (and tanh-GELU in 16 bits) are fused as
// cuBLASLt epilogues; the exact (erf) GELU, float32's tanh-GELU, and any epilogue cuBLASLt refuses for a
// layout, run as a second elementwise pass (bias_act, elementwise.cu). float32 computes in
// float32 (no TF32 unless PERCEIVER_CUDA_TF32=1, or =3 for three TF32 products:
// gemm_split.cuh) to stay within 1e-5 of the CPU; 16-bit types accumulate in float32.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common.cuh"
#include "gemm.h"
#include "gemm_search.h"
#include "gemm_split.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

cudaDataType_t lt_type(DType t) {
  switch (t) {
    case DType::Float32: return CUDA_R_32F;
    case DType::Float16: return CUDA_R_16F;
    case DType::BFloat16: return CUDA_R_16BF;
    default: throw_type(std::string("matmul: the cuda kernel takes float32, float16 or bfloat16, got ") + dtype_name(t));
  }
}

// The largest power of two (up to 256) dividing every address the GEMM touches
// through this operand; cuBLASLt assumes 256 unless told, and views are not.
uint32_t alignment(const void* p, int64_t ld, int64_t batch_stride, size_t es) {
  uint64_t bits = (uint64_t)(uintptr_t)p | (uint64_t)ld * es | (uint64_t)batch_stride * es | 256;
  return (uint32_t)(bits & (~bits + 1));
}

// The names of the statuses a matmul call returns, for error messages.
const char* status_name(lt::Status st) {
  switch (st) {
    case 1: return " (NOT_INITIALIZED)";
    case 3: return " (ALLOC_FAILED)";
    case 7: return " (INVALID_VALUE)";
    case 8: return " (ARCH_MISMATCH)";
    case 13: return " (EXECUTION_FAILED)";
    case 14: return " (INTERNAL_ERROR)";
    case 15: return " (NOT_SUPPORTED)";
    default: return "";
  }
}

// A failed product's arguments, so that a refusal can be reproduced from the message.
std::string describe(const MatmulArgs& a, uint32_t al_a, uint32_t al_b, uint32_t al_c) {
  auto n = [](int64_t v) { return std::to_string(v); };
  return std::string(dtype_name(a.dtype)) + (a.c_float32 ? " (C float32)" : "") + " [" + n(a.m) + ", " + n(a.k) +
         "] x [" + n(a.k) + ", " + n(a.n) + "] batch " + n(a.batch) + (a.trans_a ? ", A transposed" : "") +
         (a.trans_b ? ", B transposed" : "") + ", ld " + n(a.lda) + "/" + n(a.ldb) + "/" + n(a.ldc) + ", batch strides " +
         n(a.stride_a) + "/" + n(a.stride_b) + "/" + n(a.stride_c) + ", alignments " + n(al_a) + "/" + n(al_b) + "/" +
         n(al_c) + " bytes, beta " + std::to_string(a.beta) + (a.addend ? " (an addend as C)" : "");
}

void check_lt(const char* what, lt::Status st) {
  if (st != 0) throw Error(ErrorKind::Runtime, std::string("matmul: ") + what + " failed with cublasStatus " + std::to_string(st));
}

// RAII for the per-call descriptors.
struct Descs {
  const lt::Api* api;
  lt::MatmulDesc op = nullptr;
  lt::MatrixLayout x = nullptr, y = nullptr, d = nullptr;
  lt::Preference pref = nullptr;
  ~Descs() {
    if (pref) api->pref_destroy(pref);
    if (d) api->layout_destroy(d);
    if (y) api->layout_destroy(y);
    if (x) api->layout_destroy(x);
    if (op) api->desc_destroy(op);
  }
};

using Key = std::array<int64_t, 21>;
std::mutex cache_mu;
std::map<Key, std::pair<bool, lt::Algo>> algo_cache;  // bool: an algorithm exists

std::atomic<int> tune_override{-1};  // set_gemm_tune_mode's, for the harness
std::atomic<int> tf32_override{-1};  // set_tf32_mode's

// Products below this many flops stay in float32 with PERCEIVER_CUDA_TF32=3: the two
// split passes and two more launches must be repaid by the tensor cores' rate. On an
// H200 (cuda_gemm_check, 2026-11-28) three TF32 products took 0.73x the CUDA cores'
// speed at 1024^3 (2^31 flops), 0.77-1.35x at 2^33, 1.44x at 2048^3 and 2.19x at 4096^3.
constexpr double kTf32x3MinFlops = double(int64_t(1) << 34);

std::atomic<int> align_override{-1};  // set_gemm_align_mode's
std::atomic<int> splitk_override{-1};  // set_gemm_splitk_mode's

// Products below this many flops keep unaligned operands with PERCEIVER_CUDA_GEMM_ALIGN=1:
// the copies and their launches must be repaid by the aligned kernels' rate (an
// estimate until a GPU has timed both: cuda_gemm_check's "aligned copies" section).
constexpr double kAlignMinFlops = double(1 << 30);

// Autotuning (on by default). cuBLASLt's heuristic ranks the algorithms by a model of
// their cost, and the product takes its first. On an H200 the models' mid-sized
// products ran well below the large ones' rate: the language model's [8192, 1280] x
// [1280, 1280] at 389 TFLOP/s (0.069 ms, 57% of its batch-32 forward), where 4096^3
// runs at 650. Whether another of the heuristic's algorithms (other tiles, split-K) is
// faster only a timing can say, so the first call of each shape times up to kTuneAlgos
// of them on its own operands and keeps the fastest for the process, as cuDNN's
// benchmark mode and PyTorch's TunableOp do. On an H200 (2026-11-28) that took that
// product with its residual as C from 0.067 to 0.047 ms (cuda_gemm_check), and the
// language model's batch-32 bf16 forward from 2828 to 3177 sequences/s. Products under
// kTuneMinFlops keep the heuristic's first untimed: there the timings' noise picked
// slower algorithms (0.0101 against the first's 0.0085 ms at 2^30 flops), and a choice
// by timing would give the small products of tests and tools other bits in each process.
constexpr int kTuneAlgos = 16;
constexpr double kTuneMinFlops = double(int64_t(1) << 31);
constexpr int kTuneRuns = 5;          // timed runs of each algorithm, after one untimed
constexpr float kTuneMaxMs = 2.f;     // longer products run near peak: not worth the timing
constexpr float kTuneMargin = 0.97f;  // another algorithm must beat the first by 3%

// PERCEIVER_CUDA_GEMM_TUNE=search (a candidate, off by default; "search-verbose" also
// prints). The heuristic offered 8 algorithms for the language model's [8192, 1280] x
// [1280, 1280] on an H200 (2026-11-28), and its best ran at 556 TFLOP/s (0.0483 ms),
// where 4096^3 runs at 640-680. Its 1280 output columns make 2.4 waves of 128 x 256
// tiles on 132 SMs (3.9 with 160-wide ones, tile 128x160 in cuBLASLt's list). Whether
// any tile, stage count or cluster shape outside the heuristic's eight beats them only a
// timing can say: the search times, beside the heuristic's, up to kSearchMax
// configurations that cublasLtMatmulAlgoCheck accepts (search_configs), once per shape.
// On an H200 (2026-11-28, cuBLAS 13.1) it did not pay: at every bf16 product of the models
// and at 4096^3 and 8192^3 the fastest of 264 was one of the heuristic's eight (that
// product: 0.0396 ms with 128x128 tiles, 0.0411 with 128x160). It stays as a diagnostic.
constexpr int kSearchIds = 128;       // algorithm ids asked of cuBLASLt
constexpr int kSearchMax = 256;       // configurations timed beside the heuristic's
constexpr int kSearchChecks = 32768;  // AlgoCheck calls per shape (what an id leaves, the next may use)
constexpr double kSearchHostMs = 3000;  // and at most this long on the host (their cost is unmeasured)
constexpr int kSearchCustom = 3;      // custom options 0..3 of those that have more
constexpr float kSearchSlow = 1.5f;   // one run this much over the best so far ends a candidate
constexpr int kSearchFinal = 5;       // the fastest timed again, with the first
constexpr int kSearchFinalRuns = 20;

// The indices of ms's finite times, fastest first (ties in index order).
std::vector<int> by_time(const std::vector<float>& ms) {
  std::vector<int> order;
  for (int i = 0; i < (int)ms.size(); i++)
    if (std::isfinite(ms[(size_t)i])) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return ms[(size_t)x] < ms[(size_t)y]; });
  return order;
}

// Times run(algo) for the usable results and returns the index of the one to keep (0,
// cuBLASLt's first, unless another beats it by the margin), or -1 where none runs.
// skip_slow (the search's hundreds of configurations): a candidate whose first timed run
// takes over kSearchSlow times the best so far gets no more runs.
int fastest_algo(const std::function<lt::Status(const lt::Algo&)>& run, const lt::HeuristicResult* r, int n,
                 size_t workspace_bytes, cudaStream_t s, std::vector<float>* ms, bool skip_slow = false) {
  EventTimer timer;
  ms->assign((size_t)n, INFINITY);
  float best = INFINITY;
  for (int i = 0; i < n; i++) {
    if (r[i].state != 0 || r[i].workspace_size > workspace_bytes || run(r[i].algo) != 0) continue;
    bool ok = true;
    if (skip_slow && std::isfinite(best)) {
      const float t1 = timer.time("matmul (tuning)", s, [&] { ok = run(r[i].algo) == 0; });
      if (!ok) continue;
      if (t1 > kSearchSlow * best) {
        (*ms)[i] = t1;
        continue;
      }
    }
    const float t = timer.time("matmul (tuning)", s, [&] {
      for (int k = 0; k < kTuneRuns && ok; k++) ok = run(r[i].algo) == 0;
    });
    if (ok) (*ms)[i] = t / kTuneRuns, best = std::min(best, (*ms)[i]);
    if (i == 0 && ok && (*ms)[0] > kTuneMaxMs) break;
  }
  // The indices whose figures decide: all, or (skip_slow) the first and the kSearchFinal
  // fastest timed again over kSearchFinalRuns, since the fastest of hundreds of five-run
  // means is partly the luckiest (the rest keep theirs, which lost already).
  std::vector<int> finalists = by_time(*ms);
  if (skip_slow) {
    finalists.resize(std::min(finalists.size(), (size_t)kSearchFinal));
    if (std::isfinite((*ms)[0]) && std::find(finalists.begin(), finalists.end(), 0) == finalists.end())
      finalists.push_back(0);
    for (int i : finalists) {
      bool ok = true;
      const float t = timer.time("matmul (tuning)", s, [&] {
        for (int k = 0; k < kSearchFinalRuns && ok; k++) ok = run(r[i].algo) == 0;
      });
      (*ms)[i] = ok ? t / kSearchFinalRuns : INFINITY;
    }
  }
  int pick = -1;
  for (int i : finalists)
    if (std::isfinite((*ms)[i]) && (pick < 0 || (*ms)[i] < (*ms)[pick])) pick = i;
  if (pick > 0 && std::isfinite((*ms)[0]) && (*ms)[pick] > kTuneMargin * (*ms)[0]) pick = 0;
  return pick;
}

// Whether the heuristic's first runs this product within kTuneMaxMs (one run after an
// untimed one): past it, tuning times no other candidate, so the search is not made.
bool short_product(const std::function<lt::Status(const lt::Algo&)>& run, const lt::Algo& first, cudaStream_t s) {
  if (run(first) != 0) return false;
  EventTimer timer;
  bool ok = true;
  const float ms = timer.time("matmul (tuning)", s, [&] { ok = run(first) == 0; });
  return ok && ms <= kTuneMaxMs;
}

// An algorithm's configuration, for the tuning log: "id 66 tile 23 stages 35 swizzle 0
// custom 0 cluster 3 splitk 1" (cublasLt.h's numbering: tile 23 is 128x256, cluster 3
// is 2x1x1).
std::string describe_algo(const lt::Api& api, const lt::Algo& a) {
  if (!api.algo_config_get) return "";
  auto get = [&](int attr, size_t size) {
    uint32_t v = 0;  // little-endian: a uint16_t attribute lands in the low half
    size_t w = 0;
    return api.algo_config_get(&a, attr, &v, size, &w) == 0 ? std::to_string(v) : std::string("?");
  };
  return "id " + get(lt::CONFIG_ID, 4) + " tile " + get(lt::CONFIG_TILE_ID, 4) + " stages " +
         get(lt::CONFIG_STAGES_ID, 4) + " swizzle " + get(lt::CONFIG_CTA_SWIZZLING, 4) + " custom " +
         get(lt::CONFIG_CUSTOM_OPTION, 4) + " cluster " + get(lt::CONFIG_CLUSTER_SHAPE_ID, 2) + " splitk " +
         get(lt::CONFIG_SPLITK_NUM, 4);
}

// An algorithm's list capability (tile or stage ids), empty where it has none.
std::vector<uint32_t> cap_ids(const lt::Api& api, const lt::Algo& a, int attr) {
  size_t bytes = 0;
  if (api.algo_cap_get(&a, attr, nullptr, 0, &bytes) != 0 || bytes < sizeof(uint32_t)) return {};
  std::vector<uint32_t> v(bytes / sizeof(uint32_t));
  if (api.algo_cap_get(&a, attr, v.data(), v.size() * sizeof(uint32_t), &bytes) != 0) return {};
  v.resize(std::min(v.size(), bytes / sizeof(uint32_t)));
  return v;
}

// The search's configurations beyond `have` (the heuristic's), at most kSearchMax:
// every algorithm id cuBLASLt has for these types, with each tile and stage count its
// capabilities list, as it comes, then in each of four cluster shapes, swizzled, and
// with custom options 1 to kSearchCustom; those that cublasLtMatmulAlgoCheck accepts for
// this problem within the workspace, and whose minimum alignments the operands meet
// (AlgoCheck does not look at those; al_*: as for the heuristic's preference). Split-K
// is left to the heuristic's list and our own (gemm_split.cuh).
// Order matters where the budgets end the search: each id's checks go over every tile
// at its first stage count before any tile's second, and the configurations are taken
// from each id in turn and each id's tiles in turn (search_order), so that the many
// stage counts of the first tiles do not crowd out the later tiles (128x160 is tile 29,
// after 128x256's 23). *checked: AlgoCheck calls.
std::vector<lt::HeuristicResult> search_configs(const lt::Api& api, lt::Handle h, const Descs& d, int compute,
                                                cudaDataType_t type, cudaDataType_t type_c, size_t workspace_bytes,
                                                uint32_t al_a, uint32_t al_b, uint32_t al_cd,
                                                const std::vector<lt::HeuristicResult>& have, int* checked) {
  *checked = 0;
  if (!api.can_search()) return {};
  int ids[kSearchIds];
  int n_ids = 0;
  if (api.algo_get_ids(h, compute, CUDA_R_32F, type, type, type_c, type_c, kSearchIds, ids, &n_ids) != 0) return {};
  n_ids = std::clamp(n_ids, 0, kSearchIds);
  // found[id][tile], in the order the configurations were found (search_order's).
  std::vector<std::vector<std::vector<lt::HeuristicResult>>> found;
  // Each configuration written differs from the others in some field, so only the
  // heuristic's list can hold the same bytes.
  auto seen = [&](const lt::Algo& a) {
    for (const lt::HeuristicResult& r : have)
      if (std::memcmp(&r.algo, &a, sizeof a) == 0) return true;
    return false;
  };
  // The checks budget is shared: an id that needs fewer leaves the rest to the next.
  int budget = kSearchChecks;  // *checked: what is spent of it
  const auto t0 = std::chrono::steady_clock::now();
  auto out_of_time = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() > kSearchHostMs;
  };
  for (int i = 0; i < n_ids && !out_of_time(); i++) {
    lt::Algo base{};
    if (api.algo_init(h, compute, CUDA_R_32F, type, type, type_c, type_c, ids[i], &base) != 0) continue;
    uint32_t need[4] = {0, 0, 0, 0};  // A, B, C, D in cuBLASLt's terms
    size_t w = 0;
    for (int k = 0; k < 4; k++)
      if (api.algo_cap_get(&base, lt::CAP_MIN_ALIGNMENT_A_BYTES + k, &need[k], sizeof need[k], &w) != 0) need[k] = 0;
    if (need[0] > al_a || need[1] > al_b || need[2] > al_cd || need[3] > al_cd) continue;
    std::vector<uint32_t> tiles = cap_ids(api, base, lt::CAP_TILE_IDS), stages = cap_ids(api, base, lt::CAP_STAGES_IDS);
    if (tiles.empty()) tiles.push_back(0);    // TILE_UNDEFINED: the algorithm's own
    if (stages.empty()) stages.push_back(0);  // STAGES_UNDEFINED
    uint32_t swizzle = 0;
    int32_t custom_max = 0;
    if (api.algo_cap_get(&base, lt::CAP_CTA_SWIZZLING_SUPPORT, &swizzle, sizeof swizzle, &w) != 0) swizzle = 0;
    if (api.algo_cap_get(&base, lt::CAP_CUSTOM_OPTION_MAX, &custom_max, sizeof custom_max, &w) != 0) custom_max = 0;
    custom_max = std::clamp(custom_max, 0, kSearchCustom);
    struct Variant {
      uint32_t swizzle, custom;
      uint16_t cluster;  // CLUSTER_AUTO: not set (cuBLASLt before 11.8 has no such attribute)
    };
    std::vector<Variant> variants = {{0, 0, lt::CLUSTER_AUTO}};
    for (uint16_t c : {lt::CLUSTER_1x1x1, lt::CLUSTER_2x1x1, lt::CLUSTER_1x2x1, lt::CLUSTER_2x2x1})
      variants.push_back({0, 0, c});
    if (swizzle) variants.push_back({1, 0, lt::CLUSTER_AUTO});
    for (int32_t c = 1; c <= custom_max; c++) variants.push_back({0, (uint32_t)c, lt::CLUSTER_AUTO});
    std::vector<std::vector<lt::HeuristicResult>>& per_tile = found.emplace_back(tiles.size());
    const int share = budget / (n_ids - i);  // this id's part of what is left
    int checks = 0;
    bool stop = false;  // this id's share spent, or the search's time
    for (size_t vi = 0; vi < variants.size() && !stop; vi++) {
      const Variant& v = variants[vi];
      lt::Algo with = base;  // the variant's fields, then each tile and stage count
      const uint32_t one = 1;
      if (api.algo_config_set(&with, lt::CONFIG_SPLITK_NUM, &one, sizeof one) != 0 ||
          api.algo_config_set(&with, lt::CONFIG_CTA_SWIZZLING, &v.swizzle, sizeof v.swizzle) != 0 ||
          api.algo_config_set(&with, lt::CONFIG_CUSTOM_OPTION, &v.custom, sizeof v.custom) != 0 ||
          (v.cluster != lt::CLUSTER_AUTO &&
           api.algo_config_set(&with, lt::CONFIG_CLUSTER_SHAPE_ID, &v.cluster, sizeof v.cluster) != 0))
        continue;
      for (size_t si = 0; si < stages.size() && !stop; si++)
        for (size_t ti = 0; ti < tiles.size() && !stop; ti++) {
          stop = checks >= share || (checks % 256 == 255 && out_of_time());
          if (stop) break;
          lt::Algo a = with;
          if (api.algo_config_set(&a, lt::CONFIG_TILE_ID, &tiles[ti], sizeof tiles[ti]) != 0 ||
              api.algo_config_set(&a, lt::CONFIG_STAGES_ID, &stages[si], sizeof stages[si]) != 0)
            continue;
          checks++;
          lt::HeuristicResult r{};
          if (api.algo_check(h, d.op, d.x, d.y, d.d, d.d, &a, &r) != 0 || r.state != 0 ||
              r.workspace_size > workspace_bytes || seen(a))
            continue;
          r.algo = a;
          per_tile[ti].push_back(r);
        }
    }
    budget -= checks;
  }
  *checked = kSearchChecks - budget;
  return search_order(found, (size_t)kSearchMax);
}

// The search's account of one shape (PERCEIVER_CUDA_GEMM_TUNE=search-verbose), for the
// harness's log: how many configurations were timed beside the heuristic's, the
// heuristic's fastest, the five fastest of all with their configurations, and the pick.
void log_search(const lt::Api& api, const std::string& what, uint32_t epi, double flops,
                const std::vector<lt::HeuristicResult>& r, const std::vector<float>& ms, int heuristic_count,
                int checked, double search_ms, int pick) {
  const std::vector<int> order = by_time(ms);
  auto entry = [&](int i) {
    char t[96];
    std::snprintf(t, sizeof t, "#%d %.4f ms %.1f TFLOP/s (", i, ms[(size_t)i], flops / (ms[(size_t)i] * 1e-3) / 1e12);
    return std::string(t) + describe_algo(api, r[(size_t)i].algo) + ")";
  };
  const auto h = std::find_if(order.begin(), order.end(), [&](int i) { return i < heuristic_count; });
  const int best_h = h == order.end() ? -1 : *h;
  char head[160];
  std::snprintf(head, sizeof head, ": %d heuristic and %d searched configurations (%d checked, %.1f ms on the host), %d timed",
                heuristic_count, (int)r.size() - heuristic_count, checked, search_ms, (int)order.size());
  std::string line = "perceiver cuda: matmul search " + what + ", epilogue " + std::to_string(epi) + head;
  line += "; heuristic's fastest " + (best_h >= 0 ? entry(best_h) : std::string("none"));
  line += "; fastest:";
  for (size_t k = 0; k < order.size() && k < 5; k++) line += (k ? ", " : " ") + entry(order[k]);
  std::fprintf(stderr, "%s; keeps #%d\n", line.c_str(), pick);
}

}  // namespace

int gemm_tune_mode() {
  static const int from_env = [] {
    const char* e = std::getenv("PERCEIVER_CUDA_GEMM_TUNE");
    if (!e) return 1;
    if (std::strcmp(e, "0") == 0) return 0;
    if (std::strcmp(e, "search") == 0) return 3;
    if (std::strcmp(e, "search-verbose") == 0) return 4;
    return std::strcmp(e, "verbose") == 0 ? 2 : 1;
  }();
  const int o = tune_override.load();
  return o >= 0 ? o : from_env;
}

void set_gemm_tune_mode(int mode) { tune_override.store(mode); }

int tf32_mode_from_env() {
  const char* e = std::getenv("PERCEIVER_CUDA_TF32");
  return !e || !*e || std::strcmp(e, "0") == 0 ? 0 : std::strcmp(e, "3") == 0 ? 3 : 1;
}
int tf32_mode(const GemmContext& ctx) {
  const int o = tf32_override.load();
  return o >= 0 ? o : ctx.tf32;
}
void set_tf32_mode(int mode) { tf32_override.store(mode); }

int gemm_align_mode() {
  static const int from_env = env_mode("PERCEIVER_CUDA_GEMM_ALIGN") == 1 ? 1 : 0;
  const int o = align_override.load();
  return o >= 0 ? o : from_env;
}
void set_gemm_align_mode(int mode) { align_override.store(mode); }

int gemm_splitk_mode() {
  static const int from_env = env_mode("PERCEIVER_CUDA_GEMM_SPLITK") == 0 ? 0 : 1;
  const int o = splitk_override.load();
  return o >= 0 ? o : from_env;
}
void set_gemm_splitk_mode(int mode) { splitk_override.store(mode); }

namespace {
void matmul_with(GemmContext& ctx, const MatmulArgs& in, cudaStream_t s, bool tf32);
void matmul_unsplit(GemmContext& ctx, const MatmulArgs& a, cudaStream_t s);
double flops_of(const MatmulArgs& a) { return 2.0 * (double)a.batch * (double)a.m * (double)a.n * (double)a.k; }
}  // namespace

void matmul(GemmContext& ctx, const MatmulArgs& a, cudaStream_t s) {
  if (ctx.alloc && gemm_splitk_mode() == 1) {
    const SplitKPlan plan = splitk_plan(a, ctx.sm_count);
    if (plan.splits) {
      // C is first written by the first matrix's sum, after its two slice products: a
      // slice shape cuBLASLt refuses there leaves C as it was, and the product runs
      // whole instead. (Every matrix's slices have the same shapes.)
      int products = 0;
      try {
        Scratch part(*ctx.alloc, plan.bytes);
        splitk_matmul(a, plan, part.p, s, [&](const MatmulArgs& p) {
          matmul_unsplit(ctx, p, s);
          products++;
        });
        check_launch("matmul (split-K)", s);
        return;
      } catch (const std::exception&) {
        if (products >= 2) throw;
      }
    }
  }
  matmul_unsplit(ctx, a, s);
}

namespace {
// A product as it is (the aligned copies and 3xTF32 where they are on).
void matmul_unsplit(GemmContext& ctx, const MatmulArgs& a, cudaStream_t s) {
  const int tf32 = a.dtype == DType::Float32 ? tf32_mode(ctx) : 0;
  const double flops = flops_of(a);
  if (a.dtype != DType::Float32 && ctx.alloc && a.k > 0 && a.m > 0 && a.n > 0 && flops >= kAlignMinFlops &&
      gemm_align_mode() == 1) {
    const AlignPlan plan = align_plan(a);
    if (plan.a || plan.b || plan.c) {
      Scratch copies(*ctx.alloc, plan.bytes);
      aligned_matmul(a, plan, copies.p, s, [&](const MatmulArgs& p) { matmul_with(ctx, p, s, false); });
      check_launch("matmul (aligned copies)", s);
      return;
    }
  }
  if (tf32 == 3 && ctx.alloc && a.k > 0 && a.m > 0 && a.n > 0 && flops >= kTf32x3MinFlops) {
    Scratch split(*ctx.alloc, tf32x3_scratch_bytes(a));
    tf32x3_matmul(a, split.p, s, [&](const MatmulArgs& p) { matmul_with(ctx, p, s, true); });
    check_launch("matmul (3xTF32)", s);
    return;
  }
  matmul_with(ctx, a, s, tf32 == 1);
}

// One cuBLASLt product (tf32: float32 on TF32 tensor cores), with the passes around it.
void matmul_with(GemmContext& ctx, const MatmulArgs& in, cudaStream_t s, bool tf32) {
  MatmulArgs a = in;
  const lt::Api& api = *ctx.api;
  size_t es = dtype_size(a.dtype);
  cudaDataType_t type = lt_type(a.dtype);
  // C's element: float32 where asked (16-bit A and B, no bias or activation).
  const size_t es_c = a.c_float32 ? 4 : es;
  const cudaDataType_t type_c = a.c_float32 ? CUDA_R_32F : type;
  if (a.batch == 0 || a.m == 0 || a.n == 0) return;
  // An addend is C's input where D is the output (out of place: D != C, same layout).
  const void* c_in = a.addend ? (const void*)a.addend : (const void*)a.c;
  if (a.addend) a.beta = 1.f;
  if (a.k == 0 && a.addend) {  // an empty sum: C = addend + bias
    for (int64_t b = 0; b < a.batch; b++)
      CUDA_CHECK("matmul", cudaMemcpy2DAsync((char*)a.c + b * a.stride_c * es_c, a.ldc * es_c,
                                             (const char*)a.addend + b * a.stride_c * es_c, a.ldc * es_c,
                                             a.n * es_c, a.m, cudaMemcpyDeviceToDevice, s));
    if (a.bias) bias_act(a.c, a.bias, a.batch, a.m, a.n, a.ldc, a.stride_c, Activation::None, a.dtype, s);
    return;
  }
  if (a.k == 0) {  // an empty sum: C = act(beta C + bias)
    if (a.beta != 0.f && a.beta != 1.f) throw Error(ErrorKind::Runtime, "matmul: an empty product (k = 0) takes beta 0 or 1");
    if (a.beta == 0.f)
      for (int64_t b = 0; b < a.batch; b++)
        CUDA_CHECK("matmul", cudaMemset2DAsync((char*)a.c + b * a.stride_c * es_c, a.ldc * es_c, 0, a.n * es_c, a.m, s));
    if (a.bias || a.act != Activation::None) bias_act(a.c, a.bias, a.batch, a.m, a.n, a.ldc, a.stride_c, a.act, a.dtype, s);
    return;
  }
  // A shared right-hand side (x [B, M, K] @ W [K, N]) is one tall GEMM: fold the
  // batch into M when A's and C's batches are back to back.
  if (a.batch > 1 && a.stride_b == 0 && !a.trans_a && a.stride_a == a.m * a.lda && a.stride_c == a.m * a.ldc) {
    a.m *= a.batch;
    a.batch = 1;
  }

  // Column-major view: D (n x m, ld ldc) = X (our B) op Y (our A).
  int opx = a.trans_b ? lt::OP_T : lt::OP_N;
  int opy = a.trans_a ? lt::OP_T : lt::OP_N;
  uint64_t x_rows = a.trans_b ? a.k : a.n, x_cols = a.trans_b ? a.n : a.k;
  uint64_t y_rows = a.trans_a ? a.m : a.k, y_cols = a.trans_a ? a.k : a.m;

  // cuBLASLt's GELU epilogue evaluates tanh approximately (measured 5e-5 relative off
  // on an H200): below 16-bit rounding, but not float32's, so float32 takes our exact
  // second pass, as the erf GELU always does.
  // Its ReLU epilogue turns NaN into 0 (an H200, 2026-11-28), where relu() and the CPU
  // keep NaN, so ReLU takes the second pass too.
  // In 16 bits the pass reads the product already rounded to the dtype, and rounds
  // again: the erf GELU's result can be one ulp further off than the CPU's single
  // rounding (within the 16-bit tolerances), where a float32 product in between
  // would double the pass's traffic on every MLP.
  bool lt_gelu = a.act == Activation::GeluTanh && a.dtype != DType::Float32;
  bool act_pass = a.act != Activation::None && !lt_gelu;
  uint32_t epilogue = lt::EPILOGUE_DEFAULT;
  if (a.bias) epilogue = lt_gelu ? lt::EPILOGUE_GELU_BIAS : lt::EPILOGUE_BIAS;
  else if (lt_gelu) epilogue = lt::EPILOGUE_GELU;
  int compute = tf32 && a.dtype == DType::Float32 ? lt::COMPUTE_32F_FAST_TF32 : lt::COMPUTE_32F;

  uint32_t al_x = alignment(a.b, a.ldb, a.stride_b, es), al_y = alignment(a.a, a.lda, a.stride_a, es);
  uint32_t al_d = alignment(a.c, a.ldc, a.stride_c, es_c);
  if (a.addend) al_d = std::min(al_d, alignment(a.addend, a.ldc, a.stride_c, es_c));

  auto build = [&](Descs& d, uint32_t epi) {
    check_lt("cublasLtMatmulDescCreate", api.desc_create(&d.op, compute, CUDA_R_32F));
    check_lt("set TRANSA", api.desc_set(d.op, lt::DESC_TRANSA, &opx, sizeof(opx)));
    check_lt("set TRANSB", api.desc_set(d.op, lt::DESC_TRANSB, &opy, sizeof(opy)));
    check_lt("set EPILOGUE", api.desc_set(d.op, lt::DESC_EPILOGUE, &epi, sizeof(epi)));
    if (epi == lt::EPILOGUE_BIAS || epi == lt::EPILOGUE_GELU_BIAS)
      check_lt("set BIAS_POINTER", api.desc_set(d.op, lt::DESC_BIAS_POINTER, &a.bias, sizeof(a.bias)));
    check_lt("layout of b", api.layout_create(&d.x, type, x_rows, x_cols, a.ldb));
    check_lt("layout of a", api.layout_create(&d.y, type, y_rows, y_cols, a.lda));
    check_lt("layout of c", api.layout_create(&d.d, type_c, a.n, a.m, a.ldc));
    if (a.batch > 1) {
      int32_t count = (int32_t)a.batch;
      lt::MatrixLayout ls[3] = {d.x, d.y, d.d};
      int64_t strides[3] = {a.stride_b, a.stride_a, a.stride_c};
      for (int i = 0; i < 3; i++) {
        check_lt("set BATCH_COUNT", api.layout_set(ls[i], lt::LAYOUT_BATCH_COUNT, &count, sizeof(count)));
        check_lt("set STRIDED_BATCH_OFFSET",
                 api.layout_set(ls[i], lt::LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof(strides[i])));
      }
    }
    check_lt("cublasLtMatmulPreferenceCreate", api.pref_create(&d.pref));
    uint64_t ws = ctx.workspace_bytes;
    check_lt("set MAX_WORKSPACE_BYTES", api.pref_set(d.pref, lt::PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    check_lt("set MIN_ALIGNMENT_A", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_A_BYTES, &al_x, sizeof(al_x)));
    check_lt("set MIN_ALIGNMENT_B", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_B_BYTES, &al_y, sizeof(al_y)));
    check_lt("set MIN_ALIGNMENT_C", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
    check_lt("set MIN_ALIGNMENT_D", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));
  };

  float alpha = a.alpha, beta = a.beta;
  // Tuning runs the product several times, so not where it reads its own output
  // (beta != 0 into C in place: a gradient accumulating); nor below kTuneMinFlops.
  const bool in_place = c_in == (const void*)a.c && a.beta != 0.f;
  const int tune = in_place || flops_of(a) < kTuneMinFlops ? 0 : gemm_tune_mode();
  const bool search = tune >= 3, verbose = tune == 2 || tune == 4;

  auto find = [&](Descs& d, uint32_t epi, lt::Algo* algo) {
    Key key = {(int64_t)a.dtype * 4 + (a.c_float32 ? 1 : 0) + (a.beta != 0.f ? 2 : 0), a.m, a.n, a.k, a.lda, a.ldb, a.ldc, a.batch, a.stride_a, a.stride_b,
               a.stride_c, opx, opy, (int64_t)epi, compute, al_x, al_y, al_d, (int64_t)ctx.workspace_bytes, ctx.device,
               tune == 0 ? 0 : search ? 2 : 1};
    {
      std::lock_guard<std::mutex> lock(cache_mu);
      auto it = algo_cache.find(key);
      if (it != algo_cache.end()) {
        *algo = it->second.second;
        return it->second.first;
      }
    }
    std::vector<lt::HeuristicResult> r(kTuneAlgos);
    int found = 0;
    lt::Status st = api.heuristic(ctx.handle, d.op, d.x, d.y, d.d, d.d, d.pref, tune ? kTuneAlgos : 1, r.data(), &found);
    r.resize(st == 0 ? (size_t)std::clamp(found, 0, kTuneAlgos) : 0);
    const int heuristic_count = (int)r.size();
    auto run = [&](const lt::Algo& al) {
      return api.matmul(ctx.handle, d.op, &alpha, a.b, d.x, a.a, d.y, &beta, c_in, d.d, a.c, d.d, &al,
                        ctx.workspace, ctx.workspace_bytes, s);
    };
    int checked = 0;
    double search_ms = 0;
    if (search && !r.empty() && short_product(run, r[0].algo, s)) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<lt::HeuristicResult> more = search_configs(api, ctx.handle, d, compute, type, type_c,
                                                             ctx.workspace_bytes, al_x, al_y, al_d, r, &checked);
      search_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      r.insert(r.end(), more.begin(), more.end());
    }
    int pick = r.empty() ? -1 : 0;
    if (pick == 0 && tune && r.size() > 1) {
      std::vector<float> ms;
      pick = fastest_algo(run, r.data(), (int)r.size(), ctx.workspace_bytes, s, &ms, search);
      if (verbose && !search) {
        std::string line = "perceiver cuda: matmul tuning " + describe(a, al_y, al_x, al_d) + ", epilogue " +
                           std::to_string(epi) + ": " + std::to_string(r.size()) + " algorithms, ms";
        char t[24];
        for (float v : ms) {
          std::snprintf(t, sizeof t, " %.4f", v);
          line += std::isfinite(v) ? t : " -";
        }
        std::fprintf(stderr, "%s; keeps #%d\n", line.c_str(), pick);
      }
      if (verbose && search)
        log_search(api, describe(a, al_y, al_x, al_d), epi, flops_of(a), r, ms, heuristic_count, checked, search_ms,
                   pick);
    }
    const bool ok = pick >= 0;
    if (ok) *algo = r[(size_t)pick].algo;
    // "No algorithm" is kept only where cuBLASLt says so (none found, or the shape not
    // supported); any other failure (a workspace it could not allocate, every
    // candidate failing to run once) may pass, and the next call asks again.
    const bool none = (st == 0 && found == 0) || st == lt::kStatusNotSupported;
    if (ok || none) {
      std::lock_guard<std::mutex> lock(cache_mu);
      algo_cache[key] = {ok, ok ? r[(size_t)pick].algo : lt::Algo{}};
    }
    return ok;
  };

  lt::Algo algo;
  // cuBLASLt reads the bias vector with vector loads; a view into the middle of a
  // parameter may not be aligned for them, so such a bias takes the second pass.
  bool bias_aligned = !a.bias || (uintptr_t)a.bias % 16 == 0;
  if (epilogue != lt::EPILOGUE_DEFAULT && bias_aligned) {
    Descs d{&api};
    build(d, epilogue);
    if (find(d, epilogue, &algo) &&
        api.matmul(ctx.handle, d.op, &alpha, a.b, d.x, a.a, d.y, &beta, c_in, d.d, a.c, d.d, &algo, ctx.workspace,
                   ctx.workspace_bytes, s) == 0) {
      if (act_pass) bias_act(a.c, nullptr, a.batch, a.m, a.n, a.ldc, a.stride_c, a.act, a.dtype, s);
      return;
    }
  }
  // Plain GEMM, then bias and activation (if any) as a second pass.
  Descs d{&api};
  build(d, lt::EPILOGUE_DEFAULT);
  if (!find(d, lt::EPILOGUE_DEFAULT, &algo))
    throw Error(ErrorKind::Runtime, "matmul: cuBLASLt has no algorithm for " + std::string(dtype_name(a.dtype)) +
                                        " [" + std::to_string(a.m) + ", " + std::to_string(a.k) + "] x [" +
                                        std::to_string(a.k) + ", " + std::to_string(a.n) + "] (batch " +
                                        std::to_string(a.batch) + ")");
  const lt::Status st = api.matmul(ctx.handle, d.op, &alpha, a.b, d.x, a.a, d.y, &beta, c_in, d.d, a.c, d.d, &algo,
                                  ctx.workspace, ctx.workspace_bytes, s);
  if (st != 0) throw Error(ErrorKind::Runtime, "matmul: cublasLtMatmul failed with cublasStatus " + std::to_string(st) +
                                                   status_name(st) + " for " + describe(a, al_y, al_x, al_d));
  if (a.bias || a.act != Activation::None)
    bias_act(a.c, a.bias, a.batch, a.m, a.n, a.ldc, a.stride_c, a.act, a.dtype, s);
}
}  // namespace

}  // namespace cuda
}  // namespace perceiver
