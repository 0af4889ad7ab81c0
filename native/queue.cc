#include "queue.h"

#include <pthread.h>

#include <chrono>

namespace perceiver {

namespace {
// Polls pred for up to us microseconds; true once it holds.
template <class Pred>
bool spin(int us, Pred pred) {
  if (us <= 0) return pred();
  auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  do {
    if (pred()) return true;
  } while (std::chrono::steady_clock::now() < until);
  return pred();
}
}  // namespace

Queue::Queue(int spin_us) : ring_(1024, nullptr), spin_us_(spin_us), thread_([this] { loop(); }) {}

Queue::~Queue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Queue::submit(Task* task) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (count_ == ring_.size()) {
      // Grow by unrolling the ring into a buffer twice its size; rare (the ring
      // keeps its largest size), and done under the lock the worker also takes.
      std::vector<Task*> bigger(ring_.size() * 2, nullptr);
      for (size_t i = 0; i < count_; i++) bigger[i] = ring_[(head_ + i) % ring_.size()];
      ring_.swap(bigger);
      head_ = 0;
    }
    ring_[(head_ + count_) % ring_.size()] = task;
    count_++;
    ticket = ++submitted_;
    submitted_hint_.store(submitted_, std::memory_order_release);
  }
  cv_.notify_one();
  return ticket;
}

void Queue::wait(uint64_t ticket) {
  if (spin(spin_us_, [&] { return completed_.load(std::memory_order_acquire) >= ticket; })) return;
  std::unique_lock<std::mutex> lock(mu_);
  // seq_cst pairs with the worker's store of completed_ and load of waiters_: either
  // the worker sees this waiter and notifies under the lock, or this predicate sees
  // the completion.
  waiters_.fetch_add(1);
  done_cv_.wait(lock, [&] { return completed_.load() >= ticket; });
  waiters_.fetch_sub(1);
}

void Queue::synchronize() {
  uint64_t t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t = submitted_;
  }
  wait(t);
}

uint64_t Queue::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return submitted_ - completed_.load();
}

void Queue::loop() {
  // Named for profilers and debuggers (top -H, perf --comm).
  pthread_setname_np(pthread_self(), "perceiver-queue");
  std::vector<Task*> batch;
  batch.reserve(ring_.size());
  for (;;) {
    spin(spin_us_, [&] {
      return submitted_hint_.load(std::memory_order_acquire) > completed_.load(std::memory_order_relaxed);
    });
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || count_ > 0; });
      if (count_ == 0) return;  // stop requested and drained
      for (; count_ > 0; count_--) {
        batch.push_back(ring_[head_]);
        head_ = (head_ + 1) % ring_.size();
      }
    }
    for (Task* task : batch) {
      // Tasks catch their own errors (ops.cc wraps every kernel); this is the last guard.
      try {
        task->run();
      } catch (...) {
      }
      delete task;  // release captured storages before reporting completion
      completed_.fetch_add(1);
      if (waiters_.load() > 0) {
        { std::lock_guard<std::mutex> lock(mu_); }
        done_cv_.notify_all();
      }
    }
    batch.clear();
  }
}

}  // namespace perceiver
