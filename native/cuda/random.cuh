// The counter-based generator of rand()/randn() on the device, bit for bit the CPU's
// (native/cpu/random.h): element i of a draw depends only on (seed, i), so a fused
// kernel can regenerate any element of a draw (a dropout mask) without storing it.
#pragma once
#include <cstdint>

namespace perceiver {
namespace cuda {

__device__ __forceinline__ uint64_t random_mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1): never 0, so log() in Box-Muller is finite.
__device__ __forceinline__ double random_uniform01(uint64_t seed, uint64_t i) {
  uint64_t r = random_mix(seed * 0xd1342543de82ef95ull ^ random_mix(i));
  return ((double)(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Element i of rand(shape, { seed, low, high }), in [low, high).
__device__ __forceinline__ float random_uniform_at(uint64_t seed, uint64_t i, float low, float high) {
  const double span = (double)high - (double)low;
  // Rounded twice, as the CPU computes it: nvcc would fuse these into one FMA.
  const float v = (float)__dadd_rn((double)low, __dmul_rn(span, random_uniform01(seed ^ 0x5bd1e995ull, i)));
  return v < high ? v : low;
}

// Inverted dropout's factor for element i, the mask dropout(x, p) draws with `seed`
// (AttentionArgs' dropout fields): scale where rand < keep_below, else 0; 1 when off
// (scale 0).
struct DropoutSpec {
  uint64_t seed;
  float keep_below, scale;
  __device__ __forceinline__ float at(uint64_t i) const {
    if (scale == 0.f) return 1.f;
    return random_uniform_at(seed, i, 0.f, 1.f) < keep_below ? scale : 0.f;
  }
};

}  // namespace cuda
}  // namespace perceiver
