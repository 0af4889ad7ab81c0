// Argument extraction and error translation.
#include <cmath>

#include "addon.h"
#include "tensor_handle.h"

namespace pio {
using namespace perceiver;

static std::string js_type(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return "boolean";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsArray()) return "array";
  if (v.IsFunction()) return "function";
  return "object";
}

Napi::Value guarded(const Napi::CallbackInfo& info, const std::function<Napi::Value()>& fn) {
  Napi::Env env = info.Env();
  // Throwing into JS can itself fail: in a worker being terminated every N-API call
  // does, and a C++ exception escaping here would abort the whole process. Then the
  // call just returns; the environment is going away.
  auto raise = [&](auto&& make) {
    try {
      make().ThrowAsJavaScriptException();
    } catch (...) {
    }
  };
  try {
    return fn();
  } catch (const Napi::Error& e) {
    try {
      e.ThrowAsJavaScriptException();
    } catch (...) {
    }
  } catch (const Error& e) {
    switch (e.kind) {
      case ErrorKind::Type: raise([&] { return Napi::TypeError::New(env, e.what()); }); break;
      case ErrorKind::Range: raise([&] { return Napi::RangeError::New(env, e.what()); }); break;
      default: raise([&] { return Napi::Error::New(env, e.what()); }); break;
    }
  } catch (const std::bad_alloc&) {
    raise([&] { return Napi::Error::New(env, "out of memory"); });
  } catch (const std::exception& e) {
    raise([&] { return Napi::Error::New(env, e.what()); });
  }
  return env.Undefined();
}

const Tensor& tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op,
                         const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw_type(arg_prefix(op, name) + " must be a Tensor, got " + js_type(v));
  const Tensor* t = tensor_of(v);
  if (!t) throw_value(arg_prefix(op, name) + " is a disposed Tensor");
  return *t;
}

const Tensor* optional_tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op,
                                  const char* name) {
  Napi::Value v = info[i];
  if (v.IsUndefined() || v.IsNull()) return nullptr;
  return &tensor_arg(info, i, op, name);
}

double number_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw_type(arg_prefix(op, name) + " must be a number, got " + js_type(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  double d = number_arg(info, i, op, name);
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0)
    throw_type(arg_prefix(op, name) + " must be an integer, got " + show_number(d));
  return (int64_t)d;
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) throw_type(arg_prefix(op, name) + " must be a boolean, got " + js_type(v));
  return v.As<Napi::Boolean>().Value();
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsString()) throw_type(arg_prefix(op, name) + " must be a string, got " + js_type(v));
  return v.As<Napi::String>().Utf8Value();
}

Shape shape_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsArray()) throw_type(arg_prefix(op, name) + " must be an array of integers, got " + js_type(v));
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > (uint32_t)kMaxDims)
    throw_range(arg_prefix(op, name) + " has " + std::to_string(a.Length()) +
                " dimensions; at most " + std::to_string(kMaxDims) + " are supported");
  Shape s;
  for (uint32_t j = 0; j < a.Length(); j++) {
    Napi::Value e = a.Get(j);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0)
      throw_type(arg_prefix(op, name) + " must be an array of integers, element " +
                 std::to_string(j) + " is " + (e.IsNumber() ? show_number(d) : js_type(e)));
    s.push_back((int64_t)d);
  }
  return s;
}

DType dtype_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  std::string s = string_arg(info, i, op, name);
  DType t;
  if (!dtype_from_name(s, &t))
    throw_type(arg_prefix(op, name) +
               " must be one of 'float32', 'float16', 'bfloat16', 'int32', 'uint8', got '" + s + "'");
  return t;
}

Device device_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  std::string s = string_arg(info, i, op, name);
  Device d;
  if (s == "cpu") return d;
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    d.type = DeviceType::CUDA;
    if (s.size() >= 5) {  // "cuda:" with no index is refused, not taken as cuda:0
      std::string idx = s.substr(5);
      if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos || idx.size() > 4)
        throw_type(arg_prefix(op, name) + " must be 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
      d.index = std::stoi(idx);
    }
    backend_for(d);  // throws with the reason when CUDA is not available
    return d;
  }
  throw_type(arg_prefix(op, name) + " must be 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
}

}  // namespace pio
