// Op entry points: unwrap and check JS arguments, call the engine, wrap the result.
// Option defaults live in TypeScript (lib/); here every argument is required and
// checked, so a direct call with bad values still gets a clear error.
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "tensor_handle.h"
#include "../native/cuda/api.h"
#include "../native/profiler.h"
#include "../native/threadpool.h"

namespace pio {
using namespace perceiver;

namespace {

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);

Napi::Value ret(const Napi::CallbackInfo& info, Tensor t) {
  return info.Env().GetInstanceData<Addon>()->wrap(info.Env(), std::move(t));
}

void need_args(const Napi::CallbackInfo& info, size_t n, const char* op) {
  if (info.Length() < n)
    throw_type(std::string(op) + ": expected " + std::to_string(n) + " arguments, got " +
               std::to_string(info.Length()));
}

Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 4, "tensor");
    Shape shape = shape_arg(info, 1, "tensor", "shape");  // may run JS: before taking the data pointer
    DType dtype = dtype_arg(info, 2, "tensor", "dtype");
    Device dev = device_arg(info, 3, "tensor", "device");
    Napi::Value v = info[0];
    const void* data;
    size_t bytes;
    if (v.IsTypedArray()) {
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      data = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      bytes = ta.ByteLength();
    } else if (v.IsArrayBuffer()) {
      Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
      data = ab.Data();
      bytes = ab.ByteLength();
    } else {
      throw_type("tensor: argument 'data' must be a TypedArray or ArrayBuffer");
    }
    return ret(info, from_host(data, bytes, shape, dtype, dev));
  });
}

Napi::Value Full(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 4, "full");
    Shape shape = shape_arg(info, 0, "full", "shape");
    double value = number_arg(info, 1, "full", "value");
    return ret(info, full(shape, value, dtype_arg(info, 2, "full", "dtype"),
                          device_arg(info, 3, "full", "device")));
  });
}

// Storage no kernel has written (allocated on first use): placeholders for
// parameters that a checkpoint is about to replace (lib/nn/init.ts).
Napi::Value Empty(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 3, "empty");
    Shape shape = shape_arg(info, 0, "empty", "shape");
    return ret(info, empty(shape, dtype_arg(info, 1, "empty", "dtype"), device_arg(info, 2, "empty", "device"), "empty"));
  });
}

Napi::Value Arange(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 5, "arange");
    double start = number_arg(info, 0, "arange", "start");
    double step = number_arg(info, 1, "arange", "step");
    int64_t n = int_arg(info, 2, "arange", "length");
    return ret(info, arange(start, step, n, dtype_arg(info, 3, "arange", "dtype"),
                            device_arg(info, 4, "arange", "device")));
  });
}

Napi::Value Random(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 6, "random");
    std::string kind = string_arg(info, 0, "random", "kind");
    Shape shape = shape_arg(info, 1, "random", "shape");
    double seed = number_arg(info, 2, "random", "seed");
    if (!(seed >= 0 && seed <= 9007199254740991.0) || seed != (double)(uint64_t)seed)
      throw_type("random: argument 'seed' must be a non-negative integer, got " + std::to_string(seed));
    float p1 = (float)number_arg(info, 3, "random", "p1");
    float p2 = (float)number_arg(info, 4, "random", "p2");
    Device dev = device_arg(info, 5, "random", "device");
    if (kind == "normal") return ret(info, random_normal(shape, (uint64_t)seed, p1, p2, dev));
    if (kind == "uniform") return ret(info, random_uniform(shape, (uint64_t)seed, p1, p2, dev));
    throw_type("random: argument 'kind' must be 'normal' or 'uniform', got '" + kind + "'");
  });
}

Napi::Value Contiguous(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return ret(info, contiguous(tensor_arg(info, 0, "contiguous", "x"))); });
}

// A second handle on the same tensor (storage, shape and strides), with its metadata
// written as an op's result's is: what the autograd tape keeps of a saved tensor.
Napi::Value HandleClone(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return ret(info, tensor_arg(info, 0, "handleClone", "x")); });
}

// The count of in-place writes issued into x's storage (Storage::version).
Napi::Value HandleVersion(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), (double)tensor_arg(info, 0, "handleVersion", "x").storage->version());
  });
}

// An identity of x's storage (its address; unique among live storages): lets the
// autograd tape tell when two gradients, or a gradient and the caller's seed, share memory.
Napi::Value HandleStorageId(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), (double)(uintptr_t)tensor_arg(info, 0, "handleStorageId", "x").storage.get());
  });
}

// What the engine knows bounds x's int32 values: [lo, hi], or null. Diagnostics
// (tests): bounds learnt by a queued copy exist once that copy has run.
Napi::Value Int32Bounds(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& x = tensor_arg(info, 0, "int32Bounds", "x");
    int32_t lo, hi;
    if (!x.storage->int32_bounds(&lo, &hi)) return info.Env().Null();
    Napi::Array r = Napi::Array::New(info.Env(), 2);
    r.Set(0u, Napi::Number::New(info.Env(), lo));
    r.Set(1u, Napi::Number::New(info.Env(), hi));
    return r;
  });
}

Napi::Value Assign(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    assign(tensor_arg(info, 0, "assign", "dst"), tensor_arg(info, 1, "assign", "src"));
    return info.Env().Undefined();
  });
}

Napi::Value Reshape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Shape s = shape_arg(info, 1, "reshape", "shape");  // may run JS (array getters): before taking x
    return ret(info, reshape(tensor_arg(info, 0, "reshape", "x"), s));
  });
}

Napi::Value Permute(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Shape s = shape_arg(info, 1, "permute", "axes");  // may run JS (array getters): before taking x
    return ret(info, permute(tensor_arg(info, 0, "permute", "x"), s));
  });
}

Napi::Value Slice(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 5, "slice");
    const Tensor& x = tensor_arg(info, 0, "slice", "x");
    return ret(info, slice(x, int_arg(info, 1, "slice", "axis"), int_arg(info, 2, "slice", "start"),
                           int_arg(info, 3, "slice", "end"), int_arg(info, 4, "slice", "step")));
  });
}

Napi::Value BroadcastTo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Shape s = shape_arg(info, 1, "broadcastTo", "shape");  // may run JS (array getters): before taking x
    return ret(info, broadcast_to(tensor_arg(info, 0, "broadcastTo", "x"), s));
  });
}

Napi::Value Concat(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 2, "concat");
    if (!info[0].IsArray()) throw_type("concat: argument 'tensors' must be an array of Tensors");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<Tensor> xs;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      const Tensor* t = tensor_of(v);
      if (!t) {
        std::string name = "tensors[" + std::to_string(i) + "]";
        if (!v.IsNumber()) throw_type("concat: argument '" + name + "' must be a Tensor");
        throw_value("concat: argument '" + name + "' is a disposed Tensor");
      }
      xs.push_back(*t);
    }
    return ret(info, concat(xs, int_arg(info, 1, "concat", "axis")));
  });
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& x = tensor_arg(info, 0, "cast", "x");
    return ret(info, cast(x, dtype_arg(info, 1, "cast", "dtype")));
  });
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 4, "unary");
    static const char* names[] = {"neg",  "exp",  "log",      "sin",       "cos",
                                  "sqrt", "rsqrt", "tanh",    "relu",      "gelu",
                                  "gelu_tanh", "sigmoid", "abs", "square", "scale"};
    std::string op = string_arg(info, 0, "unary", "op");
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
      if (op != names[i]) continue;
      const Tensor& x = tensor_arg(info, 1, names[i], "x");
      float alpha = (float)number_arg(info, 2, names[i], "alpha");
      float beta = (float)number_arg(info, 3, names[i], "beta");
      return ret(info, unary((UnaryOp)i, x, alpha, beta));
    }
    throw_type("unary: unknown op '" + op + "'");
  });
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 3, "binary");
    static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow",
                                  "eq",  "ne",  "lt",  "le",  "gt",      "ge"};
    std::string op = string_arg(info, 0, "binary", "op");
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
      if (op != names[i]) continue;
      const Tensor& a = tensor_arg(info, 1, names[i], "a");
      const Tensor& b = tensor_arg(info, 2, names[i], "b");
      return ret(info, binary((BinaryOp)i, a, b));
    }
    throw_type("binary: unknown op '" + op + "'");
  });
}

Napi::Value Where(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 3, "where");
    return ret(info, where(tensor_arg(info, 0, "where", "cond"), tensor_arg(info, 1, "where", "a"),
                           tensor_arg(info, 2, "where", "b")));
  });
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 4, "reduce");
    static const char* names[] = {"sum", "mean", "max", "min", "argmax"};
    std::string op = string_arg(info, 0, "reduce", "op");
    for (int i = 0; i < 5; i++) {
      if (op != names[i]) continue;
      const Tensor& x = tensor_arg(info, 1, names[i], "x");
      const Tensor* addend = info.Length() > 4 ? optional_tensor_arg(info, 4, names[i], "addend") : nullptr;
      return ret(info, reduce((ReduceOp)i, x, int_arg(info, 2, names[i], "axis"),
                              bool_arg(info, 3, names[i], "keepdim"), addend));
    }
    throw_type("reduce: unknown op '" + op + "'");
  });
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 2, "softmax");
    bool log = bool_arg(info, 1, "softmax", "log");
    return ret(info, softmax(tensor_arg(info, 0, log ? "log_softmax" : "softmax", "x"), log));
  });
}

Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 4, "layer_norm");
    const Tensor& x = tensor_arg(info, 0, "layer_norm", "x");
    const Tensor* w = optional_tensor_arg(info, 1, "layer_norm", "weight");
    const Tensor* b = optional_tensor_arg(info, 2, "layer_norm", "bias");
    return ret(info, layer_norm(x, w, b, (float)number_arg(info, 3, "layer_norm", "eps")));
  });
}

Activation activation_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  std::string s = string_arg(info, i, op, "activation");
  if (s == "none") return Activation::None;
  if (s == "relu") return Activation::Relu;
  if (s == "gelu") return Activation::Gelu;
  if (s == "gelu_tanh") return Activation::GeluTanh;
  throw_type(arg_prefix(op, "activation") + " must be 'none', 'relu', 'gelu' or 'gelu_tanh', got '" + s + "'");
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 7, "matmul");
    const Tensor& a = tensor_arg(info, 0, "matmul", "a");
    const Tensor& b = tensor_arg(info, 1, "matmul", "b");
    bool ta = bool_arg(info, 2, "matmul", "transA");
    bool tb = bool_arg(info, 3, "matmul", "transB");
    const Tensor* bias = optional_tensor_arg(info, 4, "matmul", "bias");
    Activation act = activation_arg(info, 5, "matmul");
    float alpha = (float)number_arg(info, 6, "matmul", "alpha");
    bool out_float32 = info.Length() > 7 && bool_arg(info, 7, "matmul", "outFloat32");
    const Tensor* addend = info.Length() > 8 ? optional_tensor_arg(info, 8, "matmul", "addend") : nullptr;
    return ret(info, matmul(a, b, ta, tb, bias, act, alpha, out_float32, addend));
  });
}

// Optional (dropoutP, seed) at arguments i and i + 1: attention's dropout.
AttentionDropout dropout_args(const Napi::CallbackInfo& info, size_t i, const char* op) {
  AttentionDropout d;
  if (info.Length() <= i || info[i].IsUndefined()) return d;
  d.p = number_arg(info, i, op, "dropoutP");
  const double seed = number_arg(info, i + 1, op, "seed");
  if (!(seed >= 0 && seed <= 9007199254740991.0) || seed != (double)(uint64_t)seed)
    throw_type(std::string(op) + ": argument 'seed' must be a non-negative integer, got " + std::to_string(seed));
  d.seed = (uint64_t)seed;
  return d;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 5, "attention");
    const Tensor& q = tensor_arg(info, 0, "attention", "q");
    const Tensor& k = tensor_arg(info, 1, "attention", "k");
    const Tensor& v = tensor_arg(info, 2, "attention", "v");
    const Tensor* mask = optional_tensor_arg(info, 3, "attention", "mask");
    float scale = (float)number_arg(info, 4, "attention", "scale");
    AttentionDropout dropout = dropout_args(info, 6, "attention");
    if (info.Length() < 6 || info[5].IsUndefined() || !bool_arg(info, 5, "attention", "withLse"))
      return ret(info, attention(q, k, v, mask, scale, nullptr, dropout));
    // [out, lse | null]: the row statistics the fused gradient reuses.
    Tensor lse;
    Tensor out = attention(q, k, v, mask, scale, &lse, dropout);
    Napi::Array arr = Napi::Array::New(info.Env(), 2);
    arr.Set(0u, ret(info, out));
    arr.Set(1u, lse.storage ? ret(info, lse) : info.Env().Null());
    return arr;
  });
}

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 2, "embedding");
    return ret(info, embedding(tensor_arg(info, 0, "embedding", "weight"),
                               tensor_arg(info, 1, "embedding", "ids")));
  });
}

Napi::Value OneHot(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 5, "one_hot");
    const Tensor& ids = tensor_arg(info, 0, "one_hot", "ids");
    return ret(info, one_hot(ids, int_arg(info, 1, "one_hot", "depth"),
                             number_arg(info, 2, "one_hot", "on"), number_arg(info, 3, "one_hot", "off"),
                             dtype_arg(info, 4, "one_hot", "dtype")));
  });
}

PadSpec pad_arg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  Napi::Value v = info[i];
  PadSpec p;
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s == "same" || s == "SAME") { p.mode = Padding::Same; return p; }
    if (s == "valid" || s == "VALID") { p.mode = Padding::Valid; return p; }
    throw_type(arg_prefix(op, "padding") + " must be 'same', 'valid' or [top, bottom, left, right], got '" + s + "'");
  }
  Shape s = shape_arg(info, i, op, "padding");
  if (s.size() != 4)
    throw_type(arg_prefix(op, "padding") + " must be 'same', 'valid' or [top, bottom, left, right], got " + shape_str(s));
  p.mode = Padding::Explicit;
  p.top = s[0]; p.bottom = s[1]; p.left = s[2]; p.right = s[3];
  return p;
}

Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 6, "conv2d");
    const PadSpec pad = pad_arg(info, 5, "conv2d");  // may run JS (array getters): before taking the tensors
    const Tensor& x = tensor_arg(info, 0, "conv2d", "x");
    const Tensor& w = tensor_arg(info, 1, "conv2d", "weight");
    const Tensor* b = optional_tensor_arg(info, 2, "conv2d", "bias");
    return ret(info, conv2d(x, w, b, int_arg(info, 3, "conv2d", "strideH"), int_arg(info, 4, "conv2d", "strideW"), pad));
  });
}

Napi::Value MaxPool2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 6, "max_pool2d");
    const PadSpec pad = pad_arg(info, 5, "max_pool2d");  // may run JS (array getters): before taking x
    const Tensor& x = tensor_arg(info, 0, "max_pool2d", "x");
    return ret(info, max_pool2d(x, int_arg(info, 1, "max_pool2d", "kernelH"), int_arg(info, 2, "max_pool2d", "kernelW"),
                                int_arg(info, 3, "max_pool2d", "strideH"), int_arg(info, 4, "max_pool2d", "strideW"), pad));
  });
}

// layerNormBackward(x, weight | null, g, eps, needWeight, needBias[, gxAddend, gwAddend, gbAddend]) -> [gx, gw, gb]
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "layer_norm_backward";
    need_args(info, 6, op);
    const Tensor& x = tensor_arg(info, 0, op, "x");
    const Tensor* w = optional_tensor_arg(info, 1, op, "weight");
    const Tensor& g = tensor_arg(info, 2, op, "g");
    LayerNormGradAddends add;
    add.gx = info.Length() > 6 ? optional_tensor_arg(info, 6, op, "gx_addend") : nullptr;
    add.gw = info.Length() > 7 ? optional_tensor_arg(info, 7, op, "gw_addend") : nullptr;
    add.gb = info.Length() > 8 ? optional_tensor_arg(info, 8, op, "gb_addend") : nullptr;
    auto out = layer_norm_backward(x, w, g, (float)number_arg(info, 3, op, "eps"), bool_arg(info, 4, op, "needWeight"),
                                   bool_arg(info, 5, op, "needBias"), add);
    Napi::Array arr = Napi::Array::New(info.Env(), 3);
    for (uint32_t i = 0; i < 3; i++) arr.Set(i, out[i].storage ? ret(info, out[i]) : info.Env().Null());
    return arr;
  });
}

// attentionBackward(q, k, v, mask | null, out, g, lse | null, scale[, dropoutP, seed]) -> [gq, gk, gv]
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "attention_backward";
    need_args(info, 8, op);
    auto out = attention_backward(tensor_arg(info, 0, op, "q"), tensor_arg(info, 1, op, "k"), tensor_arg(info, 2, op, "v"),
                                  optional_tensor_arg(info, 3, op, "mask"), tensor_arg(info, 4, op, "out"),
                                  tensor_arg(info, 5, op, "g"), optional_tensor_arg(info, 6, op, "lse"),
                                  (float)number_arg(info, 7, op, "scale"), dropout_args(info, 8, op));
    Napi::Array arr = Napi::Array::New(info.Env(), 3);
    for (uint32_t i = 0; i < 3; i++) arr.Set(i, ret(info, out[i]));
    return arr;
  });
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 3, "gelu_backward");
    return ret(info, gelu_backward(tensor_arg(info, 0, "gelu_backward", "x"), tensor_arg(info, 1, "gelu_backward", "g"),
                                   bool_arg(info, 2, "gelu_backward", "tanh")));
  });
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "softmax_backward";
    need_args(info, 3, op);
    return ret(info, softmax_backward(tensor_arg(info, 0, op, "y"), tensor_arg(info, 1, op, "g"), dtype_arg(info, 2, op, "dtype")));
  });
}

Napi::Value MaxPool2dBackward(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "max_pool2d_backward";
    need_args(info, 7, op);
    const PadSpec pad = pad_arg(info, 6, op);  // may run JS (array getters): before taking the tensors
    return ret(info, max_pool2d_backward(tensor_arg(info, 0, op, "x"), tensor_arg(info, 1, op, "g"), int_arg(info, 2, op, "kernelH"),
                                         int_arg(info, 3, op, "kernelW"), int_arg(info, 4, op, "strideH"),
                                         int_arg(info, 5, op, "strideW"), pad));
  });
}

// has...(device): whether the device's backend has an optional kernel (lib/autograd
// asks once per device and falls back to composed ops where it has not).
template <bool (Backend::*Has)() const>
Napi::Value BackendHas(const Napi::CallbackInfo& info, const char* name) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 1, name);
    return Napi::Boolean::New(info.Env(), (backend_for(device_arg(info, 0, name, "device"))->*Has)());
  });
}
Napi::Value HasBackwardKernels(const Napi::CallbackInfo& info) {
  return BackendHas<&Backend::has_backward_kernels>(info, "hasBackwardKernels");
}
Napi::Value HasAttentionBackward(const Napi::CallbackInfo& info) {
  return BackendHas<&Backend::has_attention_backward>(info, "hasAttentionBackward");
}
// attentionBackwardFused(device, dtype, dqk, dv, dropout): Backend::fuses_attention_backward.
Napi::Value AttentionBackwardFused(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "attentionBackwardFused";
    need_args(info, 5, op);
    Backend* b = backend_for(device_arg(info, 0, op, "device"));
    const DType dt = dtype_arg(info, 1, op, "dtype");
    const int64_t dqk = int_arg(info, 2, op, "dqk"), dv = int_arg(info, 3, op, "dv");
    return Napi::Boolean::New(info.Env(), b->fuses_attention_backward(dt, dqk, dv, bool_arg(info, 4, op, "dropout")));
  });
}
Napi::Value HasAttentionDropout(const Napi::CallbackInfo& info) {
  return BackendHas<&Backend::has_attention_dropout>(info, "hasAttentionDropout");
}

// adamUpdate(param, grad, expAvg, expAvgSq, lr, beta1, beta2, eps, weightDecay, step, lamb)
Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 11, "adam_update");
    const char* op = bool_arg(info, 10, "adam_update", "lamb") ? "lamb_update" : "adam_update";
    AdamHyper h;
    h.lr = number_arg(info, 4, op, "lr");
    h.beta1 = number_arg(info, 5, op, "beta1");
    h.beta2 = number_arg(info, 6, op, "beta2");
    h.eps = number_arg(info, 7, op, "eps");
    h.weight_decay = number_arg(info, 8, op, "weightDecay");
    h.step = int_arg(info, 9, op, "step");
    adam_update(tensor_arg(info, 0, op, "param"), tensor_arg(info, 1, op, "grad"), tensor_arg(info, 2, op, "expAvg"),
                tensor_arg(info, 3, op, "expAvgSq"), h, std::strcmp(op, "lamb_update") == 0);
    return info.Env().Undefined();
  });
}

// sgdUpdate(param, grad, momentumBuffer | null, lr, momentum, weightDecay, nesterov)
Napi::Value SgdUpdate(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "sgd_update";
    need_args(info, 7, op);
    sgd_update(tensor_arg(info, 0, op, "param"), tensor_arg(info, 1, op, "grad"), optional_tensor_arg(info, 2, op, "momentumBuffer"),
               number_arg(info, 3, op, "lr"), number_arg(info, 4, op, "momentum"), number_arg(info, 5, op, "weightDecay"),
               bool_arg(info, 6, op, "nesterov"));
    return info.Env().Undefined();
  });
}

Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 6, "batch_norm");
    const Tensor& x = tensor_arg(info, 0, "batch_norm", "x");
    const Tensor& m = tensor_arg(info, 1, "batch_norm", "mean");
    const Tensor& v = tensor_arg(info, 2, "batch_norm", "var");
    const Tensor* w = optional_tensor_arg(info, 3, "batch_norm", "weight");
    const Tensor* b = optional_tensor_arg(info, 4, "batch_norm", "bias");
    return ret(info, batch_norm(x, m, v, w, b, (float)number_arg(info, 5, "batch_norm", "eps")));
  });
}

Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    need_args(info, 2, "to");
    const Tensor& x = tensor_arg(info, 0, "to", "x");
    return ret(info, to_device(x, device_arg(info, 1, "to", "device")));
  });
}

// The CUDA backend's state: whether the library loaded (and from where), and
// either the devices or the reason CUDA cannot be used. Loads the library on the
// first call.
Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const CudaStatus& st = cuda_status();
    Napi::Object r = Napi::Object::New(env);
    r.Set("library", st.library_loaded ? Napi::Value(Napi::String::New(env, st.library_path)) : env.Null());
    r.Set("deviceCount", Napi::Number::New(env, st.device_count));
    if (!st.reason.empty()) r.Set("reason", Napi::String::New(env, st.reason));
    Napi::Array devices = Napi::Array::New(env);
    for (int i = 0; i < st.device_count; i++) {
      CudaDeviceInfo d;
      std::string err;
      Napi::Object o = Napi::Object::New(env);
      o.Set("index", Napi::Number::New(env, i));
      if (!cuda_device_info(i, &d, &err)) {
        o.Set("error", Napi::String::New(env, err));
      } else {
        o.Set("name", Napi::String::New(env, d.name));
        o.Set("computeCapability", Napi::String::New(env, std::to_string(d.major) + "." + std::to_string(d.minor)));
        o.Set("multiprocessors", Napi::Number::New(env, d.multiprocessors));
        o.Set("totalMemory", Napi::Number::New(env, (double)d.total_bytes));
        o.Set("freeMemory", Napi::Number::New(env, (double)d.free_bytes));
        auto ver = [](int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); };
        o.Set("driverVersion", Napi::String::New(env, ver(d.driver_version)));
        o.Set("runtimeVersion", Napi::String::New(env, ver(d.runtime_version)));
        uint64_t cb = d.cublas_version;  // major * 10000 + minor * 100 + patch
        o.Set("cublasVersion", Napi::String::New(env, std::to_string(cb / 10000) + "." +
                                                          std::to_string((cb / 100) % 100) + "." +
                                                          std::to_string(cb % 100)));
        o.Set("cublasPath", Napi::String::New(env, d.cublas_path));
      }
      devices.Set((uint32_t)i, o);
    }
    r.Set("devices", devices);
    return r;
  });
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  for (DeviceType t : {DeviceType::CPU, DeviceType::CUDA}) {
    MemoryStats& s = memory_stats(t);
    Napi::Object d = Napi::Object::New(env);
    d.Set("tensors", Napi::Number::New(env, (double)HandleTable::live(t)));
    d.Set("storages", Napi::Number::New(env, (double)s.storages.load()));
    d.Set("bytes", Napi::Number::New(env, (double)s.bytes.load()));
    d.Set("peakBytes", Napi::Number::New(env, (double)s.peak_bytes.load()));
    AllocatorStats a;
    std::vector<Backend*> backends = t == DeviceType::CPU ? std::vector<Backend*>{cpu_backend()} : cuda_backends_in_use();
    for (Backend* b : backends) {
      // Summed over GPUs: each peak is its own device's, so the sum bounds the total's.
      AllocatorStats one = b->allocator_stats();
      a.allocated += one.allocated;
      a.peak_allocated += one.peak_allocated;
      a.reserved += one.reserved;
      a.peak_reserved += one.peak_reserved;
      a.cached += one.cached;
    }
    d.Set("allocatedBytes", Napi::Number::New(env, (double)a.allocated));
    d.Set("peakAllocatedBytes", Napi::Number::New(env, (double)a.peak_allocated));
    d.Set("reservedBytes", Napi::Number::New(env, (double)a.reserved));
    d.Set("peakReservedBytes", Napi::Number::New(env, (double)a.peak_reserved));
    d.Set("cachedBytes", Napi::Number::New(env, (double)a.cached));
    r.Set(t == DeviceType::CPU ? "cpu" : "cuda", d);
  }
  return r;
}

Napi::Value ResetPeakMemoryStats(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    synchronize_all();  // frees still queued would otherwise land after the reset
    for (DeviceType t : {DeviceType::CPU, DeviceType::CUDA}) {
      MemoryStats& s = memory_stats(t);
      s.peak_bytes.store(s.bytes.load());
    }
    cpu_backend()->reset_peak_stats();
    for (Backend* b : cuda_backends_in_use()) b->reset_peak_stats();
    return info.Env().Undefined();
  });
}

Napi::Value ProfilerStart(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw_type("profilerStart: argument 'shapes' must be a boolean");
    profile_start(info[0].As<Napi::Boolean>().Value(), info.Env().GetInstanceData<Addon>());
    return info.Env().Undefined();
  });
}

Napi::Value ProfilerScope(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw_type("profilerScope: argument 'scope' must be a string");
    profile_set_scope(info[0].As<Napi::String>().Utf8Value());
    return info.Env().Undefined();
  });
}

Napi::Value ProfilerStop(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    double wall = 0;
    std::vector<ProfileRow> rows = profile_stop(&wall);
    Napi::Array ops = Napi::Array::New(env, rows.size());
    for (size_t i = 0; i < rows.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", rows[i].op);
      o.Set("shape", rows[i].shape);
      o.Set("scope", rows[i].scope);
      o.Set("device", rows[i].device);
      o.Set("calls", Napi::Number::New(env, (double)rows[i].calls));
      o.Set("totalMs", Napi::Number::New(env, rows[i].total_ms));
      o.Set("maxMs", Napi::Number::New(env, rows[i].max_ms));
      ops.Set((uint32_t)i, o);
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("wallMs", Napi::Number::New(env, wall));
    r.Set("ops", ops);
    return r;
  });
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    // Queued kernels may still free blocks; drain first so the caches end empty.
    synchronize_all();
    cpu_backend()->empty_cache();
    for (Backend* b : cuda_backends_in_use()) b->empty_cache();
    return info.Env().Undefined();
  });
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    synchronize_all();
    return info.Env().Undefined();
  });
}

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("threads", Napi::Number::New(env, num_threads()));
  std::string isa = "generic";
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) isa = "avx512f";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = "avx2+fma";
#endif
  r.Set("simd", Napi::String::New(env, isa));
  return r;
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  struct { const char* name; Fn fn; } fns[] = {
      {"fromBuffer", FromBuffer}, {"full", Full}, {"empty", Empty},       {"arange", Arange},
      {"random", Random},         {"contiguous", Contiguous}, {"reshape", Reshape}, {"assign", Assign},
      {"permute", Permute},       {"slice", Slice},     {"broadcastTo", BroadcastTo},
      {"concat", Concat},         {"cast", Cast},       {"unary", Unary},
      {"binary", Binary},         {"where", Where},     {"reduce", Reduce},
      {"softmax", Softmax},       {"layerNorm", LayerNorm}, {"matmul", Matmul},
      {"attention", Attention},   {"embedding", Embedding}, {"oneHot", OneHot},
      {"conv2d", Conv2d},         {"maxPool2d", MaxPool2d}, {"batchNorm", BatchNorm}, {"layerNormBackward", LayerNormBackward}, {"geluBackward", GeluBackward}, {"softmaxBackward", SoftmaxBackward}, {"handleClone", HandleClone}, {"handleVersion", HandleVersion}, {"handleStorageId", HandleStorageId}, {"int32Bounds", Int32Bounds}, {"attentionBackward", AttentionBackward}, {"hasAttentionBackward", HasAttentionBackward}, {"attentionBackwardFused", AttentionBackwardFused}, {"hasAttentionDropout", HasAttentionDropout}, {"maxPool2dBackward", MaxPool2dBackward},
      {"hasBackwardKernels", HasBackwardKernels}, {"adamUpdate", AdamUpdate}, {"sgdUpdate", SgdUpdate},
      {"memory", Memory},         {"resetPeakMemoryStats", ResetPeakMemoryStats},
      {"profilerStart", ProfilerStart}, {"profilerScope", ProfilerScope}, {"profilerStop", ProfilerStop},
              {"synchronize", Synchronize}, {"emptyCache", EmptyCache}, {"cpuInfo", CpuInfo},
      {"to", ToDevice},           {"cudaInfo", CudaInfo},
  };
  for (auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace pio
