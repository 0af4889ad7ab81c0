#include "small_pool.h"

#include <mutex>
#include <new>

namespace perceiver {

namespace {

// 64-byte classes up to 2 KiB; bigger closures (rare) go to the heap. Each class
// keeps at most kMaxCachedBytes of free blocks, so a burst of queued ops does not
// pin memory for good.
constexpr size_t kGrain = 64;
constexpr size_t kClasses = 32;
constexpr size_t kMaxCachedBytes = 512 * 1024;

struct FreeBlock {
  FreeBlock* next;
};

struct SizeClass {
  std::mutex mu;
  FreeBlock* head = nullptr;
  size_t count = 0;
};

SizeClass* classes() {
  // Never destroyed: queue threads may still free tasks while the process exits.
  static SizeClass* c = new SizeClass[kClasses];
  return c;
}

size_t class_of(size_t bytes) { return (bytes + kGrain - 1) / kGrain - 1; }

}  // namespace

void* small_alloc(size_t bytes) {
  size_t k = class_of(bytes);
  if (k >= kClasses) return ::operator new(bytes);
  SizeClass& c = classes()[k];
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (FreeBlock* b = c.head) {
      c.head = b->next;
      c.count--;
      return b;
    }
  }
  return ::operator new((k + 1) * kGrain);
}

void small_free(void* p, size_t bytes) {
  if (!p) return;
  size_t k = class_of(bytes);
  if (k >= kClasses) return ::operator delete(p);
  SizeClass& c = classes()[k];
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.count * (k + 1) * kGrain < kMaxCachedBytes) {
      FreeBlock* b = static_cast<FreeBlock*>(p);
      b->next = c.head;
      c.head = b;
      c.count++;
      return;
    }
  }
  ::operator delete(p);
}

}  // namespace perceiver
