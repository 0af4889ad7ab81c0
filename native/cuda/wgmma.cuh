// Hopper's warpgroup tensor-core products (wgmma.mma_async, sm_90a only) for the
// attention kernel of attention_wgmma.cuh. A warpgroup (4 consecutive warps, 128
// threads) computes a 64 x N x 16 product in one instruction: B, and A where it is not
// in registers, are read from shared memory through 64-bit descriptors, asynchronously
// (issued, committed as a group, waited for), where mma.sync takes every operand from
// registers loaded by ldmatrix, one 16 x 8 tile per instruction.
//
// Layouts (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate"), with
// g = lane / 4, t = lane % 4 and w the warp's index in its warpgroup:
// - D (64 x N, fp32): warp w holds rows 16w + g and 16w + g + 8; for each n8 column
//   block i, d[4i], d[4i + 1] are row 16w + g, columns 8i + 2t, 8i + 2t + 1, and
//   d[4i + 2], d[4i + 3] the same columns of row 16w + g + 8: per warp, mma.sync's C
//   fragment of every n8 tile in turn (attention_mma.cuh).
// - A from registers (64 x 16, 16-bit): warp w's rows 16w .. 16w + 15 as mma.sync's
//   m16n8k16 A fragment. So, as with mma.sync, the D fragments of two neighbouring n8
//   blocks of S, converted to 16 bits, are P's A fragment for those 16 keys.
// - Shared-memory operands: the unit of the layout without swizzling is the 8 x 16-byte
//   "core matrix" (8 rows of 8 elements, 128 contiguous bytes). K-major (A = Q, B = K:
//   a row's elements along the product's K): element (row r, k) at byte (r % 8)·16 +
//   (r / 8)·SBO + (k % 8)·2 + (k / 8)·LBO. MN-major (B = V, keys along K, transposed by
//   the instruction's imm-trans-b): element (n, k) at (n % 8)·2 + (n / 8)·SBO + (k % 8)·16
//   + (k / 8)·LBO.
// - The swizzled layouts (W = 128, 64 or 32 bytes) keep rows of W bytes, 8 of them per
//   pattern of 8·W bytes: K-major, (r, k) at (r % 8)·W + (r / 8)·SBO + k·2 with the
//   instruction's 16 k (32 bytes) inside one row (LBO unused); MN-major, (n, k) at
//   (n % (W / 2))·2 + (n / (W / 2))·LBO + (k % 8)·W + (k / 8)·SBO. Then, on the shared
//   address A of that position, the 16-byte chunk bits 4.. of A are XORed with bits 7..
//   of A (3 bits at W = 128, 2 at 64, 1 at 32): CUTLASS's Swizzle<3|2|1, 4, 3>, the same
//   function as TMA's swizzle modes. Patterns must start at multiples of 8·W (base
//   offset 0); a K-major operand's start may lie inside the pattern's first row, which
//   is how a product steps along K within it.
// - Descriptor (64 bits): start address >> 4 in bits 0-13, LBO >> 4 in 16-29, SBO >> 4
//   in 32-45, base offset 0 (49-51), layout in 62-63: 0 no swizzling, 1 128-byte, 2
//   64-byte, 3 32-byte swizzling.
//
// Ordering: shared memory written by the threads (cp.async) must be made visible to
// the tensor cores' asynchronous proxy (fence.proxy.async) before a barrier that
// precedes the wgmma; registers written by ordinary instructions (accumulators being
// rescaled, A fragments) need wgmma.fence before the wgmma that reads them; results
// may be read only after wgmma.wait_group covers their group. ptxas checks the
// register side and, where it cannot prove it, serialises the wgmmas with a warning
// (-Xptxas -v prints it).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace perceiver::cuda::attn {
// The descriptor's layout code for rows swizzled in w-byte patterns (128, 64, 32), or
// for no swizzling (w = 0).
__host__ __device__ constexpr uint32_t wgmma_layout(int w) { return w == 128 ? 1 : w == 64 ? 2 : w == 32 ? 3 : 0; }

// A descriptor's bits (above) from a shared-window byte address, LBO and SBO (bytes) and
// the layout code; the emulation builds its descriptors with the same packing.
__host__ __device__ __forceinline__ uint64_t wgmma_desc_bits(uint32_t addr, uint32_t lbo, uint32_t sbo,
                                                             uint32_t layout = 0) {
  return (uint64_t)((addr >> 4) & 0x3FFF) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
         (uint64_t)((sbo >> 4) & 0x3FFF) << 32 | (uint64_t)(layout & 3) << 62;
}
}  // namespace perceiver::cuda::attn

#ifdef PERCEIVER_CUDA_EMULATION
#include "emu/wgmma_emu.h"
#else
namespace perceiver::cuda::attn {

// Whether this compilation has wgmma (nvcc's arch-specific sm_90a target); elsewhere
// the wrappers are empty and the kernel that uses them traps (the host launches it
// only on compute capability 9.0, and only where the build compiled attention.cu for
// sm_90a: wgmma_built() in attention.cu).
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PERCEIVER_HAS_WGMMA 1
#endif

// A shared-memory operand: `p` in dynamic shared memory, LBO and SBO in bytes.
__device__ __forceinline__ uint64_t wgmma_desc(const void* p, uint32_t lbo, uint32_t sbo, uint32_t layout = 0) {
  return wgmma_desc_bits(static_cast<uint32_t>(__cvta_generic_to_shared(p)), lbo, sbo, layout);
}

// p's address in the block's shared window, where the swizzle patterns are aligned.
__device__ __forceinline__ uint32_t smem_window(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void wgmma_fence() {
#ifdef PERCEIVER_HAS_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#ifdef PERCEIVER_HAS_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

// Waits until at most n of this warpgroup's committed groups are in flight.
template <int n>
__device__ __forceinline__ void wgmma_wait() {
#ifdef PERCEIVER_HAS_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(n) : "memory");
#endif
}

// This thread's shared-memory writes (its landed cp.async copies included) made
// visible to the asynchronous proxy that wgmma reads through.
__device__ __forceinline__ void fence_proxy_async() {
#ifdef PERCEIVER_HAS_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Named barrier `id` (1-15; 0 is __syncthreads') over n threads, a multiple of 32, whole
// warps: sync waits until n have arrived (its own warp among them) and orders the
// shared-memory accesses before it as __syncthreads does among those threads; arrive
// counts its warp and goes on. With ids in registers ptxas reserves all 16 barriers
// ("used 16 barriers"); the warpgroup kernel's ping-pong tiers, which use them, run one
// block per SM whatever it reserves. Immediate ids, chosen per warpgroup by a branch or
// a guard predicate, left its qk 32 / v 160 tier at 255 registers with 48 bytes of
// spills (ptxas, CUDA 13.0, 2026-11-28), where these leave it at 254 and none. The
// hardware has named barriers on every architecture; they are here for the warpgroup
// kernel's two warpgroups, which synchronise apart.
__device__ __forceinline__ void named_barrier_sync(int id, int n) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int n) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

// Keeps the compiler from moving ordinary reads or writes of r across the wgmma
// statements around it: an accumulator's value is defined only once wgmma_wait has
// covered the product that writes it, and registers written or read by ordinary
// instructions must be so before the wgmma_fence ahead of the product that uses
// them, which the asm operands alone do not say.
__device__ __forceinline__ void wgmma_fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }
// The same for an A fragment's register: written by ordinary instructions before
// wgmma_fence, never moved past it.
__device__ __forceinline__ void wgmma_fence_operand(uint32_t& r) { asm volatile("" : "+r"(r)::"memory"); }

// d (64 x N, this thread's N / 2) = A B + (scale_d ? d : 0), A and B from shared memory,
// both K-major.
template <int N, class T>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, int scale_d);

// The same with A from registers (mma.sync's A fragment per warp) and B MN-major.
template <int N, class T>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b, int scale_d);

#ifdef PERCEIVER_HAS_WGMMA
#include "wgmma_mma.inc"
#else
template <int N, class T>
__device__ __forceinline__ void wgmma_ss(float (&)[N / 2], uint64_t, uint64_t, int) {}
template <int N, class T>
__device__ __forceinline__ void wgmma_rs(float (&)[N / 2], const uint32_t (&)[4], uint64_t, int) {}
#endif

}  // namespace perceiver::cuda::attn
#endif  // PERCEIVER_CUDA_EMULATION
