// Iteration over strided views for elementwise kernels. Operands are coalesced
// first (adjacent dimensions that are contiguous in every operand merge), so dense
// tensors run as one flat loop and only real broadcasts or permutations pay for
// index arithmetic, once per innermost row.
#pragma once
#include <cstdint>

#include "../backend.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {

template <int N>
struct StridedIter {
  int ndim = 0;
  int64_t shape[8];
  int64_t strides[N][8];

  // All views must share `shape`.
  StridedIter(const View* const* views) {
    const View& ref = *views[0];
    int nd = 0;
    for (int d = 0; d < ref.ndim; d++) {
      if (ref.shape[d] == 1) continue;  // size-1 dims carry no offset
      shape[nd] = ref.shape[d];
      for (int i = 0; i < N; i++) strides[i][nd] = views[i]->strides[d];
      nd++;
    }
    // Merge dim d-1 into d when every operand steps through them as one.
    int out = 0;
    for (int d = 0; d < nd; d++) {
      if (out > 0) {
        bool merge = true;
        for (int i = 0; i < N; i++)
          if (strides[i][out - 1] != strides[i][d] * shape[d]) merge = false;
        if (merge) {
          shape[out - 1] *= shape[d];
          for (int i = 0; i < N; i++) strides[i][out - 1] = strides[i][d];
          continue;
        }
      }
      shape[out] = shape[d];
      for (int i = 0; i < N; i++) strides[i][out] = strides[i][d];
      out++;
    }
    ndim = out;
    if (ndim == 0) {  // a scalar (or all size-1 dims)
      ndim = 1;
      shape[0] = 1;
      for (int i = 0; i < N; i++) strides[i][0] = 0;
    }
  }

  int64_t inner() const { return shape[ndim - 1]; }
  int64_t rows() const {
    int64_t r = 1;
    for (int d = 0; d < ndim - 1; d++) r *= shape[d];
    return r;
  }
  // Element offsets of row r's first element in each operand.
  void row_offsets(int64_t r, int64_t* off) const {
    for (int i = 0; i < N; i++) off[i] = 0;
    for (int d = ndim - 2; d >= 0; d--) {
      int64_t idx = r % shape[d];
      r /= shape[d];
      for (int i = 0; i < N; i++) off[i] += idx * strides[i][d];
    }
  }
  // fn(row offsets[N], inner strides[N], length) for every row, in parallel.
  template <class F>
  void run(F fn, int64_t min_grain_elems = 16384) const {
    int64_t n = inner(), r = rows();
    if (n == 0 || r == 0) return;  // nothing to visit (and no division by zero below)
    int64_t inner_strides[N];
    for (int i = 0; i < N; i++) inner_strides[i] = strides[i][ndim - 1];
    if (r == 1) {
      // One long row: split it into pieces instead.
      parallel_for(n, min_grain_elems, [&](int64_t lo, int64_t hi, int) {
        int64_t off[N];
        for (int i = 0; i < N; i++) off[i] = lo * inner_strides[i];
        fn(off, inner_strides, hi - lo);
      });
      return;
    }
    int64_t grain = n >= min_grain_elems ? 1 : (min_grain_elems + n - 1) / n;
    parallel_for(r, grain, [&](int64_t lo, int64_t hi, int) {
      int64_t off[N];
      for (int64_t row = lo; row < hi; row++) {
        row_offsets(row, off);
        fn(off, inner_strides, n);
      }
    });
  }
};

}  // namespace cpu
}  // namespace perceiver
