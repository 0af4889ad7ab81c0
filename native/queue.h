// A device's execution queue: tasks run one after another, in submission order, on
// a thread of their own, so the JS thread never runs or waits for a kernel. Order
// is the only synchronisation ops need: a kernel's inputs were produced by tasks
// submitted before it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "task.h"

namespace perceiver {

class Queue {
 public:
  // spin_us: how long the worker (and a waiter) polls before sleeping on a condition
  // variable. Waking a sleeping thread costs tens of microseconds, more than a small
  // kernel or a GPU launch, and ops arrive microseconds apart while JS issues them.
  explicit Queue(int spin_us = 0);
  ~Queue();
  // Returns the task's ticket; wait(ticket) returns once it has run. The queue owns
  // the task and deletes it on its thread once it has run.
  uint64_t submit(Task* task);
  template <class F, class = std::enable_if_t<!std::is_convertible_v<F, Task*>>>
  uint64_t submit(F&& fn) {
    return submit(make_task(std::forward<F>(fn)));
  }
  void wait(uint64_t ticket);
  // Waits for everything submitted so far.
  void synchronize();
  uint64_t pending() const;

 private:
  void loop();
  mutable std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  // A ring of pending tasks: head_ is the next to run, count_ how many wait. The
  // worker takes every pending task under one lock and runs them outside it, so
  // the submitting thread rarely finds the lock taken.
  std::vector<Task*> ring_;
  size_t head_ = 0, count_ = 0;
  uint64_t submitted_ = 0;  // under mu_
  // completed_ is written by the worker alone; waiters_ counts threads blocked in
  // wait(), so that completions take the lock to notify only when someone sleeps.
  std::atomic<uint64_t> submitted_hint_{0}, completed_{0};
  std::atomic<int> waiters_{0};
  bool stop_ = false;
  const int spin_us_;
  std::thread thread_;
};

}  // namespace perceiver
