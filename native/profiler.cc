#include "profiler.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <tuple>

#include "backend.h"
#include "error.h"
#include "op_util.h"

namespace perceiver {
namespace {

struct Entry {
  ProfileKey key;
  Backend* backend;
  Device device;
  void* begin;
  void* end;
};

struct State {
  std::mutex mu;
  std::vector<Entry> entries;  // recorded on queue threads
  std::atomic<bool> shapes{false};
  std::chrono::steady_clock::time_point started;
};

State& state() {
  static State* s = new State();  // leaked: queue threads may record during exit
  return *s;
}

std::atomic<bool> active{false};
std::mutex control_mu;  // start and stop, from any JS thread, one at a time
const void* active_owner = nullptr;  // under control_mu
// Set and read on the JS thread that issues the ops (the main thread or a Worker).
thread_local std::string tl_scope;

// Every entry's begin and end marks back to their backends, then no entries (s.mu held).
void release_entries(State& s) {
  for (Entry& e : s.entries) {
    e.backend->profile_release(e.begin);
    e.backend->profile_release(e.end);
  }
  s.entries.clear();
}

}  // namespace

bool profiling() { return active.load(std::memory_order_relaxed); }

void profile_start(bool shapes, const void* owner) {
  State& s = state();
  // One profile per process: a Worker's profile would otherwise restart the main
  // thread's (each thread's JS side only knows its own).
  std::lock_guard<std::mutex> control(control_mu);
  if (active.load()) throw Error(ErrorKind::Value, "profiler.start: a profile is already recording in this process (another thread started it)");
  synchronize_all();  // ops issued before the start are not counted
  std::lock_guard<std::mutex> lock(s.mu);
  // Marks of ops that ran after the last stop (issued while it recorded) are not this profile's.
  release_entries(s);
  s.shapes.store(shapes);
  tl_scope.clear();
  s.started = std::chrono::steady_clock::now();
  active_owner = owner;
  active.store(true);
}

void profile_abandon(const void* owner) {
  State& s = state();
  std::lock_guard<std::mutex> control(control_mu);
  if (!active.load() || owner == nullptr || active_owner != owner) return;
  active.store(false);
  active_owner = nullptr;
  // The marks of ops still queued are released by the next start, as after a stop.
  try {
    synchronize_all();
  } catch (...) {
  }
  std::lock_guard<std::mutex> lock(s.mu);
  release_entries(s);
}

void profile_set_scope(const std::string& scope) { tl_scope = scope; }

ProfileKey profile_key(const char* op, const Shape* out_shape) {
  ProfileKey k;
  if (!profiling()) return k;
  State& s = state();
  k.active = true;
  k.op = op;
  k.scope = tl_scope;
  if (s.shapes.load() && out_shape) k.shape = shape_str(*out_shape);
  return k;
}

void* profile_begin(Backend& b) {
  try {
    return b.profile_mark();
  } catch (...) {
    return nullptr;  // a device in an error state: the op's own error is what matters
  }
}

void profile_end(const ProfileKey& key, Backend& b, Device device, void* begin) {
  if (!begin) return;
  void* end = nullptr;
  try {
    end = b.profile_mark();
  } catch (...) {
    b.profile_release(begin);
    return;
  }
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.entries.push_back(Entry{key, &b, device, begin, end});
}

std::vector<ProfileRow> profile_stop(double* wall_ms) {
  State& s = state();
  std::lock_guard<std::mutex> control(control_mu);
  if (!active.exchange(false)) throw Error(ErrorKind::Value, "profiler.stop: no profile is recording in this process (another thread stopped it)");
  active_owner = nullptr;
  // Synchronising throws after a GPU fault; the marks are still released below (each
  // elapsed time then reads 0) rather than kept for the next profile.
  bool synced = true;
  try {
    synchronize_all();
  } catch (...) {
    synced = false;
  }
  std::vector<Entry> entries;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    entries.swap(s.entries);
    tl_scope.clear();
  }
  if (wall_ms)
    *wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s.started).count();
  std::map<std::tuple<std::string, std::string, std::string, std::string>, ProfileRow> rows;
  for (Entry& e : entries) {
    double ms = 0;
    try {
      if (synced) ms = e.backend->profile_elapsed_ms(e.begin, e.end);
    } catch (...) {
      ms = 0;  // a faulted device: the op's error was reported where it was read
    }
    e.backend->profile_release(e.begin);
    e.backend->profile_release(e.end);
    std::string dev = e.device.str();
    ProfileRow& r = rows[std::make_tuple(e.key.op, e.key.shape, e.key.scope, dev)];
    if (r.calls == 0) {
      r.op = e.key.op;
      r.shape = e.key.shape;
      r.scope = e.key.scope;
      r.device = dev;
    }
    r.calls++;
    r.total_ms += ms;
    if (ms > r.max_ms) r.max_ms = ms;
  }
  std::vector<ProfileRow> out;
  out.reserve(rows.size());
  for (auto& kv : rows) out.push_back(std::move(kv.second));
  return out;
}

}  // namespace perceiver
