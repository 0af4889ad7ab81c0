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

// PERCEIVER_CUDA_GEMM_TUNE (a candidate, off by default): 1 times cuBLASLt's candidate
// algorithms on the first call of each shape and keeps the fastest for the process;
// "verbose" also prints each choice and its timings to stderr. 0: the heuristic's
// first, always. set_gemm_tune_mode overrides the environment (the harness times both).
int gemm_tune_mode();
void set_gemm_tune_mode(int mode);

}  // namespace cuda
}  // namespace perceiver
