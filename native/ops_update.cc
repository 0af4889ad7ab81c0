// Fused optimizer update ops: validation on the JS thread, then one backend kernel
// per parameter that writes the parameter and its state in place, in queue order
// (as assign() does: ops queued before read the old values, ops queued after the
// new ones). Kernels work on dense float32 memory; a strided parameter or state is
// updated through a dense copy that is written back, and a gradient that overlaps
// memory being written is copied first, so aliasing never changes the result.
#include <cmath>

#include "backend.h"
#include "error.h"
#include "op_util.h"
#include "ops.h"

namespace perceiver {

namespace {

// An operand written in place: float32, the parameter's shape, and no stride-0 axis
// (several elements would be written through one address).
void check_in_place(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  if (t.dtype != DType::Float32)
    throw_type(arg_prefix(op, name) + " must have dtype float32, got " + dtype_name(t.dtype) +
               " (parameters and optimizer state are float32 master weights; cast a copy for 16-bit compute)");
  check_shape(op, name, t, shape);
  for (int i = 0; i < t.ndim(); i++)
    if (t.strides[i] == 0 && t.shape[i] > 1)
      throw_value(arg_prefix(op, name) + " is a broadcast view (axis " + std::to_string(i) +
                  " has stride 0); update its source");
}

// `work` is dense memory the kernel updates; for a strided view it is a copy,
// assigned back to `orig` after the kernel.
struct InPlace {
  Tensor orig, work;
  bool copy_back = false;
};

InPlace in_place(const Tensor& t) {
  InPlace r;
  r.orig = t;
  r.work = t;
  if (!t.is_contiguous()) {
    r.work = contiguous(t);
    r.copy_back = true;
  }
  return r;
}

void check_rate(const char* op, const char* name, double v) {
  if (!(v >= 0) || !std::isfinite(v))
    throw_range(arg_prefix(op, name) + " must be a finite number >= 0, got " + show_number(v));
}

void check_unit(const char* op, const char* name, double v) {
  if (!(v >= 0 && v < 1)) throw_range(arg_prefix(op, name) + " must be in [0, 1), got " + show_number(v));
}

// The gradient (checked already) as dense float32 memory that no in-place operand overlaps.
Tensor dense_grad(const char* op, const Tensor& g, std::initializer_list<const Tensor*> written) {
  Tensor d = g.dtype == DType::Float32 ? contiguous(g) : cast(g, DType::Float32);
  for (const Tensor* w : written) {
    if (w && overlaps(d, *w)) {
      Tensor c = empty(d.shape, DType::Float32, d.device(), op);
      assign(c, d);
      return c;
    }
  }
  return d;
}

void check_disjoint(const char* op, std::initializer_list<std::pair<const char*, const Tensor*>> ts) {
  for (auto a = ts.begin(); a != ts.end(); ++a)
    for (auto b = a + 1; b != ts.end(); ++b)
      if (a->second && b->second && overlaps(*a->second, *b->second))
        throw_value(arg_prefix(op, b->first) + " overlaps the memory of '" + a->first + "'; each must be its own tensor");
}

}  // namespace

void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamHyper& h, bool lamb) {
  const char* op = lamb ? "lamb_update" : "adam_update";
  check_same_device(op, {{"param", &param}, {"grad", &grad}, {"exp_avg", &exp_avg}, {"exp_avg_sq", &exp_avg_sq}});
  check_rate(op, "lr", h.lr);
  check_unit(op, "beta1", h.beta1);
  check_unit(op, "beta2", h.beta2);
  if (!(h.eps > 0) || !std::isfinite(h.eps)) throw_range(arg_prefix(op, "eps") + " must be a positive number, got " + show_number(h.eps));
  check_rate(op, "weightDecay", h.weight_decay);
  if (h.step < 1 || h.step > (int64_t(1) << 53))
    throw_range(arg_prefix(op, "step") + " must be an integer >= 1 (the count of steps including this one), got " + std::to_string(h.step));
  check_in_place(op, "param", param, param.shape);
  check_float(op, "grad", grad);
  check_shape(op, "grad", grad, param.shape);
  check_in_place(op, "exp_avg", exp_avg, param.shape);
  check_in_place(op, "exp_avg_sq", exp_avg_sq, param.shape);
  check_disjoint(op, {{"param", &param}, {"exp_avg", &exp_avg}, {"exp_avg_sq", &exp_avg_sq}});
  const int64_t n = param.numel();
  if (n == 0) return;
  InPlace p = in_place(param), m = in_place(exp_avg), v = in_place(exp_avg_sq);
  Tensor g = dense_grad(op, grad, {&param, &exp_avg, &exp_avg_sq});
  AdamArgs a{};
  a.n = n;
  a.lr = (float)h.lr;
  a.beta1 = (float)h.beta1;
  a.one_minus_beta1 = (float)(1 - h.beta1);
  a.beta2 = (float)h.beta2;
  a.one_minus_beta2 = (float)(1 - h.beta2);
  a.eps = (float)h.eps;
  a.weight_decay = (float)h.weight_decay;
  a.bc1 = (float)(1 / (1 - std::pow(h.beta1, (double)h.step)));
  a.bc2 = (float)(1 / (1 - std::pow(h.beta2, (double)h.step)));
  Tensor u = lamb ? empty({n}, DType::Float32, param.device(), op) : Tensor();
  launch(op, param.device(), {&g}, {&p.work, &m.work, &v.work, lamb ? &u : nullptr},
         [a, g = data_ref(g), pw = data_ref(p.work), mw = data_ref(m.work), vw = data_ref(v.work), u = data_ref(u), lamb](Backend& b) mutable {
           a.p = (float*)pw.data();
           a.g = (const float*)g.data();
           a.m = (float*)mw.data();
           a.v = (float*)vw.data();
           if (lamb) b.lamb_update(a, (float*)u.data());
           else b.adam_update(a);
         });
  for (const InPlace* t : {&p, &m, &v})
    if (t->copy_back) assign(t->orig, t->work);
  for (const Tensor* t : {&param, &exp_avg, &exp_avg_sq}) t->storage->note_write();
}

void sgd_update(const Tensor& param, const Tensor& grad, const Tensor* momentum_buffer, double lr, double momentum,
                double weight_decay, bool nesterov) {
  const char* op = "sgd_update";
  check_same_device(op, {{"param", &param}, {"grad", &grad}, {"momentumBuffer", momentum_buffer}});
  check_rate(op, "lr", lr);
  check_unit(op, "momentum", momentum);
  check_rate(op, "weightDecay", weight_decay);
  if (momentum_buffer == nullptr && momentum != 0)
    throw_value(arg_prefix(op, "momentumBuffer") + " is required when momentum is " + show_number(momentum));
  if (nesterov && !(momentum > 0)) throw_range(arg_prefix(op, "nesterov") + " needs momentum > 0");
  check_in_place(op, "param", param, param.shape);
  check_float(op, "grad", grad);
  check_shape(op, "grad", grad, param.shape);
  if (momentum_buffer) {
    check_in_place(op, "momentumBuffer", *momentum_buffer, param.shape);
    check_disjoint(op, {{"param", &param}, {"momentumBuffer", momentum_buffer}});
  }
  const int64_t n = param.numel();
  if (n == 0) return;
  InPlace p = in_place(param);
  InPlace m = momentum_buffer ? in_place(*momentum_buffer) : InPlace();
  Tensor g = dense_grad(op, grad, {&param, momentum_buffer});
  SgdArgs a{};
  a.n = n;
  a.lr = (float)lr;
  a.momentum = (float)momentum;
  a.lr_wd = (float)(lr * weight_decay);
  a.nesterov = nesterov;
  const bool has_buf = momentum_buffer != nullptr;
  launch(op, param.device(), {&g}, {&p.work, has_buf ? &m.work : nullptr},
         [a, g = data_ref(g), pw = data_ref(p.work), mw = data_ref(m.work), has_buf](Backend& b) mutable {
           a.p = (float*)pw.data();
           a.g = (const float*)g.data();
           a.buf = has_buf ? (float*)mw.data() : nullptr;
           b.sgd_update(a);
         });
  if (p.copy_back) assign(p.orig, p.work);
  if (has_buf && m.copy_back) assign(m.orig, m.work);
  param.storage->note_write();
  if (has_buf) momentum_buffer->storage->note_write();
}

}  // namespace perceiver
