// cuBLASLt, loaded with dlopen so one binary serves machines with CUDA 12 or 13
// (and runs, CPU only, where cuBLAS is absent). The cuBLAS headers are not needed
// to build: the few types and enum values used are declared here, with the values
// of cublasLt.h / cublas_api.h (stable since CUDA 11).
#pragma once
#include <cuda_runtime.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace perceiver {
namespace cuda {
namespace lt {

using Status = int;  // cublasStatus_t; 0 is success
constexpr Status kStatusNotSupported = 15;  // CUBLAS_STATUS_NOT_SUPPORTED
using Handle = void*;
using MatmulDesc = void*;
using MatrixLayout = void*;
using Preference = void*;
struct Algo { uint64_t data[8]; };
struct HeuristicResult {
  Algo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

enum : int { OP_N = 0, OP_T = 1 };
enum : int { COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77 };
enum : int {  // cublasLtMatmulDescAttributes_t
  DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8,
};
enum : int {  // cublasLtMatrixLayoutAttribute_t
  LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6,
};
enum : int {  // cublasLtMatmulPreferenceAttributes_t
  PREF_MAX_WORKSPACE_BYTES = 1, PREF_MIN_ALIGNMENT_A_BYTES = 5, PREF_MIN_ALIGNMENT_B_BYTES = 6,
  PREF_MIN_ALIGNMENT_C_BYTES = 7, PREF_MIN_ALIGNMENT_D_BYTES = 8,
};
enum : int {  // cublasLtMatmulAlgoCapAttributes_t
  CAP_CTA_SWIZZLING_SUPPORT = 2, CAP_TILE_IDS = 6, CAP_CUSTOM_OPTION_MAX = 7, CAP_STAGES_IDS = 13,
  CAP_MIN_ALIGNMENT_A_BYTES = 16, CAP_MIN_ALIGNMENT_B_BYTES = 17, CAP_MIN_ALIGNMENT_C_BYTES = 18,
  CAP_MIN_ALIGNMENT_D_BYTES = 19,
};
enum : int {  // cublasLtMatmulAlgoConfigAttributes_t (ID is read-only)
  CONFIG_ID = 0, CONFIG_TILE_ID = 1, CONFIG_SPLITK_NUM = 2, CONFIG_CTA_SWIZZLING = 4, CONFIG_CUSTOM_OPTION = 5,
  CONFIG_STAGES_ID = 6, CONFIG_CLUSTER_SHAPE_ID = 8,
};
enum : uint16_t {  // cublasLtClusterShape_t, the few the search tries
  CLUSTER_AUTO = 0, CLUSTER_1x1x1 = 2, CLUSTER_2x1x1 = 3, CLUSTER_1x2x1 = 5, CLUSTER_2x2x1 = 6,
};
enum : uint32_t {  // cublasLtEpilogue_t
  EPILOGUE_DEFAULT = 1, EPILOGUE_RELU = 2, EPILOGUE_BIAS = 4, EPILOGUE_RELU_BIAS = 6,
  EPILOGUE_GELU = 32, EPILOGUE_GELU_BIAS = 36,
};

struct Api {
  Status (*create)(Handle*);
  Status (*destroy)(Handle);
  size_t (*get_version)();
  Status (*desc_create)(MatmulDesc*, int compute_type, cudaDataType_t scale_type);
  Status (*desc_destroy)(MatmulDesc);
  Status (*desc_set)(MatmulDesc, int attr, const void* buf, size_t size);
  Status (*layout_create)(MatrixLayout*, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layout_destroy)(MatrixLayout);
  Status (*layout_set)(MatrixLayout, int attr, const void* buf, size_t size);
  Status (*pref_create)(Preference*);
  Status (*pref_destroy)(Preference);
  Status (*pref_set)(Preference, int attr, const void* buf, size_t size);
  Status (*heuristic)(Handle, MatmulDesc, MatrixLayout, MatrixLayout, MatrixLayout, MatrixLayout,
                      Preference, int requested, HeuristicResult* results, int* returned);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout,
                   const void* b, MatrixLayout, const void* beta, const void* c, MatrixLayout,
                   void* d, MatrixLayout, const Algo* algo, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream);
  // The algorithm search's entries (PERCEIVER_CUDA_GEMM_TUNE=search, gemm.cu): in
  // cuBLASLt since CUDA 10.1, but bound apart from the rest, so that a library without
  // them still loads (the search then offers nothing beyond the heuristic's list).
  Status (*algo_get_ids)(Handle, int compute_type, cudaDataType_t scale_type, cudaDataType_t a_type,
                         cudaDataType_t b_type, cudaDataType_t c_type, cudaDataType_t d_type, int requested,
                         int* ids, int* returned) = nullptr;
  Status (*algo_init)(Handle, int compute_type, cudaDataType_t scale_type, cudaDataType_t a_type,
                      cudaDataType_t b_type, cudaDataType_t c_type, cudaDataType_t d_type, int id, Algo* algo) = nullptr;
  Status (*algo_check)(Handle, MatmulDesc, MatrixLayout, MatrixLayout, MatrixLayout, MatrixLayout, const Algo*,
                       HeuristicResult* result) = nullptr;
  Status (*algo_cap_get)(const Algo*, int attr, void* buf, size_t size, size_t* written) = nullptr;
  Status (*algo_config_set)(Algo*, int attr, const void* buf, size_t size) = nullptr;
  Status (*algo_config_get)(const Algo*, int attr, void* buf, size_t size, size_t* written) = nullptr;
  bool can_search() const {
    return algo_get_ids && algo_init && algo_check && algo_cap_get && algo_config_set && algo_config_get;
  }
  std::string path;  // the file that was loaded
};

// Loads cuBLASLt once: $PERCEIVER_CUBLAS_PATH (a file, or a folder holding
// libcublasLt.so.*) where it is set, and nothing else; else the CUDA 13 and 12
// sonames on the loader's search path.
// Returns null and sets `reason` (with every dlerror) when none loads.
const Api* load(std::string* reason);

}  // namespace lt
}  // namespace cuda
}  // namespace perceiver
