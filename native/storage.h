// Reference-counted device memory. A Storage outlives every view and every queued
// kernel that uses it (they hold shared_ptrs), so JS may dispose a tensor while a
// kernel reading it is still in the queue.
//
// Memory is taken on first data(), which for an op's output is when its kernel
// runs on the queue thread. JS issues ops far ahead of the queue; allocating at
// issue time would make every intermediate of a forward pass live at once, in
// fresh (slow to fault) pages, instead of reusing the blocks that kernels ahead
// in the queue have just released.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace perceiver {

enum class DeviceType : int32_t { CPU = 0, CUDA = 1 };

struct Device {
  DeviceType type = DeviceType::CPU;
  int32_t index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

struct Backend;

// Live allocations per device type, for memory().
struct MemoryStats {
  std::atomic<int64_t> storages{0};
  std::atomic<int64_t> bytes{0};
  std::atomic<int64_t> peak_bytes{0};
};
MemoryStats& memory_stats(DeviceType t);

class Storage {
 public:
  // Reserves `bytes` on `backend`'s device; memory is allocated by data(). Sizes
  // no machine could hold are refused here, at once.
  Storage(Backend* backend, Device device, size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Allocates on first use (throws Error(Memory) when that fails).
  void* data() {
    void* p = data_.load(std::memory_order_acquire);
    return p ? p : allocate();
  }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  Backend* backend() const { return backend_; }

  // A kernel that failed marks its outputs; kernels that read a failed storage
  // propagate the message instead of running, and data() rejects with it.
  void set_error(const std::string& msg);
  // Forgets a failure once healthy values have replaced every byte (a whole assign).
  void clear_error();
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  std::string error() const;

  // Bounds on the int32 values this storage holds, where the engine saw them on the
  // host (tensors made from host data, copies between devices; contiguous copies and
  // concatenations of such pass them on). The embedding and
  // one-hot ops read them to skip checking their ids on the GPU, which costs a stream
  // synchronisation. Set and forgotten on the storage's queue thread in queue order:
  // every kernel forgets the bounds of the storages it writes (KernelTask::run)
  // before it runs, so bounds never outlive the values they describe.
  void set_int32_bounds(int32_t lo, int32_t hi) {
    bounds_.store(((uint64_t)(uint32_t)lo << 32) | (uint32_t)hi, std::memory_order_release);
  }
  void forget_bounds() { bounds_.store(kNoBounds, std::memory_order_release); }
  // True when every value is known to lie in [lo, hi) (a storage of no elements
  // has no known bounds).
  bool int32_within(int64_t lo, int64_t hi) const {
    int32_t a, b;
    return int32_bounds(&a, &b) && a >= lo && b < hi;
  }
  // In-place writes issued into this storage so far (assign, the optimizer updates),
  // counted as they are issued: what the gradient tape compares to tell whether a
  // tensor it saved still holds the values the forward read.
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void note_write() { version_.fetch_add(1, std::memory_order_relaxed); }
  bool int32_bounds(int32_t* lo, int32_t* hi) const {
    uint64_t v = bounds_.load(std::memory_order_acquire);
    if (v == kNoBounds) return false;
    *lo = (int32_t)(uint32_t)(v >> 32);
    *hi = (int32_t)(uint32_t)v;
    return true;
  }

 private:
  // lo > hi: no range a set_int32_bounds call stores.
  static constexpr uint64_t kNoBounds = ((uint64_t)(uint32_t)INT32_MAX << 32) | (uint32_t)INT32_MIN;
  std::atomic<uint64_t> bounds_{kNoBounds};
  Backend* backend_;
  Device device_;
  void* allocate();
  std::atomic<void*> data_{nullptr};
  std::mutex alloc_mu_;
  size_t bytes_;
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string error_;
  // Last, so that the fields the CUDA library's copy of this code reads keep their
  // offsets.
  std::atomic<uint64_t> version_{0};
};

using StoragePtr = std::shared_ptr<Storage>;

// Sets s's int32 bounds from the host copy of all of its values (bytes must be the
// whole storage; a part would bound only itself, so it sets nothing).
void learn_int32_bounds(Storage& s, const void* host, size_t bytes);

}  // namespace perceiver
