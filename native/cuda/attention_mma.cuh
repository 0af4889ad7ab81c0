// Tensor-core building blocks of the fused attention (attention.cu): ldmatrix and
// mma.sync m16n8k16 through inline PTX. Inline PTX rather than nvcuda::wmma because
// the attention keeps S = Q Kᵀ in registers and feeds it straight back as the A
// operand of P V, which needs the documented per-thread fragment layout of mma.sync
// (WMMA's is opaque, so S would round-trip through shared memory).
//
// Fragment layout of m16n8k16 (PTX ISA, "Matrix fragments for mma.m16n8k16"), with
// g = lane / 4 and t = lane % 4:
//   A (16x16, row-major), four b32 registers of two 16-bit values each:
//     a0 = A[g][2t..2t+1]   a1 = A[g+8][2t..2t+1]   a2 = A[g][2t+8..]   a3 = A[g+8][2t+8..]
//   B (16x8, "col"), two registers:  b0 = B[2t..2t+1][g]   b1 = B[2t+8..2t+9][g]
//   C/D (16x8, fp32):  c0,c1 = C[g][2t..2t+1]   c2,c3 = C[g+8][2t..2t+1]
// so the C fragments of two neighbouring n8 tiles of S are, converted to 16 bits,
// exactly the A fragment of P for the k16 step over those 16 keys.
//
// sm_75 has ldmatrix and fp16 mma only at k8 (m16n8k8, A = {a0, a1}, B = {b0}); a
// k16 step there is two k8 steps. bf16 mma needs sm_80: the bf16 kernels are never
// launched below it (attention.cu routes bf16 on sm_75 to the SIMT kernel).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#ifdef PERCEIVER_CUDA_EMULATION
// The same functions on the CPU, for native/cuda/emu's checks without a GPU.
#include "emu/attention_mma_emu.h"
#else
namespace perceiver::cuda::attn {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 16-bit matrices; lanes 8i..8i+7 give the row addresses of matrix i, and
// register i receives, per lane, elements [lane/4][2(lane%4) .. +1] of matrix i.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#else
  r[0] = r[1] = r[2] = r[3] = 0;
  (void)p;
#endif
}

// As ldmatrix_x4, each matrix transposed: register i receives elements
// [2(lane%4) .. +1][lane/4] of matrix i.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
#else
  r[0] = r[1] = r[2] = r[3] = 0;
  (void)p;
#endif
}

// d += A B for one m16n8k16 tile, fp32 accumulation.
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1);

template <>
__device__ __forceinline__ void mma_16816<__half>(float (&d)[4], const uint32_t (&a)[4],
                                                  uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(b0));
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[2]), "r"(a[3]), "r"(b1));
#else
  (void)d; (void)a; (void)b0; (void)b1;
#endif
}

template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                         uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  (void)d; (void)a; (void)b0; (void)b1;
#endif
}

// x rounded to TF32 (10 mantissa bits, to nearest, ties away from zero), as the 32-bit
// pattern mma's tf32 operands take: the low 13 bits are zero.
__device__ __forceinline__ uint32_t to_tf32(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
#else
  (void)x;
  return 0;
#endif
}

// d += A B for one m16n8k8 tile of TF32 operands (sm_80+), fp32 accumulation. With
// g = lane / 4, t = lane % 4 (PTX ISA, "Matrix fragments for mma.m16n8k8", .tf32):
//   A (16x8): a0 = A[g][t]  a1 = A[g+8][t]  a2 = A[g][t+4]  a3 = A[g+8][t+4]
//   B (8x8):  b0 = B[t][g]  b1 = B[t+4][g]
//   C/D as m16n8k16's: c0,c1 = C[g][2t..2t+1]  c2,c3 = C[g+8][2t..2t+1]
__device__ __forceinline__ void mma_1688_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  (void)d; (void)a; (void)b0; (void)b1;
#endif
}

// A 32-bit load from shared memory (the emulation watches it for races).
__device__ __forceinline__ float lds_f32(const float* p) { return *p; }
// A 32-bit store to and a 16-byte load from shared memory (watched as well).
__device__ __forceinline__ void sts_u32(void* p, uint32_t v) { *static_cast<uint32_t*>(p) = v; }
__device__ __forceinline__ uint4 lds_u128(const void* p) { return *static_cast<const uint4*>(p); }
// A store of sizeof(V) bytes to global memory, which must be aligned to them (a GPU
// faults otherwise; the emulation stops).
template <class V>
__device__ __forceinline__ void stg(void* p, V v) { *static_cast<V*>(p) = v; }

// Asynchronous 16-byte global -> shared copy (sm_80+): copies src_bytes (0..16) and
// zero-fills the rest of the 16 bytes, so the ragged end of a row and rows past the
// key range need no separate stores. Both addresses must be 16-byte aligned; with
// src_bytes == 0 nothing is read.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)),
               "l"(gmem), "r"(src_bytes)
               : "memory");
#else
  (void)smem; (void)gmem; (void)src_bytes;
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// Waits until at most n of this thread's committed groups are still in flight.
template <int n>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory");
#endif
}

// 2^x with results below 2^-126 flushed to zero: one MUFU.EX2, where exp2f (without
// --use_fast_math) also scales subnormal results around it. Softmax weights that small
// are under any 16-bit P's resolution next to the row's largest, which is 1.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two fp32 values as one register of two 16-bit values (the first in the low half,
// which is the lower column index in every fragment above).
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);

template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

}  // namespace perceiver::cuda::attn
#endif  // PERCEIVER_CUDA_EMULATION

// Copies, tiles and the online softmax shared by attention.cu's kernels and the flash
// gradient (attention_backward.cu), on the GPU and on the emulation alike.
namespace perceiver::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;

// A row's log-sum-exp (natural base) from its running max m and sum l, both in the
// kernels' log2 domain (scores times scale·log2 e); +inf where every key was masked,
// NaN where a score was (l is then NaN, and so is the row's output, as in torch).
// The fixed-width forward writes it and the flash gradient's own pass computes it: the
// gradient reads either, so both take it from here.
__device__ __forceinline__ float row_lse(float m, float l) {
  return l == 0.f ? INFINITY : (m + log2f(l)) * 0.6931471805599453f;
}

// The online-softmax step for one of the two rows of a 16-row tile's S in mma.sync's C
// fragments (kNS n8 tiles; r = 0: row g, 1: row g + 8), already scaled into the log2
// domain, masked keys at -inf; the row's 4 threads (same g) combine their maxima by
// shuffles: m moves to the new maximum, S
// becomes P = exp2(S - m) in place and l takes its sum (this thread's share). Returns
// the factor the row's O must be scaled by: exp2(m_old - m_new), 0 while m was -inf.
// The maximum and the sum run as kAcc interleaved chains, not one through the row's
// 2·kNS values: each step of a single chain waits out the last one's latency, and such
// fixed-latency waits were the largest stall of the 32 x 160 kernel at the language
// model's latents (ncu on an H200, twenty-sixth session: 1.17 of its 4.38 cycles per
// issued instruction). Timed there after: no change in the kernels' times, fewer
// registers.
template <int kNS>
__device__ __forceinline__ float online_softmax_row(float (&s)[kNS][4], int r, float& m, float& l) {
  constexpr int kAcc = kNS < 4 ? kNS : 4;
  float mxs[kAcc];
#pragma unroll
  for (int a = 0; a < kAcc; a++) mxs[a] = -INFINITY;
#pragma unroll
  for (int n = 0; n < kNS; n++) mxs[n % kAcc] = fmaxf(mxs[n % kAcc], fmaxf(s[n][2 * r], s[n][2 * r + 1]));
  float mx = mxs[0];
#pragma unroll
  for (int a = 1; a < kAcc; a++) mx = fmaxf(mx, mxs[a]);
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_new = fmaxf(m, mx);
  const float m_use = m_new == -INFINITY ? 0.f : m_new;  // nothing unmasked yet: P = 0
  const float corr = exp2_ftz(m - m_use);
  m = m_new;
  float sums[kAcc];
#pragma unroll
  for (int a = 0; a < kAcc; a++) sums[a] = 0.f;
#pragma unroll
  for (int n = 0; n < kNS; n++) {
    s[n][2 * r] = exp2_ftz(s[n][2 * r] - m_use);
    s[n][2 * r + 1] = exp2_ftz(s[n][2 * r + 1] - m_use);
    sums[n % kAcc] += s[n][2 * r] + s[n][2 * r + 1];
  }
  float sum = sums[0];
#pragma unroll
  for (int a = 1; a < kAcc; a++) sum += sums[a];
  l = l * corr + sum;
  return corr;
}


// One 16-byte chunk of a shared tile (row stride ld) from global rows at stride sn of
// real width d: row r, columns [c, c + 8), zero past `rows` rows or d columns. The
// 16-byte path of attention.cu's load_tile16 and the fixed-width copies below.
__device__ __forceinline__ void load_chunk16(uint16_t* __restrict__ s, int ld, const uint16_t* __restrict__ g,
                                             int64_t sn, int rows, int d, int r, int c) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800) || defined(PERCEIVER_CUDA_EMULATION)  // the emulation is an sm_90
  const int bytes = r < rows ? max(0, min(8, d - c)) * 2 : 0;
  cp_async_16(s + r * ld + c, bytes > 0 ? g + (int64_t)r * sn + c : g, bytes);
#else
  uint4 val = make_uint4(0, 0, 0, 0);
  if (r < rows) {
    const uint16_t* src = g + (int64_t)r * sn + c;
    if (c + 8 <= d) {
      val = *reinterpret_cast<const uint4*>(src);
    } else {  // the row's last, partial chunk
      uint32_t e[8];
#pragma unroll
      for (int x = 0; x < 8; x++) e[x] = c + x < d ? src[x] : 0u;
      val = make_uint4(e[0] | e[1] << 16, e[2] | e[3] << 16, e[4] | e[5] << 16,
                       e[6] | e[7] << 16);
    }
  }
  *reinterpret_cast<uint4*>(s + r * ld + c) = val;
#endif
}

// Copies this thread's 16-byte chunks of a kRows x kD tile (global rows at stride sn,
// real width d, `rows` of them) into shared memory at row stride kLd; chunks past the
// real rows or columns are zero-filled (load_chunk16).
// Rows of 32 chunks and more (heads over 256 wide) go a row per warp and a chunk per
// lane: each thread's tile offsets are then its warp's first row and its lane's chunk
// plus constants, where chunk indices dealt out across the tile would leave a row and
// column per chunk (9 pairs per thread at 272 x 32) held across the key loop, in
// registers that the 272-wide O accumulators need.
template <int kRows, int kD, int kLd, int kThreads>
__device__ __forceinline__ void load_tile_fixed(uint16_t* __restrict__ s, const uint16_t* __restrict__ g,
                                                int64_t sn, int rows, int d) {
  if constexpr (kD / 8 >= 32 && kRows % (kThreads / 32) == 0) {
    constexpr int kWarps = kThreads / 32, kRowChunks = kD / 8;
    const int w = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < kRows / kWarps; i++)
#pragma unroll
      for (int x = 0; x < (kRowChunks + 31) / 32; x++)
        if (32 * x + 32 <= kRowChunks || lane + 32 * x < kRowChunks)
          load_chunk16(s, kLd, g, sn, rows, d, w + i * kWarps, (lane + 32 * x) * 8);
  } else {
    // A thread per column chunk of kR rows at a time: rows row0, row0 + kR, ... of chunk
    // c (threads past kR whole rows idle), so that a copy's source moves by one stride
    // per pass. Chunks dealt out in order across the tile cost a division and a 64-bit
    // row product each: about 20 instructions per 16-byte copy, a third of the 32 x 160
    // kernel's key loop (its SASS on sm_90a, twenty-sixth session). Timed on an H200:
    // no change in the kernels' times (docs/DEVICE.md), fewer registers.
    constexpr int kRowChunks = kD / 8;
    static_assert(kRowChunks <= kThreads, "a row's chunks take one pass");
    constexpr int kR = kThreads / kRowChunks;  // rows per pass
    constexpr int kPasses = (kRows + kR - 1) / kR;
    const int t = (int)threadIdx.x;
    if (kR * kRowChunks == kThreads || t < kR * kRowChunks) {
      const int row0 = t / kRowChunks, c = (t % kRowChunks) * 8;
      const int cbytes = max(0, min(8, d - c)) * 2;
      const int64_t step = (int64_t)kR * sn;
      const uint16_t* src = g + (int64_t)row0 * sn + c;
      uint16_t* dst = s + row0 * kLd + c;
#pragma unroll
      for (int k = 0; k < kPasses; k++) {
        const int r = row0 + k * kR;
        if (kRows % kR == 0 || k + 1 < kPasses || r < kRows) {
          const int bytes = r < rows ? cbytes : 0;
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800) || defined(PERCEIVER_CUDA_EMULATION)
          cp_async_16(dst + k * kR * kLd, bytes > 0 ? src : g, bytes);
#else
          load_chunk16(s, kLd, g, sn, rows, d, r, c);
#endif
        }
        src += step;
      }
    }
  }
}

}  // namespace perceiver::cuda::attn
