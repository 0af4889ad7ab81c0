// gemm_split.cuh's float32 products as three TF32 products (PERCEIVER_CUDA_TF32=3), on the
// emulation: the split kernel runs from its source, and each TF32 product is a loop
// over operands cut to their top 19 bits (what the tensor cores read), accumulated in
// float. Against double-precision references at float32's tolerance; one TF32 product
// in their place must miss it, so that the check can tell the two apart.
#include <cmath>
#include <random>

#include "emu.h"  // first: the kernel header below takes its emulation
#include "../gemm_search.h"
#include "../gemm_split.cuh"
#include "check.h"

namespace perceiver::emu::check {

namespace {

float tf32_cut(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u &= 0xffffe000u;
  std::memcpy(&x, &u, 4);
  return x;
}

// MatmulArgs' element (g, i, j) offsets, row-major with the transposes.
int64_t a_at(const MatmulArgs& a, int64_t g, int64_t i, int64_t k) {
  return g * a.stride_a + (a.trans_a ? k * a.lda + i : i * a.lda + k);
}
int64_t b_at(const MatmulArgs& a, int64_t g, int64_t k, int64_t j) {
  return g * a.stride_b + (a.trans_b ? j * a.ldb + k : k * a.ldb + j);
}

// One TF32 product with MatmulArgs' contract (activation None or ReLU).
void tf32_product(const MatmulArgs& a) {
  for (int64_t g = 0; g < a.batch; g++)
    for (int64_t i = 0; i < a.m; i++)
      for (int64_t j = 0; j < a.n; j++) {
        float acc = 0.f;
        for (int64_t k = 0; k < a.k; k++) acc += tf32_cut(a.a[a_at(a, g, i, k)]) * tf32_cut(a.b[b_at(a, g, k, j)]);
        const int64_t ic = g * a.stride_c + i * a.ldc + j;
        float c = a.alpha * acc;
        if (a.addend) c += a.addend[ic];
        else if (a.beta != 0.f) c += a.beta * a.c[ic];
        if (a.bias) c += a.bias[j];
        if (a.act == Activation::Relu) c = std::max(c, 0.f);
        a.c[ic] = c;
      }
}

struct SplitCase {
  const char* name;
  int64_t batch, m, n, k;
  bool ta, tb;
  int64_t pad;         // extra elements per row of A and B (row strides past the width)
  bool shared_b;       // B's batch stride 0
  bool bias, addend;   // addend: C's input apart from C
  float alpha, beta;   // beta != 0: C holds values to accumulate into
  Activation act;
  float spread;        // entries scaled by 2^u, u uniform in [-spread, spread]
};

void check_case(const SplitCase& c) {
  std::mt19937 rng(77);
  std::uniform_real_distribution<float> u(-1.f, 1.f), e(-c.spread, c.spread);
  auto draw = [&](std::vector<float>& v) {
    for (float& x : v) x = u(rng) * std::exp2(std::round(e(rng)));
  };
  MatmulArgs a{};
  a.batch = c.batch, a.m = c.m, a.n = c.n, a.k = c.k;
  a.trans_a = c.ta, a.trans_b = c.tb;
  a.lda = (c.ta ? c.m : c.k) + c.pad, a.ldb = (c.tb ? c.k : c.n) + c.pad, a.ldc = c.n;
  a.stride_a = (c.ta ? c.k : c.m) * a.lda, a.stride_b = c.shared_b ? 0 : (c.tb ? c.n : c.k) * a.ldb;
  a.stride_c = c.m * c.n;
  a.alpha = c.alpha, a.beta = c.beta, a.act = c.act, a.dtype = DType::Float32;
  std::vector<float> A(a.stride_a * c.batch), B(c.shared_b ? (c.tb ? c.n : c.k) * a.ldb : a.stride_b * c.batch);
  std::vector<float> C0(a.stride_c * c.batch), add(C0.size()), bias(c.n);
  draw(A), draw(B), draw(C0), draw(add), draw(bias);
  a.a = A.data(), a.b = B.data(), a.bias = c.bias ? bias.data() : nullptr, a.addend = c.addend ? add.data() : nullptr;

  std::vector<double> want(C0.size());
  for (int64_t g = 0; g < c.batch; g++)
    for (int64_t i = 0; i < c.m; i++)
      for (int64_t j = 0; j < c.n; j++) {
        double acc = 0;
        for (int64_t k = 0; k < c.k; k++) acc += (double)A[a_at(a, g, i, k)] * B[b_at(a, g, k, j)];
        const int64_t ic = g * a.stride_c + i * a.ldc + j;
        double v = c.alpha * acc + (c.addend ? add[ic] : c.beta * (double)C0[ic]) + (c.bias ? bias[j] : 0.0);
        if (c.act == Activation::Relu) v = std::max(v, 0.0);
        want[ic] = v;
      }

  std::vector<float> C = C0, scratch(cuda::tf32x3_scratch_bytes(a) / 4 + 1, NAN);
  a.c = C.data();
  cuda::tf32x3_matmul(a, scratch.data(), nullptr, tf32_product);
  char label[160];
  std::snprintf(label, sizeof label, "3xTF32 %-12s b%lld %lldx%lldx%lld%s%s", c.name, (long long)c.batch,
                (long long)c.m, (long long)c.n, (long long)c.k, c.ta ? " tA" : "", c.tb ? " tB" : "");
  compare(label, want, std::vector<double>(C.begin(), C.end()), DType::Float32);

  // The control: one TF32 product on the same operands.
  std::vector<float> C1 = C0;
  MatmulArgs one = a;
  one.c = C1.data();
  tf32_product(one);
  const double w1 = worst_of(want, std::vector<double>(C1.begin(), C1.end()));
  g_checks++;
  const bool ok = w1 > 1e-5;
  if (!ok) g_failures++;
  std::snprintf(label, sizeof label, "1xTF32 control %-12s", c.name);
  std::printf("%s %-60s worst=%.2e (must miss 1e-05)\n", ok ? "PASS" : "FAIL", label, w1);
}

// ---- 16-bit products through aligned copies ----

// Element i of a 16-bit (or float32, for C) array of dtype dt.
double ld16(const void* p, DType dt, int64_t i) { return load(p, dt, i); }

// One product with MatmulArgs' contract on 16-bit operands (float accumulation), which
// first checks that every operand is in whole 16-byte units, as cuBLASLt's fast
// kernels need.
int g_unaligned = 0;
void aligned_product(const MatmulArgs& a) {
  const size_t es = perceiver::dtype_size(a.dtype), es_c = a.c_float32 ? 4 : es;
  if (!cuda::units16(a.a, a.lda, a.batch > 1 ? a.stride_a : 0, es) ||
      !cuda::units16(a.b, a.ldb, a.batch > 1 ? a.stride_b : 0, es) ||
      !cuda::units16(a.c, a.ldc, a.batch > 1 ? a.stride_c : 0, es_c) ||
      (a.addend && !cuda::units16(a.addend, a.ldc, a.batch > 1 ? a.stride_c : 0, es_c)))
    g_unaligned++;
  const DType ct = a.c_float32 ? DType::Float32 : a.dtype;
  for (int64_t g = 0; g < a.batch; g++)
    for (int64_t i = 0; i < a.m; i++)
      for (int64_t j = 0; j < a.n; j++) {
        float acc = 0.f;
        for (int64_t k = 0; k < a.k; k++)
          acc += (float)(ld16(a.a, a.dtype, a_at(a, g, i, k)) * ld16(a.b, a.dtype, b_at(a, g, k, j)));
        const int64_t ic = g * a.stride_c + i * a.ldc + j;
        float c = a.alpha * acc;
        if (a.addend) c += (float)ld16(a.addend, ct, ic);
        else if (a.beta != 0.f) c += a.beta * (float)ld16(a.c, ct, ic);
        if (a.bias) c += (float)ld16(a.bias, a.dtype, j);
        if (a.act == Activation::Relu) c = std::max(c, 0.f);
        store(a.c, ct, ic, c);
      }
}

struct AlignCase {
  const char* name;
  int64_t batch, m, n, k;
  bool ta, tb;
  int64_t lda, ldb, ldc;  // row strides (elements)
  int64_t a_off;          // A's first element this many elements in
  bool shared_b, bias, addend, c32;
  float beta;
  Activation act;
  bool copies;  // whether any operand needs a copy
};

void check_align_case(const AlignCase& c, DType dt) {
  std::mt19937 rng(91);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const DType ct = c.c32 ? DType::Float32 : dt;
  const int64_t a_rows = c.ta ? c.k : c.m, b_rows = c.tb ? c.n : c.k;
  const int64_t sa = a_rows * c.lda, sb = c.shared_b ? 0 : b_rows * c.ldb, sc = c.m * c.ldc;
  // Arrays of 4 bytes per element whatever the dtype (16-bit ones use the first half),
  // from 256-byte-aligned storage.
  std::vector<float> A(c.a_off + sa * c.batch + 8), B(b_rows * c.ldb * (c.shared_b ? 1 : c.batch) + 8),
      C(sc * c.batch + 8), add(C.size()), bias(c.n + 8);
  auto fill = [&](std::vector<float>& v, DType t) {
    for (size_t i = 0; i < v.size(); i++) store(v.data(), t, (int64_t)i, u(rng));
  };
  fill(A, dt), fill(B, dt), fill(C, ct), fill(add, ct), fill(bias, dt);
  MatmulArgs a{};
  a.batch = c.batch, a.m = c.m, a.n = c.n, a.k = c.k, a.trans_a = c.ta, a.trans_b = c.tb;
  a.lda = c.lda, a.ldb = c.ldb, a.ldc = c.ldc, a.stride_a = sa, a.stride_b = sb, a.stride_c = sc;
  a.a = reinterpret_cast<const float*>(reinterpret_cast<const char*>(A.data()) + c.a_off * perceiver::dtype_size(dt));
  a.b = B.data(), a.bias = c.bias ? bias.data() : nullptr, a.addend = c.addend ? add.data() : nullptr;
  a.alpha = 1.f, a.beta = c.beta, a.act = c.act, a.dtype = dt, a.c_float32 = c.c32;
  const std::vector<float> C0 = C;
  a.c = C.data();

  std::vector<double> want, got;
  for (int64_t g = 0; g < c.batch; g++)
    for (int64_t i = 0; i < c.m; i++)
      for (int64_t j = 0; j < c.ldc; j++) {
        const int64_t ic = g * sc + i * c.ldc + j;
        double v = ld16(C0.data(), ct, ic);  // past column n: untouched
        if (j < c.n) {
          double acc = 0;
          for (int64_t k = 0; k < c.k; k++) acc += ld16(a.a, dt, a_at(a, g, i, k)) * ld16(a.b, dt, b_at(a, g, k, j));
          v = acc + (c.addend ? ld16(add.data(), ct, ic) : c.beta * ld16(C0.data(), ct, ic)) +
              (c.bias ? ld16(bias.data(), dt, j) : 0.0);
          if (c.act == Activation::Relu) v = std::max(v, 0.0);
        }
        want.push_back(v);
      }
  const cuda::AlignPlan plan = cuda::align_plan(a);
  g_unaligned = 0;
  std::vector<float> scratch(plan.bytes / 4 + 64, NAN);
  cuda::aligned_matmul(a, plan, scratch.data(), nullptr, aligned_product);
  for (int64_t g = 0; g < c.batch; g++)
    for (int64_t i = 0; i < c.m; i++)
      for (int64_t j = 0; j < c.ldc; j++) got.push_back(ld16(C.data(), ct, g * sc + i * c.ldc + j));
  char label[160];
  std::snprintf(label, sizeof label, "aligned copies %-13s %s b%lld %lldx%lldx%lld%s%s%s", c.name,
                perceiver::dtype_name(dt), (long long)c.batch, (long long)c.m, (long long)c.n, (long long)c.k,
                c.ta ? " tA" : "", c.tb ? " tB" : "", c.c32 ? " C float32" : "");
  compare(label, want, got, c.c32 ? DType::BFloat16 : dt);
  const bool copies = plan.a || plan.b || plan.c;
  g_checks++;
  const bool ok = g_unaligned == 0 && copies == c.copies;
  if (!ok) g_failures++;
  std::printf("%s %-60s %s, %d unaligned product(s)\n", ok ? "PASS" : "FAIL", (std::string(label) + ": plan").c_str(),
              copies ? (std::string("copies of") + (plan.a ? " A" : "") + (plan.b ? " B" : "") + (plan.c ? " C" : "")).c_str()
                     : "no copies",
              g_unaligned);
}

// ---- split-K ----

struct SplitKCase {
  const char* name;
  int64_t batch, m, n, k, kc;  // kc: k per slice, the plan's
  bool ta, tb;
  int64_t pad;  // extra elements per row of A and B
  bool bias, addend, c32;
  float alpha, beta;
  int64_t ldc_pad = 0;    // extra elements per row of C
  bool shared_b = false;  // B's batch stride 0
  bool aligned = false;   // every slice product must see its operands in 16-byte units
};

void check_splitk_case(const SplitKCase& c, DType dt) {
  std::mt19937 rng(93);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const DType ct = c.c32 ? DType::Float32 : dt;
  MatmulArgs a{};
  a.batch = c.batch, a.m = c.m, a.n = c.n, a.k = c.k, a.trans_a = c.ta, a.trans_b = c.tb;
  a.lda = (c.ta ? c.m : c.k) + c.pad, a.ldb = (c.tb ? c.k : c.n) + c.pad, a.ldc = c.n + c.ldc_pad;
  const int64_t b_elems = (c.tb ? c.n : c.k) * a.ldb;
  a.stride_a = (c.ta ? c.k : c.m) * a.lda, a.stride_b = c.shared_b ? 0 : b_elems, a.stride_c = c.m * a.ldc;
  // 4 bytes per element whatever the dtype (16-bit ones use the first half).
  std::vector<float> A(a.stride_a * c.batch), B(c.shared_b ? b_elems : b_elems * c.batch), C(a.stride_c * c.batch),
      add(C.size()), bias(c.n);
  auto fill = [&](std::vector<float>& v, DType t) {
    for (size_t i = 0; i < v.size(); i++) store(v.data(), t, (int64_t)i, u(rng));
  };
  fill(A, dt), fill(B, dt), fill(C, ct), fill(add, ct), fill(bias, dt);
  a.a = A.data(), a.b = B.data(), a.bias = c.bias ? bias.data() : nullptr, a.addend = c.addend ? add.data() : nullptr;
  a.alpha = c.alpha, a.beta = c.beta, a.act = Activation::None, a.dtype = dt, a.c_float32 = c.c32;
  const std::vector<float> C0 = C;
  a.c = C.data();
  std::vector<double> want, got;
  for (int64_t g = 0; g < c.batch; g++)
    for (int64_t i = 0; i < c.m; i++)
      for (int64_t j = 0; j < a.ldc; j++) {  // past column n: untouched
        const int64_t ic = g * a.stride_c + i * a.ldc + j;
        double acc = 0;
        for (int64_t k = 0; k < c.k && j < c.n; k++) acc += ld16(a.a, dt, a_at(a, g, i, k)) * ld16(a.b, dt, b_at(a, g, k, j));
        want.push_back(j >= c.n ? ld16(C0.data(), ct, ic)
                                : c.alpha * acc + (c.addend ? ld16(add.data(), ct, ic) : c.beta * ld16(C0.data(), ct, ic)) +
                                      (c.bias ? ld16(bias.data(), dt, j) : 0.0));
      }
  cuda::SplitKPlan plan;
  plan.kc = c.kc, plan.splits = (c.k + c.kc - 1) / c.kc, plan.ldp = cuda::round_up(c.n, 4);
  plan.bytes = (size_t)(plan.splits * c.m * plan.ldp) * 4;
  std::vector<float> scratch(plan.bytes / 4, NAN);
  int products = 0;
  g_unaligned = 0;
  cuda::splitk_matmul(a, plan, scratch.data(), nullptr, [&](const MatmulArgs& p) {
    products++;
    aligned_product(p);
  });
  for (int64_t g = 0; g < c.batch; g++)
    for (int64_t i = 0; i < c.m; i++)
      for (int64_t j = 0; j < a.ldc; j++) got.push_back(ld16(C.data(), ct, g * a.stride_c + i * a.ldc + j));
  char label[160];
  std::snprintf(label, sizeof label, "split-K %-10s %s b%lld %lldx%lldx%lld in %lld slices%s%s%s", c.name,
                perceiver::dtype_name(dt), (long long)c.batch, (long long)c.m, (long long)c.n, (long long)c.k,
                (long long)plan.splits, c.ta ? " tA" : "", c.tb ? " tB" : "", c.c32 ? " C float32" : "");
  compare(label, want, got, c.c32 ? DType::Float32 : dt);
  g_checks++;
  const bool ok = products == 2 * c.batch && (!c.aligned || g_unaligned == 0);
  if (!ok) g_failures++;
  std::printf("%s %-60s %d products (2 per matrix)%s\n", ok ? "PASS" : "FAIL", (std::string(label) + ": launches").c_str(),
              products, c.aligned ? (g_unaligned ? ", some unaligned" : ", all aligned") : "");
}

// The plan on an H200's 132 SMs: the encoder attention gradient's dQ is split from 2
// images, the products around it and the models' other products are not.
void check_splitk_plans() {
  struct Shape {
    const char* name;
    int64_t batch, m, n, k;
    Activation act;
    int64_t splits, kc;  // expected (0: not split)
  };
  const Shape shapes[] = {
      {"dQ of 1 image", 1, 512, 261, 50176, Activation::None, 0, 0},
      {"dQ of 2 images", 2, 512, 261, 50176, Activation::None, 44, 1144},
      {"dQ of 8 images", 8, 512, 261, 50176, Activation::None, 44, 1144},
      {"dQ of 16 images", 16, 512, 261, 50176, Activation::None, 0, 0},
      {"dQ with GELU", 2, 512, 261, 50176, Activation::Gelu, 0, 0},
      {"scores Q K^T", 8, 512, 50176, 261, Activation::None, 0, 0},
      {"dK", 8, 50176, 261, 512, Activation::None, 0, 0},
      {"weight gradient", 1, 1024, 1024, 4096, Activation::None, 0, 0},
      {"dense 8192 rows", 1, 8192, 1280, 1280, Activation::None, 0, 0},
      {"k 16383", 2, 64, 64, 16383, Activation::None, 0, 0},
      {"k 16384", 2, 64, 64, 16384, Activation::None, 32, 512},
  };
  for (const Shape& sh : shapes) {
    MatmulArgs a{};
    a.batch = sh.batch, a.m = sh.m, a.n = sh.n, a.k = sh.k, a.act = sh.act, a.dtype = DType::BFloat16;
    const cuda::SplitKPlan p = cuda::splitk_plan(a, 132);
    g_checks++;
    const bool ok = p.splits == sh.splits && p.kc == sh.kc && (!p.splits || (p.splits - 1) * p.kc < sh.k);
    if (!ok) g_failures++;
    std::printf("%s split-K plan %-20s b%lld %lldx%lldx%lld: %lld slices of %lld (want %lld of %lld)\n", ok ? "PASS" : "FAIL",
                sh.name, (long long)sh.batch, (long long)sh.m, (long long)sh.n, (long long)sh.k, (long long)p.splits,
                (long long)p.kc, (long long)sh.splits, (long long)sh.kc);
  }
}

// The cuBLASLt search's order of timing (gemm_search.h), on labelled items: algorithm
// a, tile t, stage count s as 100·a + 10·t + s.
void check_search_order() {
  // Algorithm 0: 3 tiles of 4, 1 and 3 stage counts; algorithm 1: one tile of 2;
  // algorithm 2: none found (an empty tile); algorithm 3: 2 tiles of 1.
  const std::vector<std::vector<std::vector<int>>> found = {
      {{0, 1, 2, 3}, {10}, {20, 21, 22}}, {{100, 101}}, {{}}, {{300}, {310}}};
  struct Want {
    size_t max;
    std::vector<int> order;
  };
  const Want wants[] = {
      // Every algorithm's first before any second, each algorithm's tiles in turn.
      {100, {0, 100, 300, 10, 101, 310, 20, 1, 21, 2, 22, 3}},
      // Cut short: the later algorithms still have their first.
      {3, {0, 100, 300}},
      {5, {0, 100, 300, 10, 101}},
      {0, {}},
  };
  for (const Want& w : wants) {
    const std::vector<int> got = cuda::search_order(found, w.max);
    g_checks++;
    const bool ok = got == w.order;
    if (!ok) g_failures++;
    std::string gs, ws;
    for (int v : got) gs += " " + std::to_string(v);
    for (int v : w.order) ws += " " + std::to_string(v);
    std::printf("%s search order, at most %zu:%s%s%s\n", ok ? "PASS" : "FAIL", w.max, gs.c_str(), ok ? "" : " (want",
                ok ? "" : (ws + ")").c_str());
  }
}

}  // namespace

void check_gemm_split() {
  const SplitCase cases[] = {
      // name, batch, m, n, k, tA, tB, pad, shared B, bias, addend, alpha, beta, act, spread
      {"plain", 1, 37, 29, 53, false, false, 0, false, true, false, 1.f, 0.f, Activation::None, 0.f},
      {"transposed", 3, 20, 24, 70, true, true, 0, false, false, false, 0.5f, 1.f, Activation::None, 0.f},
      {"shared-b", 4, 16, 40, 96, false, false, 0, true, false, true, 1.f, 0.f, Activation::Relu, 0.f},
      {"padded-rows", 2, 33, 17, 130, false, true, 5, false, true, false, 1.f, 0.f, Activation::Relu, 0.f},
      {"long-k", 1, 6, 7, 4096, true, false, 0, false, false, false, 1.f, 0.f, Activation::None, 0.f},
      {"wide-range", 2, 19, 23, 64, false, false, 3, false, true, true, 1.f, 0.f, Activation::None, 12.f},
  };
  for (const SplitCase& c : cases) check_case(c);

  const AlignCase aligns[] = {
      // name, batch, m, n, k, tA, tB, lda, ldb, ldc, A offset, shared B, bias, addend, C float32, beta, act, copies
      {"encoder-rows", 2, 33, 29, 261, false, false, 261, 29, 29, 0, false, true, false, false, 0.f, Activation::Relu, true},
      {"shared-b", 3, 16, 37, 40, false, true, 40, 40, 37, 0, true, false, true, false, 0.f, Activation::None, true},
      {"accumulate", 2, 13, 9, 50, true, false, 13, 9, 9, 0, false, false, false, true, 1.f, Activation::None, true},
      {"offset-a", 1, 24, 64, 64, false, false, 64, 64, 64, 1, false, false, false, false, 0.f, Activation::None, true},
      {"aligned", 2, 24, 64, 32, false, true, 32, 32, 64, 0, false, true, false, false, 0.f, Activation::None, false},
  };
  for (DType dt : {DType::BFloat16, DType::Float16})
    for (const AlignCase& c : aligns) check_align_case(c, dt);

  const SplitKCase splits[] = {
      // name, batch, m, n, k, kc, tA, tB, pad, bias, addend, C float32, alpha, beta
      {"ragged", 2, 5, 7, 1000, 136, false, false, 0, false, false, false, 1.f, 0.f},
      {"transposed", 2, 6, 9, 520, 64, true, true, 3, true, false, false, 0.5f, 0.f},
      {"addend", 1, 8, 5, 300, 104, false, true, 0, true, true, false, 1.f, 0.f},
      {"accumulate", 3, 4, 6, 260, 128, true, false, 2, false, false, false, 1.f, 1.f},
      {"two-slices", 1, 3, 4, 129, 128, false, false, 0, false, false, false, 1.f, 0.f},
  };
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float16})
    for (const SplitKCase& c : splits) check_splitk_case(c, dt);
  const SplitKCase c32 = {"C float32", 2, 5, 7, 400, 128, false, true, 0, false, false, true, 1.f, 0.f};
  // The chunked attention gradient's dQ: a float32 C accumulating (beta 1), rows of C
  // wider than n; and a shared B.
  const SplitKCase c32acc = {"C32 accum", 2, 5, 7, 400, 128, false, false, 0, false, false, true, 1.f, 1.f, 9};
  for (DType dt : {DType::BFloat16, DType::Float16})
    for (const SplitKCase& c : {c32, c32acc}) check_splitk_case(c, dt);
  const SplitKCase shared = {"shared-b", 3, 6, 5, 300, 96, false, true, 1, true, false, false, 1.f, 0.f, 3, true};
  // Operands in whole 16-byte units: the slices start so too.
  const SplitKCase aligned = {"aligned", 2, 8, 16, 520, 64, false, false, 0, false, false, false, 1.f, 0.f, 0, false, true};
  for (DType dt : {DType::Float32, DType::BFloat16})
    for (const SplitKCase& c : {shared, aligned}) check_splitk_case(c, dt);
  check_splitk_plans();
  check_search_order();
}

}  // namespace perceiver::emu::check
