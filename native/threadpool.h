// A fixed pool of worker threads for data-parallel kernels. The CPU queue thread is
// the only caller, and it takes part in the work, so PERCEIVER_NUM_THREADS = n
// means n threads compute. Kernels called from inside parallel_for must not call
// it again (they use the serial entry points instead).
#pragma once
#include <cstdint>
#include <functional>

namespace perceiver {

int num_threads();
// Splits [0, n) into at most num_threads() contiguous chunks of at least `grain`
// items and runs fn(begin, end, thread_index) on each. Returns when all are done.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t, int)>& fn);

}  // namespace perceiver
