// native/cuda/attention_tune.cu compiled for the CPU emulation: its events are the
// host's clock (host.cc), so its timings are the emulated paths' own.
#include "emu.h"

#include "../attention_tune.cu"
