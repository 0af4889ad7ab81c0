// Fused attention on CUDA (the contract is attention.h; the semantics are those of
// native/cpu/attention.cc): out = softmax(scale * q kᵀ, masked) v without ever
// materialising the [Nq, Nk] scores.
//
// Two kernels compute the same thing, FlashAttention-2 style: a thread block owns
// (batch, head, a tile of 64 query rows, a range of keys), walks its keys a tile at
// a time and keeps a running row max m, row sum l and unnormalised output O
// (online softmax, all fp32):
//   S = scale·log2(e) · Q Kᵀ          (log2(e) folded in, so exp2f does the exp)
//   S = -inf where masked or past the key range
//   m' = max(m, rowmax S);  P = exp2(S - m');  l = l·exp2(m - m') + rowsum P
//   O = O·exp2(m - m') + P V
// and finally out = O / l, or 0 where l == 0 (every key of the row masked).
//
// version 1, "tc" (bf16/fp16 on tensor cores): 4 warps, each owning 16 query rows.
//   Q (64 rows), K and V (BK keys) tiles live in shared memory with their head width
//   padded with zeros up to a multiple of 16 (261 -> 272, 322 -> 336), so any width
//   works and the padding contributes exact zeros to every product. Each warp
//   computes its 16 x BK slice of S with mma.sync m16n8k16 (A = Q and B = K via
//   ldmatrix), does the softmax on the S fragments in registers, converts them to
//   16 bits and uses them directly as the A operand of P V (B = V via
//   ldmatrix.trans); O stays in registers as mma accumulators. Dqk is only a loop
//   bound (Q and K are re-read from shared memory per k step), so it costs shared
//   memory but no registers; Dv sizes the O accumulators, so the kernel is
//   instantiated for three Dv caps (64, 128, 336), the loops running only over the
//   16-column blocks the real Dv needs. Wider Dv (optical flow's decoder, 512; the
//   ImageNet decoder's 1024) runs as several calls over column chunks of V and the
//   output, each recomputing S (dv_chunk); tiles that exceed the device's shared
//   memory take version 2.
//   A wide variant gives each warp two 16-row tiles (128 query rows per block), so
//   every K and V fragment loaded from shared memory feeds two MMAs: for Dv <= 128,
//   where blocks are plentiful (multi-head self-attention at large batch; see
//   wide_auto).
//   Where rows are 16-byte aligned (head widths and strides multiples of 8) on
//   sm_80+, K/V tiles are copied with cp.async into two shared-memory stages, so
//   that the copy of tile i+1 overlaps the products of tile i; otherwise (e.g. 261
//   wide heads packed at stride 261) the copies are plain loads, one stage, and
//   the two blocks per SM hide each other's loads.
// version 1f, "fixed" (attention_fixed.cuh; the default at the widths it has,
//   PERCEIVER_CUDA_ATTENTION_FIXED=0 turns it off): version 1 compiled for the padded
//   widths of multi-head latent self-attention (kFixedTiers), with Q's fragments in
//   registers, compile-time tile copies and one barrier per key tile; 2.3-3.3x
//   version 1's speed on an H200 (fixed_auto_variant).
// version 2, "simt" (fp32, and the fallback for any dtype and width): the same
//   algorithm with fp32 FMAs (no TF32: fp32 results stay within ~1e-5). 8 warps,
//   each owning 8 query rows; Dqk is streamed through shared memory 32 columns at a
//   time, and Dv is cut into 128-column chunks, one chunk per block (S is recomputed
//   per chunk, which keeps the accumulators at 32 per thread for any width).
//
// Long key ranges: when (batch · heads · query tiles) blocks would leave the GPU
// under-filled (the Perceiver encoder: one image, one head, 512 latents = 8 tiles,
// against 50,176 pixels), the keys are split into S ranges so that about 2 blocks
// per SM run; each writes its unnormalised (O, m, l) to the workspace and a third
// kernel merges them by the rescale-and-add of online softmax and applies the
// all-masked -> 0 rule.
//
// Block order puts the query tile fastest, so blocks running side by side read the
// same keys and values and share them in L2. Global offsets are 64-bit throughout;
// every grid is one-dimensional (up to 2^31 - 1 blocks).
#include "attention.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <type_traits>

#include "attention_mma.cuh"
#include "common.cuh"
#include "wgmma.cuh"

namespace perceiver::cuda {
namespace attn {

// Query rows per block of the simt kernel, and the unit in which key splits are
// planned (the tc kernel's tiles are 16 rows per warp, 64 with the 4 warps used now).
constexpr int kBlockQ = 64;
// A key range shorter than this is not worth a partial and the merge's extra launch
// (at 512 keys a block already runs for microseconds).
constexpr int64_t kMinKeysPerSplit = 512;
// With fewer query rows than a tile (a decoder's one query per image), a block's work
// is its key range alone, so ranges as short as this keep the GPU busy.
constexpr int64_t kMinKeysPerSplitFewQueries = 64;
constexpr int kMaxSplits = 64;
constexpr int kSimtBlockK = 32;
constexpr int kSimtChunkQK = 32;
constexpr int kSimtChunkV = 128;

// kTensorCore1: the tc kernel with one key/value stage (normally chosen only when
// two do not fit), so that the harness can check both loops on any device.
// kTensorCoreWide: the tc kernel with two 16-row tiles per warp (Dv <= 128).
// kTensorCoreOccupancy: the 16-row kernel's occupancy tiers (Dv 65-272; see
// occupancy_auto).
// kTensorCoreFixed: the fixed-width kernel (attention_fixed.cuh) with 4 warps of one
// 16-row tile; kTensorCoreFixed8 with 8 warps, kTensorCoreFixedWide with 4 warps of two
// tiles, where its width class has such an instantiation (kFixedTiers).
// kTensorCoreWgmma: the warpgroup kernel (attention_wgmma.cuh; compute capability 9.0
// only, kWgmmaTiers) with two warpgroups per block; kTensorCoreWgmma1 with one.
// kTensorCoreTf32: float32 on tensor cores in 3xTF32 (attention_tf32.cuh, kTf32Tiers).
// kTensorCoreFixedOcc: the fixed-width kernel's occupancy variant (32-key tiles, more
// blocks per SM), where its width class has one.
// kTensorCoreWgmmaPingpong: the warpgroup kernel with two warpgroups that take turns
// (kPingpong), where its width class has one.
// kTensorCoreWgmmaWideKeys: the warpgroup kernel with two warpgroups over 128-key tiles,
// where its width class has such a tier.
// (5 and 6 are the harness's product-composed paths.)
enum Path : int {
  kAuto = 0, kTensorCore = 1, kSimt = 2, kTensorCore1 = 3, kTensorCoreWide = 4,
  kTensorCoreOccupancy = 7, kTensorCoreFixed = 8, kTensorCoreFixed8 = 9, kTensorCoreFixedWide = 10,
  kTensorCoreWgmma = 11, kTensorCoreWgmma1 = 12, kTensorCoreTf32 = 13, kTensorCoreFixedOcc = 14,
  kTensorCoreWgmmaPingpong = 15, kTensorCoreWgmmaWideKeys = 16
};
// Which family of tc instantiations a call takes (kTcTiers).
enum TcKind : int { kTcNarrow = 0, kTcWide = 1, kTcOccupancy = 2 };

// What the kernels need, by value (a few hundred bytes of kernel parameters).
struct Params {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  const uint8_t* mask;
  int64_t nq, nk, heads, dqk, dv;
  int64_t q_sb, q_sn, q_sh, k_sb, k_sn, k_sh, v_sb, v_sn, v_sh, o_sb, o_sn, o_sh;
  int64_t m_sb, m_sq, m_sk;
  float scale_log2;
  int64_t rows_total;  // batch * heads * nq
  int64_t q_tiles;     // ceil(nq / query rows per block)
  int splits;       // key ranges per (batch, head, query tile)
  int dv_chunks;    // simt only: Dv chunks of kSimtChunkV
  // 16-byte loads are allowed: base pointer and all strides are multiples of 8
  // elements (tc only).
  bool q_vec, k_vec, v_vec;
  int tc_stages;  // 1 or 2 key/value buffers in shared memory (tc only)
  int tc_kind;    // TcKind (tc only)
  int fixed_tier;  // kFixedTiers index (the fixed-width kernel only)
  int wgmma_tier;  // kWgmmaTiers index (the warpgroup kernel only)
  // Partials when splits > 1: O [splits][B·H·Nq][Dv], then m and l [splits][B·H·Nq].
  float* ws_o;
  float* ws_m;
  float* ws_l;
  int tf32_tier;  // kTf32Tiers index (the float32 tensor-core kernel only; last, so
                  // that the other kernels' parameter offsets stay as measured)
  // Each row's log-sum-exp [B·H·Nq] (AttentionArgs::lse), set only for the fixed-width
  // and warpgroup kernels' instantiations that write it (FixedTier::lse,
  // WgmmaTier::lse), at one key range.
  float* lse;
  int o_store;  // OStore: how the output's rows may be written (o_store_for)
  int64_t ws_ld;  // ws_o's row stride: Dv rounded up to even (ws_row_floats)
};

// How a block may write O (one key range): element by element; in pairs of adjacent
// columns (one 4-byte store of 16-bit data, 8 bytes of float32: Dv and the strides even,
// the base aligned to a pair); or, 16-bit data, in 16-byte units (Dv a multiple of 8 and
// vec16_ok), which the fixed-width kernel stages through shared memory (store_rows_vec16)
// and the others take as pairs. Element by element, the two 2-byte stores of a
// thread's pair each half-fill the 32-byte sectors of eight rows: four sectors written
// for each one's worth of data (ncu at the language model's latents, 2026-11-28: 2.55
// million sectors into L2 for 0.66 million of output).
enum OStore : int { kOStoreElems = 0, kOStorePairs = 1, kOStoreVec16 = 2 };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ int round16(int64_t x) { return (int)((x + 15) / 16 * 16); }

// Key range [j0, j1) of split s: the same integer cut everywhere.
__device__ __forceinline__ void key_range(const Params& p, int s, int64_t* j0, int64_t* j1) {
  *j0 = p.nk * s / p.splits;
  *j1 = p.nk * (s + 1) / p.splits;
}

// ---- version 1: tensor cores ------------------------------------------------------

// Where a tc-family block works: (batch, head) b, h (bh = b·H + h), its first query row
// i0 of bq-row tiles, its key range [j0, j1) and that range's split index. Blocks
// order the query tile fastest, then the split.
struct BlockPlace {
  int64_t b, h, bh, i0, j0, j1;
  int split;
};
__device__ __forceinline__ BlockPlace block_place(const Params& p, int bq) {
  BlockPlace r;
  int64_t blk = blockIdx.x;
  const int64_t qt = blk % p.q_tiles;
  blk /= p.q_tiles;
  r.split = (int)(blk % p.splits);
  r.bh = blk / p.splits;
  r.b = r.bh / p.heads;
  r.h = r.bh % p.heads;
  r.i0 = qt * bq;
  key_range(p, r.split, &r.j0, &r.j1);
  return r;
}

// A block's first rows of its Q (query row i0), K and V (key j0), of elements E (16-bit
// data as raw bits, or float): where the fixed-width, warpgroup and TF32 kernels' tile
// copies start.
template <class E>
struct TileBasesOf {
  const E* q;
  const E* k;
  const E* v;
};
using TileBases = TileBasesOf<uint16_t>;
template <class E = uint16_t>
__device__ __forceinline__ TileBasesOf<E> tile_bases(const Params& p, const BlockPlace& bp) {
  return {static_cast<const E*>(p.q) + bp.b * p.q_sb + bp.h * p.q_sh + bp.i0 * p.q_sn,
          static_cast<const E*>(p.k) + bp.b * p.k_sb + bp.h * p.k_sh + bp.j0 * p.k_sn,
          static_cast<const E*>(p.v) + bp.b * p.v_sb + bp.h * p.v_sh + bp.j0 * p.v_sn};
}

// Copies `rows` rows of width d (row stride sn elements, unit column stride) from
// global memory into a shared tile of kRows rows at row stride ld, zero-filling
// columns [d, dpad) and rows [rows, kRows). 16-bit elements are moved as raw bits.
// When base and strides are multiples of 8 elements (`vec`), consecutive threads
// take consecutive 16-byte chunks of a row, as cp.async on sm_80+ (completed by
// cp_async_wait + __syncthreads) and as plain 16-byte loads below. Otherwise (a
// 261-wide head packed at row stride 261 has rows at odd element offsets, so no
// wider load is aligned) consecutive threads take consecutive elements of a row,
// so that each warp's 2-byte loads still fall in one or two 32-byte sectors.
// kStepped: the vec path steps its (row, chunk) position instead of dividing each
// chunk's index by the chunks per row (an integer division per 16 bytes, ahead of
// every key tile's products); the occupancy tiers take it.
template <int kRows, int kThreads, bool kStepped = false>
__device__ __forceinline__ void load_tile16(uint16_t* __restrict__ s, int ld,
                                            const uint16_t* __restrict__ g, int64_t sn, int rows,
                                            int d, int dpad, bool vec) {
  if (vec) {
    const int chunks = dpad >> 3;
    if (chunks == 0) return;  // a zero-width head (Dqk = 0): nothing to copy, nor to divide by
    if constexpr (kStepped) {
      const int dr = kThreads / chunks, dc = (kThreads - dr * chunks) << 3;
      int r = threadIdx.x / chunks, c = (threadIdx.x - r * chunks) << 3;
      while (r < kRows) {
        load_chunk16(s, ld, g, sn, rows, d, r, c);
        r += dr;
        c += dc;
        if (c >= dpad) {
          c -= dpad;
          r++;
        }
      }
    } else {
      const int total = kRows * chunks;
      for (int idx = threadIdx.x; idx < total; idx += kThreads) {
        const int r = idx / chunks;
        const int c = (idx - r * chunks) << 3;
        load_chunk16(s, ld, g, sn, rows, d, r, c);
      }
    }
  } else {
    for (int r = 0; r < kRows; r++) {
      const uint16_t* src = g + (int64_t)r * sn;
      for (int c = threadIdx.x; c < dpad; c += kThreads)
        s[r * ld + c] = r < rows && c < d ? src[c] : (uint16_t)0;
    }
  }
}

// Shared memory of the tc kernel: Q [64][ldq], then per stage K [BK][ldq] and
// V [BK][ldv], 16-bit. Rows are padded by 8 elements (16 bytes): with a row stride
// of 4 mod 8 words, the 8 row addresses of each ldmatrix phase fall in distinct
// bank quads. Two stages let the cp.async copy of key tile i+1 overlap the
// products of tile i; one stage (load, wait, compute) when two do not fit.
__host__ __device__ __forceinline__ int tc_ldq(int64_t dqk) { return round16(dqk) + 8; }
__host__ __device__ __forceinline__ int tc_ldv(int64_t dv) { return round16(dv) + 8; }
inline size_t tc_smem_bytes(int64_t dqk, int64_t dv, int bq, int bk, int stages) {
  return ((size_t)bq * tc_ldq(dqk) +
          (size_t)stages * bk * ((size_t)tc_ldq(dqk) + tc_ldv(dv))) * 2;
}

// Columns c and c + 1 of a row (c even) in one store: the caller has checked that the
// pair is aligned (OStore).
template <class T>
__device__ __forceinline__ void store_pair(T* at, float lo, float hi) {
  if constexpr (std::is_same_v<T, float>) stg<float2>(at, make_float2(lo, hi));
  else stg<uint32_t>(at, pack2<T>(lo, hi));
}

template <int kRT>
__device__ __forceinline__ void store_lse(const Params& p, int64_t bh, const int64_t (&row)[kRT][2],
                                          const float (&m)[kRT][2], const float (&l)[kRT][2], int t) {
  if (t == 0) {
#pragma unroll
    for (int rt = 0; rt < kRT; rt++)
#pragma unroll
      for (int r = 0; r < 2; r++)
        if (row[rt][r] < p.nq) p.lse[bh * p.nq + row[rt][r]] = row_lse(m[rt][r], l[rt][r]);
  }
}

// The end of a block: this thread's rows (row[rt][0] = g, row[rt][1] = g + 8 of each of
// its warp's kRT 16-row tiles) from their O fragments, normalised into the output (one
// key range), or unnormalised into the workspace with each row's m and l for the merge
// (threads t == 0 write those). l holds the rows' whole sums. kLse (one key range
// only): threads t == 0 also write each row's log-sum-exp to p.lse, from m and l (the
// log2 domain: scores times scale·log2 e), +inf where every key was masked. A template
// flag, not a test of p.lse: the kernels sit at their register caps, and the write's
// code, even untaken, made some spill (2026-11-28).
template <class T, int kRT, int kNO, bool kLse = false>
__device__ __forceinline__ void store_rows(const Params& p, int64_t b, int64_t h, int64_t bh, int split,
                                           const int64_t (&row)[kRT][2], const float (&o)[kRT][kNO][4],
                                           const float (&m)[kRT][2], const float (&l)[kRT][2], int t) {
  if (p.splits == 1) {
    T* out = static_cast<T*>(p.out) + b * p.o_sb + h * p.o_sh;
    const bool pairs = p.o_store != kOStoreElems;
#pragma unroll
    for (int rt = 0; rt < kRT; rt++)
#pragma unroll
      for (int r = 0; r < 2; r++) {
        if (row[rt][r] >= p.nq) continue;
        const float inv = l[rt][r] == 0.f ? 0.f : 1.f / l[rt][r];  // all masked -> 0; NaN stays
        T* orow = out + row[rt][r] * p.o_sn;
#pragma unroll
        for (int n = 0; n < kNO; n++) {
          const int c = n * 8 + 2 * t;
          if (pairs) {
            if (c < p.dv) store_pair<T>(orow + c, o[rt][n][2 * r] * inv, o[rt][n][2 * r + 1] * inv);
          } else {
            if (c < p.dv) orow[c] = from_float<T>(o[rt][n][2 * r] * inv);
            if (c + 1 < p.dv) orow[c + 1] = from_float<T>(o[rt][n][2 * r + 1] * inv);
          }
        }
      }
    if constexpr (kLse) store_lse<kRT>(p, bh, row, m, l, t);
  } else {
    // The workspace's rows (an even count of floats from a 256-byte aligned base) take
    // pairs; an odd Dv's last one fills the row's spare column.
    const int64_t base = (int64_t)split * p.rows_total + bh * p.nq;
#pragma unroll
    for (int rt = 0; rt < kRT; rt++)
#pragma unroll
      for (int r = 0; r < 2; r++) {
        if (row[rt][r] >= p.nq) continue;
        float* orow = p.ws_o + (base + row[rt][r]) * p.ws_ld;
#pragma unroll
        for (int n = 0; n < kNO; n++) {
          const int c = n * 8 + 2 * t;
          if (c < p.dv) store_pair<float>(orow + c, o[rt][n][2 * r], o[rt][n][2 * r + 1]);
        }
        if (t == 0) {
          p.ws_m[base + row[rt][r]] = m[rt][r];
          p.ws_l[base + row[rt][r]] = l[rt][r];
        }
      }
  }
}

// kRT: 16-row query tiles per warp. With 2, each K and V fragment a warp loads from
// shared memory feeds two MMAs instead of one, halving that traffic per FLOP (the
// 16-row version is bound by it at 8 heads of 128), at twice the S and O registers.
// kDqkMax > 0: Dqk is at most kDqkMax (the host guarantees it), and the Q Kᵀ loop is
// unrolled over kDqkMax / 16 steps (skipping those past the real width), so that the
// fragment loads of one step can be issued while the previous step's MMAs run; 0: a
// loop over the runtime width, which any Dqk takes.
template <class T, int kDvMax, int kBK, int kWarps, int kRT, int kDqkMax>
__device__ __forceinline__ void tc_body(const Params& p) {
  constexpr int kThreads = 32 * kWarps;
  constexpr int kBQ = 16 * kWarps * kRT;
  constexpr int kNS = kBK / 8;        // n8 tiles of S per warp and row tile
  constexpr int kNO = kDvMax / 8;     // n8 tiles of O per warp and row tile
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  const int dqk_pad = round16(p.dqk), dv_pad = round16(p.dv);
  const int ldq = dqk_pad + 8, ldv = dv_pad + 8;
  uint16_t* Qs = reinterpret_cast<uint16_t*>(smem_raw);
  // Stage st: K at stage_base + st * stage_size, V right after it.
  uint16_t* const stage_base = Qs + kBQ * ldq;
  const int stage_size = kBK * (ldq + ldv);

  const BlockPlace bp = block_place(p, kBQ);
  const int64_t b = bp.b, h = bp.h, bh = bp.bh, i0 = bp.i0, j0 = bp.j0, j1 = bp.j1;
  const int split = bp.split;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;

  const uint16_t* qg = static_cast<const uint16_t*>(p.q) + b * p.q_sb + h * p.q_sh + i0 * p.q_sn;
  const uint16_t* kg = static_cast<const uint16_t*>(p.k) + b * p.k_sb + h * p.k_sh;
  const uint16_t* vg = static_cast<const uint16_t*>(p.v) + b * p.v_sb + h * p.v_sh;
  // Starts the copy of key tile `it` into stage `st`.
  auto load_kv = [&](int64_t it, int st) {
    const int64_t jt = j0 + it * kBK;
    const int kn = (int)min64(kBK, j1 - jt);
    uint16_t* Ks = stage_base + st * stage_size;
    load_tile16<kBK, kThreads, (kDqkMax > 0)>(Ks, ldq, kg + jt * p.k_sn, p.k_sn, kn, (int)p.dqk, dqk_pad,
                               p.k_vec);
    load_tile16<kBK, kThreads, (kDqkMax > 0)>(Ks + kBK * ldq, ldv, vg + jt * p.v_sn, p.v_sn, kn, (int)p.dv,
                               dv_pad, p.v_vec);
  };
  const int64_t ntiles = (j1 - j0 + kBK - 1) / kBK;
  load_tile16<kBQ, kThreads>(Qs, ldq, qg, p.q_sn, (int)min64(kBQ, p.nq - i0),
                                 (int)p.dqk, dqk_pad, p.q_vec);
  if (ntiles > 0) load_kv(0, 0);
  cp_async_commit();

  // This thread's two query rows per row tile (g and g + 8 of its 16) and their masks.
  // The warp's tiles are adjacent: rows [warp·16·kRT, (warp + 1)·16·kRT) of the block.
  int64_t row[kRT][2];
#pragma unroll
  for (int rt = 0; rt < kRT; rt++) {
    row[rt][0] = i0 + (warp * kRT + rt) * 16 + g;
    row[rt][1] = i0 + (warp * kRT + rt) * 16 + g + 8;
  }
  const uint8_t* mrow[kRT][2];
#pragma unroll
  for (int rt = 0; rt < kRT; rt++)
#pragma unroll
    for (int r = 0; r < 2; r++)
      mrow[rt][r] = p.mask && row[rt][r] < p.nq ? p.mask + b * p.m_sb + row[rt][r] * p.m_sq : nullptr;

  float o[kRT][kNO][4];
#pragma unroll
  for (int rt = 0; rt < kRT; rt++)
#pragma unroll
    for (int n = 0; n < kNO; n++) o[rt][n][0] = o[rt][n][1] = o[rt][n][2] = o[rt][n][3] = 0.f;
  float m[kRT][2], l[kRT][2];  // l: this thread's share; the 4 threads of a row add up at the end
#pragma unroll
  for (int rt = 0; rt < kRT; rt++) {
    m[rt][0] = -INFINITY;
    m[rt][1] = -INFINITY;
    l[rt][0] = 0.f;
    l[rt][1] = 0.f;
  }
  const int nk16 = dqk_pad >> 4, nv16 = dv_pad >> 4;

  // ldmatrix row addresses (element offsets) that stay fixed across key tiles.
  const int q_off = (warp * kRT * 16 + (lane & 15)) * ldq + (lane >> 4) * 8;
  const int k_off = ((lane & 7) + (lane >> 4) * 8) * ldq + ((lane >> 3) & 1) * 8;
  const int v_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * ldv + (lane >> 4) * 8;

  for (int64_t it = 0; it < ntiles; it++) {
    const int64_t jt = j0 + it * kBK;
    const int kn = (int)min64(kBK, j1 - jt);
    const int st = p.tc_stages == 2 ? (int)(it & 1) : 0;
    if (p.tc_stages == 2 && it + 1 < ntiles) {
      // Stage st ^ 1 was last read in iteration it - 1, which ended in a barrier.
      load_kv(it + 1, st ^ 1);
      cp_async_commit();
      cp_async_wait<1>();  // tile it (and Q) landed; tile it + 1 may still be in flight
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // every thread's copies of tile it are visible
    const uint16_t* Ks = stage_base + st * stage_size;
    const uint16_t* Vs = Ks + kBK * ldq;

    // S (16 x kBK per warp and row tile) = Q Kᵀ; each K fragment serves every row tile.
    float s[kRT][kNS][4];
#pragma unroll
    for (int rt = 0; rt < kRT; rt++)
#pragma unroll
      for (int n = 0; n < kNS; n++) s[rt][n][0] = s[rt][n][1] = s[rt][n][2] = s[rt][n][3] = 0.f;
    // One step, two loops: unrolled over kDqkMax / 16, or over the runtime width. A
    // macro rather than a lambda, which changed the other tiers' register allocation
    // (tier 1: 180 -> 186) where their code should stay as it was timed on the H200.
#define PERCEIVER_TC_QK_STEP(kc)                                                          \
  {                                                                                      \
    uint32_t a[kRT][4];                                                                  \
    _Pragma("unroll") for (int rt = 0; rt < kRT; rt++)                                   \
        ldmatrix_x4(a[rt], Qs + q_off + rt * 16 * ldq + (kc) * 16);                      \
    _Pragma("unroll") for (int n = 0; n < kBK / 16; n++) {                               \
      uint32_t bb[4];                                                                    \
      ldmatrix_x4(bb, Ks + k_off + n * 16 * ldq + (kc) * 16);                            \
      _Pragma("unroll") for (int rt = 0; rt < kRT; rt++) {                               \
        mma_16816<T>(s[rt][2 * n], a[rt], bb[0], bb[1]);                                 \
        mma_16816<T>(s[rt][2 * n + 1], a[rt], bb[2], bb[3]);                             \
      }                                                                                  \
    }                                                                                    \
  }
    if constexpr (kDqkMax > 0) {
#pragma unroll
      for (int kc = 0; kc < kDqkMax / 16; kc++)
        if (kc < nk16) PERCEIVER_TC_QK_STEP(kc)
    } else {
      for (int kc = 0; kc < nk16; kc++) PERCEIVER_TC_QK_STEP(kc)
    }
#undef PERCEIVER_TC_QK_STEP

#pragma unroll
    for (int rt = 0; rt < kRT; rt++) {
      // Scale into the log2 domain; masked keys and keys past the range become -inf.
#pragma unroll
      for (int n = 0; n < kNS; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int jj = n * 8 + 2 * t + (e & 1);
          bool keep = jj < kn;
          const uint8_t* mr = mrow[rt][e >> 1];
          if (keep && mr) keep = mr[(jt + jj) * p.m_sk] != 0;
          s[rt][n][e] = keep ? s[rt][n][e] * p.scale_log2 : -INFINITY;
        }

      // Online softmax for rows g (e = 0, 1) and g + 8 (e = 2, 3); a row's 4 threads
      // (same g) combine their maxima by shuffles.
#pragma unroll
      for (int r = 0; r < 2; r++) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < kNS; n++) mx = fmaxf(mx, fmaxf(s[rt][n][2 * r], s[rt][n][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m[rt][r], mx);
        // Nothing unmasked yet: subtract 0 so that P = exp2(-inf) = 0 rather than NaN.
        const float m_use = m_new == -INFINITY ? 0.f : m_new;
        const float corr = exp2f(m[rt][r] - m_use);  // 0 while m was -inf (l, O are 0 then)
        m[rt][r] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < kNS; n++) {
          s[rt][n][2 * r] = exp2f(s[rt][n][2 * r] - m_use);
          s[rt][n][2 * r + 1] = exp2f(s[rt][n][2 * r + 1] - m_use);
          sum += s[rt][n][2 * r] + s[rt][n][2 * r + 1];
        }
        l[rt][r] = l[rt][r] * corr + sum;
#pragma unroll
        for (int n = 0; n < kNO; n++) {
          if (n < 2 * nv16) {
            o[rt][n][2 * r] *= corr;
            o[rt][n][2 * r + 1] *= corr;
          }
        }
      }
    }

    // O += P V, 16 keys per step; P's A fragment is two S tiles, converted, and each
    // V fragment serves every row tile.
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++) {
      if (kk * 16 >= kn) break;  // P is 0 there (and V rows are zero-filled)
      uint32_t a[kRT][4];
#pragma unroll
      for (int rt = 0; rt < kRT; rt++) {
        a[rt][0] = pack2<T>(s[rt][2 * kk][0], s[rt][2 * kk][1]);
        a[rt][1] = pack2<T>(s[rt][2 * kk][2], s[rt][2 * kk][3]);
        a[rt][2] = pack2<T>(s[rt][2 * kk + 1][0], s[rt][2 * kk + 1][1]);
        a[rt][3] = pack2<T>(s[rt][2 * kk + 1][2], s[rt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int n = 0; n < kNO / 2; n++) {
        if (n < nv16) {
          uint32_t bb[4];
          ldmatrix_x4_trans(bb, Vs + v_off + kk * 16 * ldv + n * 16);
#pragma unroll
          for (int rt = 0; rt < kRT; rt++) {
            mma_16816<T>(o[rt][2 * n], a[rt], bb[0], bb[1]);
            mma_16816<T>(o[rt][2 * n + 1], a[rt], bb[2], bb[3]);
          }
        }
      }
    }
    __syncthreads();  // stage st is no longer read
    if (p.tc_stages == 1 && it + 1 < ntiles) {
      load_kv(it + 1, 0);
      cp_async_commit();
    }
  }

#pragma unroll
  for (int rt = 0; rt < kRT; rt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      l[rt][r] += __shfl_xor_sync(0xffffffffu, l[rt][r], 1);
      l[rt][r] += __shfl_xor_sync(0xffffffffu, l[rt][r], 2);
    }

  store_rows<T, kRT, kNO>(p, b, h, bh, split, row, o, m, l, t);
}

template <class T, int kDvMax, int kBK, int kWarps, int kRT, int kDqkMax>
__device__ __forceinline__ void tc_entry(const Params& p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  // No bf16 tensor cores before sm_80; the host never launches this there.
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    __trap();
  } else {
    tc_body<T, kDvMax, kBK, kWarps, kRT, kDqkMax>(p);
  }
#else
  tc_body<T, kDvMax, kBK, kWarps, kRT, kDqkMax>(p);
#endif
}

template <class T, int kDvMax, int kBK, int kWarps, int kRT, int kDqkMax>
__global__ void __launch_bounds__(32 * kWarps) attention_tc_kernel(Params p) {
  tc_entry<T, kDvMax, kBK, kWarps, kRT, kDqkMax>(p);
}

// The same kernel held to kMinBlocks blocks per SM. (A second template rather than a
// parameter: naming even 1 block per SM lifts ptxas' own register cap, 139 -> 187
// registers for the first tier.)
template <class T, int kDvMax, int kBK, int kWarps, int kRT, int kDqkMax, int kMinBlocks>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks) attention_tc_kernel_bounded(Params p) {
  tc_entry<T, kDvMax, kBK, kWarps, kRT, kDqkMax>(p);
}

#include "attention_fixed.cuh"
#include "attention_wgmma.cuh"
#include "attention_tf32.cuh"

// ---- version 2: fp32 FMA (any dtype, any width) -----------------------------------

template <class T>
__global__ void __launch_bounds__(256) attention_simt_kernel(Params p) {
  constexpr int kBK = kSimtBlockK, kDC = kSimtChunkQK, kVC = kSimtChunkV;
  constexpr int kThreads = 256, kRowsPerWarp = kBlockQ / 8, kCols = kVC / 32;
  // +1 on the row stride: Ks[lane][d] and Ps[row][lane] hit 32 distinct banks.
  __shared__ float Qs[kBlockQ][kDC + 1];
  __shared__ float Ks[kBK][kDC + 1];
  __shared__ float Vs[kBK][kVC];
  __shared__ float Ps[kBlockQ][kBK + 1];

  int64_t blk = blockIdx.x;
  const int64_t qt = blk % p.q_tiles;
  blk /= p.q_tiles;
  const int vc = (int)(blk % p.dv_chunks);
  blk /= p.dv_chunks;
  const int split = (int)(blk % p.splits);
  const int64_t bh = blk / p.splits;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = qt * kBlockQ;
  const int64_t c0 = (int64_t)vc * kVC;  // first output column of this block
  int64_t j0, j1;
  key_range(p, split, &j0, &j1);

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int rq = (int)min64(kBlockQ, p.nq - i0);
  const T* qg = static_cast<const T*>(p.q) + b * p.q_sb + h * p.q_sh + i0 * p.q_sn;
  const T* kg = static_cast<const T*>(p.k) + b * p.k_sb + h * p.k_sh;
  const T* vg = static_cast<const T*>(p.v) + b * p.v_sb + h * p.v_sh + c0;
  const int vcols = (int)min64(kVC, p.dv - c0);

  // Warp w owns query rows 8w .. 8w+7: in S and P lane = key, in O lane = column
  // (lane + 32 c), so the softmax's per-row factors never leave the warp.
  const uint8_t* mrow[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; rr++) {
    const int64_t i = i0 + warp * kRowsPerWarp + rr;
    mrow[rr] = p.mask && i < p.nq ? p.mask + b * p.m_sb + i * p.m_sq : nullptr;
  }
  float o[kRowsPerWarp][kCols];
  float m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; rr++) {
    m[rr] = -INFINITY;
    l[rr] = 0.f;
#pragma unroll
    for (int c = 0; c < kCols; c++) o[rr][c] = 0.f;
  }

  for (int64_t jt = j0; jt < j1; jt += kBK) {
    const int kn = (int)min64(kBK, j1 - jt);
    float s[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; rr++) s[rr] = 0.f;
    for (int64_t dc = 0; dc < p.dqk; dc += kDC) {
      const int dn = (int)min64(kDC, p.dqk - dc);
      __syncthreads();
      for (int idx = tid; idx < kBlockQ * kDC; idx += kThreads) {
        const int r = idx / kDC, c = idx % kDC;
        Qs[r][c] = r < rq && c < dn ? to_float(qg[r * p.q_sn + dc + c]) : 0.f;
      }
      for (int idx = tid; idx < kBK * kDC; idx += kThreads) {
        const int r = idx / kDC, c = idx % kDC;
        Ks[r][c] = r < kn && c < dn ? to_float(kg[(jt + r) * p.k_sn + dc + c]) : 0.f;
      }
      __syncthreads();
#pragma unroll 8
      for (int d = 0; d < kDC; d++) {
        const float kv = Ks[lane][d];
#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; rr++)
          s[rr] = fmaf(Qs[warp * kRowsPerWarp + rr][d], kv, s[rr]);
      }
    }

    // Online softmax, one row at a time across the warp (lane = key).
    float corr[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; rr++) {
      bool keep = lane < kn;
      if (keep && mrow[rr]) keep = mrow[rr][(jt + lane) * p.m_sk] != 0;
      const float x = keep ? s[rr] * p.scale_log2 : -INFINITY;
      float mx = x;
#pragma unroll
      for (int sh = 16; sh > 0; sh >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, sh));
      const float m_new = fmaxf(m[rr], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      corr[rr] = exp2f(m[rr] - m_use);
      m[rr] = m_new;
      const float pv = exp2f(x - m_use);
      float sum = pv;
#pragma unroll
      for (int sh = 16; sh > 0; sh >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, sh);
      l[rr] = l[rr] * corr[rr] + sum;
      Ps[warp * kRowsPerWarp + rr][lane] = pv;
    }

    __syncthreads();  // every warp is done with the previous tile's V
    for (int idx = tid; idx < kBK * kVC; idx += kThreads) {
      const int r = idx / kVC, c = idx % kVC;
      Vs[r][c] = r < kn && c < vcols ? to_float(vg[(jt + r) * p.v_sn + c]) : 0.f;
    }
    __syncthreads();

#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; rr++)
#pragma unroll
      for (int c = 0; c < kCols; c++) o[rr][c] *= corr[rr];
    for (int j = 0; j < kn; j++) {
      float vv[kCols];
#pragma unroll
      for (int c = 0; c < kCols; c++) vv[c] = Vs[j][lane + 32 * c];
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; rr++) {
        const float pr = Ps[warp * kRowsPerWarp + rr][j];
#pragma unroll
        for (int c = 0; c < kCols; c++) o[rr][c] = fmaf(pr, vv[c], o[rr][c]);
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; rr++) {
    const int64_t i = i0 + warp * kRowsPerWarp + rr;
    if (i >= p.nq) continue;
    if (p.splits == 1) {
      const float inv = l[rr] == 0.f ? 0.f : 1.f / l[rr];  // all masked -> 0; NaN stays
      T* orow = static_cast<T*>(p.out) + b * p.o_sb + h * p.o_sh + i * p.o_sn + c0;
#pragma unroll
      for (int c = 0; c < kCols; c++)
        if (lane + 32 * c < vcols) orow[lane + 32 * c] = from_float<T>(o[rr][c] * inv);
    } else {
      const int64_t prow = (int64_t)split * p.rows_total + bh * p.nq + i;
      float* orow = p.ws_o + prow * p.ws_ld + c0;
#pragma unroll
      for (int c = 0; c < kCols; c++)
        if (lane + 32 * c < vcols) orow[lane + 32 * c] = o[rr][c];
      if (vc == 0 && lane == 0) {
        p.ws_m[prow] = m[rr];
        p.ws_l[prow] = l[rr];
      }
    }
  }
}

// ---- padded copies of K and V ----------------------------------------------------------

// Rows [B][H][N] of d 16-bit values, read through strides, written at a row stride
// ld (a multiple of 8 elements) so that the tc kernel's copies are 16-byte cp.async.
// One warp per row, its lanes on consecutive elements: the row's place in [B][H][N] is
// found once per row. A thread per element, as this kernel first was, spent three
// 64-bit divisions on each: about 0.1 ms per copy of the ImageNet encoder's K (50,176
// rows of 261) on an H200, as long as the warpgroup kernel's 0.15 ms that read it (its
// calls took 0.27 ms with k = v, one copy, and 0.36 apart, two).
__global__ void pad_rows_kernel(const uint16_t* __restrict__ src, int64_t sb, int64_t sh, int64_t sn,
                                uint16_t* __restrict__ dst, int64_t heads, int64_t n, int64_t d, int64_t ld,
                                int64_t rows) {
  each_row(rows, [&](int64_t row, int t, int step) {
    const int64_t bh = row / n, j = row - bh * n;
    const int64_t b = bh / heads, h = bh - b * heads;
    const uint16_t* s = src + b * sb + h * sh + j * sn;
    uint16_t* o = dst + row * ld;
    for (int64_t c = t; c < d; c += step) o[c] = s[c];
  });
}

// ---- merge of key splits ------------------------------------------------------------

// One warp per output row: out = sum_s w_s O_s / sum_s w_s l_s with
// w_s = exp2(m_s - max_s m_s); 0 where every split saw only masked keys.
template <class T>
__global__ void __launch_bounds__(128) attention_merge_kernel(Params p) {
  __shared__ float wsh[4][kMaxSplits];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * 4 + warp;
  if (row >= p.rows_total) return;
  float mx = -INFINITY;
  for (int s = lane; s < p.splits; s += 32) mx = fmaxf(mx, p.ws_m[s * p.rows_total + row]);
#pragma unroll
  for (int sh = 16; sh > 0; sh >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, sh));
  float lsum = 0.f;
  for (int s = lane; s < p.splits; s += 32) {
    const float ms = p.ws_m[s * p.rows_total + row];
    const float w = ms == -INFINITY ? 0.f : exp2f(ms - mx);
    wsh[warp][s] = w;
    lsum += w * p.ws_l[s * p.rows_total + row];
  }
#pragma unroll
  for (int sh = 16; sh > 0; sh >>= 1) lsum += __shfl_xor_sync(0xffffffffu, lsum, sh);
  __syncwarp();
  const float inv = lsum == 0.f ? 0.f : 1.f / lsum;
  const int64_t bh = row / p.nq, i = row % p.nq;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  T* orow = static_cast<T*>(p.out) + b * p.o_sb + h * p.o_sh + i * p.o_sn;
  for (int64_t c = lane; c < p.dv; c += 32) {
    float acc = 0.f;
    for (int s = 0; s < p.splits; s++) {
      const float w = wsh[warp][s];
      if (w != 0.f) acc = fmaf(w, p.ws_o[(s * p.rows_total + row) * p.ws_ld + c], acc);
    }
    orow[c] = from_float<T>(acc * inv);
  }
}

// No keys at all: every row is "all masked".
template <class T>
__global__ void attention_zero_kernel(Params p) {
  const int64_t total = p.rows_total * p.dv;
  for (int64_t x = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; x < total;
       x += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = x % p.dv, row = x / p.dv;
    const int64_t bh = row / p.nq, i = row % p.nq;
    const int64_t b = bh / p.heads, h = bh % p.heads;
    static_cast<T*>(p.out)[b * p.o_sb + h * p.o_sh + i * p.o_sn + c] = from_float<T>(0.f);
  }
}

// ---- host side ----------------------------------------------------------------------

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Key splits: enough blocks for ~2 per SM, each range at least kMinKeysPerSplit keys.
// Depends only on the shapes and sm_count, so attention_workspace_bytes and
// attention_forward always agree.
// The fewest splits that fill the 2·SM slots can run past them into a second wave
// that is mostly idle: optical flow's encoder (32 query tiles) at 9 splits is 288
// blocks for an H100's 264 slots, two waves of blocks 1/9 of the keys each, where 8
// splits are one wave of 1/8. So one split fewer where its waves per split are fewer.
int plan_splits(const AttentionArgs& a, int sm_count) {
  const int64_t base = a.batch * a.heads * ceil_div(a.nq, kBlockQ);
  const int64_t target = 2 * (int64_t)sm_count;
  if (sm_count <= 0 || base >= target) return 1;
  int64_t s = ceil_div(target, base);
  if (s > 1 && ceil_div(base * (s - 1), target) * s < ceil_div(base * s, target) * (s - 1)) s--;
  const int64_t min_keys = a.nq < kBlockQ ? kMinKeysPerSplitFewQueries : kMinKeysPerSplit;
  s = std::min<int64_t>(s, std::max<int64_t>(1, a.nk / min_keys));
  return (int)std::max<int64_t>(1, std::min<int64_t>(s, kMaxSplits));
}

// The key ranges' partial O rows are Dv floats rounded up to an even count, so that
// the kernels write them in 8-byte pairs (the encoders' 261 too).
inline int64_t ws_row_floats(int64_t dv) { return dv + (dv & 1); }

size_t workspace_for(const AttentionArgs& a, int splits) {
  if (splits <= 1) return 0;
  return (size_t)splits * (size_t)(a.batch * a.heads * a.nq) * (size_t)(ws_row_floats(a.dv) + 2) * sizeof(float);
}

// K and V one array (k = v = X: the single-head encoders attend to their input so,
// models/fast-attention.ts). Their padded copies are then one copy at one stride, so
// the kernels see one array too.
bool kv_one_array(const AttentionArgs& a) {
  return a.k == a.v && a.k_sb == a.v_sb && a.k_sn == a.v_sn && a.k_sh == a.v_sh && a.dqk == a.dv;
}

// 16-bit K and V whose rows are not 16-byte aligned (a 261-wide head packed at stride
// 261 starts rows at odd elements) are copied into the workspace at a row stride
// rounded up to 8 elements first: the tc kernel then loads them with 16-byte cp.async,
// two stages deep, instead of 2-byte loads. One copy serves both when k and v are the
// same rows (kv_one_array).
struct PadPlan {
  bool k = false, v = false, shared = false;
  size_t k_off = 0, v_off = 0, end = 0;  // byte offsets in the workspace
};

inline int64_t pad_ld(int64_t d) { return (d + 7) / 8 * 8; }
inline size_t align256(size_t b) { return (b + 255) / 256 * 256; }

PadPlan pad_plan(const AttentionArgs& a, size_t base) {
  PadPlan pl;
  pl.end = base;
  if (a.dtype == DType::Float32 || a.nk <= 0) return pl;
  const size_t rows = (size_t)(a.batch * a.heads * a.nk);
  pl.k = a.dqk > 0 && !vec16_ok(a.k, a.k_sb, a.k_sn, a.k_sh);
  pl.v = !vec16_ok(a.v, a.v_sb, a.v_sn, a.v_sh);
  pl.shared = pl.k && pl.v && kv_one_array(a);
  size_t at = align256(base);
  if (pl.k) {
    pl.k_off = at;
    at = align256(at + rows * (size_t)pad_ld(a.dqk) * 2);
  }
  if (pl.v) {
    if (pl.shared) pl.v_off = pl.k_off;
    else {
      pl.v_off = at;
      at = align256(at + rows * (size_t)pad_ld(a.dv) * 2);
    }
  }
  if (pl.k || pl.v) pl.end = at;
  return pl;
}

bool nothing_to_do(const AttentionArgs& a) {
  return a.batch <= 0 || a.heads <= 0 || a.nq <= 0 || a.dv <= 0;
}

// The tc kernel's instantiations: Dv cap, key tile, warps (16 query rows each).
// 64 keys while the O accumulators are few, 32 for the widest cap so that Q + K + V
// of a 261/322-wide head (~72/~87 KB in one stage) fit the 99 KB of sm_86/sm_89
// as well as Hopper's 227 KB. Four warps, so that two blocks share an SM (their
// load phases interleave); 8 warps (128 query rows) would halve the L2 traffic of
// K and V for long query ranges at one block per SM: a tuning knob to measure.
struct TcTier {
  int dv_max, bk, warps, rt;  // rt: 16-row tiles per warp
  int min_blocks;             // __launch_bounds__' blocks per SM (1: no register bound)
  int dqk_max;                // > 0: Q Kᵀ unrolled for Dqk up to this (tc_body); 0: any Dqk
};
// The O accumulators take dv_max / 2 registers per thread whatever the head's width,
// so each width class gets its own cap: 192 for the language model's 160-wide heads,
// 272 for the image encoders' 261 (under the 336 cap it ran at 9 TFLOP/s on an
// H200), 336 for optical flow's 322.
// Tiers 5 and 6 are the wide kernel (two row tiles per warp: 128 query rows per
// block) for the widths of multi-head self-attention.
// Tier 0 is held to four blocks per SM: 128 registers with a 16-byte spill, against
// 139 (three blocks) unbounded, and 7% faster on an H200 (multimodal self-attention,
// batch 8: 0.141 against 0.152 ms).
// Tiers 7-9, the occupancy tiers (kAuto takes 7 and 8 where blocks are plentiful:
// occupancy_auto): key tiles of 32 and a register bound, so that more warps share an
// SM. On an H200 the 16-row kernel took the same ~55 us per block at 8 heads of 128
// whether one or two blocks shared an SM (batch 1 against batch 32), i.e. it is bound
// by latency, not by a unit, and more resident warps are what hide latency: tier 7
// fits four blocks (16 warps; 52 KB of shared memory each, two stages) where tier 1
// fits two; tier 8, for the language model's 160-wide heads, three where tier 2 (255
// registers, spilling) fits two.
// They also unroll Q Kᵀ for heads of Dqk <= 128 and <= 64 (tc_body's kDqkMax), and take
// only those: the image models' 128 and the language model's 32.
// Tier 9 gives the image encoders' 261-wide heads (tier 3's class) the same unrolled
// Q Kᵀ and stepped loads without the occupancy change, for which their 136 accumulator
// registers leave no room (ptxas: 238 registers against tier 3's 234, two blocks per SM
// either way): timed against tier 3, it shows what those two changes give on their own
// (nothing: 0.610 against 0.586 ms at the ImageNet encoder on an H200).
constexpr int kTcTierCount = 10;
constexpr TcTier kTcTiers[kTcTierCount] = {{64, 64, 4, 1, 4, 0},    {128, 64, 4, 1, 1, 0},   {192, 64, 4, 1, 1, 0},
                                 {272, 32, 4, 1, 1, 0},   {336, 32, 4, 1, 1, 0},   {64, 64, 4, 2, 1, 0},
                                 {128, 32, 4, 2, 1, 0},   {128, 32, 4, 1, 4, 128}, {160, 32, 4, 1, 3, 64},
                                 {272, 32, 4, 1, 1, 272}};
constexpr int kTcDvMax = 336;
constexpr int kTcWideDvMax = 128;
constexpr int kTcOccupancyDvMax = 272;

// The occupancy tier for these widths, or -1 where there is none.
int occupancy_tier(int64_t dqk, int64_t dv) {
  const int dv_pad = round16(dv);
  if (dqk <= 0 || dv_pad <= 64 || dv_pad > kTcOccupancyDvMax) return -1;  // Dqk = 0: the plain tiers take it
  const int t = dv_pad <= 128 ? 7 : dv_pad <= 160 ? 8 : 9;
  return round16(dqk) <= kTcTiers[t].dqk_max ? t : -1;
}

int tc_tier(int64_t dqk, int64_t dv, int kind) {
  const int dv_pad = round16(dv);
  if (kind == kTcWide) return dv_pad <= 64 ? 5 : 6;
  if (kind == kTcOccupancy && occupancy_tier(dqk, dv) >= 0) return occupancy_tier(dqk, dv);
  for (int i = 0; i < 4; i++)
    if (dv_pad <= kTcTiers[i].dv_max) return i;
  return 4;
}

// Whether blocks of 128 query rows would fill every SM: where kAuto's 128-row kernels
// (the wide kernel, the fixed-width kernel's 128-row variants) and the occupancy tiers
// pay off, and below which they leave SMs idle (batch 1 of 8 heads over 512 latents:
// 32 blocks for 132 SMs).
bool rows128_fill_sms(const AttentionArgs& a, int sm_count) {
  return a.batch * a.heads * ceil_div(a.nq, 128) >= (int64_t)sm_count;
}

// Whether kAuto takes the occupancy tiers, ahead of the wide kernel (where the
// fixed-width kernel does not serve: fixed_auto_variant). Timed on an H200
// (2026-11-27, bf16, cuda_attention_check "tco" against kAuto's pick) where the blocks
// fill the SMs (rows128_fill_sms): tier 7 at 8 heads of 128 over 512 latents, 0.094
// against 0.110 ms at batch 8 and 0.365 against 0.418 at batch 32; at the language
// model's decoder (qk 32, v 96, batch 32) 0.614 against 0.778; tier 8 at its latents
// (qk 32, v 160, batch 32) 0.126 against 0.144. Where they do not (batch 1: 0.064
// against 0.053) and for tier 9 (0.610 against 0.586 at the ImageNet encoder) the
// older tiers stay. PERCEIVER_CUDA_ATTENTION_OCCUPANCY=0 never takes them, =1 always.
bool occupancy_auto(const AttentionArgs& a, int sm_count) {
  static const int mode = env_mode("PERCEIVER_CUDA_ATTENTION_OCCUPANCY");
  const int tier = occupancy_tier(a.dqk, a.dv);
  if (tier < 0 || mode == 0) return false;
  return mode == 1 || (tier != 9 && rows128_fill_sms(a, sm_count));
}

// Whether kAuto takes the wide kernel: for heads 65-128 wide once its 128-row blocks
// fill every SM. Timed on an H200 against the 16-row kernel (8 heads of 128, 512
// queries and keys): 0.111 against 0.119 ms at batch 8, 0.418 against 0.447 at batch
// 32, but 0.097 against 0.053 at batch 1 (too few blocks), and 0.199 against 0.152
// for 64-wide heads (multimodal, batch 8), which therefore stay on the 16-row kernel.
// PERCEIVER_CUDA_ATTENTION_WIDE=0 turns it off, =1 also takes it for heads up to 64.
bool wide_auto(const AttentionArgs& a, int sm_count) {
  static const int mode = env_mode("PERCEIVER_CUDA_ATTENTION_WIDE");
  const int dv_pad = round16(a.dv);
  return mode != 0 && dv_pad <= kTcWideDvMax && (mode == 1 || dv_pad > 64) && a.nq >= 128 &&
         rows128_fill_sms(a, sm_count);
}

// f(std::integral_constant<int, i>) for a run-time index i in [0, N) (cudaErrorInvalidValue
// outside): the launch of the instantiation a table row names, without a switch to keep
// in step with the table.
template <int N, int I = 0>
struct each_index {
  template <class F>
  static cudaError_t call(int i, F&& f) {
    if (i == I) return f(std::integral_constant<int, I>{});
    return each_index<N, I + 1>::call(i, f);
  }
};
template <int N>
struct each_index<N, N> {
  template <class F>
  static cudaError_t call(int, F&&) {
    return cudaErrorInvalidValue;
  }
};

// One launch of a tc-family kernel, opting in to more than 48 KB of dynamic shared
// memory where it needs it.
cudaError_t launch_with_smem(void (*kernel)(Params), const Params& p, int64_t blocks, int threads, size_t smem,
                             cudaStream_t stream) {
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
  }
  PERCEIVER_LAUNCH((unsigned)blocks, threads, smem, stream, kernel)(p);
  return cudaGetLastError();
}

// The fixed-width kernel's instantiations (attention_fixed.cuh): the padded head
// widths it takes, key tile, warps, 16-row tiles per warp and __launch_bounds__' blocks
// per SM. Registers (ptxas, sm_90) and two stages of shared memory decide how many
// blocks share an SM:
// - 8 heads of 128 (the ImageNet models' latents), 4 warps: 254 registers, 87 KB, two
//   blocks. Two ways to 128 query rows per block, each halving the L2 reads of K and V
//   per query row: 8 warps (PERCEIVER_CUDA_ATTENTION_FIXED=8), 245 registers, 104 KB,
//   one block; or 4 warps of two row tiles with 32-key tiles (=2), FlashAttention-2's
//   tiling, where each K and V fragment feeds twice the products.
// - 8 heads of qk 32, v 160 (the language model's latents): 250 registers, 58 KB, two
//   (held to three it spills 84 bytes). An H200 profile of it at batch 32 (1024
//   blocks of 64 rows, 4 key tiles each) had L2 the busiest unit (65%) with DRAM at
//   12%: every block reads its head's K and V whole. The 8-warp variant (128 rows per
//   block, 240 registers, 62 KB, one block) halves those reads per query row; a
//   candidate (PERCEIVER_CUDA_ATTENTION_FIXED=8, path tcf8) until a GPU has timed it.
// - qk 32, v 96 (the language model's decoder) and 8 heads of 64 (the multimodal
//   model's latents): 168 and 166 registers, three blocks.
// - 16 heads of 32 (optical flow's latents, 2048 of them in 24 layers): 122
//   registers, 25 KB, four blocks.
// - The single-head encoders (fixed_encoder_head), which attend to their input with
//   k = v = X: one head of 261 (the ImageNet models' cross-attention over 50,176
//   pixels, where tc tier 3 ran at 46 TFLOP/s on an H200, 0.58 ms against torch's
//   0.42) and of 322 (optical flow's, over 182,528 pixels, tier 4). One tile per stage
//   serves as K and V, Q is read from shared memory (its fragments would take 68 or 84
//   registers beside O's 136 or 168), 32-key tiles: 246 and 254 registers, 70 and 86
//   KB, two blocks (one on sm_86/sm_89, whose 99 KB they fit). The tiers' per-tile
//   time at 8 heads of 128 was 3x this kernel's (0.0525 against 0.0161 ms at batch
//   1, one block per SM either way); what it gains at these widths is not yet
//   measured (PERCEIVER_CUDA_ATTENTION_FIXED=0 is the way back to the tiers; on
//   compute capability 9.0 the 272 class runs in the warpgroup kernel unless
//   PERCEIVER_CUDA_ATTENTION_WGMMA=0 too).
// - The occupancy variant (kFixedOcc, "tcf3"; a candidate, PERCEIVER_CUDA_ATTENTION_FIXED=3,
//   twenty-fifth session): the language model's two classes over 32-key tiles, whose S
//   takes half the registers: qk 32 / v 160 in 168 (three blocks per SM, 12 warps,
//   against 253 and 8), qk 32 / v 96 in 128 (four, 16 warps, against 168 and 12), no
//   spills either (ptxas, sm_90a). The H200 profile of the 64-key kernel at the
//   latents, after the output rows went to whole sectors, had it issuing in 45% of
//   cycles with 2 warps per scheduler, 0.65 of them eligible: latency, which more warps
//   hide. Twice the key tiles, and barriers, per block is the price; the 8-warp
//   variant, which also halves K and V's L2 reads but keeps 8 warps per SM, gained
//   nothing there (0.071 against 0.068 ms). Timed on an H200 (2026-11-28): no gain. The
//   latents 0.0404 against 0.0411 ms, the decoder 0.2113 against 0.1859, the encoder
//   (Nk 2048) 0.2640 against 0.2385; ncu at the latents: issue slots 54% busy with
//   16.9% occupancy, and the same 40 µs.
struct FixedTier {
  int dqk, dv, bk, warps, rt, min_blocks;
  bool occ;          // the occupancy variant (kFixedOcc): 32-key tiles, more blocks per SM
  const char* name;  // for the harnesses (attention_last_kernel)
  // A second instantiation that also writes each row's log-sum-exp (kLse): the default
  // variants at the widths the flash gradient takes (attention_backward.cu's tiers:
  // 32, 64, 128, qk 32 with v up to 160), so that their training forwards need no pass
  // of their own over Q Kᵀ for it (flash_row_lse: 0.042 ms per call beside the
  // forward's 0.051 at 8 heads of 128, batch 8, on an H200). Not qk 32 / v 96 (the
  // language model's decoder, one call per forward): at its 170 registers (three
  // blocks per SM) the write spilled 60 bytes. cuda-wgmma.test holds every
  // instantiation to no spills.
  bool lse;
};
constexpr int kFixedTierCount = 12;
constexpr FixedTier kFixedTiers[kFixedTierCount] = {
    {128, 128, 64, 4, 1, 2, false, "fixed 128x128 tcf", true},
    {128, 128, 64, 8, 1, 1, false, "fixed 128x128 tcf8", false},
    {128, 128, 32, 4, 2, 2, false, "fixed 128x128 tcf2", true},
    {32, 160, 64, 4, 1, 2, false, "fixed 32x160 tcf", true},
    {32, 96, 64, 4, 1, 3, false, "fixed 32x96 tcf", false},
    {64, 64, 64, 4, 1, 3, false, "fixed 64x64 tcf", true},
    {32, 32, 64, 4, 1, 4, false, "fixed 32x32 tcf", true},
    {272, 272, 32, 4, 1, 2, false, "fixed 272x272 tcf", false},
    {336, 336, 32, 4, 1, 2, false, "fixed 336x336 tcf", false},
    {32, 160, 64, 8, 1, 1, false, "fixed 32x160 tcf8", false},
    {32, 160, 32, 4, 1, 3, true, "fixed 32x160 tcf3", true},
    {32, 96, 32, 4, 1, 4, true, "fixed 32x96 tcf3", false}};

// A tier's shared memory: the tc kernel's layout in two stages (tc_smem_bytes), less
// the V tiles in the encoders' tiers, whose one tile per stage serves as K and V.
size_t fixed_smem_bytes(const FixedTier& f) {
  const size_t all = tc_smem_bytes(f.dqk, f.dv, 16 * f.warps * f.rt, f.bk, 2);
  return fixed_encoder_head(f.dqk, f.dv) ? all - 2 * (size_t)f.bk * tc_ldv(f.dv) * 2 : all;
}

// The fixed-width kernel's variants: 4 warps of one row tile, 8 of one, 4 of two, and 4
// of one over 32-key tiles with more blocks per SM (kFixedOcc).
enum FixedVariant : int { kFixed4 = 0, kFixed8 = 1, kFixedWide = 2, kFixedOcc = 3 };

// The tier for these widths in that variant, or -1 where there is none.
int fixed_tier(int64_t dqk, int64_t dv, int variant) {
  const int warps = variant == kFixed8 ? 8 : 4, rt = variant == kFixedWide ? 2 : 1;
  const bool occ = variant == kFixedOcc;
  for (int i = 0; i < kFixedTierCount; i++) {
    const FixedTier& f = kFixedTiers[i];
    if (f.dqk == round16(dqk) && f.dv == round16(dv) && f.warps == warps && f.rt == rt && f.occ == occ) return i;
  }
  return -1;
}

// The variant kAuto takes, kFixed4 where it does not serve (forward()). Timed on an
// H200 (2026-11-27, bf16, cuda_attention_check) against kAuto's tiers at 8 heads of
// 128 over 512 latents: batch 1, kFixed4 0.016 against 0.053 ms (kFixed8 0.022,
// kFixedWide 0.027: 32 blocks of 128 rows for 132 SMs); batch 8, kFixedWide 0.048,
// kFixed4 0.049, against 0.110; batch 32, kFixedWide 0.172, kFixed4 0.179, kFixed8
// 0.182, against 0.418. At the other widths (kFixed4 only): qk 32 / v 160 at batch 32
// 0.068 against 0.144, qk 32 / v 96 (2048 queries) 0.313 against 0.778, 8 heads of 64
// at batch 8 0.064 against 0.141, 16 heads of 32 0.053 against 0.146. Hence kFixedWide
// by default. PERCEIVER_CUDA_ATTENTION_FIXED=0 turns the kernel off (-1), =1 takes
// kFixed4 everywhere, =8 kFixed8 where it serves, =3 kFixedOcc where it serves and the
// default elsewhere (a candidate: kFixedTiers says why).
int fixed_auto_variant() {
  static const int variant = [] {
    const char* e = std::getenv("PERCEIVER_CUDA_ATTENTION_FIXED");
    if (!e || !*e) return (int)kFixedWide;
    if (std::strcmp(e, "0") == 0) return -1;
    if (std::strcmp(e, "3") == 0) return (int)kFixedOcc;
    return std::strcmp(e, "8") == 0 ? (int)kFixed8 : std::strcmp(e, "2") == 0 ? (int)kFixedWide : (int)kFixed4;
  }();
  return variant;
}

// How the kernels may write this call's output rows (OStore), at most as
// PERCEIVER_CUDA_ATTENTION_OSTORE says: =0 element by element, =1 in pairs (the ways
// back, written without a GPU in the twenty-fourth session; device-check --verify times
// the default against =0).
int o_store_for(const AttentionArgs& a) {
  static const int cap = [] {
    const char* e = std::getenv("PERCEIVER_CUDA_ATTENTION_OSTORE");
    if (!e || !*e) return (int)kOStoreVec16;
    return std::strcmp(e, "0") == 0 ? (int)kOStoreElems : std::strcmp(e, "1") == 0 ? (int)kOStorePairs : (int)kOStoreVec16;
  }();
  const int64_t es = (int64_t)dtype_size(a.dtype);
  const bool even = a.dv % 2 == 0 && a.o_sb % 2 == 0 && a.o_sn % 2 == 0 && a.o_sh % 2 == 0;
  const int best = es == 2 && a.dv % 8 == 0 && vec16_ok(a.out, a.o_sb, a.o_sn, a.o_sh)      ? kOStoreVec16
                   : even && reinterpret_cast<uintptr_t>(a.out) % (2 * es) == 0 ? kOStorePairs
                                                                                : kOStoreElems;
  return std::min(best, cap);
}

bool fixed_writes_lse(int tier) { return tier >= 0 && tier < kFixedTierCount && kFixedTiers[tier].lse; }

template <class T, int kTier>
cudaError_t launch_fixed_kernel(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  constexpr FixedTier c = kFixedTiers[kTier];
  if constexpr (c.lse) {
    if (p.lse)
      return launch_with_smem(attention_fixed_kernel<T, c.dqk, c.dv, c.bk, c.warps, c.rt, c.min_blocks, true>, p,
                              blocks, 32 * c.warps, smem, stream);
  }
  return launch_with_smem(attention_fixed_kernel<T, c.dqk, c.dv, c.bk, c.warps, c.rt, c.min_blocks>, p, blocks,
                          32 * c.warps, smem, stream);
}

template <class T>
cudaError_t launch_fixed(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  return each_index<kFixedTierCount>::call(p.fixed_tier, [&](auto tier) {
    return launch_fixed_kernel<T, decltype(tier)::value>(p, blocks, smem, stream);
  });
}

// The warpgroup kernel's instantiations (attention_wgmma.cuh): the padded head widths,
// warpgroups per block (64 query rows each) and __launch_bounds__' blocks per SM.
// Its shared memory is unpadded (the swizzled layouts, and the core matrices, have no
// bank conflicts to pad away): Q, then kWgmmaStages stages of K and V tiles
// (wgmma_smem_bytes).
// Registers (ptxas, sm_90a, at 128 x 128: 174 with two warpgroups, 176 with one, since
// the tiles' copies walk (load_tile_wgmma); 219 and 255 before; at qk 32 / v 160 192
// and 190, from 207 and 231) leave room for 8 warps per SM either way: one block of
// two warpgroups, which share each K and V tile (half the L2 reads) but meet at a
// barrier per tile, or two blocks of one
// (113 KB of shared memory each at 128 x 128 with the 1 KB for alignment: all of an
// H100's 228 with the blocks' reserves), which run
// independently, so that one's copies, softmax or start overlap the other's products.
// 272 x 272 is the ImageNet encoder's cross-attention (one head of 261 over 50,176
// pixels; tc tier 3 runs it at about 46 TFLOP/s on an H200): 32-key tiles, since its
// O takes 136 registers per thread, and P V in two parts of 136 columns: 248
// registers with two warpgroups per block (171 KB of shared memory: one block per
// SM). There is no one-warpgroup variant: ptxas spills it (28 bytes held to two
// blocks per SM, 136 at one), and its 136 KB would leave it alone on the SM anyway.
//
// The ping-pong tiers (kPingpong: two warpgroups with their own tiles, taking turns at
// the tensor cores; a candidate, PERCEIVER_CUDA_ATTENTION_WGMMA=pp) take twice the
// stages: 225 KiB at 128 x 128 with the 1 KiB for alignment, which fits an H100's 227
// KiB per block. The 272 class (273 KiB) has none.
//
// lse: the tier also has an instantiation that writes each row's log-sum-exp (kLse),
// which launch_wgmma_kernel takes where the call asks for it (p.lse, one key range:
// forwards whose gradient the flash kernel will take): the ping-pong tiers at the flash
// gradient's widths (128, qk 32 / v 160, 64, 32), so that training forwards could take
// them were they made a default. No spills (ptxas, sm_90a; qk 32 / v 160 at 254
// registers either way). The 272 class has none: the flash gradient has no tier that
// wide, so no forward there asks for the log-sum-exp.
//
// The 128-key tiers (bk 128; a candidate, path kTensorCoreWgmmaWideKeys,
// PERCEIVER_CUDA_ATTENTION_WGMMA=k128): half the key tiles of the 64-key ones, so half
// the barriers, waits and O rescales per key, and S = Q Kᵀ as m64n128k16 products,
// which read 6 KB of shared memory per 262k FLOP where m64n64k16 reads 4 KB per 131k
// (the 64-key tiles' S needs all 128 bytes per clock an SM's shared memory gives at
// the tensor cores' peak; FlashAttention-2 and -3 take 128 or more keys at heads of
// 128). Registers (ptxas, sm_90a; no spills) and shared memory with the 1 KiB for
// alignment: 128 x 128 238, 225 KiB (before the walking copies ptxas spilled it, 108
// bytes); the language model's latents, qk 32 / v 160 (two key tiles of its 256
// instead of four), 251, 153 KiB (before, 188 bytes of spills: its O alone takes 80
// registers); its decoder heads, qk 32 / v 96, 220, 105 KiB. The first two also write
// the log-sum-exp (the flash gradient's widths). None at 64 and 32, whose shapes in the
// models are not where the time goes.
struct WgmmaTier {
  int dqk, dv, bk, warpgroups, min_blocks;
  bool pingpong, lse;
  const char* name;  // for the harnesses (attention_last_kernel)
};
constexpr int kWgmmaTierCount = 19;
constexpr WgmmaTier kWgmmaTiers[kWgmmaTierCount] = {
    {128, 128, 64, 2, 1, false, false, "wgmma 128x128"},  {32, 160, 64, 2, 1, false, false, "wgmma 32x160"},
    {32, 96, 64, 2, 1, false, false, "wgmma 32x96"},      {64, 64, 64, 2, 1, false, false, "wgmma 64x64"},
    {32, 32, 64, 2, 1, false, false, "wgmma 32x32"},      {272, 272, 32, 2, 1, false, false, "wgmma 272x272"},
    {128, 128, 64, 1, 2, false, false, "wgmma1 128x128"}, {32, 160, 64, 1, 2, false, false, "wgmma1 32x160"},
    {32, 96, 64, 1, 2, false, false, "wgmma1 32x96"},     {64, 64, 64, 1, 2, false, false, "wgmma1 64x64"},
    {32, 32, 64, 1, 2, false, false, "wgmma1 32x32"},     {128, 128, 64, 2, 1, true, true, "wgmmap 128x128"},
    {32, 160, 64, 2, 1, true, true, "wgmmap 32x160"},    {32, 96, 64, 2, 1, true, false, "wgmmap 32x96"},
    {64, 64, 64, 2, 1, true, true, "wgmmap 64x64"},       {32, 32, 64, 2, 1, true, true, "wgmmap 32x32"},
    {128, 128, 128, 2, 1, false, true, "wgmmak 128x128"}, {32, 160, 128, 2, 1, false, true, "wgmmak 32x160"},
    {32, 96, 128, 2, 1, false, false, "wgmmak 32x96"}};

bool wgmma_writes_lse(int tier) { return tier >= 0 && tier < kWgmmaTierCount && kWgmmaTiers[tier].lse; }

// The tier for these widths, warpgroups per block, turn-taking and 128-key tiles, or
// -1 where there is none.
int wgmma_tier(int64_t dqk, int64_t dv, int warpgroups, bool pingpong = false, bool wide_keys = false) {
  for (int i = 0; i < kWgmmaTierCount; i++)
    if (kWgmmaTiers[i].dqk == round16(dqk) && kWgmmaTiers[i].dv == round16(dv) &&
        kWgmmaTiers[i].warpgroups == warpgroups && kWgmmaTiers[i].pingpong == pingpong &&
        (kWgmmaTiers[i].bk == 128) == wide_keys)
      return i;
  return -1;
}

// + 1 KB: the kernel starts its tiles at the first 1024-byte boundary of the shared
// window, where the swizzle patterns are aligned (wgmma_body). At 128 x 128 with one
// warpgroup, 113 KB still lets two blocks share an SM's 228 KB with their 1 KB reserves.
size_t wgmma_smem_bytes(const WgmmaTier& w) {
  const size_t stages = (size_t)kWgmmaStages * w.bk * (w.dqk + w.dv) * (w.pingpong ? w.warpgroups : 1);
  return ((size_t)64 * w.warpgroups * w.dqk + stages) * 2 + 1024;
}

// Whether this file was compiled with sm_90a code (CMakeLists.txt defines
// PERCEIVER_ATTENTION_SM90A then), without which the warpgroup kernel is a trap.
constexpr bool wgmma_built() {
#if defined(PERCEIVER_ATTENTION_SM90A) || defined(PERCEIVER_CUDA_EMULATION)
  return true;
#else
  return false;
#endif
}

// The warpgroups per block kAuto's warpgroup kernel has, where it serves; 0: kAuto
// does not take it; kWgmmaEncoders: two, at the 272 class only (the width of the
// single-head encoders' 261; multi-head calls of that width take it too).
// That is the default since the twenty-second session: on an H200 (2026-11-28,
// cuda_attention_check, bf16) the ImageNet encoder's cross-attention with k = v took
// 0.273 ms there against the fixed-width kernel's 0.310 and the products' 0.291 (with
// k and v apart 0.363 against the products' 0.335, which the attention tuning then
// takes), while at the latent widths it was slower than the fixed-width kernel (0.212
// against 0.173 ms at 8 heads of 128, batch 32). The 272 class's code is what that call
// ran (its tiles keep the core-matrix layout; only their start moved to a 1024-byte
// boundary). PERCEIVER_CUDA_ATTENTION_WGMMA=0 turns it off, =1 takes it wherever it
// serves (two warpgroups per block where their 128-row blocks fill the SMs and one
// elsewhere), =64 always one (64 query rows), =pp as =1 with the ping-pong tiers for
// the two-warpgroup blocks (kWgmmaPingpong), =k128 as =1 with the 128-key tiers for
// them where the widths have one (kWgmmaWideKeys).
constexpr int kWgmmaEncoders = -1, kWgmmaPingpong = 3, kWgmmaWideKeys = 4;
int wgmma_auto() {
  static const int warpgroups = [] {
    const char* e = std::getenv("PERCEIVER_CUDA_ATTENTION_WGMMA");
    if (!e || !*e) return kWgmmaEncoders;
    if (std::strcmp(e, "0") == 0) return 0;
    if (std::strcmp(e, "pp") == 0) return kWgmmaPingpong;
    if (std::strcmp(e, "k128") == 0) return kWgmmaWideKeys;
    return std::strcmp(e, "64") == 0 ? 1 : 2;
  }();
  return warpgroups;
}

template <class T, int kTier>
cudaError_t launch_wgmma_kernel(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  constexpr WgmmaTier c = kWgmmaTiers[kTier];
  if constexpr (c.lse) {
    if (p.lse)
      return launch_with_smem(attention_wgmma_kernel<T, c.dqk, c.dv, c.bk, c.warpgroups, c.min_blocks, c.pingpong, true>,
                              p, blocks, 128 * c.warpgroups, smem, stream);
  }
  return launch_with_smem(attention_wgmma_kernel<T, c.dqk, c.dv, c.bk, c.warpgroups, c.min_blocks, c.pingpong>, p, blocks,
                          128 * c.warpgroups, smem, stream);
}

template <class T>
cudaError_t launch_wgmma(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  return each_index<kWgmmaTierCount>::call(p.wgmma_tier, [&](auto tier) {
    return launch_wgmma_kernel<T, decltype(tier)::value>(p, blocks, smem, stream);
  });
}

// The float32 tensor-core kernel's instantiations (attention_tf32.cuh): padded widths,
// 32-key tiles, 4 warps (64 query rows), __launch_bounds__' blocks per SM. Shared
// memory (tf32_smem_bytes): 101 KB at 128 x 128, so two blocks per H100 SM; 27-60 KB
// at the narrower classes.
struct Tf32Tier {
  int dqk, dv, bk, warps, min_blocks;
  const char* name;  // for the harnesses (attention_last_kernel)
};
constexpr int kTf32TierCount = 5;
constexpr Tf32Tier kTf32Tiers[kTf32TierCount] = {{128, 128, 32, 4, 2, "tf32x3 128x128"},
                                                 {32, 160, 32, 4, 2, "tf32x3 32x160"},
                                                 {32, 96, 32, 4, 2, "tf32x3 32x96"},
                                                 {64, 64, 32, 4, 3, "tf32x3 64x64"},
                                                 {32, 32, 32, 4, 4, "tf32x3 32x32"}};

// The tier for these widths, or -1 where there is none.
int tf32_tier(int64_t dqk, int64_t dv) {
  for (int i = 0; i < kTf32TierCount; i++)
    if (kTf32Tiers[i].dqk == round16(dqk) && kTf32Tiers[i].dv == round16(dv)) return i;
  return -1;
}

size_t tf32_smem_bytes(const Tf32Tier& t) {
  return ((size_t)16 * t.warps * (t.dqk + 4) + (size_t)2 * t.bk * (t.dqk + 4 + t.dv + 4)) * 4;
}

// Whether kAuto takes the float32 tensor-core kernel where it serves: by default, as
// torch's own float32 SDPA (its memory-efficient kernel, CUTLASS's OpMultiplyAddFastF32
// on sm_80+) computes in the same three TF32 products. On an H200 (2026-11-28) it
// passed its 28 checks, and took 0.91 ms against the products' 1.24 at 8 heads of 128,
// batch 32, 0.18 against 0.42 at the language model's latents.
// PERCEIVER_CUDA_ATTENTION_TF32X3=0 sends float32 back to the products.
bool tf32_auto() {
  static const bool on = !env_off("PERCEIVER_CUDA_ATTENTION_TF32X3");
  return on;
}

// Q, K and V of a float32 call in 16-byte rows, as the TF32 kernel's copies need.
bool rows16_f32(const AttentionArgs& a) {
  return vec16_ok(a.q, a.q_sb, a.q_sn, a.q_sh, 4) && vec16_ok(a.k, a.k_sb, a.k_sn, a.k_sh, 4) &&
         vec16_ok(a.v, a.v_sb, a.v_sn, a.v_sh, 4);
}

template <int kTier>
cudaError_t launch_tf32_kernel(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  constexpr Tf32Tier c = kTf32Tiers[kTier];
  return launch_with_smem(attention_tf32_kernel<c.dqk, c.dv, c.bk, c.warps, c.min_blocks>, p, blocks,
                          32 * c.warps, smem, stream);
}

cudaError_t launch_tf32(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  return each_index<kTf32TierCount>::call(p.tf32_tier, [&](auto tier) {
    return launch_tf32_kernel<decltype(tier)::value>(p, blocks, smem, stream);
  });
}

template <class T, int kTier>
cudaError_t launch_tc_kernel(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  constexpr TcTier c = kTcTiers[kTier];
  void (*kernel)(Params);
  if constexpr (c.min_blocks > 1)
    kernel = attention_tc_kernel_bounded<T, c.dv_max, c.bk, c.warps, c.rt, c.dqk_max, c.min_blocks>;
  else
    kernel = attention_tc_kernel<T, c.dv_max, c.bk, c.warps, c.rt, c.dqk_max>;
  return launch_with_smem(kernel, p, blocks, 32 * c.warps, smem, stream);
}

template <class T>
cudaError_t launch_tc(const Params& p, int64_t blocks, size_t smem, cudaStream_t stream) {
  return each_index<kTcTierCount>::call(tc_tier(p.dqk, p.dv, p.tc_kind), [&](auto tier) {
    return launch_tc_kernel<T, decltype(tier)::value>(p, blocks, smem, stream);
  });
}

template <class T>
cudaError_t launch_all(const Params& p, int path, size_t tc_smem, cudaStream_t stream) {
  int64_t blocks = p.rows_total / p.nq * p.q_tiles * p.splits;
  if (path == kSimt) blocks *= p.dv_chunks;
  if (blocks > INT_MAX) return cudaErrorInvalidConfiguration;
  cudaError_t e;
  if (path == kTensorCoreTf32) {
    if constexpr (std::is_same_v<T, float>) e = launch_tf32(p, blocks, tc_smem, stream);
    else return cudaErrorInvalidValue;
  } else if (path == kTensorCore || path == kTensorCoreFixed || path == kTensorCoreWgmma) {
    if constexpr (std::is_same_v<T, float>) {
      return cudaErrorInvalidValue;
    } else {
      e = path == kTensorCore        ? launch_tc<T>(p, blocks, tc_smem, stream)
          : path == kTensorCoreFixed ? launch_fixed<T>(p, blocks, tc_smem, stream)
                                     : launch_wgmma<T>(p, blocks, tc_smem, stream);
    }
  } else {
    PERCEIVER_LAUNCH((unsigned)blocks, 256, 0, stream, attention_simt_kernel<T>)(p);
    e = cudaGetLastError();
  }
  if (e != cudaSuccess || p.splits == 1) return e;
  const int64_t merge_blocks = ceil_div(p.rows_total, 4);
  if (merge_blocks > INT_MAX) return cudaErrorInvalidConfiguration;
  PERCEIVER_LAUNCH((unsigned)merge_blocks, 128, 0, stream, attention_merge_kernel<T>)(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_zero(const Params& p, cudaStream_t stream) {
  const int64_t blocks = std::min<int64_t>(ceil_div(p.rows_total * p.dv, 256), 65535);
  PERCEIVER_LAUNCH((unsigned)blocks, 256, 0, stream, attention_zero_kernel<T>)(p);
  return cudaGetLastError();
}

// 16-bit heads wider than the widest tc tier (kTcDvMax): the tc kernel over column
// chunks of V and of the output, one call per chunk, each recomputing Q Kᵀ. Chunks of
// at most kTcChunkV columns (optical flow's decoder, 512 wide: two of 256, so Q Kᵀ
// twice and P V once, 1.5x a single pass's products; the ImageNet classifiers' 1024:
// four) where the SIMT kernel took the whole head in 128-column chunks on CUDA cores.
constexpr int64_t kTcChunkV = 320;

// Whether the device has tensor cores for this 16-bit dtype (fp16: sm_75, bf16: sm_80).
bool tc_dtype_ok(DType dtype, int cc) { return dtype == DType::Float16 ? cc >= 75 : cc >= 80; }

// The current device's compute capability (major * 10 + minor) and opt-in shared
// memory per block.
cudaError_t device_caps(int* cc, int* smem_optin) {
  int dev = 0, major = 0, minor = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  *cc = major * 10 + minor;
  return e;
}

int64_t dv_chunk_width(int64_t dv) { return round16(ceil_div(dv, ceil_div(dv, kTcChunkV))); }

// a restricted to V's and the output's columns [c0, c0 + w).
AttentionArgs dv_chunk(const AttentionArgs& a, int64_t c0, int64_t w) {
  AttentionArgs c = a;
  c.v = reinterpret_cast<const float*>(static_cast<const uint16_t*>(static_cast<const void*>(a.v)) + c0);
  c.out = reinterpret_cast<float*>(static_cast<uint16_t*>(static_cast<void*>(a.out)) + c0);
  c.dv = w;
  // The log-sum-exp is the caller's own pass here: a chunk's kernel must not write it
  // while the whole call reports it unwritten.
  c.lse = nullptr;
  return c;
}

bool chunks_dv(const AttentionArgs& a) { return a.dtype != DType::Float32 && round16(a.dv) > kTcDvMax; }

// f(chunk) for a's Dv chunks in order; the first error f returns, else cudaSuccess.
template <class F>
cudaError_t each_dv_chunk(const AttentionArgs& a, F f) {
  const int64_t w = dv_chunk_width(a.dv);
  for (int64_t c0 = 0; c0 < a.dv; c0 += w)
    if (cudaError_t e = f(dv_chunk(a, c0, std::min(w, a.dv - c0)))) return e;
  return cudaSuccess;
}

// What one call needs for `splits` key ranges: partials, then the padded copies.
size_t call_workspace(const AttentionArgs& a, int splits) {
  splits = (int)std::max<int64_t>(1, std::min<int64_t>({(int64_t)splits, a.nk, kMaxSplits}));
  return pad_plan(a, workspace_for(a, splits)).end;
}

// The most any call for `a` needs: the whole head's (the SIMT kernel's) or, for heads
// taken in Dv chunks, any chunk's (a chunk may pad K and V where the whole head shared
// one copy).
size_t workspace_need(const AttentionArgs& a, int splits) {
  if (nothing_to_do(a) || a.nk <= 0) return 0;
  size_t need = call_workspace(a, splits);
  if (chunks_dv(a))
    each_dv_chunk(a, [&](const AttentionArgs& c) {
      need = std::max(need, call_workspace(c, splits));
      return cudaSuccess;
    });
  return need;
}

// The kernel the last forward() on this thread launched (the last Dv chunk's, for
// heads taken in chunks), for the harnesses: "tc tier N", a FixedTier's name or "simt".
thread_local const char* last_kernel = "";

const char* kernel_name_tc(int tier) {
  static const char* const names[] = {"tc tier 0", "tc tier 1", "tc tier 2", "tc tier 3", "tc tier 4",
                                      "tc tier 5", "tc tier 6", "tc tier 7", "tc tier 8", "tc tier 9"};
  return tier >= 0 && tier < 10 ? names[tier] : "tc";
}

// force_path: kAuto, kTensorCore, kTensorCore1, kTensorCoreWide, kTensorCoreOccupancy,
// kTensorCoreFixed*, kTensorCoreWgmma, kTensorCoreWgmma1, kTensorCoreWgmmaPingpong,
// kTensorCoreWgmmaWideKeys or kSimt; force_splits:
// 0 = planned.
// A forced tc path the device or shape cannot take returns cudaErrorNotSupported.
cudaError_t forward(const AttentionArgs& a, void* workspace, size_t workspace_bytes, int sm_count,
                    cudaStream_t stream, int force_path, int force_splits, bool* lse_written = nullptr) {
  if (lse_written) *lse_written = false;
  if (a.dtype != DType::Float32 && a.dtype != DType::Float16 && a.dtype != DType::BFloat16)
    return cudaErrorInvalidValue;
  if (a.batch < 0 || a.heads < 0 || a.nq < 0 || a.nk < 0 || a.dqk < 0 || a.dv < 0)
    return cudaErrorInvalidValue;
  if (nothing_to_do(a)) return cudaSuccess;
  if (!a.out) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(workspace) % 16 != 0) return cudaErrorInvalidValue;  // attention.h

  Params p{};
  p.q = a.q; p.k = a.k; p.v = a.v; p.out = a.out; p.mask = a.mask;
  p.nq = a.nq; p.nk = a.nk; p.heads = a.heads; p.dqk = a.dqk; p.dv = a.dv;
  p.q_sb = a.q_sb; p.q_sn = a.q_sn; p.q_sh = a.q_sh;
  p.k_sb = a.k_sb; p.k_sn = a.k_sn; p.k_sh = a.k_sh;
  p.v_sb = a.v_sb; p.v_sn = a.v_sn; p.v_sh = a.v_sh;
  p.o_sb = a.o_sb; p.o_sn = a.o_sn; p.o_sh = a.o_sh;
  p.o_store = o_store_for(a);
  p.m_sb = a.m_sb; p.m_sq = a.m_sq; p.m_sk = a.m_sk;
  p.scale_log2 = a.scale * kLog2e;
  p.rows_total = a.batch * a.heads * a.nq;
  p.q_tiles = ceil_div(a.nq, kBlockQ);
  p.dv_chunks = (int)ceil_div(a.dv, kSimtChunkV);

  auto zero = [&]() -> cudaError_t {
    switch (a.dtype) {
      case DType::Float16: return launch_zero<__half>(p, stream);
      case DType::BFloat16: return launch_zero<__nv_bfloat16>(p, stream);
      default: return launch_zero<float>(p, stream);
    }
  };
  if (a.nk == 0) {
    last_kernel = "zero";
    return zero();
  }
  if (!a.v || (a.dqk > 0 && (!a.q || !a.k))) return cudaErrorInvalidValue;

  if (chunks_dv(a) && force_path != kSimt) {
    int cc = 0, smem_optin = 0;
    if (cudaError_t e = device_caps(&cc, &smem_optin)) return e;
    if (tc_dtype_ok(a.dtype, cc))
      return each_dv_chunk(a, [&](const AttentionArgs& c) {
        return forward(c, workspace, workspace_bytes, sm_count, stream, force_path, force_splits);
      });
  }

  int splits = force_splits > 0 ? force_splits : plan_splits(a, sm_count);
  const PadPlan pad = pad_plan(a, workspace_for(a, std::max<int64_t>(1, std::min<int64_t>({(int64_t)splits, a.nk, kMaxSplits}))));
  bool padding = false;
  splits = (int)std::max<int64_t>(1, std::min<int64_t>({(int64_t)splits, a.nk, kMaxSplits}));
  if (splits > 1) {
    if (!workspace || workspace_bytes < workspace_for(a, splits)) return cudaErrorInvalidValue;
    p.splits = splits;
    p.ws_o = static_cast<float*>(workspace);
    p.ws_ld = ws_row_floats(a.dv);
    p.ws_m = p.ws_o + (int64_t)splits * p.rows_total * p.ws_ld;
    p.ws_l = p.ws_m + (int64_t)splits * p.rows_total;
  } else {
    p.splits = 1;
  }

  // The tc path needs 16-bit data, tensor cores for it (fp16: sm_75, bf16: sm_80),
  // Dv within the largest cap and the tiles within the block's shared memory.
  const bool force_tc = force_path == kTensorCore || force_path == kTensorCore1 ||
                        force_path == kTensorCoreWide || force_path == kTensorCoreOccupancy ||
                        force_path == kTensorCoreFixed || force_path == kTensorCoreFixed8 ||
                        force_path == kTensorCoreFixedWide || force_path == kTensorCoreWgmma ||
                        force_path == kTensorCoreWgmma1 || force_path == kTensorCoreFixedOcc ||
                        force_path == kTensorCoreWgmmaPingpong || force_path == kTensorCoreWgmmaWideKeys;
  int path = kSimt;
  size_t tc_smem = 0;
  // float32 on tensor cores (3xTF32), where asked for (forced, or kAuto with its switch
  // on): sm_80+, 16-byte rows of Q, K and V, a width class of kTf32Tiers.
  if (a.dtype == DType::Float32 && (force_path == kTensorCoreTf32 || (force_path == kAuto && tf32_auto()))) {
    int cc = 0, smem_optin = 0;
    if (cudaError_t e = device_caps(&cc, &smem_optin)) return e;
    const int tt = cc >= 80 && rows16_f32(a) ? tf32_tier(a.dqk, a.dv) : -1;
    if (tt >= 0 && tf32_smem_bytes(kTf32Tiers[tt]) <= (size_t)smem_optin) {
      p.tf32_tier = tt;
      tc_smem = tf32_smem_bytes(kTf32Tiers[tt]);
      p.q_tiles = ceil_div(a.nq, 16 * kTf32Tiers[tt].warps);
      path = kTensorCoreTf32;
    } else if (force_path == kTensorCoreTf32) {
      return cudaErrorNotSupported;
    }
  }
  if (a.dtype != DType::Float32 && force_path == kTensorCoreTf32) return cudaErrorNotSupported;
  if (a.dtype == DType::Float32 && force_tc) return cudaErrorNotSupported;
  if (a.dtype != DType::Float32 && force_path != kSimt) {
    int cc = 0, smem_optin = 0;
    if (cudaError_t e = device_caps(&cc, &smem_optin)) return e;
    if (force_path == kTensorCoreWide) p.tc_kind = kTcWide;
    else if (force_path == kTensorCoreOccupancy) p.tc_kind = kTcOccupancy;
    else if (force_path == kAuto && occupancy_auto(a, sm_count)) p.tc_kind = kTcOccupancy;
    else if (force_path == kAuto && wide_auto(a, sm_count)) p.tc_kind = kTcWide;
    else p.tc_kind = kTcNarrow;
    // Forced only (auto never asks for a family outside its widths):
    if (p.tc_kind == kTcWide && round16(a.dv) > kTcWideDvMax) return cudaErrorNotSupported;
    if (p.tc_kind == kTcOccupancy && occupancy_tier(a.dqk, a.dv) < 0) return cudaErrorNotSupported;
    p.q_vec = vec16_ok(a.q, a.q_sb, a.q_sn, a.q_sh);
    p.k_vec = vec16_ok(a.k, a.k_sb, a.k_sn, a.k_sh);
    p.v_vec = vec16_ok(a.v, a.v_sb, a.v_sn, a.v_sh);
    // Padded copies where the caller's workspace has room for them (the tc kernel on
    // sm_80+, where its copies can be asynchronous).
    padding = (pad.k || pad.v) && cc >= 80 && workspace && workspace_bytes >= pad.end && force_path != kTensorCore1;
    if (padding) {
      if (pad.k) p.k_vec = true;
      if (pad.v) p.v_vec = true;
    }
    // Two stages only pay off where the copies are asynchronous (cp.async: sm_80+,
    // 16-byte aligned rows).
    const bool async = cc >= 80 && (p.k_vec || p.v_vec) && force_path != kTensorCore1;
    // The tier's query rows per block, its stages and its shared memory.
    int bq = 0;
    auto size_tiles = [&] {
      const TcTier tier = kTcTiers[tc_tier(a.dqk, a.dv, p.tc_kind)];
      bq = 16 * tier.warps * tier.rt;
      p.tc_stages = async && tc_smem_bytes(a.dqk, a.dv, bq, tier.bk, 2) <= (size_t)smem_optin ? 2 : 1;
      tc_smem = tc_smem_bytes(a.dqk, a.dv, bq, tier.bk, p.tc_stages);
    };
    size_tiles();
    if (p.tc_kind == kTcWide && force_path == kAuto && tc_smem > (size_t)smem_optin) {
      // The wide kernel's 128-row Q tile does not fit (wide heads on 99 KB parts):
      // the 16-row kernel still does, rather than falling to simt.
      p.tc_kind = kTcNarrow;
      size_tiles();
    }
    // The fixed-width kernel, where asked for (forced, or kAuto unless its switch is 0) and
    // where it takes the widths: sm_80+ and 16-byte rows of Q, K and V (the encoders'
    // tiers: K and V one array, Q's rows any: fixed_encoder_head).
    const bool force_fixed = force_path == kTensorCoreFixed || force_path == kTensorCoreFixed8 ||
                             force_path == kTensorCoreFixedWide || force_path == kTensorCoreFixedOcc;
    const int variant = force_path == kTensorCoreFixed       ? kFixed4
                        : force_path == kTensorCoreFixed8    ? kFixed8
                        : force_path == kTensorCoreFixedWide ? kFixedWide
                        : force_path == kTensorCoreFixedOcc  ? kFixedOcc
                        : force_path == kAuto                ? fixed_auto_variant()
                                                             : -1;
    // kAuto falls back from 8 warps or two row tiles (128 query rows per block) to
    // kFixed4 where the widths have no such tier, its tiles do not fit (8 warps at
    // 128 x 128 need 104 KB: not on sm_86), or its blocks would not fill every SM (as
    // wide_auto: batch 1 of 8 heads over 512 latents is 32 such blocks for 132 SMs).
    const bool fixed_ok = cc >= 80 && p.k_vec && p.v_vec;  // and p.q_vec, but for the encoders' tiers
    // The warpgroup kernel, where asked for (forced, or kAuto: by default at the
    // encoders' class, with its switch wherever it serves): on compute capability 9.0
    // only (sm_90a code), with K's and V's rows 16-byte aligned (directly or through the
    // padded copies; Q's may not be: the kernel reads them element by element then).
    // A variant that never falls back to another tier where it has none.
    const bool force_variant = force_path == kTensorCoreWgmmaPingpong || force_path == kTensorCoreWgmmaWideKeys;
    const bool force_wgmma = force_path == kTensorCoreWgmma || force_path == kTensorCoreWgmma1 || force_variant;
    int warpgroups = force_path == kTensorCoreWgmma           ? 2
                     : force_path == kTensorCoreWgmma1        ? 1
                     : force_path == kTensorCoreWgmmaPingpong ? kWgmmaPingpong
                     : force_path == kTensorCoreWgmmaWideKeys ? kWgmmaWideKeys
                     : force_path == kAuto                    ? wgmma_auto()
                                                              : 0;
    if (warpgroups == kWgmmaEncoders) warpgroups = fixed_encoder_head(round16(a.dqk), round16(a.dv)) ? 2 : 0;
    const bool pingpong = warpgroups == kWgmmaPingpong, wide_keys = warpgroups == kWgmmaWideKeys;
    if (pingpong || wide_keys) warpgroups = 2;
    // kAuto's two-warpgroup blocks (128 query rows) where they fill the SMs, else
    // blocks of one where the widths have them (as fixed_auto_variant falls back).
    if (force_path == kAuto && warpgroups == 2 && !rows128_fill_sms(a, sm_count) && wgmma_tier(a.dqk, a.dv, 1) >= 0)
      warpgroups = 1;
    if (warpgroups > 0) {
      // The ping-pong or 128-key tier where asked for and it serves; kAuto falls back to
      // the plain two-warpgroup one (the 272 class has neither).
      auto fits = [&](int t) { return t >= 0 && wgmma_smem_bytes(kWgmmaTiers[t]) <= (size_t)smem_optin; };
      int wt = -1;
      if (cc == 90 && wgmma_built() && p.k_vec && p.v_vec) {
        if ((pingpong || wide_keys) && warpgroups == 2) wt = wgmma_tier(a.dqk, a.dv, 2, pingpong, wide_keys);
        if (!fits(wt) && !force_variant) wt = wgmma_tier(a.dqk, a.dv, warpgroups);
      }
      if (fits(wt)) {
        p.wgmma_tier = wt;
        tc_smem = wgmma_smem_bytes(kWgmmaTiers[wt]);
        p.q_tiles = ceil_div(a.nq, 64 * kWgmmaTiers[wt].warpgroups);
        path = kTensorCoreWgmma;
      } else if (force_wgmma) {
        return cudaErrorNotSupported;
      }
    }
    const bool few_rows = !rows128_fill_sms(a, sm_count);
    // The variants to try in turn: a forced one alone; kAuto's, then (after kFixedOcc)
    // the default's two row tiles, then kFixed4, each 128-row variant only where its
    // blocks fill the SMs.
    const int chain[3] = {variant, !force_fixed && variant == kFixedOcc ? (int)kFixedWide : -1,
                          !force_fixed && variant > kFixed4 ? (int)kFixed4 : -1};
    for (int v : chain) {
      if (!force_fixed && (v == kFixed8 || v == kFixedWide) && few_rows) continue;
      const int ft = v >= 0 && fixed_ok && path != kTensorCoreWgmma ? fixed_tier(a.dqk, a.dv, v) : -1;
      if (ft < 0) continue;
      const FixedTier f = kFixedTiers[ft];
      if (fixed_encoder_head(f.dqk, f.dv) ? !kv_one_array(a) : !p.q_vec) continue;
      const size_t smem = fixed_smem_bytes(f);
      if (smem > (size_t)smem_optin) continue;
      p.fixed_tier = ft;
      tc_smem = smem;
      p.q_tiles = ceil_div(a.nq, 16 * f.warps * f.rt);
      path = kTensorCoreFixed;
      break;
    }
    if (path != kTensorCoreFixed && force_fixed) return cudaErrorNotSupported;
    const bool ok = (a.dtype == DType::Float16 ? cc >= 75 : cc >= 80) &&
                    round16(a.dv) <= kTcDvMax && tc_smem <= (size_t)smem_optin;
    if (path == kTensorCoreFixed || path == kTensorCoreWgmma) {
      // chosen above
    } else if (ok) {
      path = kTensorCore;
      p.q_tiles = ceil_div(a.nq, bq);
    } else if (force_tc) {
      return cudaErrorNotSupported;
    }
  }

  if (padding && (path == kTensorCore || path == kTensorCoreFixed || path == kTensorCoreWgmma)) {
    unsigned char* ws = static_cast<unsigned char*>(workspace);
    auto copy = [&](const void* src, int64_t sb, int64_t sh, int64_t sn, int64_t d, size_t off) -> cudaError_t {
      const int64_t rows = a.batch * a.heads * a.nk;
      const int64_t blocks = std::min<int64_t>(ceil_div(rows, 8), 8192);  // 8 warps, a row each
      PERCEIVER_LAUNCH((unsigned)blocks, 256, 0, stream, pad_rows_kernel)(static_cast<const uint16_t*>(src), sb, sh, sn,
                                                                          reinterpret_cast<uint16_t*>(ws + off), a.heads,
                                                                          a.nk, d, pad_ld(d), rows);
      return cudaGetLastError();
    };
    // The kernel reads the padded copy: [B][H][Nk] rows at a stride of pad_ld(d).
    auto use_copy = [&](const void*& ptr, int64_t& sb, int64_t& sh, int64_t& sn, int64_t d, size_t off) {
      ptr = ws + off;
      sn = pad_ld(d);
      sh = a.nk * sn;
      sb = a.heads * sh;
    };
    if (pad.k) {
      if (cudaError_t e = copy(a.k, a.k_sb, a.k_sh, a.k_sn, a.dqk, pad.k_off)) return e;
      use_copy(p.k, p.k_sb, p.k_sh, p.k_sn, a.dqk, pad.k_off);
    }
    if (pad.v) {
      if (!pad.shared)
        if (cudaError_t e = copy(a.v, a.v_sb, a.v_sh, a.v_sn, a.dv, pad.v_off)) return e;
      use_copy(p.v, p.v_sb, p.v_sh, p.v_sn, a.dv, pad.v_off);
    }
  }

  // Each row's log-sum-exp from the kernel itself, where its tier has that
  // instantiation and one key range finishes every row (else the caller's own pass).
  if (a.lse && p.splits == 1 &&
      ((path == kTensorCoreFixed && fixed_writes_lse(p.fixed_tier)) ||
       (path == kTensorCoreWgmma && wgmma_writes_lse(p.wgmma_tier)))) {
    p.lse = a.lse;
    if (lse_written) *lse_written = true;
  }

  last_kernel = path == kTensorCoreWgmma ? kWgmmaTiers[p.wgmma_tier].name
                : path == kTensorCoreTf32  ? kTf32Tiers[p.tf32_tier].name
                : path == kTensorCoreFixed ? kFixedTiers[p.fixed_tier].name
                : path == kTensorCore    ? kernel_name_tc(tc_tier(a.dqk, a.dv, p.tc_kind))
                                         : "simt";
  switch (a.dtype) {
    case DType::Float16: return launch_all<__half>(p, path, tc_smem, stream);
    case DType::BFloat16: return launch_all<__nv_bfloat16>(p, path, tc_smem, stream);
    default: return launch_all<float>(p, path, tc_smem, stream);
  }
}

}  // namespace attn

size_t attention_workspace_bytes(const AttentionArgs& a, int sm_count) {
  return attn::workspace_need(a, attn::plan_splits(a, sm_count));
}

cudaError_t attention_forward(const AttentionArgs& a, void* workspace, size_t workspace_bytes,
                              int sm_count, cudaStream_t stream, bool* lse_written) {
  return attn::forward(a, workspace, workspace_bytes, sm_count, stream, attn::kAuto, 0, lse_written);
}

bool attention_tf32_widths(int64_t dqk, int64_t dv, int cc) {
  return attn::tf32_auto() && cc >= 80 && attn::tf32_tier(dqk, dv) >= 0;
}

bool attention_tf32_serves(const AttentionArgs& a, int cc) {
  return a.dtype == DType::Float32 && attention_tf32_widths(a.dqk, a.dv, cc) && attn::rows16_f32(a);
}

bool attention_beyond_one_tc_pass(DType dtype, int64_t dqk, int64_t dv, int cc, int smem_optin) {
  if (dtype == DType::Float32 || !attn::tc_dtype_ok(dtype, cc)) return false;
  // forward()'s test for its 16-row tiers, in one stage (two only where they fit too).
  const attn::TcTier tier = attn::kTcTiers[attn::tc_tier(dqk, dv, attn::kTcNarrow)];
  return attn::round16(dv) > attn::kTcDvMax ||
         attn::tc_smem_bytes(dqk, dv, 16 * tier.warps * tier.rt, tier.bk, 1) > (size_t)smem_optin;
}

// Hooks for native/cuda/attention_check.cu (declared there, not in attention.h):
// force the kernel version and the key split count so that every path is checked on
// small shapes, and name the plan a call takes.
namespace detail {

cudaError_t attention_forward_forced(const AttentionArgs& a, void* workspace,
                                     size_t workspace_bytes, int sm_count, cudaStream_t stream,
                                     int path, int splits, bool* lse_written) {
  return attn::forward(a, workspace, workspace_bytes, sm_count, stream, path, splits, lse_written);
}

size_t attention_workspace_bytes_forced(const AttentionArgs& a, int splits) {
  return attn::workspace_need(a, splits);
}

int attention_planned_splits(const AttentionArgs& a, int sm_count) {
  return attn::plan_splits(a, sm_count);
}

const char* attention_last_kernel() { return attn::last_kernel; }

}  // namespace detail
}  // namespace perceiver::cuda
