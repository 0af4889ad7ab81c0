// native/cpu/update.cc for the emulation's checks: the CPU backend's own kernels, which
// the emulated CUDA kernels must match bit for bit (emu_check.cc, "ops").
#include "../../cpu/update.cc"
