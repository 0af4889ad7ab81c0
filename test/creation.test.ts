// Specification of tensor creation: tensor() from typed arrays, nested arrays and
// numbers; dtype conversion; full/zeros/ones/arange; randn/rand.
import test from 'ava';
import {
  tensor,
  zeros,
  ones,
  full,
  arange,
  randn,
  rand,
  manualSeed,
  backends,
  DTYPES,
  Tensor,
} from '../lib/index.js';
import { assertExact, toF16, toBF16, mulberry32, runIsolated } from './helpers/reference.js';
import { DEVICE_NAME } from './helpers/device.js';

// ---- tensor() from typed arrays ---------------------------------------------------------

test('tensor: a Float32Array becomes a 1-D float32 tensor on the default device with the same bits', async (t) => {
  const src = new Float32Array([1.5, -0, 3.4028234663852886e38, 1e-45, NaN, -Infinity]);
  const x = tensor(src);
  t.deepEqual(x.shape, [6]);
  t.is(x.dtype, 'float32');
  t.is(x.device, DEVICE_NAME);
  t.is(x.rank, 1);
  t.is(x.size, 6);
  t.true(x.isContiguous);
  const d = await x.data();
  t.true(d instanceof Float32Array);
  assertExact(t, d, src, 'values', true);
});

test('tensor: a typed array with a shape is read row-major; array() nests it', async (t) => {
  const x = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  t.deepEqual(x.shape, [2, 3]);
  t.deepEqual(await x.array(), [
    [1, 2, 3],
    [4, 5, 6],
  ]);
  t.deepEqual(Array.from(x.dataSync()), [1, 2, 3, 4, 5, 6]);
});

test('tensor: a typed-array view with a byteOffset contributes only its own window', async (t) => {
  const buf = new Float32Array([9, 9, 1, 2, 3, 9]);
  const x = tensor(buf.subarray(2, 5));
  assertExact(t, await x.data(), [1, 2, 3]);
  const bytes = new Uint8Array([7, 7, 7, 4, 5, 7]);
  const y = tensor(bytes.subarray(3, 5));
  t.is(y.dtype, 'uint8');
  assertExact(t, await y.data(), [4, 5]);
  const ints = new Int32Array([0, -5, 6, 0]);
  const z = tensor(new Int32Array(ints.buffer, 4, 2));
  t.is(z.dtype, 'int32');
  assertExact(t, await z.data(), [-5, 6]);
});

test('tensor: the data is copied at creation, so later writes to the source are not seen', async (t) => {
  const src = new Float32Array([1, 2, 3]);
  const x = tensor(src);
  src[0] = 100;
  assertExact(t, await x.data(), [1, 2, 3]);
});

test('tensor: Float64Array is rounded to float32', async (t) => {
  const src = new Float64Array([0.1, 1 / 3, 1e300, -1e-300]);
  const x = tensor(src);
  t.is(x.dtype, 'float32');
  assertExact(t, await x.data(), Array.from(src, Math.fround), '', true);
});

test('tensor: Int8/Int16/Uint16 arrays widen to int32; Uint8ClampedArray is uint8', async (t) => {
  for (const src of [new Int8Array([-128, 127]), new Int16Array([-32768, 32767]), new Uint16Array([0, 65535])]) {
    const x = tensor(src);
    t.is(x.dtype, 'int32', src.constructor.name);
    const d = await x.data();
    t.true(d instanceof Int32Array);
    assertExact(t, d, Array.from(src), src.constructor.name);
  }
  const c = tensor(new Uint8ClampedArray([0, 128, 255]));
  t.is(c.dtype, 'uint8');
  assertExact(t, await c.data(), [0, 128, 255]);
});

test('tensor: Uint32Array values above 2^31-1 are a RangeError naming the value and index', (t) => {
  const ok = tensor(new Uint32Array([0, 2147483647]));
  t.is(ok.dtype, 'int32');
  const err = t.throws(() => tensor(new Uint32Array([1, 2147483648])), { instanceOf: RangeError });
  t.regex(err!.message, /2147483648/);
  t.regex(err!.message, /at 1/);
});

test('tensor: BigInt64Array ids narrow to int32 exactly at both ends of the range', async (t) => {
  const src = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n, 12345678n]);
  const x = tensor(src, [5]);
  t.is(x.dtype, 'int32');
  assertExact(t, await x.data(), [0, -1, 2147483647, -2147483648, 12345678]);
  const u = tensor(new BigUint64Array([7n, 2147483647n]));
  t.is(u.dtype, 'int32');
  assertExact(t, await u.data(), [7, 2147483647]);
});

test('tensor: BigInt64Array values outside int32 are a RangeError naming the value and its index', (t) => {
  const hi = t.throws(() => tensor(new BigInt64Array([1n, 2n, 2147483648n])), { instanceOf: RangeError });
  t.regex(hi!.message, /value 2147483648 at 2/);
  t.regex(hi!.message, /int32/);
  const lo = t.throws(() => tensor(new BigInt64Array([-2147483649n])), { instanceOf: RangeError });
  t.regex(lo!.message, /-2147483649 at 0/);
  const big = t.throws(() => tensor(new BigUint64Array([18446744073709551615n])), { instanceOf: RangeError });
  t.regex(big!.message, /18446744073709551615/);
});

test('tensor: a DataView or a string is a TypeError', (t) => {
  t.throws(() => tensor(new DataView(new ArrayBuffer(8))), { instanceOf: TypeError });
  t.throws(() => tensor('1, 2' as unknown as number[]), { instanceOf: TypeError });
  t.throws(() => tensor({ length: 2 } as unknown as number[]), { instanceOf: TypeError });
});

test('tensor: a typed array on a SharedArrayBuffer is copied as it is at the call; later writes to the shared memory do not reach the tensor', async (t) => {
  const f = new Float32Array(new SharedArrayBuffer(16));
  f.set([1.5, -2, 3, 4]);
  const x = tensor(f);
  f[0] = 99;
  t.deepEqual(x.shape, [4]);
  t.deepEqual(Array.from(await x.data()), [1.5, -2, 3, 4]);
  // An offset view, integer and clamped bytes take the same path.
  const ints = new Int32Array(new SharedArrayBuffer(24), 8, 3);
  ints.set([7, -8, 9]);
  const y = tensor(ints, [3, 1]);
  t.is(y.dtype, 'int32');
  t.deepEqual(Array.from(await y.data()), [7, -8, 9]);
  const c = tensor(new Uint8ClampedArray(new SharedArrayBuffer(3)).fill(200));
  t.is(c.dtype, 'uint8');
  t.deepEqual(Array.from(await c.data()), [200, 200, 200]);
  for (const v of [x, y, c]) v.dispose();
});

// ---- tensor() from nested arrays and numbers --------------------------------------------

test('tensor: nested arrays infer their shape', async (t) => {
  const x = tensor([
    [[1, 2], [3, 4]],
    [[5, 6], [7, 8]],
    [[9, 10], [11, 12]],
  ]);
  t.deepEqual(x.shape, [3, 2, 2]);
  t.is(x.dtype, 'float32');
  assertExact(t, await x.data(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
});

test('tensor: a number is a rank-0 scalar with one element', async (t) => {
  const x = tensor(2.5);
  t.deepEqual(x.shape, []);
  t.is(x.rank, 0);
  t.is(x.size, 1);
  assertExact(t, await x.data(), [2.5]);
  t.is(await x.array(), 2.5);
});

test('tensor: an empty array is a [0] tensor with no elements', async (t) => {
  const x = tensor([]);
  t.deepEqual(x.shape, [0]);
  t.is(x.size, 0);
  t.is((await x.data()).length, 0);
});

test('tensor: nested arrays with a shape argument are reshaped', async (t) => {
  const x = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
  t.deepEqual(x.shape, [3, 2]);
  t.deepEqual(await x.array(), [[1, 2], [3, 4], [5, 6]]);
});

test('tensor: ragged nested arrays are a RangeError that says so', (t) => {
  const err = t.throws(() => tensor([[1, 2], [3]]), { instanceOf: RangeError });
  t.regex(err!.message, /ragged/);
  t.throws(() => tensor([[1, 2], 3] as unknown as number[][]), { instanceOf: RangeError });
});

test('tensor: a non-number element is a TypeError', (t) => {
  t.throws(() => tensor([1, 'a'] as unknown as number[]), { instanceOf: TypeError });
  t.throws(() => tensor([[1], [null]] as unknown as number[][]), { instanceOf: TypeError });
});

test('tensor: a shape whose element count differs from the data is a RangeError naming both', (t) => {
  const a = t.throws(() => tensor(new Float32Array(6), [4]), { instanceOf: RangeError });
  t.regex(a!.message, /\[4\]/);
  t.regex(a!.message, /6/);
  t.throws(() => tensor([1, 2, 3], [2, 2]), { instanceOf: RangeError });
  t.throws(() => tensor(new Float32Array(6), [2, -3]));
  t.throws(() => tensor(new Float32Array(6), [2, 3.5]), { instanceOf: TypeError });
});

test('tensor: integer dtypes from numbers keep integers and reject fractions', async (t) => {
  const x = tensor([[1, -2], [3, 4]], undefined, { dtype: 'int32' });
  t.is(x.dtype, 'int32');
  const d = await x.data();
  t.true(d instanceof Int32Array);
  assertExact(t, d, [1, -2, 3, 4]);
  const u = tensor([0, 200, 255], undefined, { dtype: 'uint8' });
  t.is(u.dtype, 'uint8');
  t.true((await u.data()) instanceof Uint8Array);
  assertExact(t, await u.data(), [0, 200, 255]);
  const err = t.throws(() => tensor([1, 2.5], undefined, { dtype: 'int32' }), { instanceOf: TypeError });
  t.regex(err!.message, /2\.5/);
});

test('tensor: numbers outside the range of an integer dtype are a RangeError naming the value and index, not wrapped', (t) => {
  // Like the BigInt64Array and Uint32Array paths: 300 must not silently become 44.
  const u = t.throws(() => tensor([1, 300], undefined, { dtype: 'uint8' }), { instanceOf: RangeError });
  t.regex(u?.message ?? '', /300/);
  t.regex(u?.message ?? '', /\b1\b/);
  t.throws(() => tensor([-1], undefined, { dtype: 'uint8' }), { instanceOf: RangeError });
  const i = t.throws(() => tensor([[0], [3e9]], undefined, { dtype: 'int32' }), { instanceOf: RangeError });
  t.regex(i?.message ?? '', /3000000000/);
  t.throws(() => tensor([-2147483649], undefined, { dtype: 'int32' }), { instanceOf: RangeError });
  t.notThrows(() => tensor([-2147483648, 2147483647], undefined, { dtype: 'int32' }));
  t.notThrows(() => tensor([0, 255], undefined, { dtype: 'uint8' }));
});

test('tensor: numbers convert to float16/bfloat16 with one rounding (no double rounding through float32)', async (t) => {
  // 1 + 2^-11 + 2^-30 is just above the float16 midpoint between 1 and 1 + 2^-10, so it
  // rounds up; rounding to float32 first lands exactly on the midpoint (ties to even: 1).
  const h = await tensor([1 + 2 ** -11 + 2 ** -30, -(1 + 2 ** -11 + 2 ** -30)], undefined, { dtype: 'float16' }).data();
  assertExact(t, h, [1 + 2 ** -10, -(1 + 2 ** -10)], 'float16');
  const b = await tensor([1 + 2 ** -8 + 2 ** -30], undefined, { dtype: 'bfloat16' }).data();
  assertExact(t, b, [1 + 2 ** -7], 'bfloat16');
});

test('tensor: an unknown dtype is a TypeError listing the valid ones', (t) => {
  const err = t.throws(() => tensor([1], undefined, { dtype: 'float64' as never }), { instanceOf: TypeError });
  for (const d of DTYPES) t.true(err!.message.includes(`'${d}'`), d);
});

test('tensor: float data with an integer dtype truncates toward zero and saturates; NaN becomes 0', async (t) => {
  const src = new Float32Array([1.7, -1.7, 3e9, -3e9, NaN, Infinity, -0.5, 2147483520]);
  assertExact(t, await tensor(src, undefined, { dtype: 'int32' }).data(), [1, -1, 2147483647, -2147483648, 0, 2147483647, 0, 2147483520]);
  assertExact(t, await tensor(src, undefined, { dtype: 'uint8' }).data(), [1, 0, 255, 0, 0, 255, 0, 255]);
});

// ---- 16-bit floats ------------------------------------------------------------------------

test('tensor: float16 holds representable values exactly and data() widens them to float32', async (t) => {
  const vals = [0, -0, 1, -2, 0.5, 65504, -65504, 2 ** -14, 2 ** -24, 3 * 2 ** -24, 1 + 2 ** -10, 1023.5, Infinity, -Infinity, NaN];
  const x = tensor(new Float32Array(vals), undefined, { dtype: 'float16' });
  t.is(x.dtype, 'float16');
  const d = await x.data();
  t.true(d instanceof Float32Array);
  assertExact(t, d, vals, '', true);
});

test('tensor: float16 rounds to nearest, ties to even, overflowing to inf', async (t) => {
  const cases: [number, number][] = [
    [1 + 2 ** -11, 1], // tie between 1 and 1+2^-10: even is 1
    [1 + 3 * 2 ** -11, 1 + 2 ** -9], // tie: even is 1+2^-9
    [1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10], // just above the tie
    [65519, 65504], // below the midpoint to 65536
    [65520, Infinity], // the midpoint rounds to even = inf
    [-70000, -Infinity],
    [2 ** -25, 0], // tie between 0 and the smallest subnormal: even is 0
    [-(2 ** -25), -0],
    [1.5 * 2 ** -25, 2 ** -24],
    [2 ** -25 + 2 ** -26 + 2 ** -30, 2 ** -24],
    [5 * 2 ** -25, 2 ** -23], // tie between 2 and 3 subnormal units: even is 2
    [1e-8, 0],
    [0.1, 0.0999755859375],
    [2 ** -14 - 2 ** -25, 2 ** -14], // largest subnormal rounds up to the smallest normal
  ];
  const x = tensor(new Float32Array(cases.map((c) => c[0])), undefined, { dtype: 'float16' });
  const d = await x.data();
  for (let i = 0; i < cases.length; i++)
    t.true(Object.is(d[i], cases[i][1]), `${cases[i][0]} -> ${d[i]}, expected ${cases[i][1]}`);
});

test('tensor: bfloat16 rounds to nearest, ties to even, with float32 range', async (t) => {
  const cases: [number, number][] = [
    [1 + 2 ** -8, 1], // tie: even is 1
    [1 + 3 * 2 ** -8, 1 + 2 ** -6],
    [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7],
    [65504, 65536],
    [2 ** 127 * (1 + 2 ** -8), 2 ** 127], // tie at a large exponent: even
    [2 ** 127 * (1 + 3 * 2 ** -8), 2 ** 127 * (1 + 2 ** -6)],
    [3.4028234663852886e38, Infinity], // FLT_MAX rounds past the largest bfloat16
    [-3.3895313892515355e38, -3.3895313892515355e38], // largest finite bfloat16 stays
    [3.3961775292304957e38, Infinity], // halfway past it: ties to even = inf
    [2 ** -130 * 1.00390625, 2 ** -130], // a float32 subnormal: 8 significant bits survive at most
  ];
  const x = tensor(new Float32Array(cases.map((c) => c[0])), undefined, { dtype: 'bfloat16' });
  t.is(x.dtype, 'bfloat16');
  const d = await x.data();
  for (let i = 0; i < cases.length; i++)
    t.true(Object.is(d[i], cases[i][1]), `${cases[i][0]} -> ${d[i]}, expected ${cases[i][1]}`);
});

test('tensor: float16 and bfloat16 conversions of 20k random floats across magnitudes match round-to-nearest-even', async (t) => {
  const r = mulberry32(11);
  const n = 20000;
  const src = new Float32Array(n);
  for (let i = 0; i < n; i++) src[i] = (r() < 0.5 ? -1 : 1) * (1 + r()) * 2 ** Math.floor(-30 + 48 * r());
  const h = await tensor(src, undefined, { dtype: 'float16' }).data();
  assertExact(t, h, Array.from(src, toF16), 'float16');
  const src2 = new Float32Array(n);
  for (let i = 0; i < n; i++) src2[i] = (r() < 0.5 ? -1 : 1) * (1 + r()) * 2 ** Math.floor(-140 + 268 * r());
  const b = await tensor(src2, undefined, { dtype: 'bfloat16' }).data();
  assertExact(t, b, Array.from(src2, toBF16), 'bfloat16');
});

// ---- full, zeros, ones ------------------------------------------------------------------

test('full/zeros/ones: shape and value for every dtype', async (t) => {
  for (const dtype of DTYPES) {
    const f = full([2, 3], 7, { dtype });
    t.deepEqual(f.shape, [2, 3]);
    t.is(f.dtype, dtype);
    assertExact(t, await f.data(), new Array(6).fill(7), `full ${dtype}`);
    assertExact(t, await zeros([4], { dtype }).data(), [0, 0, 0, 0], `zeros ${dtype}`);
    assertExact(t, await ones([1, 2, 1], { dtype }).data(), [1, 1], `ones ${dtype}`);
  }
});

test('full: default dtype is float32; the value is rounded to the dtype', async (t) => {
  const a = full([3], 0.1);
  t.is(a.dtype, 'float32');
  assertExact(t, await a.data(), [Math.fround(0.1), Math.fround(0.1), Math.fround(0.1)]);
  assertExact(t, await full([1], 0.1, { dtype: 'float16' }).data(), [toF16(0.1)]);
  assertExact(t, await full([1], 0.1, { dtype: 'bfloat16' }).data(), [toBF16(0.1)]);
  assertExact(t, await full([2], -Infinity).data(), [-Infinity, -Infinity]);
});

test('full: a rank-0 shape is a scalar and a zero-size shape has no elements', async (t) => {
  const s = full([], 3);
  t.deepEqual(s.shape, []);
  assertExact(t, await s.data(), [3]);
  const e = zeros([0, 3]);
  t.deepEqual(e.shape, [0, 3]);
  t.is((await e.data()).length, 0);
});

test('full: a large tensor (multi-threaded fill) holds the value everywhere', async (t) => {
  const d = await full([1000, 301], -1.25).data();
  t.is(d.length, 301000);
  t.true(d.every((v) => v === -1.25));
});

test('full/arange: a value an integer dtype cannot hold is a RangeError, not a wrapped or undefined conversion', async (t) => {
  t.throws(() => full([2], 300, { dtype: 'uint8' }), { instanceOf: RangeError }, 'uint8 300');
  t.throws(() => full([2], -1, { dtype: 'uint8' }), { instanceOf: RangeError }, 'uint8 -1');
  t.throws(() => full([2], 1e10, { dtype: 'int32' }), { instanceOf: RangeError }, 'int32 1e10');
  t.throws(() => full([2], Infinity, { dtype: 'int32' }), { instanceOf: RangeError }, 'int32 inf');
  t.throws(() => arange(-2, 2, 1, { dtype: 'uint8' }), { instanceOf: RangeError }, 'arange uint8 from -2');
  assertExact(t, await full([2], 255, { dtype: 'uint8' }).data(), [255, 255]);
  assertExact(t, await full([1], -2147483648, { dtype: 'int32' }).data(), [-2147483648]);
});

test('full: a negative dimension is a RangeError; a fractional one or a non-number value a TypeError', (t) => {
  t.throws(() => zeros([2, -1]), { instanceOf: RangeError });
  t.throws(() => zeros([1.5]), { instanceOf: TypeError });
  t.throws(() => full([2], '1' as never), { instanceOf: TypeError });
});

test('full: NaN and infinities are legitimate float fill values', async (t) => {
  assertExact(t, await full([2], NaN).data(), [NaN, NaN]);
  assertExact(t, await full([1], Infinity, { dtype: 'float16' }).data(), [Infinity]);
  assertExact(t, await full([1], -Infinity, { dtype: 'bfloat16' }).data(), [-Infinity]);
});

// ---- arange -------------------------------------------------------------------------------

test('arange: arange(n) is 0..n-1 in float32', async (t) => {
  const x = arange(5);
  t.deepEqual(x.shape, [5]);
  t.is(x.dtype, 'float32');
  assertExact(t, await x.data(), [0, 1, 2, 3, 4]);
});

test('arange: start, stop and fractional step give ceil((stop-start)/step) values start + i*step', async (t) => {
  assertExact(t, await arange(2, 5).data(), [2, 3, 4]);
  const x = arange(0, 1, 0.1);
  t.deepEqual(x.shape, [10]);
  assertExact(t, await x.data(), Array.from({ length: 10 }, (_, i) => Math.fround(i * 0.1)));
  assertExact(t, await arange(1, 2, 0.3).data(), [1, 1.3, 1.6, 1.9].map(Math.fround));
});

test('arange: a negative step counts down and an empty range has no elements', async (t) => {
  assertExact(t, await arange(5, 0, -1).data(), [5, 4, 3, 2, 1]);
  assertExact(t, await arange(0, -1, -0.25).data(), [0, -0.25, -0.5, -0.75]);
  t.deepEqual(arange(3, 3).shape, [0]);
  t.deepEqual(arange(5, 0).shape, [0]);
});

test('arange: an int32 dtype gives an Int32Array', async (t) => {
  const x = arange(0, 10, 3, { dtype: 'int32' });
  t.is(x.dtype, 'int32');
  const d = await x.data();
  t.true(d instanceof Int32Array);
  assertExact(t, d, [0, 3, 6, 9]);
});

test('arange: step 0 is a RangeError', (t) => {
  t.throws(() => arange(0, 1, 0), { instanceOf: RangeError });
});

// ---- random -----------------------------------------------------------------------------

test('randn: the same seed gives the same values; different seeds differ', async (t) => {
  const a = await randn([1000], { seed: 42 }).data();
  const b = await randn([1000], { seed: 42 }).data();
  const c = await randn([1000], { seed: 43 }).data();
  assertExact(t, a, b);
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === c[i]) same++;
  t.true(same < 5, `${same} equal values across seeds`);
});

test('randn: element i depends only on (seed, i), so a short draw is a prefix of a long, multi-threaded one', async (t) => {
  const long = await randn([300001], { seed: 7 }).data();
  const short = await randn([7], { seed: 7 }).data();
  assertExact(t, short, long.subarray(0, 7));
  const shaped = await randn([3, 5], { seed: 7 }).data();
  assertExact(t, shaped, long.subarray(0, 15));
});

test('randn: 200k samples have mean 0 and standard deviation 1 (within 5 standard errors)', async (t) => {
  const n = 200000;
  const d = await randn([n], { seed: 123 }).data();
  let s = 0;
  let s2 = 0;
  let s4 = 0;
  for (const v of d) {
    s += v;
    s2 += v * v;
    s4 += v ** 4;
  }
  const mean = s / n;
  const variance = s2 / n - mean * mean;
  t.true(Math.abs(mean) < 5 / Math.sqrt(n), `mean ${mean}`);
  t.true(Math.abs(variance - 1) < 5 * Math.sqrt(2 / n), `variance ${variance}`);
  t.true(Math.abs(s4 / n - 3) < 5 * Math.sqrt(96 / n), `fourth moment ${s4 / n} (normal: 3)`);
  t.true(d.every(Number.isFinite));
});

test('randn: mean and std options shift and scale the standard draw', async (t) => {
  const z = await randn([1001], { seed: 5 }).data();
  const y = await randn([1001], { seed: 5, mean: 3, std: 2 }).data();
  for (let i = 0; i < z.length; i++)
    if (Math.abs(y[i] - (3 + 2 * z[i])) > 4e-7 * (3 + 2 * Math.abs(z[i]))) {
      t.fail(`element ${i}: ${y[i]} vs 3 + 2 * ${z[i]}`);
      return;
    }
  t.pass();
  t.throws(() => randn([2], { seed: 1, std: -1 }), { instanceOf: RangeError });
});

test('rand: samples lie in [low, high) with the uniform mean and variance', async (t) => {
  const n = 200000;
  const d = await rand([n], { seed: 9, low: -2, high: 6 }).data();
  let s = 0;
  let s2 = 0;
  for (const v of d) {
    if (!(v >= -2 && v < 6)) {
      t.fail(`sample ${v} outside [-2, 6)`);
      return;
    }
    s += v;
    s2 += v * v;
  }
  const mean = s / n;
  const variance = s2 / n - mean * mean;
  // uniform on [-2, 6): mean 2, variance 64/12, std of the sample mean sqrt(64/12/n)
  t.true(Math.abs(mean - 2) < 5 * Math.sqrt(64 / 12 / n), `mean ${mean}`);
  t.true(Math.abs(variance - 64 / 12) < 0.05, `variance ${variance}`);
  const r01 = await rand([1000], { seed: 1 }).data();
  t.true(r01.every((v) => v >= 0 && v < 1));
});

test('rand: the same seed gives the same values', async (t) => {
  assertExact(t, await rand([513], { seed: 77 }).data(), await rand([513], { seed: 77 }).data());
  t.throws(() => rand([2], { seed: 1, low: 1, high: 0 }), { instanceOf: RangeError });
});

test('manualSeed: re-seeding replays the unseeded sequence of randn and rand', async (t) => {
  // All draws happen synchronously, so no other test's unseeded draw interleaves.
  manualSeed(2024);
  const a1 = randn([64]);
  const a2 = rand([64]);
  const a3 = randn([64]);
  manualSeed(2024);
  const b1 = randn([64]);
  const b2 = rand([64]);
  assertExact(t, await a1.data(), await b1.data(), 'randn');
  assertExact(t, await a2.data(), await b2.data(), 'rand');
  t.notDeepEqual(Array.from(await a1.data()), Array.from(await a3.data()), 'the sequence advances');
});

test('random: a negative or fractional seed option is an error', (t) => {
  t.throws(() => randn([2], { seed: -1 }), { instanceOf: RangeError });
  t.throws(() => rand([2], { seed: 1.5 }), { instanceOf: TypeError });
});

test('manualSeed: a rejected (negative or fractional) seed leaves the global generator as it was', (t) => {
  // Run in a fresh process: the global seed is process state shared by every test here.
  const r = runIsolated(`
    const out = {};
    P.manualSeed(5);
    const want = Array.from(P.randn([4]).dataSync());
    P.manualSeed(5);
    try { P.manualSeed(-3); out.negative = 'no error'; } catch (e) { out.negative = e.constructor.name; }
    try { P.manualSeed(0.5); out.fraction = 'no error'; } catch (e) { out.fraction = e.constructor.name; }
    try { out.same = JSON.stringify(Array.from(P.randn([4]).dataSync())) === JSON.stringify(want); }
    catch (e) { out.same = 'randn threw: ' + e.message; }
    console.log(JSON.stringify(out));
  `);
  t.is(r.status, 0, r.stderr);
  t.deepEqual(r.json, { negative: 'RangeError', fraction: 'TypeError', same: true });
});

// ---- devices and handles ---------------------------------------------------------------

test('device: asking for cuda where it is unavailable throws with the reason, never falls back', (t) => {
  const cuda = backends().find((b) => b.name === 'cuda')!;
  if (cuda.available) {
    t.is(tensor([1], undefined, { device: 'cuda' }).device, 'cuda:0');
    return;
  }
  const err = t.throws(() => zeros([2], { device: 'cuda' }));
  t.regex(err!.message, /CUDA is unavailable/);
  t.throws(() => zeros([2], { device: 'gpu' }), { instanceOf: TypeError });
  t.is(zeros([2], { device: 'cpu' }).device, 'cpu');
});

test('Tensor: cannot be constructed directly, and a disposed tensor cannot be read or used', async (t) => {
  t.throws(() => new Tensor({} as never), { instanceOf: TypeError });
  const x = tensor([1, 2]);
  x.dispose();
  x.dispose(); // idempotent
  t.true(x.disposed);
  await t.throwsAsync(() => x.data());
  t.throws(() => x.add(1), { message: /disposed/ });
});

test('arange, randn and rand refuse infinite bounds and parameters, naming the argument', (t) => {
  const cases: [string, () => unknown, RegExp][] = [
    ['arange stop Infinity', () => arange(0, Infinity), /^arange: argument 'stop' must be finite, got number Infinity/],
    ['arange step Infinity', () => arange(0, 5, Infinity), /^arange: argument 'step' must be finite, got number Infinity/],
    ['randn std Infinity', () => randn([2], { std: Infinity }), /^randn: argument 'std' must be finite, got number Infinity/],
    ['rand high Infinity', () => rand([2], { high: Infinity }), /^rand: argument 'high' must be finite, got number Infinity/],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: RangeError, message }, name);
});

test('full and arange round a value to 16 bits once: where its float32 rounding lands on a 16-bit halfway point, the value itself still decides', (t) => {
  // 1 + 2^-11 + 2^-30 is just above float16's halfway point between 1 and 1 + 2^-10,
  // but its nearest float32 is that halfway point, which ties to even (1).
  t.is(full([1], 1 + 2 ** -11 + 2 ** -30, { dtype: 'float16' }).dataSync()[0], 1 + 2 ** -10);
  t.is(arange(1 + 2 ** -11 + 2 ** -30, 2, 1, { dtype: 'float16' }).dataSync()[0], 1 + 2 ** -10);
  t.is(full([1], 1 + 2 ** -8 + 2 ** -30, { dtype: 'bfloat16' }).dataSync()[0], 1 + 2 ** -7);
  // Exact halfway points still tie to even, and exact values stay.
  t.is(full([1], 1 + 2 ** -11, { dtype: 'float16' }).dataSync()[0], 1);
  t.is(full([1], -3.5, { dtype: 'bfloat16' }).dataSync()[0], -3.5);
});

test('tensor: a Float64Array into int32, uint8 or a 16-bit dtype converts from the doubles themselves, not through float32', (t) => {
  // 2^24 + 1 is not a float32; through float32 it came out 2^24.
  t.deepEqual(Array.from(tensor(Float64Array.of(16777217, -2.7, 3e9, NaN), undefined, { dtype: 'int32' }).dataSync()), [16777217, -2, 2147483647, 0]);
  t.deepEqual(Array.from(tensor(Float64Array.of(300, -1, 7.9), undefined, { dtype: 'uint8' }).dataSync()), [255, 0, 7]);
  // Just above float16's halfway point between 1 and 1 + 2^-10, whose nearest float32
  // is that halfway point: rounded once it is 1 + 2^-10, as the number-array path gives.
  const v = 1 + 2 ** -11 + 2 ** -30;
  t.is(tensor(Float64Array.of(v), undefined, { dtype: 'float16' }).dataSync()[0], 1 + 2 ** -10);
  t.is(tensor(Float64Array.of(v), undefined, { dtype: 'float16' }).dataSync()[0], tensor([v], undefined, { dtype: 'float16' }).dataSync()[0]);
  t.is(tensor(Float64Array.of(1 + 2 ** -8 + 2 ** -30), undefined, { dtype: 'bfloat16' }).dataSync()[0], 1 + 2 ** -7);
});
