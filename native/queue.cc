#include "queue.h"

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

Queue::Queue(int spin_us) : spin_us_(spin_us), thread_([this] { loop(); }) {}

Queue::~Queue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t Queue::submit(std::function<void()> task) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    ticket = ++submitted_;
    submitted_hint_.store(submitted_, std::memory_order_release);
  }
  cv_.notify_one();
  return ticket;
}

void Queue::wait(uint64_t ticket) {
  if (spin(spin_us_, [&] { return completed_hint_.load(std::memory_order_acquire) >= ticket; })) return;
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return completed_ >= ticket; });
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
  return submitted_ - completed_;
}

void Queue::loop() {
  for (;;) {
    std::function<void()> task;
    spin(spin_us_, [&] { return submitted_hint_.load(std::memory_order_acquire) > completed_hint_.load(std::memory_order_relaxed); });
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stop requested and drained
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    // Tasks catch their own errors (ops.cc wraps every kernel); this is the last guard.
    try {
      task();
    } catch (...) {
    }
    task = nullptr;  // release captured storages before reporting completion
    {
      std::lock_guard<std::mutex> lock(mu_);
      completed_++;
      completed_hint_.store(completed_, std::memory_order_release);
    }
    done_cv_.notify_all();
  }
}

}  // namespace perceiver
