// native/cuda/attention_gemm.cu compiled for the CPU emulation (emu.h): its kernels run
// as fibers, and its products go through host.cc's matmul, a plain loop in place of
// cuBLASLt.
#include "emu.h"

#include "../attention_gemm.cu"
