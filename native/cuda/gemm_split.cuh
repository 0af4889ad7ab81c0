// float32 products as three TF32 products (PERCEIVER_CUDA_TF32=3; gemm.cu). Hopper's and
// Ampere's float32 GEMMs run on the CUDA cores (about 50 TFLOP/s on an H200, torch's
// default too), their TF32 tensor cores about 8x faster, at 10 mantissa bits. With x
// = hi + lo, both TF32, a·b = hi·hi + hi·lo + lo·hi + lo·lo, and the last term is
// about 2^-22 of the product: three TF32 products give float32's accuracy to within a
// few units in its last place (CUTLASS's "3xTF32"), where one TF32 product is off by
// about 2^-11. Each operand is split once per call into two copies (O(mk + kn) bytes,
// against the product's O(mnk) work), so only products large enough to repay the
// splits and two more launches take this path (gemm.cu's threshold).
//
// Compiled by gemm.cu and by the CPU emulation (native/cuda/emu), whose check runs
// tf32x3_matmul with TF32 products done as loops over operands cut to their top 19 bits.
#pragma once
#include <cstring>

#include "../backend.h"
#include "common.cuh"

namespace perceiver {
namespace cuda {

// x rounded to TF32 as cvt.rna.tf32.f32 does: to nearest, ties away from zero, the low
// 13 bits zero; infinities and NaN as they are. In bits, so that every architecture
// (sm_75 has no cvt to TF32) and the emulation compute the same.
__host__ __device__ __forceinline__ float tf32_round(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  float r;
  memcpy(&r, &u, 4);
  return r;
}

// hi = tf32(x), lo = tf32(x − hi) for the rows x cols matrices of a batch (row stride
// ld, matrix stride stride), into contiguous [batch, rows, cols]. A warp per row.
__global__ void tf32_split_kernel(const float* x, int64_t ld, int64_t stride, int64_t batch, int64_t rows,
                                  int64_t cols, float* hi, float* lo) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
  for (int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; r < batch * rows; r += warps) {
    const float* xr = x + (r / rows) * stride + (r % rows) * ld;
    for (int64_t c = lane; c < cols; c += 32) {
      const float v = xr[c], h = tf32_round(v);
      hi[r * cols + c] = h;
      lo[r * cols + c] = tf32_round(v - h);
    }
  }
}

// One operand of a product as stored: rows x cols per matrix, `count` matrices (1 when
// every matrix of the batch shares it).
struct SplitOperand {
  int64_t rows, cols, count;
  int64_t elems() const { return rows * cols * count; }
};
inline SplitOperand split_a(const MatmulArgs& a) {
  return {a.trans_a ? a.k : a.m, a.trans_a ? a.m : a.k, a.batch > 1 && a.stride_a != 0 ? a.batch : 1};
}
inline SplitOperand split_b(const MatmulArgs& a) {
  return {a.trans_b ? a.n : a.k, a.trans_b ? a.k : a.n, a.batch > 1 && a.stride_b != 0 ? a.batch : 1};
}

// Scratch bytes tf32x3_matmul needs for a: both operands' hi and lo copies.
inline size_t tf32x3_scratch_bytes(const MatmulArgs& a) {
  return (size_t)(split_a(a).elems() + split_b(a).elems()) * 2 * sizeof(float);
}

// a (float32, k > 0) as three TF32 products through run(MatmulArgs), each of which
// must compute in TF32 with a's contract (C = alpha op(A) op(B) + beta C or + addend,
// then bias and activation). The small terms go first and the product with a's bias
// and activation last; a's addend or beta applies to the first, and the later two add
// into C (beta 1, in place).
template <class Run>
void tf32x3_matmul(const MatmulArgs& a, void* scratch, cudaStream_t s, Run&& run) {
  const SplitOperand sa = split_a(a), sb = split_b(a);
  float* ah = static_cast<float*>(scratch);
  float *al = ah + sa.elems(), *bh = al + sa.elems(), *bl = bh + sb.elems();
  PERCEIVER_LAUNCH(warp_rows_grid(sa.count * sa.rows, kThreads / 32), kThreads, 0, s, tf32_split_kernel)(
      a.a, a.lda, a.stride_a, sa.count, sa.rows, sa.cols, ah, al);
  PERCEIVER_LAUNCH(warp_rows_grid(sb.count * sb.rows, kThreads / 32), kThreads, 0, s, tf32_split_kernel)(
      a.b, a.ldb, a.stride_b, sb.count, sb.rows, sb.cols, bh, bl);
  MatmulArgs p = a;
  p.lda = sa.cols;
  p.ldb = sb.cols;
  p.stride_a = sa.count > 1 ? sa.rows * sa.cols : 0;
  p.stride_b = sb.count > 1 ? sb.rows * sb.cols : 0;
  p.bias = nullptr;
  p.act = Activation::None;
  p.a = al, p.b = bh;
  run(p);
  p.addend = nullptr;
  p.beta = 1.f;
  p.a = ah, p.b = bl;
  run(p);
  p.a = ah, p.b = bh;
  p.bias = a.bias;
  p.act = a.act;
  run(p);
}

}  // namespace cuda
}  // namespace perceiver
