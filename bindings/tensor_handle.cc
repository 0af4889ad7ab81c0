#include "tensor_handle.h"

#include <cmath>
#include <cstring>

#include "../native/cpu/allocator.h"
#include "../native/queue.h"

namespace pio {
using namespace perceiver;

static std::atomic<int64_t> g_live[2];

namespace {
// handle = generation * 2^24 + index: at most 16M live tensors per environment, and a
// generation that wraps after 2^28 reuses of one slot. Both fit a double exactly.
constexpr uint32_t kIndexBits = 24;
constexpr double kIndexSpan = double(1u << kIndexBits);
constexpr uint32_t kMaxGeneration = 1u << 28;
int device_slot(const Tensor& t) { return t.device().type == DeviceType::CPU ? 0 : 1; }
}  // namespace

double HandleTable::add(Tensor t) {
  // Whatever can throw (allocations) comes before anything is taken, so a failure
  // leaves the table as it was: a free slot first, then the storage's count.
  if (free_.empty()) {
    if (slots_.size() >= (size_t(1) << kIndexBits))
      throw Error(ErrorKind::Memory, "too many live tensors (16M); dispose tensors you no longer need");
    free_.reserve(free_.size() + 1);
    slots_.emplace_back();
    free_.push_back((uint32_t)(slots_.size() - 1));
  }
  if (storage_refs_.acquire(t.storage.get())) live_bytes_ += (int64_t)t.storage->bytes();
  const uint32_t index = free_.back();
  free_.pop_back();
  Slot& s = slots_[index];
  g_live[device_slot(t)]++;
  s.tensor = std::move(t);
  return double(s.generation) * kIndexSpan + double(index);
}

void HandleTable::turn(napi_env env) {
  const int64_t change = floor_bytes_ - reported_bytes_;
  floor_bytes_ = live_bytes_;
  if (!change) return;
  reported_bytes_ += change;
  int64_t total;
  napi_adjust_external_memory(env, change, &total);
}

bool HandleTable::decode(double h, uint32_t* index) const {
  if (!(h >= 0) || h != std::floor(h) || h >= double(kMaxGeneration) * kIndexSpan) return false;
  const double gen = std::floor(h / kIndexSpan);
  const double idx = h - gen * kIndexSpan;
  if (idx >= (double)slots_.size()) return false;
  const Slot& s = slots_[(size_t)idx];
  if (!s.tensor || (double)s.generation != gen) return false;
  *index = (uint32_t)idx;
  return true;
}

const Tensor* HandleTable::get(double h) const {
  uint32_t i;
  return decode(h, &i) ? &*slots_[i].tensor : nullptr;
}

bool HandleTable::release(double h) {
  uint32_t i;
  if (!decode(h, &i)) return false;
  Slot& s = slots_[i];
  g_live[device_slot(*s.tensor)]--;
  const perceiver::Storage* st = s.tensor->storage.get();
  if (storage_refs_.release(st)) {
    live_bytes_ -= (int64_t)st->bytes();
    if (live_bytes_ < floor_bytes_) floor_bytes_ = live_bytes_;
  }
  s.tensor.reset();
  s.generation = s.generation + 1 < kMaxGeneration ? s.generation + 1 : 1;
  free_.push_back(i);
  return true;
}

int64_t HandleTable::live(DeviceType t) { return g_live[t == DeviceType::CPU ? 0 : 1].load(); }

HandleTable::~HandleTable() {
  for (const Slot& s : slots_)
    if (s.tensor) g_live[device_slot(*s.tensor)]--;
}

const Tensor* tensor_of(const Napi::Value& v) {
  if (!v.IsNumber()) return nullptr;
  Addon* addon = v.Env().GetInstanceData<Addon>();
  return addon ? addon->handles.get(v.As<Napi::Number>().DoubleValue()) : nullptr;
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

namespace {

const Tensor& handle_arg(const Napi::CallbackInfo& info, const char* op) {
  if (info.Length() < 1 || !info[0].IsNumber())
    throw_type(std::string(op) + ": argument 'handle' must be a tensor handle (a number)");
  const Tensor* t = tensor_of(info[0]);
  if (!t) throw_value(std::string(op) + ": the Tensor has been disposed");
  return *t;
}

Napi::Array to_array(Napi::Env env, const Shape& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); i++) a.Set((uint32_t)i, Napi::Number::New(env, (double)s[i]));
  return a;
}

// Writes h's metadata into the shared buffer (see Addon::meta); returns nothing.
Napi::Value HandleMeta(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const Tensor& t = handle_arg(info, "meta");
    info.Env().GetInstanceData<Addon>()->write_meta(info[0].As<Napi::Number>().DoubleValue(), t);
    return info.Env().Undefined();
  });
}

// Registers the Float64Array the metadata of new handles is written to.
Napi::Value SetMetaBuffer(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[0].As<Napi::TypedArray>().ElementLength() < Addon::kMetaLength)
      throw_type("setMetaBuffer: argument 'buffer' must be a Float64Array of at least " +
                 std::to_string(Addon::kMetaLength) + " elements");
    Addon* addon = info.Env().GetInstanceData<Addon>();
    Napi::Float64Array a = info[0].As<Napi::Float64Array>();
    addon->meta_ref = Napi::Persistent(a);
    addon->meta = a.Data();
    return info.Env().Undefined();
  });
}

Napi::Value HandleStrides(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return to_array(info.Env(), handle_arg(info, "strides").strides); });
}

Napi::Value HandleIsContiguous(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), handle_arg(info, "isContiguous").is_contiguous());
  });
}

Napi::Value HandleReportedBytes(const Napi::CallbackInfo& info) {
  Addon* addon = info.Env().GetInstanceData<Addon>();
  return Napi::Number::New(info.Env(), addon ? (double)addon->handles.reported_bytes() : 0.0);
}

// Idempotent: disposing a disposed (or unknown) handle does nothing.
Napi::Value HandleDispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Addon* addon = env.GetInstanceData<Addon>();
  if (addon && info.Length() >= 1 && info[0].IsNumber()) addon->handles.release(info[0].As<Napi::Number>().DoubleValue());
  return env.Undefined();
}

// read(): resolves with an ArrayBuffer holding the elements in logical (row-major)
// order. The host buffer is allocated here and filled by a task on the tensor's
// queue; a second task posts the completion back.
Napi::Value HandleRead(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Tensor& t = handle_arg(info, "data");
    check_readable("data", t);
    Addon* addon = env.GetInstanceData<Addon>();
    uint64_t id = addon->next_read++;
    PendingRead pr{Napi::Promise::Deferred::New(env), HostBuffer(t.nbytes()), t, std::make_shared<ReadStatus>()};
    Napi::Promise promise = pr.deferred.Promise();
    read_to_host(t, pr.buffer.data, pr.status);
    auto channel = addon->channel;
    queue_of(t).submit([channel, id] { channel->post(id); });
    addon->reads.emplace(id, std::move(pr));
    if (addon->pending_reads++ == 0) channel->tsfn.Ref(env);
    return promise;
  });
}

Napi::Value HandleReadSync(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    Tensor t = handle_arg(info, "dataSync");
    check_readable("dataSync", t);
    HostBuffer buf(t.nbytes());
    auto status = std::make_shared<ReadStatus>();
    uint64_t ticket = read_to_host(t, buf.data, status);
    queue_of(t).wait(ticket);
    if (status->failed) throw Error(ErrorKind::Runtime, status->error);
    return buf.release_to_js(env);
  });
}

}  // namespace

void register_handles(Napi::Env env, Napi::Object exports) {
  struct { const char* name; Napi::Value (*fn)(const Napi::CallbackInfo&); } fns[] = {
      {"setMetaBuffer", SetMetaBuffer}, {"handleMeta", HandleMeta}, {"handleStrides", HandleStrides}, {"handleIsContiguous", HandleIsContiguous},
      {"handleDispose", HandleDispose}, {"handleRead", HandleRead}, {"handleReadSync", HandleReadSync},
      {"handleReportedBytes", HandleReportedBytes}};
  for (auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  Napi::Array names = Napi::Array::New(env);
  for (DType d : {DType::Float32, DType::Float16, DType::BFloat16, DType::Int32, DType::UInt8})
    names.Set((uint32_t)(int)d, Napi::String::New(env, dtype_name(d)));
  exports.Set("dtypeNames", names);
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
    const bool failed = pr.status ? pr.status->failed : pr.tensor.storage->failed();
    if (failed) {
      const std::string error = pr.status ? pr.status->error : pr.tensor.storage->error();
      pr.deferred.Reject(Napi::Error::New(env, error).Value());
    } else {
      pr.deferred.Resolve(pr.buffer.release_to_js(env));
    }
  } catch (...) {
  }
}

}  // namespace pio
