// Attention with dropout on the attention weights (HF's attention_probs_dropout_prob),
// for training. The engine's fused kernel never materialises the [B, H, Nq, Nk]
// weights, so there is nothing there to drop out; this path builds them from
// differentiable ops, following SPEC's attend (steps 1-5) with dropout after the
// softmax, so the tape sees every step. Its memory grows with Nq * Nk, which is why
// only training with p > 0 takes it: evaluation and p = 0 keep the fused kernel.
import { broadcastTo, dropout, matmul, permute, unsqueeze, contiguous, type Tensor } from '../lib/index.js';
import { maskedSoftmax } from '../lib/ops/reduce.js';

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
  const logits = matmul(heads(q), heads(k), { transB: true, alpha: scale }); // [B, H, Nq, Nk]
  const weights = maskedSoftmax(logits, opts.mask ? unsqueeze(broadcastTo(opts.mask, [B, Nq, Nk]), 1) : null); // mask [B, 1, Nq, Nk]
  const out = matmul(dropout(weights, opts.p, { training: true }), heads(v)); // [B, H, Nq, Dv]
  return contiguous(permute(out, [0, 2, 1, 3]));
}
