// Elementwise kernels: fill, arange, copy/cast, unary, binary and where over
// strided views (broadcasts are zero strides). The op is a runtime switch inside
// one kernel per element type rather than a template per op: the branch is
// uniform across a warp, so it costs nothing measurable, and it keeps the number
// of instantiations (and the build time for five GPU architectures) small.
#include <cmath>
#include <cstring>

#include "common.cuh"
#include "gelu.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

// ---- loads and stores of any dtype, for fill/arange/copy ----
__device__ __forceinline__ float load_any(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::Float32: return static_cast<const float*>(p)[i];
    case DType::Float16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::BFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::Int32: return (float)static_cast<const int32_t*>(p)[i];
    case DType::UInt8: return (float)static_cast<const uint8_t*>(p)[i];
  }
  return 0.f;
}

// Float -> integer saturates (NaN -> 0), as on the CPU.
__device__ __forceinline__ int32_t sat_i32(double v) {
  if (!(v == v)) return 0;
  if (v >= 2147483647.0) return 2147483647;
  if (v <= -2147483648.0) return (-2147483647 - 1);
  return (int32_t)v;
}
__device__ __forceinline__ uint8_t sat_u8(double v) {
  if (!(v == v) || v <= 0) return 0;
  if (v >= 255.0) return 255;
  return (uint8_t)v;
}

// v as a float rounded to odd (toward zero, then the last bit set where inexact), as
// the CPU's store does: a 16-bit type's rounding of that is v's own, where rounding to
// the nearest float first can land on the 16-bit halfway point and round again the
// wrong way (a fill of 1 + 2^-11 + 2^-30 in float16 gave 1, the int32 2^24 + 2^16 + 1
// in bfloat16 gave 2^24).
__device__ __forceinline__ float to_float_odd(double v) {
  float f = (float)v;
  if (!isfinite(f) || (double)f == v) return f;
  if (fabs((double)f) > fabs(v)) f = nextafterf(f, 0.f);
  uint32_t b;
  memcpy(&b, &f, 4);
  b |= 1u;
  memcpy(&f, &b, 4);
  return f;
}

__device__ __forceinline__ void store_any(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::Float32: static_cast<float*>(p)[i] = (float)v; break;
    case DType::Float16: static_cast<__half*>(p)[i] = __float2half_rn(to_float_odd(v)); break;
    case DType::BFloat16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(to_float_odd(v)); break;
    case DType::Int32: static_cast<int32_t*>(p)[i] = sat_i32(v); break;
    case DType::UInt8: static_cast<uint8_t*>(p)[i] = sat_u8(v); break;
  }
}

__global__ void fill_kernel(void* out, DType t, int64_t n, double value) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store_any(out, t, i, value);
}

__global__ void arange_kernel(void* out, DType t, int64_t n, double start, double step) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store_any(out, t, i, start + (double)i * step);
}

// Same dtype: a bit copy of elements of E bytes (E = 1, 2, 4).
template <class E>
__global__ void copy_same_kernel(Strided<2> s, E* dst, const E* src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[2];
    s.offsets(i, off);
    dst[off[0]] = src[off[1]];
  }
}

// A same-dtype copy whose innermost (merged) dim is contiguous in both views, `len`
// elements long, but not in 16-byte units: a warp per run of `per_warp` consecutive
// rows (copy_rows: up to 16, while that leaves at least 16,384 warps), whose offsets
// are divided down once per run and then stepped from row to row. The ImageNet
// model's input concat ([32, 50176, 3] and [32, 50176, 258] into rows of 261) took
// 2.78 ms of its batch-32 bf16 forward on an H200 element by element (0.6 TB/s);
// with a warp per row, each dividing its offsets down through three 64-bit
// divisions, the concat still took 1.38 ms in a later H200 profile for its 1.7 GB:
// about 1.2 TB/s.
template <class E>
__global__ void copy_rows_kernel(Strided<2> s, E* dst, const E* src, int64_t rows, int64_t len, int64_t per_warp) {
  const int last = s.ndim - 1;  // the rows' own dim: len elements, unit stride in both views
  each_row((rows + per_warp - 1) / per_warp, [&](int64_t run, int lane, int step) {
    const int64_t r0 = run * per_warp;
    // The run's first row: its index over dims [0, last) and offsets, by division.
    int64_t idx[8], off[2] = {0, 0};
    int64_t i = r0;
    for (int d = last - 1; d >= 0; d--) {
      idx[d] = i % s.shape[d];
      i /= s.shape[d];
      off[0] += idx[d] * s.strides[0][d];
      off[1] += idx[d] * s.strides[1][d];
    }
    const int64_t r1 = min(rows, r0 + per_warp);
    for (int64_t r = r0; r < r1; r++) {
      for (int64_t c = lane; c < len; c += step) dst[off[0] + c] = src[off[1] + c];
      // The next row: the index steps by one with carries, the offsets with it.
      for (int d = last - 1; d >= 0; d--) {
        off[0] += s.strides[0][d];
        off[1] += s.strides[1][d];
        if (++idx[d] < s.shape[d]) break;
        off[0] -= s.shape[d] * s.strides[0][d];
        off[1] -= s.shape[d] * s.strides[1][d];
        idx[d] = 0;
      }
    }
  });
}

// Different dtypes go through float32, which holds every value of the 16-bit
// types and uint8 exactly (int32 beyond 2^24 rounds: to odd where the target is 16
// bits), like the CPU.
__global__ void convert_kernel(Strided<2> s, void* dst, DType dt, const void* src, DType st, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[2];
    s.offsets(i, off);
    if (st == DType::Int32 && dt == DType::UInt8) {
      int32_t v = static_cast<const int32_t*>(src)[off[1]];
      static_cast<uint8_t*>(dst)[off[0]] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    } else {
      // int32 reaches the store whole, so that a 16-bit target rounds it once.
      const double v = st == DType::Int32 ? (double)static_cast<const int32_t*>(src)[off[1]] : (double)load_any(src, st, off[1]);
      store_any(dst, dt, off[0], v);
    }
  }
}

__device__ __forceinline__ float apply_unary(UnaryOp op, float v, float alpha, float beta) {
  switch (op) {
    case UnaryOp::Neg: return -v;
    case UnaryOp::Exp: return expf(v);
    case UnaryOp::Log: return logf(v);
    case UnaryOp::Sin: return sinf(v);
    case UnaryOp::Cos: return cosf(v);
    case UnaryOp::Sqrt: return sqrtf(v);
    case UnaryOp::Rsqrt: return 1.f / sqrtf(v);
    case UnaryOp::Tanh: return tanhf(v);
    case UnaryOp::Relu: return v < 0.f ? 0.f : v;  // NaN and -0 pass, as on the CPU
    case UnaryOp::Gelu: return gelu_erf(v);
    case UnaryOp::GeluTanh: return gelu_tanh(v);
    case UnaryOp::Sigmoid: return 1.f / (1.f + expf(-v));
    case UnaryOp::Abs: return fabsf(v);
    case UnaryOp::Square: return v * v;
    case UnaryOp::Affine: return alpha * v + beta;
  }
  return v;
}

template <class T>
__global__ void unary_kernel(Strided<2> s, T* out, const T* x, int64_t n, UnaryOp op, float alpha, float beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[2];
    s.offsets(i, off);
    out[off[0]] = from_f<T>(apply_unary(op, to_f(x[off[1]]), alpha, beta));
  }
}

// Dense unary ops on 16-byte packs (unless PERCEIVER_CUDA_ROW_KERNELS=0): a bf16
// training step's GELU over [8, 512, 1024] took 0.0185 ms element by element on an
// H200 (0.9 TB/s). The same per-element arithmetic as unary_kernel: the same bits.
template <class T, class I>
__global__ void unary_vec_kernel(T* out, const T* x, I units, UnaryOp op, float alpha, float beta) {
  for (I u = blockIdx.x * (I)blockDim.x + threadIdx.x; u < units; u += (I)gridDim.x * blockDim.x) {
    Pack16<T> v = reinterpret_cast<const Pack16<T>*>(x)[u];
#pragma unroll
    for (int k = 0; k < kPack<T>; k++) v.v[k] = from_f<T>(apply_unary(op, to_f(v.v[k]), alpha, beta));
    reinterpret_cast<Pack16<T>*>(out)[u] = v;
  }
}

// ---- the GEMM's bias and activation pass (gemm.cu), for what cuBLASLt's epilogues lack ----
__device__ __forceinline__ float apply_act(Activation act, float v) {
  switch (act) {
    case Activation::None: return v;
    case Activation::Relu: return apply_unary(UnaryOp::Relu, v, 1.f, 0.f);
    case Activation::Gelu: return gelu_erf(v);
    case Activation::GeluTanh: return gelu_tanh(v);
  }
  return v;
}

template <class T>
__global__ void bias_act_kernel(T* c, const T* bias, int64_t batch, int64_t rows, int64_t n, int64_t ldc,
                                int64_t stride_c, Activation act) {
  int64_t total = batch * rows * n;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t j = i % n, r = (i / n) % rows, b = i / (n * rows);
    T* p = c + b * stride_c + r * ldc + j;
    float v = to_f(*p);
    if (bias) v += to_f(bias[j]);
    *p = from_f<T>(apply_act(act, v));
  }
}

// The same on 16-byte packs, rows a whole number of packs at a stride of ld_units packs
// (unless PERCEIVER_CUDA_ROW_KERNELS=0). The exact GELU after every MLP's first
// product is this pass: element by element it divided each element's index three
// times in 64 bits. One division per pack here; the same bits.
template <class T>
__global__ void bias_act_vec_kernel(T* c, const T* bias, uint32_t rows, uint32_t row_units, uint32_t ld_units,
                                    Activation act) {
  const uint32_t units = rows * row_units;
  for (uint32_t u = blockIdx.x * blockDim.x + threadIdx.x; u < units; u += gridDim.x * blockDim.x) {
    const uint32_t r = u / row_units, j = u - r * row_units;
    Pack16<T>* p = reinterpret_cast<Pack16<T>*>(c) + r * ld_units + j;
    Pack16<T> x = *p, b;
    if (bias) b = reinterpret_cast<const Pack16<T>*>(bias)[j];
#pragma unroll
    for (int k = 0; k < kPack<T>; k++) {
      float v = to_f(x.v[k]);
      if (bias) v += to_f(b.v[k]);
      x.v[k] = from_f<T>(apply_act(act, v));
    }
    *p = x;
  }
}

__device__ __forceinline__ float apply_binary(BinaryOp op, float x, float y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
    case BinaryOp::Maximum: return (x != x || x > y) ? x : y;
    case BinaryOp::Minimum: return (x != x || x < y) ? x : y;
    case BinaryOp::Pow: return powf(x, y);
    case BinaryOp::Eq: return x == y;
    case BinaryOp::Ne: return x != y;
    case BinaryOp::Lt: return x < y;
    case BinaryOp::Le: return x <= y;
    case BinaryOp::Gt: return x > y;
    case BinaryOp::Ge: return x >= y;
  }
  return 0.f;
}

// R is T for arithmetic ops and uint8_t for comparisons.
template <class T, class R>
__global__ void binary_kernel(Strided<3> s, R* out, const T* a, const T* b, int64_t n, BinaryOp op) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[3];
    s.offsets(i, off);
    float r = apply_binary(op, to_f(a[off[1]]), to_f(b[off[2]]));
    if constexpr (std::is_same<R, uint8_t>::value) out[off[0]] = (uint8_t)(r != 0.f);
    else out[off[0]] = from_f<R>(r);
  }
}

// Arithmetic ops on 16-byte packs (unless PERCEIVER_CUDA_VECTOR_KERNELS=0): the residual adds
// of a bf16 forward moved 1-1.5 TB/s of an H200's 4.3 element by element. Each input
// is dense (its unit index is the output's) or one row repeated over the rows (its
// unit index is the output's modulo `period` units: a bias); the same per-element
// float arithmetic and rounding as binary_kernel, so the results are the same bits.
template <class T, class I>
__global__ void binary_vec_kernel(T* out, const T* a, const T* b, I units, I a_period, I b_period, BinaryOp op) {
  for (I u = blockIdx.x * (I)blockDim.x + threadIdx.x; u < units; u += (I)gridDim.x * blockDim.x) {
    const Pack16<T> x = reinterpret_cast<const Pack16<T>*>(a)[a_period ? u % a_period : u];
    const Pack16<T> y = reinterpret_cast<const Pack16<T>*>(b)[b_period ? u % b_period : u];
    Pack16<T> r;
#pragma unroll
    for (int k = 0; k < kPack<T>; k++) r.v[k] = from_f<T>(apply_binary(op, to_f(x.v[k]), to_f(y.v[k])));
    reinterpret_cast<Pack16<T>*>(out)[u] = r;
  }
}

template <class T>
__global__ void where_kernel(Strided<4> s, T* out, const uint8_t* c, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t off[4];
    s.offsets(i, off);
    out[off[0]] = c[off[1]] ? a[off[2]] : b[off[3]];
  }
}

}  // namespace

void fill(const View& out, double value, cudaStream_t s) {
  int64_t n = out.numel();
  if (n == 0) return;
  PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, fill_kernel)(out.data(), out.dtype, n, value);
  check_launch("full", s);
}

void arange(const View& out, double start, double step, cudaStream_t s) {
  int64_t n = out.numel();
  if (n == 0) return;
  PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, arange_kernel)(out.data(), out.dtype, n, start, step);
  check_launch("arange", s);
}

namespace {

// Dense casts between the float types (mixed precision's casts of activations and
// weights: 6 ms of a 105 ms bf16 training step on an H200 element by element), four
// elements per thread with typed loads, without convert_kernel's per-element dtype
// switches and double round trip. The results are the same: each value passes
// through float32 and is rounded to nearest even once.
template <class S>
struct alignas(4 * sizeof(S)) Pack4 {
  S v[4];
};
template <class S, class D>
__global__ void convert_dense_kernel(const S* src, D* dst, int64_t n4) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    const Pack4<S> a = reinterpret_cast<const Pack4<S>*>(src)[i];
    Pack4<D> b;
    for (int k = 0; k < 4; k++) b.v[k] = from_f<D>(to_f<S>(a.v[k]));
    reinterpret_cast<Pack4<D>*>(dst)[i] = b;
  }
}


// Returns false where the views are not dense float tensors with 4-element-aligned
// addresses; the elements left over after whole packs go to convert_kernel.
bool convert_dense(const Strided<2>& st, const View& src, const View& dst, int64_t n, cudaStream_t s) {
  if (!st.flat || !is_float(src.dtype) || !is_float(dst.dtype) || n < 4) return false;
  if ((uintptr_t)src.data() % (4 * dtype_size(src.dtype)) != 0 || (uintptr_t)dst.data() % (4 * dtype_size(dst.dtype)) != 0)
    return false;
  const int64_t n4 = n / 4;
  DISPATCH_FLOAT("cast", src.dtype, S, {
    DISPATCH_FLOAT("cast", dst.dtype, D, {
      PERCEIVER_LAUNCH(grid_for(n4), kThreads, 0, s, convert_dense_kernel<S, D>)(src.ptr<S>(), dst.ptr<D>(), n4);
    });
  });
  if (n4 * 4 < n) {
    const int64_t done = n4 * 4;
    View rs = src, rd = dst;
    rs.offset_bytes += done * (int64_t)dtype_size(src.dtype);
    rd.offset_bytes += done * (int64_t)dtype_size(dst.dtype);
    rs.ndim = rd.ndim = 1;
    rs.shape[0] = rd.shape[0] = n - done;
    rs.strides[0] = rd.strides[0] = 1;
    const View* vs[2] = {&rd, &rs};
    PERCEIVER_LAUNCH(1, kThreads, 0, s, convert_kernel)(make_strided<2>(vs), rd.data(), rd.dtype, rs.data(), rs.dtype, n - done);
  }
  return true;
}

// A same-dtype copy as 16-byte units, where the innermost (merged) dim is contiguous
// in both views and its length, every other stride and both addresses are multiples
// of 16 bytes: a permute of [B, N, H, D] heads with D * size % 16 == 0, or any dense
// copy. Each thread then moves 16 bytes and divides its index down once per 16 bytes
// rather than per element (0.041 ms for a [8, 8, 512, 128] bf16 permute on an H200,
// 0.4 TB/s, element by element). Returns false where the views do not allow it.
bool copy_vectorized(Strided<2> st, const View& src, const View& dst, int64_t n, cudaStream_t s) {
  const int64_t k = 16 / (int64_t)dtype_size(src.dtype);
  const int last = st.ndim - 1;
  if (((uintptr_t)src.data() | (uintptr_t)dst.data()) % 16 != 0 || n % k != 0) return false;
  if (st.strides[0][last] != 1 || st.strides[1][last] != 1 || st.shape[last] % k != 0) return false;
  for (int d = 0; d < last; d++)
    if (st.strides[0][d] % k != 0 || st.strides[1][d] % k != 0) return false;
  st.shape[last] /= k;
  for (int d = 0; d < last; d++) {
    st.strides[0][d] /= k;
    st.strides[1][d] /= k;
  }
  const int64_t units = n / k;
  PERCEIVER_LAUNCH(grid_for(units), kThreads, 0, s, copy_same_kernel<uint4>)(
      st, static_cast<uint4*>(dst.data()), static_cast<const uint4*>((const void*)src.data()), units);
  return true;
}

// The row kernel's copies (copy_rows_kernel): rows of 32 to 8192 elements, contiguous
// in both views, at least two of them (one long row is better split over threads).
bool copy_rows(const Strided<2>& st, const View& src, const View& dst, int64_t n, cudaStream_t s) {
  const int last = st.ndim - 1;
  const int64_t len = st.shape[last];
  if (!row_kernels() || st.ndim < 2 || st.strides[0][last] != 1 || st.strides[1][last] != 1 || len < 32 ||
      len > 8192)
    return false;
  const int64_t rows = n / len;
  // Runs of rows per warp: long ones save divisions where a row's copy is short enough
  // for them to matter, while at least 16,384 warps (about twice what an H100 or H200
  // holds) keep the GPU busy; the count depends on the shape alone, not the device.
  const int64_t per_warp = len <= 1024 ? std::clamp<int64_t>(rows / 16384, 1, 16) : 1;
  auto launch = [&](auto e) {
    using E = decltype(e);
    PERCEIVER_LAUNCH(warp_rows_grid((rows + per_warp - 1) / per_warp, kThreads / 32), kThreads, 0, s,
                     copy_rows_kernel<E>)(
        st, static_cast<E*>(dst.data()), static_cast<const E*>((const void*)src.data()), rows, len, per_warp);
  };
  switch (dtype_size(src.dtype)) {
    case 1: launch(uint8_t{}); break;
    case 2: launch(uint16_t{}); break;
    default: launch(uint32_t{}); break;
  }
  return true;
}

}  // namespace

void copy(const View& src, const View& dst, cudaStream_t s) {
  int64_t n = dst.numel();
  if (n == 0) return;
  const View* vs[2] = {&dst, &src};
  Strided<2> st = make_strided<2>(vs);
  if (src.dtype != dst.dtype) {
    if (!convert_dense(st, src, dst, n, s))
      PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, convert_kernel)(st, dst.data(), dst.dtype, src.data(), src.dtype, n);
  } else if (!copy_vectorized(st, src, dst, n, s) && !copy_rows(st, src, dst, n, s)) {
    switch (dtype_size(src.dtype)) {
      case 1: PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, copy_same_kernel<uint8_t>)(st, dst.ptr<uint8_t>(), src.ptr<uint8_t>(), n); break;
      case 2: PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, copy_same_kernel<uint16_t>)(st, dst.ptr<uint16_t>(), src.ptr<uint16_t>(), n); break;
      default: PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, copy_same_kernel<uint32_t>)(st, dst.ptr<uint32_t>(), src.ptr<uint32_t>(), n); break;
    }
  }
  check_launch("copy", s);
}

void unary(UnaryOp op, const View& x, const View& out, float alpha, float beta, cudaStream_t s) {
  int64_t n = out.numel();
  if (n == 0) return;
  const View* vs[2] = {&out, &x};
  Strided<2> st = make_strided<2>(vs);
  const int64_t pack = 16 / (int64_t)dtype_size(out.dtype);
  const bool vec = row_kernels() && st.flat && n % pack == 0 && aligned16(out.data()) && aligned16(x.data());
  // (One index type: each op's code is unrolled per pack, and every instantiation
  // costs build time for every architecture. Past 2^31 packs, the element kernel.)
  DISPATCH_FLOAT("unary", x.dtype, T, {
    const int64_t units = n / pack;
    if (vec && units <= INT32_MAX)
      PERCEIVER_LAUNCH(grid_for(units), kThreads, 0, s, unary_vec_kernel<T, uint32_t>)(out.ptr<T>(), x.ptr<T>(),
                                                                                     (uint32_t)units, op, alpha, beta);
    else
      PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, unary_kernel<T>)(st, out.ptr<T>(), x.ptr<T>(), n, op, alpha, beta);
  });
  check_launch("unary", s);
}

void bias_act(void* c, const void* bias, int64_t batch, int64_t rows, int64_t n, int64_t ldc, int64_t stride_c,
              Activation act, DType dtype, cudaStream_t s) {
  int64_t total = batch * rows * n;
  if (total == 0) return;
  const int64_t pack = 16 / (int64_t)dtype_size(dtype);
  // Batches back to back are rows too.
  if (batch > 1 && stride_c == rows * ldc) {
    rows *= batch;
    batch = 1;
  }
  const bool vec = row_kernels() && batch == 1 && n % pack == 0 && ldc % pack == 0 && aligned16(c) &&
                   (!bias || aligned16(bias));
  DISPATCH_FLOAT("matmul (bias/activation)", dtype, T, {
    T* ct = static_cast<T*>(c);
    const T* bt = static_cast<const T*>(bias);
    const int64_t row_units = n / pack, ld_units = ldc / pack;
    if (vec && rows * ld_units <= INT32_MAX)
      PERCEIVER_LAUNCH(grid_for(rows * row_units), kThreads, 0, s, bias_act_vec_kernel<T>)(
          ct, bt, (uint32_t)rows, (uint32_t)row_units, (uint32_t)ld_units, act);
    else
      PERCEIVER_LAUNCH(grid_for(total), kThreads, 0, s, bias_act_kernel<T>)(ct, bt, batch, rows, n, ldc, stride_c, act);
  });
  check_launch("matmul (bias/activation)", s);
}

namespace {

// binary_vec_kernel where the views allow it: float operands, 16-byte aligned, the
// output dense, each input dense or a row broadcast over the rows of a 2-D output,
// the row a whole number of packs. Returns false otherwise.
bool binary_vectorized(BinaryOp op, const Strided<3>& st, const View& a, const View& b, const View& out,
                       int64_t n, cudaStream_t s) {
  if (!vector_kernels() || op >= BinaryOp::Eq || !is_float(out.dtype)) return false;
  if (!aligned16(out.data()) || !aligned16(a.data()) || !aligned16(b.data())) return false;
  const int64_t pack = 16 / (int64_t)dtype_size(out.dtype);
  if (n % pack != 0) return false;
  int64_t period[2] = {0, 0};  // units of each input's repeating row; 0: dense
  if (!st.flat) {
    if (st.ndim != 2) return false;
    const int64_t cols = st.shape[1];
    if (cols % pack != 0 || st.strides[0][0] != cols || st.strides[0][1] != 1) return false;
    for (int k = 1; k <= 2; k++) {
      if (st.strides[k][1] != 1) return false;
      if (st.strides[k][0] == 0) period[k - 1] = cols / pack;
      else if (st.strides[k][0] != cols) return false;
    }
  }
  const int64_t units = n / pack;
  DISPATCH_FLOAT("binary", out.dtype, T, {
    if (units <= INT32_MAX)
      PERCEIVER_LAUNCH(grid_for(units), kThreads, 0, s, binary_vec_kernel<T, uint32_t>)(
          out.ptr<T>(), a.ptr<T>(), b.ptr<T>(), (uint32_t)units, (uint32_t)period[0], (uint32_t)period[1], op);
    else
      PERCEIVER_LAUNCH(grid_for(units), kThreads, 0, s, binary_vec_kernel<T, int64_t>)(out.ptr<T>(), a.ptr<T>(), b.ptr<T>(), units,
                                                                         period[0], period[1], op);
  });
  return true;
}

}  // namespace

void binary(BinaryOp op, const View& a, const View& b, const View& out, cudaStream_t s) {
  int64_t n = out.numel();
  if (n == 0) return;
  const View* vs[3] = {&out, &a, &b};
  Strided<3> st = make_strided<3>(vs);
  if (binary_vectorized(op, st, a, b, out, n, s)) {
    check_launch("binary", s);
    return;
  }
  bool compare = op >= BinaryOp::Eq;
  DISPATCH_FLOAT("binary", a.dtype, T, {
    if (compare)
      PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, binary_kernel<T, uint8_t>)(st, out.ptr<uint8_t>(), a.ptr<T>(), b.ptr<T>(), n, op);
    else
      PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, binary_kernel<T, T>)(st, out.ptr<T>(), a.ptr<T>(), b.ptr<T>(), n, op);
  });
  check_launch("binary", s);
}

void where(const View& cond, const View& a, const View& b, const View& out, cudaStream_t s) {
  int64_t n = out.numel();
  if (n == 0) return;
  const View* vs[4] = {&out, &cond, &a, &b};
  Strided<4> st = make_strided<4>(vs);
  DISPATCH_FLOAT("where", a.dtype, T,
                 PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, where_kernel<T>)(st, out.ptr<T>(), cond.ptr<uint8_t>(), a.ptr<T>(), b.ptr<T>(), n));
  check_launch("where", s);
}

}  // namespace cuda
}  // namespace perceiver
