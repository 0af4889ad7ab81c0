// The backward formula of every differentiable op, recorded by the ops themselves
// (lib/ops/*) when an input requires gradients. Formulas are compositions of the
// engine's forward ops, so they run on any backend; the fused kernels that replace
// the expensive ones (attention, GELU) keep these as their reference.
import { Tensor } from '../tensor.js';
import type { DTypeName } from '../dtype.js';
import { needsGrad, record, sameShape, NOTHING_ACCUMULATED, type Accumulated } from './tape.js';
import * as E from '../ops/elementwise.js';
import * as L from '../ops/layout.js';
import * as R from '../ops/reduce.js';
import * as M from '../ops/linalg.js';
import * as N from '../ops/nn.js';
import { hostInt32Range, zeros } from '../creation.js';
import { native } from '../native.js';
import { wrap } from '../tensor.js';

const f32 = (t: Tensor) => L.cast(t, 'float32');

/** t in float32 (itself when it already is). */
const wide = (t: Tensor): Tensor => (t.dtype === 'float32' ? t : f32(t));
/** t in dtype d (itself when it already is). */
const narrow = (t: Tensor | null, d: string): Tensor | null => (t === null || t.dtype === d ? t : L.cast(t, d as Tensor['dtype']));

/**
 * Whether gradients use a backend's training kernels where it has them (the CPU and
 * CUDA do): false forces the formulas composed of forward ops, which every backend
 * runs, so tests can check both on one machine.
 */
export const gradKernels = { enabled: true };

// What each device's backend reports having, asked once per query and device (no key
// is built per call: the backward pass asks for every op).
type BackendQuery = 'hasBackwardKernels' | 'hasAttentionBackward' | 'hasAttentionDropout';
const backendAnswers: Record<BackendQuery, Map<string, boolean>> = {
  hasBackwardKernels: new Map(),
  hasAttentionBackward: new Map(),
  hasAttentionDropout: new Map(),
};
function backendHas(query: BackendQuery, device: string): boolean {
  const answers = backendAnswers[query];
  let has = answers.get(device);
  if (has === undefined) {
    has = native[query](device);
    answers.set(device, has);
  }
  return has;
}

/**
 * Training kernels apply where the backend has them: to float32 on the CPU (16-bit
 * would only round-trip through float32 there), to float32, bfloat16 and float16 on
 * CUDA (float32 accumulation). The kernels take operands of one dtype: `others` (the
 * incoming gradient) must share t's.
 */
export function useKernel(t: Tensor, ...others: Tensor[]): boolean {
  if (!gradKernels.enabled) return false;
  if (t.dtype !== 'float32' && (t.device === 'cpu' || (t.dtype !== 'bfloat16' && t.dtype !== 'float16'))) return false;
  if (others.some((o) => o.dtype !== t.dtype)) return false;
  return backendHas('hasBackwardKernels', t.device);
}

/**
 * g summed down to `shape` (undoing numpy broadcasting). acc, i: where the sum is one
 * reduction, the gradient already accumulated for input i (Accumulated) joins it.
 */
export function sumTo(g: Tensor, shape: readonly number[], acc: Accumulated | null = null, i = 0): Tensor {
  // Leading axes only (a bias, a weight shared over a batch): one reduction over a 2-D view.
  const lead = g.rank - shape.length;
  // (Not for empty gradients: [-1, 0] names no size.)
  if (lead > 0 && g.size > 0 && shape.every((d, j) => d === g.shape[lead + j])) {
    const n = shape.reduce((a, b) => a * b, 1);
    const rows = L.reshape(L.contiguous(g), [-1, n]);
    const prev = acc?.take(i, shape, g.dtype) ?? null;
    if (prev) return L.reshape(wrap(native.reduce('sum', rows.handle, 0, false, L.reshape(prev, [n]).handle)), [...shape]);
    return L.reshape(R.sum(rows, 0), [...shape]);
  }
  let out = g;
  while (out.rank > shape.length) out = R.sum(out, 0);
  for (let i = 0; i < shape.length; i++) if (shape[i] === 1 && out.shape[i] !== 1) out = R.sum(out, i, { keepdim: true });
  return out;
}

// ---- elementwise ---------------------------------------------------------------------

export function binaryGrad(op: string, out: Tensor, a: Tensor, b: Tensor): Tensor {
  if (!needsGrad(a, b)) return out;
  const as = a.shape;
  const bs = b.shape;
  switch (op) {
    case 'add':
      // A broadcast operand (a bias) folds the gradient already summed for it into its sum.
      return record('add', out, [a, b], [], (g, _s, _n, acc) => [sumTo(g, as, acc, 0), sumTo(g, bs, acc, 1)]);
    case 'sub':
      return record('sub', out, [a, b], [], (g) => [sumTo(g, as), sumTo(E.neg(g), bs)]);
    case 'mul':
      return record('mul', out, [a, b], [a, b], (g, [x, y]) => [sumTo(E.mul(g, y), as), sumTo(E.mul(g, x), bs)]);
    case 'div':
      return record('div', out, [a, b], [a, b], (g, [x, y]) => {
        // d/dy as torch forms it, -g (x / y) / y: (g / y) (x / y) overflows to inf x 0 =
        // NaN for a tiny y where x is 0.
        return [sumTo(E.div(g, y), as), sumTo(E.neg(E.mul(g, E.div(E.div(x, y), y))), bs)];
      });
    case 'maximum':
    case 'minimum':
      // As torch: the gradient goes to the chosen operand, split in halves on ties, and
      // to both where a NaN makes neither the loser.
      return record(op, out, [a, b], [a, b], (g, [x, y]) => {
        const loses = (u: Tensor, v: Tensor) => (op === 'maximum' ? E.less(u, v) : E.greater(u, v));
        const half = E.mul(g, 0.5);
        const tie = E.equal(x, y);
        return [sumTo(E.where(tie, half, E.where(loses(x, y), 0, g)), as), sumTo(E.where(tie, half, E.where(loses(y, x), 0, g)), bs)];
      });
    case 'pow':
      // As torch: d/dx is 0 where y is 0 (x^0 is constant, 0^-1 would make 0 x inf);
      // d/dy = x^y ln x, 0 where x is 0 and y >= 0 (the limit), NaN for x < 0.
      return record('pow', out, [a, b], [a, b, out], (g, [x, y, z]) => {
        const zxy = E.mul(z, E.log(x));
        return [
          sumTo(E.where(E.equal(y, 0), 0, E.mul(g, E.mul(y, E.pow(x, E.sub(y, 1))))), as),
          sumTo(E.mul(g, E.where(E.equal(x, 0), E.where(E.greaterEqual(y, 0), 0, zxy), zxy)), bs),
        ];
      });
    default:
      return out; // comparisons: no gradient
  }
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

export function unaryGrad(op: string, out: Tensor, x: Tensor, alpha: number): Tensor {
  if (!needsGrad(x)) return out;
  const one = (f: (g: Tensor, s: Tensor[]) => Tensor, save: Tensor[]) => record(op, out, [x], save, (g, s) => [f(g, s)]);
  switch (op) {
    case 'scale':
      return one((g) => E.scale(g, alpha), []);
    case 'neg':
      return one((g) => E.neg(g), []);
    case 'exp':
      return one((g, [y]) => E.mul(g, y), [out]);
    case 'log':
      return one((g, [v]) => E.div(g, v), [x]);
    case 'sin':
      return one((g, [v]) => E.mul(g, E.cos(v)), [x]);
    case 'cos':
      return one((g, [v]) => E.neg(E.mul(g, E.sin(v))), [x]);
    case 'sqrt':
      return one((g, [y]) => E.div(E.scale(g, 0.5), y), [out]);
    case 'rsqrt':
      return one((g, [y]) => E.mul(E.scale(g, -0.5), E.mul(y, E.square(y))), [out]);
    case 'tanh':
      return one((g, [y]) => E.mul(g, E.scale(E.square(y), -1, 1)), [out]);
    case 'sigmoid':
      return one((g, [y]) => E.mul(g, E.mul(y, E.scale(y, -1, 1))), [out]);
    case 'relu':
      // As torch's threshold_backward: 0 where x <= 0, so a NaN input passes g on.
      return one((g, [v]) => E.where(E.lessEqual(v, 0), 0, g), [x]);
    case 'abs':
      return one((g, [v]) => E.where(E.greater(v, 0), g, E.where(E.less(v, 0), E.neg(g), 0)), [x]);
    case 'square':
      return one((g, [v]) => E.mul(g, E.scale(v, 2)), [x]);
    case 'gelu':
      // d/dx x Phi(x) = Phi(x) + x phi(x): the backend's training kernel, else composed with
      // Phi = gelu(x) / x (exact: gelu is computed as x * Phi(x)), Phi(0) = 1/2. 16-bit
      // operands are composed in float32 with gelu(x) recomputed there (torch's opmath):
      // the output rounded to 16 bits made Phi coarse where it is subnormal (0.6, not
      // 0.5, at x = 3e-7 in float16).
      return one((g16, [v16, y16]) => {
        if (useKernel(v16, g16)) return wrap(native.geluBackward(v16.handle, g16.handle, false));
        const v = wide(v16);
        const y = y16.dtype === 'float32' ? y16 : E.gelu(v);
        const phi = E.where(E.equal(v, 0), 0.5, E.div(y, E.where(E.equal(v, 0), 1, v)));
        const density = E.scale(E.exp(E.scale(E.square(v), -0.5)), INV_SQRT_2PI);
        return narrow(E.mul(wide(g16), E.add(phi, E.mul(v, density))), g16.dtype)!;
      }, [x, out]);
    case 'gelu_tanh':
      // 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3k x^2), t = tanh(c (x + k x^3)); in float32
      // for 16-bit operands, where x^2 overflowed float16 past |x| ~ 700 (0 x inf = NaN).
      return one((g16, [v16]) => {
        if (useKernel(v16, g16)) return wrap(native.geluBackward(v16.handle, g16.handle, true));
        const v = wide(v16);
        const c = Math.sqrt(2 / Math.PI);
        const k = 0.044715;
        const t = E.tanh(E.scale(E.add(v, E.scale(E.mul(v, E.square(v)), k)), c));
        const left = E.scale(t, 0.5, 0.5);
        const right = E.mul(E.mul(E.scale(v, 0.5 * c), E.scale(E.square(t), -1, 1)), E.scale(E.square(v), 3 * k, 1));
        return narrow(E.mul(wide(g16), E.add(left, right)), g16.dtype)!;
      }, [x]);
    default:
      throw new Error(`${op}: has no gradient formula`);
  }
}

export function whereGrad(out: Tensor, cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (!needsGrad(a, b)) return out;
  const as = a.shape;
  const bs = b.shape;
  return record('where', out, [null, a, b], [cond], (g, [c]) => [null, sumTo(E.where(c, g, 0), as), sumTo(E.where(c, 0, g), bs)]);
}

// ---- layout --------------------------------------------------------------------------

export function reshapeGrad(op: string, out: Tensor, x: Tensor): Tensor {
  if (!needsGrad(x)) return out;
  const shape = x.shape;
  return record(op, out, [x], [], (g) => [L.reshape(L.contiguous(g), shape)]);
}

export function permuteGrad(out: Tensor, x: Tensor, axes: readonly number[]): Tensor {
  if (!needsGrad(x)) return out;
  const n = axes.length;
  const inverse = new Array<number>(n);
  axes.forEach((a, i) => (inverse[(a + n) % n] = i));
  return record('permute', out, [x], [], (g) => [L.permute(g, inverse)]);
}

export function broadcastGrad(out: Tensor, x: Tensor): Tensor {
  if (!needsGrad(x)) return out;
  const shape = x.shape;
  return record('broadcastTo', out, [x], [], (g) => [sumTo(g, shape)]);
}

/**
 * g spread along `axis` with step - 1 zeros between neighbours: n elements become
 * (n - 1) * step + 1 (the gradient of a strided slice, or of a strided convolution).
 */
export function dilate(g: Tensor, axis: number, step: number): Tensor {
  if (step === 1) return g;
  const gs = [...g.shape];
  const n = gs[axis];
  const gaps = zeros([...gs.slice(0, axis + 1), step - 1, ...gs.slice(axis + 1)], { device: g.device, dtype: g.dtype });
  const wide = L.concat([L.unsqueeze(L.contiguous(g), axis + 1), gaps], axis + 1);
  return L.slice(L.reshape(wide, [...gs.slice(0, axis), n * step, ...gs.slice(axis + 1)]), axis, 0, (n - 1) * step + 1);
}

export function sliceGrad(out: Tensor, x: Tensor, axis: number, start: number, step: number): Tensor {
  if (!needsGrad(x)) return out;
  const ax = axis < 0 ? axis + x.rank : axis;
  const len = x.shape[ax];
  const lo = start < 0 ? Math.max(0, start + len) : Math.min(start, len);
  if (step < 1) throw new Error(`slice: gradients need a positive step, got ${step}`);
  const shape = x.shape;
  return record('slice', out, [x], [], (g) => {
    const n = g.shape[ax];
    const zerosAlong = (k: number) => zeros([...shape.slice(0, ax), k, ...shape.slice(ax + 1)], { device: g.device, dtype: g.dtype });
    const spread = n > 0 ? dilate(g, ax, step) : g;
    // Zeros before and after the slice along the axis.
    const m = spread.shape[ax];
    const parts: Tensor[] = [];
    if (lo > 0) parts.push(zerosAlong(lo));
    parts.push(spread);
    if (len - lo - m > 0) parts.push(zerosAlong(len - lo - m));
    return [parts.length === 1 ? spread : L.concat(parts, ax)];
  });
}

// The parts of split() along a tensor's last axis, each with its call (whole and part
// count; one object per call, since two splits of one tensor cut it differently) and
// its place: what attentionGrad looks for. Weak: an entry goes with its part.
interface SplitCall {
  readonly whole: Tensor;
  readonly count: number;
}
const splitParts = new WeakMap<Tensor, { call: SplitCall; index: number }>();

export function noteSplit(parts: readonly Tensor[], whole: Tensor, axis: number): void {
  if (axis !== whole.rank - 1 || !needsGrad(whole)) return;
  const call: SplitCall = { whole, count: parts.length };
  parts.forEach((t, index) => splitParts.set(t, { call, index }));
}

/** The tensor whose split these are, all of one call's parts in order; else null. */
function splitWhole(parts: readonly Tensor[]): Tensor | null {
  const call = splitParts.get(parts[0])?.call;
  // A disposed whole has no gradFn left to send the gradient to, and one that no longer
  // wants a gradient (requiresGrad cleared since) no edge: its parts' slices still do.
  if (!call || call.count !== parts.length || call.whole.disposed || !needsGrad(call.whole)) return null;
  for (let i = 0; i < parts.length; i++) {
    const s = splitParts.get(parts[i]);
    if (!s || s.call !== call || s.index !== i) return null;
  }
  return call.whole;
}

export function concatGrad(out: Tensor, xs: readonly Tensor[], axis: number): Tensor {
  if (!needsGrad(...xs)) return out;
  const ax = axis < 0 ? axis + out.rank : axis;
  const sizes = xs.map((t) => t.shape[ax]);
  return record('concat', out, [...xs], [], (g) => {
    let at = 0;
    return sizes.map((n) => {
      const part = L.slice(g, ax, at, at + n);
      at += n;
      return part;
    });
  });
}

export function castGrad(out: Tensor, x: Tensor): Tensor {
  if (!needsGrad(x) || (x.dtype !== 'float32' && x.dtype !== 'float16' && x.dtype !== 'bfloat16')) return out;
  const dtype = x.dtype;
  return record('cast', out, [x], [], (g) => [L.cast(g, dtype)]);
}

// ---- reductions ----------------------------------------------------------------------

function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

export function reduceGrad(op: string, out: Tensor, x: Tensor, axis: number, keepdim: boolean): Tensor {
  if (!needsGrad(x) || op === 'argmax') return out;
  const ax = normAxis(axis, x.rank);
  const shape = x.shape;
  const expand = (g: Tensor) => L.broadcastTo(keepdim ? g : L.unsqueeze(g, ax), shape);
  if (op === 'sum') return record('sum', out, [x], [], (g) => [expand(g)]);
  if (op === 'mean') return record('mean', out, [x], [], (g) => [E.scale(expand(g), 1 / shape[ax])]);
  // max / min: split evenly between the elements that attain it.
  return record(op, out, [x], [x, out], (g, [v, y]) => {
    const hit = L.cast(E.equal(v, keepdim ? y : L.unsqueeze(y, ax)), v.dtype);
    const count = R.sum(hit, ax, { keepdim: true });
    return [E.mul(E.div(hit, count), expand(g))];
  });
}

export function softmaxGrad(out: Tensor, x: Tensor, log: boolean): Tensor {
  if (!needsGrad(x)) return out;
  const last = x.rank - 1;
  if (log) return record('logSoftmax', out, [x], [out], (g, [y]) => [E.sub(g, E.mul(E.exp(y), R.sum(g, last, { keepdim: true })))]);
  return record('softmax', out, [x], [out], (g, [y]) => [softmaxBackward(y, g, y.dtype)]);
}

/**
 * y (g - sum_last(g y)): softmax's gradient from its output, one fused kernel where
 * the backend has it (written straight in `dtype`), else composed.
 */
function softmaxBackward(y: Tensor, g: Tensor, dtype: DTypeName): Tensor {
  if (useKernel(y, g)) return wrap(native.softmaxBackward(y.handle, g.handle, dtype));
  const gx = E.mul(y, E.sub(g, R.sum(E.mul(g, y), y.rank - 1, { keepdim: true })));
  return gx.dtype === dtype ? gx : L.cast(gx, dtype);
}

export function layerNormGrad(out: Tensor, x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  if (!needsGrad(x, weight, bias)) return out;
  const n = x.shape[x.rank - 1];
  const save = weight ? [x, weight] : [x];
  const dtypes = [x.dtype, weight?.dtype ?? x.dtype, bias?.dtype ?? x.dtype];
  return record('layerNorm', out, [x, weight, bias], save, (g16, [v16, w16], needs, acc) => {
    // 16-bit operands: the statistics and the gradient sums are formed in float32. A
    // backend kernel that takes them (CUDA's) does so itself, rounding each output once
    // as narrowing a float32 result does, without the widening and narrowing casts: six
    // per call, three of them [rows, n] (3.1 ms of a bf16 ImageNet training step on an
    // H200, 297 casts of [8, 512, 1024]).
    if (g16.dtype !== 'float32' && dtypes.every((d) => d === g16.dtype) && useKernel(v16, g16, ...(w16 ? [w16] : [])))
      return layerNormBackward(g16, v16, w16, bias !== null, n, eps, needs, acc);
    const g = wide(g16);
    const v = wide(v16);
    const w = w16 ? wide(w16) : undefined;
    if (g16.dtype !== 'float32') return layerNormBackward(g, v, w, bias !== null, n, eps, needs).map((t, i) => narrow(t, dtypes[i]));
    return layerNormBackward(g, v, w, bias !== null, n, eps, needs, acc);
  });
}

/** acc: the formula's Accumulated, which the kernel folds in (not where gradients change dtype after). */
function layerNormBackward(
  g: Tensor,
  v: Tensor,
  w: Tensor | undefined,
  hasBias: boolean,
  n: number,
  eps: number,
  needs: boolean[],
  acc: Accumulated = NOTHING_ACCUMULATED,
): (Tensor | null)[] {
  const last = v.rank - 1;
  if (useKernel(v, g, ...(w ? [w] : []))) {
    const needW = !!w && needs[1];
    const needB = hasBias && needs[2];
    // The residual's other branch into gx; a weight and bias shared by the latent blocks.
    const gxPrev = acc.take(0, v.shape, v.dtype);
    const gwPrev = needW ? acc.take(1, [n], v.dtype) : null;
    const gbPrev = needB ? acc.take(2, [n], v.dtype) : null;
    const [gx, gw, gb] = native.layerNormBackward(
      v.handle,
      w ? w.handle : null,
      g.handle,
      eps,
      needW,
      needB,
      gxPrev?.handle ?? null,
      gwPrev?.handle ?? null,
      gbPrev?.handle ?? null,
    );
    return [wrap(gx), gw ? wrap(gw) : null, gb ? wrap(gb) : null];
  }
  // Composed elsewhere; the statistics are recomputed (cheaper to hold than two extra [rows] tensors per call).
  const mu = R.mean(v, last, { keepdim: true });
  const centred = E.sub(v, mu);
  const rstd = E.rsqrt(E.add(R.mean(E.square(centred), last, { keepdim: true }), eps));
  const xhat = E.mul(centred, rstd);
  const gxhat = w ? E.mul(g, w) : g;
  const meanG = R.mean(gxhat, last, { keepdim: true });
  const meanGX = R.mean(E.mul(gxhat, xhat), last, { keepdim: true });
  const gx = E.mul(rstd, E.sub(E.sub(gxhat, meanG), E.mul(xhat, meanGX)));
  const gw = w ? sumTo(E.mul(g, xhat), [n]) : null;
  const gb = hasBias ? sumTo(g, [n]) : null;
  return [gx, gw, gb];
}

// ---- linear algebra ------------------------------------------------------------------

export function matmulGrad(
  out: Tensor,
  a: Tensor,
  b: Tensor,
  transA: boolean,
  transB: boolean,
  bias: Tensor | null,
  alpha: number,
  addend: Tensor | null = null,
): Tensor {
  if (!needsGrad(a, b, bias, addend)) return out;
  const as = a.shape;
  const bs = b.shape;
  const n = out.shape[out.rank - 1];
  const addendShape = addend?.shape;
  return record('matmul', out, [a, b, bias, addend], [a, b], (gOut, [x, y], needs, acc) => {
    // A float32 result of 16-bit operands (option dtype) sends back a float32 gradient.
    const g = gOut.dtype === x.dtype ? gOut : L.cast(gOut, x.dtype);
    // With A = op(a), B = op(b): dA = alpha g Bᵀ, dB = alpha Aᵀ g; transposed operands
    // take the transposed products, so no transpose is materialised. Where a product
    // has its input's shape (no broadcast batch to sum away), the gradient already
    // summed for that input (a shared weight's other uses, a residual's other branch)
    // joins the product as its addend.
    const batchOf = (s: readonly number[]) => s.slice(0, -2);
    const unbroadcast = (s: readonly number[]) => s.length === g.rank && sameShape(batchOf(s), batchOf(g.shape));
    // g's rows, named (with an empty last axis, -1 would name no size).
    const rows = g.shape.slice(0, -1).reduce((p, d) => p * d, 1);
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (needs[0]) {
      const prev = unbroadcast(as) ? acc.take(0, as, x.dtype) : null;
      if (!transA && y.rank === 2 && g.rank > 2) {
        // A batch of rows times one matrix: a single product over all rows (a holds g's
        // whole batch here, so the product has a's shape).
        const k = as[as.length - 1];
        ga = L.reshape(M.matmul(L.reshape(L.contiguous(g), [rows, n]), y, { transB: !transB, alpha, addend: prev && L.reshape(prev, [rows, k]) }), [...g.shape.slice(0, -1), k]);
      } else {
        ga = transA
          ? M.matmul(y, g, { transA: transB, transB: true, alpha, addend: prev })
          : M.matmul(g, y, { transB: !transB, alpha, addend: prev });
      }
      ga = sumTo(ga, as);
    }
    if (needs[1]) {
      if (!transA && bs.length === 2 && g.rank > 2) {
        // The weight of a batched linear layer: flatten the batch into rows, one product.
        const g2 = L.reshape(L.contiguous(g), [rows, n]);
        const x2 = L.reshape(L.contiguous(x), [rows, as[as.length - 1]]);
        const prev = acc.take(1, bs, y.dtype);
        gb = transB ? M.matmul(g2, x2, { transA: true, alpha, addend: prev }) : M.matmul(x2, g2, { transA: true, alpha, addend: prev });
      } else {
        const prev = unbroadcast(bs) ? acc.take(1, bs, y.dtype) : null;
        gb = transB
          ? M.matmul(g, x, { transA: true, transB: transA, alpha, addend: prev })
          : M.matmul(x, g, { transA: !transA, alpha, addend: prev });
        gb = sumTo(gb, bs);
      }
    }
    const gBias = bias && needs[2] ? sumTo(g, [n], acc, 2) : null;
    return [ga, gb, gBias, addendShape && needs[3] ? sumTo(g, addendShape) : null];
  });
}

/**
 * Whether the gradient of attention over q [B, Nq, H, Dqk] and v [B, Nk, H, Dv] runs the
 * backend's fused kernel: where the device has one and its backend takes such heads
 * (CUDA's flash kernel only some widths and dtypes). Asked before the forward, which
 * then keeps each row's log-sum-exp for the kernel.
 */
export function attentionKernelFor(q: Tensor, v: Tensor, dropout: boolean): boolean {
  if (!gradKernels.enabled || !backendHas('hasAttentionBackward', q.device)) return false;
  if (q.rank !== 4 || v.rank !== 4) return false; // the forward's checks name the fault
  return native.attentionBackwardFused(q.device, q.dtype, q.shape[3], v.shape[3], dropout);
}

/**
 * Whether the fused attention takes dropout on this device (the CPU does). Not where
 * PERCEIVER_ATTENTION_COMPOSE=1 asks for the composed attention (tests compare both).
 */
export function hasAttentionDropout(device: string): boolean {
  return process.env.PERCEIVER_ATTENTION_COMPOSE !== '1' && backendHas('hasAttentionDropout', device);
}

/**
 * fused: the gradient takes the backend's kernel (attentionKernelFor). lse: each row's
 * log-sum-exp from the forward, where the fused gradient will use it. dropout: the
 * forward's (fused) dropout, which only the fused gradient can redo.
 */
export function attentionGrad(
  out: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  scale: number,
  fused = false,
  lse: Tensor | null = null,
  dropout: { p: number; seed: number } | null = null,
): Tensor {
  if (!needsGrad(q, k, v)) return out;
  const save = [q, k, v, out];
  if (mask) save.push(mask);
  if (lse) save.push(lse);
  const dtypes = [q.dtype, k.dtype, v.dtype];
  // One tensor as keys and values (the image encoders' cross-attention without
  // projections, models/fast-attention.ts): the composed gradient forms gk + gv itself.
  const kIsV = k === v;
  // q, k and v (a self-attention's fused projection), or k and v (a cross-attention's),
  // as the whole of one split (models/fused-projection.ts): their gradients go back
  // joined, one tensor for the product that made them, rather than each through its
  // slice's gradient (spread over zeros the whole's size, then summed).
  const qkv = kIsV ? null : splitWhole([q, k, v]);
  const kv = kIsV || qkv ? null : splitWhole([k, v]);
  const inputs = qkv ? [qkv] : kv ? [q, kv] : [q, k, v];
  const packed = qkv ? 3 : kv ? 2 : 0;
  const gradients = (g16: Tensor, saved: Tensor[]): (Tensor | null)[] => {
    const [gq, gk, gv] = gradientsApart(g16, saved);
    if (packed === 3) return [L.concat([gq!, gk!, gv!], 3)];
    if (packed === 2) return [gq, L.concat([gk!, gv!], 3)];
    return [gq, gk, gv];
  };
  return record('attention', out, inputs, save, gradients);
  function gradientsApart(g16: Tensor, [q16, k16, v16, o16, ...rest]: Tensor[]): (Tensor | null)[] {
    const tm = mask ? rest[0] : undefined;
    const tl = lse ? rest[rest.length - 1] : null;
    // The forward only dropped weights inside the fused kernel where this one exists.
    if (dropout || (fused && g16.dtype === q16.dtype)) {
      // Block by block from the forward's result, without the [Nq, Nk] matrices below.
      const drop = dropout ? [dropout.p, dropout.seed] : [];
      const g = g16.dtype === q16.dtype ? g16 : L.cast(g16, q16.dtype);
      const hs = native.attentionBackward(q16.handle, k16.handle, v16.handle, tm ? tm.handle : null, o16.handle, g.handle, tl ? tl.handle : null, scale, ...drop);
      return hs.map((h) => wrap(h));
    }
    // Recomputes the probabilities per (batch, head): [B, H, Nq, Nk]. Rows with every
    // key masked have P = 0 (their output is 0), as the forward kernel defines.
    // 16-bit operands, as flash attention's backward: the logits Q Kᵀ and dP = dO Vᵀ
    // take them as they are and come out float32 (tensor cores, float32 accumulation,
    // like the forward kernel's S); P and the softmax backward are float32; the three
    // products that make the gradients take P and dS rounded to the operands' dtype
    // (the gradients are rounded to it on return anyway).
    const low = g16.dtype !== 'float32' && q16.dtype === g16.dtype && k16.dtype === g16.dtype && v16.dtype === g16.dtype;
    const [B, Nq, , Dqk] = q16.shape;
    const Nk = k16.shape[1];
    const sc = scale > 0 ? scale : 1 / Math.sqrt(Dqk);
    const heads = (t: Tensor) => L.permute(t, [0, 2, 1, 3]);
    const [qh, kh, vh, gh] = (low ? [q16, k16, v16, g16] : [wide(q16), wide(k16), wide(v16), wide(g16)]).map(heads);
    const logits = M.matmul(qh, kh, { transB: true, alpha: sc, dtype: 'float32' });
    const p = R.maskedSoftmax(logits, tm ? L.unsqueeze(L.broadcastTo(tm, [B, Nq, Nk]), 1) : null); // mask [B, 1, Nq, Nk]
    const gp = M.matmul(gh, vh, { transB: true, dtype: 'float32' }); // [B, H, Nq, Nk]
    const gss = softmaxBackward(p, gp, low ? g16.dtype : 'float32');
    const pp = low ? L.cast(p, g16.dtype) : p;
    const gv = M.matmul(pp, gh, { transA: true }); // [B, H, Nk, Dv]
    const gq = M.matmul(gss, kh, { alpha: sc }); // [B, H, Nq, Dqk]
    const back = (t: Tensor, i: number) => narrow(heads(t), dtypes[i]);
    // k = v: gv joins gk's product as its addend, and the sum goes back once.
    if (kIsV) return [back(gq, 0), back(M.matmul(gss, qh, { transA: true, alpha: sc, addend: gv }), 1), null];
    const gk = M.matmul(gss, qh, { transA: true, alpha: sc }); // [B, H, Nk, Dqk]
    return [back(gq, 0), back(gk, 1), back(gv, 2)];
  }
}

// ---- nn ------------------------------------------------------------------------------

export function embeddingGrad(out: Tensor, weight: Tensor, ids: Tensor): Tensor {
  if (!needsGrad(weight)) return out;
  const [vocab, c] = weight.shape;
  // The forward's own failure (a bad id) goes to whoever reads its output; the
  // gradient's would come from one_hot below, an op the caller never called. Where the
  // ids' range is known on the host, backward says what is wrong instead.
  const range = hostInt32Range(ids);
  const recorded = record('embedding', out, [weight, null], [ids], (g, [i], _needs, acc) => {
    // Scatter-add as a one-hot product: [N, vocab]ᵀ [N, C], in the gradient's dtype (0
    // and 1 are exact in 16 bits). A tied weight's other gradient (the decoder's
    // product) joins it as the addend.
    const flat = L.reshape(L.contiguous(i), [i.size]);
    const onehot = N.oneHot(flat, vocab, { dtype: g.dtype });
    const prev = acc.take(0, [vocab, c], g.dtype);
    return [M.matmul(onehot, L.reshape(L.contiguous(g), [i.size, c]), { transA: true, addend: prev }), null];
  });
  if (range !== null && (range[0] < 0 || range[1] >= vocab) && recorded.gradFn)
    recorded.gradFn.precheck = () => {
      throw new RangeError(`backward: the gradient of embedding needs argument 'ids' in [0, ${vocab}) (the rows of 'weight'), got ids from ${range[0]} to ${range[1]}`);
    };
  return recorded;
}

export function batchNormGrad(out: Tensor, x: Tensor, mean: Tensor, variance: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  if (!needsGrad(x, weight, bias)) return out;
  const c = x.shape[x.rank - 1];
  const save = weight ? [x, mean, variance, weight] : [x, mean, variance];
  // Inference-mode statistics are constants: the op is affine in x per channel.
  return record('batchNorm', out, [x, weight, bias], save, (g, [v, mu, va, w]) => {
    const rstd = E.rsqrt(E.add(va, eps));
    const xhat = E.mul(E.sub(v, mu), rstd);
    const gx = E.mul(g, w ? E.mul(w, rstd) : rstd);
    return [gx, w ? sumTo(E.mul(g, xhat), [c]) : null, bias ? sumTo(g, [c]) : null];
  });
}
