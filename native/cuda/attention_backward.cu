// The attention gradient as one kernel on tensor cores (FlashAttention-2's backward),
// for 16-bit heads at the latent self-attention's widths (contract: attention_backward.h).
// With S = scale Q Kᵀ (masked), L each row's log-sum-exp (the forward's), P = exp(S − L)
// and dO incoming:
//   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ∘ (dP − D) with D = rowsum(dO ∘ O),
//   dQ = scale dS K,  dK = scale dSᵀ Q,
// as attention_gemm.cu composes it from products, but without any [Nq, Nk] matrix in
// global memory: a thread block owns (batch, head, a tile of 16 · kWarps keys), holds
// that tile's K and V in shared memory and walks the query rows a tile at a time (Q and
// dO in two cp.async stages). Each warp owns 16 of the keys, and per query tile:
//   Sᵀ = K_w Qᵀ and dPᵀ = V_w dOᵀ        (mma.sync, the keys as rows: 16 x kBQ each)
//   Pᵀ = exp2(Sᵀ scale log2 e − L log2 e), dSᵀ = Pᵀ ∘ (dPᵀ − D), in those registers
//   dV_w += Pᵀ dO,  dK_w += dSᵀ Q            (Pᵀ and dSᵀ fed back as A fragments)
// so dK and dV stay in registers for the whole walk. dQ needs every key of the tile:
// the warps put dSᵀ in shared memory, and after a barrier each takes 16-row x 32-column
// pieces of the query tile's dQ = dS K. Those go to the block's own float32 slot
// (one per key tile), and a second kernel adds the slots in key order, times scale,
// into dQ: no floating-point atomics, so the gradient is the same bits on every run,
// as backward.cu's kernels are. (atomic_dq, for the harness's timing only, adds them
// into one slot with atomicAdd instead, as FlashAttention-2 does: less memory traffic,
// run-to-run differences in dQ's low bits.) P and dS are rounded to the operands' dtype for the
// products that take them, as the composed gradient does.
//
// Keys past Nk have zero K and V rows (the copies zero-fill them) and their dK and dV
// rows are not stored, but their P = exp(0 - L) is not harmless: where a row's L is
// very negative it overflows (float16 from L below about -11), dS = -P D with it, and
// dQ = dS K then meets 0 x inf = NaN. So P is 0 there, as masked keys' P is. Query
// rows past Nq get L = +inf, so P = 0 there.
#include "attention_backward.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "attention_gemm.h"
#include "attention_mma.cuh"
#include "common.cuh"

namespace perceiver::cuda {
namespace {

using namespace attn;

struct FlashParams {
  const uint16_t* q;
  const uint16_t* k;
  const uint16_t* v;
  const uint16_t* go;  // dO, at out's strides
  const uint8_t* mask;
  const float* lse;   // [B, H, Nq]
  const float* dsum;  // D, [B, H, Nq]
  float* dq_slots;    // [key tiles][group pairs][Nq][Dqk]
  uint16_t* gk;       // [B, Nk, H, Dqk]
  uint16_t* gv;       // [B, Nk, H, Dv]
  int64_t nq, nk, heads, dqk, dv;
  int64_t q_sb, q_sn, q_sh, k_sb, k_sn, k_sh, v_sb, v_sn, v_sh, o_sb, o_sn, o_sh, m_sb, m_sq, m_sk;
  int64_t bh0, pairs, key_tiles;  // this launch's (batch, head) pairs: [bh0, bh0 + pairs)
  float scale, scale_log2;
  bool atomic_dq;  // dQ added into one slot by atomicAdd (harness timing only)
};

// Shared memory: K and V of the key tile, two stages of Q and dO, dSᵀ, and per stage
// the query rows' L log2 e and D, and the mask's tile.
constexpr size_t flash_smem_bytes(int dqk, int dv, int bq, int warps) {
  return (size_t)16 * warps * (dqk + 8 + dv + 8) * 2 + (size_t)2 * bq * (dqk + 8 + dv + 8) * 2 +
         (size_t)16 * warps * (bq + 8) * 2 + (size_t)2 * 2 * bq * 4 + (size_t)2 * 16 * warps * bq;
}

// acc (16 x kN, n8 tiles) += A Bᵀ: A the warp's 16 rows of kK columns in shared memory
// (ldmatrix addresses at a, row-major), B kN rows of kK columns (ldmatrix addresses at
// b, rows at stride kLdB), as the forward's Q Kᵀ.
template <class T, int kK, int kN, int kLdB>
__device__ __forceinline__ void rows_by_rows(float (&acc)[kN / 8][4], const uint16_t* a, const uint16_t* b) {
#pragma unroll
  for (int kc = 0; kc < kK / 16; kc++) {
    uint32_t af[4];
    ldmatrix_x4(af, a + kc * 16);
#pragma unroll
    for (int n = 0; n < kN / 16; n++) {
      uint32_t bb[4];
      ldmatrix_x4(bb, b + n * 16 * kLdB + kc * 16);
      mma_16816<T>(acc[2 * n], af, bb[0], bb[1]);
      mma_16816<T>(acc[2 * n + 1], af, bb[2], bb[3]);
    }
  }
}

// acc (16 x kN) += A B for one k16 step: A a fragment in registers, B 16 rows of kN
// columns in shared memory read transposed (ldmatrix addresses at b), as the forward's
// P V.
template <class T, int kN>
__device__ __forceinline__ void frag_by_rows(float (&acc)[kN / 8][4], const uint32_t (&a)[4], const uint16_t* b) {
#pragma unroll
  for (int n = 0; n < kN / 16; n++) {
    uint32_t bb[4];
    ldmatrix_x4_trans(bb, b + n * 16);
    mma_16816<T>(acc[2 * n], a, bb[0], bb[1]);
    mma_16816<T>(acc[2 * n + 1], a, bb[2], bb[3]);
  }
}

// The A fragment of k16 step kk from C fragments (two n8 tiles), rounded to T.
template <class T, int kNS>
__device__ __forceinline__ void a_fragment(uint32_t (&a)[4], const float (&c)[kNS][4], int kk) {
  a[0] = pack2<T>(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack2<T>(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack2<T>(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack2<T>(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

template <class T, int kDqk, int kDv, int kBQ, int kWarps>
__device__ __forceinline__ void flash_backward_body(const FlashParams& p) {
  constexpr int kThreads = 32 * kWarps, kBK = 16 * kWarps;
  constexpr int kLdq = kDqk + 8, kLdv = kDv + 8, kLds = kBQ + 8;  // +8: conflict-free ldmatrix rows
  constexpr int kNS = kBQ / 8;                                     // n8 tiles of Sᵀ per warp
  constexpr int kNK = kDqk / 8, kNV = kDv / 8;
  constexpr int kStage = kBQ * (kLdq + kLdv);
  static_assert(kDqk % 32 == 0 && kDv % 16 == 0 && kBQ % 16 == 0, "tile shapes");
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* const Ks = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* const Vs = Ks + kBK * kLdq;
  uint16_t* const stages = Vs + kBK * kLdv;
  uint16_t* const dSs = stages + 2 * kStage;
  float* const rows_s = reinterpret_cast<float*>(dSs + kBK * kLds);
  uint8_t* const masks = reinterpret_cast<uint8_t*>(rows_s + 2 * 2 * kBQ);  // two stages, when masked

  const int64_t local = blockIdx.x / p.key_tiles, bh = p.bh0 + local;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t tile = blockIdx.x % p.key_tiles, j0 = tile * kBK;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int dqk = (int)p.dqk, dv = (int)p.dv;
  const int kn = (int)(p.nk - j0 < kBK ? p.nk - j0 : kBK);
  const uint16_t* qg = p.q + b * p.q_sb + h * p.q_sh;
  const uint16_t* og = p.go + b * p.o_sb + h * p.o_sh;
  const float* lse = p.lse + bh * p.nq;
  const float* dsum = p.dsum + bh * p.nq;
  const int64_t ntiles = (p.nq + kBQ - 1) / kBQ;

  load_tile_fixed<kBK, kDqk, kLdq, kThreads>(Ks, p.k + b * p.k_sb + h * p.k_sh + j0 * p.k_sn, p.k_sn, kn, dqk);
  load_tile_fixed<kBK, kDv, kLdv, kThreads>(Vs, p.v + b * p.v_sb + h * p.v_sh + j0 * p.v_sn, p.v_sn, kn, dv);
  auto load_rows = [&](int64_t it) {
    const int64_t i0 = it * kBQ;
    const int rows = (int)(p.nq - i0 < kBQ ? p.nq - i0 : kBQ);
    uint16_t* Qs = stages + (it & 1) * kStage;
    load_tile_fixed<kBQ, kDqk, kLdq, kThreads>(Qs, qg + i0 * p.q_sn, p.q_sn, rows, dqk);
    load_tile_fixed<kBQ, kDv, kLdv, kThreads>(Qs + kBQ * kLdq, og + i0 * p.o_sn, p.o_sn, rows, dv);
    float* rs = rows_s + (it & 1) * 2 * kBQ;
    for (int r = threadIdx.x; r < kBQ; r += kThreads) {
      rs[r] = r < rows ? lse[i0 + r] * kLog2e : INFINITY;  // +inf: P = 0
      rs[kBQ + r] = r < rows ? dsum[i0 + r] : 0.f;
    }
    // The mask's [kBK keys][kBQ queries] here, so that the elementwise step indexes
    // shared memory instead of computing 64-bit addresses per element; 0 past the
    // real keys and rows.
    if (p.mask) {
      uint8_t* m = masks + (it & 1) * kBK * kBQ;
      const uint8_t* mg = p.mask + b * p.m_sb + i0 * p.m_sq + j0 * p.m_sk;
      for (int e = threadIdx.x; e < kBK * kBQ; e += kThreads) {
        const int key = e % kBK, q = e / kBK;  // consecutive threads: consecutive keys
        m[key * kBQ + q] = key < kn && q < rows ? mg[q * p.m_sq + key * p.m_sk] : 0;
      }
    }
  };
  load_rows(0);
  cp_async_commit();

  float dk[kNK][4], dva[kNV][4];
#pragma unroll
  for (int n = 0; n < kNK; n++) dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.f;
#pragma unroll
  for (int n = 0; n < kNV; n++) dva[n][0] = dva[n][1] = dva[n][2] = dva[n][3] = 0.f;

  // ldmatrix addresses. A from row-major [m][k] (the warp's K and V rows); B from
  // [n][k] (Q and dO as Qᵀ and dOᵀ); B transposed from [k][n] (Q, dO and K as they are);
  // A transposed from [k][m] (dSᵀ stored as keys x queries, read as dS).
  const int ka_off = (warp * 16 + (lane & 15)) * kLdq + (lane >> 4) * 8;
  const int va_off = (warp * 16 + (lane & 15)) * kLdv + (lane >> 4) * 8;
  const int qb_off = ((lane & 7) + (lane >> 4) * 8) * kLdq + ((lane >> 3) & 1) * 8;
  const int ob_off = ((lane & 7) + (lane >> 4) * 8) * kLdv + ((lane >> 3) & 1) * 8;
  const int qt_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * kLdq + (lane >> 4) * 8;
  const int ot_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * kLdv + (lane >> 4) * 8;
  const int sa_off = ((lane & 7) + (lane >> 4) * 8) * kLds + ((lane >> 3) & 1) * 8;
  float* const slot = p.dq_slots + ((p.atomic_dq ? 0 : tile) * p.pairs + local) * p.nq * p.dqk;

  // One barrier at the top of each query tile (its stage landed; the other stage, and
  // dSᵀ, were last read before it) and one before dQ (dSᵀ complete).
  for (int64_t it = 0; it < ntiles; it++) {
    const int64_t i0 = it * kBQ;
    cp_async_wait<0>();
    __syncthreads();
    const uint16_t* Qs = stages + (it & 1) * kStage;
    const uint16_t* Os = Qs + kBQ * kLdq;
    const float* rs = rows_s + (it & 1) * 2 * kBQ;
    const uint8_t* ms = masks + (it & 1) * kBK * kBQ;

    float s[kNS][4], dp[kNS][4];
#pragma unroll
    for (int n = 0; n < kNS; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
    rows_by_rows<T, kDqk, kBQ, kLdq>(s, Ks + ka_off, Qs + qb_off);
    rows_by_rows<T, kDv, kBQ, kLdv>(dp, Vs + va_off, Os + ob_off);
    if (it + 1 < ntiles) {
      load_rows(it + 1);
      cp_async_commit();
    }

    // This thread's elements: keys j0 + 16 warp + g (+ 8 for e >= 2), query columns
    // 8n + 2t (+ 1 for odd e) of the tile.
#pragma unroll
    for (int n = 0; n < kNS; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int c = n * 8 + 2 * t + (e & 1);
        float pr = exp2_ftz(s[n][e] * p.scale_log2 - rs[c]);
        const int key = warp * 16 + g + 8 * (e >> 1);
        if (key >= kn || (p.mask && !ms[key * kBQ + c])) pr = 0.f;
        s[n][e] = pr;
        dp[n][e] = pr * (dp[n][e] - rs[kBQ + c]);
      }

#pragma unroll
    for (int kk = 0; kk < kBQ / 16; kk++) {
      uint32_t pa[4], da[4];
      a_fragment<T, kNS>(pa, s, kk);
      a_fragment<T, kNS>(da, dp, kk);
      frag_by_rows<T, kDv>(dva, pa, Os + ot_off + kk * 16 * kLdv);
      frag_by_rows<T, kDqk>(dk, da, Qs + qt_off + kk * 16 * kLdq);
      // dSᵀ's two rows of this thread, for dQ.
      uint16_t* ds_row = dSs + (warp * 16 + g) * kLds + kk * 16 + 2 * t;
      *reinterpret_cast<uint32_t*>(ds_row) = da[0];
      *reinterpret_cast<uint32_t*>(ds_row + 8 * kLds) = da[1];
      *reinterpret_cast<uint32_t*>(ds_row + 8) = da[2];
      *reinterpret_cast<uint32_t*>(ds_row + 8 * kLds + 8) = da[3];
    }
    __syncthreads();

    // dQ of the query tile from this key tile: (kBQ / 16) x (kDqk / 32) pieces over the
    // warps, each through kBK / 16 k16 steps.
    constexpr int kPiecesR = kBQ / 16, kPieces = kPiecesR * (kDqk / 32);
#pragma unroll
    for (int u = warp; u < kPieces; u += kWarps) {
      const int rt = u % kPiecesR, cc = u / kPiecesR;
      float acc[4][4];
#pragma unroll
      for (int n = 0; n < 4; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kBK / 16; kk++) {
        uint32_t a[4];
        ldmatrix_x4_trans(a, dSs + sa_off + kk * 16 * kLds + rt * 16);
        frag_by_rows<T, 32>(acc, a, Ks + qt_off + kk * 16 * kLdq + cc * 32);
      }
#pragma unroll
      for (int r = 0; r < 2; r++) {
        const int64_t q = i0 + rt * 16 + g + 8 * r;
        if (q >= p.nq) continue;
        float* dst = slot + q * p.dqk;
#pragma unroll
        for (int n = 0; n < 4; n++) {
          const int c = cc * 32 + n * 8 + 2 * t;  // dqk is a multiple of 8: c + 1 < dqk with c
          if (c >= dqk) continue;
          if (p.atomic_dq) {
            atomicAdd(dst + c, acc[n][2 * r]);
            atomicAdd(dst + c + 1, acc[n][2 * r + 1]);
          } else {
            *reinterpret_cast<float2*>(dst + c) = make_float2(acc[n][2 * r], acc[n][2 * r + 1]);
          }
        }
      }
    }
  }

  // dK (times scale) and dV of this warp's keys.
  const float scale = p.scale;
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const int64_t key = j0 + warp * 16 + g + 8 * r;
    if (key >= p.nk) continue;
    uint16_t* kd = p.gk + ((b * p.nk + key) * p.heads + h) * p.dqk;
    uint16_t* vd = p.gv + ((b * p.nk + key) * p.heads + h) * p.dv;
#pragma unroll
    for (int n = 0; n < kNK; n++) {
      const int c = n * 8 + 2 * t;
      if (c < dqk) *reinterpret_cast<uint32_t*>(kd + c) = pack2<T>(dk[n][2 * r] * scale, dk[n][2 * r + 1] * scale);
    }
#pragma unroll
    for (int n = 0; n < kNV; n++) {
      const int c = n * 8 + 2 * t;
      if (c < dv) *reinterpret_cast<uint32_t*>(vd + c) = pack2<T>(dva[n][2 * r], dva[n][2 * r + 1]);
    }
  }
}

template <class T, int kDqk, int kDv, int kBQ, int kWarps>
__global__ void __launch_bounds__(32 * kWarps) flash_backward_kernel(FlashParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  // cp.async and bf16 mma need sm_80; the host never launches it below.
  __trap();
#else
  flash_backward_body<T, kDqk, kDv, kBQ, kWarps>(p);
#endif
}

// dQ[b, i, h, :] = scale · (the key tiles' slots added in key order), for the pairs
// [bh0, bh0 + pairs).
template <class T>
__global__ void flash_dq_kernel(const float* slots, T* gq, int64_t bh0, int64_t pairs, int64_t key_tiles,
                                int64_t heads, int64_t nq, int64_t dqk, float scale) {
  const int64_t per_slot = pairs * nq * dqk;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < per_slot;
       e += (int64_t)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int64_t tile = 0; tile < key_tiles; tile++) s += slots[tile * per_slot + e];
    const int64_t c = e % dqk, i = (e / dqk) % nq, bh = bh0 + e / (dqk * nq);
    const int64_t b = bh / heads, h = bh % heads;
    gq[((b * nq + i) * heads + h) * dqk + c] = from_f<T>(s * scale);
  }
}

// A width class: head widths (the real ones pad to them) and query rows per tile.
struct FlashTier {
  int dqk, dv, bq;
};
// The latent self-attention's head widths: 32 (flow, multimodal), 64, 128 (ImageNet),
// and the language model's 32 x 160. Each runs with 4 or 8 warps per block (64 or 128
// keys), as the caller asks.
constexpr FlashTier kFlashBackwardTiers[] = {{32, 32, 64}, {64, 64, 64}, {128, 128, 32}, {32, 160, 32}};
constexpr int kFlashTierCount = sizeof(kFlashBackwardTiers) / sizeof(kFlashBackwardTiers[0]);

// The narrowest tier that holds both widths, or -1.
int flash_tier(int64_t dqk, int64_t dv) {
  int best = -1;
  for (int i = 0; i < kFlashTierCount; i++) {
    const FlashTier& t = kFlashBackwardTiers[i];
    if (dqk <= t.dqk && dv <= t.dv && (best < 0 || t.dqk + t.dv < kFlashBackwardTiers[best].dqk + kFlashBackwardTiers[best].dv))
      best = i;
  }
  return best;
}

int64_t key_tiles_of(const AttentionArgs& a, int warps) { return (a.nk + 16 * warps - 1) / (16 * warps); }

// (batch, head) pairs per launch: as many as dQ's slots hold within slot_bytes.
int64_t pairs_per_launch(const AttentionArgs& a, int warps, size_t slot_bytes) {
  const size_t per_pair = (size_t)key_tiles_of(a, warps) * a.nq * a.dqk * 4;
  return std::max<int64_t>(1, std::min<int64_t>(a.batch * a.heads, (int64_t)(slot_bytes / std::max<size_t>(per_pair, 1))));
}

template <class T, int kDqk, int kDv, int kBQ, int kWarps>
cudaError_t launch_tier(const FlashParams& p, cudaStream_t st) {
  constexpr size_t smem = flash_smem_bytes(kDqk, kDv, kBQ, kWarps);
  auto kernel = flash_backward_kernel<T, kDqk, kDv, kBQ, kWarps>;
  if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)) return e;
  PERCEIVER_LAUNCH((unsigned)(p.pairs * p.key_tiles), 32 * kWarps, smem, st, kernel)(p);
  return cudaGetLastError();
}

template <class T, int kWarps>
cudaError_t launch_warps(const FlashParams& p, int tier, cudaStream_t st) {
  switch (tier) {  // kFlashBackwardTiers' order
    case 0: return launch_tier<T, 32, 32, 64, kWarps>(p, st);
    case 1: return launch_tier<T, 64, 64, 64, kWarps>(p, st);
    case 2: return launch_tier<T, 128, 128, 32, kWarps>(p, st);
    default: return launch_tier<T, 32, 160, 32, kWarps>(p, st);
  }
}

// One launch's pairs: the kernel of the tier, then dQ from its slots.
template <class T>
cudaError_t launch(const AttentionBackwardArgs& g, const FlashParams& p, int tier, int warps, float* slots,
                   cudaStream_t st) {
  const AttentionArgs& a = g.a;
  if (p.atomic_dq)
    if (cudaError_t e = cudaMemsetAsync(slots, 0, (size_t)(p.pairs * a.nq * a.dqk) * 4, st)) return e;
  const cudaError_t err = warps == 8 ? launch_warps<T, 8>(p, tier, st) : launch_warps<T, 4>(p, tier, st);
  if (err != cudaSuccess) return err;
  PERCEIVER_LAUNCH(grid_for(p.pairs * a.nq * a.dqk), kThreads, 0, st, flash_dq_kernel<T>)(
      slots, static_cast<T*>((void*)g.gq), p.bh0, p.pairs, p.atomic_dq ? 1 : p.key_tiles, a.heads, a.nq, a.dqk, a.scale);
  return cudaGetLastError();
}

// ---- each row's log-sum-exp --------------------------------------------------------

// What flash_row_lse's kernel needs: the forward call's Q, K and mask.
struct LseParams {
  const uint16_t* q;
  const uint16_t* k;
  const uint8_t* mask;
  float* lse;  // [B, H, Nq]
  int64_t nq, nk, heads, dqk;
  int64_t q_sb, q_sn, q_sh, k_sb, k_sn, k_sh, m_sb, m_sq, m_sk;
  int64_t q_tiles;
  float scale_log2;
};

constexpr int kLseRows = 64, kLseKeys = 64;  // a block's query rows (4 warps of 16), keys per tile

constexpr size_t lse_smem_bytes(int dqk) { return (size_t)(kLseRows + 2 * kLseKeys) * (dqk + 8) * 2; }

// The forward's online softmax without its values: per 16-row tile of a warp, S = Q Kᵀ
// a key tile at a time (two cp.async stages), the rows' running max m and sum l of
// exp2(S − m), and at the end L = (m + log2 l) ln 2, +inf where no key was kept.
template <class T, int kDqk>
__global__ void __launch_bounds__(128) flash_lse_kernel(LseParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  constexpr int kLd = kDqk + 8, kNS = kLseKeys / 8;
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* const Qs = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* const stages = Qs + kLseRows * kLd;
  const int64_t bh = blockIdx.x / p.q_tiles, i0 = (blockIdx.x % p.q_tiles) * kLseRows;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int dqk = (int)p.dqk;
  const uint16_t* kg = p.k + b * p.k_sb + h * p.k_sh;
  const int64_t ntiles = (p.nk + kLseKeys - 1) / kLseKeys;
  auto load_k = [&](int64_t it) {
    const int64_t j = it * kLseKeys;
    load_tile_fixed<kLseKeys, kDqk, kLd, 128>(stages + (it & 1) * kLseKeys * kLd, kg + j * p.k_sn, p.k_sn,
                                              (int)(p.nk - j < kLseKeys ? p.nk - j : kLseKeys), dqk);
  };
  load_tile_fixed<kLseRows, kDqk, kLd, 128>(Qs, p.q + b * p.q_sb + h * p.q_sh + i0 * p.q_sn, p.q_sn,
                                            (int)(p.nq - i0 < kLseRows ? p.nq - i0 : kLseRows), dqk);
  load_k(0);
  cp_async_commit();
  const int a_off = (warp * 16 + (lane & 15)) * kLd + (lane >> 4) * 8;
  const int b_off = ((lane & 7) + (lane >> 4) * 8) * kLd + ((lane >> 3) & 1) * 8;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  for (int64_t it = 0; it < ntiles; it++) {
    cp_async_wait<0>();
    __syncthreads();  // tile it landed; the other stage was last read before this barrier
    if (it + 1 < ntiles) {
      load_k(it + 1);
      cp_async_commit();
    }
    float s[kNS][4];
#pragma unroll
    for (int n = 0; n < kNS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
    rows_by_rows<T, kDqk, kLseKeys, kLd>(s, Qs + a_off, stages + (it & 1) * kLseKeys * kLd + b_off);
    const int64_t jt = it * kLseKeys;
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int64_t row = i0 + warp * 16 + g + 8 * r;
      const uint8_t* mrow = p.mask && row < p.nq ? p.mask + b * p.m_sb + row * p.m_sq : nullptr;
#pragma unroll
      for (int n = 0; n < kNS; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int64_t key = jt + n * 8 + 2 * t + e;
          const bool keep = key < p.nk && (!mrow || mrow[key * p.m_sk] != 0);
          s[n][2 * r + e] = keep ? s[n][2 * r + e] * p.scale_log2 : -INFINITY;
        }
      online_softmax_row<kNS>(s, r, m[r], l[r]);  // its P, left in s, is not needed here
    }
  }
#pragma unroll
  for (int r = 0; r < 2; r++) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int64_t row = i0 + warp * 16 + g + 8 * r;
    if (t == 0 && row < p.nq) p.lse[bh * p.nq + row] = row_lse(m[r], l[r]);
  }
#endif
}

// The width class flash_lse_kernel is instantiated for (the real Dqk pads to it), or 0.
int lse_width(int64_t dqk) { return dqk <= 32 ? 32 : dqk <= 64 ? 64 : dqk <= 128 ? 128 : 0; }

template <class T, int kDqk>
cudaError_t launch_lse(const LseParams& p, int64_t blocks, cudaStream_t st) {
  constexpr size_t smem = lse_smem_bytes(kDqk);
  auto kernel = flash_lse_kernel<T, kDqk>;
  if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)) return e;
  PERCEIVER_LAUNCH((unsigned)blocks, 128, smem, st, kernel)(p);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_lse_width(const LseParams& p, int width, int64_t blocks, cudaStream_t st) {
  return width == 32 ? launch_lse<T, 32>(p, blocks, st) : width == 64 ? launch_lse<T, 64>(p, blocks, st)
                                                                      : launch_lse<T, 128>(p, blocks, st);
}

}  // namespace

bool flash_row_lse_serves(const AttentionArgs& a, int cc) {
  if (cc < 80 || (a.dtype != DType::BFloat16 && a.dtype != DType::Float16)) return false;
  if (a.batch * a.heads == 0 || a.nq == 0 || a.nk == 0 || a.dqk <= 0 || lse_width(a.dqk) == 0) return false;
  if ((double)a.batch * a.heads * ((a.nq + kLseRows - 1) / kLseRows) > 2147483647.0) return false;
  return a.dqk % 8 == 0 && vec16_ok(a.q, a.q_sb, a.q_sn, a.q_sh) && vec16_ok(a.k, a.k_sb, a.k_sn, a.k_sh);
}

cudaError_t flash_row_lse(const AttentionArgs& a, float* lse, cudaStream_t st) {
  LseParams p{};
  p.q = static_cast<const uint16_t*>((const void*)a.q);
  p.k = static_cast<const uint16_t*>((const void*)a.k);
  p.mask = a.mask;
  p.lse = lse;
  p.nq = a.nq, p.nk = a.nk, p.heads = a.heads, p.dqk = a.dqk;
  p.q_sb = a.q_sb, p.q_sn = a.q_sn, p.q_sh = a.q_sh;
  p.k_sb = a.k_sb, p.k_sn = a.k_sn, p.k_sh = a.k_sh;
  p.m_sb = a.m_sb, p.m_sq = a.m_sq, p.m_sk = a.m_sk;
  p.q_tiles = (a.nq + kLseRows - 1) / kLseRows;
  p.scale_log2 = a.scale * kLog2e;
  const int64_t blocks = a.batch * a.heads * p.q_tiles;
  const int width = lse_width(a.dqk);
  return a.dtype == DType::BFloat16 ? launch_lse_width<__nv_bfloat16>(p, width, blocks, st)
                                    : launch_lse_width<__half>(p, width, blocks, st);
}

bool flash_backward_widths(DType dtype, int64_t dqk, int64_t dv, int cc, int smem_optin, int warps) {
  if (cc < 80 || (dtype != DType::BFloat16 && dtype != DType::Float16) || (warps != 4 && warps != 8)) return false;
  if (dqk <= 0 || dv <= 0 || dqk % 8 != 0 || dv % 8 != 0) return false;
  const int tier = flash_tier(dqk, dv);
  if (tier < 0) return false;
  const FlashTier& t = kFlashBackwardTiers[tier];
  return flash_smem_bytes(t.dqk, t.dv, t.bq, warps) <= (size_t)smem_optin;
}

bool flash_backward_serves(const AttentionBackwardArgs& g, int cc, int smem_optin, int warps) {
  const AttentionArgs& a = g.a;
  if (!flash_backward_widths(a.dtype, a.dqk, a.dv, cc, smem_optin, warps) || a.dropout_scale != 0.f) return false;
  if (a.batch * a.heads == 0 || a.nq == 0 || a.nk == 0) return false;
  // One (batch, head) pair's dQ slots within kFlashSlotBytes (beyond, the products take
  // the call in chunks of bounded memory), and the grid, key tiles times a launch's
  // pairs, in one dimension.
  if ((double)key_tiles_of(a, warps) * a.nq * a.dqk * 4 > (double)kFlashSlotBytes) return false;
  if ((double)key_tiles_of(a, warps) * (double)pairs_per_launch(a, warps, kFlashSlotBytes) > 2147483647.0) return false;
  // (The widths' multiples of 8 are flash_backward_widths'.)
  return vec16_ok(a.q, a.q_sb, a.q_sn, a.q_sh) && vec16_ok(a.k, a.k_sb, a.k_sn, a.k_sh) &&
         vec16_ok(a.v, a.v_sb, a.v_sn, a.v_sh) && vec16_ok(g.gout, a.o_sb, a.o_sn, a.o_sh);
}

size_t flash_backward_workspace_bytes(const AttentionArgs& a, int warps, size_t slot_bytes) {
  const size_t rows = (size_t)(a.batch * a.heads * a.nq);
  return (rows * 4 + 255) / 256 * 256 + (size_t)key_tiles_of(a, warps) * pairs_per_launch(a, warps, slot_bytes) * a.nq * a.dqk * 4;
}

cudaError_t flash_attention_backward(const AttentionBackwardArgs& g, const float* lse, void* workspace,
                                     cudaStream_t st, int warps, size_t slot_bytes, bool atomic_dq) {
  const AttentionArgs& a = g.a;
  const size_t rows = (size_t)(a.batch * a.heads * a.nq);
  float* dsum = static_cast<float*>(workspace);
  float* slots = reinterpret_cast<float*>(static_cast<char*>(workspace) + (rows * 4 + 255) / 256 * 256);
  attention_row_dots(g, dsum, st);
  const int tier = flash_tier(a.dqk, a.dv);
  FlashParams p{};
  p.q = static_cast<const uint16_t*>((const void*)a.q);
  p.k = static_cast<const uint16_t*>((const void*)a.k);
  p.v = static_cast<const uint16_t*>((const void*)a.v);
  p.go = static_cast<const uint16_t*>((const void*)g.gout);
  p.mask = a.mask;
  p.lse = lse;
  p.dsum = dsum;
  p.dq_slots = slots;
  p.gk = reinterpret_cast<uint16_t*>(g.gk);
  p.gv = reinterpret_cast<uint16_t*>(g.gv);
  p.nq = a.nq, p.nk = a.nk, p.heads = a.heads, p.dqk = a.dqk, p.dv = a.dv;
  p.q_sb = a.q_sb, p.q_sn = a.q_sn, p.q_sh = a.q_sh;
  p.k_sb = a.k_sb, p.k_sn = a.k_sn, p.k_sh = a.k_sh;
  p.v_sb = a.v_sb, p.v_sn = a.v_sn, p.v_sh = a.v_sh;
  p.o_sb = a.o_sb, p.o_sn = a.o_sn, p.o_sh = a.o_sh;
  p.m_sb = a.m_sb, p.m_sq = a.m_sq, p.m_sk = a.m_sk;
  p.key_tiles = key_tiles_of(a, warps);
  p.scale = a.scale;
  p.scale_log2 = a.scale * kLog2e;
  p.atomic_dq = atomic_dq;
  const int64_t total = a.batch * a.heads, per = pairs_per_launch(a, warps, slot_bytes);
  cudaError_t err = cudaSuccess;
  for (int64_t bh0 = 0; bh0 < total && err == cudaSuccess; bh0 += per) {
    p.bh0 = bh0;
    p.pairs = std::min(per, total - bh0);
    err = a.dtype == DType::BFloat16 ? launch<__nv_bfloat16>(g, p, tier, warps, slots, st)
                                     : launch<__half>(g, p, tier, warps, slots, st);
  }
  return err;
}

}  // namespace perceiver::cuda
