// GEMM through cuBLASLt, which is column-major: a row-major C = op(A) op(B) is
// computed as the column-major C^T = op(B)^T op(A)^T, i.e. with the operands
// swapped and no data moved. Bias and ReLU (and tanh-GELU in 16 bits) are fused as
// cuBLASLt epilogues; the exact (erf) GELU, float32's tanh-GELU, and any epilogue cuBLASLt refuses for a
// layout, run as a second elementwise pass (bias_act). float32 computes in
// float32 (no TF32 unless PERCEIVER_CUDA_TF32=1) to stay within 1e-5 of the CPU;
// 16-bit types accumulate in float32.
#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <string>

#include "common.cuh"
#include "gemm.h"
#include "kernels.h"

namespace perceiver {
namespace cuda {
namespace {

__device__ __forceinline__ float act_f(Activation act, float v) {
  switch (act) {
    case Activation::None: return v;
    case Activation::Relu: return v > 0.f ? v : (v == v ? 0.f : v);
    case Activation::Gelu: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case Activation::GeluTanh:
      return 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  }
  return v;
}

template <class T>
__global__ void bias_act_kernel(T* c, const T* bias, int64_t batch, int64_t rows, int64_t n, int64_t ldc,
                                int64_t stride_c, Activation act) {
  int64_t total = batch * rows * n;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t j = i % n, r = (i / n) % rows, b = i / (n * rows);
    T* p = c + b * stride_c + r * ldc + j;
    float v = to_f(*p);
    if (bias) v += to_f(bias[j]);
    *p = from_f<T>(act_f(act, v));
  }
}

cudaDataType_t lt_type(DType t) {
  switch (t) {
    case DType::Float32: return CUDA_R_32F;
    case DType::Float16: return CUDA_R_16F;
    case DType::BFloat16: return CUDA_R_16BF;
    default: throw_type(std::string("matmul: the cuda kernel takes float32, float16 or bfloat16, got ") + dtype_name(t));
  }
}

// The largest power of two (up to 256) dividing every address the GEMM touches
// through this operand; cuBLASLt assumes 256 unless told, and views are not.
uint32_t alignment(const void* p, int64_t ld, int64_t batch_stride, size_t es) {
  uint64_t bits = (uint64_t)(uintptr_t)p | (uint64_t)ld * es | (uint64_t)batch_stride * es | 256;
  return (uint32_t)(bits & (~bits + 1));
}

// The names of the statuses a matmul call returns, for error messages.
const char* status_name(lt::Status st) {
  switch (st) {
    case 1: return " (NOT_INITIALIZED)";
    case 3: return " (ALLOC_FAILED)";
    case 7: return " (INVALID_VALUE)";
    case 8: return " (ARCH_MISMATCH)";
    case 13: return " (EXECUTION_FAILED)";
    case 14: return " (INTERNAL_ERROR)";
    case 15: return " (NOT_SUPPORTED)";
    default: return "";
  }
}

// A failed product's arguments, so that a refusal can be reproduced from the message.
std::string describe(const MatmulArgs& a, uint32_t al_a, uint32_t al_b, uint32_t al_c) {
  auto n = [](int64_t v) { return std::to_string(v); };
  return std::string(dtype_name(a.dtype)) + (a.c_float32 ? " (C float32)" : "") + " [" + n(a.m) + ", " + n(a.k) +
         "] x [" + n(a.k) + ", " + n(a.n) + "] batch " + n(a.batch) + (a.trans_a ? ", A transposed" : "") +
         (a.trans_b ? ", B transposed" : "") + ", ld " + n(a.lda) + "/" + n(a.ldb) + "/" + n(a.ldc) + ", batch strides " +
         n(a.stride_a) + "/" + n(a.stride_b) + "/" + n(a.stride_c) + ", alignments " + n(al_a) + "/" + n(al_b) + "/" +
         n(al_c) + " bytes, beta " + std::to_string(a.beta) + (a.addend ? " (an addend as C)" : "");
}

void check_lt(const char* what, lt::Status st) {
  if (st != 0) throw Error(ErrorKind::Runtime, std::string("matmul: ") + what + " failed with cublasStatus " + std::to_string(st));
}

// RAII for the per-call descriptors.
struct Descs {
  const lt::Api* api;
  lt::MatmulDesc op = nullptr;
  lt::MatrixLayout x = nullptr, y = nullptr, d = nullptr;
  lt::Preference pref = nullptr;
  ~Descs() {
    if (pref) api->pref_destroy(pref);
    if (d) api->layout_destroy(d);
    if (y) api->layout_destroy(y);
    if (x) api->layout_destroy(x);
    if (op) api->desc_destroy(op);
  }
};

using Key = std::array<int64_t, 20>;
std::mutex cache_mu;
std::map<Key, std::pair<bool, lt::Algo>> algo_cache;  // bool: an algorithm exists

}  // namespace

void bias_act(void* c, const void* bias, int64_t batch, int64_t rows, int64_t n, int64_t ldc, int64_t stride_c,
              Activation act, DType dtype, cudaStream_t s) {
  int64_t total = batch * rows * n;
  if (total == 0) return;
  DISPATCH_FLOAT("matmul", dtype, T,
                 bias_act_kernel<T><<<grid_for(total), kThreads, 0, s>>>(static_cast<T*>(c), static_cast<const T*>(bias),
                                                                          batch, rows, n, ldc, stride_c, act));
  check_launch("matmul (bias/activation)", s);
}

void matmul(GemmContext& ctx, const MatmulArgs& in, cudaStream_t s) {
  MatmulArgs a = in;
  const lt::Api& api = *ctx.api;
  size_t es = dtype_size(a.dtype);
  cudaDataType_t type = lt_type(a.dtype);
  // C's element: float32 where asked (16-bit A and B, no bias or activation).
  const size_t es_c = a.c_float32 ? 4 : es;
  const cudaDataType_t type_c = a.c_float32 ? CUDA_R_32F : type;
  if (a.batch == 0 || a.m == 0 || a.n == 0) return;
  // An addend is C's input where D is the output (out of place: D != C, same layout).
  const void* c_in = a.addend ? (const void*)a.addend : (const void*)a.c;
  if (a.addend) a.beta = 1.f;
  if (a.k == 0 && a.addend) {  // an empty sum: C = addend + bias
    for (int64_t b = 0; b < a.batch; b++)
      CUDA_CHECK("matmul", cudaMemcpy2DAsync((char*)a.c + b * a.stride_c * es_c, a.ldc * es_c,
                                             (const char*)a.addend + b * a.stride_c * es_c, a.ldc * es_c,
                                             a.n * es_c, a.m, cudaMemcpyDeviceToDevice, s));
    if (a.bias) bias_act(a.c, a.bias, a.batch, a.m, a.n, a.ldc, a.stride_c, Activation::None, a.dtype, s);
    return;
  }
  if (a.k == 0 && a.beta == 1.f && !a.bias && a.act == Activation::None) return;  // C += 0
  if (a.k == 0) {  // an empty sum: C = act(bias)
    for (int64_t b = 0; b < a.batch; b++)
      CUDA_CHECK("matmul", cudaMemset2DAsync((char*)a.c + b * a.stride_c * es_c, a.ldc * es_c, 0, a.n * es_c, a.m, s));
    if (a.bias || a.act != Activation::None) bias_act(a.c, a.bias, a.batch, a.m, a.n, a.ldc, a.stride_c, a.act, a.dtype, s);
    return;
  }
  // A shared right-hand side (x [B, M, K] @ W [K, N]) is one tall GEMM: fold the
  // batch into M when A's and C's batches are back to back.
  if (a.batch > 1 && a.stride_b == 0 && !a.trans_a && a.stride_a == a.m * a.lda && a.stride_c == a.m * a.ldc) {
    a.m *= a.batch;
    a.batch = 1;
  }

  // Column-major view: D (n x m, ld ldc) = X (our B) op Y (our A).
  int opx = a.trans_b ? lt::OP_T : lt::OP_N;
  int opy = a.trans_a ? lt::OP_T : lt::OP_N;
  uint64_t x_rows = a.trans_b ? a.k : a.n, x_cols = a.trans_b ? a.n : a.k;
  uint64_t y_rows = a.trans_a ? a.m : a.k, y_cols = a.trans_a ? a.k : a.m;

  // cuBLASLt's GELU epilogue evaluates tanh approximately (measured 5e-5 relative off
  // on an H200): below 16-bit rounding, but not float32's, so float32 takes our exact
  // second pass, as the erf GELU always does.
  bool lt_gelu = a.act == Activation::GeluTanh && a.dtype != DType::Float32;
  bool act_pass = a.act == Activation::Gelu || (a.act == Activation::GeluTanh && !lt_gelu);
  uint32_t epilogue = lt::EPILOGUE_DEFAULT;
  if (a.bias) epilogue = a.act == Activation::Relu ? lt::EPILOGUE_RELU_BIAS : lt_gelu ? lt::EPILOGUE_GELU_BIAS : lt::EPILOGUE_BIAS;
  else if (a.act == Activation::Relu) epilogue = lt::EPILOGUE_RELU;
  else if (lt_gelu) epilogue = lt::EPILOGUE_GELU;
  int compute = ctx.tf32 && a.dtype == DType::Float32 ? lt::COMPUTE_32F_FAST_TF32 : lt::COMPUTE_32F;

  uint32_t al_x = alignment(a.b, a.ldb, a.stride_b, es), al_y = alignment(a.a, a.lda, a.stride_a, es);
  uint32_t al_d = alignment(a.c, a.ldc, a.stride_c, es_c);
  if (a.addend) al_d = std::min(al_d, alignment(a.addend, a.ldc, a.stride_c, es_c));

  auto build = [&](Descs& d, uint32_t epi) {
    check_lt("cublasLtMatmulDescCreate", api.desc_create(&d.op, compute, CUDA_R_32F));
    check_lt("set TRANSA", api.desc_set(d.op, lt::DESC_TRANSA, &opx, sizeof(opx)));
    check_lt("set TRANSB", api.desc_set(d.op, lt::DESC_TRANSB, &opy, sizeof(opy)));
    check_lt("set EPILOGUE", api.desc_set(d.op, lt::DESC_EPILOGUE, &epi, sizeof(epi)));
    if (epi == lt::EPILOGUE_BIAS || epi == lt::EPILOGUE_RELU_BIAS || epi == lt::EPILOGUE_GELU_BIAS)
      check_lt("set BIAS_POINTER", api.desc_set(d.op, lt::DESC_BIAS_POINTER, &a.bias, sizeof(a.bias)));
    check_lt("layout of b", api.layout_create(&d.x, type, x_rows, x_cols, a.ldb));
    check_lt("layout of a", api.layout_create(&d.y, type, y_rows, y_cols, a.lda));
    check_lt("layout of c", api.layout_create(&d.d, type_c, a.n, a.m, a.ldc));
    if (a.batch > 1) {
      int32_t count = (int32_t)a.batch;
      lt::MatrixLayout ls[3] = {d.x, d.y, d.d};
      int64_t strides[3] = {a.stride_b, a.stride_a, a.stride_c};
      for (int i = 0; i < 3; i++) {
        check_lt("set BATCH_COUNT", api.layout_set(ls[i], lt::LAYOUT_BATCH_COUNT, &count, sizeof(count)));
        check_lt("set STRIDED_BATCH_OFFSET",
                 api.layout_set(ls[i], lt::LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof(strides[i])));
      }
    }
    check_lt("cublasLtMatmulPreferenceCreate", api.pref_create(&d.pref));
    uint64_t ws = ctx.workspace_bytes;
    check_lt("set MAX_WORKSPACE_BYTES", api.pref_set(d.pref, lt::PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    check_lt("set MIN_ALIGNMENT_A", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_A_BYTES, &al_x, sizeof(al_x)));
    check_lt("set MIN_ALIGNMENT_B", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_B_BYTES, &al_y, sizeof(al_y)));
    check_lt("set MIN_ALIGNMENT_C", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
    check_lt("set MIN_ALIGNMENT_D", api.pref_set(d.pref, lt::PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));
  };

  auto find = [&](Descs& d, uint32_t epi, lt::Algo* algo) {
    Key key = {(int64_t)a.dtype * 4 + (a.c_float32 ? 1 : 0) + (a.beta != 0.f ? 2 : 0), a.m, a.n, a.k, a.lda, a.ldb, a.ldc, a.batch, a.stride_a, a.stride_b,
               a.stride_c, opx, opy, (int64_t)epi, compute, al_x, al_y, al_d, (int64_t)ctx.workspace_bytes, ctx.device};
    {
      std::lock_guard<std::mutex> lock(cache_mu);
      auto it = algo_cache.find(key);
      if (it != algo_cache.end()) {
        *algo = it->second.second;
        return it->second.first;
      }
    }
    lt::HeuristicResult r;
    int found = 0;
    lt::Status st = api.heuristic(ctx.handle, d.op, d.x, d.y, d.d, d.d, d.pref, 1, &r, &found);
    bool ok = st == 0 && found > 0;
    if (ok) *algo = r.algo;
    std::lock_guard<std::mutex> lock(cache_mu);
    algo_cache[key] = {ok, ok ? r.algo : lt::Algo{}};
    return ok;
  };

  float alpha = a.alpha, beta = a.beta;
  lt::Algo algo;
  // cuBLASLt reads the bias vector with vector loads; a view into the middle of a
  // parameter may not be aligned for them, so such a bias takes the second pass.
  bool bias_aligned = !a.bias || (uintptr_t)a.bias % 16 == 0;
  if (epilogue != lt::EPILOGUE_DEFAULT && bias_aligned) {
    Descs d{&api};
    build(d, epilogue);
    if (find(d, epilogue, &algo) &&
        api.matmul(ctx.handle, d.op, &alpha, a.b, d.x, a.a, d.y, &beta, c_in, d.d, a.c, d.d, &algo, ctx.workspace,
                   ctx.workspace_bytes, s) == 0) {
      if (act_pass) bias_act(a.c, nullptr, a.batch, a.m, a.n, a.ldc, a.stride_c, a.act, a.dtype, s);
      return;
    }
  }
  // Plain GEMM, then bias and activation (if any) as a second pass.
  Descs d{&api};
  build(d, lt::EPILOGUE_DEFAULT);
  if (!find(d, lt::EPILOGUE_DEFAULT, &algo))
    throw Error(ErrorKind::Runtime, "matmul: cuBLASLt has no algorithm for " + std::string(dtype_name(a.dtype)) +
                                        " [" + std::to_string(a.m) + ", " + std::to_string(a.k) + "] x [" +
                                        std::to_string(a.k) + ", " + std::to_string(a.n) + "] (batch " +
                                        std::to_string(a.batch) + ")");
  const lt::Status st = api.matmul(ctx.handle, d.op, &alpha, a.b, d.x, a.a, d.y, &beta, c_in, d.d, a.c, d.d, &algo,
                                  ctx.workspace, ctx.workspace_bytes, s);
  if (st != 0) throw Error(ErrorKind::Runtime, "matmul: cublasLtMatmul failed with cublasStatus " + std::to_string(st) +
                                                   status_name(st) + " for " + describe(a, al_y, al_x, al_d));
  if (a.bias || a.act != Activation::None)
    bias_act(a.c, a.bias, a.batch, a.m, a.n, a.ldc, a.stride_c, a.act, a.dtype, s);
}

}  // namespace cuda
}  // namespace perceiver
