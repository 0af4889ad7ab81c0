// Kernel launches and dynamic shared memory in the files that native/cuda/emu runs on
// the CPU (attention.cu, elementwise.cu, reduce.cu) go through these, so that the
// emulation (which defines them first) can run the same source. Here they are the
// plain CUDA forms. The kernel comes last because its template arguments may hold
// commas.
#pragma once

#ifndef PERCEIVER_CUDA_EMULATION
#define PERCEIVER_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define PERCEIVER_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif
