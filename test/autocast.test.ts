// Specification of autocast (lib/nn/autocast.ts): which dtype a layer computes in, how
// the setting is scoped (nesting, async code, concurrent work), and that mixed precision
// keeps float32 master weights whose gradients are those of the 16-bit computation.
import test from 'ava';
import * as P from '../lib/index.js';
import { LayerNorm, Linear } from '../lib/index.js';
import { readAndDispose } from './helpers/read.js';
import { ON_CUDA } from './helpers/device.js';

const liveTensors = (): number => (ON_CUDA ? P.memory().cuda : P.memory().cpu).tensors;

test('autocastDtype is null outside, the innermost setting inside; float32 and null turn it off', (t) => {
  t.is(P.autocastDtype(), null);
  P.autocast('bfloat16', () => {
    t.is(P.autocastDtype(), 'bfloat16');
    P.autocast('float16', () => t.is(P.autocastDtype(), 'float16'));
    P.autocast('float32', () => t.is(P.autocastDtype(), null));
    P.autocast(null, () => t.is(P.autocastDtype(), null));
    t.is(P.autocastDtype(), 'bfloat16', 'restored after the inner call');
  });
  t.is(P.autocastDtype(), null);
  t.throws(() => P.autocast('bfloat16', () => { throw new Error('boom'); }), { message: 'boom' });
  t.is(P.autocastDtype(), null, 'restored after a throw');
});

test('the setting follows async code across awaits and does not leak into concurrent work', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const inside = P.autocast('bfloat16', async () => {
    await gate;
    return P.autocastDtype();
  });
  const outside = (async () => {
    await Promise.resolve();
    const seen = P.autocastDtype();
    release();
    return seen;
  })();
  t.is(await outside, null, 'work started outside autocast never sees it');
  t.is(await inside, 'bfloat16', 'the awaited continuation still does');
});

test('autocast validates its arguments', (t) => {
  t.throws(() => P.autocast('int32' as 'float32', () => 0), { instanceOf: TypeError, message: /autocast: argument 'dtype' must be 'float32', 'float16', 'bfloat16' or null, got 'int32'/ });
  t.throws(() => P.autocast('bfloat16', 5 as unknown as () => void), { instanceOf: TypeError, message: /autocast: argument 'fn' must be a function, got number 5/ });
});

test('computeDtype, toDtype, needsCast: floating tensors follow autocast, integer ones never', (t) => {
  const f = P.zeros([2]);
  const i = P.zeros([2], { dtype: 'int32' });
  t.is(P.computeDtype(f), 'float32');
  P.autocast('bfloat16', () => {
    t.is(P.computeDtype(f), 'bfloat16');
    t.is(P.computeDtype(i), 'int32', 'an integer tensor is never cast');
  });
  t.true(P.needsCast(f, 'bfloat16'));
  t.false(P.needsCast(f, 'float32'));
  t.false(P.needsCast(i, 'bfloat16'));
  t.false(P.needsCast(f, 'int32'), 'floating values are not truncated to integers');
  t.is(P.toDtype(f, 'float32'), f, 'no cast, the same tensor');
  const c = P.toDtype(f, 'float16');
  t.is(c.dtype, 'float16');
  t.is(P.toDtype(i, 'bfloat16'), i, 'an integer tensor is handed back');
  // An integer target would be a silent no-op: refused, pointing at cast().
  t.throws(() => P.toDtype(f, 'int32'), { instanceOf: TypeError, message: /toDtype: argument 'dtype' must be a floating dtype .*got 'int32' \(cast\(\) converts/ });
  for (const x of [f, i, c]) x.dispose();
});

test('under autocast a float32 Linear and LayerNorm compute in bfloat16, bit-identical to casting by hand', async (t) => {
  P.manualSeed(1);
  const lin = new Linear(7, 5);
  const ln = new LayerNorm(5);
  const x = P.randn([3, 7]);
  const before = liveTensors();
  const h = P.autocast('bfloat16', () => lin.forward(x, 'gelu'));
  const y = P.autocast('bfloat16', () => ln.forward(h));
  t.is(liveTensors(), before + 2, 'only the two results remain: the casts were released');
  h.dispose();
  t.is(y.dtype, 'bfloat16');
  t.is(lin.weight.dtype, 'float32', 'the parameters stay float32');
  const want = P.tidy(() => {
    const h = P.linear(x.cast('bfloat16'), lin.weight.cast('bfloat16'), lin.bias!.cast('bfloat16'), 'gelu');
    return P.layerNorm(h, P.ones([5], { dtype: 'bfloat16' }), P.zeros([5], { dtype: 'bfloat16' }));
  });
  t.deepEqual(await readAndDispose(y), await readAndDispose(want));
  x.dispose();
  lin.dispose();
  ln.dispose();
});

test('mixed precision: float32 master weights get float32 gradients, those of the bfloat16 computation', async (t) => {
  P.manualSeed(2);
  const lin = new Linear(6, 4).requiresGrad_(true);
  const x = P.randn([5, 6]);
  P.autocast('bfloat16', () => P.tidy(() => P.crossEntropy(lin.forward(x), P.tensor(Int32Array.from([0, 1, 2, 3, 0]), [5])))).backward();
  const gw = lin.weight.grad!;
  t.is(gw.dtype, 'float32', 'the gradient has the master weight dtype');
  // The same graph written out by hand: the cast's gradient is the bfloat16 gradient widened.
  const w16 = P.noGrad(() => lin.weight.cast('bfloat16'));
  const b16 = P.noGrad(() => lin.bias!.cast('bfloat16'));
  w16.requiresGrad = true;
  b16.requiresGrad = true;
  P.tidy(() => P.crossEntropy(P.linear(x.cast('bfloat16'), w16, b16), P.tensor(Int32Array.from([0, 1, 2, 3, 0]), [5]))).backward();
  t.deepEqual(await gw.data(), await w16.grad!.data());
  t.deepEqual(await lin.bias!.grad!.data(), await b16.grad!.data());
  for (const v of [x, w16, b16]) v.dispose();
  lin.dispose();
});

test.serial("under autocast a parameter is cast once and shared by every layer that takes it; its gradients meet in that one cast, as torch's autocast cache does", async (t) => {
  P.manualSeed(3);
  const lin = new Linear(6, 6).requiresGrad_(true);
  const x = P.randn([4, 6]);
  const before = liveTensors();
  P.tidy(() =>
    P.autocast('bfloat16', () => {
      t.is(P.toDtype(lin.weight, 'bfloat16'), P.toDtype(lin.weight, 'bfloat16'), 'one cast of a parameter');
      t.not(P.toDtype(x, 'bfloat16'), P.toDtype(x, 'bfloat16'), 'a tensor that is not a parameter is cast each time');
      t.not(P.toDtype(lin.weight, 'float16'), P.toDtype(lin.weight, 'float16'), "a cast to a dtype other than autocast's is not kept");
    }),
  );
  t.is(liveTensors(), before, 'the cached cast went with the autocast scope');
  // The same layer twice (as the ImageNet encoders' eight blocks share their weights).
  const loss = P.autocast('bfloat16', () => P.tidy(() => lin.forward(lin.forward(x)).cast('float32').square().sum(0).sum(0)));
  loss.backward();
  loss.dispose();
  t.is(liveTensors(), before + 2, 'the cached casts went with the autocast scope (what remains: the two gradients)');
  // By hand: one bfloat16 copy of each parameter, used twice.
  const w16 = P.noGrad(() => lin.weight.cast('bfloat16'));
  const b16 = P.noGrad(() => lin.bias!.cast('bfloat16'));
  w16.requiresGrad = true;
  b16.requiresGrad = true;
  P.tidy(() => {
    const h = P.linear(x.cast('bfloat16'), w16, b16);
    return P.linear(h, w16, b16).cast('float32').square().sum(0).sum(0);
  }).backward();
  t.deepEqual(await lin.weight.grad!.data(), await w16.grad!.cast('float32').data());
  t.deepEqual(await lin.bias!.grad!.data(), await b16.grad!.cast('float32').data());
  for (const v of [x, w16, b16]) v.dispose();
  lin.dispose();
});

test('a cached cast is not reused after a tensor is written in place (an optimizer step inside the autocast scope)', async (t) => {
  P.manualSeed(4);
  const lin = new Linear(3, 2).requiresGrad_(true);
  const x = P.randn([1, 3]);
  const [first, second] = P.autocast('bfloat16', () => {
    const a = lin.forward(x);
    P.assign(lin.weight, P.tidy(() => lin.weight.mul(2)));
    const b = lin.forward(x);
    return [a, b];
  });
  const want = P.noGrad(() => P.tidy(() => P.linear(x.cast('bfloat16'), lin.weight.cast('bfloat16'), lin.bias!.cast('bfloat16'))));
  t.notDeepEqual(await first.data(), await second.data());
  t.deepEqual(await readAndDispose(second), await readAndDispose(want));
  for (const v of [first, x]) v.dispose();
  lin.dispose();
});

test.serial("autocast releases its cached casts when an async fn settles, and never fn's own result", async (t) => {
  const lin = new Linear(3, 2).requiresGrad_(true);
  // Not a count of live tensors: across the await, finalizers of other tests' tensors
  // may run. The cache's own copy is watched instead.
  let cached: P.Tensor | undefined;
  const y = await P.autocast('bfloat16', async () => {
    await new Promise((r) => setTimeout(r, 1));
    cached = P.toDtype(lin.weight, 'bfloat16');
    return P.noGrad(() => P.tidy(() => lin.forward(P.ones([1, 3]))));
  });
  t.true(cached!.disposed, 'the cached cast went when fn settled');
  t.false(y.disposed, 'the result remains');
  const w = P.autocast('bfloat16', () => P.toDtype(lin.weight, 'bfloat16'));
  t.false(w.disposed, 'a cast returned by fn is the caller\'s');
  t.is(w.dtype, 'bfloat16');
  for (const v of [y, w]) v.dispose();
  lin.dispose();
});

test('computeDtype, toDtype, needsCast and computeIn refuse non-Tensors, unknown dtypes and a missing fn', (t) => {
  const f = P.zeros([2]);
  const bad = (v: unknown) => v as never;
  const dtypes = /must be one of 'float32', 'float16', 'bfloat16', 'int32', 'uint8', got 'bogus'/;
  const cases: [string, () => unknown, RegExp][] = [
    ['computeDtype(undefined)', () => P.computeDtype(bad(undefined)), /^computeDtype: argument 'param' must be a Tensor, got undefined/],
    ['computeDtype(string)', () => P.computeDtype(bad('x')), /^computeDtype: argument 'param' must be a Tensor, got 'x'/],
    ['needsCast(null)', () => P.needsCast(bad(null), 'float16'), /^needsCast: argument 'x' must be a Tensor, got null/],
    ['needsCast(t, bogus)', () => P.needsCast(f, bad('bogus')), dtypes],
    ['toDtype({})', () => P.toDtype(bad({}), 'float16'), /^toDtype: argument 'x' must be a Tensor, got Object/],
    ['toDtype(t, bogus)', () => P.toDtype(f, bad('bogus')), dtypes],
    ['computeIn(bogus)', () => P.computeIn(bad('bogus'), [f], (x) => x), dtypes],
    ['computeIn args string', () => P.computeIn('float32', bad('x'), (x: unknown) => x), /^computeIn: argument 'args' must be an array of Tensors or nulls, got 'x'/],
    ['computeIn args element', () => P.computeIn('float32', bad(['a']), (x: unknown) => x), /^computeIn: argument 'args' must be an array of Tensors or nulls, element 0 is 'a'/],
    ['computeIn no fn', () => P.computeIn('float32', [f], bad(undefined)), /^computeIn: argument 'fn' must be a function, got undefined/],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
  t.is(P.computeIn('float32', [f, null], (x, n) => (n === null ? x : null)), f, 'nulls still pass through');
  f.dispose();
});
