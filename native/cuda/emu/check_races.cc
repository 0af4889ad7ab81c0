// The emulation's own check of its race detection (emu.h): small kernels that leave
// out one thing that orders their cp.async copies and ldmatrix reads.
#include "emu.h"  // first: the kernel headers below take its emulation
#include "../attention_mma.cuh"
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

}  // namespace

void check_races() {
  struct Scenario {
    Order order;
    const char* name;
    const char* expect;  // the start of the first race's description; null: none
  };
  const Scenario scenarios[] = {
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
  for (const Scenario& sc : scenarios) {
    perceiver::emu::g_races = 0;
    int wrong = 0;
    PERCEIVER_LAUNCH(1, 64, 2 * 64 * 16, nullptr, race_kernel)(sc.order, src.data(), &wrong);
    const long races = perceiver::emu::g_races;
    const std::string& first = perceiver::emu::g_first_race;
    const bool ok = sc.expect ? races > 0 && first.rfind(sc.expect, 0) == 0 : races == 0 && wrong == 0;
    g_checks++;
    if (!ok) g_failures++;
    std::printf("%s races: %-52s %ld race(s)%s%s\n", ok ? "PASS" : "FAIL", sc.name, races, races ? "; the first: " : "",
                races ? first.c_str() : (wrong ? "; wrong values" : ""));
    perceiver::emu::g_races = 0;
  }
}

}  // namespace perceiver::emu::check
