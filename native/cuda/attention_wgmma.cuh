// The warpgroup attention kernel for Hopper (sm_90a): part of attention.cu (included
// there, inside namespace attn, after the fixed-width kernel), for the same padded head
// widths as attention_fixed.cuh. The fixed-width kernel runs 8 heads of 128 over 512
// latents at batch 32 at 198 TFLOP/s on an H200 with mma.sync (ncu: 35% of issue slots,
// the tensor pipe 31% busy), against about 340 for torch's flash attention; Hopper's
// full tensor-core rate is reached only through wgmma (wgmma.cuh). Since its output rows
// are staged as the fixed-width kernel's (2026-11-28) it runs 8 heads of 128 at batch 32
// in 0.1268 ms against that kernel's 0.1321 (two-row-tile variant) on an H200, and the
// language model's latents in 0.0390 against 0.0411: opt-in there still, as it writes
// no log-sum-exp for the flash gradient.
//
// The algorithm is the fixed-width kernel's (online softmax over key tiles, S in
// registers fed back as P), one warpgroup per 64 query rows:
//   S (64 x kBK)  = Q Kᵀ: kDqk / 16 wgmma with Q and K from shared memory;
//   softmax on S's fragments (each thread's two rows, as there);
//   O (64 x kDv) += P V: kBK / 16 wgmma (per part of O's columns) with P from registers
//   (S converted to 16 bits) and V from shared memory, transposed by the instruction.
// Tiles are copied with cp.async into the swizzled layouts of wgmma.cuh (the 272 class:
// its core matrices), K and V in three stages, tile it + 2 while tiles it and it + 1
// are in the products. Within a
// warpgroup, tile it's P V runs while the softmax of tile it + 1 is computed (see the
// loop); the kWG warpgroups of a block also interleave on the SM's schedulers.
// It takes 16-bit data whose K and V rows are 16-byte aligned (through the padded
// copies where they are not; Q's rows may be unaligned), one width class per
// instantiation (kWgmmaTiers), on compute capability 9.0 only.
#pragma once

// Key-tile stages of the kernel below (its shared memory: wgmma_smem_bytes).
constexpr int kWgmmaStages = 3;

// The width in bytes of the swizzle pattern a tile of kD 16-bit columns is stored in
// (wgmma.cuh): the widest of 128, 64 and 32 bytes that divides its rows, or 0 for the
// unswizzled core-matrix layout. Taken by every class whose P V is one product per key
// step; the 272 class's O in two parts of 136 columns (8.5 rows of a 32-byte pattern)
// keeps the core matrices.
template <int kD, bool kSwizzle>
__host__ __device__ constexpr int wgmma_swizzle_width() {
  return !kSwizzle ? 0 : (2 * kD) % 128 == 0 ? 128 : (2 * kD) % 64 == 0 ? 64 : 32;
}

// Copies this thread's 16-byte chunks (tid: its index among the kThreads that copy) of a
// kRows x kD tile (global rows at stride sn, real width d, `rows` of them) into shared
// memory; chunks past the real rows or columns are zero-filled.
// - kW > 0: kD / (kW / 2) columns of kW-byte rows, column a at s + a·kRows·kW bytes,
//   row r at r·kW within it, its 16-byte chunks swizzled (wgmma.cuh; s is aligned to
//   the patterns). Chunk idx is row idx / (kD / 8), columns 8·(idx % (kD / 8)): a warp
//   reads whole 128-byte lines of consecutive rows. In 128-byte patterns each eight
//   neighbouring threads write one row's 128 bytes to distinct banks; in 64-byte ones
//   too where two rows fill the eight (32-wide heads), while a row that spans pattern
//   columns (v 160 and 96) meets its other column's bytes in the same banks, two ways.
//   The unswizzled layout cannot have whole lines without eight-way conflicts:
//   an H200 profile (2026-11-28) of its copies, eight rows by 64 bytes per warp, had
//   L2 75% busy at 1.35 TB/s where the fixed-width kernel's whole-line copies ran it at
//   49% for 1.66 TB/s.
// - kW = 0: [row / 8][column / 8][row % 8][8] (the core matrices), chunk idx is row
//   8·(idx / 8 / (kD / 8)) + idx % 8, columns 8·(idx / 8 % (kD / 8)), landing at s + 8·idx.
// With vec false (rows not 16-byte aligned: a 261-wide head packed at stride 261, as
// the ImageNet encoder's queries are) each chunk is read element by element and stored
// whole: only for Q, once per block, where K and V go through the padded copies.
//
// kWalk (wgmma_copy_walk): one pointer steps down the rows and the shared offsets are
// constants. The general form's per-chunk offsets, which do not change from one key
// tile to the next, are what ptxas kept in registers across the key loop: at 128 x 128
// with 64-key tiles the two-warpgroup kernel took 219 registers that way, 174 walking
// (CUDA 13.0, sm_90a), and 128-key tiles went from 108 bytes of spills to none at 238.
// - kWalkRows, where a thread's chunks lie in one column, 8k rows apart: whole rows
//   (kW > 0) or whole groups of eight rows (the core matrices) per round of kThreads
//   chunks, as the general form's order has them.
// - kWalkColumns (swizzled tiles whose rows' chunks do not divide the threads: v 96 and
//   160 in 64-byte patterns): each pattern column in turn, its kW / 16 chunks a row
//   taken by as many neighbouring threads, kThreads / (kW / 16) rows a round. A warp
//   then writes 8 whole pattern rows (512 bytes, no bank conflict), where the row-major
//   order has a row's chunks meet its other pattern column's in the same banks.
// A multiple of 8 rows between a thread's chunks keeps the swizzle's XOR (row % 8 in
// its rows' pattern) the same for each of them.
constexpr int kWalkNone = 0, kWalkRows = 1, kWalkColumns = 2;
template <int kRows, int kD, int kThreads, int kW>
__host__ __device__ constexpr int wgmma_copy_walk() {
  constexpr int kC = kD / 8;
  constexpr bool whole = kW > 0 ? kThreads % kC == 0 : kThreads / 8 % kC == 0;
  constexpr int step = !whole ? 0 : kW > 0 ? kThreads / kC : kThreads / 8 / kC * 8;
  if (whole && kRows * kC % kThreads == 0 && step % 8 == 0) return kWalkRows;
  if constexpr (kW > 0) {
    constexpr int kRowChunks = kW / 16, kColStep = kThreads / kRowChunks;
    if (kThreads % kRowChunks == 0 && kColStep % 8 == 0 && kRows % kColStep == 0 && kD % (kW / 2) == 0)
      return kWalkColumns;
  }
  return kWalkNone;
}

// Chunk idx's row r, first column c and shared offset at (elements) in a kRows x kD
// tile stored as load_tile_wgmma describes.
struct ChunkPlace {
  int r, c, at;
};
template <int kRows, int kD, int kW>
__device__ __forceinline__ ChunkPlace wgmma_chunk_place(int idx) {
  constexpr int kC = kD / 8;
  if constexpr (kW > 0) {
    constexpr int kRowChunks = kW / 16;
    const int r = idx / kC, col = idx % kC / kRowChunks, chunk = idx % kC % kRowChunks;
    return {r, idx % kC * 8, (col * kRows + r) * (kW / 2) + (chunk ^ ((r * kW >> 7) & (kRowChunks - 1))) * 8};
  } else {
    return {(idx >> 3) / kC * 8 + (idx & 7), (idx >> 3) % kC * 8, idx * 8};
  }
}

template <int kRows, int kD, int kThreads, int kW, int kWalk = kWalkNone>
__device__ __forceinline__ void load_tile_wgmma(uint16_t* __restrict__ s, const uint16_t* __restrict__ g,
                                                int64_t sn, int rows, int d, int tid, bool vec = true) {
  constexpr int kC = kD / 8;
  constexpr int kChunks = kRows * kC;
  if constexpr (kWalk != kWalkNone) {
    static_assert(wgmma_copy_walk<kRows, kD, kThreads, kW>() == kWalk, "the walk these tiles take");
    if (vec) {
      if constexpr (kWalk == kWalkRows) {
        constexpr int kRowStep = kW > 0 ? kThreads / kC : kThreads / 8 / kC * 8;
        const auto [r, c, at] = wgmma_chunk_place<kRows, kD, kW>(tid);  // the first chunk's
        const int bytes = max(0, min(8, d - c)) * 2;
        const uint16_t* src = g + (int64_t)r * sn + c;
        const int64_t step = (int64_t)kRowStep * sn;
#pragma unroll
        for (int i = 0; i < kChunks / kThreads; i++) {
          const int n = r + i * kRowStep < rows ? bytes : 0;
          cp_async_16(s + at + i * (kW > 0 ? kRowStep * (kW / 2) : kThreads * 8), n > 0 ? src : g, n);
          src += step;
        }
      } else {
        constexpr int kRowChunks = kW / 16, kColStep = kThreads / kRowChunks, kColWidth = kW / 2;
        const int r = tid / kRowChunks, chunk = tid % kRowChunks;
        // Pattern column 0's place; column col is col · kRows rows of kW bytes on.
        const int at = r * kColWidth + (chunk ^ ((r * kW >> 7) & (kRowChunks - 1))) * 8;
        const uint16_t* src = g + (int64_t)r * sn + chunk * 8;
        const int64_t step = (int64_t)kColStep * sn;
#pragma unroll
        for (int i = 0; i < kRows / kColStep; i++) {
          const bool row_in = r + i * kColStep < rows;
#pragma unroll
          for (int col = 0; col < kD / kColWidth; col++) {
            const int n = row_in ? max(0, min(8, d - col * kColWidth - chunk * 8)) * 2 : 0;
            cp_async_16(s + at + (col * kRows + i * kColStep) * kColWidth, n > 0 ? src + col * kColWidth : g, n);
          }
          src += step;
        }
      }
      return;
    }
  }
#pragma unroll
  for (int i = 0; i < (kChunks + kThreads - 1) / kThreads; i++) {
    const int idx = tid + i * kThreads;
    if (kChunks % kThreads == 0 || idx < kChunks) {
      const auto [r, c, at] = wgmma_chunk_place<kRows, kD, kW>(idx);
      const int n = r < rows ? max(0, min(8, d - c)) : 0;
      if (vec) {
        cp_async_16(s + at, n > 0 ? g + (int64_t)r * sn + c : g, n * 2);
      } else {
        uint32_t e[8];
#pragma unroll
        for (int x = 0; x < 8; x++) e[x] = x < n ? g[(int64_t)r * sn + c + x] : 0u;
        *reinterpret_cast<uint4*>(s + at) =
            make_uint4(e[0] | e[1] << 16, e[2] | e[3] << 16, e[4] | e[5] << 16, e[6] | e[7] << 16);
      }
    }
  }
}

// kBK keys per tile (64; 32 where wide heads leave no registers for more S; 128 in the
// tiers that take fewer, wider tiles, kWgmmaTiers' bk 128). P V
// takes O in kDvParts column parts where kDv is past a wgmma's widest N (256).
//
// kPingpong (two warpgroups): each warpgroup has its own Q rows and its own stages of
// K and V, copied by its own threads and ordered by a barrier over its 128 threads
// (named barrier 1 + wg), so the two run as the one-warpgroup blocks do, apart; and
// their products are issued in turns (FlashAttention-3's ping-pong): a warpgroup
// issues a tile's products only after the other issued its own (named barriers 3 and
// 4 over both), so while one computes a softmax the tensor cores run the other's
// products, where otherwise both tend to reach their softmax together and leave the
// tensor cores idle. Twice the shared memory and L2 reads of K and V of a block
// whose warpgroups share the tiles; at 8 heads of 128 the one-warpgroup blocks, which
// read as much, ran within 2% of those (an H200, 2026-11-28).
//
// kLse (one key range): threads t == 0 also write each row's log-sum-exp (store_lse), for
// the forwards whose gradient the flash kernel takes; a separate instantiation, as the
// fixed-width kernel's, since the epilogue's code shifts ptxas's register layout
// (kWgmmaTiers' lse).
template <class T, int kDqk, int kDv, int kBK, int kWG, bool kPingpong, bool kLse>
__device__ __forceinline__ void wgmma_body(const Params& p) {
  static_assert(!kPingpong || kWG == 2, "ping-pong takes turns between two warpgroups");
  constexpr int kDvParts = kDv > 256 ? 2 : 1;
  constexpr int kDvPart = kDv / kDvParts;
  static_assert(kDvPart % 8 == 0 && kDvPart <= 256, "P V's N per part: a multiple of 8, at most 256");
  constexpr int kThreads = 128 * kWG;
  constexpr int kBQ = 64 * kWG;
  constexpr int kNS = kBK / 8;   // n8 blocks of S
  constexpr int kNO = kDv / 8;   // n8 blocks of O
  constexpr int kStage = kBK * (kDqk + kDv);
  // Threads that copy each tile, and the rows of the Q tile they copy (and that Q's
  // descriptors step through): the block's, or one warpgroup's apart.
  constexpr int kCopiers = kPingpong ? 128 : kThreads;
  constexpr int kQRows = kPingpong ? 64 : kBQ;
  // A warpgroup's shared memory apart (kPingpong): its Q rows, then its stages.
  constexpr int kRegion = 64 * kDqk + kWgmmaStages * kStage;
  // Swizzle pattern widths (0: core matrices) and descriptor strides (wgmma.cuh):
  // K-major Q and K, MN-major V.
  constexpr int kWQk = wgmma_swizzle_width<kDqk, kDvParts == 1>(), kWV = wgmma_swizzle_width<kDv, kDvParts == 1>();
  constexpr uint32_t kQkLbo = kWQk ? 16 : 128, kQkSbo = kWQk ? 8 * kWQk : kDqk / 8 * 128;
  constexpr uint32_t kVLbo = kWV ? kBK * kWV : kDv / 8 * 128, kVSbo = kWV ? 8 * kWV : 128;
  constexpr uint32_t kQkLayout = wgmma_layout(kWQk), kVLayout = wgmma_layout(kWV);
  // The patterns repeat every 8·W bytes of the shared window (at most 1024): the tiles
  // start at the first 1024-byte boundary of dynamic shared memory (the host allocates
  // the 1 KB this may take: wgmma_smem_bytes), and every tile's size is a multiple of it.
  static_assert(64 * kDqk * 2 % 1024 == 0 && kBK * kDqk * 2 % 1024 == 0 && kBK * kDv * 2 % 1024 == 0,
                "tiles of whole 1024-byte units");
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* Qs = reinterpret_cast<uint16_t*>(smem_raw + ((1024 - (smem_window(smem_raw) & 1023)) & 1023));

  const BlockPlace bp = block_place(p, kBQ);
  const int64_t b = bp.b, h = bp.h, bh = bp.bh, i0 = bp.i0, j0 = bp.j0, j1 = bp.j1;
  const int split = bp.split;

  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  if constexpr (kPingpong) Qs += wg * kRegion;
  uint16_t* const stage_base = Qs + kQRows * kDqk;
  const int copier = kPingpong ? (int)threadIdx.x & 127 : (int)threadIdx.x;
  // The barrier over the threads that copy a tile and read it.
  auto tiles_sync = [&] {
    if constexpr (kPingpong) named_barrier_sync(1 + wg, 128);
    else __syncthreads();
  };
  const int dqk = (int)p.dqk, dv = (int)p.dv;

  const TileBases base = tile_bases(p, bp);
  const uint16_t *qg = base.q, *kg = base.k, *vg = base.v;
  const int64_t ntiles = (j1 - j0 + kBK - 1) / kBK;
  // Key tile it lives in stage it % kWgmmaStages: K, then V.
  auto stage_k = [&](int64_t it) { return stage_base + (int)(it % kWgmmaStages) * kStage; };
  // The walking copies where K's, V's and Q's tiles all take one (the 272 class's
  // unswizzled 34 chunks a row take neither): K's walking alone, with V's in the
  // general form, moved ptxas's layout into spills (qk 32 / v 160 with turns: 255
  // registers and 4 bytes, against 254 and none).
  constexpr int kWalkK = wgmma_copy_walk<kBK, kDqk, kCopiers, kWQk>(), kWalkV = wgmma_copy_walk<kBK, kDv, kCopiers, kWV>(),
                kWalkQ = wgmma_copy_walk<kQRows, kDqk, kCopiers, kWQk>();
  constexpr bool kWalk = kWalkK != kWalkNone && kWalkV != kWalkNone && kWalkQ != kWalkNone;
  auto load_kv = [&](int64_t it) {
    const int kn = (int)min64(kBK, j1 - j0 - it * kBK);
    uint16_t* Ks = stage_k(it);
    load_tile_wgmma<kBK, kDqk, kCopiers, kWQk, kWalk ? kWalkK : kWalkNone>(Ks, kg + it * kBK * p.k_sn, p.k_sn, kn, dqk, copier);
    load_tile_wgmma<kBK, kDv, kCopiers, kWV, kWalk ? kWalkV : kWalkNone>(Ks + kBK * kDqk, vg + it * kBK * p.v_sn, p.v_sn, kn,
                                                                       dv, copier);
  };
  if constexpr (kPingpong) {
    // This warpgroup's 64 rows (none past nq: every chunk zero-filled from the
    // block's own rows).
    const int rows = (int)min64(64, p.nq - i0 - wg * 64);
    load_tile_wgmma<64, kDqk, 128, kWQk, kWalk ? kWalkQ : kWalkNone>(Qs, rows > 0 ? qg + wg * 64 * p.q_sn : qg, p.q_sn,
                                                                     rows, dqk, copier, p.q_vec);
  } else {
    load_tile_wgmma<kBQ, kDqk, kThreads, kWQk, kWalk ? kWalkQ : kWalkNone>(Qs, qg, p.q_sn, (int)min64(kBQ, p.nq - i0), dqk,
                                                                           copier, p.q_vec);
  }
  if (ntiles > 0) load_kv(0);
  cp_async_commit();
  if (ntiles > 1) load_kv(1);
  cp_async_commit();

  // This thread's rows: g and g + 8 of its warp's 16 in its warpgroup's 64.
  const int64_t row_base = i0 + wg * 64 + warp * 16 + g;
  // This warpgroup's 64 rows of Q: a block of rows in each pattern column, or of core
  // matrices (all of its own tile with kPingpong).
  const uint16_t* const Qw = kPingpong ? Qs : Qs + wg * 64 * (kWQk ? kWQk / 2 : kDqk);
  // Where step kc's 16 k start in a K-major tile of `rows` rows (elements): in the
  // swizzled layout, column kc·32 / W, at byte kc·32 % W of its first row.
  auto k_step = [](int kc, int rows) {
    return kWQk ? (kc * 32 / kWQk) * rows * (kWQk / 2) + kc * 32 % kWQk / 2 : kc * 128;
  };

  float o[kNO * 4];
#pragma unroll
  for (int i = 0; i < kNO * 4; i++) o[i] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // l: this thread's share of its rows
  // S as mma.sync's C fragments per n8 block, and as the flat accumulator list of the
  // wgmma (the same registers: d[4n + e] is s[n][e]).
  float s[kNS][4];
  float (&sf)[kNS * 4] = reinterpret_cast<float(&)[kNS * 4]>(s);

  // S = Q Kᵀ for key tile it, issued and committed (not waited for).
  auto issue_qk = [&](int64_t it) {
    const uint16_t* Ks = stage_k(it);
#pragma unroll
    for (int i = 0; i < kNS * 4; i++) wgmma_fence_operand(sf[i]);  // P's reads of S stay before the fence
    wgmma_fence();
#pragma unroll
    for (int kc = 0; kc < kDqk / 16; kc++)
      wgmma_ss<kBK, T>(sf, wgmma_desc(Qw + k_step(kc, kQRows), kQkLbo, kQkSbo, kQkLayout),
                       wgmma_desc(Ks + k_step(kc, kBK), kQkLbo, kQkSbo, kQkLayout), kc > 0);
    wgmma_commit();
  };
  // The online softmax of key tile it on S (waited for): S becomes P in fp32, m and l
  // move on, and corr[r] is what row r's O must be scaled by before P V is added.
  auto softmax_tile = [&](int64_t it, float (&corr)[2]) {
#pragma unroll
    for (int i = 0; i < kNS * 4; i++) wgmma_fence_operand(sf[i]);
    const int64_t jt = j0 + it * kBK;
    scale_mask_tile<kNS>(s, p, b, row_base, 0, jt, (int)min64(kBK, j1 - jt), t);
#pragma unroll
    for (int r = 0; r < 2; r++) corr[r] = online_softmax_row<kNS>(s, r, m[r], l[r]);
  };

  // P's A fragments from S (P in fp32), 16 keys each; past a ragged tile's kn keys P is
  // 0 and V's rows are zero-filled.
  uint32_t pa[kBK / 16][4];
  auto pack_p = [&] {
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++) {
      pa[kk][0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      pa[kk][1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      pa[kk][2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pa[kk][3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
  };
  // P V for key tile it from those fragments, issued and committed.
  auto issue_pv = [&](int64_t it) {
    const uint16_t* Vs = stage_k(it) + kBK * kDqk;
#pragma unroll
    for (int i = 0; i < kNO * 4; i++) wgmma_fence_operand(o[i]);
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++)
#pragma unroll
      for (int i = 0; i < 4; i++) wgmma_fence_operand(pa[kk][i]);
    wgmma_fence();  // O was rescaled and P written by ordinary instructions, all before it
#pragma unroll
    for (int kk = 0; kk < kBK / 16; kk++)
#pragma unroll
      for (int part = 0; part < kDvParts; part++)
        wgmma_rs<kDvPart, T>(reinterpret_cast<float(&)[kDvPart / 2]>(o[part * kDvPart / 2]), pa[kk],
                             wgmma_desc(Vs + kk * 16 * (kWV ? kWV / 2 : kDv) + part * kDvPart * 8, kVLbo, kVSbo,
                                        kVLayout),
                             1);
    wgmma_commit();
  };

  // kPingpong's turns: every issue of products waits for the other warpgroup's issue
  // before it (named barrier 3 + wg, which the other arrives at) and lets the other
  // have its next (3 + the other's). Both have ntiles + 1 such issues (S of tile 0,
  // then S and P V in the loop, then the last P V): warpgroup 1 arrives once ahead, so
  // that warpgroup 0 goes first, and not after its last, so that every arrival is
  // waited for before the block ends. (Counting the turns down, rather than telling the
  // last by its place, is what left ptxas room at qk 32 / v 160: 254 registers and no
  // spills, against 255 and 4 bytes.)
  int turns_left = ntiles > 0 ? (int)ntiles + 1 : 0;
  auto turn_begin = [&] {
    if constexpr (kPingpong) named_barrier_sync(3 + wg, 256);
  };
  auto turn_end = [&] {
    if constexpr (kPingpong)
      if (--turns_left > 0 || wg == 0) named_barrier_arrive(3 + (wg ^ 1), 256);
  };
  if constexpr (kPingpong)
    if (wg == 1 && turns_left > 0) named_barrier_arrive(3, 256);

  if (ntiles > 0) {
    cp_async_wait<1>();  // Q and tile 0 (tile 1 may still be in flight)
    fence_proxy_async();
    tiles_sync();
    turn_begin();
    issue_qk(0);
    turn_end();
    wgmma_wait<0>();
    float corr[2];
    softmax_tile(0, corr);  // O is still 0: nothing to rescale
  }

  // Tile it's P V overlaps the softmax of tile it + 1 (FlashAttention-3's overlap
  // within a warpgroup): S for it + 1 is issued before P V for it, so it is waited for
  // first (groups complete in order) while P V may still run; O is rescaled once P V
  // has landed. S holds P in fp32 until then, since P's 16-bit fragments stay in use
  // by the product in flight. Every iteration issues both products (the last tile's
  // P V follows the loop): ptxas credits wgmma_wait<1> with S only where no path
  // reaches it with a different count of groups in flight, and otherwise serialises
  // the products (its warning C7514). Three stages: tile it + 2 is copied into the
  // stage of tile it - 1, whose products every warpgroup waited for before this
  // iteration's barrier.
  for (int64_t it = 0; it + 1 < ntiles; it++) {
    pack_p();  // before S for tile it + 1 is issued into the same registers
    cp_async_wait<0>();  // tile it + 1
    fence_proxy_async();
    tiles_sync();
    if (it + 2 < ntiles) load_kv(it + 2);
    cp_async_commit();
    turn_begin();
    issue_qk(it + 1);
    issue_pv(it);
    turn_end();
    float corr[2];
    wgmma_wait<1>();  // S of tile it + 1
    softmax_tile(it + 1, corr);
    wgmma_wait<0>();  // P V of tile it
#pragma unroll
    for (int i = 0; i < kNO * 4; i++) wgmma_fence_operand(o[i]);
#pragma unroll
    for (int n = 0; n < kNO; n++) {
      o[4 * n] *= corr[0];
      o[4 * n + 1] *= corr[0];
      o[4 * n + 2] *= corr[1];
      o[4 * n + 3] *= corr[1];
    }
  }
  if (ntiles > 0) {
    pack_p();
    turn_begin();
    issue_pv(ntiles - 1);
    turn_end();
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < kNO * 4; i++) wgmma_fence_operand(o[i]);
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  const int64_t row[1][2] = {{row_base, row_base + 8}};
  const float m2[1][2] = {{m[0], m[1]}}, l2[1][2] = {{l[0], l[1]}};
  const float(&o1)[1][kNO][4] = reinterpret_cast<const float(&)[1][kNO][4]>(o);
  if (p.splits == 1 && p.o_store == kOStoreVec16) {
    // As the fixed-width kernel: each warp's 16 rows through shared memory from its
    // start (Q's and the stages' bytes; with kPingpong its warpgroup's own), then in
    // 16-byte stores along each row, where pairs from the C fragments half-fill eight
    // rows' sectors at a time. Every warpgroup's products have landed (wgmma_wait
    // above), so their reads of that memory are done; the barrier orders them before
    // any warp's staging writes.
    constexpr int kLdo = staged_row_pitch(kNO);
    static_assert(kBQ * kLdo <= kBQ * kDqk + kWgmmaStages * kStage, "the staged O rows fit in the tiles' shared memory");
    static_assert(!kPingpong || 64 * kLdo <= kRegion, "a warpgroup's staged O rows fit in its own shared memory");
    if constexpr (kLse) store_lse<1>(p, bh, row, m2, l2, t);
    cp_async_wait<0>();  // nothing in flight (no key tiles: Q's copy was never waited for)
    tiles_sync();
    store_rows_vec16<T, 1, kNO>(p, b, h, row_base - g, o1, l2, Qs + ((kPingpong ? 0 : wg * 4) + warp) * 16 * kLdo,
                                lane);
    return;
  }
  store_rows<T, 1, kNO, kLse>(p, b, h, bh, split, row, o1, m2, l2, t);
}

template <class T, int kDqk, int kDv, int kBK, int kWG, int kMinBlocks, bool kPingpong, bool kLse = false>
__global__ void __launch_bounds__(128 * kWG, kMinBlocks) attention_wgmma_kernel(Params p) {
#if defined(__CUDA_ARCH__) && !defined(PERCEIVER_HAS_WGMMA)
  // Not an sm_90a compilation: the host launches this only on compute capability 9.0
  // and only where the build compiled this file for sm_90a (wgmma_built()).
  __trap();
#else
  wgmma_body<T, kDqk, kDv, kBK, kWG, kPingpong, kLse>(p);
#endif
}
