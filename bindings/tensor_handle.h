// The JS object that owns one reference to a native Tensor. dispose() drops it at
// once; the finalizer is only the safety net for handles nobody disposed.
#pragma once
#include <napi.h>

#include <atomic>
#include <optional>

#include "addon.h"
#include "../native/small_pool.h"

namespace pio {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function define(Napi::Env env);
  TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle();
  // One per op result, freed in bursts by garbage collection: pooled.
  static void* operator new(size_t bytes) { return perceiver::small_alloc(bytes); }
  static void operator delete(void* p, size_t bytes) { perceiver::small_free(p, bytes); }

  // nullptr when v is not a TensorHandle.
  static TensorHandle* unwrap(const Napi::Value& v);
  const Tensor* tensor() const { return tensor_ ? &*tensor_ : nullptr; }
  void set(Tensor t);
  static int64_t live(perceiver::DeviceType t);

 private:
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value strides(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value is_contiguous(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value read(const Napi::CallbackInfo& info);
  Napi::Value read_sync(const Napi::CallbackInfo& info);
  const Tensor& alive(const char* op);
  void release();

  std::optional<Tensor> tensor_;
};

}  // namespace pio
