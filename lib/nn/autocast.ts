// Compute dtype of layers: mixed precision (autocast) and 16-bit models share one rule.
// A layer computes in the autocast dtype when one is set, else in its own parameters'
// dtype, and casts what it is given to that dtype. So a model cast with
// Module.to({ dtype: 'bfloat16' }) runs in bfloat16 on float32 inputs, and a float32
// model under autocast('bfloat16', ...) runs its matmuls, attention and norms in
// bfloat16 while its parameters (the master weights) stay float32: the casts are
// recorded on the tape, so gradients arrive in float32.
import { AsyncLocalStorage } from 'node:async_hooks';
import { Tensor, writeCount } from '../tensor.js';
import { cast } from '../ops/layout.js';
import { keep, tidy } from '../scope.js';
import { checkDType, describe, isFloatDType as isFloat, type DTypeName, type FloatDTypeName } from '../dtype.js';

function tensorArg(op: string, name: string, v: unknown): Tensor {
  if (!(v instanceof Tensor)) throw new TypeError(`${op}: argument '${name}' must be a Tensor, got ${describe(v)}`);
  return v;
}

interface Scope {
  dtype: FloatDTypeName | null;
  // Casts of parameters (leaves that require gradients), made once per autocast() and
  // reused by every layer that takes the parameter, as torch's autocast caches them: a
  // weight shared by several blocks (the ImageNet encoders' eight) is cast once, and
  // its gradients meet in one cast node. Valid while no tensor has been written in place.
  casts: Map<Tensor, Tensor>;
  writes: number;
  // Casts made before a write: no longer handed out, but callers may still hold them.
  stale: Tensor[];
}

// AsyncLocalStorage, not a global: the setting follows fn across its awaits and does
// not leak into work that runs concurrently outside it.
const current = new AsyncLocalStorage<Scope>();

// Disposes the scope's casts, except fn's result itself (returned to the caller).
function release(scope: Scope, result: unknown): void {
  for (const c of [...scope.casts.values(), ...scope.stale]) if (c !== result) c.dispose();
  scope.casts.clear();
  scope.stale.length = 0;
}

/**
 * Runs fn with layers computing in `dtype` ('bfloat16' or 'float16' for mixed
 * precision; 'float32' or null turns an outer autocast off), like torch.autocast.
 * fn may be async: the setting covers what it awaits. Returns fn's result.
 */
export function autocast<T>(dtype: FloatDTypeName | null, fn: () => T): T {
  if (dtype !== null && !isFloat(dtype))
    throw new TypeError(`autocast: argument 'dtype' must be 'float32', 'float16', 'bfloat16' or null, got ${describe(dtype)}`);
  if (typeof fn !== 'function') throw new TypeError(`autocast: argument 'fn' must be a function, got ${describe(fn)}`);
  const scope: Scope = { dtype: dtype === 'float32' ? null : dtype, casts: new Map(), writes: writeCount(), stale: [] };
  let result: T;
  try {
    result = current.run(scope, fn);
  } catch (e) {
    release(scope, undefined);
    throw e;
  }
  // The cached casts outlive fn's own scopes and go when it is done (a graph that uses
  // them holds its own references).
  if (result instanceof Promise)
    return result.then(
      (v) => {
        release(scope, v);
        return v;
      },
      (e) => {
        release(scope, undefined);
        throw e;
      },
    ) as T;
  release(scope, result);
  return result;
}

/** The dtype set by the innermost autocast(), or null outside one. */
export function autocastDtype(): FloatDTypeName | null {
  return current.getStore()?.dtype ?? null;
}

/** The dtype a layer holding `param` computes in: autocast's, else param's. */
export function computeDtype(param: Tensor): DTypeName {
  tensorArg('computeDtype', 'param', param);
  const ac = autocastDtype();
  return ac !== null && isFloat(param.dtype) ? ac : param.dtype;
}

/**
 * x in floating `dtype` when x is floating and differs (a recorded cast), else x itself. The
 * caller owns a returned cast: create it inside tidy(). Under autocast, a parameter's
 * cast to autocast's dtype is made once and shared (autocast() disposes it).
 */
export function toDtype(x: Tensor, dtype: DTypeName): Tensor {
  tensorArg('toDtype', 'x', x);
  checkDType('toDtype', 'dtype', dtype);
  // An integer target would hand x back unchanged: cast() converts to integers.
  if (!isFloat(dtype)) throw new TypeError(`toDtype: argument 'dtype' must be a floating dtype (float32, bfloat16 or float16), got '${dtype}' (cast() converts to integer dtypes)`);
  return castTo(x, dtype);
}

/** toDtype for arguments already checked (computeIn's, the layers'): no second check per call. @internal */
export function castTo(x: Tensor, dtype: DTypeName): Tensor {
  if (!castNeeded(x, dtype)) return x;
  const scope = current.getStore();
  if (!scope || scope.dtype !== dtype || !x.requiresGrad || x.gradFn !== null) return cast(x, dtype);
  if (scope.writes !== writeCount()) {
    scope.stale.push(...scope.casts.values());
    scope.casts.clear();
    scope.writes = writeCount();
  }
  let c = scope.casts.get(x);
  if (c === undefined || c.disposed) {
    c = keep(cast(x, dtype));
    scope.casts.set(x, c);
  }
  return c;
}

/** Whether toDtype(x, dtype) would cast: x is floating and of another floating dtype. */
export function needsCast(x: Tensor, dtype: DTypeName): boolean {
  tensorArg('needsCast', 'x', x);
  checkDType('needsCast', 'dtype', dtype);
  return castNeeded(x, dtype);
}

/** needsCast for arguments already checked. @internal */
export function castNeeded(x: Tensor, dtype: DTypeName): boolean {
  return x.dtype !== dtype && isFloat(x.dtype) && isFloat(dtype);
}

/**
 * fn applied to args cast to dtype (nulls pass through). Without a cast it is a plain
 * call; with one, the casts live in a tidy() around fn.
 */
export function computeIn<const A extends readonly (Tensor | null)[], R>(dtype: DTypeName, args: A, fn: (...a: A) => R): R {
  checkDType('computeIn', 'dtype', dtype);
  if (!Array.isArray(args as unknown)) throw new TypeError(`computeIn: argument 'args' must be an array of Tensors or nulls, got ${describe(args)}`);
  if (typeof fn !== 'function') throw new TypeError(`computeIn: argument 'fn' must be a function, got ${describe(fn)}`);
  let anyCast = false;
  for (let i = 0; i < args.length; i++) {
    const a: unknown = args[i];
    if (a === null) continue;
    if (!(a instanceof Tensor)) throw new TypeError(`computeIn: argument 'args' must be an array of Tensors or nulls, element ${i} is ${describe(a)}`);
    if (castNeeded(a, dtype)) anyCast = true;
  }
  if (!anyCast) return fn(...args);
  return tidy(() => fn(...(args.map((a) => a && castTo(a, dtype)) as unknown as A)));
}
