// native/threadpool.cc, which the CPU kernels of cpu_*.cc run on.
#include "../../threadpool.cc"
