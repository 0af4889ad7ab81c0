#include "tensor.h"

#include <memory>

#include "backend.h"
#include "error.h"
#include "small_pool.h"

namespace perceiver {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int i = (int)s.size() - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int i = ndim() - 1; i >= 0; i--) {
    if (shape[i] != 1 && strides[i] != acc) return false;
    acc *= shape[i];
  }
  return true;
}

int64_t checked_numel(const char* op, const char* name, const Shape& s) {
  // The message is built only on failure: this runs for every op's output.
  auto where = [&] { return std::string(op) + ": argument '" + name + "' " + shape_str(s); };
  if ((int)s.size() > kMaxDims)
    throw_range(where() + " has " + std::to_string(s.size()) + " dimensions; at most " +
                std::to_string(kMaxDims) + " are supported");
  const int64_t limit = int64_t(1) << 46;
  int64_t n = 1;
  bool zero = false;
  for (int64_t d : s) {
    if (d < 0) throw_range(where() + " has a negative dimension");
    if (d == 0) zero = true;
  }
  if (zero) return 0;
  for (int64_t d : s) {
    if (n > limit / d) throw_range(where() + " is too large (more than 2^46 elements)");
    n *= d;
  }
  return n;
}

Tensor empty(const Shape& shape, DType dtype, Device device, const char* op) {
  int64_t n = checked_numel(op, "shape", shape);
  Tensor t;
  try {
    t.storage = std::allocate_shared<Storage>(SmallAllocator<Storage>(), backend_for(device), device,
                                              (size_t)n * dtype_size(dtype));
  } catch (const Error& e) {
    throw Error(e.kind, std::string(op) + ": " + e.what() + " for shape " + shape_str(shape));
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::Memory, std::string(op) + ": out of memory for shape " + shape_str(shape));
  }
  t.dtype = dtype;
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  return t;
}

}  // namespace perceiver
