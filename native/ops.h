// The engine's op layer. Each op validates its arguments synchronously (throwing an
// Error that names the op, the argument and expected vs received values), allocates
// its output and enqueues the kernel on the device's queue; it never waits.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "tensor.h"

namespace perceiver {

// ---- creation and transfer ----
Tensor from_host(const void* data, size_t bytes, const Shape& shape, DType dtype, Device device);
Tensor full(const Shape& shape, double value, DType dtype, Device device);
Tensor arange(double start, double step, int64_t n, DType dtype, Device device);
Tensor random_normal(const Shape& shape, uint64_t seed, float mean, float stddev, Device device);
Tensor random_uniform(const Shape& shape, uint64_t seed, float low, float high, Device device);
// What a read found, written by its task: read it once the ticket has completed.
// Readers check this rather than the tensor: a view is read through a contiguous copy
// whose failure is its own storage's, and a copy to the host that fails (a transient
// error) leaves the tensor as it was.
struct ReadStatus {
  bool failed = false;
  std::string error;
};
// Enqueues a copy of t's elements (in logical order) into `dst` and returns the
// ticket; the queue must be waited on before dst or `status` is read.
uint64_t read_to_host(const Tensor& t, void* dst, std::shared_ptr<ReadStatus> status);
Queue& queue_of(const Tensor& t);
// A copy of x on `device` (x itself when it is already there). Ordered after the
// ops that produce x on its own queue; the JS thread does not wait.
Tensor to_device(const Tensor& x, Device device);

// ---- layout (views where possible) ----
Tensor contiguous(const Tensor& x);
Tensor reshape(const Tensor& x, const Shape& shape);  // one -1 allowed
Tensor permute(const Tensor& x, const std::vector<int64_t>& axes);
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
Tensor cast(const Tensor& x, DType dtype);
// Writes src's elements (converted to dst's dtype) into dst's memory, in queue order.
void assign(const Tensor& dst, const Tensor& src);

// ---- elementwise ----
Tensor unary(UnaryOp op, const Tensor& x, float alpha = 1.f, float beta = 0.f);
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Shape broadcast_shapes(const char* op, const Shape& a, const char* an, const Shape& b,
                       const char* bn);

// ---- reductions and normalisation ----
// addend (sum only): the result's shape and x's dtype, added to each sum before its one
// rounding (a gradient already accumulated for a bias the blocks share).
Tensor reduce(ReduceOp op, const Tensor& x, int64_t axis, bool keepdim, const Tensor* addend = nullptr);
Tensor softmax(const Tensor& x, bool log);
Tensor layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps);

// ---- linear algebra ----
// a [..., M, K] (or [..., K, M] with trans_a), b [..., K, N] (or [..., N, K] with
// trans_b); batch dims broadcast. bias [N] and the activation are fused.
// out_float32: a float32 result from 16-bit operands (without bias or activation).
// addend: broadcastable to the result, in a's dtype, added with the bias (no
// activation then); in the product's epilogue where the backend fuses it.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, const Tensor* bias,
              Activation act, float alpha, bool out_float32 = false, const Tensor* addend = nullptr);
// q [B, Nq, H, Dqk], k [B, Nk, H, Dqk], v [B, Nk, H, Dv] -> [B, Nq, H, Dv].
// mask: uint8 broadcastable to [B, Nq, Nk]; scale <= 0 means 1/sqrt(Dqk).
// lse: when given, also each row's log-sum-exp for attention_backward (float32
// [B, H, Nq]), on backends that have that kernel; left empty where the call computes
// none (the composed float32 form, an empty output).
// dropout: inverted dropout on the weights with probability p (0: none), the mask
// being the one rand() draws with `seed` for weights [B, H, Nq, Nk]; only on backends
// with has_attention_dropout().
struct AttentionDropout {
  double p = 0;
  uint64_t seed = 0;
};
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                 float scale, Tensor* lse = nullptr, AttentionDropout dropout = {});
// Its gradient without the [Nq, Nk] matrices, from the forward's operands, its result
// `out`, the incoming gradient g (both [B, Nq, H, Dv]) and the forward's lse when it
// has one (else the kernel computes it): {gq, gk, gv}. Only on backends that have the
// kernel (has_attention_backward).
std::vector<Tensor> attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                                       const Tensor& out, const Tensor& g, const Tensor* lse, float scale,
                                       AttentionDropout dropout = {});

// ---- indexing and nn ----
Tensor embedding(const Tensor& weight, const Tensor& ids);
Tensor one_hot(const Tensor& ids, int64_t depth, double on, double off, DType dtype = DType::Float32);
enum class Padding { Same, Valid, Explicit };
struct PadSpec {
  Padding mode = Padding::Valid;
  int64_t top = 0, bottom = 0, left = 0, right = 0;  // Explicit only
};
// Output size and leading pad of one spatial axis, TF's SAME/VALID or explicit
// (shared by the forward ops and their gradients).
void resolve_padding(const char* op, const char* axis, int64_t in, int64_t k, int64_t stride,
                     Padding mode, int64_t lo, int64_t hi, int64_t* out, int64_t* pad_lo);
void check_pad(const char* op, const PadSpec& p);
// x [B, H, W, Cin], weight [KH, KW, Cin, Cout] (HWIO), bias [Cout] -> [B, OH, OW, Cout].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias, int64_t stride_h,
              int64_t stride_w, const PadSpec& pad);
// x [B, H, W, C]; padded positions never win the max.
Tensor max_pool2d(const Tensor& x, int64_t kh, int64_t kw, int64_t stride_h, int64_t stride_w,
                  const PadSpec& pad);
// Inference batch norm over the last axis (channels-last).
Tensor batch_norm(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor* weight,
                  const Tensor* bias, float eps);

// ---- training (backward) kernels; refused on backends without them ----
// -> {gx, gw (or empty), gb (or empty)}, each plus its addend where one is given (of
// that gradient's shape and x's dtype; added before the one rounding).
struct LayerNormGradAddends {
  const Tensor* gx = nullptr;
  const Tensor* gw = nullptr;
  const Tensor* gb = nullptr;
};
std::vector<Tensor> layer_norm_backward(const Tensor& x, const Tensor* weight, const Tensor& g, float eps,
                                        bool need_weight, bool need_bias, const LayerNormGradAddends& add = {});
Tensor gelu_backward(const Tensor& x, const Tensor& g, bool tanh_form);
// Softmax's gradient from its output: gx = y (g - sum_last(g y)) over the last axis,
// in one pass, written in `out_dtype` (e.g. a 16-bit gradient from float32 y and g).
Tensor softmax_backward(const Tensor& y, const Tensor& g, DType out_dtype);
Tensor max_pool2d_backward(const Tensor& x, const Tensor& g, int64_t kh, int64_t kw, int64_t stride_h,
                           int64_t stride_w, const PadSpec& pad);

// ---- fused optimizer updates: in place, in queue order (see ops_update.cc) ----
struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // steps taken including this one (the bias corrections' t)
};
// AdamW (lamb = false) or LAMB's trust-ratio step on float32 param, exp_avg,
// exp_avg_sq; grad of param's shape (any float dtype).
void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                 const AdamHyper& h, bool lamb);
// momentum_buffer is required when momentum > 0 and may be null at momentum 0.
void sgd_update(const Tensor& param, const Tensor& grad, const Tensor* momentum_buffer, double lr, double momentum,
                double weight_decay, bool nesterov);

}  // namespace perceiver
