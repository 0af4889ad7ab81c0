// A CPU emulation of the CUDA execution model, enough to run some of native/cuda's
// kernel files from their own source on a machine without a GPU
// (native/cuda/emu/README.md): each block's threads are fibers on one OS thread,
// __syncthreads a barrier over them, and the warp collectives (shuffles, and ldmatrix /
// mma.sync in attention_mma_emu.h) exchange through per-warp slots between two warp
// barriers. Blocks run one after another, so a kernel's __shared__ arrays can be
// statics and its dynamic shared memory one buffer. It checks index arithmetic,
// fragment layouts and control flow, not speed, and not what only hardware does
// (memory ordering, scheduling, the tensor cores' own rounding): a kernel that passes
// here has still not run on a GPU.
#pragma once
#define PERCEIVER_CUDA_EMULATION 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>  // the C math functions (exp2f, fmaxf...) at global scope, as device code has them
#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

// Host compilers see __shared__ as nothing; blocks run one at a time, so statics are
// shared by a block's threads as __shared__ arrays are.
#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)

namespace perceiver::emu {

struct Dim {
  unsigned x = 0, y = 0, z = 0;
};

}  // namespace perceiver::emu

// The running thread's ids: one OS thread runs a block's threads as fibers, and the
// scheduler sets these before it resumes one.
inline perceiver::emu::Dim threadIdx, blockIdx, blockDim, gridDim;

namespace perceiver::emu {

// A barrier among `size` fibers that still run; a fiber that returns leaves it, as an
// exited thread stops counting for bar.sync on a GPU.
struct Barrier {
  unsigned size = 0, arrived = 0, generation = 0;
};

// One block: its threads as fibers, run round-robin; each switches away only at a
// barrier, so everything between two barriers runs as one piece. A fiber starts on its
// own stack through ucontext and switches with _setjmp / _longjmp afterwards (which,
// unlike swapcontext, make no system call).
struct Block {
  explicit Block(unsigned threads) : fibers(threads), done(threads, false), all{threads, 0, 0} {
    for (unsigned w = 0; w * 32 < threads; w++) warp.push_back({std::min(32u, threads - w * 32), 0, 0});
    slots.resize(warp.size());
  }
  std::vector<ucontext_t> fibers;
  std::vector<bool> done;
  std::vector<bool> started = std::vector<bool>(fibers.size(), false);
  std::vector<jmp_buf> resume = std::vector<jmp_buf>(fibers.size());
  jmp_buf scheduler;
  unsigned current = 0, running = 0;
  Barrier all;
  std::vector<Barrier> warp;
  std::vector<std::array<std::array<uint64_t, 8>, 32>> slots;  // [warp][lane][word]
  const std::function<void()>* body = nullptr;
};

inline Block* g_block = nullptr;
alignas(16) inline unsigned char g_dynamic_smem[256 * 1024];

inline int lane() { return (int)(threadIdx.x & 31); }
inline int warp() { return (int)(threadIdx.x >> 5); }

// Back to the scheduler, which resumes the next fiber that has not returned.
inline void yield() {
  Block& b = *g_block;
  if (_setjmp(b.resume[b.current]) == 0) _longjmp(b.scheduler, 1);
}

inline void wait(Barrier& bar) {
  const unsigned gen = bar.generation;
  if (++bar.arrived == bar.size) {
    bar.arrived = 0;
    bar.generation++;
    return;
  }
  while (bar.generation == gen) yield();
}

inline void leave(Barrier& bar) {
  bar.size--;
  if (bar.size > 0 && bar.arrived == bar.size) {
    bar.arrived = 0;
    bar.generation++;
  }
}

inline void warp_sync() { wait(g_block->warp[warp()]); }
inline std::array<std::array<uint64_t, 8>, 32>& warp_slots() { return g_block->slots[warp()]; }

inline void fiber_main() {
  Block& b = *g_block;
  (*b.body)();
  leave(b.warp[b.current >> 5]);
  leave(b.all);
  b.done[b.current] = true;
  b.running--;
  _longjmp(b.scheduler, 1);  // never returns: its ucontext has nowhere to go
}

// Runs `body` as grid x block threads, block after block.
inline void run(unsigned grid, unsigned block, size_t smem, const std::function<void()>& body) {
  if (smem > sizeof g_dynamic_smem) {
    std::fprintf(stderr, "emu: %zu bytes of dynamic shared memory requested, %zu available\n", smem, sizeof g_dynamic_smem);
    std::abort();
  }
  // Fiber stacks, kept from launch to launch (allocating them per block was most of
  // the run time).
  constexpr size_t kStack = 128 * 1024;
  static std::vector<std::unique_ptr<char[]>> stacks;
  while (stacks.size() < block) stacks.emplace_back(new char[kStack]);
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  for (unsigned bi = 0; bi < grid; bi++) {
    // Each block's shared memory starts as all-ones bytes (NaN in every float type), so
    // a read of something no thread wrote shows instead of finding the last block's data.
    std::memset(g_dynamic_smem, 0xff, smem);
    Block b(block);
    g_block = &b;
    b.body = &body;
    for (unsigned t = 0; t < block; t++) {
      getcontext(&b.fibers[t]);
      b.fibers[t].uc_stack.ss_sp = stacks[t].get();
      b.fibers[t].uc_stack.ss_size = kStack;
      b.fibers[t].uc_link = nullptr;
      makecontext(&b.fibers[t], fiber_main, 0);
    }
    b.running = block;
    blockIdx = {bi, 0, 0};
    // Sweeps alternate between ascending and descending thread order, so that a read of
    // another thread's write that lacks a barrier between them sees the wrong value in
    // one order or the other.
    for (unsigned sweep = 0; b.running > 0; sweep++)
      for (unsigned i = 0; i < block; i++) {
        const unsigned t = sweep % 2 ? block - 1 - i : i;
        if (b.done[t]) continue;
        b.current = t;
        threadIdx = {t, 0, 0};
        if (_setjmp(b.scheduler) == 0) {
          if (b.started[t]) _longjmp(b.resume[t], 1);
          b.started[t] = true;
          setcontext(&b.fibers[t]);
        }
      }
    g_block = nullptr;
  }
}

// kernel<<<grid, block, smem, stream>>>(args...) as Launcher{grid, block, smem} % kernel.
struct Launcher {
  unsigned grid, block;
  size_t smem;
};
template <class F>
struct Bound {
  Launcher l;
  F f;
  template <class... A>
  void operator()(A... args) const {
    run(l.grid, l.block, l.smem, [&] { f(args...); });
  }
};
template <class F>
Bound<F> operator%(Launcher l, F f) {
  return {l, f};
}

}  // namespace perceiver::emu

#define PERCEIVER_LAUNCH(grid, block, smem, stream, ...) \
  (::perceiver::emu::Launcher{(unsigned)(grid), (unsigned)(block), (size_t)(smem)} % (__VA_ARGS__))
#define PERCEIVER_DYNAMIC_SMEM(name) unsigned char* name = ::perceiver::emu::g_dynamic_smem

inline void __syncthreads() { perceiver::emu::wait(perceiver::emu::g_block->all); }
inline void __syncwarp(unsigned = 0xffffffffu) { perceiver::emu::warp_sync(); }
[[noreturn]] inline void __trap() { std::abort(); }

template <class T>
T __shfl_xor_sync(unsigned /*mask: the whole warp*/, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8);
  auto& s = perceiver::emu::warp_slots();
  const int l = perceiver::emu::lane();
  std::memcpy(&s[l][0], &v, sizeof v);
  perceiver::emu::warp_sync();
  T r;
  std::memcpy(&r, &s[l ^ lane_mask][0], sizeof r);
  perceiver::emu::warp_sync();
  return r;
}

// cuda_runtime.h's kernel-pointer overload, which host compilers do not see.
template <class T>
cudaError_t cudaFuncSetAttribute(T*, cudaFuncAttribute, int) {
  return cudaSuccess;
}

// Device math the host library lacks.
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }

// Device-side min/max on ints, as CUDA provides them.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
