// elementwise.cu and reduce.cu on the emulation: "rows", the binary ops and layer norm
// with and without the 16-byte kernels (taken unless PERCEIVER_CUDA_VECTOR_KERNELS=0
// in the environment, as on a GPU); "elementwise", the rest of both files.
#include <cstdlib>
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../gelu.cuh"
#include "../kernels.h"
#include "check.h"

namespace perceiver::emu::check {

using perceiver::BinaryOp;

namespace {

void check_binary(DType dt, BinaryOp op, const char* name, int64_t rows, int64_t n, int bcast, int64_t offset) {
  // bcast: 0 both dense, 1 b a row over the rows, 2 a a row over the rows.
  Buf a(dt, rows * n + offset), b(dt, rows * n + offset), out(dt, rows * n + offset);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.5f, 2.f);
  for (int64_t i = 0; i < rows * n + offset; i++) {
    a.set(i, u(rng) * (i % 3 ? 1 : -1));
    b.set(i, u(rng));
  }
  perceiver::cuda::binary(op, a.view(rows, n, bcast == 2, offset), b.view(rows, n, bcast == 1, offset),
                          out.view(rows, n, false, offset), nullptr);
  std::vector<double> want, got;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n; j++) {
      const double x = a.get(offset + (bcast == 2 ? j : r * n + j)), y = b.get(offset + (bcast == 1 ? j : r * n + j));
      double w = 0;
      switch (op) {
        case BinaryOp::Add: w = x + y; break;
        case BinaryOp::Sub: w = x - y; break;
        case BinaryOp::Mul: w = x * y; break;
        case BinaryOp::Div: w = x / y; break;
        default: w = std::max(x, y); break;
      }
      want.push_back(w);
      got.push_back(out.get(offset + r * n + j));
    }
  char what[160];
  std::snprintf(what, sizeof what, "%s %s [%lld, %lld]%s%s", name, dtype_name(dt), (long long)rows, (long long)n,
                bcast == 1 ? " + row" : bcast == 2 ? " row +" : "", offset ? " from an offset" : "");
  compare(what, want, got, dt);
}

void check_layer_norm(DType dt, int64_t rows, int64_t n, bool affine, int64_t offset) {
  Buf x(dt, rows * n + offset), w(dt, n + offset), b(dt, n + offset), out(dt, rows * n + offset);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (int64_t i = 0; i < rows * n + offset; i++) x.set(i, u(rng) + 2.f);
  for (int64_t i = 0; i < n + offset; i++) {
    w.set(i, 0.5f + (float)(i % 7) / 7.f);
    b.set(i, (float)(i % 5) / 5.f - 0.5f);
  }
  const char* wp = static_cast<const char*>(w.s->data()) + offset * perceiver::dtype_size(dt);
  const char* bp = static_cast<const char*>(b.s->data()) + offset * perceiver::dtype_size(dt);
  perceiver::cuda::layer_norm(x.view(rows, n, false, offset), affine ? wp : nullptr, affine ? bp : nullptr,
                              out.view(rows, n, false, offset), rows, n, 1e-5f, nullptr);
  std::vector<double> want, got;
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < n; j++) mean += x.get(offset + r * n + j);
    mean /= (double)n;
    for (int64_t j = 0; j < n; j++) var += std::pow(x.get(offset + r * n + j) - mean, 2);
    const double rstd = 1 / std::sqrt(var / (double)n + 1e-5);
    for (int64_t j = 0; j < n; j++) {
      double y = (x.get(offset + r * n + j) - mean) * rstd;
      if (affine) y = y * w.get(offset + j) + b.get(offset + j);
      want.push_back(y);
      got.push_back(out.get(offset + r * n + j));
    }
  }
  char what[160];
  std::snprintf(what, sizeof what, "layer_norm %s [%lld, %lld]%s%s", dtype_name(dt), (long long)rows, (long long)n,
                affine ? "" : " without affine", offset ? " from an offset" : "");
  compare(what, want, got, dt);
}

// x rounded to dt, as the kernels' stores round it.
float round_to(DType dt, float x) {
  float tmp[2] = {0.f, 0.f};
  store(tmp, dt, 0, x);
  return load(tmp, dt, 0);
}

// The kernels' own float arithmetic (gelu.cuh): the 16-byte kernels and the element
// kernels must both give exactly these bits.
using perceiver::cuda::gelu_derivative;
using perceiver::cuda::gelu_erf;
using perceiver::cuda::gelu_tanh;
float act_f(perceiver::Activation act, float v) {
  switch (act) {
    case perceiver::Activation::None: return v;
    case perceiver::Activation::Relu: return v > 0.f ? v : (v == v ? 0.f : v);
    case perceiver::Activation::Gelu: return gelu_erf(v);
    case perceiver::Activation::GeluTanh: return gelu_tanh(v);
  }
  return v;
}
// GELU and its gradient in the negative tail, float32, relative to double values at
// the same inputs: the checks above compare with the kernels' own forms, so only
// this sees a formula that cancels (1 + erf and 1 + tanh lost every digit from about x = -5.5;
// the CPU's forms keep them).
void check_gelu_tails() {
  const std::vector<float> xs = {-12.f, -9.f, -7.5f, -6.f, -5.5f, -5.f, -4.f, -3.f, -1.f, 0.5f, 3.f};
  const int64_t n = (int64_t)xs.size();
  const double c = std::sqrt(2.0 / M_PI), k = 0.044715;
  auto erf_form = [](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); };
  auto tanh_form = [&](double v) { return v / (1 + std::exp(-2 * c * (v + k * v * v * v))); };
  auto erf_grad = [](double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI); };
  auto tanh_grad = [&](double v) {
    const double e = std::exp(-2 * c * (v + k * v * v * v)), s = 1 / (1 + e);
    return s + 2 * c * v * (1 + 3 * k * v * v) * e * s * s;
  };
  Buf x(DType::Float32, n), g(DType::Float32, n), out(DType::Float32, n);
  for (int64_t i = 0; i < n; i++) x.set(i, xs[(size_t)i]), g.set(i, 1.0);
  auto relative = [&](const char* what, auto&& ref) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
      const double want = ref((double)xs[(size_t)i]), got = out.get(i);
      if (std::fabs(want) < 1e-30) continue;  // past float's range (the tanh form at -12)
      worst = std::max(worst, std::isnan(got) ? INFINITY : std::fabs(got - want) / std::fabs(want));
    }
    g_checks++;
    const bool ok = worst <= 1e-4;
    if (!ok) g_failures++;
    std::printf("%s %-60s worst=%.2e (tol 1e-04, relative)\n", ok ? "PASS" : "FAIL", what, worst);
  };
  perceiver::cuda::unary(perceiver::UnaryOp::Gelu, x.view(1, n), out.view(1, n), 1.f, 0.f, nullptr);
  relative("gelu's negative tail, float32", erf_form);
  perceiver::cuda::unary(perceiver::UnaryOp::GeluTanh, x.view(1, n), out.view(1, n), 1.f, 0.f, nullptr);
  relative("gelu tanh's negative tail, float32", tanh_form);
  perceiver::cuda::gelu_backward(x.s->data(), g.s->data(), out.s->data(), n, false, DType::Float32, nullptr);
  relative("gelu_backward's negative tail, float32", erf_grad);
  perceiver::cuda::gelu_backward(x.s->data(), g.s->data(), out.s->data(), n, true, DType::Float32, nullptr);
  relative("gelu_backward tanh's negative tail, float32", tanh_grad);
}

// A dense unary op over [rows, n] `offset` elements in (whole packs at offset 0; an
// offset of one takes the element kernel), bit for bit.
void check_unary_dense(DType dt, perceiver::UnaryOp op, const char* name, int64_t rows, int64_t n, int64_t offset) {
  Buf x(dt, rows * n + offset), out(dt, rows * n + offset);
  for (int64_t i = 0; i < rows * n + offset; i++) x.set(i, -5.0 + 10.0 * (double)((i * 37) % 1001) / 1000.0);
  perceiver::cuda::unary(op, x.view(rows, n, false, offset), out.view(rows, n, false, offset), 1.5f, -0.25f, nullptr);
  std::vector<float> want, got;
  for (int64_t i = offset; i < offset + rows * n; i++) {
    const float v = x.get(i);
    float w = 0.f;
    switch (op) {
      case perceiver::UnaryOp::Gelu: w = gelu_erf(v); break;
      case perceiver::UnaryOp::GeluTanh: w = gelu_tanh(v); break;
      case perceiver::UnaryOp::Exp: w = expf(v); break;
      default: w = 1.5f * v + -0.25f; break;  // Affine
    }
    want.push_back(round_to(dt, w));
    got.push_back(out.get(i));
  }
  char what[160];
  std::snprintf(what, sizeof what, "unary %s %s [%lld, %lld]%s", name, dtype_name(dt), (long long)rows, (long long)n,
                offset ? " from an offset" : "");
  compare_exact(what, want, got);
}

// The GEMM's bias and activation pass in place on [batch, rows, n] at row stride ldc
// and batch stride stride_c, `offset` elements in, bit for bit; elements between the
// rows must stay as they were.
void check_bias_act(DType dt, perceiver::Activation act, const char* name, int64_t batch, int64_t rows, int64_t n,
                    int64_t ldc, int64_t stride_c, bool bias, int64_t offset) {
  const int64_t size = offset + (batch - 1) * stride_c + (rows - 1) * ldc + n + 3;
  Buf c(dt, size), b(dt, n + offset);
  for (int64_t i = 0; i < size; i++) c.set(i, -4.0 + 8.0 * (double)((i * 53) % 997) / 996.0);
  for (int64_t j = 0; j < n + offset; j++) b.set(j, (double)(j % 9) / 4.0 - 1.0);
  std::vector<float> before(size);
  for (int64_t i = 0; i < size; i++) before[i] = c.get(i);
  const size_t es = perceiver::dtype_size(dt);
  char* cp = static_cast<char*>(c.s->data()) + offset * es;
  const char* bp = static_cast<const char*>(b.s->data()) + offset * es;
  perceiver::cuda::bias_act(cp, bias ? bp : nullptr, batch, rows, n, ldc, stride_c, act, dt, nullptr);
  std::vector<float> want = before, got(size);
  for (int64_t g = 0; g < batch; g++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < n; j++) {
        const int64_t i = offset + g * stride_c + r * ldc + j;
        float v = before[i];
        if (bias) v += b.get(offset + j);
        want[i] = round_to(dt, act_f(act, v));
      }
  for (int64_t i = 0; i < size; i++) got[i] = c.get(i);
  char what[200];
  std::snprintf(what, sizeof what, "bias_act %s %s [%lld, %lld, %lld] ld %lld/%lld%s%s", name, dtype_name(dt),
                (long long)batch, (long long)rows, (long long)n, (long long)ldc, (long long)stride_c,
                bias ? " + bias" : "", offset ? " from an offset" : "");
  compare_exact(what, want, got);
}

// GELU's gradient over n elements `offset` in, bit for bit.
void check_gelu_backward_dense(DType dt, bool tanh_form, int64_t n, int64_t offset) {
  Buf x(dt, n + offset), g(dt, n + offset), gx(dt, n + offset);
  for (int64_t i = 0; i < n + offset; i++) {
    x.set(i, -6.0 + 12.0 * (double)((i * 29) % 1009) / 1008.0);
    g.set(i, 1.0 + (double)(i % 7) / 7);
  }
  const size_t es = perceiver::dtype_size(dt);
  auto at = [&](const Buf& b) { return static_cast<char*>(b.s->data()) + offset * es; };
  perceiver::cuda::gelu_backward(at(x), at(g), at(gx), n, tanh_form, dt, nullptr);
  std::vector<float> want, got;
  for (int64_t i = offset; i < offset + n; i++) {
    want.push_back(round_to(dt, g.get(i) * gelu_derivative(x.get(i), tanh_form)));
    got.push_back(gx.get(i));
  }
  char what[160];
  std::snprintf(what, sizeof what, "gelu_backward %s %s [%lld]%s", tanh_form ? "tanh" : "erf", dtype_name(dt),
                (long long)n, offset ? " from an offset" : "");
  compare_exact(what, want, got);
}

// GELU's gradient far out, float32: 1 and 0, where the tanh form's x^3 overflowed into
// 0 * inf = NaN on an H200 (2026-11-28) before backward.cu returned them past |x| = 10
// (the erf form's gradient at -11 is still 2e-26: it starts further out).
void check_gelu_backward_far(bool tanh_form) {
  std::vector<float> xs = {-3e38f, -1e20f, -1e4f, 1e4f, 1e20f, 3e38f};
  if (tanh_form) xs.insert(xs.end(), {-11.f, 11.f});
  const int64_t n = (int64_t)xs.size();
  Buf x(DType::Float32, n), g(DType::Float32, n), gx(DType::Float32, n);
  for (int64_t i = 0; i < n; i++) {
    x.set(i, xs[(size_t)i]);
    g.set(i, 1.0);
  }
  perceiver::cuda::gelu_backward(x.s->data(), g.s->data(), gx.s->data(), n, tanh_form, DType::Float32, nullptr);
  std::vector<float> want, got;
  for (int64_t i = 0; i < n; i++) {
    want.push_back(xs[(size_t)i] > 0 ? 1.f : 0.f);
    got.push_back(std::fabs(gx.get(i)));
  }
  compare_exact(std::string("gelu_backward far out ") + (tanh_form ? "tanh" : "erf") + " float32", want, got);
}

// Sums and means over the middle axis of [outer, n, inner] with the workspace the
// backend would give (the 16-byte column sums where inner is whole packs and x is
// aligned: chunks of rows, ragged last chunks, lanes past the last pack), against
// double sums in row order.
void check_column_sums(DType dt, int64_t outer, int64_t n, int64_t inner, int64_t offset) {
  using perceiver::ReduceOp;
  const int64_t total = outer * n * inner, outs = outer * inner;
  Buf x(dt, total + offset), out(dt, outs);
  std::mt19937 rng(43);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int64_t i = 0; i < total + offset; i++) x.set(i, u(rng));
  // The sums once more with an addend (a gradient already accumulated for a shared bias).
  Buf addend(dt, outs);
  for (int64_t i = 0; i < outs; i++) addend.set(i, 8.f * u(rng));
  for (int pass = 0; pass < 3; pass++) {
    const ReduceOp op = pass == 1 ? ReduceOp::Mean : ReduceOp::Sum;
    const bool with_addend = pass == 2;
    const View xv = x.view(1, total, false, offset);
    std::vector<double> ws(perceiver::cuda::reduce_workspace(op, xv, outer, n, inner) / 8 + 1, NAN);
    perceiver::cuda::reduce(op, xv, outer, n, inner, out.view(1, outs), ws.data(), nullptr,
                            with_addend ? addend.s->data() : nullptr);
    std::vector<double> want, got;
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++) {
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += x.get(offset + (o * n + j) * inner + i);
        want.push_back(op == ReduceOp::Sum ? sum + (with_addend ? addend.get(o * inner + i) : 0.0) : sum / (double)n);
        got.push_back(out.get(o * inner + i));
      }
    char what[200];
    std::snprintf(what, sizeof what, "column %s %s [%lld, %lld, %lld]%s%s, workspace %zu bytes", op == ReduceOp::Sum ? "sum" : "mean",
                  dtype_name(dt), (long long)outer, (long long)n, (long long)inner, offset ? " from an offset" : "",
                  with_addend ? " + addend" : "", (ws.size() - 1) * 8);
    compare(what, want, got, dt);
  }
}

// Softmax and log-softmax over rows of n, one element of every third row -inf (a masked
// key), against double sums.
void check_softmax_rows(DType dt, int64_t rows, int64_t n, bool log) {
  Buf x(dt, rows * n), out(dt, rows * n);
  std::mt19937 rng(47);
  std::uniform_real_distribution<float> u(-6.f, 6.f);
  for (int64_t i = 0; i < rows * n; i++) x.set(i, u(rng));
  for (int64_t r = 0; r < rows; r += 3) x.set(r * n + (r * 7) % n, -INFINITY);
  perceiver::cuda::softmax(x.view(rows, n), out.view(rows, n), rows, n, log, nullptr);
  std::vector<double> want, got;
  for (int64_t r = 0; r < rows; r++) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) mx = std::max(mx, (double)x.get(r * n + j));
    for (int64_t j = 0; j < n; j++) sum += std::exp(x.get(r * n + j) - mx);
    for (int64_t j = 0; j < n; j++) {
      const double v = x.get(r * n + j) - mx;
      const double o = out.get(r * n + j);
      if (log && std::isinf(v)) {  // a masked key's log-probability must be -inf exactly
        want.push_back(0);
        got.push_back(std::isinf(o) && o < 0 ? 0 : NAN);
        continue;
      }
      want.push_back(log ? v - std::log(sum) : std::exp(v) / sum);
      got.push_back(o);
    }
  }
  char what[160];
  std::snprintf(what, sizeof what, "%s %s [%lld, %lld] (masked keys)", log ? "log_softmax" : "softmax", dtype_name(dt),
                (long long)rows, (long long)n);
  compare(what, want, got, dt);
}

void check_fill_arange() {
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16, DType::Int32, DType::UInt8}) {
    const int64_t n = 1000;
    Buf f(dt, n), a(dt, n);
    perceiver::cuda::fill(f.view(1, n), 3.0, nullptr);
    perceiver::cuda::arange(a.view(1, n), dt == DType::UInt8 ? 0.0 : -10.0, 0.25, nullptr);
    std::vector<double> wf(n, 3.0), gf(n), wa(n), ga(n);
    for (int64_t i = 0; i < n; i++) {
      const double v = (dt == DType::UInt8 ? 0.0 : -10.0) + 0.25 * (double)i;
      // Integers truncate toward zero and saturate, as the CPU casts.
      wa[i] = dt == DType::Int32 ? std::trunc(v) : dt == DType::UInt8 ? std::min(255.0, std::trunc(v)) : v;
      gf[i] = get_any(f, dt, i);
      ga[i] = get_any(a, dt, i);
    }
    compare(std::string("fill ") + perceiver::dtype_name(dt), wf, gf, DType::Float32);  // 3 is exact in each
    const bool half = dt == DType::Float16 || dt == DType::BFloat16;  // rounds; the others are exact
    compare(std::string("arange ") + perceiver::dtype_name(dt), wa, ga, half ? dt : DType::Float32);
  }
}

// A double's nearest 16-bit value, ties to even, found among the neighbours of its
// rounding through float (the kernels' answer before they rounded to odd): the
// reference does not share their method.
double round16(double v, DType dt) {
  Buf one(dt, 1);
  one.set(0, (float)v);
  const uint16_t h = *static_cast<const uint16_t*>(one.s->data());
  double best = 0;
  bool have = false;
  for (int d = -1; d <= 1; d++) {
    const uint16_t c = (uint16_t)(h + d);
    *static_cast<uint16_t*>(one.s->data()) = c;
    const double x = get_any(one, dt, 0);
    const double e = std::fabs(x - v), be = std::fabs(best - v);
    if (!have || e < be || (e == be && (c & 1) == 0)) best = x, have = true;
  }
  return best;
}

// fill, arange and int32 casts into the 16-bit types round once: values whose nearest
// float is a 16-bit halfway point (as the CPU's to_float_odd).
void check_single_rounding() {
  for (DType dt : {DType::Float16, DType::BFloat16}) {
    const int frac = dt == DType::Float16 ? 10 : 7;  // significand bits after the point
    const double half_ulp = std::ldexp(1.0, -frac - 1), tiny = std::ldexp(1.0, -30);
    const std::string name = perceiver::dtype_name(dt);
    std::vector<float> want, got;
    for (double v : {1 + half_ulp + tiny, -(1 + half_ulp + tiny), 1 + 3 * half_ulp - tiny, 1 + half_ulp - tiny}) {
      Buf f(dt, 1);
      perceiver::cuda::fill(f.view(1, 1), v, nullptr);
      want.push_back((float)round16(v, dt));
      got.push_back((float)get_any(f, dt, 0));
    }
    compare_exact("fill rounds once " + name, want, got);
    want.clear(), got.clear();
    const int64_t n = 4;
    Buf a(dt, n);
    perceiver::cuda::arange(a.view(1, n), 1.0, half_ulp + tiny, nullptr);
    for (int64_t i = 0; i < n; i++) want.push_back((float)round16(1.0 + (double)i * (half_ulp + tiny), dt)), got.push_back((float)get_any(a, dt, i));
    compare_exact("arange rounds once " + name, want, got);
    if (dt != DType::BFloat16) continue;  // int32 within float16's range is exact in float
    want.clear(), got.clear();
    const int32_t ints[] = {(1 << 24) + (1 << 16) + 1, -((1 << 24) + (1 << 16) + 1), (1 << 24) + (1 << 16) - 1, 2147483647};
    Buf src(DType::Int32, 4), dst(dt, 4);
    for (int i = 0; i < 4; i++) static_cast<int32_t*>(src.s->data())[i] = ints[i];
    perceiver::cuda::copy(src.view(1, 4), dst.view(1, 4), nullptr);
    for (int i = 0; i < 4; i++) want.push_back((float)round16((double)ints[i], dt)), got.push_back((float)get_any(dst, dt, i));
    compare_exact("int32 cast rounds once " + name, want, got);
  }
}

void check_copies() {
  // A transpose ([5, 7] read as its [7, 5] transpose) in each dtype's bits, and dense
  // casts between the float types with a tail after whole packs of four.
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Int32, DType::UInt8}) {
    Buf src(dt, 35), dst(dt, 35);
    for (int64_t i = 0; i < 35; i++) {
      if (dt == DType::Int32) static_cast<int32_t*>(src.s->data())[i] = (int32_t)(i * 1000003 - 7);
      else if (dt == DType::UInt8) static_cast<uint8_t*>(src.s->data())[i] = (uint8_t)(i * 7);
      else src.set(i, (float)i / 3);
    }
    perceiver::cuda::copy(view_of(src, dt, {7, 5}, {1, 7}), view_of(dst, dt, {7, 5}, {5, 1}), nullptr);
    std::vector<double> want, got;
    for (int64_t r = 0; r < 7; r++)
      for (int64_t c = 0; c < 5; c++) want.push_back(get_any(src, dt, c * 7 + r)), got.push_back(get_any(dst, dt, r * 5 + c));
    compare(std::string("copy transposed ") + perceiver::dtype_name(dt), want, got, DType::Float32);
  }
  // Rows contiguous in both views but not whole 16-byte units (the row kernel, unless
  // PERCEIVER_CUDA_ROW_KERNELS=0): the ImageNet inputs' concat, rows of 258 from a
  // source broadcast over the batch into rows of 261 three elements in (the three
  // before each row must stay as they were), and a [B, N, H, D] -> [B, H, N, D] permute
  // of 41-wide heads.
  for (DType dt : {DType::Float32, DType::BFloat16, DType::UInt8}) {
    const int64_t B = 3, N = 5, C = 261, P = 258;
    Buf src(dt, N * P), dst(dt, B * N * C);
    auto put = [&](Buf& b, int64_t i, double x) {
      if (dt == DType::UInt8) static_cast<uint8_t*>(b.s->data())[i] = (uint8_t)x;
      else b.set(i, (float)x);
    };
    for (int64_t i = 0; i < N * P; i++) put(src, i, (double)(i % 250) + 1);
    for (int64_t i = 0; i < B * N * C; i++) put(dst, i, 0);
    perceiver::cuda::copy(view_of(src, dt, {B, N, P}, {0, P, 1}), view_of(dst, dt, {B, N, P}, {N * C, C, 1}, C - P),
                          nullptr);
    std::vector<double> want, got;
    for (int64_t b = 0; b < B; b++)
      for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
          want.push_back(c < C - P ? 0 : get_any(src, dt, n * P + c - (C - P)));
          got.push_back(get_any(dst, dt, (b * N + n) * C + c));
        }
    compare(std::string("copy rows of 258 into rows of 261 ") + perceiver::dtype_name(dt), want, got, DType::Float32);
    const int64_t H = 3, D = 41;
    Buf x(dt, B * N * H * D), y(dt, B * N * H * D);
    for (int64_t i = 0; i < B * N * H * D; i++) put(x, i, (double)(i % 249) + 1);
    perceiver::cuda::copy(view_of(x, dt, {B, H, N, D}, {N * H * D, D, H * D, 1}),
                          view_of(y, dt, {B, H, N, D}, {H * N * D, N * D, D, 1}), nullptr);
    want.clear(), got.clear();
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t n = 0; n < N; n++)
          for (int64_t d = 0; d < D; d++) {
            want.push_back(get_any(x, dt, ((b * N + n) * H + h) * D + d));
            got.push_back(get_any(y, dt, ((b * H + h) * N + n) * D + d));
          }
    compare(std::string("copy permuting 41-wide heads ") + perceiver::dtype_name(dt), want, got, DType::Float32);
  }
  // Enough rows (65,540) that each warp takes a run of four, stepping its offsets from
  // the first through four unmerged dims (the source broadcast over the batch, the
  // destination's heads 7 elements apart): items of two rows, so a run carries twice,
  // and 16,385 heads per batch item, so one run carries through all three outer dims.
  {
    const DType dt = DType::BFloat16;
    const int64_t B = 2, H = 16385, N = 2, C = 37, P = 34, G = N * C + 7;
    Buf src(dt, H * N * P), dst(dt, B * H * G);
    for (int64_t i = 0; i < H * N * P; i++) src.set(i, (float)(i % 251) + 1);
    for (int64_t i = 0; i < B * H * G; i++) dst.set(i, 0);
    perceiver::cuda::copy(view_of(src, dt, {B, H, N, P}, {0, N * P, P, 1}),
                          view_of(dst, dt, {B, H, N, P}, {H * G, G, C, 1}, C - P), nullptr);
    std::vector<double> want, got;
    for (int64_t b = 0; b < B; b++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t g = 0; g < G; g++) {
          const int64_t n = g / C, c = g % C;
          want.push_back(n >= N || c < C - P ? 0 : get_any(src, dt, (h * N + n) * P + c - (C - P)));
          got.push_back(get_any(dst, dt, (b * H + h) * G + g));
        }
    compare("copy rows in runs of four, carrying through three dims", want, got, DType::Float32);
  }
  const DType floats[] = {DType::Float32, DType::BFloat16, DType::Float16};
  for (DType from : floats)
    for (DType to : floats) {
      if (from == to) continue;
      const int64_t n = 1003;
      Buf src(from, n), dst(to, n);
      for (int64_t i = 0; i < n; i++) src.set(i, std::sin((double)i) * 100);
      perceiver::cuda::copy(src.view(1, n), dst.view(1, n), nullptr);
      std::vector<double> want(n), got(n);
      for (int64_t i = 0; i < n; i++) want[i] = load(src.s->data(), from, i), got[i] = dst.get(i);
      compare(std::string("cast ") + perceiver::dtype_name(from) + " -> " + perceiver::dtype_name(to), want, got, to);
    }
  // Into the integers: truncation toward zero, saturation, NaN to 0, and int32 -> uint8 clamped.
  {
    const float xs[] = {-3.7f, -0.5f, 0.f, 2.9f, 254.6f, 300.f, 3e9f, -3e9f, NAN};
    const int64_t n = 9;
    Buf src(DType::Float32, n), i32(DType::Int32, n), u8(DType::UInt8, n), back(DType::UInt8, n);
    for (int64_t i = 0; i < n; i++) src.set(i, xs[i]);
    perceiver::cuda::copy(src.view(1, n), view_of(i32, DType::Int32, {1, n}, {n, 1}), nullptr);
    perceiver::cuda::copy(src.view(1, n), view_of(u8, DType::UInt8, {1, n}, {n, 1}), nullptr);
    perceiver::cuda::copy(view_of(i32, DType::Int32, {1, n}, {n, 1}), view_of(back, DType::UInt8, {1, n}, {n, 1}), nullptr);
    const std::vector<double> want_i32 = {-3, 0, 0, 2, 254, 300, 2147483647, -2147483648.0, 0};
    const std::vector<double> want_u8 = {0, 0, 0, 2, 254, 255, 255, 0, 0};
    const std::vector<double> want_back = {0, 0, 0, 2, 254, 255, 255, 0, 0};
    std::vector<double> gi, gu, gb;
    for (int64_t i = 0; i < n; i++) {
      gi.push_back(get_any(i32, DType::Int32, i));
      gu.push_back(get_any(u8, DType::UInt8, i));
      gb.push_back(get_any(back, DType::UInt8, i));
    }
    compare("cast float32 -> int32 (saturating, NaN to 0)", want_i32, gi, DType::Float32);
    compare("cast float32 -> uint8 (saturating, NaN to 0)", want_u8, gu, DType::Float32);
    compare("cast int32 -> uint8 (clamped)", want_back, gb, DType::Float32);
  }
}

void check_unary_binary_where(DType dt) {
  using perceiver::UnaryOp;
  const int64_t R = 6, C = 9, n = R * C;
  Buf x(dt, n), ax(dt, n), out(dt, n);  // ax = |x|, for log and the square roots
  for (int64_t i = 0; i < n; i++) {
    x.set(i, 0.1 + 2.9 * (double)((i * 37) % n) / (double)n * (i % 2 ? 1 : -1));
    ax.set(i, std::fabs(x.get(i)));
  }
  const struct {
    UnaryOp op;
    const char* name;
  } ops[] = {{UnaryOp::Neg, "neg"},   {UnaryOp::Exp, "exp"},         {UnaryOp::Log, "log"},     {UnaryOp::Sin, "sin"},
             {UnaryOp::Cos, "cos"},   {UnaryOp::Sqrt, "sqrt"},       {UnaryOp::Rsqrt, "rsqrt"}, {UnaryOp::Tanh, "tanh"},
             {UnaryOp::Relu, "relu"}, {UnaryOp::Gelu, "gelu"},       {UnaryOp::GeluTanh, "gelu tanh"},
             {UnaryOp::Sigmoid, "sigmoid"}, {UnaryOp::Abs, "abs"},   {UnaryOp::Square, "square"},
             {UnaryOp::Affine, "affine"}};
  for (const auto& o : ops) {
    const Buf& in = o.op == UnaryOp::Log || o.op == UnaryOp::Sqrt || o.op == UnaryOp::Rsqrt ? ax : x;
    // The input read transposed ([C, R] of a [R, C] array), the output dense.
    perceiver::cuda::unary(o.op, view_of(in, dt, {C, R}, {1, C}), out.view(C, R), 1.5f, -0.25f, nullptr);
    std::vector<double> want, got;
    for (int64_t c = 0; c < C; c++)
      for (int64_t r = 0; r < R; r++) {
        const double v = in.get(r * C + c);
        double w = 0;
        switch (o.op) {
          case UnaryOp::Neg: w = -v; break;
          case UnaryOp::Exp: w = std::exp(v); break;
          case UnaryOp::Log: w = std::log(v); break;
          case UnaryOp::Sin: w = std::sin(v); break;
          case UnaryOp::Cos: w = std::cos(v); break;
          case UnaryOp::Sqrt: w = std::sqrt(v); break;
          case UnaryOp::Rsqrt: w = 1 / std::sqrt(v); break;
          case UnaryOp::Tanh: w = std::tanh(v); break;
          case UnaryOp::Relu: w = v > 0 ? v : 0; break;
          case UnaryOp::Gelu: w = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); break;
          case UnaryOp::GeluTanh: w = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); break;
          case UnaryOp::Sigmoid: w = 1 / (1 + std::exp(-v)); break;
          case UnaryOp::Abs: w = std::fabs(v); break;
          case UnaryOp::Square: w = v * v; break;
          case UnaryOp::Affine: w = 1.5 * v - 0.25; break;
        }
        want.push_back(w);
        got.push_back(out.get(c * R + r));
      }
    compare(std::string("unary ") + o.name + " " + dtype_name(dt) + " (transposed input)", want, got, dt);
  }
  {  // comparisons into uint8, pow and minimum, with a row broadcast
    using perceiver::BinaryOp;
    Buf a(dt, n), b(dt, C), cmp(DType::UInt8, n), pw(dt, n);
    for (int64_t i = 0; i < n; i++) a.set(i, (double)(i % 5) / 2);
    for (int64_t j = 0; j < C; j++) b.set(j, (double)(j % 4) / 2);
    const View av = a.view(R, C), bv = b.view(R, C, true);
    perceiver::cuda::binary(BinaryOp::Ge, av, bv, view_of(cmp, DType::UInt8, {R, C}, {C, 1}), nullptr);
    std::vector<double> want, got;
    for (int64_t i = 0; i < n; i++) want.push_back(a.get(i) >= b.get(i % C)), got.push_back(get_any(cmp, DType::UInt8, i));
    compare(std::string("binary ge ") + dtype_name(dt) + " + row -> uint8", want, got, DType::Float32);
    for (auto [op, name] : {std::pair{BinaryOp::Pow, "pow"}, std::pair{BinaryOp::Minimum, "minimum"}}) {
      perceiver::cuda::binary(op, av, bv, pw.view(R, C), nullptr);
      want.clear();
      got.clear();
      for (int64_t i = 0; i < n; i++) {
        const double p = a.get(i), q = b.get(i % C);
        want.push_back(op == BinaryOp::Pow ? std::pow(p, q) : std::min(p, q));
        got.push_back(pw.get(i));
      }
      compare(std::string("binary ") + name + " " + dtype_name(dt) + " + row", want, got, dt);
    }
    // where(cond, a, b) with the condition broadcast down the columns ([R, 1]).
    Buf cond(DType::UInt8, R), wo(dt, n);
    for (int64_t r = 0; r < R; r++) static_cast<uint8_t*>(cond.s->data())[r] = r % 2;
    perceiver::cuda::where(view_of(cond, DType::UInt8, {R, C}, {1, 0}), av, bv, wo.view(R, C), nullptr);
    want.clear();
    got.clear();
    for (int64_t i = 0; i < n; i++) want.push_back((i / C) % 2 ? a.get(i) : b.get(i % C)), got.push_back(wo.get(i));
    compare(std::string("where ") + dtype_name(dt) + " (condition per row, b per column)", want, got, dt);
  }
}

void check_reductions(DType dt) {
  using perceiver::ReduceOp;
  std::mt19937 rng(41);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  // [outer, n, inner]: rows (inner 1, at 128 and 512 threads), columns (inner 6), and
  // the split column sum (n >= 32).
  const struct {
    int64_t outer, n, inner;
  } shapes[] = {{5, 300, 1}, {2, 9000, 1}, {3, 7, 6}, {2, 70, 40}};
  for (const auto& s : shapes) {
    const int64_t total = s.outer * s.n * s.inner, outs = s.outer * s.inner;
    Buf x(dt, total), out(dt, outs), arg(DType::Int32, outs);
    for (int64_t i = 0; i < total; i++) x.set(i, u(rng));
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax}) {
      const bool am = op == ReduceOp::ArgMax;
      perceiver::cuda::reduce(op, x.view(1, total), s.outer, s.n, s.inner,
                              am ? view_of(arg, DType::Int32, {outs}, {1}) : out.view(1, outs), nullptr, nullptr);
      std::vector<double> want, got;
      for (int64_t o = 0; o < s.outer; o++)
        for (int64_t i = 0; i < s.inner; i++) {
          double sum = 0, mx = -INFINITY, mn = INFINITY;
          int64_t best = 0;
          for (int64_t j = 0; j < s.n; j++) {
            const double v = x.get((o * s.n + j) * s.inner + i);
            sum += v;
            mn = std::min(mn, v);
            if (v > mx) mx = v, best = j;
          }
          const double by_op[] = {sum, sum / (double)s.n, mx, mn, (double)best};  // ReduceOp's order
          want.push_back(by_op[(int)op]);
          got.push_back(am ? get_any(arg, DType::Int32, o * s.inner + i) : out.get(o * s.inner + i));
        }
      const char* names[] = {"sum", "mean", "max", "min", "argmax"};
      char what[160];
      std::snprintf(what, sizeof what, "reduce %s %s [%lld, %lld, %lld]", names[(int)op], dtype_name(dt),
                    (long long)s.outer, (long long)s.n, (long long)s.inner);
      compare(what, want, got, am ? DType::Float32 : dt);
    }
    // A sum with an addend, in whichever of the three kernels the shape takes.
    Buf addend(dt, outs);
    for (int64_t i = 0; i < outs; i++) addend.set(i, 8.f * u(rng));
    perceiver::cuda::reduce(ReduceOp::Sum, x.view(1, total), s.outer, s.n, s.inner, out.view(1, outs), nullptr, nullptr,
                            addend.s->data());
    std::vector<double> want, got;
    for (int64_t o = 0; o < s.outer; o++)
      for (int64_t i = 0; i < s.inner; i++) {
        double sum = addend.get(o * s.inner + i);
        for (int64_t j = 0; j < s.n; j++) sum += x.get((o * s.n + j) * s.inner + i);
        want.push_back(sum);
        got.push_back(out.get(o * s.inner + i));
      }
    char what[160];
    std::snprintf(what, sizeof what, "reduce sum + addend %s [%lld, %lld, %lld]", dtype_name(dt), (long long)s.outer,
                  (long long)s.n, (long long)s.inner);
    compare(what, want, got, dt);
  }
  for (int64_t n : {100, 3000})
    for (bool log : {false, true}) check_softmax_rows(dt, 4, n, log);
}

}  // namespace

void check_rows() {
  const char* vec = std::getenv("PERCEIVER_CUDA_VECTOR_KERNELS");
  const char* row = std::getenv("PERCEIVER_CUDA_ROW_KERNELS");
  std::printf("rows: PERCEIVER_CUDA_VECTOR_KERNELS=%s PERCEIVER_CUDA_ROW_KERNELS=%s\n", vec ? vec : "(unset)",
              row ? row : "(unset)");
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    // Whole packs (the 16-byte kernels), rows broadcast either side, rows of 1001 (not
    // whole packs: the element kernel) and a view one element in (misaligned); layer
    // norm over 1-8 packs per lane, and over 1000 (the block-per-row kernel).
    check_binary(dt, BinaryOp::Add, "residual", 5, 1280, 0, 0);
    check_binary(dt, BinaryOp::Add, "bias", 5, 1280, 1, 0);
    check_binary(dt, BinaryOp::Add, "bias", 3, 256, 2, 0);
    check_binary(dt, BinaryOp::Mul, "mul", 7, 128, 1, 0);
    check_binary(dt, BinaryOp::Sub, "sub", 2, 64, 0, 0);
    check_binary(dt, BinaryOp::Div, "div", 3, 136, 0, 0);
    check_binary(dt, BinaryOp::Maximum, "maximum", 4, 1001, 1, 0);
    check_binary(dt, BinaryOp::Add, "residual", 3, 256, 0, 1);
    for (int64_t n : {128, 256, 1024, 1280, 2048, 1000})
      for (bool affine : {true, false}) check_layer_norm(dt, n == 2048 ? 3 : 9, n, affine, 0);
    check_layer_norm(dt, 5, 256, true, 1);
    // Rows that are not whole packs per lane (a row per warp, element loads, 4-16 per
    // lane): the image encoders' 261, short rows, 512 from an offset.
    check_layer_norm(dt, 11, 261, true, 0);
    check_layer_norm(dt, 6, 3, false, 0);
    check_layer_norm(dt, 7, 77, true, 0);
    check_layer_norm(dt, 4, 512, true, 1);
    // Unary ops, the GEMM's bias/activation pass and GELU's gradient: whole packs, and
    // one element in (the element kernels); rows at a stride wider than the row, batches
    // apart, and rows that are not whole packs.
    using perceiver::UnaryOp;
    for (int64_t offset : {0, 1}) {
      check_unary_dense(dt, UnaryOp::Gelu, "gelu", 6, 256, offset);
      check_unary_dense(dt, UnaryOp::GeluTanh, "gelu tanh", 3, 64, offset);
      check_unary_dense(dt, UnaryOp::Exp, "exp", 2, 40, offset);
      check_unary_dense(dt, UnaryOp::Affine, "affine", 5, 24, offset);
      check_gelu_backward_dense(dt, false, 2048, offset);
      check_gelu_backward_dense(dt, true, 520, offset);
    }
    using perceiver::Activation;
    check_bias_act(dt, Activation::Gelu, "gelu", 1, 33, 1280, 1280, 0, true, 0);
    check_bias_act(dt, Activation::Gelu, "gelu", 1, 7, 256, 256, 0, false, 0);
    check_bias_act(dt, Activation::GeluTanh, "gelu tanh", 2, 5, 64, 64, 320, true, 0);
    check_bias_act(dt, Activation::Relu, "relu", 3, 4, 32, 48, 200, true, 0);
    check_bias_act(dt, Activation::None, "bias", 2, 6, 40, 40, 240, true, 0);
    check_bias_act(dt, Activation::Gelu, "gelu", 1, 9, 128, 128, 0, true, 1);
    check_bias_act(dt, Activation::Gelu, "gelu", 2, 3, 65, 70, 300, true, 0);
    // Column sums: a bias gradient's shape (chunks of 64 rows, the last ragged), several
    // outer blocks with lanes past the last pack, chunks over 64 rows (n past 64 x 1024),
    // columns not whole packs in 16 bits, and a view one element in.
    check_column_sums(dt, 1, 700, 256, 0);
    check_column_sums(dt, 3, 130, 72, 0);
    check_column_sums(dt, 1, 70000, 8, 0);
    check_column_sums(dt, 2, 200, 20, 0);
    check_column_sums(dt, 1, 300, 64, 1);
    // Layer norm's gradient: rows of 1-8 packs per lane (the row-per-warp kernel: 256,
    // 1024, 1280 and 2048 in 16 bits; 256 and 1024 in float32), rows of whole packs past
    // that or short of a lane's pack (the packed partial sums only), without a weight.
    check_layer_norm_backward(dt, 70, 1024, true, true);
    check_layer_norm_backward(dt, 9, 256, true, true);
    check_layer_norm_backward(dt, 33, 1280, false, true);
    check_layer_norm_backward(dt, 6, 2048, true, true);
    check_layer_norm_backward(dt, 20, 72, true, true);
    // Rows that are not whole packs per lane, for the element-load row kernel.
    check_layer_norm_backward(dt, 13, 261, true, true);
    check_layer_norm_backward(dt, 5, 33, false, true);
    check_layer_norm_backward(dt, 3, 500, true, false);
    // With the gradients already accumulated added in (a residual's, a shared weight's and
    // bias's), in each of the three row kernels: whole packs, elements, a block per row.
    check_layer_norm_backward(dt, 70, 1024, true, true, true);
    check_layer_norm_backward(dt, 13, 261, true, true, true);
    check_layer_norm_backward(dt, 4, 1030, true, true, true);
    // Softmax and its gradient with a row per warp (rows up to 1024: 4-32 per lane), and
    // past that (a block per row).
    for (int64_t n : {3, 100, 512, 1024, 1500})
      for (bool log : {false, true}) check_softmax_rows(dt, 7, n, log);
    for (int64_t n : {3, 100, 512, 1024, 1500}) check_softmax_backward(dt, dt, 5, n);
  }
  check_softmax_backward(DType::Float32, DType::BFloat16, 4, 512);
  for (bool tanh_form : {false, true}) check_gelu_backward_far(tanh_form);
  check_gelu_tails();
}

void check_elementwise() {
  check_fill_arange();
  check_single_rounding();
  check_copies();
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    check_unary_binary_where(dt);
    check_reductions(dt);
  }
}

}  // namespace perceiver::emu::check
