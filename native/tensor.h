// A Tensor is a view: storage + dtype + shape + strides (in elements) + offset.
// Views (reshape of contiguous data, permute, slice, broadcast) share storage and
// cost no copy; kernels that need dense rows get them through contiguous().
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dtype.h"
#include "storage.h"

namespace perceiver {

using Shape = std::vector<int64_t>;

constexpr int kMaxDims = 8;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
// The element count of a shape given by a caller: throws a RangeError naming op
// and argument for negative dimensions, more than kMaxDims axes, or a count
// beyond 2^46 elements (which no allocation could hold, and which would
// otherwise overflow int64 arithmetic downstream).
int64_t checked_numel(const char* op, const char* name, const Shape& s);
Shape contiguous_strides(const Shape& s);

struct Tensor {
  StoragePtr storage;
  DType dtype = DType::Float32;
  Shape shape;
  Shape strides;
  int64_t offset = 0;  // elements

  int ndim() const { return (int)shape.size(); }
  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return (size_t)numel() * dtype_size(dtype); }
  Device device() const { return storage->device(); }
  bool is_contiguous() const;
  // Pointer to element [0, 0, ...] of the view.
  void* data() const {
    return static_cast<char*>(storage->data()) + offset * (int64_t)dtype_size(dtype);
  }
  int64_t size(int axis) const { return shape[axis]; }
};

// What a queued kernel needs of a tensor: the address of its first element, taken
// when the kernel runs (storages get their memory then). The kernel's task keeps
// the storage alive; capturing this instead of a Tensor copies no shape vectors,
// which the queue thread would otherwise free.
struct DataRef {
  Storage* storage = nullptr;  // null for an absent optional tensor
  int64_t offset_bytes = 0;
  void* data() const { return storage ? static_cast<char*>(storage->data()) + offset_bytes : nullptr; }
};
inline DataRef data_ref(const Tensor& t) { return {t.storage.get(), t.offset * (int64_t)dtype_size(t.dtype)}; }

// Allocates a dense tensor on `device`; errors name `op`.
Tensor empty(const Shape& shape, DType dtype, Device device, const char* op = "alloc");

}  // namespace perceiver
