// native/cuda/conv2d.cu compiled for the CPU emulation (emu.h): the same source, its
// launches running as fibers.
#include "emu.h"

#include "../conv2d.cu"
