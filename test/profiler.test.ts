// The profiler: per op, output shape and scope, the device time between marks
// around the op's kernels; autograd's formulas counted under backward/<op>.
// A profile is process-wide, so every test here is serial.
import test from 'ava';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as P from '../lib/index.js';
import { DEVICE_NAME } from './helpers/device.js';

const rowsOf = (p: P.Profile, op: string) => p.rows.filter((r) => r.op === op);

test.serial('ops issued between start() and stop() are counted per op with their calls and times; the busy time fits in the wall time', (t) => {
  const a = P.randn([256, 256], { seed: 1 });
  const b = P.randn([256, 256], { seed: 2 });
  P.profiler.start();
  const c = P.matmul(a, b);
  const d = P.matmul(c, b);
  const e = P.gelu(d);
  const p = P.profiler.stop();
  const mm = rowsOf(p, 'matmul');
  t.is(mm.length, 1);
  t.is(mm[0].calls, 2);
  t.is(mm[0].device, DEVICE_NAME);
  t.true(mm[0].totalMs > 0 && mm[0].maxMs <= mm[0].totalMs && mm[0].maxMs >= mm[0].meanMs);
  t.is(rowsOf(p, 'gelu')[0]?.calls, 1, 'the activation as the engine names it');
  t.is(p.rows.reduce((s, r) => s + r.calls, 0), 3, 'nothing else: randn ran before start()');
  const busy = p.deviceMs[DEVICE_NAME];
  t.true(Math.abs(busy - p.rows.reduce((s, r) => s + r.totalMs, 0)) < 1e-9);
  t.true(Math.abs(p.rows.reduce((s, r) => s + r.share, 0) - 1) < 1e-9);
  t.true(busy <= p.wallMs + 0.5, `busy ${busy} ms within wall ${p.wallMs} ms`);
  for (let i = 1; i < p.rows.length; i++) t.true(p.rows[i - 1].totalMs >= p.rows[i].totalMs, 'largest first');
  const table = p.table();
  t.regex(table, /^wall [\d.]+ ms; /);
  t.regex(table, /\nmatmul\s+\S+\s+2\s/);
  for (const x of [a, b, c, d, e]) x.dispose();
});

test.serial('ops queued before start() are not counted; after stop() nothing is recorded', (t) => {
  const a = P.randn([512, 512], { seed: 3 });
  const before = P.matmul(a, a);
  P.profiler.start();
  const inside = P.add(a, a);
  const p = P.profiler.stop();
  const after = P.matmul(a, a);
  t.deepEqual(p.rows.map((r) => [r.op, r.calls]), [['add', 1]]);
  P.profiler.start();
  const q = P.profiler.stop();
  t.deepEqual(q.rows, [], 'the earlier ops belong to no profile');
  t.deepEqual(q.deviceMs, {});
  t.regex(q.table(), /no ops/);
  for (const x of [a, before, inside, after]) x.dispose();
});

test.serial('shapes: true keys ops by output shape', (t) => {
  const a = P.randn([64, 32], { seed: 4 });
  const w1 = P.randn([32, 16], { seed: 5 });
  const w2 = P.randn([32, 8], { seed: 6 });
  P.profiler.start({ shapes: true });
  const outs = [P.matmul(a, w1), P.matmul(a, w1), P.matmul(a, w2)];
  const p = P.profiler.stop();
  const mm = rowsOf(p, 'matmul').map((r) => [r.shape, r.calls]).sort();
  t.deepEqual(mm, [['[64, 16]', 2], ['[64, 8]', 1]]);
  P.profiler.start();
  const more = P.matmul(a, w2);
  t.is(P.profiler.stop().rows[0].shape, '', 'without shapes the key is the op alone');
  for (const x of [a, w1, w2, ...outs, more]) x.dispose();
});

test.serial('scope() names nest; backward counts each formula under backward/<op> and its own ops under backward', async (t) => {
  const x = P.randn([8, 16], { seed: 7 });
  const w = P.randn([16, 4], { seed: 8 });
  w.requiresGrad = true;
  P.profiler.start();
  const loss = P.profiler.scope('step', () => {
    const l = P.profiler.scope('forward', () => P.tidy(() => P.gelu(P.matmul(x, w)).sum(1).sum(0)));
    l.backward();
    return l;
  });
  const p = P.profiler.stop();
  const scopes = new Set(p.rows.map((r) => r.scope));
  t.true(scopes.has('step/forward'), [...scopes].join(', '));
  t.true(rowsOf(p, 'matmul').some((r) => r.scope === 'step/forward'));
  t.true(rowsOf(p, 'matmul').some((r) => r.scope === 'step/backward/matmul'), 'the matmul formula multiplies by the saved input');
  t.true(p.rows.some((r) => r.scope === 'step/backward/gelu'));
  t.true(rowsOf(p, 'full').some((r) => r.scope === 'step/backward'), "backward's seed gradient, outside any formula");
  t.false(p.rows.some((r) => r.scope === ''), 'every op ran inside the scope');
  t.true((await w.grad!.data()).every(Number.isFinite));
  // Without a profile scope() only runs fn, and backward records no scopes.
  t.is(P.profiler.scope('idle', () => 42), 42);
  t.false(P.profiler.isProfiling());
  for (const v of [x, w, loss]) v.dispose();
});

test.serial('a failing op while profiling rejects its reads as usual, and the profile still stops', async (t) => {
  const weight = P.randn([4, 3], { seed: 9 });
  const ids = P.tensor([0, 9], undefined, { dtype: 'int32' });
  P.profiler.start();
  const e = P.embedding(weight, ids);
  const p = P.profiler.stop();
  await t.throwsAsync(e.data(), { message: /embedding: index 9/ });
  t.is(rowsOf(p, 'embedding')[0]?.calls, 1);
  for (const v of [weight, ids, e]) v.dispose();
});

test.serial('bad calls are clear errors: stop() without start(), start() twice, bad options, scope() arguments, table() limits', (t) => {
  t.throws(() => P.profiler.stop(), { message: /no profile is recording/ });
  t.throws(() => P.profiler.start({ shapes: 'yes' as unknown as boolean }), { instanceOf: TypeError, message: /option 'shapes' must be a boolean, got 'yes'/ });
  t.throws(() => P.profiler.start(null as unknown as object), { instanceOf: TypeError, message: /'options' must be an object, got null/ });
  t.throws(() => P.profiler.start([] as unknown as object), { instanceOf: TypeError, message: /'options' must be an object, got array of length 0/ });
  t.throws(() => P.profiler.scope(5 as unknown as string, () => 1), { instanceOf: TypeError, message: /profiler.scope: argument 'name' must be a non-empty string, got number 5/ });
  P.profiler.start();
  t.throws(() => P.profiler.start(), { message: /already recording/ });
  t.throws(() => P.profiler.scope('', () => 1), { instanceOf: TypeError, message: /non-empty string/ });
  t.throws(() => P.profiler.scope('x', 1 as unknown as () => number), { instanceOf: TypeError, message: /'fn' must be a function, got number/ });
  t.throws(() => P.profiler.scope('x', () => { throw new Error('inner'); }), { message: 'inner' });
  const p = P.profiler.stop();
  t.throws(() => p.table(0), { instanceOf: RangeError, message: /'limit' must be a positive integer, got number 0/ });
  t.false(P.profiler.isProfiling());
});

test.serial('one profile per process: a Worker cannot start or stop the main thread\'s, and its scopes stay its own', async (t) => {
  const url = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'index.js')).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then((P) => {
      const out = {};
      try { P.profiler.start(); out.start = 'started'; } catch (e) { out.start = e.message; }
      try { P.profiler.scope('worker', () => 0); out.scope = 'ok'; } catch (e) { out.scope = e.message; }
      parentPort.postMessage(out);
    }).catch((err) => parentPort.postMessage({ error: String(err) }));`;
  const a = P.randn([64, 64], { seed: 15 });
  P.profiler.start();
  const inside = P.profiler.scope('main', () => P.matmul(a, a));
  const w = new Worker(code, { eval: true, workerData: { url } });
  const msg = await new Promise<Record<string, string>>((resolve, reject) => {
    w.on('message', resolve);
    w.on('error', reject);
  });
  await new Promise((resolve) => w.on('exit', resolve));
  const p = P.profiler.stop();
  t.regex(msg.start ?? msg.error, /a profile is already recording in this process/);
  t.is(msg.scope, 'ok');
  t.true(p.rows.some((r) => r.op === 'matmul' && r.scope === 'main'));
  for (const v of [a, inside]) v.dispose();
});

test.serial('a profile started by a worker thread that ends without stopping it is discarded with the worker: the process can profile again', async (t) => {
  const lib = JSON.stringify(join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'index.js'));
  const w = new Worker(
    `(async () => { const P = await import(${lib}); const { parentPort } = await import('node:worker_threads'); P.profiler.start(); P.add(P.ones([2]), 1); parentPort.postMessage('started'); await new Promise(() => {}); })();`,
    { eval: true },
  );
  await new Promise((resolve) => w.once('message', resolve));
  await w.terminate();
  P.profiler.start();
  P.add(P.ones([2]), 1).dispose();
  const profile = P.profiler.stop();
  t.true(profile.rows.some((r) => r.op === 'scale'), "this thread's profile, recorded and stopped");
});
