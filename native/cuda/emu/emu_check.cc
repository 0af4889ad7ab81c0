// The emulation's checks (native/cuda/emu/README.md): CUDA kernels run from their own
// source on the CPU (emu.h) against double-precision references, or bit for bit against
// the CPU backend where the GPU must match it; one file per family (check_*.cc). A
// check of index arithmetic, fragment layouts, barriers and dispatch for machines
// without a GPU (test/cuda-emu.test.ts builds and runs it; so does
// scripts/device-check.sh --prepare, before anything goes to a GPU):
//   g++ -std=c++20 -O1 -ffp-contract=off -I<cuda>/include -Inative native/cuda/emu/*.cc -o emu_check
//   ./emu_check [all | attention | composed | flash | rows | elementwise | training | ops | gemm | tune | races] [name filter]
// The filter selects attention, composed and flash shapes by name. "rows" takes the 16-byte
// kernels, as on a GPU, unless PERCEIVER_CUDA_VECTOR_KERNELS=0 (then their fallbacks);
// the attention switches route "attention"'s public entry.
#include <cstdio>
#include <string>

#include "check.h"

using namespace perceiver::emu::check;

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "all", filter = argc > 2 ? argv[2] : "";
  if (what != "all" && what != "attention" && what != "composed" && what != "flash" && what != "rows" && what != "training" &&
      what != "ops" && what != "elementwise" && what != "gemm" && what != "tune" && what != "races") {
    std::fprintf(stderr, "usage: %s [all | attention | composed | flash | rows | elementwise | training | ops | gemm | tune | races] [filter]\n",
                 argv[0]);
    return 2;
  }
  if (what == "all" || what == "races") check_races();
  if (what == "all" || what == "attention") check_attention(filter);
  if (what == "all" || what == "composed") check_composed(filter);
  if (what == "all" || what == "flash") check_flash(filter);
  if (what == "all" || what == "rows") check_rows();
  if (what == "all" || what == "elementwise") check_elementwise();
  if (what == "all" || what == "training") check_training();
  if (what == "all" || what == "ops") check_ops();
  if (what == "all" || what == "gemm") check_gemm_split();
  if (what == "all" || what == "tune") check_tune();
  std::printf("%s: %d failure(s) in %d checks\n", g_failures ? "FAILED" : "OK", g_failures, g_checks);
  return g_failures ? 1 : 0;
}
