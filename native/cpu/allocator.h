// Host memory for CPU tensors, with a cache of freed large blocks.
#pragma once
#include <cstddef>

namespace perceiver {
namespace cpu {

void* host_alloc(size_t bytes);
void host_free(void* p, size_t bytes);
// Returns every cached block to the system.
void host_empty_cache();
size_t host_cached_bytes();

}  // namespace cpu
}  // namespace perceiver
