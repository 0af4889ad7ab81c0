// Gradient ops for training: validation on the JS thread, then the backend's training
// kernel on the queue. Only backends with training kernels run them (the CPU and
// CUDA); on others they are refused and lib/autograd composes the gradient from
// forward ops. 16-bit tensors compute in their dtype on CUDA (float32 accumulation)
// and through float32 copies on the CPU, as the forward ops do.
#include "backend.h"
#include "error.h"
#include "op_util.h"
#include "ops.h"

namespace perceiver {

namespace {

void require_kernels(const char* op, const Tensor& t) {
  if (!backend_for(t.device())->has_backward_kernels())
    throw_value(std::string(op) + ": no training kernel on " + t.device().str() + " (compose the gradient from forward ops there)");
}

}  // namespace

std::vector<Tensor> layer_norm_backward(const Tensor& x_in, const Tensor* weight, const Tensor& g_in, float eps,
                                        bool need_weight, bool need_bias, const LayerNormGradAddends& add) {
  const char* op = "layer_norm_backward";
  check_float(op, "x", x_in);
  check_float(op, "g", g_in);
  check_min_ndim(op, "x", x_in, 1);
  check_shape(op, "g", g_in, x_in.shape);
  int64_t n = x_in.shape.back();
  Tensor w;
  if (weight) {
    check_float(op, "weight", *weight);
    check_shape(op, "weight", *weight, {n});
    w = contiguous(*weight);
  }
  const std::initializer_list<std::pair<const char*, const Tensor*>> operands = {
      {"x", &x_in}, {"g", &g_in}, {"weight", weight}, {"gx_addend", add.gx}, {"gw_addend", add.gw}, {"gb_addend", add.gb}};
  check_same_dtype(op, operands);
  check_same_device(op, operands);
  if (add.gx) check_shape(op, "gx_addend", *add.gx, x_in.shape);
  if (add.gw) check_shape(op, "gw_addend", *add.gw, {n});
  if (add.gb) check_shape(op, "gb_addend", *add.gb, {n});
  if (add.gw && !need_weight) throw_value(std::string(op) + ": argument 'gw_addend' needs the weight's gradient");
  if (add.gb && !need_bias) throw_value(std::string(op) + ": argument 'gb_addend' needs the bias's gradient");
  if (!(eps >= 0)) throw_range(std::string(op) + ": argument 'eps' must be >= 0, got " + show_number(eps));
  require_kernels(op, x_in);
  const DType dt = x_in.dtype;
  if (cpu_16bit(x_in)) {
    auto wide = [](const Tensor* t) { return t ? cast(*t, DType::Float32) : Tensor(); };
    Tensor w32 = wide(weight), gx32 = wide(add.gx), gw32 = wide(add.gw), gb32 = wide(add.gb);
    LayerNormGradAddends add32{add.gx ? &gx32 : nullptr, add.gw ? &gw32 : nullptr, add.gb ? &gb32 : nullptr};
    auto r = layer_norm_backward(cast(x_in, DType::Float32), weight ? &w32 : nullptr, cast(g_in, DType::Float32), eps,
                                 need_weight, need_bias, add32);
    for (Tensor& t : r)
      if (t.storage) t = cast(t, dt);
    return r;
  }
  Tensor x = contiguous(x_in), g = contiguous(g_in);
  int64_t rows = n ? x.numel() / n : 0;
  if (rows == 0 || n == 0) {  // nothing to differentiate: the addends as they are
    auto sum_or = [&](const Tensor* a, const Shape& s) { return a ? binary(BinaryOp::Add, *a, full(s, 0.0, dt, x.device())) : full(s, 0.0, dt, x.device()); };
    std::vector<Tensor> out{sum_or(add.gx, x.shape)};
    out.push_back(need_weight ? sum_or(add.gw, {n}) : Tensor());
    out.push_back(need_bias ? sum_or(add.gb, {n}) : Tensor());
    return out;
  }
  Tensor gx = empty(x.shape, dt, x.device(), op);
  Tensor gw = need_weight ? empty({n}, dt, x.device(), op) : Tensor();
  Tensor gb = need_bias ? empty({n}, dt, x.device(), op) : Tensor();
  Tensor agx = add.gx ? contiguous(*add.gx) : Tensor(), agw = add.gw ? contiguous(*add.gw) : Tensor(),
         agb = add.gb ? contiguous(*add.gb) : Tensor();
  bool has_w = (bool)weight;
  launch(op, x.device(), {&x, &g, has_w ? &w : nullptr, add.gx ? &agx : nullptr, add.gw ? &agw : nullptr, add.gb ? &agb : nullptr},
         {&gx, need_weight ? &gw : nullptr, need_bias ? &gb : nullptr},
         [x = data_ref(x), g = data_ref(g), w = data_ref(w), gx = data_ref(gx), gw = data_ref(gw), gb = data_ref(gb),
          agx = data_ref(agx), agw = data_ref(agw), agb = data_ref(agb), has_w, need_weight, need_bias, rows, n, eps, dt,
          has_agx = add.gx != nullptr, has_agw = add.gw != nullptr, has_agb = add.gb != nullptr](Backend& b) {
           GradAddends a;
           a.gx = has_agx ? agx.data() : nullptr;
           a.gw = has_agw ? agw.data() : nullptr;
           a.gb = has_agb ? agb.data() : nullptr;
           b.layer_norm_backward((const float*)x.data(), has_w ? (const float*)w.data() : nullptr, (const float*)g.data(),
                                 (float*)gx.data(), need_weight ? (float*)gw.data() : nullptr,
                                 need_bias ? (float*)gb.data() : nullptr, rows, n, eps, dt, a);
         });
  return {gx, gw, gb};
}

Tensor gelu_backward(const Tensor& x_in, const Tensor& g_in, bool tanh_form) {
  check_float("gelu_backward", "x", x_in);
  check_float("gelu_backward", "g", g_in);
  check_shape("gelu_backward", "g", g_in, x_in.shape);
  check_same_dtype("gelu_backward", {{"x", &x_in}, {"g", &g_in}});
  check_same_device("gelu_backward", {{"x", &x_in}, {"g", &g_in}});
  require_kernels("gelu_backward", x_in);
  if (cpu_16bit(x_in))
    return cast(gelu_backward(cast(x_in, DType::Float32), cast(g_in, DType::Float32), tanh_form), x_in.dtype);
  const DType dt = x_in.dtype;
  Tensor x = contiguous(x_in), g = contiguous(g_in);
  Tensor gx = empty(x.shape, dt, x.device(), "gelu_backward");
  int64_t n = x.numel();
  if (n == 0) return gx;
  launch("gelu_backward", x.device(), {&x, &g}, {&gx}, [x = data_ref(x), g = data_ref(g), gx = data_ref(gx), n, tanh_form, dt](Backend& b) {
    b.gelu_backward((const float*)x.data(), (const float*)g.data(), (float*)gx.data(), n, tanh_form, dt);
  });
  return gx;
}

Tensor softmax_backward(const Tensor& y_in, const Tensor& g_in, DType out_dtype) {
  const char* op = "softmax_backward";
  check_float(op, "y", y_in);
  check_float(op, "g", g_in);
  check_min_ndim(op, "y", y_in, 1);
  check_shape(op, "g", g_in, y_in.shape);
  check_same_dtype(op, {{"y", &y_in}, {"g", &g_in}});
  check_same_device(op, {{"y", &y_in}, {"g", &g_in}});
  if (out_dtype != DType::Float32 && out_dtype != DType::Float16 && out_dtype != DType::BFloat16)
    throw_type(std::string(op) + ": argument 'dtype' must be a float dtype, got " + dtype_name(out_dtype));
  require_kernels(op, y_in);
  if (cpu_16bit(y_in)) return softmax_backward(cast(y_in, DType::Float32), cast(g_in, DType::Float32), out_dtype);
  if (y_in.device().type == DeviceType::CPU && out_dtype != DType::Float32)
    return cast(softmax_backward(y_in, g_in, DType::Float32), out_dtype);
  Tensor y = contiguous(y_in), g = contiguous(g_in);
  Tensor gx = empty(y.shape, out_dtype, y.device(), op);
  const int64_t n = y.shape.back();
  const int64_t rows = n ? y.numel() / n : 0;
  if (rows == 0 || n == 0) return gx;
  const DType in_dtype = y.dtype;
  launch(op, y.device(), {&y, &g}, {&gx}, [y = data_ref(y), g = data_ref(g), gx = data_ref(gx), rows, n, in_dtype, out_dtype](Backend& b) {
    b.softmax_backward(y.data(), g.data(), gx.data(), rows, n, in_dtype, out_dtype);
  });
  return gx;
}

Tensor max_pool2d_backward(const Tensor& x_in, const Tensor& g_in, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           const PadSpec& pad) {
  check_float("max_pool2d_backward", "x", x_in);
  check_float("max_pool2d_backward", "g", g_in);
  check_ndim("max_pool2d_backward", "x", x_in, 4);
  check_same_dtype("max_pool2d_backward", {{"x", &x_in}, {"g", &g_in}});
  check_same_device("max_pool2d_backward", {{"x", &x_in}, {"g", &g_in}});
  if (kh < 1 || kw < 1 || sh < 1 || sw < 1) throw_range("max_pool2d_backward: kernel and stride must be >= 1");
  check_pad("max_pool2d_backward", pad);
  int64_t B = x_in.shape[0], H = x_in.shape[1], W = x_in.shape[2], C = x_in.shape[3];
  // The forward op's geometry, to check g against.
  int64_t OH, OW, pt, pl;
  resolve_padding("max_pool2d_backward", "height", H, kh, sh, pad.mode, pad.top, pad.bottom, &OH, &pt);
  resolve_padding("max_pool2d_backward", "width", W, kw, sw, pad.mode, pad.left, pad.right, &OW, &pl);
  check_shape("max_pool2d_backward", "g", g_in, {B, OH, OW, C});
  require_kernels("max_pool2d_backward", x_in);
  if (cpu_16bit(x_in))
    return cast(max_pool2d_backward(cast(x_in, DType::Float32), cast(g_in, DType::Float32), kh, kw, sh, sw, pad), x_in.dtype);
  Pool2dArgs a;
  a.batch = B; a.h = H; a.w = W; a.c = C; a.kh = kh; a.kw = kw; a.oh = OH; a.ow = OW;
  a.stride_h = sh; a.stride_w = sw; a.pad_top = pt; a.pad_left = pl;
  a.dtype = x_in.dtype;
  Tensor x = contiguous(x_in), g = contiguous(g_in);
  Tensor gx = empty(x.shape, x.dtype, x.device(), "max_pool2d_backward");
  if (x.numel() == 0) return gx;
  launch("max_pool2d_backward", x.device(), {&x, &g}, {&gx}, [a, x = data_ref(x), g = data_ref(g), gx = data_ref(gx)](Backend& b) mutable {
    a.x = (const float*)x.data();
    b.max_pool2d_backward(a, (const float*)g.data(), (float*)gx.data());
  });
  return gx;
}

}  // namespace perceiver
