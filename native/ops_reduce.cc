// Reductions over an axis, softmax and layer norm over the last axis.
#include "op_util.h"
#include "ops.h"

namespace perceiver {

Tensor reduce(ReduceOp op, const Tensor& x_in, int64_t axis, bool keepdim, const Tensor* addend) {
  static const char* names[] = {"sum", "mean", "max", "min", "argmax"};
  const char* name = names[(int)op];
  check_float(name, "x", x_in);
  int64_t a = normalize_axis(name, "axis", axis, x_in.ndim());
  if (x_in.shape[a] == 0 && (op == ReduceOp::Max || op == ReduceOp::Min || op == ReduceOp::ArgMax))
    throw_range(std::string(name) + ": cannot reduce over axis " + std::to_string(a) +
                " of size 0 (shape " + shape_str(x_in.shape) + ")");
  Shape shape = x_in.shape;
  if (keepdim) shape[a] = 1;
  else shape.erase(shape.begin() + a);
  if (addend) {
    if (op != ReduceOp::Sum) throw_value(std::string(name) + ": argument 'addend' is taken by sum only");
    check_same_dtype(name, {{"x", &x_in}, {"addend", addend}});
    check_same_device(name, {{"x", &x_in}, {"addend", addend}});
    check_shape(name, "addend", *addend, shape);
  }
  if (cpu_16bit(x_in)) {
    Tensor addend32 = addend ? cast(*addend, DType::Float32) : Tensor();
    Tensor r = reduce(op, cast(x_in, DType::Float32), axis, keepdim, addend ? &addend32 : nullptr);
    return op == ReduceOp::ArgMax ? r : cast(r, x_in.dtype);
  }
  Tensor x = contiguous(x_in);
  Tensor add_c = addend ? contiguous(*addend) : Tensor();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < a; i++) outer *= x.shape[i];
  for (int64_t i = a + 1; i < x.ndim(); i++) inner *= x.shape[i];
  int64_t n = x.shape[a];
  Tensor out = empty(shape, op == ReduceOp::ArgMax ? DType::Int32 : x.dtype, x.device(), name);
  View vx = view_of(x), vo = view_of(out);
  bool has_addend = addend != nullptr;
  launch(name, x.device(), {&x, addend ? &add_c : nullptr}, {&out},
         [op, vx, vo, outer, n, inner, add_c = data_ref(add_c), has_addend](Backend& b) {
           b.reduce(op, vx, outer, n, inner, vo, has_addend ? add_c.data() : nullptr);
         });
  return out;
}

Tensor softmax(const Tensor& x_in, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_float(name, "x", x_in);
  check_min_ndim(name, "x", x_in, 1);
  if (cpu_16bit(x_in)) return cast(softmax(cast(x_in, DType::Float32), log), x_in.dtype);
  Tensor x = contiguous(x_in);
  int64_t n = x.shape.back();
  int64_t rows = n ? x.numel() / n : 0;
  Tensor out = empty(x.shape, x.dtype, x.device(), name);
  View vx = view_of(x), vo = view_of(out);
  launch(name, x.device(), {&x}, {&out},
         [vx, vo, rows, n, log](Backend& b) { b.softmax(vx, vo, rows, n, log); });
  return out;
}

Tensor layer_norm(const Tensor& x_in, const Tensor* weight, const Tensor* bias, float eps) {
  check_float("layer_norm", "x", x_in);
  check_min_ndim("layer_norm", "x", x_in, 1);
  if (!(eps >= 0)) throw_range("layer_norm: argument 'eps' must be >= 0, got " + show_number(eps));
  int64_t n = x_in.shape.back();
  Tensor w, bi;
  if (weight) {
    check_float("layer_norm", "weight", *weight);
    check_shape("layer_norm", "weight", *weight, {n});
    w = contiguous(*weight);
  }
  if (bias) {
    check_float("layer_norm", "bias", *bias);
    check_shape("layer_norm", "bias", *bias, {n});
    bi = contiguous(*bias);
  }
  check_same_dtype("layer_norm", {{"x", &x_in}, {"weight", weight}, {"bias", bias}});
  check_same_device("layer_norm", {{"x", &x_in}, {"weight", weight}, {"bias", bias}});
  if (cpu_16bit(x_in)) {
    Tensor w32 = weight ? cast(*weight, DType::Float32) : Tensor(), b32 = bias ? cast(*bias, DType::Float32) : Tensor();
    return cast(layer_norm(cast(x_in, DType::Float32), weight ? &w32 : nullptr, bias ? &b32 : nullptr, eps),
                x_in.dtype);
  }
  Tensor x = contiguous(x_in);
  int64_t rows = n ? x.numel() / n : 0;
  Tensor out = empty(x.shape, x.dtype, x.device(), "layer_norm");
  View vx = view_of(x), vo = view_of(out);
  bool has_w = weight != nullptr, has_b = bias != nullptr;
  launch("layer_norm", x.device(), {&x, weight ? &w : nullptr, bias ? &bi : nullptr}, {&out},
         [vx, vo, w = data_ref(w), bi = data_ref(bi), has_w, has_b, rows, n, eps](Backend& b) {
           b.layer_norm(vx, has_w ? (const float*)w.data() : nullptr,
                        has_b ? (const float*)bi.data() : nullptr, vo, rows, n, eps);
         });
  return out;
}

}  // namespace perceiver
