// Per-environment state of the addon (it is context-aware: one instance per
// main thread or worker) and helpers shared by the binding files.
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "../native/op_util.h"
#include "../native/ops.h"
#include "../native/queue.h"
#include "storage_refs.h"

namespace pio {

using perceiver::ReadStatus;
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

// How JS holds native tensors: as numbers. A handle is a slot index of its
// environment's table plus the slot's generation, so a handle that outlived its
// tensor (the slot since reused) is recognised rather than aliased. A number costs
// nothing to create or collect; the wrapped objects used before cost a weak reference
// and a finalizer each, which every garbage collection had to process (about 3 us
// per op). lib/tensor.ts disposes the handles of Tensors nobody disposed through a
// FinalizationRegistry.
//
// The table also tells V8 (napi_adjust_external_memory) what its handles keep alive.
// A Tensor is a few dozen bytes of JS heap that may hold megabytes of native memory:
// without a report, V8 has no reason to collect the Tensors a loop drops undisposed,
// and gigabytes were live before their finalizers ran. What is reported is the least
// the handles held at any moment of the last turn of the event loop (turn()): memory
// that a step makes and frees within one turn (a tidy() scope, a training step's
// activations) never counts, where reporting it made V8 run a full collection every
// few training steps; memory that outlives its turn does, and a loop that drops
// tensors raises that floor turn after turn. Finalizers run between turns anyway, so
// nothing collectable is missed. A storage counts once however many handles share it
// (views, the aliases autograd saves).
class HandleTable {
 public:
  // The handle of a new slot holding t.
  double add(Tensor t);
  // The tensor behind h; null when h is not a live handle of this table.
  const Tensor* get(double h) const;
  // Frees h's slot; false when h was not live (already disposed, or never a handle).
  bool release(double h);
  // Live handles over every environment, per device type (memory().tensors).
  static int64_t live(perceiver::DeviceType t);
  // Called once per turn of env's event loop: reports the turn's floor to V8.
  void turn(napi_env env);
  // The bytes reported to V8 and not taken back.
  int64_t reported_bytes() const { return reported_bytes_; }
  // An environment torn down (a worker that exits) with handles still live: they stop
  // counting, as their tensors go with the table.
  ~HandleTable();

 private:
  struct Slot {
    std::optional<Tensor> tensor;
    uint32_t generation = 1;
  };
  bool decode(double h, uint32_t* index) const;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  StorageRefs storage_refs_;  // handles per storage (see the class comment)
  int64_t live_bytes_ = 0;      // of the storages with a handle
  int64_t floor_bytes_ = 0;     // the least live_bytes_ since the last turn()
  int64_t reported_bytes_ = 0;
};

struct PendingRead {
  Napi::Promise::Deferred deferred;
  HostBuffer buffer;
  Tensor tensor;     // keeps the source alive until the JS side has the result
  std::shared_ptr<ReadStatus> status;  // the read task's outcome; null for settle(), which has no read
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports);
  ~Addon();

  HandleTable handles;
  // Metadata of the newest handle, for the JS Tensor made of it: [handle, dtype code,
  // device (-1 cpu, else the CUDA index), ndim, ...shape]. Written into a Float64Array
  // JS registered (setMetaBuffer) rather than returned as a fresh array, which cost
  // more than the op itself.
  static constexpr size_t kMetaLength = 4 + perceiver::kMaxDims;
  double* meta = nullptr;
  Napi::Reference<Napi::Float64Array> meta_ref;
  void write_meta(double h, const Tensor& t);
  std::shared_ptr<ReadChannel> channel;
  std::unordered_map<uint64_t, PendingRead> reads;
  uint64_t next_read = 1;
  int64_t pending_reads = 0;

  // A new handle on t for JS (see tensor_handle.h).
  Napi::Value wrap(Napi::Env env, Tensor t);

 private:
  struct TurnWatch;  // the event-loop hook that calls handles.turn()
  void watch_turns(Napi::Env env);
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

void register_handles(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);

}  // namespace pio
