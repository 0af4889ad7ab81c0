// The fixed-width tensor-core attention kernel: part of attention.cu (included there,
// inside namespace attn, after the tiers' building blocks), for the head widths of
// multi-head latent self-attention, where the tiers' kernel runs at a fifth of torch's
// flash attention on an H200 (8 heads of 128, 512 latents, batch 32: 0.45 against
// 0.09 ms).
//
// The same algorithm as tc_body (online softmax over key tiles, S in registers fed
// back as P), with what the tiers keep at run time made compile-time, and the work
// that does not feed the tensor cores taken out of the key loop:
// - Both head widths are template arguments (kDqk, kDv: multiples of 16 that the
//   real widths pad to), so every loop over them is unrolled with no run-time guards.
// - Each thread's part of a K or V tile copy is fixed (chunk i of the tile at
//   threadIdx.x + i·threads, divided by a compile-time chunks-per-row): the tiers
//   divide by a run-time chunk count for every 16 bytes they copy (a div.s32 each,
//   16 per thread per 64-key tile of 128-wide heads).
// - Q's fragments are loaded from shared memory once and stay in registers
//   (kDqk / 4 per thread), where the tiers re-read them for every key tile.
// - Masks and ragged tiles cost per-element work only on the tiles that have them (a
//   block-uniform test), not on every tile.
// - One barrier per key tile instead of two (the next tile's copy is issued after this
//   tile's Q Kᵀ; see the loop), and exp2 as a bare ex2.approx.ftz.
// It takes 16-bit data on sm_80+ whose Q, K and V rows are 16-byte aligned (K and V
// through the padded copies where they are not), and no more than one width class
// per instantiation (kFixedTiers); everything else stays on the tiers.
#pragma once

// Copies this thread's 16-byte chunks of a kRows x kD tile (global rows at stride sn,
// real width d, `rows` of them) into shared memory at row stride kLd; chunks past the
// real rows or columns are zero-filled (load_chunk16).
template <int kRows, int kD, int kLd, int kThreads>
__device__ __forceinline__ void load_tile_fixed(uint16_t* __restrict__ s, const uint16_t* __restrict__ g,
                                                int64_t sn, int rows, int d) {
  constexpr int kChunks = kRows * (kD / 8);
#pragma unroll
  for (int i = 0; i < (kChunks + kThreads - 1) / kThreads; i++) {
    const int idx = (int)threadIdx.x + i * kThreads;
    if (kChunks % kThreads == 0 || idx < kChunks) {
      const int r = idx / (kD / 8), c = (idx % (kD / 8)) * 8;
      load_chunk16(s, kLd, g, sn, rows, d, r, c);
    }
  }
}

inline size_t fixed_smem_bytes(int dqk, int dv, int bq, int bk) {
  return ((size_t)bq * (dqk + 8) + 2 * (size_t)bk * ((size_t)dqk + 8 + dv + 8)) * 2;
}

// kWarps warps of 16 query rows each; K and V tiles of kBK keys in two stages.
template <class T, int kDqk, int kDv, int kBK, int kWarps>
__device__ __forceinline__ void fixed_body(const Params& p) {
  constexpr int kThreads = 32 * kWarps;
  constexpr int kBQ = 16 * kWarps;
  constexpr int kLdq = kDqk + 8, kLdv = kDv + 8;  // +8: conflict-free ldmatrix rows
  constexpr int kNS = kBK / 8;                      // n8 tiles of S per warp
  constexpr int kNO = kDv / 8;                      // n8 tiles of O per warp
  constexpr int kKQ = kDqk / 16;                    // k16 steps of Q Kᵀ
  constexpr int kStage = kBK * (kLdq + kLdv);
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* Qs = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* const stage_base = Qs + kBQ * kLdq;

  int64_t blk = blockIdx.x;
  const int64_t qt = blk % p.q_tiles;
  blk /= p.q_tiles;
  const int split = (int)(blk % p.splits);
  const int64_t bh = blk / p.splits;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t i0 = qt * kBQ;
  int64_t j0, j1;
  key_range(p, split, &j0, &j1);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int dqk = (int)p.dqk, dv = (int)p.dv;

  const uint16_t* qg = static_cast<const uint16_t*>(p.q) + b * p.q_sb + h * p.q_sh + i0 * p.q_sn;
  const uint16_t* kg = static_cast<const uint16_t*>(p.k) + b * p.k_sb + h * p.k_sh + j0 * p.k_sn;
  const uint16_t* vg = static_cast<const uint16_t*>(p.v) + b * p.v_sb + h * p.v_sh + j0 * p.v_sn;
  const int64_t ntiles = (j1 - j0 + kBK - 1) / kBK;
  auto load_kv = [&](int64_t it) {
    const int kn = (int)min64(kBK, j1 - j0 - it * kBK);
    uint16_t* Ks = stage_base + (it & 1) * kStage;
    load_tile_fixed<kBK, kDqk, kLdq, kThreads>(Ks, kg + it * kBK * p.k_sn, p.k_sn, kn, dqk);
    load_tile_fixed<kBK, kDv, kLdv, kThreads>(Ks + kBK * kLdq, vg + it * kBK * p.v_sn, p.v_sn, kn, dv);
  };
  // Q alone in the first group, so that its fragments can be taken while tile 0 lands.
  load_tile_fixed<kBQ, kDqk, kLdq, kThreads>(Qs, qg, p.q_sn, (int)min64(kBQ, p.nq - i0), dqk);
  cp_async_commit();
  if (ntiles > 0) load_kv(0);
  cp_async_commit();

  const int64_t row0 = i0 + warp * 16 + g, row1 = row0 + 8;
  const uint8_t* mrow[2];
  mrow[0] = p.mask && row0 < p.nq ? p.mask + b * p.m_sb + row0 * p.m_sq : nullptr;
  mrow[1] = p.mask && row1 < p.nq ? p.mask + b * p.m_sb + row1 * p.m_sq : nullptr;

  cp_async_wait<1>();
  __syncthreads();
  uint32_t qa[kKQ][4];
#pragma unroll
  for (int kc = 0; kc < kKQ; kc++)
    ldmatrix_x4(qa[kc], Qs + (warp * 16 + (lane & 15)) * kLdq + (lane >> 4) * 8 + kc * 16);

  float o[kNO][4];
#pragma unroll
  for (int n = 0; n < kNO; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // l: this thread's share of its rows

  const int k_off = ((lane & 7) + (lane >> 4) * 8) * kLdq + ((lane >> 3) & 1) * 8;
  const int v_off = ((lane & 7) + ((lane >> 3) & 1) * 8) * kLdv + (lane >> 4) * 8;

  // One barrier per tile: tile it + 1 is copied into the other stage once this tile's
  // Q Kᵀ is issued (the tensor cores start sooner than with the copy first), and that
  // stage was last read in iteration it - 1, which every thread has finished by this
  // iteration's barrier.
  for (int64_t it = 0; it < ntiles; it++) {
    const int64_t jt = j0 + it * kBK;
    const int kn = (int)min64(kBK, j1 - jt);
    cp_async_wait<0>();
    __syncthreads();  // tile it landed for every thread's copies
    const uint16_t* Ks = stage_base + (it & 1) * kStage;
    const uint16_t* Vs = Ks + kBK * kLdq;

    float s[kNS][4];
#pragma unroll
    for (int n = 0; n < kNS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kKQ; kc++)
#pragma unroll
      for (int n = 0; n < kBK / 16; n++) {
        uint32_t bb[4];
        ldmatrix_x4(bb, Ks + k_off + n * 16 * kLdq + kc * 16);
        mma_16816<T>(s[2 * n], qa[kc], bb[0], bb[1]);
        mma_16816<T>(s[2 * n + 1], qa[kc], bb[2], bb[3]);
      }
    if (it + 1 < ntiles) {
      load_kv(it + 1);
      cp_async_commit();
    }

    if (p.mask || kn < kBK) {  // block-uniform: only tiles with masked or missing keys
#pragma unroll
      for (int n = 0; n < kNS; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int jj = n * 8 + 2 * t + (e & 1);
          bool keep = jj < kn;
          const uint8_t* mr = mrow[e >> 1];
          if (keep && mr) keep = mr[(jt + jj) * p.m_sk] != 0;
          s[n][e] = keep ? s[n][e] * p.scale_log2 : -INFINITY;
        }
    } else {
#pragma unroll
      for (int n = 0; n < kNS; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[n][e] *= p.scale_log2;
    }

#pragma unroll
    for (int r = 0; r < 2; r++) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < kNS; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // nothing unmasked yet: P = 0
      const float corr = exp2_ftz(m[r] - m_use);
      m[r] = m_new;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < kNS; n++) {
        s[n][2 * r] = exp2_ftz(s[n][2 * r] - m_use);
        s[n][2 * r + 1] = exp2_ftz(s[n][2 * r + 1] - m_use);
        sum += s[n][2 * r] + s[n][2 * r + 1];
      }
      l[r] = l[r] * corr + sum;
#pragma unroll
      for (int n = 0; n < kNO; n++) {
        o[n][2 * r] *= corr;
        o[n][2 * r + 1] *= corr;
      }
    }

    // Past a ragged tile's kn keys, P is 0 and the V rows are zero-filled: the products
    // run anyway rather than branch inside the unrolled loop.
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++) {
      uint32_t a[4];
      a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < kNO / 2; n++) {
        uint32_t bb[4];
        ldmatrix_x4_trans(bb, Vs + v_off + kk * 16 * kLdv + n * 16);
        mma_16816<T>(o[2 * n], a, bb[0], bb[1]);
        mma_16816<T>(o[2 * n + 1], a, bb[2], bb[3]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  const int64_t rows[1][2] = {{row0, row1}};
  const float ms[1][2] = {{m[0], m[1]}}, ls[1][2] = {{l[0], l[1]}};
  store_rows<T, 1, kNO>(p, b, h, bh, split, rows, reinterpret_cast<const float(&)[1][kNO][4]>(o), ms, ls, t);
}

template <class T, int kDqk, int kDv, int kBK, int kWarps, int kMinBlocks>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks) attention_fixed_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  // Needs cp.async and (for bf16) sm_80's mma; the host never launches it below sm_80.
  __trap();
#else
  fixed_body<T, kDqk, kDv, kBK, kWarps>(p);
#endif
}
