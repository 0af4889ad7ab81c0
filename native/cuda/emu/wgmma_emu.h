// wgmma.cuh's building blocks on the CPU (native/cuda/emu): the warpgroup products with
// the PTX ISA's fragment layouts and shared-memory descriptors (swizzled or not) as
// wgmma.cuh lists them,
// computed when the warpgroup's 128 threads have all issued one (a warpgroup barrier),
// products accumulated in float.
//
// Asynchronous as on a GPU: a product's result reaches its thread's accumulator
// registers only when that thread's wgmma_wait covers the product's group, and the
// registers read as NaN from the issue until then, so a kernel that reads S or O
// before waiting fails its check. A product chained onto the same accumulators
// (Q Kᵀ's k steps) starts from the pending result, as the tensor cores do. Shared
// memory a product reads goes through the race checks of emu.h, and must also have
// been fenced for the asynchronous proxy (fence_proxy_async) by the thread whose
// cp.async wrote it, after the copy landed: a read of unfenced data counts as a race.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "bits.h"
#include "emu.h"

namespace perceiver::cuda::attn {

namespace wgmma_detail {
using ::perceiver::emu::g_block;
using ::perceiver::emu::g_dynamic_smem;

// What each thread of the warpgroup hands in for one product.
struct Issue {
  float* d;
  const float* in;  // the accumulators it starts from (pending result or registers)
  uint32_t a[4];
  uint64_t desc_a, desc_b;
  int scale_d;
};
inline Issue g_issue[1024];  // by thread in the block; blocks run one at a time

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "emu: wgmma: %s\n", what);
  std::abort();
}

// Where dynamic shared memory starts in the emulated shared window: a multiple of 16
// bytes off every 1024-byte boundary, so that a kernel which lays its swizzled tiles out
// from the start of dynamic shared memory rather than from a pattern boundary of the
// window is caught, and the round-up to that boundary is exercised.
constexpr uint32_t kWindowBase = 528;

// A descriptor's fields (wgmma.cuh): start (a window address: kWindowBase plus an
// offset into dynamic shared memory), LBO, SBO, and the swizzle pattern's row width in
// bytes (0: no swizzling).
inline uint32_t desc_addr(uint64_t desc) { return (uint32_t)(desc & 0x3FFF) << 4; }
inline uint32_t desc_lbo(uint64_t desc) { return (uint32_t)((desc >> 16) & 0x3FFF) << 4; }
inline uint32_t desc_sbo(uint64_t desc) { return (uint32_t)((desc >> 32) & 0x3FFF) << 4; }
inline uint32_t desc_swizzle(uint64_t desc) {
  constexpr uint32_t kWidth[4] = {0, 128, 64, 32};
  return kWidth[desc >> 62];
}

// Checks what the emulation does not model: a base offset, and a swizzled operand whose
// start is outside its pattern's first row (the hardware then needs the base offset)
// or, K-major, whose 32 bytes of k run past that row.
inline void check_desc(uint64_t desc, bool k_major_operand) {
  if (((desc >> 49) & 7) != 0) fail("a base offset is not emulated");
  const uint32_t w = desc_swizzle(desc), a = desc_addr(desc);
  if (w == 0) return;
  if (a % (8 * w) >= w) fail("a swizzled operand must start in its pattern's first row");
  if (k_major_operand && a % w + 32 > w) fail("a swizzled K-major operand's 16 k must lie in one row");
}

// The byte offset (from the descriptor's start) of element (row r, k) of a K-major
// operand, and of (n, k) of an MN-major one, before any swizzle (wgmma.cuh).
inline size_t k_major(uint64_t desc, int r, int k) {
  if (const uint32_t w = desc_swizzle(desc))
    return (size_t)(r % 8) * w + (size_t)(r / 8) * desc_sbo(desc) + (size_t)k * 2;
  return (size_t)(r % 8) * 16 + (size_t)(r / 8) * desc_sbo(desc) + (size_t)(k % 8) * 2 + (size_t)(k / 8) * desc_lbo(desc);
}
inline size_t mn_major(uint64_t desc, int n, int k) {
  if (const uint32_t w = desc_swizzle(desc)) {
    const int per_row = (int)w / 2;
    return (size_t)(n % per_row) * 2 + (size_t)(n / per_row) * desc_lbo(desc) + (size_t)(k % 8) * w +
           (size_t)(k / 8) * desc_sbo(desc);
  }
  return (size_t)(n % 8) * 2 + (size_t)(n / 8) * desc_sbo(desc) + (size_t)(k % 8) * 16 + (size_t)(k / 8) * desc_lbo(desc);
}

// Where a position's bytes are: its address with the 16-byte chunk bits XORed with the
// address bits from 7 up (3 of them at 128-byte patterns, 2 at 64, 1 at 32).
inline size_t swizzled(size_t a, uint32_t w) { return w == 0 ? a : a ^ (((a >> 7) & (w / 16 - 1)) << 4); }

// A 16-bit element at byte offset off from the descriptor's start, through the race
// checks (once per 16-byte granule: every product here reads whole granules).
template <class T>
float smem_elem(uint64_t desc, size_t off) {
  const size_t a = swizzled(desc_addr(desc) + off, desc_swizzle(desc));
  if (a < kWindowBase || a - kWindowBase + 2 > sizeof g_dynamic_smem) fail("operand outside dynamic shared memory");
  const unsigned char* p = g_dynamic_smem + (a - kWindowBase);
  const void* granule_start = reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) & ~(uintptr_t)15);
  ::perceiver::emu::smem_read(granule_start, 16);
  if (auto* gr = ::perceiver::emu::granule(granule_start); gr && gr->writer && !gr->fenced)
    ::perceiver::emu::race("wgmma read of a copy its thread did not fence for the async proxy", *gr, true);
  uint16_t u;
  std::memcpy(&u, p, 2);
  return ::perceiver::emu::bits_to_float<T>(u);
}

// One m64nNk16 product for the running thread's warpgroup. a_smem: A from shared
// memory (K-major), else from the threads' registers; B K-major or (b_trans) MN-major.
template <int N, class T>
void product(float (&d)[N / 2], const uint32_t* a, uint64_t desc_a, uint64_t desc_b, int scale_d, bool a_smem,
             bool b_trans) {
  auto& b = *g_block;
  const unsigned self = b.current, wg0 = self & ~127u;
  // The accumulators this product starts from: a pending result for the same registers
  // (a chain of products), else the registers.
  const float* in = d;
  for (auto& r : b.results[self])
    if (r.dst == d) in = r.vals.data();
  g_issue[self] = {d, in, {}, desc_a, desc_b, scale_d};
  if (a) std::memcpy(g_issue[self].a, a, sizeof g_issue[self].a);
  ::perceiver::emu::warpgroup_sync();
  if (self == wg0) {
    if (a_smem) check_desc(desc_a, true);
    check_desc(desc_b, !b_trans);
    for (unsigned i = 1; i < 128 && wg0 + i < b.fibers.size(); i++)
      if (g_issue[wg0 + i].desc_b != desc_b || (a_smem && g_issue[wg0 + i].desc_a != desc_a) ||
          g_issue[wg0 + i].scale_d != scale_d)
        fail("the threads of a warpgroup issued different operands");
    auto A = [&](int r, int k) -> float {
      if (a_smem) return smem_elem<T>(desc_a, k_major(desc_a, r, k));
      // Warp r / 16's A fragment (mma.sync's m16n8k16 layout).
      const int rr = r % 16, reg = (k >= 8 ? 2 : 0) + (rr >= 8 ? 1 : 0);
      const Issue& src = g_issue[wg0 + (r / 16) * 32 + (rr % 8) * 4 + (k % 8) / 2];
      return ::perceiver::emu::bits_to_float<T>((uint16_t)(src.a[reg] >> (16 * (k % 2))));
    };
    auto B = [&](int k, int n) -> float {
      return smem_elem<T>(desc_b, b_trans ? mn_major(desc_b, n, k) : k_major(desc_b, n, k));
    };
    float a_tile[64][16], b_tile[16][N];
    for (int r = 0; r < 64; r++)
      for (int k = 0; k < 16; k++) a_tile[r][k] = A(r, k);
    for (int k = 0; k < 16; k++)
      for (int n = 0; n < N; n++) b_tile[k][n] = B(k, n);
    for (unsigned i = 0; i < 128 && wg0 + i < b.fibers.size(); i++) {
      const Issue& is = g_issue[wg0 + i];
      const int w = (int)i / 32, g = (int)(i % 32) / 4, t = (int)i % 4;
      std::vector<float> out(N / 2);
      for (int j = 0; j < N / 2; j++) {
        const int blk = j / 4, e = j % 4;
        const int r = 16 * w + g + 8 * (e / 2), c = 8 * blk + 2 * t + e % 2;
        float acc = is.scale_d ? is.in[j] : 0.f;
        for (int k = 0; k < 16; k++) acc += a_tile[r][k] * b_tile[k][c];
        out[j] = acc;
      }
      auto& pending = b.results[wg0 + i];
      bool replaced = false;
      for (auto& r : pending)
        if (r.dst == is.d) r.vals = out, r.group = -1, replaced = true;
      if (!replaced) pending.push_back({is.d, std::move(out), -1});
    }
  }
  ::perceiver::emu::warpgroup_sync();
  for (auto& x : d) x = std::numeric_limits<float>::quiet_NaN();  // undefined until the wait
}
}  // namespace wgmma_detail

// An offset into dynamic shared memory, from kWindowBase, stands in for the
// shared-window address.
inline uint32_t smem_window(const void* p) {
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < ::perceiver::emu::g_dynamic_smem || c >= ::perceiver::emu::g_dynamic_smem + sizeof ::perceiver::emu::g_dynamic_smem)
    wgmma_detail::fail("not an address in dynamic shared memory");
  return wgmma_detail::kWindowBase + (uint32_t)(c - ::perceiver::emu::g_dynamic_smem);
}

inline uint64_t wgmma_desc(const void* p, uint32_t lbo, uint32_t sbo, uint32_t layout = 0) {
  const uint32_t a = smem_window(p);
  if (a % 16) wgmma_detail::fail("a descriptor must point at 16-byte aligned dynamic shared memory");
  return wgmma_desc_bits(a, lbo, sbo, layout);
}

// Named barriers (wgmma.cuh): emu.h's, where a sync ends its threads' epoch as
// __syncthreads does and an arrival does not.
inline void named_barrier_sync(int id, int n) { ::perceiver::emu::named_sync(id, n); }
inline void named_barrier_arrive(int id, int n) { ::perceiver::emu::named_arrive(id, n); }

inline void wgmma_fence() {}
inline void wgmma_fence_operand(float&) {}
inline void wgmma_fence_operand(uint32_t&) {}

inline void wgmma_commit() {
  auto& b = *::perceiver::emu::g_block;
  for (auto& r : b.results[b.current])
    if (r.group < 0) r.group = b.wgmma_groups[b.current];
  b.wgmma_groups[b.current]++;
}

// Every committed group but the newest n lands in its registers.
template <int n>
void wgmma_wait() {
  auto& b = *::perceiver::emu::g_block;
  auto& q = b.results[b.current];
  const int limit = b.wgmma_groups[b.current] - n;
  size_t kept = 0;
  for (size_t i = 0; i < q.size(); i++) {
    if (q[i].group >= 0 && q[i].group < limit) std::memcpy(q[i].dst, q[i].vals.data(), q[i].vals.size() * sizeof(float));
    else if (kept++ != i) q[kept - 1] = std::move(q[i]);  // never onto itself, which would empty it
  }
  q.resize(kept);
}

// Marks this thread's landed copies as visible to the asynchronous proxy.
inline void fence_proxy_async() {
  auto& b = *::perceiver::emu::g_block;
  const int self = (int)b.current + 1;
  for (size_t i : b.unfenced[b.current])
    if (::perceiver::emu::g_granules[i].writer == self) ::perceiver::emu::g_granules[i].fenced = true;
  b.unfenced[b.current].clear();
}

template <int N, class T>
void wgmma_ss(float (&d)[N / 2], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  wgmma_detail::product<N, T>(d, nullptr, desc_a, desc_b, scale_d, true, false);
}

template <int N, class T>
void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  wgmma_detail::product<N, T>(d, a, 0, desc_b, scale_d, false, true);
}

}  // namespace perceiver::cuda::attn
