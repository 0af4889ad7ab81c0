// Reductions over one axis; softmax, log-softmax and layer norm over the last axis.
import { native } from '../native.js';
import { Tensor, wrap, handleOf, optionalHandle, notAnOptionsObject } from '../tensor.js';
import { bool, int, num, optionKeys, options } from './args.js';
import * as G from '../autograd/grads.js';
import { cast, reshape } from './layout.js';
import { minimum, where } from './elementwise.js';

export interface ReduceOptions {
  /** Keep the reduced axis with size 1. Default false. */
  keepdim?: boolean;
}

const REDUCE_OPTIONS = optionKeys<ReduceOptions>({ keepdim: true });

function reduce(op: string, x: Tensor, axis: number, opts?: ReduceOptions): Tensor {
  const o = options(op, opts, REDUCE_OPTIONS);
  const keepdim = o.keepdim === undefined ? false : bool(op, 'keepdim', o.keepdim);
  const h = handleOf(op, 'x', x);
  const a = int(op, 'axis', axis);
  // A 0-d tensor reduces over its one implicit axis (0 or -1) to a 0-d tensor, keepdim
  // or not, as torch's.
  if (x.rank === 0) {
    if (a !== 0 && a !== -1) throw new RangeError(`${op}: argument 'axis' must be 0 or -1 for a 0-d tensor, got ${a}`);
    const one = reshape(x, [1]);
    try {
      return reduce(op, one, 0);
    } finally {
      one.dispose();
    }
  }
  return G.reduceGrad(op, wrap(native.reduce(op, h, a, keepdim)), x, axis, keepdim);
}

/** Sum over axis (accumulated in double). */
export const sum = (x: Tensor, axis: number, opts?: ReduceOptions): Tensor => reduce('sum', x, axis, opts);
export const mean = (x: Tensor, axis: number, opts?: ReduceOptions): Tensor => reduce('mean', x, axis, opts);
/**
 * Maximum over axis; NaN propagates. Its gradient is split evenly among tied maxima,
 * as torch's amax (torch.max(x, dim) gives it all to one index).
 */
export const max = (x: Tensor, axis: number, opts?: ReduceOptions): Tensor => reduce('max', x, axis, opts);
/** Minimum over axis; as max. */
export const min = (x: Tensor, axis: number, opts?: ReduceOptions): Tensor => reduce('min', x, axis, opts);
/** Index (int32) of the first maximum over axis. */
export const argmax = (x: Tensor, axis: number, opts?: ReduceOptions): Tensor => reduce('argmax', x, axis, opts);

function lastAxis(op: string, x: Tensor, axis: number): void {
  const a = int(op, 'axis', axis);
  if (a !== -1 && a !== x.rank - 1)
    throw new RangeError(`${op}: only the last axis is supported (axis -1 or ${x.rank - 1}), got ${a}; permute first`);
}

/** Softmax over the last axis. */
export function softmax(x: Tensor, axis = -1): Tensor {
  const h = handleOf('softmax', 'x', x);
  lastAxis('softmax', x, axis);
  return G.softmaxGrad(wrap(native.softmax(h, false)), x, false);
}

/**
 * Softmax over the last axis of attention logits where `mask` (uint8, broadcast
 * against them, any nonzero value allowing) lets a key in, with the fused attention's
 * rule that a row with no allowed key is 0 (not uniform). The composed attentions (its
 * gradient, the dropout path) share it.
 */
export function maskedSoftmax(logits: Tensor, mask: Tensor | null): Tensor {
  handleOf('masked_softmax', 'logits', logits);
  if (mask === null || mask === undefined) return softmax(logits, -1);
  handleOf('masked_softmax', 'mask', mask);
  // The most negative finite value of the dtype: an infinite fill would make a fully
  // masked row NaN rather than uniform (it is zeroed below).
  const masked = where(mask, logits, logits.dtype === 'float16' ? -65504 : -1e30);
  // Over the mask's own last axis (the keys), whatever its rank against the logits'; a
  // 0-d mask is one value for every key.
  const m = cast(mask, logits.dtype);
  const anyKey = minimum(mask.rank === 0 ? m : max(m, -1, { keepdim: true }), 1);
  return softmax(masked, -1).mul(anyKey);
}

/** log(softmax(x)) over the last axis, computed stably. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const h = handleOf('log_softmax', 'x', x);
  lastAxis('log_softmax', x, axis);
  return G.softmaxGrad(wrap(native.softmax(h, true)), x, true);
}

export interface LayerNormOptions {
  /** Default 1e-5 (PyTorch's and Haiku's). */
  eps?: number;
}

const LAYER_NORM_OPTIONS = optionKeys<LayerNormOptions>({ eps: true });

/** (x - mean) / sqrt(var + eps) * weight + bias over the last axis; weight and bias [C] are optional. */
export function layerNorm(x: Tensor, weight?: Tensor | null, bias?: Tensor | null, opts?: LayerNormOptions): Tensor {
  notAnOptionsObject('layer_norm', 'weight', weight, 'layerNorm(x, weight?, bias?, { eps })');
  notAnOptionsObject('layer_norm', 'bias', bias, 'layerNorm(x, weight?, bias?, { eps })');
  const o = options('layer_norm', opts, LAYER_NORM_OPTIONS);
  const eps = o.eps === undefined ? 1e-5 : num('layer_norm', 'eps', o.eps);
  const out = wrap(
    native.layerNorm(
      handleOf('layer_norm', 'x', x),
      optionalHandle('layer_norm', 'weight', weight),
      optionalHandle('layer_norm', 'bias', bias),
      eps,
    ),
  );
  return G.layerNormGrad(out, x, weight ?? null, bias ?? null, eps);
}
