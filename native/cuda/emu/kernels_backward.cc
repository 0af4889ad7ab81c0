// native/cuda/backward.cu compiled for the CPU emulation (emu.h): the same source, its
// launches and barriers running as fibers.
#include "emu.h"

#include "../backward.cu"
