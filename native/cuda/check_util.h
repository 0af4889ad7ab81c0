// Shared by the *_check.cu harnesses that go through the library's C entry point
// (gemm_check, train_check): opening cuda:0 as the addon does, and timing on it.
#pragma once
#include <chrono>
#include <cstdio>
#include <functional>

#include "../backend.h"
#include "api.h"

namespace perceiver {
namespace check {

// cuda:0's backend and its device info, or nullptr after printing why (the harness
// then exits 2: nothing was checked).
inline Backend* open_cuda(CudaDeviceInfo* info) {
  char err[2048] = {0};
  const CudaApi* api = perceiver_cuda_api(kCudaAbiVersion, err, sizeof(err));
  if (!api || api->init(err, sizeof(err)) == 0) {
    std::printf("CUDA unavailable: %s\n", err);
    return nullptr;
  }
  Backend* gpu = api->backend(0, err, sizeof(err));
  if (!gpu) {
    std::printf("cuda:0 could not be initialised: %s\n", err);
    return nullptr;
  }
  api->device_info(0, info, err, sizeof(err));
  return gpu;
}

// Seconds per run of fn on gpu, after one untimed run.
inline double time_gpu(Backend* gpu, const std::function<void()>& fn, int runs) {
  fn();
  gpu->synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < runs; i++) fn();
  gpu->synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / runs;
}

}  // namespace check
}  // namespace perceiver
