// The fused attention's gradient on CUDA (see attention_backward.cu), and the row
// statistics it reuses from the forward.
#pragma once
#include <cuda_runtime.h>

#include "../backend.h"
#include "allocator.h"
#include "gemm.h"

namespace perceiver::cuda {

// Enqueues dq, dk, dv of AttentionBackwardArgs on `stream`, with scratch from `alloc`
// (bounded: the [Nq, Nk] matrices exist one key chunk at a time). g.a.lse, when set,
// is the forward's; otherwise it is recomputed.
void attention_backward(GemmContext& gemm, DeviceAllocator& alloc, const AttentionBackwardArgs& g,
                        cudaStream_t stream);

// Enqueues lse[(b * H + h) * Nq + i] = log sum_j exp(S_ij) over the unmasked keys of
// each row (+inf where none is), S = scale q kᵀ, for a forward call that asked for it.
void attention_row_lse(GemmContext& gemm, DeviceAllocator& alloc, const AttentionArgs& a, float* lse,
                       cudaStream_t stream);

}  // namespace perceiver::cuda
