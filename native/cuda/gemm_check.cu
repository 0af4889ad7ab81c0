// Development harness for the CUDA backend's GEMM and elementwise/normalisation
// kernels, llm.c style: each case runs on the CPU backend (the reference) and on
// the CUDA backend through the same Backend entries the engine calls, compares
// within the dtype's tolerance, then times the CUDA version.
//
//   ./build/cuda/cuda_gemm_check            # exit 0 when every case passes
//   PERCEIVER_CUDA_TF32=1 ./cuda_gemm_check # float32 GEMMs on TF32 (looser tolerance)
//   ./cuda_gemm_check --search              # only the cuBLASLt search against tuning
// (Its last section times float32 products both on the CUDA cores and as three TF32
// products, PERCEIVER_CUDA_TF32=3, whatever the environment says.)
//
// Needs a GPU and cuBLASLt (PERCEIVER_CUBLAS_PATH); exits 2 when CUDA is unavailable.
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../backend.h"
#include "../queue.h"
#include "api.h"
#include "check_util.h"
#include "gemm.h"

using namespace perceiver;

namespace {

Backend* g_gpu = nullptr;
int g_failures = 0;
const char* g_tag = "";  // appended to the matmul cases' names (" tuned")

struct Buf {  // one tensor's storage on a device, with host staging helpers
  std::shared_ptr<Storage> s;
  DType dtype;
  int64_t n;
  Buf(Backend* b, Device d, DType t, int64_t count)
      : s(std::make_shared<Storage>(b, d, (size_t)count * dtype_size(t))), dtype(t), n(count) {}
  View view(std::vector<int64_t> shape) const {
    View v;
    v.storage = s.get();
    v.dtype = dtype;
    v.ndim = (int)shape.size();
    int64_t st = 1;
    for (int i = v.ndim - 1; i >= 0; i--) {
      v.shape[i] = shape[i];
      v.strides[i] = st;
      st *= shape[i];
    }
    return v;
  }
};

// Host floats -> a buffer of `dtype` on backend b (values rounded to dtype).
Buf upload(Backend* b, Device d, DType t, const std::vector<float>& host) {
  Buf buf(b, d, t, (int64_t)host.size());
  std::vector<uint16_t> h16;
  const void* src = host.data();
  if (t != DType::Float32) {
    h16.resize(host.size());
    for (size_t i = 0; i < host.size(); i++)
      h16[i] = t == DType::BFloat16 ? float_to_bf16(host[i]) : float_to_half(host[i]);
    src = h16.data();
  }
  b->copy_from_host(buf.s->data(), src, (size_t)buf.n * dtype_size(t));
  return buf;
}

std::vector<float> download(Backend* b, const Buf& buf) {
  std::vector<float> out((size_t)buf.n);
  if (buf.dtype == DType::Float32) {
    b->copy_to_host(out.data(), buf.s->data(), out.size() * 4);
  } else {
    std::vector<uint16_t> h((size_t)buf.n);
    b->copy_to_host(h.data(), buf.s->data(), h.size() * 2);
    for (size_t i = 0; i < h.size(); i++) out[i] = buf.dtype == DType::BFloat16 ? bf16_to_float(h[i]) : half_to_float(h[i]);
  }
  return out;
}

std::vector<float> rounded(const std::vector<float>& x, DType t) {
  if (t == DType::Float32) return x;
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); i++)
    r[i] = t == DType::BFloat16 ? bf16_to_float(float_to_bf16(x[i])) : half_to_float(float_to_half(x[i]));
  return r;
}

std::vector<float> randoms(size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(g);
  return v;
}

// Set while the harness runs float32 as three TF32 products: their error grows with K
// where float32's CUDA cores' grows with its root, as the tensor cores' accumulation
// truncates (an H200: 1.1e-5 at K = 2048, 2.4e-5 at 4096, against 4.7e-6 and 7.1e-6).
bool g_tf32x3 = false;

double tolerance(DType t) {
  const char* tf32 = std::getenv("PERCEIVER_CUDA_TF32");
  if (t == DType::BFloat16) return 1.6e-2;
  if (t == DType::Float16) return 2e-3;
  if (g_tf32x3) return 5e-5;
  return tf32 && *tf32 == '1' ? 5e-3 : 2e-5;
}

void compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& want, DType t) {
  // Relative to |want| plus the output's RMS: an element that cancels to near zero (a
  // long dot product of random signs) is judged on the scale of its terms, not its own.
  double ss = 0;
  for (float w : want) ss += (double)w * w;
  const double floor = std::sqrt(ss / std::max<size_t>(want.size(), 1)) + 1e-30;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); i++) {
    double e = std::fabs((double)got[i] - want[i]) / (std::fabs((double)want[i]) + floor);
    if (!(e <= worst)) { worst = e; at = i; }
  }
  bool ok = worst <= tolerance(t);
  if (!ok) g_failures++;
  std::printf("%-4s %-52s max rel err %.2e (tol %.0e)%s\n", ok ? "ok" : "FAIL", name.c_str(), worst, tolerance(t),
              ok ? "" : (" at " + std::to_string(at) + ": got " + std::to_string(got[at]) + " want " +
                         std::to_string(want[at])).c_str());
}

double time_gpu(const std::function<void()>& fn, int runs) { return check::time_gpu(g_gpu, fn, runs); }

// addend: a residual of C's shape as MatmulArgs::addend (skipped where the GPU side does
// not take it: PERCEIVER_CUDA_GEMM_ADDEND=0).
void gemm_case(int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb, bool bias, Activation act, DType t,
               bool addend = false) {
  const Device cpu{DeviceType::CPU, 0}, gpu{DeviceType::CUDA, 0};
  if (addend && !g_gpu->fuses_matmul_addend()) return;
  auto ha = rounded(randoms((size_t)(batch * m * k), 1), t), hb = rounded(randoms((size_t)(batch * k * n), 2), t);
  auto hbias = rounded(randoms((size_t)n, 3), t), hadd = rounded(randoms((size_t)(batch * m * n), 4), t);
  MatmulArgs a{};
  a.batch = batch; a.m = m; a.n = n; a.k = k;
  a.lda = ta ? m : k; a.ldb = tb ? k : n; a.ldc = n;
  a.stride_a = m * k; a.stride_b = k * n; a.stride_c = m * n;
  a.trans_a = ta; a.trans_b = tb; a.alpha = 1.f; a.act = act;
  // Reference: float32 on the CPU on the same (rounded) inputs.
  Buf ca = upload(cpu_backend(), cpu, DType::Float32, ha), cb = upload(cpu_backend(), cpu, DType::Float32, hb);
  Buf cbias = upload(cpu_backend(), cpu, DType::Float32, hbias), cc(cpu_backend(), cpu, DType::Float32, batch * m * n);
  Buf cadd = upload(cpu_backend(), cpu, DType::Float32, hadd);
  MatmulArgs r = a;
  r.a = (const float*)ca.s->data(); r.b = (const float*)cb.s->data(); r.c = (float*)cc.s->data();
  r.bias = bias ? (const float*)cbias.s->data() : nullptr;
  r.addend = addend ? (const float*)cadd.s->data() : nullptr;
  r.dtype = DType::Float32;
  cpu_backend()->matmul(r);
  Buf ga = upload(g_gpu, gpu, t, ha), gb = upload(g_gpu, gpu, t, hb), gbias = upload(g_gpu, gpu, t, hbias);
  Buf gc(g_gpu, gpu, t, batch * m * n), gadd = upload(g_gpu, gpu, t, hadd);
  MatmulArgs g = a;
  g.a = (const float*)ga.s->data(); g.b = (const float*)gb.s->data(); g.c = (float*)gc.s->data();
  g.bias = bias ? (const float*)gbias.s->data() : nullptr;
  g.addend = addend ? (const float*)gadd.s->data() : nullptr;
  g.dtype = t;
  g_gpu->matmul(g);
  char name[160];
  std::snprintf(name, sizeof(name), "matmul %s b%lld %lldx%lldx%lld%s%s%s%s act%d%s", dtype_name(t), (long long)batch,
                (long long)m, (long long)n, (long long)k, ta ? " tA" : "", tb ? " tB" : "", bias ? " bias" : "",
                addend ? " +C" : "", (int)act, g_tag);
  compare(name, download(g_gpu, gc), rounded(download(cpu_backend(), cc), t), t);
  double s = time_gpu([&] { g_gpu->matmul(g); }, 10);
  std::printf("     %-52s %8.4f ms  %7.1f TFLOP/s\n", "", s * 1e3, 2.0 * batch * m * n * k / s / 1e12);
}

void rows_case(const char* what, int64_t rows, int64_t n, DType t) {
  const Device cpu{DeviceType::CPU, 0}, gpu{DeviceType::CUDA, 0};
  auto hx = rounded(randoms((size_t)(rows * n), 7), t), hw = rounded(randoms((size_t)n, 8), t), hb = rounded(randoms((size_t)n, 9), t);
  for (auto& v : hx) v *= 4.f;
  Buf cx = upload(cpu_backend(), cpu, DType::Float32, hx), co(cpu_backend(), cpu, DType::Float32, rows * n);
  Buf cw = upload(cpu_backend(), cpu, DType::Float32, hw), cbb = upload(cpu_backend(), cpu, DType::Float32, hb);
  Buf gx = upload(g_gpu, gpu, t, hx), go(g_gpu, gpu, t, rows * n), gw = upload(g_gpu, gpu, t, hw), gbb = upload(g_gpu, gpu, t, hb);
  std::vector<int64_t> shape = {rows, n};
  std::function<void(Backend*, const Buf&, const Buf&, const Buf&, const Buf&)> run;
  std::string w = what;
  if (w == "softmax") run = [&](Backend* b, const Buf& x, const Buf& o, const Buf&, const Buf&) { b->softmax(x.view(shape), o.view(shape), rows, n, false); };
  else if (w == "layer_norm") run = [&](Backend* b, const Buf& x, const Buf& o, const Buf& wt, const Buf& bs) {
    b->layer_norm(x.view(shape), (const float*)wt.s->data(), (const float*)bs.s->data(), o.view(shape), rows, n, 1e-5f);
  };
  else if (w == "gelu") run = [&](Backend* b, const Buf& x, const Buf& o, const Buf&, const Buf&) { b->unary(UnaryOp::Gelu, x.view(shape), o.view(shape), 1.f, 0.f); };
  else if (w == "residual") run = [&](Backend* b, const Buf& x, const Buf& o, const Buf&, const Buf&) {  // x + x, dense
    b->binary(BinaryOp::Add, x.view(shape), x.view(shape), o.view(shape));
  };
  else run = [&](Backend* b, const Buf& x, const Buf& o, const Buf& wt, const Buf&) {  // add, broadcasting a row
    View vb = wt.view({1, n});
    vb.ndim = 2; vb.shape[0] = rows; vb.strides[0] = 0;
    b->binary(BinaryOp::Add, x.view(shape), vb, o.view(shape));
  };
  run(cpu_backend(), cx, co, cw, cbb);
  run(g_gpu, gx, go, gw, gbb);
  char name[160];
  std::snprintf(name, sizeof(name), "%s %s [%lld, %lld]", what, dtype_name(t), (long long)rows, (long long)n);
  compare(name, download(g_gpu, go), rounded(download(cpu_backend(), co), t), t);
  double s = time_gpu([&] { run(g_gpu, gx, go, gw, gbb); }, 20);
  double bytes = 2.0 * rows * n * dtype_size(t);
  std::printf("     %-52s %8.3f ms  %7.1f GB/s\n", "", s * 1e3, bytes / s / 1e9);
}

// A bias gradient: the column sums of [rows, n] (reduce over the middle axis).
void colsum_case(int64_t rows, int64_t n, DType t) {
  const Device cpu{DeviceType::CPU, 0}, gpu{DeviceType::CUDA, 0};
  auto hx = rounded(randoms((size_t)(rows * n), 11), t);
  Buf cx = upload(cpu_backend(), cpu, DType::Float32, hx), co(cpu_backend(), cpu, DType::Float32, n);
  Buf gx = upload(g_gpu, gpu, t, hx), go(g_gpu, gpu, t, n);
  auto run = [&](Backend* b, const Buf& x, const Buf& o) { b->reduce(ReduceOp::Sum, x.view({1, rows, n}), 1, rows, n, o.view({n}), nullptr); };
  run(cpu_backend(), cx, co);
  run(g_gpu, gx, go);
  char name[160];
  std::snprintf(name, sizeof(name), "column sum %s [%lld, %lld]", dtype_name(t), (long long)rows, (long long)n);
  compare(name, download(g_gpu, go), rounded(download(cpu_backend(), co), t), t);
  double s = time_gpu([&] { run(g_gpu, gx, go); }, 20);
  std::printf("     %-52s %8.4f ms  %7.1f GB/s\n", "", s * 1e3, (double)rows * n * dtype_size(t) / s / 1e9);
}

// The models' products (x W with W stored transposed, bias) that tuning and the search
// time: the language model's latents at batch 32 (V, the output projection with its
// residual, the MLP's first product, Q/K) and at batch 1; the image model's at batch 32
// and 1.
struct Shape {
  int64_t m, n, k;
  Activation act;
  bool addend;
};
const Shape kModelShapes[] = {
    {8192, 1280, 1280, Activation::None, false}, {8192, 1280, 1280, Activation::None, true},
    {8192, 1280, 1280, Activation::Gelu, false}, {8192, 256, 1280, Activation::None, false},
    {256, 1280, 1280, Activation::None, false},  {256, 256, 1280, Activation::None, false},
    {16384, 1024, 1024, Activation::None, false}, {512, 1024, 1024, Activation::None, false}};

// --search: only the search (PERCEIVER_CUDA_GEMM_TUNE=search, a candidate) against tuning
// among the heuristic's list, in one process, at the models' bf16 products and 4096^3,
// each checked against the CPU. Each search's account goes to stderr ("perceiver cuda:
// matmul search": the heuristic's fastest, the five fastest of all, with their tiles,
// stages and cluster shapes). Its own run (device-check --focus, --candidates), since its
// hundreds of configurations per shape take a while.
void search_section() {
  for (int mode : {1, 4}) {
    cuda::set_gemm_tune_mode(mode);
    g_tag = mode == 4 ? " searched" : " tuned";
    std::printf("GEMM %s\n", mode == 4 ? "search" : "tuning among the heuristic's");
    for (const Shape& sh : kModelShapes)
      gemm_case(1, sh.m, sh.n, sh.k, false, true, true, sh.act, DType::BFloat16, sh.addend);
    gemm_case(1, 4096, 4096, 4096, false, false, false, Activation::None, DType::BFloat16);
  }
  cuda::set_gemm_tune_mode(-1);
}

}  // namespace

int main(int argc, char** argv) {
  const bool search_only = argc > 1 && std::strcmp(argv[1], "--search") == 0;
  if (argc > 1 && !search_only) {
    std::fprintf(stderr, "usage: %s [--search]\n", argv[0]);
    return 2;
  }
  CudaDeviceInfo info;
  g_gpu = check::open_cuda(&info);
  if (!g_gpu) return 2;
  std::printf("%s (sm_%d%d), driver %d, cuBLASLt %llu\n", info.name, info.major, info.minor, info.driver_version,
              (unsigned long long)info.cublas_version);
  if (search_only) {
    search_section();
    std::printf("%s: %d failure%s\n", g_failures ? "FAILED" : "PASSED", g_failures, g_failures == 1 ? "" : "s");
    return g_failures ? 1 : 0;
  }
  for (DType t : {DType::Float32, DType::BFloat16, DType::Float16}) {
    gemm_case(1, 1, 1, 1, false, false, false, Activation::None, t);
    gemm_case(1, 127, 65, 33, false, false, true, Activation::Gelu, t);
    gemm_case(3, 64, 96, 80, false, true, true, Activation::GeluTanh, t);
    gemm_case(2, 50, 70, 90, true, false, true, Activation::Relu, t);
    gemm_case(1, 512, 1024, 261, false, false, true, Activation::None, t);
    gemm_case(1, 2048, 2048, 2048, false, false, false, Activation::None, t);
    gemm_case(8, 512, 512, 128, false, true, false, Activation::None, t);
    // Residuals in the epilogue: odd sizes (unaligned rows in 16 bits), a batch, and
    // the language model's latent rows against the same product without one.
    gemm_case(1, 127, 65, 33, false, false, true, Activation::None, t, true);
    gemm_case(3, 64, 96, 80, true, true, false, Activation::None, t, true);
    gemm_case(1, 2048, 1280, 1280, false, true, true, Activation::None, t);
    gemm_case(1, 2048, 1280, 1280, false, true, true, Activation::None, t, true);
    // The MLPs' first products with the exact GELU (cuBLASLt's bias epilogue, then the
    // activation pass): the language model's at batch 32, the image model's at batch 32.
    gemm_case(1, 8192, 1280, 1280, false, true, true, Activation::Gelu, t);
    gemm_case(1, 16384, 1024, 1024, false, true, true, Activation::Gelu, t);
    for (const char* w : {"softmax", "layer_norm", "gelu", "add", "residual"}) {
      rows_case(w, 7, 3, t);
      rows_case(w, 512, 1024, t);
      rows_case(w, 64, 50176, t);
    }
    // The language model's rows (16-byte kernels for these unless
    // PERCEIVER_CUDA_VECTOR_KERNELS=0; the first has a partly filled block of rows).
    for (const char* w : {"layer_norm", "add", "residual", "gelu"}) {
      rows_case(w, 5, 1280, t);
      rows_case(w, 8192, 1280, t);
    }
    rows_case("layer_norm", 50176, 261, t);  // the image encoders' inputs, one image
    rows_case("softmax", 32768, 512, t);     // 8 heads' scores over 512 latents at batch 8
    // The ImageNet training step's bias gradients (batch 8), and the language model's.
    colsum_case(4096, 1024, t);
    colsum_case(8192, 1280, t);
    for (const char* sw : {"PERCEIVER_CUDA_VECTOR_KERNELS", "PERCEIVER_CUDA_GEMM_ADDEND"}) {
      const char* v = std::getenv(sw);
      std::printf("%s=%s\n", sw, v ? v : "(unset)");
    }
  }
  // cuBLASLt's first algorithm against the fastest of its candidates
  // (PERCEIVER_CUDA_GEMM_TUNE, on by default), in one process, at the models' products
  // (kModelShapes). Each tuned product is checked against the CPU too. The choices and
  // every candidate's time go to stderr ("perceiver cuda: matmul tuning").
  for (int mode : {0, 2}) {
    cuda::set_gemm_tune_mode(mode);
    g_tag = mode ? " tuned" : "";
    std::printf("GEMM tuning %s\n", mode ? "on" : "off");
    for (DType t : {DType::BFloat16, DType::Float32})
      for (const Shape& sh : kModelShapes)
        if (t == DType::BFloat16 || sh.m <= 512) gemm_case(1, sh.m, sh.n, sh.k, false, true, true, sh.act, t, sh.addend);
  }
  cuda::set_gemm_tune_mode(-1);
  // float32 on the CUDA cores against three TF32 products (PERCEIVER_CUDA_TF32=3, off by
  // default), in one process, each checked against the CPU (three TF32 products at
  // g_tf32x3's tolerance):
  // square products; the image model's training step at batch 8 (the forward's
  // [4096, 1024] x [1024, 1024] with its bias, the input's gradient, the weight's
  // gradient over 4096 rows); its batch-1 forward and the language model's (near and
  // below the threshold, where both modes take the same path); batched attention-shaped
  // products; an MLP's first product with GELU and a residual as C.
  for (int mode : {0, 3}) {
    cuda::set_tf32_mode(mode);
    g_tf32x3 = mode == 3;
    g_tag = mode ? " 3xTF32" : "";
    std::printf("float32 products %s\n", mode ? "as three TF32 products" : "on the CUDA cores");
    for (int64_t n : {512, 1024, 2048, 4096}) gemm_case(1, n, n, n, false, false, false, Activation::None, DType::Float32);
    gemm_case(1, 4096, 1024, 1024, false, true, true, Activation::None, DType::Float32);
    gemm_case(1, 4096, 1024, 1024, false, false, false, Activation::None, DType::Float32);
    gemm_case(1, 1024, 1024, 4096, true, false, false, Activation::None, DType::Float32);
    gemm_case(1, 512, 1024, 1024, false, true, true, Activation::None, DType::Float32);
    gemm_case(1, 256, 1280, 1280, false, true, true, Activation::None, DType::Float32);
    gemm_case(8, 512, 512, 128, false, true, false, Activation::None, DType::Float32);
    gemm_case(8, 512, 128, 512, false, false, false, Activation::None, DType::Float32);
    gemm_case(1, 4096, 1024, 1024, false, true, true, Activation::Gelu, DType::Float32, true);
  }
  cuda::set_tf32_mode(-1);
  g_tf32x3 = false;
  // 16-bit products with operands cuBLASLt cannot read in 16-byte units, as they are and
  // through row-padded copies (PERCEIVER_CUDA_GEMM_ALIGN=1, a candidate), in one
  // process: the ImageNet encoder's 261-wide rows in its attention gradient's products
  // (two images: S = Q Kᵀ, P V-shaped, Pᵀ dO-shaped) and its output projection at batch 32.
  cuda::set_gemm_splitk_mode(0);  // these products as cuBLASLt takes them (split-K: below)
  for (int mode : {0, 1}) {
    cuda::set_gemm_align_mode(mode);
    g_tag = mode ? " aligned" : "";
    std::printf("16-bit products with unaligned rows%s\n", mode ? " through aligned copies" : "");
    gemm_case(2, 512, 50176, 261, false, true, false, Activation::None, DType::BFloat16);
    gemm_case(2, 512, 261, 50176, false, false, false, Activation::None, DType::BFloat16);
    gemm_case(2, 50176, 261, 512, true, false, false, Activation::None, DType::BFloat16);
    gemm_case(1, 16384, 1024, 261, false, true, true, Activation::None, DType::BFloat16, true);
    // The language model's logits at batch 32 (x Eᵀ + b over its 262 byte ids): only C's
    // rows are unaligned (524 bytes); 0.168 ms in its forward's profile, 157 TFLOP/s.
    gemm_case(1, 65536, 262, 768, false, true, true, Activation::None, DType::BFloat16);
  }
  cuda::set_gemm_align_mode(-1);
  // Products with few output tiles over a long k, whole and through split-K (on by
  // default since the twenty-third session; gemm_split.cuh): the ImageNet encoder
  // attention gradient's dQ = dS K at 8, 2 and 1 images in bf16 (float32 at k = 50176
  // would exceed the harness's float32 tolerance either way, whole as much as split).
  for (int mode : {0, 1}) {
    cuda::set_gemm_splitk_mode(mode);
    g_tag = mode ? " split-K" : " whole";
    std::printf("products over a long k%s\n", mode ? " in slices (split-K)" : ", whole");
    for (int64_t images : {8, 2, 1}) gemm_case(images, 512, 261, 50176, false, false, false, Activation::None, DType::BFloat16);
  }
  cuda::set_gemm_splitk_mode(-1);
  std::printf("%s: %d failure%s\n", g_failures ? "FAILED" : "PASSED", g_failures, g_failures == 1 ? "" : "s");
  return g_failures ? 1 : 0;
}
