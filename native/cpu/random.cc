// Counter-based random numbers: element i depends only on (seed, i), so results are
// the same whatever the thread count or chunking.
#include <cmath>

#include "kernels.h"
#include "../threadpool.h"

namespace perceiver {
namespace cpu {
namespace {

inline uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1): never 0, so log() in Box-Muller is finite.
inline double uniform01(uint64_t seed, uint64_t i) {
  uint64_t r = mix(seed * 0xd1342543de82ef95ull ^ mix(i));
  return ((double)(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

}  // namespace

void random_normal(const View& out, uint64_t seed, float mean, float stddev) {
  float* o = out.ptr<float>();
  int64_t n = out.numel();
  int64_t pairs = (n + 1) / 2;
  parallel_for(pairs, 8192, [&](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; p++) {
      double u1 = uniform01(seed, 2 * (uint64_t)p), u2 = uniform01(seed, 2 * (uint64_t)p + 1);
      double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
      o[2 * p] = (float)(mean + stddev * r * std::cos(th));
      if (2 * p + 1 < n) o[2 * p + 1] = (float)(mean + stddev * r * std::sin(th));
    }
  });
}

void random_uniform(const View& out, uint64_t seed, float low, float high) {
  float* o = out.ptr<float>();
  int64_t n = out.numel();
  double span = (double)high - (double)low;
  parallel_for(n, 16384, [&](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; i++) {
      float v = (float)(low + span * uniform01(seed ^ 0x5bd1e995ull, (uint64_t)i));
      o[i] = v < high ? v : low;  // keep the half-open interval [low, high) after rounding
    }
  });
}

}  // namespace cpu
}  // namespace perceiver
