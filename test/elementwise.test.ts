// Specification of the elementwise ops: unary math, binary arithmetic with numpy
// broadcasting, comparisons to uint8, where, scale, number operands, GELU forms.
import test from 'ava';
import * as P from '../lib/index.js';
import { tensor, type Tensor } from '../lib/index.js';
import {
  assertClose,
  assertExact,
  binaryRef,
  broadcastRef,
  EPS32,
  erfc,
  geluRef,
  geluTanhRef,
  mapRef,
  maximumRef,
  minimumRef,
  numel,
  permuteRef,
  randomArray,
  randomInts,
  reluRef,
  runIsolated,
  sigmoidRef,
  sliceRef,
  type Shape,
} from './helpers/reference.js';

// IEEE-exact ops (one or two float32 roundings of the true result).
const EXACT = { rtol: 2 * EPS32, atol: 0 };
// Library transcendentals: about 1e-5 relative; 1e-7 absolute (one ulp at 1) for
// results that pass near 0, where relative error is meaningless.
const TRANS = { rtol: 1e-5, atol: 1e-7 };
// Library transcendentals again, with room near GELU's zero at 0 (the negative tail,
// where the values are tiny, has a test of its own at relative 1e-5).
const GELU = { rtol: 1e-5, atol: 1e-6 };

interface UnaryCase {
  name: string;
  op: (x: Tensor) => Tensor;
  ref: (x: number) => number;
  lo: number;
  hi: number;
  tol: { rtol: number; atol: number };
}

const UNARY: UnaryCase[] = [
  { name: 'neg', op: P.neg, ref: (x) => -x, lo: -10, hi: 10, tol: EXACT },
  { name: 'exp', op: P.exp, ref: Math.exp, lo: -20, hi: 20, tol: TRANS },
  { name: 'log', op: P.log, ref: Math.log, lo: 1e-3, hi: 100, tol: TRANS },
  { name: 'sin', op: P.sin, ref: Math.sin, lo: -10, hi: 10, tol: TRANS },
  { name: 'cos', op: P.cos, ref: Math.cos, lo: -10, hi: 10, tol: TRANS },
  { name: 'sqrt', op: P.sqrt, ref: Math.sqrt, lo: 0, hi: 100, tol: EXACT },
  { name: 'rsqrt', op: P.rsqrt, ref: (x) => 1 / Math.sqrt(x), lo: 1e-2, hi: 100, tol: EXACT },
  { name: 'tanh', op: P.tanh, ref: Math.tanh, lo: -10, hi: 10, tol: TRANS },
  { name: 'relu', op: P.relu, ref: reluRef, lo: -5, hi: 5, tol: EXACT },
  { name: 'gelu', op: (x) => P.gelu(x), ref: geluRef, lo: -6, hi: 6, tol: GELU },
  { name: 'gelu tanh', op: (x) => P.gelu(x, { approximate: 'tanh' }), ref: geluTanhRef, lo: -6, hi: 6, tol: GELU },
  { name: 'sigmoid', op: P.sigmoid, ref: sigmoidRef, lo: -20, hi: 20, tol: TRANS },
  { name: 'abs', op: P.abs, ref: Math.abs, lo: -10, hi: 10, tol: EXACT },
  { name: 'square', op: P.square, ref: (x) => x * x, lo: -10, hi: 10, tol: EXACT },
  { name: 'scale(2.5, -1)', op: (x) => P.scale(x, 2.5, -1), ref: (x) => 2.5 * x - 1, lo: -10, hi: 10, tol: { rtol: 2 * EPS32, atol: 10 * EPS32 } },
];

const SIZES = [1, 7, 63, 65, 261, 100_003];

// ---- unary ----------------------------------------------------------------------------

for (const u of UNARY) {
  test(`${u.name}: matches the float64 reference at sizes ${SIZES.join(', ')}`, async (t) => {
    for (const n of SIZES) {
      const x = randomArray(n, n + 17, u.lo, u.hi);
      const y = u.op(tensor(x));
      t.deepEqual(y.shape, [n]);
      t.is(y.dtype, 'float32');
      assertClose(t, await y.data(), mapRef(x, u.ref), { ...u.tol, msg: `${u.name} n=${n}` });
    }
  });

  test(`${u.name}: reads transposed, strided and broadcast views in logical order`, async (t) => {
    const x = randomArray(65 * 63, 3, u.lo, u.hi);
    const base = tensor(x, [65, 63]);
    const tr = u.op(base.transpose());
    t.deepEqual(tr.shape, [63, 65]);
    t.true(tr.isContiguous);
    assertClose(t, await tr.data(), mapRef(permuteRef(x, [65, 63], [1, 0]).data, u.ref), { ...u.tol, msg: 'transposed' });
    const sl = u.op(base.slice(1, 1, undefined, 3));
    assertClose(t, await sl.data(), mapRef(sliceRef(x, [65, 63], 1, 1, undefined, 3).data, u.ref), { ...u.tol, msg: 'step 3 columns' });
    const row = tensor(x.subarray(0, 63), [1, 63]);
    const bc = u.op(row.broadcastTo([4, 5, 63]));
    t.deepEqual(bc.shape, [4, 5, 63]);
    assertClose(t, await bc.data(), mapRef(broadcastRef(x.subarray(0, 63), [1, 63], [4, 5, 63]), u.ref), { ...u.tol, msg: 'broadcast' });
  });
}

test('unary: special values follow IEEE float semantics', async (t) => {
  const specials = new Float32Array([NaN, Infinity, -Infinity, 0, -0]);
  const x = tensor(specials);
  const cases: [string, Tensor, number[], boolean][] = [
    ['neg', P.neg(x), [NaN, -Infinity, Infinity, -0, 0], true],
    ['exp', P.exp(x), [NaN, Infinity, 0, 1, 1], false],
    ['log', P.log(x), [NaN, Infinity, NaN, -Infinity, -Infinity], false],
    ['sqrt', P.sqrt(x), [NaN, Infinity, NaN, 0, -0], true],
    ['rsqrt', P.rsqrt(x), [NaN, 0, NaN, Infinity, -Infinity], false],
    ['tanh', P.tanh(x), [NaN, 1, -1, 0, -0], true],
    ['relu', P.relu(x), [NaN, Infinity, 0, 0, -0], true],  // -0 stays -0, as torch.relu
    ['sigmoid', P.sigmoid(x), [NaN, 1, 0, 0.5, 0.5], false],
    ['abs', P.abs(x), [NaN, Infinity, Infinity, 0, 0], true],
    ['square', P.square(x), [NaN, Infinity, Infinity, 0, 0], false],
    ['sin', P.sin(x), [NaN, NaN, NaN, 0, -0], true],
    ['cos', P.cos(x), [NaN, NaN, NaN, 1, 1], false],
  ];
  for (const [name, y, want, signed] of cases) assertExact(t, await y.data(), want, name, signed);
  const g = await P.gelu(tensor([NaN, Infinity, 0])).data();
  assertExact(t, g, [NaN, Infinity, 0], 'gelu');
  assertExact(t, await P.gelu(tensor([NaN, Infinity, 0]), { approximate: 'tanh' }).data(), [NaN, Infinity, 0], 'gelu tanh');
});

test('unary: out-of-range inputs overflow to inf, underflow to 0 and give NaN outside the domain', async (t) => {
  assertExact(t, await P.exp(tensor([89, -110])).data(), [Infinity, 0], 'exp');
  assertExact(t, await P.log(tensor([-1])).data(), [NaN], 'log');
  assertExact(t, await P.sqrt(tensor([-1])).data(), [NaN], 'sqrt');
  assertExact(t, await P.sigmoid(tensor([-200, 200])).data(), [0, 1], 'sigmoid');
  assertExact(t, await P.tanh(tensor([-50, 50])).data(), [-1, 1], 'tanh');
});

test('gelu: exact and tanh forms are different functions, each matching its reference', async (t) => {
  const x = randomArray(4001, 8, -6, 6);
  const exact = await P.gelu(tensor(x), { approximate: 'none' }).data();
  const approx = await tensor(x).gelu({ approximate: 'tanh' }).data();
  assertClose(t, exact, mapRef(x, geluRef), GELU);
  assertClose(t, approx, mapRef(x, geluTanhRef), GELU);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(exact[i] - approx[i]));
  t.true(diff > 1e-4, `largest difference between the forms ${diff}`);
  assertClose(t, await tensor(x).gelu().data(), exact, { rtol: 0, atol: 0, msg: 'default is exact' });
  t.throws(() => P.gelu(tensor(x), { approximate: 'erf' as never }), { instanceOf: TypeError });
});

test('gelu far out: 0 (not a value growing with |x|) for very negative inputs and a gradient of 1 for very positive ones, dense, strided and fused into a matmul, both forms and their gradients; relu fused into a matmul keeps NaN', async (t) => {
  const xs = [-1e4, -1e20, -1e30, -3e38];
  const strided = (v: number[]) => P.slice(tensor(v.flatMap((x) => [x, 0])), 0, 0, 2 * v.length, 2);
  for (const approximate of ['none', 'tanh'] as const) {
    for (const [how, x] of [['dense', tensor(xs)], ['strided', strided(xs)]] as const)
      t.deepEqual(Array.from(await P.gelu(x, { approximate }).data()).map(Math.abs), [0, 0, 0, 0], `${approximate}, ${how}`);
    const fused = await P.matmul(tensor(xs, [4, 1]), P.ones([1, 1]), { activation: approximate === 'none' ? 'gelu' : 'gelu_tanh' }).data();
    t.deepEqual(Array.from(fused).map(Math.abs), [0, 0, 0, 0], `${approximate}, fused`);
    const x = tensor(xs);
    x.requiresGrad = true;
    P.tidy(() => P.backward(P.gelu(x, { approximate }).sum(0)));
    t.deepEqual(Array.from(await x.grad!.data()).map(Math.abs), [0, 0, 0, 0], `${approximate}, gradient`);
    x.dispose();
    // And 1 far on the positive side (the tanh form's terms once grew there: 3.6 at 1e13).
    const y = tensor(xs.map((v) => -v));
    y.requiresGrad = true;
    P.tidy(() => P.backward(P.gelu(y, { approximate }).sum(0)));
    t.deepEqual(Array.from(await y.grad!.data()), [1, 1, 1, 1], `${approximate}, gradient far positive`);
    y.dispose();
  }
  const relu = await P.matmul(tensor([NaN, 1, -1], [3, 1]), P.ones([1, 1]), { activation: 'relu' }).data();
  t.deepEqual(Array.from(relu), [NaN, 1, 0]);
});

test('gelu in the negative tail keeps its digits (relative 1e-5 in float32), where 1 + erf and 1 + tanh cancel: dense, strided, fused into a matmul, and both forms\' gradients', async (t) => {
  const xs = [-9, -7.5, -6, -5.5, -5, -4.25, -3, -2];
  const strided = (v: number[]) => P.slice(tensor(v.flatMap((x) => [x, 0])), 0, 0, 2 * v.length, 2);
  const c = Math.sqrt(2 / Math.PI), k = 0.044715;
  const grads = {
    none: (x: number) => 0.5 * erfc(-x / Math.SQRT2) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
    tanh: (x: number) => {
      const e = Math.exp(-2 * c * (x + k * x * x * x)), s = 1 / (1 + e);
      return s + 2 * c * x * (1 + 3 * k * x * x) * e * s * s;
    },
  };
  const TAIL = { rtol: 1e-5, atol: 0 };
  for (const approximate of ['none', 'tanh'] as const) {
    const ref = mapRef(xs, approximate === 'none' ? geluRef : geluTanhRef);
    assertClose(t, await P.gelu(tensor(xs), { approximate }).data(), ref, { ...TAIL, msg: `${approximate}, dense` });
    assertClose(t, await P.gelu(strided(xs), { approximate }).data(), ref, { ...TAIL, msg: `${approximate}, strided` });
    const fused = await P.matmul(tensor(xs, [xs.length, 1]), P.ones([1, 1]), { activation: approximate === 'none' ? 'gelu' : 'gelu_tanh' }).data();
    assertClose(t, fused, ref, { ...TAIL, msg: `${approximate}, fused into a matmul` });
    const x = tensor(xs);
    x.requiresGrad = true;
    P.tidy(() => P.backward(P.gelu(x, { approximate }).sum(0)));
    assertClose(t, await x.grad!.data(), mapRef(xs, grads[approximate]), { ...TAIL, msg: `${approximate}, gradient` });
    x.dispose();
  }
});

test('unary: a non-floating input is a TypeError naming the op and the dtype', (t) => {
  const i = tensor([1, 2], undefined, { dtype: 'int32' });
  const err = t.throws(() => P.exp(i), { instanceOf: TypeError });
  t.regex(err!.message, /exp/);
  t.regex(err!.message, /int32/);
  t.throws(() => P.relu(tensor([1], undefined, { dtype: 'uint8' })), { instanceOf: TypeError });
  t.throws(() => P.exp([1, 2] as never), { instanceOf: TypeError });
});

// ---- binary -----------------------------------------------------------------------------

interface BinaryCase {
  name: string;
  op: (a: Tensor, b: Tensor) => Tensor;
  ref: (a: number, b: number) => number;
  lo: [number, number];
  hi: [number, number];
  tol: { rtol: number; atol: number };
}

const BINARY: BinaryCase[] = [
  // A float32 sum is correctly rounded (and exact when it cancels): within 2^-24 relative; allow 2^-23.
  { name: 'add', op: P.add, ref: (a, b) => a + b, lo: [-10, -10], hi: [10, 10], tol: { rtol: EPS32, atol: 0 } },
  { name: 'sub', op: P.sub, ref: (a, b) => a - b, lo: [-10, -10], hi: [10, 10], tol: { rtol: EPS32, atol: 0 } },
  { name: 'mul', op: P.mul, ref: (a, b) => a * b, lo: [-10, -10], hi: [10, 10], tol: EXACT },
  { name: 'div', op: P.div, ref: (a, b) => a / b, lo: [-10, 0.1], hi: [10, 10], tol: EXACT },
  { name: 'pow', op: P.pow, ref: Math.pow, lo: [0.1, -3], hi: [10, 3], tol: TRANS },
  { name: 'maximum', op: P.maximum, ref: maximumRef, lo: [-10, -10], hi: [10, 10], tol: { rtol: 0, atol: 0 } },
  { name: 'minimum', op: P.minimum, ref: minimumRef, lo: [-10, -10], hi: [10, 10], tol: { rtol: 0, atol: 0 } },
];

// [a shape, b shape]: scalar vs tensor, [N,1] vs [1,M], leading-dim, interleaved.
const BROADCASTS: [Shape, Shape][] = [
  [[65], [65]],
  [[], [7, 9]],
  [[7, 9], []],
  [[63, 1], [1, 65]],
  [[4, 1, 3], [2, 1]],
  [[5, 3], [2, 5, 3]],
  [[2, 1, 4, 1], [3, 1, 5]],
  [[7], [63, 7]],
  [[261, 1, 1], [1, 1, 261]],
];

for (const b of BINARY) {
  test(`${b.name}: matches the reference under broadcasting ${BROADCASTS.map(([x, y]) => `[${x}]x[${y}]`).join(' ')}`, async (t) => {
    let seed = 100;
    for (const [sa, sb] of BROADCASTS) {
      const a = randomArray(numel(sa), seed++, b.lo[0], b.hi[0]);
      const c = randomArray(numel(sb), seed++, b.lo[1], b.hi[1]);
      const y = b.op(tensor(a, sa), tensor(c, sb));
      const want = binaryRef(a, sa, c, sb, b.ref);
      t.deepEqual(y.shape, want.shape, `[${sa}] x [${sb}]`);
      assertClose(t, await y.data(), want.data, { ...b.tol, shape: want.shape, msg: `[${sa}] x [${sb}]` });
    }
  });

  test(`${b.name}: sizes ${SIZES.join(', ')} with transposed, strided and broadcast operands`, async (t) => {
    for (const n of SIZES) {
      const a = randomArray(n, n, b.lo[0], b.hi[0]);
      const c = randomArray(n, n + 1, b.lo[1], b.hi[1]);
      assertClose(t, await b.op(tensor(a), tensor(c)).data(), binaryRef(a, [n], c, [n], b.ref).data, { ...b.tol, msg: `n=${n}` });
    }
    const [R, C] = [63, 261];
    const a = randomArray(R * C, 1, b.lo[0], b.hi[0]);
    const c = randomArray(C * R, 2, b.lo[1], b.hi[1]);
    const at = tensor(a, [R, C]);
    const ct = tensor(c, [C, R]).transpose(); // a [R, C] view, column-major
    const y = b.op(at, ct);
    assertClose(t, await y.data(), binaryRef(a, [R, C], permuteRef(c, [C, R], [1, 0]).data, [R, C], b.ref).data, { ...b.tol, msg: 'a + bᵀ' });
    const ys = b.op(at.slice(0, 0, -1, 2), ct.slice(0, 1, undefined, 2));
    const wa = sliceRef(a, [R, C], 0, 0, -1, 2);
    const wc = sliceRef(permuteRef(c, [C, R], [1, 0]).data, [R, C], 0, 1, undefined, 2);
    assertClose(t, await ys.data(), binaryRef(wa.data, wa.shape, wc.data, wc.shape, b.ref).data, { ...b.tol, msg: 'step-2 row slices' });
    const row = randomArray(C, 3, b.lo[1], b.hi[1]);
    const yb = b.op(ct, tensor(row, [1, C]).broadcastTo([R, C]));
    assertClose(t, await yb.data(), binaryRef(permuteRef(c, [C, R], [1, 0]).data, [R, C], row, [1, C], b.ref).data, { ...b.tol, msg: 'bᵀ + broadcast row' });
  });
}

test('binary: a large (300k) broadcast over rows and columns splits across threads correctly', async (t) => {
  const [R, C] = [547, 549];
  const a = randomArray(R * C, 4);
  const row = randomArray(C, 5);
  const col = randomArray(R, 6);
  const y = P.add(P.mul(tensor(a, [R, C]), tensor(row, [C])), tensor(col, [R, 1]));
  const want = binaryRef(binaryRef(a, [R, C], row, [C], (x, w) => Math.fround(x * w)).data, [R, C], col, [R, 1], (x, w) => x + w);
  assertClose(t, await y.data(), want.data, { rtol: 2 * EPS32, atol: 4 * EPS32, shape: [R, C] });
  const yt = P.sub(tensor(a, [R, C]).transpose(), tensor(col, [1, R]));
  assertClose(t, await yt.data(), binaryRef(permuteRef(a, [R, C], [1, 0]).data, [C, R], col, [1, R], (x, w) => x - w).data, { rtol: EPS32, atol: 4 * EPS32, msg: 'transposed' });
});

test('binary: zero-size broadcasts give empty results of the broadcast shape', async (t) => {
  const cases: [Shape, Shape, Shape][] = [
    [[0, 3], [1, 3], [0, 3]],
    [[0], [], [0]],
    [[2, 0, 3], [3], [2, 0, 3]],
  ];
  for (const [sa, sb, want] of cases) {
    const y = P.add(P.zeros(sa), P.ones(sb));
    t.deepEqual(y.shape, want);
    t.is((await y.data()).length, 0);
  }
});

test('binary: a zero-size inner axis with a broadcast ([3,1] + [1,0], [3,0] * [3,1]) gives an empty [3,0] without crashing', (t) => {
  // Run in a child process: this once crashed the process (integer division by zero).
  for (const [sa, sb] of [
    [[3, 1], [1, 0]],
    [[3, 0], [3, 1]],
  ]) {
    const r = runIsolated(`
      const y = P.add(P.zeros(${JSON.stringify(sa)}), P.ones(${JSON.stringify(sb)}));
      const d = await y.data();
      console.log(JSON.stringify({ shape: y.shape, n: d.length }));
    `);
    t.is(r.status, 0, `[${sa}] + [${sb}]: exit ${r.status} signal ${r.signal} ${r.stderr.slice(0, 300)}`);
    t.deepEqual(r.json, { shape: [3, 0], n: 0 }, `[${sa}] + [${sb}]`);
  }
});

test('binary: shapes that do not broadcast are a RangeError naming both shapes', (t) => {
  const err = t.throws(() => P.add(P.zeros([2, 3]), P.zeros([4])), { instanceOf: RangeError });
  t.regex(err!.message, /cannot be broadcast/);
  t.regex(err!.message, /\[2, 3\]/);
  t.regex(err!.message, /\[4\]/);
  t.throws(() => P.mul(P.zeros([2, 3]), P.zeros([3, 2])), { instanceOf: RangeError });
});

test('binary: NaN and infinities: maximum/minimum let NaN win, division by zero gives inf or NaN', async (t) => {
  const a = tensor([NaN, 1, NaN, -Infinity, 1, -1, 0, 2]);
  const b = tensor([1, NaN, NaN, 5, 0, 0, 0, Infinity]);
  assertExact(t, await P.maximum(a, b).data(), [NaN, NaN, NaN, 5, 1, 0, 0, Infinity], 'maximum');
  assertExact(t, await P.minimum(a, b).data(), [NaN, NaN, NaN, -Infinity, 0, -1, 0, 2], 'minimum');
  assertExact(t, await P.div(a, b).data(), [NaN, NaN, NaN, -Infinity, Infinity, -Infinity, NaN, 0], 'div');
  assertExact(t, await P.pow(tensor([-2, -2, 0, 5, NaN]), tensor([3, 0.5, 0, 0, 0])).data(), [-8, NaN, 1, 1, 1], 'pow');
});

test('binary: float32 results are rounded once (1 + 2^-24 is 1, 2^24 + 1 is 2^24)', async (t) => {
  assertExact(t, await P.add(tensor([1, 16777216]), tensor([2 ** -24, 1])).data(), [1, 16777216]);
  assertExact(t, await P.mul(tensor([3.4e38]), tensor([10])).data(), [Infinity]);
});

test('binary: a non-float32 operand is a TypeError naming the argument', (t) => {
  const err = t.throws(() => P.add(P.zeros([2]), P.zeros([2], { dtype: 'int32' })), { instanceOf: TypeError });
  t.regex(err!.message, /'b'/);
  t.throws(() => P.mul(P.zeros([2], { dtype: 'uint8' }), P.zeros([2])), { instanceOf: TypeError });
  t.throws(() => P.add(1, 2), { instanceOf: TypeError });
  t.throws(() => P.add(P.zeros([1]), 'x' as never), { instanceOf: TypeError });
});

// ---- number operands ------------------------------------------------------------------

test('number operands: + - * / pow maximum minimum with a number on either side', async (t) => {
  const x = randomArray(261, 21, 0.5, 4);
  const xt = tensor(x);
  const cases: [string, Tensor, (v: number) => number, { rtol: number; atol: number }][] = [
    ['x + 2', P.add(xt, 2), (v) => v + 2, EXACT],
    ['2 + x', P.add(2, xt), (v) => 2 + v, EXACT],
    ['x - 3', P.sub(xt, 3), (v) => v - 3, { rtol: 0, atol: 8 * EPS32 }],
    ['3 - x', P.sub(3, xt), (v) => 3 - v, { rtol: 0, atol: 8 * EPS32 }],
    ['x * -1.5', P.mul(xt, -1.5), (v) => v * -1.5, EXACT],
    ['-1.5 * x', P.mul(-1.5, xt), (v) => -1.5 * v, EXACT],
    ['x / 3', P.div(xt, 3), (v) => v / 3, EXACT],
    ['3 / x', P.div(3, xt), (v) => 3 / v, EXACT],
    ['x ** 2', P.pow(xt, 2), (v) => v * v, TRANS],
    ['2 ** x', P.pow(2, xt), (v) => 2 ** v, TRANS],
    ['maximum(x, 2)', P.maximum(xt, 2), (v) => Math.max(v, 2), EXACT],
    ['minimum(2, x)', P.minimum(2, xt), (v) => Math.min(2, v), EXACT],
    ['x.add(1).mul(2).sub(1).div(4)', xt.add(1).mul(2).sub(1).div(4), (v) => ((v + 1) * 2 - 1) / 4, { rtol: 4 * EPS32, atol: 4 * EPS32 }],
  ];
  for (const [name, y, f, tol] of cases) {
    t.deepEqual(y.shape, [261], name);
    assertClose(t, await y.data(), mapRef(x, f), { ...tol, msg: name });
  }
});

test('number operands: x / b equals x / tensor(b) even where 1/b overflows float32 (tiny divisors)', async (t) => {
  // Dividing by a number may be fused into a multiply by 1/b, but only where 1/b is a
  // finite float32: 1e-10 / 1e-39 is 1e29, not inf.
  const x = tensor([1e-10, -3e-20, 0.5]);
  for (const b of [1e-39, -2e-42, 1e-45, 3, 1e38]) {
    const byNumber = await P.div(x, b).data();
    const byTensor = await P.div(x, tensor([b])).data();
    assertClose(t, byNumber, byTensor, { ...EXACT, msg: `x / ${b}` });
  }
});

test('number operands: comparisons and where accept numbers', async (t) => {
  const x = tensor([0, 1, 2, 3]);
  assertExact(t, await P.equal(x, 2).data(), [0, 0, 1, 0]);
  assertExact(t, await P.less(1, x).data(), [0, 0, 1, 1]);
  assertExact(t, await P.where(P.greater(x, 1), x, -1).data(), [-1, -1, 2, 3]);
  assertExact(t, await P.where(P.greater(x, 1), 10, 20).data(), [20, 20, 10, 10]);
});

test('number operands: a 16-bit tensor compares with the number rounded to its dtype, as torch does', async (t) => {
  // torch 1.13 (CPU): bf16 1 > 1.001 False, == True, < False, >= True; fp16 1 == 1.0001
  // True, 1 < 1.0001 False; fp16 2048 == 2048.9 True, 2048 < 2048.9 False.
  const b = tensor([1], [1], { dtype: 'bfloat16' });
  const h = tensor([1], [1], { dtype: 'float16' });
  const h2 = tensor([2048], [1], { dtype: 'float16' });
  const got = [P.greater(b, 1.001), P.equal(b, 1.001), P.less(b, 1.001), P.greaterEqual(b, 1.001), P.equal(h, 1.0001), P.less(h, 1.0001), P.equal(h2, 2048.9), P.less(h2, 2048.9)];
  const values = await Promise.all(got.map(async (y) => (await y.data())[0]));
  t.deepEqual(values, [0, 1, 0, 1, 1, 0, 1, 0]);
});

// ---- comparisons --------------------------------------------------------------------------

const COMPARE: [string, (a: Tensor, b: Tensor) => Tensor, (a: number, b: number) => boolean][] = [
  ['equal', P.equal, (a, b) => a === b],
  ['notEqual', P.notEqual, (a, b) => a !== b],
  ['less', P.less, (a, b) => a < b],
  ['lessEqual', P.lessEqual, (a, b) => a <= b],
  ['greater', P.greater, (a, b) => a > b],
  ['greaterEqual', P.greaterEqual, (a, b) => a >= b],
];

for (const [name, op, f] of COMPARE) {
  test(`${name}: gives uint8 0/1 under broadcasting, with ties and NaN (NaN compares unequal to all)`, async (t) => {
    for (const [sa, sb] of [[[261], [261]], [[63, 1], [1, 65]], [[], [7, 9]], [[547, 549], [549]]] as [Shape, Shape][]) {
      const a = Float32Array.from(randomInts(numel(sa), 1, -3, 4));
      const b = Float32Array.from(randomInts(numel(sb), 2, -3, 4));
      if (a.length > 2) a[1] = NaN;
      const y = op(tensor(a, sa), tensor(b, sb));
      t.is(y.dtype, 'uint8');
      const d = await y.data();
      t.true(d instanceof Uint8Array);
      const want = binaryRef(a, sa, b, sb, (x, w) => (f(x, w) ? 1 : 0));
      t.deepEqual(y.shape, want.shape);
      assertExact(t, d, want.data, `${name} [${sa}] x [${sb}]`);
    }
  });
}

// ---- where ------------------------------------------------------------------------------

test('where: picks a where cond is nonzero (any nonzero byte) and b elsewhere, broadcasting all three', async (t) => {
  const cond = tensor(new Uint8Array([0, 1, 2, 255]), [4, 1]);
  const a = randomArray(5, 1);
  const b = tensor(-7);
  const y = P.where(cond, tensor(a, [1, 5]), b);
  t.deepEqual(y.shape, [4, 5]);
  const want: number[] = [];
  for (let i = 0; i < 4; i++) for (let j = 0; j < 5; j++) want.push(i === 0 ? -7 : a[j]);
  assertExact(t, await y.data(), want);
});

test('where: the unselected branch never leaks (NaN and inf there do not matter)', async (t) => {
  const c = tensor(new Uint8Array([1, 0, 1, 0]));
  const a = tensor([1, NaN, 3, Infinity]);
  const b = tensor([NaN, 2, -Infinity, 4]);
  assertExact(t, await P.where(c, a, b).data(), [1, 2, 3, 4]);
});

test('where: non-contiguous cond, a and b and a 300k output', async (t) => {
  const [R, C] = [547, 549];
  const m = new Uint8Array(R * C);
  const mr = randomInts(R * C, 3, 0, 2);
  for (let i = 0; i < m.length; i++) m[i] = mr[i];
  const a = randomArray(R * C, 4);
  const b = randomArray(C, 5);
  const y = P.where(tensor(m, [C, R]).transpose(), tensor(a, [R, C]), tensor(b, [C]));
  const mt = permuteRef(m, [C, R], [1, 0]).data;
  const want = new Float64Array(R * C);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) want[i * C + j] = mt[i * C + j] ? a[i * C + j] : b[j];
  assertExact(t, await y.data(), want);
});

test('where: cond must be uint8 and a, b float32', (t) => {
  t.throws(() => P.where(P.zeros([2]), P.zeros([2]), P.zeros([2])), { instanceOf: TypeError, message: /uint8/ });
  t.throws(() => P.where(P.zeros([2], { dtype: 'uint8' }), P.zeros([2], { dtype: 'int32' }), P.zeros([2])), { instanceOf: TypeError });
  t.throws(() => P.where(P.zeros([3], { dtype: 'uint8' }), P.zeros([2]), P.zeros([2])), { instanceOf: RangeError });
});

// ---- scale ------------------------------------------------------------------------------

test('scale: alpha * x + beta in one pass; beta defaults to 0; the method form agrees', async (t) => {
  const x = randomArray(1000, 31, -100, 100);
  const xt = tensor(x);
  assertClose(t, await P.scale(xt, 0.25, 3).data(), mapRef(x, (v) => 0.25 * v + 3), { rtol: EPS32, atol: 4 * EPS32 });
  assertClose(t, await P.scale(xt, -2).data(), mapRef(x, (v) => -2 * v), { rtol: 0, atol: 0 });
  assertClose(t, await xt.scale(-2).data(), mapRef(x, (v) => -2 * v), { rtol: 0, atol: 0 });
  assertClose(t, await P.scale(xt.reshape([10, 100]).transpose(), 1, 1).data(), mapRef(permuteRef(x, [10, 100], [1, 0]).data, (v) => v + 1), { rtol: EPS32, atol: 4 * EPS32 });
});

test('gelu refuses a non-object options argument (a typo in the call shape), naming the argument', (t) => {
  const x = tensor(new Float32Array([1, -1]));
  for (const v of [null, 'tanh', 5, []]) t.throws(() => P.gelu(x, v as never), { instanceOf: TypeError, message: /^gelu: argument 'options' must be an object, got / }, String(v));
  x.dispose();
});

test('div and pow of a 16-bit tensor and a number use the number itself, rounding the result once', (t) => {
  const x = P.tensor([100, 7], undefined, { dtype: 'bfloat16' });
  // 100^2.3 = 39810.7 and 7^2.3 = 87.85 round to 39936 and 88 in bfloat16; with the
  // exponent rounded first (2.296875) they came out 39168 and 87.5.
  t.deepEqual(Array.from(P.pow(x, 2.3).dataSync()), [39936, 88]);
  // 3 / (1 / 0.3) is 0.9: 0.8984375 in bfloat16, as 3 * 0.3 gives; the divisor rounded first gave 0.90234375.
  const three = P.tensor([3], undefined, { dtype: 'bfloat16' });
  t.is(P.div(three, 1 / 0.3).dataSync()[0], P.mul(three, 0.3).dataSync()[0]);
  t.is(P.div(three, 1 / 0.3).dtype, 'bfloat16');
  // The number on the left too: 2.3 ** x and 1 / x.
  const h = P.tensor([0.5], undefined, { dtype: 'float16' });
  t.is(P.pow(2.3, h).dataSync()[0], P.tensor([Math.sqrt(2.3)], undefined, { dtype: 'float16' }).dataSync()[0]);
  t.is(P.div(1.1, h).dtype, 'float16');
  for (const v of [x, three, h]) v.dispose();
});

test('number operands: x * b keeps the sign of a zero product (-0 * 1, -3 * 0, 0 * -0 are -0), as a tensor product does', async (t) => {
  const x = tensor([-0, 0, -3, 2]);
  for (const b of [1, 0, -0, -1]) {
    const want = Array.from(await P.mul(x, tensor([b])).data());
    for (const y of [P.mul(x, b), P.mul(b, x)]) {
      const got = Array.from(await y.data());
      t.true(got.every((v, i) => Object.is(v, want[i])), `x * ${Object.is(b, -0) ? '-0' : b}: ${got.map((v) => (Object.is(v, -0) ? '-0' : v))}`);
    }
  }
});
