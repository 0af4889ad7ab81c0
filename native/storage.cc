#include "storage.h"

#include <unistd.h>

#include <cstdint>

#include "backend.h"
#include "error.h"

namespace perceiver {

std::string Device::str() const {
  if (type == DeviceType::CPU) return "cpu";
  return "cuda:" + std::to_string(index);
}

MemoryStats& memory_stats(DeviceType t) {
  static MemoryStats stats[2];
  return stats[t == DeviceType::CPU ? 0 : 1];
}

Storage::Storage(Backend* backend, Device device, size_t bytes)
    : backend_(backend), device_(device), bytes_(bytes) {
  static const size_t physical = [] {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : SIZE_MAX;
  }();
  if (device.type == DeviceType::CPU && bytes > physical)
    throw Error(ErrorKind::Memory, "out of memory: could not allocate " + std::to_string(bytes) +
                                       " bytes on cpu (the machine has " + std::to_string(physical) + ")");
  MemoryStats& s = memory_stats(device.type);
  s.storages.fetch_add(1);
  int64_t now = s.bytes.fetch_add((int64_t)bytes) + (int64_t)bytes;
  int64_t peak = s.peak_bytes.load();
  while (now > peak && !s.peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

void* Storage::allocate() {
  std::lock_guard<std::mutex> lock(alloc_mu_);
  void* p = data_.load(std::memory_order_relaxed);
  if (!p) {
    p = backend_->alloc(bytes_);
    data_.store(p, std::memory_order_release);
  }
  return p;
}

Storage::~Storage() {
  if (void* p = data_.load()) backend_->free(p, bytes_);
  MemoryStats& s = memory_stats(device_.type);
  s.storages.fetch_sub(1);
  s.bytes.fetch_sub((int64_t)bytes_);
}

void Storage::set_error(const std::string& msg) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failed_.load()) {
    error_ = msg;
    failed_.store(true, std::memory_order_release);
  }
}

void Storage::clear_error() {
  std::lock_guard<std::mutex> lock(mu_);
  failed_.store(false, std::memory_order_release);
  error_.clear();
}

void learn_int32_bounds(Storage& s, const void* host, size_t bytes) {
  if (bytes == 0 || bytes != s.bytes() || bytes % sizeof(int32_t)) return;
  const int32_t* v = static_cast<const int32_t*>(host);
  size_t n = bytes / sizeof(int32_t);
  int32_t lo = v[0], hi = v[0];
  for (size_t i = 1; i < n; i++) {  // vectorised by the compiler: no early exit
    lo = v[i] < lo ? v[i] : lo;
    hi = v[i] > hi ? v[i] : hi;
  }
  s.set_int32_bounds(lo, hi);
}

std::string Storage::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

}  // namespace perceiver
