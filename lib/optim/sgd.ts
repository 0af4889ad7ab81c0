// SGD with momentum (PyTorch's form: buf = m buf + g; Nesterov steps with g + m buf)
// and decoupled weight decay, one fused engine op per parameter (lib/ops/update.ts).
import type { Tensor } from '../tensor.js';
import { sgdUpdate } from '../ops/update.js';
import { knownKeys, optionKeys } from '../ops/args.js';
import { Optimizer, checkRate, checkUnit, type ParamGroup, type ResolvedGroup } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  /** Default 0. */
  momentum?: number;
  /** Default false; needs momentum > 0. */
  nesterov?: boolean;
  /** Decoupled: p -= lr * weightDecay * p. Default 0. */
  weightDecay?: number;
}

const SGD_OPTIONS = optionKeys<SGDOptions>({ lr: true, momentum: true, nesterov: true, weightDecay: true });

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly nesterov: boolean;

  constructor(params: Tensor[] | ParamGroup[], opts: SGDOptions) {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`SGD: argument 'opts' must be { lr, ... }`);
    knownKeys('SGD', 'opts', opts, SGD_OPTIONS);
    checkRate('SGD', 'lr', opts.lr);
    super('SGD', params, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0 });
    this.momentum = opts.momentum ?? 0;
    checkUnit('SGD', 'momentum', this.momentum);
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && this.momentum === 0) throw new RangeError(`SGD: 'nesterov' needs momentum > 0`);
  }

  protected stateNames(): string[] {
    return this.momentum > 0 ? ['momentum_buffer'] : [];
  }

  protected update(p: Tensor, g: Tensor, s: Record<string, Tensor>, group: ResolvedGroup): void {
    sgdUpdate(p, g, this.momentum > 0 ? s.momentum_buffer : null, { lr: group.lr, momentum: this.momentum, weightDecay: group.weightDecay, nesterov: this.nesterov });
  }
}
