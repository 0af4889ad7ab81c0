// Training kernels (gradients) for the CUDA backend, the CPU's backward.cc on the GPU.
// Deterministic: no floating-point atomics anywhere, so a gradient is the same bits
// on every run.
//   layer_norm_backward  kernel 1, one block per row (or one warp per row held in
//                        registers, for rows of 1-8 16-byte packs per lane): the row's
//                        statistics, gx, and (when weight/bias gradients are wanted)
//                        mean and rstd kept in the workspace. kernel 2: a grid of
//                        column tiles (32 columns, or 32 packs) x row chunks, each
//                        summing g * xhat and g over its rows in a fixed order into
//                        its own slot of partials. kernel 3: one thread per column
//                        adds its chunks' partials in order.
//   gelu_backward        elementwise.
//   softmax_backward     one block per row: the row's dot product g . y (block sum),
//                        then gx = y (g - dot), read again from cache, written in the
//                        output's dtype (a 16-bit gradient from float32 inputs).
//   max_pool2d_backward  a gather rather than the CPU's scatter: one thread per input
//                        element visits the windows that contain it in (oy, ox)
//                        order, recomputes each window's first maximum and adds the
//                        window's gradient when that is this element; the same sums
//                        in the same order as the CPU, and no two threads write one
//                        address.
// 16-bit tensors load to float, accumulate in float, round once on store.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common.cuh"
#include "gelu.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

constexpr int kTileCols = 32, kTileRows = 8;

template <class T>
__global__ void ln_rows_kernel(const T* x, const T* w, const T* g, const T* gx_add, T* gx, float* stats, int64_t rows,
                               int64_t n, float eps) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += to_f(xr[j]);
    const float mean = block_sum(s, scratch) / (float)n;
    float v = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float d = to_f(xr[j]) - mean;
      v += d * d;
    }
    const float rstd = rsqrtf(block_sum(v, scratch) / (float)n + eps);
    float mg = 0.f, mgx = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float xh = (to_f(xr[j]) - mean) * rstd;
      const float gh = w ? to_f(gr[j]) * to_f(w[j]) : to_f(gr[j]);
      mg += gh;
      mgx += gh * xh;
    }
    mg = block_sum(mg, scratch) / (float)n;
    mgx = block_sum(mgx, scratch) / (float)n;
    T* o = gx + r * n;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const float xh = (to_f(xr[j]) - mean) * rstd;
      const float gh = w ? to_f(gr[j]) * to_f(w[j]) : to_f(gr[j]);
      const float v = rstd * (gh - mg - xh * mgx);
      o[j] = from_f<T>(gx_add ? v + to_f(gx_add[r * n + j]) : v);
    }
    if (stats && threadIdx.x == 0) {
      stats[2 * r] = mean;
      stats[2 * r + 1] = rstd;
    }
  }
}

// blockDim (kTileCols, kTileRows); grid (column tiles, chunks). partials: [2][chunks][n].
template <class T>
__global__ void ln_partials_kernel(const T* x, const T* g, const float* stats, float* partials, int64_t rows,
                                   int64_t n, int64_t rows_per_chunk, int chunks) {
  __shared__ float sw[kTileRows][kTileCols], sb[kTileRows][kTileCols];
  const int64_t j = blockIdx.x * (int64_t)kTileCols + threadIdx.x;
  const int c = blockIdx.y;
  const int64_t r0 = c * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  float aw = 0.f, ab = 0.f;
  if (j < n)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kTileRows) {
      const float gv = to_f(g[r * n + j]);
      aw += gv * ((to_f(x[r * n + j]) - stats[2 * r]) * stats[2 * r + 1]);
      ab += gv;
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && j < n) {
    float tw = 0.f, tb = 0.f;
    for (int k = 0; k < kTileRows; k++) {
      tw += sw[k][threadIdx.x];
      tb += sb[k][threadIdx.x];
    }
    partials[(int64_t)c * n + j] = tw;
    partials[((int64_t)chunks + c) * n + j] = tb;
  }
}

// The chunks' partials added per column: a block of kLnColWarps warps per 32 columns (a
// lane each), warp w adding chunks w, w + kLnColWarps, ... in order, warp 0 the warps'
// sums in order, so the bits are the same on every run. A thread per column adding all
// of a column's chunks in one chain of loads (64 at [4096, 1024]) ran on 4 blocks, as
// reduce.cu's column sums' second kernel did.
constexpr int kLnColWarps = 8;
template <class T>
__global__ void __launch_bounds__(32 * kLnColWarps)
    ln_columns_kernel(const float* partials, const T* gw_add, const T* gb_add, T* gw, T* gb, int64_t n, int chunks) {
  __shared__ float part[2][kLnColWarps][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t j0 = blockIdx.x * (int64_t)32; j0 < n; j0 += (int64_t)gridDim.x * 32) {
    const int64_t j = j0 + lane;
    float tw = 0.f, tb = 0.f;
    if (j < n)
      for (int c = warp; c < chunks; c += kLnColWarps) {
        tw += partials[(int64_t)c * n + j];
        tb += partials[((int64_t)chunks + c) * n + j];
      }
    part[0][warp][lane] = tw;
    part[1][warp][lane] = tb;
    __syncthreads();
    if (warp == 0 && j < n) {
      for (int w = 1; w < kLnColWarps; w++) tw += part[0][w][lane], tb += part[1][w][lane];
      if (gw) gw[j] = from_f<T>(gw_add ? tw + to_f(gw_add[j]) : tw);
      if (gb) gb[j] = from_f<T>(gb_add ? tb + to_f(gb_add[j]) : tb);
    }
    __syncthreads();
  }
}

// Layer norm's gradient with a row per warp, held in registers (unless
// PERCEIVER_CUDA_ROW_KERNELS=0): rows of kVecs 16-byte packs per lane, as the
// forward's layer_norm_warp_kernel. ln_rows_kernel reads a row four times element by
// element through four block-wide sums; 0.057 ms for [4096, 1024] bf16 on an H200, the
// largest row of a bf16 training step's profile (99 calls, 6.8%). Here x and g are read
// once with 16-byte loads and the sums are warp shuffles. The same formulas.
constexpr int kLnWarps = 4;
template <class T, int kVecs>
__global__ void __launch_bounds__(32 * kLnWarps)
    ln_rows_warp_kernel(const T* x, const T* w, const T* g, const T* gx_add, T* gx, float* stats, int64_t rows, float eps) {
  constexpr int P = kPack<T>;
  constexpr int N = 32 * P * kVecs;
  const int lane = threadIdx.x & 31;
  const Pack16<T>* wp = reinterpret_cast<const Pack16<T>*>(w);
  for (int64_t r = (int64_t)blockIdx.x * kLnWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kLnWarps) {
    const Pack16<T>* xr = reinterpret_cast<const Pack16<T>*>(x + r * N);
    const Pack16<T>* gr = reinterpret_cast<const Pack16<T>*>(g + r * N);
    float xv[kVecs][P], gh[kVecs][P];
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kVecs; i++) {
      const Pack16<T> px = xr[i * 32 + lane], pg = gr[i * 32 + lane];
      Pack16<T> pw;
      if (wp) pw = wp[i * 32 + lane];
#pragma unroll
      for (int k = 0; k < P; k++) {
        xv[i][k] = to_f(px.v[k]);
        gh[i][k] = wp ? to_f(pg.v[k]) * to_f(pw.v[k]) : to_f(pg.v[k]);
        sum += xv[i][k];
      }
    }
    const float2 st = warp_row_stats<kVecs * P, true>(reinterpret_cast<const float(&)[kVecs * P]>(xv), sum, N, lane, eps);
    const float mean = st.x, rstd = st.y;
    float mg = 0.f, mgx = 0.f;
#pragma unroll
    for (int i = 0; i < kVecs; i++)
#pragma unroll
      for (int k = 0; k < P; k++) {
        xv[i][k] = (xv[i][k] - mean) * rstd;  // x̂ from here on
        mg += gh[i][k];
        mgx += gh[i][k] * xv[i][k];
      }
    mg = warp_sum(mg) / (float)N;
    mgx = warp_sum(mgx) / (float)N;
    Pack16<T>* o = reinterpret_cast<Pack16<T>*>(gx + r * N);
#pragma unroll
    for (int i = 0; i < kVecs; i++) {
      Pack16<T> po, pa;
      if (gx_add) pa = reinterpret_cast<const Pack16<T>*>(gx_add + r * N)[i * 32 + lane];
#pragma unroll
      for (int k = 0; k < P; k++) {
        const float v = rstd * (gh[i][k] - mg - xv[i][k] * mgx);
        po.v[k] = from_f<T>(gx_add ? v + to_f(pa.v[k]) : v);
      }
      o[i * 32 + lane] = po;
    }
    if (stats && lane == 0) {
      stats[2 * r] = mean;
      stats[2 * r + 1] = rstd;
    }
  }
}

// The same for rows of up to 32 x kPer elements that are not whole packs per lane, or
// not aligned (the image encoders' 261 channels: [8, 50176, 261] took 1.62 ms of a bf16
// training step on an H200): element loads, coalesced across the warp.
template <class T, int kPer>
__global__ void __launch_bounds__(32 * kLnWarps)
    ln_rows_warp_any_kernel(const T* x, const T* w, const T* g, const T* gx_add, T* gx, float* stats, int64_t rows, int n,
                            float eps) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (int64_t)blockIdx.x * kLnWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kLnWarps) {
    const T* xr = x + r * n;
    const T* gr = g + r * n;
    float xv[kPer], gh[kPer];
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      xv[i] = j < n ? to_f(xr[j]) : 0.f;
      gh[i] = j < n ? (w ? to_f(gr[j]) * to_f(w[j]) : to_f(gr[j])) : 0.f;
      sum += xv[i];
    }
    const float2 st = warp_row_stats<kPer, false>(xv, sum, n, lane, eps);
    const float mean = st.x, rstd = st.y;
    float mg = 0.f, mgx = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; i++)
      if (lane + 32 * i < n) {
        xv[i] = (xv[i] - mean) * rstd;  // x̂ from here on
        mg += gh[i];
        mgx += gh[i] * xv[i];
      }
    mg = warp_sum(mg) / (float)n;
    mgx = warp_sum(mgx) / (float)n;
    T* o = gx + r * n;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      if (j < n) {
        const float v = rstd * (gh[i] - mg - xv[i] * mgx);
        o[j] = from_f<T>(gx_add ? v + to_f(gx_add[r * n + j]) : v);
      }
    }
    if (stats && lane == 0) {
      stats[2 * r] = mean;
      stats[2 * r + 1] = rstd;
    }
  }
}

// ln_partials_kernel on 16-byte packs: a block owns 32 packs of columns (256 bf16
// columns) over a chunk of rows, its warps striding the chunk's rows, and combines
// them in a fixed order into the chunk's partials (the same layout, [2][chunks][n]).
template <class T>
__global__ void __launch_bounds__(32 * kTileRows)
    ln_partials_vec_kernel(const T* x, const T* g, const float* stats, float* partials, int64_t rows, int64_t n,
                           int64_t rows_per_chunk, int chunks) {
  constexpr int P = kPack<T>;
  __shared__ float sw[kTileRows][P][32], sb[kTileRows][P][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t units = n / P, u = blockIdx.x * 32 + lane;
  const int c = blockIdx.y;
  const int64_t r0 = c * rows_per_chunk, r1 = min(rows, r0 + rows_per_chunk);
  float aw[P], ab[P];
#pragma unroll
  for (int k = 0; k < P; k++) aw[k] = ab[k] = 0.f;
  if (u < units)
    for (int64_t r = r0 + warp; r < r1; r += kTileRows) {
      const Pack16<T> px = reinterpret_cast<const Pack16<T>*>(x + r * n)[u];
      const Pack16<T> pg = reinterpret_cast<const Pack16<T>*>(g + r * n)[u];
      const float mean = stats[2 * r], rstd = stats[2 * r + 1];
#pragma unroll
      for (int k = 0; k < P; k++) {
        const float gv = to_f(pg.v[k]);
        aw[k] += gv * ((to_f(px.v[k]) - mean) * rstd);
        ab[k] += gv;
      }
    }
#pragma unroll
  for (int k = 0; k < P; k++) {
    sw[warp][k][lane] = aw[k];
    sb[warp][k][lane] = ab[k];
  }
  __syncthreads();
  if (warp == 0 && u < units) {
    for (int w = 1; w < kTileRows; w++)
#pragma unroll
      for (int k = 0; k < P; k++) {
        aw[k] += sw[w][k][lane];
        ab[k] += sb[w][k][lane];
      }
#pragma unroll
    for (int k = 0; k < P; k++) {
      partials[(int64_t)c * n + u * P + k] = aw[k];
      partials[((int64_t)chunks + c) * n + u * P + k] = ab[k];
    }
  }
}

// softmax_backward_kernel with a row per warp in registers, for rows of up to 32 x kPer
// (unless PERCEIVER_CUDA_ROW_KERNELS=0): 0.065 ms for the bf16 training step's float32
// [8, 8, 512, 512] probabilities on an H200 through one block per row (48 calls).
template <class Tin, class Tout, int kPer>
__global__ void __launch_bounds__(32 * kLnWarps)
    softmax_backward_warp_kernel(const Tin* y, const Tin* g, Tout* gx, int64_t rows, int n) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (int64_t)blockIdx.x * kLnWarps + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * kLnWarps) {
    const Tin* yr = y + r * n;
    const Tin* gr = g + r * n;
    float yv[kPer], gv[kPer];
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      yv[i] = j < n ? to_f(yr[j]) : 0.f;
      gv[i] = j < n ? to_f(gr[j]) : 0.f;
      dot += yv[i] * gv[i];
    }
    dot = warp_sum(dot);
    Tout* o = gx + r * n;
#pragma unroll
    for (int i = 0; i < kPer; i++) {
      const int j = lane + 32 * i;
      if (j < n) o[j] = from_f<Tout>(yv[i] * (gv[i] - dot));
    }
  }
}

template <class Tin, class Tout>
__global__ void softmax_backward_kernel(const Tin* y, const Tin* g, Tout* gx, int64_t rows, int64_t n) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const Tin* yr = y + r * n;
    const Tin* gr = g + r * n;
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += to_f(gr[j]) * to_f(yr[j]);
    const float dot = block_sum(s, scratch);
    Tout* o = gx + r * n;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) o[j] = from_f<Tout>(to_f(yr[j]) * (to_f(gr[j]) - dot));
  }
}

template <class T>
__global__ void gelu_backward_kernel(const T* x, const T* g, T* gx, int64_t n, bool tanh_form) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    gx[i] = from_f<T>(to_f(g[i]) * gelu_derivative(to_f(x[i]), tanh_form));
}

// The same on 16-byte packs (unless PERCEIVER_CUDA_ROW_KERNELS=0; 0.0187 ms element
// by element for [8, 512, 1024] bf16 on an H200): the same bits.
template <class T>
__global__ void gelu_backward_vec_kernel(const T* x, const T* g, T* gx, uint32_t units, bool tanh_form) {
  for (uint32_t u = blockIdx.x * blockDim.x + threadIdx.x; u < units; u += gridDim.x * blockDim.x) {
    const Pack16<T> xv = reinterpret_cast<const Pack16<T>*>(x)[u], gv = reinterpret_cast<const Pack16<T>*>(g)[u];
    Pack16<T> r;
#pragma unroll
    for (int k = 0; k < kPack<T>; k++) r.v[k] = from_f<T>(to_f(gv.v[k]) * gelu_derivative(to_f(xv.v[k]), tanh_form));
    reinterpret_cast<Pack16<T>*>(gx)[u] = r;
  }
}

// Smallest o with o * stride - pad + k - 1 >= i, i.e. the first window reaching i.
__device__ __forceinline__ int64_t first_window(int64_t i, int64_t pad, int64_t k, int64_t stride) {
  const int64_t t = i + pad - k + 1;
  return t <= 0 ? 0 : (t + stride - 1) / stride;
}

template <class T>
__global__ void max_pool_backward_kernel(Pool2dArgs a, const T* x, const T* g, T* gx) {
  const int64_t total = a.batch * a.h * a.w * a.c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % a.c;
    const int64_t pix = i / a.c;
    const int64_t ix = pix % a.w;
    const int64_t iy = (pix / a.w) % a.h;
    const int64_t b = pix / (a.w * a.h);
    const T* xb = x + b * a.h * a.w * a.c;
    const int64_t self = (iy * a.w + ix) * a.c + c;
    const int64_t oy1 = min(a.oh - 1, (iy + a.pad_top) / a.stride_h);
    const int64_t ox1 = min(a.ow - 1, (ix + a.pad_left) / a.stride_w);
    float acc = 0.f;
    for (int64_t oy = first_window(iy, a.pad_top, a.kh, a.stride_h); oy <= oy1; oy++)
      for (int64_t ox = first_window(ix, a.pad_left, a.kw, a.stride_w); ox <= ox1; ox++) {
        // The window's first maximum, exactly as the CPU picks it (the first valid
        // element starts; a NaN takes the window, the last one if several, as the
        // forward's output and torch's index do).
        float best = -INFINITY;
        int64_t arg = -1;
        const int64_t y0 = oy * a.stride_h - a.pad_top, x0 = ox * a.stride_w - a.pad_left;
        for (int64_t ky = max((int64_t)0, -y0); ky < min(a.kh, a.h - y0); ky++) {
          const int64_t y = y0 + ky;
          for (int64_t kx = max((int64_t)0, -x0); kx < min(a.kw, a.w - x0); kx++) {
            const int64_t xx = x0 + kx;
            const int64_t at = (y * a.w + xx) * a.c + c;
            const float v = to_f(xb[at]);
            if (v > best || arg < 0 || v != v) {
              best = v;
              arg = at;
            }
          }
        }
        if (arg == self) acc += to_f(g[((b * a.oh + oy) * a.ow + ox) * a.c + c]);
      }
    gx[i] = from_f<T>(acc);
  }
}

// Row chunks for the weight/bias sums: enough tiles to fill the GPU, few enough that
// the final per-column pass stays short. Depends on rows only (not on the GPU), so
// the result is the same on every device.
int ln_chunks(int64_t rows) {
  int64_t c = (rows + 63) / 64;
  return (int)(c < 1 ? 1 : c > 256 ? 256 : c);
}

}  // namespace

size_t layer_norm_backward_workspace(int64_t rows, int64_t n) {
  return sizeof(float) * (size_t)(2 * rows + 2 * (int64_t)ln_chunks(rows) * n);
}

void layer_norm_backward(const void* x, const void* w, const void* g, void* gx, void* gw, void* gb, int64_t rows,
                         int64_t n, float eps, DType dtype, void* workspace, cudaStream_t s, const GradAddends& add) {
  if (rows == 0 || n == 0) return;
  const bool sums = gw || gb;
  float* stats = sums ? static_cast<float*>(workspace) : nullptr;
  const int chunks = ln_chunks(rows);
  const int64_t per_chunk = (rows + chunks - 1) / chunks;
  float* partials = sums ? stats + 2 * rows : nullptr;
  // The 16-byte kernels where every pointer is aligned and the rows are whole packs: the
  // row kernel for 1-8 packs per lane, the partial sums for any number.
  const int64_t pack = 16 / (int64_t)dtype_size(dtype);
  const bool packs = row_kernels() && n % pack == 0 && aligned16(x) && aligned16(g) && aligned16(gx) &&
                     (!w || aligned16(w));
  // (gx's addend is read in packs by the row kernel only.)
  const int vecs = packs && (!add.gx || aligned16(add.gx)) && n % (32 * pack) == 0 && n / (32 * pack) <= 8
                       ? (int)(n / (32 * pack))
                       : 0;
  DISPATCH_FLOAT("layer_norm_backward", dtype, T, {
    const T *xt = static_cast<const T*>(x), *wt = static_cast<const T*>(w), *gt = static_cast<const T*>(g);
    const T* at = static_cast<const T*>(add.gx);
    if (vecs > 0) {
      with_count_at_least<1, 2, 3, 4, 5, 6, 7, 8>(vecs, [&](auto v) {
        PERCEIVER_LAUNCH(warp_rows_grid(rows, kLnWarps), 32 * kLnWarps, 0, s, ln_rows_warp_kernel<T, decltype(v)::value>)(
            xt, wt, gt, at, static_cast<T*>(gx), stats, rows, eps);
      });
    } else if (row_kernels() && n <= 32 * 16) {
      with_count_at_least<4, 8, 16>((int)((n + 31) / 32), [&](auto k) {
        PERCEIVER_LAUNCH(warp_rows_grid(rows, kLnWarps), 32 * kLnWarps, 0, s, ln_rows_warp_any_kernel<T, decltype(k)::value>)(
            xt, wt, gt, at, static_cast<T*>(gx), stats, rows, (int)n, eps);
      });
    } else {
      PERCEIVER_LAUNCH(rows_grid(rows), kThreads, 0, s, ln_rows_kernel<T>)(xt, wt, gt, at, static_cast<T*>(gx), stats,
                                                                          rows, n, eps);
    }
    check_launch("layer_norm_backward", s);
    if (sums) {
      if (packs) {
        dim3 grid((unsigned)((n / pack + 31) / 32), (unsigned)chunks);
        PERCEIVER_LAUNCH(grid, 32 * kTileRows, 0, s, ln_partials_vec_kernel<T>)(xt, gt, stats, partials, rows, n,
                                                                               per_chunk, chunks);
      } else {
        dim3 grid((unsigned)((n + kTileCols - 1) / kTileCols), (unsigned)chunks);
        PERCEIVER_LAUNCH(grid, dim3(kTileCols, kTileRows), 0, s, ln_partials_kernel<T>)(xt, gt, stats, partials, rows, n,
                                                                                       per_chunk, chunks);
      }
      check_launch("layer_norm_backward", s);
      PERCEIVER_LAUNCH(rows_grid((n + 31) / 32), 32 * kLnColWarps, 0, s, ln_columns_kernel<T>)(
          partials, static_cast<const T*>(add.gw), static_cast<const T*>(add.gb), static_cast<T*>(gw),
          static_cast<T*>(gb), n, chunks);
      check_launch("layer_norm_backward", s);
    }
  });
}

void softmax_backward(const void* y, const void* g, void* gx, int64_t rows, int64_t n, DType in_dtype,
                      DType out_dtype, cudaStream_t s) {
  if (rows == 0 || n == 0) return;
  const int threads = n <= 1024 ? 128 : n <= 8192 ? 256 : 512;
  const int per = (int)std::min<int64_t>((n + 31) / 32, 33);
  DISPATCH_FLOAT("softmax_backward", in_dtype, Tin, {
    DISPATCH_FLOAT("softmax_backward", out_dtype, Tout, {
      const Tin *yt = static_cast<const Tin*>(y), *gt = static_cast<const Tin*>(g);
      Tout* ot = static_cast<Tout*>(gx);
      // The row-per-warp kernel for the pairs that occur (one dtype, or float32
      // probabilities to a 16-bit gradient): each instantiation is build time on
      // every architecture.
      constexpr bool kWarp = std::is_same<Tin, Tout>::value || std::is_same<Tin, float>::value;
      bool done = false;
      if constexpr (kWarp) {
        if (row_kernels() && per <= 32) {
          with_count_at_least<8, 16, 32>(per, [&](auto k) {
            PERCEIVER_LAUNCH(warp_rows_grid(rows, kLnWarps), 32 * kLnWarps, 0, s,
                             softmax_backward_warp_kernel<Tin, Tout, decltype(k)::value>)(yt, gt, ot, rows, (int)n);
          });
          done = true;
        }
      }
      if (!done)
        PERCEIVER_LAUNCH(rows_grid(rows), threads, 0, s, softmax_backward_kernel<Tin, Tout>)(yt, gt, ot, rows, n);
    });
  });
  check_launch("softmax_backward", s);
}

void gelu_backward(const void* x, const void* g, void* gx, int64_t n, bool tanh_form, DType dtype, cudaStream_t s) {
  if (n == 0) return;
  const int64_t pack = 16 / (int64_t)dtype_size(dtype), units = n / pack;
  const bool vec = row_kernels() && n % pack == 0 && units <= INT32_MAX && aligned16(x) && aligned16(g) && aligned16(gx);
  DISPATCH_FLOAT("gelu_backward", dtype, T, {
    const T *xt = static_cast<const T*>(x), *gt = static_cast<const T*>(g);
    if (vec)
      PERCEIVER_LAUNCH(grid_for(units), kThreads, 0, s, gelu_backward_vec_kernel<T>)(xt, gt, static_cast<T*>(gx),
                                                                                   (uint32_t)units, tanh_form);
    else
      PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, gelu_backward_kernel<T>)(xt, gt, static_cast<T*>(gx), n, tanh_form);
  });
  check_launch("gelu_backward", s);
}

void max_pool2d_backward(const Pool2dArgs& a, const void* g, void* gx, cudaStream_t s) {
  const int64_t total = a.batch * a.h * a.w * a.c;
  if (total == 0) return;
  DISPATCH_FLOAT("max_pool2d_backward", a.dtype, T,
                 PERCEIVER_LAUNCH(grid_for(total), kThreads, 0, s, max_pool_backward_kernel<T>)(
                     a, reinterpret_cast<const T*>(a.x), static_cast<const T*>(g), static_cast<T*>(gx)));
  check_launch("max_pool2d_backward", s);
}

}  // namespace cuda
}  // namespace perceiver
