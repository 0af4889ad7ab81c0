// Parameters' initial values, and skipping them where every parameter is about to be
// replaced (loading a checkpoint, as torch's skip_init and HF's no_init_weights). A
// model's draws cost far more than reading its weights: for the released language
// model (201M parameters) 2.8 s of random draws and first-touch page faults against
// 0.2 s to read the file, on the 2-core VM of docs/BENCHMARKS.md.
import { full, rand, randn, seedOf, uninitialized } from '../creation.js';
import { describe, isFloatDType, type FloatDTypeName } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { knownKeys, optionKeys } from '../ops/args.js';

function finite(op: string, name: string, v: unknown, min?: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (min !== undefined && v < min))
    throw new (typeof v === 'number' ? RangeError : TypeError)(`${op}: argument '${name}' must be a finite number${min === undefined ? '' : ` >= ${min}`}, got ${describe(v)}`);
  return v;
}

let skipping = 0;
let skipDtype: FloatDTypeName = 'float32';

export interface WithoutInitOptions {
  /** The placeholders' dtype (default float32): that of the weights to be loaded, so no cast runs before they arrive. */
  dtype?: FloatDTypeName;
}

const WITHOUT_INIT_OPTIONS = optionKeys<WithoutInitOptions>({ dtype: true });

/**
 * Runs fn (synchronously: a model's construction) with parameter initialisation
 * skipped: the parameters that layers create with initNormal, initUniform and
 * initConstant hold storage no kernel has written, their values undefined until
 * replaced (loadStateDict). The global random sequence (manualSeed) advances as if
 * they had been drawn, so later draws are the same either way. Returns fn's result.
 */
export function withoutInit<T>(fn: () => T, opts: WithoutInitOptions = {}): T {
  if (typeof fn !== 'function') throw new TypeError(`withoutInit: argument 'fn' must be a function, got ${describe(fn)}`);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new TypeError(`withoutInit: argument 'opts' must be an object, got ${describe(opts)}`);
  knownKeys('withoutInit', 'opts', opts, WITHOUT_INIT_OPTIONS);
  const dtype = opts.dtype ?? 'float32';
  if (!isFloatDType(dtype)) throw new TypeError(`withoutInit: option 'dtype' must be 'float32', 'float16' or 'bfloat16', got ${JSON.stringify(dtype)}`);
  const outer = skipDtype;
  skipping++;
  skipDtype = dtype;
  try {
    const r = fn();
    if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function')
      throw new TypeError('withoutInit: fn must construct synchronously (it returned a promise, whose work would run with initialisation back on)');
    return r;
  } finally {
    skipping--;
    skipDtype = outer;
  }
}

/** Whether parameters created now are placeholders (inside withoutInit). */
export function initSkipped(): boolean {
  return skipping > 0;
}

function placeholder(shape: readonly number[], device: string | undefined, drawn: boolean): Tensor {
  if (drawn) seedOf('init', undefined); // the seed the draw would have taken
  return uninitialized(shape, { dtype: skipDtype, device });
}

/** A new parameter drawn from Normal(0, std) (a placeholder inside withoutInit). */
export function initNormal(shape: readonly number[], std: number, device?: string): Tensor {
  finite('initNormal', 'std', std, 0);
  return skipping ? placeholder(shape, device, true) : randn(shape, { std, device });
}

/** A new parameter drawn from U[low, high) (a placeholder inside withoutInit). */
export function initUniform(shape: readonly number[], low: number, high: number, device?: string): Tensor {
  finite('initUniform', 'low', low);
  finite('initUniform', 'high', high);
  if (low > high) throw new RangeError(`initUniform: argument 'high' must be >= 'low', got low ${low}, high ${high}`);
  return skipping ? placeholder(shape, device, true) : rand(shape, { low, high, device });
}

/**
 * A Linear or convolution parameter as PyTorch initialises it, U[-1/sqrt(fanIn),
 * 1/sqrt(fanIn)) for weight and bias; or, with initStd (HF's `initializer_range`
 * scheme), Normal(0, initStd) weights and zero biases.
 */
export function initLayer(shape: readonly number[], fanIn: number, isBias: boolean, initStd: number | undefined, device?: string): Tensor {
  if (typeof fanIn !== 'number' || !Number.isSafeInteger(fanIn) || fanIn <= 0)
    throw new (typeof fanIn === 'number' ? RangeError : TypeError)(`initLayer: argument 'fanIn' must be a positive integer, got ${describe(fanIn)}`);
  if (typeof isBias !== 'boolean') throw new TypeError(`initLayer: argument 'isBias' must be a boolean, got ${describe(isBias)}`);
  if (initStd !== undefined) finite('initLayer', 'initStd', initStd, 0);
  if (initStd === undefined) {
    const bound = 1 / Math.sqrt(fanIn);
    return initUniform(shape, -bound, bound, device);
  }
  return isBias ? initConstant(shape, 0, device) : initNormal(shape, initStd, device);
}

/** A new parameter or buffer filled with value (a placeholder inside withoutInit). */
export function initConstant(shape: readonly number[], value: number, device?: string): Tensor {
  // NaN and infinities are legitimate fill values, as full()'s.
  if (typeof value !== 'number') throw new TypeError(`initConstant: argument 'value' must be a number, got ${describe(value)}`);
  return skipping ? placeholder(shape, device, false) : full(shape, value, { device });
}
