// Counter-based random numbers, bit-for-bit the CPU's scheme (native/cpu/random.cc):
// element i depends only on (seed, i), through splitmix64 and double-precision
// Box-Muller, so a seed gives the same tensor on either device (up to the last
// ulp of the double-precision log/sin/cos, rounded away by the float32 store).
#include "common.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

__device__ __forceinline__ uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ double uniform01(uint64_t seed, uint64_t i) {
  uint64_t r = mix(seed * 0xd1342543de82ef95ull ^ mix(i));
  return ((double)(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

__global__ void normal_kernel(float* o, int64_t n, uint64_t seed, float mean, float stddev) {
  int64_t pairs = (n + 1) / 2;
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < pairs; p += (int64_t)gridDim.x * blockDim.x) {
    double u1 = uniform01(seed, 2 * (uint64_t)p), u2 = uniform01(seed, 2 * (uint64_t)p + 1);
    double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    o[2 * p] = (float)(mean + stddev * r * cos(th));
    if (2 * p + 1 < n) o[2 * p + 1] = (float)(mean + stddev * r * sin(th));
  }
}

__global__ void uniform_kernel(float* o, int64_t n, uint64_t seed, float low, float high) {
  double span = (double)high - (double)low;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = (float)(low + span * uniform01(seed ^ 0x5bd1e995ull, (uint64_t)i));
    o[i] = v < high ? v : low;
  }
}

void check_f32(const View& out, const char* op) {
  if (out.dtype != DType::Float32)
    throw_type(std::string(op) + ": the cuda kernel writes float32, got " + dtype_name(out.dtype));
}

}  // namespace

void random_normal(const View& out, uint64_t seed, float mean, float stddev, cudaStream_t s) {
  check_f32(out, "randn");
  int64_t n = out.numel();
  if (n == 0) return;
  normal_kernel<<<grid_for((n + 1) / 2), kThreads, 0, s>>>(out.ptr<float>(), n, seed, mean, stddev);
  check_launch("randn", s);
}

void random_uniform(const View& out, uint64_t seed, float low, float high, cudaStream_t s) {
  check_f32(out, "rand");
  int64_t n = out.numel();
  if (n == 0) return;
  uniform_kernel<<<grid_for(n), kThreads, 0, s>>>(out.ptr<float>(), n, seed, low, high);
  check_launch("rand", s);
}

}  // namespace cuda
}  // namespace perceiver
