// Development harness for the CUDA training kernels: the fused optimizer updates
// (update.cu) and the backward kernels (backward.cu). Each case runs the CUDA backend
// entry the engine calls on random inputs and compares every output with a
// double-precision reference computed here on the host from the same inputs (16-bit
// inputs rounded first), within the dtype's tolerance; it then runs the case again
// and requires the same bits (the kernels use no floating-point atomics), and times it.
//
//   ./build/cuda/cuda_train_check     # exit 0 when every case passes, 1 otherwise
//
// One line per case, PASSED or FAILED, then a final PASSED/FAILED line. Needs a GPU;
// exits 2 when CUDA is unavailable.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../backend.h"
#include "api.h"
#include "check_util.h"

using namespace perceiver;

namespace {

Backend* g_gpu = nullptr;
const Device kGpu{DeviceType::CUDA, 0};
int g_cases = 0, g_failures = 0;

// One device buffer of `dtype` elements.
struct Buf {
  std::shared_ptr<Storage> s;
  DType dtype;
  int64_t n;
  Buf(DType t, int64_t count) : s(std::make_shared<Storage>(g_gpu, kGpu, (size_t)std::max<int64_t>(count, 1) * dtype_size(t))), dtype(t), n(count) {}
  void* p() const { return s->data(); }
  float* f() const { return static_cast<float*>(s->data()); }
};

float round_to(float v, DType t) {
  if (t == DType::BFloat16) return bf16_to_float(float_to_bf16(v));
  if (t == DType::Float16) return half_to_float(float_to_half(v));
  return v;
}

Buf upload(DType t, const std::vector<float>& host) {
  Buf b(t, (int64_t)host.size());
  if (t == DType::Float32) {
    g_gpu->copy_from_host(b.p(), host.data(), host.size() * 4);
  } else {
    std::vector<uint16_t> h(host.size());
    for (size_t i = 0; i < host.size(); i++) h[i] = t == DType::BFloat16 ? float_to_bf16(host[i]) : float_to_half(host[i]);
    g_gpu->copy_from_host(b.p(), h.data(), h.size() * 2);
  }
  return b;
}

std::vector<float> download(const Buf& b) {
  std::vector<float> out((size_t)b.n);
  if (b.dtype == DType::Float32) {
    g_gpu->copy_to_host(out.data(), b.p(), out.size() * 4);
  } else {
    std::vector<uint16_t> h((size_t)b.n);
    g_gpu->copy_to_host(h.data(), b.p(), h.size() * 2);
    for (size_t i = 0; i < h.size(); i++) out[i] = b.dtype == DType::BFloat16 ? bf16_to_float(h[i]) : half_to_float(h[i]);
  }
  return out;
}

// Uniform in [lo, hi), rounded to dtype (so host and device see the same values).
std::vector<float> randoms(int64_t n, unsigned seed, DType t, float lo = -1.f, float hi = 1.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = round_to(u(g), t);
  return v;
}

double tolerance(DType t) {
  if (t == DType::BFloat16) return 2e-2;
  if (t == DType::Float16) return 4e-3;
  return 2e-5;
}

// Largest |got - want| / (|want| + floor) over the outputs; `floor` is the outputs'
// typical magnitude scaled down, so values that cancel to ~0 are judged absolutely.
struct Check {
  double worst = 0;
  std::string where;
  void add(const char* what, const std::vector<float>& got, const std::vector<double>& want, double floor) {
    for (size_t i = 0; i < want.size(); i++) {
      double e = std::fabs((double)got[i] - want[i]) / (std::fabs(want[i]) + floor);
      if (!(e <= worst)) {
        worst = e;
        where = std::string(what) + "[" + std::to_string(i) + "] got " + std::to_string(got[i]) + " want " + std::to_string(want[i]);
      }
    }
  }
};

double mean_abs(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += std::fabs(x);
  return v.empty() ? 1 : s / (double)v.size() + 1e-30;
}

double time_gpu(const std::function<void()>& fn, int runs) { return check::time_gpu(g_gpu, fn, runs); }

// Reports one case. `again` are the outputs of a second run from the same inputs.
void report(const std::string& name, const Check& c, DType t, bool same_bits, double seconds) {
  g_cases++;
  bool ok = c.worst <= tolerance(t) && same_bits;
  if (!ok) g_failures++;
  std::printf("%s %-58s max rel err %.2e (tol %.0e)%s %8.3f ms%s%s\n", ok ? "PASSED" : "FAILED", name.c_str(), c.worst,
              tolerance(t), same_bits ? "" : " NOT DETERMINISTIC", seconds * 1e3, c.worst <= tolerance(t) ? "" : "  at ",
              c.worst <= tolerance(t) ? "" : c.where.c_str());
}

// ---- fused optimizer updates (float32 only, as the op layer requires) ----

enum class Rule { Adam, Lamb };

void adam_case(Rule rule, int64_t n, double wd, bool zero_param) {
  const int step = 3;
  const double b1 = 0.9, b2 = 0.999, lr = 1e-2, eps = rule == Rule::Lamb ? 1e-6 : 1e-8;
  auto hp = zero_param ? std::vector<float>((size_t)n, 0.f) : randoms(n, 1, DType::Float32);
  auto hg = randoms(n, 2, DType::Float32);
  auto hm = randoms(n, 3, DType::Float32, -0.1f, 0.1f), hv = randoms(n, 4, DType::Float32, 0.f, 0.01f);
  // Reference.
  std::vector<double> rp(n), rm(n), rv(n), ru(n);
  const double bc1 = 1 / (1 - std::pow(b1, step)), bc2 = 1 / (1 - std::pow(b2, step));
  double pp = 0, uu = 0;
  for (int64_t i = 0; i < n; i++) {
    rm[i] = b1 * hm[i] + (1 - b1) * hg[i];
    rv[i] = b2 * hv[i] + (1 - b2) * (double)hg[i] * hg[i];
    ru[i] = rm[i] * bc1 / (std::sqrt(rv[i] * bc2) + eps) + wd * hp[i];
    pp += (double)hp[i] * hp[i];
    uu += ru[i] * ru[i];
  }
  const double trust = rule == Rule::Lamb && pp > 0 && uu > 0 ? std::sqrt(pp) / std::sqrt(uu) : 1;
  for (int64_t i = 0; i < n; i++) rp[i] = hp[i] - lr * trust * ru[i];

  std::vector<float> outs[2][3];
  double seconds = 0;
  for (int run = 0; run < 2; run++) {
    Buf p = upload(DType::Float32, hp), g = upload(DType::Float32, hg), m = upload(DType::Float32, hm),
        v = upload(DType::Float32, hv), u(DType::Float32, n);
    AdamArgs a{};
    a.p = p.f(); a.g = g.f(); a.m = m.f(); a.v = v.f(); a.n = n;
    a.lr = (float)lr; a.beta1 = (float)b1; a.one_minus_beta1 = (float)(1 - b1);
    a.beta2 = (float)b2; a.one_minus_beta2 = (float)(1 - b2); a.eps = (float)eps; a.weight_decay = (float)wd;
    a.bc1 = (float)bc1; a.bc2 = (float)bc2;
    if (rule == Rule::Lamb) g_gpu->lamb_update(a, u.f());
    else g_gpu->adam_update(a);
    outs[run][0] = download(p);
    outs[run][1] = download(m);
    outs[run][2] = download(v);
    if (run == 1) seconds = time_gpu([&] { rule == Rule::Lamb ? g_gpu->lamb_update(a, u.f()) : g_gpu->adam_update(a); }, 10);
  }
  Check c;
  // The parameter moves by ~lr from values of magnitude ~1: judge it on that scale.
  c.add("p", outs[0][0], rp, zero_param ? lr : 1.0);
  c.add("m", outs[0][1], rm, 0.05);
  c.add("v", outs[0][2], rv, 1e-3);
  bool same = true;
  for (int k = 0; k < 3; k++) same = same && std::memcmp(outs[0][k].data(), outs[1][k].data(), outs[0][k].size() * 4) == 0;
  char name[128];
  std::snprintf(name, sizeof(name), "%s n=%lld wd=%g%s", rule == Rule::Lamb ? "lamb_update" : "adam_update", (long long)n, wd,
                zero_param ? " zero param" : "");
  report(name, c, DType::Float32, same, seconds);
}

void sgd_case(int64_t n, double momentum, bool nesterov, double wd) {
  const double lr = 0.1;
  auto hp = randoms(n, 5, DType::Float32), hg = randoms(n, 6, DType::Float32), hb = randoms(n, 7, DType::Float32);
  std::vector<double> rp(n), rb(n);
  for (int64_t i = 0; i < n; i++) {
    double d = hg[i];
    if (momentum > 0) {
      rb[i] = momentum * hb[i] + hg[i];
      d = nesterov ? hg[i] + momentum * rb[i] : rb[i];
    }
    rp[i] = hp[i] - lr * d - lr * wd * hp[i];
  }
  std::vector<float> outs[2][2];
  double seconds = 0;
  for (int run = 0; run < 2; run++) {
    Buf p = upload(DType::Float32, hp), g = upload(DType::Float32, hg), b = upload(DType::Float32, hb);
    SgdArgs a{};
    a.p = p.f(); a.g = g.f(); a.buf = momentum > 0 ? b.f() : nullptr; a.n = n;
    a.lr = (float)lr; a.momentum = (float)momentum; a.lr_wd = (float)(lr * wd); a.nesterov = nesterov;
    g_gpu->sgd_update(a);
    outs[run][0] = download(p);
    outs[run][1] = download(b);
    if (run == 1) seconds = time_gpu([&] { g_gpu->sgd_update(a); }, 10);
  }
  Check c;
  c.add("p", outs[0][0], rp, 1.0);
  if (momentum > 0) c.add("buf", outs[0][1], rb, 0.5);
  bool same = std::memcmp(outs[0][0].data(), outs[1][0].data(), (size_t)n * 4) == 0 &&
              std::memcmp(outs[0][1].data(), outs[1][1].data(), (size_t)n * 4) == 0;
  char name[128];
  std::snprintf(name, sizeof(name), "sgd_update n=%lld momentum=%g%s wd=%g", (long long)n, momentum, nesterov ? " nesterov" : "", wd);
  report(name, c, DType::Float32, same, seconds);
}

// ---- backward kernels, all three dtypes ----

void layer_norm_case(int64_t rows, int64_t n, bool weight, DType t) {
  const float eps = 1e-5f;
  auto hx = randoms(rows * n, 11, t, -3.f, 3.f), hg = randoms(rows * n, 12, t), hw = randoms(n, 13, t, 0.5f, 1.5f);
  std::vector<double> rgx(rows * n), rgw(n, 0.0), rgb(n, 0.0), xh(n), gh(n);
  // The scale of gx's terms, rstd * |g w|: a row of one element has gx = 0 exactly, as
  // the difference of two such terms, so its float32 error is judged against them.
  double gx_scale = 0;
  for (int64_t r = 0; r < rows; r++) {
    const float* x = hx.data() + r * n;
    const float* g = hg.data() + r * n;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < n; j++) mean += x[j];
    mean /= n;
    for (int64_t j = 0; j < n; j++) var += (x[j] - mean) * (x[j] - mean);
    const double rstd = 1 / std::sqrt(var / n + eps);
    double mg = 0, mgx = 0;
    for (int64_t j = 0; j < n; j++) {
      xh[j] = (x[j] - mean) * rstd;
      gh[j] = weight ? (double)g[j] * hw[j] : g[j];
      mg += gh[j];
      mgx += gh[j] * xh[j];
      rgw[j] += g[j] * xh[j];
      rgb[j] += g[j];
      gx_scale += rstd * std::fabs(gh[j]) / (double)(rows * n);
    }
    mg /= n;
    mgx /= n;
    for (int64_t j = 0; j < n; j++) rgx[r * n + j] = rstd * (gh[j] - mg - xh[j] * mgx);
  }
  std::vector<float> outs[2][3];
  double seconds = 0;
  for (int run = 0; run < 2; run++) {
    Buf x = upload(t, hx), g = upload(t, hg), w = upload(t, hw), gx(t, rows * n), gw(t, n), gb(t, n);
    auto go = [&] {
      g_gpu->layer_norm_backward((const float*)x.p(), weight ? (const float*)w.p() : nullptr, (const float*)g.p(), (float*)gx.p(),
                                 (float*)gw.p(), (float*)gb.p(), rows, n, eps, t, GradAddends{});
    };
    go();
    outs[run][0] = download(gx);
    outs[run][1] = download(gw);
    outs[run][2] = download(gb);
    if (run == 1) seconds = time_gpu(go, 10);
  }
  Check c;
  c.add("gx", outs[0][0], rgx, std::max(mean_abs(rgx), gx_scale));
  c.add("gw", outs[0][1], rgw, mean_abs(rgw));
  c.add("gb", outs[0][2], rgb, mean_abs(rgb));
  bool same = true;
  for (int k = 0; k < 3; k++)
    same = same && std::memcmp(outs[0][k].data(), outs[1][k].data(), outs[0][k].size() * 4) == 0;
  char name[128];
  std::snprintf(name, sizeof(name), "layer_norm_backward %s [%lld, %lld]%s", dtype_name(t), (long long)rows, (long long)n,
                weight ? " weight" : "");
  report(name, c, t, same, seconds);
}

void gelu_case(int64_t n, bool tanh_form, DType t) {
  auto hx = randoms(n, 21, t, -5.f, 5.f), hg = randoms(n, 22, t);
  std::vector<double> r(n);
  for (int64_t i = 0; i < n; i++) {
    const double v = hx[i];
    double d;
    if (tanh_form) {
      const double c = std::sqrt(2 / M_PI), k = 0.044715;
      const double th = std::tanh(c * (v + k * v * v * v));
      d = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * c * (1 + 3 * k * v * v);
    } else {
      d = 0.5 * (1 + std::erf(v / std::sqrt(2.0))) + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI);
    }
    r[i] = hg[i] * d;
  }
  std::vector<float> outs[2];
  double seconds = 0;
  for (int run = 0; run < 2; run++) {
    Buf x = upload(t, hx), g = upload(t, hg), gx(t, n);
    auto go = [&] { g_gpu->gelu_backward((const float*)x.p(), (const float*)g.p(), (float*)gx.p(), n, tanh_form, t); };
    go();
    outs[run] = download(gx);
    if (run == 1) seconds = time_gpu(go, 10);
  }
  Check c;
  // Against |g|'s scale: near x = -5 both GELU derivatives are differences of terms
  // near 1 (1 + tanh, 1 - tanh^2), which float32 resolves to ~1e-7 of those terms.
  std::vector<double> gd(hg.begin(), hg.end());
  c.add("gx", outs[0], r, mean_abs(gd));
  char name[128];
  std::snprintf(name, sizeof(name), "gelu_backward%s %s n=%lld", tanh_form ? " tanh" : "", dtype_name(t), (long long)n);
  report(name, c, t, std::memcmp(outs[0].data(), outs[1].data(), (size_t)n * 4) == 0, seconds);
}

// Softmax's gradient gx = y (g - y.g) per row, y a row of probabilities.
void softmax_backward_case(int64_t rows, int64_t n, DType t) {
  auto hl = randoms(rows * n, 31, t, -4.f, 4.f), hg = randoms(rows * n, 32, t);
  std::vector<float> hy(rows * n);
  for (int64_t r = 0; r < rows; r++) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) mx = std::max(mx, (double)hl[r * n + j]);
    for (int64_t j = 0; j < n; j++) sum += std::exp(hl[r * n + j] - mx);
    for (int64_t j = 0; j < n; j++) hy[r * n + j] = (float)(std::exp(hl[r * n + j] - mx) / sum);
  }
  for (auto& v : hy) v = round_to(v, t);
  std::vector<double> want(rows * n);
  for (int64_t r = 0; r < rows; r++) {
    double dot = 0;
    for (int64_t j = 0; j < n; j++) dot += (double)hy[r * n + j] * hg[r * n + j];
    for (int64_t j = 0; j < n; j++) want[r * n + j] = hy[r * n + j] * (hg[r * n + j] - dot);
  }
  std::vector<float> outs[2];
  double seconds = 0;
  for (int run = 0; run < 2; run++) {
    Buf y = upload(t, hy), g = upload(t, hg), gx(t, rows * n);
    auto go = [&] { g_gpu->softmax_backward(y.p(), g.p(), gx.p(), rows, n, t, t); };
    go();
    outs[run] = download(gx);
    if (run == 1) seconds = time_gpu(go, 10);
  }
  Check c;
  std::vector<double> scale(rows * n);
  for (int64_t i = 0; i < rows * n; i++) scale[i] = hy[i];
  c.add("gx", outs[0], want, mean_abs(scale));
  char name[128];
  std::snprintf(name, sizeof(name), "softmax_backward %s [%lld, %lld]", dtype_name(t), (long long)rows, (long long)n);
  report(name, c, t, std::memcmp(outs[0].data(), outs[1].data(), (size_t)rows * n * 4) == 0, seconds);
}

void max_pool_case(int64_t B, int64_t H, int64_t W, int64_t C, int64_t k, int64_t s, int64_t pad, DType t) {
  Pool2dArgs a{};
  a.batch = B; a.h = H; a.w = W; a.c = C; a.kh = k; a.kw = k; a.stride_h = s; a.stride_w = s;
  a.pad_top = pad; a.pad_left = pad;
  a.oh = (H + 2 * pad - k) / s + 1;
  a.ow = (W + 2 * pad - k) / s + 1;
  a.dtype = t;
  auto hx = randoms(B * H * W * C, 31, t), hg = randoms(B * a.oh * a.ow * C, 32, t);
  // Reference: each window's gradient to its first maximum (padding never wins).
  std::vector<double> r(B * H * W * C, 0.0);
  for (int64_t b = 0; b < B; b++)
    for (int64_t oy = 0; oy < a.oh; oy++)
      for (int64_t ox = 0; ox < a.ow; ox++)
        for (int64_t c = 0; c < C; c++) {
          int64_t arg = -1;
          float best = 0;
          for (int64_t ky = 0; ky < k; ky++)
            for (int64_t kx = 0; kx < k; kx++) {
              int64_t y = oy * s - pad + ky, x = ox * s - pad + kx;
              if (y < 0 || y >= H || x < 0 || x >= W) continue;
              int64_t at = ((b * H + y) * W + x) * C + c;
              if (arg < 0 || hx[at] > best) {
                best = hx[at];
                arg = at;
              }
            }
          if (arg >= 0) r[arg] += hg[((b * a.oh + oy) * a.ow + ox) * C + c];
        }
  std::vector<float> outs[2];
  double seconds = 0;
  for (int run = 0; run < 2; run++) {
    Buf x = upload(t, hx), g = upload(t, hg), gx(t, B * H * W * C);
    a.x = (const float*)x.p();
    auto go = [&] { g_gpu->max_pool2d_backward(a, (const float*)g.p(), (float*)gx.p()); };
    go();
    outs[run] = download(gx);
    if (run == 1) seconds = time_gpu(go, 10);
  }
  Check c;
  c.add("gx", outs[0], r, 0.1);
  char name[128];
  std::snprintf(name, sizeof(name), "max_pool2d_backward %s [%lld,%lld,%lld,%lld] k%lld s%lld pad%lld", dtype_name(t), (long long)B,
                (long long)H, (long long)W, (long long)C, (long long)k, (long long)s, (long long)pad);
  report(name, c, t, std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4) == 0, seconds);
}

}  // namespace

int main() {
  CudaDeviceInfo info;
  g_gpu = check::open_cuda(&info);
  if (!g_gpu) return 2;
  if (!g_gpu->has_backward_kernels()) {
    std::printf("FAILED: the cuda backend does not report its training kernels\n");
    return 1;
  }
  std::printf("%s (sm_%d%d)\n", info.name, info.major, info.minor);
  for (int64_t n : {1, 37, 262147, 1000003}) {
    adam_case(Rule::Adam, n, 0, false);
    adam_case(Rule::Adam, n, 0.05, false);
    adam_case(Rule::Lamb, n, 0.1, false);
  }
  adam_case(Rule::Lamb, 1001, 0.1, true);
  for (int64_t n : {1, 1000003}) {
    sgd_case(n, 0, false, 0);
    sgd_case(n, 0.9, false, 0.01);
    sgd_case(n, 0.9, true, 0.01);
  }
  for (DType t : {DType::Float32, DType::BFloat16, DType::Float16}) {
    layer_norm_case(1, 1, true, t);
    layer_norm_case(7, 3, false, t);
    layer_norm_case(33, 77, true, t);
    layer_norm_case(1031, 768, true, t);
    layer_norm_case(4099, 129, false, t);
    // The ImageNet training step's latent rows at batch 8 and the language model's at
    // batch 32 (the row-per-warp kernel and the packed sums in every dtype).
    layer_norm_case(4096, 1024, true, t);
    layer_norm_case(8192, 1280, true, t);
    layer_norm_case(50176, 261, true, t);  // one image's encoder inputs (a row per warp, element loads)
    for (bool tanh_form : {false, true}) {
      gelu_case(1, tanh_form, t);
      gelu_case(1000003, tanh_form, t);
    }
    gelu_case(8 * 512 * 1024, false, t);  // the step's MLP activations (16-byte packs)
    softmax_backward_case(7, 3, t);
    softmax_backward_case(33, 1500, t);
    softmax_backward_case(8 * 8 * 512, 512, t);  // the step's self-attention probabilities
    max_pool_case(1, 7, 7, 2, 3, 2, 0, t);
    max_pool_case(2, 6, 5, 3, 3, 2, 1, t);
    max_pool_case(2, 9, 11, 5, 3, 1, 1, t);
    max_pool_case(1, 4, 4, 1, 2, 1, 0, t);
    max_pool_case(3, 17, 13, 64, 3, 2, 1, t);
  }
  std::printf("%s: %d of %d cases failed\n", g_failures ? "FAILED" : "PASSED", g_failures, g_cases);
  return g_failures ? 1 : 0;
}
