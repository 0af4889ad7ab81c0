// Bad calls across the API fail with the right error class and a message that names
// the op and the argument (and, for shapes, expected vs received), never with a
// crash. The table (test/helpers/bad-calls-child.ts) runs in a CHILD process: a
// segfault or abort there shows up below as a failed row with the child's signal,
// and the child is restarted after that row so every other row is still checked.
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as P from '../lib/index.js';
import { BAD_CALLS, type BadCallResult } from './helpers/bad-calls-child.js';
import { live } from './helpers/device.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHILD = join(here, 'helpers', 'bad-calls-child.js');

interface Crash {
  row: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}
interface TableRun {
  results: Map<number, BadCallResult>;
  crashes: Map<number, Crash>;
  /** Every child's exit, in order (first run from row 0, then one per restart). */
  exits: { from: number; code: number | null; signal: NodeJS.Signals | null; stderr: string }[];
}

function runChild(from: number): Promise<{ lines: Record<string, unknown>[]; code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, '--from', String(from)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // The table is the API's argument contract, checked on the CPU whatever the suite's
      // device: on CUDA an allocation fails in the queue, at data() (cuda.test.ts).
      env: { ...process.env, PERCEIVER_DEVICE: 'cpu' },
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    // A hang is reported like a crash (SIGKILL) on the row that was running.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = out
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return { phase: 'garbage', text: l };
          }
        });
      resolve({ lines, code, signal, stderr: err.slice(-4000) });
    });
  });
}

async function runTable(): Promise<TableRun> {
  const run: TableRun = { results: new Map(), crashes: new Map(), exits: [] };
  let from = 0;
  while (from < BAD_CALLS.length) {
    const { lines, code, signal, stderr } = await runChild(from);
    run.exits.push({ from, code, signal, stderr });
    let running = -1;
    for (const l of lines) {
      if (l.phase === 'start') running = l.row as number;
      if (l.phase === 'done') {
        run.results.set(l.row as number, l as unknown as BadCallResult);
        running = -1;
      }
    }
    if (code === 0 && signal === null) break;
    if (running < 0) break; // died outside a row (at load, say): nothing to resume
    run.crashes.set(running, { row: running, code, signal, stderr });
    from = running + 1;
  }
  return run;
}

let table: Promise<TableRun> | undefined;
const getTable = (): Promise<TableRun> => (table ??= runTable());

test('the bad-call table has at least 40 rows with unique names', (t) => {
  t.true(BAD_CALLS.length >= 40, `${BAD_CALLS.length} rows`);
  t.is(new Set(BAD_CALLS.map((r) => r.name)).size, BAD_CALLS.length);
});

test('the bad-calls child runs the whole table and exits with code 0 and no signal (no native crash)', async (t) => {
  const run = await getTable();
  const first = run.exits[0];
  const crashed = [...run.crashes.values()].map(
    (c) => `row ${c.row} '${BAD_CALLS[c.row].name}': code ${c.code}, signal ${c.signal}\n${c.stderr.slice(-600)}`,
  );
  t.deepEqual(crashed, [], 'rows that crashed the child process');
  t.is(first.signal, null, first.stderr);
  t.is(first.code, 0, first.stderr);
  t.is(run.results.size, BAD_CALLS.length, 'every row reported a result');
});

const cudaAvailable = P.backends()[1].available;
for (let i = 0; i < BAD_CALLS.length; i++) {
  const row = BAD_CALLS[i];
  (row.withoutCuda && cudaAvailable ? test.skip : test)(`bad call: ${row.name} -> ${row.error} ${row.message}`, async (t) => {
    const run = await getTable();
    const crash = run.crashes.get(i);
    if (crash) {
      t.fail(`the child process died on this row: code ${crash.code}, signal ${crash.signal}\n${crash.stderr.slice(-1500)}`);
      return;
    }
    const r = run.results.get(i);
    if (!r) {
      t.fail('the child never reported this row');
      return;
    }
    t.not(r.outcome, 'returned', 'the call was accepted instead of failing');
    t.is(r.errorClass, row.error, `message: ${r.message}`);
    t.regex(r.message ?? '', row.message);
    t.is(r.leakedTensors, 0, 'tensor handles left alive by the failed call');
    t.is(r.leakedStorages, 0, 'storages left alive by the failed call');
  });
}

// A few messages checked in this process too, with the exact error object.

test('in-process: matmul shape mismatch is a RangeError naming matmul, a, b and both K values', (t) => {
  const a = P.randn([2, 3], { seed: 1 });
  const b = P.randn([4, 5], { seed: 2 });
  const err = t.throws(() => P.matmul(a, b), { instanceOf: RangeError });
  t.regex(err!.message, /^matmul: .*'a' \[2, 3\] has K = 3 but 'b' \[4, 5\] has K = 4/);
  a.dispose();
  b.dispose();
});

test('in-process: a disposed tensor passed to layerNorm names the op and the argument', (t) => {
  const x = P.ones([2, 4]);
  const w = P.ones([4]);
  w.dispose();
  const err = t.throws(() => P.layerNorm(x, w), { instanceOf: Error });
  t.regex(err!.message, /^layer_?[nN]orm: argument 'weight' is a disposed Tensor/);
  x.dispose();
});

test('in-process: tensor() with a ragged array is a RangeError that gives expected and received lengths', (t) => {
  const err = t.throws(() => P.tensor([[1, 2, 3], [4, 5]]), { instanceOf: RangeError });
  t.regex(err!.message, /^tensor: argument 'data' is ragged: expected 3 elements at depth 1, got 2/);
});

test('in-process: an unsupported activation is a TypeError listing the accepted ones', (t) => {
  const a = P.ones([2, 2]);
  const err = t.throws(() => P.matmul(a, a, { activation: 'swish' as never }), { instanceOf: TypeError });
  t.regex(err!.message, /'none', 'relu', 'gelu', 'gelu_tanh', got 'swish'/);
  a.dispose();
});

test('in-process: an out-of-range embedding id rejects data() with an Error naming embedding', async (t) => {
  const w = P.randn([4, 3], { seed: 3 });
  const ids = P.tensor([1, 12], undefined, { dtype: 'int32' });
  const e = P.embedding(w, ids);
  const err = await t.throwsAsync(e.data(), { instanceOf: Error });
  t.regex(err!.message, /^embedding: index 12 at position 1 is out of range \[0, 4\)/);
  for (const x of [w, ids, e]) x.dispose();
});

test('in-process: a failure written into a tensor stays until healthy values replace all of it (a whole assign); a part keeps it', async (t) => {
  const bad = () => P.embedding(P.ones([5, 3]), P.tensor(Int32Array.from([1, 9]), [2]));
  const x = P.zeros([2, 3]);
  P.assign(x, bad());
  await t.throwsAsync(x.data(), { message: /embedding: index 9/ });
  const before = x.mul(2); // queued while x held the failure
  P.assign(x, P.ones([2, 3]));
  t.deepEqual(Array.from(await x.data()), [1, 1, 1, 1, 1, 1], 'whole: working again');
  await t.throwsAsync(before.data(), { message: /embedding: index 9/ }, 'what read the failed values keeps the failure');
  const y = P.zeros([4, 3]);
  P.assign(P.slice(y, 0, 0, 2), bad());
  P.assign(P.slice(y, 0, 2, 4), P.ones([2, 3]));
  await t.throwsAsync(y.data(), { message: /embedding: index 9/ }, 'a part: still failed');
  // A parameter a bad gradient failed, then set again as a whole.
  const p = P.ones([2, 3]);
  const [m, v] = [P.zeros([2, 3]), P.zeros([2, 3])];
  P.adamUpdate(p, bad(), m, v, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 });
  await t.throwsAsync(p.data(), { message: /embedding: index 9/ });
  P.assign(p, P.full([2, 3], 3));
  t.deepEqual(Array.from(await p.data()), [3, 3, 3, 3, 3, 3]);
  for (const z of [x, before, y, p, m, v]) z.dispose();
});

test('in-process: a rejected op leaves the live tensor count unchanged', (t) => {
  const a = P.ones([2, 3]);
  const b = P.ones([4, 3]);
  const before = live().tensors;
  for (let i = 0; i < 50; i++) t.throws(() => P.add(a, b), { instanceOf: RangeError });
  t.is(live().tensors, before);
  a.dispose();
  b.dispose();
});

test('in-process: keep() and tidy() name a non-Tensor or non-function argument instead of a raw property error', (t) => {
  const cases: [string, () => unknown, RegExp][] = [
    ['keep(undefined)', () => P.keep(undefined as never), /^keep: argument 't' must be a Tensor, got undefined/],
    ['keep(string)', () => P.keep('x' as never), /^keep: argument 't' must be a Tensor, got 'x'/],
    ['keep({})', () => P.keep({} as never), /^keep: argument 't' must be a Tensor, got Object/],
    ['tidy(5)', () => P.tidy(5 as never), /^tidy: argument 'fn' must be a function, got number 5/],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
});

// layerNorm and linear take their optional tensors positionally, before the options: an
// options object put in a tensor's slot (`layerNorm(x, { eps })`, `linear(x, w, { activation })`)
// was reported as "matmul: argument 'bias' must be a Tensor, got Object", naming the op
// linear is built on and not saying what went wrong.
test('in-process: an options object in layerNorm\'s or linear\'s tensor slot is named as such, with the signature', (t) => {
  const x = P.ones([2, 3]);
  const w = P.ones([4, 3]);
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, RegExp][] = [
    ['layerNorm(x, { eps })', () => P.layerNorm(x, bad({ eps: 1e-6 })), /^layer_norm: argument 'weight' must be a Tensor, null or undefined, got Object \(an options object\? the arguments are layerNorm\(x, weight\?, bias\?, \{ eps \}\)\)$/],
    ['layerNorm(x, null, { eps })', () => P.layerNorm(x, null, bad({ eps: 1e-6 })), /^layer_norm: argument 'bias' must be a Tensor, null or undefined, got Object \(an options object\?/],
    ['linear(x, w, { activation })', () => P.linear(x, w, bad({ activation: 'gelu' })), /^linear: argument 'bias' must be a Tensor, null or undefined, got Object \(an options object\? the arguments are linear\(x, weight, bias\?, activation\?, addend\?\)\)$/],
    ["linear(x, w, null, 'none', {})", () => P.linear(x, w, null, 'none', bad({})), /^linear: argument 'addend' must be a Tensor, null or undefined, got Object/],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
  // What still works: tensors, null and undefined in those slots.
  t.deepEqual(P.layerNorm(x, null, null, { eps: 1e-6 }).shape, [2, 3]);
  t.deepEqual(P.linear(x, w, undefined, 'gelu').shape, [2, 4]);
});

// As torch refuses an unexpected keyword argument: a misspelt option would otherwise
// be ignored and its default used, with no sign of it.
test('in-process: an unknown key in an options object is a TypeError naming the op, the argument and the key, listing the known ones', async (t) => {
  const a = P.ones([2, 2]);
  const q = P.ones([1, 2, 1, 4]);
  const img = P.ones([1, 4, 4, 2]);
  const w = P.ones([3, 3, 2, 2]);
  const ch = P.ones([2]);
  const ids = P.tensor([0, 1], undefined, { dtype: 'int32' });
  const [p, g, m, v] = [P.ones([2]), P.ones([2]), P.zeros([2]), P.zeros([2])];
  const leaf = P.ones([]);
  leaf.requiresGrad = true;
  const bad = (v: unknown) => v as never;
  const adam = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, step: 1 };
  const cases: [string, () => unknown, RegExp][] = [
    ['matmul', () => P.matmul(a, a, bad({ activaton: 'gelu' })), /^matmul: argument 'options' has unknown option 'activaton' \(known: transA, transB, bias, activation, alpha, dtype, addend\)$/],
    ['Tensor.matmul', () => a.matmul(a, bad({ transb: true })), /^matmul: argument 'options' has unknown option 'transb' \(known: /],
    ['attention', () => P.attention(q, q, q, bad({ scal: 1 })), /^attention: argument 'options' has unknown option 'scal' \(known: mask, scale, dropout, seed\)/],
    ['gelu', () => P.gelu(a, bad({ approx: 'tanh' })), /^gelu: argument 'options' has unknown option 'approx' \(known: approximate\)/],
    ['Tensor.gelu', () => a.gelu(bad({ approx: 'tanh' })), /^gelu: argument 'options' has unknown option 'approx'/],
    ['oneHot', () => P.oneHot(ids, 3, bad({ dtyp: 'float16' })), /^one_hot: argument 'options' has unknown option 'dtyp' \(known: on, off, dtype\)/],
    ['conv2d', () => P.conv2d(img, w, bad({ strides: 1 })), /^conv2d: argument 'options' has unknown option 'strides' \(known: bias, stride, padding\)/],
    ['maxPool2d', () => P.maxPool2d(img, bad({ kernel: 2, strides: 1 })), /^max_pool2d: argument 'options' has unknown option 'strides' \(known: kernel, stride, padding\)/],
    ['batchNorm', () => P.batchNorm(img, ch, ch, bad({ epsilon: 1e-3 })), /^batch_norm: argument 'options' has unknown option 'epsilon' \(known: weight, bias, eps\)/],
    ['layerNorm', () => P.layerNorm(a, null, null, bad({ epsilon: 1e-3 })), /^layer_norm: argument 'options' has unknown option 'epsilon' \(known: eps\)/],
    ...(['sum', 'mean', 'max', 'min', 'argmax'] as const).map((op): [string, () => unknown, RegExp] => [op, () => P[op](a, 0, bad({ keepDim: true })), new RegExp(`^${op}: argument 'options' has unknown option 'keepDim' \\(known: keepdim\\)`)]),
    ['Tensor.sum', () => a.sum(0, bad({ keepDim: true })), /^sum: argument 'options' has unknown option 'keepDim'/],
    ['adamUpdate', () => P.adamUpdate(p, g, m, v, bad({ ...adam, weight_decay: 0.1 })), /^adam_update: argument 'options' has unknown option 'weight_decay' \(known: lr, beta1, beta2, eps, weightDecay, step\)/],
    ['lambUpdate', () => P.lambUpdate(p, g, m, v, bad({ ...adam, weight_decay: 0.1 })), /^lamb_update: argument 'options' has unknown option 'weight_decay'/],
    ['sgdUpdate', () => P.sgdUpdate(p, g, m, bad({ lr: 0.1, momentun: 0.9 })), /^sgd_update: argument 'options' has unknown option 'momentun' \(known: lr, momentum, weightDecay, nesterov\)/],
    ['tensor', () => P.tensor([1], undefined, bad({ dtpye: 'int32' })), /^tensor: argument 'options' has unknown option 'dtpye' \(known: dtype, device\)/],
    ['full', () => P.full([2], 1, bad({ dytpe: 'int32' })), /^full: argument 'options' has unknown option 'dytpe' \(known: dtype, device\)/],
    ['zeros', () => P.zeros([2], bad({ dev: 'cpu' })), /^full: argument 'options' has unknown option 'dev'/],
    ['ones', () => P.ones([2], bad({ dev: 'cpu' })), /^full: argument 'options' has unknown option 'dev'/],
    ['arange', () => P.arange(3, undefined, 1, bad({ dtyp: 'int32' })), /^arange: argument 'options' has unknown option 'dtyp' \(known: dtype, device\)/],
    ['randn', () => P.randn([2], bad({ sed: 1 })), /^randn: argument 'options' has unknown option 'sed' \(known: seed, device, mean, std\)/],
    ['randn, two keys', () => P.randn([2], bad({ sed: 1, mu: 0, std: 1 })), /^randn: argument 'options' has unknown options 'sed', 'mu' \(known: /],
    ['rand', () => P.rand([2], bad({ seed: 1, hi: 2 })), /^rand: argument 'options' has unknown option 'hi' \(known: seed, device, low, high\)/],
    ['crossEntropy', () => P.crossEntropy(a, ids, bad({ label_smoothing: 0.1 })), /^crossEntropy: argument 'options' has unknown option 'label_smoothing' \(known: labelSmoothing, reduction\)/],
    ['interpolate', () => P.interpolate(P.ones([1, 1, 2, 2]), [4, 4], bad({ mode: 'bilinear', align_corners: true })), /^interpolate: argument 'options' has unknown option 'align_corners' \(known: mode, alignCorners\)/],
    ['dropout', () => P.dropout(a, 0.1, bad({ training: false, sed: 1 })), /^dropout: argument 'opts' has unknown option 'sed' \(known: training, seed\)/],
    ['backward', () => P.backward(leaf, bad({ retain_graph: true })), /^backward: argument 'options' has unknown option 'retain_graph' \(known: gradient, retainGraph\)/],
    ['Tensor.backward', () => leaf.backward(bad({ retain_graph: true })), /^backward: argument 'options' has unknown option 'retain_graph'/],
    ['withoutInit', () => P.withoutInit(() => 1, bad({ dtyp: 'bfloat16' })), /^withoutInit: argument 'opts' has unknown option 'dtyp' \(known: dtype\)/],
    [
      'profiler.start',
      () => {
        P.profiler.start(bad({ shape: true }));
        P.profiler.stop();
      },
      /^profiler.start: argument 'options' has unknown option 'shape' \(known: shapes\)/,
    ],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
  t.is(leaf.grad, null, 'no backward ran');
  t.false(P.profiler.isProfiling());

  const dir = await mkdtemp(join(tmpdir(), 'perceiver-options-'));
  try {
    const file = join(dir, 'a.safetensors');
    await P.saveSafetensors(file, { a });
    const asyncCases: [string, () => Promise<unknown>, RegExp][] = [
      ['saveSafetensors', () => P.saveSafetensors(join(dir, 'b.safetensors'), { a }, bad({ metdata: {} })), /^saveSafetensors: argument 'opts' has unknown option 'metdata' \(known: metadata, dtypes\)/],
      ['readSafetensors', () => P.readSafetensors(file, bad({ name: ['a'] })), /^readSafetensors: argument 'opts' has unknown option 'name' \(known: names, device, dtype, onProgress, signal\)/],
      ['readSafetensors op', () => P.readSafetensors(file, bad({ op: 'x' })), /^readSafetensors: argument 'opts' has unknown option 'op'/],
      ['loadSafetensors', () => P.loadSafetensors(file, bad({ devcie: 'cpu' })), /^loadSafetensors: argument 'opts' has unknown option 'devcie' \(known: names, /],
      ['loadRecords', () => P.loadRecords([], bad({ devcie: 'cpu' })), /^loadRecords: argument 'opts' has unknown option 'devcie' \(known: device, dtype, onProgress, signal, op\)/],
    ];
    for (const [name, fn, message] of asyncCases) await t.throwsAsync(fn, { instanceOf: TypeError, message }, name);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // Only own keys count, and an explicit undefined of a known one is still no option.
  const inherited = Object.assign(Object.create({ junk: 1 }) as object, { transB: true });
  const y = P.matmul(a, a, inherited);
  t.deepEqual(y.shape, [2, 2]);
  const z = P.randn([2], { seed: 1, std: undefined });
  for (const x of [a, q, img, w, ch, ids, p, g, m, v, leaf, y, z]) x.dispose();
});

test('worker threads terminated while they issue ops and wait on reads end quietly: no abort of the process, and the main thread works on', async (t) => {
  t.timeout(120_000);
  const lib = JSON.stringify(join(here, '..', 'lib', 'index.js'));
  // Each worker queues matmuls and reads in a loop until it is terminated; throwing a
  // JS error into a dying worker used to escape as a C++ exception (SIGABRT).
  const worker = `(async () => { const P = await import(${lib}); const { parentPort } = await import('node:worker_threads');
    parentPort.postMessage('go'); const reads = [];
    for (let i = 0; ; i++) { const y = P.matmul(P.randn([64, 64]), P.randn([64, 64])); reads.push(y.data()); P.reshape(y, [4096]);
      if (i % 20 === 19) await new Promise((r) => setImmediate(r)); } })();`;
  const main = `import { Worker } from 'node:worker_threads';
    const P = await import(${lib});
    for (let round = 0; round < 10; round++) {
      const ws = Array.from({ length: 3 }, () => new Worker(${JSON.stringify(worker)}, { eval: true }));
      await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
      await new Promise((r) => setTimeout(r, round % 4));
      await Promise.all(ws.map((w) => w.terminate()));
    }
    console.log(JSON.stringify(Array.from(await P.add(P.ones([2]), 1).data())));`;
  const r = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }>((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', main], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PERCEIVER_DEVICE: 'cpu' } });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
  });
  t.is(r.signal, null, r.err.slice(-2000));
  t.is(r.code, 0, r.err.slice(-2000));
  t.is(r.out.trim().split('\n').pop(), '[2,2]');
});

test('tidy(async fn) is refused, and the abandoned promise rejecting later (its tensors were disposed) does not end the process', async (t) => {
  t.throws(
    () =>
      P.tidy((async () => {
        const x = P.ones([2]);
        await null;
        return x.add(1); // x was disposed when tidy refused the promise
      }) as never),
    { instanceOf: TypeError, message: /tidy: argument 'fn' must be synchronous; it returned a Promise/ },
  );
  // Long enough for the promise to settle: an unhandled rejection would fail this file.
  await new Promise((r) => setTimeout(r, 50));
});
