// Attention composed of cuBLASLt products on CUDA, one chunk of keys at a time (see
// attention_gemm.cu): the forward where the fused kernels of attention.cu are slow
// (float32) or lack a feature (dropout), each row's log-sum-exp, and the gradient.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "../backend.h"
#include "allocator.h"
#include "gemm.h"

namespace perceiver::cuda {

// Scratch for the [Nq, Nk] matrices of one chunk of keys, all of them together.
constexpr size_t kAttentionChunkBytes = size_t(128) << 20;

// Enqueues a.out = softmax(scale q kᵀ, masked) v (with a's dropout, if any), and
// a.lse when set, on `stream`. Rows whose mask is all zero give 0, as the fused
// kernels do. `chunk_bytes` bounds the scratch (kAttentionChunkBytes; check
// harnesses pass less to force several chunks).
void attention_forward_gemm(GemmContext& gemm, DeviceAllocator& alloc, const AttentionArgs& a, cudaStream_t stream,
                            size_t chunk_bytes = kAttentionChunkBytes);

// Enqueues dq, dk, dv of AttentionBackwardArgs (with the forward's dropout, if any).
// g.a.lse, when set, is the forward's; otherwise it is recomputed.
void attention_backward(GemmContext& gemm, DeviceAllocator& alloc, const AttentionBackwardArgs& g,
                        cudaStream_t stream, size_t chunk_bytes = kAttentionChunkBytes);

// Enqueues d[(b * H + h) * Nq + i] = rowsum(dO ∘ O) of the gradient's rows, in float32:
// the D of both gradients (here and attention_backward.cu).
void attention_row_dots(const AttentionBackwardArgs& g, float* d, cudaStream_t stream);

// Enqueues lse[(b * H + h) * Nq + i] = log sum_j exp(S_ij) over the unmasked keys of
// each row (+inf where none is), S = scale q kᵀ, for a forward call that asked for it.
void attention_row_lse(GemmContext& gemm, DeviceAllocator& alloc, const AttentionArgs& a, float* lse,
                       cudaStream_t stream, size_t chunk_bytes = kAttentionChunkBytes);

}  // namespace perceiver::cuda
