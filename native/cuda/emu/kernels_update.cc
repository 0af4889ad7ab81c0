// native/cuda/update.cu compiled for the CPU emulation (emu.h): the same source, its
// launches running as fibers.
#include "emu.h"

#include "../update.cu"
