// tidy(): tensors created inside a scope are disposed when it ends, except those
// it returns or keep()s. Scopes nest; what an inner scope returns belongs to the
// outer one.
import type { Tensor } from './tensor.js';
import { describe } from './dtype.js';

// Each scope lists the tensors made in it, in order. keep() marks a tensor instead
// of searching the lists (autograd keeps every tensor it saves): an array push and a
// flag cost less than the Set operations they replace, once per op.
const scopes: Tensor[][] = [];

// The Tensor class imports this module, so it is recognised by shape here rather
// than by an import that would form a cycle at load time.
function isTensor(v: object): boolean {
  return 'handle' in v && typeof (v as { dispose?: unknown }).dispose === 'function';
}

/** @internal Called by the Tensor constructor: whether a scope now owns t. */
export function track(t: Tensor): boolean {
  if (!scopes.length) return false;
  scopes[scopes.length - 1].push(t);
  return true;
}

/** Exempts t from the cleanup of the scopes it was made in. */
export function keep<T extends Tensor>(t: T): T {
  if (t === null || typeof t !== 'object' || !isTensor(t)) throw new TypeError(`keep: argument 't' must be a Tensor, got ${describe(t)}`);
  t.scopeKept = true;
  t.registerFinalizer();
  return t;
}

function collect(v: unknown, out: Set<unknown>, depth = 0): void {
  if (v === null || typeof v !== 'object' || depth > 8) return;
  if (isTensor(v)) {
    out.add(v);
    return;
  }
  if (Array.isArray(v)) for (const e of v) collect(e, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype || v instanceof Map)
    for (const e of v instanceof Map ? v.values() : Object.values(v)) collect(e, out, depth + 1);
}

/**
 * Runs fn and disposes every tensor it created that is not part of its result
 * (a Tensor, or arrays / plain objects / Maps of them). fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new TypeError(`tidy: argument 'fn' must be a function, got ${describe(fn)}`);
  const scope: Tensor[] = [];
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) if (!t.scopeKept) t.dispose();
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of scope) if (!t.scopeKept) t.dispose();
    // Its rejection (likely: its tensors were just disposed) is this error's business;
    // left unhandled it would end the process later.
    result.catch(() => undefined);
    throw new TypeError('tidy: argument \'fn\' must be synchronous; it returned a Promise (await inside it would dispose tensors still in use)');
  }
  const keepSet = new Set<unknown>();
  collect(result, keepSet);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (t.scopeKept) continue;
    if (!keepSet.has(t)) t.dispose();
    else if (parent) parent.push(t);
    else t.registerFinalizer();  // now owned by the caller alone
  }
  return result;
}
