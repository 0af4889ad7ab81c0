// Compute dtype of layers: mixed precision (autocast) and 16-bit models share one rule.
// A layer computes in the autocast dtype when one is set, else in its own parameters'
// dtype, and casts what it is given to that dtype. So a model cast with
// Module.to({ dtype: 'bfloat16' }) runs in bfloat16 on float32 inputs, and a float32
// model under autocast('bfloat16', ...) runs its matmuls, attention and norms in
// bfloat16 while its parameters (the master weights) stay float32: the casts are
// recorded on the tape, so gradients arrive in float32.
import { AsyncLocalStorage } from 'node:async_hooks';
import { Tensor } from '../tensor.js';
import { cast } from '../ops/layout.js';
import { tidy } from '../scope.js';
import { describe, isFloatDType as isFloat, type DTypeName, type FloatDTypeName } from '../dtype.js';

// AsyncLocalStorage, not a global: the setting follows fn across its awaits and does
// not leak into work that runs concurrently outside it.
const current = new AsyncLocalStorage<FloatDTypeName | null>();

/**
 * Runs fn with layers computing in `dtype` ('bfloat16' or 'float16' for mixed
 * precision; 'float32' or null turns an outer autocast off), like torch.autocast.
 * fn may be async: the setting covers what it awaits. Returns fn's result.
 */
export function autocast<T>(dtype: FloatDTypeName | null, fn: () => T): T {
  if (dtype !== null && !isFloat(dtype))
    throw new TypeError(`autocast: argument 'dtype' must be 'float32', 'float16', 'bfloat16' or null, got ${describe(dtype)}`);
  if (typeof fn !== 'function') throw new TypeError(`autocast: argument 'fn' must be a function, got ${describe(fn)}`);
  return current.run(dtype === 'float32' ? null : dtype, fn);
}

/** The dtype set by the innermost autocast(), or null outside one. */
export function autocastDtype(): FloatDTypeName | null {
  return current.getStore() ?? null;
}

/** The dtype a layer holding `param` computes in: autocast's, else param's. */
export function computeDtype(param: Tensor): DTypeName {
  const ac = autocastDtype();
  return ac !== null && isFloat(param.dtype) ? ac : param.dtype;
}

/**
 * x in `dtype` when x is floating and differs (a recorded cast), else x itself. The
 * caller owns a returned cast: create it inside tidy().
 */
export function toDtype(x: Tensor, dtype: DTypeName): Tensor {
  return needsCast(x, dtype) ? cast(x, dtype) : x;
}

/** Whether toDtype(x, dtype) would cast: x is floating and of another floating dtype. */
export function needsCast(x: Tensor, dtype: DTypeName): boolean {
  return x.dtype !== dtype && isFloat(x.dtype) && isFloat(dtype);
}

/**
 * fn applied to args cast to dtype (nulls pass through). Without a cast it is a plain
 * call; with one, the casts live in a tidy() around fn.
 */
export function computeIn<const A extends readonly (Tensor | null)[], R>(dtype: DTypeName, args: A, fn: (...a: A) => R): R {
  if (!args.some((a) => a !== null && needsCast(a, dtype))) return fn(...args);
  return tidy(() => fn(...(args.map((a) => a && toDtype(a, dtype)) as unknown as A)));
}
