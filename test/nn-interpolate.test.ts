// interpolate: torch.nn.functional.interpolate's nearest, bilinear and bicubic modes
// on [N, C, H, W], against torch's outputs (test/fixtures/interpolate, written by
// scripts/make-interpolate-fixtures.py with torch 1.13).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import { INTERPOLATION_CACHE_BYTES, interpolationCacheStats } from '../lib/nn/interpolate.js';
import type { InterpolateMode } from '../lib/index.js';
import { assertClose, randomArray } from './helpers/reference.js';
import { baseline, live } from './helpers/device.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/interpolate/cases.safetensors', import.meta.url));

interface Case {
  name: string;
  size: [number, number];
  mode: InterpolateMode;
  alignCorners: boolean;
  x: P.Tensor;
  y: P.Tensor;
}

async function cases(): Promise<Case[]> {
  const { tensors, metadata } = await P.readSafetensors(FIXTURE);
  return Object.keys(metadata)
    .filter((k) => k !== 'torch')
    .map((name) => {
      const m = JSON.parse(metadata[name]) as { size: [number, number]; mode: InterpolateMode; align_corners: boolean };
      return { name, size: m.size, mode: m.mode, alignCorners: m.align_corners, x: tensors[`${name}.x`], y: tensors[`${name}.y`] };
    });
}

test('interpolate matches torch in float32 for every mode, up and down, with and without alignCorners', async (t) => {
  const all = await cases();
  t.true(all.length >= 12);
  t.deepEqual([...new Set(all.map((c) => c.mode))].sort(), ['bicubic', 'bilinear', 'nearest']);
  for (const c of all) {
    const y = P.interpolate(c.x, c.size, { mode: c.mode, alignCorners: c.mode === 'nearest' ? undefined : c.alignCorners });
    t.deepEqual(y.shape, c.y.shape, c.name);
    assertClose(t, await y.data(), await c.y.data(), { rtol: 1e-5, atol: 1e-5, msg: c.name });
  }
});

test('interpolationWeights: rows of the linear modes sum to 1; bicubic taps past the edges land on the edge samples', (t) => {
  for (const mode of ['bilinear', 'bicubic'] as const)
    for (const [from, to] of [[4, 9], [9, 4], [1, 5], [5, 1], [6, 6]])
      for (const align of [false, true]) {
        const w = P.interpolationWeights(from, to, mode, align);
        for (let o = 0; o < to; o++) {
          let s = 0;
          for (let i = 0; i < from; i++) s += w[o * from + i];
          t.true(Math.abs(s - 1) < 1e-6, `${mode} ${from}->${to} align ${align} row ${o} sums to ${s}`);
        }
      }
  // Output 0 of 4 -> 8 samples at -0.25: taps at -2..1, the first three clamped onto 0.
  const w = P.interpolationWeights(4, 8, 'bicubic', false);
  t.true(w[0] > 1, `edge weight ${w[0]} collects the clamped taps`);
  t.true(Math.abs(w[1] + 0.10546875) < 1e-7, `the outer tap ${w[1]} is Keys' kernel at 1.25`);
  t.deepEqual([w[2], w[3]], [0, 0]);
  // Same size is the identity.
  t.deepEqual(Array.from(P.interpolationWeights(3, 3, 'bicubic', false)), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
});

// Serial: it counts live tensors, which the file's concurrent tests would move.
test.serial('interpolate: the gradient is the weights transposed applied to the incoming gradient', async (t) => {
  const before = (await baseline()).tensors;
  const [N, C, H, W, outH, outW] = [2, 3, 5, 4, 3, 7];
  const x = P.tensor(randomArray(N * C * H * W, 11), [N, C, H, W]);
  x.requiresGrad = true;
  const g = randomArray(N * C * outH * outW, 12);
  for (const mode of ['bilinear', 'bicubic', 'nearest'] as const) {
    const y = P.interpolate(x, [outH, outW], { mode });
    const gt = P.tensor(g, y.shape);
    const loss = P.tidy(() => y.mul(gt).sum(3).sum(2).sum(1).sum(0));
    loss.backward();
    const wh = P.interpolationWeights(H, outH, mode, false);
    const ww = P.interpolationWeights(W, outW, mode, false);
    const want = new Float64Array(N * C * H * W);
    for (let nc = 0; nc < N * C; nc++)
      for (let p = 0; p < outH; p++)
        for (let q = 0; q < outW; q++) {
          const gv = g[(nc * outH + p) * outW + q];
          for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) want[(nc * H + i) * W + j] += wh[p * H + i] * ww[q * W + j] * gv;
        }
    assertClose(t, await x.grad!.data(), want, { rtol: 1e-5, atol: 1e-5, msg: mode });
    x.grad!.dispose();
    x.grad = null;
    for (const u of [y, gt, loss]) u.dispose();
  }
  x.dispose();
  t.is(live().tensors, before, 'no tensor outlives the graph');
});

test('interpolate: 16-bit inputs are resampled in float32 and rounded once', async (t) => {
  const x = P.tensor(randomArray(2 * 6 * 6, 21, -2, 2), [1, 2, 6, 6]);
  const want = await P.interpolate(x, [9, 4], { mode: 'bicubic' }).data();
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const y = P.interpolate(P.cast(x, dtype), [9, 4], { mode: 'bicubic' });
    t.is(y.dtype, dtype);
    assertClose(t, await P.cast(y, 'float32').data(), want, { rtol: dtype === 'bfloat16' ? 1e-2 : 2e-3, atol: 2e-2, msg: dtype });
  }
});

test('interpolate: the same size returns the input; bad arguments are refused with what was expected', (t) => {
  const x = P.zeros([1, 2, 3, 4]);
  t.is(P.interpolate(x, [3, 4], { mode: 'bicubic' }), x);
  const bad: [() => unknown, RegExp][] = [
    [() => P.interpolate(P.zeros([2, 3, 4]), [2, 2]), /argument 'input' must be \[N, C, H, W\], got \[2, 3, 4\]/],
    [() => P.interpolate(P.zeros([1, 1, 2, 2], { dtype: 'int32' }), [3, 3]), /floating-point tensor, got int32/],
    [() => P.interpolate([1, 2] as never, [3, 3]), /argument 'input' must be a Tensor/],
    [() => P.interpolate(x, [0, 3]), /argument 'size' must be \[height, width\] of positive integers/],
    [() => P.interpolate(x, [2.5, 3]), /argument 'size'/],
    [() => P.interpolate(x, 3 as never), /argument 'size'/],
    [() => P.interpolate(x, [2, 2], { mode: 'area' as never }), /option 'mode' must be one of 'nearest', 'bilinear', 'bicubic', got 'area'/],
    [() => P.interpolate(x, [2, 2], { mode: 'bilinear', alignCorners: 1 as never }), /option 'alignCorners' must be a boolean/],
    [() => P.interpolate(x, [2, 2], { alignCorners: true }), /'alignCorners' only applies to 'bilinear' and 'bicubic'/],
    [() => P.interpolate(x, [2, 2], 'bicubic' as never), /argument 'options' must be an object/],
  ];
  for (const [f, re] of bad) t.throws(f, { message: re });
});

test('interpolationWeights refuses bad sizes, modes and flags instead of returning an empty or garbage matrix', (t) => {
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, typeof Error, RegExp][] = [
    ['mode bogus', () => P.interpolationWeights(4, 6, bad('bogus'), false), TypeError, /^interpolationWeights: argument 'mode' must be one of 'nearest', 'bilinear', 'bicubic', got 'bogus'/],
    ['inSize string', () => P.interpolationWeights(bad('x'), 6, 'bilinear', false), TypeError, /^interpolationWeights: argument 'inSize' must be a positive integer, got 'x'/],
    ['inSize -1', () => P.interpolationWeights(-1, 6, 'bilinear', false), RangeError, /^interpolationWeights: argument 'inSize' must be a positive integer, got number -1/],
    ['outSize NaN', () => P.interpolationWeights(4, NaN, 'bilinear', false), RangeError, /^interpolationWeights: argument 'outSize' must be a positive integer, got number NaN/],
    ['outSize Infinity', () => P.interpolationWeights(4, Infinity, 'nearest', false), RangeError, /^interpolationWeights: argument 'outSize' must be a positive integer, got number Infinity/],
    ['alignCorners string', () => P.interpolationWeights(4, 6, 'bilinear', bad('yes')), TypeError, /^interpolationWeights: argument 'alignCorners' must be a boolean, got 'yes'/],
  ];
  for (const [name, fn, instanceOf, message] of cases) t.throws(fn, { instanceOf, message }, name);
  t.is(P.interpolationWeights(4, 6, 'bilinear', false).length, 24);
});

test('the interpolation weights are cached within a byte budget, most recently used kept: many sizes do not grow it without bound', (t) => {
  const first = P.interpolationWeights(224, 1000, 'bicubic', false);
  t.is(P.interpolationWeights(224, 1000, 'bicubic', false), first, 'a repeated pair is a hit');
  // About 0.5 to 1 MB each: far past the budget in all.
  for (let out = 600; out < 700; out++) P.interpolationWeights(224, out, 'bilinear', false);
  const { entries, bytes } = interpolationCacheStats();
  t.true(bytes <= INTERPOLATION_CACHE_BYTES, `${bytes} bytes cached`);
  t.true(entries < 100, `${entries} entries`);
  t.not(P.interpolationWeights(224, 1000, 'bicubic', false), first, 'the least recently used was evicted (and is made again)');
  t.deepEqual(P.interpolationWeights(224, 1000, 'bicubic', false), first, 'with the same values');
});

test('sizes whose weight matrices would not fit JS memory are a RangeError naming the call, at once, not an allocation failure', (t) => {
  const x = P.zeros([1, 1, 4, 4]);
  const start = performance.now();
  t.throws(() => P.interpolate(x, [2 ** 31, 4]), {
    instanceOf: RangeError,
    message: /^interpolate: argument 'size' \[2147483648, 4\] is too large for input \[1, 1, 4, 4\]: resampling 4 pixels to 2147483648 takes a \[2147483648, 4\] weight matrix of 8589934592 elements, more than 268435456$/,
  });
  t.throws(() => P.interpolate(x, [4, 2 ** 40], { mode: 'bilinear' }), { instanceOf: RangeError, message: /^interpolate: argument 'size' \[4, 1099511627776\] is too large/ });
  t.throws(() => P.interpolationWeights(4, 2 ** 31, 'bilinear', false), {
    instanceOf: RangeError,
    message: /^interpolationWeights: arguments 'outSize' 2147483648 and 'inSize' 4 make a \[2147483648, 4\] matrix of 8589934592 elements, more than 268435456$/,
  });
  t.true(performance.now() - start < 1000);
  const gone = P.zeros([1, 1, 2, 2]);
  gone.dispose();
  t.throws(() => P.interpolate(gone, [4, 4]), { message: /^interpolate: argument 'input' is a disposed Tensor$/ });
  x.dispose();
});

test('interpolate nearest picks torch\'s source pixels, floor(o * scale) in float32: 224 -> 384 takes 62 at o = 108, not the exact 63', async (t) => {
  const x = P.tensor(Float32Array.from({ length: 224 }, (_, i) => i), [1, 1, 224, 1]);
  const y = Array.from(await P.interpolate(x, [384, 1]).data());
  // torch 1.13: F.interpolate(torch.arange(224.).reshape(1, 1, 224, 1), size=(384, 1)).
  const differ = new Map([[108, 62], [204, 118], [216, 125]]);
  t.deepEqual(y, Array.from({ length: 384 }, (_, o) => differ.get(o) ?? Math.floor((o * 224) / 384)));
  x.dispose();
});
