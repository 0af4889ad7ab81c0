// Specification of the layout ops: reshape, permute/transpose, slice, split, squeeze,
// unsqueeze, flatten, broadcastTo, concat, contiguous (views vs copies) and cast
// across every pair of dtypes.
import test from 'ava';
import * as P from '../lib/index.js';
import { tensor, type Tensor, type DTypeName, DTYPES } from '../lib/index.js';
import {
  assertExact,
  broadcastRef,
  concatRef,
  numel,
  permuteRef,
  randomArray,
  runIsolated,
  sliceRef,
  toBF16,
  toF16,
  toI32,
  toU8,
} from './helpers/reference.js';
import { live } from './helpers/device.js';
import { native } from '../lib/native.js';

const seq = (n: number) => Float32Array.from({ length: n }, (_, i) => i);

/** Asserts that making the views allocated no new native storage. */
function assertNoNewStorage(t: import('ava').ExecutionContext, make: () => Tensor[], msg: string): Tensor[] {
  // Storages are only ever freed off the JS thread, never allocated: so a count that
  // did not grow across this synchronous block means nothing was allocated in it.
  const before = live().storages;
  const out = make();
  const after = live().storages;
  t.true(after <= before, `${msg}: ${after - before} new storage(s)`);
  return out;
}

// ---- reshape ------------------------------------------------------------------------------

test('reshape: keeps row-major order and infers one -1 dimension', async (t) => {
  const x = tensor(seq(24), [2, 3, 4]);
  const y = x.reshape([4, -1]);
  t.deepEqual(y.shape, [4, 6]);
  assertExact(t, await y.data(), seq(24));
  t.deepEqual(P.reshape(x, [-1]).shape, [24]);
  t.deepEqual(x.reshape([2, -1, 2]).shape, [2, 6, 2]);
  t.deepEqual(tensor([5]).reshape([]).shape, []);
  t.deepEqual(P.zeros([0, 3]).reshape([3, 0]).shape, [3, 0]);
});

test('reshape: of a dense tensor is a view (no new storage) and stays contiguous', (t) => {
  const x = P.zeros([4, 6]);
  const [a, b] = assertNoNewStorage(t, () => [x.reshape([24]), x.reshape([2, 2, 6])], 'reshape');
  t.true(a.isContiguous && b.isContiguous);
});

test('reshape: of a non-contiguous view gives the elements in the view\'s logical order', async (t) => {
  const x = randomArray(60, 1);
  const v = tensor(x, [3, 4, 5]).permute([2, 0, 1]); // [5, 3, 4]
  t.false(v.isContiguous);
  // The last two axes (strides 20 and 5) merge into one of stride 5: still a view.
  const y = v.reshape([5, 12]);
  t.false(y.isContiguous);
  assertExact(t, await y.data(), permuteRef(x, [3, 4, 5], [2, 0, 1]).data);
  const s = tensor(x, [3, 20]).slice(1, 2, 17, 3).reshape([-1]); // 3 x 5 strided
  assertExact(t, await s.data(), sliceRef(x, [3, 20], 1, 2, 17, 3).data);
});

test('reshape: a wrong element count, two -1s or a negative size are RangeErrors', (t) => {
  const x = P.zeros([2, 3]);
  const e = t.throws(() => x.reshape([4, 2]), { instanceOf: RangeError });
  t.regex(e!.message, /\[4, 2\]/);
  t.throws(() => x.reshape([-1, -1]), { instanceOf: RangeError });
  t.throws(() => x.reshape([-2, -3]), { instanceOf: RangeError });
  t.throws(() => x.reshape([4, -1]), { instanceOf: RangeError });
  t.throws(() => P.zeros([0, 3]).reshape([-1, 0]), { instanceOf: RangeError });
});

// ---- permute / transpose --------------------------------------------------------------------

test('permute: out.shape[i] = x.shape[axes[i]]; a view that is not contiguous', async (t) => {
  const x = randomArray(2 * 3 * 4 * 5, 2);
  const base = tensor(x, [2, 3, 4, 5]);
  for (const axes of [[3, 1, 0, 2], [0, 2, 1, 3], [1, 2, 3, 0]]) {
    const [y] = assertNoNewStorage(t, () => [base.permute(axes)], `permute [${axes}]`);
    const want = permuteRef(x, [2, 3, 4, 5], axes);
    t.deepEqual(y.shape, want.shape);
    t.false(y.isContiguous, `[${axes}]`);
    assertExact(t, await y.data(), want.data, `[${axes}]`);
  }
  const id = base.permute([0, 1, 2, 3]);
  t.true(id.isContiguous);
  assertExact(t, await base.permute([-1, 0, 1, 2]).data(), permuteRef(x, [2, 3, 4, 5], [3, 0, 1, 2]).data, 'negative axes');
});

test('permute: a repeated axis or a wrong count is a RangeError', (t) => {
  const x = P.zeros([2, 3, 4]);
  t.throws(() => x.permute([0, 0, 1]), { instanceOf: RangeError, message: /repeats/ });
  t.throws(() => x.permute([0, 1]), { instanceOf: RangeError });
  t.throws(() => x.permute([0, 1, 3]), { instanceOf: RangeError });
});

test('transpose: swaps the last two axes by default, any two when named; twice is contiguous again', async (t) => {
  const x = randomArray(24, 3);
  const base = tensor(x, [2, 3, 4]);
  const a = base.transpose();
  t.deepEqual(a.shape, [2, 4, 3]);
  t.false(a.isContiguous);
  assertExact(t, await a.data(), permuteRef(x, [2, 3, 4], [0, 2, 1]).data);
  const b = P.transpose(base, 0, 2);
  t.deepEqual(b.shape, [4, 3, 2]);
  assertExact(t, await b.data(), permuteRef(x, [2, 3, 4], [2, 1, 0]).data);
  const c = a.transpose();
  t.true(c.isContiguous);
  assertExact(t, await c.data(), x);
  t.throws(() => base.transpose(0, 3), { instanceOf: RangeError });
});

test('transpose: moving only size-1 axes keeps a tensor contiguous', (t) => {
  t.true(P.zeros([1, 5]).transpose().isContiguous);
  t.true(P.zeros([3, 1, 1, 4]).permute([0, 2, 1, 3]).isContiguous);
  t.false(P.zeros([2, 5]).transpose().isContiguous);
});

// ---- contiguous -------------------------------------------------------------------------------

test('contiguous: materialises a view in logical order; of a dense tensor it is shared', async (t) => {
  const x = randomArray(35, 4);
  const v = tensor(x, [5, 7]).transpose();
  const c = v.contiguous();
  t.true(c.isContiguous);
  t.deepEqual(c.shape, [7, 5]);
  assertExact(t, await c.data(), permuteRef(x, [5, 7], [1, 0]).data);
  const dense = tensor(x, [5, 7]);
  const [d] = assertNoNewStorage(t, () => [P.contiguous(dense)], 'contiguous of dense');
  assertExact(t, await d.data(), x);
});

test('contiguous: a head permute ([B, N, H, D] -> [B, H, N, D]) of every dtype, with rows of whole 16-byte units or not, aligned or not', async (t) => {
  // On CUDA the first cases copy 16 bytes per thread; the rest fall back to elements.
  const shape = [2, 5, 3, 16];
  const x = seq(numel(shape)).map((v) => v % 251); // exact in bfloat16 and uint8
  const want = permuteRef(x, shape, [0, 2, 1, 3]).data;
  for (const dtype of ['float32', 'bfloat16', 'float16', 'int32', 'uint8'] as DTypeName[]) {
    const c = tensor(x, shape).cast(dtype).permute([0, 2, 1, 3]).contiguous();
    assertExact(t, await c.data(), want, `${dtype}: inner rows of 16`);
    const odd = tensor(x, shape).cast(dtype).slice(3, 1, 15).permute([0, 2, 1, 3]).contiguous();
    assertExact(t, await odd.data(), permuteRef(sliceRef(x, shape, 3, 1, 15, 1).data, [2, 5, 3, 14], [0, 2, 1, 3]).data, `${dtype}: rows of 14 from an offset`);
    for (const y of [c, odd]) y.dispose();
  }
});

test('contiguous/reshape: a transposed zero-size view ([0,3] -> [3,0]) materialises as empty without crashing', (t) => {
  // Child process: this once crashed with an integer division by zero.
  const r = runIsolated(`
    const v = P.zeros([0, 3]).transpose();
    const c = v.contiguous();
    const f = v.reshape([0]);
    const e = P.exp(v);
    console.log(JSON.stringify({ c: c.shape, f: f.shape, n: (await c.data()).length + (await e.data()).length }));
  `);
  t.is(r.status, 0, `exit ${r.status}, signal ${r.signal} ${r.stderr.slice(0, 300)}`);
  t.deepEqual(r.json, { c: [3, 0], f: [0], n: 0 });
});

// ---- slice ----------------------------------------------------------------------------------

test('slice: Python semantics for negative, omitted and out-of-range bounds and steps', async (t) => {
  const shape = [6, 10];
  const x = randomArray(60, 5);
  const base = tensor(x, shape);
  const cases: [number, number, number | undefined, number | undefined][] = [
    [1, 2, 5, undefined],
    [1, -3, undefined, undefined],
    [1, 0, -1, undefined],
    [1, -4, -1, undefined],
    [1, 1, undefined, 2],
    [1, 0, 10, 3],
    [1, -100, 100, 4],
    [0, 1, 5, 2],
    [0, 4, 2, undefined],
    [0, 7, 9, undefined],
    [0, -2, undefined, undefined],
    [-1, 3, 4, undefined],
    [-2, -6, -5, undefined],
  ];
  for (const [axis, start, end, step] of cases) {
    const y = base.slice(axis, start, end, step);
    const want = sliceRef(x, shape, axis, start, end, step);
    const what = `slice(${axis}, ${start}, ${end}, ${step})`;
    t.deepEqual(y.shape, want.shape, what);
    assertExact(t, await y.data(), want.data, what);
  }
});

test('slice: an empty column range (start >= end, or past the end) is a readable [6, 0] tensor, not a crash', (t) => {
  // Child process: reading such a view once crashed with an integer division by zero.
  const r = runIsolated(`
    const x = P.zeros([6, 10]);
    const a = x.slice(1, 7, 3);
    const b = x.slice(1, 12, 20);
    console.log(JSON.stringify({ a: a.shape, b: b.shape, n: (await a.data()).length + (await b.data()).length }));
  `);
  t.is(r.status, 0, `exit ${r.status}, signal ${r.signal} ${r.stderr.slice(0, 300)}`);
  t.deepEqual(r.json, { a: [6, 0], b: [6, 0], n: 0 });
});

test('slice: is a view; a range of rows stays contiguous, a range of columns does not', async (t) => {
  const x = P.zeros([4, 6]);
  const [rows, cols, stepped] = assertNoNewStorage(t, () => [x.slice(0, 1, 3), x.slice(1, 1, 3), x.slice(0, 0, 4, 2)], 'slice');
  t.true(rows.isContiguous);
  t.false(cols.isContiguous);
  t.false(stepped.isContiguous);
});

test('slice: slices of slices compose (offsets and strides multiply)', async (t) => {
  const x = randomArray(8 * 30, 6);
  const a = tensor(x, [8, 30]).slice(1, 3, undefined, 2).slice(1, 1, -1, 3).slice(0, -5, undefined, 2);
  const s1 = sliceRef(x, [8, 30], 1, 3, undefined, 2);
  const s2 = sliceRef(s1.data, s1.shape, 1, 1, -1, 3);
  const s3 = sliceRef(s2.data, s2.shape, 0, -5, undefined, 2);
  t.deepEqual(a.shape, s3.shape);
  assertExact(t, await a.data(), s3.data);
});

test('slice: step < 1 or a bad axis is a RangeError', (t) => {
  const x = P.zeros([4, 6]);
  t.throws(() => x.slice(0, 0, 4, 0), { instanceOf: RangeError });
  t.throws(() => x.slice(0, 0, 4, -1), { instanceOf: RangeError });
  t.throws(() => x.slice(2, 0, 1), { instanceOf: RangeError });
  t.throws(() => x.slice(0, 0.5, 1), { instanceOf: TypeError });
});

// ---- split ------------------------------------------------------------------------------------

test('split: consecutive parts of the given sizes along any axis (negative too), as views; empty parts allowed', async (t) => {
  const x = randomArray(3 * 4 * 9, 8);
  const xt = tensor(x, [3, 4, 9]);
  for (const [axis, sizes] of [[2, [2, 0, 4, 3]], [-1, [9]], [1, [1, 3]], [0, [2, 1]]] as [number, number[]][]) {
    const parts = assertNoNewStorage(t, () => P.split(xt, axis, sizes), `split(${axis}, [${sizes}])`);
    t.is(parts.length, sizes.length);
    let at = 0;
    for (let i = 0; i < parts.length; i++) {
      const ref = sliceRef(x, [3, 4, 9], axis < 0 ? axis + 3 : axis, at, (at += sizes[i]), 1);
      t.deepEqual(parts[i].shape, ref.shape);
      assertExact(t, await parts[i].data(), ref.data);
    }
    parts.forEach((p) => p.dispose());
  }
  // And as a method.
  const [a, b] = xt.split(-1, [4, 5]);
  assertExact(t, await b.data(), sliceRef(x, [3, 4, 9], 2, 4, 9, 1).data);
  t.deepEqual(a.shape, [3, 4, 4]);
  xt.dispose();
});

test('split: sizes that do not add up to the axis, negative or fractional sizes, no sizes or a bad axis are errors naming the argument', (t) => {
  const x = P.zeros([2, 6]);
  const cases: [() => unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    [() => P.split(x, 1, [2, 3]), RangeError, /split: argument 'sizes' \(\[2, 3\]\) must add up to axis 1's length 6, got 5/],
    [() => P.split(x, 1, [7, -1]), RangeError, /split: argument 'sizes\[1\]' must not be negative, got -1/],
    [() => P.split(x, 1, [2.5, 3.5]), TypeError, /split: argument 'sizes\[0\]' must be an integer/],
    [() => P.split(x, 1, []), TypeError, /split: argument 'sizes' must be a non-empty array/],
    // eslint-disable-next-line no-sparse-arrays
    [() => P.split(x, 1, [2, , 4] as never), TypeError, /split: argument 'sizes\[1\]' must be an integer/],
    [() => P.split(x, 1, 6 as never), TypeError, /split: argument 'sizes' must be a non-empty array of part sizes, got number 6/],
    [() => P.split(x, 2, [6]), RangeError, /split: argument 'axis' must be in \[-2, 2\), got 2/],
    [() => P.split(null as never, 0, [1]), TypeError, /split: argument 'x'/],
  ];
  for (const [f, instanceOf, message] of cases) t.throws(f, { instanceOf, message }, String(message));
  x.dispose();
});

// ---- squeeze / unsqueeze / flatten -------------------------------------------------------------

test('squeeze: drops every size-1 axis, or the named one; a non-1 axis is a RangeError', async (t) => {
  const x = tensor(seq(6), [1, 3, 1, 2]);
  t.deepEqual(x.squeeze().shape, [3, 2]);
  t.deepEqual(x.squeeze(2).shape, [1, 3, 2]);
  t.deepEqual(P.squeeze(x, -4).shape, [3, 1, 2]);
  assertExact(t, await x.squeeze().data(), seq(6));
  t.throws(() => x.squeeze(1), { instanceOf: RangeError, message: /size 3/ });
  t.deepEqual(P.ones([1, 1]).squeeze().shape, []);
});

test('unsqueeze: inserts a size-1 axis at any position in [-rank-1, rank]', async (t) => {
  const x = tensor(seq(6), [2, 3]);
  t.deepEqual(x.unsqueeze(0).shape, [1, 2, 3]);
  t.deepEqual(x.unsqueeze(1).shape, [2, 1, 3]);
  t.deepEqual(x.unsqueeze(2).shape, [2, 3, 1]);
  t.deepEqual(x.unsqueeze(-1).shape, [2, 3, 1]);
  t.deepEqual(x.unsqueeze(-3).shape, [1, 2, 3]);
  assertExact(t, await x.unsqueeze(1).data(), seq(6));
  t.throws(() => x.unsqueeze(3), { instanceOf: RangeError });
  t.throws(() => x.unsqueeze(-4), { instanceOf: RangeError });
  const tr = tensor(seq(6), [2, 3]).transpose().unsqueeze(0);
  assertExact(t, await tr.data(), permuteRef(seq(6), [2, 3], [1, 0]).data, 'of a transposed view');
});

test('flatten: merges axes start..end inclusive (all by default); a scalar becomes [1]', async (t) => {
  const x = tensor(seq(24), [2, 3, 4]);
  t.deepEqual(x.flatten().shape, [24]);
  t.deepEqual(x.flatten(1).shape, [2, 12]);
  t.deepEqual(x.flatten(0, 1).shape, [6, 4]);
  t.deepEqual(P.flatten(x, -2, -1).shape, [2, 12]);
  t.deepEqual(x.flatten(1, 1).shape, [2, 3, 4]);
  t.deepEqual(tensor(3).flatten().shape, [1]);
  t.throws(() => x.flatten(2, 1), { instanceOf: RangeError });
  const v = x.permute([2, 0, 1]).flatten(1);
  t.deepEqual(v.shape, [4, 6]);
  assertExact(t, await v.data(), permuteRef(seq(24), [2, 3, 4], [2, 0, 1]).data, 'of a permuted view');
});

// ---- broadcastTo -----------------------------------------------------------------------------

test('broadcastTo: repeats size-1 axes and adds leading ones, as a zero-stride view', async (t) => {
  const x = randomArray(3, 7);
  const base = tensor(x, [3, 1]);
  const [y] = assertNoNewStorage(t, () => [base.broadcastTo([2, 3, 4])], 'broadcastTo');
  t.deepEqual(y.shape, [2, 3, 4]);
  t.false(y.isContiguous);
  assertExact(t, await y.data(), broadcastRef(x, [3, 1], [2, 3, 4]));
  const c = y.contiguous();
  t.true(c.isContiguous);
  assertExact(t, await c.data(), broadcastRef(x, [3, 1], [2, 3, 4]));
  assertExact(t, await tensor(5).broadcastTo([2, 2]).data(), [5, 5, 5, 5], 'scalar');
  assertExact(t, await base.broadcastTo([3, 1]).data(), x, 'same shape');
});

test('broadcastTo: incompatible sizes or fewer dimensions are a RangeError', (t) => {
  t.throws(() => P.zeros([3]).broadcastTo([2]), { instanceOf: RangeError });
  t.throws(() => P.zeros([2, 3]).broadcastTo([3]), { instanceOf: RangeError });
  t.throws(() => P.zeros([2, 3]).broadcastTo([3, 3]), { instanceOf: RangeError });
});

// ---- concat -----------------------------------------------------------------------------------

test('concat: three tensors of different lengths along each axis (and negative axes)', async (t) => {
  const rest = [2, 3, 4];
  for (let axis = 0; axis < 3; axis++) {
    const parts = [1, 3, 2].map((len, i) => {
      const shape = [...rest];
      shape[axis] = len;
      return { data: randomArray(numel(shape), 10 * axis + i), shape };
    });
    const want = concatRef(parts, axis);
    for (const a of [axis, axis - 3]) {
      const y = P.concat(parts.map((p) => tensor(p.data, p.shape)), a);
      t.deepEqual(y.shape, want.shape, `axis ${a}`);
      assertExact(t, await y.data(), want.data, `axis ${a}`);
    }
  }
});

test('concat: non-contiguous inputs (transposed, strided, broadcast) are read in logical order', async (t) => {
  const a = randomArray(12, 1); // [4, 3] viewed as its transpose [3, 4]
  const b = randomArray(3 * 9, 2); // [3, 9] sliced to [3, 4] with step 2 from column 1
  const c = randomArray(4, 3); // [1, 4] broadcast to [2, 4]
  const parts = [
    { t: tensor(a, [4, 3]).transpose(), ref: permuteRef(a, [4, 3], [1, 0]) },
    { t: tensor(b, [3, 9]).slice(1, 1, undefined, 2), ref: sliceRef(b, [3, 9], 1, 1, undefined, 2) },
    { t: tensor(c, [1, 4]).broadcastTo([2, 4]), ref: { data: broadcastRef(c, [1, 4], [2, 4]), shape: [2, 4] } },
  ];
  const y = P.concat(parts.map((p) => p.t), 0);
  const want = concatRef(parts.map((p) => p.ref), 0);
  t.deepEqual(y.shape, [8, 4]);
  assertExact(t, await y.data(), want.data, 'axis 0');
  const z = P.concat([parts[0].t, parts[1].t], 1);
  assertExact(t, await z.data(), concatRef([parts[0].ref, parts[1].ref], 1).data, 'axis 1');
});

test('concat: a single tensor, zero-size pieces and every dtype are kept as they are', async (t) => {
  const x = randomArray(6, 4);
  assertExact(t, await P.concat([tensor(x, [2, 3])]).data(), x);
  const y = P.concat([P.zeros([0, 3]), tensor(x, [2, 3]), P.zeros([0, 3])], 0);
  t.deepEqual(y.shape, [2, 3]);
  assertExact(t, await y.data(), x);
  for (const dtype of DTYPES) {
    const a = tensor([1, 2], undefined, { dtype });
    const b = tensor([3], undefined, { dtype });
    const c = P.concat([a, b]);
    t.is(c.dtype, dtype);
    assertExact(t, await c.data(), [1, 2, 3], dtype);
  }
});

test('concat: mixed dtypes are a TypeError; mismatched shapes, ranks or an empty list a RangeError', (t) => {
  t.throws(() => P.concat([P.zeros([2]), P.zeros([2], { dtype: 'int32' })]), { instanceOf: TypeError, message: /tensors\[1\]/ });
  t.throws(() => P.concat([P.zeros([2, 3]), P.zeros([2, 4])], 0), { instanceOf: RangeError, message: /tensors\[1\]/ });
  t.throws(() => P.concat([P.zeros([2, 3]), P.zeros([2, 3, 1])], 0), { instanceOf: RangeError });
  t.throws(() => P.concat([], 0), { instanceOf: RangeError });
  t.throws(() => P.concat([P.zeros([2])], 1), { instanceOf: RangeError });
  t.throws(() => P.concat(P.zeros([2]) as never), { instanceOf: TypeError });
});

// ---- cast ---------------------------------------------------------------------------------

// Source values per dtype, each exactly representable in that dtype.
const SOURCES: Record<DTypeName, number[]> = {
  float32: [0, -0, 1.5, -1.5, 2.7, -2.7, 0.1, 255.5, 256, 300, -300, 65504, 65519, 65520, 1e5, 16777216, 2147483520, 3e9, -3e9, 1e-8, 6e-8, NaN, Infinity, -Infinity].map(Math.fround),
  float16: [0, -0, 1.5, -1.5, 2.75, -2.75, 0.0999755859375, 255.5, 256, 300, -300, 1000.5, 65504, -65504, 2 ** -24, NaN, Infinity, -Infinity],
  bfloat16: [0, -0, 1.5, -1.5, 2.75, 255, 256, 300, -300, 65536, 1e6 - 576, 3.3895313892515355e38, -3.3895313892515355e38, 2 ** -130, NaN, Infinity, -Infinity],
  int32: [0, 1, -1, 5, -5, 255, 256, 300, -300, 2049, 65504, 65519, 65520, 70000, 16777217, 123456789, 2147483647, -2147483648],
  uint8: [0, 1, 5, 127, 128, 200, 254, 255],
};

/** The documented conversion: through float32 (int32 beyond 2^24 rounds), RNE for 16-bit floats, saturating truncation to integers. */
function convert(v: number, from: DTypeName, to: DTypeName): number {
  if (from === 'int32' && to === 'uint8') return Math.min(255, Math.max(0, v));
  if (from === to) return v;
  const f = Math.fround(v);
  switch (to) {
    case 'float32': return f;
    case 'float16': return toF16(f);
    case 'bfloat16': return toBF16(f);
    case 'int32': return from === 'uint8' ? v : toI32(f);
    case 'uint8': return toU8(f);
  }
}

function source(dtype: DTypeName): Tensor {
  const v = SOURCES[dtype];
  if (dtype === 'int32') return tensor(Int32Array.from(v));
  if (dtype === 'uint8') return tensor(Uint8Array.from(v));
  return tensor(Float32Array.from(v), undefined, { dtype });
}

for (const from of DTYPES)
  test(`cast: ${from} to every dtype rounds to nearest even (16-bit floats), saturates and truncates (integers)`, async (t) => {
    const src = source(from);
    t.is(src.dtype, from);
    assertExact(t, await src.data(), SOURCES[from], `${from} source`, true);
    for (const to of DTYPES) {
      const y = P.cast(src, to);
      t.is(y.dtype, to);
      t.deepEqual(y.shape, [SOURCES[from].length]);
      const d = await y.data();
      t.true(to === 'int32' ? d instanceof Int32Array : to === 'uint8' ? d instanceof Uint8Array : d instanceof Float32Array, `${to} data type`);
      assertExact(t, d, SOURCES[from].map((v) => convert(v, from, to)), `${from} -> ${to}`, to !== 'int32' && to !== 'uint8');
    }
  });

test('cast: float -> integer saturates at the int32 and uint8 limits and maps NaN to 0', async (t) => {
  const x = tensor([2147483648, -2147483904, 1e30, -1e30, NaN, 255.99, 256, -0.99, 127.5]);
  assertExact(t, await x.cast('int32').data(), [2147483647, -2147483648, 2147483647, -2147483648, 0, 255, 256, 0, 127]);
  assertExact(t, await x.cast('uint8').data(), [255, 0, 255, 0, 0, 255, 255, 0, 127]);
  assertExact(t, await tensor(Int32Array.from([-1, 256, 2147483647, -2147483648])).cast('uint8').data(), [0, 255, 255, 0]);
});

test('cast: of a non-contiguous view converts in logical order', async (t) => {
  const x = Int32Array.from({ length: 12 }, (_, i) => i * 1000 - 3000);
  const y = tensor(x, [3, 4]).transpose().cast('float16');
  t.deepEqual(y.shape, [4, 3]);
  assertExact(t, await y.data(), permuteRef(x, [3, 4], [1, 0]).data);
  const z = tensor(randomArray(40, 9), [4, 10]).slice(1, 1, undefined, 3).cast('bfloat16');
  assertExact(t, await z.data(), Array.from(sliceRef(randomArray(40, 9), [4, 10], 1, 1, undefined, 3).data, toBF16));
});

test('cast: a large (300k) float32 -> float16 -> float32 round trip, and dense ranges through bfloat16, match the reference', async (t) => {
  const x = randomArray(300_001, 12, -70000, 70000);
  const y = await tensor(x).cast('float16').cast('float32').data();
  assertExact(t, y, Array.from(x, toF16));
  // Dense ranges starting 1 and 4 elements in (on CUDA: misaligned for 4-element
  // packs, then aligned with 3 left over), and a cast between the 16-bit types.
  for (const start of [1, 4]) {
    const z = tensor(x).slice(0, start).cast('bfloat16').cast('float16');
    assertExact(t, await z.data(), Array.from(x.subarray(start), (v) => toF16(toBF16(v))), `from element ${start}`);
    z.dispose();
  }
  t.throws(() => P.cast(tensor(x), 'float64' as never), { instanceOf: TypeError });
});

test('layout ops keep dtype: permute, slice, reshape and broadcastTo of int32 and float16 tensors', async (t) => {
  const i = tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
  const v = i.transpose().slice(0, 1).reshape([-1]);
  t.is(v.dtype, 'int32');
  assertExact(t, await v.data(), [2, 5, 3, 6]);
  const h = tensor([0.5, 1.5], [2, 1], { dtype: 'float16' }).broadcastTo([2, 2]);
  t.is(h.dtype, 'float16');
  assertExact(t, await h.data(), [0.5, 0.5, 1.5, 1.5]);
});

test('cast from int32 to 16 bits rounds the integer once (through float32 it could round twice)', (t) => {
  // 2^24 + 2^16 + 1: float32 rounds it to 2^24 + 2^16, bfloat16's halfway point, which
  // ties down to 2^24; the integer itself is above it and rounds up to 2^24 + 2^17.
  const x = P.tensor(new Int32Array([16842753, 16842752, -16842753]), [3], { dtype: 'int32' });
  t.deepEqual(Array.from(P.cast(x, 'bfloat16').dataSync()), [16908288, 16777216, -16908288]);
  x.dispose();
});

const strides = (v: Tensor): number[] => native.handleStrides(v.handle);

test('reshape reads a strided view in place where its axes allow (squeeze, unsqueeze, splitting or merging contiguous runs), so writes go through; else it copies', (t) => {
  const x = tensor(seq(24), [4, 6]);
  const col = x.slice(1, 2, 3); // [4, 1], strides [6, 1]
  // squeeze and unsqueeze of a column: views of x's storage.
  P.assign(col.squeeze(1), tensor([100, 101, 102, 103]));
  P.assign(x.slice(1, 3, 4).unsqueeze(0), tensor([200, 201, 202, 203], [1, 4, 1]));
  const after = Array.from(x.dataSync());
  t.deepEqual([after[2], after[8], after[14], after[20]], [100, 101, 102, 103]);
  t.deepEqual([after[3], after[9], after[15], after[21]], [200, 201, 202, 203]);
  // Every other row ([2, 6], strides [12, 1]) split into [2, 2, 3]: a view, values in order.
  const rows = x.slice(0, 0, 4, 2);
  const split = rows.reshape([2, 2, 3]);
  t.deepEqual(strides(split), [12, 3, 1]);
  t.deepEqual(Array.from(split.dataSync()), Array.from(rows.contiguous().dataSync()));
  // A transpose cannot be merged into one axis in place: a copy, with the values in
  // the transpose's order.
  const tr = x.transpose(0, 1);
  const flat = tr.reshape([24]);
  t.deepEqual(strides(flat), [1]);
  t.deepEqual(Array.from(flat.dataSync()), Array.from(tr.contiguous().dataSync()));
  // Every other column of a [4, 6] ([4, 3], strides [6, 2]) flattens in place: the
  // rows are 3 * 2 apart, so the run of stride 2 continues across them.
  const everyOther = x.slice(1, 0, 6, 2);
  const f2 = everyOther.reshape([12]);
  t.deepEqual(strides(f2), [2]);
  t.deepEqual(Array.from(f2.dataSync()), Array.from(everyOther.contiguous().dataSync()));
  // Every other column of a [4, 5] ([4, 3], strides [5, 2]) does not merge: a copy.
  const y = tensor(seq(20), [4, 5]);
  const odd = y.slice(1, 0, 5, 2);
  const f3 = odd.reshape([12]);
  t.deepEqual(strides(f3), [1]);
  t.deepEqual(Array.from(f3.dataSync()), Array.from(odd.contiguous().dataSync()));
  for (const v of [x, col, rows, split, tr, flat, everyOther, f2, y, odd, f3]) v.dispose();
});
