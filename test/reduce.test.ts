// Specification of the reductions: sum/mean/max/min/argmax over one axis (keepdim,
// NaN, empty axes), softmax/logSoftmax over the last axis, layerNorm.
import test from 'ava';
import * as P from '../lib/index.js';
import { tensor } from '../lib/index.js';
import {
  assertClose,
  assertExact,
  EPS32,
  layerNormRef,
  maxAbs,
  permuteRef,
  randomArray,
  randomInts,
  randomNormal,
  reduceRef,
  softmaxRef,
  type ReduceOp,
} from './helpers/reference.js';

const OPS: ReduceOp[] = ['sum', 'mean', 'max', 'min', 'argmax'];
const FN = { sum: P.sum, mean: P.mean, max: P.max, min: P.min, argmax: P.argmax };

/** Sums accumulate in double: the only error is the final rounding, plus slack for the summands' magnitude. */
function sumTol(x: ArrayLike<number>, n: number) {
  return { rtol: EPS32, atol: 1e-9 * n * maxAbs(x) };
}

// ---- sum / mean / max / min / argmax ----------------------------------------------------------

for (const op of OPS)
  test(`${op}: over each axis of [3,4,5] (and negative axes), with and without keepdim`, async (t) => {
    const shape = [3, 4, 5];
    const x = randomArray(60, 1);
    for (let axis = -3; axis < 3; axis++) {
      const a = axis < 0 ? axis + 3 : axis;
      const want = reduceRef(x, shape, axis, op);
      for (const keepdim of [false, true]) {
        const y = FN[op](tensor(x, shape), axis, { keepdim });
        const wantShape = keepdim ? shape.map((d, i) => (i === a ? 1 : d)) : want.shape;
        t.deepEqual(y.shape, wantShape, `axis ${axis} keepdim ${keepdim}`);
        t.is(y.dtype, op === 'argmax' ? 'int32' : 'float32');
        const d = await y.data();
        if (op === 'sum' || op === 'mean') assertClose(t, d, want.data, { ...sumTol(x, shape[a]), msg: `axis ${axis}` });
        else assertExact(t, d, want.data, `axis ${axis}`);
      }
    }
    const m = tensor(x, shape);
    const method = op === 'argmax' ? m.argmax(1) : op === 'sum' ? m.sum(1) : op === 'mean' ? m.mean(1) : op === 'max' ? m.max(1) : m.min(1);
    t.deepEqual(method.shape, [3, 5], 'method form');
  });

for (const op of OPS)
  test(`${op}: of a transposed view and of 300k elements over either axis (threads split the rows)`, async (t) => {
    const [R, C] = [600, 501];
    const x = randomArray(R * C, 2);
    for (const axis of [0, 1]) {
      const y = FN[op](tensor(x, [R, C]), axis);
      const want = reduceRef(x, [R, C], axis, op);
      if (op === 'sum' || op === 'mean') assertClose(t, await y.data(), want.data, { ...sumTol(x, [R, C][axis]), msg: `axis ${axis}` });
      else assertExact(t, await y.data(), want.data, `axis ${axis}`);
    }
    const s = [7, 65];
    const xs = x.subarray(0, 7 * 65);
    const v = FN[op](tensor(xs, s).transpose(), 1, { keepdim: true }); // reduce over the 7
    t.deepEqual(v.shape, [65, 1]);
    const want = reduceRef(permuteRef(xs, s, [1, 0]).data, [65, 7], 1, op);
    if (op === 'sum' || op === 'mean') assertClose(t, await v.data(), want.data, sumTol(xs, 7));
    else assertExact(t, await v.data(), want.data, 'transposed');
  });

test('sum/mean: over a long middle axis with few outputs (a bias gradient), and over the tokens of [4096, 37]', async (t) => {
  // On CUDA these split the axis across a block's warps; the results must not move.
  for (const [shape, axis] of [[[3, 70, 40], 1], [[4096, 37], 0], [[2, 33, 1], 1]] as [number[], number][]) {
    const x = randomArray(shape.reduce((a, b) => a * b, 1), 11);
    for (const op of ['sum', 'mean'] as const) {
      const y = FN[op](tensor(x, shape), axis);
      assertClose(t, await y.data(), reduceRef(x, shape, axis, op).data, { ...sumTol(x, shape[axis]), msg: `${op} [${shape}] axis ${axis}` });
      y.dispose();
    }
  }
});

test('sum: accumulates in double, so small terms are not lost next to a large one', async (t) => {
  // In float32, 16777216 + 1 == 16777216 and each +1 would vanish.
  const x = tensor([16777216, 1, 1, 1, 1, 1, 1, 1, 1]);
  assertExact(t, await P.sum(x, 0).data(), [16777224]);
  // A million copies of float32(0.1): the exact sum rounded once, not float drift.
  const n = 1_000_000;
  const y = P.full([n], 0.1);
  const want = Math.fround(Math.fround(0.1) * n);
  assertExact(t, await y.sum(0).data(), [want]);
  assertClose(t, await y.mean(0).data(), [Math.fround(0.1)], { rtol: EPS32, atol: 0 });
});

test('max/min: NaN anywhere in the reduced axis gives NaN; argmax points at the first NaN', async (t) => {
  const x = tensor([
    [1, NaN, 3, NaN],
    [4, 2, 9, 9],
    [NaN, 5, 6, 7],
  ]);
  assertExact(t, await P.max(x, 1).data(), [NaN, 9, NaN]);
  assertExact(t, await P.min(x, 1).data(), [NaN, 2, NaN]);
  assertExact(t, await P.argmax(x, 1).data(), [1, 2, 0]);
  assertExact(t, await P.max(x, 0).data(), [NaN, NaN, 9, NaN]);
  assertExact(t, await P.sum(x, 1).data(), [NaN, 24, NaN]);
  assertExact(t, await P.mean(x, 0).data(), [NaN, NaN, 6, NaN]);
});

test('argmax: ties resolve to the first maximum; infinities order as usual', async (t) => {
  const x = tensor([
    [2, 5, 5, 1],
    [-Infinity, -Infinity, -Infinity, -Infinity],
    [0, Infinity, 3, Infinity],
  ]);
  assertExact(t, await P.argmax(x, 1).data(), [1, 0, 1]);
  assertExact(t, await P.argmax(x, 0).data(), [0, 2, 0, 2]);
  const ints = Float32Array.from(randomInts(63 * 65, 3, 0, 4));
  assertExact(t, await P.argmax(tensor(ints, [63, 65]), 1).data(), reduceRef(ints, [63, 65], 1, 'argmax').data, 'random ties');
});

test('a 0-d tensor reduces over axis 0 or -1 to a 0-d tensor (keepdim too), gradient included, as torch; other axes are a RangeError', async (t) => {
  const x = tensor(3);
  x.requiresGrad = true;
  for (const [op, want] of [['sum', 3], ['mean', 3], ['max', 3], ['min', 3], ['argmax', 0]] as const) {
    for (const axis of [0, -1])
      for (const keepdim of [false, true]) {
        const y = P[op](x, axis, { keepdim });
        t.deepEqual(y.shape, [], `${op} ${axis} ${keepdim}`);
        t.deepEqual(Array.from(await y.data()), [want]);
        y.dispose();
      }
    t.throws(() => P[op](x, 1), { instanceOf: RangeError, message: `${op === 'argmax' ? 'argmax' : op}: argument 'axis' must be 0 or -1 for a 0-d tensor, got 1` });
  }
  P.mean(x, 0).backward();
  t.deepEqual(Array.from(await x.grad!.data()), [1]);
  x.dispose();
});

test('reductions over an axis of size 0: sum is 0, mean is NaN, max/min/argmax are a RangeError', async (t) => {
  const x = P.zeros([3, 0]);
  assertExact(t, await P.sum(x, 1).data(), [0, 0, 0]);
  assertExact(t, await P.mean(x, 1).data(), [NaN, NaN, NaN]);
  t.deepEqual(P.sum(x, 0).shape, [0]);
  t.throws(() => P.max(x, 1), { instanceOf: RangeError, message: /size 0/ });
  t.throws(() => P.min(x, 1), { instanceOf: RangeError });
  t.throws(() => P.argmax(x, 1), { instanceOf: RangeError });
});

test('reductions: a bad axis is a RangeError, a non-float32 input a TypeError, a scalar has axis 0 (or -1) only', (t) => {
  t.throws(() => P.sum(P.zeros([2, 3]), 2), { instanceOf: RangeError });
  t.throws(() => P.sum(P.zeros([2, 3]), -3), { instanceOf: RangeError });
  t.throws(() => P.max(P.zeros([2], { dtype: 'int32' }), 0), { instanceOf: TypeError });
  t.throws(() => P.sum(tensor(1), 1), { instanceOf: RangeError });
  t.throws(() => P.max(tensor(1, [], { dtype: 'int32' }), 0), { instanceOf: TypeError });
  t.throws(() => P.sum(P.zeros([2]), 0, { keepdim: 1 as never }), { instanceOf: TypeError });
});

// ---- softmax / logSoftmax ----------------------------------------------------------------------

const WIDTHS = [1, 7, 63, 65, 261];

// softmax: exp and the normalisation, ~1e-6 relative per element; values near 0 are
// tiny fractions of the row, so an absolute floor of 1e-7 (of the row total 1).
const SOFTMAX = { rtol: 1e-5, atol: 1e-7 };

test(`softmax: rows of width ${WIDTHS.join(', ')} match the reference and sum to 1`, async (t) => {
  for (const n of WIDTHS) {
    const rows = 9;
    const x = randomArray(rows * n, n, -5, 5);
    const y = await P.softmax(tensor(x, [3, 3, n])).data();
    assertClose(t, y, softmaxRef(x, n), { ...SOFTMAX, msg: `n=${n}` });
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += y[r * n + j];
      if (Math.abs(s - 1) > 2e-6) t.fail(`n=${n} row ${r} sums to ${s}`);
    }
    t.deepEqual(tensor(x, [rows, n]).softmax().shape, [rows, n]);
  }
});

test(`logSoftmax: rows of width ${WIDTHS.join(', ')} match the reference`, async (t) => {
  for (const n of WIDTHS) {
    const x = randomArray(9 * n, n + 1, -5, 5);
    // out = x - max - log(sum): an absolute error of a few ulps of the inputs' range.
    assertClose(t, await P.logSoftmax(tensor(x, [9, n])).data(), softmaxRef(x, n, true), { rtol: 1e-6, atol: 4 * EPS32 * 10, msg: `n=${n}` });
  }
});

test('softmax/logSoftmax: large-magnitude logits (offset 1e4, spread 1e3) stay finite and exact', async (t) => {
  const n = 65;
  const x = randomArray(4 * n, 5, -1000, 1000).map((v, i) => v + (i < 2 * n ? 1e4 : -1e4));
  const s = await P.softmax(tensor(x, [4, n])).data();
  t.true(s.every(Number.isFinite));
  assertClose(t, s, softmaxRef(x, n), SOFTMAX);
  const ls = await P.logSoftmax(tensor(x, [4, n])).data();
  t.true(ls.every(Number.isFinite), 'log-softmax of very negative entries is a large negative number, not -inf');
  // inputs near 1e4 carry an ulp of ~1e-3; the log-softmax inherits a few of those.
  assertClose(t, ls, softmaxRef(x, n, true), { rtol: 1e-6, atol: 4 * EPS32 * 1.1e4 });
});

test('softmax: -inf logits get weight exactly 0; logSoftmax gives them -inf', async (t) => {
  const x = tensor([[0, -Infinity, 0, -Infinity]]);
  assertExact(t, await P.softmax(x).data(), [0.5, 0, 0.5, 0]);
  assertClose(t, await P.logSoftmax(x).data(), [-Math.LN2, -Infinity, -Math.LN2, -Infinity], { rtol: 1e-6 });
});

test('softmax: 2000 rows of 65 (threaded) and a transposed input', async (t) => {
  const x = randomArray(2000 * 65, 6, -8, 8);
  assertClose(t, await P.softmax(tensor(x, [2000, 65])).data(), softmaxRef(x, 65), SOFTMAX);
  const v = tensor(x.subarray(0, 63 * 7), [63, 7]).transpose(); // rows of 63
  assertClose(t, await v.softmax(-1).data(), softmaxRef(permuteRef(x.subarray(0, 63 * 7), [63, 7], [1, 0]).data, 63), SOFTMAX);
});

test('softmax/logSoftmax: only the last axis is supported; others are a RangeError that says to permute', (t) => {
  const x = P.zeros([2, 3]);
  t.throws(() => P.softmax(x, 0), { instanceOf: RangeError, message: /permute/ });
  t.throws(() => P.logSoftmax(x, 0), { instanceOf: RangeError });
  t.notThrows(() => P.softmax(x, 1));
  t.throws(() => P.softmax(tensor(1)), { instanceOf: RangeError });
});

// ---- layerNorm ---------------------------------------------------------------------------------

/** Outputs are O(1) after normalisation; float32 mean/variance add ~ulp(max|x|)/std absolute error. */
function lnTol(x: ArrayLike<number>, n: number) {
  let minStd = Infinity;
  for (let r = 0; r * n < x.length; r++) {
    let s = 0;
    let s2 = 0;
    for (let j = 0; j < n; j++) s += x[r * n + j];
    for (let j = 0; j < n; j++) s2 += (x[r * n + j] - s / n) ** 2;
    minStd = Math.min(minStd, Math.sqrt(s2 / n + 1e-5));
  }
  return { rtol: 1e-5, atol: 1e-5 + (4 * EPS32 * maxAbs(x)) / minStd };
}

test(`layerNorm: rows of width ${[...WIDTHS, 768].join(', ')} without weight and bias`, async (t) => {
  for (const n of [...WIDTHS, 768]) {
    const x = randomArray(5 * n, n, -3, 3);
    const y = P.layerNorm(tensor(x, [5, n]));
    t.deepEqual(y.shape, [5, n]);
    assertClose(t, await y.data(), layerNormRef(x, n), { ...lnTol(x, n), msg: `n=${n}` });
  }
});

test('layerNorm: weight scales and bias shifts each channel; either may be given alone', async (t) => {
  const n = 261;
  const x = randomArray(3 * 7 * n, 1, -2, 2);
  const w = randomArray(n, 2, 0.5, 2);
  const b = randomArray(n, 3, -1, 1);
  const xt = tensor(x, [3, 7, n]);
  const tol = lnTol(x, n);
  assertClose(t, await P.layerNorm(xt, tensor(w), tensor(b)).data(), layerNormRef(x, n, w, b), { ...tol, atol: tol.atol * 2, msg: 'both' });
  assertClose(t, await P.layerNorm(xt, tensor(w)).data(), layerNormRef(x, n, w), { ...tol, atol: tol.atol * 2, msg: 'weight' });
  assertClose(t, await P.layerNorm(xt, null, tensor(b)).data(), layerNormRef(x, n, null, b), { ...tol, msg: 'bias' });
});

test('layerNorm: eps is added to the variance (it dominates for near-constant rows)', async (t) => {
  const n = 64;
  const x = randomArray(2 * n, 4, -1e-3, 1e-3); // variance ~3e-7, below the default eps
  for (const eps of [1e-5, 1e-12, 1, 0.1]) {
    const y = await P.layerNorm(tensor(x, [2, n]), null, null, { eps }).data();
    assertClose(t, y, layerNormRef(x, n, null, null, eps), { rtol: 1e-5, atol: 1e-6, msg: `eps ${eps}` });
  }
  const c = await P.layerNorm(P.full([2, 8], 3)).data();
  assertExact(t, c, new Array(16).fill(0), 'a constant row normalises to 0');
  t.throws(() => P.layerNorm(tensor(x, [2, n]), null, null, { eps: -1 }), { instanceOf: RangeError, message: /^layer_norm: argument 'eps' must be >= 0, got -1$/ });
  // Written as JavaScript writes numbers, not with C's six fixed decimals ("-0.000000").
  t.throws(() => P.layerNorm(tensor(x, [2, n]), null, null, { eps: -1e-12 }), { instanceOf: RangeError, message: /got -1e-12$/ });
  t.throws(() => P.layerNorm(tensor(x, [2, n]), null, null, { eps: -0.1 }), { instanceOf: RangeError, message: /got -0\.1$/ });
});

test('layerNorm: rows whose squares pass float32\'s range (1e20, 3e38) normalise as smaller ones do, at every row length (the partial sums are double)', async (t) => {
  const alt = (n: number, a: number, b: number) => Array.from({ length: n }, (_, i) => (i % 2 ? a : b));
  for (const n of [14, 16, 32, 1030])
    for (const [a, b] of [[1e20, -1e20], [3e38, 1e38]]) {
      const y = await P.layerNorm(tensor(alt(n, a, b), [n])).data();
      assertClose(t, y, alt(n, 1, -1), { rtol: 0, atol: 1e-6, msg: `n ${n}, ${a} / ${b}` });
    }
});

test('layerNorm: a large common offset (1e4 + unit noise) does not cancel (two-pass variance)', async (t) => {
  const n = 261;
  const x = randomNormal(4 * n, 5).map((v) => 1e4 + v);
  const y = await P.layerNorm(tensor(x, [4, n])).data();
  assertClose(t, y, layerNormRef(x, n), lnTol(x, n));
});

test('layerNorm: a transposed input and 1000 rows of 261 (threaded)', async (t) => {
  const x = randomArray(1000 * 261, 7, -4, 4);
  assertClose(t, await P.layerNorm(tensor(x, [1000, 261])).data(), layerNormRef(x, 261), lnTol(x, 261));
  const xs = x.subarray(0, 65 * 63);
  const v = tensor(xs, [65, 63]).transpose();
  const ref = permuteRef(xs, [65, 63], [1, 0]).data;
  assertClose(t, await P.layerNorm(v).data(), layerNormRef(ref, 65), lnTol(ref, 65));
});

test('layerNorm: weight or bias of the wrong shape is a RangeError; of the wrong dtype a TypeError', (t) => {
  const x = P.zeros([2, 4]);
  t.throws(() => P.layerNorm(x, P.ones([3])), { instanceOf: RangeError, message: /weight/ });
  t.throws(() => P.layerNorm(x, null, P.ones([4, 1])), { instanceOf: RangeError, message: /bias/ });
  t.throws(() => P.layerNorm(x, P.ones([4], { dtype: 'float16' })), { instanceOf: TypeError });
});

test('maskedSoftmax names the argument that is not a Tensor, with or without a mask', (t) => {
  const m = P.ones([2], { dtype: 'uint8' });
  const x = P.zeros([2]);
  const cases: [string, () => unknown, RegExp][] = [
    ['logits undefined, mask', () => P.maskedSoftmax(undefined as never, m), /^masked_softmax: argument 'logits' must be a Tensor, got undefined/],
    ['logits null, no mask', () => P.maskedSoftmax(null as never, null), /^masked_softmax: argument 'logits' must be a Tensor, got null/],
    ['mask string', () => P.maskedSoftmax(x, 'x' as never), /^masked_softmax: argument 'mask' must be a Tensor, got 'x'/],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
  m.dispose();
  x.dispose();
});

test('maskedSoftmax takes a row\'s allowed keys from the mask\'s own last axis, whatever the mask\'s rank against the logits\'', (t) => {
  const close = (got: Float32Array, want: number[]) => got.forEach((g, i) => t.true(Math.abs(g - want[i]) < 1e-6, `${i}: ${g} vs ${want[i]}`));
  const e = Math.exp(1);
  // logits [3] against a mask [2, 3]: row 0 lets keys 0 and 1 in, row 1 none (all 0).
  const logits = P.tensor([1, 2, 3]);
  const mask = P.tensor([[1, 1, 0], [0, 0, 0]], undefined, { dtype: 'uint8' });
  close(P.maskedSoftmax(logits, mask).dataSync() as Float32Array, [1 / (1 + e), e / (1 + e), 0, 0, 0, 0]);
  // logits [2, 3] against a mask [3] (one row for every query).
  const l2 = P.tensor([[1, 2, 3], [0, 0, 0]]);
  const m2 = P.tensor([1, 0, 1], undefined, { dtype: 'uint8' });
  const e2 = Math.exp(2);
  close(P.maskedSoftmax(l2, m2).dataSync() as Float32Array, [1 / (1 + e2), 0, e2 / (1 + e2), 0.5, 0, 0.5]);
  // A 0-d mask: 1 lets every key in (softmax), 0 none (zeros).
  const one = P.tensor(new Uint8Array([1]), []);
  const zero = P.tensor(new Uint8Array([0]), []);
  close(P.maskedSoftmax(l2, one).dataSync() as Float32Array, Array.from(P.softmax(l2).dataSync()));
  close(P.maskedSoftmax(l2, zero).dataSync() as Float32Array, [0, 0, 0, 0, 0, 0]);
  for (const v of [logits, mask, l2, m2, one, zero]) v.dispose();
});
