// Bad calls across the API fail with the right error class and a message that names
// the op and the argument (and, for shapes, expected vs received), never with a
// crash. The table (test/helpers/bad-calls-child.ts) runs in a CHILD process: a
// segfault or abort there shows up below as a failed row with the child's signal,
// and the child is restarted after that row so every other row is still checked.
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
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
