// Development harness for the fused CPU attention kernel (not part of the addon).
// Checks cpu::attention against a plain double-precision softmax(q kᵀ) v on random
// inputs over many shapes, layouts and masks, with the block sizes and key splits
// also forced small so that short inputs take every path, and its gradient
// (cpu::attention_backward) against the same formulas in double, once per
// instruction set this CPU has (scalar, AVX2, AVX-512); then, with --bench, times
// the kernel against its two matmuls done as separate parallel GEMMs.
//
//   g++ -O2 -std=c++17 -pthread -o /tmp/attention_check native/cpu/attention_check.cc
//       native/cpu/attention.cc native/cpu/attention_backward.cc native/cpu/allocator.cc
//       native/cpu/gemm.cc native/cpu/gemm_avx2.cc native/cpu/gemm_avx512.cc
//       native/threadpool.cc                                  (one command line)
//   (or the CMake build: ./build-cmake/attention_check)
//   /tmp/attention_check            # correctness (exit status 1 on a failure)
//   VERBOSE=1 /tmp/attention_check  # one line per case
//   PERCEIVER_NUM_THREADS=3 /tmp/attention_check   # other thread counts run the same plan on more or fewer tasks
//   /tmp/attention_check --bench [Nq Nk H Dqk Dv [reps]]   # the Perceiver shapes by default
//   BENCH_BQ=128 BENCH_BK=512 /tmp/attention_check --bench ...   # force block sizes
//   BENCH_FUSED_ONLY=1 ...          # skip the unfused products (for a profiler)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "../threadpool.h"
#include "attention.h"
#include "gemm.h"
#include "random.h"

namespace perceiver {
namespace cpu {
namespace detail {
// Defined in attention.cc for this harness.
void attention_forced(const AttentionArgs& a, int64_t bq, int64_t bk, int64_t key_splits);
int64_t attention_scratch_bytes(const AttentionArgs& a, int64_t bq, int64_t bk);
const char* attention_isa();
bool attention_set_isa(const char* isa);
float attention_exp_sum(float* s, int64_t n, float m);
}  // namespace detail
}  // namespace cpu
}  // namespace perceiver

using namespace perceiver;

namespace {

enum class Layout { BNHD, BHND, Padded };
enum class MaskKind { None, Full, KeyOnly, QueryOnly, BatchBroadcast, AllZero };

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::BNHD: return "bnhd";
    case Layout::BHND: return "bhnd";
    case Layout::Padded: return "padded";
  }
  return "?";
}
const char* mask_name(MaskKind m) {
  switch (m) {
    case MaskKind::None: return "none";
    case MaskKind::Full: return "full";
    case MaskKind::KeyOnly: return "key-only";
    case MaskKind::QueryOnly: return "query-only";
    case MaskKind::BatchBroadcast: return "batch-bcast";
    case MaskKind::AllZero: return "all-zero";
  }
  return "?";
}

struct Case {
  int64_t batch, nq, nk, heads, dqk, dv;
  Layout layout = Layout::BNHD;
  MaskKind mask = MaskKind::None;
  float scale = 0;        // <= 0: 1/sqrt(dqk)
  float q_gain = 1;       // larger makes the softmax peaky (tests the running max)
  int64_t bq = 0, bk = 0, splits = 0;  // forced plan, 0 = the kernel's own
  int64_t rows_checked = -1;           // sample this many query rows per (b, h); -1 all
};

// A tensor [B, N, H, D] stored in one of the layouts; returns strides b, n, h.
struct Strided {
  std::vector<float> data;
  int64_t sb, sn, sh;
};

Strided make_tensor(int64_t B, int64_t N, int64_t H, int64_t D, Layout layout, std::mt19937_64& rng,
                    float gain, bool fill_random) {
  Strided t;
  int64_t pad = layout == Layout::Padded ? 5 : 0;
  if (layout == Layout::BHND) {
    t.sn = D;
    t.sh = N * D;
    t.sb = H * N * D;
  } else {
    // Padded: rows wider than H*D, as when q, k and v are slices of one projection.
    t.sh = D;
    t.sn = H * D + pad;
    t.sb = N * t.sn + 3;
  }
  t.data.assign((size_t)std::max<int64_t>(B * t.sb, 1) + 16, std::nanf(""));
  std::normal_distribution<float> nd(0.f, gain);
  if (fill_random)
    for (int64_t b = 0; b < B; b++)
      for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
          for (int64_t d = 0; d < D; d++) t.data[b * t.sb + n * t.sn + h * t.sh + d] = nd(rng);
  return t;
}

struct Result {
  double max_err = 0;   // max |out - ref| / max |v|
  // Largest scale * sum_d |q_d k_d| seen: float logits carry a rounding error of
  // about 2^-24 times this, which exp turns into the same relative error in the
  // weights, so peaky softmaxes (big logits) get a proportionally looser bound.
  double logit_mag = 0;
  bool untouched_ok = true;  // padding between output rows left alone
};

Result run_case(const Case& c, std::mt19937_64& rng) {
  Strided q = make_tensor(c.batch, c.nq, c.heads, c.dqk, c.layout, rng, c.q_gain, true);
  Strided k = make_tensor(c.batch, c.nk, c.heads, c.dqk, c.layout, rng, 1.f, true);
  Strided v = make_tensor(c.batch, c.nk, c.heads, c.dv, c.layout, rng, 1.f, true);
  Strided o = make_tensor(c.batch, c.nq, c.heads, c.dv, c.layout, rng, 1.f, false);
  const float sentinel = 12345.f;
  std::fill(o.data.begin(), o.data.end(), sentinel);

  // Mask stored as a dense [B, Nq, Nk] (or smaller) array addressed by strides.
  std::vector<uint8_t> mask;
  int64_t m_sb = 0, m_sq = 0, m_sk = 0;
  std::uniform_real_distribution<float> u01(0.f, 1.f);
  auto fill = [&](int64_t n, float p_keep) {
    mask.resize((size_t)std::max<int64_t>(n, 1));
    for (auto& x : mask) x = u01(rng) < p_keep;
  };
  switch (c.mask) {
    case MaskKind::None: break;
    case MaskKind::Full:
      fill(c.batch * c.nq * c.nk, 0.6f);
      m_sb = c.nq * c.nk;
      m_sq = c.nk;
      m_sk = 1;
      // Some fully masked rows, and one row with a single unmasked key at the end.
      for (int64_t b = 0; b < c.batch; b++)
        for (int64_t i = 0; i < c.nq; i += 3) std::fill_n(&mask[b * m_sb + i * m_sq], c.nk, 0);
      if (c.nq > 1) {
        std::fill_n(&mask[m_sq], c.nk, 0);
        mask[m_sq + c.nk - 1] = 1;
      }
      break;
    case MaskKind::KeyOnly:  // [B, 1, Nk]
      fill(c.batch * c.nk, 0.5f);
      m_sb = c.nk;
      m_sk = 1;
      break;
    case MaskKind::QueryOnly:  // [B, Nq, 1]
      fill(c.batch * c.nq, 0.7f);
      m_sb = c.nq;
      m_sq = 1;
      break;
    case MaskKind::BatchBroadcast:  // [1, Nq, Nk], transposed in memory
      fill(c.nq * c.nk, 0.3f);
      m_sq = 1;
      m_sk = c.nq;
      break;
    case MaskKind::AllZero:
      mask.assign(1, 0);
      break;
  }

  AttentionArgs a{};
  a.q = q.data.data();
  a.k = k.data.data();
  a.v = v.data.data();
  a.out = o.data.data();
  a.mask = c.mask == MaskKind::None ? nullptr : mask.data();
  a.batch = c.batch;
  a.nq = c.nq;
  a.nk = c.nk;
  a.heads = c.heads;
  a.dqk = c.dqk;
  a.dv = c.dv;
  a.q_sb = q.sb, a.q_sn = q.sn, a.q_sh = q.sh;
  a.k_sb = k.sb, a.k_sn = k.sn, a.k_sh = k.sh;
  a.v_sb = v.sb, a.v_sn = v.sn, a.v_sh = v.sh;
  a.o_sb = o.sb, a.o_sn = o.sn, a.o_sh = o.sh;
  a.m_sb = m_sb, a.m_sq = m_sq, a.m_sk = m_sk;
  a.scale = c.scale > 0 ? c.scale : 1.f / std::sqrt((float)std::max<int64_t>(c.dqk, 1));

  if (c.bq || c.bk || c.splits)
    cpu::detail::attention_forced(a, c.bq, c.bk, c.splits);
  else
    cpu::attention(a);

  Result res;
  double vmax = 1e-30;
  for (int64_t b = 0; b < c.batch; b++)
    for (int64_t j = 0; j < c.nk; j++)
      for (int64_t h = 0; h < c.heads; h++)
        for (int64_t d = 0; d < c.dv; d++)
          vmax = std::max(vmax, (double)std::fabs(v.data[b * v.sb + j * v.sn + h * v.sh + d]));

  std::vector<double> logit(c.nk), acc(c.dv);
  std::vector<int64_t> rows;
  if (c.rows_checked < 0 || c.rows_checked >= c.nq) {
    for (int64_t i = 0; i < c.nq; i++) rows.push_back(i);
  } else {
    for (int64_t t = 0; t < c.rows_checked; t++) rows.push_back(t * (c.nq - 1) / std::max<int64_t>(c.rows_checked - 1, 1));
  }
  for (int64_t b = 0; b < c.batch; b++)
    for (int64_t h = 0; h < c.heads; h++)
      for (int64_t i : rows) {
        const float* qr = &q.data[b * q.sb + i * q.sn + h * q.sh];
        double mx = -INFINITY;
        for (int64_t j = 0; j < c.nk; j++) {
          bool keep = !a.mask || mask[b * m_sb + i * m_sq + j * m_sk];
          if (!keep) {
            logit[j] = -INFINITY;
            continue;
          }
          const float* kr = &k.data[b * k.sb + j * k.sn + h * k.sh];
          double s = 0, mag = 0;
          for (int64_t d = 0; d < c.dqk; d++) {
            s += (double)qr[d] * kr[d];
            mag += std::fabs((double)qr[d] * kr[d]);
          }
          logit[j] = s * a.scale;
          res.logit_mag = std::max(res.logit_mag, mag * std::fabs(a.scale));
          mx = std::max(mx, logit[j]);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        if (mx != -INFINITY) {
          double sum = 0;
          for (int64_t j = 0; j < c.nk; j++) {
            if (logit[j] == -INFINITY) continue;
            double w = std::exp(logit[j] - mx);
            sum += w;
            const float* vr = &v.data[b * v.sb + j * v.sn + h * v.sh];
            for (int64_t d = 0; d < c.dv; d++) acc[d] += w * vr[d];
          }
          for (auto& x : acc) x /= sum;
        }
        const float* orow = &o.data[b * o.sb + i * o.sn + h * o.sh];
        for (int64_t d = 0; d < c.dv; d++) {
          double e = std::fabs((double)orow[d] - acc[d]);
          if (!(e <= 1e30)) e = 1e30;  // NaN or inf counts as a failure
          // A fully masked row must be exactly 0.
          if (mx == -INFINITY && orow[d] != 0.f) e = 1e30;
          res.max_err = std::max(res.max_err, e / vmax);
        }
      }
  // Nothing outside the output's rows may be written (padding keeps the sentinel).
  if (c.layout == Layout::Padded)
    for (int64_t b = 0; b < c.batch; b++)
      for (int64_t i = 0; i < c.nq; i++)
        for (int64_t t = c.heads * c.dv; t < o.sn; t++)
          if (o.data[b * o.sb + i * o.sn + t] != sentinel) res.untouched_ok = false;
  if (c.nq == 0 || c.batch == 0)
    for (float x : o.data)
      if (x != sentinel) res.untouched_ok = false;
  return res;
}

// ---- the gradient (attention_backward.cc) ----------------------------------------

struct GradCase {
  int64_t batch, nq, nk, heads, dqk, dv;
  bool mask, forward_lse;  // forward_lse: L from the forward, else recomputed
};

// max |got - ref| / max |ref| over dq, dk and dv (the worst of the three), against
// the gradient's formulas in double: P = softmax(scale q kᵀ, masked) (0 for a row
// with every key masked), dV = Pᵀ dO, dP = dO Vᵀ, dS = P (dP - rowsum(P dP)),
// dQ = scale dS K, dK = scale dSᵀ Q.
double grad_case_error(const GradCase& c, std::mt19937_64& rng) {
  const int64_t B = c.batch, Nq = c.nq, Nk = c.nk, H = c.heads;
  std::normal_distribution<float> nd;
  auto randv = [&](int64_t n) {
    std::vector<float> x((size_t)std::max<int64_t>(n, 1));
    for (auto& e : x) e = nd(rng);
    return x;
  };
  std::vector<float> q = randv(B * Nq * H * c.dqk), k = randv(B * Nk * H * c.dqk), v = randv(B * Nk * H * c.dv),
                     go = randv(B * Nq * H * c.dv), o((size_t)std::max<int64_t>(B * Nq * H * c.dv, 1));
  std::vector<uint8_t> mask((size_t)std::max<int64_t>(B * Nq * Nk, 1), 1);
  std::uniform_real_distribution<float> u01(0.f, 1.f);
  if (c.mask)
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < Nq; i++)
        for (int64_t j = 0; j < Nk; j++) mask[(b * Nq + i) * Nk + j] = i % 5 != 2 && u01(rng) < 0.7f;
  AttentionArgs a{};
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = o.data();
  a.mask = c.mask ? mask.data() : nullptr;
  a.batch = B, a.nq = Nq, a.nk = Nk, a.heads = H, a.dqk = c.dqk, a.dv = c.dv;
  a.q_sb = Nq * H * c.dqk, a.q_sn = H * c.dqk, a.q_sh = c.dqk;
  a.k_sb = Nk * H * c.dqk, a.k_sn = H * c.dqk, a.k_sh = c.dqk;
  a.v_sb = Nk * H * c.dv, a.v_sn = H * c.dv, a.v_sh = c.dv;
  a.o_sb = Nq * H * c.dv, a.o_sn = H * c.dv, a.o_sh = c.dv;
  a.m_sb = Nq * Nk, a.m_sq = Nk, a.m_sk = 1;
  a.scale = 0.37f;
  std::vector<float> lse((size_t)std::max<int64_t>(B * H * Nq, 1), std::nanf(""));
  if (c.forward_lse) a.lse = lse.data();
  if (Nq > 0 && c.dv > 0) cpu::attention(a);
  std::vector<float> gq(q.size(), std::nanf("")), gk(k.size(), std::nanf("")), gv(v.size(), std::nanf(""));
  AttentionBackwardArgs g{a, go.data(), gq.data(), gk.data(), gv.data()};
  cpu::attention_backward(g);

  std::vector<double> rq(q.size()), rk(k.size()), rv(v.size()), p(Nk), dp(Nk);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Nq; i++) {
        const float* qi = &q[(b * Nq + i) * H * c.dqk + h * c.dqk];
        const float* gi = &go[(b * Nq + i) * H * c.dv + h * c.dv];
        double mx = -INFINITY;
        for (int64_t j = 0; j < Nk; j++) {
          if (!mask[(b * Nq + i) * Nk + j] && c.mask) {
            p[j] = -INFINITY;
            continue;
          }
          const float* kj = &k[(b * Nk + j) * H * c.dqk + h * c.dqk];
          double s = 0;
          for (int64_t d = 0; d < c.dqk; d++) s += (double)qi[d] * kj[d];
          p[j] = s * a.scale;
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < Nk; j++) sum += p[j] = mx == -INFINITY ? 0.0 : std::exp(p[j] - mx);
        double dsum = 0;
        for (int64_t j = 0; j < Nk; j++) {
          p[j] = sum > 0 ? p[j] / sum : 0.0;
          const float* vj = &v[(b * Nk + j) * H * c.dv + h * c.dv];
          double t = 0;
          for (int64_t d = 0; d < c.dv; d++) t += (double)gi[d] * vj[d];
          dp[j] = t;
          dsum += p[j] * t;
        }
        for (int64_t j = 0; j < Nk; j++) {
          const double ds = p[j] * (dp[j] - dsum) * a.scale;
          const float* kj = &k[(b * Nk + j) * H * c.dqk + h * c.dqk];
          double* rqi = &rq[(b * Nq + i) * H * c.dqk + h * c.dqk];
          double* rkj = &rk[(b * Nk + j) * H * c.dqk + h * c.dqk];
          double* rvj = &rv[(b * Nk + j) * H * c.dv + h * c.dv];
          for (int64_t d = 0; d < c.dqk; d++) {
            rqi[d] += ds * kj[d];
            rkj[d] += ds * qi[d];
          }
          for (int64_t d = 0; d < c.dv; d++) rvj[d] += p[j] * gi[d];
        }
      }
  double worst = 0;
  auto compare = [&](const std::vector<float>& got, const std::vector<double>& ref, int64_t n) {
    double scale = 1e-30, err = 0;
    for (int64_t e = 0; e < n; e++) scale = std::max(scale, std::fabs(ref[e]));
    for (int64_t e = 0; e < n; e++) {
      double d = std::fabs((double)got[e] - ref[e]);
      err = std::max(err, d == d ? d : 1e30);  // NaN: never written
    }
    worst = std::max(worst, scale > 1e-20 ? err / scale : err);
  };
  compare(gq, rq, B * Nq * H * c.dqk);
  compare(gk, rk, B * Nk * H * c.dqk);
  compare(gv, rv, B * Nk * H * c.dv);
  return worst;
}

// The vectorised dropout factors against DropoutMask::at (rand()'s scalar draw):
// bit for bit, over seeds, offsets and lengths that leave every vector tail.
int check_dropout_factors() {
  int failures = 0;
  std::vector<float> f(1031);
  for (uint64_t seed : {0ull, 1ull, 77ull, (1ull << 40) + 3})
    for (uint64_t base : {0ull, 5ull, (1ull << 33) + 7})
      for (float p : {0.1f, 0.5f, 0.9f})
        for (int64_t n : {1, 7, 8, 9, 1031}) {
          const cpu::DropoutMask dm{seed, (float)(1.0 - p), (float)(1.0 / (1.0 - p))};
          cpu::dropout_factors(dm, base, n, f.data());
          for (int64_t j = 0; j < n; j++)
            if (f[j] != dm.at(base + (uint64_t)j)) {
              if (failures++ < 5)
                std::printf("FAIL dropout factor seed %llu index %llu: %g, scalar %g\n", (unsigned long long)seed,
                            (unsigned long long)(base + j), f[j], dm.at(base + (uint64_t)j));
            }
        }
  std::printf("attention_check: dropout factors, vectorised vs scalar: %s\n", failures ? "FAILED" : "identical");
  return failures ? 1 : 0;
}

// Every path of the gradient (query and key blocks, key ranges with dQ partials,
// masks with fully masked rows, L from the forward or recomputed, empty extents),
// once per instruction set.
int check_backward(const std::vector<const char*>& isas) {
  const GradCase cases[] = {
      {1, 300, 1100, 1, 24, 20, true, true},  {1, 300, 1100, 1, 24, 20, false, false},
      {2, 70, 1500, 2, 16, 8, true, false},   {3, 33, 600, 3, 8, 12, false, true},
      {1, 1, 513, 1, 32, 32, true, true},     {2, 17, 40, 4, 5, 3, true, true},
      {1, 4, 0, 2, 8, 8, false, true},        {1, 0, 10, 1, 4, 4, false, false},
      {1, 3, 7, 1, 4, 0, true, false},        {1, 5, 9, 2, 0, 6, true, true},
  };
  const double tol = 2e-5;
  int failures = 0;
  double worst = 0;
  std::mt19937_64 rng(11);
  for (const char* isa : isas) {
    cpu::detail::attention_set_isa(isa);
    for (const GradCase& c : cases) {
      const double err = grad_case_error(c, rng);
      worst = std::max(worst, err / tol);
      const bool ok = err <= tol;
      if (!ok || std::getenv("VERBOSE"))
        std::printf("%s [%s] gradient B=%lld Nq=%lld Nk=%lld H=%lld Dqk=%lld Dv=%lld mask=%d forward-lse=%d: err %.3g\n",
                    ok ? "ok  " : "FAIL", isa, (long long)c.batch, (long long)c.nq, (long long)c.nk,
                    (long long)c.heads, (long long)c.dqk, (long long)c.dv, (int)c.mask, (int)c.forward_lse, err);
      failures += !ok;
    }
  }
  std::printf("attention_check: gradient, %zu cases x %zu isas, %d failed; worst at %.2f of its tolerance "
              "(%g of the largest reference gradient)\n",
              sizeof cases / sizeof cases[0], isas.size(), failures, worst, tol);
  return failures;
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// CPU time of all threads: unlike wall time, barely moved by other processes
// competing for the cores (the pool blocks rather than spins when idle).
double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

// The vectorised exp against libm's in double, over the range the softmax uses
// (x <= 0) and a little above; lengths that leave every kind of vector tail.
bool check_exp() {
  std::vector<float> xs;
  for (double x = -90.0; x <= 10.0; x += 1.0 / 1024) xs.push_back((float)x);
  xs.push_back(-INFINITY);
  xs.push_back(0.f);
  xs.push_back(-0.f);
  xs.push_back(-87.3f);
  xs.push_back(-87.34f);
  double worst = 0, sum_err = 0;
  bool ok = true;
  const size_t near_zero = 88 * 1024;  // xs[near_zero] is about -2
  for (size_t len : {xs.size(), (size_t)1, (size_t)7, (size_t)15, (size_t)17, (size_t)33}) {
    const size_t from = len == xs.size() ? 0 : near_zero;
    std::vector<float> x(xs.begin() + from, xs.begin() + from + len), y = x;
    float sum = cpu::detail::attention_exp_sum(y.data(), (int64_t)len, 0.f);
    double ref_sum = 0;
    for (size_t i = 0; i < len; i++) {
      double ref = std::exp((double)x[i]);
      ref_sum += ref;
      if (x[i] < -87.33654f) {
        // Below the normal range the kernel flushes to 0 (and -inf must give 0).
        if (y[i] != 0.f && std::fabs(y[i] - ref) > 1e-37) ok = false;
        continue;
      }
      worst = std::max(worst, std::fabs(y[i] - ref) / ref);
    }
    sum_err = std::max(sum_err, std::fabs(sum - ref_sum) / ref_sum);
  }
  std::vector<float> nan1 = {std::nanf("")};
  cpu::detail::attention_exp_sum(nan1.data(), 1, 0.f);
  std::vector<float> nan16(16, std::nanf(""));
  cpu::detail::attention_exp_sum(nan16.data(), 16, 0.f);
  bool nan_ok = std::isnan(nan1[0]) && std::isnan(nan16[0]);
  ok = ok && worst < 3e-7 && sum_err < 1e-5 && nan_ok;
  std::printf("  exp [%s]: max relative error %.3g, sum %.3g, NaN %s: %s\n",
              cpu::detail::attention_isa(), worst, sum_err, nan_ok ? "kept" : "LOST",
              ok ? "ok" : "FAIL");
  return ok;
}

int check() {
  std::mt19937_64 rng(1234);
  std::vector<Case> cases;
  const Layout layouts[] = {Layout::BNHD, Layout::BHND, Layout::Padded};
  const MaskKind masks[] = {MaskKind::None, MaskKind::Full, MaskKind::KeyOnly,
                            MaskKind::QueryOnly, MaskKind::BatchBroadcast, MaskKind::AllZero};
  // A grid over the small sizes, each with a layout and mask chosen in turn.
  const int64_t ns[] = {1, 7, 63, 65, 261};
  const int64_t dims[][2] = {{1, 1}, {8, 5}, {16, 16}, {61, 33}, {3, 40}};
  int turn = 0;
  for (int64_t nq : ns)
    for (int64_t nk : ns)
      for (auto& d : dims) {
        Case c{1 + turn % 2, nq, nk, 1 + turn % 3, d[0], d[1]};
        c.layout = layouts[turn % 3];
        c.mask = masks[turn % 6];
        cases.push_back(c);
        turn++;
      }
  // Widths that are not SIMD multiples, several heads, Dqk != Dv.
  cases.push_back({1, 65, 300, 1, 261, 261});
  cases.push_back({2, 33, 129, 8, 128, 128, Layout::BHND, MaskKind::Full});
  cases.push_back({1, 17, 100, 2, 322, 17, Layout::Padded, MaskKind::KeyOnly});
  cases.push_back({1, 17, 100, 2, 17, 322, Layout::BNHD, MaskKind::QueryOnly});
  cases.push_back({3, 40, 70, 5, 31, 47, Layout::BHND, MaskKind::BatchBroadcast});
  // Keys spanning many blocks; peaky softmax so the running max keeps moving.
  {
    Case c{1, 37, 5000, 2, 64, 48, Layout::BNHD, MaskKind::Full};
    c.q_gain = 4;
    cases.push_back(c);
    c.mask = MaskKind::KeyOnly;
    c.scale = 1.0f;
    cases.push_back(c);
  }
  // Split-key path, natural (one query row, many keys) and forced.
  cases.push_back({1, 1, 50176, 1, 64, 64, Layout::BNHD, MaskKind::None});
  cases.push_back({1, 1, 4000, 1, 261, 261, Layout::BNHD, MaskKind::KeyOnly});
  cases.push_back({2, 3, 3000, 1, 100, 50, Layout::BHND, MaskKind::Full});
  // Decoder shape: one query over 512 latents.
  cases.push_back({1, 1, 512, 1, 1024, 1024});
  cases.push_back({1, 1, 512, 8, 128, 128, Layout::BNHD, MaskKind::QueryOnly});
  // Forced tiny blocks and splits on awkward sizes.
  for (int64_t bq : {1, 5, 16})
    for (int64_t bk : {1, 3, 17, 64})
      for (int64_t sp : {1, 2, 3, 7}) {
        Case c{2, 23, 90, 3, 13, 9};
        c.layout = layouts[turn % 3];
        c.mask = masks[turn % 6];
        c.bq = bq, c.bk = bk, c.splits = sp;
        c.q_gain = 1.f + (turn % 4);
        cases.push_back(c);
        turn++;
      }
  // Degenerate sizes: no keys (rows are 0), no queries, no batch, Dqk = 0 (uniform).
  cases.push_back({2, 5, 0, 2, 8, 8, Layout::Padded});
  cases.push_back({2, 0, 5, 2, 8, 8});
  cases.push_back({0, 5, 5, 2, 8, 8});
  cases.push_back({1, 4, 9, 2, 0, 8, Layout::BNHD, MaskKind::Full});
  // The Perceiver shapes (rows sampled: the double reference is slow).
  {
    Case c{1, 512, 50176, 1, 261, 261, Layout::BNHD, MaskKind::KeyOnly};
    c.rows_checked = 6;
    cases.push_back(c);
    Case d{1, 512, 512, 8, 128, 128, Layout::BNHD, MaskKind::None};
    d.rows_checked = 32;
    cases.push_back(d);
    Case e{1, 2048, 256, 8, 32, 96, Layout::BNHD, MaskKind::Full};
    e.rows_checked = 32;
    cases.push_back(e);
  }

  const double tol = 1e-5;
  int failures = 0;
  double worst = 0;
  // Every instruction set this CPU has; the big shapes only with the default one.
  std::vector<const char*> isas;
  const char* native_isa = cpu::detail::attention_isa();
  for (const char* isa : {"scalar", "avx2", "avx512f"})
    if (cpu::detail::attention_set_isa(isa)) isas.push_back(isa);
  std::vector<std::pair<const char*, const Case*>> runs;
  for (const char* isa : isas)
    for (const Case& c : cases)
      if (std::strcmp(isa, native_isa) == 0 || c.rows_checked < 0) runs.push_back({isa, &c});
  for (const char* isa : isas) {
    cpu::detail::attention_set_isa(isa);
    failures += !check_exp();
  }
  for (auto& run : runs) {
    cpu::detail::attention_set_isa(run.first);
    const Case& c = *run.second;
    Result r = run_case(c, rng);
    const double case_tol = std::max(tol, 8 * std::ldexp(1.0, -24) * r.logit_mag);
    worst = std::max(worst, r.max_err / case_tol);
    bool ok = r.max_err <= case_tol && r.untouched_ok;
    if (!ok || std::getenv("VERBOSE")) {
      std::printf("%s [%s] B=%lld Nq=%lld Nk=%lld H=%lld Dqk=%lld Dv=%lld %s mask=%s bq=%lld bk=%lld "
                  "splits=%lld gain=%g: err %.3g (tolerance %.3g)%s\n",
                  ok ? "ok  " : "FAIL", run.first, (long long)c.batch, (long long)c.nq, (long long)c.nk,
                  (long long)c.heads, (long long)c.dqk, (long long)c.dv, layout_name(c.layout),
                  mask_name(c.mask), (long long)c.bq, (long long)c.bk, (long long)c.splits,
                  c.q_gain, r.max_err, case_tol, r.untouched_ok ? "" : " (wrote outside its output)");
    }
    failures += !ok;
  }
  failures += check_backward(isas);
  failures += check_dropout_factors();
  cpu::detail::attention_set_isa(native_isa);
  std::string isa_list;
  for (const char* isa : isas) isa_list += std::string(isa_list.empty() ? "" : ",") + isa;
  std::printf("attention_check: %zu runs (%zu cases x isas %s), %d failed; errors are |out - ref| "
              "/ max|v|, worst at %.2f of its tolerance (%g, looser only for large logits); "
              "threads %d\n",
              runs.size(), cases.size(), isa_list.c_str(), failures, worst, tol, num_threads());
  return failures ? 1 : 0;
}

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

struct BenchShape {
  int64_t nq, nk, heads, dqk, dv;
};

// Times the fused kernel against the same products done unfused: per head, one
// parallel GEMM for S = scale Q Kᵀ into a materialised [Nq, Nk] buffer and one for
// O = S V (the softmax in between is left out, so this is the matmuls alone).
void bench_shape(const BenchShape& s, int reps) {
  const int64_t H = s.heads;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> nd;
  std::vector<float> q(s.nq * H * s.dqk), k(s.nk * H * s.dqk), v(s.nk * H * s.dv),
      o(s.nq * H * s.dv);
  for (auto& x : q) x = nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  AttentionArgs a{};
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.out = o.data();
  a.batch = 1, a.nq = s.nq, a.nk = s.nk, a.heads = H, a.dqk = s.dqk, a.dv = s.dv;
  a.q_sb = s.nq * H * s.dqk, a.q_sn = H * s.dqk, a.q_sh = s.dqk;
  a.k_sb = s.nk * H * s.dqk, a.k_sn = H * s.dqk, a.k_sh = s.dqk;
  a.v_sb = s.nk * H * s.dv, a.v_sn = H * s.dv, a.v_sh = s.dv;
  a.o_sb = s.nq * H * s.dv, a.o_sn = H * s.dv, a.o_sh = s.dv;
  a.scale = 1.f / std::sqrt((float)s.dqk);
  // Alternate the two within each rep so that load from other processes hits both.
  std::vector<float> S(s.nq * s.nk);
  std::vector<double> tf, tg, cf, cg;
  // BENCH_BQ / BENCH_BK force the kernel's block sizes, for tuning.
  const int64_t force_bq = std::getenv("BENCH_BQ") ? std::atoll(std::getenv("BENCH_BQ")) : 0;
  const int64_t force_bk = std::getenv("BENCH_BK") ? std::atoll(std::getenv("BENCH_BK")) : 0;
  for (int rep = 0; rep <= reps; rep++) {
    double c0 = cpu_ms(), t0 = now_ms();
    if (force_bq || force_bk)
      cpu::detail::attention_forced(a, force_bq, force_bk, 0);
    else
      cpu::attention(a);
    double t1 = now_ms(), c1 = cpu_ms();
    // BENCH_FUSED_ONLY skips the unfused products (for profiling the kernel).
    for (int64_t h = 0; h < (std::getenv("BENCH_FUSED_ONLY") ? 0 : H); h++) {
      cpu::sgemm(false, true, s.nq, s.nk, s.dqk, a.scale, q.data() + h * s.dqk, H * s.dqk,
                 k.data() + h * s.dqk, H * s.dqk, 0.f, S.data(), s.nk, nullptr, Activation::None,
                 true);
      cpu::sgemm(false, false, s.nq, s.dv, s.nk, 1.f, S.data(), s.nk, v.data() + h * s.dv,
                 H * s.dv, 0.f, o.data() + h * s.dv, H * s.dv, nullptr, Activation::None, true);
    }
    double t2 = now_ms(), c2 = cpu_ms();
    if (rep) {
      tf.push_back(t1 - t0);
      tg.push_back(t2 - t1);
      cf.push_back(c1 - c0);
      cg.push_back(c2 - c1);
    }
  }
  char name[64];
  std::snprintf(name, sizeof name, "%lld,%lld,%lld,%lld,%lld", (long long)s.nq, (long long)s.nk,
                (long long)H, (long long)s.dqk, (long long)s.dv);
  double f = median(tf), g = median(tg), fc = median(cf), gc = median(cg);
  std::printf("%-24s %9.2f %9.2f %6.2f %9.1f %9.1f %6.2f %10.3f %10.1f\n", name, f, g, f / g, fc,
              gc, fc / gc, cpu::detail::attention_scratch_bytes(a, force_bq, force_bk) / 1048576.0,
              (double)s.nq * s.nk * 4 / 1048576.0);
}

int bench(int argc, char** argv) {
  std::vector<BenchShape> shapes = {{512, 50176, 1, 261, 261}, {512, 512, 8, 128, 128},
                                    {2048, 256, 8, 32, 96}, {1, 512, 1, 1024, 1024}};
  int reps = 5;
  if (argc >= 7) {  // --bench Nq Nk H Dqk Dv [reps]
    shapes = {{std::atoll(argv[2]), std::atoll(argv[3]), std::atoll(argv[4]), std::atoll(argv[5]),
               std::atoll(argv[6])}};
    if (argc >= 8) reps = std::atoi(argv[7]);
  }
  std::printf("threads %d, isa %s; median of %d after a warm-up\n", num_threads(),
              cpu::detail::attention_isa(), reps);
  std::printf("%-24s %9s %9s %6s %9s %9s %6s %10s %10s\n", "Nq,Nk,H,Dqk,Dv", "fused ms",
              "2gemm ms", "ratio", "fused cpu", "2gemm cpu", "ratio", "scratch", "S buffer");
  std::printf("%-24s %9s %9s %6s %9s %9s %6s %10s %10s\n", "", "(wall)", "(wall)", "", "ms",
              "ms", "", "MiB", "MiB");
  for (const BenchShape& s : shapes) bench_shape(s, reps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool do_bench = argc > 1 && std::strcmp(argv[1], "--bench") == 0;
  return do_bench ? bench(argc, argv) : check();
}
