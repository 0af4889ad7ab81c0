// CUDA kernels, one family per file with the CPU's names (elementwise.cu,
// reduce.cu, ...). Each enqueues on `stream` and never synchronises, except
// where a result must be checked on the host (embedding ids), which says so.
// The backend class in backend.cu only forwards to these.
#pragma once
#include <cuda_runtime.h>

#include "../backend.h"

namespace perceiver {
namespace cuda {

void fill(const View& out, double value, cudaStream_t s);
void arange(const View& out, double start, double step, cudaStream_t s);
void random_normal(const View& out, uint64_t seed, float mean, float stddev, cudaStream_t s);
void random_uniform(const View& out, uint64_t seed, float low, float high, cudaStream_t s);
void copy(const View& src, const View& dst, cudaStream_t s);
void unary(UnaryOp op, const View& x, const View& out, float alpha, float beta, cudaStream_t s);
void binary(BinaryOp op, const View& a, const View& b, const View& out, cudaStream_t s);
void where(const View& cond, const View& a, const View& b, const View& out, cudaStream_t s);
// Bytes of workspace reduce needs (the 16-byte column sums' partials; 0 otherwise).
size_t reduce_workspace(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner);
// addend (Sum only, or null): [outer, inner] in x.dtype, added to each sum in double
// before its one rounding.
void reduce(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner, const View& out, void* workspace,
            cudaStream_t s, const void* addend = nullptr);
void softmax(const View& x, const View& out, int64_t rows, int64_t n, bool log, cudaStream_t s);
void layer_norm(const View& x, const void* weight, const void* bias, const View& out,
                int64_t rows, int64_t n, float eps, cudaStream_t s);
// In place on c [rows, n] at row stride ldc: c = act(c + bias). For the GEMM
// epilogues cuBLASLt does not offer (exact erf GELU) or refuses for a layout.
void bias_act(void* c, const void* bias, int64_t batch, int64_t rows, int64_t n, int64_t ldc,
              int64_t stride_c, Activation act, DType dtype, cudaStream_t s);
// Synchronises `s` to check the ids, and throws on an out-of-range one like the CPU;
// `flag` is 8 bytes of device memory for the first bad position. ids_known (the host
// knows every id is in range): no check, so no synchronisation, and no flag used.
// Whether embedding / one_hot will read `flag` (the ids are checked): else null will do.
bool ids_flag_wanted(bool ids_known);
void embedding(const void* weight, int64_t vocab, int64_t channels, const int32_t* ids, int64_t n,
               void* out, DType dtype, bool ids_known, unsigned long long* flag, cudaStream_t s);
void one_hot(const int32_t* ids, int64_t n, int64_t depth, float on, float off, void* out,
             DType dtype, bool ids_known, unsigned long long* flag, cudaStream_t s);
void conv2d_direct(const Conv2dArgs& a, cudaStream_t s);
void max_pool2d(const Pool2dArgs& a, cudaStream_t s);
void batch_norm(const void* x, const void* mean, const void* var, const void* weight,
                const void* bias, void* out, int64_t rows, int64_t c, float eps, DType dtype,
                cudaStream_t s);


// ---- fused optimizer updates (update.cu); float32, dense ----
void adam_update(const AdamArgs& a, cudaStream_t s);
// Floats of `partials` lamb_update needs: 2 * lamb_partial_blocks(n).
int lamb_partial_blocks(int64_t n);
void lamb_update(const AdamArgs& a, float* u, float* partials, cudaStream_t s);
void sgd_update(const SgdArgs& a, cudaStream_t s);

// ---- training kernels (backward.cu); pointers hold `dtype` elements ----
// Bytes of workspace layer_norm_backward needs (used only when gw or gb is wanted).
size_t layer_norm_backward_workspace(int64_t rows, int64_t n);
// add: gradients already accumulated (GradAddends), joined before each rounding.
void layer_norm_backward(const void* x, const void* w, const void* g, void* gx, void* gw, void* gb, int64_t rows,
                         int64_t n, float eps, DType dtype, void* workspace, cudaStream_t s, const GradAddends& add = {});
void gelu_backward(const void* x, const void* g, void* gx, int64_t n, bool tanh_form, DType dtype, cudaStream_t s);
// gx = y (g - sum_j g_j y_j) per row of n; y, g in `in_dtype`, gx in `out_dtype`.
void softmax_backward(const void* y, const void* g, void* gx, int64_t rows, int64_t n, DType in_dtype,
                      DType out_dtype, cudaStream_t s);
void max_pool2d_backward(const Pool2dArgs& a, const void* g, void* gx, cudaStream_t s);

}  // namespace cuda
}  // namespace perceiver
