// What the emulation's checks share (native/cuda/emu): loads and stores of every
// dtype, arrays on the emulated device, the comparisons and their counts; and the
// check families, one file each, that emu_check.cc's main runs.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "../../backend.h"
#include "../../storage.h"
#include "bits.h"

namespace perceiver::emu::check {

using perceiver::DType;
using perceiver::Device;
using perceiver::DeviceType;
using perceiver::Storage;
using perceiver::View;
using perceiver::dtype_name;

inline int g_failures = 0, g_checks = 0;

// An array on the emulated device (a Storage in host memory, 4 bytes per element
// whatever the dtype, with room to spare), for the kernels that take Views.
struct Buf {
  std::unique_ptr<Storage> s;
  DType dt;
  Buf(DType t, int64_t n) : s(new Storage(nullptr, Device{DeviceType::CUDA, 0}, (size_t)(n + 8) * 4)), dt(t) {}
  // A [rows, n] view (or [n] broadcast over rows with bcast), `offset` elements in.
  View view(int64_t rows, int64_t n, bool bcast = false, int64_t offset = 0) const {
    View v;
    v.storage = s.get();
    v.dtype = dt;
    v.offset_bytes = offset * (int64_t)perceiver::dtype_size(dt);
    v.ndim = 2;
    v.shape[0] = rows;
    v.shape[1] = n;
    v.strides[0] = bcast ? 0 : n;
    v.strides[1] = 1;
    return v;
  }
  void set(int64_t i, float x) { store(s->data(), dt, i, x); }
  float get(int64_t i) const { return load(s->data(), dt, i); }
};

// A view of `b` with the given shape and element strides, `offset` elements in.
inline View view_of(const Buf& b, DType dt, std::initializer_list<int64_t> shape,
                    std::initializer_list<int64_t> strides, int64_t offset = 0) {
  View v;
  v.storage = b.s.get();
  v.dtype = dt;
  v.offset_bytes = offset * (int64_t)perceiver::dtype_size(dt);
  v.ndim = (int)shape.size();
  int d = 0;
  for (int64_t s : shape) v.shape[d++] = s;
  d = 0;
  for (int64_t s : strides) v.strides[d++] = s;
  return v;
}

// Element i of any dtype, as double.
inline double get_any(const Buf& b, DType dt, int64_t i) {
  const void* p = b.s->data();
  if (dt == DType::Int32) return static_cast<const int32_t*>(p)[i];
  if (dt == DType::UInt8) return static_cast<const uint8_t*>(p)[i];
  return load(p, dt, i);
}

// A dtype array of n elements held in floats (16-bit types use the first half), with
// one spare so that an empty one still has an address.
struct Arr {
  DType dt;
  std::vector<float> v;
  Arr(DType t, int64_t n) : dt(t), v((size_t)n + 1) {}
  void set(int64_t i, double x) { store(v.data(), dt, i, (float)x); }
  double get(int64_t i) const { return load(v.data(), dt, i); }
  void* p() { return v.data(); }
  std::vector<double> all(int64_t n) const {
    std::vector<double> r((size_t)n);
    for (int64_t i = 0; i < n; i++) r[i] = get(i);
    return r;
  }
};

// |got - want| / (|want| + rms(want)) <= tol everywhere.
inline void compare(const std::string& what, const std::vector<double>& want, const std::vector<double>& got, DType dt) {
  const double tol = dt == DType::Float32 ? 1e-5 : dt == DType::BFloat16 ? 2e-2 : 4e-3;
  double ss = 0;
  for (double w : want) ss += w * w;
  const double rms = std::sqrt(ss / std::max<size_t>(1, want.size()));
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const double e = std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + rms + 1e-30);
    worst = std::max(worst, e);
  }
  g_checks++;
  const bool ok = worst <= tol;
  if (!ok) g_failures++;
  std::printf("%s %-60s worst=%.2e (tol %.0e)\n", ok ? "PASS" : "FAIL", what.c_str(), worst, tol);
}

// Bit for bit: the fused updates round every step as the composed ops do, and the
// generator is the CPU's.
inline void compare_exact(const std::string& what, const std::vector<float>& want, const std::vector<float>& got) {
  int64_t differ = 0, first = -1;
  for (size_t i = 0; i < want.size(); i++)
    if (std::memcmp(&want[i], &got[i], 4) != 0 && differ++ == 0) first = (int64_t)i;
  g_checks++;
  if (differ) g_failures++;
  if (differ)
    std::printf("FAIL %-60s %lld of %zu differ (first at %lld: %.9g, want %.9g)\n", what.c_str(), (long long)differ,
                want.size(), (long long)first, got[first], want[first]);
  else
    std::printf("PASS %-60s bit for bit (%zu)\n", what.c_str(), want.size());
}

// |got - want| / (|want| + rms(want)) over one array, as compare() does.
inline double worst_of(const std::vector<double>& want, const std::vector<double>& got) {
  double ss = 0;
  for (double w : want) ss += w * w;
  const double rms = std::sqrt(ss / std::max<size_t>(1, want.size()));
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++)
    worst = std::max(worst, std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + rms + 1e-30));
  return worst;
}

// Calls fn(iy, ix, ky, kx) for each tap of the k x k window at output (oy, ox) (stride
// and padding alike in both axes) that lies inside the h x w input, in row-major order.
template <class F>
inline void each_tap(int64_t oy, int64_t ox, int64_t k, int64_t stride, int64_t pad, int64_t h, int64_t w, F&& fn) {
  for (int64_t ky = 0; ky < k; ky++)
    for (int64_t kx = 0; kx < k; kx++) {
      const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
      if (iy >= 0 && iy < h && ix >= 0 && ix < w) fn(iy, ix, ky, kx);
    }
}

// The families, one file each.
void check_attention(const std::string& filter);  // check_attention.cc: attention.cu's forward
void check_composed(const std::string& filter);   // check_composed.cc: attention_gemm.cu
void check_flash(const std::string& filter);      // check_flash.cc: attention_backward.cu
void check_rows();                                // check_rows.cc: elementwise.cu and reduce.cu
void check_elementwise();                         //   (the 16-byte kernels; the rest)
void check_training();                            // check_training.cc: backward.cu
// Layer norm's gradient (gx, and gw and gb with sums) against double sums; check_rows
// runs it at the 16-byte kernels' shapes too.
void check_layer_norm_backward(DType dt, int64_t rows, int64_t n, bool affine, bool sums, bool addends = false);
// Softmax's gradient from probabilities in `in` into `out` against double sums.
void check_softmax_backward(DType in, DType out, int64_t rows, int64_t n);
void check_ops();                                 // check_ops.cc: update.cu, random.cu and the others
void check_races();                               // check_races.cc: the race detection itself
void check_tune();                                // check_tune.cc: attention_tune.cu
void check_gemm_split();                          // check_gemm_split.cc: gemm_split.cuh (3xTF32)

}  // namespace perceiver::emu::check
