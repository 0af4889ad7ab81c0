#include "tensor.h"

#include "backend.h"
#include "error.h"

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

Tensor empty(const Shape& shape, DType dtype, Device device) {
  if ((int)shape.size() > kMaxDims)
    throw_range("tensors have at most " + std::to_string(kMaxDims) + " dimensions, got " +
                std::to_string(shape.size()));
  // Guard against sizes whose byte count overflows or cannot be allocated.
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw_range("shape " + shape_str(shape) + " has a negative dimension");
    if (d != 0 && n > (int64_t(1) << 46) / d)
      throw Error(ErrorKind::Memory, "shape " + shape_str(shape) + " is too large to allocate");
    n *= d;
  }
  Tensor t;
  t.storage = std::make_shared<Storage>(backend_for(device), device, (size_t)n * dtype_size(dtype));
  t.dtype = dtype;
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  return t;
}

}  // namespace perceiver
