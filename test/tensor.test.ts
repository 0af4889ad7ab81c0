// Tensor basics and the execution model: metadata, reads (async, sync, nested,
// ordered), ops that return before their kernel runs, failures that propagate to
// dependents, the addon in worker threads, and a process that exits by itself.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as P from '../lib/index.js';
import { DEVICE_NAME } from './helpers/device.js';

const here = dirname(fileURLToPath(import.meta.url));
const LIB_URL = pathToFileURL(join(here, '..', 'lib', 'index.js')).href;

/** Runs `node --input-type=module -e code`; resolves with its exit and output (a hang is killed). */
function runNode(code: string, timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PERCEIVER_DEVICE: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

test('shape, dtype, device, rank and size describe the tensor', (t) => {
  const x = P.zeros([2, 3, 4]);
  t.deepEqual([...x.shape], [2, 3, 4]);
  t.is(x.dtype, 'float32');
  t.is(x.device, DEVICE_NAME);
  t.is(x.rank, 3);
  t.is(x.size, 24);
  t.true(Object.isFrozen(x.shape));
  t.true(x.isContiguous);
  const s = P.tensor(7, undefined, { dtype: 'int32' });
  t.deepEqual([...s.shape], []);
  t.is(s.rank, 0);
  t.is(s.size, 1);
  t.is(s.dtype, 'int32');
  const e = P.zeros([0, 5], { dtype: 'uint8' });
  t.is(e.size, 0);
  t.is(e.rank, 2);
  t.is(e.dtype, 'uint8');
  const v = x.transpose(0, 2);
  t.deepEqual([...v.shape], [4, 3, 2]);
  t.false(v.isContiguous);
  for (const y of [x, s, e, v]) y.dispose();
});

test('data() and dataSync() return equal values for every dtype and for strided views', async (t) => {
  const cases: [P.Tensor, string][] = [
    [P.tensor([[1.5, -2], [3, 4.25]]), 'Float32Array'],
    [P.tensor([1, -2, 2147483647], undefined, { dtype: 'int32' }), 'Int32Array'],
    [P.tensor([0, 7, 255], undefined, { dtype: 'uint8' }), 'Uint8Array'],
    [P.tensor([0.5, -1, 65504], undefined, { dtype: 'float16' }), 'Float32Array'],
    [P.tensor([0.5, -1, 3], undefined, { dtype: 'bfloat16' }), 'Float32Array'],
    [P.arange(24).reshape([2, 3, 4]).permute([2, 0, 1]), 'Float32Array'],
    [P.arange(10).slice(0, 1, 9, 3), 'Float32Array'],
    [P.ones([3, 1]).broadcastTo([2, 3, 4]), 'Float32Array'],
    [P.zeros([0, 4]), 'Float32Array'],
  ];
  for (const [x, kind] of cases) {
    const a = await x.data();
    const s = x.dataSync();
    t.is(a.constructor.name, kind, x.toString());
    t.is(s.constructor.name, kind, x.toString());
    t.is(a.length, x.size);
    t.deepEqual(Array.from(a), Array.from(s), x.toString());
  }
  t.deepEqual(Array.from(cases[1][0].dataSync()), [1, -2, 2147483647]);
  t.deepEqual(Array.from(cases[3][0].dataSync()), [0.5, -1, 65504]);
  t.deepEqual(Array.from(cases[6][0].dataSync()), [1, 4, 7]);
  for (const [x] of cases) x.dispose();
});

test('array() nests the values to match the shape', async (t) => {
  const m = P.arange(6).reshape([2, 3]);
  t.deepEqual(await m.array(), [[0, 1, 2], [3, 4, 5]]);
  const c = P.arange(8).reshape([2, 2, 2]);
  t.deepEqual(await c.array(), [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]);
  const s = P.tensor(3.5);
  t.is(await s.array(), 3.5);
  const v = P.arange(3);
  t.deepEqual(await v.array(), [0, 1, 2]);
  const e = P.zeros([2, 0]);
  t.deepEqual(await e.array(), [[], []]);
  const i = P.tensor([[1, 2]], undefined, { dtype: 'int32' });
  t.deepEqual(await i.array(), [[1, 2]]);
  for (const x of [m, c, s, v, e, i]) x.dispose();
});

test('toString() shows shape, dtype and device, or that the tensor is disposed', (t) => {
  const x = P.zeros([2, 3], { dtype: 'int32' });
  t.is(x.toString(), `Tensor(shape=[2, 3], dtype=int32, device=${DEVICE_NAME})`);
  t.is(String(P.tensor(1)), `Tensor(shape=[], dtype=float32, device=${DEVICE_NAME})`);
  x.dispose();
  t.is(x.toString(), 'Tensor(disposed)');
});

test('many concurrent data() calls resolve in the order they were issued, each with its own values', async (t) => {
  const n = 200;
  const xs = Array.from({ length: n }, (_, i) => P.full([1 + (i % 7) * 300], i));
  const order: number[] = [];
  const reads = xs.map((x, i) =>
    x.data().then((d) => {
      order.push(i);
      return d;
    }),
  );
  const values = await Promise.all(reads);
  t.deepEqual(order, Array.from({ length: n }, (_, i) => i));
  values.forEach((d, i) => {
    t.is(d.length, 1 + (i % 7) * 300);
    t.true(d.every((v) => v === i), `read ${i}`);
  });
  for (const x of xs) x.dispose();
});

test('ops are queued: issuing three 1024x1024 matmuls takes under half the time until their result is read', async (t) => {
  const a = P.randn([1024, 1024], { seed: 1 });
  const b = P.randn([1024, 1024], { seed: 2 }).mul(1 / 32);
  await b.data(); // the queue is idle from here
  const t0 = performance.now();
  const c1 = P.matmul(a, b);
  const c2 = P.matmul(c1, b);
  const c3 = P.matmul(c2, b);
  const t1 = performance.now();
  const out = await c3.data();
  const t2 = performance.now();
  t.log(`issue ${(t1 - t0).toFixed(3)} ms, issue + compute + read ${(t2 - t0).toFixed(1)} ms`);
  t.true(t1 - t0 < 0.5 * (t2 - t0), `issue ${(t1 - t0).toFixed(3)} ms vs total ${(t2 - t0).toFixed(1)} ms`);
  t.is(out.length, 1024 * 1024);
  t.true(Number.isFinite(out[0]));
  for (const x of [a, b, c1, c2, c3]) x.dispose();
});

test('a failing kernel rejects data() of dependent tensors with the original op message, and later work is unaffected', async (t) => {
  const w = P.randn([4, 3], { seed: 3 });
  const ids = P.tensor([1, 7], undefined, { dtype: 'int32' });
  const e = P.embedding(w, ids);
  const dep = e.add(1);
  const dep2 = P.matmul(dep, P.ones([3, 2]));
  const dep3 = P.concat([P.ones([2, 2]), dep2], 0).softmax();
  const msg = /^embedding: index 7 at position 1 is out of range \[0, 4\)/;
  await t.throwsAsync(dep.data(), { instanceOf: Error, message: msg });
  await t.throwsAsync(dep2.data(), { instanceOf: Error, message: msg });
  await t.throwsAsync(dep3.data(), { instanceOf: Error, message: msg });
  t.throws(() => dep.dataSync(), { instanceOf: Error, message: msg });
  // Independent work queued after the failure still runs.
  const ok = P.embedding(w, P.tensor([3, 0], undefined, { dtype: 'int32' })).add(1);
  const wv = w.dataSync();
  t.deepEqual(Array.from(await ok.data()), [...Array.from(wv.slice(9, 12)), ...Array.from(wv.slice(0, 3))].map((v) => Math.fround(v + 1)));
});

test('the addon loads and computes inside Workers while the main thread computes at the same time', async (t) => {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then(async (P) => {
      const a = P.randn([192, 160], { seed: 21 });
      const b = P.randn([160, 128], { seed: 22 });
      let last;
      for (let i = 0; i < 20; i++) {
        const c = P.matmul(a, b, { activation: 'gelu' });
        last = await c.data();
        c.dispose();
      }
      parentPort.postMessage({ data: last, device: P.backends()[0].name });
    }).catch((err) => { parentPort.postMessage({ error: String(err && err.stack || err) }); });`;
  const workers = [0, 1].map(() => new Worker(code, { eval: true, workerData: { url: LIB_URL } }));
  const results = workers.map(
    (w) =>
      new Promise<{ data?: Float32Array; error?: string; exit: number }>((resolve, reject) => {
        let msg: { data?: Float32Array; error?: string } = {};
        w.on('message', (m) => (msg = m));
        w.on('error', reject);
        w.on('exit', (exit) => resolve({ ...msg, exit }));
      }),
  );
  // The main thread works on the same inputs meanwhile.
  const a = P.randn([192, 160], { seed: 21 });
  const b = P.randn([160, 128], { seed: 22 });
  let mine: Float32Array | undefined;
  for (let i = 0; i < 20; i++) {
    const c = P.matmul(a, b, { activation: 'gelu' });
    mine = (await c.data()) as Float32Array;
    c.dispose();
  }
  const got = await Promise.all(results);
  for (const r of got) {
    t.is(r.error, undefined);
    t.is(r.exit, 0);
    t.deepEqual(r.data, mine, 'a worker computed the same bits as the main thread');
  }
  a.dispose();
  b.dispose();
});

test('terminating a Worker with reads and kernels in flight does not crash the process', async (t) => {
  const r = await runNode(
    `
    import { Worker } from 'node:worker_threads';
    const P = await import(${JSON.stringify(LIB_URL)});
    const code = \`
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then((P) => {
        const a = P.randn([768, 768], { seed: 1 });
        for (let i = 0; i < 8; i++) P.matmul(a, a).data();
        parentPort.postMessage('issued');
      });\`;
    for (let round = 0; round < 3; round++) {
      const w = new Worker(code, { eval: true, execArgv: [], workerData: { url: ${JSON.stringify(LIB_URL)} } });
      await new Promise((res) => w.once('message', res));
      await w.terminate();
    }
    const x = P.arange(4).add(1);
    console.log('main still works', Array.from(await x.data()).join(','));
    `,
    60_000,
  );
  t.is(r.signal, null, r.stderr);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /main still works 1,2,3,4/);
});

test('the process exits by itself within a few seconds once no read is pending, with tensors still alive', async (t) => {
  const r = await runNode(
    `
    const P = await import(${JSON.stringify(LIB_URL)});
    const a = P.randn([64, 64], { seed: 1 });
    const kept = [a, P.matmul(a, a), P.softmax(a)];   // never disposed
    const d = await P.matmul(a, a).sum(0).data();
    console.log('read', d.length, kept.length);
    `,
    20_000,
  );
  t.is(r.signal, null, `killed after ${r.ms.toFixed(0)} ms: the process did not exit by itself\n${r.stderr}`);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /read 64 3/);
  t.true(r.ms < 10_000, `took ${r.ms.toFixed(0)} ms`);
});

test('a pending data() keeps the process alive until it resolves (no top-level await holds it)', async (t) => {
  const r = await runNode(
    `
    const P = await import(${JSON.stringify(LIB_URL)});
    const a = P.randn([1024, 1024], { seed: 1 });
    let c = a;
    for (let i = 0; i < 4; i++) c = P.matmul(c, a, { alpha: 1 / 32 });
    c.sum(1).data().then((d) => console.log('resolved', d.length));
    `,
    30_000,
  );
  t.is(r.signal, null, r.stderr);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /resolved 1024/);
});

test('an object that only shares Tensor.prototype is refused by ops and by Tensor methods, naming the call and the argument', async (t) => {
  // instanceof takes it (the prototype chain); the ops' argument checks and the
  // methods below check the private field only a Tensor has.
  const fake = Object.create(P.Tensor.prototype);
  const real = P.zeros([2]);
  const named = /got object with Tensor's prototype \(not a Tensor\)$/;
  t.throws(() => P.relu(fake), { instanceOf: TypeError, message: /^relu: argument 'x' must be a Tensor, got object with Tensor's prototype/ });
  t.throws(() => P.add(real, fake), { instanceOf: TypeError, message: /^add: argument 'b' must be a Tensor/ });
  t.throws(() => P.Tensor.prototype.dispose.call({}), { instanceOf: TypeError, message: /^dispose: argument 'this' must be a Tensor, got Object$/ });
  t.throws(() => P.Tensor.prototype.dispose.call(fake), { instanceOf: TypeError, message: named });
  t.throws(() => fake.dataSync(), { instanceOf: TypeError, message: /^dataSync: argument 'this' must be a Tensor/ });
  await t.throwsAsync(() => fake.data(), { instanceOf: TypeError, message: /^data: argument 'this' must be a Tensor/ });
  t.throws(() => fake.relu(), { instanceOf: TypeError, message: /^relu: argument 'x' must be a Tensor/ });
  t.throws(() => P.keep(fake), { instanceOf: TypeError, message: /^keep: argument 't' must be a Tensor/ });
  t.deepEqual(Array.from(real.relu().dataSync()), [0, 0], 'real tensors are unaffected');
  real.dispose();
});

test('.grad takes null or a live tensor of the tensor\'s own shape, dtype and device', (t) => {
  const w = P.zeros([2, 3]);
  const bad = (v: unknown) => v as never;
  const gone = P.zeros([2, 3]);
  gone.dispose();
  const cases: [string, unknown, typeof Error, RegExp][] = [
    ['a number', 5, TypeError, /^Tensor.grad: argument 'value' must be a Tensor or null, got number 5$/],
    ['undefined', undefined, TypeError, /^Tensor.grad: argument 'value' must be a Tensor or null, got undefined$/],
    ['a disposed tensor', gone, Error, /^Tensor.grad: argument 'value' is a disposed Tensor$/],
    ['another shape', P.zeros([3, 2]), RangeError, /^Tensor.grad: argument 'value' must have the tensor's shape \[2, 3\], got \[3, 2\]$/],
    ['another dtype', P.zeros([2, 3], { dtype: 'bfloat16' }), TypeError, /^Tensor.grad: argument 'value' must be float32 on \S+ as the tensor is, got bfloat16 on /],
  ];
  for (const [name, v, instanceOf, message] of cases) {
    t.throws(() => (w.grad = bad(v)), { instanceOf, message }, name);
    t.is(w.grad, null, `${name}: nothing set`);
  }
  const g = P.ones([2, 3]);
  w.grad = g;
  t.is(w.grad, g);
  w.grad = null;
  t.is(w.grad, null);
  w.grad = g;
  w.dispose();
  t.true(g.disposed, 'dispose() still releases the gradient it holds');
});

test('shape arrays are read once, in JS: getters that make thousands of tensors (moving the native handle table) or shrink the data buffer while read do not crash', (t) => {
  // In a process of its own: these were use-after-frees (segfaults). The native side
  // held an argument's slot of its handle table, or the data's pointer, while it read
  // the array's elements, which ran the getter.
  const lib = JSON.stringify(LIB_URL);
  const nat = JSON.stringify(LIB_URL.replace(/index\.js$/, 'native.js'));
  const code = `const P = await import(${lib});
    const { native } = await import(${nat});
    const keep = [];
    // An array whose element 1 makes 5000 tensors each time it is read.
    const growing = (values) => {
      const a = [...values];
      Object.defineProperty(a, 1, { enumerable: true, get() { for (let i = 0; i < 5000; i++) keep.push(P.ones([1])); return values[1]; } });
      return a;
    };
    const x = P.arange(0, 64, 1).reshape([8, 8]);
    const out = [];
    out.push(Array.from(x.reshape(growing([4, 16])).dataSync().slice(0, 3)));
    out.push(Array.from(x.permute(growing([1, 0])).dataSync().slice(0, 3)));
    out.push(P.broadcastTo(P.ones([1, 8]), growing([2, 8])).dataSync().length);
    out.push(Array.from(P.maxPool2d(x.reshape([1, 8, 8, 1]), { kernel: 2, padding: growing([0, 0, 0, 0]) }).dataSync().slice(0, 2)));
    // The addon's own calls, which the API above no longer hands a caller's array.
    out.push(native.handleReadSync(native.reshape(x.handle, growing([2, 32]))).byteLength);
    out.push(native.handleReadSync(native.permute(x.handle, growing([1, 0]))).byteLength);
    // tensor() whose shape getter shrinks the data's resizable buffer: the data is
    // taken after the shape, and found too short.
    for (const fromBuffer of [false, true]) {
      const ab = new ArrayBuffer(1 << 20, { maxByteLength: 1 << 20 });
      const shape = [0];
      let n = 0;
      Object.defineProperty(shape, 0, { enumerable: true, get() { if (++n === 1) ab.resize(0); return 1 << 18; } });
      try {
        if (fromBuffer) native.fromBuffer(new Float32Array(ab), shape, 'float32', 'cpu');
        else P.tensor(new Float32Array(ab), shape);
        out.push('accepted');
      } catch (e) {
        out.push(e.constructor.name);
      }
    }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, PERCEIVER_DEVICE: 'cpu' } });
  t.is(r.signal, null, r.stderr);
  t.is(r.status, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), [[0, 1, 2], [0, 8, 16], 16, [9, 11], 256, 256, 'RangeError', 'RangeError']);
});
