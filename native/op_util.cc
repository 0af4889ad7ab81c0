#include "op_util.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace perceiver {

namespace {

// The byte range a view can touch.
std::pair<int64_t, int64_t> byte_range(const Tensor& t) {
  int64_t lo = t.offset, hi = t.offset;
  for (int i = 0; i < t.ndim(); i++) {
    if (t.shape[i] == 0) return {0, 0};
    int64_t span = (t.shape[i] - 1) * t.strides[i];
    if (span < 0) lo += span;
    else hi += span;
  }
  int64_t e = (int64_t)dtype_size(t.dtype);
  return {lo * e, (hi + 1) * e};
}

}  // namespace

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.storage.get() != b.storage.get()) return false;
  auto ra = byte_range(a), rb = byte_range(b);
  return ra.first < rb.second && rb.first < ra.second && ra.first < ra.second && rb.first < rb.second;
}

View view_of(const Tensor& t) {
  View v;
  v.storage = t.storage.get();
  v.offset_bytes = t.offset * (int64_t)dtype_size(t.dtype);
  v.dtype = t.dtype;
  v.ndim = t.ndim();
  for (int i = 0; i < t.ndim(); i++) {
    v.shape[i] = t.shape[i];
    v.strides[i] = t.strides[i];
  }
  return v;
}

std::string arg_prefix(const char* op, const char* name) {
  return std::string(op) + ": argument '" + name + "'";
}

std::string show_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  // The fewest digits that read back as v: a float argument widened to double prints
  // as what was written (0.9f, not 0.899999976158142) when it reads back as that float.
  char buf[40];
  const bool is_float = (double)(float)v == v;
  for (int digits = 1; digits <= 17; digits++) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    const double back = std::strtod(buf, nullptr);
    if (is_float ? (float)back == (float)v : back == v) break;
  }
  return buf;
}

void check_dtype(const char* op, const char* name, const Tensor& t, DType want) {
  if (t.dtype != want)
    throw_type(arg_prefix(op, name) + " must have dtype " + dtype_name(want) + ", got " +
               dtype_name(t.dtype));
}

void check_float32(const char* op, const char* name, const Tensor& t) {
  if (t.dtype != DType::Float32)
    throw_type(arg_prefix(op, name) + " must have dtype float32, got " + dtype_name(t.dtype) +
               " (cast it first; 16-bit floats are storage types on the cpu)");
}

void check_float(const char* op, const char* name, const Tensor& t) {
  if (!dtype_is_float(t.dtype))
    throw_type(arg_prefix(op, name) + " must have a floating dtype (float32, float16 or bfloat16), got " +
               dtype_name(t.dtype));
}

void check_same_dtype(const char* op,
                      std::initializer_list<std::pair<const char*, const Tensor*>> ts) {
  const std::pair<const char*, const Tensor*>* first = nullptr;
  for (auto& p : ts) {
    if (!p.second) continue;
    if (!first) {
      first = &p;
      continue;
    }
    if (p.second->dtype != first->second->dtype)
      throw_type(arg_prefix(op, p.first) + " has dtype " + dtype_name(p.second->dtype) + " but '" +
                 first->first + "' has " + dtype_name(first->second->dtype) + "; cast one first");
  }
}

bool cpu_16bit(const Tensor& t) {
  return t.device().type == DeviceType::CPU && (t.dtype == DType::Float16 || t.dtype == DType::BFloat16);
}

void check_ndim(const char* op, const char* name, const Tensor& t, int want) {
  if (t.ndim() != want)
    throw_range(arg_prefix(op, name) + " must have " + std::to_string(want) +
                " dimensions, got shape " + shape_str(t.shape));
}

void check_min_ndim(const char* op, const char* name, const Tensor& t, int want) {
  if (t.ndim() < want)
    throw_range(arg_prefix(op, name) + " must have at least " + std::to_string(want) +
                " dimensions, got shape " + shape_str(t.shape));
}

void check_shape(const char* op, const char* name, const Tensor& t, const Shape& want) {
  if (t.shape != want)
    throw_range(arg_prefix(op, name) + " must have shape " + shape_str(want) + ", got " +
                shape_str(t.shape));
}

void check_same_device(const char* op,
                       std::initializer_list<std::pair<const char*, const Tensor*>> ts) {
  const std::pair<const char*, const Tensor*>* first = nullptr;
  for (auto& p : ts) {
    if (!p.second) continue;
    if (!first) {
      first = &p;
      continue;
    }
    if (p.second->device() != first->second->device())
      throw_value(arg_prefix(op, p.first) + " is on " + p.second->device().str() + " but '" +
                  first->first + "' is on " + first->second->device().str() +
                  "; move one with .to() first");
  }
}

int64_t normalize_axis(const char* op, const char* name, int64_t axis, int ndim) {
  if (axis < -ndim || axis >= ndim || ndim == 0)
    throw_range(arg_prefix(op, name) + " must be in [" + std::to_string(-ndim) + ", " +
                std::to_string(ndim) + "), got " + std::to_string(axis));
  return axis < 0 ? axis + ndim : axis;
}

KernelTask::KernelTask(const char* op, Backend* backend, Device device,
                       std::initializer_list<const Tensor*> inputs,
                       std::initializer_list<const Tensor*> outputs)
    : op_(op), backend_(backend), device_(device) {
  for (const Tensor* t : inputs) {
    if (!t) continue;
    if (n_in_ == kMaxInputs) throw_value(std::string(op) + ": internal error: too many kernel inputs");
    in_[n_in_++] = t->storage;
  }
  const Tensor* first_out = nullptr;
  for (const Tensor* t : outputs) {
    if (!t) continue;
    if (n_out_ == kMaxOutputs) throw_value(std::string(op) + ": internal error: too many kernel outputs");
    if (!first_out) first_out = t;
    out_[n_out_++] = t->storage;
  }
  if (profiling()) profile_ = std::make_unique<ProfileKey>(profile_key(op, first_out ? &first_out->shape : nullptr));
}

void KernelTask::run() {
  for (int o = 0; o < n_out_; o++) out_[o]->forget_bounds();
  for (int i = 0; i < n_in_; i++) {
    if (in_[i]->failed()) {
      for (int o = 0; o < n_out_; o++) out_[o]->set_error(in_[i]->error());
      return;
    }
  }
  void* mark = profile_ && profile_->active ? profile_begin(*backend_) : nullptr;
  try {
    kernel(*backend_);
  } catch (const std::exception& e) {
    for (int o = 0; o < n_out_; o++) out_[o]->set_error(std::string(op_) + ": " + e.what());
  } catch (...) {
    for (int o = 0; o < n_out_; o++) out_[o]->set_error(std::string(op_) + ": unknown error");
  }
  if (mark) profile_end(*profile_, *backend_, device_, mark);
}

}  // namespace perceiver
