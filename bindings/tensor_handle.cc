#include "tensor_handle.h"

#include <cstring>

#include "../native/cpu/allocator.h"
#include "../native/queue.h"

namespace pio {
using namespace perceiver;

static std::atomic<int64_t> g_live[2];

Napi::Function TensorHandle::define(Napi::Env env) {
  return DefineClass(env, "TensorHandle",
                     {InstanceAccessor<&TensorHandle::shape>("shape"),
                      InstanceAccessor<&TensorHandle::strides>("strides"),
                      InstanceAccessor<&TensorHandle::dtype>("dtype"),
                      InstanceAccessor<&TensorHandle::device>("device"),
                      InstanceAccessor<&TensorHandle::is_contiguous>("isContiguous"),
                      InstanceAccessor<&TensorHandle::disposed>("disposed"),
                      InstanceMethod<&TensorHandle::dispose>("dispose"),
                      InstanceMethod<&TensorHandle::read>("read"),
                      InstanceMethod<&TensorHandle::read_sync>("readSync")});
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  // Created only by Addon::wrap, which passes an External marker; JS cannot make
  // an empty handle.
  Addon* addon = info.Env().GetInstanceData<Addon>();
  if (info.Length() != 1 || !addon || !info[0].StrictEquals(addon->tensor_key.Value()))
    Napi::TypeError::New(info.Env(), "TensorHandle cannot be constructed directly; use tensor()")
        .ThrowAsJavaScriptException();
}

TensorHandle::~TensorHandle() { release(); }

TensorHandle* TensorHandle::unwrap(const Napi::Value& v) {
  if (!v.IsObject()) return nullptr;
  Napi::Object o = v.As<Napi::Object>();
  Addon* addon = v.Env().GetInstanceData<Addon>();
  if (!addon || !o.InstanceOf(addon->tensor_ctor.Value())) return nullptr;
  return Napi::ObjectWrap<TensorHandle>::Unwrap(o);
}

void TensorHandle::set(Tensor t) {
  release();
  g_live[t.device().type == DeviceType::CPU ? 0 : 1]++;
  tensor_ = std::move(t);
}

void TensorHandle::release() {
  if (!tensor_) return;
  g_live[tensor_->device().type == DeviceType::CPU ? 0 : 1]--;
  tensor_.reset();
}

int64_t TensorHandle::live(DeviceType t) { return g_live[t == DeviceType::CPU ? 0 : 1].load(); }

const Tensor& TensorHandle::alive(const char* op) {
  if (!tensor_) throw_value(std::string(op) + ": the Tensor has been disposed");
  return *tensor_;
}

// V8 cannot back an ArrayBuffer larger than this (and would abort rather than throw).
static const size_t kMaxReadBytes = size_t(1) << 32;

static void check_readable(const char* op, const Tensor& t) {
  if (t.nbytes() > kMaxReadBytes)
    throw_range(std::string(op) + ": the tensor " + shape_str(t.shape) + " holds " +
                std::to_string(t.nbytes()) + " bytes, more than one ArrayBuffer can (" +
                std::to_string(kMaxReadBytes) + "); read it in slices");
}

// Read buffers come from the engine's host allocator rather than a fresh V8
// ArrayBuffer: large fresh allocations are zero pages whose first touch faults
// once per 4 KiB (13 ms for a 4 MiB read on the VMs measured), while the
// allocator hands back warm, huge-page blocks.
HostBuffer::HostBuffer(size_t n) : bytes(n) {
  if (n) data = cpu::host_alloc(n);
}

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
  if (this != &o) {
    if (data) cpu::host_free(data, bytes);
    data = o.data;
    bytes = o.bytes;
    o.data = nullptr;
    o.bytes = 0;
  }
  return *this;
}

HostBuffer::~HostBuffer() {
  if (data) cpu::host_free(data, bytes);
}

Napi::ArrayBuffer HostBuffer::release_to_js(Napi::Env env) {
  if (!data) return Napi::ArrayBuffer::New(env, 0);
  size_t* hint = new size_t(bytes);
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(
      env, data, bytes,
      [](napi_env, void* p, void* h) {
        size_t* n = static_cast<size_t*>(h);
        cpu::host_free(p, *n);
        delete n;
      },
      hint, &ab);
  if (st == napi_ok) {
    data = nullptr;
    bytes = 0;
    return Napi::ArrayBuffer(env, ab);
  }
  delete hint;
  Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, bytes);
  std::memcpy(copy.Data(), data, bytes);
  return copy;
}

static Napi::Array to_array(Napi::Env env, const Shape& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); i++) a.Set((uint32_t)i, Napi::Number::New(env, (double)s[i]));
  return a;
}

Napi::Value TensorHandle::shape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return to_array(info.Env(), alive("shape").shape); });
}
Napi::Value TensorHandle::strides(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return to_array(info.Env(), alive("strides").strides); });
}
Napi::Value TensorHandle::dtype(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), dtype_name(alive("dtype").dtype));
  });
}
Napi::Value TensorHandle::device(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), alive("device").device().str());
  });
}
Napi::Value TensorHandle::is_contiguous(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), alive("isContiguous").is_contiguous());
  });
}
Napi::Value TensorHandle::disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.has_value());
}
Napi::Value TensorHandle::dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

// read(): resolves with an ArrayBuffer holding the elements in logical (row-major)
// order. The host buffer is allocated here and filled by a task on the tensor's
// queue; a second task posts the completion back.
Napi::Value TensorHandle::read(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Tensor& t = alive("data");
    check_readable("data", t);
    Addon* addon = env.GetInstanceData<Addon>();
    uint64_t id = addon->next_read++;
    PendingRead pr{Napi::Promise::Deferred::New(env), HostBuffer(t.nbytes()), t};
    Napi::Promise promise = pr.deferred.Promise();
    read_to_host(t, pr.buffer.data);
    auto channel = addon->channel;
    queue_of(t).submit([channel, id] { channel->post(id); });
    addon->reads.emplace(id, std::move(pr));
    if (addon->pending_reads++ == 0) channel->tsfn.Ref(env);
    return promise;
  });
}

Napi::Value TensorHandle::read_sync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Tensor t = alive("dataSync");
    check_readable("dataSync", t);
    HostBuffer buf(t.nbytes());
    uint64_t ticket = read_to_host(t, buf.data);
    queue_of(t).wait(ticket);
    if (t.storage->failed()) throw Error(ErrorKind::Runtime, t.storage->error());
    return buf.release_to_js(env);
  });
}

void CallJsReadDone(Napi::Env env, Napi::Function, Addon* addon, ReadDone* done) {
  uint64_t id = done->id;
  delete done;
  if (!env || !addon) return;
  auto it = addon->reads.find(id);
  if (it == addon->reads.end()) return;
  PendingRead pr = std::move(it->second);
  addon->reads.erase(it);
  // This runs from the event loop, outside any JS call: a Napi::Error thrown here
  // (as resolving does while a Worker is being terminated) would reach
  // std::terminate, so it is swallowed — the promise's environment is going away.
  try {
    if (--addon->pending_reads == 0) addon->channel->tsfn.Unref(env);
    Napi::HandleScope scope(env);
    if (pr.tensor.storage->failed()) {
      pr.deferred.Reject(Napi::Error::New(env, pr.tensor.storage->error()).Value());
    } else {
      pr.deferred.Resolve(pr.buffer.release_to_js(env));
    }
  } catch (...) {
  }
}

}  // namespace pio
