// The order in which the cuBLASLt search times its configurations (gemm.cu:
// search_configs), apart from cuBLASLt so that the emulation checks it
// (native/cuda/emu/check_gemm_split.cc).
#pragma once
#include <cstddef>
#include <vector>

namespace perceiver {
namespace cuda {

// `buckets` hold one (algorithm, tile) each, in the order found; an algorithm's buckets
// are consecutive, [b, end[b]) from its first, b. Returns at most `max` of their items:
// each algorithm's with its tiles in turn (every tile's first, then every tile's
// second, ...), and those lists in turn across the algorithms, so that neither the first
// algorithms' many tiles nor one tile's many stage counts shut out the rest when `max`
// ends the list.
template <class T>
std::vector<T> search_order(const std::vector<std::vector<T>>& buckets, const std::vector<size_t>& end, size_t max) {
  std::vector<std::vector<T>> per_algo;
  for (size_t b0 = 0; b0 < buckets.size();) {
    const size_t b1 = end[b0] > b0 && end[b0] <= buckets.size() ? end[b0] : b0 + 1;
    std::vector<T> v;
    for (size_t k = 0, added = 1; added; k++) {
      added = 0;
      for (size_t b = b0; b < b1; b++)
        if (k < buckets[b].size()) v.push_back(buckets[b][k]), added++;
    }
    if (!v.empty()) per_algo.push_back(std::move(v));
    b0 = b1;
  }
  std::vector<T> out;
  for (size_t k = 0; out.size() < max; k++) {
    bool any = false;
    for (const std::vector<T>& v : per_algo)
      if (k < v.size() && out.size() < max) out.push_back(v[k]), any = true;
    if (!any) break;
  }
  return out;
}

}  // namespace cuda
}  // namespace perceiver
