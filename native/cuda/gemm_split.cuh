// Products through copies of their operands (gemm.cu): float32 as three TF32 products,
// and 16-bit products whose operands cuBLASLt could not read in 16-byte units.
//
// float32 products as three TF32 products (PERCEIVER_CUDA_TF32=3). Hopper's and
// Ampere's float32 GEMMs run on the CUDA cores (about 50 TFLOP/s on an H200, torch's
// default too), their TF32 tensor cores about 8x faster, at 10 mantissa bits. With x
// = hi + lo, both TF32, a·b = hi·hi + hi·lo + lo·hi + lo·lo, and the last term is
// about 2^-22 of the product: three TF32 products give float32's accuracy to within a
// few units in its last place (CUTLASS's "3xTF32"), where one TF32 product is off by
// about 2^-11. Each operand is split once per call into two copies (O(mk + kn) bytes,
// against the product's O(mnk) work), so only products large enough to repay the
// splits and two more launches take this path (gemm.cu's threshold).
//
// 16-bit products with unaligned operands (PERCEIVER_CUDA_GEMM_ALIGN=1; a candidate):
// cuBLASLt picks its kernels by the operands' alignment, and rows of 261 bf16 elements
// (522 bytes: the ImageNet encoder's inputs, and so its attention gradient's products
// in training) leave it 2-byte-aligned kernels. On an H200 those products ran at 50-110
// TFLOP/s where aligned ones run at 400-700. Such operands are copied with rows padded
// to 16 bytes, and an unaligned C is computed in such a copy and copied back.
//
// Compiled by gemm.cu and by the CPU emulation (native/cuda/emu), whose check runs both
// with products done as loops (TF32 ones over operands cut to their top 19 bits).
#pragma once
#include <cstring>

#include "../backend.h"
#include "common.cuh"
#include "copy_matrices.cuh"

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
// ld, matrix stride stride), into [batch, rows, cols] at row stride dld. A warp per row.
__global__ void tf32_split_kernel(const float* x, int64_t ld, int64_t stride, int64_t batch, int64_t rows,
                                  int64_t cols, float* hi, float* lo, int64_t dld) {
  each_row(batch * rows, [&](int64_t r, int t, int step) {
    const float* xr = x + (r / rows) * stride + (r % rows) * ld;
    for (int64_t c = t; c < cols; c += step) {
      const float v = xr[c], h = tf32_round(v);
      hi[r * dld + c] = h;
      lo[r * dld + c] = tf32_round(v - h);
    }
  });
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

// The copies' row stride: whole 16-byte units, so that cuBLASLt reads them so.
inline int64_t split_ld(const SplitOperand& o) { return round_up16(o.cols, sizeof(float)); }

// Scratch bytes tf32x3_matmul needs for a: both operands' hi and lo copies.
inline size_t tf32x3_scratch_bytes(const MatmulArgs& a) {
  const SplitOperand sa = split_a(a), sb = split_b(a);
  return (size_t)(sa.count * sa.rows * split_ld(sa) + sb.count * sb.rows * split_ld(sb)) * 2 * sizeof(float);
}

// a (float32, k > 0) as three TF32 products through run(MatmulArgs), each of which
// must compute in TF32 with a's contract (C = alpha op(A) op(B) + beta C or + addend,
// then bias and activation). The small terms go first and the product with a's bias
// and activation last; a's addend or beta applies to the first, and the later two add
// into C (beta 1, in place).
template <class Run>
void tf32x3_matmul(const MatmulArgs& a, void* scratch, cudaStream_t s, Run&& run) {
  const SplitOperand sa = split_a(a), sb = split_b(a);
  const int64_t lda = split_ld(sa), ldb = split_ld(sb), na = sa.count * sa.rows * lda, nb = sb.count * sb.rows * ldb;
  float* ah = static_cast<float*>(scratch);
  float *al = ah + na, *bh = al + na, *bl = bh + nb;
  PERCEIVER_LAUNCH(warp_rows_grid(sa.count * sa.rows, kThreads / 32), kThreads, 0, s, tf32_split_kernel)(
      a.a, a.lda, a.stride_a, sa.count, sa.rows, sa.cols, ah, al, lda);
  PERCEIVER_LAUNCH(warp_rows_grid(sb.count * sb.rows, kThreads / 32), kThreads, 0, s, tf32_split_kernel)(
      a.b, a.ldb, a.stride_b, sb.count, sb.rows, sb.cols, bh, bl, ldb);
  MatmulArgs p = a;
  p.lda = lda;
  p.ldb = ldb;
  p.stride_a = sa.count > 1 ? sa.rows * lda : 0;
  p.stride_b = sb.count > 1 ? sb.rows * ldb : 0;
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

// Which of a 16-bit product's operands cuBLASLt could not read in 16-byte units, and
// the copies that replace them: A and B with rows padded to 16 bytes, C (and its
// addend) computed in such a copy and copied back.
struct AlignPlan {
  bool a, b, c;
  int64_t lda, ldb, ldc;
  size_t off_b, off_c, bytes;  // in the scratch: A's copy at 0
};
// Whether an operand at (ld, stride) is in whole 16-byte units.
inline bool units16(const void* p, int64_t ld, int64_t stride, size_t es) {
  return vec16_ok(p, ld, stride, 0, 16 / (int)es);
}
inline AlignPlan align_plan(const MatmulArgs& a) {
  const size_t es = dtype_size(a.dtype), es_c = a.c_float32 ? 4 : es;
  const SplitOperand sa = split_a(a), sb = split_b(a);
  AlignPlan p{};
  p.a = !units16(a.a, a.lda, sa.count > 1 ? a.stride_a : 0, es);
  p.b = !units16(a.b, a.ldb, sb.count > 1 ? a.stride_b : 0, es);
  p.c = !units16(a.c, a.ldc, a.batch > 1 ? a.stride_c : 0, es_c) ||
        (a.addend && !units16(a.addend, a.ldc, a.batch > 1 ? a.stride_c : 0, es_c));
  p.lda = p.a ? round_up16(sa.cols, es) : a.lda;
  p.ldb = p.b ? round_up16(sb.cols, es) : a.ldb;
  p.ldc = p.c ? round_up16(a.n, es_c) : a.ldc;
  // Each copy starts on 256 bytes.
  auto bytes = [](int64_t n, size_t e) { return (size_t)round_up(n * (int64_t)e, 256); };
  p.off_b = p.a ? bytes(sa.count * sa.rows * p.lda, es) : 0;
  p.off_c = p.off_b + (p.b ? bytes(sb.count * sb.rows * p.ldb, es) : 0);
  p.bytes = p.off_c + (p.c ? bytes(a.batch * a.m * p.ldc, es_c) : 0);
  return p;
}

// a through plan's copies in scratch (plan.bytes), with run(MatmulArgs) doing the
// product on aligned operands.
template <class Run>
void aligned_matmul(const MatmulArgs& a, const AlignPlan& plan, void* scratch, cudaStream_t s, Run&& run) {
  const size_t es = dtype_size(a.dtype), es_c = a.c_float32 ? 4 : es;
  char* base = static_cast<char*>(scratch);
  MatmulArgs p = a;
  if (plan.a) {
    const SplitOperand o = split_a(a);
    copy_matrices(a.a, a.lda, a.stride_a, base, plan.lda, o.rows * plan.lda, o.count, o.rows, o.cols, es, s);
    p.a = reinterpret_cast<const float*>(base);
    p.lda = plan.lda;
    p.stride_a = o.count > 1 ? o.rows * plan.lda : 0;
  }
  if (plan.b) {
    const SplitOperand o = split_b(a);
    copy_matrices(a.b, a.ldb, a.stride_b, base + plan.off_b, plan.ldb, o.rows * plan.ldb, o.count, o.rows, o.cols, es, s);
    p.b = reinterpret_cast<const float*>(base + plan.off_b);
    p.ldb = plan.ldb;
    p.stride_b = o.count > 1 ? o.rows * plan.ldb : 0;
  }
  if (plan.c) {
    float* c = reinterpret_cast<float*>(base + plan.off_c);
    const int64_t stride = a.m * plan.ldc;
    // C's input goes into the copy first: the addend (then added in place, beta 1),
    // or C itself where the product accumulates into it.
    if (a.addend || a.beta != 0.f)
      copy_matrices(a.addend ? a.addend : a.c, a.ldc, a.stride_c, c, plan.ldc, stride, a.batch, a.m, a.n, es_c, s);
    if (a.addend) p.addend = nullptr, p.beta = 1.f;
    p.c = c;
    p.ldc = plan.ldc;
    p.stride_c = stride;
  }
  run(p);
  if (plan.c) copy_matrices(p.c, plan.ldc, p.stride_c, a.c, a.ldc, a.stride_c, a.batch, a.m, a.n, es_c, s);
}

}  // namespace cuda
}  // namespace perceiver
