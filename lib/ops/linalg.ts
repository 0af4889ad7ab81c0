// Matrix products and fused attention.
import { native } from '../native.js';
import { describe } from '../dtype.js';
import type { DTypeName } from '../dtype.js';
import { Tensor, wrap, handleOf, optionalHandle, notAnOptionsObject } from '../tensor.js';
import { bool, num, optionKeys, options } from './args.js';
import * as G from '../autograd/grads.js';
import { needsGrad } from '../autograd/tape.js';
import { gelu, relu } from './elementwise.js';
import { broadcastTo, contiguous, permute, squeeze, unsqueeze } from './layout.js';
import { maskedSoftmax } from './reduce.js';
import { seedOf } from '../creation.js';
import { applyDropout } from './dropout.js';
import { tidy } from '../scope.js';

export type Activation = 'none' | 'relu' | 'gelu' | 'gelu_tanh';
const ACTIVATIONS: readonly string[] = ['none', 'relu', 'gelu', 'gelu_tanh'];

export interface MatmulOptions {
  /** Use a's last two axes transposed. */
  transA?: boolean;
  /** Use b's last two axes transposed (PyTorch Linear weights [out, in] are used this way). */
  transB?: boolean;
  /** [N], added to every row before the activation. */
  bias?: Tensor | null;
  /** Fused epilogue; 'gelu' is exact, 'gelu_tanh' the approximation. */
  activation?: Activation;
  /** Multiplies the product (before bias). Default 1. */
  alpha?: number;
  /**
   * The result's dtype: the operands' by default; 'float32' keeps the float32
   * accumulation of 16-bit operands unrounded (no bias or activation then).
   */
  dtype?: DTypeName;
  /**
   * Added to the result with the bias (a residual), in the operands' dtype and
   * broadcastable to the result; no activation with it. Where the backend can, it
   * joins the product's epilogue instead of a pass of its own.
   */
  addend?: Tensor | null;
}

const MATMUL_OPTIONS = optionKeys<MatmulOptions>({ transA: true, transB: true, bias: true, activation: true, alpha: true, dtype: true, addend: true });

/**
 * act(alpha * a @ b + bias) + addend: a [..., M, K], b [..., K, N] -> [..., M, N];
 * batch axes broadcast. Transposed or otherwise strided views are read in place when
 * possible.
 */
export function matmul(a: Tensor, b: Tensor, opts?: MatmulOptions): Tensor {
  const o = options('matmul', opts, MATMUL_OPTIONS);
  const act = o.activation ?? 'none';
  if (!ACTIVATIONS.includes(act))
    throw new TypeError(`matmul: option 'activation' must be one of ${ACTIVATIONS.map((s) => `'${s}'`).join(', ')}, got ${describe(act)}`);
  const transA = o.transA === undefined ? false : bool('matmul', 'transA', o.transA);
  const transB = o.transB === undefined ? false : bool('matmul', 'transB', o.transB);
  const alpha = o.alpha === undefined ? 1 : num('matmul', 'alpha', o.alpha);
  const bias = o.bias ?? null;
  const ha = handleOf('matmul', 'a', a);
  if (o.dtype !== undefined && o.dtype !== a.dtype && o.dtype !== 'float32')
    throw new TypeError(`matmul: option 'dtype' must be the operands' dtype ('${a.dtype}') or 'float32', got ${describe(o.dtype)}`);
  const outFloat32 = o.dtype === 'float32' && a.dtype !== 'float32';
  const addend = o.addend ?? null;
  const hAddend = optionalHandle('matmul', 'addend', addend);
  if (outFloat32 && (bias || act !== 'none' || addend))
    throw new TypeError(`matmul: option 'dtype' 'float32' with ${a.dtype} operands takes no bias, activation or addend`);
  if (addend && act !== 'none') throw new TypeError(`matmul: option 'addend' takes no activation, got activation '${act}'`);
  // Training keeps the pre-activation for the activation's gradient, so the epilogue is not fused then.
  const grad = needsGrad(a, b, bias, addend);
  const out = wrap(
    native.matmul(ha, handleOf('matmul', 'b', b), transA, transB, optionalHandle('matmul', 'bias', bias), grad ? 'none' : act, alpha, outFloat32, hAddend),
  );
  if (!grad) return out;
  const z = G.matmulGrad(out, a, b, transA, transB, bias, alpha, addend);
  if (act === 'none') return z;
  try {
    return act === 'relu' ? relu(z) : gelu(z, { approximate: act === 'gelu_tanh' ? 'tanh' : 'none' });
  } finally {
    z.dispose();
  }
}

/**
 * x @ weightᵀ + bias with a PyTorch-layout weight [out, in], then the activation, or
 * plus `addend` (a residual; no activation with it). x is [..., in]: a single vector
 * [in] gives [out], as torch's F.linear.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, activation: Activation = 'none', addend?: Tensor | null): Tensor {
  const signature = 'linear(x, weight, bias?, activation?, addend?)';
  notAnOptionsObject('linear', 'bias', bias, signature);
  notAnOptionsObject('linear', 'addend', addend, signature);
  if (x instanceof Tensor && !x.disposed && x.rank === 1) {
    // matmul wants rows: the vector as one, and the addend ([out]) with it.
    return tidy(() => squeeze(matmul(unsqueeze(x, 0), weight, { transB: true, bias, activation, addend: addend instanceof Tensor && addend.rank === 1 ? unsqueeze(addend, 0) : addend }), 0));
  }
  return matmul(x, weight, { transB: true, bias, activation, addend });
}

export interface AttentionOptions {
  /** uint8, broadcastable to [B, Nq, Nk]; 0 excludes a key. Rows with no allowed key output 0. */
  mask?: Tensor | null;
  /** Logit scale; default 1 / sqrt(Dqk). */
  scale?: number;
  /**
   * Inverted dropout on the attention weights (for training; HF's
   * attention_probs_dropout_prob): each weight is zeroed with this probability in
   * [0, 1), the rest scaled by 1 / (1 - p), as `dropout` would on the weights
   * [B, H, Nq, Nk]. Default 0.
   */
  dropout?: number;
  /** The dropout mask's seed; default one draw from the global sequence (manualSeed). */
  seed?: number;
}

const ATTENTION_OPTIONS = optionKeys<AttentionOptions>({ mask: true, scale: true, dropout: true, seed: true });

/**
 * Fused multi-head attention: q [B, Nq, H, Dqk], k [B, Nk, H, Dqk], v [B, Nk, H, Dv]
 * -> [B, Nq, H, Dv]. Streams over keys, so memory does not grow with Nq * Nk.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts?: AttentionOptions): Tensor {
  const o = options('attention', opts, ATTENTION_OPTIONS);
  let scale = 0;
  if (o.scale !== undefined) {
    scale = num('attention', 'scale', o.scale);
    if (!(scale > 0) || !Number.isFinite(scale))
      throw new RangeError(`attention: option 'scale' must be a positive finite number, got ${scale}`);
  }
  let p = 0;
  if (o.dropout !== undefined) {
    p = num('attention', 'dropout', o.dropout);
    if (!(p >= 0 && p < 1)) throw new RangeError(`attention: option 'dropout' must be in [0, 1), got ${p}`);
  }
  const hq = handleOf('attention', 'q', q);
  const hk = handleOf('attention', 'k', k);
  const hv = handleOf('attention', 'v', v);
  const hm = optionalHandle('attention', 'mask', o.mask);
  const mask = o.mask ?? null;
  // One draw per call whichever way the dropout runs, so both draw the same mask.
  const dropout = p > 0 ? { p, seed: seedOf('attention', o.seed) } : null;
  const grad = needsGrad(q, k, v);
  const fusedGrad = grad && G.attentionKernelFor(q, v, dropout !== null);
  // Dropout inside the kernel needs the kernel's gradient too, where there is one to take.
  if (dropout && (!G.hasAttentionDropout(q.device) || (grad && !fusedGrad)))
    return composedDropoutAttention(q, k, v, mask, scale, dropout.p, dropout.seed);
  const drop = dropout ? [dropout.p, dropout.seed] : [];
  if (fusedGrad) {
    // The gradient's kernel reuses each row's log-sum-exp, which the forward has.
    const [h, hl] = native.attention(hq, hk, hv, hm, scale, true, ...drop);
    const lse = hl === null ? null : wrap(hl);
    const out = G.attentionGrad(wrap(h), q, k, v, mask, scale, true, lse, dropout);
    lse?.dispose(); // the tape holds its own alias
    return out;
  }
  return G.attentionGrad(wrap(native.attention(hq, hk, hv, hm, scale, false, ...drop)), q, k, v, mask, scale);
}

/**
 * Attention with dropout from products, where a backend has no dropout inside its
 * fused attention (or PERCEIVER_ATTENTION_COMPOSE=1 asks): the [B, H, Nq, Nk]
 * weights are materialised, masked softmax, then `dropout`'s own mask (the same
 * rand() draw, so the same weights drop), every step on the tape.
 */
function composedDropoutAttention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, scale: number, p: number, seed: number): Tensor {
  return tidy(() => {
    const [B, Nq, , Dqk] = q.shape;
    const Nk = k.shape[1];
    const heads = (t: Tensor) => permute(t, [0, 2, 1, 3]); // [B, H, N, D]
    const logits = matmul(heads(q), heads(k), { transB: true, alpha: scale > 0 ? scale : 1 / Math.sqrt(Dqk) });
    const weights = maskedSoftmax(logits, mask ? unsqueeze(broadcastTo(mask, [B, Nq, Nk]), 1) : null); // mask [B, 1, Nq, Nk]
    const out = matmul(applyDropout(weights, p, seed), heads(v)); // [B, H, Nq, Dv]
    return contiguous(permute(out, [0, 2, 1, 3]));
  });
}
