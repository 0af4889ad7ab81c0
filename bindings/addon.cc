// Module entry: one Addon instance per environment.
#include "addon.h"

#include "tensor_handle.h"
#include "../native/profiler.h"

namespace pio {
using namespace perceiver;
void register_io(Napi::Env env, Napi::Object exports);  // io.cc: checkpoint loading

Addon::Addon(Napi::Env env, Napi::Object exports) {
  register_handles(env, exports);
  channel = std::make_shared<ReadChannel>();
  channel->tsfn = ReadTsfn::New(env, "perceiver-read", 0, 1, this);
  channel->tsfn.Unref(env);  // only pending reads keep the event loop alive
  // Registered after the thread-safe function, so it runs before Node closes it:
  // drain the queue (queued reads write into buffers this environment owns), then
  // stop posting to it.
  auto ch = channel;
  const void* self = this;
  env.AddCleanupHook([ch, self] {
    profile_abandon(self);
    try {
      synchronize_all();
    } catch (...) {  // a GPU fault at exit has nobody left to report to
    }
    std::lock_guard<std::mutex> lock(ch->mu);
    ch->open = false;
  });
  register_ops(env, exports);
  register_io(env, exports);
}

Addon::~Addon() = default;

Napi::Value Addon::wrap(Napi::Env env, Tensor t) {
  double h = handles.add(std::move(t));
  write_meta(h, *handles.get(h));
  return Napi::Number::New(env, h);
}

void Addon::write_meta(double h, const Tensor& t) {
  if (!meta) return;
  meta[0] = h;
  meta[1] = (double)(int)t.dtype;
  Device d = t.device();
  meta[2] = d.type == DeviceType::CPU ? -1.0 : (double)d.index;
  meta[3] = (double)t.ndim();
  for (int i = 0; i < t.ndim(); i++) meta[4 + i] = (double)t.shape[i];
}

}  // namespace pio

using pio::Addon;
NODE_API_ADDON(Addon)
