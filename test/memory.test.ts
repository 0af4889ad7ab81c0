// Memory safety: no leaks over many create/compute/dispose cycles, tidy() scoping,
// idempotent dispose, Symbol.dispose / `using`, disposed tensors refused by ops, and
// reads that outlive the tensor they read; the allocators' physical counts.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as P from '../lib/index.js';
import { Tensor } from '../lib/tensor.js';
import { native } from '../lib/native.js';
import { live, ON_CUDA } from './helpers/device.js';

const here = dirname(fileURLToPath(import.meta.url));
const LEAK_CHILD = join(here, 'helpers', 'leak-child.js');
const MiB = 1024 * 1024;

interface Mem {
  tensors: number;
  storages: number;
  bytes: number;
}

function runLeakChild(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['--expose-gc', LEAK_CHILD, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PERCEIVER_DEVICE: '' },
  });
  if (r.status !== 0 || r.signal !== null)
    throw new Error(`leak child exited with code ${r.status}, signal ${r.signal}\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as Record<string, unknown>;
}

const counts = (m: Mem) => ({ tensors: m.tensors, storages: m.storages, bytes: m.bytes });

// Runs in a child started with --expose-gc so that RSS is measured after full
// collections and memory() counts only this workload.
test('10,000 create/compute/dispose cycles leave tensors, storages and bytes at their starting values and RSS flat', (t) => {
  t.timeout(120_000);
  const r = runLeakChild(['10000', '1000']);
  t.true(r.gc, 'the child ran with --expose-gc');
  t.log(`10,000 cycles in ${r.ms} ms; RSS ${((r.rssWarm as number) / MiB).toFixed(1)} MiB after warm-up, ${((r.rssEnd as number) / MiB).toFixed(1)} MiB at the end`);
  t.deepEqual(counts(r.warm as Mem), counts(r.start as Mem), 'after the 1,000 warm-up cycles');
  t.deepEqual(counts(r.end as Mem), counts(r.start as Mem), 'after the 10,000 cycles');
  t.deepEqual(counts(r.final as Mem), { tensors: 0, storages: 0, bytes: 0 }, 'after the parameters were disposed too');
  // RSS is measured after the warm-up (allocator arenas, JIT code, thread stacks
  // and V8's heap have reached their working size by then) and again after 10,000
  // more cycles, both after gc(). V8's own reservation is taken out: under this
  // allocation rate it grows its young generation (by up to 32 MiB) while the live
  // JS heap stays flat, which is sizing, not a leak. A leak of one small tensor per
  // cycle would add several MiB (each cycle allocates ~20 tensors of 0.1-4 KiB, plus
  // a JS wrapper and a queued task each); 8 MiB of slack covers malloc noise.
  const growth = (r.rssEnd as number) - (r.heapEnd as number) - ((r.rssWarm as number) - (r.heapWarm as number));
  t.log(`V8 heap reservation ${((r.heapWarm as number) / MiB).toFixed(1)} -> ${((r.heapEnd as number) / MiB).toFixed(1)} MiB`);
  t.true(growth < 8 * MiB, `RSS outside V8's heap grew by ${(growth / MiB).toFixed(2)} MiB`);
});

test('tensors and autograd graphs that are never disposed are freed by the garbage collector (finalizer safety net)', (t) => {
  t.timeout(60_000);
  const r = runLeakChild(['finalize']);
  t.true(r.gc, 'the child ran with --expose-gc');
  t.is(
    (r.made as Mem).tensors - (r.start as Mem).tensors,
    7000,
    '3,000 made outside scopes, 500 returned from nested tidy() scopes, 1,000 kept in one, and 500 graphs of 5 (a leaf, a product, a sum and the product\'s two saved operands)',
  );
  t.deepEqual(counts(r.end as Mem), counts(r.start as Mem));
});

test('tensors and graphs dropped undisposed in a loop are collected while it runs: V8 is told what their handles hold', (t) => {
  t.timeout(120_000);
  const r = runLeakChild(['pressure']);
  const peak = (r.peakBytes as number) / MiB;
  t.log(`${r.iterations} iterations of 12 MiB dropped in ${r.ms} ms; at most ${peak.toFixed(0)} MiB live at once`);
  // V8 starts collecting once the memory reported since its last full collection
  // passes 64 MiB; without the report only its JS heap, a few dozen bytes per Tensor,
  // drove it, and 2.3-2.9 GiB were live at once.
  t.true(peak < 384, `${peak.toFixed(0)} MiB live at once`);
});

// The tests below read live().tensors, which counts this process's live
// handles; they are serial and synchronous around the counts.

test.serial('tidy() disposes the tensors created inside it and keeps the one it returns', (t) => {
  const before = live().tensors;
  const made: Tensor[] = [];
  const out = P.tidy(() => {
    const a = P.ones([2, 3]);
    const b = a.mul(2);
    const c = b.add(a);
    made.push(a, b, c);
    return c;
  });
  t.false(out.disposed);
  t.is(out, made[2]);
  t.true(made[0].disposed);
  t.true(made[1].disposed);
  t.is(live().tensors, before + 1);
  t.deepEqual(Array.from(out.dataSync()), [3, 3, 3, 3, 3, 3]);
  out.dispose();
  t.is(live().tensors, before);
});

test.serial('tidy() leaves tensors created outside it alone, even when they are used inside', (t) => {
  const x = P.ones([4]);
  const y = P.tidy(() => x.add(1).mul(x));
  t.false(x.disposed);
  t.false(y.disposed);
  const z = P.tidy(() => x); // returning an outside tensor
  t.is(z, x);
  t.false(x.disposed);
  x.dispose();
  y.dispose();
});

test.serial('nested tidy(): the inner scope hands its result to the outer one, which disposes it unless returned', (t) => {
  const before = live().tensors;
  let inner: Tensor | undefined;
  let innerTmp: Tensor | undefined;
  const out = P.tidy(() => {
    inner = P.tidy(() => {
      innerTmp = P.ones([2]);
      return innerTmp.add(1);
    });
    t.true(innerTmp!.disposed, 'the inner intermediate is gone when the inner scope ends');
    t.false(inner.disposed, 'the inner result is alive in the outer scope');
    return inner.mul(3);
  });
  t.true(inner!.disposed, 'the inner result was disposed by the outer scope');
  t.false(out.disposed);
  t.deepEqual(Array.from(out.dataSync()), [6, 6]);
  out.dispose();
  t.is(live().tensors, before);
});

test.serial('tidy() keeps every tensor in a returned array, plain object or Map, and disposes the rest', (t) => {
  const before = live().tensors;
  let tmp: Tensor | undefined;
  const r = P.tidy(() => {
    tmp = P.ones([2]);
    const a = tmp.add(1);
    const b = tmp.add(2);
    const c = tmp.add(3);
    const d = tmp.add(4);
    return { list: [a, [b]], nested: { c }, map: new Map([['d', d]]), label: 'x' };
  });
  t.true(tmp!.disposed);
  const kept = [r.list[0] as Tensor, (r.list[1] as Tensor[])[0], r.nested.c, r.map.get('d')!];
  for (const k of kept) t.false(k.disposed);
  t.deepEqual(kept.map((k) => k.dataSync()[0]), [2, 3, 4, 5]);
  for (const k of kept) k.dispose();
  t.is(live().tensors, before);
});

test.serial('tidy() disposes everything it created when fn throws, and rethrows the error', (t) => {
  const before = live().tensors;
  const made: Tensor[] = [];
  const err = t.throws(() =>
    P.tidy(() => {
      made.push(P.ones([2]), P.zeros([3]));
      made.push(P.tidy(() => P.ones([1]))); // an inner result, owned by this scope
      throw new Error('boom');
    }),
  );
  t.is(err!.message, 'boom');
  t.is(made.length, 3);
  for (const m of made) t.true(m.disposed);
  t.is(live().tensors, before);
  // An op error inside tidy is the same case.
  t.throws(() => P.tidy(() => P.matmul(P.ones([2, 3]), P.ones([4, 5]))), { instanceOf: RangeError });
  t.is(live().tensors, before);
});

test.serial('keep() exempts a tensor from the scope that created it', (t) => {
  let kept: Tensor | undefined;
  let other: Tensor | undefined;
  P.tidy(() => {
    kept = P.keep(P.ones([2]));
    other = P.ones([2]);
  });
  t.false(kept!.disposed);
  t.true(other!.disposed);
  kept!.dispose();
});

test.serial('dispose() is idempotent and decrements the live count once', (t) => {
  const before = live().tensors;
  const x = P.ones([8]);
  t.is(live().tensors, before + 1);
  x.dispose();
  t.notThrows(() => x.dispose());
  t.notThrows(() => x.dispose());
  t.true(x.disposed);
  t.is(live().tensors, before);
  t.is(x.toString(), 'Tensor(disposed)');
});

test.serial('disposing a view leaves its base usable, and disposing the base leaves its views usable', async (t) => {
  const base = P.arange(6).reshape([2, 3]);
  const view = base.transpose();
  const sum = (await P.sum(view, 0).data()) as Float32Array;
  view.dispose();
  t.false(base.disposed);
  t.deepEqual(Array.from(base.dataSync()), [0, 1, 2, 3, 4, 5]);
  const v2 = base.slice(1, 1, 3);
  base.dispose();
  t.deepEqual(Array.from(await v2.data()), [1, 2, 4, 5]);
  v2.dispose();
  t.deepEqual(Array.from(sum), [3, 12]);
});

// Two turns: the first ends the turn the code before it ran in, and the second is one
// its handles lived through whole, whose floor is then reported.
const nextTurns = async () => {
  for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
};

test.serial('V8 is told the bytes of each storage handles kept alive through a turn of the event loop, once however many share it (views, autograd\'s saved copies)', async (t) => {
  await nextTurns();
  const base = native.handleReportedBytes();
  // Within 64 KiB: tensors earlier tests left to the garbage collector may go meanwhile.
  const near = (bytes: number, what: string) => {
    const got = native.handleReportedBytes() - base;
    t.true(Math.abs(got - bytes) < 64 * 1024, `${what}: reported ${got} bytes, expected ${bytes}`);
  };
  const x = P.zeros([1024, 1024]);
  near(0, 'a new tensor, before its turn ended');
  await nextTurns();
  near(4 * MiB, 'a tensor that lived through a turn');
  const view = x.reshape([16, 256, 256]);
  const part = x.slice(0, 0, 8);
  x.dispose();
  await nextTurns();
  near(4 * MiB, 'two views of it add nothing, and keep it alive when it is disposed');
  view.dispose();
  part.dispose();
  await nextTurns();
  near(0, 'its last handle gone');

  const w = P.randn([512, 1024], { seed: 1 });
  w.requiresGrad = true;
  const sq = w.mul(w);
  w.dispose();
  await nextTurns();
  near(4 * MiB, 'w, disposed, and its square: the product\'s node keeps w in two handles on w\'s storage');
  const total = P.sum(P.sum(sq, 0), 0);
  total.backward();
  sq.dispose();
  w.dispose(); // the .grad backward() gave it
  await nextTurns();
  near(4, 'backward() freed the node\'s handles on w; the total is left');
  total.dispose();

  // A step's temporaries, made and freed within one turn, never count.
  P.tidy(() => P.zeros([4096, 4096]).add(1).sum(0));
  const y = P.zeros([4096, 4096]);
  y.dispose();
  await nextTurns();
  near(0, 'after 192 MiB made and freed within one turn');
});

test.serial('Symbol.dispose releases the tensor, and `using` disposes at the end of the block', (t) => {
  const before = live().tensors;
  const x = P.ones([2]);
  t.is(typeof x[Symbol.dispose], 'function');
  x[Symbol.dispose]();
  t.true(x.disposed);
  let seen: Tensor | undefined;
  {
    using y = P.ones([3]);
    using z = y.add(1);
    seen = z;
    t.false(y.disposed);
    t.deepEqual(Array.from(z.dataSync()), [2, 2, 2]);
  }
  t.true(seen!.disposed);
  t.is(live().tensors, before);
  // `using` also disposes when the block throws.
  let thrownIn: Tensor | undefined;
  t.throws(() => {
    using w = P.ones([1]);
    thrownIn = w;
    throw new Error('inside');
  });
  t.true(thrownIn!.disposed);
});

// The physical counts: what the device's allocator holds, updated on its queue when a
// kernel gets memory, at block sizes rounded to 2 MiB from 1 MiB up on either device.
const KEY = ON_CUDA ? 'cuda' : 'cpu';
const settled = () => {
  native.synchronize();
  return P.memory()[KEY];
};

test.serial('allocatedBytes counts a block at its rounded size once its kernel ran; freed, it stays cached for the next tensor of that size; emptyCache() returns it', (t) => {
  P.emptyCache();
  const m0 = settled();
  t.is(m0.cachedBytes, 0);
  t.is(m0.reservedBytes, m0.allocatedBytes);
  const x = P.full([750_000], 1); // 3,000,000 bytes: a 4 MiB block
  const m1 = settled();
  t.is(m1.bytes - m0.bytes, 3_000_000, 'the logical count is exact');
  t.is(m1.allocatedBytes - m0.allocatedBytes, 4 * MiB);
  t.is(m1.reservedBytes - m0.reservedBytes, 4 * MiB, 'a fresh block from the system');
  t.true(m1.peakAllocatedBytes >= m1.allocatedBytes && m1.peakReservedBytes >= m1.reservedBytes);
  x.dispose();
  const m2 = settled();
  t.is(m2.allocatedBytes, m0.allocatedBytes);
  t.is(m2.cachedBytes, 4 * MiB);
  t.is(m2.reservedBytes, m1.reservedBytes, 'kept, not returned');
  const y = P.full([700_000], 2); // 2,800,000 bytes: the same size class
  const m3 = settled();
  t.is(m3.reservedBytes, m1.reservedBytes, 'the cached block was reused');
  t.is(m3.cachedBytes, 0);
  y.dispose();
  P.emptyCache();
  const m4 = P.memory()[KEY];
  t.is(m4.cachedBytes, 0);
  t.is(m4.reservedBytes, m0.reservedBytes);
  t.is(m4.allocatedBytes, m0.allocatedBytes);
});

test.serial('resetPeakMemoryStats() restarts every peak from the current values; a tensor made and freed since raises them', (t) => {
  P.resetPeakMemoryStats();
  const m0 = P.memory()[KEY];
  t.is(m0.peakBytes, m0.bytes);
  t.is(m0.peakAllocatedBytes, m0.allocatedBytes);
  t.is(m0.peakReservedBytes, m0.reservedBytes);
  const x = P.full([4_000_000], 0); // 16 MB
  settled();
  x.dispose();
  const m1 = settled();
  t.is(m1.allocatedBytes, m0.allocatedBytes);
  t.true(m1.peakBytes - m0.bytes >= 16e6, `peakBytes rose by ${m1.peakBytes - m0.bytes}`);
  t.true(m1.peakAllocatedBytes - m0.allocatedBytes >= 16e6, `peakAllocatedBytes rose by ${m1.peakAllocatedBytes - m0.allocatedBytes}`);
  t.true(m1.peakReservedBytes >= m1.reservedBytes);
});

test('a disposed tensor used in an op throws an Error naming the op and the argument', (t) => {
  const a = P.ones([2, 2]);
  const d = P.ones([2, 2]);
  d.dispose();
  t.throws(() => P.matmul(a, d), { instanceOf: Error, message: /^matmul: argument 'b' is a disposed Tensor/ });
  t.throws(() => P.add(d, a), { instanceOf: Error, message: /^add: argument 'a' is a disposed Tensor/ });
  t.throws(() => P.concat([a, d]), { instanceOf: Error, message: /^concat: argument 'tensors\[1\]' is a disposed Tensor/ });
  t.throws(() => P.attention(d, d, d), { instanceOf: Error, message: /^attention: argument 'q' is a disposed Tensor/ });
  t.throws(() => d.softmax(), { instanceOf: Error, message: /^softmax: argument 'x' is a disposed Tensor/ });
  t.throws(() => d.transpose(), { instanceOf: Error, message: /^transpose: argument 'x' is a disposed Tensor/ });
  t.throws(() => d.dataSync(), { instanceOf: Error, message: /^dataSync: the Tensor has been disposed/ });
  a.dispose();
});

test('a pending data() still resolves with the right values when the tensor is disposed right after the call', async (t) => {
  const a = P.randn([256, 256], { seed: 11 });
  const b = P.randn([256, 256], { seed: 12 });
  const expected = P.matmul(a, b).dataSync();
  const c = P.matmul(a, b);
  const p = c.data();
  c.dispose();
  a.dispose();
  b.dispose();
  t.true(c.disposed);
  t.deepEqual(await p, expected);
  // A non-contiguous view, and a float16 tensor (read through a cast), the same way.
  const base = P.arange(12).reshape([3, 4]);
  const view = base.transpose();
  const pv = view.data();
  view.dispose();
  base.dispose();
  t.deepEqual(Array.from(await pv), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  const h = P.tensor([1.5, -2, 3], undefined, { dtype: 'float16' });
  const ph = h.data();
  h.dispose();
  t.deepEqual(Array.from(await ph), [1.5, -2, 3]);
});

test.serial('a handle that outlived its tensor is refused, never aliased to the tensor that reuses its slot', (t) => {
  const a = P.ones([2]);
  const stale = a.handle;
  a.dispose();
  // The freed slot is taken by the next tensor; the old number must not reach it.
  const b = P.full([3], 7);
  t.is(b.handle % 2 ** 24, stale % 2 ** 24, 'b took the freed slot (handle = generation * 2^24 + slot)');
  t.not(b.handle, stale);
  t.throws(() => native.unary('neg', stale, 1, 0), { message: /unary|neg|disposed/ });
  native.handleDispose(stale); // a no-op: b keeps its storage
  t.false(b.disposed);
  t.deepEqual(Array.from(b.dataSync()), [7, 7, 7]);
  t.throws(() => native.handleMeta(stale), { message: /disposed/ });
  b.dispose();
});

test.serial('Tensors are made only by the library: new Tensor(number) is refused', (t) => {
  const a = P.ones([1]);
  const Ctor = Tensor as unknown as new (h: unknown) => Tensor;
  t.throws(() => new Ctor(a.handle), { instanceOf: TypeError, message: /not new Tensor\(\)/ });
  t.throws(() => new Ctor(0), { instanceOf: TypeError });
  a.dispose();
});

test('a worker thread that exits with tensors still live takes them out of memory().tensors (its handles go with it)', (t) => {
  const lib = JSON.stringify(join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'index.js'));
  // In a process of its own: this one's count moves with the other tests and the GC.
  const code = `import { Worker } from 'node:worker_threads';
    const P = await import(${lib});
    const before = P.memory().cpu.tensors;
    let during = 0;
    for (let round = 0; round < 2; round++) {
      const w = new Worker(${JSON.stringify("(async () => { const P = await import(LIB); const { parentPort } = await import('node:worker_threads'); const keep = []; for (let i = 0; i < 300; i++) keep.push(P.ones([4, 4])); await keep[0].data(); parentPort.postMessage(P.memory().cpu.tensors); })();")}.replace('LIB', ${JSON.stringify(lib)}), { eval: true });
      w.on('message', (n) => (during = Math.max(during, n)));
      await new Promise((resolve) => w.once('exit', resolve));
    }
    console.log(JSON.stringify([before, during, P.memory().cpu.tensors]));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, PERCEIVER_DEVICE: 'cpu' } });
  t.is(r.status, 0, r.stderr);
  const [before, during, after] = JSON.parse(r.stdout.trim().split('\n').pop()!) as [number, number, number];
  t.true(during >= before + 300, `the worker's tensors counted while it ran (${during})`);
  t.is(after, before);
});
