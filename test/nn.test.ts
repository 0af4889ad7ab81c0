// Specification of the nn ops: embedding (with its deferred out-of-range error),
// oneHot, conv2d (NHWC/HWIO, strides, TF 'same'/'valid'/explicit padding, bias),
// maxPool2d and inference batchNorm.
import test, { type ExecutionContext } from 'ava';
import * as P from '../lib/index.js';
import { tensor, type Tensor } from '../lib/index.js';
import {
  assertClose,
  assertExact,
  batchNormRef,
  conv2dRef,
  dotTol,
  embeddingRef,
  maxAbs,
  maxPool2dRef,
  mulberry32,
  numel,
  oneHotRef,
  permuteRef,
  randomArray,
  randomInts,
  type PaddingRef,
  type Shape,
} from './helpers/reference.js';
import { native } from '../lib/native.js';
import { ON_CUDA } from './helpers/device.js';

// ---- embedding ------------------------------------------------------------------------------

test('embedding: picks rows of weight [V, C] by int32 ids of any shape -> [..., C]', async (t) => {
  const [V, C] = [10, 7];
  const w = randomArray(V * C, 1);
  const ids = Int32Array.from([3, 0, 9, 9, 1, 5]);
  const y = P.embedding(tensor(w, [V, C]), tensor(ids, [2, 3]));
  t.deepEqual(y.shape, [2, 3, C]);
  assertExact(t, await y.data(), embeddingRef(w, C, ids));
  const s = P.embedding(tensor(w, [V, C]), tensor(Int32Array.from([4]), []));
  t.deepEqual(s.shape, [C], 'a scalar id gives one row');
  assertExact(t, await s.data(), w.subarray(4 * C, 5 * C));
});

test('embedding: 5000 ids into a [1000, 261] table (threaded gather), ids from a strided view', async (t) => {
  const [V, C] = [1000, 261];
  const w = randomArray(V * C, 2);
  const ids = randomInts(5000, 3, 0, V);
  assertExact(t, await P.embedding(tensor(w, [V, C]), tensor(ids, [50, 100])).data(), embeddingRef(w, C, ids));
  const tr = permuteRef(ids, [50, 100], [1, 0]).data;
  const y = P.embedding(tensor(w, [V, C]), tensor(ids, [50, 100]).transpose());
  t.deepEqual(y.shape, [100, 50, C]);
  assertExact(t, await y.data(), embeddingRef(w, C, tr), 'transposed ids');
});

test('embedding: an out-of-range id rejects data() with a message naming the index and its position', async (t) => {
  const w = tensor(randomArray(40, 4), [10, 4]);
  const y = P.embedding(w, tensor(Int32Array.from([1, 2, 10, 3])));
  t.deepEqual(y.shape, [4, 4], 'the op itself returns at once: ids are checked when it runs');
  const err = await t.throwsAsync(() => y.data());
  t.regex(err!.message, /embedding/);
  t.regex(err!.message, /index 10/);
  t.regex(err!.message, /position 2/);
  t.regex(err!.message, /\[0, 10\)/);
  const neg = await t.throwsAsync(() => P.embedding(w, tensor(Int32Array.from([-1]))).data());
  t.regex(neg!.message, /index -1/);
});

test('embedding: the failure propagates to ops that consume the output, and does not poison later work', async (t) => {
  const w = tensor(randomArray(40, 5), [10, 4]);
  const bad = P.embedding(w, tensor(Int32Array.from([0, 11])));
  const downstream = P.sum(P.exp(bad.add(1)), 1);
  const err = await t.throwsAsync(() => downstream.data());
  t.regex(err!.message, /index 11/);
  t.throws(() => bad.dataSync(), { message: /index 11/ });
  const good = P.embedding(w, tensor(Int32Array.from([9])));
  assertExact(t, await good.data(), (await w.data()).subarray(36, 40));
});

// Ids whose values passed through host memory have bounds the engine knows, and
// embedding and oneHot skip checking known-good ids on the GPU (a stream
// synchronisation per call). The bounds must never outlive the values: any write
// forgets them, and a bad id written later is still reported.
test('embedding: ids from host data carry known bounds until written; a bad id written later still rejects', async (t) => {
  const bounds = (x: Tensor) => {
    native.synchronize(); // bounds learnt by a queued copy exist once it has run
    return native.int32Bounds(x.handle);
  };
  const ids = tensor(Int32Array.from([3, 0, 9, 7, 2, 5]), [2, 3], { dtype: 'int32' });
  t.deepEqual(bounds(ids), [0, 9]);
  t.deepEqual(bounds(P.slice(ids, 1, 1, 2)), [0, 9], 'a view is bounded by its whole storage');
  t.deepEqual(bounds(ids.transpose().contiguous()), [0, 9], 'a copy of part keeps the bounds');
  t.deepEqual(bounds(tensor(Int32Array.from([-4]), [1], { dtype: 'int32' })), [-4, -4]);
  t.is(bounds(tensor(Int32Array.from([]), [0], { dtype: 'int32' })), null, 'no values, no bounds');
  t.is(bounds(tensor(Float32Array.from([1, 2]), [2])), null, 'only int32 values are tracked');
  t.is(bounds(P.arange(0, 6, 1, { dtype: 'int32' })), null, 'values computed by a kernel are not seen by the host');
  t.is(bounds(P.cast(tensor(Float32Array.from([1, 2]), [2]), 'int32')), null);
  const rowA = tensor(Int32Array.from([5, 2]), [1, 2], { dtype: 'int32' }), rowB = tensor(Int32Array.from([8, 3]), [1, 2], { dtype: 'int32' });
  t.deepEqual(bounds(P.concat([rowA, rowB], 0)), [2, 8], 'a batch of host-made rows: their union');
  t.deepEqual(bounds(P.concat([rowA, P.zeros([0, 2], { dtype: 'int32' }), rowB], 0)), [2, 8], 'empty pieces hold no values');
  t.is(bounds(P.concat([rowA, P.arange(0, 2, 1, { dtype: 'int32' }).reshape([1, 2])], 0)), null, 'one piece made on the device');
  if (ON_CUDA) {
    const made = P.arange(2, 8, 1, { dtype: 'int32' });
    t.deepEqual(bounds(made.to('cpu')), [2, 7], 'a copy to the host learns them');
    t.deepEqual(bounds(made.to('cpu').to(made.device)), [2, 7], 'and a copy from it');
  }

  const w = tensor(randomArray(40, 6), [10, 4]);
  assertExact(t, await P.embedding(w, ids).data(), embeddingRef(await w.data(), 4, await ids.data()));
  P.assign(P.slice(ids, 1, 1, 2), tensor(Int32Array.from([42, 1]), [2, 1], { dtype: 'int32' }));
  t.is(bounds(ids), null, 'a write forgets the bounds');
  const err = await t.throwsAsync(() => P.embedding(w, ids).data());
  t.regex(err!.message, /^embedding: index 42 at position 1 is out of range \[0, 10\)/);
  const oh = await t.throwsAsync(() => P.oneHot(ids, 10).data());
  t.regex(oh!.message, /^one_hot: index 42 at position 1 is out of range \[0, 10\)/);
  // Known bounds outside the table are checked like unknown ones.
  const known = tensor(Int32Array.from([1, 12]), [2], { dtype: 'int32' });
  t.deepEqual(bounds(known), [1, 12]);
  t.regex((await t.throwsAsync(() => P.embedding(w, known).data()))!.message, /index 12 at position 1/);
});

test('embedding: through random writes, copies, views and concatenations, known int32 bounds never exclude a value', async (t) => {
  // The bounds let the GPU skip its bad-id check, so one that lied would let a bad id
  // through unreported: whatever happens to a tensor, every value must lie inside them.
  const rand = mulberry32(77);
  const int = (n: number) => Math.floor(rand() * n);
  const host = (shape: number[]) =>
    tensor(Int32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => int(200) - 50), shape, { dtype: 'int32' });
  const pool: Tensor[] = [host([4, 6]), host([4, 6]), host([6, 4])];
  let known = 0;
  for (let step = 0; step < 120; step++) {
    const a = pool[int(pool.length)];
    const op = int(6);
    if (op === 0) pool.push(host([4, 6]));
    else if (op === 1 && a.shape[1] === 6) {
      const b = pool.find((x) => x !== a && x.shape[1] === 6);
      if (b) pool.push(P.concat([a, b], 0).slice(0, 0, 4));
    } else if (op === 2) pool.push(a.transpose().contiguous());
    else if (op === 3) pool.push(a.slice(0, 1, a.shape[0]));
    else if (op === 4) {
      // An in-place write of values outside everything seen so far, into part of a.
      const rows = a.slice(0, 0, 1);
      P.assign(rows, tensor(Int32Array.from({ length: rows.size }, () => 1000 + int(100)), rows.shape, { dtype: 'int32' }));
    } else pool.push(P.cast(P.add(P.cast(a, 'float32'), 1), 'int32'));
    native.synchronize();
    for (const x of pool) {
      const b = native.int32Bounds(x.handle);
      if (!b) continue;
      known++;
      const values = Array.from((await x.data()) as Int32Array);
      const [lo, hi] = [Math.min(...values), Math.max(...values)];
      if (lo < b[0] || hi > b[1]) t.fail(`step ${step}: values [${lo}, ${hi}] outside known bounds [${b[0]}, ${b[1]}]`);
    }
    while (pool.length > 12) pool.shift()!.dispose();
  }
  t.true(known > 100, `bounds were known ${known} times`);
});

test('embedding: ids must be int32 and the weight 2-D floating', (t) => {
  const w = P.zeros([10, 4]);
  t.throws(() => P.embedding(w, P.zeros([3])), { instanceOf: TypeError, message: /ids/ });
  t.throws(() => P.embedding(P.zeros([10]), P.zeros([3], { dtype: 'int32' })), { instanceOf: RangeError, message: /weight/ });
  t.throws(() => P.embedding(P.zeros([10, 4], { dtype: 'uint8' }), P.zeros([3], { dtype: 'int32' })), { instanceOf: TypeError });
});

// ---- oneHot ----------------------------------------------------------------------------------

test('oneHot: int32 ids [...] -> float32 [..., depth] with on/off values', async (t) => {
  const ids = Int32Array.from([0, 4, 2, 2, 1, 3]);
  const y = P.oneHot(tensor(ids, [2, 3]), 5);
  t.deepEqual(y.shape, [2, 3, 5]);
  t.is(y.dtype, 'float32');
  assertExact(t, await y.data(), oneHotRef(ids, 5));
  assertExact(t, await P.oneHot(tensor(ids, [6]), 5, { on: 0.9, off: 0.025 }).data(), oneHotRef(ids, 5, Math.fround(0.9), Math.fround(0.025)));
  const big = randomInts(3000, 6, 0, 261);
  assertExact(t, await P.oneHot(tensor(big), 261).data(), oneHotRef(big, 261), 'large');
});

test('oneHot: opts.dtype gives bfloat16 or float16 values, each on and off rounded once; other dtypes are a TypeError', async (t) => {
  const ids = Int32Array.from([0, 4, 2, 2, 1, 3]);
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const y = P.oneHot(tensor(ids, [2, 3]), 5, { dtype, on: 0.9, off: 0.025 });
    t.deepEqual(y.shape, [2, 3, 5]);
    t.is(y.dtype, dtype);
    const want = P.cast(P.oneHot(tensor(ids, [2, 3]), 5, { on: 0.9, off: 0.025 }), dtype);
    assertExact(t, await P.cast(y, 'float32').data(), await P.cast(want, 'float32').data(), dtype);
    // 0.9 is not exact in 16 bits: the value written is its rounding, not 0.9.
    t.not((await P.cast(y, 'float32').data())[0], Math.fround(0.9), dtype);
  }
  // Just above a 16-bit halfway point: the nearest float is the halfway point itself,
  // which a second rounding takes down (to 1) where the nearest 16-bit value is above.
  for (const [dtype, on, nearest] of [
    ['float16', 1 + 2 ** -11 + 2 ** -30, 1 + 2 ** -10],
    ['bfloat16', 1 + 2 ** -8 + 2 ** -30, 1 + 2 ** -7],
  ] as const) {
    const y = P.oneHot(tensor(Int32Array.from([1])), 2, { dtype, on, off: -on });
    t.deepEqual(Array.from(await P.cast(y, 'float32').data()), [-nearest, nearest], dtype);
    const fill = await P.cast(P.full([1], on, { dtype }), 'float32').data();
    t.is(fill[0], nearest, `${dtype}: full() rounds the same way`);
  }
  t.is(P.oneHot(tensor(ids), 5, { dtype: 'float32' }).dtype, 'float32');
  for (const dtype of ['int32', 'uint8', 'float64']) {
    const e = t.throws(() => P.oneHot(tensor(ids), 5, { dtype: dtype as 'float32' }), { instanceOf: TypeError });
    t.regex(e!.message, /one_hot: argument 'dtype'/, dtype);
  }
});

test('oneHot: an id outside [0, depth) rejects data() naming it; depth < 1 is a RangeError', async (t) => {
  const err = await t.throwsAsync(() => P.oneHot(tensor(Int32Array.from([0, 5])), 5).data());
  t.regex(err!.message, /index 5/);
  t.throws(() => P.oneHot(tensor(Int32Array.from([0])), 0), { instanceOf: RangeError });
  t.throws(() => P.oneHot(P.zeros([2]), 3), { instanceOf: TypeError });
});

// ---- conv2d --------------------------------------------------------------------------------

interface ConvCase {
  x: Shape; // [B, H, W, Cin]
  k: [number, number];
  cout: number;
  stride?: [number, number];
  padding?: PaddingRef;
  /** What to pass as the padding option when it differs from the reference form (a number). */
  paddingArg?: number;
  bias?: boolean;
  seed?: number;
  out?: Shape;
}

async function checkConv(t: ExecutionContext, c: ConvCase, msg: string, xView?: Tensor): Promise<Float32Array> {
  const seed = c.seed ?? 1;
  const cin = c.x[3];
  const wShape = [c.k[0], c.k[1], cin, c.cout];
  const x = randomArray(numel(c.x), seed);
  const w = randomArray(numel(wShape), seed + 1);
  const bias = c.bias ? randomArray(c.cout, seed + 2) : undefined;
  const want = conv2dRef(x, c.x, w, wShape, { bias, stride: c.stride, padding: c.padding });
  const y = P.conv2d(xView ?? tensor(x, c.x), tensor(w, wShape), {
    bias: bias ? tensor(bias) : undefined,
    stride: c.stride,
    padding: (c.paddingArg ?? c.padding) as never,
  });
  if (c.out) t.deepEqual(want.shape, c.out, `${msg}: reference shape`);
  t.deepEqual(y.shape, want.shape, msg);
  const got = (await y.data()) as Float32Array;
  assertClose(t, got, want.data, { ...dotTol(c.k[0] * c.k[1] * cin, maxAbs(x), maxAbs(w)), shape: want.shape, msg });
  return got;
}

test('conv2d: a 1x1 kernel is a per-pixel linear map (stride 1, valid or same), with bias', async (t) => {
  await checkConv(t, { x: [2, 5, 7, 16], k: [1, 1], cout: 8, bias: true, out: [2, 5, 7, 8] }, 'valid');
  await checkConv(t, { x: [1, 9, 9, 3], k: [1, 1], cout: 5, padding: 'same' }, 'same');
});

test('conv2d: a 1x1 kernel with stride 2 samples every other pixel', async (t) => {
  await checkConv(t, { x: [2, 8, 9, 4], k: [1, 1], cout: 6, stride: [2, 2], bias: true, out: [2, 4, 5, 6] }, 'valid');
  await checkConv(t, { x: [1, 8, 9, 4], k: [1, 1], cout: 6, stride: [2, 2], padding: 'same', out: [1, 4, 5, 6] }, 'same');
});

test('conv2d: 3x3 kernels, stride 1 and 2, valid and TF same (extra padding at the bottom/right)', async (t) => {
  for (const stride of [[1, 1], [2, 2], [1, 2]] as [number, number][])
    for (const padding of ['valid', 'same'] as const)
      for (const [H, W] of [[8, 8], [9, 7]])
        await checkConv(t, { x: [2, H, W, 3], k: [3, 3], cout: 5, stride, padding, bias: true, seed: H * W + stride[1] }, `${H}x${W} stride ${stride} ${padding}`);
  // TF SAME, stride 2 on an even size: total padding 1, all of it after.
  await checkConv(t, { x: [1, 8, 8, 2], k: [3, 3], cout: 2, stride: [2, 2], padding: 'same', out: [1, 4, 4, 2] }, 'same 8 -> 4');
});

test('conv2d: explicit padding, a single number for all sides or asymmetric [top, bottom, left, right]', async (t) => {
  await checkConv(t, { x: [1, 6, 6, 3], k: [3, 3], cout: 4, padding: [1, 1, 1, 1], paddingArg: 1, out: [1, 6, 6, 4] }, 'padding 1');
  await checkConv(t, { x: [2, 6, 7, 3], k: [3, 3], cout: 4, padding: [0, 2, 1, 0], stride: [2, 1] }, '[0, 2, 1, 0]');
  await checkConv(t, { x: [1, 5, 5, 2], k: [3, 3], cout: 3, padding: [2, 2, 2, 2], bias: true }, 'padding 2 (rows of pure padding give the bias)');
});

test('conv2d: a 7x7 stride-2 conv on 32x32 with symmetric padding 3 (HF) differs from TF same (2 before, 3 after)', async (t) => {
  const base: ConvCase = { x: [1, 32, 32, 3], k: [7, 7], cout: 16, stride: [2, 2], bias: true, seed: 7 };
  const hf = await checkConv(t, { ...base, padding: [3, 3, 3, 3], paddingArg: 3, out: [1, 16, 16, 16] }, 'padding 3');
  const tf = await checkConv(t, { ...base, padding: 'same', out: [1, 16, 16, 16] }, 'same');
  let diff = 0;
  for (let i = 0; i < hf.length; i++) diff = Math.max(diff, Math.abs(hf[i] - tf[i]));
  t.true(diff > 0.1, `the two paddings must differ (max difference ${diff})`);
  await checkConv(t, { ...base, padding: 'valid', out: [1, 13, 13, 16] }, 'valid');
});

test('conv2d: a 64x64x32 3x3 conv (patches gathered in several chunks) matches the reference', async (t) => {
  await checkConv(t, { x: [1, 64, 64, 32], k: [3, 3], cout: 8, padding: 'same', bias: true, seed: 9 }, 'same');
});

test('conv2d: a non-contiguous input (NCHW permuted to NHWC) is read in logical order', async (t) => {
  const [B, C, H, W] = [2, 3, 9, 8];
  const nchw = randomArray(B * C * H * W, 1);
  const nhwc = Float32Array.from(permuteRef(nchw, [B, C, H, W], [0, 2, 3, 1]).data);
  const view = tensor(nchw, [B, C, H, W]).permute([0, 2, 3, 1]);
  t.false(view.isContiguous);
  const wShape = [3, 3, C, 4];
  const w = randomArray(numel(wShape), 2);
  const want = conv2dRef(nhwc, [B, H, W, C], w, wShape, { padding: 'same' });
  const y = P.conv2d(view, tensor(w, wShape), { padding: 'same' });
  assertClose(t, await y.data(), want.data, dotTol(27, 1, 1));
});

test('conv2d: shape errors name the argument (channels, rank, kernel larger than input, bias, stride)', (t) => {
  const x = P.zeros([1, 5, 5, 3]);
  t.throws(() => P.conv2d(x, P.zeros([3, 3, 4, 2])), { instanceOf: RangeError, message: /weight/ });
  t.throws(() => P.conv2d(P.zeros([5, 5, 3]), P.zeros([3, 3, 3, 2])), { instanceOf: RangeError, message: /'x'/ });
  t.throws(() => P.conv2d(x, P.zeros([7, 7, 3, 2])), { instanceOf: RangeError, message: /larger/ });
  t.notThrows(() => P.conv2d(x, P.zeros([7, 7, 3, 2]), { padding: 'same' }));
  t.throws(() => P.conv2d(x, P.zeros([3, 3, 3, 2]), { bias: P.zeros([3]) }), { instanceOf: RangeError, message: /bias/ });
  t.throws(() => P.conv2d(x, P.zeros([3, 3, 3, 2]), { stride: 0 }), { instanceOf: RangeError });
  t.throws(() => P.conv2d(x, P.zeros([3, 3, 3, 2]), { padding: [1, 1, -1, 1] }), { instanceOf: RangeError });
  t.throws(() => P.conv2d(x, P.zeros([3, 3, 3, 2]), { padding: 'full' as never }), { instanceOf: TypeError });
});

// ---- maxPool2d -----------------------------------------------------------------------------

async function checkPool(t: ExecutionContext, xs: Shape, kernel: [number, number], stride: [number, number], padding: PaddingRef, msg: string, lo = -1, hi = 1) {
  const x = randomArray(numel(xs), xs[1] * 31 + xs[2], lo, hi);
  const want = maxPool2dRef(x, xs, kernel, stride, padding);
  const y = P.maxPool2d(tensor(x, xs), { kernel, stride, padding: padding as never });
  t.deepEqual(y.shape, want.shape, msg);
  assertExact(t, await y.data(), want.data, msg);
}

test('maxPool2d: 3x3 stride 2 with same and valid padding on odd and even sizes', async (t) => {
  for (const [H, W] of [[9, 9], [8, 8], [7, 10], [32, 32]])
    for (const padding of ['same', 'valid'] as const) await checkPool(t, [2, H, W, 5], [3, 3], [2, 2], padding, `${H}x${W} ${padding}`);
  const y = P.maxPool2d(P.zeros([1, 8, 8, 1]), { kernel: 3, stride: 2, padding: 'same' });
  t.deepEqual(y.shape, [1, 4, 4, 1], 'same: ceil(8 / 2)');
  t.deepEqual(P.maxPool2d(P.zeros([1, 8, 8, 1]), { kernel: 3, stride: 2 }).shape, [1, 3, 3, 1], 'valid by default: floor((8 - 3) / 2) + 1');
});

test('maxPool2d: padded positions never win, even when every input is negative', async (t) => {
  await checkPool(t, [1, 8, 8, 3], [3, 3], [2, 2], 'same', 'same, all negative', -5, -1);
  await checkPool(t, [1, 6, 6, 2], [3, 3], [1, 1], [1, 1, 1, 1], 'explicit 1, all negative', -5, -1);
  const corner = await P.maxPool2d(tensor([-3, -4, -5, -6], [1, 2, 2, 1]), { kernel: 3, stride: 1, padding: 'same' }).data();
  assertExact(t, corner, [-3, -3, -3, -3]);
});

test('maxPool2d: the stride defaults to the kernel and may differ per axis; NaN propagates', async (t) => {
  await checkPool(t, [1, 9, 12, 2], [3, 2], [3, 2], 'valid', 'kernel [3,2], stride [3,2]');
  const x = randomArray(6 * 6, 3);
  const d = await P.maxPool2d(tensor(x, [1, 6, 6, 1]), { kernel: 2 }).data();
  assertExact(t, d, maxPool2dRef(x, [1, 6, 6, 1], [2, 2], [2, 2]).data, 'stride = kernel');
  await checkPool(t, [2, 7, 9, 4], [2, 3], [1, 2], 'same', 'kernel [2,3] stride [1,2]');
  const n = await P.maxPool2d(tensor([1, NaN, 3, 4], [1, 2, 2, 1]), { kernel: 2 }).data();
  t.true(Number.isNaN(n[0]), 'NaN in the window gives NaN');
});

test('maxPool2d: a kernel far wider than the image visits only the taps on it (a window of 2^40 returns at once); an input with no pixels is refused', async (t) => {
  const k = 2 ** 40;
  const x = tensor([1, 5, 2, 4, 3, 0], [1, 2, 3, 1]);
  const t0 = performance.now();
  // Windows [-(k-1), 0] and [1, k] on each axis: pixel 0 alone, then the rest.
  const y = P.maxPool2d(x, { kernel: [k, k], stride: [k, k], padding: [k - 1, k - 1, k - 1, k - 1] });
  const d = await y.data();
  t.true(performance.now() - t0 < 5000, 'no loop over the empty taps');
  t.deepEqual(y.shape, [1, 2, 2, 1]);
  t.deepEqual(Array.from(d), [1, 5, 4, 3]);
  t.throws(() => P.maxPool2d(P.zeros([1, 0, 0, 2]), { kernel: 2, padding: [1, 1, 1, 1] }), { instanceOf: RangeError, message: /max_pool2d: argument 'x' has no pixels \(shape \[1, 0, 0, 2\]\)/ });
  for (const z of [x, y]) z.dispose();
});

test('maxPool2d: a non-contiguous input and invalid options', async (t) => {
  const x = randomArray(2 * 3 * 8 * 8, 4);
  const view = tensor(x, [2, 3, 8, 8]).permute([0, 2, 3, 1]);
  const ref = permuteRef(x, [2, 3, 8, 8], [0, 2, 3, 1]).data;
  assertExact(t, await P.maxPool2d(view, { kernel: 3, stride: 2, padding: 'same' }).data(), maxPool2dRef(ref, [2, 8, 8, 3], [3, 3], [2, 2], 'same').data);
  t.throws(() => P.maxPool2d(P.zeros([1, 4, 4, 1]), {} as never), { instanceOf: TypeError, message: /kernel/ });
  t.throws(() => P.maxPool2d(P.zeros([1, 4, 4, 1]), { kernel: 3, padding: [3, 0, 0, 0] }), { instanceOf: RangeError });
  t.throws(() => P.maxPool2d(P.zeros([1, 2, 2, 1]), { kernel: 3 }), { instanceOf: RangeError });
  t.throws(() => P.maxPool2d(P.zeros([4, 4, 1]), { kernel: 2 }), { instanceOf: RangeError });
});

// ---- batchNorm ------------------------------------------------------------------------------

test('batchNorm: (x - mean) / sqrt(var + eps) * weight + bias over the last (channel) axis', async (t) => {
  const [B, H, W, C] = [2, 5, 7, 13];
  const x = randomArray(B * H * W * C, 1, -3, 3);
  const mean = randomArray(C, 2, -1, 1);
  const variance = randomArray(C, 3, 0.1, 4);
  const w = randomArray(C, 4, 0.5, 2);
  const b = randomArray(C, 5, -1, 1);
  const xt = tensor(x, [B, H, W, C]);
  // A folded scale/shift: a few float32 roundings of values up to ~|x - mean| * |w| / std.
  const tol = { rtol: 1e-5, atol: 1e-5 };
  const y = P.batchNorm(xt, tensor(mean), tensor(variance), { weight: tensor(w), bias: tensor(b) });
  t.deepEqual(y.shape, [B, H, W, C]);
  assertClose(t, await y.data(), batchNormRef(x, C, mean, variance, w, b), { ...tol, msg: 'weight and bias' });
  assertClose(t, await P.batchNorm(xt, tensor(mean), tensor(variance)).data(), batchNormRef(x, C, mean, variance), { ...tol, msg: 'neither' });
  assertClose(t, await P.batchNorm(xt, tensor(mean), tensor(variance), { bias: tensor(b) }).data(), batchNormRef(x, C, mean, variance, null, b), { ...tol, msg: 'bias only' });
  assertClose(t, await P.batchNorm(xt, tensor(mean), tensor(variance), { weight: tensor(w) }).data(), batchNormRef(x, C, mean, variance, w), { ...tol, msg: 'weight only' });
});

test('batchNorm: eps matters for small variances; default 1e-5', async (t) => {
  const C = 4;
  const x = randomArray(8 * C, 6, -1, 1);
  const mean = new Float32Array(C);
  const variance = Float32Array.from([0, 1e-6, 1e-3, 1]);
  assertClose(t, await P.batchNorm(tensor(x, [8, C]), tensor(mean), tensor(variance)).data(), batchNormRef(x, C, mean, variance, null, null, 1e-5), { rtol: 1e-5, atol: 1e-5, msg: 'default eps' });
  assertClose(t, await P.batchNorm(tensor(x, [8, C]), tensor(mean), tensor(variance), { eps: 0.5 }).data(), batchNormRef(x, C, mean, variance, null, null, 0.5), { rtol: 1e-5, atol: 1e-6, msg: 'eps 0.5' });
});

test('batchNorm: 300k elements (threaded) and a non-contiguous input', async (t) => {
  const C = 64;
  const x = randomArray(5000 * C, 7, -2, 2);
  const mean = randomArray(C, 8);
  const variance = randomArray(C, 9, 0.5, 2);
  assertClose(t, await P.batchNorm(tensor(x, [5000, C]), tensor(mean), tensor(variance)).data(), batchNormRef(x, C, mean, variance), { rtol: 1e-5, atol: 1e-5 });
  const v = tensor(x.subarray(0, C * 30), [C, 30]).transpose(); // [30, C]
  const ref = permuteRef(x.subarray(0, C * 30), [C, 30], [1, 0]).data;
  assertClose(t, await P.batchNorm(v, tensor(mean), tensor(variance)).data(), batchNormRef(ref, C, mean, variance), { rtol: 1e-5, atol: 1e-5, msg: 'transposed' });
});

test('batchNorm: statistics of the wrong shape are a RangeError naming them; negative eps too', (t) => {
  const x = P.zeros([2, 4]);
  t.throws(() => P.batchNorm(x, P.zeros([3]), P.ones([4])), { instanceOf: RangeError, message: /mean/ });
  t.throws(() => P.batchNorm(x, P.zeros([4]), P.ones([4, 1])), { instanceOf: RangeError, message: /var/ });
  t.throws(() => P.batchNorm(x, P.zeros([4]), P.ones([4]), { weight: P.ones([5]) }), { instanceOf: RangeError, message: /weight/ });
  t.throws(() => P.batchNorm(x, P.zeros([4]), P.ones([4]), { eps: -1 }), { instanceOf: RangeError });
});
