// The one interface both backends implement: memory, transfers, and one entry per
// kernel. Entries are called on the device's execution queue, never on the JS
// thread; they receive Views whose validity the op layer (ops.cc) has checked.
// The CUDA backend (a separate shared library) returns an object of this type from
// its single exported C function.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "alloc_stats.h"
#include "dtype.h"
#include "storage.h"

namespace perceiver {

class Queue;

// A kernel's view of a tensor: pointer to the first element, shape and strides in
// elements. Broadcast dimensions have stride 0.
// The pointer is resolved when the kernel runs (storage memory is allocated in
// queue order, on the queue thread), so a View may be made before its storage
// has memory.
struct View {
  Storage* storage = nullptr;
  int64_t offset_bytes = 0;
  DType dtype = DType::Float32;
  int ndim = 0;
  int64_t shape[8] = {0};
  int64_t strides[8] = {0};
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
  }
  void* data() const {
    return storage ? static_cast<char*>(storage->data()) + offset_bytes : nullptr;
  }
  template <class T>
  T* ptr() const { return static_cast<T*>(data()); }
};

enum class UnaryOp : int32_t {
  Neg, Exp, Log, Sin, Cos, Sqrt, Rsqrt, Tanh, Relu, Gelu, GeluTanh, Sigmoid, Abs, Square,
  Affine,  // alpha * x + beta ("scale")
};
enum class BinaryOp : int32_t {
  Add, Sub, Mul, Div, Maximum, Minimum, Pow,
  Eq, Ne, Lt, Le, Gt, Ge,  // produce uint8
};
enum class ReduceOp : int32_t { Sum, Mean, Max, Min, ArgMax };
enum class Activation : int32_t { None, Relu, Gelu, GeluTanh };

// Kernel argument structs carry raw pointers typed for the float32 path. `dtype`
// says what they really point at: Float32 everywhere, or (CUDA only) BFloat16 /
// Float16, in which case the pointers hold 16-bit data and the kernel reinterprets
// them; accumulation is float32 either way. The CPU backend only ever sees Float32
// (the op layer converts 16-bit tensors before calling it).

// C[b] = act(alpha * op(A[b]) @ op(B[b]) + bias). A is [M,K] (or [K,M] when
// trans_a), B is [K,N] (or [N,K] when trans_b), each batch at its own stride
// (0 broadcasts); rows at stride lda/ldb/ldc, unit column stride.
struct MatmulArgs {
  const float* a; const float* b; float* c; const float* bias;  // bias [N] or null
  int64_t batch, m, n, k;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
  bool trans_a, trans_b;
  float alpha;
  Activation act;
  DType dtype = DType::Float32;  // of a, b, c and bias
  // C is float32 though A and B are 16-bit (no bias, no activation): products kept
  // unrounded, as the attention gradient's logits need.
  bool c_float32 = false;
  // C = alpha op(A) op(B) + beta C, beta 0 or 1. The op layer always leaves 0 (C is
  // then never read); backends' own composite kernels accumulate with 1.
  float beta = 0.f;
  // When set (beta 0, no activation, C not float32): C = alpha op(A) op(B) + addend +
  // bias, the addend laid out as C (ldc, stride_c), so a residual joins the product's
  // epilogue instead of a pass of its own. Only where fuses_matmul_addend().
  const float* addend = nullptr;
};

// out[b, i, h, :] = sum_j softmax_j(scale * q[b,i,h,:] . k[b,j,h,:] (masked)) v[b,j,h,:]
// Rows whose mask is all zero give 0. Row strides let q/k/v be [B, N, H*D] views.
struct AttentionArgs {
  const float* q; const float* k; const float* v; float* out;
  const uint8_t* mask;  // [B, Nq, Nk] at the strides below, or null
  int64_t batch, nq, nk, heads, dqk, dv;
  int64_t q_sb, q_sn, q_sh;  // strides of q in elements: batch, row, head (unit within head)
  int64_t k_sb, k_sn, k_sh;
  int64_t v_sb, v_sn, v_sh;
  int64_t o_sb, o_sn, o_sh;
  int64_t m_sb, m_sq, m_sk;
  float scale;
  DType dtype = DType::Float32;  // of q, k, v and out
  // Optional, float32 [B, H, Nq]: each row's log-sum-exp of its scaled, masked logits
  // (+inf where every key is masked), which the gradient reuses. Only backends with
  // attention_backward write it; the op layer asks no others.
  float* lse = nullptr;
  // Inverted dropout on the attention weights, off while dropout_scale is 0: weight
  // (b, h, i, j) is kept, times dropout_scale, where element ((b * H + h) * Nq + i)
  // * Nk + j of rand(seed) is below dropout_keep_below, else dropped: the mask that
  // dropout(P, p) would draw with that seed. Only backends with
  // has_attention_dropout() take it.
  uint64_t dropout_seed = 0;
  float dropout_keep_below = 1.f, dropout_scale = 0.f;
};

// The fused attention's gradient. `a` describes the forward call (its `out` is read:
// the forward's result); gout has out's strides; gq, gk, gv are contiguous
// [B, Nq, H, Dqk], [B, Nk, H, Dqk] and [B, Nk, H, Dv].
struct AttentionBackwardArgs {
  AttentionArgs a;  // a.lse, when set, is the forward's (else the kernel computes it)
  const float* gout;
  float* gq; float* gk; float* gv;
};

// NHWC input, HWIO weight [KH, KW, Cin, Cout], NHWC output.
struct Conv2dArgs {
  const float* x; const float* w; const float* bias; float* out;
  int64_t batch, h, w_in, cin, kh, kw, cout, oh, ow;
  int64_t stride_h, stride_w, pad_top, pad_left;
  DType dtype = DType::Float32;  // of x, w, bias and out
};

struct Pool2dArgs {
  const float* x; float* out;
  int64_t batch, h, w, c, kh, kw, oh, ow;
  int64_t stride_h, stride_w, pad_top, pad_left;
  DType dtype = DType::Float32;  // of x and out
};

// Fused optimizer updates (see Backend::adam_update). Every scalar is float32, rounded
// once from the double the caller gave, as the composed ops would round it.
//   m = beta1 m + one_minus_beta1 g;  v = beta2 v + one_minus_beta2 g^2
//   u = (m bc1) / (sqrt(v bc2) + eps) (+ weight_decay p when weight_decay > 0)
//   p = p - lr u                       (LAMB: p - lr (trust u))
// bc1, bc2 are the bias corrections as factors, 1 / (1 - beta^t).
struct AdamArgs {
  float* p; const float* g; float* m; float* v;
  int64_t n;
  float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, bc1, bc2;
};
// SGD (PyTorch's momentum form, decoupled weight decay):
//   buf = momentum buf + g (when buf);  d = nesterov ? g + momentum buf : buf (or g)
//   p = (p - lr d) (- lr_wd p when lr_wd > 0)
struct SgdArgs {
  float* p; const float* g; float* buf;  // buf null without momentum
  int64_t n;
  float lr, momentum, lr_wd;
  bool nesterov;
};

// Gradients already accumulated for the tensors a backward kernel differentiates for
// (each optional; laid out as that gradient, in its dtype): the kernel adds each to
// its own gradient before rounding it, so a residual's other branch or a weight the
// latent blocks share costs no separate addition.
struct GradAddends {
  const void* gx = nullptr;
  const void* gw = nullptr;
  const void* gb = nullptr;
};

struct Backend {
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual Queue& queue(int index) = 0;

  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p, size_t bytes) = 0;
  // What the allocator holds: see AllocatorStats. reset_peak_stats() restarts both
  // peaks from the current values.
  virtual AllocatorStats allocator_stats() = 0;
  virtual void reset_peak_stats() = 0;
  // Hands the cached blocks back to the system (driver).
  virtual void empty_cache() = 0;
  // Host transfers, run on the queue like kernels.
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;

  virtual void fill(const View& out, double value) = 0;
  virtual void arange(const View& out, double start, double step) = 0;
  virtual void random_normal(const View& out, uint64_t seed, float mean, float stddev) = 0;
  virtual void random_uniform(const View& out, uint64_t seed, float low, float high) = 0;
  // Strided copy with dtype conversion: src and dst have the same shape.
  virtual void copy(const View& src, const View& dst) = 0;
  virtual void unary(UnaryOp op, const View& x, const View& out, float alpha, float beta) = 0;
  // a and b are already broadcast to out's shape (stride 0 on broadcast dims).
  virtual void binary(BinaryOp op, const View& a, const View& b, const View& out) = 0;
  virtual void where(const View& cond, const View& a, const View& b, const View& out) = 0;
  // x contiguous [outer, n, inner] -> out contiguous [outer, inner]. addend (Sum only, or
  // null): contiguous [outer, inner] in x.dtype, added to each sum before it is rounded.
  virtual void reduce(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner,
                      const View& out, const void* addend) = 0;
  // Over the last axis of a contiguous [rows, n].
  virtual void softmax(const View& x, const View& out, int64_t rows, int64_t n, bool log) = 0;
  // weight and bias (each optional) hold x.dtype elements.
  virtual void layer_norm(const View& x, const float* weight, const float* bias, const View& out,
                          int64_t rows, int64_t n, float eps) = 0;
  virtual void matmul(const MatmulArgs& a) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  // out [N, C] = weight[ids[i], :]; throws on an out-of-range id. `dtype` is that
  // of weight and out (as for the arg structs above).
  // ids_known: the engine knows every id lies in range (Storage::int32_within), so
  // a backend whose check is costly may skip it; out-of-range ids must still never
  // be dereferenced.
  virtual void embedding(const float* weight, int64_t vocab, int64_t channels, const int32_t* ids,
                         int64_t n, float* out, DType dtype, bool ids_known) = 0;
  virtual void one_hot(const int32_t* ids, int64_t n, int64_t depth, float on, float off,
                       float* out, DType dtype, bool ids_known) = 0;
  virtual void conv2d(const Conv2dArgs& a) = 0;
  virtual void max_pool2d(const Pool2dArgs& a) = 0;
  // x contiguous [rows, C]: (x - mean) / sqrt(var + eps) * weight + bias; every
  // pointer holds `dtype` elements.
  virtual void batch_norm(const float* x, const float* mean, const float* var,
                          const float* weight, const float* bias, float* out, int64_t rows,
                          int64_t c, float eps, DType dtype) = 0;
  // Waits until the device has finished everything this backend's queue has issued
  // (the queue itself is drained by Queue::synchronize first). CPU kernels finish
  // when they return, so only CUDA has work to wait for.
  virtual void synchronize() {}

  // Profiling (profiler.cc): a mark on the device's timeline after everything the
  // queue has issued so far, and the milliseconds between two marks, waiting for the
  // later one. A CPU kernel has finished when it returns, so a CPU mark is the host
  // clock; a CUDA mark is an event recorded on the stream, so the time between the
  // marks around an op is the GPU's time for its kernels, not the launch's.
  // Defined inline: the CUDA library's vtable needs these definitions too.
  virtual void* profile_mark() { return new std::chrono::steady_clock::time_point(std::chrono::steady_clock::now()); }
  virtual double profile_elapsed_ms(void* begin, void* end) {
    auto* a = static_cast<std::chrono::steady_clock::time_point*>(begin);
    auto* b = static_cast<std::chrono::steady_clock::time_point*>(end);
    return std::chrono::duration<double, std::milli>(*b - *a).count();
  }
  virtual void profile_release(void* mark) { delete static_cast<std::chrono::steady_clock::time_point*>(mark); }

  // ---- fused optimizer updates: one kernel per parameter instead of a chain of
  // elementwise ops and temporaries. In place on dense float32 arrays of n elements
  // (the op layer makes strided parameters dense and writes them back).
  virtual void adam_update(const AdamArgs& a) = 0;
  // LAMB: the AdamW direction into `u` (n floats of workspace), then the trust ratio
  // ||p|| / ||u|| from device-side sums in a fixed order (deterministic), then p.
  virtual void lamb_update(const AdamArgs& a, float* u) = 0;
  virtual void sgd_update(const SgdArgs& a) = 0;

  // ---- training kernels: gradients the autograd layer would otherwise compose from
  // forward ops. Optional: a backend without them reports so, and the op layer
  // refuses the op (lib/autograd then composes the gradient). Contiguous; pointers
  // hold `dtype` elements (Float32 on the CPU; 16-bit on CUDA, float32 accumulation).
  virtual bool has_backward_kernels() const { return false; }
  // x, g [rows, n] -> gx [rows, n]; gw, gb [n] (each may be null) summed over rows;
  // each plus its GradAddends entry where that is set.
  // Defined inline: the CUDA library's vtable needs these definitions too.
  virtual void layer_norm_backward(const float*, const float*, const float*, float*, float*, float*,
                                   int64_t, int64_t, float, DType, const GradAddends&) {
    throw std::runtime_error(std::string("layer_norm_backward is not implemented on ") + name());
  }
  // gx = g * d/dx gelu(x) (exact erf form, or the tanh approximation).
  virtual void gelu_backward(const float*, const float*, float*, int64_t, bool, DType) {
    throw std::runtime_error(std::string("gelu_backward is not implemented on ") + name());
  }
  // gx = y (g - sum_j g_j y_j) per row of n: softmax's gradient from its output. y and g
  // hold `in_dtype` elements, gx `out_dtype` (float32 on the CPU).
  virtual void softmax_backward(const void*, const void*, void*, int64_t, int64_t, DType, DType) {
    throw std::runtime_error(std::string("softmax_backward is not implemented on ") + name());
  }
  // Dropout inside the fused attention (AttentionArgs' dropout_*), forward and
  // gradient. Without it, lib/ops/linalg.ts composes attention with dropout from products.
  virtual bool has_attention_dropout() const { return false; }
  // Whether attention() runs heads of these widths in this dtype near the rate of its
  // products. Where it does not (CUDA's fused SIMT kernel: float32, and 16-bit heads
  // too wide for its tensor-core kernel), the op layer composes attention from
  // products and a softmax while the [B, H, Nq, Nk] scores fit (ops_linalg.cc).
  virtual bool fast_attention(DType, int64_t /*dqk*/, int64_t /*dv*/) const { return true; }
  // Whether matmul takes MatmulArgs::addend; where not, the op layer adds it after.
  virtual bool fuses_matmul_addend() const { return false; }
  // The fused attention's gradient without its [Nq, Nk] matrices. Optional on its own:
  // where a backend lacks it, lib/autograd composes the gradient from products.
  virtual bool has_attention_backward() const { return false; }
  // Whether the gradient of an attention call with heads of these widths, in this
  // dtype, should take attention_backward (lib/ops/linalg.ts asks per call, before the
  // forward, which then keeps its row statistics): by default wherever it exists.
  virtual bool fuses_attention_backward(DType, int64_t /*dqk*/, int64_t /*dv*/, bool /*dropout*/) const {
    return has_attention_backward();
  }
  virtual void attention_backward(const AttentionBackwardArgs&) {
    throw std::runtime_error(std::string("attention_backward is not implemented on ") + name());
  }
  // g [B, OH, OW, C] routed to the first maximum of each window: gx [B, H, W, C]
  // (a.dtype is that of x, g and gx).
  virtual void max_pool2d_backward(const Pool2dArgs&, const float*, float*) {
    throw std::runtime_error(std::string("max_pool2d_backward is not implemented on ") + name());
  }
};

Backend* cpu_backend();
// The backend that owns `device`; throws when it is not available, with the reason.
Backend* backend_for(Device device);

// The CUDA backend library (perceiver_cuda.so), loaded on first use: where it was
// found, how many devices it sees, and why CUDA cannot be used when it cannot.
struct CudaStatus {
  bool library_loaded = false;
  std::string library_path;
  int device_count = 0;
  std::string reason;  // empty when device_count > 0
};
const CudaStatus& cuda_status();
struct CudaDeviceInfo;
// Fills `info` for cuda:`device`; false with `err` set when it cannot.
bool cuda_device_info(int device, CudaDeviceInfo* info, std::string* err);
// CUDA backends created so far (for memory(), emptyCache(), synchronize()).
std::vector<Backend*> cuda_backends_in_use();
// Waits for every device's queue and GPU work.
void synchronize_all();

}  // namespace perceiver
