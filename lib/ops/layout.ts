// Shape and layout ops. reshape of dense data, permute, transpose, slice, squeeze
// and broadcastTo are views (no copy); contiguous() and cast() copy, except where x
// already is contiguous or of that dtype: then the result shares x's memory (as
// torch's .contiguous() and .to() return self), so a later assign() into x shows in it.
import { native } from '../native.js';
import { checkDType, describe, type DTypeName } from '../dtype.js';
import { Tensor, wrap, handleOf, noteWrite } from '../tensor.js';
import { int, shape as shapeArg } from './args.js';
import * as G from '../autograd/grads.js';

function axisOf(op: string, name: string, axis: unknown, rank: number): number {
  const a = int(op, name, axis);
  if (a < -rank || a >= rank) throw new RangeError(`${op}: argument '${name}' must be in [${-rank}, ${rank}), got ${a}`);
  return a < 0 ? a + rank : a;
}

/** Same elements, new shape (one dimension may be -1). A view when x is dense. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return G.reshapeGrad('reshape', wrap(native.reshape(handleOf('reshape', 'x', x), shapeArg('reshape', 'shape', shape))), x);
}

/** Merges axes startAxis..endAxis (inclusive) into one. */
export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  handleOf('flatten', 'x', x);
  if (x.rank === 0) return reshape(x, [1]);
  const s = axisOf('flatten', 'startAxis', startAxis, x.rank);
  const e = axisOf('flatten', 'endAxis', endAxis, x.rank);
  if (e < s) throw new RangeError(`flatten: 'endAxis' (${endAxis}) must not come before 'startAxis' (${startAxis})`);
  const merged = x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1);
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)]);
}

/** Reorders axes: out.shape[i] = x.shape[axes[i]]. A view. */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  const a = shapeArg('permute', 'axes', axes);
  return G.permuteGrad(wrap(native.permute(handleOf('permute', 'x', x), a)), x, a);
}

/** Swaps two axes (the last two by default). A view. */
export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  handleOf('transpose', 'x', x);
  const a = axisOf('transpose', 'axis0', axis0, x.rank);
  const b = axisOf('transpose', 'axis1', axis1, x.rank);
  const axes = x.shape.map((_, i) => i);
  axes[a] = b;
  axes[b] = a;
  return permute(x, axes);
}

/** Elements start, start+step, ... < end along axis (Python-style negative bounds). A view. */
export function slice(x: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const h = handleOf('slice', 'x', x);
  const e = end === undefined ? Number.MAX_SAFE_INTEGER : int('slice', 'end', end);
  const out = wrap(native.slice(h, int('slice', 'axis', axis), int('slice', 'start', start), e, int('slice', 'step', step)));
  return G.sliceGrad(out, x, axis, start, step);
}

/**
 * x cut along axis into consecutive parts of the given sizes, which must add up to the
 * axis's length: views, as torch.split with a list of sizes. Where attention() takes
 * the whole of one split of the last axis as q, k and v (or as k and v), in order, its
 * gradient goes back to x joined in one tensor (a fused projection's, as one product
 * made them), not through a slice's gradient per part, each spread over zeros and
 * then summed.
 */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  handleOf('split', 'x', x);
  const a = axisOf('split', 'axis', axis, x.rank);
  if (!Array.isArray(sizes) || sizes.length === 0)
    throw new TypeError(`split: argument 'sizes' must be a non-empty array of part sizes, got ${describe(sizes)}`);
  let total = 0;
  // An index loop, not forEach: a hole in the array is an error, not a part skipped.
  for (let i = 0; i < sizes.length; i++) {
    const n = int('split', `sizes[${i}]`, sizes[i]);
    if (n < 0) throw new RangeError(`split: argument 'sizes[${i}]' must not be negative, got ${n}`);
    total += n;
  }
  if (total !== x.shape[a])
    throw new RangeError(`split: argument 'sizes' ([${sizes.join(', ')}]) must add up to axis ${axis}'s length ${x.shape[a]}, got ${total}`);
  let at = 0;
  const parts = sizes.map((n) => slice(x, a, at, (at += n)));
  G.noteSplit(parts, x, a);
  return parts;
}

/** Drops an axis of size 1 (every such axis when none is given). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  handleOf('squeeze', 'x', x);
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = axisOf('squeeze', 'axis', axis, x.rank);
  if (x.shape[a] !== 1) throw new RangeError(`squeeze: axis ${axis} has size ${x.shape[a]}, expected 1 (shape [${x.shape.join(', ')}])`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** Inserts an axis of size 1 at position axis (in [-rank-1, rank]). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  handleOf('unsqueeze', 'x', x);
  const a = axisOf('unsqueeze', 'axis', axis, x.rank + 1);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

/** Repeats size-1 axes (and adds leading axes) to reach shape. A view with zero strides. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return G.broadcastGrad(wrap(native.broadcastTo(handleOf('broadcastTo', 'x', x), shapeArg('broadcastTo', 'shape', shape))), x);
}

/** Joins tensors along an existing axis. */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors)) throw new TypeError(`concat: argument 'tensors' must be an array of Tensors`);
  const hs = tensors.map((t, i) => handleOf('concat', `tensors[${i}]`, t));
  return G.concatGrad(wrap(native.concat(hs, int('concat', 'axis', axis))), tensors, axis);
}

/** A dense row-major copy (x itself, shared, when already dense). */
export function contiguous(x: Tensor): Tensor {
  return G.reshapeGrad('contiguous', wrap(native.contiguous(handleOf('contiguous', 'x', x))), x);
}

/** Converts elements to dtype (round to nearest even for 16-bit floats; saturating for integers). */
export function cast(x: Tensor, dtype: DTypeName): Tensor {
  return G.castGrad(wrap(native.cast(handleOf('cast', 'x', x), checkDType('cast', 'dtype', dtype))), x);
}

/**
 * Writes src's values into dst (same shape and device; converted to dst's dtype), in
 * queue order: ops queued before read the old values, ops queued after the new ones.
 * dst keeps its identity (optimizers update parameters this way). Not recorded for
 * gradients; a broadcast view cannot be a destination.
 */
export function assign(dst: Tensor, src: Tensor): void {
  native.assign(handleOf('assign', 'dst', dst), handleOf('assign', 'src', src));
  noteWrite();
}
