// Specification of lib/nn/init.ts: parameters' initial values are the draws of randn,
// rand and full; inside withoutInit (what loadModel does, every parameter being about
// to be replaced) they are placeholders that run no kernel and take no memory, in the
// dtype asked for, while the global random sequence advances exactly as if they had
// been drawn.
import test from 'ava';
import * as P from '../lib/index.js';
import { Embedding, LayerNorm, Linear, initConstant, initNormal, initSkipped, initUniform, withoutInit } from '../lib/index.js';
import { assertExact } from './helpers/reference.js';

test('initNormal, initUniform and initConstant are randn, rand and full, taking the same seeds', async (t) => {
  P.manualSeed(11);
  const a = [initNormal([3, 4], 0.02), initUniform([5], -0.5, 0.5), initConstant([2, 2], 1)];
  const after = P.randn([3]);
  P.manualSeed(11);
  const b = [P.randn([3, 4], { std: 0.02 }), P.rand([5], { low: -0.5, high: 0.5 }), P.ones([2, 2])];
  const afterRef = P.randn([3]);
  for (let i = 0; i < a.length; i++) assertExact(t, await a[i].data(), await b[i].data(), `tensor ${i}`);
  assertExact(t, await after.data(), await afterRef.data(), 'the next draw');
  for (const x of [...a, ...b, after, afterRef]) x.dispose();
});

test.serial('inside withoutInit, layers get placeholders: no kernel runs and no memory is taken', async (t) => {
  const probe = P.zeros([1]);
  await probe.data(); // the queue is idle and the allocator settled
  const before = P.memory().cpu.allocatedBytes;
  P.profiler.start();
  let modules: P.Module[];
  try {
    modules = withoutInit(() => [new Linear(512, 256), new LayerNorm(256), new Embedding(1000, 64, { initStd: 0.02 }), new Linear(8, 8, { initStd: 0.02 })]);
    const done = probe.neg(); // queued after anything the constructors issued
    await done.data();
    done.dispose();
  } finally {
    const ops = P.profiler.stop().rows.map((r) => r.op);
    t.deepEqual(ops, ['neg'], `kernels run while constructing: ${ops.join(', ')}`);
  }
  t.true(P.memory().cpu.allocatedBytes - before < 512 * 256 * 4, 'no parameter was allocated');
  probe.dispose();
  const shapes = modules!.map((m) => Object.values(m.stateDict()).map((x) => x.shape));
  t.deepEqual(shapes, [[[256, 512], [256]], [[256], [256]], [[1000, 64]], [[8, 8], [8]]]);
  for (const m of modules!) m.dispose();
});

test('the random sequence advances inside withoutInit as if the parameters had been drawn', async (t) => {
  P.manualSeed(5);
  withoutInit(() => new Linear(4, 3)).dispose();
  const skipped = P.randn([6]);
  P.manualSeed(5);
  new Linear(4, 3).dispose();
  const drawn = P.randn([6]);
  assertExact(t, await skipped.data(), await drawn.data());
  skipped.dispose();
  drawn.dispose();
});

test('withoutInit: placeholders in the dtype asked for; loadStateDict then gives a working layer', async (t) => {
  const ref = new Linear(3, 2);
  const lin = withoutInit(() => new Linear(3, 2), { dtype: 'bfloat16' });
  t.is(lin.weight.dtype, 'bfloat16');
  t.is(lin.bias!.dtype, 'bfloat16');
  lin.loadStateDict(ref.stateDict());
  const x = P.tensor([[1, 2, 3]]);
  const want = ref.forward(x);
  const got = lin.forward(x.cast('bfloat16')).cast('float32');
  const [g, w] = [await got.data(), await want.data()];
  for (let i = 0; i < w.length; i++) t.true(Math.abs(g[i] - w[i]) <= 0.02 * (1 + Math.abs(w[i])), `output ${i}: ${g[i]} vs ${w[i]}`);
  for (const m of [ref, lin]) m.dispose();
  for (const y of [x, want, got]) y.dispose();
});

test('withoutInit returns fn\'s result, nests, and is off again after fn returns or throws', (t) => {
  t.false(initSkipped());
  const r = withoutInit(() => {
    t.true(initSkipped());
    const inner = withoutInit(() => initNormal([2], 1), { dtype: 'float16' });
    t.is(inner.dtype, 'float16');
    inner.dispose();
    const outer = initUniform([2], 0, 1);
    t.is(outer.dtype, 'float32', 'the outer dtype is restored after the inner scope');
    outer.dispose();
    return 42;
  });
  t.is(r, 42);
  t.false(initSkipped());
  t.throws(() => withoutInit(() => { throw new Error('boom'); }), { message: 'boom' });
  t.false(initSkipped());
  const c = initConstant([2], 3);
  t.is(c.dtype, 'float32');
  c.dispose();
});

test('withoutInit validates its arguments, and refuses an async fn', async (t) => {
  t.throws(() => withoutInit(42 as unknown as () => void), { instanceOf: TypeError, message: /withoutInit: argument 'fn' must be a function, got number/ });
  t.throws(() => withoutInit(() => 1, null as never), { instanceOf: TypeError, message: /withoutInit: argument 'opts' must be an object, got null/ });
  t.throws(() => withoutInit(() => 1, { dtype: 'int32' as never }), { instanceOf: TypeError, message: /withoutInit: option 'dtype' must be 'float32', 'float16' or 'bfloat16', got "int32"/ });
  t.throws(() => withoutInit(async () => 1), { instanceOf: TypeError, message: /withoutInit: fn must construct synchronously/ });
  t.false(initSkipped());
});

test('initNormal, initUniform, initLayer and initConstant refuse values that would give non-finite weights', (t) => {
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, typeof Error, RegExp][] = [
    ['initNormal std Infinity', () => initNormal([2], Infinity), RangeError, /^initNormal: argument 'std' must be a finite number >= 0, got number Infinity/],
    ['initNormal std string', () => initNormal([2], bad('x')), TypeError, /^initNormal: argument 'std' must be a finite number >= 0, got 'x'/],
    ['initUniform high Infinity', () => initUniform([2], 0, Infinity), RangeError, /^initUniform: argument 'high' must be a finite number, got number Infinity/],
    ['initUniform low > high', () => initUniform([2], 1, 0), RangeError, /^initUniform: argument 'high' must be >= 'low', got low 1, high 0/],
    ['initLayer fanIn 0', () => P.initLayer([2], 0, false, undefined), RangeError, /^initLayer: argument 'fanIn' must be a positive integer, got number 0/],
    ['initLayer fanIn string', () => P.initLayer([2], bad('x'), false, undefined), TypeError, /^initLayer: argument 'fanIn' must be a positive integer, got 'x'/],
    ['initLayer isBias', () => P.initLayer([2], 3, bad('yes'), undefined), TypeError, /^initLayer: argument 'isBias' must be a boolean, got 'yes'/],
    ['initLayer initStd Infinity', () => P.initLayer([2], 3, false, Infinity), RangeError, /^initLayer: argument 'initStd' must be a finite number >= 0, got number Infinity/],
    ['initConstant value string', () => withoutInit(() => initConstant([2], bad('x'))), TypeError, /^initConstant: argument 'value' must be a number, got 'x'/],
    ['withoutInit opts array', () => withoutInit(() => 1, bad([])), TypeError, /^withoutInit: argument 'opts' must be an object, got array of length 0/],
  ];
  for (const [name, fn, instanceOf, message] of cases) t.throws(fn, { instanceOf, message }, name);
  t.notThrows(() => initNormal([2], 0).dispose(), 'std 0 (a zero-initialised classifier) stays valid');
});
