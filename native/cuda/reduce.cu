// Reductions over one axis of a contiguous [outer, n, inner] tensor, softmax and
// layer norm over the last axis. When the reduced axis is the last (inner == 1)
// one block owns a row and threads stride along it (coalesced); otherwise one
// thread owns an output and walks the axis, its neighbours reading neighbouring
// columns, which is again coalesced (for long sums, the warps of a block split the
// axis: sum_cols_split_kernel). Sums accumulate in double, as on the CPU (the
// kernels are bound by memory traffic, not arithmetic); softmax and layer
// norm accumulate in float32 per thread, combined as a tree.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

// argmax order: NaN first (the first NaN), else the larger value, ties to the
// lower index, as numpy and the CPU do.
__device__ __forceinline__ bool arg_better(float v, int64_t i, float w, int64_t j) {
  bool vn = v != v, wn = w != w;
  if (vn || wn) return vn && (!wn || i < j);
  if (v != w) return v > w;
  return i < j;
}

// max/min propagate NaN.
__device__ __forceinline__ float pick(ReduceOp op, float m, float v) {
  if (m != m) return m;
  if (v != v) return v;
  return op == ReduceOp::Max ? (v > m ? v : m) : (v < m ? v : m);
}

template <class T>
__global__ void reduce_rows_kernel(const T* x, int64_t rows, int64_t n, ReduceOp op, const T* addend, void* out) {
  __shared__ float sv[32];
  __shared__ double sd[32];
  __shared__ int64_t si[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* p = x + r * n;
    if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
      double s = 0.0;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += to_f(p[j]);
      s = block_sum(s, sd);
      if (threadIdx.x == 0) {
        double v = op == ReduceOp::Mean ? (n ? s / (double)n : NAN) : s;
        if (addend) v += to_f(addend[r]);
        static_cast<T*>(out)[r] = from_f<T>((float)v);
      }
    } else if (op == ReduceOp::Max || op == ReduceOp::Min) {
      float m = op == ReduceOp::Max ? -INFINITY : INFINITY;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = pick(op, m, to_f(p[j]));
      for (int o = 16; o > 0; o >>= 1) m = pick(op, m, __shfl_xor_sync(0xffffffffu, m, o));
      __syncthreads();
      if (lane == 0) sv[warp] = m;
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int w = 1; w < nwarps; w++) m = pick(op, m, sv[w]);
        static_cast<T*>(out)[r] = from_f<T>(m);
      }
    } else {  // ArgMax
      float m = NAN;
      int64_t best = -1;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        float v = to_f(p[j]);
        if (best < 0 || arg_better(v, j, m, best)) { m = v; best = j; }
      }
      for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, m, o);
        int64_t j = __shfl_xor_sync(0xffffffffu, best, o);
        if (j >= 0 && (best < 0 || arg_better(w, j, m, best))) { m = w; best = j; }
      }
      __syncthreads();
      if (lane == 0) { sv[warp] = m; si[warp] = best; }
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int w = 1; w < nwarps; w++)
          if (si[w] >= 0 && (best < 0 || arg_better(sv[w], si[w], m, best))) { m = sv[w]; best = si[w]; }
        static_cast<int32_t*>(out)[r] = (int32_t)(best < 0 ? 0 : best);
      }
    }
  }
}

template <class T>
__global__ void reduce_cols_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, ReduceOp op, const T* addend,
                                   void* out) {
  int64_t total = outer * inner;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total; idx += (int64_t)gridDim.x * blockDim.x) {
    int64_t o = idx / inner, i = idx % inner;
    const T* p = x + o * n * inner + i;
    if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
      double s = 0.0;
      for (int64_t j = 0; j < n; j++) s += to_f(p[j * inner]);
      if (op == ReduceOp::Mean) s = n ? s / (double)n : NAN;
      if (addend) s += to_f(addend[idx]);
      static_cast<T*>(out)[idx] = from_f<T>((float)s);
    } else if (op == ReduceOp::Max || op == ReduceOp::Min) {
      float m = op == ReduceOp::Max ? -INFINITY : INFINITY;
      for (int64_t j = 0; j < n; j++) m = pick(op, m, to_f(p[j * inner]));
      static_cast<T*>(out)[idx] = from_f<T>(m);
    } else {
      int64_t best = 0;
      float m = n ? to_f(p[0]) : 0.f;
      for (int64_t j = 1; j < n && m == m; j++) {
        float v = to_f(p[j * inner]);
        if (v != v || v > m) { m = v; best = j; }
      }
      static_cast<int32_t*>(out)[idx] = (int32_t)best;
    }
  }
}

template <class T>
__global__ void softmax_kernel(const T* x, T* out, int64_t rows, int64_t n, bool log) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* a = x + r * n;
    T* o = out + r * n;
    // The maximum and the sum of exponentials in one pass over the row (the online
    // softmax), where there were two: each thread's sum is relative to its own running
    // maximum, rescaled when that grows, and to the block's at the end. The rows this
    // kernel takes are long (the image encoders' 50,176 keys), so each pass is the
    // row's whole size in memory traffic.
    float m = -INFINITY, s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float v = to_f(a[j]);
      if (v > m) {  // with m = -inf, s is 0 and stays 0 times exp(-inf)
        s = s * expf(m - v) + 1.f;
        m = v;
      } else if (v != -INFINITY) {  // a masked key adds nothing, also while m is -inf
        s += expf(v - m);
      }
    }
    const float bm = block_max(m, scratch);
    s = block_sum(s != 0.f ? s * expf(m - bm) : 0.f, scratch);  // NaN stays NaN
    m = bm;
    if (log) {
      float ls = logf(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) o[j] = from_f<T>(to_f(a[j]) - m - ls);
    } else {
      float inv = 1.f / s;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) o[j] = from_f<T>(expf(to_f(a[j]) - m) * inv);
    }
  }
}

constexpr int kNormWarps = 4;  // warps per block of the row-per-warp kernels

// Rows of up to 32 x kPer elements with a row per warp in registers (unless
// PERCEIVER_CUDA_ROW_KERNELS=0): softmax_kernel then read a row three times through two
// block-wide reductions (twice since its max and sum share a pass), 0.076 ms for the bf16
// training step's float32 [8, 8, 512, 512] scores on an H200 (48 calls, 1.8 TB/s). Each exponential is computed once and kept.
template <class T, int kPer>
__global__ void __launch_bounds__(32 * kNormWarps)
    softmax_warp_kernel(const T* x, T* out, int64_t rows, int n, bool log) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (int64_t)blockIdx.x * kNormWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kNormWarps) {
    const T* a = x + r * n;
    float v[kPer];
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      v[i] = j < n ? to_f(a[j]) : -INFINITY;
      m = fmaxf(m, v[i]);
    }
    m = warp_max(m);
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; i++)
      if (lane + 32 * i < n) {
        v[i] -= m;
        sum += log ? expf(v[i]) : (v[i] = expf(v[i]));
      }
    sum = warp_sum(sum);
    const float ls = log ? logf(sum) : 0.f, inv = 1.f / sum;
    T* o = out + r * n;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      if (j < n) o[j] = from_f<T>(log ? v[i] - ls : v[i] * inv);
    }
  }
}

// Two passes over the row (mean, then the centred variance), as on the CPU: exact
// for rows with a large common offset, where E[x^2] - E[x]^2 would cancel.
template <class T>
__global__ void layer_norm_kernel(const T* x, const T* w, const T* b, T* out, int64_t rows, int64_t n, float eps) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* a = x + r * n;
    T* o = out + r * n;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += to_f(a[j]);
    float mean = block_sum(s, scratch) / (float)n;
    float q = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float d = to_f(a[j]) - mean;
      q += d * d;
    }
    float var = block_sum(q, scratch) / (float)n;
    float rstd = rsqrtf(var + eps);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      float y = (to_f(a[j]) - mean) * rstd;
      if (w) y *= to_f(w[j]);
      if (b) y += to_f(b[j]);
      o[j] = from_f<T>(y);
    }
  }
}

// A row per warp, held in registers (unless PERCEIVER_CUDA_VECTOR_KERNELS=0): rows of
// kVecs 16-byte packs per lane (bf16 rows of 256-2048, the language model's 1280 and
// the image models' 1024; float rows of 128-1024) are read once with 16-byte loads
// instead of three times element by element (43-64 us for [8192, 1280] and
// [16384, 1024] bf16 on an H200, 1-1.5 TB/s). The same two passes, mean then
// centred variance, over the registers.
template <class T, int kVecs>
__global__ void __launch_bounds__(32 * kNormWarps)
    layer_norm_warp_kernel(const T* x, const T* w, const T* b, T* out, int64_t rows, float eps) {
  constexpr int P = kPack<T>;
  constexpr int N = 32 * P * kVecs;
  const int lane = threadIdx.x & 31;
  const Pack16<T>* wp = reinterpret_cast<const Pack16<T>*>(w);
  const Pack16<T>* bp = reinterpret_cast<const Pack16<T>*>(b);
  for (int64_t r = (int64_t)blockIdx.x * kNormWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kNormWarps) {
    const Pack16<T>* xr = reinterpret_cast<const Pack16<T>*>(x + r * N);
    float v[kVecs][P];
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kVecs; i++) {
      const Pack16<T> p = xr[i * 32 + lane];
#pragma unroll
      for (int k = 0; k < P; k++) {
        v[i][k] = to_f(p.v[k]);
        sum += v[i][k];
      }
    }
    const float2 st = warp_row_stats<kVecs * P, true>(reinterpret_cast<const float(&)[kVecs * P]>(v), sum, N, lane, eps);
    const float mean = st.x, rstd = st.y;
    Pack16<T>* orow = reinterpret_cast<Pack16<T>*>(out + r * N);
#pragma unroll
    for (int i = 0; i < kVecs; i++) {
      Pack16<T> pw, pb, o;
      if (wp) pw = wp[i * 32 + lane];
      if (bp) pb = bp[i * 32 + lane];
#pragma unroll
      for (int k = 0; k < P; k++) {
        float y = (v[i][k] - mean) * rstd;
        if (wp) y *= to_f(pw.v[k]);
        if (bp) y += to_f(pb.v[k]);
        o.v[k] = from_f<T>(y);
      }
      orow[i * 32 + lane] = o;
    }
  }
}

// Rows of up to 32 x kPer elements that are not whole packs per lane, or not aligned
// (the image encoders' 261 channels: [32, 50176, 261] bf16 took 2.02 ms on an H200,
// 0.8 TB/s, through three block-wide sums per row), unless
// PERCEIVER_CUDA_ROW_KERNELS=0: a row per warp in registers, element loads that
// are coalesced across the warp, warp shuffles for the sums. The same two passes.
template <class T, int kPer>
__global__ void __launch_bounds__(32 * kNormWarps)
    layer_norm_warp_any_kernel(const T* x, const T* w, const T* b, T* out, int64_t rows, int n, float eps) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (int64_t)blockIdx.x * kNormWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kNormWarps) {
    const T* xr = x + r * n;
    float v[kPer];
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      v[i] = j < n ? to_f(xr[j]) : 0.f;
      sum += v[i];
    }
    const float2 st = warp_row_stats<kPer, false>(v, sum, n, lane, eps);
    const float mean = st.x, rstd = st.y;
    T* o = out + r * n;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      if (j < n) {
        float y = (v[i] - mean) * rstd;
        if (w) y *= to_f(w[j]);
        if (b) y += to_f(b[j]);
        o[j] = from_f<T>(y);
      }
    }
  }
}

// Sums over a long axis with few outputs (a bias gradient: [tokens, C] summed over
// the tokens): one thread per output walking the axis left most of the GPU idle
// (0.11 ms for [4096, 1024] on an H200, a fifth of a bf16 training step). Here a
// block owns 32 neighbouring outputs and its 16 warps split the axis, each warp
// reading 32 neighbouring columns of a row; the double partials combine in a fixed
// order, so results do not depend on scheduling. Also the second pass of the column
// sums below (In = double: their chunks' partial sums, n the chunks, mean_n the rows
// a mean divides by). addend (a sum's, or null) joins each sum before its rounding.
constexpr int kSplitWarps = 16;
template <class In, class T>
__global__ void __launch_bounds__(32 * kSplitWarps)
    sum_cols_split_kernel(const In* x, int64_t outer, int64_t n, int64_t inner, bool mean, int64_t mean_n,
                          const T* addend, T* out) {
  __shared__ double part[kSplitWarps][33];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const int64_t tiles = (inner + 31) / 32;
  for (int64_t t = blockIdx.x; t < outer * tiles; t += gridDim.x) {
    const int64_t o = t / tiles, i = (t % tiles) * 32 + tx;
    double s = 0.0;
    if (i < inner) {
      const In* p = x + o * n * inner + i;
      for (int64_t j = ty; j < n; j += kSplitWarps) {
        if constexpr (std::is_same_v<In, double>) s += p[j * inner];
        else s += to_f(p[j * inner]);
      }
    }
    part[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && i < inner) {
      for (int w = 1; w < kSplitWarps; w++) s += part[w][tx];
      if (mean) s = mean_n ? s / (double)mean_n : NAN;
      if (addend) s += to_f(addend[o * inner + i]);
      out[o * inner + i] = from_f<T>((float)s);
    }
    __syncthreads();
  }
}

// Column sums in 16-byte packs, in two kernels (unless PERCEIVER_CUDA_ROW_KERNELS=0).
// A linear layer's bias gradient is the column sum of its output's gradient, 296 of
// [4096, 1024] per bf16 ImageNet training step: 0.016 ms each on an H200 through
// sum_cols_split_kernel (0.5 TB/s), whose 32 blocks of 64-byte row pieces leave most
// SMs idle. Here a block owns 32 packs of columns (256 bf16 columns, 512 bytes per row
// for a warp) over a chunk of rows; its warps stride the chunk's rows, add in double,
// and combine in a fixed order into the chunk's partial sums in the workspace.
// sum_cols_split_kernel then adds each column's chunks in order: deterministic, like
// the rest.
constexpr int kColWarps = 8;
constexpr int64_t kColChunkRows = 64;   // rows per chunk, at least
constexpr int64_t kColMaxChunks = 1024;  // bounds the workspace: chunks x columns doubles

struct ColumnPlan {
  int64_t units, tiles, rows_per_chunk, chunks;
};
ColumnPlan column_plan(int64_t n, int64_t inner, int64_t pack) {
  ColumnPlan c;
  c.units = inner / pack;
  c.tiles = (c.units + 31) / 32;
  c.rows_per_chunk = std::max(kColChunkRows, (n + kColMaxChunks - 1) / kColMaxChunks);
  c.chunks = (n + c.rows_per_chunk - 1) / c.rows_per_chunk;
  return c;
}

template <class T>
__global__ void __launch_bounds__(32 * kColWarps)
    sum_cols_partial_kernel(const T* x, int64_t outer, int64_t n, ColumnPlan c, double* partial) {
  constexpr int kP = kPack<T>;
  __shared__ double part[kColWarps][kP][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t u = blockIdx.x * 32 + lane;  // this lane's pack of columns
  const int64_t inner = c.units * kP;
  for (int64_t oc = blockIdx.y; oc < outer * c.chunks; oc += gridDim.y) {
    const int64_t o = oc / c.chunks, r0 = oc % c.chunks * c.rows_per_chunk;
    const int64_t r1 = min(n, r0 + c.rows_per_chunk);
    double s[kP];
#pragma unroll
    for (int k = 0; k < kP; k++) s[k] = 0.0;
    if (u < c.units) {
      const Pack16<T>* p = reinterpret_cast<const Pack16<T>*>(x + o * n * inner) + u;
      for (int64_t r = r0 + warp; r < r1; r += kColWarps) {
        const Pack16<T> v = p[r * c.units];
#pragma unroll
        for (int k = 0; k < kP; k++) s[k] += to_f(v.v[k]);
      }
    }
#pragma unroll
    for (int k = 0; k < kP; k++) part[warp][k][lane] = s[k];
    __syncthreads();
    if (warp == 0 && u < c.units) {
      for (int w = 1; w < kColWarps; w++)
#pragma unroll
        for (int k = 0; k < kP; k++) s[k] += part[w][k][lane];
      double* out = partial + oc * inner + u * kP;
#pragma unroll
      for (int k = 0; k < kP; k++) out[k] = s[k];
    }
    __syncthreads();
  }
}

// Whether a sum or mean over the middle axis takes the two kernels above.
bool column_sums_vectorized(ReduceOp op, const View& x, int64_t n, int64_t inner) {
  const int64_t pack = 16 / (int64_t)dtype_size(x.dtype);
  return row_kernels() && (op == ReduceOp::Sum || op == ReduceOp::Mean) && inner > 1 && n >= 2 * kColWarps &&
         inner % pack == 0 && aligned16(x.data());
}

// Rows shorter than a block waste threads; 128 suits the 261-512 channel rows of
// the Perceiver models, 256 and up long rows.
inline int row_threads(int64_t n) { return n <= 1024 ? 128 : n <= 8192 ? 256 : 512; }

}  // namespace

size_t reduce_workspace(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner) {
  if (outer * inner == 0 || !is_float(x.dtype) || !column_sums_vectorized(op, x, n, inner)) return 0;
  return sizeof(double) * (size_t)(outer * column_plan(n, inner, 16 / (int64_t)dtype_size(x.dtype)).chunks * inner);
}

void reduce(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner, const View& out, void* workspace,
            cudaStream_t s, const void* addend_in) {
  if (outer * inner == 0) return;
  DISPATCH_FLOAT("reduce", x.dtype, T, {
    const T* addend = static_cast<const T*>(addend_in);
    if (workspace && column_sums_vectorized(op, x, n, inner)) {
      const ColumnPlan c = column_plan(n, inner, kPack<T>);
      double* partial = static_cast<double*>(workspace);
      PERCEIVER_LAUNCH(dim3((unsigned)c.tiles, rows_grid(outer * c.chunks)), 32 * kColWarps, 0, s,
                       sum_cols_partial_kernel<T>)(x.ptr<T>(), outer, n, c, partial);
      // The chunks' partials added per column, their share split across warps: a thread
      // per column adding its 64 chunks (at [4096, 1024]) in one chain of loads on 4
      // blocks had the bias gradients at 0.0148 ms each, 4.4 of an H200's 53.8 ms bf16
      // training step.
      PERCEIVER_LAUNCH(rows_grid(outer * ((inner + 31) / 32)), 32 * kSplitWarps, 0, s, sum_cols_split_kernel<double, T>)(
          partial, outer, c.chunks, inner, op == ReduceOp::Mean, n, addend, static_cast<T*>(out.data()));
    } else if (inner == 1)
      PERCEIVER_LAUNCH(rows_grid(outer), row_threads(n), 0, s, reduce_rows_kernel<T>)(x.ptr<T>(), outer, n, op, addend,
                                                                                   out.data());
    else if ((op == ReduceOp::Sum || op == ReduceOp::Mean) && n >= 2 * kSplitWarps)
      PERCEIVER_LAUNCH(rows_grid(outer * ((inner + 31) / 32)), 32 * kSplitWarps, 0, s, sum_cols_split_kernel<T, T>)(
          x.ptr<T>(), outer, n, inner, op == ReduceOp::Mean, n, addend, static_cast<T*>(out.data()));
    else
      PERCEIVER_LAUNCH(grid_for(outer * inner), kThreads, 0, s, reduce_cols_kernel<T>)(x.ptr<T>(), outer, n, inner, op,
                                                                                     addend, out.data());
  });
  check_launch("reduce", s);
}

void softmax(const View& x, const View& out, int64_t rows, int64_t n, bool log, cudaStream_t s) {
  if (rows == 0 || n == 0) return;
  const int per = (int)std::min<int64_t>((n + 31) / 32, 33);
  DISPATCH_FLOAT("softmax", x.dtype, T, {
    if (row_kernels() && per <= 32) {
      with_count_at_least<8, 16, 32>(per, [&](auto k) {
        PERCEIVER_LAUNCH(warp_rows_grid(rows, kNormWarps), 32 * kNormWarps, 0, s, softmax_warp_kernel<T, decltype(k)::value>)(
            x.ptr<T>(), out.ptr<T>(), rows, (int)n, log);
      });
    } else {
      PERCEIVER_LAUNCH(rows_grid(rows), row_threads(n), 0, s, softmax_kernel<T>)(x.ptr<T>(), out.ptr<T>(), rows, n, log);
    }
  });
  check_launch(log ? "log_softmax" : "softmax", s);
}

namespace {

// layer_norm_warp_kernel where the rows are a whole number (1-8) of 16-byte packs
// per lane and every pointer is 16-byte aligned; false otherwise.
bool layer_norm_vectorized(const View& x, const void* w, const void* b, const View& out, int64_t rows, int64_t n,
                           float eps, cudaStream_t s) {
  if (!vector_kernels()) return false;
  if (!aligned16(x.data()) || !aligned16(out.data()) || (w && !aligned16(w)) || (b && !aligned16(b))) return false;
  const int64_t per_warp = 32 * (16 / (int64_t)dtype_size(x.dtype));  // elements per pack per lane
  if (n % per_warp != 0 || n / per_warp > 8) return false;  // n > 0 here
  const int vecs = (int)(n / per_warp);
  DISPATCH_FLOAT("layer_norm", x.dtype, T, {
    with_count_at_least<1, 2, 3, 4, 5, 6, 7, 8>(vecs, [&](auto v) {
      PERCEIVER_LAUNCH(warp_rows_grid(rows, kNormWarps), 32 * kNormWarps, 0, s, layer_norm_warp_kernel<T, decltype(v)::value>)(
          x.ptr<T>(), static_cast<const T*>(w), static_cast<const T*>(b), out.ptr<T>(), rows, eps);
    });
  });
  return true;
}

// layer_norm_warp_any_kernel for rows of up to 512 elements; false for longer rows.
bool layer_norm_warp_any(const View& x, const void* w, const void* b, const View& out, int64_t rows, int64_t n,
                         float eps, cudaStream_t s) {
  if (!row_kernels() || n > 32 * 16) return false;
  DISPATCH_FLOAT("layer_norm", x.dtype, T, {
    with_count_at_least<4, 8, 16>((int)((n + 31) / 32), [&](auto k) {
      PERCEIVER_LAUNCH(warp_rows_grid(rows, kNormWarps), 32 * kNormWarps, 0, s, layer_norm_warp_any_kernel<T, decltype(k)::value>)(
          x.ptr<T>(), static_cast<const T*>(w), static_cast<const T*>(b), out.ptr<T>(), rows, (int)n, eps);
    });
  });
  return true;
}

}  // namespace

void layer_norm(const View& x, const void* weight, const void* bias, const View& out, int64_t rows,
                int64_t n, float eps, cudaStream_t s) {
  if (rows == 0 || n == 0) return;
  if (layer_norm_vectorized(x, weight, bias, out, rows, n, eps, s) ||
      layer_norm_warp_any(x, weight, bias, out, rows, n, eps, s)) {
    check_launch("layer_norm", s);
    return;
  }
  DISPATCH_FLOAT("layer_norm", x.dtype, T,
                 PERCEIVER_LAUNCH(rows_grid(rows), row_threads(n), 0, s, layer_norm_kernel<T>)(
                     x.ptr<T>(), static_cast<const T*>(weight), static_cast<const T*>(bias), out.ptr<T>(), rows, n, eps));
  check_launch("layer_norm", s);
}

}  // namespace cuda
}  // namespace perceiver
