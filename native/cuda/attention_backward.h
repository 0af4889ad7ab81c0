// The attention gradient in one fused kernel on tensor cores (attention_backward.cu),
// FlashAttention-2's backward: for 16-bit heads of the latent self-attention's widths,
// in place of attention_gemm.cu's products. On by default since an H200 timed it
// (2026-11-28, docs/DEVICE.md); PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD=0 turns it off,
// =1 or =8 fix the blocks at 4 or 8 warps (backend.cu chooses by width otherwise).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "../backend.h"

namespace perceiver::cuda {

// warps: 4 or 8 per block (tiles of 64 or 128 keys). The backend chooses by width
// unless PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD fixes it (=1: 4, =8: 8); the harness
// times both.
//
// Whether flash_attention_backward takes 16-bit heads of these widths on a device of
// compute capability cc with smem_optin bytes of shared memory per block: bfloat16 or
// float16 on sm_80+, widths that are multiples of 8 within one of its tiers
// (kFlashBackwardTiers). flash_backward_serves: and this call, which also needs no
// dropout, keys, Q, K, V and the gradient of out in 16-byte aligned rows, and one
// (batch, head) pair's dQ slots within kFlashSlotBytes. Whether the switch is on is the
// caller's.
bool flash_backward_widths(DType dtype, int64_t dqk, int64_t dv, int cc, int smem_optin, int warps = 4);
bool flash_backward_serves(const AttentionBackwardArgs& g, int cc, int smem_optin, int warps = 4);

// dQ's float32 slots (one per tile of keys) hold at most this many bytes at once; more
// (batch, head) pairs take several launches. Checks pass less to force that.
constexpr size_t kFlashSlotBytes = size_t(256) << 20;

// Scratch flash_attention_backward needs: D = rowsum(dO ∘ O) per row and dQ's slots.
size_t flash_backward_workspace_bytes(const AttentionArgs& a, int warps = 4, size_t slot_bytes = kFlashSlotBytes);

// Enqueues g.gq, g.gk, g.gv for a call flash_backward_serves takes (with the same
// warps). lse: each row's log-sum-exp (the forward's, or attention_row_lse's). Returns
// the first launch error. atomic_dq: dQ's pieces added with float32 atomicAdd into one
// accumulator instead of one slot per tile of keys, so dQ's low bits vary from run to
// run; the library never asks for it (its gradients are the same bits every run), the
// harness times what that determinism costs.
cudaError_t flash_attention_backward(const AttentionBackwardArgs& g, const float* lse, void* workspace,
                                     cudaStream_t stream, int warps = 4, size_t slot_bytes = kFlashSlotBytes,
                                     bool atomic_dq = false);

// Each row's log-sum-exp of a forward call (lse[(b * H + h) * Nq + i], +inf where every
// key is masked), as attention_gemm.cu's attention_row_lse computes it, in one kernel on
// tensor cores without its float32 [Nq, Nk] scores: what the flash gradient reads,
// where the forward's kernels keep no row statistics. Takes 16-bit Q and K in 16-byte
// aligned rows with Dqk up to 128 on sm_80+ (flash_row_lse_serves).
bool flash_row_lse_serves(const AttentionArgs& a, int cc);
cudaError_t flash_row_lse(const AttentionArgs& a, float* lse, cudaStream_t stream);

}  // namespace perceiver::cuda
