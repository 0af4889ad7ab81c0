// The CPU backend: host memory (64-byte aligned), one execution queue, kernels
// from this folder.
#include <cstring>

#include "../backend.h"
#include "../error.h"
#include "../queue.h"
#include "../threadpool.h"
#include "allocator.h"
#include "attention.h"
#include "gemm.h"
#include "kernels.h"

namespace perceiver {
namespace {

// The op layer converts 16-bit tensors to float32 around CPU kernels; reaching a
// kernel with one is a bug in the op layer, reported rather than misread.
void require_f32(const char* op, DType t) {
  if (t != DType::Float32)
    throw_type(std::string(op) + ": the cpu kernel takes float32, got " + dtype_name(t));
}

struct CpuBackend final : Backend {
  const char* name() const override { return "cpu"; }
  Queue& queue(int) override { return queue_; }
  void* alloc(size_t bytes) override { return cpu::host_alloc(bytes); }
  void free(void* p, size_t bytes) override { cpu::host_free(p, bytes); }
  AllocatorStats allocator_stats() override { return cpu::host_stats(); }
  void reset_peak_stats() override { cpu::host_reset_peak_stats(); }
  void empty_cache() override { cpu::host_empty_cache(); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void fill(const View& out, double value) override { cpu::fill(out, value); }
  void arange(const View& out, double start, double step) override { cpu::arange(out, start, step); }
  void random_normal(const View& out, uint64_t seed, float mean, float stddev) override {
    cpu::random_normal(out, seed, mean, stddev);
  }
  void random_uniform(const View& out, uint64_t seed, float low, float high) override {
    cpu::random_uniform(out, seed, low, high);
  }
  void copy(const View& src, const View& dst) override { cpu::copy(src, dst); }
  void unary(UnaryOp op, const View& x, const View& out, float alpha, float beta) override {
    cpu::unary(op, x, out, alpha, beta);
  }
  void binary(BinaryOp op, const View& a, const View& b, const View& out) override {
    cpu::binary(op, a, b, out);
  }
  void where(const View& c, const View& a, const View& b, const View& out) override {
    cpu::where(c, a, b, out);
  }
  void reduce(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner,
              const View& out, const void* addend) override {
    cpu::reduce(op, x, outer, n, inner, out, static_cast<const float*>(addend));
  }
  void softmax(const View& x, const View& out, int64_t rows, int64_t n, bool log) override {
    cpu::softmax(x, out, rows, n, log);
  }
  void layer_norm(const View& x, const float* w, const float* b, const View& out, int64_t rows,
                  int64_t n, float eps) override {
    cpu::layer_norm(x, w, b, out, rows, n, eps);
  }
  bool fuses_matmul_addend() const override { return true; }
  void matmul(const MatmulArgs& a) override {
    auto one = [&a](int64_t i, bool parallel) {
      float* c = a.c + i * a.stride_c;
      float beta = a.beta;
      if (a.addend) {
        // The kernels read C in their epilogue (beta 1), so the addend goes there
        // first: one copy, where an add after the product would pass over C twice.
        const float* add = a.addend + i * a.stride_c;
        for (int64_t r = 0; r < a.m; r++) std::memcpy(c + r * a.ldc, add + r * a.ldc, a.n * sizeof(float));
        beta = 1.f;
      }
      cpu::sgemm(a.trans_a, a.trans_b, a.m, a.n, a.k, a.alpha, a.a + i * a.stride_a, a.lda,
                 a.b + i * a.stride_b, a.ldb, beta, c, a.ldc, a.bias, a.act, parallel);
    };
    // Many small products (heads, batch) parallelise better over the batch than
    // inside each product.
    if (a.batch >= num_threads()) {
      parallel_for(a.batch, 1, [&](int64_t lo, int64_t hi, int) {
        for (int64_t i = lo; i < hi; i++) one(i, false);
      });
    } else {
      for (int64_t i = 0; i < a.batch; i++) one(i, true);
    }
  }
  void attention(const AttentionArgs& a) override { cpu::attention(a); }
  // The CPU checks every id whatever is known: a comparison per id.
  void embedding(const float* w, int64_t vocab, int64_t c, const int32_t* ids, int64_t n,
                 float* out, DType dtype, bool) override {
    require_f32("embedding", dtype);
    cpu::embedding(w, vocab, c, ids, n, out);
  }
  void one_hot(const int32_t* ids, int64_t n, int64_t depth, float on, float off,
               float* out, DType dtype, bool) override {
    require_f32("one_hot", dtype);
    cpu::one_hot(ids, n, depth, on, off, out);
  }
  void conv2d(const Conv2dArgs& a) override { cpu::conv2d(a); }
  void adam_update(const AdamArgs& a) override { cpu::adam_update(a); }
  void lamb_update(const AdamArgs& a, float* u) override { cpu::lamb_update(a, u); }
  void sgd_update(const SgdArgs& a) override { cpu::sgd_update(a); }
  bool has_backward_kernels() const override { return true; }
  bool has_attention_backward() const override { return true; }
  bool has_attention_dropout() const override { return true; }
  void attention_backward(const AttentionBackwardArgs& a) override { cpu::attention_backward(a); }
  void layer_norm_backward(const float* x, const float* w, const float* g, float* gx, float* gw,
                           float* gb, int64_t rows, int64_t n, float eps, DType dtype, const GradAddends& add) override {
    require_f32("layer_norm_backward", dtype);
    cpu::layer_norm_backward(x, w, g, gx, gw, gb, rows, n, eps, add);
  }
  void softmax_backward(const void* y, const void* g, void* gx, int64_t rows, int64_t n, DType in_dtype,
                        DType out_dtype) override {
    require_f32("softmax_backward", in_dtype);
    require_f32("softmax_backward", out_dtype);
    cpu::softmax_backward(static_cast<const float*>(y), static_cast<const float*>(g), static_cast<float*>(gx), rows, n);
  }
  void gelu_backward(const float* x, const float* g, float* gx, int64_t n, bool tanh_form,
                     DType dtype) override {
    require_f32("gelu_backward", dtype);
    cpu::gelu_backward(x, g, gx, n, tanh_form);
  }
  void max_pool2d_backward(const Pool2dArgs& a, const float* g, float* gx) override {
    require_f32("max_pool2d_backward", a.dtype);
    cpu::max_pool2d_backward(a, g, gx);
  }
  void max_pool2d(const Pool2dArgs& a) override { cpu::max_pool2d(a); }
  void batch_norm(const float* x, const float* mean, const float* var, const float* w,
                  const float* b, float* out, int64_t rows, int64_t c, float eps,
                  DType dtype) override {
    require_f32("batch_norm", dtype);
    cpu::batch_norm(x, mean, var, w, b, out, rows, c, eps);
  }

  // Polls 50 µs for the next op: a model's small ops would otherwise each pay a
  // wake-up, while a poll costs nothing once the JS thread has stopped issuing.
  Queue queue_{50};
};

}  // namespace

Backend* cpu_backend() {
  // Leaked on purpose: queued work may still reference it during process exit.
  static CpuBackend* b = new CpuBackend();
  return b;
}

}  // namespace perceiver
