// A CPU emulation of the CUDA execution model, enough to run some of native/cuda's
// kernel files from their own source on a machine without a GPU
// (native/cuda/emu/README.md): each block's threads are fibers on one OS thread,
// __syncthreads a barrier over them, and the warp collectives (shuffles, and ldmatrix /
// mma.sync in attention_mma_emu.h) exchange through per-warp slots between two warp
// barriers; warpgroup products (wgmma_emu.h) meet at a barrier over 128 threads. Blocks run one after another, so a kernel's __shared__ arrays can be
// statics and its dynamic shared memory one buffer. Asynchronous copies into dynamic
// shared memory (cp.async) land only when their thread waits for their group, and
// that memory is watched for races (see "Shared-memory races" below). It checks index
// arithmetic, fragment layouts, control flow and barrier placement, not speed, and
// not what only hardware does (scheduling, the tensor cores' own rounding): a kernel
// that passes here has still not run on a GPU.
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
#include <string>
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
    for (unsigned w = 0; w * 128 < threads; w++) warpgroup.push_back({std::min(128u, threads - w * 128), 0, 0});
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
  // Per thread: the block barriers it has passed (its epoch: two threads' accesses in
  // the same epoch have no barrier between them), and its asynchronous copies.
  std::vector<int> epoch = std::vector<int>(fibers.size(), 0);
  // Per thread: the __syncthreads it has passed (its block epoch). Named barriers end a
  // thread's epoch but not its block epoch: between warpgroups only __syncthreads
  // orders shared memory here (Granule::w_bhi).
  std::vector<int> block_epoch = std::vector<int>(fibers.size(), 0);
  struct Copy {
    unsigned char* dst;
    unsigned char data[16];
    int group;  // -1 until committed
  };
  std::vector<std::vector<Copy>> copies = std::vector<std::vector<Copy>>(fibers.size());
  std::vector<int> groups = std::vector<int>(fibers.size(), 0);  // groups committed so far
  // Warpgroups (runs of 128 threads, the unit of wgmma) and, per thread, its wgmma
  // results not yet waited for: each lands in the thread's accumulator registers
  // (dst) when its wgmma.wait_group covers the result's group (wgmma_emu.h).
  std::vector<Barrier> warpgroup;
  struct Result {
    float* dst;
    std::vector<float> vals;
    int group;  // -1 until committed
  };
  std::vector<std::vector<Result>> results = std::vector<std::vector<Result>>(fibers.size());
  // Per thread: the granules its landed copies wrote that it has not yet fenced for the
  // asynchronous proxy (fence_proxy_async in wgmma_emu.h).
  std::vector<std::vector<size_t>> unfenced = std::vector<std::vector<size_t>>(fibers.size());
  std::vector<int> wgmma_groups = std::vector<int>(fibers.size(), 0);
  // Per thread: the __syncwarp calls it has made (smem_write, smem_read).
  std::vector<int> syncwarps = std::vector<int>(fibers.size(), 0);
  // bar.sync / bar.arrive with ids 1-15 (named_sync): each its count, set by its first
  // use (0: unused).
  std::array<Barrier, 16> named{};
};

inline Block* g_block = nullptr;
alignas(16) inline unsigned char g_dynamic_smem[256 * 1024];

// Warps are runs of 32 threads in linear order (x fastest), as on a GPU.
inline int lane() { return (int)(g_block->current & 31); }
inline int warp() { return (int)(g_block->current >> 5); }

// Back to the scheduler, which resumes the next fiber that has not returned.
inline void yield() {
  Block& b = *g_block;
  if (_setjmp(b.resume[b.current]) == 0) _longjmp(b.scheduler, 1);
}

// One arrival; true where it completes the barrier, which then starts over.
inline bool arrive(Barrier& bar) {
  if (++bar.arrived != bar.size) return false;
  bar.arrived = 0;
  bar.generation++;
  return true;
}

// An arrival, then back to the scheduler until the barrier completes. Every other fiber
// runs between two checks of it, so a barrier still short after a million rounds waits
// for threads that will not come (a hang on a GPU): that ends the run.
inline void wait(Barrier& bar) {
  const unsigned gen = bar.generation;
  if (arrive(bar)) return;
  for (long rounds = 0; bar.generation == gen; rounds++) {
    if (rounds > 1000000) {
      std::fprintf(stderr, "emu: a barrier never completes (%u of %u arrived)\n", bar.arrived, bar.size);
      std::abort();
    }
    yield();
  }
}

inline void leave(Barrier& bar) {
  bar.size--;
  if (bar.size > 0 && bar.arrived == bar.size) {
    bar.arrived = 0;
    bar.generation++;
  }
}

// Named barrier `id` over n threads (bar.sync id, n): it completes when n have arrived,
// by sync or by arrive (named_arrive), counted as the hardware counts them: threads
// that exited do not count, so a count that is never reached hangs on a GPU; here it
// ends the run. Each use must give the same n. A sync ends its thread's epoch (the
// threads it synchronises are ordered as by __syncthreads; the epochs of threads
// outside it move on apart, so accesses that only such a barrier orders are checked
// among its own threads).
inline Barrier& named_barrier(int id, int n) {
  if (id < 1 || id > 15 || n <= 0 || n % 32 != 0 || (unsigned)n > g_block->fibers.size()) {
    std::fprintf(stderr, "emu: named barrier %d over %d threads of %zu\n", id, n, g_block->fibers.size());
    std::abort();
  }
  Barrier& bar = g_block->named[id];
  if (bar.size == 0) bar.size = (unsigned)n;
  if (bar.size != (unsigned)n) {
    std::fprintf(stderr, "emu: named barrier %d used over %d threads and over %u\n", id, n, bar.size);
    std::abort();
  }
  return bar;
}

inline void named_sync(int id, int n) {
  wait(named_barrier(id, n));
  g_block->epoch[g_block->current]++;
}

inline void named_arrive(int id, int n) { arrive(named_barrier(id, n)); }

inline void warp_sync() { wait(g_block->warp[warp()]); }
inline void warpgroup_sync() { wait(g_block->warpgroup[g_block->current >> 7]); }
inline std::array<std::array<uint64_t, 8>, 32>& warp_slots() { return g_block->slots[warp()]; }

// ---- Shared-memory races --------------------------------------------------------------
// Dynamic shared memory is watched in 16-byte granules, the unit of a cp.async and of
// an ldmatrix row: for each, the thread whose copy last wrote it and the epochs from
// the copy's issue to its landing, and the epoch and thread (or threads) that last
// read it. Two accesses by different threads in one epoch, at least one a write, have
// no barrier between them and race on a GPU whatever order the fibers here happened
// to run them in; so does a thread reading its own copy before waiting for it. Plain
// C++ loads and stores are not seen (the kernels' shared tiles are written by cp.async
// and read by ldmatrix on sm_80+, which is what is watched), but for the stores and
// loads that go through sts_u32 and lds_u128 (the fixed-width kernel's staged output
// rows: smem_write). Only __syncthreads (and a named barrier's sync, for its own
// threads: named_sync) ends an epoch; a __syncwarp after a plain store
// orders it before the loads of its own warp (counted per thread: Block::syncwarps).
struct Granule {
  int writer = 0;        // thread + 1 of its last copy or plain store; 0: none yet
  int w_lo = 0, w_hi = 0;  // epochs from issue to landing; w_hi = kInFlight until it lands
  int reader = 0;        // thread + 1, kMany, or 0
  int r_epoch = -1;
  bool fenced = false;   // its writer ran fence.proxy.async after the copy landed (wgmma's reads need it)
  // A plain store (smem_write) lands at once (w_lo = w_hi = its epoch), and a __syncwarp
  // after it orders it before its own warp's later reads: the writer's count of
  // __syncwarp calls at the store; -1 for a copy.
  int w_syncwarps = -1;
  // Across warpgroups: the writer's block epoch when its write landed (kInFlight until
  // then), and the warpgroups (bits) that read the granule in block epoch r_bepoch. A
  // named barrier's epochs are its own threads' (named_sync), so where two warpgroups
  // synchronise apart their epoch numbers say nothing of each other; an access by
  // another warpgroup is ordered only by a __syncthreads between them.
  int w_bhi = 0;
  int r_bepoch = -1;
  unsigned r_wgs = 0;
};
constexpr int kInFlight = 1 << 30, kMany = -1;
inline Granule g_granules[sizeof g_dynamic_smem / 16];
inline long g_races = 0;
inline std::string g_first_race;
// The running launch's dynamic shared memory in bytes: an access past it would fault
// or reach another block's memory on a GPU, though this buffer is larger.
inline size_t g_smem_bytes = sizeof g_dynamic_smem;

inline Granule* granule(const void* p) {
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < g_dynamic_smem || c >= g_dynamic_smem + sizeof g_dynamic_smem) return nullptr;  // a static __shared__
  if ((size_t)(c - g_dynamic_smem) >= g_smem_bytes) {
    std::fprintf(stderr, "emu: shared byte %td accessed, past the launch's %zu bytes of dynamic shared memory\n",
                 c - g_dynamic_smem, g_smem_bytes);
    std::abort();
  }
  return &g_granules[(c - g_dynamic_smem) / 16];
}

// The running thread's warpgroup (as a bit), and whether another warpgroup's access to
// gr, a write that landed in block epoch w_bhi or reads in r_bepoch, has no
// __syncthreads between it and now.
inline unsigned wg_bit() { return 1u << (g_block->current >> 7); }
inline bool other_wg_write_unordered(const Granule& gr) {
  return gr.writer && (unsigned)(gr.writer - 1) >> 7 != g_block->current >> 7 &&
         g_block->block_epoch[g_block->current] <= gr.w_bhi;
}
inline bool other_wg_read_unordered(const Granule& gr) {
  return gr.r_bepoch == g_block->block_epoch[g_block->current] && (gr.r_wgs & ~wg_bit()) != 0;
}

// Counts a race and describes the first; `by_copy`: the other access is the granule's
// copy (else its reads).
inline void race(const char* what, const Granule& gr, bool by_copy) {
  if (g_races++ > 0) return;
  const Block& b = *g_block;
  char other[120];
  if (by_copy && gr.w_syncwarps >= 0)
    std::snprintf(other, sizeof other, "thread %d's store in epoch %d", gr.writer - 1, gr.w_lo);
  else if (by_copy)
    std::snprintf(other, sizeof other, "thread %d's copy, issued in epoch %d, %s", gr.writer - 1, gr.w_lo,
                  gr.w_hi == kInFlight ? "still in flight" : ("landed in epoch " + std::to_string(gr.w_hi)).c_str());
  else if (gr.reader == kMany)
    std::snprintf(other, sizeof other, "reads by several threads in epoch %d", gr.r_epoch);
  else
    std::snprintf(other, sizeof other, "a read by thread %d in epoch %d", gr.reader - 1, gr.r_epoch);
  char m[400];
  std::snprintf(m, sizeof m, "%s: block %u, shared byte %td, thread %u in epoch %d against %s", what, blockIdx.x,
                (&gr - g_granules) * 16, b.current, b.epoch[b.current], other);
  g_first_race = m;
}

// A read of [p, p + n) by the running thread.
inline void smem_read(const void* p, size_t n) {
  const Block& b = *g_block;
  const int self = (int)b.current + 1, e = b.epoch[b.current];
  for (size_t o = 0; o < n; o += 16) {
    Granule* gr = granule(static_cast<const unsigned char*>(p) + o);
    if (!gr) return;
    const bool warp_ordered =
        gr->w_syncwarps >= 0 && (gr->writer - 1) >> 5 == warp() && b.syncwarps[b.current] > gr->w_syncwarps;
    if (gr->writer == self && gr->w_hi == kInFlight) race("read of this thread's own copy before waiting for it", *gr, true);
    else if (gr->writer && gr->writer != self && e >= gr->w_lo && e <= gr->w_hi && !warp_ordered)
      race(gr->w_syncwarps >= 0 ? "read of another thread's store with no barrier after it"
                               : "read of another thread's copy with no barrier after it landed",
           *gr, true);
    else if (other_wg_write_unordered(*gr))
      race("read of another warpgroup's write with no __syncthreads after it", *gr, true);
    if (gr->r_epoch != e) gr->reader = self, gr->r_epoch = e;
    else if (gr->reader != self) gr->reader = kMany;
    const int be = b.block_epoch[b.current];
    if (gr->r_bepoch != be) gr->r_bepoch = be, gr->r_wgs = 0;
    gr->r_wgs |= wg_bit();
  }
}

// An access of n bytes at p: as on a GPU, a misaligned one ends the run (a
// misaligned-address error ends the context there). `what` names it in the message.
inline void require_aligned(const void* p, size_t n, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % n != 0) {
    std::fprintf(stderr, "emu: %zu-byte %s at a misaligned address %p\n", n, what, p);
    std::abort();
  }
}

// A plain store to [p, p + n) by the running thread (the staged output rows of the
// fixed-width kernel: store_rows_vec16). It races with another warp's read of the
// granule in this epoch, and with a copy not yet ordered before it; a read by another
// thread of its own warp needs a __syncwarp after the store (smem_read). Not seen: a
// read by the thread's own warp earlier in the epoch, another warp's store to the same
// granule in the epoch (the bytes may differ), and, as a granule keeps its last writer
// only, a missing __syncwarp before a read by that writer of a neighbour's bytes.
inline void smem_write(const void* p, size_t n) {
  require_aligned(p, n, "shared store");
  const Block& b = *g_block;
  const int self = (int)b.current + 1, e = b.epoch[b.current];
  for (size_t o = 0; o < n; o += 16) {
    Granule* gr = granule(static_cast<const unsigned char*>(p) + o);
    if (!gr) return;
    if (gr->r_epoch == e && (gr->reader == kMany || (gr->reader - 1) >> 5 != warp()))
      race("store over data another warp reads in this epoch", *gr, false);
    else if (gr->writer && gr->w_syncwarps < 0 && (gr->writer != self ? gr->w_hi >= e : gr->w_hi == kInFlight))
      race("store over a copy not yet ordered before it", *gr, true);
    else if (other_wg_read_unordered(*gr) || other_wg_write_unordered(*gr))
      race("store over another warpgroup's access with no __syncthreads since", *gr, false);
    gr->writer = self;
    gr->w_lo = gr->w_hi = e;
    gr->w_bhi = b.block_epoch[b.current];
    gr->w_syncwarps = b.syncwarps[b.current];
    gr->fenced = false;  // wgmma's reads need a fence after this write too
  }
}

// cp.async: 16 bytes to dst, from src_bytes of src and zeros after. The destination
// reads as all-ones (NaN) until the copy lands.
inline void async_copy16(void* dst, const void* src, int src_bytes) {
  // A GPU faults on a 16-byte cp.async from or to an address that is not 16-byte
  // aligned (a misaligned-address error that ends the context): so does this.
  require_aligned(dst, 16, "cp.async to shared memory");
  if (src_bytes > 0) require_aligned(src, 16, "cp.async from global memory");
  Block& b = *g_block;
  const int self = (int)b.current + 1, e = b.epoch[b.current];
  Block::Copy c{static_cast<unsigned char*>(dst), {}, -1};
  if (src_bytes > 0) std::memcpy(c.data, src, (size_t)src_bytes);
  if (Granule* gr = granule(dst)) {
    if (gr->r_epoch == e && gr->reader != self) race("copy issued over data another thread reads in this epoch", *gr, false);
    else if (gr->writer && (gr->writer != self ? gr->w_hi >= e : gr->w_hi == kInFlight))
      race("copy issued over another copy not yet ordered before it", *gr, true);
    else if (other_wg_read_unordered(*gr) || other_wg_write_unordered(*gr))
      race("copy issued over another warpgroup's access with no __syncthreads since", *gr, false);
    gr->writer = self;
    gr->w_lo = e;
    gr->w_hi = gr->w_bhi = kInFlight;
    gr->fenced = false;
    gr->w_syncwarps = -1;
  }
  std::memset(dst, 0xff, 16);
  b.copies[b.current].push_back(c);
}

inline void async_commit() {
  Block& b = *g_block;
  for (auto& c : b.copies[b.current])
    if (c.group < 0) c.group = b.groups[b.current];
  b.groups[b.current]++;
}

// cp.async.wait_group n: every committed group but the newest n lands.
inline void async_wait(int n) {
  Block& b = *g_block;
  auto& q = b.copies[b.current];
  const int limit = b.groups[b.current] - n, e = b.epoch[b.current];
  size_t kept = 0;
  for (auto& c : q) {
    if (c.group >= 0 && c.group < limit) {
      std::memcpy(c.dst, c.data, 16);
      if (Granule* gr = granule(c.dst)) {
        gr->w_hi = e;
        gr->w_bhi = b.block_epoch[b.current];
        b.unfenced[b.current].push_back((size_t)(gr - g_granules));
      }
    } else {
      q[kept++] = c;
    }
  }
  q.resize(kept);
}

inline void fiber_main() {
  Block& b = *g_block;
  (*b.body)();
  // Copies still in flight complete on a GPU too; nothing may read them (the thread
  // waited for none of them, so no barrier orders them).
  for (auto& c : b.copies[b.current]) std::memcpy(c.dst, c.data, 16);
  b.copies[b.current].clear();
  leave(b.warp[b.current >> 5]);
  leave(b.warpgroup[b.current >> 7]);
  leave(b.all);
  b.done[b.current] = true;
  b.running--;
  _longjmp(b.scheduler, 1);  // never returns: its ucontext has nowhere to go
}

// Runs `body` as grid x block threads (each up to two-dimensional), block after block
// in linear order.
inline void run(dim3 grid3, dim3 block3, size_t smem, const std::function<void()>& body) {
  if (grid3.z != 1 || block3.z != 1) {
    std::fprintf(stderr, "emu: three-dimensional launches are not emulated\n");
    std::abort();
  }
  const unsigned grid = grid3.x * grid3.y, block = block3.x * block3.y;
  if (smem > sizeof g_dynamic_smem) {
    std::fprintf(stderr, "emu: %zu bytes of dynamic shared memory requested, %zu available\n", smem, sizeof g_dynamic_smem);
    std::abort();
  }
  // Fiber stacks, kept from launch to launch (allocating them per block was most of
  // the run time).
  constexpr size_t kStack = 128 * 1024;
  static std::vector<std::unique_ptr<char[]>> stacks;
  while (stacks.size() < block) stacks.emplace_back(new char[kStack]);
  gridDim = {grid3.x, grid3.y, 1};
  blockDim = {block3.x, block3.y, 1};
  g_smem_bytes = smem;
  for (unsigned bi = 0; bi < grid; bi++) {
    // Each block's shared memory starts as all-ones bytes (NaN in every float type), so
    // a read of something no thread wrote shows instead of finding the last block's data.
    std::memset(g_dynamic_smem, 0xff, smem);
    std::fill(g_granules, g_granules + (smem + 15) / 16, Granule{});
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
    blockIdx = {bi % grid3.x, bi / grid3.x, 0};
    // Sweeps alternate between ascending and descending thread order, so that a read of
    // another thread's write that lacks a barrier between them sees the wrong value in
    // one order or the other.
    for (unsigned sweep = 0; b.running > 0; sweep++)
      for (unsigned i = 0; i < block; i++) {
        const unsigned t = sweep % 2 ? block - 1 - i : i;
        if (b.done[t]) continue;
        b.current = t;
        threadIdx = {t % block3.x, t / block3.x, 0};
        if (_setjmp(b.scheduler) == 0) {
          if (b.started[t]) _longjmp(b.resume[t], 1);
          b.started[t] = true;
          setcontext(&b.fibers[t]);
        }
      }
    // An arrival nobody waited for (bar.arrive past the last bar.sync) is left in the
    // barrier's count when the block ends; the kernels keep their counts balanced.
    for (unsigned id = 1; id < b.named.size(); id++)
      if (b.named[id].arrived != 0) {
        std::fprintf(stderr, "emu: block %u ends with %u arrivals at named barrier %u not waited for\n", bi,
                     b.named[id].arrived, id);
        std::abort();
      }
    g_block = nullptr;
  }
  g_smem_bytes = sizeof g_dynamic_smem;
}

// kernel<<<grid, block, smem, stream>>>(args...) as Launcher{grid, block, smem} % kernel.
struct Launcher {
  dim3 grid, block;
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
  (::perceiver::emu::Launcher{dim3(grid), dim3(block), (size_t)(smem)} % (__VA_ARGS__))
#define PERCEIVER_DYNAMIC_SMEM(name) unsigned char* name = ::perceiver::emu::g_dynamic_smem

inline void __syncthreads() {
  perceiver::emu::wait(perceiver::emu::g_block->all);
  perceiver::emu::g_block->epoch[perceiver::emu::g_block->current]++;
  perceiver::emu::g_block->block_epoch[perceiver::emu::g_block->current]++;
}
inline void __syncwarp(unsigned = 0xffffffffu) {
  perceiver::emu::warp_sync();
  perceiver::emu::g_block->syncwarps[perceiver::emu::g_block->current]++;
}
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

// Device math the host library lacks. The _rn forms round each operation on its own,
// as the host does without FMA contraction (ISO C++ mode, no -march with FMA).
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }

// Atomics: the fibers run one at a time on one OS thread, so a plain
// read-modify-write is atomic.
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  if (v < old) *p = v;
  return old;
}

inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}

// Device-side min/max on ints, as CUDA provides them.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
