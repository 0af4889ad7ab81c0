// Per-environment state of the addon (it is context-aware: one instance per
// main thread or worker) and helpers shared by the binding files.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../native/op_util.h"
#include "../native/ops.h"
#include "../native/queue.h"

namespace pio {

using perceiver::Tensor;

// Delivered from the queue thread to the JS thread when a read has completed.
struct ReadDone {
  uint64_t id;
};

class Addon;
void CallJsReadDone(Napi::Env env, Napi::Function, Addon* addon, ReadDone* done);
using ReadTsfn = Napi::TypedThreadSafeFunction<Addon, ReadDone, CallJsReadDone>;

// Lets the queue thread post completions only while the environment is alive.
struct ReadChannel {
  std::mutex mu;
  bool open = true;
  ReadTsfn tsfn;
  void post(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    if (open) tsfn.NonBlockingCall(new ReadDone{id});
  }
};

// Host memory a read copies into; owned until it becomes an ArrayBuffer.
struct HostBuffer {
  void* data = nullptr;
  size_t bytes = 0;
  HostBuffer() = default;
  explicit HostBuffer(size_t n);
  HostBuffer(HostBuffer&& o) noexcept : data(o.data), bytes(o.bytes) { o.data = nullptr; o.bytes = 0; }
  HostBuffer& operator=(HostBuffer&& o) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  ~HostBuffer();
  // Hands the memory to a JS ArrayBuffer (freed to the allocator's cache when it
  // is collected); copies instead where the runtime forbids external buffers.
  Napi::ArrayBuffer release_to_js(Napi::Env env);
};

struct PendingRead {
  Napi::Promise::Deferred deferred;
  HostBuffer buffer;
  Tensor tensor;     // keeps the source alive until the JS side has the result
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);
  ~Addon();

  Napi::FunctionReference tensor_ctor;
  // The argument that lets wrap() construct a TensorHandle: JS never sees it, so
  // `new TensorHandle()` from JS is refused. Made once, not per op.
  Napi::Reference<Napi::External<void>> tensor_key;
  std::shared_ptr<ReadChannel> channel;
  std::unordered_map<uint64_t, PendingRead> reads;
  uint64_t next_read = 1;
  int64_t pending_reads = 0;

  Napi::Object wrap(Napi::Env env, Tensor t);
};

// Runs fn and turns an engine error into the matching JS error (TypeError,
// RangeError, Error), so no C++ exception ever reaches Node.
Napi::Value guarded(const Napi::CallbackInfo& info, const std::function<Napi::Value()>& fn);

// Argument helpers: each throws perceiver::Error with "op: argument 'name' ...".
const Tensor& tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
const Tensor* optional_tensor_arg(const Napi::CallbackInfo& info, size_t i, const char* op,
                                  const char* name);
double number_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name);
perceiver::Shape shape_arg(const Napi::CallbackInfo& info, size_t i, const char* op,
                           const char* name);
perceiver::DType dtype_arg(const Napi::CallbackInfo& info, size_t i, const char* op,
                           const char* name);
perceiver::Device device_arg(const Napi::CallbackInfo& info, size_t i, const char* op,
                             const char* name);

void register_tensor(Napi::Env env, Napi::Object exports, Addon* addon);
void register_ops(Napi::Env env, Napi::Object exports);

}  // namespace pio
