// Checkpoint loading entry points: loadRecord() enqueues a file-range (or
// in-memory) read into a new tensor and returns its handle at once; settle()
// resolves once everything queued for a tensor has run, without copying it back,
// or rejects with the load's error. Together they let lib/io/load-records.ts
// keep a bounded window of reads in flight and report progress as each lands.
#include <memory>
#include <string>
#include <vector>

#include "addon.h"
#include "tensor_handle.h"
#include "../native/file_io.h"

namespace pio {
using namespace perceiver;

namespace {

// An open RecordFile as JS holds it: close() lets go of it before the collector does;
// reads already queued keep their own reference.
struct FileHolder {
  std::shared_ptr<const RecordFile> file;
};

const std::shared_ptr<const RecordFile>& file_arg(const Napi::Value& v, const char* op) {
  if (!v.IsExternal()) throw_type(std::string(op) + ": argument 'file' must be a handle from openRecordFile");
  const auto* h = v.As<Napi::External<FileHolder>>().Data();
  if (!h || !h->file) throw_value(std::string(op) + ": the file handle was closed");
  return h->file;
}

// openRecordFile(path) -> [handle, size, version]: the file every record of one load
// reads through (RecordFile).
Napi::Value OpenRecordFile(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto file = RecordFile::open(string_arg(info, 0, "openRecordFile", "path"));
    Napi::Array out = Napi::Array::New(env, 3);
    out.Set(1u, Napi::Number::New(env, (double)file->size()));
    out.Set(2u, Napi::String::New(env, file->version()));
    out.Set(0u, Napi::External<FileHolder>::New(env, new FileHolder{std::move(file)},
                                                [](Napi::Env, FileHolder* h) { delete h; }));
    return out;
  });
}

// recordFileVersion(handle): the version string as fstat gives it now.
Napi::Value RecordFileVersion(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), file_arg(info[0], "recordFileVersion")->version());
  });
}

// closeRecordFile(handle): idempotent.
Napi::Value CloseRecordFile(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (!info[0].IsExternal()) throw_type("closeRecordFile: argument 'file' must be a handle from openRecordFile");
    if (auto* h = info[0].As<Napi::External<FileHolder>>().Data()) h->file.reset();
    return info.Env().Undefined();
  });
}

// loadRecord(name, where, source: string | file handle | TypedArray, offset,
//            byteLength, type, shape, strides, dtype, device)
Napi::Value LoadRecord(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* op = "loadRecord";
    if (info.Length() < 10) throw_type("loadRecord: expected 10 arguments, got " + std::to_string(info.Length()));
    std::string name = string_arg(info, 0, op, "name");
    std::string where = string_arg(info, 1, op, "where");
    RecordSource src;
    Napi::Value s = info[2];
    if (s.IsString() || s.IsExternal()) {
      if (s.IsString()) {
        src.path = s.As<Napi::String>().Utf8Value();
      } else {
        src.file = file_arg(s, op);
        src.path = src.file->path();
      }
      int64_t offset = int_arg(info, 3, op, "offset");
      int64_t length = int_arg(info, 4, op, "byteLength");
      if (offset < 0 || length < 0)
        throw_range(where + ": tensor '" + name + "': byte range must be non-negative, got offset " +
                    std::to_string(offset) + ", length " + std::to_string(length));
      src.offset = (uint64_t)offset;
      src.byte_length = (uint64_t)length;
    } else if (s.IsTypedArray()) {
      // Copied now: the caller's buffer may change or be collected before the queue runs.
      // napi_get_typedarray_info also serves views of a SharedArrayBuffer (napi_get_arraybuffer_info does not).
      void* d = nullptr;
      size_t n = 0;
      napi_typedarray_type ty;
      NAPI_THROW_IF_FAILED(info.Env(), napi_get_typedarray_info(info.Env(), s, &ty, &n, &d, nullptr, nullptr), Napi::Value());
      const uint8_t* p = static_cast<const uint8_t*>(d);
      const size_t bytes = s.As<Napi::TypedArray>().ByteLength();
      src.bytes = std::make_shared<const std::vector<uint8_t>>(p, p + (p ? bytes : 0));
    } else {
      throw_type("loadRecord: argument 'source' must be a file path, a file handle or a Uint8Array");
    }
    std::string tname = string_arg(info, 5, op, "type");
    SourceType type;
    if (!source_type_from_name(tname, &type))
      throw_type(where + ": tensor '" + name + "': unknown dtype '" + tname + "'");
    Shape shape = shape_arg(info, 6, op, "shape");
    Shape strides = info[7].IsNull() || info[7].IsUndefined() ? Shape{} : shape_arg(info, 7, op, "strides");
    DType dtype = dtype_arg(info, 8, op, "dtype");
    Device device = device_arg(info, 9, op, "device");
    Tensor t = load_record(name, where, src, type, shape, strides, dtype, device);
    return info.Env().GetInstanceData<Addon>()->wrap(info.Env(), std::move(t));
  });
}

Napi::Value Settle(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Tensor& t = tensor_arg(info, 0, "settle", "tensor");
    Addon* addon = env.GetInstanceData<Addon>();
    uint64_t id = addon->next_read++;
    PendingRead pr{Napi::Promise::Deferred::New(env), HostBuffer(), t, nullptr};  // settles on the tensor's own state
    Napi::Promise promise = pr.deferred.Promise();
    auto channel = addon->channel;
    queue_of(t).submit([channel, id] { channel->post(id); });
    addon->reads.emplace(id, std::move(pr));
    if (addon->pending_reads++ == 0) channel->tsfn.Ref(env);
    return promise;
  });
}

}  // namespace

void register_io(Napi::Env env, Napi::Object exports) {
  exports.Set("loadRecord", Napi::Function::New(env, LoadRecord, "loadRecord"));
  exports.Set("settle", Napi::Function::New(env, Settle, "settle"));
  exports.Set("openRecordFile", Napi::Function::New(env, OpenRecordFile, "openRecordFile"));
  exports.Set("recordFileVersion", Napi::Function::New(env, RecordFileVersion, "recordFileVersion"));
  exports.Set("closeRecordFile", Napi::Function::New(env, CloseRecordFile, "closeRecordFile"));
}

}  // namespace pio
