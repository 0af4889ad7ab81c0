// Training losses and regularisers as functions of tensors (PyTorch's
// torch.nn.functional): all built from differentiable engine ops.
import { Tensor, handleOf } from '../tensor.js';
import { hostInt32Range } from '../creation.js';
import { describe } from '../dtype.js';
import { cast } from '../ops/layout.js';
import { oneHot } from '../ops/nn.js';
import { notEqual, where } from '../ops/elementwise.js';
import { logSoftmax } from '../ops/reduce.js';
import { applyDropout } from '../ops/dropout.js';
import { tidy } from '../scope.js';
import { knownKeys, optionKeys, options } from '../ops/args.js';

export interface CrossEntropyOptions {
  /** Mass moved uniformly onto every class (0.1 in the reference's ImageNet recipe). Default 0. */
  labelSmoothing?: number;
  /** 'mean' over the batch (default) or 'sum'. */
  reduction?: 'mean' | 'sum';
}

const CROSS_ENTROPY_OPTIONS = optionKeys<CrossEntropyOptions>({ labelSmoothing: true, reduction: true });

/**
 * Softmax cross-entropy: logits [N, K] against int32 labels [N] or soft targets
 * [N, K] (MixUp/CutMix) -> a [] float32 loss, whatever the logits' dtype (computed in
 * float32, as under torch's autocast).
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts?: CrossEntropyOptions): Tensor {
  const o = options('crossEntropy', opts, CROSS_ENTROPY_OPTIONS);
  if (logits instanceof Tensor) handleOf('crossEntropy', 'logits', logits);
  if (target instanceof Tensor) handleOf('crossEntropy', 'target', target);
  if (!(logits instanceof Tensor) || logits.rank !== 2) throw new TypeError(`crossEntropy: argument 'logits' must be a [N, K] Tensor, got ${logits instanceof Tensor ? `shape [${logits.shape.join(', ')}]` : describe(logits)}`);
  const [n, k] = logits.shape;
  if (!(target instanceof Tensor)) throw new TypeError(`crossEntropy: argument 'target' must be a Tensor, got ${describe(target)}`);
  const soft = target.rank === 2;
  if (soft ? target.shape[0] !== n || target.shape[1] !== k : target.rank !== 1 || target.shape[0] !== n || target.dtype !== 'int32')
    throw new RangeError(`crossEntropy: argument 'target' must be int32 labels [${n}] or probabilities [${n}, ${k}], got ${target.dtype} [${target.shape.join(', ')}]`);
  if (logits.dtype !== 'float32' && logits.dtype !== 'float16' && logits.dtype !== 'bfloat16')
    throw new TypeError(`crossEntropy: argument 'logits' must have a floating dtype (float32, float16 or bfloat16), got ${logits.dtype}`);
  const ls = o.labelSmoothing ?? 0;
  if (typeof ls !== 'number' || !(ls >= 0 && ls < 1)) throw new RangeError(`crossEntropy: option 'labelSmoothing' must be in [0, 1), got ${describe(ls)}`);
  const reduction = o.reduction ?? 'mean';
  if (reduction !== 'mean' && reduction !== 'sum') throw new TypeError(`crossEntropy: option 'reduction' must be 'mean' or 'sum', got ${describe(reduction)}`);
  if (!soft) {
    // Checked here where the labels' range is known without a read back (labels made
    // from host data); other labels fail one_hot's kernel, and the loss's data()
    // rejects with its message.
    const r = hostInt32Range(target);
    if (r && (r[0] < 0 || r[1] >= k))
      throw new RangeError(`crossEntropy: argument 'target' must hold labels in [0, ${k}) for logits [${n}, ${k}], got labels from ${r[0]} to ${r[1]}`);
  }
  return tidy(() => {
    // 16-bit logits and targets (autocast, 16-bit models) are scored in float32, as
    // torch's autocast does: the targets before their smoothing, which rounded to 16
    // bits twice would move the loss (1.680 against 1.677 in a bfloat16 case).
    let q = soft ? (target.dtype === 'float32' ? target : cast(target, 'float32')) : oneHot(target, k);
    if (ls > 0) q = q.mul(1 - ls).add(ls / k);
    const l = logits.dtype === 'float32' ? logits : cast(logits, 'float32');
    const terms = logSoftmax(l).mul(q);
    // A label scores only its own class, as torch's nll_loss picks it: a -inf logit of
    // another class (a masked one) would otherwise add 0 x -inf = NaN. With smoothing
    // every class has mass, and that -inf makes the loss inf, as torch's.
    const perRow = (soft ? terms : where(notEqual(q, 0), terms, 0)).sum(1).neg();
    return reduction === 'mean' ? perRow.mean(0) : perRow.sum(0);
  });
}

const DROPOUT_OPTIONS = optionKeys<{ training: boolean; seed?: number }>({ training: true, seed: true });

/**
 * Inverted dropout: in training, zeroes each element with probability p and scales
 * the rest by 1 / (1 - p); the identity otherwise. `seed` makes the mask reproducible.
 */
export function dropout(x: Tensor, p: number, opts: { training: boolean; seed?: number }): Tensor {
  if (!(x instanceof Tensor)) throw new TypeError(`dropout: argument 'x' must be a Tensor, got ${describe(x)}`);
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new RangeError(`dropout: argument 'p' must be in [0, 1), got ${describe(p)}`);
  // Whether it drops is the caller's to say (a module's training flag): no default.
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts) || typeof opts.training !== 'boolean')
    throw new TypeError(`dropout: argument 'opts' must be { training: boolean, seed? }, got ${describe(opts)}`);
  knownKeys('dropout', 'opts', opts, DROPOUT_OPTIONS);
  if (!opts.training || p === 0) return x;
  return applyDropout(x, p, opts.seed);
}
