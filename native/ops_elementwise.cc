// Elementwise ops with numpy broadcasting.
#include "op_util.h"
#include "ops.h"

namespace perceiver {

static const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg",  "exp",  "log",     "sin",      "cos",     "sqrt",
                                "rsqrt", "tanh", "relu",   "gelu",     "gelu_tanh", "sigmoid",
                                "abs",  "square", "scale"};
  return names[(int)op];
}

static const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow",
                                "eq",  "ne",  "lt",  "le",  "gt",      "ge"};
  return names[(int)op];
}

Shape broadcast_shapes(const char* op, const Shape& a, const char* an, const Shape& b,
                       const char* bn) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; i++) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw_range(std::string(op) + ": shapes of '" + an + "' " + shape_str(a) + " and '" + bn +
                  "' " + shape_str(b) + " cannot be broadcast together (dimension " +
                  std::to_string(i) + ": " + std::to_string(da) + " vs " + std::to_string(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Operands that already have the result's shape (most) need no broadcast copy.
static View broadcast_view(const Tensor& x, const Shape& shape) {
  return x.shape == shape ? view_of(x) : view_of(broadcast_to(x, shape));
}

Tensor unary(UnaryOp op, const Tensor& x, float alpha, float beta) {
  const char* name = unary_name(op);
  check_float(name, "x", x);
  if (cpu_16bit(x)) return cast(unary(op, cast(x, DType::Float32), alpha, beta), x.dtype);
  Tensor out = empty(x.shape, x.dtype, x.device(), name);
  View vx = view_of(x), vo = view_of(out);
  launch(name, x.device(), {&x}, {&out},
         [op, vx, vo, alpha, beta](Backend& b) { b.unary(op, vx, vo, alpha, beta); });
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_float(name, "a", a);
  check_float(name, "b", b);
  check_same_dtype(name, {{"a", &a}, {"b", &b}});
  check_same_device(name, {{"a", &a}, {"b", &b}});
  Shape shape = broadcast_shapes(name, a.shape, "a", b.shape, "b");
  bool compare = op >= BinaryOp::Eq;
  if (cpu_16bit(a)) {
    Tensor r = binary(op, cast(a, DType::Float32), cast(b, DType::Float32));
    return compare ? r : cast(r, a.dtype);
  }
  Tensor out = empty(shape, compare ? DType::UInt8 : a.dtype, a.device(), name);
  View va = broadcast_view(a, shape), vb = broadcast_view(b, shape), vo = view_of(out);
  launch(name, a.device(), {&a, &b}, {&out},
         [op, va, vb, vo](Backend& be) { be.binary(op, va, vb, vo); });
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_dtype("where", "cond", cond, DType::UInt8);
  check_float("where", "a", a);
  check_float("where", "b", b);
  check_same_dtype("where", {{"a", &a}, {"b", &b}});
  check_same_device("where", {{"cond", &cond}, {"a", &a}, {"b", &b}});
  Shape ab = broadcast_shapes("where", a.shape, "a", b.shape, "b");
  Shape shape = broadcast_shapes("where", cond.shape, "cond", ab, "a/b");
  if (cpu_16bit(a)) return cast(where(cond, cast(a, DType::Float32), cast(b, DType::Float32)), a.dtype);
  Tensor out = empty(shape, a.dtype, a.device(), "where");
  View vc = broadcast_view(cond, shape), va = broadcast_view(a, shape), vb = broadcast_view(b, shape),
       vo = view_of(out);
  launch("where", a.device(), {&cond, &a, &b}, {&out},
         [vc, va, vb, vo](Backend& be) { be.where(vc, va, vb, vo); });
  return out;
}

}  // namespace perceiver
