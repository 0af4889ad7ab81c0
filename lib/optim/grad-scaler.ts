// Dynamic loss scaling for float16 mixed precision (torch.cuda.amp.GradScaler's rule).
// float16 gradients underflow below 6e-8, so the loss is multiplied by a large scale
// before backward and the gradients divided by it before the update. A step whose
// gradients hold an inf or NaN (the scale was too large) is skipped and the scale
// halved; after `growthInterval` finite steps in a row it doubles. bfloat16 has
// float32's range and needs none of this.
import type { Tensor } from '../tensor.js';
import { describe } from '../dtype.js';
import { noGrad } from '../autograd/tape.js';
import { keep, tidy } from '../scope.js';
import { knownKeys, optionKeys } from '../ops/args.js';

export interface GradScalerOptions {
  /** Default 2^16. */
  initScale?: number;
  /** Default 2. */
  growthFactor?: number;
  /** Default 0.5. */
  backoffFactor?: number;
  /** Finite steps in a row before the scale grows. Default 2000. */
  growthInterval?: number;
}

const GRAD_SCALER_OPTIONS = optionKeys<GradScalerOptions>({ initScale: true, growthFactor: true, backoffFactor: true, growthInterval: true });

export interface GradScalerState {
  scale: number;
  growthTracker: number;
}

function positive(name: string, v: number, above1?: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0) || (above1 === true && !(v > 1)) || (above1 === false && !(v < 1)))
    throw new RangeError(`GradScaler: option '${name}' must be a finite number ${above1 === true ? '> 1' : above1 === false ? 'in (0, 1)' : '> 0'}, got ${describe(v)}`);
  return v;
}

export class GradScaler {
  scale: number;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  private growthTracker = 0;

  constructor(opts: GradScalerOptions = {}) {
    if (opts === null || typeof opts !== 'object') throw new TypeError(`GradScaler: argument 'opts' must be an object, got ${describe(opts)}`);
    knownKeys('GradScaler', 'opts', opts, GRAD_SCALER_OPTIONS);
    this.scale = positive('initScale', opts.initScale ?? 2 ** 16);
    this.growthFactor = positive('growthFactor', opts.growthFactor ?? 2, true);
    this.backoffFactor = positive('backoffFactor', opts.backoffFactor ?? 0.5, false);
    const gi = opts.growthInterval ?? 2000;
    if (!Number.isSafeInteger(gi) || gi < 1) throw new RangeError(`GradScaler: option 'growthInterval' must be a positive integer, got ${describe(gi)}`);
    this.growthInterval = gi;
  }

  /** loss times the current scale: call backward() on this. */
  scaleLoss(loss: Tensor): Tensor {
    return loss.mul(this.scale);
  }

  /**
   * Divides every .grad of params by the scale (each replaced by its quotient: the
   * backward may hand two leaves one buffer, which an in-place division would divide
   * twice), and reports whether all of them are finite (one value read back: the only
   * wait). Call before clipping.
   */
  async unscale(params: Tensor[]): Promise<boolean> {
    if (!Array.isArray(params)) throw new TypeError(`GradScaler.unscale: argument 'params' must be an array of Tensors, got ${describe(params)}`);
    if (!params.some((p) => p.grad)) return true;
    const worst = noGrad(() =>
      tidy(() => {
        let m: Tensor | null = null;
        for (const p of params) {
          const old = p.grad;
          if (!old) continue;
          const g = keep(old.mul(1 / this.scale));
          p.grad = g;
          old.dispose();
          // max propagates NaN, and |inf| is inf: one value says whether all are finite.
          const gm = g.abs().reshape([g.size]).max(0);
          m = m ? m.maximum(gm) : gm;
        }
        return m!.cast('float32');
      }),
    );
    try {
      return Number.isFinite((await worst.data())[0]);
    } finally {
      worst.dispose();
    }
  }

  /** Moves the scale after a step: down when its gradients were not finite, up after growthInterval finite steps. */
  update(finite: boolean): void {
    if (typeof finite !== 'boolean') throw new TypeError(`GradScaler.update: argument 'finite' must be a boolean, got ${describe(finite)}`);
    if (!finite) {
      this.scale *= this.backoffFactor;
      this.growthTracker = 0;
      return;
    }
    if (++this.growthTracker >= this.growthInterval) {
      this.scale *= this.growthFactor;
      this.growthTracker = 0;
    }
  }

  stateDict(): GradScalerState {
    return { scale: this.scale, growthTracker: this.growthTracker };
  }

  loadStateDict(s: GradScalerState): void {
    if (s === null || typeof s !== 'object') throw new TypeError(`GradScaler.loadStateDict: argument 's' must be { scale, growthTracker }, got ${describe(s)}`);
    positive('scale', s.scale);
    if (!Number.isSafeInteger(s.growthTracker) || s.growthTracker < 0)
      throw new RangeError(`GradScaler.loadStateDict: 'growthTracker' must be a non-negative integer, got ${describe(s.growthTracker)}`);
    this.scale = s.scale;
    this.growthTracker = s.growthTracker;
  }
}
