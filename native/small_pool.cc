#include "small_pool.h"

#include <mutex>
#include <new>

namespace perceiver {

namespace {

// 64-byte classes up to 2 KiB; bigger objects (rare) go to the heap.
constexpr size_t kGrain = 64;
constexpr size_t kClasses = 32;
// Each thread keeps up to 2 * kBatch free blocks per class without any lock, and
// trades kBatch at a time with the shared lists: the JS thread, which makes tasks,
// refills in batches what a queue thread, which deletes them, hands back in batches.
constexpr unsigned kBatch = 32;
// The shared list of a class keeps at most this many bytes of free blocks, so a
// burst of queued ops does not pin memory for good.
constexpr size_t kMaxSharedBytes = 512 * 1024;

struct FreeBlock {
  FreeBlock* next;
};

struct SharedClass {
  std::mutex mu;
  FreeBlock* head = nullptr;
  size_t count = 0;
};

SharedClass* shared() {
  // Never destroyed: threads may still free blocks while the process exits.
  static SharedClass* c = new SharedClass[kClasses];
  return c;
}

size_t class_of(size_t bytes) { return (bytes + kGrain - 1) / kGrain - 1; }
size_t block_bytes(size_t k) { return (k + 1) * kGrain; }

struct LocalCache {
  FreeBlock* head[kClasses] = {};
  unsigned count[kClasses] = {};
  ~LocalCache() {
    for (size_t k = 0; k < kClasses; k++)
      while (head[k]) {
        FreeBlock* b = head[k];
        head[k] = b->next;
        ::operator delete(b);
      }
  }
};

thread_local LocalCache tl_cache;

}  // namespace

void* small_alloc(size_t bytes) {
  size_t k = class_of(bytes);
  if (k >= kClasses) return ::operator new(bytes);
  LocalCache& c = tl_cache;
  if (!c.head[k]) {
    SharedClass& s = shared()[k];
    std::lock_guard<std::mutex> lock(s.mu);
    for (unsigned i = 0; i < kBatch && s.head; i++) {
      FreeBlock* b = s.head;
      s.head = b->next;
      s.count--;
      b->next = c.head[k];
      c.head[k] = b;
      c.count[k]++;
    }
  }
  if (FreeBlock* b = c.head[k]) {
    c.head[k] = b->next;
    c.count[k]--;
    return b;
  }
  return ::operator new(block_bytes(k));
}

void small_free(void* p, size_t bytes) {
  if (!p) return;
  size_t k = class_of(bytes);
  if (k >= kClasses) return ::operator delete(p);
  LocalCache& c = tl_cache;
  FreeBlock* b = static_cast<FreeBlock*>(p);
  b->next = c.head[k];
  c.head[k] = b;
  if (++c.count[k] < 2 * kBatch) return;
  // Hand kBatch blocks to the shared list (or back to the heap beyond its cap).
  SharedClass& s = shared()[k];
  std::lock_guard<std::mutex> lock(s.mu);
  for (unsigned i = 0; i < kBatch; i++) {
    FreeBlock* x = c.head[k];
    c.head[k] = x->next;
    c.count[k]--;
    if (s.count * block_bytes(k) < kMaxSharedBytes) {
      x->next = s.head;
      s.head = x;
      s.count++;
    } else {
      ::operator delete(x);
    }
  }
}

}  // namespace perceiver
