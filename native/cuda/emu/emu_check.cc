// CUDA kernels run from their own source on the CPU (emu.h) against double-precision
// references: attention.cu's forward through every tier, path and key split,
// attention_gemm.cu's composed forward and gradient (its products through host.cc's
// loop), backward.cu's gradients, and the 16-byte binary and layer-norm kernels of
// elementwise.cu / reduce.cu with their fallbacks. A check of index arithmetic, fragment layouts and dispatch for machines
// without a GPU (test/cuda-emu.test.ts builds and runs it; so does
// scripts/device-check.sh --prepare, before anything goes to a GPU):
//   g++ -std=c++20 -O1 -ffp-contract=off -I<cuda>/include -Inative native/cuda/emu/*.cc -o emu_check
//   ./emu_check [all | attention | composed | rows | elementwise | training | ops | races] [name filter]
// A shared-memory race in a kernel (emu.h) fails its check; `races` checks that the
// emulation finds them.
// PERCEIVER_CUDA_VECTOR_KERNELS=1 in the environment makes "rows" take the 16-byte
// kernels, as on a GPU; unset, their fallbacks.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../storage.h"
#include "bits.h"
#include "emu.h"
#include "../attention.h"
#include "../attention_mma.cuh"
#include "../launch.cuh"
#include "../attention_gemm.h"
#include "../random.cuh"
#include "../../cpu/kernels.h"
#include "../../cpu/random.h"
#include "../kernels.h"

namespace perceiver::cuda::detail {
// attention.cu's hooks for its harnesses (as native/cuda/attention_check.cu declares them).
cudaError_t attention_forward_forced(const AttentionArgs& a, void* workspace, size_t workspace_bytes, int sm_count,
                                     cudaStream_t stream, int path, int splits);
size_t attention_workspace_bytes_forced(const AttentionArgs& a, int splits);
const char* attention_last_kernel();
}  // namespace perceiver::cuda::detail

namespace {

using perceiver::AttentionArgs;
using perceiver::DType;

// ---- attention ------------------------------------------------------------------------

uint16_t to_bits(float x, DType dt) {
  return dt == DType::BFloat16 ? perceiver::emu::float_to_bits<__nv_bfloat16>(x) : perceiver::emu::float_to_bits<__half>(x);
}
float from_bits(uint16_t u, DType dt) {
  return dt == DType::BFloat16 ? perceiver::emu::bits_to_float<__nv_bfloat16>(u) : perceiver::emu::bits_to_float<__half>(u);
}

// Element i of a float32 / 16-bit array, as float.
float load(const void* p, DType dt, int64_t i) {
  if (dt == DType::Float32) return static_cast<const float*>(p)[i];
  return from_bits(static_cast<const uint16_t*>(p)[i], dt);
}
void store(void* p, DType dt, int64_t i, float x) {
  if (dt == DType::Float32) static_cast<float*>(p)[i] = x;
  else static_cast<uint16_t*>(p)[i] = to_bits(x, dt);
}

const char* dtype_label(DType dt) {
  return dt == DType::Float32 ? "float32" : dt == DType::BFloat16 ? "bfloat16" : "float16";
}

struct Case {
  const char* name;
  int64_t B, H, nq, nk, dqk, dv;
  bool odd_stride;  // rows at a stride of H * D + 3 (no 16-byte loads: the padded copies)
  bool mask;        // a [B, Nq, Nk] mask with about a quarter of the keys masked
};

int g_failures = 0, g_checks = 0;

void check(const Case& c, DType dt, int path, int splits) {
  const int64_t sq = c.H * c.dqk + (c.odd_stride ? 3 : 0), sv = c.H * c.dv + (c.odd_stride ? 3 : 0);
  const int64_t so = c.H * c.dv;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  // 4 bytes per element whatever the dtype (16-bit arrays use the first half).
  std::vector<float> q(c.B * c.nq * sq), k(c.B * c.nk * sq), v(c.B * c.nk * sv), out(c.B * c.nq * so);
  for (auto* t : {&q, &k, &v})
    for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, u(rng));
  for (size_t i = 0; i < out.size(); i++) store(out.data(), dt, (int64_t)i, NAN);
  std::vector<uint8_t> mask;
  if (c.mask) {
    mask.resize(c.B * c.nq * c.nk);
    for (auto& m : mask) m = rng() % 4 != 0;
  }
  AttentionArgs a{};
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  a.out = out.data();
  a.mask = c.mask ? mask.data() : nullptr;
  a.batch = c.B; a.heads = c.H; a.nq = c.nq; a.nk = c.nk; a.dqk = c.dqk; a.dv = c.dv;
  a.q_sb = c.nq * sq; a.q_sn = sq; a.q_sh = c.dqk;
  a.k_sb = c.nk * sq; a.k_sn = sq; a.k_sh = c.dqk;
  a.v_sb = c.nk * sv; a.v_sn = sv; a.v_sh = c.dv;
  a.o_sb = c.nq * so; a.o_sn = so; a.o_sh = c.dv;
  a.m_sb = c.nq * c.nk; a.m_sq = c.nk; a.m_sk = 1;
  a.scale = 1.f / std::sqrt((float)c.dqk);
  a.dtype = dt;
  const size_t ws_bytes = perceiver::cuda::detail::attention_workspace_bytes_forced(a, splits);
  std::vector<unsigned char> ws(ws_bytes + 256);
  void* wsp = ws.data() + (256 - reinterpret_cast<uintptr_t>(ws.data()) % 256) % 256;
  const long races_before = perceiver::emu::g_races;
  const cudaError_t e = perceiver::cuda::detail::attention_forward_forced(a, wsp, ws_bytes, 132, nullptr, path, splits);
  const long races = perceiver::emu::g_races - races_before;
  char label[200];
  std::snprintf(label, sizeof label, "%-16s %-8s path %d splits %d [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld%s%s]", c.name,
                dtype_label(dt), path, splits, (long long)c.B, (long long)c.H,
                (long long)c.nq, (long long)c.nk, (long long)c.dqk, (long long)c.dv, c.odd_stride ? " odd" : "",
                c.mask ? " mask" : "");
  if (e == cudaErrorNotSupported) {
    std::printf("SKIP %s (not available for this shape)\n", label);
    return;
  }
  g_checks++;
  if (e != cudaSuccess) {
    std::printf("FAIL %s: error %d\n", label, (int)e);
    g_failures++;
    return;
  }
  double worst = 0;
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.H; h++)
      for (int64_t i = 0; i < c.nq; i++) {
        std::vector<double> logit(c.nk);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.nk; j++) {
          double s = 0;
          for (int64_t d = 0; d < c.dqk; d++)
            s += (double)load(q.data(), dt, b * a.q_sb + i * sq + h * c.dqk + d) * load(k.data(), dt, b * a.k_sb + j * sq + h * c.dqk + d);
          const bool keep = !c.mask || mask[(b * c.nq + i) * c.nk + j];
          logit[j] = keep ? s * a.scale : -INFINITY;
          mx = std::max(mx, logit[j]);
        }
        double l = 0;
        for (auto& x : logit) l += (x = mx == -INFINITY ? 0 : std::exp(x - mx));
        for (int64_t d = 0; d < c.dv; d++) {
          double o = 0;
          for (int64_t j = 0; j < c.nk; j++) o += logit[j] * load(v.data(), dt, b * a.v_sb + j * sv + h * c.dv + d);
          o = l > 0 ? o / l : 0;
          const double got = load(out.data(), dt, b * a.o_sb + i * so + h * c.dv + d);
          const double tol = dt == DType::Float32 ? 1e-5 : 1e-2;
          const double err = std::isnan(got) ? INFINITY : std::fabs(got - o) / (tol + tol * std::fabs(o));
          worst = std::max(worst, err);
        }
      }
  // A race fails the check whatever the numbers: on a GPU its result depends on timing.
  const bool ok = worst <= 1.0 && races == 0;
  if (!ok) g_failures++;
  std::printf("%s %s worst=%.2f of tol -> %s\n", ok ? "PASS" : "FAIL", label, worst,
              perceiver::cuda::detail::attention_last_kernel());
  if (races > 0) {
    std::printf("  %ld shared-memory race(s); the first: %s\n", races, perceiver::emu::g_first_race.c_str());
    perceiver::emu::g_races = 0;  // so that the next check's first race is reported
  }
}

// ---- rows: binary ops and layer norm ------------------------------------------------

using perceiver::BinaryOp;
using perceiver::Device;
using perceiver::DeviceType;
using perceiver::Storage;
using perceiver::View;

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

// |got - want| / (|want| + rms(want)) <= tol everywhere.
void compare(const std::string& what, const std::vector<double>& want, const std::vector<double>& got, DType dt) {
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

void check_binary(DType dt, BinaryOp op, const char* name, int64_t rows, int64_t n, int bcast, int64_t offset) {
  // bcast: 0 both dense, 1 b a row over the rows, 2 a a row over the rows.
  Buf a(dt, rows * n + offset), b(dt, rows * n + offset), out(dt, rows * n + offset);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.5f, 2.f);
  for (int64_t i = 0; i < rows * n + offset; i++) {
    a.set(i, u(rng) * (i % 3 ? 1 : -1));
    b.set(i, u(rng));
  }
  perceiver::cuda::binary(op, a.view(rows, n, bcast == 2, offset), b.view(rows, n, bcast == 1, offset), out.view(rows, n, false, offset), nullptr);
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
  std::snprintf(what, sizeof what, "%s %s [%lld, %lld]%s%s", name, dtype_label(dt), (long long)rows, (long long)n,
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
  std::snprintf(what, sizeof what, "layer_norm %s [%lld, %lld]%s%s", dtype_label(dt), (long long)rows, (long long)n,
                affine ? "" : " without affine", offset ? " from an offset" : "");
  compare(what, want, got, dt);
}

// Calls fn(iy, ix, ky, kx) for each tap of the k x k window at output (oy, ox) (stride
// and padding alike in both axes) that lies inside the h x w input, in row-major order.
template <class F>
void each_tap(int64_t oy, int64_t ox, int64_t k, int64_t stride, int64_t pad, int64_t h, int64_t w, F&& fn) {
  for (int64_t ky = 0; ky < k; ky++)
    for (int64_t kx = 0; kx < k; kx++) {
      const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
      if (iy >= 0 && iy < h && ix >= 0 && ix < w) fn(iy, ix, ky, kx);
    }
}

// ---- training: backward.cu's gradients ------------------------------------------------

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

void check_layer_norm_backward(DType dt, int64_t rows, int64_t n, bool affine, bool sums) {
  Arr x(dt, rows * n), g(dt, rows * n), w(dt, n), gx(dt, rows * n), gw(dt, n), gb(dt, n);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int64_t i = 0; i < rows * n; i++) x.set(i, u(rng) + 1.0), g.set(i, u(rng));
  for (int64_t j = 0; j < n; j++) w.set(j, 0.5 + (double)(j % 5) / 4);
  const float eps = 1e-5f;
  std::vector<float> ws(perceiver::cuda::layer_norm_backward_workspace(rows, n) / 4 + 1, NAN);
  perceiver::cuda::layer_norm_backward(x.p(), affine ? w.p() : nullptr, g.p(), gx.p(), sums ? gw.p() : nullptr,
                                       sums ? gb.p() : nullptr, rows, n, eps, dt, ws.data(), nullptr);
  std::vector<double> want_gx(rows * n), want_gw(n, 0.0), want_gb(n, 0.0);
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
      want_gx[r * n + j] = rstd * (gh - mg - xh * mgx);
    }
  }
  char what[160];
  std::snprintf(what, sizeof what, "layer_norm_backward %s [%lld, %lld]%s", dtype_label(dt), (long long)rows,
                (long long)n, affine ? "" : " without weight");
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
  std::snprintf(what, sizeof what, "softmax_backward %s -> %s [%lld, %lld]", dtype_label(in), dtype_label(out),
                (long long)rows, (long long)n);
  compare(what, want, gx.all(rows * n), out);
}

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
  compare(std::string("gelu_backward ") + dtype_label(dt) + (tanh_form ? " tanh" : " erf"), want, gx.all(n), dt);
}

// Max pooling's gradient: each window's first maximum (in row-major window order) takes
// the window's gradient; values repeat, so ties happen.
void check_max_pool_backward(DType dt, int64_t k, int64_t stride, int64_t pad) {
  perceiver::Pool2dArgs a{};
  a.batch = 2; a.h = 7; a.w = 9; a.c = 3; a.kh = k; a.kw = k;
  a.stride_h = stride; a.stride_w = stride; a.pad_top = pad; a.pad_left = pad;
  a.oh = (a.h + 2 * pad - k) / stride + 1;
  a.ow = (a.w + 2 * pad - k) / stride + 1;
  a.dtype = dt;
  const int64_t nin = a.batch * a.h * a.w * a.c, nout = a.batch * a.oh * a.ow * a.c;
  Arr x(dt, nin), g(dt, nout), gx(dt, nin);
  std::mt19937 rng(13);
  for (int64_t i = 0; i < nin; i++) x.set(i, (double)(rng() % 5));
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
            if (arg < 0 || x.get(at) > x.get(arg)) arg = at;
          });
          want[arg] += g.get(((b * a.oh + oy) * a.ow + ox) * a.c + c);
        }
  char what[160];
  std::snprintf(what, sizeof what, "max_pool2d_backward %s %lldx%lld stride %lld pad %lld", dtype_label(dt),
                (long long)k, (long long)k, (long long)stride, (long long)pad);
  compare(what, want, gx.all(nin), dt);
}

void check_training() {
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    // One row chunk; four (ragged, 50 rows each) over three column tiles, the last
    // ragged; without a weight; and without the weight and bias sums.
    check_layer_norm_backward(dt, 5, 300, true, true);
    check_layer_norm_backward(dt, 200, 70, true, true);
    check_layer_norm_backward(dt, 130, 33, false, true);
    check_layer_norm_backward(dt, 9, 128, true, false);
    // 128, 256 and 512 threads per row.
    for (int64_t n : {50, 3000, 9000}) check_softmax_backward(dt, dt, 3, n);
    check_gelu_backward(dt, true);
    check_gelu_backward(dt, false);
    check_max_pool_backward(dt, 3, 2, 1);
    check_max_pool_backward(dt, 2, 2, 0);
  }
  // A 16-bit gradient from float32 probabilities (autocast's softmax).
  check_softmax_backward(DType::Float32, DType::BFloat16, 4, 700);
  check_softmax_backward(DType::Float32, DType::Float16, 4, 700);
}

// ---- ops: update.cu, random.cu, embedding.cu, conv2d.cu, pool.cu, batchnorm.cu --------

// Bit for bit: the fused updates round every step as the composed ops do, and the
// generator is the CPU's.
void compare_exact(const std::string& what, const std::vector<float>& want, const std::vector<float>& got) {
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

void check_gathers(DType dt) {
  const int64_t vocab = 7, c = 5, n = 6;
  Arr w(dt, vocab * c), out(dt, n * c), oh(dt, n * vocab);
  for (int64_t i = 0; i < vocab * c; i++) w.set(i, (double)i / 4 - 3);
  std::vector<int32_t> ids = {3, 0, 6, 6, 1, 2};
  perceiver::cuda::embedding(w.p(), vocab, c, ids.data(), n, out.p(), dt, nullptr);
  std::vector<double> want(n * c), want_oh(n * vocab);
  for (int64_t r = 0; r < n; r++) {
    for (int64_t j = 0; j < c; j++) want[r * c + j] = w.get(ids[r] * c + j);
    for (int64_t j = 0; j < vocab; j++) want_oh[r * vocab + j] = j == ids[r] ? 0.9 : 0.02;
  }
  compare(std::string("embedding ") + dtype_label(dt), want, out.all(n * c), dt);
  perceiver::cuda::one_hot(ids.data(), n, vocab, 0.9f, 0.02f, oh.p(), dt, nullptr);
  compare(std::string("one_hot ") + dtype_label(dt), want_oh, oh.all(n * vocab), dt);
  // A bad id fails the op with the CPU's message, and is never read.
  for (int which = 0; which < 2; which++) {
    std::vector<int32_t> bad = {3, 0, 9, -1, 1, 2};
    std::string msg = "(no error)";
    try {
      if (which == 0) perceiver::cuda::embedding(w.p(), vocab, c, bad.data(), n, out.p(), dt, nullptr);
      else perceiver::cuda::one_hot(bad.data(), n, vocab, 1.f, 0.f, oh.p(), dt, nullptr);
    } catch (const std::exception& e) {
      msg = e.what();
    }
    const std::string want_msg = std::string("index 9 at position 2 is out of range [0, 7) of the ") +
                                 (which == 0 ? "embedding table" : "one-hot depth");
    g_checks++;
    const bool ok = msg.find(want_msg) != std::string::npos;
    if (!ok) g_failures++;
    std::printf("%s %-60s %s\n", ok ? "PASS" : "FAIL",
                (std::string(which == 0 ? "embedding" : "one_hot") + " " + dtype_label(dt) + " bad id").c_str(), msg.c_str());
  }
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
    compare(std::string("conv2d_direct ") + dtype_label(dt) + " 3x3 stride 2 pad 1", want, out.all((int64_t)want.size()), dt);
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
    compare(std::string("max_pool2d ") + dtype_label(dt) + " 3x3 stride 2 pad 1", want, out.all((int64_t)want.size()), dt);
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
      compare(std::string("batch_norm ") + dtype_label(dt) + (affine ? "" : " without affine"), want, out.all(rows * c), dt);
    }
  }
}

void check_ops() {
  check_updates();
  check_random();
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    check_gathers(dt);
    check_conv_pool_norm(dt);
  }
}

// ---- elementwise: the rest of elementwise.cu and reduce.cu ------------------------------

// A view of `b` with the given shape and element strides, `offset` elements in.
View view_of(const Buf& b, DType dt, std::initializer_list<int64_t> shape, std::initializer_list<int64_t> strides,
             int64_t offset = 0) {
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
double get_any(const Buf& b, DType dt, int64_t i) {
  const void* p = b.s->data();
  if (dt == DType::Int32) return static_cast<const int32_t*>(p)[i];
  if (dt == DType::UInt8) return static_cast<const uint8_t*>(p)[i];
  return load(p, dt, i);
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
    compare(std::string("arange ") + perceiver::dtype_name(dt), wa, ga, dt == DType::Float16 || dt == DType::BFloat16 ? dt : DType::Float32);
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
    for (int64_t i = 0; i < n; i++) gi.push_back(get_any(i32, DType::Int32, i)), gu.push_back(get_any(u8, DType::UInt8, i)), gb.push_back(get_any(back, DType::UInt8, i));
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
    compare(std::string("unary ") + o.name + " " + dtype_label(dt) + " (transposed input)", want, got, dt);
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
    compare(std::string("binary ge ") + dtype_label(dt) + " + row -> uint8", want, got, DType::Float32);
    for (auto [op, name] : {std::pair{BinaryOp::Pow, "pow"}, std::pair{BinaryOp::Minimum, "minimum"}}) {
      perceiver::cuda::binary(op, av, bv, pw.view(R, C), nullptr);
      want.clear();
      got.clear();
      for (int64_t i = 0; i < n; i++) {
        const double p = a.get(i), q = b.get(i % C);
        want.push_back(op == BinaryOp::Pow ? std::pow(p, q) : std::min(p, q));
        got.push_back(pw.get(i));
      }
      compare(std::string("binary ") + name + " " + dtype_label(dt) + " + row", want, got, dt);
    }
    // where(cond, a, b) with the condition broadcast down the columns ([R, 1]).
    Buf cond(DType::UInt8, R), wo(dt, n);
    for (int64_t r = 0; r < R; r++) static_cast<uint8_t*>(cond.s->data())[r] = r % 2;
    perceiver::cuda::where(view_of(cond, DType::UInt8, {R, C}, {1, 0}), av, bv, wo.view(R, C), nullptr);
    want.clear();
    got.clear();
    for (int64_t i = 0; i < n; i++) want.push_back((i / C) % 2 ? a.get(i) : b.get(i % C)), got.push_back(wo.get(i));
    compare(std::string("where ") + dtype_label(dt) + " (condition per row, b per column)", want, got, dt);
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
                              am ? view_of(arg, DType::Int32, {outs}, {1}) : out.view(1, outs), nullptr);
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
          want.push_back(op == ReduceOp::Sum ? sum : op == ReduceOp::Mean ? sum / (double)s.n : op == ReduceOp::Max ? mx : op == ReduceOp::Min ? mn : (double)best);
          got.push_back(am ? get_any(arg, DType::Int32, o * s.inner + i) : out.get(o * s.inner + i));
        }
      const char* names[] = {"sum", "mean", "max", "min", "argmax"};
      char what[160];
      std::snprintf(what, sizeof what, "reduce %s %s [%lld, %lld, %lld]", names[(int)op], dtype_label(dt),
                    (long long)s.outer, (long long)s.n, (long long)s.inner);
      compare(what, want, got, am ? DType::Float32 : dt);
    }
  }
  for (int64_t n : {100, 3000})
    for (bool log : {false, true}) {
      const int64_t rows = 4;
      Buf x(dt, rows * n), out(dt, rows * n);
      for (int64_t i = 0; i < rows * n; i++) x.set(i, 4 * u(rng));
      perceiver::cuda::softmax(x.view(rows, n), out.view(rows, n), rows, n, log, nullptr);
      std::vector<double> want, got;
      for (int64_t r = 0; r < rows; r++) {
        double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < n; j++) mx = std::max(mx, (double)x.get(r * n + j));
        for (int64_t j = 0; j < n; j++) s += std::exp(x.get(r * n + j) - mx);
        for (int64_t j = 0; j < n; j++) {
          const double v = x.get(r * n + j) - mx;
          want.push_back(log ? v - std::log(s) : std::exp(v) / s);
          got.push_back(out.get(r * n + j));
        }
      }
      compare(std::string(log ? "log_softmax " : "softmax ") + dtype_label(dt) + " [4, " + std::to_string(n) + "]", want, got, dt);
    }
}

void check_elementwise() {
  check_fill_arange();
  check_copies();
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16}) {
    check_unary_binary_where(dt);
    check_reductions(dt);
  }
}

void check_rows() {
  const char* vec = std::getenv("PERCEIVER_CUDA_VECTOR_KERNELS");
  std::printf("rows: PERCEIVER_CUDA_VECTOR_KERNELS=%s\n", vec ? vec : "(unset)");
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
  }
}

void check_attention(const std::string& filter) {
  // Shapes for every tier: heads of 64 (tier 0), 128 (1, and the occupancy tier 7),
  // the language model's qk 32 / v 160 (2, and 8), 261 (3 and 9, through the padded
  // copies), 322 (4), and past it (column chunks of V); the fixed-width kernel's classes
  // (128, qk 32 / v 160, qk 32 / v 96, 64, 32); ragged query and key counts so that partial
  // tiles and masked tails run.
  const Case cases[] = {
      {"w64", 1, 2, 70, 140, 64, 64, false, false},
      {"w128", 1, 2, 70, 160, 128, 128, false, true},
      {"w96-odd", 1, 1, 40, 75, 96, 96, true, false},
      {"qk32-v160", 2, 1, 33, 140, 32, 160, false, true},
      {"qk40-v150-odd", 1, 1, 20, 50, 40, 150, true, false},
      {"w261", 1, 1, 20, 70, 261, 261, true, false},
      {"qk32-v322", 1, 1, 17, 40, 32, 322, false, false},
      // Wider than the widest tier: Dv in chunks (272 + 248; 4 x 256 with a Q tile of
      // 1024 columns, one stage).
      {"qk40-v520", 1, 2, 20, 45, 40, 520, false, true},
      {"w1024-odd", 1, 1, 3, 30, 1024, 1024, true, false},
      // The fixed-width kernel's other classes: the language model's decoder heads
      // (qk 32, v 96), optical flow's 32-wide heads, and 120-wide heads, which pad to
      // its 128 class.
      {"qk32-v96", 2, 2, 90, 130, 32, 96, false, false},
      {"w32-mask", 1, 3, 50, 400, 32, 32, false, true},
      {"w120", 1, 2, 40, 140, 120, 120, false, false},
  };
  for (const Case& c : cases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (DType dt : {DType::BFloat16, DType::Float16})
      // auto (the public entry: PERCEIVER_CUDA_ATTENTION_OCCUPANCY=1 in the
      // environment makes it take the occupancy tiers), tc (the planned tier), tco (the
      // occupancy tiers), tcw (two row tiles per warp), tc1 (one stage), tcf, tcf8 and
      // tcf2 (the fixed-width kernel: 4 warps, 8 warps, 4 warps of two row tiles); one key
      // range, and three with the merge.
      for (int path : {0, 1, 7, 4, 3, 8, 9, 10})
        for (int splits : {1, 3}) check(c, dt, path, splits);
    // float32: auto, and the SIMT kernel.
    for (int path : {0, 2})
      for (int splits : {1, 3}) check(c, DType::Float32, path, splits);
  }
  // The public entry only, where 128-row blocks fill all 132 SMs (33 x 8 of them), which
  // is where auto takes the wide kernel or, with its switch, the 128-row fixed variants.
  const Case full = {"rows-fill-sms", 33, 8, 128, 16, 128, 128, false, false};
  if (filter.empty() || std::string(full.name).find(filter) != std::string::npos) check(full, DType::BFloat16, 0, 1);
}

// ---- composed: attention_gemm.cu's forward, row statistics and gradient ------------------

struct ComposedCase {
  const char* name;
  int64_t B, H, nq, nk, dqk, dv;
  bool mask;     // about a quarter of the keys masked, and batch row 0's query 3 wholly
  bool dropout;  // keep 80%, scale 1.25
  bool odd_stride;
};

// |got - want| / (|want| + rms(want)) over one array, as compare() does.
double worst_of(const std::vector<double>& want, const std::vector<double>& got) {
  double ss = 0;
  for (double w : want) ss += w * w;
  const double rms = std::sqrt(ss / std::max<size_t>(1, want.size()));
  double worst = 0;
  for (size_t i = 0; i < want.size(); i++)
    worst = std::max(worst, std::isnan(got[i]) ? INFINITY : std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + rms + 1e-30));
  return worst;
}

void check_composed(const ComposedCase& c, DType dt, bool chunked) {
  namespace pc = perceiver::cuda;
  const int64_t sq = c.H * c.dqk + (c.odd_stride ? 3 : 0), sv = c.H * c.dv + (c.odd_stride ? 3 : 0);
  const int64_t so = c.H * c.dv;
  std::mt19937 rng(4321);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  // 4 bytes per element whatever the dtype (16-bit arrays use the first half); one
  // element more than needed, so that an empty array still has an address.
  std::vector<float> q(c.B * c.nq * sq + 1), k(c.B * c.nk * sq + 1), v(c.B * c.nk * sv + 1), out(c.B * c.nq * so + 1),
      gout(c.B * c.nq * so + 1), gq(c.B * c.nq * c.H * c.dqk + 1), gk(c.B * c.nk * c.H * c.dqk + 1),
      gv(c.B * c.nk * c.H * c.dv + 1), lse(c.B * c.H * c.nq + 1);
  for (auto* t : {&q, &k, &v, &gout})
    for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, u(rng));
  std::vector<uint8_t> mask;
  if (c.mask) {
    mask.resize(c.B * c.nq * c.nk + 1);
    for (auto& m : mask) m = rng() % 4 != 0;
    for (int64_t j = 0; j < c.nk; j++) mask[3 * c.nk + j] = 0;
  }
  AttentionArgs a{};
  a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = out.data();
  a.mask = c.mask ? mask.data() : nullptr;
  a.batch = c.B; a.heads = c.H; a.nq = c.nq; a.nk = c.nk; a.dqk = c.dqk; a.dv = c.dv;
  a.q_sb = c.nq * sq; a.q_sn = sq; a.q_sh = c.dqk;
  a.k_sb = c.nk * sq; a.k_sn = sq; a.k_sh = c.dqk;
  a.v_sb = c.nk * sv; a.v_sn = sv; a.v_sh = c.dv;
  a.o_sb = c.nq * so; a.o_sn = so; a.o_sh = c.dv;
  a.m_sb = c.nq * c.nk; a.m_sq = c.nk; a.m_sk = 1;
  a.scale = 1.f / std::sqrt((float)std::max<int64_t>(c.dqk, 1));
  a.dtype = dt;
  a.lse = lse.data();
  if (c.dropout) a.dropout_seed = 99, a.dropout_keep_below = 0.8f, a.dropout_scale = 1.25f;
  const pc::DropoutSpec drop{a.dropout_seed, a.dropout_keep_below, a.dropout_scale};

  // The reference, in double: P, F and O from the inputs as stored.
  auto at = [&](const std::vector<float>& t, int64_t i) { return (double)load(t.data(), dt, i); };
  const int64_t rows = c.B * c.H * c.nq;
  std::vector<double> P(rows * c.nk, 0.0), F(rows * c.nk, 1.0), want_lse(rows), want_o(c.B * c.nq * so);
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.H; h++)
      for (int64_t i = 0; i < c.nq; i++) {
        const int64_t r = (b * c.H + h) * c.nq + i;
        std::vector<double> s(c.nk);
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.nk; j++) {
          double dot = 0;
          for (int64_t d = 0; d < c.dqk; d++) dot += at(q, b * a.q_sb + i * sq + h * c.dqk + d) * at(k, b * a.k_sb + j * sq + h * c.dqk + d);
          const bool keep = !c.mask || mask[(b * c.nq + i) * c.nk + j];
          s[j] = keep ? dot * a.scale : -INFINITY;
          mx = std::max(mx, s[j]);
        }
        double l = 0;
        for (double x : s) l += mx == -INFINITY ? 0 : std::exp(x - mx);
        want_lse[r] = l > 0 ? mx + std::log(l) : INFINITY;
        for (int64_t j = 0; j < c.nk; j++) {
          P[r * c.nk + j] = l > 0 ? std::exp(s[j] - want_lse[r]) : 0;
          if (c.dropout) F[r * c.nk + j] = drop.at((uint64_t)(r * c.nk + j));
        }
        for (int64_t d = 0; d < c.dv; d++) {
          double o = 0;
          for (int64_t j = 0; j < c.nk; j++) o += P[r * c.nk + j] * F[r * c.nk + j] * at(v, b * a.v_sb + j * sv + h * c.dv + d);
          want_o[b * a.o_sb + i * so + h * c.dv + d] = o;
        }
      }

  perceiver::cuda::GemmContext ctx{};
  pc::DeviceAllocator alloc(0);
  const size_t chunk_bytes = chunked ? 1 : pc::kAttentionChunkBytes;  // 1: chunks of 64 keys
  char label[200];
  std::snprintf(label, sizeof label, "%-13s %-8s %s [B%lld H%lld Nq%lld Nk%lld Dqk%lld Dv%lld%s%s%s]", c.name,
                dtype_label(dt), chunked ? "64-key chunks" : "one chunk    ", (long long)c.B, (long long)c.H,
                (long long)c.nq, (long long)c.nk, (long long)c.dqk, (long long)c.dv, c.mask ? " mask" : "",
                c.dropout ? " dropout" : "", c.odd_stride ? " odd" : "");
  const double tol = dt == DType::Float32 ? 1e-5 : dt == DType::BFloat16 ? 2e-2 : 4e-3;
  // One line per pass: the worst of each array it wrote.
  auto report = [&](const char* what, std::initializer_list<std::pair<const char*, double>> worst) {
    g_checks++;
    bool ok = true;
    std::string figures;
    for (const auto& [name, w] : worst) {
      ok = ok && w <= tol;
      char f[40];
      std::snprintf(f, sizeof f, " %s %.1e", name, w);
      figures += f;
    }
    if (!ok) g_failures++;
    std::printf("%s composed %-18s %s worst:%s (tol %.0e)\n", ok ? "PASS" : "FAIL", what, label, figures.c_str(), tol);
  };

  pc::attention_forward_gemm(ctx, alloc, a, nullptr, chunk_bytes);
  std::vector<double> got_o(want_o.size()), got_lse(rows);
  for (size_t i = 0; i < got_o.size(); i++) got_o[i] = at(out, (int64_t)i);
  // +inf (no key kept) compares as equal to +inf, and as 0 apart from it.
  std::vector<double> wl(rows), gl(rows);
  for (int64_t r = 0; r < rows; r++) {
    wl[r] = std::isinf(want_lse[r]) ? 0 : want_lse[r];
    gl[r] = std::isinf(lse[r]) != std::isinf(want_lse[r]) ? NAN : std::isinf(lse[r]) ? 0 : lse[r];
  }
  report("forward", {{"out", worst_of(want_o, got_o)}, {"lse", worst_of(wl, gl)}});

  // The gradient from the forward's out as stored (D = rowsum(dO ∘ O) reads it), with
  // the forward's row statistics and with them recomputed.
  std::vector<double> wq(gq.size() - 1, 0.0), wk(gk.size() - 1, 0.0), wv(gv.size() - 1, 0.0);
  for (int64_t b = 0; b < c.B; b++)
    for (int64_t h = 0; h < c.H; h++)
      for (int64_t i = 0; i < c.nq; i++) {
        const int64_t r = (b * c.H + h) * c.nq + i, oi = b * a.o_sb + i * so + h * c.dv;
        double D = 0;
        for (int64_t d = 0; d < c.dv; d++) D += at(gout, oi + d) * at(out, oi + d);
        for (int64_t j = 0; j < c.nk; j++) {
          const double p = P[r * c.nk + j], f = F[r * c.nk + j];
          double dp = 0;
          for (int64_t d = 0; d < c.dv; d++) {
            dp += at(gout, oi + d) * at(v, b * a.v_sb + j * sv + h * c.dv + d);
            wv[((b * c.nk + j) * c.H + h) * c.dv + d] += p * f * at(gout, oi + d);
          }
          const double ds = p * (dp * f - D);
          for (int64_t d = 0; d < c.dqk; d++) {
            wq[((b * c.nq + i) * c.H + h) * c.dqk + d] += a.scale * ds * at(k, b * a.k_sb + j * sq + h * c.dqk + d);
            wk[((b * c.nk + j) * c.H + h) * c.dqk + d] += a.scale * ds * at(q, b * a.q_sb + i * sq + h * c.dqk + d);
          }
        }
      }
  for (bool reuse_lse : {true, false}) {
    perceiver::AttentionBackwardArgs g{a, gout.data(), gq.data(), gk.data(), gv.data()};
    if (!reuse_lse) g.a.lse = nullptr;
    for (auto* t : {&gq, &gk, &gv})
      for (size_t i = 0; i < t->size(); i++) store(t->data(), dt, (int64_t)i, NAN);
    pc::attention_backward(ctx, alloc, g, nullptr, chunk_bytes);
    auto got = [&](const std::vector<float>& t, size_t n) {
      std::vector<double> r(n);
      for (size_t i = 0; i < n; i++) r[i] = at(t, (int64_t)i);
      return r;
    };
    report(reuse_lse ? "gradient" : "gradient, own lse",
           {{"dq", worst_of(wq, got(gq, wq.size()))}, {"dk", worst_of(wk, got(gk, wk.size()))},
            {"dv", worst_of(wv, got(gv, wv.size()))}});
  }
}

void check_composed_all(const std::string& filter) {
  // Several heads (one product per batch row), one head (one product over the batch),
  // masks with a wholly masked row, dropout, unaligned rows, and no keys at all.
  const ComposedCase cases[] = {
      {"heads-mask", 2, 3, 20, 150, 16, 24, true, false, false},
      {"one-head", 3, 1, 17, 130, 20, 12, true, true, false},
      {"heads-dropout", 1, 2, 9, 70, 8, 8, false, true, true},
      {"no-keys", 2, 2, 5, 0, 8, 8, false, false, false},
  };
  for (const ComposedCase& c : cases) {
    if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
    for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16})
      for (bool chunked : {false, true}) check_composed(c, dt, chunked);
  }
}

// ---- races: the emulation's own check of its race detection (emu.h) ---------------

// Two warps; each thread copies one 16-byte chunk (chunk i of a 64-chunk tile holds the
// 16-bit values 8i .. 8i + 7) into shared memory with cp.async, and each warp then
// reads the other warp's 32 chunks with ldmatrix, so every read depends on other
// threads' copies. Each scenario leaves out one thing that orders them.
enum class Order { Ordered, NoBarrier, NoWait, OwnBeforeWait, NewestGroupUnwaited, OverwriteWhileRead };

void race_kernel(Order order, const uint16_t* src, int* wrong) {
  using namespace perceiver::cuda::attn;
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* tile = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* tile2 = tile + 64 * 8;
  const int t = (int)threadIdx.x, warp = t / 32, lane = t % 32;
  const int theirs = (warp ^ 1) * 32 + lane;  // the chunk whose address this lane gives
  const uint16_t* read_from = tile;
  cp_async_16(tile + t * 8, src + t * 8, 16);
  cp_async_commit();
  if (order == Order::NewestGroupUnwaited) {
    cp_async_16(tile2 + t * 8, src + t * 8, 16);
    cp_async_commit();
    cp_async_wait<1>();  // the first group only
    read_from = tile2;
  } else if (order != Order::NoWait && order != Order::OwnBeforeWait) {
    cp_async_wait<0>();
  }
  if (order != Order::NoBarrier && order != Order::OwnBeforeWait) __syncthreads();
  uint32_t r[4];
  ldmatrix_x4(r, (order == Order::OwnBeforeWait ? tile + t * 8 : read_from + theirs * 8));
  if (order == Order::OverwriteWhileRead) cp_async_16(tile + t * 8, src + t * 8, 16);  // no barrier since the reads
  cp_async_wait<0>();
  // Register m: elements [lane / 4][2 (lane % 4) .. + 1] of matrix m, whose row r came
  // from lane 8m + r.
  if (order == Order::Ordered)
    for (int m = 0; m < 4; m++) {
      const int chunk = (warp ^ 1) * 32 + 8 * m + lane / 4, col = 2 * (lane % 4);
      if (r[m] != ((uint32_t)(chunk * 8 + col) | (uint32_t)(chunk * 8 + col + 1) << 16)) (*wrong)++;
    }
}

void check_races() {
  struct Scenario {
    Order order;
    const char* name;
    const char* expect;  // the start of the first race's description; null: none
  };
  const Scenario scenarios[] = {
      {Order::Ordered, "wait, barrier, read", nullptr},
      // Warp 0 runs first here and reads warp 1's chunks before they are copied; on a
      // GPU either side may come first.
      {Order::NoBarrier, "wait, read (no barrier)", "copy issued over data another thread reads in this epoch"},
      {Order::NoWait, "barrier, read (no wait)", "read of another thread's copy with no barrier after it landed"},
      {Order::OwnBeforeWait, "read of one's own chunk before the wait", "read of this thread's own copy before waiting for it"},
      {Order::NewestGroupUnwaited, "wait_group 1, read of the newest group", "read of another thread's copy with no barrier after it landed"},
      {Order::OverwriteWhileRead, "copy over the tile with no barrier after the reads", "copy issued over data another thread reads in this epoch"},
  };
  std::vector<uint16_t> src(64 * 8);
  for (size_t i = 0; i < src.size(); i++) src[i] = (uint16_t)i;
  for (const Scenario& sc : scenarios) {
    perceiver::emu::g_races = 0;
    int wrong = 0;
    PERCEIVER_LAUNCH(1, 64, 2 * 64 * 16, nullptr, race_kernel)(sc.order, src.data(), &wrong);
    const long races = perceiver::emu::g_races;
    const std::string& first = perceiver::emu::g_first_race;
    const bool ok = sc.expect ? races > 0 && first.rfind(sc.expect, 0) == 0 : races == 0 && wrong == 0;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s races: %-52s %ld race(s)%s%s\n", ok ? "PASS" : "FAIL", sc.name, races, races ? "; the first: " : "",
                races ? first.c_str() : (wrong ? "; wrong values" : ""));
    perceiver::emu::g_races = 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "all", filter = argc > 2 ? argv[2] : "";
  if (what != "all" && what != "attention" && what != "composed" && what != "rows" && what != "training" &&
      what != "ops" && what != "elementwise" && what != "races") {
    std::fprintf(stderr, "usage: %s [all | attention | composed | rows | elementwise | training | ops | races] [filter]\n",
                 argv[0]);
    return 2;
  }
  if (what == "all" || what == "races") check_races();
  if (what == "all" || what == "attention") check_attention(filter);
  if (what == "all" || what == "composed") check_composed_all(filter);
  if (what == "all" || what == "rows") check_rows();
  if (what == "all" || what == "elementwise") check_elementwise();
  if (what == "all" || what == "training") check_training();
  if (what == "all" || what == "ops") check_ops();
  std::printf("%s: %d failure(s) in %d checks\n", g_failures ? "FAILED" : "OK", g_failures, g_checks);
  return g_failures ? 1 : 0;
}
