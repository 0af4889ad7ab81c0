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
// - With one 16-row tile per warp, Q's fragments are loaded from shared memory once and
//   stay in registers (kDqk / 4 per thread), where the tiers re-read them for every key
//   tile.
// - Masks and ragged tiles cost per-element work only on the tiles that have them (a
//   block-uniform test), not on every tile.
// - One barrier per key tile instead of two (the next tile's copy is issued after this
//   tile's Q Kᵀ; see the loop), and exp2 as a bare ex2.approx.ftz.
// It takes 16-bit data on sm_80+ whose Q, K and V rows are 16-byte aligned (K and V
// through the padded copies where they are not; an encoder head's Q, read once per
// block, may be unaligned), and no more than one width class per instantiation
// (kFixedTiers); everything else stays on the tiers.
#pragma once

// The single-head encoders' tiers (one head attending to its input X with k = v = X,
// models/fast-attention.ts: the ImageNet models' 261 channels, optical flow's 322),
// against the multi-head latent self-attention that the other tiers serve. They take
// only calls whose K and V are one array (the host's routing sees to it:
// kv_one_array), and Q rows that may be unaligned.
__host__ __device__ constexpr bool fixed_encoder_head(int dqk, int dv) { return dqk == dv && dqk > 128; }

// S's fragments of one 16-row tile (kNS n8 tiles as mma.sync's C fragments: this
// thread's rows row + off and row + off + 8, columns 8n + 2t + (e & 1) of key tile jt) scaled into
// the log2 domain, with keys that are masked or past the tile's kn at -inf. The
// per-element test runs only on tiles that have such keys (a block-uniform branch).
// Shared with the warpgroup kernel (attention_wgmma.cuh), whose S fragments are the same.
template <int kNS>
__device__ __forceinline__ void scale_mask_tile(float (&s)[kNS][4], const Params& p, int64_t b, int64_t row,
                                                int off, int64_t jt, int kn, int t) {
  if (p.mask || kn < kNS * 8) {
#pragma unroll
    for (int n = 0; n < kNS; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int jj = n * 8 + 2 * t + (e & 1);
        const int64_t r = row + off + 8 * (e >> 1);
        bool keep = jj < kn;
        if (keep && p.mask && r < p.nq) keep = p.mask[b * p.m_sb + r * p.m_sq + (jt + jj) * p.m_sk] != 0;
        s[n][e] = keep ? s[n][e] * p.scale_log2 : -INFINITY;
      }
  } else {
#pragma unroll
    for (int n = 0; n < kNS; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[n][e] *= p.scale_log2;
  }
}

// One 16-row tile's softmax step over a key tile, for the kernels whose O stays in
// mma.sync's C fragments (the fixed-width and TF32 kernels): S scaled and masked, P
// in its place, and this thread's O rows rescaled to the new maxima.
template <int kNS, int kNO>
__device__ __forceinline__ void softmax_rescale_tile(float (&s)[kNS][4], float (&o)[kNO][4], float (&m)[2],
                                                     float (&l)[2], const Params& p, int64_t b, int64_t row,
                                                     int off, int64_t jt, int kn, int t) {
  scale_mask_tile<kNS>(s, p, b, row, off, jt, kn, t);
#pragma unroll
  for (int r = 0; r < 2; r++) {
    const float corr = online_softmax_row<kNS>(s, r, m[r], l[r]);
#pragma unroll
    for (int n = 0; n < kNO; n++) {
      o[n][2 * r] *= corr;
      o[n][2 * r + 1] *= corr;
    }
  }
}

// A warp's O rows (kRT 16-row tiles from query row warp_row0), normalised, into the output
// through `stage` (its 16·kRT rows of kNO·8 + 8 16-bit elements of shared memory), so
// that they leave in 16-byte stores along each row. In mma.sync's C fragments a thread
// holds two adjacent columns of a row, so stores from them, even in pairs, half-fill the
// sectors of eight rows at a time. Only where p.o_store is kOStoreVec16 (Dv a multiple
// of 8, 16-byte rows). The row pitch (kNO·4 + 4 words: 20, 4 or 12 mod 32 at the
// classes' widths) puts the eight rows' 4-byte writes of one instruction in 32 banks.
__host__ __device__ constexpr int staged_row_pitch(int n8_tiles) { return n8_tiles * 8 + 8; }

template <class T, int kRT, int kNO>
__device__ __forceinline__ void store_rows_vec16(const Params& p, int64_t b, int64_t h, int64_t warp_row0,
                                                 const float (&o)[kRT][kNO][4], const float (&l)[kRT][2],
                                                 uint16_t* stage, int lane) {
  constexpr int kLdo = staged_row_pitch(kNO);
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int rt = 0; rt < kRT; rt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const float inv = l[rt][r] == 0.f ? 0.f : 1.f / l[rt][r];  // all masked -> 0; NaN stays
      uint16_t* srow = stage + (rt * 16 + r * 8 + g) * kLdo + 2 * t;
#pragma unroll
      for (int n = 0; n < kNO; n++) sts_u32(srow + n * 8, pack2<T>(o[rt][n][2 * r] * inv, o[rt][n][2 * r + 1] * inv));
    }
  __syncwarp();
  T* out = static_cast<T*>(p.out) + b * p.o_sb + h * p.o_sh;
  const int chunks = (int)(p.dv / 8);  // of a row's kNO (Dv padded to 16)
  // 16·kRT rows of kNO chunks: kRT·kNO / 2 per lane (kNO is even).
#pragma unroll
  for (int k = 0; k < kRT * kNO / 2; k++) {
    const int i = lane + 32 * k, r = i / kNO, c = i % kNO;
    const int64_t row = warp_row0 + r;
    if (c < chunks && row < p.nq)
      stg<uint4>(out + row * p.o_sn + c * 8, lds_u128(stage + r * kLdo + c * 8));
  }
}

// kWarps warps of kRT 16-row query tiles each; K and V tiles of kBK keys in two
// stages (shared memory as the tiers lay it out: tc_smem_bytes). With one row tile per warp, Q's fragments stay in registers; with two (128
// query rows per block from 4 warps, as FlashAttention-2 tiles its forward, so that
// each K and V fragment feeds twice the products), they are re-read from shared memory
// per step, for which the S and O accumulators leave no registers.
template <class T, int kDqk, int kDv, int kBK, int kWarps, int kRT, bool kLse>
__device__ __forceinline__ void fixed_body(const Params& p) {
  constexpr int kThreads = 32 * kWarps;
  constexpr int kBQ = 16 * kWarps * kRT;
  constexpr int kLdq = kDqk + 8, kLdv = kDv + 8;  // +8: conflict-free ldmatrix rows
  constexpr int kNS = kBK / 8;                      // n8 tiles of S per row tile
  constexpr int kNO = kDv / 8;                      // n8 tiles of O per row tile
  constexpr int kKQ = kDqk / 16;                    // k16 steps of Q Kᵀ
  // The encoders' tiers take K and V as one array (fixed_encoder_head): a stage is
  // then one tile, read as Kᵀ by ldmatrix and as V by its transposing form.
  constexpr bool kSharedKV = fixed_encoder_head(kDqk, kDv);
  constexpr int kStage = kBK * (kLdq + (kSharedKV ? 0 : kLdv));
  // Q's fragments in registers take kDqk / 4 per thread: beside the O accumulators of
  // one row tile up to 128 wide, not of two, nor beside 272-wide ones (136 registers).
  constexpr bool kQInRegs = kRT == 1 && kDqk <= 128;
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* Qs = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* const stage_base = Qs + kBQ * kLdq;

  const BlockPlace bp = block_place(p, kBQ);
  const int64_t b = bp.b, h = bp.h, bh = bp.bh, i0 = bp.i0, j0 = bp.j0, j1 = bp.j1;
  const int split = bp.split;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int dqk = (int)p.dqk, dv = (int)p.dv;

  const TileBases base = tile_bases(p, bp);
  const uint16_t *qg = base.q, *kg = base.k, *vg = base.v;
  const int64_t ntiles = (j1 - j0 + kBK - 1) / kBK;
  auto load_kv = [&](int64_t it) {
    const int kn = (int)min64(kBK, j1 - j0 - it * kBK);
    uint16_t* Ks = stage_base + (it & 1) * kStage;
    load_tile_fixed<kBK, kDqk, kLdq, kThreads>(Ks, kg + it * kBK * p.k_sn, p.k_sn, kn, dqk);
    if constexpr (!kSharedKV)
      load_tile_fixed<kBK, kDv, kLdv, kThreads>(Ks + kBK * kLdq, vg + it * kBK * p.v_sn, p.v_sn, kn, dv);
  };
  // Q alone in the first group, so that its fragments can be taken while tile 0 lands.
  // An encoder's Q rows may not be 16-byte aligned (a 261-wide head packed at stride
  // 261): then element loads, once per block, ahead of the same barrier.
  const int q_rows = (int)min64(kBQ, p.nq - i0);
  if (!kSharedKV || p.q_vec) load_tile_fixed<kBQ, kDqk, kLdq, kThreads>(Qs, qg, p.q_sn, q_rows, dqk);
  else load_tile16<kBQ, kThreads>(Qs, kLdq, qg, p.q_sn, q_rows, dqk, kDqk, false);
  cp_async_commit();
  if (ntiles > 0) load_kv(0);
  cp_async_commit();

  // This thread's rows: g and g + 8 of each of its warp's adjacent row tiles, from
  // row_base + 16 rt + 8 r. Only the base stays live across the key loop (the rows and
  // mask rows are derived where used), which the wide variant's registers need.
  const int64_t row_base = i0 + warp * kRT * 16 + g;

  const int q_off = (warp * kRT * 16 + (lane & 15)) * kLdq + (lane >> 4) * 8;
  cp_async_wait<1>();
  __syncthreads();
  uint32_t qa[kQInRegs ? kKQ : 1][4];
  if constexpr (kQInRegs) {
#pragma unroll
    for (int kc = 0; kc < kKQ; kc++) ldmatrix_x4(qa[kc], Qs + q_off + kc * 16);
  }

  float o[kRT][kNO][4];
  float m[kRT][2], l[kRT][2];  // l: this thread's share of its rows
#pragma unroll
  for (int rt = 0; rt < kRT; rt++) {
#pragma unroll
    for (int n = 0; n < kNO; n++) o[rt][n][0] = o[rt][n][1] = o[rt][n][2] = o[rt][n][3] = 0.f;
    m[rt][0] = m[rt][1] = -INFINITY;
    l[rt][0] = l[rt][1] = 0.f;
  }

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
    const uint16_t* Vs = kSharedKV ? Ks : Ks + kBK * kLdq;

    float s[kRT][kNS][4];
#pragma unroll
    for (int rt = 0; rt < kRT; rt++)
#pragma unroll
      for (int n = 0; n < kNS; n++) s[rt][n][0] = s[rt][n][1] = s[rt][n][2] = s[rt][n][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kKQ; kc++) {
      uint32_t a[kRT][4];
#pragma unroll
      for (int rt = 0; rt < kRT; rt++) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int i = 0; i < 4; i++) a[rt][i] = qa[kc][i];
        } else {
          ldmatrix_x4(a[rt], Qs + q_off + rt * 16 * kLdq + kc * 16);
        }
      }
#pragma unroll
      for (int n = 0; n < kBK / 16; n++) {
        uint32_t bb[4];
        ldmatrix_x4(bb, Ks + k_off + n * 16 * kLdq + kc * 16);
#pragma unroll
        for (int rt = 0; rt < kRT; rt++) {
          mma_16816<T>(s[rt][2 * n], a[rt], bb[0], bb[1]);
          mma_16816<T>(s[rt][2 * n + 1], a[rt], bb[2], bb[3]);
        }
      }
    }
    if (it + 1 < ntiles) {
      load_kv(it + 1);
      cp_async_commit();
    }

#pragma unroll
    for (int rt = 0; rt < kRT; rt++)
      softmax_rescale_tile<kNS, kNO>(s[rt], o[rt], m[rt], l[rt], p, b, row_base, rt * 16, jt, kn, t);

    // Past a ragged tile's kn keys, P is 0 and the V rows are zero-filled: the products
    // run anyway rather than branch inside the unrolled loop.
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++) {
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
        uint32_t bb[4];
        ldmatrix_x4_trans(bb, Vs + v_off + kk * 16 * kLdv + n * 16);
#pragma unroll
        for (int rt = 0; rt < kRT; rt++) {
          mma_16816<T>(o[rt][2 * n], a[rt], bb[0], bb[1]);
          mma_16816<T>(o[rt][2 * n + 1], a[rt], bb[2], bb[3]);
        }
      }
    }
  }

#pragma unroll
  for (int rt = 0; rt < kRT; rt++)
#pragma unroll
    for (int r = 0; r < 2; r++) {
      l[rt][r] += __shfl_xor_sync(0xffffffffu, l[rt][r], 1);
      l[rt][r] += __shfl_xor_sync(0xffffffffu, l[rt][r], 2);
    }
  int64_t row[kRT][2];
#pragma unroll
  for (int rt = 0; rt < kRT; rt++) row[rt][0] = row_base + rt * 16, row[rt][1] = row_base + rt * 16 + 8;
  if (p.splits == 1 && p.o_store == kOStoreVec16) {
    // The warps' O rows take the shared memory from its start, once every warp has read
    // its last K and V tile (and Q).
    constexpr int kLdo = staged_row_pitch(kNO);
    static_assert(kBQ * kLdo <= kBQ * kLdq + 2 * kStage, "the staged O rows fit in the tiles' shared memory");
    if constexpr (kLse) store_lse<kRT>(p, bh, row, m, l, t);
    __syncthreads();
    store_rows_vec16<T, kRT, kNO>(p, b, h, row_base - g, o, l, Qs + warp * 16 * kRT * kLdo, lane);
    return;
  }
  store_rows<T, kRT, kNO, kLse>(p, b, h, bh, split, row, o, m, l, t);
}

// kLse: also each row's log-sum-exp (store_rows), for the forwards whose gradient the
// flash kernel takes.
template <class T, int kDqk, int kDv, int kBK, int kWarps, int kRT, int kMinBlocks, bool kLse = false>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks) attention_fixed_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  // Needs cp.async and (for bf16) sm_80's mma; the host never launches it below sm_80.
  __trap();
#else
  fixed_body<T, kDqk, kDv, kBK, kWarps, kRT, kLse>(p);
#endif
}
