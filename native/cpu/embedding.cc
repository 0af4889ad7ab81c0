// Embedding gather and one-hot. Ids are validated here, on the queue, because
// their values are not known when the op is issued; a bad id fails the output.
#include <cstring>
#include <string>

#include "../error.h"
#include "kernels.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {
namespace {

void check_ids(const int32_t* ids, int64_t n, int64_t limit, const char* what) {
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= limit)
      throw_range(std::string("index ") + std::to_string(ids[i]) + " at position " +
                  std::to_string(i) + " is out of range [0, " + std::to_string(limit) + ") of the " +
                  what);
}

}  // namespace

void embedding(const float* weight, int64_t vocab, int64_t channels, const int32_t* ids, int64_t n,
               float* out) {
  check_ids(ids, n, vocab, "embedding table");
  parallel_for(n, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, channels)),
               [&](int64_t lo, int64_t hi, int) {
                 for (int64_t i = lo; i < hi; i++)
                   std::memcpy(out + i * channels, weight + (int64_t)ids[i] * channels,
                               sizeof(float) * (size_t)channels);
               });
}

void one_hot(const int32_t* ids, int64_t n, int64_t depth, float on, float off, float* out) {
  check_ids(ids, n, depth, "one-hot depth");
  for (int64_t i = 0; i < n; i++) {
    float* o = out + i * depth;
    for (int64_t j = 0; j < depth; j++) o[j] = off;
    o[ids[i]] = on;
  }
}

}  // namespace cpu
}  // namespace perceiver
