// The fused attention of the CUDA backend (see AttentionArgs in backend.h): one
// launch computes softmax(scale * q k^T, masked) v for every batch and head without
// materialising the [Nq, Nk] scores. Very long key ranges are split across thread
// blocks (partial results in `workspace`, then a reduction), so a single image with
// 50,176 keys still fills the GPU.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "../backend.h"

namespace perceiver::cuda {

// Bytes of scratch attention_forward needs for these arguments on a device with
// `sm_count` multiprocessors (0 when it needs none).
size_t attention_workspace_bytes(const AttentionArgs& a, int sm_count);

// Enqueues the attention on `stream`. q, k, v, out and mask are device pointers;
// a.dtype is Float32, BFloat16 or Float16 (float32 accumulation). Rows whose mask
// is all zero give 0, as on the CPU. Returns the launch status (cudaSuccess or the
// error of the first failing launch); never synchronises.
// lse_written: set to whether the kernel also wrote a.lse (each row's log-sum-exp; the
// fixed-width kernel does at the flash gradient's widths and one key range, and the
// warpgroup kernel's ping-pong tiers at those widths), where the caller must otherwise
// compute it. The workspace (attention_workspace_bytes of it) must
// be 16-byte aligned, as the allocator's are: its padded copies are read in 16-byte
// units and its partial rows written in 8-byte pairs (cudaErrorInvalidValue otherwise).
cudaError_t attention_forward(const AttentionArgs& a, void* workspace, size_t workspace_bytes,
                              int sm_count, cudaStream_t stream, bool* lse_written = nullptr);

// Whether attention_forward cannot take 16-bit heads of these widths in one pass of its
// tensor-core kernel though the device (compute capability cc, smem_optin bytes of
// shared memory per block) has tensor cores for the dtype: Dv past the kernel's widest
// tier (it then takes Dv in chunks, each recomputing the scores) or its tiles past the
// shared memory (the SIMT kernel). False for float32 and where the dtype has no tensor
// cores.
bool attention_beyond_one_tc_pass(DType dtype, int64_t dqk, int64_t dv, int cc, int smem_optin);

// Whether kAuto runs float32 heads of these widths on tensor cores in 3xTF32
// (attention_tf32.cuh): sm_80+ and a width class it has, unless
// PERCEIVER_CUDA_ATTENTION_TF32X3=0; attention_tf32_serves: and this call's Q, K and V
// rows are 16-byte aligned.
bool attention_tf32_widths(int64_t dqk, int64_t dv, int cc);
bool attention_tf32_serves(const AttentionArgs& a, int cc);

namespace detail {
// The kernel the last attention_forward on this thread launched ("fixed 272x272 tcf",
// "tc tier 3", "simt", ...): for the harnesses and the attention tuning's log.
const char* attention_last_kernel();
}  // namespace detail

}  // namespace perceiver::cuda
