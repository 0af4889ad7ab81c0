// Creation, transfer and layout ops. Layout ops return views when the strides
// allow it and copy (through the backend's strided copy) only when they must.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "op_util.h"
#include "ops.h"

namespace perceiver {

Queue& queue_of(const Tensor& t) { return t.storage->backend()->queue(t.device().index); }

Tensor from_host(const void* data, size_t bytes, const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device, "tensor");
  if (bytes != t.nbytes())
    throw_range("tensor: data holds " + std::to_string(bytes) + " bytes but shape " +
                shape_str(shape) + " of " + dtype_name(dtype) + " needs " +
                std::to_string(t.nbytes()));
  const bool ids = dtype == DType::Int32;
  if (device.type == DeviceType::CPU) {
    // The storage is new, so no queued kernel can touch it yet: copy right here.
    if (bytes) std::memcpy(t.storage->data(), data, bytes);
    if (ids) learn_int32_bounds(*t.storage, data, bytes);
    return t;
  }
  auto staging = std::make_shared<std::vector<char>>((const char*)data, (const char*)data + bytes);
  launch("tensor", device, {}, {&t}, [staging, t = data_ref(t), bytes, ids](Backend& b) {
    b.copy_from_host(t.data(), staging->data(), bytes);
    if (ids) learn_int32_bounds(*t.storage, staging->data(), bytes);
  });
  return t;
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device, "full");
  View v = view_of(t);
  launch("full", device, {}, {&t}, [v, value](Backend& b) { b.fill(v, value); });
  return t;
}

Tensor arange(double start, double step, int64_t n, DType dtype, Device device) {
  if (n < 0) throw_range("arange: length must be >= 0, got " + std::to_string(n));
  Tensor t = empty({n}, dtype, device, "arange");
  View v = view_of(t);
  launch("arange", device, {}, {&t}, [v, start, step](Backend& b) { b.arange(v, start, step); });
  return t;
}

Tensor random_normal(const Shape& shape, uint64_t seed, float mean, float stddev, Device device) {
  if (!(stddev >= 0)) throw_range("randn: argument 'std' must be >= 0, got " + show_number(stddev));
  Tensor t = empty(shape, DType::Float32, device, "randn");
  View v = view_of(t);
  launch("randn", device, {}, {&t},
         [v, seed, mean, stddev](Backend& b) { b.random_normal(v, seed, mean, stddev); });
  return t;
}

Tensor random_uniform(const Shape& shape, uint64_t seed, float low, float high, Device device) {
  if (!(high >= low))
    throw_range("rand: argument 'high' must be >= 'low', got low " + show_number(low) +
                ", high " + show_number(high));
  Tensor t = empty(shape, DType::Float32, device, "rand");
  View v = view_of(t);
  launch("rand", device, {}, {&t},
         [v, seed, low, high](Backend& b) { b.random_uniform(v, seed, low, high); });
  return t;
}

uint64_t read_to_host(const Tensor& t, void* dst, std::shared_ptr<ReadStatus> status) {
  Tensor src = t.is_contiguous() ? t : contiguous(t);
  StoragePtr s = src.storage;
  size_t bytes = src.nbytes();
  Backend* backend = s->backend();
  return backend->queue(src.device().index).submit([s, src = data_ref(src), dst, bytes, backend, status] {
    if (s->failed()) {
      status->failed = true;
      status->error = s->error();
      return;
    }
    try {
      backend->copy_to_host(dst, src.data(), bytes);
    } catch (const std::exception& e) {
      status->failed = true;
      status->error = std::string("data: ") + e.what();
    }
  });
}

// The copy runs as a task of the source queue, so it reads x after every op issued
// on x before to() and before any issued after it (optimizer steps write parameters
// in place); the destination queue then waits (on its own thread) for that task, so
// ops issued on out later see the copy. Waits only ever point at earlier
// submissions, so two transfers in opposite directions cannot deadlock. The device
// side of the copy runs on the GPU's stream (copy_to_host / copy_from_host
// synchronise what they must); a copy to a GPU is queued on its stream before the
// destination queue launches anything that reads out.
Tensor to_device(const Tensor& x_in, Device device) {
  if (x_in.device() == device) return x_in;
  Backend* dst_backend = backend_for(device);  // throws when the device is unavailable
  Tensor x = contiguous(x_in);
  Tensor out = empty(x.shape, x.dtype, device, "to");
  Queue& src_queue = queue_of(x);
  Backend* src_backend = x.storage->backend();
  size_t bytes = x.nbytes();
  std::string what = "to: " + x.device().str() + " -> " + device.str() + ": ";
  uint64_t copied = src_queue.submit([x, out, bytes, src_backend, dst_backend, device, what] {
    if (x.storage->failed()) {
      out.storage->set_error(x.storage->error());
      return;
    }
    try {
      if (bytes == 0) return;
      // int32 values pass through host memory here, where their bounds cost one scan
      // (see Storage::set_int32_bounds), unless x's storage already has them.
      int32_t lo, hi;
      const bool known = x.dtype == DType::Int32 && x.storage->int32_bounds(&lo, &hi);
      const bool ids = x.dtype == DType::Int32 && !known;
      if (known) out.storage->set_int32_bounds(lo, hi);
      if (x.device().type == DeviceType::CPU) {
        dst_backend->copy_from_host(out.data(), x.data(), bytes);
        if (ids) learn_int32_bounds(*out.storage, x.data(), bytes);
      } else if (device.type == DeviceType::CPU) {
        src_backend->copy_to_host(out.data(), x.data(), bytes);
        if (ids) learn_int32_bounds(*out.storage, out.data(), bytes);
      } else {  // between two GPUs, through the host
        std::vector<char> host(bytes);
        src_backend->copy_to_host(host.data(), x.data(), bytes);
        dst_backend->copy_from_host(out.data(), host.data(), bytes);
        if (ids) learn_int32_bounds(*out.storage, host.data(), bytes);
      }
    } catch (const std::exception& e) {
      out.storage->set_error(what + e.what());
    }
  });
  dst_backend->queue(device.index).submit([&src_queue, copied] { src_queue.wait(copied); });
  return out;
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor out = empty(x.shape, x.dtype, x.device(), "contiguous");
  View src = view_of(x), dst = view_of(out);
  // A copy of part of a storage keeps within the whole's bounds.
  Storage *from = x.storage.get(), *to = out.storage.get();
  launch("contiguous", x.device(), {&x}, {&out}, [src, dst, from, to](Backend& b) {
    b.copy(src, dst);
    int32_t lo, hi;
    if (from->int32_bounds(&lo, &hi)) to->set_int32_bounds(lo, hi);
  });
  return out;
}

Tensor cast(const Tensor& x, DType dtype) {
  if (dtype == x.dtype) return x;
  Tensor out = empty(x.shape, dtype, x.device(), "cast");
  View src = view_of(x), dst = view_of(out);
  launch("cast", x.device(), {&x}, {&out}, [src, dst](Backend& b) { b.copy(src, dst); });
  return out;
}

void assign(const Tensor& dst, const Tensor& src) {
  if (dst.shape != src.shape)
    throw_range("assign: argument 'src' must have dst's shape " + shape_str(dst.shape) + ", got " + shape_str(src.shape));
  if (dst.device() != src.device())
    throw_value("assign: 'src' is on " + src.device().str() + " but 'dst' is on " + dst.device().str());
  // A broadcast destination would have several elements written through one address.
  for (size_t i = 0; i < dst.shape.size(); i++)
    if (dst.strides[i] == 0 && dst.shape[i] > 1)
      throw_value("assign: argument 'dst' is a broadcast view (axis " + std::to_string(i) + " has stride 0); assign into its source");
  // A source that shares memory with the destination (assign(x, transpose(x)), a
  // shifted slice) would be read where the copy has already written: it goes through
  // a copy of its own first.
  const bool same_view = src.storage == dst.storage && src.offset == dst.offset && src.strides == dst.strides &&
                         src.dtype == dst.dtype;
  dst.storage->note_write();
  if (same_view) return;
  Tensor from = src;
  if (overlaps(dst, src)) {
    from = empty(src.shape, src.dtype, src.device(), "assign");
    View s = view_of(src), f = view_of(from);
    launch("assign", src.device(), {&src}, {&from}, [s, f](Backend& b) { b.copy(s, f); });
  }
  View s = view_of(from), d = view_of(dst);
  // Healthy values over every byte of a failed storage (the kernel runs only when its
  // source is healthy) make it a working tensor again; a part of it stays failed, as
  // the rest still holds what the failure left.
  const bool whole = dst.offset == 0 && dst.is_contiguous() &&
                     (size_t)dst.numel() * dtype_size(dst.dtype) == dst.storage->bytes();
  Storage* to = dst.storage.get();
  launch("assign", dst.device(), {&from}, {&dst}, [s, d, whole, to](Backend& b) {
    b.copy(s, d);
    if (whole) to->clear_error();
  });
}

namespace {

// The strides that read `from` (of shape `shape`, strides `strides`) as `to`, where they
// exist: walking both shapes from the last axis, each chunk of `shape`'s axes that are
// contiguous with each other (stride[d - 1] == size[d] * stride[d]; axes of size 1 do not
// break a chunk) must hold exactly the elements of a run of `to`'s axes, which then step
// through it as a dense block. ATen's computeStride, on the same definition.
bool view_strides(const Shape& shape, const Shape& strides, const Shape& to, Shape* out) {
  out->assign(to.size(), 0);
  if (shape_numel(shape) == 0) return false;  // empty: the copy is free
  int view_d = (int)to.size() - 1;
  int64_t base = strides.empty() ? 1 : strides.back();
  int64_t chunk = 1, view = 1;
  for (int d = (int)shape.size() - 1; d >= 0; d--) {
    chunk *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != chunk * base)) {
      while (view_d >= 0 && (view < chunk || to[view_d] == 1)) {
        (*out)[view_d] = view * base;
        view *= to[view_d];
        view_d--;
      }
      if (view != chunk) return false;
      if (d > 0) {
        base = strides[d - 1];
        chunk = view = 1;
      }
    }
  }
  // Trailing (leading, in to's order) axes of size 1 left over take any stride.
  while (view_d >= 0 && to[view_d] == 1) (*out)[view_d--] = base;
  return view_d == -1;
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  if ((int)shape_in.size() > kMaxDims)
    throw_range("reshape: argument 'shape' " + shape_str(shape_in) + " has more than " +
                std::to_string(kMaxDims) + " dimensions");
  Shape shape = shape_in;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); i++) {
    if (shape[i] == -1) {
      if (infer >= 0) throw_range("reshape: argument 'shape' " + shape_str(shape_in) + " has more than one -1");
      infer = (int)i;
    } else if (shape[i] < 0) {
      throw_range("reshape: argument 'shape' " + shape_str(shape_in) + " has a negative dimension");
    } else if (shape[i] != 0 && known > (int64_t(1) << 46) / shape[i]) {
      throw_range("reshape: argument 'shape' " + shape_str(shape_in) + " is too large");
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      throw_range("reshape: cannot reshape " + shape_str(x.shape) + " (" +
                  std::to_string(x.numel()) + " elements) into " + shape_str(shape_in));
    shape[infer] = x.numel() / known;
  }
  if (checked_numel("reshape", "shape", shape) != x.numel())
    throw_range("reshape: argument 'shape' " + shape_str(shape_in) + " has " +
                std::to_string(shape_numel(shape)) + " elements but the tensor " +
                shape_str(x.shape) + " has " + std::to_string(x.numel()));
  if ((int)shape.size() > kMaxDims)
    throw_range("reshape: at most " + std::to_string(kMaxDims) + " dimensions, got " + shape_str(shape));
  Tensor out = x;
  out.shape = shape;
  // A strided x is read in place where the new shape only splits or merges runs of its
  // axes that are contiguous with each other (torch's view rule), so that squeeze and
  // unsqueeze of a slice stay views an in-place write goes through; else a copy.
  if (!x.is_contiguous() && view_strides(x.shape, x.strides, shape, &out.strides)) return out;
  out = contiguous(x);
  out.shape = shape;
  out.strides = contiguous_strides(shape);
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& axes) {
  int n = x.ndim();
  if ((int)axes.size() != n)
    throw_range("permute: argument 'axes' must list " + std::to_string(n) + " axes for shape " +
                shape_str(x.shape) + ", got " + shape_str(axes));
  std::vector<bool> seen(n, false);
  Tensor out = x;
  for (int i = 0; i < n; i++) {
    int64_t a = normalize_axis("permute", "axes", axes[i], n);
    if (seen[a]) throw_range("permute: argument 'axes' " + shape_str(axes) + " repeats axis " + std::to_string(a));
    seen[a] = true;
    out.shape[i] = x.shape[a];
    out.strides[i] = x.strides[a];
  }
  return out;
}

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  int64_t a = normalize_axis("slice", "axis", axis, x.ndim());
  if (step < 1) throw_range("slice: argument 'step' must be >= 1, got " + std::to_string(step));
  int64_t d = x.shape[a];
  // Python-style clamping of negative and out-of-range bounds.
  if (start < 0) start += d;
  if (end < 0) end += d;
  start = std::clamp<int64_t>(start, 0, d);
  end = std::clamp<int64_t>(end, 0, d);
  int64_t len = end > start ? (end - start + step - 1) / step : 0;
  Tensor out = x;
  out.offset += start * x.strides[a];
  out.shape[a] = len;
  out.strides[a] = x.strides[a] * step;
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  if (x.shape == shape) return x;
  checked_numel("broadcast", "shape", shape);
  int n = (int)shape.size();
  if (n < x.ndim() || n > kMaxDims)
    throw_range("broadcast: cannot broadcast " + shape_str(x.shape) + " to " + shape_str(shape));
  Tensor out = x;
  out.shape = shape;
  out.strides.assign(n, 0);
  for (int i = 0; i < n; i++) {
    int xi = i - (n - x.ndim());
    if (xi < 0) continue;
    if (x.shape[xi] == shape[i]) {
      out.strides[i] = x.strides[xi];
    } else if (x.shape[xi] == 1) {
      out.strides[i] = 0;
    } else {
      throw_range("broadcast: cannot broadcast " + shape_str(x.shape) + " to " + shape_str(shape) +
                  " (dimension " + std::to_string(xi) + " is " + std::to_string(x.shape[xi]) +
                  ", expected 1 or " + std::to_string(shape[i]) + ")");
    }
  }
  return out;
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) throw_range("concat: argument 'tensors' must hold at least one tensor, got 0");
  const Tensor& first = xs[0];
  int64_t a = normalize_axis("concat", "axis", axis, first.ndim());
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); i++) {
    const Tensor& t = xs[i];
    std::string name = "tensors[" + std::to_string(i) + "]";
    if (t.dtype != first.dtype)
      throw_type("concat: argument '" + name + "' has dtype " + dtype_name(t.dtype) +
                 ", expected " + dtype_name(first.dtype) + " like tensors[0]");
    if (t.device() != first.device())
      throw_value("concat: argument '" + name + "' is on " + t.device().str() + ", expected " +
                  first.device().str() + " like tensors[0]");
    bool ok = t.ndim() == first.ndim();
    for (int d = 0; ok && d < t.ndim(); d++)
      if (d != a && t.shape[d] != first.shape[d]) ok = false;
    if (!ok)
      throw_range("concat: argument '" + name + "' has shape " + shape_str(t.shape) +
                  ", expected " + shape_str(first.shape) + " except along axis " + std::to_string(a));
    total += t.shape[a];
  }
  Shape shape = first.shape;
  shape[a] = total;
  Tensor out = empty(shape, first.dtype, first.device(), "concat");
  // int32 pieces with known bounds (ids batched from host-made rows) give out their
  // union: the last piece's copy sets it, once every piece has landed.
  size_t last = xs.size();
  for (size_t i = 0; i < xs.size(); i++)
    if (xs[i].shape[a] != 0) last = i;
  std::shared_ptr<std::vector<StoragePtr>> pieces;
  if (first.dtype == DType::Int32) {
    pieces = std::make_shared<std::vector<StoragePtr>>();
    for (const Tensor& t : xs)
      if (t.numel() > 0) pieces->push_back(t.storage);  // empty pieces hold no values
  }
  int64_t at = 0;
  for (size_t i = 0; i < xs.size(); i++) {
    const Tensor& t = xs[i];
    if (t.shape[a] == 0) continue;
    Tensor dst = slice(out, a, at, at + t.shape[a], 1);
    at += t.shape[a];
    View sv = view_of(t), dv = view_of(dst);
    std::shared_ptr<std::vector<StoragePtr>> union_of = i == last ? pieces : nullptr;
    Storage* to = out.storage.get();
    launch("concat", out.device(), {&t}, {&out}, [sv, dv, union_of, to](Backend& b) {
      b.copy(sv, dv);
      if (!union_of) return;
      int32_t lo = INT32_MAX, hi = INT32_MIN;
      for (const StoragePtr& s : *union_of) {
        int32_t l, h;
        if (!s->int32_bounds(&l, &h)) return;
        lo = std::min(lo, l);
        hi = std::max(hi, h);
      }
      to->set_int32_bounds(lo, hi);
    });
  }
  return out;
}

}  // namespace perceiver
