// GEMM and batched GEMM through cuBLASLt (see gemm.cu).
#pragma once
#include <cuda_runtime.h>

#include "../backend.h"
#include "allocator.h"
#include "cublaslt.h"

namespace perceiver {
namespace cuda {

struct GemmContext {
  int device;  // part of the algorithm cache's key
  const lt::Api* api;
  lt::Handle handle;
  void* workspace;
  size_t workspace_bytes;
  // PERCEIVER_CUDA_TF32: 0 float32 GEMMs on the CUDA cores; 1 on TF32 tensor cores
  // (about 1e-3 relative); 3 as three TF32 products (gemm_split.cuh: float32's accuracy
  // within a few units in the last place at K up to 2048, 2.4e-5 relative at 4096 where
// the tensor cores' accumulation truncates; off by default).
  int tf32;
  DeviceAllocator* alloc;  // the 3xTF32 path's split copies (none: that path is off)
  int sm_count = 0;        // split-K's plan (0: products are never split)
};

void matmul(GemmContext& ctx, const MatmulArgs& a, cudaStream_t s);

// PERCEIVER_CUDA_GEMM_TUNE: unset or 1 (the default) times cuBLASLt's candidate
// algorithms on the first call of each shape and keeps the fastest for the process
// (products under 2^31 flops keep the first untimed); "verbose" also prints each choice
// and its timings to stderr. 0: the heuristic's first, always, so the same algorithm,
// and bits, in every process. "search" (a candidate; "search-verbose" also prints)
// times, beside the heuristic's list, the configurations cuBLASLt accepts for the shape
// among every algorithm, tile, stage count and cluster shape it has (gemm.cu:
// search_configs). set_gemm_tune_mode overrides the environment (the harness times each:
// 0 off, 1 on, 2 verbose, 3 search, 4 search-verbose).
int gemm_tune_mode();
void set_gemm_tune_mode(int mode);

// ctx.tf32 unless set_tf32_mode has overridden it (the harness times each mode in one
// process; -1 returns to ctx's).
int tf32_mode(const GemmContext& ctx);
void set_tf32_mode(int mode);

// Reads PERCEIVER_CUDA_TF32: unset, empty or "0" 0; "3" 3; anything else 1 (as before =3).
int tf32_mode_from_env();

// PERCEIVER_CUDA_GEMM_ALIGN=1 (a candidate, off by default): 16-bit products of at least
// 2^30 flops whose operands cuBLASLt could not read in 16-byte units go through
// row-padded copies (gemm_split.cuh). set_gemm_align_mode overrides the environment
// (the harness times both; -1 returns to it).
int gemm_align_mode();
void set_gemm_align_mode(int mode);

// PERCEIVER_CUDA_GEMM_SPLITK: unset or 1 (the default) splits products with fewer output
// tiles than the device has SMs over a long k into slices of k (gemm_split.cuh); 0 never.
// set_gemm_splitk_mode overrides the environment (the harness times both; -1 returns to it).
int gemm_splitk_mode();
void set_gemm_splitk_mode(int mode);

}  // namespace cuda
}  // namespace perceiver
