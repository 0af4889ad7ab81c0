// Development harness for the CUDA attention, not part of the library: the fused
// kernels (native/cuda/attention.cu) and the product-composed forward and gradient
// (native/cuda/attention_gemm.cu). Runs every kernel version (tc: tensor cores,
// simt: fp32 FMA, gemm: cuBLASLt products) and key-split setting on random inputs
// over many shapes, layouts and masks, compares each output with a float64
// softmax(q kᵀ) v computed here on the host from the same (dtype-rounded) inputs;
// then the composed gradient, with and without dropout, and the flash gradient
// (attention_backward.cu) where it takes the call, against float64 gradients; then
// times each version at the Perceiver shapes.
//
//   the CMake build (cuda_attention_check), which links it with the CUDA backend's
//   objects; the gemm versions need cuBLASLt (PERCEIVER_CUBLAS_PATH, as the library)
//   /tmp/attention_check               # correctness, then timing
//   /tmp/attention_check --no-bench    # correctness only
//   /tmp/attention_check --bench-only  # timing only
//   /tmp/attention_check --filter w261 # only cases whose name contains "w261"
//   /tmp/attention_check --filter probe --skip 8,11,12  # the layout probes of path 13
//   /tmp/attention_check --skip 20     # everything but the flash gradient
//
// Versions: auto (the public entry), tc (tensor cores, two key/value stages with
// cp.async where rows are 16-byte aligned on sm_80+), tc1 (tc with one stage), tcw
// (tc with two 16-row tiles per warp, Dv <= 128; auto takes it only with
// PERCEIVER_CUDA_ATTENTION_WIDE=1 until it has been checked here), simt, gemm (the
// products, all keys in one chunk where they fit) and gemm64 (the same in chunks of 64
// keys: the two-pass path that very long key ranges take).
// One line per case and variant: PASS/FAIL/SKIP, name, dtype, kernel version, key
// splits, max abs error, max error relative to max |ref|, and the worst element.
// Tolerance: |got - ref| <= tol + tol |ref| with tol = 1e-5 (float32) or 1e-2
// (bfloat16/float16; P is rounded to 16 bits before P V, and so is the output).
// Padding between rows/heads of the inputs is NaN, so any read outside the logical
// tensors shows up as NaN in the output; the output is pre-filled with NaN, so any
// element left unwritten fails. Exit status 1 if any check fails.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "../cpu/random.h"
#include "../dtype.h"
#include "../error.h"
#include "allocator.h"
#include "attention.h"
#include "attention_backward.h"
#include "attention_diagnose.h"
#include "attention_gemm.h"
#include "attention_probe.h"
#include "cublaslt.h"
#include "gemm.h"

namespace perceiver::cuda::detail {
// Defined in attention.cu for this harness. path: 0 auto, 1 tc, 2 simt, 3 tc with
// a single key/value stage (no cp.async overlap), 4 tc with two row tiles per warp,
// 7 tc's occupancy tiers (heads 65-272 wide), 8, 9 and 10 the fixed-width kernel;
// splits: 0 = planned. A tc path the device or shape cannot take gives
// cudaErrorNotSupported.
cudaError_t attention_forward_forced(const AttentionArgs& a, void* workspace,
                                     size_t workspace_bytes, int sm_count, cudaStream_t stream,
                                     int path, int splits, bool* lse_written = nullptr);
size_t attention_workspace_bytes_forced(const AttentionArgs& a, int splits);
int attention_planned_splits(const AttentionArgs& a, int sm_count);
// The kernel the last forward call on this thread launched: "tc tier N", "fixed ..."
// (attention.cu's kFixedTiers names), "simt" or "zero".
const char* attention_last_kernel();
}  // namespace perceiver::cuda::detail

using namespace perceiver;
using namespace perceiver::cuda;

namespace {

#define CHECK_CUDA(x)                                                                   \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, \
                   __LINE__, cudaGetErrorString(e_));                                   \
      std::exit(2);                                                                     \
    }                                                                                   \
  } while (0)

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((next() >> 40) * 0x1p-24); }
};

// ---- tensors [B, N, H, D] in several memory layouts ----------------------------------

enum class Layout {
  BNHD,     // contiguous [B, N, H*D] (heads concatenated), the op layer's usual view
  BHND,     // contiguous [B, H, N, D]
  PadOdd,   // [B, N, H*D + 3] view with an odd row stride: no 16-byte loads possible
  PadAlign  // head and row strides multiples of 8 with gaps: 16-byte loads, not contiguous
};

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::BNHD: return "bnhd";
    case Layout::BHND: return "bhnd";
    case Layout::PadOdd: return "pad-odd";
    case Layout::PadAlign: return "pad-align";
  }
  return "?";
}

struct HostTensor {
  int64_t B = 0, N = 0, H = 0, D = 0;
  int64_t sb = 0, sn = 0, sh = 0, size = 0;
  std::vector<float> v;  // padding is NaN
  float& at(int64_t b, int64_t n, int64_t h, int64_t d) { return v[b * sb + n * sn + h * sh + d]; }
};

HostTensor make_tensor(Layout l, int64_t B, int64_t N, int64_t H, int64_t D) {
  HostTensor t;
  t.B = B; t.N = N; t.H = H; t.D = D;
  switch (l) {
    case Layout::BNHD: t.sh = D; t.sn = H * D; t.sb = N * t.sn; break;
    case Layout::BHND: t.sn = D; t.sh = N * D; t.sb = H * t.sh; break;
    case Layout::PadOdd: t.sh = D; t.sn = H * D + 3; t.sb = N * t.sn + 5; break;
    case Layout::PadAlign: t.sh = (D + 7) / 8 * 8; t.sn = H * t.sh + 8; t.sb = N * t.sn + 16; break;
  }
  t.size = std::max<int64_t>(1, B * t.sb);
  if (N == 0 || D == 0) t.size = 1;
  t.v.assign((size_t)t.size, kNaN);
  return t;
}

void fill_random(HostTensor& t, Rng& rng, float lo, float hi) {
  for (int64_t b = 0; b < t.B; b++)
    for (int64_t n = 0; n < t.N; n++)
      for (int64_t h = 0; h < t.H; h++)
        for (int64_t d = 0; d < t.D; d++) t.at(b, n, h, d) = rng.uniform(lo, hi);
}

float round_to(DType dt, float x) {
  if (std::isnan(x)) return x;
  if (dt == DType::BFloat16) return bf16_to_float(float_to_bf16(x));
  if (dt == DType::Float16) return half_to_float(float_to_half(x));
  return x;
}

// The values the device will see, as floats (for the reference).
std::vector<float> rounded(const std::vector<float>& v, DType dt) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); i++) r[i] = round_to(dt, v[i]);
  return r;
}

struct DeviceBuf {
  void* p = nullptr;
  size_t bytes = 0;
  DeviceBuf() = default;
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
  ~DeviceBuf() { if (p) cudaFree(p); }
  void alloc(size_t n) {
    if (n <= bytes) return;
    if (p) CHECK_CUDA(cudaFree(p));
    CHECK_CUDA(cudaMalloc(&p, n));
    bytes = n;
  }
};

void upload(DeviceBuf& buf, const std::vector<float>& v, DType dt) {
  const size_t n = v.size();
  if (dt == DType::Float32) {
    buf.alloc(n * 4);
    CHECK_CUDA(cudaMemcpy(buf.p, v.data(), n * 4, cudaMemcpyHostToDevice));
    return;
  }
  std::vector<uint16_t> bits(n);
  for (size_t i = 0; i < n; i++)
    bits[i] = dt == DType::BFloat16 ? float_to_bf16(v[i]) : float_to_half(v[i]);
  buf.alloc(n * 2);
  CHECK_CUDA(cudaMemcpy(buf.p, bits.data(), n * 2, cudaMemcpyHostToDevice));
}

std::vector<float> download(const DeviceBuf& buf, size_t n, DType dt) {
  std::vector<float> out(n);
  if (dt == DType::Float32) {
    CHECK_CUDA(cudaMemcpy(out.data(), buf.p, n * 4, cudaMemcpyDeviceToHost));
    return out;
  }
  std::vector<uint16_t> bits(n);
  CHECK_CUDA(cudaMemcpy(bits.data(), buf.p, n * 2, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < n; i++)
    out[i] = dt == DType::BFloat16 ? bf16_to_float(bits[i]) : half_to_float(bits[i]);
  return out;
}

// ---- masks ---------------------------------------------------------------------------

enum class MaskKind {
  None,
  Full,       // [B, Nq, Nk] random, with all-zero rows (i % 5 == 3) and one-key rows (i % 7 == 2)
  KeyOnly,    // [B, 1, Nk] broadcast over queries (m_sq = 0): a padding mask
  QueryOnly,  // [B, Nq, 1] broadcast over keys (m_sk = 0): whole rows on or off
  BatchBcast, // [1, Nq, Nk] broadcast over the batch (m_sb = 0)
  Transposed, // stored [B, Nk, Nq]: m_sq = 1, m_sk = Nq
  AllZero     // every key masked: the output is exactly 0
};

const char* mask_name(MaskKind m) {
  switch (m) {
    case MaskKind::None: return "none";
    case MaskKind::Full: return "full";
    case MaskKind::KeyOnly: return "key-bcast";
    case MaskKind::QueryOnly: return "query-bcast";
    case MaskKind::BatchBcast: return "batch-bcast";
    case MaskKind::Transposed: return "transposed";
    case MaskKind::AllZero: return "all-zero";
  }
  return "?";
}

struct HostMask {
  std::vector<uint8_t> v;
  int64_t sb = 0, sq = 0, sk = 0;
  bool present = false;
  bool keep(int64_t b, int64_t i, int64_t j) const {
    return !present || v[b * sb + i * sq + j * sk] != 0;
  }
};

HostMask make_mask(MaskKind kind, int64_t B, int64_t nq, int64_t nk, Rng& rng) {
  HostMask m;
  if (kind == MaskKind::None || nk == 0) return m;
  m.present = true;
  auto full_pattern = [&](int64_t i, int64_t j) -> uint8_t {
    if (i % 5 == 3) return 0;
    if (i % 7 == 2) return j == (i * 31) % nk;
    return rng.uniform(0.f, 1.f) < 0.7f;
  };
  switch (kind) {
    case MaskKind::Full:
      m.sb = nq * nk; m.sq = nk; m.sk = 1;
      m.v.resize((size_t)(B * nq * nk));
      for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < nq; i++)
          for (int64_t j = 0; j < nk; j++) m.v[b * m.sb + i * m.sq + j] = full_pattern(i, j);
      break;
    case MaskKind::KeyOnly:
      m.sb = nk; m.sq = 0; m.sk = 1;
      m.v.resize((size_t)(B * nk));
      for (auto& x : m.v) x = rng.uniform(0.f, 1.f) < 0.6f;
      break;
    case MaskKind::QueryOnly:
      m.sb = nq; m.sq = 1; m.sk = 0;
      m.v.resize((size_t)(B * nq));
      for (int64_t i = 0; i < B * nq; i++) m.v[i] = i % 3 != 1;
      break;
    case MaskKind::BatchBcast:
      m.sb = 0; m.sq = nk; m.sk = 1;
      m.v.resize((size_t)(nq * nk));
      for (int64_t i = 0; i < nq; i++)
        for (int64_t j = 0; j < nk; j++) m.v[i * nk + j] = full_pattern(i, j);
      break;
    case MaskKind::Transposed:
      m.sb = nq * nk; m.sq = 1; m.sk = nq;
      m.v.resize((size_t)(B * nq * nk));
      for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < nq; i++)
          for (int64_t j = 0; j < nk; j++) m.v[b * m.sb + i * m.sq + j * m.sk] = full_pattern(i, j);
      break;
    case MaskKind::AllZero:
      m.sb = nq * nk; m.sq = nk; m.sk = 1;
      m.v.assign((size_t)(B * nq * nk), 0);
      break;
    case MaskKind::None: break;
  }
  if (m.v.empty()) m.v.push_back(0);
  return m;
}

// ---- reference -----------------------------------------------------------------------

// out[b, i, h, :] in float64 from the (rounded) host values, and the row's
// log-sum-exp (natural log of the scaled logits; +inf where every key is masked).
void reference_row(const HostTensor& q, const std::vector<float>& qv, const HostTensor& k,
                   const std::vector<float>& kv, const HostTensor& v, const std::vector<float>& vv,
                   const HostMask& mask, double scale, int64_t b, int64_t i, int64_t h,
                   std::vector<double>& logits, std::vector<double>& out, double* lse = nullptr) {
  const int64_t nk = k.N, dqk = q.D, dv = v.D;
  out.assign((size_t)dv, 0.0);
  if (lse) *lse = INFINITY;
  logits.resize((size_t)std::max<int64_t>(nk, 1));
  double mx = -INFINITY;
  const float* qr = qv.data() + b * q.sb + i * q.sn + h * q.sh;
  for (int64_t j = 0; j < nk; j++) {
    if (!mask.keep(b, i, j)) {
      logits[j] = -INFINITY;
      continue;
    }
    const float* kr = kv.data() + b * k.sb + j * k.sn + h * k.sh;
    double s = 0;
    for (int64_t d = 0; d < dqk; d++) s += (double)qr[d] * (double)kr[d];
    logits[j] = s * scale;
    mx = std::max(mx, logits[j]);
  }
  if (mx == -INFINITY) return;  // all masked (or no keys): 0
  double sum = 0;
  for (int64_t j = 0; j < nk; j++) {
    if (logits[j] == -INFINITY) continue;
    const double p = std::exp(logits[j] - mx);
    sum += p;
    const float* vr = vv.data() + b * v.sb + j * v.sn + h * v.sh;
    for (int64_t d = 0; d < dv; d++) out[d] += p * (double)vr[d];
  }
  for (int64_t d = 0; d < dv; d++) out[d] /= sum;
  if (lse) *lse = mx + std::log(sum);
}

// ---- cases ---------------------------------------------------------------------------

struct Case {
  std::string name;
  int64_t B, H, nq, nk, dqk, dv;
  Layout layout;
  MaskKind mask;
  bool big;  // checked on sampled rows, fewer variants
  // K and V one array (k = v = X: the single-head encoders attend to their input so),
  // which the fixed-width kernel's 272 and 336 classes copy once per key tile. dqk == dv.
  bool shared_kv = false;
};

std::vector<Case> cases() {
  using L = Layout;
  using M = MaskKind;
  return {
      {"w1", 2, 3, 5, 7, 1, 1, L::BNHD, M::None, false},
      {"w7-mask", 1, 2, 33, 45, 7, 7, L::BHND, M::Full, false},
      {"w64", 2, 4, 64, 64, 64, 64, L::BNHD, M::None, false},
      {"w64-odd-keybcast", 1, 1, 65, 129, 64, 64, L::PadOdd, M::KeyOnly, false},
      {"w128-mask", 2, 2, 100, 300, 128, 128, L::PadAlign, M::Full, false},
      {"w160-querybcast", 1, 3, 70, 200, 160, 160, L::BNHD, M::QueryOnly, false},
      {"w261", 1, 1, 130, 1000, 261, 261, L::BNHD, M::None, false},
      {"w322-batchbcast", 2, 1, 50, 333, 322, 322, L::PadOdd, M::BatchBcast, false},
      {"w1024-q1", 1, 1, 1, 512, 1024, 1024, L::BNHD, M::None, false},
      {"w1024", 2, 1, 67, 300, 1024, 1024, L::PadAlign, M::None, false},
      {"qk64-v128", 1, 2, 80, 150, 64, 128, L::BNHD, M::None, false},
      // The language model's heads (qk 32, v 160), and a v that pads to 160 (tier 8).
      {"qk32-v160-mlm", 2, 8, 100, 130, 32, 160, L::BNHD, M::KeyOnly, false},
      // Its decoder's (qk 32, v 96): more queries than keys, ragged at both ends.
      {"qk32-v96-mlm-decoder", 2, 8, 300, 70, 32, 96, L::BNHD, M::None, false},
      {"qk40-v150-odd", 1, 2, 70, 99, 40, 150, L::PadOdd, M::Full, false},
      {"qk64-v100-mixed-align", 1, 2, 70, 260, 64, 100, L::BNHD, M::None, false},
      {"qk261-v64", 1, 1, 90, 400, 261, 64, L::BNHD, M::Full, false},
      {"qk32-v322", 2, 2, 40, 100, 32, 322, L::PadOdd, M::None, false},
      {"qk1024-v64", 1, 1, 70, 200, 1024, 64, L::BNHD, M::None, false},
      {"qk16-v336", 1, 1, 64, 64, 16, 336, L::BNHD, M::None, false},
      {"qk48-v337", 1, 1, 20, 90, 48, 337, L::BNHD, M::None, false},
      {"nq1", 1, 2, 1, 1000, 64, 64, L::BNHD, M::KeyOnly, false},
      {"nk1", 2, 1, 70, 1, 128, 128, L::BNHD, M::None, false},
      {"nq1-nk1", 1, 1, 1, 1, 261, 261, L::BNHD, M::None, false},
      {"mask-transposed", 2, 2, 66, 77, 40, 24, L::BHND, M::Transposed, false},
      {"mask-all-zero", 2, 2, 30, 50, 64, 64, L::BNHD, M::AllZero, false},
      {"heads-views", 3, 8, 77, 91, 32, 48, L::PadOdd, M::Full, false},
      // Optical flow's 32-wide heads, packed (the fixed-width kernel's 32 x 32 class).
      {"w32-heads-mask", 2, 16, 100, 150, 32, 32, L::BNHD, M::Full, false},
      {"heads-aligned", 2, 8, 129, 257, 128, 128, L::PadAlign, M::KeyOnly, false},
      {"long-keys-mask", 1, 1, 40, 5000, 96, 96, L::BNHD, M::KeyOnly, false},
      {"nk0", 2, 2, 10, 0, 64, 64, L::BNHD, M::None, false},
      {"perceiver-encoder", 1, 1, 512, 50176, 261, 261, L::BNHD, M::None, true},
      // As the ImageNet models call it: k = v = X, Q and X at stride 261.
      {"encoder-kv", 1, 1, 100, 3000, 261, 261, L::BNHD, M::None, false, true},
      {"encoder-kv-mask", 2, 1, 70, 700, 261, 261, L::BNHD, M::KeyOnly, false, true},
      {"perceiver-self", 1, 8, 512, 512, 128, 128, L::BNHD, M::None, false},
      {"perceiver-decoder", 1, 1, 1, 512, 1024, 1024, L::BNHD, M::None, false},
  };
}

struct Variant {
  DType dt;
  int path;    // 0 auto, 1 tc, 2 simt, 3 tc single-stage, 4 tc two row tiles per warp,
               // 5 gemm, 6 gemm in chunks of 64 keys, 7 tc occupancy tiers, 8, 9 and 10
               // the fixed-width kernel with 4 warps, 8 warps and 4 warps of two row tiles,
               // 11 and 12 the warpgroup kernel with two and one warpgroups per block
               // (compute capability 9.0), 13 float32 in 3xTF32, 14 the fixed-width
               // kernel's occupancy variant (32-key tiles, more blocks per SM)
  int splits;  // 0 planned
};

const char* path_name(int p) { return attention_path_name(p); }
bool is_product_path(int p) { return p == 5 || p == 6; }

// The product-composed attention's context: cuBLASLt, a GEMM workspace and a
// caching allocator, as the backend holds them; null where cuBLASLt did not load.
GemmContext* g_gemm = nullptr;
DeviceAllocator* g_alloc = nullptr;
// Chunk bytes that make attention_gemm.cu take the fewest keys per chunk (64).
constexpr size_t kSmallChunks = 1;

std::vector<Variant> variants(const Case& c) {
  // Big cases (sampled rows): the public entry, tc and simt, the products, and the
  // other forced paths in bf16 (the occupancy tier, the wide kernel and the
  // fixed-width variants; "not available" where a shape has none), so that auto's
  // routing can be checked against each.
  if (c.big)
    return {{DType::Float32, 0, 0},  {DType::BFloat16, 0, 0},  {DType::BFloat16, 1, 0}, {DType::Float16, 1, 0},
            {DType::BFloat16, 2, 0}, {DType::BFloat16, 1, 1},  {DType::Float32, 5, 0},  {DType::BFloat16, 5, 0},
            {DType::BFloat16, 7, 0}, {DType::BFloat16, 4, 0},  {DType::BFloat16, 8, 0}, {DType::BFloat16, 9, 0},
            {DType::BFloat16, 10, 0}, {DType::BFloat16, 11, 0}, {DType::BFloat16, 12, 0}, {DType::Float32, 13, 0},
            {DType::BFloat16, 14, 0}, {DType::BFloat16, 15, 0}, {DType::BFloat16, 16, 0}};
  // auto (the public entry), then each version with one block per key range and
  // with 3 ranges (the merge kernel), then the products in one chunk and in several.
  // The float32 tensor-core kernel (tcx) says "not available" where it does not serve.
  std::vector<Variant> v = {{DType::Float32, 0, 0}, {DType::Float32, 2, 1}, {DType::Float32, 5, 0},
                            {DType::Float32, 13, 1}};
  if (c.nk >= 3) v.push_back({DType::Float32, 13, 3});
  if (c.nk > 64) v.push_back({DType::Float32, 6, 0});
  v.push_back({DType::BFloat16, 5, 0});
  if (c.nk > 64) v.push_back({DType::BFloat16, 6, 0});
  if (c.nk >= 3) v.push_back({DType::Float32, 2, 3});
  for (DType dt : {DType::Float16, DType::BFloat16}) {
    v.push_back({dt, 0, 0});
    v.push_back({dt, 1, 1});
    if (c.nk >= 3) v.push_back({dt, 1, 3});
    v.push_back({dt, 3, 1});
    if ((c.dv + 15) / 16 * 16 <= 128) {
      v.push_back({dt, 4, 1});
      if (c.nk >= 3) v.push_back({dt, 4, 3});
    }
    if ((c.dv + 15) / 16 * 16 > 64 && (c.dv + 15) / 16 * 16 <= 272) {
      v.push_back({dt, 7, 1});
      if (c.nk >= 3) v.push_back({dt, 7, 3});
    }
    // The fixed-width kernel's variants and the warpgroup kernel: attention.cu says "not
    // available" (a SKIP line) where its table has no class for the widths, the rows are
    // not 16-byte aligned or (the warpgroup kernel) the device is not compute
    // capability 9.0, so this list need not repeat the tables.
    for (int path : {8, 9, 10, 11, 12, 14, 15, 16}) {
      v.push_back({dt, path, 1});
      if (c.nk >= 3) v.push_back({dt, path, 3});
    }
    v.push_back({dt, 2, 1});
    if (c.nk >= 3) v.push_back({dt, 2, 3});
  }
  return v;
}

struct Problem {
  Case c;
  HostTensor q, k, v, o;
  HostMask mask;
  DeviceBuf dq, dk, dv, dout, dmask;
  float scale;
};

// pb's tensors for case c in its layout (padding NaN), q, k and v filled from rng,
// and the default scale; the mask and the device copies are the caller's.
void init_problem(Problem& pb, const Case& c, Rng& rng) {
  pb.c = c;
  pb.q = make_tensor(c.layout, c.B, c.nq, c.H, c.dqk);
  pb.k = make_tensor(c.layout, c.B, c.nk, c.H, c.dqk);
  pb.v = make_tensor(c.layout, c.B, c.nk, c.H, c.dv);
  pb.o = make_tensor(c.layout, c.B, c.nq, c.H, c.dv);
  fill_random(pb.q, rng, -1.5f, 1.5f);
  fill_random(pb.k, rng, -1.5f, 1.5f);
  fill_random(pb.v, rng, -1.f, 1.f);
  if (c.shared_kv) pb.v = pb.k;  // for the reference; the call reads k for both
  pb.scale = c.dqk > 0 ? (float)(1.0 / std::sqrt((double)c.dqk)) : 1.f;
}

AttentionArgs make_args(const Problem& pb, DType dt) {
  AttentionArgs a{};
  a.q = static_cast<const float*>(pb.dq.p);
  a.k = static_cast<const float*>(pb.dk.p);
  a.v = static_cast<const float*>(pb.dv.p);
  a.out = static_cast<float*>(pb.dout.p);
  a.mask = pb.mask.present ? static_cast<const uint8_t*>(pb.dmask.p) : nullptr;
  a.batch = pb.c.B; a.nq = pb.c.nq; a.nk = pb.c.nk; a.heads = pb.c.H;
  a.dqk = pb.c.dqk; a.dv = pb.c.dv;
  a.q_sb = pb.q.sb; a.q_sn = pb.q.sn; a.q_sh = pb.q.sh;
  a.k_sb = pb.k.sb; a.k_sn = pb.k.sn; a.k_sh = pb.k.sh;
  a.v_sb = pb.v.sb; a.v_sn = pb.v.sn; a.v_sh = pb.v.sh;
  if (pb.c.shared_kv) a.v = a.k;
  a.o_sb = pb.o.sb; a.o_sn = pb.o.sn; a.o_sh = pb.o.sh;
  a.m_sb = pb.mask.sb; a.m_sq = pb.mask.sq; a.m_sk = pb.mask.sk;
  a.scale = pb.scale;
  a.dtype = dt;
  return a;
}

int g_sm_count = 0, g_cc = 0, g_smem_optin = 0;
DeviceBuf g_workspace;
int g_failures = 0;
// --skip: paths left out of the checks, the probes and the timings (a candidate kernel
// that faults takes the CUDA context, and every later check, with it).
std::vector<int> g_skip_paths;
bool skipped(int path) { return std::find(g_skip_paths.begin(), g_skip_paths.end(), path) != g_skip_paths.end(); }
// --skip's number for the flash gradient (attention_backward.cu), which is no forward path.
constexpr int kFlashGradient = 20;

cudaError_t run_variant(const AttentionArgs& a, int path, int splits, cudaStream_t stream,
                        bool* lse_written = nullptr) {
  if (path == 5 || path == 6) {
    if (!g_gemm) return cudaErrorNotSupported;
    try {
      attention_forward_gemm(*g_gemm, *g_alloc, a, stream, path == 6 ? kSmallChunks : kAttentionChunkBytes);
    } catch (const perceiver::Error& e) {
      std::printf("error from attention_forward_gemm: %s\n", e.what());
      return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
  }
  size_t ws = splits > 0 ? detail::attention_workspace_bytes_forced(a, splits)
                         : attention_workspace_bytes(a, g_sm_count);
  g_workspace.alloc(std::max<size_t>(ws, 256));
  if (path == 0 && splits == 0)
    return attention_forward(a, g_workspace.p, ws, g_sm_count, stream, lse_written);
  return detail::attention_forward_forced(a, g_workspace.p, ws, g_sm_count, stream, path, splits, lse_written);
}

// Rows compared: all, or for big cases a spread of query rows per (batch, head).
std::vector<int64_t> rows_to_check(const Case& c) {
  std::vector<int64_t> rows;
  if (!c.big) {
    for (int64_t i = 0; i < c.nq; i++) rows.push_back(i);
    return rows;
  }
  for (int64_t i : {0L, 1L, 15L, 16L, 63L, 64L, 127L, 200L, 255L, 256L, 383L, 447L, 510L, 511L})
    if (i < c.nq) rows.push_back(i);
  return rows;
}

void check_case(const Case& c, cudaStream_t stream) {
  Rng rng(std::hash<std::string>()(c.name));
  Problem pb;
  init_problem(pb, c, rng);
  pb.mask = make_mask(c.mask, c.B, c.nq, c.nk, rng);
  if (pb.mask.present) {
    pb.dmask.alloc(pb.mask.v.size());
    CHECK_CUDA(cudaMemcpy(pb.dmask.p, pb.mask.v.data(), pb.mask.v.size(), cudaMemcpyHostToDevice));
  }
  const std::vector<int64_t> rows = rows_to_check(c);

  for (DType dt : {DType::Float32, DType::Float16, DType::BFloat16}) {
    std::vector<Variant> vs;
    for (const Variant& v : variants(c))
      if (v.dt == dt && !skipped(v.path)) vs.push_back(v);
    if (vs.empty()) continue;
    const std::vector<float> qr = rounded(pb.q.v, dt), kr = rounded(pb.k.v, dt),
                             vr = rounded(pb.v.v, dt);
    upload(pb.dq, qr, dt);
    upload(pb.dk, kr, dt);
    upload(pb.dv, vr, dt);
    // Reference for the checked rows, [b][h][row][d], and their log-sum-exp [b][h][row].
    std::vector<double> ref, ref_lse, logits, out;
    ref.reserve(rows.size() * c.B * c.H * c.dv);
    for (int64_t b = 0; b < c.B; b++)
      for (int64_t h = 0; h < c.H; h++)
        for (int64_t i : rows) {
          double lse = 0;
          reference_row(pb.q, qr, pb.k, kr, pb.v, vr, pb.mask, pb.scale, b, i, h, logits, out, &lse);
          ref.insert(ref.end(), out.begin(), out.end());
          ref_lse.push_back(lse);
        }
    // Every kernel call runs twice: as inference runs it, and asking for the rows'
    // log-sum-exp too, as a forward whose gradient the flash kernel takes does, into NaN
    // (and one spare past the last row). Where a tier writes it, that is another
    // instantiation (kLse), checked on its own; its log-sum-exp must match the reference
    // within 1e-5 (1 + |lse|), and the kernels that do not write it must leave it alone
    // (as the emulation's attention family checks).
    const size_t lse_n = (size_t)(c.B * c.H * c.nq);
    DeviceBuf dlse;
    dlse.alloc((lse_n + 1) * sizeof(float));
    const std::vector<float> lse_nan(lse_n + 1, kNaN);
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-2;
    const std::vector<float> nan_fill(pb.o.v.size(), kNaN);

    for (const Variant& var : vs)
    for (int pass = 0; pass < (is_product_path(var.path) ? 1 : 2); pass++) {
      upload(pb.dout, nan_fill, dt);
      AttentionArgs a = make_args(pb, dt);
      const bool ask_lse = pass == 1;
      if (ask_lse) {
        CHECK_CUDA(cudaMemcpy(dlse.p, lse_nan.data(), lse_nan.size() * sizeof(float), cudaMemcpyHostToDevice));
        a.lse = static_cast<float*>(dlse.p);
      }
      bool lse_written = false;
      cudaError_t e = run_variant(a, var.path, var.splits, stream, ask_lse ? &lse_written : nullptr);
      const char* kernel = is_product_path(var.path) ? "products" : detail::attention_last_kernel();
      const int splits_used = is_product_path(var.path) ? 0 : var.splits > 0 ? (int)std::min<int64_t>(var.splits, std::max<int64_t>(c.nk, 1))
                                             : detail::attention_planned_splits(a, g_sm_count);
      char label[256];
      std::snprintf(label, sizeof label, "%-22s %-8s %-4s splits=%-2d [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld %s mask=%s]",
                    c.name.c_str(), dtype_name(dt), path_name(var.path), splits_used,
                    (long long)c.B, (long long)c.H, (long long)c.nq, (long long)c.nk,
                    (long long)c.dqk, (long long)c.dv, layout_name(c.layout), mask_name(c.mask));
      if (e == cudaErrorNotSupported) {
        std::printf("SKIP %s  (%s)\n", label,
                    is_product_path(var.path) ? "cuBLASLt not loaded" : "tc path not available for this device/shape");
        break;  // the variant's second pass would say the same
      }
      if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
      if (e != cudaSuccess) {
        std::printf("FAIL %s  launch/run error %s: %s\n", label, cudaGetErrorName(e),
                    cudaGetErrorString(e));
        g_failures++;
        if (e != cudaErrorInvalidValue) std::exit(2);  // the context is likely gone
        break;
      }
      const std::vector<float> got = download(pb.dout, pb.o.v.size(), dt);
      double max_abs = 0, max_ref = 0, worst_ratio = 0;
      int64_t wb = 0, wh = 0, wi = 0, wd = 0;
      double wgot = 0, wref = 0;
      size_t r = 0;
      for (int64_t b = 0; b < c.B; b++)
        for (int64_t h = 0; h < c.H; h++)
          for (int64_t i : rows)
            for (int64_t d = 0; d < c.dv; d++, r++) {
              const double x = ref[r];
              const double gv = got[b * pb.o.sb + i * pb.o.sn + h * pb.o.sh + d];
              const double err = std::isnan(gv) ? INFINITY : std::fabs(gv - x);
              const double ratio = err / (tol + tol * std::fabs(x));
              max_abs = std::max(max_abs, err);
              max_ref = std::max(max_ref, std::fabs(x));
              if (ratio > worst_ratio || std::isnan(ratio)) {
                worst_ratio = std::isnan(ratio) ? INFINITY : ratio;
                wb = b; wh = h; wi = i; wd = d; wgot = gv; wref = x;
              }
            }
      // The output's padding (the gaps of the padded layouts) stays NaN: a kernel that
      // writes past a row's or a head's columns fails, and one past the last query row
      // does where the gap after a batch row holds the overrun (5 or 16 elements).
      std::vector<bool> logical(got.size(), false);
      for (int64_t b = 0; b < c.B; b++)
        for (int64_t h = 0; h < c.H; h++)
          for (int64_t i = 0; i < c.nq; i++)
            for (int64_t d = 0; d < c.dv; d++) logical[(size_t)(b * pb.o.sb + i * pb.o.sn + h * pb.o.sh + d)] = true;
      int64_t padding_written = 0;
      for (size_t x = 0; x < got.size(); x++) padding_written += !logical[x] && !std::isnan(got[x]);
      // The log-sum-exp: written, within 1e-5 (1 + |lse|) of the reference's at the
      // checked rows (+inf where every key is masked), and nothing past its last row;
      // not written, untouched.
      double worst_lse = 0;
      if (ask_lse) {
        std::vector<float> gl(lse_n + 1);
        CHECK_CUDA(cudaMemcpy(gl.data(), dlse.p, gl.size() * sizeof(float), cudaMemcpyDeviceToHost));
        size_t k = 0;
        for (int64_t b = 0; b < c.B; b++)
          for (int64_t h = 0; h < c.H; h++)
            for (int64_t i : rows)
              worst_lse = std::max(worst_lse, lse_error(lse_written, ref_lse[k++], gl[(size_t)((b * c.H + h) * c.nq + i)]));
        if (!std::isnan(gl.back())) worst_lse = INFINITY;
      }
      const bool ok = worst_ratio <= 1.0 && padding_written == 0 && worst_lse <= 1.0;
      if (!ok) g_failures++;
      std::printf("%s %s  max_abs=%.3g max_rel=%.3g worst=%.2f of tol %.0e at [b%lld i%lld h%lld d%lld] got %.6g ref %.6g%s, lse %s %.2f -> %s\n",
                  ok ? "PASS" : "FAIL", label, max_abs, max_ref > 0 ? max_abs / max_ref : max_abs,
                  worst_ratio, tol, (long long)wb, (long long)wi, (long long)wh, (long long)wd,
                  wgot, wref, padding_written ? (" padding written: " + std::to_string(padding_written)).c_str() : "",
                  !ask_lse ? "not asked" : lse_written ? "written" : "untouched", worst_lse, kernel);
      if (!ok) {  // where, in [b][h][row][d] as ref
        std::vector<double> g;
        g.reserve(ref.size());
        for (int64_t b = 0; b < c.B; b++)
          for (int64_t h = 0; h < c.H; h++)
            for (int64_t i : rows)
              for (int64_t d = 0; d < c.dv; d++) g.push_back(got[b * pb.o.sb + i * pb.o.sn + h * pb.o.sh + d]);
        std::printf("  where: %s\n", attention_error_pattern(g, ref, c.B * c.H, rows, c.dv, tol).c_str());
      }
    }
  }
}

// The layout probes (attention_probe.h) through the fixed-width (tcf, and tcf3 at its two
// classes) and warpgroup (tcg, tcg1, tcgp, tcgk) kernels at each of their width classes, in float16: every output element must
// read exactly the V element it should, and where one does not, the line says which it
// read (a misread shared-memory layout shows as a pattern of blocks of 8). The float32
// tensor-core kernel (tcx) in float32.
void probe_layouts(cudaStream_t stream) {
  const std::pair<int64_t, int64_t> widths[] = {{128, 128}, {32, 160}, {32, 96}, {64, 64}, {32, 32}, {261, 261}};
  for (const auto& w : widths)
    for (int path : {8, 14, 11, 12, 15, 16, 13})
      for (AttentionProbe::Kind kind : {AttentionProbe::Keys, AttentionProbe::Columns}) {
        if (skipped(path)) continue;
        const DType dt = path == 13 ? DType::Float32 : DType::Float16;
        const AttentionProbe pr(kind, 128, w.first, w.second);
        Problem pb;
        pb.c = Case{"probe", 1, 1, pr.nq, pr.nk, pr.dqk, pr.dv, Layout::BNHD, MaskKind::None, false};
        pb.q = make_tensor(Layout::BNHD, 1, pr.nq, 1, pr.dqk);
        pb.k = make_tensor(Layout::BNHD, 1, pr.nk, 1, pr.dqk);
        pb.v = make_tensor(Layout::BNHD, 1, pr.nk, 1, pr.dv);
        pb.o = make_tensor(Layout::BNHD, 1, pr.nq, 1, pr.dv);
        pb.q.v = pr.q;
        pb.k.v = pr.k;
        pb.v.v = pr.v;
        pb.scale = pr.scale;
        upload(pb.dq, pb.q.v, dt);
        upload(pb.dk, pb.k.v, dt);
        upload(pb.dv, pb.v.v, dt);
        upload(pb.dout, std::vector<float>(pb.o.v.size(), kNaN), dt);
        const AttentionArgs a = make_args(pb, dt);
        cudaError_t e = run_variant(a, path, 1, stream);
        char label[120];
        std::snprintf(label, sizeof label, "probe %-7s %-4s qk%lld v%lld", pr.name(), path_name(path),
                      (long long)pr.dqk, (long long)pr.dv);
        if (e == cudaErrorNotSupported) {
          std::printf("SKIP %s  (not available for this device or shape)\n", label);
          continue;
        }
        if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
        if (e != cudaSuccess) {
          std::printf("FAIL %s  launch/run error %s: %s\n", label, cudaGetErrorName(e), cudaGetErrorString(e));
          g_failures++;
          if (e != cudaErrorInvalidValue) std::exit(2);  // the context is likely gone
          continue;
        }
        const std::string r = pr.report(download(pb.dout, pb.o.v.size(), dt));
        if (r != "ok") g_failures++;
        std::printf("%s %s  %s -> %s\n", r == "ok" ? "PASS" : "FAIL", label, r.c_str(), detail::attention_last_kernel());
      }
}

// A call that needs a workspace and is given none must report cudaErrorInvalidValue
// (and launch nothing), never fault.
void check_contract(cudaStream_t stream) {
  AttentionArgs a{};
  DeviceBuf q, k, v, o;
  const int64_t B = 1, H = 1, nq = 8, nk = 4096, d = 64;
  q.alloc(nq * d * 4); k.alloc(nk * d * 4); v.alloc(nk * d * 4); o.alloc(nq * d * 4);
  a.q = (const float*)q.p; a.k = (const float*)k.p; a.v = (const float*)v.p; a.out = (float*)o.p;
  a.batch = B; a.heads = H; a.nq = nq; a.nk = nk; a.dqk = d; a.dv = d;
  a.q_sn = d; a.q_sh = d; a.q_sb = nq * d;
  a.k_sn = d; a.k_sh = d; a.k_sb = nk * d;
  a.v_sn = d; a.v_sh = d; a.v_sb = nk * d;
  a.o_sn = d; a.o_sh = d; a.o_sb = nq * d;
  a.scale = 0.125f;
  const size_t need = attention_workspace_bytes(a, g_sm_count);
  bool ok = true;
  if (need > 0) {
    cudaError_t e = attention_forward(a, nullptr, 0, g_sm_count, stream);
    ok = e == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess;
  }
  AttentionArgs bad = a;
  bad.dtype = DType::Int32;
  ok = ok && attention_forward(bad, nullptr, 0, g_sm_count, stream) == cudaErrorInvalidValue;
  std::printf("%s contract: workspace %zu bytes planned for 8x4096 (splits=%d); missing workspace and bad dtype give cudaErrorInvalidValue\n",
              ok ? "PASS" : "FAIL", need, detail::attention_planned_splits(a, g_sm_count));
  if (!ok) g_failures++;
}

// ---- the product-composed forward's statistics and dropout, and the gradient ---------

// Float64 reference of one (b, h): P (undropped), F, O = (P ∘ F) V, L, and for dO the
// gradients dQ, dK, dV, each written into contiguous [B, N, H, D] arrays.
struct GradRef {
  std::vector<double> o, lse, dq, dk, dv;
  // Sums of the absolute values of each gradient element's terms: the scale of its
  // rounding error, which a result of 0 (one key: dS = 0) does not give.
  std::vector<double> dq_abs, dk_abs, dv_abs;
};

GradRef grad_reference(const Problem& pb, const std::vector<float>& qv, const std::vector<float>& kv,
                       const std::vector<float>& vv, const std::vector<float>& gov, const cpu::DropoutMask* drop) {
  const Case& c = pb.c;
  const int64_t B = c.B, H = c.H, nq = c.nq, nk = c.nk, dqk = c.dqk, dv = c.dv;
  GradRef r;
  r.o.assign((size_t)(B * nq * H * dv), 0.0);
  r.lse.assign((size_t)(B * H * nq), INFINITY);
  r.dq.assign((size_t)(B * nq * H * dqk), 0.0);
  r.dk.assign((size_t)(B * nk * H * dqk), 0.0);
  r.dv.assign((size_t)(B * nk * H * dv), 0.0);
  r.dq_abs.assign(r.dq.size(), 0.0);
  r.dk_abs.assign(r.dk.size(), 0.0);
  r.dv_abs.assign(r.dv.size(), 0.0);
  std::vector<double> p((size_t)std::max<int64_t>(nk, 1)), f(p.size()), dp(p.size());
  auto Q = [&](int64_t b, int64_t i, int64_t h, int64_t d) { return (double)qv[b * pb.q.sb + i * pb.q.sn + h * pb.q.sh + d]; };
  auto K = [&](int64_t b, int64_t j, int64_t h, int64_t d) { return (double)kv[b * pb.k.sb + j * pb.k.sn + h * pb.k.sh + d]; };
  auto V = [&](int64_t b, int64_t j, int64_t h, int64_t d) { return (double)vv[b * pb.v.sb + j * pb.v.sn + h * pb.v.sh + d]; };
  auto GO = [&](int64_t b, int64_t i, int64_t h, int64_t d) { return (double)gov[b * pb.o.sb + i * pb.o.sn + h * pb.o.sh + d]; };
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < nq; i++) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
          if (!pb.mask.keep(b, i, j)) { p[j] = -INFINITY; continue; }
          double sc = 0;
          for (int64_t d = 0; d < dqk; d++) sc += Q(b, i, h, d) * K(b, j, h, d);
          p[j] = sc * pb.scale;
          mx = std::max(mx, p[j]);
        }
        if (mx == -INFINITY) continue;  // every key masked: O, L = +inf and the gradients stay 0
        double sum = 0;
        for (int64_t j = 0; j < nk; j++) sum += p[j] == -INFINITY ? 0.0 : std::exp(p[j] - mx);
        r.lse[(b * H + h) * nq + i] = mx + std::log(sum);
        for (int64_t j = 0; j < nk; j++) {
          p[j] = p[j] == -INFINITY ? 0.0 : std::exp(p[j] - mx) / sum;
          f[j] = drop ? drop->at((uint64_t)(((b * H + h) * nq + i) * nk + j)) : 1.0;
        }
        double* o = &r.o[((b * nq + i) * H + h) * dv];
        for (int64_t j = 0; j < nk; j++)
          for (int64_t d = 0; d < dv; d++) o[d] += p[j] * f[j] * V(b, j, h, d);
        // D = dO · O; dP = (dO Vᵀ) F; dS = P (dP − D)
        double dd = 0, dd_abs = 0;
        for (int64_t d = 0; d < dv; d++) {
          dd += GO(b, i, h, d) * o[d];
          dd_abs += std::fabs(GO(b, i, h, d) * o[d]);
        }
        std::vector<double> ds_abs((size_t)nk);
        for (int64_t j = 0; j < nk; j++) {
          double x = 0, x_abs = 0;
          for (int64_t d = 0; d < dv; d++) {
            x += GO(b, i, h, d) * V(b, j, h, d);
            x_abs += std::fabs(GO(b, i, h, d) * V(b, j, h, d));
          }
          dp[j] = p[j] * (x * f[j] - dd);
          ds_abs[j] = p[j] * (x_abs * f[j] + dd_abs);
          double* gv = &r.dv[((b * nk + j) * H + h) * dv];
          double* gv_abs = &r.dv_abs[((b * nk + j) * H + h) * dv];
          for (int64_t d = 0; d < dv; d++) {
            gv[d] += p[j] * f[j] * GO(b, i, h, d);
            gv_abs[d] += std::fabs(p[j] * f[j] * GO(b, i, h, d));
          }
        }
        for (int64_t j = 0; j < nk; j++) {
          const size_t iq = ((b * nq + i) * H + h) * dqk, ik = ((b * nk + j) * H + h) * dqk;
          for (int64_t d = 0; d < dqk; d++) {
            r.dq[iq + d] += pb.scale * dp[j] * K(b, j, h, d);
            r.dk[ik + d] += pb.scale * dp[j] * Q(b, i, h, d);
            r.dq_abs[iq + d] += pb.scale * ds_abs[j] * std::fabs(K(b, j, h, d));
            r.dk_abs[ik + d] += pb.scale * ds_abs[j] * std::fabs(Q(b, i, h, d));
          }
        }
      }
  return r;
}

// Worst |got − ref| / (tol scale) over a tensor (NaN counts as infinite), with scale
// max|ref| + |ref| where `abs` is null, else the element's sum of absolute terms.
double worst_ratio(const std::vector<float>& got, const std::vector<double>& ref, double tol,
                   const std::vector<double>* abs = nullptr) {
  double mref = 0, worst = 0;
  for (double x : ref) mref = std::max(mref, std::fabs(x));
  for (size_t i = 0; i < ref.size(); i++) {
    const double err = std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - ref[i]);
    const double scale = abs ? (*abs)[i] + std::fabs(ref[i]) : mref + std::fabs(ref[i]);
    worst = std::max(worst, err / (tol * scale + 1e-30));
  }
  return worst;
}

// The forward (with L) and the gradient through the products, dropout off and at
// 0.3, all keys in one chunk and in chunks of 64, in float32 and bfloat16.
void check_gradient(const Case& c, cudaStream_t stream) {
  if (!g_gemm) {
    std::printf("SKIP gradient %s  (cuBLASLt not loaded)\n", c.name.c_str());
    return;
  }
  Rng rng(std::hash<std::string>()(c.name) ^ 0x77);
  Problem pb;
  init_problem(pb, c, rng);
  HostTensor go = pb.o;
  fill_random(go, rng, -1.f, 1.f);
  pb.mask = make_mask(c.mask, c.B, c.nq, c.nk, rng);
  if (pb.mask.present) {
    pb.dmask.alloc(pb.mask.v.size());
    CHECK_CUDA(cudaMemcpy(pb.dmask.p, pb.mask.v.data(), pb.mask.v.size(), cudaMemcpyHostToDevice));
  }
  const int64_t rows = c.B * c.H * c.nq;
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    const std::vector<float> qr = rounded(pb.q.v, dt), kr = rounded(pb.k.v, dt), vr = rounded(pb.v.v, dt),
                             gr = rounded(go.v, dt);
    upload(pb.dq, qr, dt);
    upload(pb.dk, kr, dt);
    upload(pb.dv, vr, dt);
    DeviceBuf dgo, dgq, dgk, dgv, dlse, dref_o;
    upload(dgo, gr, dt);
    for (float p : {0.f, 0.3f}) {
      cpu::DropoutMask dm;
      dm.seed = 1234 + (uint64_t)c.nk;
      dm.keep_below = (float)(1.0 - p);
      dm.scale = (float)(1.0 / (1.0 - p));
      const GradRef ref = grad_reference(pb, qr, kr, vr, gr, p > 0 ? &dm : nullptr);
      // O as the device holds it (rounded to dtype, in o's layout) for the gradient's D.
      std::vector<float> o_host(pb.o.v.size(), kNaN);
      for (int64_t b = 0; b < c.B; b++)
        for (int64_t i = 0; i < c.nq; i++)
          for (int64_t h = 0; h < c.H; h++)
            for (int64_t d = 0; d < c.dv; d++)
              o_host[b * pb.o.sb + i * pb.o.sn + h * pb.o.sh + d] = (float)ref.o[((b * c.nq + i) * c.H + h) * c.dv + d];
      upload(dref_o, rounded(o_host, dt), dt);
      for (size_t chunk : {kAttentionChunkBytes, kSmallChunks}) {
        if (chunk == kSmallChunks && c.nk <= 64) continue;
        char label[256];
        std::snprintf(label, sizeof label, "%-22s %-8s dropout=%.1f chunks=%-4s [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld %s mask=%s]",
                      c.name.c_str(), dtype_name(dt), p, chunk == kSmallChunks ? "64" : "all", (long long)c.B,
                      (long long)c.H, (long long)c.nq, (long long)c.nk, (long long)c.dqk, (long long)c.dv,
                      layout_name(c.layout), mask_name(c.mask));
        // The output first: make_args takes its address (a case's first pass used to
        // hand the forward a null output, which cuBLASLt refused).
        upload(pb.dout, std::vector<float>(pb.o.v.size(), kNaN), dt);
        AttentionArgs a = make_args(pb, dt);
        a.dropout_seed = dm.seed;
        a.dropout_keep_below = p > 0 ? dm.keep_below : 1.f;
        a.dropout_scale = p > 0 ? dm.scale : 0.f;
        dlse.alloc((size_t)std::max<int64_t>(rows, 1) * 4);
        a.lse = static_cast<float*>(dlse.p);
        const size_t nq_all = (size_t)(c.B * c.nq * c.H), nk_all = (size_t)(c.B * c.nk * c.H);
        std::string err;
        const char* stage = "forward";
        double w_out = 0, w_lse = 0, w_dq[5] = {}, w_dk[5] = {}, w_dv[5] = {};
        // The flash gradient ran: with 4 warps per block, with 8, and with dQ by atomics
        // (where it takes the call).
        bool flash = false;
        try {
          attention_forward_gemm(*g_gemm, *g_alloc, a, stream, chunk);
          CHECK_CUDA(cudaStreamSynchronize(stream));
          const std::vector<float> got = download(pb.dout, pb.o.v.size(), dt);
          std::vector<float> out_c((size_t)(nq_all * c.dv));
          for (int64_t b = 0; b < c.B; b++)
            for (int64_t i = 0; i < c.nq; i++)
              for (int64_t h = 0; h < c.H; h++)
                for (int64_t d = 0; d < c.dv; d++)
                  out_c[((b * c.nq + i) * c.H + h) * c.dv + d] = got[b * pb.o.sb + i * pb.o.sn + h * pb.o.sh + d];
          w_out = worst_ratio(out_c, ref.o, dt == DType::Float32 ? 1e-5 : 1e-2);
          // Float32 logits either way; 16-bit operands' tensor-core products round
          // differently. +inf rows must match exactly.
          const double lse_tol = dt == DType::Float32 ? 1e-5 : 1e-4;
          auto lse_worst = [&](const DeviceBuf& buf) {
            const std::vector<float> got = download(buf, (size_t)rows, DType::Float32);
            double w = 0;
            for (size_t r = 0; r < got.size(); r++) {
              const double x = ref.lse[r], y = got[r];
              w = std::max(w, std::isinf(x) || std::isinf(y) ? (x == y ? 0.0 : INFINITY)
                              : std::isnan(y)                ? INFINITY
                                                             : std::fabs(x - y) / (lse_tol + lse_tol * std::fabs(x)));
            }
            return w;
          };
          w_lse = lse_worst(dlse);
          // The row statistics' own kernel (attention_backward.cu), where it takes the call.
          if (flash_row_lse_serves(a, g_cc) && !skipped(kFlashGradient)) {
            stage = "flash row lse";
            DeviceBuf klse;
            klse.alloc((size_t)std::max<int64_t>(rows, 1) * 4);
            CHECK_CUDA(cudaMemset(klse.p, 0xff, klse.bytes));
            CHECK_CUDA(flash_row_lse(a, static_cast<float*>(klse.p), stream));
            CHECK_CUDA(cudaStreamSynchronize(stream));
            w_lse = std::max(w_lse, lse_worst(klse));
          }
          // The gradient twice: with the forward's L, then recomputing it; then the flash
          // gradient with the forward's L, in blocks of 4 warps and of 8, and with dQ by
          // atomics.
          for (int pass = 0; pass < (chunk == kAttentionChunkBytes ? 5 : 2); pass++) {
            const int flash_warps = pass == 3 ? 8 : 4;
            stage = pass == 0 ? "gradient with L" : pass == 1 ? "gradient, L recomputed" : "flash gradient";
            AttentionBackwardArgs g;
            g.a = a;
            g.a.out = static_cast<float*>(dref_o.p);
            g.a.lse = pass == 1 ? nullptr : a.lse;
            g.gout = static_cast<const float*>(dgo.p);
            const size_t es = dtype_size(dt);
            dgq.alloc(std::max<size_t>(nq_all * c.dqk * es, 4));
            dgk.alloc(std::max<size_t>(nk_all * c.dqk * es, 4));
            dgv.alloc(std::max<size_t>(nk_all * c.dv * es, 4));
            CHECK_CUDA(cudaMemset(dgq.p, 0xff, dgq.bytes));  // NaN: every element must be written
            CHECK_CUDA(cudaMemset(dgk.p, 0xff, dgk.bytes));
            CHECK_CUDA(cudaMemset(dgv.p, 0xff, dgv.bytes));
            g.gq = static_cast<float*>(dgq.p);
            g.gk = static_cast<float*>(dgk.p);
            g.gv = static_cast<float*>(dgv.p);
            if (pass >= 2 &&
                (skipped(kFlashGradient) || !(flash = flash_backward_serves(g, g_cc, g_smem_optin, flash_warps))))
              break;
            if (pass < 2) {
              attention_backward(*g_gemm, *g_alloc, g, stream, chunk);
            } else {
              DeviceBuf ws;
              ws.alloc(flash_backward_workspace_bytes(g.a, flash_warps));
              CHECK_CUDA(cudaMemset(ws.p, 0xff, ws.bytes));
              CHECK_CUDA(flash_attention_backward(g, g.a.lse, ws.p, stream, flash_warps, kFlashSlotBytes, pass == 4));
            }
            CHECK_CUDA(cudaStreamSynchronize(stream));
            const double tol = dt == DType::Float32 ? 1e-4 : 3e-2;
            w_dq[pass] = worst_ratio(download(dgq, nq_all * c.dqk, dt), ref.dq, tol, &ref.dq_abs);
            w_dk[pass] = worst_ratio(download(dgk, nk_all * c.dqk, dt), ref.dk, tol, &ref.dk_abs);
            w_dv[pass] = worst_ratio(download(dgv, nk_all * c.dv, dt), ref.dv, tol, &ref.dv_abs);
          }
        } catch (const perceiver::Error& e) {
          err = std::string(stage) + ": " + e.what();
        }
        const double worst =
            std::max({w_out, w_lse, w_dq[0], w_dk[0], w_dv[0], w_dq[1], w_dk[1], w_dv[1], w_dq[2], w_dk[2], w_dv[2],
                      w_dq[3], w_dk[3], w_dv[3], w_dq[4], w_dk[4], w_dv[4]});
        const bool ok = err.empty() && worst <= 1.0;
        if (!ok) g_failures++;
        char flash_part[200] = "";
        if (flash)
          std::snprintf(flash_part, sizeof flash_part,
                        " | flash: dq %.2f dk %.2f dv %.2f | 8 warps: dq %.2f dk %.2f dv %.2f | atomic dQ: dq %.2f",
                        w_dq[2], w_dk[2], w_dv[2], w_dq[3], w_dk[3], w_dv[3], w_dq[4]);
        std::printf("%s grad %s  worst of tol: out %.2f lse %.2f | with L: dq %.2f dk %.2f dv %.2f | L recomputed: dq %.2f dk %.2f dv %.2f%s%s%s\n",
                    ok ? "PASS" : "FAIL", label, w_out, w_lse, w_dq[0], w_dk[0], w_dv[0], w_dq[1], w_dk[1], w_dv[1],
                    flash_part, err.empty() ? "" : "  error: ", err.c_str());
      }
    }
  }
}

std::vector<Case> gradient_cases() {
  using L = Layout;
  using M = MaskKind;
  return {
      {"grad-w64-mask", 2, 3, 33, 150, 64, 64, L::BNHD, M::Full, false},
      {"grad-qk261-v64", 1, 1, 70, 300, 261, 64, L::PadOdd, M::KeyOnly, false},
      {"grad-self-heads", 2, 8, 64, 64, 32, 48, L::BHND, M::None, false},
      {"grad-nk1", 2, 1, 5, 1, 16, 16, L::BNHD, M::None, false},
      // One head over a batch (products batched over b, not heads) in several chunks.
      {"grad-one-head-batch", 3, 1, 40, 200, 24, 40, L::BNHD, M::KeyOnly, false},
      {"grad-all-zero", 1, 2, 20, 100, 16, 24, L::BNHD, M::AllZero, false},
      {"grad-transposed", 2, 2, 40, 130, 40, 24, L::PadAlign, M::Transposed, false},
  };
}

// ---- timing --------------------------------------------------------------------------

// --paths: the forward paths bench_case times (empty: all), e.g. one kernel under ncu.
std::vector<int> g_bench_paths;

void bench_case(const Case& c, cudaStream_t stream) {
  Rng rng(7);
  Problem pb;
  init_problem(pb, c, rng);
  const double flop = 2.0 * c.B * c.H * c.nq * c.nk * (double)(c.dqk + c.dv);
  cudaEvent_t t0, t1;
  CHECK_CUDA(cudaEventCreate(&t0));
  CHECK_CUDA(cudaEventCreate(&t1));
  for (DType dt : {DType::BFloat16, DType::Float16, DType::Float32}) {
    upload(pb.dq, pb.q.v, dt);
    upload(pb.dk, pb.k.v, dt);
    upload(pb.dv, pb.v.v, dt);
    upload(pb.dout, pb.o.v, dt);
    const AttentionArgs a = make_args(pb, dt);
    // bf16 through every path; fp16 as the public entry plans it (its kernels are
    // bf16's, instantiated again); float32 through what takes it (auto is the SIMT
    // kernel here, as the backend's fused op; the op layer composes float32 from
    // products instead, path gemm), and the 3xTF32 tensor-core kernel (tcx). tc1, the
    // one-stage loop kept for the checks, is not timed.
    for (int path : {0, 1, 7, 4, 8, 9, 10, 14, 11, 12, 15, 16, 2, 5, 13}) {
      if (dt == DType::Float16 && path != 0) continue;
      if (dt == DType::Float32 && path != 0 && path != 2 && path != 5 && path != 13) continue;
      if (dt != DType::Float32 && path == 13) continue;
      if (skipped(path)) continue;
      if (!g_bench_paths.empty() && std::find(g_bench_paths.begin(), g_bench_paths.end(), path) == g_bench_paths.end())
        continue;
      // Planned, one range, and where 64-row blocks leave SMs idle (batch 1 of 8 heads
      // over 512 latents: 64 blocks on an H200's 132 SMs) 2 and 4 ranges as well, so
      // that the split planner's thresholds can be set from timings.
      std::vector<int> split_counts = {0, 1};
      if (c.B * c.H * ((c.nq + 63) / 64) < g_sm_count && c.nk >= 256) split_counts.insert(split_counts.end(), {2, 4});
      for (int splits : split_counts) {
        // The products have no key splits; auto is timed as planned (what a caller gets).
        if ((path == 5 || path == 0) && splits != 0) break;
        const cudaError_t first = run_variant(a, path, splits, stream);
        if (first == cudaErrorNotSupported) {
          std::printf("BENCH %-20s %-8s %-4s  (not available)\n", c.name.c_str(), dtype_name(dt), path_name(path));
          break;
        }
        CHECK_CUDA(first);
        const char* kernel = is_product_path(path) ? "products" : detail::attention_last_kernel();
        CHECK_CUDA(cudaStreamSynchronize(stream));
        // Enough repetitions for ~0.1 s, at least 3.
        CHECK_CUDA(cudaEventRecord(t0, stream));
        CHECK_CUDA(run_variant(a, path, splits, stream));
        CHECK_CUDA(cudaEventRecord(t1, stream));
        CHECK_CUDA(cudaEventSynchronize(t1));
        float once = 0;
        CHECK_CUDA(cudaEventElapsedTime(&once, t0, t1));
        const int reps = std::max(3, std::min(200, (int)(100.f / std::max(once, 1e-3f))));
        CHECK_CUDA(cudaEventRecord(t0, stream));
        for (int r = 0; r < reps; r++) CHECK_CUDA(run_variant(a, path, splits, stream));
        CHECK_CUDA(cudaEventRecord(t1, stream));
        CHECK_CUDA(cudaEventSynchronize(t1));
        float ms = 0;
        CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
        ms /= reps;
        const int s = splits > 0 ? splits : detail::attention_planned_splits(a, g_sm_count);
        std::printf("BENCH %-20s %-8s %-4s splits=%-2d  %9.4f ms  %7.2f TFLOP/s  (%d reps) [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld] %s\n",
                    c.name.c_str(), dtype_name(dt), path_name(path), s, ms, flop / (ms * 1e-3) / 1e12,
                    reps, (long long)c.B, (long long)c.H, (long long)c.nq, (long long)c.nk,
                    (long long)c.dqk, (long long)c.dv, kernel);
      }
    }
  }
  CHECK_CUDA(cudaEventDestroy(t0));
  CHECK_CUDA(cudaEventDestroy(t1));
}

// The composed gradient's time at the Perceiver shapes (no reference: the values are
// checked above), from the forward's L.
void bench_gradient(const Case& c, cudaStream_t stream) {
  if (!g_gemm) return;
  Rng rng(11);
  Problem pb;
  init_problem(pb, c, rng);
  // Forward 2 products, gradient 5 (dV, dP, dK, dQ, and S again).
  const double flop = 2.0 * c.B * c.H * c.nq * c.nk * (double)(3 * c.dqk + 2 * c.dv);
  cudaEvent_t t0, t1;
  CHECK_CUDA(cudaEventCreate(&t0));
  CHECK_CUDA(cudaEventCreate(&t1));
  for (DType dt : {DType::BFloat16, DType::Float32}) {
    upload(pb.dq, pb.q.v, dt);
    upload(pb.dk, pb.k.v, dt);
    upload(pb.dv, pb.v.v, dt);
    upload(pb.dout, pb.o.v, dt);
    DeviceBuf go, gq, gk, gv, lse;
    upload(go, pb.o.v, dt);
    const size_t es = dtype_size(dt);
    gq.alloc((size_t)(c.B * c.nq * c.H * c.dqk) * es);
    gk.alloc((size_t)(c.B * c.nk * c.H * c.dqk) * es);
    gv.alloc((size_t)(c.B * c.nk * c.H * c.dv) * es);
    lse.alloc((size_t)(c.B * c.H * c.nq) * 4);
    AttentionArgs a = make_args(pb, dt);
    a.lse = static_cast<float*>(lse.p);
    attention_forward_gemm(*g_gemm, *g_alloc, a, stream);
    AttentionBackwardArgs g;
    g.a = a;
    g.gout = static_cast<const float*>(go.p);
    g.gq = static_cast<float*>(gq.p);
    g.gk = static_cast<float*>(gk.p);
    g.gv = static_cast<float*>(gv.p);
    // Milliseconds per run of `run` (once to warm up, then the mean of reps).
    const int reps = 10;
    auto time_ms = [&](const auto& run) {
      run();
      CHECK_CUDA(cudaStreamSynchronize(stream));
      CHECK_CUDA(cudaEventRecord(t0, stream));
      for (int r = 0; r < reps; r++) run();
      CHECK_CUDA(cudaEventRecord(t1, stream));
      CHECK_CUDA(cudaEventSynchronize(t1));
      float ms = 0;
      CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
      return ms / reps;
    };
    // The row statistics the gradient reads where the forward's kernels keep none: from
    // the products, and (where it takes the call) by the flash gradient's kernel.
    for (int way = 0; way < (flash_row_lse_serves(a, g_cc) && !skipped(kFlashGradient) ? 2 : 1); way++) {
      auto run = [&] {
        if (way == 0) attention_row_lse(*g_gemm, *g_alloc, a, a.lse, stream);
        else CHECK_CUDA(flash_row_lse(a, a.lse, stream));
      };
      const float ms = time_ms(run);
      std::printf("BENCH %-20s %-8s %-10s %9.4f ms  (%d reps) [B%lld H%lld Nq%lld Nk%lld Dqk%lld]\n", c.name.c_str(),
                  dtype_name(dt), way == 0 ? "lse" : "lse-flash", ms, reps, (long long)c.B, (long long)c.H,
                  (long long)c.nq, (long long)c.nk, (long long)c.dqk);
    }
    // The products, then (where it takes the call) the flash gradient with 4 and with 8
    // warps per block, and with dQ by atomics (what the determinism of its slots costs).
    DeviceBuf ws;
    const bool flash = !skipped(kFlashGradient) && flash_backward_serves(g, g_cc, g_smem_optin, 4);
    const bool flash8 = flash && flash_backward_serves(g, g_cc, g_smem_optin, 8);
    if (flash) ws.alloc(std::max(flash_backward_workspace_bytes(a, 4), flash_backward_workspace_bytes(a, 8)));
    for (int way = 0; way < (flash ? 4 : 1); way++) {
      if (way == 2 && !flash8) continue;
      auto run = [&] {
        if (way == 0) attention_backward(*g_gemm, *g_alloc, g, stream);
        else CHECK_CUDA(flash_attention_backward(g, a.lse, ws.p, stream, way == 2 ? 8 : 4, kFlashSlotBytes, way == 3));
      };
      const float ms = time_ms(run);
      std::printf("BENCH %-20s %-8s %-10s %9.4f ms  %7.2f TFLOP/s  (%d reps) [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld]\n",
                  c.name.c_str(), dtype_name(dt), way == 0 ? "grad" : way == 1 ? "grad-flash" : way == 2 ? "grad-flash8" : "grad-flashat",
                  ms, flop / (ms * 1e-3) / 1e12, reps,
                  (long long)c.B, (long long)c.H, (long long)c.nq, (long long)c.nk, (long long)c.dqk, (long long)c.dv);
    }
  }
  CHECK_CUDA(cudaEventDestroy(t0));
  CHECK_CUDA(cudaEventDestroy(t1));
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = true, check = true;
  std::string filter;
  std::vector<Case> custom;  // --shape
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (arg == "--no-bench") bench = false;
    else if (arg == "--bench-only") check = false;
    else if (arg == "--filter" && i + 1 < argc) filter = argv[++i];
    else if ((arg == "--paths" || arg == "--skip") && i + 1 < argc) {
      // Comma-separated path numbers (Variant::path). --paths: only these are timed, and
      // the gradient timings are left out; --skip: these are neither checked nor timed.
      std::vector<int>& into = arg == "--paths" ? g_bench_paths : g_skip_paths;
      for (const char* q = argv[++i]; *q;) {
        char* end = nullptr;
        const long v = std::strtol(q, &end, 10);
        if (end == q) break;
        into.push_back((int)v);
        q = *end == ',' ? end + 1 : end;
      }
      if (into.empty()) {
        std::fprintf(stderr, "%s: expected comma-separated path numbers, got '%s'\n", arg.c_str(), argv[i]);
        return 2;
      }
    } else if (arg == "--shape" && i + 1 < argc) {
      // B,H,Nq,Nk,Dqk,Dv: checked (sampled rows) and timed instead of the built-in cases.
      long long d[6];
      char tail = 0;
      if (std::sscanf(argv[++i], "%lld,%lld,%lld,%lld,%lld,%lld%c", &d[0], &d[1], &d[2], &d[3], &d[4], &d[5], &tail) != 6 ||
          std::any_of(d, d + 6, [](long long x) { return x < 1 || x > (1LL << 24); })) {
        std::fprintf(stderr, "--shape: expected B,H,Nq,Nk,Dqk,Dv (six integers in 1..2^24), got '%s'\n", argv[i]);
        return 2;
      }
      custom.push_back({std::string("shape-") + argv[i], d[0], d[1], d[2], d[3], d[4], d[5], Layout::BNHD, MaskKind::None, true});
    } else {
      std::fprintf(stderr,
                   "usage: %s [--no-bench | --bench-only] [--filter SUBSTRING] [--paths N,N...] [--skip N,N...] [--shape B,H,Nq,Nk,Dqk,Dv]...\n",
                   argv[0]);
      return 2;
    }
  }
  int dev = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, dev));
  g_sm_count = prop.multiProcessorCount;
  g_cc = prop.major * 10 + prop.minor;
  g_smem_optin = (int)prop.sharedMemPerBlockOptin;
  std::printf("device %d: %s, sm_%d%d, %d SMs, %zu KB shared memory per block (opt-in)\n", dev,
              prop.name, prop.major, prop.minor, prop.multiProcessorCount,
              prop.sharedMemPerBlockOptin / 1024);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  std::string lt_reason;
  const lt::Api* lt_api = lt::load(&lt_reason);
  GemmContext gemm{};
  DeviceAllocator alloc(dev);
  if (lt_api && lt_api->create(&gemm.handle) == 0) {
    gemm.device = dev;
    gemm.api = lt_api;
    gemm.workspace_bytes = size_t(32) << 20;
    CHECK_CUDA(cudaMalloc(&gemm.workspace, gemm.workspace_bytes));
    g_gemm = &gemm;
    g_alloc = &alloc;
    std::printf("cuBLASLt %s (version %zu): gemm versions on\n", lt_api->path.c_str(), lt_api->get_version());
  } else {
    std::printf("cuBLASLt not loaded (%s): gemm versions skipped\n", lt_reason.c_str());
  }

  if (!custom.empty()) {
    // Only the given shapes: each checked on sampled rows through its variants, then timed.
    for (const Case& c : custom) {
      if (check) check_case(c, stream);
      if (bench) bench_case(c, stream);
    }
    CHECK_CUDA(cudaStreamDestroy(stream));
    if (check) std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "OK", g_failures);
    return g_failures ? 1 : 0;
  }
  if (check) {
    check_contract(stream);
    if (filter.empty() || std::string("probe").find(filter) != std::string::npos) probe_layouts(stream);
    for (const Case& c : cases())
      if (filter.empty() || c.name.find(filter) != std::string::npos) check_case(c, stream);
    for (const Case& c : gradient_cases())
      if (filter.empty() || c.name.find(filter) != std::string::npos) check_gradient(c, stream);
  }
  if (bench) {
    const std::vector<Case> shapes = {
        {"perceiver-encoder", 1, 1, 512, 50176, 261, 261, Layout::BNHD, MaskKind::None, true},
        // The same as the ImageNet models call it: k = v = X (the fixed-width kernel's
        // 272 class, one tile per key tile for both).
        {"perceiver-encoder-kv", 1, 1, 512, 50176, 261, 261, Layout::BNHD, MaskKind::None, true, true},
        {"perceiver-self", 1, 8, 512, 512, 128, 128, Layout::BNHD, MaskKind::None, false},
        {"perceiver-self-b8", 8, 8, 512, 512, 128, 128, Layout::BNHD, MaskKind::None, false},
        // bench-gpu's large-batch self-attention, where the 16-row kernel ran at 0.20x SDPA.
        {"perceiver-self-b32", 32, 8, 512, 512, 128, 128, Layout::BNHD, MaskKind::None, false},
        {"perceiver-decoder", 1, 1, 1, 512, 1024, 1024, Layout::BNHD, MaskKind::None, false},
        // The language model's latent self-attention (qk 256, v 1280, 8 heads) at batch 32,
        // where the whole model measured 0.82x HF on an H200.
        {"mlm-self-b32", 32, 8, 256, 256, 32, 160, Layout::BNHD, MaskKind::None, false},
        // Its decoder: 2048 byte queries over the 256 latents, 8 heads of qk 32, v 96.
        {"mlm-decoder-b32", 32, 8, 2048, 256, 32, 96, Layout::BNHD, MaskKind::None, false},
        // Its encoder: the 256 latents over the 2048 bytes, 8 heads of qk 32, v 160.
        {"mlm-encoder-b32", 32, 8, 256, 2048, 32, 160, Layout::BNHD, MaskKind::None, false},
        // Optical flow's latent self-attention: 16 heads of 32 over 2048 latents, one
        // image pair (24 such layers per pair).
        {"flow-self", 1, 16, 2048, 2048, 32, 32, Layout::BNHD, MaskKind::None, false},
        // Optical flow's decoder (512-wide queries and values over 2048 latents; a slice
        // of its 182,528 queries): past the widest tc tier, so its 16-bit "tc" runs in
        // two column chunks of V, against the SIMT kernel it took before.
        {"flow-decoder", 1, 1, 16384, 2048, 512, 512, Layout::BNHD, MaskKind::None, false},
        // Optical flow's encoder (one head of 322 over its input, k = v = X: the
        // fixed-width kernel's 336 class), an eighth of its 182,528 pixels.
        {"flow-encoder-kv", 1, 1, 2048, 22816, 322, 322, Layout::BNHD, MaskKind::None, true, true},
    };
    for (const Case& c : shapes)
      if (filter.empty() || c.name.find(filter) != std::string::npos) bench_case(c, stream);
    // The encoder, and self-attention at batch 8 (the ImageNet training step's) and 32,
    // and the language model's.
    for (const Case& c : {shapes[0], shapes[3], shapes[4], shapes[6]})
      if (g_bench_paths.empty() && (filter.empty() || c.name.find(filter) != std::string::npos)) bench_gradient(c, stream);
    // Last, so a run cut short by a time limit loses only this: heads of 64 (the 16-row
    // kernel's first tier, held to 128 registers, and the wide kernel it does not take
    // there), as in the multimodal model's latent self-attention (784 latents, 8 heads).
    const Case tier0 = {"multimodal-self-b8", 8, 8, 784, 784, 64, 64, Layout::BNHD, MaskKind::None, false};
    if (filter.empty() || tier0.name.find(filter) != std::string::npos) bench_case(tier0, stream);
  }
  CHECK_CUDA(cudaStreamDestroy(stream));
  if (check) std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "OK", g_failures);
  return g_failures ? 1 : 0;
}
