// CPU kernels, one family per file (elementwise.cc, reduce.cc, ...). The backend
// class in backend.cc only forwards to these.
#pragma once
#include "../backend.h"

namespace perceiver {
namespace cpu {

void fill(const View& out, double value);
void arange(const View& out, double start, double step);
void random_normal(const View& out, uint64_t seed, float mean, float stddev);
void random_uniform(const View& out, uint64_t seed, float low, float high);
void copy(const View& src, const View& dst);
void unary(UnaryOp op, const View& x, const View& out, float alpha, float beta);
void binary(BinaryOp op, const View& a, const View& b, const View& out);
void where(const View& cond, const View& a, const View& b, const View& out);
void reduce(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner, const View& out,
            const float* addend = nullptr);
void softmax(const View& x, const View& out, int64_t rows, int64_t n, bool log);
void layer_norm(const View& x, const float* weight, const float* bias, const View& out,
                int64_t rows, int64_t n, float eps);
void embedding(const float* weight, int64_t vocab, int64_t channels, const int32_t* ids,
               int64_t n, float* out);
void one_hot(const int32_t* ids, int64_t n, int64_t depth, float on, float off, float* out);
void conv2d(const Conv2dArgs& a);
void max_pool2d(const Pool2dArgs& a);
void batch_norm(const float* x, const float* mean, const float* var, const float* weight,
                const float* bias, float* out, int64_t rows, int64_t c, float eps);
// A row's sum, and its sum of squared deviations from `mean`, as layer_norm takes
// them (16 float lanes combined in double); the backward pass recomputes the same
// statistics with them.
double lane_sum(const float* a, int64_t n);
double lane_sq_dev(const float* a, int64_t n, float mean);
void layer_norm_backward(const float* x, const float* weight, const float* g, float* gx, float* gw,
                         float* gb, int64_t rows, int64_t n, float eps, const GradAddends& add = {});
void gelu_backward(const float* x, const float* g, float* gx, int64_t n, bool tanh_form);
void softmax_backward(const float* y, const float* g, float* gx, int64_t rows, int64_t n);
void max_pool2d_backward(const Pool2dArgs& a, const float* g, float* gx);
void adam_update(const AdamArgs& a);
void lamb_update(const AdamArgs& a, float* u);
void sgd_update(const SgdArgs& a);

}  // namespace cpu
}  // namespace perceiver
