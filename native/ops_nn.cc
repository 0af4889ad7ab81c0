// Indexing and convolutional ops.
#include <algorithm>

#include "op_util.h"
#include "ops.h"

namespace perceiver {

void resolve_padding(const char* op, const char* axis, int64_t in, int64_t k, int64_t stride,
                     Padding mode, int64_t lo, int64_t hi, int64_t* out, int64_t* pad_lo) {
  if (mode == Padding::Same) {
    *out = (in + stride - 1) / stride;
    int64_t total = std::max<int64_t>((*out - 1) * stride + k - in, 0);
    *pad_lo = total / 2;
    return;
  }
  int64_t padded = in + (mode == Padding::Explicit ? lo + hi : 0);
  if (padded < k)
    throw_range(std::string(op) + ": kernel " + axis + " " + std::to_string(k) +
                " is larger than the (padded) input " + axis + " " + std::to_string(padded));
  *out = (padded - k) / stride + 1;
  *pad_lo = mode == Padding::Explicit ? lo : 0;
}

void check_pad(const char* op, const PadSpec& p) {
  if (p.top < 0 || p.bottom < 0 || p.left < 0 || p.right < 0)
    throw_range(std::string(op) + ": argument 'padding' must be >= 0 on every side");
}

Tensor embedding(const Tensor& weight, const Tensor& ids_in) {
  check_float("embedding", "weight", weight);
  check_ndim("embedding", "weight", weight, 2);
  check_dtype("embedding", "ids", ids_in, DType::Int32);
  check_same_device("embedding", {{"weight", &weight}, {"ids", &ids_in}});
  if (cpu_16bit(weight)) return cast(embedding(cast(weight, DType::Float32), ids_in), weight.dtype);
  Tensor w = contiguous(weight), ids = contiguous(ids_in);
  int64_t vocab = w.shape[0], c = w.shape[1];
  Shape shape = ids.shape;
  shape.push_back(c);
  Tensor out = empty(shape, w.dtype, w.device(), "embedding");
  int64_t n = ids.numel();
  DType dt = w.dtype;
  launch("embedding", w.device(), {&w, &ids}, {&out}, [w = data_ref(w), ids = data_ref(ids), out = data_ref(out), vocab, c, n, dt](Backend& b) {
    b.embedding((const float*)w.data(), vocab, c, (const int32_t*)ids.data(), n, (float*)out.data(), dt,
                ids.storage->int32_within(0, vocab));
  });
  return out;
}

Tensor one_hot(const Tensor& ids_in, int64_t depth, double on_in, double off_in, DType dtype) {
  check_dtype("one_hot", "ids", ids_in, DType::Int32);
  if (depth < 1) throw_range("one_hot: argument 'depth' must be >= 1, got " + std::to_string(depth));
  if (!dtype_is_float(dtype))
    throw_type(std::string("one_hot: argument 'dtype' must be 'float32', 'bfloat16' or 'float16', got '") +
               dtype_name(dtype) + "'");
  // Rounded to the output's dtype here, once: the kernels take floats, and a
  // float of a 16-bit halfway value would round a second time.
  const float on = value_in_dtype(on_in, dtype), off = value_in_dtype(off_in, dtype);
  // The CPU's kernel writes float32; 16-bit values there are its output cast.
  if (dtype != DType::Float32 && ids_in.device().type == DeviceType::CPU)
    return cast(one_hot(ids_in, depth, on, off, DType::Float32), dtype);
  Tensor ids = contiguous(ids_in);
  Shape shape = ids.shape;
  shape.push_back(depth);
  Tensor out = empty(shape, dtype, ids.device(), "one_hot");
  int64_t n = ids.numel();
  launch("one_hot", ids.device(), {&ids}, {&out}, [ids = data_ref(ids), out = data_ref(out), n, depth, on, off, dtype](Backend& b) {
    b.one_hot((const int32_t*)ids.data(), n, depth, on, off, (float*)out.data(), dtype,
              ids.storage->int32_within(0, depth));
  });
  return out;
}

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor* bias, int64_t sh, int64_t sw,
              const PadSpec& pad) {
  check_float("conv2d", "x", x_in);
  check_float("conv2d", "weight", w_in);
  if (bias) check_float("conv2d", "bias", *bias);
  check_same_dtype("conv2d", {{"x", &x_in}, {"weight", &w_in}, {"bias", bias}});
  check_ndim("conv2d", "x", x_in, 4);
  check_ndim("conv2d", "weight", w_in, 4);
  check_same_device("conv2d", {{"x", &x_in}, {"weight", &w_in}, {"bias", bias}});
  if (cpu_16bit(x_in)) {
    Tensor b32 = bias ? cast(*bias, DType::Float32) : Tensor();
    return cast(conv2d(cast(x_in, DType::Float32), cast(w_in, DType::Float32), bias ? &b32 : nullptr, sh, sw, pad),
                x_in.dtype);
  }
  check_pad("conv2d", pad);
  if (sh < 1 || sw < 1)
    throw_range("conv2d: argument 'stride' must be >= 1, got [" + std::to_string(sh) + ", " +
                std::to_string(sw) + "]");
  int64_t B = x_in.shape[0], H = x_in.shape[1], W = x_in.shape[2], C = x_in.shape[3];
  int64_t KH = w_in.shape[0], KW = w_in.shape[1], CO = w_in.shape[3];
  if (w_in.shape[2] != C)
    throw_range("conv2d: argument 'weight' must have shape [KH, KW, " + std::to_string(C) +
                ", Cout] (HWIO) to match 'x' " + shape_str(x_in.shape) + " (NHWC), got " +
                shape_str(w_in.shape));
  if (KH < 1 || KW < 1) throw_range("conv2d: argument 'weight' has an empty kernel " + shape_str(w_in.shape));
  Tensor bc;
  if (bias) {
    check_shape("conv2d", "bias", *bias, {CO});
    bc = contiguous(*bias);
  }
  int64_t OH, OW, pt, pl;
  resolve_padding("conv2d", "height", H, KH, sh, pad.mode, pad.top, pad.bottom, &OH, &pt);
  resolve_padding("conv2d", "width", W, KW, sw, pad.mode, pad.left, pad.right, &OW, &pl);
  Tensor x = contiguous(x_in), w = contiguous(w_in);
  Tensor out = empty({B, OH, OW, CO}, x.dtype, x.device(), "conv2d");
  if (out.numel() == 0) return out;
  Conv2dArgs a;
  a.dtype = x.dtype;
  a.batch = B; a.h = H; a.w_in = W; a.cin = C; a.kh = KH; a.kw = KW; a.cout = CO;
  a.oh = OH; a.ow = OW; a.stride_h = sh; a.stride_w = sw; a.pad_top = pt; a.pad_left = pl;
  bool has_bias = bias != nullptr;
  launch("conv2d", x.device(), {&x, &w, bias ? &bc : nullptr}, {&out},
         [a, x = data_ref(x), w = data_ref(w), bc = data_ref(bc), out = data_ref(out), has_bias](Backend& b) mutable {
           a.x = (const float*)x.data();
           a.w = (const float*)w.data();
           a.bias = has_bias ? (const float*)bc.data() : nullptr;
           a.out = (float*)out.data();
           b.conv2d(a);
         });
  return out;
}

Tensor max_pool2d(const Tensor& x_in, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                  const PadSpec& pad) {
  check_float("max_pool2d", "x", x_in);
  check_ndim("max_pool2d", "x", x_in, 4);
  check_pad("max_pool2d", pad);
  if (kh < 1 || kw < 1)
    throw_range("max_pool2d: argument 'kernel' must be >= 1, got [" + std::to_string(kh) + ", " +
                std::to_string(kw) + "]");
  if (sh < 1 || sw < 1)
    throw_range("max_pool2d: argument 'stride' must be >= 1, got [" + std::to_string(sh) + ", " +
                std::to_string(sw) + "]");
  if (pad.mode == Padding::Explicit && (pad.top >= kh || pad.bottom >= kh || pad.left >= kw || pad.right >= kw))
    throw_range("max_pool2d: argument 'padding' must be smaller than the kernel on each side");
  int64_t B = x_in.shape[0], H = x_in.shape[1], W = x_in.shape[2], C = x_in.shape[3];
  int64_t OH, OW, pt, pl;
  resolve_padding("max_pool2d", "height", H, kh, sh, pad.mode, pad.top, pad.bottom, &OH, &pt);
  resolve_padding("max_pool2d", "width", W, kw, sw, pad.mode, pad.left, pad.right, &OW, &pl);
  if (cpu_16bit(x_in)) {
    return cast(max_pool2d(cast(x_in, DType::Float32), kh, kw, sh, sw, pad), x_in.dtype);
  }
  // Padding alone would give every window nothing but -inf.
  if ((H == 0 || W == 0) && B * OH * OW * C > 0)
    throw_range("max_pool2d: argument 'x' has no pixels (shape " + shape_str(x_in.shape) + "), so no window holds a value");
  Tensor x = contiguous(x_in);
  Tensor out = empty({B, OH, OW, C}, x.dtype, x.device(), "max_pool2d");
  if (out.numel() == 0) return out;
  Pool2dArgs a;
  a.dtype = x.dtype;
  a.batch = B; a.h = H; a.w = W; a.c = C; a.kh = kh; a.kw = kw; a.oh = OH; a.ow = OW;
  a.stride_h = sh; a.stride_w = sw; a.pad_top = pt; a.pad_left = pl;
  launch("max_pool2d", x.device(), {&x}, {&out}, [a, x = data_ref(x), out = data_ref(out)](Backend& b) mutable {
    a.x = (const float*)x.data();
    a.out = (float*)out.data();
    b.max_pool2d(a);
  });
  return out;
}

Tensor batch_norm(const Tensor& x_in, const Tensor& mean, const Tensor& var, const Tensor* weight,
                  const Tensor* bias, float eps) {
  check_float("batch_norm", "x", x_in);
  check_min_ndim("batch_norm", "x", x_in, 1);
  int64_t C = x_in.shape.back();
  struct P { const char* name; const Tensor* t; } params[] = {
      {"mean", &mean}, {"var", &var}, {"weight", weight}, {"bias", bias}};
  for (auto& p : params) {
    if (!p.t) continue;
    check_float("batch_norm", p.name, *p.t);
    check_shape("batch_norm", p.name, *p.t, {C});
  }
  check_same_dtype("batch_norm", {{"x", &x_in}, {"mean", &mean}, {"var", &var}, {"weight", weight}, {"bias", bias}});
  check_same_device("batch_norm", {{"x", &x_in}, {"mean", &mean}, {"var", &var}, {"weight", weight}, {"bias", bias}});
  if (cpu_16bit(x_in)) {
    Tensor w32 = weight ? cast(*weight, DType::Float32) : Tensor(), b32 = bias ? cast(*bias, DType::Float32) : Tensor();
    return cast(batch_norm(cast(x_in, DType::Float32), cast(mean, DType::Float32), cast(var, DType::Float32),
                           weight ? &w32 : nullptr, bias ? &b32 : nullptr, eps),
                x_in.dtype);
  }
  if (!(eps >= 0)) throw_range("batch_norm: argument 'eps' must be >= 0, got " + show_number(eps));
  Tensor x = contiguous(x_in), m = contiguous(mean), v = contiguous(var);
  Tensor w = weight ? contiguous(*weight) : Tensor(), b = bias ? contiguous(*bias) : Tensor();
  Tensor out = empty(x.shape, x.dtype, x.device(), "batch_norm");
  DType dt = x.dtype;
  int64_t rows = C ? x.numel() / C : 0;
  bool has_w = weight != nullptr, has_b = bias != nullptr;
  launch("batch_norm", x.device(), {&x, &m, &v, weight ? &w : nullptr, bias ? &b : nullptr}, {&out},
         [x = data_ref(x), m = data_ref(m), v = data_ref(v), w = data_ref(w), b = data_ref(b), out = data_ref(out), has_w, has_b, rows, C, eps, dt](Backend& be) {
           be.batch_norm((const float*)x.data(), (const float*)m.data(), (const float*)v.data(),
                         has_w ? (const float*)w.data() : nullptr,
                         has_b ? (const float*)b.data() : nullptr, (float*)out.data(), rows, C, eps, dt);
         });
  return out;
}

}  // namespace perceiver
