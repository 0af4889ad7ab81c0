// Fused optimizer updates on CUDA: one thread per element (grid-stride), moments,
// direction and new value in one pass. The arithmetic is the composed ops' with
// explicit round-to-nearest intrinsics, so no multiply-add is contracted and every
// step rounds exactly as the separate elementwise kernels would.
//
// LAMB needs ||p|| and ||u|| before it can apply u, without the host: kernel 1 writes
// u and the moments and leaves one partial sum pair per block; kernel 2 has every
// block reduce those partials in the same fixed order (a few hundred floats, cheaper
// than a third launch), so each block sees the same trust ratio and the result is
// deterministic run to run.
#include "common.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

__device__ __forceinline__ float adam_direction(const AdamArgs& a, int64_t i) {
  const float g = a.g[i];
  const float m = __fadd_rn(__fmul_rn(a.m[i], a.beta1), __fmul_rn(g, a.one_minus_beta1));
  const float v = __fadd_rn(__fmul_rn(a.v[i], a.beta2), __fmul_rn(__fmul_rn(g, g), a.one_minus_beta2));
  a.m[i] = m;
  a.v[i] = v;
  float u = __fdiv_rn(__fmul_rn(m, a.bc1), __fadd_rn(__fsqrt_rn(__fmul_rn(v, a.bc2)), a.eps));
  if (a.weight_decay > 0) u = __fadd_rn(u, __fmul_rn(a.p[i], a.weight_decay));
  return u;
}

__global__ void adam_kernel(AdamArgs a) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x) {
    const float u = adam_direction(a, i);
    a.p[i] = __fsub_rn(a.p[i], __fmul_rn(u, a.lr));
  }
}

__global__ void lamb_direction_kernel(AdamArgs a, float* u, float* partials) {
  __shared__ float scratch[32];
  float pp = 0.f, uu = 0.f;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x) {
    const float p = a.p[i];
    const float d = adam_direction(a, i);
    u[i] = d;
    pp += p * p;
    uu += d * d;
  }
  pp = block_sum(pp, scratch);
  uu = block_sum(uu, scratch);
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = pp;
    partials[2 * blockIdx.x + 1] = uu;
  }
}

__global__ void lamb_apply_kernel(AdamArgs a, const float* u, const float* partials, int blocks) {
  __shared__ float scratch[32];
  float pp = 0.f, uu = 0.f;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    pp += partials[2 * b];
    uu += partials[2 * b + 1];
  }
  pp = block_sum(pp, scratch);
  uu = block_sum(uu, scratch);
  const float pn = sqrtf(pp), un = sqrtf(uu);
  const float trust = pn > 0.f && un > 0.f ? __fdiv_rn(pn, un) : 1.f;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x)
    a.p[i] = __fsub_rn(a.p[i], __fmul_rn(__fmul_rn(u[i], trust), a.lr));
}

__global__ void sgd_kernel(SgdArgs a) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = a.g[i];
    float d = g;
    if (a.buf) {
      const float b = __fadd_rn(__fmul_rn(a.buf[i], a.momentum), g);
      a.buf[i] = b;
      d = a.nesterov ? __fadd_rn(g, __fmul_rn(b, a.momentum)) : b;
    }
    const float p = a.p[i];
    float next = __fsub_rn(p, __fmul_rn(d, a.lr));
    if (a.lr_wd > 0) next = __fsub_rn(next, __fmul_rn(p, a.lr_wd));
    a.p[i] = next;
  }
}

}  // namespace

int lamb_partial_blocks(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return (int)(b < 1 ? 1 : b > 1024 ? 1024 : b);
}

void adam_update(const AdamArgs& a, cudaStream_t s) {
  if (a.n == 0) return;
  PERCEIVER_LAUNCH(grid_for(a.n), kThreads, 0, s, adam_kernel)(a);
  check_launch("adam_update", s);
}

void lamb_update(const AdamArgs& a, float* u, float* partials, cudaStream_t s) {
  if (a.n == 0) return;
  const int blocks = lamb_partial_blocks(a.n);
  PERCEIVER_LAUNCH(blocks, kThreads, 0, s, lamb_direction_kernel)(a, u, partials);
  check_launch("lamb_update", s);
  PERCEIVER_LAUNCH(grid_for(a.n), kThreads, 0, s, lamb_apply_kernel)(a, u, partials, blocks);
  check_launch("lamb_update", s);
}

void sgd_update(const SgdArgs& a, cudaStream_t s) {
  if (a.n == 0) return;
  PERCEIVER_LAUNCH(grid_for(a.n), kThreads, 0, s, sgd_kernel)(a);
  check_launch("sgd_update", s);
}

}  // namespace cuda
}  // namespace perceiver
