// Strided batches of matrices copied row by row (attention_gemm.cu's padded copies,
// gemm_split.cuh's aligned copies). Apart from common.cuh because an inline launcher
// there would instantiate these kernels in every file that includes it.
#pragma once
#include "common.cuh"

namespace perceiver {
namespace cuda {

// The rows x cols matrices of a batch from (ld, stride) to (dld, dstride), columns
// [cols, fill_to) of each copied row zero: a warp per row, elements of E (a dtype's size:
// bits, so that zero bits are +0 in every float type).
template <class E>
__global__ void copy_matrices_kernel(const E* src, int64_t ld, int64_t stride, E* dst, int64_t dld, int64_t dstride,
                                     int64_t batch, int64_t rows, int64_t cols, int64_t fill_to) {
  each_row(batch * rows, [&](int64_t r, int t, int step) {
    const E* sr = src + (r / rows) * stride + (r % rows) * ld;
    E* dr = dst + (r / rows) * dstride + (r % rows) * dld;
    for (int64_t c = t; c < fill_to; c += step) dr[c] = c < cols ? sr[c] : E(0);
  });
}
inline void copy_matrices(const void* src, int64_t ld, int64_t stride, void* dst, int64_t dld, int64_t dstride,
                          int64_t batch, int64_t rows, int64_t cols, size_t es, cudaStream_t s, int64_t fill_to = 0) {
  auto launch = [&](auto e) {
    using E = decltype(e);
    PERCEIVER_LAUNCH(warp_rows_grid(batch * rows, kThreads / 32), kThreads, 0, s, copy_matrices_kernel<E>)(
        static_cast<const E*>(src), ld, stride, static_cast<E*>(dst), dld, dstride, batch, rows, cols,
        std::max(cols, fill_to));
  };
  if (es == 2) launch(uint16_t{});
  else launch(uint32_t{});
}

}  // namespace cuda
}  // namespace perceiver
