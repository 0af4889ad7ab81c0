// The emulation's own check of its race detection (emu.h): small kernels that leave
// out one thing that orders their cp.async copies and ldmatrix reads (by a block
// barrier, or a named barrier over part of the block), their plain stores and loads,
// or their copies and a warpgroup product (wgmma_emu.h), or the product and the read
// of its result.
#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention_mma.cuh"
#include "../wgmma.cuh"
#include "../launch.cuh"
#include "check.h"

namespace perceiver::emu::check {

namespace {

// Two warps; each thread copies one 16-byte chunk (chunk i of a 64-chunk tile holds the
// 16-bit values 8i .. 8i + 7) into shared memory with cp.async, and each warp then
// reads the other warp's 32 chunks with ldmatrix, so every read depends on other
// threads' copies. Each scenario leaves out one thing that orders them.
enum class Order { Ordered, NoBarrier, NoWait, OwnBeforeWait, NewestGroupUnwaited, OverwriteWhileRead };

void race_kernel(Order order, const uint16_t* src, int* wrong) {
  using namespace perceiver::cuda::attn;
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* tile = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* tile2 = tile + 64 * 8;
  const int t = (int)threadIdx.x, warp = t / 32, lane = t % 32;
  const int theirs = (warp ^ 1) * 32 + lane;  // the chunk whose address this lane gives
  const uint16_t* read_from = tile;
  cp_async_16(tile + t * 8, src + t * 8, 16);
  cp_async_commit();
  if (order == Order::NewestGroupUnwaited) {
    cp_async_16(tile2 + t * 8, src + t * 8, 16);
    cp_async_commit();
    cp_async_wait<1>();  // the first group only
    read_from = tile2;
  } else if (order != Order::NoWait && order != Order::OwnBeforeWait) {
    cp_async_wait<0>();
  }
  if (order != Order::NoBarrier && order != Order::OwnBeforeWait) __syncthreads();
  uint32_t r[4];
  ldmatrix_x4(r, (order == Order::OwnBeforeWait ? tile + t * 8 : read_from + theirs * 8));
  if (order == Order::OverwriteWhileRead) cp_async_16(tile + t * 8, src + t * 8, 16);  // no barrier since the reads
  cp_async_wait<0>();
  // Register m: elements [lane / 4][2 (lane % 4) .. + 1] of matrix m, whose row r came
  // from lane 8m + r.
  if (order == Order::Ordered)
    for (int m = 0; m < 4; m++) {
      const int chunk = (warp ^ 1) * 32 + 8 * m + lane / 4, col = 2 * (lane % 4);
      if (r[m] != ((uint32_t)(chunk * 8 + col) | (uint32_t)(chunk * 8 + col + 1) << 16)) (*wrong)++;
    }
}

// Two warps; each thread stores its 16-byte chunk of a tile (chunk i holds 8i .. 8i + 7)
// with 32-bit stores and reads another's with a 16-byte load, as the fixed-width
// kernel stages its output rows (store_rows_vec16). A warp barrier orders a thread's
// store before the reads of its own warp; only a block barrier before another warp's.
enum class StoreOrder { SameWarpSynced, SameWarpUnsynced, OtherWarpSynced, StoreOverRead };

void store_race_kernel(StoreOrder order, const uint16_t* src, int* wrong) {
  using namespace perceiver::cuda::attn;
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* tile = reinterpret_cast<uint16_t*>(smem_raw);
  const int t = (int)threadIdx.x, warp = t / 32, lane = t % 32;
  if (order == StoreOrder::StoreOverRead) {
    // The tile copied and ordered, read by the other warp, then stored over with no
    // barrier after those reads.
    cp_async_16(tile + t * 8, src + t * 8, 16);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    uint32_t r[4];
    ldmatrix_x4(r, tile + ((warp ^ 1) * 32 + lane) * 8);
  }
  for (int w = 0; w < 4; w++) sts_u32(tile + t * 8 + 2 * w, (uint32_t)(t * 8 + 2 * w) | (uint32_t)(t * 8 + 2 * w + 1) << 16);
  if (order != StoreOrder::SameWarpUnsynced) __syncwarp();
  const int chunk = order == StoreOrder::OtherWarpSynced ? (warp ^ 1) * 32 + lane : warp * 32 + (lane ^ 1);
  const uint4 v = lds_u128(tile + chunk * 8);
  if (order == StoreOrder::SameWarpSynced) {
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
    for (int w = 0; w < 4; w++)
      if (words[w] != ((uint32_t)(chunk * 8 + 2 * w) | (uint32_t)(chunk * 8 + 2 * w + 1) << 16)) (*wrong)++;
  }
}

// Four warps in two halves of two, as the warpgroup kernel's ping-pong tiers are two
// warpgroups apart: each half copies its 64 chunks into its own tile, and each warp
// then reads its partner's 32 with ldmatrix, after a named barrier over its half
// (bar.sync 1 + half, 64). An arrival (bar.arrive) does not wait, so it orders nothing
// for the thread that arrives.
enum class NamedOrder { Synced, NoBarrier, ArriveOnly };

void named_race_kernel(NamedOrder order, const uint16_t* src, int* wrong) {
  using namespace perceiver::cuda::attn;
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  const int t = (int)threadIdx.x, half = t / 64, warp = t / 32, lane = t % 32, i = t % 64;
  uint16_t* tile = reinterpret_cast<uint16_t*>(smem_raw) + half * 64 * 8;
  cp_async_16(tile + i * 8, src + i * 8, 16);
  cp_async_commit();
  cp_async_wait<0>();
  if (order == NamedOrder::Synced) named_barrier_sync(1 + half, 64);
  else if (order == NamedOrder::ArriveOnly) named_barrier_arrive(1 + half, 64);
  const int theirs = ((warp % 2) ^ 1) * 32 + lane;
  uint32_t r[4];
  ldmatrix_x4(r, tile + theirs * 8);
  if (order == NamedOrder::Synced)
    for (int m = 0; m < 4; m++) {
      const int chunk = ((warp % 2) ^ 1) * 32 + 8 * m + lane / 4, col = 2 * (lane % 4);
      if (r[m] != ((uint32_t)(chunk * 8 + col) | (uint32_t)(chunk * 8 + col + 1) << 16)) (*wrong)++;
    }
}

// One warpgroup: a 64 x 16 A and a 32 x 16 B (K-major, as attention_wgmma.cuh lays
// out Q and K) copied with cp.async, one m64n32k16 product, and its result checked
// against the same product in plain loops. Each scenario leaves out one step.
enum class WgOrder { Ordered, NoFence, ReadBeforeWait };

void wgmma_race_kernel(WgOrder order, const uint16_t* a_src, const uint16_t* b_src, int* wrong) {
  using namespace perceiver::cuda::attn;
  PERCEIVER_DYNAMIC_SMEM(smem_raw);
  uint16_t* As = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* Bs = As + 64 * 16;
  const int t = (int)threadIdx.x;
  // Chunk idx of a 16-wide tile: row (idx / 8) / 2 · 8 + idx % 8, columns (idx / 8) % 2 · 8.
  auto copy = [&](uint16_t* s, const uint16_t* g, int idx) {
    cp_async_16(s + idx * 8, g + ((idx >> 3) / 2 * 8 + (idx & 7)) * 16 + (idx >> 3) % 2 * 8, 16);
  };
  copy(As, a_src, t);
  if (t < 64) copy(Bs, b_src, t);
  cp_async_commit();
  cp_async_wait<0>();
  if (order != WgOrder::NoFence) fence_proxy_async();
  __syncthreads();
  float d[16];
  wgmma_fence();
  wgmma_ss<32, __nv_bfloat16>(d, wgmma_desc(As, 128, 256), wgmma_desc(Bs, 128, 256), 0);
  wgmma_commit();
  if (order != WgOrder::ReadBeforeWait) wgmma_wait<0>();
  float got[16];
  for (int j = 0; j < 16; j++) got[j] = d[j];
  wgmma_wait<0>();
  // d[4i + e]: row 16·warp + lane / 4 (+ 8 for e >= 2), column 8i + 2 (lane % 4) + e % 2.
  const int warp = t / 32, g = (t % 32) / 4, tt = t % 4;
  for (int j = 0; j < 16; j++) {
    const int r = 16 * warp + g + 8 * ((j % 4) / 2), c = 8 * (j / 4) + 2 * tt + j % 2;
    float want = 0;
    for (int k = 0; k < 16; k++) want += bits_to_float<__nv_bfloat16>(a_src[r * 16 + k]) * bits_to_float<__nv_bfloat16>(b_src[c * 16 + k]);
    if (!(got[j] == want)) (*wrong)++;
  }
}

// One scenario of a kernel above: what it leaves out (its Order enum), its line's name,
// and the start of the first race's description (null: none).
template <class O>
struct Scenario {
  O order;
  const char* name;
  const char* expect;
};

}  // namespace

void check_races() {
  // One scenario: `launch` runs its kernel, counting wrong values read into its
  // argument. It passes where the first race's description starts with `expect` (no
  // race where that is null) and values read wrong exactly where `expect_wrong` says.
  auto scenario = [](const char* name, const char* expect, bool expect_wrong, auto&& launch) {
    perceiver::emu::g_races = 0;
    int wrong = 0;
    launch(&wrong);
    const long races = perceiver::emu::g_races;
    const std::string& first = perceiver::emu::g_first_race;
    const bool ok = (expect ? races > 0 && first.rfind(expect, 0) == 0 : races == 0) && (wrong > 0) == expect_wrong;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s races: %-52s %ld race(s)%s%s%s\n", ok ? "PASS" : "FAIL", name, races, races ? "; the first: " : "",
                races ? first.c_str() : "", wrong ? "; wrong values" : "");
    perceiver::emu::g_races = 0;
  };

  const Scenario<Order> scenarios[] = {
      {Order::Ordered, "wait, barrier, read", nullptr},
      // Warp 0 runs first here and reads warp 1's chunks before they are copied; on a
      // GPU either side may come first.
      {Order::NoBarrier, "wait, read (no barrier)", "copy issued over data another thread reads in this epoch"},
      {Order::NoWait, "barrier, read (no wait)", "read of another thread's copy with no barrier after it landed"},
      {Order::OwnBeforeWait, "read of one's own chunk before the wait", "read of this thread's own copy before waiting for it"},
      {Order::NewestGroupUnwaited, "wait_group 1, read of the newest group",
       "read of another thread's copy with no barrier after it landed"},
      {Order::OverwriteWhileRead, "copy over the tile with no barrier after the reads",
       "copy issued over data another thread reads in this epoch"},
  };
  std::vector<uint16_t> src(64 * 8);
  for (size_t i = 0; i < src.size(); i++) src[i] = (uint16_t)i;
  // Every scenario of a table, run(order, wrong) launching its kernel; none may read
  // wrong values (the kernels count them only in the ordered scenarios).
  auto each = [&](const auto& table, auto&& run) {
    for (const auto& sc : table) scenario(sc.name, sc.expect, false, [&](int* wrong) { run(sc.order, wrong); });
  };
  each(scenarios, [&](Order o, int* wrong) { PERCEIVER_LAUNCH(1, 64, 2 * 64 * 16, nullptr, race_kernel)(o, src.data(), wrong); });

  const Scenario<StoreOrder> store_scenarios[] = {
      {StoreOrder::SameWarpSynced, "stores, __syncwarp, a load from the same warp", nullptr},
      {StoreOrder::SameWarpUnsynced, "stores, a load from the same warp (no __syncwarp)",
       "read of another thread's store with no barrier after it"},
      // Warp 0 runs first here and reads warp 1's chunks before they are stored; on a
      // GPU either side may come first.
      {StoreOrder::OtherWarpSynced, "stores, __syncwarp, a load from the other warp",
       "store over data another warp reads in this epoch"},
      {StoreOrder::StoreOverRead, "stores over the other warp's reads (no barrier)",
       "store over data another warp reads in this epoch"},
  };
  each(store_scenarios,
       [&](StoreOrder o, int* wrong) { PERCEIVER_LAUNCH(1, 64, 64 * 16, nullptr, store_race_kernel)(o, src.data(), wrong); });

  const Scenario<NamedOrder> named_scenarios[] = {
      {NamedOrder::Synced, "two halves: wait, named barrier over the half, read", nullptr},
      // Warp 0 runs first here and reads warp 1's chunks before they are copied.
      {NamedOrder::NoBarrier, "two halves: wait, read (no named barrier)",
       "copy issued over data another thread reads in this epoch"},
      {NamedOrder::ArriveOnly, "two halves: wait, bar.arrive (no sync), read",
       "copy issued over data another thread reads in this epoch"},
  };
  each(named_scenarios,
       [&](NamedOrder o, int* wrong) { PERCEIVER_LAUNCH(1, 128, 2 * 64 * 16, nullptr, named_race_kernel)(o, src.data(), wrong); });

  struct WgScenario {
    WgOrder order;
    const char* name;
    const char* expect;  // the start of the first race's description; null: none
    bool wrong;          // the product's result reads wrong (NaN) where it is read
  };
  const WgScenario wg_scenarios[] = {
      {WgOrder::Ordered, "wgmma: wait, fence, barrier, product, wait, read", nullptr, false},
      {WgOrder::NoFence, "wgmma: no fence.proxy.async after the copies",
       "wgmma read of a copy its thread did not fence for the async proxy", false},
      {WgOrder::ReadBeforeWait, "wgmma: the result read before wgmma_wait", nullptr, true},
  };
  // Small integers, exact in bf16 and in their sums.
  std::vector<uint16_t> a(64 * 16), b(32 * 16);
  for (int i = 0; i < 64 * 16; i++) a[i] = float_to_bits<__nv_bfloat16>((float)((i / 16 + i % 16) % 5 - 2));
  for (int i = 0; i < 32 * 16; i++) b[i] = float_to_bits<__nv_bfloat16>((float)((i / 16) * (i % 16) % 7 - 3));
  for (const WgScenario& sc : wg_scenarios)
    scenario(sc.name, sc.expect, sc.wrong, [&](int* wrong) {
      PERCEIVER_LAUNCH(1, 128, (64 + 32) * 16 * 2, nullptr, wgmma_race_kernel)(sc.order, a.data(), b.data(), wrong);
    });
}

}  // namespace perceiver::emu::check
