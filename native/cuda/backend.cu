// The CUDA backend: one Backend object per GPU, each with its own execution queue
// (a host thread, as on the CPU) that enqueues kernels onto the device's one
// CUDA stream. The queue thread never waits for the GPU except where a value
// must reach the host (reads, embedding id checks), so the JS thread, the queue
// thread and the GPU all run ahead of each other, and a single stream gives the
// caching allocator its ordering for free (see allocator.cu).
//
// Host transfers go through two pinned staging buffers, alternately, so a large
// copy overlaps the memcpy into one buffer with the DMA out of the other.
#include <dlfcn.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "../queue.h"
#include "allocator.h"
#include "api.h"
#include "attention.h"
#include "attention_backward.h"
#include "attention_gemm.h"
#include "attention_tune.h"
#include "common.cuh"
#include "cublaslt.h"
#include "gemm.h"
#include "kernels.h"

namespace perceiver {
namespace cuda {

void check_launch(const char* op, cudaStream_t stream) {
  static const bool sync = [] {
    const char* e = std::getenv("PERCEIVER_CUDA_SYNC");
    return e && *e && std::strcmp(e, "0") != 0;
  }();
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && sync) e = cudaStreamSynchronize(stream);
  if (e != cudaSuccess) throw_cuda(op, "kernel launch", e);
}

namespace {

constexpr size_t kStagingBytes = size_t(16) << 20;
constexpr size_t kGemmWorkspace = size_t(32) << 20;

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, const lt::Api* api) : device_(device), alloc_(device) {
    try {
      init(api);
    } catch (...) {
      // api_backend tries again on the next op (the device may have been busy):
      // nothing of this attempt may stay behind.
      for (cudaEvent_t& e : staged_)
        if (e) cudaEventDestroy(e), e = nullptr;
      if (gemm_.workspace) cudaFree(gemm_.workspace), gemm_.workspace = nullptr;
      if (gemm_.handle) api->destroy(gemm_.handle), gemm_.handle = nullptr;
      if (stream_) cudaStreamDestroy(stream_), stream_ = nullptr;
      cudaGetLastError();
      throw;
    }
  }

  void init(const lt::Api* api) {
    const int device = device_;
    CUDA_CHECK("cuda init", cudaSetDevice(device));
    CUDA_CHECK("cuda init", cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK("cuda init", cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
    int major = 0, minor = 0;
    CUDA_CHECK("cuda init", cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    CUDA_CHECK("cuda init", cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    CUDA_CHECK("cuda init", cudaDeviceGetAttribute(&smem_optin_, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    cc_ = major * 10 + minor;
    // The products' scratch for one chunk of keys: a 64th of the device's memory,
    // within [128 MiB, 1 GiB]. Fewer chunks mean fewer passes of fixed cost (O's
    // rescale, five launches): the ImageNet encoder's attention at batch 32 in bf16
    // takes 44 chunks at 128 MiB, 6 at 1 GiB.
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      chunk_bytes_ = std::min<size_t>(size_t(1) << 30, std::max<size_t>(kAttentionChunkBytes, total_b / 64));
    gemm_.device = device;
    gemm_.api = api;
    lt::Status st = api->create(&gemm_.handle);
    if (st != 0) throw Error(ErrorKind::Runtime, "cuda init: cublasLtCreate failed with cublasStatus " + std::to_string(st));
    CUDA_CHECK("cuda init", cudaMalloc(&gemm_.workspace, kGemmWorkspace));
    gemm_.workspace_bytes = kGemmWorkspace;
    gemm_.tf32 = tf32_mode_from_env();
    gemm_.alloc = &alloc_;
    gemm_.sm_count = sm_count_;
    for (int i = 0; i < 2; i++) CUDA_CHECK("cuda init", cudaEventCreateWithFlags(&staged_[i], cudaEventDisableTiming));
  }

  const char* name() const override { return "cuda"; }
  Queue& queue(int) override { return queue_; }

  void* alloc(size_t bytes) override { return alloc_.alloc(bytes); }
  void free(void* p, size_t bytes) override { alloc_.free(p, bytes); }
  AllocatorStats allocator_stats() override { return alloc_.stats(); }
  void reset_peak_stats() override { alloc_.reset_peak_stats(); }
  void empty_cache() override { alloc_.empty_cache(); }

  void* profile_mark() override {
    set_device();
    cudaEvent_t e = nullptr;
    CUDA_CHECK("profiler", cudaEventCreate(&e));
    cudaError_t rc = cudaEventRecord(e, stream_);
    if (rc != cudaSuccess) cudaEventDestroy(e);  // a faulted device: not one event lost per op
    CUDA_CHECK("profiler", rc);
    return e;
  }
  double profile_elapsed_ms(void* begin, void* end) override {
    set_device();
    float ms = 0;
    CUDA_CHECK("profiler", cudaEventSynchronize(static_cast<cudaEvent_t>(end)));
    CUDA_CHECK("profiler", cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(begin), static_cast<cudaEvent_t>(end)));
    return ms;
  }
  void profile_release(void* mark) override {
    set_device();
    cudaEventDestroy(static_cast<cudaEvent_t>(mark));
  }

  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    set_device();
    std::lock_guard<std::mutex> lock(staging_mu_);
    ensure_staging();
    for (size_t off = 0, c = 0; off < bytes; off += kStagingBytes, c++) {
      int b = (int)(c & 1);
      size_t len = std::min(kStagingBytes, bytes - off);
      CUDA_CHECK("tensor (host to device)", cudaEventSynchronize(staged_[b]));  // the buffer's last DMA is done
      std::memcpy(staging_[b], (const char*)src + off, len);
      CUDA_CHECK("tensor (host to device)",
                 cudaMemcpyAsync((char*)dst + off, staging_[b], len, cudaMemcpyHostToDevice, stream_));
      CUDA_CHECK("tensor (host to device)", cudaEventRecord(staged_[b], stream_));
    }
  }

  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    set_device();
    std::lock_guard<std::mutex> lock(staging_mu_);
    ensure_staging();
    size_t pending_off[2] = {0, 0}, pending_len[2] = {0, 0};
    auto drain = [&](int b) {
      if (!pending_len[b]) return;
      // A fault in any earlier kernel on the stream surfaces here, as the read's error.
      CUDA_CHECK("data (device to host)", cudaEventSynchronize(staged_[b]));
      std::memcpy((char*)dst + pending_off[b], staging_[b], pending_len[b]);
      pending_len[b] = 0;
    };
    for (size_t off = 0, c = 0; off < bytes; off += kStagingBytes, c++) {
      int b = (int)(c & 1);
      drain(b);
      size_t len = std::min(kStagingBytes, bytes - off);
      CUDA_CHECK("data (device to host)",
                 cudaMemcpyAsync(staging_[b], (const char*)src + off, len, cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK("data (device to host)", cudaEventRecord(staged_[b], stream_));
      pending_off[b] = off;
      pending_len[b] = len;
    }
    drain(0);
    drain(1);
  }

  void fill(const View& out, double value) override { set_device(); cuda::fill(out, value, stream_); }
  void arange(const View& out, double start, double step) override {
    set_device();
    cuda::arange(out, start, step, stream_);
  }
  void random_normal(const View& out, uint64_t seed, float mean, float stddev) override {
    set_device();
    cuda::random_normal(out, seed, mean, stddev, stream_);
  }
  void random_uniform(const View& out, uint64_t seed, float low, float high) override {
    set_device();
    cuda::random_uniform(out, seed, low, high, stream_);
  }
  void copy(const View& src, const View& dst) override { set_device(); cuda::copy(src, dst, stream_); }
  void unary(UnaryOp op, const View& x, const View& out, float alpha, float beta) override {
    set_device();
    cuda::unary(op, x, out, alpha, beta, stream_);
  }
  void binary(BinaryOp op, const View& a, const View& b, const View& out) override {
    set_device();
    cuda::binary(op, a, b, out, stream_);
  }
  void where(const View& c, const View& a, const View& b, const View& out) override {
    set_device();
    cuda::where(c, a, b, out, stream_);
  }
  void reduce(ReduceOp op, const View& x, int64_t outer, int64_t n, int64_t inner, const View& out,
              const void* addend) override {
    set_device();
    Scratch ws(alloc_, cuda::reduce_workspace(op, x, outer, n, inner));
    cuda::reduce(op, x, outer, n, inner, out, ws.p, stream_, addend);
  }
  void softmax(const View& x, const View& out, int64_t rows, int64_t n, bool log) override {
    set_device();
    cuda::softmax(x, out, rows, n, log, stream_);
  }
  void layer_norm(const View& x, const float* w, const float* b, const View& out, int64_t rows, int64_t n,
                  float eps) override {
    set_device();
    cuda::layer_norm(x, w, b, out, rows, n, eps, stream_);
  }
  void matmul(const MatmulArgs& a) override {
    set_device();
    cuda::matmul(gemm_, a, stream_);
  }
  void attention(const AttentionArgs& a) override {
    set_device();
    if (a.dropout_scale != 0.f || products_attention(a)) {
      attention_forward_gemm(gemm_, alloc_, a, stream_, chunk_bytes_);
      return;
    }
    if (tunes_attention()) {
      tuner_.run(
          a, stream_,
          [&](AttentionPath p) {
            if (p == AttentionPath::Products) attention_forward_gemm(gemm_, alloc_, a, stream_, chunk_bytes_);
            else fused_attention(a);
          },
          attention_tune_mode());
      return;
    }
    fused_attention(a);
  }
  void fused_attention(const AttentionArgs& a) {
    size_t ws = attention_workspace_bytes(a, sm_count_);
    Scratch scratch(alloc_, ws);
    bool lse_written = false;
    cudaError_t e = attention_forward(a, scratch.p, ws, sm_count_, stream_, &lse_written);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw_cuda("attention", "attention_forward", e);
    }
    check_launch("attention", stream_);
    // The row statistics the gradient reads: the fixed-width kernel writes them at the
    // flash gradient's widths (one key range); elsewhere a pass of their own.
    if (a.lse && !lse_written) row_lse(a, a.lse);
  }
  // Each row's log-sum-exp: with the flash gradient on, by its kernel where it takes the
  // call (no float32 scores in memory); else from the products.
  void row_lse(const AttentionArgs& a, float* lse) {
    if (flash_backward_on() && flash_row_lse_serves(a, cc_)) {
      if (cudaError_t e = flash_row_lse(a, lse, stream_)) {
        cudaGetLastError();
        throw_cuda("attention", "flash_row_lse", e);
      }
      return;
    }
    attention_row_lse(gemm_, alloc_, a, lse, stream_, chunk_bytes_);
  }
  // Dropout runs inside the op, in the product-composed forward (attention_gemm.cu),
  // only with PERCEIVER_CUDA_ATTENTION_GEMM=1 (below); else lib/ops/linalg.ts composes it.
  bool has_attention_dropout() const override { return gemm_attention_mode() == 1; }
  bool fast_attention(DType dtype, int64_t dqk, int64_t dv) const override {
    if (dtype == DType::Float32) return gemm_attention_mode() == 1 || attention_tf32_widths(dqk, dv, cc_);
    return !attention_beyond_one_tc_pass(dtype, dqk, dv, cc_, smem_optin_);
  }
  void embedding(const float* w, int64_t vocab, int64_t c, const int32_t* ids, int64_t n, float* out,
                 DType dtype, bool ids_known) override {
    set_device();
    Scratch flag(alloc_, ids_flag_wanted(ids_known) ? sizeof(unsigned long long) : 0);  // no allocation where unread
    cuda::embedding(w, vocab, c, ids, n, out, dtype, ids_known, static_cast<unsigned long long*>(flag.p), stream_);
  }
  void one_hot(const int32_t* ids, int64_t n, int64_t depth, float on, float off, float* out,
               DType dtype, bool ids_known) override {
    set_device();
    Scratch flag(alloc_, ids_flag_wanted(ids_known) ? sizeof(unsigned long long) : 0);  // no allocation where unread
    cuda::one_hot(ids, n, depth, on, off, out, dtype, ids_known, static_cast<unsigned long long*>(flag.p), stream_);
  }
  void conv2d(const Conv2dArgs& a) override {
    set_device();
    // A 1x1, stride-1, unpadded convolution is [B*H*W, Cin] @ [Cin, Cout].
    if (a.kh == 1 && a.kw == 1 && a.stride_h == 1 && a.stride_w == 1 && a.pad_top == 0 && a.pad_left == 0 &&
        a.oh == a.h && a.ow == a.w_in) {
      MatmulArgs m;
      m.a = a.x; m.b = a.w; m.c = a.out; m.bias = a.bias;
      m.batch = 1; m.m = a.batch * a.h * a.w_in; m.n = a.cout; m.k = a.cin;
      m.lda = a.cin; m.ldb = a.cout; m.ldc = a.cout;
      m.stride_a = m.stride_b = m.stride_c = 0;
      m.trans_a = m.trans_b = false;
      m.alpha = 1.f;
      m.act = Activation::None;
      m.dtype = a.dtype;
      cuda::matmul(gemm_, m, stream_);
      return;
    }
    cuda::conv2d_direct(a, stream_);
  }
  void max_pool2d(const Pool2dArgs& a) override { set_device(); cuda::max_pool2d(a, stream_); }
  void batch_norm(const float* x, const float* mean, const float* var, const float* w, const float* b, float* out,
                  int64_t rows, int64_t c, float eps, DType dtype) override {
    set_device();
    cuda::batch_norm(x, mean, var, w, b, out, rows, c, eps, dtype, stream_);
  }
  void adam_update(const AdamArgs& a) override { set_device(); cuda::adam_update(a, stream_); }
  void lamb_update(const AdamArgs& a, float* u) override {
    set_device();
    Scratch partials(alloc_, sizeof(float) * 2 * (size_t)lamb_partial_blocks(a.n));
    cuda::lamb_update(a, u, static_cast<float*>(partials.p), stream_);
  }
  void sgd_update(const SgdArgs& a) override { set_device(); cuda::sgd_update(a, stream_); }
  bool has_backward_kernels() const override { return true; }
  // The residual as cuBLASLt's C (out of place, beta 1) instead of an add after the
  // product: on an H200 the LM's [2048, 1280] bf16 dense layer took 0.016 ms with or
  // without it, saving the add's pass. PERCEIVER_CUDA_GEMM_ADDEND=0: product, then add.
  bool fuses_matmul_addend() const override {
    static const bool on = !env_off("PERCEIVER_CUDA_GEMM_ADDEND");
    return on;
  }
  // PERCEIVER_CUDA_ATTENTION_BACKWARD=1: the gradient from chunked products, for every
  // call. Otherwise 16-bit heads of the flash kernel's widths take it (attention_backward.cu;
  // PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD=0 turns it off), and lib/autograd composes the
  // rest from whole products: on an H200 that made bf16 training steps 20% faster than
  // the chunked products (float32 steps 9% slower, and more memory), and the flash
  // kernel took the latent self-attention's gradient in 0.62 ms against the products'
  // 1.13 (8 heads of 128, batch 32), 0.144 against 0.424 (the language model's).
  static bool products_backward_on() {
    static const bool on = env_flag("PERCEIVER_CUDA_ATTENTION_BACKWARD");
    return on;
  }
  // PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD: "0" off; "1" (or "4") blocks of 4 warps, "8"
  // of 8; unset or anything else, by width: 8 for heads of 128 and wider where that
  // tier serves (0.62 against 0.72 ms at batch 32 on the H200), else 4 (0.144 against
  // 0.158 at the language model's 32-wide heads).
  static int flash_backward_setting() {
    static const int setting = [] {
      const char* e = std::getenv("PERCEIVER_CUDA_ATTENTION_FLASH_BACKWARD");
      if (!e || !*e) return -1;
      if (std::strcmp(e, "0") == 0) return 0;
      if (std::strcmp(e, "1") == 0 || std::strcmp(e, "4") == 0) return 4;
      return std::strcmp(e, "8") == 0 ? 8 : -1;
    }();
    return setting;
  }
  static bool flash_backward_on() { return flash_backward_setting() != 0; }
  int flash_backward_warps(DType dtype, int64_t dqk, int64_t dv) const {
    const int s = flash_backward_setting();
    if (s >= 0) return s;
    return dqk >= 128 && flash_backward_widths(dtype, dqk, dv, cc_, smem_optin_, 8) ? 8 : 4;
  }
  bool has_attention_backward() const override { return products_backward_on() || flash_backward_on(); }
  bool fuses_attention_backward(DType dtype, int64_t dqk, int64_t dv, bool dropout) const override {
    if (products_backward_on()) return true;
    return flash_backward_on() && !dropout &&
           flash_backward_widths(dtype, dqk, dv, cc_, smem_optin_, flash_backward_warps(dtype, dqk, dv));
  }
  void attention_backward(const AttentionBackwardArgs& g) override {
    set_device();
    // A call the flash kernel cannot take after all (unaligned rows, no keys) goes to
    // the products.
    const int warps = flash_backward_warps(g.a.dtype, g.a.dqk, g.a.dv);
    if (!flash_backward_on() || !flash_backward_serves(g, cc_, smem_optin_, warps)) {
      cuda::attention_backward(gemm_, alloc_, g, stream_, chunk_bytes_);
      return;
    }
    const AttentionArgs& a = g.a;
    Scratch own_lse(alloc_, a.lse ? 0 : (size_t)(a.batch * a.heads * a.nq) * 4);
    if (!a.lse) row_lse(a, own_lse.f());
    Scratch scratch(alloc_, flash_backward_workspace_bytes(a, warps));
    cudaError_t e = flash_attention_backward(g, a.lse ? a.lse : own_lse.f(), scratch.p, stream_, warps);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw_cuda("attention_backward", "flash_attention_backward", e);
    }
    check_launch("attention_backward", stream_);
  }
  void layer_norm_backward(const float* x, const float* w, const float* g, float* gx, float* gw, float* gb,
                           int64_t rows, int64_t n, float eps, DType dtype, const GradAddends& add) override {
    set_device();
    Scratch ws(alloc_, gw || gb ? layer_norm_backward_workspace(rows, n) : 0);
    cuda::layer_norm_backward(x, w, g, gx, gw, gb, rows, n, eps, dtype, ws.p, stream_, add);
  }
  void softmax_backward(const void* y, const void* g, void* gx, int64_t rows, int64_t n, DType in_dtype,
                        DType out_dtype) override {
    set_device();
    cuda::softmax_backward(y, g, gx, rows, n, in_dtype, out_dtype, stream_);
  }
  void gelu_backward(const float* x, const float* g, float* gx, int64_t n, bool tanh_form, DType dtype) override {
    set_device();
    cuda::gelu_backward(x, g, gx, n, tanh_form, dtype, stream_);
  }
  void max_pool2d_backward(const Pool2dArgs& a, const float* g, float* gx) override {
    set_device();
    cuda::max_pool2d_backward(a, g, gx, stream_);
  }
  void synchronize() override {
    set_device();
    CUDA_CHECK("synchronize", cudaStreamSynchronize(stream_));
  }

 private:
  // PERCEIVER_CUDA_ATTENTION_GEMM: unset (-1), the calls that reach the backend in
  // float32 or with 16-bit heads wider than one tensor-core pass take chunked cuBLASLt
  // products (attention_gemm.cu); =0 the fused kernels for every call; =1 also
  // dropout inside the op (every dtype), and float32 attention comes here whole instead
  // of the op layer composing it from whole-matrix products while the scores fit, which
  // was faster on an H200 (0.98 against 1.15 ms at the image encoder's shape).
  static int gemm_attention_mode() {
    static const int mode = [] {
      const char* e = std::getenv("PERCEIVER_CUDA_ATTENTION_GEMM");
      return !e || !*e ? -1 : std::strcmp(e, "1") == 0 ? 1 : std::strcmp(e, "0") == 0 ? 0 : -1;
    }();
    return mode;
  }
  // Where the fused kernels are slow: the SIMT kernel (float32, every width) and the
  // tensor-core kernel in column chunks of V (16-bit heads over 336 wide, each chunk
  // recomputing Q Kᵀ). Timed on an H200 (2026-11-27, cuda_attention_check "gemm"
  // against kAuto): float32 1.3-12.8x faster at every shape there (the ImageNet
  // encoder 0.99 against 8.71 ms, 8 heads of 128 at batch 32 2.51 against 4.81, the
  // flow decoder's 16,384 queries of 512 over 2048 latents 1.70 against 21.7); bf16
  // at the flow decoder 0.60 against 1.67 ms and the ImageNet decoder 0.044 against
  // 0.128. Such calls reach the backend where the op layer does not compose them
  // (scores over 64M elements: ops_linalg.cc), so memory stays linear in the keys.
  // float32 calls that the 3xTF32 kernel serves (attention_tf32_serves; unless
  // PERCEIVER_CUDA_ATTENTION_TF32X3=0) stay on it; fast_attention tells the op layer so
  // too.
  bool products_attention(const AttentionArgs& a) const {
    const int mode = gemm_attention_mode();
    if (mode == 0) return false;
    if (a.dtype == DType::Float32) return !attention_tf32_serves(a, cc_);
    return attention_beyond_one_tc_pass(a.dtype, a.dqk, a.dv, cc_, smem_optin_) ||
           (long_keys_to_products() && a.nk >= 8192 && a.nk >= 8 * a.nq);
  }
  // Calls both forwards serve go to the faster on this device, timed on the first call
  // of each shape (attention_tune.h), unless PERCEIVER_CUDA_ATTENTION_TUNE=0 or
  // PERCEIVER_CUDA_ATTENTION_GEMM=0 (the fused kernels always). Those are the calls
  // products_attention leaves to the fused kernels on tensor cores: 16-bit heads within
  // one pass (the warpgroup kernel's too, with its switch), and float32 ones the 3xTF32
  // kernel takes (unless switched off; float32 elsewhere goes to the products untimed).
  static int attention_tune_mode() {
    static const int mode = attention_tune_mode_from_env();
    return mode;
  }
  static bool tunes_attention() {
    return attention_tune_mode() != 0 && gemm_attention_mode() != 0;
  }
  // PERCEIVER_CUDA_ATTENTION_LONG_KEYS=1 (seventeenth session): 16-bit calls over long
  // key ranges (at least 8192 keys and 8 per query: the ImageNet encoder's 50,176
  // pixels for 512 latents) take the products untimed, whatever the tuning. There the
  // fused kernel (tc tier 3, 0.58 ms on an H200) was slower than torch's plain
  // matmul-softmax-matmul (0.42 ms), and the products now make one pass over the keys,
  // on 16-byte-aligned copies of the 261-wide rows. The tuning (on by default) decides
  // such calls by timing them; this rule, written before it, stays as a switch.
  static bool long_keys_to_products() {
    static const bool on = env_mode("PERCEIVER_CUDA_ATTENTION_LONG_KEYS") == 1;
    return on;
  }
  // Each op starts here: an error a call left behind that nothing threw for (a
  // failed free or event destroy) must not be taken for this op's launch failure by
  // check_launch. A fault is sticky, and still shows at the next synchronisation.
  void set_device() {
    CUDA_CHECK("cuda", cudaSetDevice(device_));
    cudaGetLastError();
  }
  void ensure_staging() {
    for (int i = 0; i < 2; i++)
      if (!staging_[i]) CUDA_CHECK("pinned staging", cudaHostAlloc(&staging_[i], kStagingBytes, cudaHostAllocDefault));
  }

  int device_;
  int sm_count_ = 0;
  int cc_ = 0, smem_optin_ = 0;  // compute capability (major * 10 + minor), shared memory per block
  size_t chunk_bytes_ = kAttentionChunkBytes;  // attention_gemm.cu's scratch per chunk of keys
  cudaStream_t stream_ = nullptr;
  DeviceAllocator alloc_;
  GemmContext gemm_{};
  // Calls under 2^30 flops (a few microseconds fused) are launch-bound: the products'
  // five launches per chunk lose there whatever their rate.
  AttentionTuner tuner_{double(1 << 30)};
  std::mutex staging_mu_;
  void* staging_[2] = {nullptr, nullptr};
  cudaEvent_t staged_[2] = {nullptr, nullptr};
  // Last: its thread starts once the rest is built. It polls for 100 us before
  // sleeping: launches are microseconds apart, a condition-variable wake-up is not.
  Queue queue_{100};
};

// ---- the exported table ----

std::mutex g_mu;
bool g_init_done = false;
int g_count = 0;
std::string g_reason;
const lt::Api* g_lt = nullptr;
std::array<CudaBackend*, 64> g_backends{};

void put(char* buf, size_t n, const std::string& s) {
  if (!buf || !n) return;
  size_t k = std::min(n - 1, s.size());
  std::memcpy(buf, s.data(), k);
  buf[k] = 0;
}

std::string cuda_error(const char* what, cudaError_t e) {
  return std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
}

// The oldest GPU this library has machine code or PTX for (compute capability x 100):
// every op on an older one would fail with "no kernel image". From the architectures
// this file was compiled for, which the build gives every file of the library.
#ifdef __CUDA_ARCH_LIST__
constexpr int kBuiltArchs[] = {__CUDA_ARCH_LIST__};
#else
constexpr int kBuiltArchs[] = {750};  // nvcc before 11.5: the release set's oldest
#endif
constexpr int lowest_built_arch() {
  int lo = kBuiltArchs[0];
  for (int a : kBuiltArchs) lo = a < lo ? a : lo;
  return lo;
}

// How many devices, from cuda:0 on, can run this build's kernels; the reason where
// cuda:0 cannot. Devices are numbered from 0 here as in the driver, so one past an
// older GPU is not offered either (mixed machines with the older GPU first are rare).
// Read from the device attributes, which need no context on the device.
int usable_devices(int count, std::string* reason) {
  for (int d = 0; d < count; d++) {
    int major = 0, minor = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d);
    if (major * 100 + minor * 10 >= lowest_built_arch()) continue;
    cudaGetLastError();
    if (d == 0) {
      cudaDeviceProp p;
      const bool named = cudaGetDeviceProperties(&p, d) == cudaSuccess;
      cudaGetLastError();
      const int lo = lowest_built_arch();
      *reason = "cuda:0" + (named ? std::string(" (") + p.name + ")" : std::string()) + " has compute capability " +
                std::to_string(major) + "." + std::to_string(minor) + ", older than perceiver_cuda.so was built for (" +
                std::to_string(lo / 100) + "." + std::to_string(lo / 10 % 10) +
                " and newer; PERCEIVER_CUDA_ARCHS chooses the architectures when it is built)";
    }
    return d;
  }
  return count;
}

int api_init(char* reason, size_t reason_len) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_init_done) {
    g_init_done = true;
    // The runtime loads the driver itself; loading it first gives the exact
    // dlerror when it is missing, instead of the runtime's generic code.
    if (!dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
      const char* e = dlerror();
      g_reason = std::string("no CUDA driver: libcuda.so.1 could not be loaded (") + (e ? e : "unknown") + ")";
    } else {
      int count = 0;
      cudaError_t e = cudaGetDeviceCount(&count);
      if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) {
        cudaGetLastError();
        g_reason = "no CUDA device: the driver reports none (" + cuda_error("cudaGetDeviceCount", e) + ")";
      } else if (e != cudaSuccess) {
        cudaGetLastError();
        g_reason = "the CUDA driver cannot be used: " + cuda_error("cudaGetDeviceCount", e);
      } else {
        std::string why;
        g_lt = lt::load(&why);
        if (!g_lt) g_reason = why;
        else g_count = usable_devices(std::min<int>(count, (int)g_backends.size()), &g_reason);
      }
    }
  }
  if (!g_count) put(reason, reason_len, g_reason);
  return g_count;
}

int api_device_info(int device, CudaDeviceInfo* out, char* err, size_t err_len) {
  if (api_init(err, err_len) == 0) return -1;
  if (device < 0 || device >= g_count) {
    put(err, err_len, "device cuda:" + std::to_string(device) + " does not exist (" + std::to_string(g_count) +
                          " device" + (g_count == 1 ? "" : "s") + ")");
    return -1;
  }
  cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, device);
  if (e != cudaSuccess) {
    put(err, err_len, cuda_error("cudaGetDeviceProperties", e));
    return -1;
  }
  std::memset(out, 0, sizeof(*out));
  put(out->name, sizeof(out->name), p.name);
  out->major = p.major;
  out->minor = p.minor;
  out->multiprocessors = p.multiProcessorCount;
  out->total_bytes = p.totalGlobalMem;
  size_t free_b = 0, total_b = 0;
  if (cudaSetDevice(device) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    out->free_bytes = free_b;
  cudaDriverGetVersion(&out->driver_version);
  cudaRuntimeGetVersion(&out->runtime_version);
  out->cublas_version = g_lt ? g_lt->get_version() : 0;
  if (g_lt) put(out->cublas_path, sizeof(out->cublas_path), g_lt->path);
  return 0;
}

Backend* api_backend(int device, char* err, size_t err_len) {
  if (api_init(err, err_len) == 0) return nullptr;
  if (device < 0 || device >= g_count) {
    put(err, err_len, "device cuda:" + std::to_string(device) + " does not exist (" + std::to_string(g_count) +
                          " device" + (g_count == 1 ? "" : "s") + ")");
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_backends[device]) {
    try {
      // Leaked on purpose, like the CPU backend: queued work may outlive exit.
      g_backends[device] = new CudaBackend(device, g_lt);
    } catch (const std::exception& e) {
      put(err, err_len, e.what());
      return nullptr;
    }
  }
  return g_backends[device];
}

const CudaApi g_api = {kCudaAbiVersion, sizeof(CudaApi), kCudaAbiLayout, api_init, api_device_info, api_backend};

}  // namespace
}  // namespace cuda
}  // namespace perceiver

extern "C" __attribute__((visibility("default"))) const perceiver::CudaApi* perceiver_cuda_api(
    uint32_t abi_version, char* err, size_t err_len) {
  if (abi_version != perceiver::kCudaAbiVersion) {
    perceiver::cuda::put(err, err_len,
                         "perceiver_cuda.so was built for backend ABI " + std::to_string(perceiver::kCudaAbiVersion) +
                             " but the addon expects " + std::to_string(abi_version) +
                             "; rebuild both from the same sources");
    return nullptr;
  }
  return &perceiver::cuda::g_api;
}
