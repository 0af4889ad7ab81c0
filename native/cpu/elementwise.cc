// Elementwise kernels: fill, arange, copy/cast, unary, binary (broadcasting is
// already expressed as zero strides), where. Compute is float32; copy converts
// between every pair of dtypes.
#include <cmath>
#include <cstring>

#include "../error.h"
#include "gemm.h"
#include "kernels.h"
#include "strided.h"

namespace perceiver {
namespace cpu {
namespace {

inline float load_f(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::Float32: return static_cast<const float*>(base)[i];
    case DType::Float16: return half_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::BFloat16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::Int32: return (float)static_cast<const int32_t*>(base)[i];
    case DType::UInt8: return (float)static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}

inline void store_from_double(void* base, DType t, int64_t i, double v) {
  switch (t) {
    case DType::Float32: static_cast<float*>(base)[i] = (float)v; break;
    case DType::Float16: static_cast<uint16_t*>(base)[i] = float_to_half(float_rounded_to_odd(v)); break;
    case DType::BFloat16: static_cast<uint16_t*>(base)[i] = float_to_bf16(float_rounded_to_odd(v)); break;
    case DType::Int32: static_cast<int32_t*>(base)[i] = (int32_t)v; break;
    case DType::UInt8: static_cast<uint8_t*>(base)[i] = (uint8_t)v; break;
  }
}

// Float -> integer conversion saturates (and maps NaN to 0) rather than invoking
// undefined behaviour.
inline int32_t sat_i32(float v) {
  if (!(v == v)) return 0;
  if (v >= 2147483647.f) return 2147483647;
  if (v <= -2147483648.f) return (-2147483647 - 1);
  return (int32_t)v;
}
inline uint8_t sat_u8(float v) {
  if (!(v == v) || v <= 0) return 0;
  if (v >= 255.f) return 255;
  return (uint8_t)v;
}

// erfc for x < 0, where 1 + erf cancels (gelu(-5.5) lost half its digits); the tanh
// form as x * sigmoid(2u), which has no cancellation either.
inline float gelu(float x) {
  return x < 0.f ? 0.5f * x * std::erfc(-x * 0.70710678118654752f) : 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
}
inline float gelu_tanh(float x) {
  return x / (1.f + std::exp(-2.f * 0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

// f per element over any strides; `dense(op, ap, n)` takes the runs where both are
// contiguous.
template <class F, class D>
void unary_runs(const View& x, const View& out, F f, D dense) {
  const View* vs[2] = {&out, &x};
  StridedIter<2> it(vs);
  float* o = out.ptr<float>();
  const float* a = x.ptr<float>();
  it.run([&](const int64_t* off, const int64_t* st, int64_t n) {
    float* op = o + off[0];
    const float* ap = a + off[1];
    if (st[0] == 1 && st[1] == 1) {
      dense(op, ap, n);
    } else {
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = f(ap[i * st[1]]);
    }
  });
}

template <class F>
void unary_loop(const View& x, const View& out, F f) {
  unary_runs(x, out, f, [&](float* op, const float* ap, int64_t n) {
    for (int64_t i = 0; i < n; i++) op[i] = f(ap[i]);
  });
}

// GELU over dense runs with the GEMM epilogue's vectorised activation (the same
// values as a matmul with a fused GELU; scalar erf costs ~5 ns an element), strided
// runs with the scalar form.
template <class F>
void activation_loop(const View& x, const View& out, Activation act, F scalar) {
  unary_runs(x, out, scalar, [act](float* op, const float* ap, int64_t n) {
    if (op != ap) std::memcpy(op, ap, (size_t)n * sizeof(float));
    apply_activation(op, n, act);
  });
}

template <class R, class F>
void binary_loop(const View& a, const View& b, const View& out, F f) {
  const View* vs[3] = {&out, &a, &b};
  StridedIter<3> it(vs);
  R* o = out.ptr<R>();
  const float* pa = a.ptr<float>();
  const float* pb = b.ptr<float>();
  it.run([&](const int64_t* off, const int64_t* st, int64_t n) {
    R* op = o + off[0];
    const float* ap = pa + off[1];
    const float* bp = pb + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; i++) op[i] = f(ap[i], bp[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      float bv = *bp;
      for (int64_t i = 0; i < n; i++) op[i] = f(ap[i], bv);
    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
      float av = *ap;
      for (int64_t i = 0; i < n; i++) op[i] = f(av, bp[i]);
    } else {
      for (int64_t i = 0; i < n; i++) op[i * st[0]] = f(ap[i * st[1]], bp[i * st[2]]);
    }
  });
}

}  // namespace

void fill(const View& out, double value) {
  int64_t n = out.numel();
  void* p = out.data();
  switch (out.dtype) {
    case DType::Float32: {
      float v = (float)value;
      float* o = (float*)p;
      parallel_for(n, 65536, [&](int64_t lo, int64_t hi, int) { for (int64_t i = lo; i < hi; i++) o[i] = v; });
      break;
    }
    case DType::Float16:
    case DType::BFloat16: {
      uint16_t v = out.dtype == DType::Float16 ? float_to_half(float_rounded_to_odd(value)) : float_to_bf16(float_rounded_to_odd(value));
      uint16_t* o = (uint16_t*)p;
      for (int64_t i = 0; i < n; i++) o[i] = v;
      break;
    }
    case DType::Int32: {
      int32_t v = (int32_t)value;
      int32_t* o = (int32_t*)p;
      for (int64_t i = 0; i < n; i++) o[i] = v;
      break;
    }
    case DType::UInt8: std::memset(p, (uint8_t)value, (size_t)n); break;
  }
}

void arange(const View& out, double start, double step) {
  int64_t n = out.numel();
  for (int64_t i = 0; i < n; i++) store_from_double(out.data(), out.dtype, i, start + (double)i * step);
}

void copy(const View& src, const View& dst) {
  const View* vs[2] = {&dst, &src};
  StridedIter<2> it(vs);
  DType st = src.dtype, dt = dst.dtype;
  size_t es = dtype_size(st), ed = dtype_size(dt);
  const char* sp = (const char*)src.data();
  char* dp = (char*)dst.data();
  it.run([&](const int64_t* off, const int64_t* s, int64_t n) {
    const char* a = sp + off[1] * (int64_t)es;
    char* o = dp + off[0] * (int64_t)ed;
    if (st == dt) {
      if (s[0] == 1 && s[1] == 1) {
        std::memcpy(o, a, (size_t)n * es);
      } else {
        for (int64_t i = 0; i < n; i++) std::memcpy(o + i * s[0] * (int64_t)ed, a + i * s[1] * (int64_t)es, es);
      }
      return;
    }
    if (st == DType::Int32 && dt == DType::UInt8) {
      for (int64_t i = 0; i < n; i++) {
        int32_t v = ((const int32_t*)a)[i * s[1]];
        ((uint8_t*)o)[i * s[0]] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
      return;
    }
    if (st == DType::UInt8 && dt == DType::Int32) {
      for (int64_t i = 0; i < n; i++) ((int32_t*)o)[i * s[0]] = ((const uint8_t*)a)[i * s[1]];
      return;
    }
    // Every other pair goes through float32, which holds every value of the
    // 16-bit types and uint8 exactly (int32 beyond 2^24 rounds: to odd where the
    // target is 16 bits, so that its rounding is the integer's own).
    const bool odd = st == DType::Int32 && (dt == DType::Float16 || dt == DType::BFloat16);
    for (int64_t i = 0; i < n; i++) {
      float v = odd ? float_rounded_to_odd((double)((const int32_t*)a)[i * s[1]]) : load_f(a, st, i * s[1]);
      int64_t j = i * s[0];
      switch (dt) {
        case DType::Float32: ((float*)o)[j] = v; break;
        case DType::Float16: ((uint16_t*)o)[j] = float_to_half(v); break;
        case DType::BFloat16: ((uint16_t*)o)[j] = float_to_bf16(v); break;
        case DType::Int32: ((int32_t*)o)[j] = sat_i32(v); break;
        case DType::UInt8: ((uint8_t*)o)[j] = sat_u8(v); break;
      }
    }
  });
}

void unary(UnaryOp op, const View& x, const View& out, float alpha, float beta) {
  switch (op) {
    case UnaryOp::Neg: return unary_loop(x, out, [](float v) { return -v; });
    case UnaryOp::Exp: return unary_loop(x, out, [](float v) { return std::exp(v); });
    case UnaryOp::Log: return unary_loop(x, out, [](float v) { return std::log(v); });
    case UnaryOp::Sin: return unary_loop(x, out, [](float v) { return std::sin(v); });
    case UnaryOp::Cos: return unary_loop(x, out, [](float v) { return std::cos(v); });
    case UnaryOp::Sqrt: return unary_loop(x, out, [](float v) { return std::sqrt(v); });
    case UnaryOp::Rsqrt: return unary_loop(x, out, [](float v) { return 1.f / std::sqrt(v); });
    case UnaryOp::Tanh: return unary_loop(x, out, [](float v) { return std::tanh(v); });
    // v itself unless below 0: NaN stays NaN and -0 stays -0, as in torch.
    case UnaryOp::Relu: return unary_loop(x, out, [](float v) { return v < 0.f ? 0.f : v; });
    case UnaryOp::Gelu: return activation_loop(x, out, Activation::Gelu, [](float v) { return gelu(v); });
    case UnaryOp::GeluTanh: return activation_loop(x, out, Activation::GeluTanh, [](float v) { return gelu_tanh(v); });
    case UnaryOp::Sigmoid: return unary_loop(x, out, [](float v) { return 1.f / (1.f + std::exp(-v)); });
    case UnaryOp::Abs: return unary_loop(x, out, [](float v) { return std::fabs(v); });
    case UnaryOp::Square: return unary_loop(x, out, [](float v) { return v * v; });
    case UnaryOp::Affine: return unary_loop(x, out, [alpha, beta](float v) { return alpha * v + beta; });
  }
  throw_value("unknown unary op");
}

void binary(BinaryOp op, const View& a, const View& b, const View& out) {
  switch (op) {
    case BinaryOp::Add: return binary_loop<float>(a, b, out, [](float x, float y) { return x + y; });
    case BinaryOp::Sub: return binary_loop<float>(a, b, out, [](float x, float y) { return x - y; });
    case BinaryOp::Mul: return binary_loop<float>(a, b, out, [](float x, float y) { return x * y; });
    case BinaryOp::Div: return binary_loop<float>(a, b, out, [](float x, float y) { return x / y; });
    case BinaryOp::Maximum:
      return binary_loop<float>(a, b, out, [](float x, float y) { return (x != x || x > y) ? x : y; });
    case BinaryOp::Minimum:
      return binary_loop<float>(a, b, out, [](float x, float y) { return (x != x || x < y) ? x : y; });
    case BinaryOp::Pow: return binary_loop<float>(a, b, out, [](float x, float y) { return std::pow(x, y); });
    case BinaryOp::Eq: return binary_loop<uint8_t>(a, b, out, [](float x, float y) { return (uint8_t)(x == y); });
    case BinaryOp::Ne: return binary_loop<uint8_t>(a, b, out, [](float x, float y) { return (uint8_t)(x != y); });
    case BinaryOp::Lt: return binary_loop<uint8_t>(a, b, out, [](float x, float y) { return (uint8_t)(x < y); });
    case BinaryOp::Le: return binary_loop<uint8_t>(a, b, out, [](float x, float y) { return (uint8_t)(x <= y); });
    case BinaryOp::Gt: return binary_loop<uint8_t>(a, b, out, [](float x, float y) { return (uint8_t)(x > y); });
    case BinaryOp::Ge: return binary_loop<uint8_t>(a, b, out, [](float x, float y) { return (uint8_t)(x >= y); });
  }
  throw_value("unknown binary op");
}

void where(const View& cond, const View& a, const View& b, const View& out) {
  const View* vs[4] = {&out, &cond, &a, &b};
  StridedIter<4> it(vs);
  float* o = out.ptr<float>();
  const uint8_t* c = cond.ptr<uint8_t>();
  const float* pa = a.ptr<float>();
  const float* pb = b.ptr<float>();
  it.run([&](const int64_t* off, const int64_t* st, int64_t n) {
    for (int64_t i = 0; i < n; i++)
      o[off[0] + i * st[0]] = c[off[1] + i * st[1]] ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
  });
}

}  // namespace cpu
}  // namespace perceiver
