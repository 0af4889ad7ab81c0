// Work for a Queue. Ops make their tasks on the JS thread and a queue thread
// destroys them, so tasks come from the small-object pool, and a kernel's closure
// lives inside its task rather than in std::functions of its own.
#pragma once
#include <cstddef>
#include <type_traits>
#include <utility>

#include "small_pool.h"

namespace perceiver {

struct Task {
  virtual ~Task() = default;
  virtual void run() = 0;
  // Pooled; the sized delete gets the most-derived size through the virtual destructor.
  static void* operator new(size_t bytes) { return small_alloc(bytes); }
  static void operator delete(void* p, size_t bytes) { small_free(p, bytes); }
};

template <class F>
struct FnTask final : Task {
  explicit FnTask(F&& f) : fn(std::move(f)) {}
  explicit FnTask(const F& f) : fn(f) {}
  void run() override { fn(); }
  F fn;
};

template <class F>
Task* make_task(F&& f) {
  return new FnTask<std::decay_t<F>>(std::forward<F>(f));
}

}  // namespace perceiver
