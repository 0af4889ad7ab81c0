// Indexing and convolutional ops. Images are channels-last: [B, H, W, C].
import { native } from '../native.js';
import { checkDType, describe, type DTypeName } from '../dtype.js';
import { Tensor, wrap, handleOf, optionalHandle } from '../tensor.js';
import { int, num, optionKeys, options, pair } from './args.js';
import * as G from '../autograd/grads.js';
import { conv2dGrad, maxPool2dGrad } from '../autograd/conv-grads.js';

/** Rows of weight [V, C] picked by int32 ids [...] -> [..., C]. An out-of-range id fails the output (data() rejects). */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  return G.embeddingGrad(wrap(native.embedding(handleOf('embedding', 'weight', weight), handleOf('embedding', 'ids', ids))), weight, ids);
}

export interface OneHotOptions {
  on?: number;
  off?: number;
  /** 'float32' (default), 'bfloat16' or 'float16'. */
  dtype?: DTypeName;
}

const ONE_HOT_OPTIONS = optionKeys<OneHotOptions>({ on: true, off: true, dtype: true });

/** int32 ids [...] -> [..., depth] of on and off values (float32 unless opts.dtype says). */
export function oneHot(ids: Tensor, depth: number, opts?: OneHotOptions): Tensor {
  const o = options('one_hot', opts, ONE_HOT_OPTIONS);
  return wrap(
    native.oneHot(
      handleOf('one_hot', 'ids', ids),
      int('one_hot', 'depth', depth),
      o.on === undefined ? 1 : num('one_hot', 'on', o.on),
      o.off === undefined ? 0 : num('one_hot', 'off', o.off),
      o.dtype === undefined ? 'float32' : checkDType('one_hot', 'dtype', o.dtype),
    ),
  );
}

/** 'same' (TF: output = ceil(input / stride)), 'valid', or explicit [top, bottom, left, right]. */
export type Padding = 'same' | 'valid' | [number, number, number, number];

function padding(op: string, v: unknown): 'same' | 'valid' | number[] {
  if (v === undefined) return 'valid';
  if (v === 'same' || v === 'valid') return v;
  if (typeof v === 'number') return [int(op, 'padding', v), v, v, v];
  if (Array.isArray(v) && v.length === 4) return v.map((p, i) => int(op, `padding[${i}]`, p));
  throw new TypeError(`${op}: option 'padding' must be 'same', 'valid', a number or [top, bottom, left, right], got ${describe(v)}`);
}

export interface Conv2dOptions {
  bias?: Tensor | null;
  /** Default 1. */
  stride?: number | [number, number];
  /** Default 'valid'. */
  padding?: Padding | number;
}

const CONV2D_OPTIONS = optionKeys<Conv2dOptions>({ bias: true, stride: true, padding: true });

/** x [B, H, W, Cin] (NHWC), weight [KH, KW, Cin, Cout] (HWIO) -> [B, OH, OW, Cout]. */
export function conv2d(x: Tensor, weight: Tensor, opts?: Conv2dOptions): Tensor {
  const o = options('conv2d', opts, CONV2D_OPTIONS);
  const [sh, sw] = pair('conv2d', 'stride', o.stride ?? 1);
  const pad = padding('conv2d', o.padding);
  const out = wrap(
    native.conv2d(handleOf('conv2d', 'x', x), handleOf('conv2d', 'weight', weight), optionalHandle('conv2d', 'bias', o.bias), sh, sw, pad),
  );
  return conv2dGrad(out, x, weight, o.bias ?? null, sh, sw, pad);
}

export interface MaxPool2dOptions {
  /** Window size. */
  kernel: number | [number, number];
  /** Default: the kernel size. */
  stride?: number | [number, number];
  /** Default 'valid'. Padded positions never win. */
  padding?: Padding | number;
}

const MAX_POOL2D_OPTIONS = optionKeys<MaxPool2dOptions>({ kernel: true, stride: true, padding: true });

/** Max over windows of x [B, H, W, C]. */
export function maxPool2d(x: Tensor, opts: MaxPool2dOptions): Tensor {
  const o = options('max_pool2d', opts, MAX_POOL2D_OPTIONS);
  if (o.kernel === undefined) throw new TypeError(`max_pool2d: option 'kernel' is required`);
  const [kh, kw] = pair('max_pool2d', 'kernel', o.kernel);
  const [sh, sw] = pair('max_pool2d', 'stride', o.stride ?? [kh, kw]);
  const pad = padding('max_pool2d', o.padding);
  const out = wrap(native.maxPool2d(handleOf('max_pool2d', 'x', x), kh, kw, sh, sw, pad));
  return maxPool2dGrad(out, x, kh, kw, sh, sw, pad);
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  /** Default 1e-5. */
  eps?: number;
}

const BATCH_NORM_OPTIONS = optionKeys<BatchNormOptions>({ weight: true, bias: true, eps: true });

/** Inference batch norm over the last (channel) axis with running mean and variance [C]. */
export function batchNorm(x: Tensor, mean: Tensor, variance: Tensor, opts?: BatchNormOptions): Tensor {
  const o = options('batch_norm', opts, BATCH_NORM_OPTIONS);
  const eps = o.eps === undefined ? 1e-5 : num('batch_norm', 'eps', o.eps);
  const out = wrap(
    native.batchNorm(
      handleOf('batch_norm', 'x', x),
      handleOf('batch_norm', 'mean', mean),
      handleOf('batch_norm', 'var', variance),
      optionalHandle('batch_norm', 'weight', o.weight),
      optionalHandle('batch_norm', 'bias', o.bias),
      eps,
    ),
  );
  return G.batchNormGrad(out, x, mean, variance, o.weight ?? null, o.bias ?? null, eps);
}
