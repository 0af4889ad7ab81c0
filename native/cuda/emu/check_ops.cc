// update.cu, random.cu, embedding.cu, conv2d.cu, pool.cu and batchnorm.cu on the
// emulation: the updates and draws bit for bit against the CPU backend's own kernels
// (cpu_*.cc compile them in), the rest against double-precision references.
#include <random>

#include "emu.h"  // first: the kernel headers below take its emulation
#include "../../cpu/kernels.h"
#include "../../cpu/random.h"
#include "../kernels.h"
#include "../random.cuh"
#include "check.h"

namespace perceiver::emu::check {

namespace {

// One check: op() threw a message containing `want`.
template <class F>
void expect_throw(const std::string& what, F&& op, const std::string& want) {
  std::string msg = "(no error)";
  try {
    op();
  } catch (const std::exception& e) {
    msg = e.what();
  }
  g_checks++;
  const bool ok = msg.find(want) != std::string::npos;
  if (!ok) g_failures++;
  std::printf("%s %-60s %s\n", ok ? "PASS" : "FAIL", what.c_str(), msg.c_str());
}

struct Moments {
  std::vector<float> p, g, m, v;
  explicit Moments(int64_t n, unsigned seed) : p(n), g(n), m(n), v(n) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < n; i++) p[i] = u(rng), g[i] = u(rng) * 0.1f, m[i] = u(rng) * 0.01f, v[i] = std::fabs(u(rng)) * 1e-3f;
  }
};

perceiver::AdamArgs adam_args(Moments& s, float wd) {
  perceiver::AdamArgs a{};
  a.p = s.p.data(); a.g = s.g.data(); a.m = s.m.data(); a.v = s.v.data();
  a.n = (int64_t)s.p.size();
  a.lr = 1e-3f; a.beta1 = 0.9f; a.one_minus_beta1 = 0.1f; a.beta2 = 0.999f; a.one_minus_beta2 = 1e-3f;
  a.eps = 1e-6f; a.weight_decay = wd; a.bc1 = 1.f / 0.1f; a.bc2 = 1.f / 1e-3f;
  return a;
}

// The fused updates against the CPU backend's own (native/cpu/update.cc, linked in
// through cpu_update.cc), from the same state.
void check_updates() {
  for (float wd : {0.f, 0.01f}) {
    Moments dev(1500, 21), cpu(1500, 21);
    perceiver::cuda::adam_update(adam_args(dev, wd), nullptr);
    perceiver::cpu::adam_update(adam_args(cpu, wd));
    const std::string what = std::string("adam_update") + (wd > 0 ? " with weight decay" : "");
    compare_exact(what + " p", cpu.p, dev.p);
    compare_exact(what + " m", cpu.m, dev.m);
    compare_exact(what + " v", cpu.v, dev.v);
  }
  {
    // LAMB: the moments bit for bit; p within float32 tolerance (the norms' sums run in
    // the kernels' block order in float, the CPU's in double).
    const int64_t n = 5000;
    Moments dev(n, 22), cpu(n, 22);
    std::vector<float> u(n), u_cpu(n), partials(2 * perceiver::cuda::lamb_partial_blocks(n));
    perceiver::cuda::lamb_update(adam_args(dev, 0.01f), u.data(), partials.data(), nullptr);
    perceiver::cpu::lamb_update(adam_args(cpu, 0.01f), u_cpu.data());
    compare_exact("lamb_update m", cpu.m, dev.m);
    compare_exact("lamb_update v", cpu.v, dev.v);
    compare("lamb_update p", std::vector<double>(cpu.p.begin(), cpu.p.end()), std::vector<double>(dev.p.begin(), dev.p.end()),
            DType::Float32);
  }
  const char* names[] = {"sgd_update", "sgd_update with momentum and weight decay", "sgd_update Nesterov"};
  for (int mode = 0; mode < 3; mode++) {  // plain, momentum, Nesterov
    Moments dev(1200, 23), cpu(1200, 23);
    auto args = [&](Moments& s) {
      perceiver::SgdArgs a{};
      a.p = s.p.data(); a.g = s.g.data(); a.buf = mode ? s.m.data() : nullptr;
      a.n = 1200; a.lr = 0.05f; a.momentum = 0.9f; a.lr_wd = mode == 1 ? 5e-4f : 0.f; a.nesterov = mode == 2;
      return a;
    };
    perceiver::cuda::sgd_update(args(dev), nullptr);
    perceiver::cpu::sgd_update(args(cpu));
    compare_exact(std::string(names[mode]) + " p", cpu.p, dev.p);
    if (mode) compare_exact(std::string(names[mode]) + " buf", cpu.m, dev.m);
  }
}

// rand, randn and the attention's dropout mask against the CPU's generator
// (native/cpu/random.cc, through cpu_random.cc).
void check_random() {
  for (uint64_t seed : {0ull, 12345ull}) {
    const int64_t n = 1001;  // odd: randn's last pair has one element
    Buf uni(DType::Float32, n), nor(DType::Float32, n), uni_cpu(DType::Float32, n), nor_cpu(DType::Float32, n);
    perceiver::cuda::random_uniform(uni.view(1, n), seed, -2.f, 3.f, nullptr);
    perceiver::cuda::random_normal(nor.view(1, n), seed, 0.5f, 2.f, nullptr);
    perceiver::cpu::random_uniform(uni_cpu.view(1, n), seed, -2.f, 3.f);
    perceiver::cpu::random_normal(nor_cpu.view(1, n), seed, 0.5f, 2.f);
    auto floats = [&](const Buf& b) {
      std::vector<float> r(n);
      for (int64_t i = 0; i < n; i++) r[i] = b.get(i);
      return r;
    };
    compare_exact("rand, the CPU's draws, seed " + std::to_string(seed), floats(uni_cpu), floats(uni));
    compare_exact("randn, the CPU's draws, seed " + std::to_string(seed), floats(nor_cpu), floats(nor));
    // Dropout's factors for elements [base, base + n): the fused attention's (random.cuh)
    // and the CPU's (vectorised where the CPU has AVX-512DQ).
    const perceiver::cpu::DropoutMask dm{seed, 0.9f, 1.f / 0.9f};
    const perceiver::cuda::DropoutSpec ds{seed, 0.9f, 1.f / 0.9f};
    std::vector<float> want(n), got(n);
    perceiver::cpu::dropout_factors(dm, 777, n, want.data());
    for (int64_t j = 0; j < n; j++) got[j] = ds.at(777 + (uint64_t)j);
    compare_exact("dropout mask, the CPU's, seed " + std::to_string(seed), want, got);
  }
}

// Rows of 5 elements take the element kernel; rows of 24 (whole 16-byte packs in every
// dtype) the pack kernel, or the element kernel again where the output starts one
// element into an aligned buffer. Each runs with the bad-id flag and without it (ids
// the host knows are in range).
void check_gathers(DType dt) {
  const int64_t vocab = 7, n = 6;
  const std::vector<int32_t> ids = {3, 0, 6, 6, 1, 2}, bad_ids = {3, 0, 9, -1, 1, 2};
  unsigned long long flag = 0;  // the backend's device word for the first bad position
  // A table of empty rows: nothing to gather, but its ids are still checked, as the CPU
  // checks them.
  perceiver::cuda::embedding(nullptr, vocab, 0, ids.data(), n, nullptr, dt, false, &flag, nullptr);
  expect_throw(
      std::string("embedding ") + dtype_name(dt) + " rows of 0 bad id",
      [&] { perceiver::cuda::embedding(nullptr, vocab, 0, bad_ids.data(), n, nullptr, dt, false, &flag, nullptr); },
      "index 9 at position 2 is out of range [0, 7) of the embedding table");
  for (int64_t c : {5, 24})
    for (int64_t shift : {0, 1})
      for (bool known : {false, true}) {
        if (c == 5 && shift) continue;
        Arr w(dt, vocab * c), out(dt, n * c + shift);
        for (int64_t i = 0; i < vocab * c; i++) w.set(i, (double)i / 4 - 3);
        for (int64_t i = 0; i < n * c + shift; i++) out.set(i, NAN);
        void* dst = static_cast<char*>(out.p()) + shift * (int64_t)dtype_size(dt);
        perceiver::cuda::embedding(w.p(), vocab, c, ids.data(), n, dst, dt, known, &flag, nullptr);
        std::vector<double> want(n * c), got(n * c);
        for (int64_t r = 0; r < n; r++)
          for (int64_t j = 0; j < c; j++) want[r * c + j] = w.get(ids[r] * c + j);
        for (int64_t i = 0; i < n * c; i++) got[i] = out.get(shift + i);
        const std::string what = std::string("embedding ") + dtype_name(dt) + " rows of " + std::to_string(c) +
                                 (shift ? ", output one element in" : "") + (known ? ", ids known" : "");
        compare(what, want, got, dt);
        if (!known) {  // a bad id fails the op with the CPU's message, and is never read
          expect_throw(
              what + " bad id", [&] { perceiver::cuda::embedding(w.p(), vocab, c, bad_ids.data(), n, dst, dt, false, &flag, nullptr); },
              "index 9 at position 2 is out of range [0, 7) of the embedding table");
          continue;
        }
        // Bounds that lied (the op layer's bug, not the user's): no error to report, but
        // the bad rows are still never read, nor written.
        for (int64_t i = 0; i < n * c + shift; i++) out.set(i, NAN);
        perceiver::cuda::embedding(w.p(), vocab, c, bad_ids.data(), n, dst, dt, true, &flag, nullptr);
        for (int64_t r = 0; r < n; r++)
          for (int64_t j = 0; j < c; j++)
            want[r * c + j] = bad_ids[r] < 0 || bad_ids[r] >= vocab ? NAN : w.get(bad_ids[r] * c + j);
        int64_t wrong = 0;
        for (int64_t i = 0; i < n * c; i++) {
          const double g = out.get(shift + i);
          wrong += std::isnan(want[i]) ? !std::isnan(g) : g != want[i];
        }
        g_checks++;
        if (wrong) g_failures++;
        std::printf("%s %-60s %lld of %lld elements wrong\n", wrong ? "FAIL" : "PASS", (what + " bad id unread").c_str(),
                    (long long)wrong, (long long)(n * c));
      }
  for (bool known : {false, true}) {
    Arr oh(dt, n * vocab);
    perceiver::cuda::one_hot(ids.data(), n, vocab, 0.9f, 0.02f, oh.p(), dt, known, &flag, nullptr);
    std::vector<double> want_oh(n * vocab);
    for (int64_t r = 0; r < n; r++)
      for (int64_t j = 0; j < vocab; j++) want_oh[r * vocab + j] = j == ids[r] ? 0.9 : 0.02;
    compare(std::string("one_hot ") + dtype_name(dt) + (known ? ", ids known" : ""), want_oh, oh.all(n * vocab), dt);
  }
  Arr oh(dt, n * vocab);
  expect_throw(
      std::string("one_hot ") + dtype_name(dt) + " bad id",
      [&] { perceiver::cuda::one_hot(bad_ids.data(), n, vocab, 1.f, 0.f, oh.p(), dt, false, &flag, nullptr); },
      "index 9 at position 2 is out of range [0, 7) of the one-hot depth");
}

void check_conv_pool_norm(DType dt) {
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  {  // NHWC input, HWIO filter: 3x3, stride 2, padding 1 top and left, and a bias
    perceiver::Conv2dArgs a{};
    a.batch = 2; a.h = 9; a.w_in = 7; a.cin = 3; a.kh = 3; a.kw = 3; a.cout = 5;
    a.stride_h = 2; a.stride_w = 2; a.pad_top = 1; a.pad_left = 1;
    a.oh = (a.h + 2 - 3) / 2 + 1; a.ow = (a.w_in + 2 - 3) / 2 + 1;
    a.dtype = dt;
    Arr x(dt, a.batch * a.h * a.w_in * a.cin), w(dt, a.kh * a.kw * a.cin * a.cout), b(dt, a.cout),
        out(dt, a.batch * a.oh * a.ow * a.cout);
    for (size_t i = 0; i + 1 < x.v.size(); i++) x.set((int64_t)i, u(rng));
    for (size_t i = 0; i + 1 < w.v.size(); i++) w.set((int64_t)i, u(rng));
    for (int64_t i = 0; i < a.cout; i++) b.set(i, u(rng));
    a.x = static_cast<const float*>(x.p()); a.w = static_cast<const float*>(w.p());
    a.bias = static_cast<const float*>(b.p()); a.out = static_cast<float*>(out.p());
    perceiver::cuda::conv2d_direct(a, nullptr);
    std::vector<double> want(a.batch * a.oh * a.ow * a.cout);
    for (int64_t bi = 0; bi < a.batch; bi++)
      for (int64_t oy = 0; oy < a.oh; oy++)
        for (int64_t ox = 0; ox < a.ow; ox++)
          for (int64_t co = 0; co < a.cout; co++) {
            double acc = b.get(co);
            each_tap(oy, ox, 3, 2, 1, a.h, a.w_in, [&](int64_t iy, int64_t ix, int64_t ky, int64_t kx) {
              for (int64_t ci = 0; ci < a.cin; ci++)
                acc += x.get(((bi * a.h + iy) * a.w_in + ix) * a.cin + ci) * w.get(((ky * a.kw + kx) * a.cin + ci) * a.cout + co);
            });
            want[((bi * a.oh + oy) * a.ow + ox) * a.cout + co] = acc;
          }
    compare(std::string("conv2d_direct ") + dtype_name(dt) + " 3x3 stride 2 pad 1", want, out.all((int64_t)want.size()), dt);
  }
  {  // max pooling 3x3, stride 2, padding 1
    perceiver::Pool2dArgs a{};
    a.batch = 2; a.h = 8; a.w = 7; a.c = 3; a.kh = 3; a.kw = 3; a.stride_h = 2; a.stride_w = 2; a.pad_top = 1; a.pad_left = 1;
    a.oh = (a.h + 2 - 3) / 2 + 1; a.ow = (a.w + 2 - 3) / 2 + 1;
    a.dtype = dt;
    Arr x(dt, a.batch * a.h * a.w * a.c), out(dt, a.batch * a.oh * a.ow * a.c);
    for (size_t i = 0; i + 1 < x.v.size(); i++) x.set((int64_t)i, u(rng));
    a.x = static_cast<const float*>(x.p()); a.out = static_cast<float*>(out.p());
    perceiver::cuda::max_pool2d(a, nullptr);
    std::vector<double> want(a.batch * a.oh * a.ow * a.c);
    for (int64_t bi = 0; bi < a.batch; bi++)
      for (int64_t oy = 0; oy < a.oh; oy++)
        for (int64_t ox = 0; ox < a.ow; ox++)
          for (int64_t c = 0; c < a.c; c++) {
            double m = -INFINITY;
            each_tap(oy, ox, 3, 2, 1, a.h, a.w, [&](int64_t iy, int64_t ix, int64_t, int64_t) {
              m = std::max(m, x.get(((bi * a.h + iy) * a.w + ix) * a.c + c));
            });
            want[((bi * a.oh + oy) * a.ow + ox) * a.c + c] = m;
          }
    compare(std::string("max_pool2d ") + dtype_name(dt) + " 3x3 stride 2 pad 1", want, out.all((int64_t)want.size()), dt);
  }
  {  // inference batch norm over the channels of [rows, c], with and without affine
    const int64_t rows = 40, c = 6;
    Arr x(dt, rows * c), mean(dt, c), var(dt, c), w(dt, c), b(dt, c), out(dt, rows * c);
    for (int64_t i = 0; i < rows * c; i++) x.set(i, 3 * u(rng));
    for (int64_t j = 0; j < c; j++) mean.set(j, u(rng)), var.set(j, 0.5 + std::fabs(u(rng))), w.set(j, 1 + u(rng) / 2), b.set(j, u(rng));
    for (bool affine : {true, false}) {
      perceiver::cuda::batch_norm(x.p(), mean.p(), var.p(), affine ? w.p() : nullptr, affine ? b.p() : nullptr, out.p(),
                                  rows, c, 1e-5f, dt, nullptr);
      std::vector<double> want(rows * c);
      for (int64_t i = 0; i < rows * c; i++) {
        const int64_t j = i % c;
        const double y = (x.get(i) - mean.get(j)) / std::sqrt(var.get(j) + 1e-5);
        want[i] = affine ? y * w.get(j) + b.get(j) : y;
      }
      compare(std::string("batch_norm ") + dtype_name(dt) + (affine ? "" : " without affine"), want, out.all(rows * c), dt);
    }
  }
}

}  // namespace

void check_ops() {
  check_updates();
  check_random();
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    check_gathers(dt);
    check_conv_pool_norm(dt);
  }
}

}  // namespace perceiver::emu::check
