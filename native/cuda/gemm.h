// GEMM and batched GEMM through cuBLASLt (see gemm.cu).
#pragma once
#include <cuda_runtime.h>

#include "../backend.h"
#include "cublaslt.h"

namespace perceiver {
namespace cuda {

struct GemmContext {
  int device;  // part of the algorithm cache's key
  const lt::Api* api;
  lt::Handle handle;
  void* workspace;
  size_t workspace_bytes;
  bool tf32;  // PERCEIVER_CUDA_TF32=1: float32 GEMMs on TF32 tensor cores
};

void matmul(GemmContext& ctx, const MatmulArgs& a, cudaStream_t s);

}  // namespace cuda
}  // namespace perceiver
