// The order in which the cuBLASLt search times its configurations (gemm.cu:
// search_configs), apart from cuBLASLt so that the emulation checks it
// (native/cuda/emu/check_gemm_split.cc).
#pragma once
#include <cstddef>
#include <vector>

namespace perceiver {
namespace cuda {

// At most `max` items of the lists in turn: every list's first, then every list's second, ...
template <class T>
std::vector<T> interleave(const std::vector<std::vector<T>>& lists, size_t max) {
  std::vector<T> out;
  for (size_t k = 0; out.size() < max; k++) {
    bool any = false;
    for (const std::vector<T>& v : lists)
      if (k < v.size() && out.size() < max) out.push_back(v[k]), any = true;
    if (!any) break;
  }
  return out;
}

// found[algorithm][tile]: the configurations found, in order. Returns at most `max` of
// them: each algorithm's with its tiles in turn, and those lists in turn across the
// algorithms, so that neither the first algorithms' many tiles nor one tile's many stage
// counts shut out the rest when `max` ends the list.
template <class T>
std::vector<T> search_order(const std::vector<std::vector<std::vector<T>>>& found, size_t max) {
  std::vector<std::vector<T>> per_algo;
  for (const std::vector<std::vector<T>>& tiles : found) per_algo.push_back(interleave(tiles, (size_t)-1));
  return interleave(per_algo, max);
}

}  // namespace cuda
}  // namespace perceiver
