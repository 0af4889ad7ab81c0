// 16-bit floats (bfloat16, float16) through every op family, on the suite's
// device (PERCEIVER_TEST_DEVICE): CUDA computes in the 16-bit type with float32
// accumulation; the CPU converts to float32 around its kernels and rounds once at
// the end. So on the CPU a 16-bit result is exactly the float32 result of the same
// (already 16-bit) inputs rounded to the 16-bit type, and on CUDA it is within the
// type's tolerance of it. Mixed dtypes are a TypeError naming both arguments.
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { ON_CUDA, rtolFor } from './helpers/device.js';
import { layerNormRef, randomArray } from './helpers/reference.js';

type Half = 'bfloat16' | 'float16';

/** A 16-bit tensor of random values and its exact float32 widening. */
function pair(shape: number[], seed: number, dtype: Half, lo = -1, hi = 1): [Tensor, Tensor] {
  const h = P.tensor(randomArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape).cast(dtype);
  return [h, h.cast('float32')];
}

/** `got` (16-bit) against the float32 `want` rounded to the same type. */
async function same(t: import('ava').ExecutionContext, got: Tensor, want: Tensor, dtype: Half, what: string): Promise<void> {
  t.is(got.dtype, dtype, `${what}: dtype`);
  t.deepEqual([...got.shape], [...want.shape], `${what}: shape`);
  const g = await got.data();
  const w = await want.cast(dtype).data();
  if (!ON_CUDA) {
    t.deepEqual(Array.from(g), Array.from(w), `${what}: the float32 result rounded once`);
    return;
  }
  // Relative to |want| plus the result's RMS: CUDA rounds some intermediates to the
  // 16-bit type (a matmul's output before a separate GELU pass, attention weights
  // before the value product), which moves near-zero results by a fraction of the
  // result's scale, not of their own size.
  const rtol = rtolFor(dtype);
  const rms = Math.sqrt(Array.from(w).reduce((s, v) => s + v * v, 0) / Math.max(1, w.length));
  let worst = 0;
  for (let i = 0; i < w.length; i++) {
    const err = Math.abs(g[i] - w[i]) / (Math.abs(w[i]) + rms);
    if (err > worst) worst = err;
  }
  t.true(worst <= rtol, `${what}: worst relative error ${worst} > ${rtol}`);
}

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`${dtype}: matmul (batched, transposed, bias + gelu) is the float32 result rounded`, async (t) => {
    const [a, a32] = pair([3, 17, 40], 1, dtype);
    const [b, b32] = pair([40, 23], 2, dtype);
    const [bias, bias32] = pair([23], 3, dtype);
    await same(t, P.matmul(a, b, { bias, activation: 'gelu' }), P.matmul(a32, b32, { bias: bias32, activation: 'gelu' }), dtype, 'matmul');
    await same(t, P.matmul(a, a, { transB: true }), P.matmul(a32, a32, { transB: true }), dtype, 'a @ a^T');
  });

  test(`${dtype}: elementwise, broadcasting and scalars keep the dtype`, async (t) => {
    const [x, x32] = pair([4, 1, 6], 4, dtype);
    const [y, y32] = pair([5, 1], 5, dtype);
    await same(t, P.add(x, y), P.add(x32, y32), dtype, 'add (broadcast)');
    // One op at a time: each op rounds its own result.
    await same(t, x.mul(2.5), x32.mul(2.5), dtype, 'times a number');
    await same(t, x.add(1), x32.add(1), dtype, 'plus a number');
    await same(t, x.exp(), x32.exp(), dtype, 'exp');
    await same(t, P.where(P.greater(x, 0), x, y), P.where(P.greater(x32, 0), x32, y32), dtype, 'where');
    const cmp = P.greater(x, y);
    t.is(cmp.dtype, 'uint8', 'comparisons give uint8');
    t.deepEqual(Array.from(await cmp.data()), Array.from(await P.greater(x32, y32).data()));
  });

  test(`${dtype}: reductions, softmax, layer norm`, async (t) => {
    const [x, x32] = pair([6, 300], 6, dtype, -3, 3);
    await same(t, P.sum(x, 1), P.sum(x32, 1), dtype, 'sum');
    await same(t, P.max(x, 0), P.max(x32, 0), dtype, 'max');
    await same(t, P.softmax(x), P.softmax(x32), dtype, 'softmax');
    const [w, w32] = pair([300], 7, dtype);
    const [b, b32] = pair([300], 8, dtype);
    await same(t, P.layerNorm(x, w, b), P.layerNorm(x32, w32, b32), dtype, 'layer_norm');
    const am = P.argmax(x, 1);
    t.is(am.dtype, 'int32');
    t.deepEqual(Array.from(await am.data()), Array.from(await P.argmax(x32, 1).data()));
  });

  test(`${dtype}: attention, embedding, conv2d, max-pool and batch norm`, async (t) => {
    const [q, q32] = pair([2, 9, 2, 8], 9, dtype);
    const [k, k32] = pair([2, 13, 2, 8], 10, dtype);
    const [v, v32] = pair([2, 13, 2, 4], 11, dtype);
    await same(t, P.attention(q, k, v), P.attention(q32, k32, v32), dtype, 'attention');
    const [table, table32] = pair([10, 6], 12, dtype);
    const ids = P.tensor([3, 0, 9, 3], [4], { dtype: 'int32' });
    await same(t, P.embedding(table, ids), P.embedding(table32, ids), dtype, 'embedding');
    const [img, img32] = pair([1, 7, 7, 3], 13, dtype);
    const [w, w32] = pair([3, 3, 3, 5], 14, dtype);
    await same(t, P.conv2d(img, w, { stride: 2, padding: 'same' }), P.conv2d(img32, w32, { stride: 2, padding: 'same' }), dtype, 'conv2d');
    await same(t, P.maxPool2d(img, { kernel: 3, stride: 2 }), P.maxPool2d(img32, { kernel: 3, stride: 2 }), dtype, 'max_pool2d');
    const [mean, mean32] = pair([3], 15, dtype);
    const [vr, vr32] = pair([3], 16, dtype, 0.5, 2);
    await same(t, P.batchNorm(img, mean, vr), P.batchNorm(img32, mean32, vr32), dtype, 'batch_norm');
  });
}

for (const dtype of ['bfloat16', 'float16'] as const) {
  // The ImageNet encoders' cross-attention: one head 261 wide over a long key range,
  // keys and values one tensor (models/fast-attention.ts). On CUDA, over 8192 keys and 8
  // per query, PERCEIVER_CUDA_ATTENTION_LONG_KEYS=1 sends it to the products (at the
  // encoder's size the attention tuning may too), whose 522-byte rows go through one
  // padded copy for both.
  test(`${dtype}: attention of one 261-wide head over 8200 keys, keys and values one tensor`, async (t) => {
    const [q, q32] = pair([1, 16, 1, 261], 17, dtype);
    const [x, x32] = pair([1, 8200, 1, 261], 18, dtype);
    await same(t, P.attention(q, x, x, { scale: 1 / 16 }), P.attention(q32, x32, x32, { scale: 1 / 16 }), dtype, 'attention');
  });

  // Rows of 261, not whole 16-byte units: the image models' input concat (pixels beside
  // position features broadcast over the batch). Copies are exact on every device.
  test(`${dtype}: concat into rows of 261 from a source broadcast over the batch is exact`, async (t) => {
    const [a, a32] = pair([3, 50, 3], 19, dtype);
    const [pos, pos32] = pair([1, 50, 258], 20, dtype);
    const got = P.concat([a, P.broadcastTo(pos, [3, 50, 258])], 2);
    const want = P.concat([a32, P.broadcastTo(pos32, [3, 50, 258])], 2).cast(dtype);
    t.deepEqual([...got.shape], [3, 50, 261]);
    t.deepEqual(Array.from(await got.data()), Array.from(await want.data()));
  });
}

// The shapes of CUDA's 16-byte kernels (the default; rows of whole
// 16-byte packs, 16-byte aligned) and of their fallbacks (a row of 1000, and views that
// start one element in), against float64 references of the same rounded inputs.
test('residual and bias adds, and layer norm over rows of 128 to 2048, in every float dtype', async (t) => {
  const close = (got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, what: string) => {
    const rms = Math.sqrt(Array.from(want).reduce((s, v) => s + v * v, 0) / Math.max(1, want.length));
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + rms));
    t.true(worst <= rtol, `${what}: worst relative error ${worst} > ${rtol}`);
  };
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    // The 16-bit results are rounded once more than the float64 references.
    const rtol = dtype === 'float32' ? 1e-5 : 2 * rtolFor(dtype);
    for (const [rows, n, offset] of [[5, 1280, 0], [3, 256, 0], [9, 128, 0], [2, 2048, 0], [4, 1000, 0], [3, 256, 1]]) {
      const what = `${dtype} [${rows}, ${n}]${offset ? ' from an offset' : ''}`;
      const make = (len: number, seed: number, lo = -2, hi = 2) =>
        P.slice(P.tensor(randomArray(len + offset, seed, lo, hi), [len + offset]).cast(dtype), 0, offset);
      const x = make(rows * n, 21).reshape([rows, n]);
      const y = make(rows * n, 22).reshape([rows, n]);
      const bias = make(n, 23);
      const w = make(n, 24, 0.5, 1.5);
      const xs = await x.cast('float32').data(), ys = await y.cast('float32').data();
      const bs = await bias.cast('float32').data(), ws = await w.cast('float32').data();
      const sum = new Float64Array(rows * n), plusBias = new Float64Array(rows * n);
      for (let i = 0; i < rows * n; i++) {
        sum[i] = xs[i] + ys[i];
        plusBias[i] = xs[i] + bs[i % n];
      }
      close(await P.add(x, y).cast('float32').data(), sum, rtol, `${what}: x + y`);
      close(await P.add(x, bias).cast('float32').data(), plusBias, rtol, `${what}: x + bias`);
      close(await P.add(bias, x).cast('float32').data(), plusBias, rtol, `${what}: bias + x`);
      close(await P.layerNorm(x, w, bias).cast('float32').data(), layerNormRef(xs, n, ws, bs), rtol, `${what}: layer norm`);
      close(await P.layerNorm(x).cast('float32').data(), layerNormRef(xs, n), rtol, `${what}: layer norm without affine`);
    }
  }
});

test('mixing float32 and bfloat16 is a TypeError naming both arguments and dtypes', (t) => {
  const a = P.zeros([2, 2]);
  const b = P.zeros([2, 2]).cast('bfloat16');
  const err = t.throws(() => P.matmul(a, b), { instanceOf: TypeError });
  t.regex(err!.message, /^matmul: argument 'b' has dtype bfloat16 but 'a' has float32/);
  t.throws(() => P.add(a, b), { instanceOf: TypeError, message: /add: argument 'b' has dtype bfloat16/ });
  t.throws(() => P.exp(P.zeros([1]).cast('int32')), { instanceOf: TypeError, message: /exp: argument 'x' must have a floating dtype .*got int32/ });
});
