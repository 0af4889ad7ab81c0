// The float32 attention kernel on tensor cores: part of attention.cu (included there,
// inside namespace attn, after the fixed-width kernel), for the same padded head widths.
//
// Why: float32 attention ran on CUDA cores, composed of float32 products (the op layer's
// whole-matrix products, or attention_gemm.cu's chunks), at 0.62x torch's SDPA for 8
// heads of 128 over 512 latents at batch 32 on an H200 (1.36 against 0.84 ms). Torch's
// float32 SDPA is a flash kernel on tensor cores with 3xTF32 products.
//
// What: every product is three TF32 products. An fp32 x splits into hi = tf32(x) and
// lo = tf32(x - hi), and a b = hi·hi + hi·lo + lo·hi, dropping lo·lo (about 2^-22 of
// the product), with fp32 accumulation. On the CPU emulation results stay within
// 0.01-0.03 of the float32 tolerance (1e-5 relative); one TF32 product instead of three
// misses it 14-fold. Three products cost three times TF32's rate: on an H100 SXM
// (dense TF32 495 TFLOP/s, fp32 FMA 67) 165, still more than twice fp32 FMA's.
//
// How: the fixed-width kernel's algorithm, 16 query rows per warp, with:
// - fp32 tiles in shared memory at a row stride of kD + 4 floats, so that ldmatrix's
//   eight 16-byte rows fall in distinct banks. ldmatrix moves 32-bit elements as
//   pairs of 16-bit ones, so each thread receives element [lane / 4][lane % 4] of an
//   8 x 4 fp32 matrix: the tf32 A fragment of Q and the B fragment of K, as
//   attention_mma.cuh lays them out (mma_1688_tf32).
// - Q's fragments reloaded and split per key tile (kept in registers they would take
//   128 at 128 wide, next to O's 64).
// - P V without moving S. The C fragment of an n8 tile of S gives a thread keys 2t and
//   2t + 1 of its rows, where A's layout wants keys t and t + 4. So the k index of P V
//   runs over the tile's keys in the order 0, 2, 4, 6, 1, 3, 5, 7: a0 = P[g][2t],
//   a2 = P[g][2t + 1]. V's B fragment follows that order: b0 = V[2t][g],
//   b1 = V[2t + 1][g], two 32-bit shared loads, which a row stride of kD + 4 keeps free
//   of bank conflicts.
// - 32-key tiles, two stages, so that 128-wide heads take 101 KB of shared memory and
//   two blocks share an SM.
// It takes float32 data whose Q, K and V rows are 16-byte aligned, on sm_80+, one width
// class per instantiation (kTf32Tiers).
#pragma once

// Copies this thread's 16-byte chunks (4 floats) of a kRows x kD fp32 tile (global rows
// at stride sn, real width d, `rows` of them) into shared memory at row stride kLd;
// chunks past the real rows or columns are zero-filled.
template <int kRows, int kD, int kLd, int kThreads>
__device__ __forceinline__ void load_tile_f32(float* __restrict__ s, const float* __restrict__ g, int64_t sn,
                                              int rows, int d) {
  constexpr int kC = kD / 4;
  constexpr int kChunks = kRows * kC;
#pragma unroll
  for (int i = 0; i < (kChunks + kThreads - 1) / kThreads; i++) {
    const int idx = (int)threadIdx.x + i * kThreads;
    if (kChunks % kThreads == 0 || idx < kChunks) {
      const int r = idx / kC, c = idx % kC * 4;
      const int bytes = r < rows ? max(0, min(4, d - c)) * 4 : 0;
      cp_async_16(s + r * kLd + c, bytes > 0 ? g + (int64_t)r * sn + c : g, bytes);
    }
  }
}

// x as hi + lo, both TF32 (as mma's operands take them: 32-bit patterns).
__device__ __forceinline__ void split_tf32(float x, uint32_t& hi, uint32_t& lo) {
  float h;
  hi = to_tf32(x);
  memcpy(&h, &hi, 4);
  lo = to_tf32(x - h);
}
// The same for x's 32 bits, as ldmatrix delivers them.
__device__ __forceinline__ void split_tf32(uint32_t bits, uint32_t& hi, uint32_t& lo) {
  float x;
  memcpy(&x, &bits, 4);
  split_tf32(x, hi, lo);
}

// d += A B in 3xTF32: the small terms first.
__device__ __forceinline__ void mma_tf32x3(float (&d)[4], const uint32_t (&ah)[4], const uint32_t (&al)[4],
                                           uint32_t bh0, uint32_t bh1, uint32_t bl0, uint32_t bl1) {
  mma_1688_tf32(d, al, bh0, bh1);
  mma_1688_tf32(d, ah, bl0, bl1);
  mma_1688_tf32(d, ah, bh0, bh1);
}

template <int kDqk, int kDv, int kBK, int kWarps>
__device__ __forceinline__ void tf32_body(const Params& p) {
  constexpr int kThreads = 32 * kWarps;
  constexpr int kBQ = 16 * kWarps;
  constexpr int kLdq = kDqk + 4, kLdv = kDv + 4;  // +4 floats: conflict-free ldmatrix rows
  constexpr int kNS = kBK / 8;                      // n8 tiles of S
  constexpr int kNO = kDv / 8;                      // n8 tiles of O
  constexpr int kKQ = kDqk / 8;                     // k8 steps of Q Kᵀ
  constexpr int kStage = kBK * (kLdq + kLdv);
  static_assert(kDqk % 8 == 0 && kDv % 8 == 0 && kBK % 16 == 0, "tf32 tiles: widths of 8, keys of 16");
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  float* Qs = reinterpret_cast<float*>(smem_raw);
  float* const stage_base = Qs + kBQ * kLdq;

  const BlockPlace bp = block_place(p, kBQ);
  const int64_t b = bp.b, h = bp.h, bh = bp.bh, i0 = bp.i0, j0 = bp.j0, j1 = bp.j1;
  const int split = bp.split;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int dqk = (int)p.dqk, dv = (int)p.dv;

  const TileBasesOf<float> base = tile_bases<float>(p, bp);
  const int64_t ntiles = (j1 - j0 + kBK - 1) / kBK;
  auto load_kv = [&](int64_t it) {
    const int kn = (int)min64(kBK, j1 - j0 - it * kBK);
    float* Ks = stage_base + (it & 1) * kStage;
    load_tile_f32<kBK, kDqk, kLdq, kThreads>(Ks, base.k + it * kBK * p.k_sn, p.k_sn, kn, dqk);
    load_tile_f32<kBK, kDv, kLdv, kThreads>(Ks + kBK * kLdq, base.v + it * kBK * p.v_sn, p.v_sn, kn, dv);
  };
  load_tile_f32<kBQ, kDqk, kLdq, kThreads>(Qs, base.q, p.q_sn, (int)min64(kBQ, p.nq - i0), dqk);
  if (ntiles > 0) load_kv(0);
  cp_async_commit();

  const int64_t row_base = i0 + warp * 16 + g;
  // ldmatrix row addresses: Q's matrices are rows 0-7 / 8-15 by columns 0-3 / 4-7 of
  // a k8 step (a0..a3); K's are keys 0-7 by columns 0-3 and 4-7, then keys 8-15 (b0,
  // b1 of two n8 tiles).
  const int q_off = (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kLdq + (lane >> 4) * 4;
  const int k_off = ((lane & 7) + (lane >> 4) * 8) * kLdq + ((lane >> 3) & 1) * 4;

  float o[1][kNO][4];
  float m[1][2] = {{-INFINITY, -INFINITY}}, l[1][2] = {{0.f, 0.f}};
#pragma unroll
  for (int n = 0; n < kNO; n++) o[0][n][0] = o[0][n][1] = o[0][n][2] = o[0][n][3] = 0.f;

  // One barrier per tile, as the fixed-width kernel: tile it + 1 goes into the other
  // stage once this tile's Q Kᵀ is issued; that stage was last read in iteration it - 1.
  for (int64_t it = 0; it < ntiles; it++) {
    const int64_t jt = j0 + it * kBK;
    const int kn = (int)min64(kBK, j1 - jt);
    cp_async_wait<0>();
    __syncthreads();
    const float* Ks = stage_base + (it & 1) * kStage;
    const float* Vs = Ks + kBK * kLdq;

    float s[kNS][4];
#pragma unroll
    for (int n = 0; n < kNS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kKQ; kc++) {
      uint32_t a[4], ah[4], al[4];
      ldmatrix_x4(a, Qs + q_off + kc * 8);
#pragma unroll
      for (int i = 0; i < 4; i++) split_tf32(a[i], ah[i], al[i]);
#pragma unroll
      for (int n = 0; n < kNS / 2; n++) {
        uint32_t bb[4], bh[4], bl[4];
        ldmatrix_x4(bb, Ks + k_off + n * 16 * kLdq + kc * 8);
#pragma unroll
        for (int i = 0; i < 4; i++) split_tf32(bb[i], bh[i], bl[i]);
        mma_tf32x3(s[2 * n], ah, al, bh[0], bh[1], bl[0], bl[1]);
        mma_tf32x3(s[2 * n + 1], ah, al, bh[2], bh[3], bl[2], bl[3]);
      }
    }
    if (it + 1 < ntiles) {
      load_kv(it + 1);
      cp_async_commit();
    }

    softmax_rescale_tile<kNS, kNO>(s, o[0], m[0], l[0], p, b, row_base, 0, jt, kn, t);

    // P V over the tile's n8 key groups, keys in the order 0, 2, 4, 6, 1, 3, 5, 7 (see
    // the top). Past a ragged tile's kn keys P is 0 and V's rows are zero-filled.
#pragma unroll
    for (int j = 0; j < kNS; j++) {
      uint32_t ph[4], pl[4];
      const float pa[4] = {s[j][0], s[j][2], s[j][1], s[j][3]};  // a0 a1 a2 a3
#pragma unroll
      for (int i = 0; i < 4; i++) split_tf32(pa[i], ph[i], pl[i]);
      const float* vrow = Vs + (j * 8 + 2 * t) * kLdv + g;
#pragma unroll
      for (int n = 0; n < kNO; n++) {
        uint32_t vh0, vl0, vh1, vl1;
        split_tf32(lds_f32(vrow + n * 8), vh0, vl0);
        split_tf32(lds_f32(vrow + kLdv + n * 8), vh1, vl1);
        mma_tf32x3(o[0][n], ph, pl, vh0, vh1, vl0, vl1);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    l[0][r] += __shfl_xor_sync(0xffffffffu, l[0][r], 1);
    l[0][r] += __shfl_xor_sync(0xffffffffu, l[0][r], 2);
  }
  const int64_t row[1][2] = {{row_base, row_base + 8}};
  store_rows<float, 1, kNO>(p, b, h, bh, split, row, o, m, l, t);
}

template <int kDqk, int kDv, int kBK, int kWarps, int kMinBlocks>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks) attention_tf32_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  // Needs cp.async and TF32 mma; the host never launches it below sm_80.
  __trap();
#else
  tf32_body<kDqk, kDv, kBK, kWarps>(p);
#endif
}
