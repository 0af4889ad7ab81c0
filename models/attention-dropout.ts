// Attention with dropout on the attention weights (HF's attention_probs_dropout_prob),
// for training: the attention op's own dropout. Backends whose fused kernel drops
// weights (the CPU) never materialise the [B, H, Nq, Nk] weights, forward or
// backward; elsewhere (CUDA) lib/ops/linalg composes it from products, SPEC's attend
// (steps 1-5) with dropout after the softmax, every step on the tape, with memory in
// Nq * Nk. Both draw the same mask. Evaluation and p = 0 run the plain fused kernel.
import { attention, type Tensor } from '../lib/index.js';
import { knownKeysArg, objectArg, optionKeys } from './args.js';

export interface AttentionDropoutOptions {
  /** uint8, broadcastable to [B, Nq, Nk]; 0 excludes a key. Rows with no allowed key output 0. */
  mask?: Tensor | null;
  /** Logit scale; default 1 / sqrt(Dqk), as the fused attention. */
  scale?: number;
  /** Probability of zeroing each attention weight, in [0, 1); the rest are scaled by 1 / (1 - p). */
  p: number;
}

const DROPOUT_OPTIONS = optionKeys<AttentionDropoutOptions>({ mask: true, scale: true, p: true });

/**
 * q [B, Nq, H, Dqk], k [B, Nk, H, Dqk], v [B, Nk, H, Dv] -> [B, Nq, H, Dv]: the fused
 * attention's function with inverted dropout on the softmax weights. The dropout mask
 * is drawn from the global generator (manualSeed), one draw per call, as `dropout`
 * with no seed does: the mask `dropout` would draw for the weights [B, H, Nq, Nk].
 */
export function attentionWithDropout(q: Tensor, k: Tensor, v: Tensor, opts: AttentionDropoutOptions): Tensor {
  knownKeysArg('attentionWithDropout', 'opts', objectArg('attentionWithDropout', 'opts', opts, true), DROPOUT_OPTIONS);
  return attention(q, k, v, { mask: opts.mask ?? null, scale: opts.scale, dropout: opts.p });
}
