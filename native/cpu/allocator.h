// Host memory for CPU tensors, with a cache of freed large blocks.
#pragma once
#include <cstddef>

#include "../alloc_stats.h"

namespace perceiver {
namespace cpu {

void* host_alloc(size_t bytes);
void host_free(void* p, size_t bytes);
// Returns every cached block to the system.
void host_empty_cache();
// Tensors, read buffers and load staging: everything host_alloc handed out.
AllocatorStats host_stats();
void host_reset_peak_stats();

}  // namespace cpu
}  // namespace perceiver
