// Module entry: one Addon instance per environment.
#include "addon.h"

#include <uv.h>

#include "tensor_handle.h"
#include "../native/profiler.h"

namespace pio {
using namespace perceiver;
void register_io(Napi::Env env, Napi::Object exports);  // io.cc: checkpoint loading

// A libuv check handle runs after every poll of the environment's event loop: the end
// of a turn, for HandleTable::turn. Unreferenced, so it never keeps the loop alive;
// allocated apart from the Addon and freed by its close callback.
struct Addon::TurnWatch {
  uv_check_t check;
  napi_env env;
  HandleTable* handles;
};

// Started last in the constructor (nothing after it can throw and leave the handle
// pointing into an Addon that was never made); stopped by its own cleanup hook,
// which runs before the instance data (this Addon) is deleted.
void Addon::watch_turns(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) return;
  TurnWatch* w = new TurnWatch{{}, env, &handles};
  uv_check_init(loop, &w->check);
  w->check.data = w;
  env.AddCleanupHook([w] {
    uv_check_stop(&w->check);
    uv_close(reinterpret_cast<uv_handle_t*>(&w->check), [](uv_handle_t* h) { delete static_cast<TurnWatch*>(h->data); });
  });
  uv_check_start(&w->check, [](uv_check_t* c) {
    auto* w = static_cast<TurnWatch*>(c->data);
    w->handles->turn(w->env);
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(&w->check));
}

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
  watch_turns(env);
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
