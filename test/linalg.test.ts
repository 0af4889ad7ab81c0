// Specification of matmul (transposes, batch broadcasting, strided operands, fused
// bias/activation/alpha, degenerate sizes), linear, and fused multi-head attention
// (heads, widths, long key ranges, masks, scale, strided q/k/v).
import test, { type ExecutionContext } from 'ava';
import * as P from '../lib/index.js';
import { tensor, type Tensor } from '../lib/index.js';
import { native } from '../lib/native.js';
import { DEVICE_NAME } from './helpers/device.js';
import {
  assertClose,
  assertExact,
  attentionRef,
  broadcastRef,
  dotTol,
  EPS32,
  matmulRef,
  maxAbs,
  permuteRef,
  randomArray,
  randomMask,
  sliceRef,
  type Activation,
  type Shape,
} from './helpers/reference.js';

const SIZES = [1, 7, 63, 65, 261];

/** Physical shape of an operand stored transposed or not. */
const phys = (rows: number, cols: number, trans: boolean): [number, number] => (trans ? [cols, rows] : [rows, cols]);

async function checkMatmul(
  t: ExecutionContext,
  a: Float32Array,
  aShape: Shape,
  b: Float32Array,
  bShape: Shape,
  opts: { transA?: boolean; transB?: boolean; bias?: Float32Array; activation?: Activation; alpha?: number } = {},
  msg = '',
  views?: { a?: Tensor; b?: Tensor },
): Promise<void> {
  const want = matmulRef(a, aShape, b, bShape, opts);
  const y = P.matmul(views?.a ?? tensor(a, aShape), views?.b ?? tensor(b, bShape), {
    transA: opts.transA,
    transB: opts.transB,
    bias: opts.bias ? tensor(opts.bias) : undefined,
    activation: opts.activation,
    alpha: opts.alpha,
  });
  t.deepEqual(y.shape, want.shape, msg);
  const k = opts.transA ? aShape[aShape.length - 2] : aShape[aShape.length - 1];
  assertClose(t, await y.data(), want.data, { ...dotTol(k, maxAbs(a) * Math.abs(opts.alpha ?? 1), maxAbs(b)), shape: want.shape, msg });
}

// ---- matmul: shapes and transposes ----------------------------------------------------------

for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]])
  test(`matmul: ${transA ? 'aᵀ' : 'a'} @ ${transB ? 'bᵀ' : 'b'} for M, K, N drawn from ${SIZES.join(', ')}`, async (t) => {
    const shapes: [number, number, number][] = [
      [1, 1, 1], [7, 7, 7], [63, 65, 7], [65, 63, 261], [261, 7, 65], [1, 261, 63], [261, 1, 1], [7, 261, 1], [65, 65, 65], [63, 261, 63],
    ];
    let seed = 1;
    for (const [m, k, n] of shapes) {
      const aShape = phys(m, k, transA);
      const bShape = phys(k, n, transB);
      const a = randomArray(m * k, seed++);
      const b = randomArray(k * n, seed++);
      await checkMatmul(t, a, aShape, b, bShape, { transA, transB }, `M=${m} K=${k} N=${n}`);
    }
  });

test('matmul: a 300x500 @ 500x200 product (multi-threaded, many cache blocks), plain and both transposed', async (t) => {
  const [m, k, n] = [300, 500, 200];
  const a = randomArray(m * k, 11);
  const b = randomArray(k * n, 12);
  await checkMatmul(t, a, [m, k], b, [k, n], {}, 'a @ b');
  await checkMatmul(t, a, [k, m], b, [n, k], { transA: true, transB: true }, 'aᵀ @ bᵀ');
});

// ---- matmul: batches ---------------------------------------------------------------------

test('matmul: [B,M,K] @ [K,N] broadcasts b over the batch', async (t) => {
  const a = randomArray(4 * 7 * 65, 1);
  const b = randomArray(65 * 9, 2);
  await checkMatmul(t, a, [4, 7, 65], b, [65, 9]);
});

test('matmul: [M,K] @ [B,K,N] broadcasts a over the batch', async (t) => {
  const a = randomArray(63 * 7, 3);
  const b = randomArray(3 * 7 * 65, 4);
  await checkMatmul(t, a, [63, 7], b, [3, 7, 65]);
  await checkMatmul(t, a, [7, 63], b, [3, 65, 7], { transA: true, transB: true }, 'transposed');
});

test('matmul: batch dims broadcast against each other ([2,1,M,K] @ [1,3,K,N] -> [2,3,M,N])', async (t) => {
  const a = randomArray(2 * 5 * 17, 5);
  const b = randomArray(3 * 17 * 6, 6);
  await checkMatmul(t, a, [2, 1, 5, 17], b, [1, 3, 17, 6]);
  await checkMatmul(t, a, [2, 1, 5, 17], b, [3, 17, 6], {}, 'b with fewer batch dims');
});

test('matmul: many small products (batch >= threads) equal the per-item products', async (t) => {
  const a = randomArray(16 * 33 * 17, 7);
  const b = randomArray(16 * 17 * 29, 8);
  await checkMatmul(t, a, [16, 33, 17], b, [16, 17, 29]);
  await checkMatmul(t, a, [16, 33, 17], b, [16, 29, 17], { transB: true }, 'transB');
  await checkMatmul(t, a, [16, 33, 17], b.subarray(0, 17 * 29), [1, 17, 29], {}, 'b batch of 1');
});

test('matmul: batch dims that do not broadcast are a RangeError', (t) => {
  t.throws(() => P.matmul(P.zeros([2, 3, 4]), P.zeros([3, 4, 5])), { instanceOf: RangeError, message: /batch/ });
});

// ---- matmul: strided operands --------------------------------------------------------------

test('matmul: a transposed view (column-major storage) as a plain operand', async (t) => {
  const [m, k, n] = [63, 65, 7];
  const aT = randomArray(k * m, 1); // stored [K, M]
  const b = randomArray(k * n, 2);
  const aView = tensor(aT, [k, m]).transpose(); // logical [M, K]
  t.false(aView.isContiguous);
  const aLogical = Float32Array.from(permuteRef(aT, [k, m], [1, 0]).data);
  await checkMatmul(t, aLogical, [m, k], b, [k, n], {}, 'a as a transposed view', { a: aView });
  const bT = randomArray(n * k, 3);
  const a = randomArray(m * k, 4);
  const bLogical = Float32Array.from(permuteRef(bT, [n, k], [1, 0]).data);
  await checkMatmul(t, a, [m, k], bLogical, [k, n], {}, 'b as a transposed view', { b: tensor(bT, [n, k]).transpose() });
  await checkMatmul(t, aLogical, [m, k], bLogical, [k, n], {}, 'both', { a: aView, b: tensor(bT, [n, k]).transpose() });
  // A transposed view with transA set is the original matrix again.
  const aTT = P.matmul(tensor(a, [m, k]).transpose(), tensor(b, [k, n]), { transA: true });
  assertClose(t, await aTT.data(), matmulRef(a, [m, k], b, [k, n]).data, { ...dotTol(k, 1, 1), msg: 'transA of a transposed view' });
});

test('matmul: row-strided and column-offset slices (leading dimension larger than the width)', async (t) => {
  const [m, k, n] = [33, 65, 17];
  const big = randomArray(2 * m * (k + 5), 5); // [2M, K+5]
  const b = randomArray(k * n, 6);
  const rows = sliceRef(big, [2 * m, k + 5], 0, 0, undefined, 2); // [M, K+5]
  const view = sliceRef(rows.data, rows.shape, 1, 3, 3 + k); // [M, K]
  const aView = tensor(big, [2 * m, k + 5]).slice(0, 0, undefined, 2).slice(1, 3, 3 + k);
  t.false(aView.isContiguous);
  await checkMatmul(t, Float32Array.from(view.data), [m, k], b, [k, n], {}, 'sliced a', { a: aView });
  // Column step 2: no unit stride along either axis, so the operand is copied first.
  const wide = randomArray(m * 2 * k, 7);
  const stepped = sliceRef(wide, [m, 2 * k], 1, 1, undefined, 2);
  await checkMatmul(t, Float32Array.from(stepped.data), [m, k], b, [k, n], {}, 'column step 2', {
    a: tensor(wide, [m, 2 * k]).slice(1, 1, undefined, 2),
  });
});

test('matmul: broadcast (zero batch stride) and permuted batch operands', async (t) => {
  const [B, m, k, n] = [3, 7, 65, 63];
  const b = randomArray(k * n, 1);
  const a = randomArray(B * m * k, 2);
  await checkMatmul(t, a, [B, m, k], b, [k, n], {}, 'b broadcast to [B,K,N]', { b: tensor(b, [1, k, n]).broadcastTo([B, k, n]) });
  // a stored [M, B, K] and viewed as [B, M, K]: rows B*K apart, batches K apart.
  const mbk = randomArray(m * B * k, 3);
  const bmk = permuteRef(mbk, [m, B, k], [1, 0, 2]);
  await checkMatmul(t, Float32Array.from(bmk.data), [B, m, k], b, [k, n], {}, 'permuted [M,B,K] -> [B,M,K]', {
    a: tensor(mbk, [m, B, k]).permute([1, 0, 2]),
  });
  // [H, B, M, K] from [B, H, M, K]: the two batch axes do not step as one, so a copy.
  const H = 2;
  const bhmk = randomArray(B * H * m * k, 4);
  const hbmk = permuteRef(bhmk, [B, H, m, k], [1, 0, 2, 3]);
  await checkMatmul(t, Float32Array.from(hbmk.data), [H, B, m, k], b, [k, n], {}, 'permuted batch axes', {
    a: tensor(bhmk, [B, H, m, k]).permute([1, 0, 2, 3]),
  });
});

// ---- matmul: epilogue ---------------------------------------------------------------------

for (const activation of ['none', 'relu', 'gelu', 'gelu_tanh'] as Activation[])
  test(`matmul: bias is added to every row, then the ${activation} activation (also with alpha and transposes)`, async (t) => {
    const [m, k, n] = [65, 63, 261];
    const a = randomArray(m * k, 1, -0.5, 0.5);
    const b = randomArray(k * n, 2, -0.5, 0.5);
    const bias = randomArray(n, 3, -1, 1);
    await checkMatmul(t, a, [m, k], b, [k, n], { bias, activation }, 'bias');
    await checkMatmul(t, a, [m, k], b, [k, n], { activation }, 'no bias');
    await checkMatmul(t, a, [k, m], b, [n, k], { bias, activation, alpha: -1.5, transA: true, transB: true }, 'alpha, transposed');
    await checkMatmul(t, a, [m, k], b, [k, n], { bias, activation, alpha: 0.25 }, 'alpha 0.25');
  });

test('matmul: alpha multiplies the product before the bias is added', async (t) => {
  const a = tensor([[1, 2]]);
  const b = tensor([[3], [4]]);
  assertExact(t, await P.matmul(a, b, { alpha: 2, bias: tensor([1]) }).data(), [23]);
  assertExact(t, await P.matmul(a, b, { alpha: -1, bias: tensor([1]), activation: 'relu' }).data(), [0]);
  assertExact(t, await P.matmul(a, b, { alpha: 0 }).data(), [0]);
});

test('matmul: an epilogue on a 300x500x200 product (bias, gelu, alpha) matches the reference', async (t) => {
  const [m, k, n] = [300, 500, 200];
  const a = randomArray(m * k, 21, -0.2, 0.2);
  const b = randomArray(k * n, 22, -0.2, 0.2);
  await checkMatmul(t, a, [m, k], b, [n, k], { transB: true, bias: randomArray(n, 23), activation: 'gelu', alpha: 0.5 });
});

test('matmul: the bias must have shape [N] and the activation must be known', (t) => {
  const a = P.zeros([2, 3]);
  const b = P.zeros([3, 4]);
  t.throws(() => P.matmul(a, b, { bias: P.zeros([3]) }), { instanceOf: RangeError, message: /bias/ });
  t.throws(() => P.matmul(a, b, { bias: P.zeros([1, 4]) }), { instanceOf: RangeError });
  t.throws(() => P.matmul(a, b, { activation: 'tanh' as never }), { instanceOf: TypeError });
});

test('matmul: option addend is added with the bias (alpha scales the product only)', async (t) => {
  const a = tensor([[1, 2]]);
  const b = tensor([[3], [4]]);
  assertExact(t, await P.matmul(a, b, { alpha: 2, bias: tensor([1]), addend: tensor([[10]]) }).data(), [33]);
  assertExact(t, await P.matmul(a, b, { addend: tensor([-11]) }).data(), [0]);
});

test('matmul: an addend of the result\'s shape or broadcast to it, on plain, transposed and batched products', async (t) => {
  const cases: { aShape: Shape; bShape: Shape; transA?: boolean; transB?: boolean; addShape: Shape; bias?: boolean }[] = [
    { aShape: [300, 500], bShape: [200, 500], transB: true, addShape: [300, 200], bias: true },
    { aShape: [3, 65, 63], bShape: [63, 261], addShape: [3, 65, 261] },
    { aShape: [3, 65, 63], bShape: [63, 261], addShape: [65, 261], bias: true },
    { aShape: [2, 63, 7], bShape: [2, 63, 65], transA: true, addShape: [2, 1, 65] },
    { aShape: [2, 1, 7, 9], bShape: [1, 3, 11, 9], transB: true, addShape: [11] },
  ];
  let seed = 70;
  for (const c of cases) {
    const a = randomArray(c.aShape.reduce((x, y) => x * y, 1), seed++, -0.5, 0.5);
    const b = randomArray(c.bShape.reduce((x, y) => x * y, 1), seed++, -0.5, 0.5);
    const want = matmulRef(a, c.aShape, b, c.bShape, { transA: c.transA, transB: c.transB });
    const n = want.shape[want.shape.length - 1];
    const bias = c.bias ? randomArray(n, seed++) : undefined;
    const add = randomArray(c.addShape.reduce((x, y) => x * y, 1), seed++);
    const addFull = broadcastRef(add, c.addShape, want.shape);
    const expected = want.data.map((v, i) => v + addFull[i] + (bias ? bias[i % n] : 0));
    const y = P.matmul(tensor(a, c.aShape), tensor(b, c.bShape), {
      transA: c.transA,
      transB: c.transB,
      bias: bias ? tensor(bias) : undefined,
      addend: tensor(add, c.addShape),
    });
    const msg = `[${c.aShape}] @ [${c.bShape}] + [${c.addShape}]`;
    t.deepEqual(y.shape, want.shape, msg);
    const k = c.transA ? c.aShape[c.aShape.length - 2] : c.aShape[c.aShape.length - 1];
    assertClose(t, await y.data(), expected, { ...dotTol(k, 0.5, 0.5), msg });
  }
});

test('matmul: a 16-bit product with an addend rounds once, like the float32 sum rounded', async (t) => {
  const [m, k, n] = [33, 70, 20];
  const a = randomArray(m * k, 80, -0.5, 0.5);
  const b = randomArray(k * n, 81, -0.5, 0.5);
  const add = randomArray(m * n, 82);
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const c = (x: Float32Array, shape: Shape) => P.tidy(() => P.keep(tensor(x, shape).cast(dtype)));
    const [ta, tb, tr] = [c(a, [m, k]), c(b, [k, n]), c(add, [m, n])];
    const got = await P.matmul(ta, tb, { addend: tr }).cast('float32').data();
    // The same operands (already rounded) summed in float32, then rounded once.
    const want = await P.tidy(() => P.matmul(ta.cast('float32'), tb.cast('float32'), { addend: tr.cast('float32') }).cast(dtype).cast('float32')).data();
    assertClose(t, got, want, { rtol: dtype === 'bfloat16' ? 8e-3 : 1e-3, atol: 1e-3, msg: dtype });
    for (const x of [ta, tb, tr]) x.dispose();
  }
});

// ---- matmul: degenerate sizes and errors ----------------------------------------------------

test('matmul: K = 0 gives act(bias) (zeros without a bias), as an empty sum', async (t) => {
  assertExact(t, await P.matmul(P.zeros([3, 0]), P.zeros([0, 4])).data(), new Array(12).fill(0));
  const y = P.matmul(P.zeros([2, 3, 0]), P.zeros([0, 4]), { bias: tensor([1, -2, 3, -4]), activation: 'relu', alpha: 5 });
  t.deepEqual(y.shape, [2, 3, 4]);
  assertExact(t, await y.data(), new Array(6).fill([1, 0, 3, 0]).flat());
  assertExact(t, await P.matmul(P.zeros([0, 3]), P.zeros([4, 0]), { transA: true, transB: true }).data(), new Array(12).fill(0), 'transposed');
});

test('matmul: K = 0 with an addend gives addend + bias', async (t) => {
  const y = P.matmul(P.zeros([2, 0]), P.zeros([0, 3]), { bias: tensor([1, 2, 3]), addend: tensor([[10, 20, 30], [40, 50, 60]]) });
  assertExact(t, await y.data(), [11, 22, 33, 41, 52, 63]);
});

test('matmul: M = 0, N = 0 or a zero batch give empty results of the right shape', async (t) => {
  for (const [as, bs, want] of [
    [[0, 5], [5, 4], [0, 4]],
    [[3, 5], [5, 0], [3, 0]],
    [[0, 3, 5], [5, 4], [0, 3, 4]],
  ] as [Shape, Shape, Shape][]) {
    const y = P.matmul(P.ones(as), P.ones(bs));
    t.deepEqual(y.shape, want);
    t.is((await y.data()).length, 0);
  }
});

test('matmul: mismatched K is a RangeError naming both shapes; 1-D or non-float32 operands are rejected', (t) => {
  const e = t.throws(() => P.matmul(P.zeros([2, 3]), P.zeros([4, 5])), { instanceOf: RangeError });
  t.regex(e!.message, /inner dimensions/);
  t.regex(e!.message, /\[2, 3\]/);
  t.regex(e!.message, /\[4, 5\]/);
  t.throws(() => P.matmul(P.zeros([2, 3]), P.zeros([2, 5]), { transA: false, transB: true }), { instanceOf: RangeError });
  t.notThrows(() => P.matmul(P.zeros([3, 2]), P.zeros([5, 3]), { transA: true, transB: true }));
  t.throws(() => P.matmul(P.zeros([3]), P.zeros([3, 2])), { instanceOf: RangeError });
  t.throws(() => P.matmul(P.zeros([2, 3], { dtype: 'int32' }), P.zeros([3, 2])), { instanceOf: TypeError });
  t.throws(() => P.matmul(P.zeros([2, 3]), P.zeros([3, 2]), { transA: 1 as never }), { instanceOf: TypeError });
});

test('matmul: an addend that does not broadcast to the result, of another dtype, with an activation or not a Tensor is rejected by name', (t) => {
  const [a, b] = [P.zeros([2, 3]), P.zeros([3, 4])];
  const e = t.throws(() => P.matmul(a, b, { addend: P.zeros([3, 4]) }), { instanceOf: RangeError });
  t.regex(e!.message, /'addend'.*\[2, 4\].*\[3, 4\]/);
  t.throws(() => P.matmul(a, b, { addend: P.zeros([2, 2, 4]) }), { instanceOf: RangeError, message: /addend/ });
  t.throws(() => P.matmul(a, b, { addend: P.zeros([2, 4], { dtype: 'bfloat16' }) }), { instanceOf: TypeError, message: /addend/ });
  t.throws(() => P.matmul(a, b, { addend: P.zeros([2, 4], { dtype: 'int32' }) }), { instanceOf: TypeError, message: /addend/ });
  t.throws(() => P.matmul(a, b, { addend: P.zeros([2, 4]), activation: 'relu' }), { instanceOf: TypeError, message: /addend.*activation/ });
  t.throws(() => P.matmul(a, b, { addend: [1, 2] as never }), { instanceOf: TypeError, message: /addend/ });
});

test("matmul: option dtype 'float32' returns 16-bit products unrounded; its gradient comes back in the operands' dtype; misuse is a TypeError", async (t) => {
  const a = P.randn([3, 37, 29], { seed: 11 }).cast('bfloat16');
  const b = P.randn([3, 41, 29], { seed: 12 }).cast('bfloat16');
  const got = P.matmul(a, b, { transB: true, alpha: 0.5, dtype: 'float32' });
  t.is(got.dtype, 'float32');
  t.deepEqual(got.shape, [3, 37, 41]);
  const want = P.matmul(a.cast('float32'), b.cast('float32'), { transB: true, alpha: 0.5 });
  const [g, w] = [await got.data(), await want.data()];
  const scale = Math.max(...Array.from(w, Math.abs));
  // Products of bfloat16 values are exact in float32; only the summation order may differ.
  t.true(Math.max(...Array.from(w, (x, i) => Math.abs(g[i] - x))) <= 1e-5 * scale);
  const rounded = P.matmul(a, b, { transB: true, alpha: 0.5 });
  t.is(rounded.dtype, 'bfloat16', 'the default is the operands\' dtype');
  const same = P.matmul(want, want, { transB: true, dtype: 'float32' });
  t.is(same.dtype, 'float32', 'float32 operands: nothing changes');

  const x = P.randn([4, 8], { seed: 13 }).cast('bfloat16');
  x.requiresGrad = true;
  const y = P.randn([8, 5], { seed: 14 }).cast('bfloat16');
  P.tidy(() => P.matmul(x, y, { dtype: 'float32' }).sum(1).sum(0).backward());
  t.is(x.grad!.dtype, 'bfloat16');
  const ref = P.matmul(P.ones([4, 5]), y.cast('float32'), { transB: true });
  const [gx, gr] = [await x.grad!.cast('float32').data(), await ref.data()];
  t.true(Math.max(...Array.from(gr, (v, i) => Math.abs(gx[i] - v))) <= 1e-2 * Math.max(...Array.from(gr, Math.abs)));

  const bias = P.zeros([41]).cast('bfloat16');
  t.throws(() => P.matmul(a, b, { transB: true, bias, dtype: 'float32' }), { instanceOf: TypeError, message: /matmul: option 'dtype' 'float32' with bfloat16 operands takes no bias, activation or addend/ });
  t.throws(() => P.matmul(a, b, { transB: true, activation: 'gelu', dtype: 'float32' }), { instanceOf: TypeError, message: /takes no bias, activation or addend/ });
  t.throws(() => P.matmul(a, b, { transB: true, dtype: 'float16' }), { instanceOf: TypeError, message: /option 'dtype' must be the operands' dtype \('bfloat16'\) or 'float32', got/ });
  for (const v of [a, b, got, want, rounded, same, x, y, ref, bias]) v.dispose();
});

test('linear: x @ weightᵀ + bias with a PyTorch-layout weight [out, in], with an activation', async (t) => {
  const [B, N, inF, outF] = [2, 7, 65, 33];
  const x = randomArray(B * N * inF, 1);
  const w = randomArray(outF * inF, 2);
  const bias = randomArray(outF, 3);
  const want = matmulRef(x, [B, N, inF], w, [outF, inF], { transB: true, bias });
  const y = P.linear(tensor(x, [B, N, inF]), tensor(w, [outF, inF]), tensor(bias));
  t.deepEqual(y.shape, [B, N, outF]);
  assertClose(t, await y.data(), want.data, dotTol(inF, 1, 1));
  const wantRelu = matmulRef(x, [B, N, inF], w, [outF, inF], { transB: true, activation: 'relu' });
  assertClose(t, await P.linear(tensor(x, [B, N, inF]), tensor(w, [outF, inF]), null, 'relu').data(), wantRelu.data, dotTol(inF, 1, 1));
});

// ---- attention ------------------------------------------------------------------------------

interface AttnCase {
  B: number;
  Nq: number;
  Nk: number;
  H: number;
  Dqk: number;
  Dv: number;
  seed?: number;
  scale?: number;
  mask?: { data: Uint8Array; shape: number[] } | null;
  /** How q, k, v are laid out: dense [B,N,H,D], permuted from [B,H,N,D], sliced from a packed [B,N,H,*], or with a non-unit innermost stride. */
  layout?: 'dense' | 'bhnd' | 'packed' | 'inner';
  range?: number;
}

/**
 * Tolerance: a logit is a float32 dot product of length Dqk (error ~ dotTol), and a
 * logit error δ moves the output by at most ~2δ·max|v|; exp, the running rescale and
 * the final 1/l cost a few ulps (4 * EPS32 relative); the weighted sum over Nk keys
 * adds ~EPS32·sqrt(Nk)/4 of max|v| (random-sign rounding of a convex combination).
 */
function attnTol(c: AttnCase, q: Float32Array, k: Float32Array, v: Float32Array) {
  const scale = c.scale ?? 1 / Math.sqrt(c.Dqk);
  const logitErr = dotTol(c.Dqk, maxAbs(q), maxAbs(k)).atol * scale;
  const mv = maxAbs(v);
  return { rtol: 4 * EPS32, atol: mv * (2 * logitErr + (EPS32 * Math.sqrt(c.Nk)) / 4 + 4 * EPS32) };
}

/** Tensor views holding dense [B,N,H,D] data x in the requested layout. */
function layoutTensor(x: Float32Array, B: number, N: number, H: number, D: number, layout: AttnCase['layout'], seed: number): Tensor {
  switch (layout ?? 'dense') {
    case 'dense':
      return tensor(x, [B, N, H, D]);
    case 'bhnd': {
      // stored [B, H, N, D], viewed as [B, N, H, D]
      const bhnd = Float32Array.from(permuteRef(x, [B, N, H, D], [0, 2, 1, 3]).data);
      return tensor(bhnd, [B, H, N, D]).permute([0, 2, 1, 3]);
    }
    case 'packed': {
      // one projection [B, N, H, 3D] holding junk | x | junk, sliced to the middle third
      const packed = randomArray(B * N * H * 3 * D, seed + 999);
      for (let i = 0; i < B * N * H; i++) for (let d = 0; d < D; d++) packed[i * 3 * D + D + d] = x[i * D + d];
      return tensor(packed, [B, N, H, 3 * D]).slice(3, D, 2 * D);
    }
    case 'inner': {
      // stored [B, N, D, H]: the head dimension D is not unit-stride in the view
      const bndh = Float32Array.from(permuteRef(x, [B, N, H, D], [0, 1, 3, 2]).data);
      return tensor(bndh, [B, N, D, H]).permute([0, 1, 3, 2]);
    }
  }
}

async function checkAttention(t: ExecutionContext, c: AttnCase, msg: string): Promise<Float32Array> {
  const seed = c.seed ?? 1;
  const r = c.range ?? 1;
  const q = randomArray(c.B * c.Nq * c.H * c.Dqk, seed, -r, r);
  const k = randomArray(c.B * c.Nk * c.H * c.Dqk, seed + 1, -r, r);
  const v = randomArray(c.B * c.Nk * c.H * c.Dv, seed + 2);
  const want = attentionRef(q, k, v, c, c.mask, c.scale);
  const qt = layoutTensor(q, c.B, c.Nq, c.H, c.Dqk, c.layout, seed);
  const kt = layoutTensor(k, c.B, c.Nk, c.H, c.Dqk, c.layout, seed + 1);
  const vt = layoutTensor(v, c.B, c.Nk, c.H, c.Dv, c.layout, seed + 2);
  if (c.layout && c.layout !== 'dense') t.false(qt.isContiguous, `${msg}: the ${c.layout} view is strided`);
  const y = P.attention(qt, kt, vt, { mask: c.mask ? tensor(c.mask.data, c.mask.shape) : undefined, scale: c.scale });
  const shape = [c.B, c.Nq, c.H, c.Dv];
  t.deepEqual(y.shape, shape, msg);
  const got = (await y.data()) as Float32Array;
  assertClose(t, got, want, { ...attnTol(c, q, k, v), shape, msg });
  return got;
}

/** Query rows (b, i) whose mask allows no key. */
function maskedRows(c: AttnCase): [number, number][] {
  const rows: [number, number][] = [];
  if (!c.mask) return rows;
  const want = attentionRef(new Float32Array(c.B * c.Nq * c.Dqk), new Float32Array(c.B * c.Nk * c.Dqk), new Float32Array(c.B * c.Nk).fill(1), { ...c, H: 1, Dv: 1 }, c.mask);
  for (let b = 0; b < c.B; b++) for (let i = 0; i < c.Nq; i++) if (want[b * c.Nq + i] === 0) rows.push([b, i]);
  return rows;
}

test('attention: heads 1..8 are independent softmax(q·kᵀ/sqrt(D))·v per head', async (t) => {
  for (let H = 1; H <= 8; H++) await checkAttention(t, { B: 2, Nq: 7, Nk: 65, H, Dqk: 16, Dv: 16, seed: H }, `H=${H}`);
});

test('attention: value width may differ from query/key width (Dqk != Dv), including widths 261 and 322', async (t) => {
  for (const [Dqk, Dv] of [[32, 48], [48, 8], [1, 5], [261, 261], [322, 322], [261, 322], [322, 261]])
    await checkAttention(t, { B: 1, Nq: 63, Nk: 65, H: 2, Dqk, Dv, seed: Dqk + Dv }, `Dqk=${Dqk} Dv=${Dv}`);
});

test(`attention: every Nq x Nk in {${SIZES.join(', ')}}² matches the reference`, async (t) => {
  for (const Nq of SIZES) for (const Nk of SIZES) await checkAttention(t, { B: 1, Nq, Nk, H: 2, Dqk: 32, Dv: 24, seed: Nq * 1000 + Nk }, `Nq=${Nq} Nk=${Nk}`);
});

test('attention: Nk = 5003 keys (many key blocks, split across threads) for 1 and 130 queries', async (t) => {
  await checkAttention(t, { B: 1, Nq: 1, Nk: 5003, H: 2, Dqk: 64, Dv: 64, seed: 1 }, 'Nq=1');
  await checkAttention(t, { B: 1, Nq: 130, Nk: 5003, H: 2, Dqk: 64, Dv: 32, seed: 2 }, 'Nq=130');
  await checkAttention(t, { B: 2, Nq: 3, Nk: 5003, H: 1, Dqk: 16, Dv: 16, seed: 3, range: 3 }, 'B=2, sharp logits');
});

test('attention: the default scale is 1/sqrt(Dqk); a custom scale replaces it', async (t) => {
  const c = { B: 1, Nq: 7, Nk: 63, H: 3, Dqk: 16, Dv: 8 };
  const dflt = await checkAttention(t, c, 'default');
  const same = await checkAttention(t, { ...c, scale: 0.25 }, 'scale 1/sqrt(16)');
  assertClose(t, same, dflt, { rtol: 0, atol: 0, msg: 'explicit 1/sqrt(D) equals the default' });
  await checkAttention(t, { ...c, scale: 0.05 }, 'scale 0.05');
  await checkAttention(t, { ...c, scale: 3 }, 'scale 3');
});

test('attention: large logits (|q|,|k| <= 4, D = 64, scale 1) stay finite and stable', async (t) => {
  const got = await checkAttention(t, { B: 1, Nq: 65, Nk: 261, H: 2, Dqk: 64, Dv: 16, scale: 1, range: 4 }, 'scale 1');
  t.true(got.every(Number.isFinite));
});

test('attention: a full [B,Nq,Nk] mask excludes keys; rows with no allowed key are exactly 0', async (t) => {
  const c: AttnCase = { B: 2, Nq: 63, Nk: 261, H: 3, Dqk: 16, Dv: 16 };
  const m = randomMask(c.B * c.Nq * c.Nk, 5, 0.3);
  for (const [b, i] of [[0, 2], [1, 0], [1, 62]]) m.fill(0, (b * c.Nq + i) * c.Nk, (b * c.Nq + i + 1) * c.Nk);
  c.mask = { data: m, shape: [c.B, c.Nq, c.Nk] };
  const got = await checkAttention(t, c, 'random mask');
  const rows = maskedRows(c);
  t.true(rows.length >= 3);
  for (const [b, i] of rows) {
    const o = (b * c.Nq + i) * c.H * c.Dv;
    assertExact(t, got.subarray(o, o + c.H * c.Dv), new Array(c.H * c.Dv).fill(0), `row ${b},${i}`, true);
  }
});

test('attention: key-only masks [B,1,Nk] and [Nk], and a query-only mask [B,Nq,1], broadcast', async (t) => {
  const c: AttnCase = { B: 2, Nq: 7, Nk: 65, H: 2, Dqk: 16, Dv: 8 };
  await checkAttention(t, { ...c, mask: { data: randomMask(2 * 65, 6, 0.5), shape: [2, 1, 65] } }, '[B,1,Nk]');
  await checkAttention(t, { ...c, mask: { data: randomMask(65, 7, 0.5), shape: [65] } }, '[Nk]');
  const qm = { data: Uint8Array.from([1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0]), shape: [2, 7, 1] };
  const got = await checkAttention(t, { ...c, mask: qm }, '[B,Nq,1]');
  for (let i = 0; i < 14; i++)
    if (!qm.data[i]) assertExact(t, got.subarray(i * 16, i * 16 + 16), new Array(16).fill(0), `query ${i} masked`, true);
  const ones = await checkAttention(t, { ...c, mask: { data: new Uint8Array(65).fill(1), shape: [1, 1, 65] } }, 'all ones');
  assertClose(t, ones, await checkAttention(t, c, 'no mask'), { rtol: 0, atol: 0, msg: 'an all-ones mask changes nothing' });
});

test('attention: a transposed (strided) mask, a mask broadcast over the batch, and latents q shared over the batch', async (t) => {
  const [B, Nq, Nk, H, D] = [2, 7, 300, 2, 8];
  const q = randomArray(B * Nq * H * D, 1);
  const k = randomArray(B * Nk * H * D, 2);
  const v = randomArray(B * Nk * H * D, 3);
  const dims = { B, Nq, Nk, H, Dqk: D, Dv: D };
  const tol = attnTol({ ...dims }, q, k, v);
  const kt = tensor(k, [B, Nk, H, D]);
  const vt = tensor(v, [B, Nk, H, D]);
  const stored = randomMask(B * Nk * Nq, 4, 0.5); // [B, Nk, Nq]
  const m = Uint8Array.from(permuteRef(stored, [B, Nk, Nq], [0, 2, 1]).data);
  const y = P.attention(tensor(q, [B, Nq, H, D]), kt, vt, { mask: tensor(stored, [B, Nk, Nq]).transpose() });
  assertClose(t, await y.data(), attentionRef(q, k, v, dims, { data: m, shape: [B, Nq, Nk] }), { ...tol, msg: 'transposed mask' });
  const m1 = randomMask(Nq * Nk, 5, 0.5);
  const y1 = P.attention(tensor(q, [B, Nq, H, D]), kt, vt, { mask: tensor(m1, [1, Nq, Nk]) });
  assertClose(t, await y1.data(), attentionRef(q, k, v, dims, { data: m1, shape: [1, Nq, Nk] }), { ...tol, msg: '[1,Nq,Nk] mask' });
  // Perceiver latents: one [1, N, H, D] array broadcast to every batch element.
  const lat = randomArray(Nq * H * D, 6);
  const latB = Float32Array.from(broadcastRef(lat, [1, Nq, H, D], [B, Nq, H, D]));
  const y2 = P.attention(tensor(lat, [1, Nq, H, D]).broadcastTo([B, Nq, H, D]), kt, vt);
  assertClose(t, await y2.data(), attentionRef(latB, k, v, dims), { ...tol, msg: 'broadcast q' });
});

test('attention: option dropout zeroes the weights whose rand() draw (with the seed) is not below 1 - p and scales the rest by 1 / (1 - p): inside the fused kernel where the backend can, composed elsewhere, the same mask both ways', async (t) => {
  const [B, Nq, Nk, H, Dqk, Dv] = [2, 40, 300, 3, 16, 12];
  const q = P.randn([B, Nq, H, Dqk], { seed: 41 });
  const k = P.randn([B, Nk, H, Dqk], { seed: 42 });
  const v = P.randn([B, Nk, H, Dv], { seed: 43 });
  const m = randomMask(B * Nq * Nk, 44, 0.7);
  m.fill(0, 3 * Nk, 4 * Nk); // batch 0, query 3: every key masked
  const mask = tensor(m, [B, Nq, Nk], { dtype: 'uint8' });
  const made: Tensor[] = [q, k, v, mask];
  const run = (o: { dropout?: number; seed?: number }) => {
    const y = P.attention(q, k, v, { mask, ...o });
    made.push(y);
    return y.data();
  };
  P.profiler.start();
  const fusedOut = run({ dropout: 0.3, seed: 5 });
  const ops = new Set(P.profiler.stop().rows.map((r) => r.op));
  const fused = await fusedOut;
  if (native.hasAttentionDropout(DEVICE_NAME)) t.true(ops.has('attention') && !ops.has('softmax'), `the fused kernel dropped the weights: ${[...ops].join(', ')}`);
  else t.log(`${DEVICE_NAME} composes attention with dropout: both runs compose`);
  // The switch is read as the op is issued: restored before any await, so that
  // concurrent tests never see it.
  process.env.PERCEIVER_ATTENTION_COMPOSE = '1';
  let composedOut: ReturnType<typeof run>;
  try {
    composedOut = run({ dropout: 0.3, seed: 5 });
  } finally {
    delete process.env.PERCEIVER_ATTENTION_COMPOSE;
  }
  const composed = await composedOut;
  assertClose(t, fused, composed, { rtol: 1e-5, atol: 1e-6, msg: 'fused vs composed dropout' });
  t.deepEqual(await run({ dropout: 0.3, seed: 5 }), fused, 'the same seed, the same output');
  const other = await run({ dropout: 0.3, seed: 6 });
  t.true(other.some((x, i) => x !== fused[i]), 'another seed drops other weights');
  const plain = await run({});
  t.deepEqual(await run({ dropout: 0 }), plain, 'dropout 0 is no dropout');
  t.true(fused.some((x, i) => x !== plain[i]));
  // Without a seed: one draw from the global sequence, the next seed after manualSeed.
  P.manualSeed(9);
  t.deepEqual(await run({ dropout: 0.3 }), await run({ dropout: 0.3, seed: 9 }));
  t.throws(() => P.attention(q, k, v, { dropout: 1 }), { instanceOf: RangeError, message: /attention: option 'dropout' must be in \[0, 1\), got 1/ });
  t.throws(() => P.attention(q, k, v, { dropout: -0.1 }), { instanceOf: RangeError, message: /option 'dropout'/ });
  t.throws(() => P.attention(q, k, v, { dropout: 0.5, seed: -1 }), { instanceOf: RangeError, message: /option 'seed' must be >= 0/ });
  made.forEach((x) => x.dispose());
});

for (const dtype of ['float32', 'bfloat16', 'float16'] as const)
for (const [Dqk, Dv] of [[24, 40], [40, 344], [128, 128], [32, 160], [261, 261]])
test(`attention: the composed form (GEMMs and a softmax, which CUDA takes for short key ranges in float32 and for 16-bit heads too wide for its tensor-core kernel) equals the backend's attention in ${dtype}, heads qk ${Dqk} / v ${Dv}`, async (t) => {
  // v 344: wider than CUDA's widest tensor-core tier, where its backend, as for float32,
  // takes products a chunk of keys at a time. 128 x 128, 32 x 160 and 261 x 261: the
  // widths of CUDA's fixed-width and warpgroup kernels (the latter on an H100 or H200,
  // at 261 by default, with unaligned rows; elsewhere with PERCEIVER_CUDA_ATTENTION_WGMMA=1).
  const [B, Nq, Nk, H] = [2, 37, 130, 3];
  const randn = (shape: number[], seed: number) => P.tidy(() => P.randn(shape, { seed }).cast(dtype));
  const q = randn([B, Nq, H, Dqk], 31);
  const k = randn([B, Nk, H, Dqk], 32);
  const v = randn([B, Nk, H, Dv], 33);
  const m = randomMask(B * Nq * Nk, 34, 0.4);
  m.fill(0, 5 * Nk, 6 * Nk); // batch 0, query 5: every key masked
  const mask = tensor(m, [B, Nq, Nk], { dtype: 'uint8' });
  const keyMask = tensor(randomMask(Nk, 35, 0.5), [1, 1, Nk], { dtype: 'uint8' });
  const qT = P.tidy(() => randn([B, H, Nq, Dqk], 36).transpose(1, 2)); // a strided q
  const run = () => [P.attention(q, k, v), P.attention(q, k, v, { mask }), P.attention(q, k, v, { mask: keyMask, scale: 0.3 }), P.attention(qT, k, v)];
  // The switch is read as each op is issued, so both sets are issued before any await.
  const prev = process.env.PERCEIVER_ATTENTION_COMPOSE;
  let fused: Tensor[], composed: Tensor[];
  try {
    process.env.PERCEIVER_ATTENTION_COMPOSE = '0';
    fused = run();
    process.env.PERCEIVER_ATTENTION_COMPOSE = '1';
    P.profiler.start();
    try {
      composed = run();
    } finally {
      const ops = new Set(P.profiler.stop().rows.map((r) => r.op));
      t.true(ops.has('softmax') && ops.has('matmul') && !ops.has('attention'), `the composed form ran: ${[...ops].join(', ')}`);
    }
  } finally {
    if (prev === undefined) delete process.env.PERCEIVER_ATTENTION_COMPOSE;
    else process.env.PERCEIVER_ATTENTION_COMPOSE = prev;
  }
  // 16 bits: both keep float32 logits and softmax; the weights are rounded to 16 bits
  // before P·V in both, but summed in another order.
  const tol = dtype === 'float32' ? { rtol: 1e-5, atol: 1e-5 } : dtype === 'bfloat16' ? { rtol: 1.6e-2, atol: 1e-2 } : { rtol: 2e-3, atol: 2e-3 };
  for (let i = 0; i < fused.length; i++) {
    t.deepEqual(composed[i].shape, fused[i].shape);
    t.is(composed[i].dtype, dtype);
    assertClose(t, await composed[i].cast('float32').data(), await fused[i].cast('float32').data(), { ...tol, msg: `case ${i}` });
  }
  const row = await composed[1].cast('float32').data();
  assertExact(t, row.subarray(5 * H * Dv, 6 * H * Dv), new Array(H * Dv).fill(0), 'the all-masked row is exactly 0', true);
  for (const x of [q, k, v, mask, keyMask, qT, ...fused!, ...composed!]) x.dispose();
});

test('attention: mask values other than 0 and 1 count as allowed', async (t) => {
  const c: AttnCase = { B: 1, Nq: 7, Nk: 63, H: 2, Dqk: 8, Dv: 8 };
  const m = randomMask(63, 9, 0.5);
  const big = m.map((v, i) => (v ? [1, 2, 255][i % 3] : 0));
  const a = await checkAttention(t, { ...c, mask: { data: m, shape: [1, 1, 63] } }, '0/1');
  const q = randomArray(7 * 2 * 8, 1);
  const k = randomArray(63 * 2 * 8, 2);
  const v = randomArray(63 * 2 * 8, 3);
  const y = P.attention(tensor(q, [1, 7, 2, 8]), tensor(k, [1, 63, 2, 8]), tensor(v, [1, 63, 2, 8]), { mask: tensor(big, [1, 1, 63]) });
  assertClose(t, await y.data(), a, { rtol: 0, atol: 0 });
});

test('attention: over 5003 keys, fully masked queries are exactly 0 and a single allowed key returns its value', async (t) => {
  const Nk = 5003;
  for (const Nq of [1, 130]) {
    const c: AttnCase = { B: 1, Nq, Nk, H: 2, Dqk: 32, Dv: 16, seed: Nq };
    const m = new Uint8Array(Nq * Nk);
    // query 0: no key allowed; then in turn: only the last key, only key 0, every other key.
    for (let i = 0; i < Nq; i++) {
      if (i === 0) continue;
      if (i % 3 === 1) m[i * Nk + Nk - 1] = 1;
      else if (i % 3 === 2) m[i * Nk] = 1;
      else for (let j = 0; j < Nk; j++) m[i * Nk + j] = (j * 7 + i) % 2;
    }
    c.mask = { data: m, shape: [1, Nq, Nk] };
    const got = await checkAttention(t, c, `Nq=${Nq}`);
    assertExact(t, got.subarray(0, c.H * c.Dv), new Array(c.H * c.Dv).fill(0), `Nq=${Nq}: fully masked query`, true);
    t.true(got.every(Number.isFinite), 'no NaN from merging all-masked key splits');
  }
  // Only one query, nothing allowed at all: every split is empty.
  const none = await checkAttention(t, { B: 1, Nq: 1, Nk, H: 4, Dqk: 16, Dv: 8, mask: { data: new Uint8Array(Nk), shape: [1, 1, Nk] } }, 'all masked');
  assertExact(t, none, new Array(32).fill(0), 'all masked', true);
});

test('attention: a NaN score makes its row NaN, as softmax would (not 0, as a fully masked row is): a NaN query row, a NaN key (every row of its head), over key splits, in 16 bits, in the gradient; a masked NaN key is ignored', async (t) => {
  const rowsNaN = (y: Float32Array, Nq: number, H: number, Dv: number) => {
    const out: boolean[][] = [];
    for (let i = 0; i < Nq; i++) {
      out.push([]);
      for (let h = 0; h < H; h++) {
        const r = y.subarray((i * H + h) * Dv, (i * H + h + 1) * Dv);
        t.true(r.every(Number.isNaN) || r.every(Number.isFinite), `row ${i} head ${h} is wholly NaN or wholly finite`);
        out[i].push(Number.isNaN(r[0]));
      }
    }
    return out;
  };
  for (const Nk of [9, 5003]) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const [Nq, H, D] = [3, 2, 8];
      const q = randomArray(Nq * H * D, 11), k = randomArray(Nk * H * D, 12), v = randomArray(Nk * H * D, 13);
      q[(1 * H + 0) * D + 3] = NaN; // query 1, head 0
      k[((Nk - 2) * H + 1) * D + 5] = NaN; // the next-to-last key, head 1
      const run = (mask?: Tensor) =>
        P.attention(tensor(q, [1, Nq, H, D]).cast(dtype), tensor(k, [1, Nk, H, D]).cast(dtype), tensor(v, [1, Nk, H, D]).cast(dtype), mask ? { mask } : {});
      const what = `Nk ${Nk}, ${dtype}`;
      const nan = rowsNaN((await run().cast('float32').data()) as Float32Array, Nq, H, D);
      t.deepEqual(nan, [[false, true], [true, true], [false, true]], `${what}: the NaN query's row and the NaN key's head`);
      const keep = new Uint8Array(Nk).fill(1);
      keep[Nk - 2] = 0;
      const masked = rowsNaN((await run(tensor(keep, [1, 1, Nk], { dtype: 'uint8' })).cast('float32').data()) as Float32Array, Nq, H, D);
      t.deepEqual(masked, [[false, false], [true, false], [false, false]], `${what}: the masked NaN key is ignored`);
    }
  }
  // Every score of a row NaN (the row's maximum skips them all): NaN, not the 0 of a
  // row with no key; and the gradient reaching q is NaN there too.
  const q = tensor([NaN, NaN, 1, 2], [1, 2, 1, 2]);
  q.requiresGrad = true;
  const y = P.attention(q, tensor([1, 0, 0, 1, 1, 1], [1, 3, 1, 2]), tensor([1, 2, 3, 4, 5, 6], [1, 3, 1, 2]));
  const got = await y.data();
  t.true(Number.isNaN(got[0]) && Number.isNaN(got[1]) && Number.isFinite(got[2]) && Number.isFinite(got[3]), `got ${Array.from(got)}`);
  P.tidy(() => P.backward(P.reshape(y, [4]).sum(0)));
  const g = await q.grad!.data();
  t.true(Number.isNaN(g[0]) && Number.isFinite(g[2]), `gradient ${Array.from(g)}`);
});

test('attention: Nk = 0 (no keys at all) gives zeros; Nq = 0 gives an empty result', async (t) => {
  const y = P.attention(P.ones([2, 3, 2, 4]), P.zeros([2, 0, 2, 4]), P.zeros([2, 0, 2, 5]));
  t.deepEqual(y.shape, [2, 3, 2, 5]);
  assertExact(t, await y.data(), new Array(60).fill(0));
  const e = P.attention(P.ones([1, 0, 2, 4]), P.ones([1, 3, 2, 4]), P.ones([1, 3, 2, 5]));
  t.deepEqual(e.shape, [1, 0, 2, 5]);
  t.is((await e.data()).length, 0);
});

for (const layout of ['bhnd', 'packed', 'inner'] as const)
  test(`attention: non-contiguous q, k, v (${layout === 'bhnd' ? 'permuted from [B,H,N,D]' : layout === 'packed' ? 'sliced out of one packed projection' : 'head dim not unit-stride'}) read correctly`, async (t) => {
    await checkAttention(t, { B: 2, Nq: 65, Nk: 63, H: 3, Dqk: 16, Dv: 16, layout }, 'small');
    await checkAttention(t, { B: 1, Nq: 7, Nk: 1000, H: 2, Dqk: 32, Dv: 32, layout, seed: 4 }, 'long keys');
    await checkAttention(
      t,
      { B: 1, Nq: 63, Nk: 65, H: 2, Dqk: 16, Dv: 16, layout, mask: { data: randomMask(63 * 65, 3, 0.5), shape: [1, 63, 65] } },
      'masked',
    );
  });

test('attention: mismatched shapes, a non-uint8 mask or an unbroadcastable mask are rejected with the argument named', (t) => {
  const q = P.zeros([1, 4, 2, 8]);
  const k = P.zeros([1, 5, 2, 8]);
  const v = P.zeros([1, 5, 2, 3]);
  t.notThrows(() => P.attention(q, k, v));
  t.throws(() => P.attention(P.zeros([4, 2, 8]), k, v), { instanceOf: RangeError, message: /'q'/ });
  t.throws(() => P.attention(q, P.zeros([1, 5, 3, 8]), v), { instanceOf: RangeError, message: /'k'/ });
  t.throws(() => P.attention(q, P.zeros([1, 5, 2, 7]), v), { instanceOf: RangeError, message: /'k'/ });
  t.throws(() => P.attention(q, k, P.zeros([1, 6, 2, 3])), { instanceOf: RangeError, message: /'v'/ });
  t.throws(() => P.attention(q, k, v, { mask: P.ones([1, 4, 5]) }), { instanceOf: TypeError, message: /mask/ });
  t.throws(() => P.attention(q, k, v, { mask: P.ones([1, 4, 6], { dtype: 'uint8' }) }), { instanceOf: RangeError, message: /mask/ });
  t.throws(() => P.attention(q, k, v, { mask: P.ones([1, 1, 4, 5], { dtype: 'uint8' }) }), { instanceOf: RangeError, message: /mask/ });
  for (const scale of [0, -1, Infinity]) t.throws(() => P.attention(q, k, v, { scale }), { instanceOf: RangeError }, `scale ${scale}`);
  t.throws(() => P.attention(q, k, v, { scale: NaN }), { instanceOf: TypeError });
});

test('linear and Linear take a single vector [in] to [out], as torch: the same values as its one-row batch, gradients too', (t) => {
  const lin = new P.Linear(3, 2);
  const v = P.tensor([0.5, -1, 2]);
  v.requiresGrad = true;
  const y = lin.forward(v);
  t.deepEqual(y.shape, [2]);
  const row = lin.forward(v.reshape([1, 3]));
  t.deepEqual(Array.from(y.dataSync()), Array.from(row.dataSync()));
  // With a residual of [out].
  const r = P.linear(v, lin.weight, lin.bias, 'none', P.tensor([10, 20]));
  // (The residual joins the product's one rounding: within an ulp of y + r.)
  const close = (got: ArrayLike<number>, want: number[]) => Array.from(got).forEach((g, i) => t.true(Math.abs(g - want[i]) <= 4e-6 * Math.abs(want[i]), `${g} vs ${want[i]}`));
  close(r.dataSync(), Array.from(y.dataSync()).map((a, i) => a + [10, 20][i]));
  y.sum(0).backward();
  close(v.grad!.dataSync(), Array.from(lin.weight.sum(0).dataSync()));
  for (const x of [lin, v, y, row, r]) x.dispose();
});
