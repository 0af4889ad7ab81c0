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
// Products with few output tiles over a long k (on by default; PERCEIVER_CUDA_GEMM_SPLITK=0
// turns it off): k cut into slices whose products run side by side (below).
//
// Compiled by gemm.cu and by the CPU emulation (native/cuda/emu), whose check runs all
// three with products done as loops (TF32 ones over operands cut to their top 19 bits).
#pragma once
#include <algorithm>
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

// ---- products with few output tiles over a long k: split-K ----
//
// The ImageNet encoder's attention gradient has dQ = dS K, [512, 50176] x [50176, 261]
// per image: 4 x 3 output tiles of 128 x 128, so 12 tiles per image for 132 SMs, each
// walking all 50176 of k. On an H200 cuBLASLt ran it at 21 TFLOP/s with 2 images and at
// 51 with 8 (cuda_gemm_check; 2.1 ms of a bf16 training step), where its kernels for
// such operands reach about 100 with tiles to spare. Here each matrix's k is cut into
// slices, enough for four waves of tiles: a product over the slices as a batch (and one
// more for a shorter last slice) writes float32 partials, and a pass adds each element's
// slices in order, then the bias and the addend (or C's own values), and rounds once.
// One matrix of the batch at a time, so the partials stay small (splits x m x n floats).
struct SplitKPlan {
  int64_t splits = 0;  // slices per matrix; 0: the product is not split
  int64_t kc = 0;      // k of each slice but the last, which takes the rest
  int64_t ldp = 0;     // the partials' row stride (float32 elements)
  size_t bytes = 0;    // scratch for one matrix's partials
};
constexpr int64_t kSplitKMinK = 16384;            // k at least this,
constexpr int64_t kSplitKMinRatio = 16;           // and this many times the larger of m and n
constexpr int64_t kSplitKMinSlice = 512;          // k of a slice, at least
constexpr int64_t kSplitKMaxSplits = 64;
constexpr int64_t kSplitKMaxBytes = int64_t(64) << 20;  // one matrix's partials, at most

// Whether (and how) a is split on a device of sm_count SMs: batched products without an
// activation whose batch of matrices has fewer output tiles than the device has SMs,
// over a k both long and much longer than m and n. Not one matrix: cuBLASLt splits that
// itself. On an H200 (2026-11-28, cuda_gemm_check, bf16 [512, 50176] x [50176, 261]),
// whole against split: one matrix 0.163 against 0.207 ms (82 TFLOP/s whole), two
// 1.241 against 0.414, eight 2.095 against 1.653.
inline SplitKPlan splitk_plan(const MatmulArgs& a, int sm_count) {
  SplitKPlan p;
  if (sm_count <= 0 || a.act != Activation::None || a.batch < 2 || a.m < 1 || a.n < 1) return p;
  if (a.k < kSplitKMinK || a.k < kSplitKMinRatio * std::max(a.m, a.n)) return p;
  const int64_t tiles = ((a.m + 127) / 128) * ((a.n + 127) / 128);  // per matrix
  if (a.batch * tiles >= sm_count) return p;
  const int64_t ldp = round_up(a.n, 4);
  int64_t splits = std::min(kSplitKMaxSplits, (4 * (int64_t)sm_count + tiles - 1) / tiles);
  splits = std::min(splits, kSplitKMaxBytes / (a.m * ldp * (int64_t)sizeof(float)));
  if (splits < 2) return p;
  // Slices of whole 16-byte units of either dtype, so that they start as aligned as A and B.
  const int64_t kc = std::max(kSplitKMinSlice, round_up((a.k + splits - 1) / splits, 8));
  splits = (a.k + kc - 1) / kc;
  if (splits < 2) return p;
  p.splits = splits;
  p.kc = kc;
  p.ldp = ldp;
  p.bytes = (size_t)(splits * a.m * ldp) * sizeof(float);
  return p;
}

// C (one matrix, row stride ldc) = the sum of its `splits` partials (in order) + bias,
// + the addend or beta C. O: C's element (T, or float for a float32 C).
template <class T, class O>
__global__ void splitk_sum_kernel(const float* part, int64_t splits, int64_t m, int64_t n, int64_t ldp, const T* bias,
                                  const O* addend, float beta, O* c, int64_t ldc) {
  const int64_t total = m * n, slice = m * ldp;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = e / n, j = e % n;
    const float* p = part + i * ldp + j;
    float v = 0.f;
    for (int64_t t = 0; t < splits; t++) v += p[t * slice];
    if (bias) v += to_f(bias[j]);
    O* out = c + i * ldc + j;
    if (addend) v += to_f(addend[i * ldc + j]);
    else if (beta != 0.f) v += beta * to_f(*out);
    *out = from_f<O>(v);
  }
}

// a (no activation) through plan's slices, with run(MatmulArgs) doing each product
// (float32 C, no bias or addend) and scratch holding plan.bytes.
template <class Run>
void splitk_matmul(const MatmulArgs& a, const SplitKPlan& plan, void* scratch, cudaStream_t s, Run&& run) {
  const size_t es = dtype_size(a.dtype), es_c = a.c_float32 ? 4 : es;
  auto at = [](const void* p, int64_t elems, size_t e) {
    return reinterpret_cast<const float*>(static_cast<const char*>(p) + elems * (int64_t)e);
  };
  float* part = static_cast<float*>(scratch);
  const int64_t full = plan.splits - 1, last_k = a.k - full * plan.kc;
  // Where slice t of a matrix starts: along A's rows of k (or its columns) and B's.
  const int64_t step_a = a.trans_a ? a.lda : 1, step_b = a.trans_b ? 1 : a.ldb;
  for (int64_t b = 0; b < a.batch; b++) {
    const float* A = at(a.a, b * a.stride_a, es);
    const float* B = at(a.b, b * a.stride_b, es);
    MatmulArgs p = a;
    p.bias = nullptr;
    p.addend = nullptr;
    p.beta = 0.f;
    p.c_float32 = a.dtype != DType::Float32;
    p.ldc = plan.ldp;
    p.batch = full;
    p.k = plan.kc;
    p.a = A, p.stride_a = plan.kc * step_a;
    p.b = B, p.stride_b = plan.kc * step_b;
    p.c = part, p.stride_c = a.m * plan.ldp;
    run(p);
    p.batch = 1;
    p.k = last_k;
    p.a = at(A, full * plan.kc * step_a, es), p.stride_a = 0;
    p.b = at(B, full * plan.kc * step_b, es), p.stride_b = 0;
    p.c = part + full * a.m * plan.ldp, p.stride_c = 0;
    run(p);
    // This matrix's C and addend (C's element type: T, or float for a float32 C).
    void* c = reinterpret_cast<char*>(a.c) + b * a.stride_c * (int64_t)es_c;
    const void* addend = a.addend ? at(a.addend, b * a.stride_c, es_c) : nullptr;
    DISPATCH_FLOAT("matmul (split-K)", a.dtype, T, {
      const T* bias = reinterpret_cast<const T*>(a.bias);
      auto sum = [&](auto o) {
        using O = decltype(o);
        PERCEIVER_LAUNCH(grid_for(a.m * a.n), kThreads, 0, s, splitk_sum_kernel<T, O>)(
            part, plan.splits, a.m, a.n, plan.ldp, bias, static_cast<const O*>(addend), a.beta, static_cast<O*>(c), a.ldc);
      };
      if (a.c_float32) sum(float{});
      else sum(T{});
    });
  }
}

}  // namespace cuda
}  // namespace perceiver
