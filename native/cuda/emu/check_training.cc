// backward.cu's gradients on the emulation against double-precision references.
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../kernels.h"
#include "check.h"

namespace perceiver::emu::check {

void check_layer_norm_backward(DType dt, int64_t rows, int64_t n, bool affine, bool sums, bool addends) {
  Arr x(dt, rows * n), g(dt, rows * n), w(dt, n), gx(dt, rows * n), gw(dt, n), gb(dt, n);
  Arr agx(dt, rows * n), agw(dt, n), agb(dt, n);  // gradients already accumulated
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int64_t i = 0; i < rows * n; i++) x.set(i, u(rng) + 1.0), g.set(i, u(rng));
  for (int64_t j = 0; j < n; j++) w.set(j, 0.5 + (double)(j % 5) / 4);
  for (int64_t i = 0; i < rows * n; i++) agx.set(i, addends ? 4.0 * u(rng) : 0.0);
  for (int64_t j = 0; j < n; j++) agw.set(j, addends ? 40.0 * u(rng) : 0.0), agb.set(j, addends ? 40.0 * u(rng) : 0.0);
  const float eps = 1e-5f;
  std::vector<float> ws(perceiver::cuda::layer_norm_backward_workspace(rows, n) / 4 + 1, NAN);
  perceiver::GradAddends add;
  if (addends) add.gx = agx.p(), add.gw = sums ? agw.p() : nullptr, add.gb = sums ? agb.p() : nullptr;
  perceiver::cuda::layer_norm_backward(x.p(), affine ? w.p() : nullptr, g.p(), gx.p(), sums ? gw.p() : nullptr,
                                       sums ? gb.p() : nullptr, rows, n, eps, dt, ws.data(), nullptr, add);
  std::vector<double> want_gx(rows * n), want_gw(n, 0.0), want_gb(n, 0.0);
  for (int64_t i = 0; i < rows * n; i++) want_gx[i] = agx.get(i);
  for (int64_t j = 0; j < n; j++) want_gw[j] = agw.get(j), want_gb[j] = agb.get(j);
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < n; j++) mean += x.get(r * n + j);
    mean /= (double)n;
    for (int64_t j = 0; j < n; j++) var += std::pow(x.get(r * n + j) - mean, 2);
    const double rstd = 1 / std::sqrt(var / (double)n + eps);
    double mg = 0, mgx = 0;
    for (int64_t j = 0; j < n; j++) {
      const double xh = (x.get(r * n + j) - mean) * rstd, gh = g.get(r * n + j) * (affine ? w.get(j) : 1.0);
      mg += gh / (double)n;
      mgx += gh * xh / (double)n;
      want_gw[j] += g.get(r * n + j) * xh;
      want_gb[j] += g.get(r * n + j);
    }
    for (int64_t j = 0; j < n; j++) {
      const double xh = (x.get(r * n + j) - mean) * rstd, gh = g.get(r * n + j) * (affine ? w.get(j) : 1.0);
      want_gx[r * n + j] += rstd * (gh - mg - xh * mgx);
    }
  }
  char what[160];
  std::snprintf(what, sizeof what, "layer_norm_backward %s [%lld, %lld]%s%s", dtype_name(dt), (long long)rows,
                (long long)n, affine ? "" : " without weight", addends ? " + addends" : "");
  compare(std::string(what) + " gx", want_gx, gx.all(rows * n), dt);
  if (sums) {
    compare(std::string(what) + " gw", want_gw, gw.all(n), dt);
    compare(std::string(what) + " gb", want_gb, gb.all(n), dt);
  }
}

void check_softmax_backward(DType in, DType out, int64_t rows, int64_t n) {
  Arr y(in, rows * n), g(in, rows * n), gx(out, rows * n);
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (int64_t r = 0; r < rows; r++) {  // y: a softmax over each row
    std::vector<double> e(n);
    double sum = 0;
    for (auto& v : e) sum += (v = std::exp(u(rng)));
    for (int64_t j = 0; j < n; j++) y.set(r * n + j, e[j] / sum), g.set(r * n + j, u(rng));
  }
  perceiver::cuda::softmax_backward(y.p(), g.p(), gx.p(), rows, n, in, out, nullptr);
  std::vector<double> want(rows * n);
  for (int64_t r = 0; r < rows; r++) {
    double dot = 0;
    for (int64_t j = 0; j < n; j++) dot += g.get(r * n + j) * y.get(r * n + j);
    for (int64_t j = 0; j < n; j++) want[r * n + j] = y.get(r * n + j) * (g.get(r * n + j) - dot);
  }
  char what[160];
  std::snprintf(what, sizeof what, "softmax_backward %s -> %s [%lld, %lld]", dtype_name(in), dtype_name(out),
                (long long)rows, (long long)n);
  compare(what, want, gx.all(rows * n), out);
}

namespace {

void check_gelu_backward(DType dt, bool tanh_form) {
  const int64_t n = 1003;
  Arr x(dt, n), g(dt, n), gx(dt, n);
  for (int64_t i = 0; i < n; i++) x.set(i, -6.0 + 12.0 * (double)i / (double)(n - 1)), g.set(i, 1.0 + (double)(i % 7) / 7);
  perceiver::cuda::gelu_backward(x.p(), g.p(), gx.p(), n, tanh_form, dt, nullptr);
  std::vector<double> want(n);
  for (int64_t i = 0; i < n; i++) {
    const double v = x.get(i);
    double d;
    if (tanh_form) {
      const double c = std::sqrt(2 / M_PI), k = 0.044715, t = std::tanh(c * (v + k * v * v * v));
      d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * k * v * v);
    } else {
      d = 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
    }
    want[i] = g.get(i) * d;
  }
  compare(std::string("gelu_backward ") + dtype_name(dt) + (tanh_form ? " tanh" : " erf"), want, gx.all(n), dt);
}

// Max pooling's gradient: each window's first maximum (in row-major window order) takes
// the window's gradient; values repeat, so ties happen.
// With nan, some inputs are NaN: a window holding one takes its NaN (the last, if
// several) as the forward's output does, so its gradient goes there.
void check_max_pool_backward(DType dt, int64_t k, int64_t stride, int64_t pad, bool nan = false) {
  perceiver::Pool2dArgs a{};
  a.batch = 2; a.h = 7; a.w = 9; a.c = 3; a.kh = k; a.kw = k;
  a.stride_h = stride; a.stride_w = stride; a.pad_top = pad; a.pad_left = pad;
  a.oh = (a.h + 2 * pad - k) / stride + 1;
  a.ow = (a.w + 2 * pad - k) / stride + 1;
  a.dtype = dt;
  const int64_t nin = a.batch * a.h * a.w * a.c, nout = a.batch * a.oh * a.ow * a.c;
  Arr x(dt, nin), g(dt, nout), gx(dt, nin);
  std::mt19937 rng(13);
  for (int64_t i = 0; i < nin; i++) x.set(i, nan && i % 17 == 5 ? NAN : (double)(rng() % 5));
  for (int64_t i = 0; i < nout; i++) g.set(i, 1.0 + (double)(i % 11) / 8);
  a.x = static_cast<const float*>(x.p());
  perceiver::cuda::max_pool2d_backward(a, g.p(), gx.p(), nullptr);
  std::vector<double> want(nin, 0.0);
  for (int64_t b = 0; b < a.batch; b++)
    for (int64_t oy = 0; oy < a.oh; oy++)
      for (int64_t ox = 0; ox < a.ow; ox++)
        for (int64_t c = 0; c < a.c; c++) {
          int64_t arg = -1;
          each_tap(oy, ox, k, stride, pad, a.h, a.w, [&](int64_t y, int64_t xx, int64_t, int64_t) {
            const int64_t at = ((b * a.h + y) * a.w + xx) * a.c + c;
            if (arg < 0 || x.get(at) > x.get(arg) || std::isnan(x.get(at))) arg = at;
          });
          want[arg] += g.get(((b * a.oh + oy) * a.ow + ox) * a.c + c);
        }
  char what[160];
  std::snprintf(what, sizeof what, "max_pool2d_backward %s %lldx%lld stride %lld pad %lld%s", dtype_name(dt),
                (long long)k, (long long)k, (long long)stride, (long long)pad, nan ? " with NaN" : "");
  compare(what, want, gx.all(nin), dt);
}

}  // namespace

void check_training() {
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    // One row chunk; four (ragged, 50 rows each) over three column tiles, the last
    // ragged; without a weight; and without the weight and bias sums.
    check_layer_norm_backward(dt, 5, 300, true, true);
    check_layer_norm_backward(dt, 200, 70, true, true, true);  // plus the gradients already accumulated
    check_layer_norm_backward(dt, 200, 70, true, true);
    check_layer_norm_backward(dt, 130, 33, false, true);
    check_layer_norm_backward(dt, 9, 128, true, false);
    // 128, 256 and 512 threads per row.
    for (int64_t n : {50, 3000, 9000}) check_softmax_backward(dt, dt, 3, n);
    check_gelu_backward(dt, true);
    check_gelu_backward(dt, false);
    check_max_pool_backward(dt, 3, 2, 1);
    check_max_pool_backward(dt, 2, 2, 0);
    check_max_pool_backward(dt, 3, 2, 1, true);
  }
  // A 16-bit gradient from float32 probabilities (autocast's softmax).
  check_softmax_backward(DType::Float32, DType::BFloat16, 4, 700);
  check_softmax_backward(DType::Float32, DType::Float16, 4, 700);
}

}  // namespace perceiver::emu::check
