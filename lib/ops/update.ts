// Fused optimizer updates: one engine kernel per parameter writes the parameter and
// its state in place (the composed form of the same rule queues ~10 elementwise ops
// and as many temporaries). Like assign(), each runs in queue order (ops queued
// before read the old values, ops queued after the new ones), keeps the tensors'
// identities, is not recorded for gradients and never waits for the device.
// Parameters and state are float32 (master weights); strided views are updated
// through a dense copy written back, and a gradient overlapping them is copied first.
import { native } from '../native.js';
import { handleOf, noteWrite, optionalHandle, type Tensor } from '../tensor.js';
import { int, num, optionKeys, options } from './args.js';

export interface AdamUpdateOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (added to the direction: u + weightDecay * p). Default 0. */
  weightDecay?: number;
  /** Steps taken including this one: the bias corrections are 1 / (1 - beta^step). */
  step: number;
}

const ADAM_OPTIONS = optionKeys<AdamUpdateOptions>({ lr: true, beta1: true, beta2: true, eps: true, weightDecay: true, step: true });

function adamArgs(op: string, opts: AdamUpdateOptions): [number, number, number, number, number, number] {
  const o = options(op, opts, ADAM_OPTIONS);
  return [
    num(op, 'lr', o.lr),
    num(op, 'beta1', o.beta1),
    num(op, 'beta2', o.beta2),
    num(op, 'eps', o.eps),
    o.weightDecay === undefined ? 0 : num(op, 'weightDecay', o.weightDecay),
    int(op, 'step', o.step),
  ];
}

/**
 * AdamW in place: m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g²;
 * u = m̂ / (sqrt(v̂) + eps) + weightDecay p; p = p - lr u.
 */
export function adamUpdate(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, opts: AdamUpdateOptions): void {
  const op = 'adam_update';
  native.adamUpdate(handleOf(op, 'param', param), handleOf(op, 'grad', grad), handleOf(op, 'expAvg', expAvg), handleOf(op, 'expAvgSq', expAvgSq), ...adamArgs(op, opts), false);
  noteWrite();
}

/**
 * LAMB in place: AdamW's moments and direction u, then p = p - lr (||p|| / ||u||) u
 * (trust ratio 1 when either norm is 0). The norms are reduced on the device, in a
 * fixed order.
 */
export function lambUpdate(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor, opts: AdamUpdateOptions): void {
  const op = 'lamb_update';
  native.adamUpdate(handleOf(op, 'param', param), handleOf(op, 'grad', grad), handleOf(op, 'expAvg', expAvg), handleOf(op, 'expAvgSq', expAvgSq), ...adamArgs(op, opts), true);
  noteWrite();
}

export interface SGDUpdateOptions {
  lr: number;
  /** Default 0 (then momentumBuffer may be null). */
  momentum?: number;
  /** Decoupled: p -= lr * weightDecay * p. Default 0. */
  weightDecay?: number;
  /** Default false; needs momentum > 0. */
  nesterov?: boolean;
}

const SGD_OPTIONS = optionKeys<SGDUpdateOptions>({ lr: true, momentum: true, weightDecay: true, nesterov: true });

/**
 * SGD in place (PyTorch's momentum form): buf = momentum buf + g; the step is buf, or
 * g + momentum buf with Nesterov (g without momentum); p = p - lr step - lr weightDecay p.
 */
export function sgdUpdate(param: Tensor, grad: Tensor, momentumBuffer: Tensor | null, opts: SGDUpdateOptions): void {
  const op = 'sgd_update';
  const o = options(op, opts, SGD_OPTIONS);
  if (o.nesterov !== undefined && typeof o.nesterov !== 'boolean') throw new TypeError(`${op}: option 'nesterov' must be a boolean, got ${typeof o.nesterov}`);
  native.sgdUpdate(
    handleOf(op, 'param', param),
    handleOf(op, 'grad', grad),
    optionalHandle(op, 'momentumBuffer', momentumBuffer),
    num(op, 'lr', o.lr),
    o.momentum === undefined ? 0 : num(op, 'momentum', o.momentum),
    o.weightDecay === undefined ? 0 : num(op, 'weightDecay', o.weightDecay),
    o.nesterov ?? false,
  );
  noteWrite();
}
