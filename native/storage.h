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
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  std::string error() const;

 private:
  Backend* backend_;
  Device device_;
  void* allocate();
  std::atomic<void*> data_{nullptr};
  std::mutex alloc_mu_;
  size_t bytes_;
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string error_;
};

using StoragePtr = std::shared_ptr<Storage>;

}  // namespace perceiver
