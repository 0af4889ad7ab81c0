// Per-op device time, to find where a forward pass or a training step spends it
// (lib/profiler.ts). While profiling, launch() brackets each op's kernels with two
// marks on its device's timeline (Backend::profile_mark); stopping waits for every
// queue and sums the time between the marks per op, output shape and scope.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor.h"

namespace perceiver {

struct Backend;

// Read on the JS thread as an op is issued.
bool profiling();
// Starts a profile (discarding nothing: there is none while stopped). `shapes`
// keys ops by output shape too. `owner` (the starting environment) lets
// profile_abandon end it when that environment goes away.
void profile_start(bool shapes, const void* owner = nullptr);
// Ends and discards the recording profile if `owner` started it: a worker that
// exits mid-profile would otherwise leave it on for the process, recording every
// op without bound, with no JS side left that could stop it.
void profile_abandon(const void* owner);
// The scope ops issued from now on are counted under ("" for none): autograd sets
// the backward node's name while its formula runs.
void profile_set_scope(const std::string& scope);

struct ProfileRow {
  std::string op, shape, scope, device;
  int64_t calls = 0;
  double total_ms = 0, max_ms = 0;
};
// Waits for every queue and device, then returns one row per (op, shape, scope,
// device) and the milliseconds since profile_start in `wall_ms`.
std::vector<ProfileRow> profile_stop(double* wall_ms);

// What launch() uses: the key of an op being issued (empty when not profiling),
// then, on the queue thread, the marks around its kernel.
struct ProfileKey {
  std::string op, shape, scope;
  bool active = false;
};
ProfileKey profile_key(const char* op, const Shape* out_shape);
void* profile_begin(Backend& b);  // null when the mark could not be made
void profile_end(const ProfileKey& key, Backend& b, Device device, void* begin);

}  // namespace perceiver
