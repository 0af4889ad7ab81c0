// Standalone correctness harness (and micro-benchmark) for the CPU SGEMM; not part
// of the addon. Build and run from the repository root:
//
//   g++ -O2 -std=c++17 -pthread -o /tmp/gemm_check native/cpu/gemm_check.cc
//       native/cpu/gemm.cc native/cpu/gemm_avx2.cc native/cpu/gemm_avx512.cc
//       native/threadpool.cc            (one command line)
//   /tmp/gemm_check               # every supported ISA path, both parallel modes
//   /tmp/gemm_check --quick       # fewer random shapes
//   /tmp/gemm_check --bench M N K [reps]   # GFLOP/s of the active path
//
// Every result is compared with a double-precision naive product. The error bound
// is relative to the magnitudes that entered each element
// (|alpha| sum_p |a_ip b_pj| + |beta c_ij| + |bias_j|), since a bound relative to
// the result itself is meaningless where terms cancel.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../threadpool.h"
#include "gemm.h"
#include "gemm_kernels.h"

using perceiver::Activation;
using perceiver::cpu::apply_activation;
using perceiver::cpu::gelu_grad;
using perceiver::cpu::softmax_row;
using perceiver::cpu::sgemm;
namespace gd = perceiver::cpu::gemm_detail;

namespace {

struct Case {
  bool ta, tb;
  int64_t m, n, k;
  int64_t pad_a, pad_b, pad_c;  // extra row stride beyond the minimum
  float alpha, beta;
  bool bias;
  Activation act;
};

const char* act_name(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::Relu: return "relu";
    case Activation::Gelu: return "gelu";
    case Activation::GeluTanh: return "gelu_tanh";
  }
  return "?";
}

double act_ref(double x, Activation a) {
  switch (a) {
    case Activation::None: return x;
    case Activation::Relu: return x > 0 ? x : 0;
    case Activation::Gelu: return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Activation::GeluTanh: {
      double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
      // == 0.5 x (1 + tanh(u)), without the cancellation that breaks even double
      // precision below x ~ -6.
      return x / (1 + std::exp(-2 * u));
    }
  }
  return x;
}

std::mt19937_64 rng(12345);

void fill(std::vector<float>& v) {
  std::normal_distribution<float> d(0.f, 1.f);
  for (auto& x : v) x = d(rng);
}

int64_t g_checked = 0;

// Returns the worst error / bound ratio (<= 1 passes).
double run_case(const Case& cs, bool parallel, bool verbose_fail) {
  const int64_t arows = cs.ta ? cs.k : cs.m, acols = cs.ta ? cs.m : cs.k;
  const int64_t brows = cs.tb ? cs.n : cs.k, bcols = cs.tb ? cs.k : cs.n;
  const int64_t lda = std::max<int64_t>(acols, 1) + cs.pad_a;
  const int64_t ldb = std::max<int64_t>(bcols, 1) + cs.pad_b;
  const int64_t ldc = cs.n + cs.pad_c;
  // Exactly as long as the last element needs, so that a sanitizer build catches
  // any read past it.
  std::vector<float> a(std::max<int64_t>((arows - 1) * lda + acols, 1));
  std::vector<float> b(std::max<int64_t>((brows - 1) * ldb + bcols, 1));
  std::vector<float> c0(cs.m * ldc), bias(cs.n);
  fill(a);
  fill(b);
  fill(c0);
  fill(bias);
  // beta == 0 must not read C: poison it.
  if (cs.beta == 0) std::fill(c0.begin(), c0.end(), std::nanf(""));
  // Poison the padding between rows of C: it must come back untouched.
  for (int64_t i = 0; i < cs.m; i++)
    for (int64_t j = cs.n; j < ldc; j++) c0[i * ldc + j] = 777.0f;
  std::vector<float> c = c0;

  sgemm(cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, a.data(), lda, b.data(), ldb, cs.beta, c.data(),
        ldc, cs.bias ? bias.data() : nullptr, cs.act, parallel);
  g_checked++;

  const double tol = 1e-5 * std::sqrt((double)std::max<int64_t>(cs.k, 1));
  double worst = 0;
  for (int64_t i = 0; i < cs.m; i++) {
    for (int64_t j = 0; j < cs.n; j++) {
      double sum = 0, mag = 0;
      for (int64_t p = 0; p < cs.k; p++) {
        double av = cs.ta ? a[p * lda + i] : a[i * lda + p];
        double bv = cs.tb ? b[j * ldb + p] : b[p * ldb + j];
        sum += av * bv;
        mag += std::fabs(av * bv);
      }
      double pre = (double)cs.alpha * sum;
      mag = std::fabs(cs.alpha) * mag;
      if (cs.beta != 0) {
        pre += (double)cs.beta * c0[i * ldc + j];
        mag += std::fabs((double)cs.beta * c0[i * ldc + j]);
      }
      if (cs.bias) {
        pre += bias[j];
        mag += std::fabs(bias[j]);
      }
      const double ref = act_ref(pre, cs.act);
      const double got = c[i * ldc + j];
      // GELU's slope is below 1.13; its own approximation adds ~1e-6 relative.
      const double bound = 1.2 * tol * mag + 2e-6 * std::fabs(ref) + 1e-30;
      const double err = std::fabs(got - ref);
      double ratio = std::isfinite(got) ? err / bound : 1e30;
      if (ratio > worst) worst = ratio;
      if (ratio > 1 && verbose_fail) {
        std::printf("    first bad element (%lld,%lld): got %.9g want %.9g (bound %.3g)\n",
                    (long long)i, (long long)j, got, ref, bound);
        verbose_fail = false;
      }
    }
    for (int64_t j = cs.n; j < ldc; j++) {
      if (c[i * ldc + j] != 777.0f) {
        if (verbose_fail) std::printf("    padding of C row %lld was written\n", (long long)i);
        return 1e30;
      }
    }
  }
  return worst;
}

std::string describe(const Case& cs, bool parallel) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "m=%lld n=%lld k=%lld ta=%d tb=%d pads=%lld/%lld/%lld alpha=%g beta=%g bias=%d act=%s %s",
                (long long)cs.m, (long long)cs.n, (long long)cs.k, cs.ta, cs.tb, (long long)cs.pad_a,
                (long long)cs.pad_b, (long long)cs.pad_c, cs.alpha, cs.beta, cs.bias,
                act_name(cs.act), parallel ? "parallel" : "serial");
  return buf;
}

int g_failures = 0;

void check(const Case& cs, bool parallel) {
  double r = run_case(cs, parallel, false);
  if (r > 1) {
    g_failures++;
    std::printf("  FAIL (err/bound %.3g): %s\n", r, describe(cs, parallel).c_str());
    run_case(cs, parallel, true);
  }
}

// apply_activation against double, over a dense sweep and the tails.
void check_activations() {
  std::vector<float> xs;
  for (double x = -12; x <= 12; x += 1.0 / 512) xs.push_back((float)x);
  for (double x = 1e-8; x < 1e3; x *= 1.37) {
    xs.push_back((float)x);
    xs.push_back((float)-x);
  }
  xs.push_back(0.0f);
  xs.push_back(-0.0f);
  for (Activation act : {Activation::Relu, Activation::Gelu, Activation::GeluTanh}) {
    std::vector<float> y = xs;
    apply_activation(y.data(), (int64_t)y.size(), act);
    double worst = 0, worst_x = 0;
    for (size_t i = 0; i < xs.size(); i++) {
      const double ref = act_ref(xs[i], act);
      // Relative; in the far negative tail the exponent's own rounding (~x^2 ulp)
      // dominates, and below 1e-30 nothing matters.
      const double x = xs[i];
      const double bound = (1e-6 + 1e-7 * x * x) * std::fabs(ref) + 1e-30;
      const double r = std::fabs(y[i] - ref) / bound;
      if (!(r <= worst)) {
        worst = r;
        worst_x = xs[i];
      }
    }
    // A few odd lengths exercise the partial-vector tail.
    for (int64_t n : {1, 3, 7, 15, 17, 33}) {
      std::vector<float> t(xs.begin() + 1000, xs.begin() + 1000 + n), u = t;
      apply_activation(t.data(), n, act);
      for (int64_t i = 0; i < n; i++) {
        const double ref = act_ref(u[i], act);
        if (std::fabs(t[i] - ref) > (1e-6 + 1e-7 * u[i] * u[i]) * std::fabs(ref) + 1e-30) worst = 1e30;
      }
    }
    const bool ok = worst <= 1;
    if (!ok) g_failures++;
    std::printf("  activation %-9s worst err/bound %.3f at x=%g %s\n", act_name(act), worst, worst_x,
                ok ? "ok" : "FAIL");
  }
}

// gelu_grad (gx = g * gelu'(x)) against double, both forms: 2e-6 relative, plus
// 1e-7 |g| absolute, because the derivative is a sum of two terms that cancel to
// ~7e-4 near x = -0.75 (any float evaluation of the sum loses those digits).
void check_gelu_grad() {
  std::vector<float> xs, gs;
  for (double x = -12; x <= 12; x += 1.0 / 512) xs.push_back((float)x);
  for (double x = 1e-8; x < 1e3; x *= 1.37) {
    xs.push_back((float)x);
    xs.push_back((float)-x);
  }
  xs.push_back(0.0f);
  for (size_t i = 0; i < xs.size(); i++) gs.push_back(i % 3 == 0 ? -1.5f : 0.75f);
  for (bool tanh_form : {false, true}) {
    auto ref = [&](double x) {
      if (!tanh_form) return 0.5 * (1 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI);
      // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 k x^2) with 1 + t and 1 - t^2 from
      // sigmoid(2u): in double too, 1 + tanh(u) cancels to nothing past u = -19.
      const double c = std::sqrt(2 / M_PI), k = 0.044715, e = std::exp(-2 * c * (x + k * x * x * x));
      if (std::isinf(e)) return 0.0;  // x below about -60: the gradient underflows
      const double s = 1 / (1 + e);
      return s + 2 * c * x * (1 + 3 * k * x * x) * e * s * s;
    };
    double worst = 0, worst_x = 0;
    auto check = [&](const float* x, const float* g, int64_t n) {
      std::vector<float> gx((size_t)n);
      gelu_grad(x, g, gx.data(), n, tanh_form);
      for (int64_t i = 0; i < n; i++) {
        const double r = (double)g[i] * ref(x[i]);
        const double e = std::fabs(gx[i] - r) / (2e-6 * std::fabs(r) + 1e-7 * std::fabs(g[i]));
        if (!(e <= worst)) {  // a NaN sticks as infinity
          worst = std::isnan(e) ? INFINITY : e;
          worst_x = x[i];
        }
      }
    };
    check(xs.data(), gs.data(), (int64_t)xs.size());
    for (int64_t n : {1, 3, 7, 15, 17, 33}) check(xs.data() + 1000, gs.data() + 1000, n);
    const bool ok = worst <= 1;
    if (!ok) g_failures++;
    std::printf("  gelu_grad %-5s worst err/bound %.3f at x=%g %s\n", tanh_form ? "tanh" : "erf", worst, worst_x,
                ok ? "ok" : "FAIL");
  }
}

// softmax_row against double: random rows of awkward lengths, with some entries at
// -1e30 (masked logits, which must come out exactly 0) and a row of large logits;
// 1e-6 relative plus the rounding of x - max, and 1e-5 absolute for log-softmax.
void check_softmax_rows() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-30.f, 30.f);
  double worst = 0, worst_log = 0;
  bool zeros_ok = true;
  for (int64_t n : {1, 3, 15, 16, 17, 33, 100, 1000}) {
    for (int variant = 0; variant < 3; variant++) {
      std::vector<float> a((size_t)n), o((size_t)n), ol((size_t)n);
      for (auto& v : a) v = variant == 2 ? 80.f + u(rng) : u(rng);
      if (variant == 1)
        for (int64_t j = 0; j < n; j += 3) a[(size_t)j] = -1e30f;
      if (variant == 1 && n == 1) a[0] = 0.f;
      softmax_row(a.data(), o.data(), n, false);
      softmax_row(a.data(), ol.data(), n, true);
      double m = -INFINITY, s = 0;
      for (float v : a) m = std::max(m, (double)v);
      for (float v : a) s += std::exp((double)v - m);
      for (int64_t j = 0; j < n; j++) {
        const double ref = std::exp((double)a[(size_t)j] - m) / s;
        if (a[(size_t)j] == -1e30f && o[(size_t)j] != 0.f) zeros_ok = false;
        // x - max is rounded to float first: half an ulp of it shows up as a relative
        // error of |x - max| 2^-24 in exp (the scalar form does the same).
        const double d = std::fabs((double)a[(size_t)j] - m);
        worst = std::max(worst, std::fabs(o[(size_t)j] - ref) / ((1e-6 + 1.2e-7 * d) * ref + 1e-30));
        if (a[(size_t)j] > -1e29f)
          worst_log = std::max(worst_log, std::fabs(ol[(size_t)j] - ((double)a[(size_t)j] - m - std::log(s))) / 1e-5);
      }
    }
  }
  const bool ok = worst <= 1 && worst_log <= 1 && zeros_ok;
  if (!ok) g_failures++;
  std::printf("  softmax_row worst err/bound %.3f (log %.3f), masked entries %s %s\n", worst, worst_log,
              zeros_ok ? "exactly 0" : "NOT 0", ok ? "ok" : "FAIL");
}

void run_suite(bool quick) {
  const int64_t sizes[] = {1, 2, 3, 4, 5, 7, 13, 14, 15, 16, 17, 28, 29, 31, 32, 33, 57, 63, 64, 65, 127, 261};
  const Activation acts[] = {Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh};
  const int nsizes = sizeof sizes / sizeof sizes[0];
  std::uniform_int_distribution<int> pick(0, nsizes - 1), coin(0, 1), pad(0, 5), act4(0, 3);

  for (bool parallel : {false, true}) {
    // Every transpose combination on a fixed set of awkward shapes.
    // The last rows are big enough (>= 4M multiply-adds) to take the threaded paths:
    // split over m, split over n, and the skinny (m <= 4) column split.
    const int64_t shapes[][3] = {{1, 1, 1},      {7, 7, 7},       {63, 65, 261},  {65, 63, 1},
                                 {1, 1024, 1024}, {15, 33, 0},    {29, 97, 513},  {300, 17, 64},
                                 {5, 200, 1000},  {512, 1024, 261}, {200, 300, 100}, {20, 3000, 100},
                                 {4, 4096, 512},  {2, 2048, 2048}, {63, 1000, 130}};
    for (auto& s : shapes) {
      for (int t = 0; t < 4; t++) {
        Case cs{(t & 1) != 0, (t & 2) != 0, s[0], s[1], s[2], 0, 0, 0, 1.0f, 0.0f, false, Activation::None};
        check(cs, parallel);
        cs.alpha = -0.75f;
        cs.beta = 0.5f;
        cs.bias = true;
        cs.act = Activation::Gelu;
        cs.pad_a = 3;
        cs.pad_b = 1;
        cs.pad_c = 2;
        check(cs, parallel);
      }
    }
    // Random shapes, strides, scalars and epilogues.
    const int trials = quick ? 150 : 600;
    for (int t = 0; t < trials; t++) {
      Case cs;
      cs.ta = coin(rng);
      cs.tb = coin(rng);
      cs.m = sizes[pick(rng)];
      cs.n = sizes[pick(rng)];
      cs.k = t % 37 == 0 ? 0 : sizes[pick(rng)];
      cs.pad_a = pad(rng);
      cs.pad_b = pad(rng);
      cs.pad_c = pad(rng);
      const float alphas[] = {1.0f, -1.0f, 0.5f, 2.5f, 0.0f};
      const float betas[] = {0.0f, 1.0f, -0.5f, 0.25f};
      cs.alpha = alphas[std::uniform_int_distribution<int>(0, t % 11 == 0 ? 4 : 3)(rng)];
      cs.beta = betas[std::uniform_int_distribution<int>(0, 3)(rng)];
      cs.bias = coin(rng);
      cs.act = acts[act4(rng)];
      check(cs, parallel);
    }
    // Big enough to cross every cache block (KC, MC, several NC blocks on generic).
    if (!quick) {
      Case big{false, false, 700, 2100, 600, 0, 0, 0, 1.0f, 1.0f, true, Activation::GeluTanh};
      for (int t = 0; t < 4; t++) {
        big.ta = t & 1;
        big.tb = (t & 2) != 0;
        check(big, parallel);
      }
    }
  }
}

// Serial calls from several threads at once (as attention does inside
// parallel_for) must not share packing buffers.
void check_concurrent() {
  const int64_t m = 100, n = 77, k = 130;
  std::vector<float> a(m * k), b(k * n), bias(n);
  fill(a);
  fill(b);
  fill(bias);
  std::vector<float> want(m * n);
  sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, want.data(), n, bias.data(),
        Activation::Relu, false);
  std::atomic<int> bad{0};
  auto work = [&](int) {
    std::vector<float> c(m * n);
    for (int rep = 0; rep < 50; rep++) {
      sgemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n, bias.data(),
            Activation::Relu, false);
      if (std::memcmp(c.data(), want.data(), c.size() * sizeof(float))) bad++;
    }
  };
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) ts.emplace_back(work, t);
  for (auto& t : ts) t.join();
  perceiver::parallel_for(8, 1, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; i++) work((int)i);
  });
  if (bad) g_failures++;
  std::printf("  concurrent serial calls: %s\n", bad ? "FAIL" : "ok");
}

int bench(int64_t m, int64_t n, int64_t k, int reps, bool ta, bool tb) {
  std::vector<float> a(m * k), b(k * n), c(m * n);
  fill(a);
  fill(b);
  auto once = [&] {
    auto t0 = std::chrono::steady_clock::now();
    sgemm(ta, tb, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), tb ? k : n, 0.0f, c.data(), n,
          nullptr, Activation::None, true);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int i = 0; i < 3; i++) once();
  std::vector<double> ts;
  for (int i = 0; i < reps; i++) ts.push_back(once());
  std::sort(ts.begin(), ts.end());
  const double med = ts[ts.size() / 2];
  std::printf("%s m=%lld n=%lld k=%lld ta=%d tb=%d threads=%d: median %.3f ms, %.1f GFLOP/s (best %.1f)\n",
              gd::active_kernels().name, (long long)m, (long long)n, (long long)k, ta, tb,
              perceiver::num_threads(), med * 1e3, 2.0 * m * n * k / med / 1e9,
              2.0 * m * n * k / ts[0] / 1e9);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && !std::strcmp(argv[1], "--bench")) {
    const int reps = argc >= 6 ? std::atoi(argv[5]) : 10;
    const bool ta = argc >= 7 && std::atoi(argv[6]);
    const bool tb = argc >= 8 && std::atoi(argv[7]);
    return bench(std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4]), reps, ta, tb);
  }
  const bool quick = argc >= 2 && !std::strcmp(argv[1], "--quick");
  std::printf("gemm_check: %d pool threads, default path %s\n", perceiver::num_threads(),
              gd::active_kernels().name);
  const char* names[] = {"generic", "avx2", "avx512"};
  for (gd::Isa isa : {gd::Isa::Avx512, gd::Isa::Avx2, gd::Isa::Generic}) {
    if (!gd::isa_supported(isa)) {
      std::printf("[%s] not supported on this CPU/build: skipped\n", names[(int)isa]);
      continue;
    }
    gd::force_isa(isa);
    const int before = g_failures;
    const int64_t checked = g_checked;
    std::printf("[%s]\n", gd::active_kernels().name);
    check_activations();
    check_gelu_grad();
    check_softmax_rows();
    run_suite(quick);
    check_concurrent();
    std::printf("  %lld products checked, %d failures\n", (long long)(g_checked - checked),
                g_failures - before);
  }
  std::printf(g_failures ? "FAILED (%d)\n" : "all ok\n", g_failures);
  return g_failures ? 1 : 0;
}
