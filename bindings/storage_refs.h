// How many handles of one environment share each storage: the HandleTable reports a
// storage's bytes to V8 when its first handle appears and takes them back when its
// last goes (addon.h). One lookup per op on the JS thread, so it is a flat table with
// linear probing rather than a node-based map, which paid a malloc and a free per
// output tensor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pio {

class StorageRefs {
 public:
  // One more handle on key; true when it is the first.
  bool acquire(const void* key) {
    if ((size_ + 1) * 2 > entries_.size()) grow();
    Entry& e = entries_[find(key)];
    if (e.key == key) return ++e.count == 1;
    e = {key, 1};
    size_++;
    return true;
  }

  // One handle fewer on key; true when it was the last. A key not held is ignored.
  bool release(const void* key) {
    if (entries_.empty()) return false;
    const size_t i = find(key);
    if (entries_[i].key != key || --entries_[i].count) return false;
    erase(i);
    return true;
  }

 private:
  struct Entry {
    const void* key = nullptr;
    uint32_t count = 0;
  };
  std::vector<Entry> entries_;  // a power of two long, at most half full
  size_t size_ = 0;

  size_t mask() const { return entries_.size() - 1; }
  // Storages are 16-byte aligned heap objects: mix the bits so that the low ones,
  // which pick the slot, vary.
  static size_t hash(const void* p) {
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
  }
  // key's slot, or the empty slot where it would go.
  size_t find(const void* key) const {
    size_t i = hash(key) & mask();
    while (entries_[i].key && entries_[i].key != key) i = (i + 1) & mask();
    return i;
  }
  // Empties slot i and moves later entries of its run back, so that no lookup
  // stops at a hole before reaching its key (no tombstones to accumulate).
  void erase(size_t i) {
    for (size_t j = i;;) {
      j = (j + 1) & mask();
      if (!entries_[j].key) break;
      const size_t home = hash(entries_[j].key) & mask();
      // Entry j may fill the hole only if its home slot is not cyclically in (i, j].
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      entries_[i] = entries_[j];
      i = j;
    }
    entries_[i] = Entry{};
    size_--;
  }
  void grow() {
    std::vector<Entry> old(entries_.empty() ? 64 : entries_.size() * 2);
    old.swap(entries_);
    for (const Entry& e : old)
      if (e.key) entries_[find(e.key)] = e;
  }
};

}  // namespace pio
