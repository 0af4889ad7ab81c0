// Helpers shared by the CUDA kernels: error checks that name the op, element
// types (float, half, bfloat16 all load to float and compute in float), the
// dtype dispatch, launch geometry and strided index math.
//
// Launch geometry: elementwise kernels use grid-stride loops over int64 indices
// with a grid capped at a few waves, so no tensor size can exceed grid limits and
// no index overflows 32 bits.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "../backend.h"
#include "../error.h"
#include "launch.cuh"

namespace perceiver {
namespace cuda {

[[noreturn]] inline void throw_cuda(const char* op, const char* what, cudaError_t e) {
  cudaGetLastError();  // reported here: the next op's launch check must not see it again
  throw Error(e == cudaErrorMemoryAllocation ? ErrorKind::Memory : ErrorKind::Runtime,
              std::string(op) + ": " + what + " failed: " + cudaGetErrorName(e) + " (" +
                  cudaGetErrorString(e) + ")");
}

#define CUDA_CHECK(op, call)                                        \
  do {                                                              \
    cudaError_t err_ = (call);                                      \
    if (err_ != cudaSuccess) ::perceiver::cuda::throw_cuda(op, #call, err_); \
  } while (0)

// Times what a callable enqueues on a stream between two events, and waits for it:
// the tuners' measurement (gemm.cu's algorithms, attention_tune.cu's two forwards).
// The events are made on first use; the callable's exceptions pass through.
class EventTimer {
 public:
  EventTimer() = default;
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  ~EventTimer() {
    for (cudaEvent_t e : e_)
      if (e) cudaEventDestroy(e);
  }
  // Milliseconds from before f's work to after it on s (op names the caller in errors).
  template <class F>
  float time(const char* op, cudaStream_t s, F&& f) {
    for (cudaEvent_t& e : e_)
      if (!e) CUDA_CHECK(op, cudaEventCreate(&e));
    CUDA_CHECK(op, cudaEventRecord(e_[0], s));
    f();
    CUDA_CHECK(op, cudaEventRecord(e_[1], s));
    CUDA_CHECK(op, cudaEventSynchronize(e_[1]));
    float ms = 0.f;
    CUDA_CHECK(op, cudaEventElapsedTime(&ms, e_[0], e_[1]));
    return ms;
  }

 private:
  cudaEvent_t e_[2] = {nullptr, nullptr};
};

// After a kernel launch: a bad configuration fails here; a fault while running
// surfaces at the next synchronisation (a read), or here with PERCEIVER_CUDA_SYNC=1.
void check_launch(const char* op, cudaStream_t stream);

// ---- element types ----
template <class T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Runs `body` with T bound to the storage type of a floating dtype.
#define DISPATCH_FLOAT(op, dtype, T, ...)                                           \
  switch (dtype) {                                                                  \
    case ::perceiver::DType::Float32: { using T = float; __VA_ARGS__; break; }      \
    case ::perceiver::DType::Float16: { using T = __half; __VA_ARGS__; break; }     \
    case ::perceiver::DType::BFloat16: { using T = __nv_bfloat16; __VA_ARGS__; break; } \
    default:                                                                        \
      ::perceiver::throw_type(std::string(op) + ": the cuda kernel takes float32, float16 or bfloat16, got " + \
                              ::perceiver::dtype_name(dtype));                      \
  }

// ---- 16-byte packs (vectorised kernels) ----
// kPack<T> elements of T in one aligned 16-byte unit: 8 of a 16-bit type, 4 floats.
template <class T>
constexpr int kPack = 16 / (int)sizeof(T);
template <class T>
struct alignas(16) Pack16 {
  T v[kPack<T>];
};
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
// Rows of a [B, N, H, D] view (strides s0, s1, s2) load in 16-byte units: base pointer
// and strides multiples of 16 bytes, elems16 elements (8 of 16-bit data, 4 of float32).
inline bool vec16_ok(const void* ptr, int64_t s0, int64_t s1, int64_t s2, int elems16 = 8) {
  return aligned16(ptr) && s0 % elems16 == 0 && s1 % elems16 == 0 && s2 % elems16 == 0;
}
inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
// `cols` elements of es bytes rounded up to whole 16-byte units.
inline int64_t round_up16(int64_t cols, size_t es) { return round_up(cols, 16 / (int64_t)es); }
inline bool is_float(DType t) { return t == DType::Float32 || t == DType::BFloat16 || t == DType::Float16; }

// A run-time switch: the environment variable is exactly "1". Callers read it once
// per process (a static), as lib/autograd caches what the backend reports.
inline bool env_flag(const char* name) {
  const char* e = std::getenv(name);
  return e && e[0] == '1' && e[1] == 0;
}

// A switch that is on by default: off only where the variable is exactly "0" (the way
// back to the kernels it replaced, for comparisons and bisection).
inline bool env_off(const char* name) {
  const char* e = std::getenv(name);
  return e && e[0] == '0' && e[1] == 0;
}

// A three-way switch: -1 unset or empty, 0 for "0", 1 for anything else (kAuto's
// routing in attention.cu: default, never, always).
inline int env_mode(const char* name) {
  const char* e = std::getenv(name);
  return !e || !*e ? -1 : std::strcmp(e, "0") == 0 ? 0 : 1;
}

// The 16-byte kernels of dense binary ops, register-resident layer norm and the
// embedding gather (elementwise.cu, reduce.cu, embedding.cu);
// PERCEIVER_CUDA_VECTOR_KERNELS=0 takes the element kernels instead. On an H200 (2026-11-27, cuda_gemm_check) at the language model's
// [8192, 1280] bf16: layer norm 0.012 against 0.041 ms, add 0.014 against 0.069 ms.
inline bool vector_kernels() {
  static const bool on = !env_off("PERCEIVER_CUDA_VECTOR_KERNELS");
  return on;
}

// The sixteenth session's row kernels, on by default but not yet timed on a GPU: the
// GEMM's activation pass, dense unary ops and GELU's gradient on 16-byte packs, the
// column sums of bias gradients, layer norm's gradient, and a row per warp for layer
// norm over rows that are not whole packs and for softmax and its gradient.
// PERCEIVER_CUDA_ROW_KERNELS=0 takes the kernels before them (the way back, and what a
// device check times them against); PERCEIVER_CUDA_VECTOR_KERNELS=0 turns them off too.
inline bool row_kernels() {
  static const bool on = vector_kernels() && !env_off("PERCEIVER_CUDA_ROW_KERNELS");
  return on;
}

// ---- launch geometry ----
constexpr int kThreads = 256;
// Enough blocks for a few waves on any current GPU; grid-stride loops do the rest.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > 8192) blocks = 8192;
  return (unsigned)blocks;
}
// For the row-per-warp kernels (`warps` rows per block): rows beyond the grid loop
// inside the kernel.
inline unsigned warp_rows_grid(int64_t rows, int warps) {
  return (unsigned)std::min<int64_t>((rows + warps - 1) / warps, 65535);
}

// Rows owned by groups of kWarps warps (a warp per row, or kWarps = the block's warps:
// the block): f(r, t, step) for each row r of this thread's group, t its index in the
// group and step the group's size. Rows past the grid loop; with a whole block per
// row the loop is the same for every thread of the block, so f may synchronise it.
template <int kWarps = 1, class F>
__device__ __forceinline__ void each_row(int64_t rows, F&& f) {
  constexpr int step = 32 * kWarps;
  const int64_t per_block = blockDim.x / step;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / step; r < rows; r += (int64_t)gridDim.x * per_block)
    f(r, (int)(threadIdx.x % step), step);
}

// Calls f(std::integral_constant<int, K>{}) for the first K of K0, kRest... that is at
// least n, the last where none is: the instantiation of a kernel templated on its
// values (or packs) per lane that holds n of them.
template <int K0, int... kRest, class F>
void with_count_at_least(int n, F&& f) {
  if constexpr (sizeof...(kRest) == 0) {
    f(std::integral_constant<int, K0>{});
  } else {
    if (n <= K0) f(std::integral_constant<int, K0>{});
    else with_count_at_least<kRest...>(n, f);
  }
}

// For one-block-per-row kernels: rows beyond this loop inside the kernel.
inline unsigned rows_grid(int64_t rows) {
  return (unsigned)(rows < 1 ? 1 : rows > 65535 ? 65535 : rows);
}

// ---- strided operands ----
// Up to N operands sharing one shape, with size-1 dims dropped and dims that are
// contiguous in every operand merged (as the CPU's StridedIter does), so dense
// tensors index as one flat run.
template <int N>
struct Strided {
  int ndim;
  int64_t shape[8];
  int64_t strides[N][8];
  bool flat;  // every operand is dense with unit stride: offset == index

  __device__ __forceinline__ void offsets(int64_t i, int64_t* off) const {
    if (flat) {
      for (int k = 0; k < N; k++) off[k] = i;
      return;
    }
    for (int k = 0; k < N; k++) off[k] = 0;
    for (int d = ndim - 1; d >= 0; d--) {
      int64_t c = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < N; k++) off[k] += c * strides[k][d];
    }
  }
};

template <int N>
Strided<N> make_strided(const View* const* views) {
  Strided<N> s;
  const View& ref = *views[0];
  int nd = 0;
  for (int d = 0; d < ref.ndim; d++) {
    if (ref.shape[d] == 1) continue;
    s.shape[nd] = ref.shape[d];
    for (int k = 0; k < N; k++) s.strides[k][nd] = views[k]->strides[d];
    nd++;
  }
  int out = 0;
  for (int d = 0; d < nd; d++) {
    if (out > 0) {
      bool merge = true;
      for (int k = 0; k < N; k++)
        if (s.strides[k][out - 1] != s.strides[k][d] * s.shape[d]) merge = false;
      if (merge) {
        s.shape[out - 1] *= s.shape[d];
        for (int k = 0; k < N; k++) s.strides[k][out - 1] = s.strides[k][d];
        continue;
      }
    }
    s.shape[out] = s.shape[d];
    for (int k = 0; k < N; k++) s.strides[k][out] = s.strides[k][d];
    out++;
  }
  if (out == 0) {
    out = 1;
    s.shape[0] = 1;
    for (int k = 0; k < N; k++) s.strides[k][0] = 0;
  }
  s.ndim = out;
  s.flat = out == 1;
  for (int k = 0; k < N; k++)
    if (s.strides[k][0] != 1) s.flat = false;
  return s;
}

// ---- block reductions (blockDim.x a multiple of 32, at most 1024) ----
// float, or double where the sum and mean ops accumulate as the CPU does (so a large
// total does not swallow small terms: 2^24 + 1 + 1 ...).
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// The mean and 1 / sqrt(variance + eps) of a row of n values that a warp holds in
// registers, kCount per lane, with `sum` the lane's own sum of its values: two passes,
// the mean and then the centred variance, as the CPU computes them (exact for rows
// with a large common offset). Values past the row (lane + 32 i >= n, unless every one
// is the row's) count in neither.
template <int kCount, bool kAllValid>
__device__ __forceinline__ float2 warp_row_stats(const float (&v)[kCount], float sum, int n, int lane, float eps) {
  const float mean = warp_sum(sum) / (float)n;
  float q = 0.f;
#pragma unroll
  for (int i = 0; i < kCount; i++)
    if (kAllValid || lane + 32 * i < n) {
      const float d = v[i] - mean;
      q += d * d;
    }
  return make_float2(mean, rsqrtf(warp_sum(q) / (float)n + eps));
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Every thread gets the block's total. `scratch` holds 32 values; the leading
// barrier lets callers reuse it for consecutive reductions.
template <class A>
__device__ __forceinline__ A block_sum(A v, A* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : A(0);
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace cuda
}  // namespace perceiver
