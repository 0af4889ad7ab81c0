// native/cuda/attention_backward.cu (the flash gradient) compiled for the CPU emulation
// (emu.h): its kernels run as fibers.
#include "emu.h"

#include "../attention_backward.cu"
