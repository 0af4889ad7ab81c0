// A pool for the small objects every op makes: its task (made on the JS thread,
// destroyed on a queue thread) and its storage's control block. With glibc, a
// free from another thread misses the per-thread cache and takes the arena lock
// both threads contend for, several microseconds per op on a small kernel; here
// each thread keeps its own free lists and trades blocks in batches.
#pragma once
#include <cstddef>

namespace perceiver {

// Blocks of up to 2 KiB come from the pool; larger ones from operator new.
// small_free must get the size small_alloc was given.
void* small_alloc(size_t bytes);
void small_free(void* p, size_t bytes);

// A std allocator over the pool, for std::allocate_shared.
template <class T>
struct SmallAllocator {
  using value_type = T;
  SmallAllocator() = default;
  template <class U>
  SmallAllocator(const SmallAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(small_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { small_free(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const SmallAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const SmallAllocator<U>&) const { return false; }
};

}  // namespace perceiver
