// Attention with dropout on the attention weights (HF's attention_probs_dropout_prob),
// for training. The engine's fused kernel never materialises the [B, H, Nq, Nk]
// weights, so there is nothing there to drop out; this path builds them from
// differentiable ops, following SPEC's attend (steps 1-5) with dropout after the
// softmax, so the tape sees every step. Its memory grows with Nq * Nk, which is why
// only training with p > 0 takes it: evaluation and p = 0 keep the fused kernel.
import { broadcastTo, cast, dropout, matmul, minimum, permute, softmax, unsqueeze, where, contiguous, type Tensor } from '../lib/index.js';

export interface AttentionDropoutOptions {
  /** uint8, broadcastable to [B, Nq, Nk]; 0 excludes a key. Rows with no allowed key output 0. */
  mask?: Tensor | null;
  /** Logit scale; default 1 / sqrt(Dqk), as the fused attention. */
  scale?: number;
  /** Probability of zeroing each attention weight, in [0, 1); the rest are scaled by 1 / (1 - p). */
  p: number;
}

/**
 * q [B, Nq, H, Dqk], k [B, Nk, H, Dqk], v [B, Nk, H, Dv] -> [B, Nq, H, Dv]: the fused
 * attention's function with inverted dropout on the softmax weights. The dropout mask
 * is drawn from the global generator (manualSeed), one draw per call, as `dropout`
 * with no seed does.
 */
export function attentionWithDropout(q: Tensor, k: Tensor, v: Tensor, opts: AttentionDropoutOptions): Tensor {
  const [B, Nq, , Dqk] = q.shape;
  const Nk = k.shape[1];
  const scale = opts.scale ?? 1 / Math.sqrt(Dqk);
  const heads = (t: Tensor) => permute(t, [0, 2, 1, 3]); // [B, H, N, D]
  let logits = matmul(heads(q), heads(k), { transB: true, alpha: scale }); // [B, H, Nq, Nk]
  let weights: Tensor;
  if (opts.mask) {
    const m = unsqueeze(broadcastTo(opts.mask, [B, Nq, Nk]), 1); // [B, 1, Nq, Nk]
    // The most negative finite value of the dtype: an infinite fill would make a row
    // with every key masked NaN instead of uniform.
    logits = where(m, logits, logits.dtype === 'float16' ? -65504 : -1e30);
    // A row with every key masked would be a uniform softmax: the fused kernel outputs 0
    // there. Mask values other than 0 and 1 allow a key like 1 does.
    const anyKey = minimum(cast(m, logits.dtype).max(3, { keepdim: true }), 1);
    weights = softmax(logits, -1).mul(anyKey);
  } else weights = softmax(logits, -1);
  const out = matmul(dropout(weights, opts.p, { training: true }), heads(v)); // [B, H, Nq, Dv]
  return contiguous(permute(out, [0, 2, 1, 3]));
}
