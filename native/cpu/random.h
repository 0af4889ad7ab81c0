// The CPU's counter-based random numbers (random.cc; native/cuda/random.cu matches
// them bit for bit): element i of a draw depends only on (seed, i), so a fused
// kernel can regenerate any element of a draw without materialising it.
#pragma once
#include <cstdint>

namespace perceiver {
namespace cpu {

inline uint64_t random_mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in (0, 1): never 0, so log() in Box-Muller is finite.
inline double random_uniform01(uint64_t seed, uint64_t i) {
  uint64_t r = random_mix(seed * 0xd1342543de82ef95ull ^ random_mix(i));
  return ((double)(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Element i of rand(shape, { seed, low, high }) (random_uniform below), in [low, high).
inline float random_uniform_at(uint64_t seed, uint64_t i, float low, float high) {
  const double span = (double)high - (double)low;
  const float v = (float)(low + span * random_uniform01(seed ^ 0x5bd1e995ull, i));
  return v < high ? v : low;  // keep the half-open interval [low, high) after rounding
}

// Inverted dropout's keep/scale factor of element i, as dropout() composes it:
// rand(...) < 1 - p, cast, times 1 / (1 - p) (both rounded to float32 as the
// composed ops round their scalars).
struct DropoutMask {
  uint64_t seed = 0;
  float keep_below = 1.f;  // (float)(1 - p)
  float scale = 1.f;       // (float)(1 / (1 - p))
  float at(uint64_t i) const { return random_uniform_at(seed, i, 0.f, 1.f) < keep_below ? scale : 0.f; }
};

// f[j] = dm.at(base + j) for j < n: vectorised where the CPU has AVX-512DQ (64-bit
// lane multiplies), bit-identical to at() either way.
void dropout_factors(const DropoutMask& dm, uint64_t base, int64_t n, float* f);

}  // namespace cpu
}  // namespace perceiver
