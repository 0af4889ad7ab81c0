// Parameters' initial values, and skipping them where every parameter is about to be
// replaced (loading a checkpoint, as torch's skip_init and HF's no_init_weights). A
// model's draws cost far more than reading its weights: for the released language
// model (201M parameters) 2.8 s of random draws and first-touch page faults against
// 0.2 s to read the file, on the 2-core VM of docs/BENCHMARKS.md.
import { full, rand, randn, seedOf, uninitialized } from '../creation.js';
import { isFloatDType, type FloatDTypeName } from '../dtype.js';
import type { Tensor } from '../tensor.js';

let skipping = 0;
let skipDtype: FloatDTypeName = 'float32';

export interface WithoutInitOptions {
  /** The placeholders' dtype (default float32): that of the weights to be loaded, so no cast runs before they arrive. */
  dtype?: FloatDTypeName;
}

/**
 * Runs fn (synchronously: a model's construction) with parameter initialisation
 * skipped: the parameters that layers create with initNormal, initUniform and
 * initConstant hold storage no kernel has written, their values undefined until
 * replaced (loadStateDict). The global random sequence (manualSeed) advances as if
 * they had been drawn, so later draws are the same either way. Returns fn's result.
 */
export function withoutInit<T>(fn: () => T, opts: WithoutInitOptions = {}): T {
  if (typeof fn !== 'function') throw new TypeError(`withoutInit: argument 'fn' must be a function, got ${typeof fn}`);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`withoutInit: argument 'opts' must be an object, got ${opts === null ? 'null' : typeof opts}`);
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
  return skipping ? placeholder(shape, device, true) : randn(shape, { std, device });
}

/** A new parameter drawn from U[low, high) (a placeholder inside withoutInit). */
export function initUniform(shape: readonly number[], low: number, high: number, device?: string): Tensor {
  return skipping ? placeholder(shape, device, true) : rand(shape, { low, high, device });
}

/**
 * A Linear or convolution parameter as PyTorch initialises it, U[-1/sqrt(fanIn),
 * 1/sqrt(fanIn)) for weight and bias; or, with initStd (HF's `initializer_range`
 * scheme), Normal(0, initStd) weights and zero biases.
 */
export function initLayer(shape: readonly number[], fanIn: number, isBias: boolean, initStd: number | undefined, device?: string): Tensor {
  if (initStd === undefined) {
    const bound = 1 / Math.sqrt(fanIn);
    return initUniform(shape, -bound, bound, device);
  }
  return isBias ? initConstant(shape, 0, device) : initNormal(shape, initStd, device);
}

/** A new parameter or buffer filled with value (a placeholder inside withoutInit). */
export function initConstant(shape: readonly number[], value: number, device?: string): Tensor {
  return skipping ? placeholder(shape, device, false) : full(shape, value, { device });
}
