// Reductions over one axis of a contiguous [outer, n, inner] tensor. Sums
// accumulate in double so long rows (50,176 pixels) lose no precision; max and
// argmax propagate NaN like numpy (argmax returns the first NaN, else the first max).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../error.h"
#include "gemm.h"
#include "kernels.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {

namespace {

// Sums (means) of the columns of [outer, n, inner] with inner > 1: a block of
// adjacent columns at a time, walking the rows in order, so the loads are
// contiguous, the adds vectorise across columns and each column still sums in
// double in row order (the same bits as one column at a time).
void column_sums(const float* px, int64_t outer, int64_t n, int64_t inner, bool mean, const float* addend, float* po) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (inner + kCols - 1) / kCols;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n * kCols));
  parallel_for(outer * blocks, grain, [&](int64_t lo, int64_t hi, int) {
    double acc[kCols];
    for (int64_t t = lo; t < hi; t++) {
      const int64_t o = t / blocks, c0 = (t % blocks) * kCols;
      const int64_t w = std::min(kCols, inner - c0);
      const float* p = px + o * n * inner + c0;
      for (int64_t i = 0; i < w; i++) acc[i] = 0;
      for (int64_t j = 0; j < n; j++) {
        const float* row = p + j * inner;
        for (int64_t i = 0; i < w; i++) acc[i] += row[i];
      }
      float* dst = po + o * inner + c0;
      if (addend) {
        const float* add = addend + o * inner + c0;
        for (int64_t i = 0; i < w; i++) dst[i] = (float)(acc[i] + add[i]);
        continue;
      }
      for (int64_t i = 0; i < w; i++)
        dst[i] = (float)(mean ? (n ? acc[i] / (double)n : std::numeric_limits<double>::quiet_NaN()) : acc[i]);
    }
  });
}

// A contiguous row in double, in 8 interleaved partial sums (fixed order, so
// deterministic) rather than one chain bound by the latency of each add.
double row_sum(const float* p, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; l++) acc[l] += p[j + l];
  double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; j < n; j++) s += p[j];
  return s;
}

}  // namespace

void reduce(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner, const View& out, const float* addend) {
  const float* px = x.ptr<float>();
  if ((op == ReduceOp::Sum || op == ReduceOp::Mean) && inner > 1) {
    column_sums(px, outer, n, inner, op == ReduceOp::Mean, addend, out.ptr<float>());
    return;
  }
  int64_t total = outer * inner;
  int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n));
  parallel_for(total, grain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t idx = lo; idx < hi; idx++) {
      int64_t o = idx / inner, i = idx % inner;
      const float* p = px + o * n * inner + i;
      switch (op) {
        case ReduceOp::Sum:
        case ReduceOp::Mean: {
          double s = row_sum(p, n);  // inner == 1 here
          if (op == ReduceOp::Mean) s = n ? s / (double)n : std::numeric_limits<double>::quiet_NaN();
          if (addend) s += addend[idx];
          out.ptr<float>()[idx] = (float)s;
          break;
        }
        case ReduceOp::Max:
        case ReduceOp::Min: {
          float m = op == ReduceOp::Max ? -INFINITY : INFINITY;
          for (int64_t j = 0; j < n; j++) {
            float v = p[j * inner];
            if (v != v) { m = v; break; }
            if (op == ReduceOp::Max ? v > m : v < m) m = v;
          }
          out.ptr<float>()[idx] = m;
          break;
        }
        case ReduceOp::ArgMax: {
          int32_t best = 0;
          float m = n ? p[0] : 0;
          for (int64_t j = 0; j < n && m == m; j++) {
            float v = p[j * inner];
            if (v != v || v > m) { m = v; best = (int32_t)j; }
          }
          out.ptr<int32_t>()[idx] = best;
          break;
        }
      }
    }
  });
}

void softmax(const View& x, const View& out, int64_t rows, int64_t n, bool log) {
  const float* px = x.ptr<float>();
  float* po = out.ptr<float>();
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n));
  parallel_for(rows, grain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; r++) softmax_row(px + r * n, po + r * n, n, log);
  });
}

// Sum of a[0..n) and of (a - mean)^2, in 16 independent double partial sums so the
// loop vectorises and is not bound by the latency of one running sum. Double, not
// float: float lanes overflowed where a row's squared deviations pass 3e38 (elements
// of 1e20 came out 0), and lost the mean's digits to a large common offset (3e-4 of
// the output at 1e4 over 4096 elements).
constexpr int kLanes = 16;

double lane_sum(const float* a, int64_t n) {
  double acc[kLanes] = {0};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += a[j + l];
  double s = 0;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  for (; j < n; j++) s += a[j];
  return s;
}

double lane_sq_dev(const float* a, int64_t n, float mean) {
  double acc[kLanes] = {0};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) {
      const double d = (double)a[j + l] - mean;
      acc[l] += d * d;
    }
  double s = 0;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  for (; j < n; j++) {
    const double d = (double)a[j] - mean;
    s += d * d;
  }
  return s;
}


void layer_norm(const View& x, const float* weight, const float* bias, const View& out,
                int64_t rows, int64_t n, float eps) {
  const float* px = x.ptr<float>();
  float* po = out.ptr<float>();
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n));
  parallel_for(rows, grain, [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; r++) {
      const float* a = px + r * n;
      float* o = po + r * n;
      // Two passes: the mean first, then the centred variance, which stays exact
      // for rows with a large common offset where E[x^2] - E[x]^2 would cancel.
      float mean = (float)(lane_sum(a, n) / (double)n);
      float rstd = (float)(1.0 / std::sqrt(lane_sq_dev(a, n, mean) / (double)n + (double)eps));
      if (weight && bias) {
        for (int64_t j = 0; j < n; j++) o[j] = (a[j] - mean) * rstd * weight[j] + bias[j];
      } else {
        for (int64_t j = 0; j < n; j++) {
          float y = (a[j] - mean) * rstd;
          if (weight) y *= weight[j];
          if (bias) y += bias[j];
          o[j] = y;
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace perceiver
