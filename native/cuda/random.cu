// rand() and randn() on the device, with the CPU's counter-based scheme (random.cuh):
// a seed gives the same tensor on either device (randn up to the last ulp of the
// double-precision log/sin/cos, rounded away by the float32 store).
#include "common.cuh"
#include "kernels.h"
#include "random.cuh"

namespace perceiver {
namespace cuda {
namespace {

__global__ void normal_kernel(float* o, int64_t n, uint64_t seed, float mean, float stddev) {
  int64_t pairs = (n + 1) / 2;
  for (int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; p < pairs; p += (int64_t)gridDim.x * blockDim.x) {
    double u1 = random_uniform01(seed, 2 * (uint64_t)p), u2 = random_uniform01(seed, 2 * (uint64_t)p + 1);
    double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    o[2 * p] = (float)(mean + stddev * r * cos(th));
    if (2 * p + 1 < n) o[2 * p + 1] = (float)(mean + stddev * r * sin(th));
  }
}

__global__ void uniform_kernel(float* o, int64_t n, uint64_t seed, float low, float high) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    o[i] = random_uniform_at(seed, (uint64_t)i, low, high);
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
  PERCEIVER_LAUNCH(grid_for((n + 1) / 2), kThreads, 0, s, normal_kernel)(out.ptr<float>(), n, seed, mean, stddev);
  check_launch("randn", s);
}

void random_uniform(const View& out, uint64_t seed, float low, float high, cudaStream_t s) {
  check_f32(out, "rand");
  int64_t n = out.numel();
  if (n == 0) return;
  PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, uniform_kernel)(out.ptr<float>(), n, seed, low, high);
  check_launch("rand", s);
}

}  // namespace cuda
}  // namespace perceiver
