// Embedding gather and one-hot. Where the host has not seen the ids (they were
// computed on the GPU), the kernels record the first out-of-range position
// (atomicMin) and the host reads it back after a stream synchronisation: a bad id
// fails the op with the same message as on the CPU instead of reading out of bounds.
// Ids that passed through host memory (a tensor made from host data, a copy from
// the CPU) have bounds the op layer knows (Storage::int32_within); within range, the
// kernels run without the flag and the queue does not wait for the GPU (0.12-0.33 ms
// per call on an H200, and the queue thread stalled behind everything issued before).
// Bad ids are never dereferenced, flag or not.
#include <string>

#include "common.cuh"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

constexpr unsigned long long kNone = ~0ull;

template <class T>
__global__ void embedding_kernel(const T* w, int64_t vocab, int64_t c, const int32_t* ids, int64_t n,
                                 T* out, unsigned long long* bad) {
  int64_t total = n * c;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / c, j = i % c;
    int32_t id = ids[r];
    if (id < 0 || id >= vocab) {
      if (bad && j == 0) atomicMin(bad, (unsigned long long)r);
      continue;
    }
    out[i] = w[(int64_t)id * c + j];
  }
}

// Rows of whole 16-byte packs, table and output 16-byte aligned (the language model's
// 768-wide bf16 rows are 96 packs): the same gather a pack per thread, which divides
// by the row length once per 16 bytes instead of once per element. The element kernel
// above took 0.42 ms for the LM's [32, 2048, 768] bf16 on an H200 (240 GB/s), the
// bad-id readback included; this one 0.32 ms with it (2026-11-27). One of the 16-byte
// kernels (vector_kernels(): PERCEIVER_CUDA_VECTOR_KERNELS=0 turns them off).
__global__ void embedding_packs_kernel(const uint4* w, int64_t vocab, int64_t packs, const int32_t* ids, int64_t n,
                                       uint4* out, unsigned long long* bad) {
  int64_t total = n * packs;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / packs, j = i - r * packs;
    int32_t id = ids[r];
    if (id < 0 || id >= vocab) {
      if (bad && j == 0) atomicMin(bad, (unsigned long long)r);
      continue;
    }
    out[i] = w[(int64_t)id * packs + j];
  }
}

template <class T>
__global__ void one_hot_kernel(const int32_t* ids, int64_t n, int64_t depth, float on, float off, T* out,
                               unsigned long long* bad) {
  int64_t total = n * depth;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = i / depth, j = i % depth;
    int32_t id = ids[r];
    if (id < 0 || id >= depth) {
      if (bad && j == 0) atomicMin(bad, (unsigned long long)r);
      continue;
    }
    out[i] = from_f<T>(j == id ? on : off);
  }
}

// PERCEIVER_CUDA_CHECK_IDS=1 checks ids whatever the host knows (the way back, for
// comparisons: device-check --candidates times the language model both ways).
bool check_ids_always() {
  static const bool always = env_flag("PERCEIVER_CUDA_CHECK_IDS");
  return always;
}

// Only checks the ids: a table of empty rows still has a vocabulary to be out of.
__global__ void check_ids_kernel(const int32_t* ids, int64_t n, int64_t limit, unsigned long long* bad) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x)
    if (ids[r] < 0 || ids[r] >= limit) atomicMin(bad, (unsigned long long)r);
}

// The bad-position flag: the caller's device word (from the caching allocator, whose
// cache may hold all the memory a pool of the driver's own would need). None (dev null)
// where the ids are known to be in range.
struct BadFlag {
  unsigned long long* dev = nullptr;
  BadFlag(cudaStream_t s, const char* op, bool ids_known, unsigned long long* flag) {
    if (!ids_flag_wanted(ids_known)) return;
    dev = flag;
    CUDA_CHECK(op, cudaMemsetAsync(dev, 0xff, sizeof(*dev), s));
  }
  // Waits for the stream; throws like the CPU's check_ids on a bad id.
  void check(cudaStream_t s, const char* op, const int32_t* ids, int64_t limit, const char* what) {
    if (!dev) return;
    unsigned long long pos = kNone;
    CUDA_CHECK(op, cudaMemcpyAsync(&pos, dev, sizeof(pos), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(op, cudaStreamSynchronize(s));
    if (pos == kNone) return;
    int32_t id = 0;
    CUDA_CHECK(op, cudaMemcpy(&id, ids + pos, sizeof(id), cudaMemcpyDeviceToHost));
    throw_range(std::string("index ") + std::to_string(id) + " at position " + std::to_string(pos) +
                " is out of range [0, " + std::to_string(limit) + ") of the " + what);
  }
};

}  // namespace

bool ids_flag_wanted(bool ids_known) { return !ids_known || check_ids_always(); }

void embedding(const void* weight, int64_t vocab, int64_t channels, const int32_t* ids, int64_t n,
               void* out, DType dtype, bool ids_known, unsigned long long* flag, cudaStream_t s) {
  if (n == 0) return;
  BadFlag bad(s, "embedding", ids_known, flag);
  if (channels == 0) {
    if (!bad.dev) return;
    PERCEIVER_LAUNCH(grid_for(n), kThreads, 0, s, check_ids_kernel)(ids, n, vocab, bad.dev);
    check_launch("embedding", s);
    bad.check(s, "embedding", ids, vocab, "embedding table");
    return;
  }
  const int64_t row_bytes = channels * (int64_t)dtype_size(dtype);
  if (vector_kernels() && is_float(dtype) && row_bytes % 16 == 0 && aligned16(weight) && aligned16(out)) {
    const int64_t packs = row_bytes / 16;
    PERCEIVER_LAUNCH(grid_for(n * packs), kThreads, 0, s, embedding_packs_kernel)(
        static_cast<const uint4*>(weight), vocab, packs, ids, n, static_cast<uint4*>(out), bad.dev);
    check_launch("embedding", s);
    bad.check(s, "embedding", ids, vocab, "embedding table");
    return;
  }
  DISPATCH_FLOAT("embedding", dtype, T,
                 PERCEIVER_LAUNCH(grid_for(n * channels), kThreads, 0, s, embedding_kernel<T>)(
                     static_cast<const T*>(weight), vocab, channels, ids, n, static_cast<T*>(out), bad.dev));
  check_launch("embedding", s);
  bad.check(s, "embedding", ids, vocab, "embedding table");
}

void one_hot(const int32_t* ids, int64_t n, int64_t depth, float on, float off, void* out, DType dtype,
             bool ids_known, unsigned long long* flag, cudaStream_t s) {
  if (n * depth == 0) return;  // the op layer takes depth >= 1
  BadFlag bad(s, "one_hot", ids_known, flag);
  DISPATCH_FLOAT("one_hot", dtype, T,
                 PERCEIVER_LAUNCH(grid_for(n * depth), kThreads, 0, s, one_hot_kernel<T>)(
                     ids, n, depth, on, off, static_cast<T*>(out), bad.dev));
  check_launch("one_hot", s);
  bad.check(s, "one_hot", ids, depth, "one-hot depth");
}

}  // namespace cuda
}  // namespace perceiver
