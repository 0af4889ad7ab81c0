// Learning-rate schedules as pure functions of the step (0-based), so a resumed run
// reproduces the same rates. constantCosine is the Perceiver reference's
// 'constant_cosine': the base rate for a fraction of training, then a cosine decay to
// an end value over the rest.
import { describe } from '../dtype.js';
import { knownKeys, optionKeys } from '../ops/args.js';

export type Schedule = (step: number) => number;

function positive(op: string, name: string, v: unknown, allowZero = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (allowZero ? v < 0 : v <= 0))
    throw new RangeError(`${op}: '${name}' must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${describe(v)}`);
  return v;
}

// A schedule's options object: required, so no options at all is an error naming it.
function opts<T extends object>(op: string, o: T, known: readonly string[]): T {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new TypeError(`${op}: argument 'options' must be an object with 'lr' and the schedule's steps, got ${describe(o)}`);
  knownKeys(op, 'options', o, known);
  return o;
}

function stepArg(op: string, step: unknown): number {
  if (typeof step !== 'number' || !Number.isInteger(step) || step < 0) throw new RangeError(`${op}: step must be an integer >= 0, got ${describe(step)}`);
  return step;
}

/** The reference's learning rate scaling: base * batchSize / 256. */
export function scaleLearningRate(base: number, batchSize: number): number {
  positive('scaleLearningRate', 'base', base, true);
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`scaleLearningRate: 'batchSize' must be a positive integer, got ${describe(batchSize)}`);
  return (base * batchSize) / 256;
}

export function constant(lr: number): Schedule {
  positive('constant', 'lr', lr, true);
  return (step) => (stepArg('constant', step), lr);
}

export interface ConstantCosineOptions {
  lr: number;
  totalSteps: number;
  /** Fraction of totalSteps at the constant rate. Default 0.5. */
  constantFraction?: number;
  /** The rate reached at totalSteps. Default 0. */
  endValue?: number;
  /**
   * Linear warm-up steps (step s gets lr (s + 1) / warmupSteps; see warmupCosine),
   * counted inside the constant part; when they outlast it, the cosine starts where
   * the warm-up ends. Default 0.
   */
  warmupSteps?: number;
}

const CONSTANT_COSINE_OPTIONS = optionKeys<ConstantCosineOptions>({ lr: true, totalSteps: true, constantFraction: true, endValue: true, warmupSteps: true });

export function constantCosine(o: ConstantCosineOptions): Schedule {
  return makeConstantCosine('constantCosine', opts('constantCosine', o, CONSTANT_COSINE_OPTIONS));
}

function makeConstantCosine(op: string, o: ConstantCosineOptions): Schedule {
  const lr = positive(op, 'lr', o.lr, true);
  const total = o.totalSteps;
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`${op}: 'totalSteps' must be a positive integer, got ${describe(total)}`);
  const frac = o.constantFraction ?? 0.5;
  if (typeof frac !== 'number' || !(frac >= 0 && frac <= 1)) throw new RangeError(`${op}: 'constantFraction' must be in [0, 1], got ${describe(frac)}`);
  const end = positive(op, 'endValue', o.endValue ?? 0, true);
  const warmup = o.warmupSteps ?? 0;
  if (!Number.isInteger(warmup) || warmup < 0) throw new RangeError(`${op}: 'warmupSteps' must be an integer >= 0, got ${describe(warmup)}`);
  if (warmup > total) throw new RangeError(`${op}: 'warmupSteps' (${warmup}) must not exceed 'totalSteps' (${total})`);
  // The decay starts at the peak, over the steps left: timed from step 0 instead, a
  // warm-up longer than the constant part ended with a drop (1.0 to 0.5 at once for
  // 100 warm-up steps of 200). As optax's warmup_cosine_decay_schedule and HF's
  // get_cosine_schedule_with_warmup after the warm-up (whose steps here run one ahead of
  // theirs); without a warm-up, the reference's constant_cosine.
  const start = Math.max(Math.floor(total * frac), warmup);
  return (step) => {
    stepArg(op, step);
    if (step < warmup) return (lr * (step + 1)) / warmup;
    if (step < start) return lr;
    const t = Math.min(1, (step - start) / Math.max(1, total - start));
    return end + 0.5 * (lr - end) * (1 + Math.cos(Math.PI * t));
  };
}

export interface WarmupCosineOptions {
  lr: number;
  totalSteps: number;
  warmupSteps: number;
  /** Default 0. */
  endValue?: number;
}

const WARMUP_COSINE_OPTIONS = optionKeys<WarmupCosineOptions>({ lr: true, totalSteps: true, warmupSteps: true, endValue: true });

/**
 * Linear warm-up to lr, then cosine decay from lr to endValue over the remaining steps
 * (reached at totalSteps). Step s of the warm-up gets lr (s + 1) / warmupSteps, so the
 * first step already trains and step warmupSteps - 1 has the peak: one step ahead of
 * optax's warmup_cosine_decay_schedule and HF's get_cosine_schedule_with_warmup
 * (lr s / warmupSteps, 0 at step 0); from warmupSteps on they agree.
 */
export function warmupCosine(o: WarmupCosineOptions): Schedule {
  opts('warmupCosine', o, WARMUP_COSINE_OPTIONS);
  return makeConstantCosine('warmupCosine', { lr: o.lr, totalSteps: o.totalSteps, constantFraction: 0, endValue: o.endValue, warmupSteps: o.warmupSteps });
}

export interface StepDecayOptions {
  lr: number;
  /** Steps at which the rate is multiplied by `factor`. */
  boundaries: number[];
  /** Default 0.1. */
  factor?: number;
}

const STEP_DECAY_OPTIONS = optionKeys<StepDecayOptions>({ lr: true, boundaries: true, factor: true });

export function stepDecay(o: StepDecayOptions): Schedule {
  opts('stepDecay', o, STEP_DECAY_OPTIONS);
  const lr = positive('stepDecay', 'lr', o.lr, true);
  if (!Array.isArray(o.boundaries) || o.boundaries.some((b, i) => !Number.isInteger(b) || b < 0 || (i > 0 && b <= o.boundaries[i - 1])))
    throw new RangeError(`stepDecay: 'boundaries' must be increasing integers >= 0, got ${describe(o.boundaries)}`);
  const factor = positive('stepDecay', 'factor', o.factor ?? 0.1, true);
  return (step) => {
    stepArg('stepDecay', step);
    return lr * factor ** o.boundaries.filter((b) => step >= b).length;
  };
}
