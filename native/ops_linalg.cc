// matmul (batched, broadcasting, fused bias + activation) and fused attention.
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "op_util.h"
#include "ops.h"

namespace perceiver {
namespace {

// Brings a matrix operand into the form the kernels take: unit stride along one of
// its last two axes (the other is the leading dimension) and its batch axes
// reachable through a single stride. Copies only when the view allows neither.
struct MatOperand {
  Tensor t;
  bool trans;
  int64_t ld, batch_stride;
};

bool single_stride(const Tensor& t, int nbatch, int64_t* stride) {
  // The batch axes [0, nbatch) must step as one: each stride equals the next
  // axis' stride times its size (size-1 axes are free), or all are zero.
  int64_t s = -1, expect = -1;
  for (int i = nbatch - 1; i >= 0; i--) {
    if (t.shape[i] == 1) continue;
    if (s < 0) {
      s = t.strides[i];
      expect = s * t.shape[i];
    } else if (s == 0 ? t.strides[i] != 0 : t.strides[i] != expect) {
      return false;
    } else {
      expect = t.strides[i] * t.shape[i];
    }
  }
  *stride = s < 0 ? 0 : s;
  return true;
}

MatOperand prepare(const Tensor& x_in, bool trans, const Shape& batch) {
  int nb = (int)batch.size();
  Shape full = batch;
  full.push_back(x_in.shape[x_in.ndim() - 2]);
  full.push_back(x_in.shape[x_in.ndim() - 1]);
  Tensor x = broadcast_to(x_in, full);
  auto try_form = [&](const Tensor& t, MatOperand* r) {
    int64_t s_row = t.strides[nb], s_col = t.strides[nb + 1];
    int64_t rows = t.shape[nb], cols = t.shape[nb + 1];
    int64_t bs;
    if (!single_stride(t, nb, &bs)) return false;
    if (s_col == 1 || cols == 1) {
      *r = {t, trans, rows == 1 ? std::max<int64_t>(cols, 1) : s_row, bs};
      if (r->ld < std::max<int64_t>(cols, 1)) return false;
      return true;
    }
    if (s_row == 1 || rows == 1) {  // column-major view: the transpose is row-major
      *r = {t, !trans, s_col, bs};
      if (r->ld < std::max<int64_t>(rows, 1)) return false;
      return true;
    }
    return false;
  };
  MatOperand r;
  if (try_form(x, &r)) return r;
  Tensor c = contiguous(x);
  try_form(c, &r);
  return r;
}

// Where the backend's fused attention is slow for these widths: CUDA's float32 and
// 16-bit heads wider than its tensor-core kernel takes (the ImageNet classifiers'
// single 1024-wide query: 2.75 ms at batch 32 in bf16 on the SIMT kernel). cuBLAS's
// GEMMs with a softmax pass between them run several times faster, at the cost of
// materialising the [B, H, Nq, Nk] scores; so that form is taken while the scores
// stay within 64M elements (256 MB). Longer key ranges go to the backend, whose CUDA
// side takes the same products a chunk of keys at a time (attention_gemm.cu), in
// linear memory.
// PERCEIVER_ATTENTION_COMPOSE=1 takes it on any device (tests compare the two), =0
// never.
bool compose_attention(const Tensor& q, int64_t dv, int64_t scores) {
  if (scores <= 0) return false;
  const char* e = std::getenv("PERCEIVER_ATTENTION_COMPOSE");
  if (e && *e) {
    if (!std::strcmp(e, "0") || !std::strcmp(e, "1")) return *e == '1';
    // Said once; any other value acts as unset, as on the JS side (dropout), which reads only '1' as on.
    static const bool warned = (std::fprintf(stderr, "perceiver-io: ignoring PERCEIVER_ATTENTION_COMPOSE=%s (0 or 1)\n", e), true);
    (void)warned;
  }
  return scores <= (int64_t(1) << 26) && !backend_for(q.device())->fast_attention(q.dtype, q.shape[3], dv);
}

// softmax(scale q kᵀ, masked) v through batched products: q [B, Nq, H, Dqk] and the
// others as attention() takes them, mask (if any) already [B, Nq, Nk]; rows whose keys
// are all masked give 0, as the fused kernels define. 16-bit operands keep the logits
// and the softmax in float32, as the fused kernels do, and round the weights once.
Tensor attention_composed(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask, float scale) {
  const std::vector<int64_t> heads = {0, 2, 1, 3};
  const Tensor qh = permute(q, heads), kh = permute(k, heads), vh = permute(v, heads);  // [B, H, N, D]
  Tensor logits = matmul(qh, kh, false, true, nullptr, Activation::None, scale, q.dtype != DType::Float32);  // [B, H, Nq, Nk]
  Tensor p;
  if (mask) {
    const int64_t B = mask->shape[0], nq = mask->shape[1], nk = mask->shape[2];
    const Tensor m = reshape(*mask, {B, 1, nq, nk});
    logits = where(m, logits, full({}, -1e30, logits.dtype, logits.device()));
    // 1 where a row has any allowed key (mask values other than 0 and 1 count as 1).
    const Tensor any_key = binary(BinaryOp::Minimum, reduce(ReduceOp::Max, cast(m, logits.dtype), 3, true),
                                  full({}, 1.0, logits.dtype, logits.device()));  // [B, 1, Nq, 1]
    p = binary(BinaryOp::Mul, softmax(logits, false), any_key);
  } else {
    p = softmax(logits, false);
  }
  if (p.dtype != v.dtype) p = cast(p, v.dtype);
  return contiguous(permute(matmul(p, vh, false, false, nullptr, Activation::None, 1.f), heads));  // [B, Nq, H, Dv]
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, const Tensor* bias,
              Activation act, float alpha, bool out_float32, const Tensor* addend) {
  check_float("matmul", "a", a);
  check_float("matmul", "b", b);
  if (bias) check_float("matmul", "bias", *bias);
  if (addend) check_float("matmul", "addend", *addend);
  check_same_dtype("matmul", {{"a", &a}, {"b", &b}, {"bias", bias}, {"addend", addend}});
  check_min_ndim("matmul", "a", a, 2);
  check_min_ndim("matmul", "b", b, 2);
  check_same_device("matmul", {{"a", &a}, {"b", &b}, {"bias", bias}, {"addend", addend}});
  out_float32 = out_float32 && a.dtype != DType::Float32;
  if (out_float32 && (bias || act != Activation::None || addend))
    throw_value("matmul: a float32 result from " + std::string(dtype_name(a.dtype)) +
                " operands takes no bias, activation or addend");
  if (addend && act != Activation::None)
    throw_value("matmul: argument 'addend' takes no activation (apply it before adding), got one");
  if (cpu_16bit(a)) {
    Tensor bias32 = bias ? cast(*bias, DType::Float32) : Tensor();
    Tensor addend32 = addend ? cast(*addend, DType::Float32) : Tensor();
    Tensor r = matmul(cast(a, DType::Float32), cast(b, DType::Float32), trans_a, trans_b,
                      bias ? &bias32 : nullptr, act, alpha, false, addend ? &addend32 : nullptr);
    return out_float32 ? r : cast(r, a.dtype);
  }
  int64_t m = trans_a ? a.shape[a.ndim() - 1] : a.shape[a.ndim() - 2];
  int64_t ka = trans_a ? a.shape[a.ndim() - 2] : a.shape[a.ndim() - 1];
  int64_t kb = trans_b ? b.shape[b.ndim() - 1] : b.shape[b.ndim() - 2];
  int64_t n = trans_b ? b.shape[b.ndim() - 2] : b.shape[b.ndim() - 1];
  if (ka != kb)
    throw_range("matmul: inner dimensions differ: 'a' " + shape_str(a.shape) +
                (trans_a ? " (transposed)" : "") + " has K = " + std::to_string(ka) + " but 'b' " +
                shape_str(b.shape) + (trans_b ? " (transposed)" : "") + " has K = " +
                std::to_string(kb));
  Shape ba(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  Shape batch = broadcast_shapes("matmul", ba, "a (batch dims)", bb, "b (batch dims)");
  Tensor bias_c;
  if (bias) {
    check_shape("matmul", "bias", *bias, {n});
    bias_c = contiguous(*bias);
  }
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  Tensor addend_c;
  if (addend) {
    try {
      addend_c = broadcast_to(*addend, shape);
    } catch (const Error&) {
      throw_range("matmul: argument 'addend' must broadcast to the result's shape " + shape_str(shape) + ", got " +
                  shape_str(addend->shape));
    }
    if (!backend_for(a.device())->fuses_matmul_addend())
      return binary(BinaryOp::Add, matmul(a, b, trans_a, trans_b, bias, act, alpha), addend_c);
    addend_c = contiguous(addend_c);
  }
  MatOperand pa = prepare(a, trans_a, batch), pb = prepare(b, trans_b, batch);
  Tensor out = empty(shape, out_float32 ? DType::Float32 : a.dtype, a.device(), "matmul");
  MatmulArgs args;
  args.dtype = a.dtype;
  args.c_float32 = out_float32;
  args.batch = shape_numel(batch);
  args.m = m;
  args.n = n;
  args.k = ka;
  args.lda = pa.ld;
  args.ldb = pb.ld;
  args.ldc = std::max<int64_t>(n, 1);
  args.stride_a = pa.batch_stride;
  args.stride_b = pb.batch_stride;
  args.stride_c = m * n;
  args.trans_a = pa.trans;
  args.trans_b = pb.trans;
  args.alpha = alpha;
  args.act = act;
  if (out.numel() == 0) return out;
  bool has_bias = bias != nullptr, has_addend = addend != nullptr;
  launch("matmul", a.device(), {&pa.t, &pb.t, bias ? &bias_c : nullptr, addend ? &addend_c : nullptr}, {&out},
         [args, ta = data_ref(pa.t), tb = data_ref(pb.t), out = data_ref(out), bias_c = data_ref(bias_c),
          addend_c = data_ref(addend_c), has_bias, has_addend](Backend& be) mutable {
           args.a = (const float*)ta.data();
           args.b = (const float*)tb.data();
           args.c = (float*)out.data();
           args.bias = has_bias ? (const float*)bias_c.data() : nullptr;
           args.addend = has_addend ? (const float*)addend_c.data() : nullptr;
           be.matmul(args);
         });
  return out;
}

namespace {

// Checks attention's operands for `op` and returns the mask broadcast to [B, Nq, Nk]
// (empty without one).
Tensor check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                       float scale) {
  check_float(op, "q", q);
  check_float(op, "k", k);
  check_float(op, "v", v);
  check_same_dtype(op, {{"q", &q}, {"k", &k}, {"v", &v}});
  check_ndim(op, "q", q, 4);
  check_ndim(op, "k", k, 4);
  check_ndim(op, "v", v, 4);
  check_same_device(op, {{"q", &q}, {"k", &k}, {"v", &v}, {"mask", mask}});
  const int64_t B = q.shape[0], nq = q.shape[1], H = q.shape[2], dqk = q.shape[3];
  const int64_t nk = k.shape[1];
  const std::string name(op);
  if (k.shape[0] != B || k.shape[2] != H || k.shape[3] != dqk)
    throw_range(name + ": argument 'k' must have shape [" + std::to_string(B) + ", Nk, " + std::to_string(H) + ", " +
                std::to_string(dqk) + "] to match 'q' " + shape_str(q.shape) + ", got " + shape_str(k.shape));
  if (v.shape[0] != B || v.shape[1] != nk || v.shape[2] != H)
    throw_range(name + ": argument 'v' must have shape [" + std::to_string(B) + ", " + std::to_string(nk) + ", " +
                std::to_string(H) + ", Dv] to match 'q' and 'k', got " + shape_str(v.shape));
  if (!(scale == scale)) throw_range(name + ": argument 'scale' must be a number, got NaN");
  if (!mask) return Tensor();
  check_dtype(op, "mask", *mask, DType::UInt8);
  const std::string want = name + ": argument 'mask' must be broadcastable to [B, Nq, Nk] = " + shape_str({B, nq, nk}) +
                           ", got " + shape_str(mask->shape);
  if (mask->ndim() > 3) throw_range(want);
  try {
    return broadcast_to(*mask, {B, nq, nk});
  } catch (const Error&) {
    throw_range(want);
  }
}

float default_scale(float scale, int64_t dqk) {
  return scale > 0 ? scale : (float)(1.0 / std::sqrt((double)std::max<int64_t>(dqk, 1)));
}

// A view whose last axis has unit stride (the kernels' only requirement).
Tensor unit_inner(const Tensor& t) { return t.shape[3] <= 1 || t.strides[3] == 1 ? t : contiguous(t); }

// Checks the dropout of a call on q's device.
void check_dropout(const char* op, const Tensor& q, const AttentionDropout& d) {
  if (!(d.p >= 0 && d.p < 1))
    throw_range(std::string(op) + ": argument 'dropoutP' must be in [0, 1), got " + std::to_string(d.p));
  if (d.p > 0 && !backend_for(q.device())->has_attention_dropout())
    throw_value(std::string(op) + ": no dropout inside the fused attention on " + q.device().str() +
                " (compose attention with dropout from products there)");
}

// The kernels' description of a call (data pointers are filled in on the queue).
AttentionArgs attention_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mk, const Tensor& out,
                             float scale, const AttentionDropout& dropout) {
  AttentionArgs a;
  a.dtype = q.dtype;
  a.batch = q.shape[0]; a.nq = q.shape[1]; a.heads = q.shape[2]; a.dqk = q.shape[3];
  a.nk = k.shape[1]; a.dv = v.shape[3];
  a.q_sb = q.strides[0]; a.q_sn = q.strides[1]; a.q_sh = q.strides[2];
  a.k_sb = k.strides[0]; a.k_sn = k.strides[1]; a.k_sh = k.strides[2];
  a.v_sb = v.strides[0]; a.v_sn = v.strides[1]; a.v_sh = v.strides[2];
  a.o_sb = out.strides[0]; a.o_sn = out.strides[1]; a.o_sh = out.strides[2];
  if (mk.storage) { a.m_sb = mk.strides[0]; a.m_sq = mk.strides[1]; a.m_sk = mk.strides[2]; }
  else { a.m_sb = a.m_sq = a.m_sk = 0; }
  a.scale = default_scale(scale, a.dqk);
  if (dropout.p > 0) {
    // Rounded as dropout()'s composed ops round their scalars: rand() < 1 - p, then
    // times 1 / (1 - p), each a float32 scalar computed in double.
    a.dropout_seed = dropout.seed;
    a.dropout_keep_below = (float)(1.0 - dropout.p);
    a.dropout_scale = (float)(1.0 / (1.0 - dropout.p));
  }
  return a;
}

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor* mask, float scale,
                 Tensor* lse_out, AttentionDropout dropout) {
  Tensor mk = check_attention("attention", q_in, k_in, v_in, mask, scale);
  check_dropout("attention", q_in, dropout);
  const int64_t B = q_in.shape[0], nq = q_in.shape[1], H = q_in.shape[2], dqk = q_in.shape[3];
  const int64_t nk = k_in.shape[1], dv = v_in.shape[3];
  if (lse_out) {
    *lse_out = Tensor();
    if (!backend_for(q_in.device())->has_attention_backward())
      throw_value("attention: no fused attention gradient on " + q_in.device().str() + " to take the row statistics");
  }
  if (dropout.p == 0 && compose_attention(q_in, dv, B * H * nq * nk))
    return attention_composed(q_in, k_in, v_in, mask ? &mk : nullptr, default_scale(scale, dqk));
  if (cpu_16bit(q_in)) {
    Tensor m = mask ? *mask : Tensor();
    return cast(attention(cast(q_in, DType::Float32), cast(k_in, DType::Float32), cast(v_in, DType::Float32),
                          mask ? &m : nullptr, scale, lse_out, dropout),
                q_in.dtype);
  }
  Tensor q = unit_inner(q_in), k = unit_inner(k_in), v = unit_inner(v_in);
  Tensor out = empty({B, nq, H, dv}, q.dtype, q.device(), "attention");
  if (out.numel() == 0) return out;
  Tensor lse = lse_out ? empty({B, H, nq}, DType::Float32, q.device(), "attention") : Tensor();
  AttentionArgs a = attention_args(q, k, v, mk, out, scale, dropout);
  bool has_mask = mask != nullptr, has_lse = lse_out != nullptr;
  launch("attention", q.device(), {&q, &k, &v, mask ? &mk : nullptr}, {&out, has_lse ? &lse : nullptr},
         [a, q = data_ref(q), k = data_ref(k), v = data_ref(v), mk = data_ref(mk), out = data_ref(out), lse = data_ref(lse),
          has_mask, has_lse](Backend& b) mutable {
           a.q = (const float*)q.data();
           a.k = (const float*)k.data();
           a.v = (const float*)v.data();
           a.out = (float*)out.data();
           a.mask = has_mask ? (const uint8_t*)mk.data() : nullptr;
           a.lse = has_lse ? (float*)lse.data() : nullptr;
           b.attention(a);
         });
  if (lse_out) *lse_out = lse;
  return out;
}

std::vector<Tensor> attention_backward(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor* mask,
                                       const Tensor& out_in, const Tensor& g_in, const Tensor* lse_in, float scale,
                                       AttentionDropout dropout) {
  const char* op = "attention_backward";
  Tensor mk = check_attention(op, q_in, k_in, v_in, mask, scale);
  check_dropout(op, q_in, dropout);
  const int64_t B = q_in.shape[0], nq = q_in.shape[1], H = q_in.shape[2], dqk = q_in.shape[3];
  const int64_t nk = k_in.shape[1], dv = v_in.shape[3];
  check_float(op, "out", out_in);
  check_float(op, "g", g_in);
  check_shape(op, "out", out_in, {B, nq, H, dv});
  check_shape(op, "g", g_in, {B, nq, H, dv});
  check_same_dtype(op, {{"q", &q_in}, {"out", &out_in}, {"g", &g_in}});
  check_same_device(op, {{"q", &q_in}, {"out", &out_in}, {"g", &g_in}, {"lse", lse_in}});
  if (lse_in) {
    check_dtype(op, "lse", *lse_in, DType::Float32);
    check_shape(op, "lse", *lse_in, {B, H, nq});
  }
  if (!backend_for(q_in.device())->has_attention_backward())
    throw_value(std::string(op) + ": no fused attention gradient on " + q_in.device().str() +
                " (compose it from products there)");
  if (cpu_16bit(q_in)) {
    const DType dt = q_in.dtype;
    auto f32 = [](const Tensor& t) { return cast(t, DType::Float32); };
    auto r = attention_backward(f32(q_in), f32(k_in), f32(v_in), mask, f32(out_in), f32(g_in), lse_in, scale, dropout);
    for (Tensor& t : r) t = cast(t, dt);
    return r;
  }
  Tensor q = unit_inner(q_in), k = unit_inner(k_in), v = unit_inner(v_in);
  Tensor out = contiguous(out_in), g = contiguous(g_in);
  Tensor gq = empty({B, nq, H, dqk}, q.dtype, q.device(), op);
  Tensor gk = empty({B, nk, H, dqk}, q.dtype, q.device(), op);
  Tensor gv = empty({B, nk, H, dv}, q.dtype, q.device(), op);
  if (gq.numel() + gk.numel() + gv.numel() == 0) return {gq, gk, gv};
  Tensor lse = lse_in ? contiguous(*lse_in) : Tensor();
  AttentionBackwardArgs ga;
  ga.a = attention_args(q, k, v, mk, out, scale, dropout);
  bool has_mask = mask != nullptr, has_lse = lse_in != nullptr;
  launch(op, q.device(), {&q, &k, &v, mask ? &mk : nullptr, &out, &g, has_lse ? &lse : nullptr}, {&gq, &gk, &gv},
         [ga, q = data_ref(q), k = data_ref(k), v = data_ref(v), mk = data_ref(mk), out = data_ref(out), g = data_ref(g),
          lse = data_ref(lse), gq = data_ref(gq), gk = data_ref(gk), gv = data_ref(gv), has_mask, has_lse](Backend& b) mutable {
           ga.a.q = (const float*)q.data();
           ga.a.k = (const float*)k.data();
           ga.a.v = (const float*)v.data();
           ga.a.out = (float*)out.data();
           ga.a.mask = has_mask ? (const uint8_t*)mk.data() : nullptr;
           ga.a.lse = has_lse ? (float*)lse.data() : nullptr;
           ga.gout = (const float*)g.data();
           ga.gq = (float*)gq.data();
           ga.gk = (float*)gk.data();
           ga.gv = (float*)gv.data();
           b.attention_backward(ga);
         });
  return {gq, gk, gv};
}

}  // namespace perceiver
