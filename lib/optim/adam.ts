// Adam moments with bias correction, shared by AdamW and LAMB (optax's scale_by_adam:
// eps added to the root of the corrected second moment). The correction counts each
// parameter's own updates, as torch's state['step'] does (optax counts the
// optimizer's, the same wherever every parameter has a gradient at every step). Each parameter's update is
// one fused engine op (lib/ops/update.ts) that writes it and its moments in place.
import { Tensor } from '../tensor.js';
import { describe } from '../dtype.js';
import { adamUpdate, lambUpdate, type AdamUpdateOptions } from '../ops/update.js';
import { knownKeys, optionKeys } from '../ops/args.js';
import { Optimizer, checkRate, checkUnit, type ParamGroup, type ResolvedGroup } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8 (AdamW), 1e-6 (LAMB, the reference's). */
  eps?: number;
  /** Decoupled weight decay. Default 0. */
  weightDecay?: number;
}

const ADAM_OPTIONS = optionKeys<AdamOptions>({ lr: true, beta1: true, beta2: true, eps: true, weightDecay: true });

abstract class AdamBase extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(op: string, params: Tensor[] | ParamGroup[], opts: AdamOptions, defaultEps: number) {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`${op}: argument 'opts' must be { lr, ... }`);
    knownKeys(op, 'opts', opts, ADAM_OPTIONS);
    checkRate(op, 'lr', opts.lr);
    super(op, params, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0 });
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? defaultEps;
    checkUnit(op, 'beta1', this.beta1);
    checkUnit(op, 'beta2', this.beta2);
    if (!(this.eps > 0) || !Number.isFinite(this.eps)) throw new RangeError(`${op}: 'eps' must be a positive number, got ${this.eps}`);
  }

  protected stateNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected override nonNegativeStateNames(): string[] {
    return ['exp_avg_sq'];
  }

  protected hyper(group: ResolvedGroup, step: number): AdamUpdateOptions {
    return { lr: group.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: group.weightDecay, step };
  }
}

/** AdamW (Loshchilov & Hutter): p -= lr * (adam direction + weightDecay * p). */
export class AdamW extends AdamBase {
  constructor(params: Tensor[] | ParamGroup[], opts: AdamOptions) {
    super('AdamW', params, opts, 1e-8);
  }

  protected update(p: Tensor, g: Tensor, s: Record<string, Tensor>, group: ResolvedGroup, step: number): void {
    adamUpdate(p, g, s.exp_avg, s.exp_avg_sq, this.hyper(group, step));
  }
}

/**
 * LAMB as the Perceiver reference uses it (optax.lamb): the AdamW direction u, scaled
 * per parameter by the trust ratio ||p|| / ||u|| (1 when either norm is 0).
 */
export class LAMB extends AdamBase {
  constructor(params: Tensor[] | ParamGroup[], opts: AdamOptions) {
    super('LAMB', params, opts, 1e-6);
  }

  protected update(p: Tensor, g: Tensor, s: Record<string, Tensor>, group: ResolvedGroup, step: number): void {
    lambUpdate(p, g, s.exp_avg, s.exp_avg_sq, this.hyper(group, step));
  }
}

/** The L2 norm of all of t's elements, as a [] float32 tensor. */
export function norm(t: Tensor): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`norm: argument 't' must be a Tensor, got ${describe(t)}`);
  return sumOfSquares(t).sqrt();
}

/**
 * @internal The sum of t's squared elements as a [] float32 tensor. Squared in
 * float32: in float16 a value of 256 already squares to Infinity, and bfloat16's
 * 8-bit significand stops counting a sum of ones at 256.
 */
export function sumOfSquares(t: Tensor): Tensor {
  const f = t.dtype === 'float32' ? t : t.cast('float32');
  return f.square().reshape([t.size]).sum(0);
}
