// Leak check, run by test/memory.test.ts as
//   node --expose-gc dist/test/helpers/leak-child.js [cycles] [warmup]
//   node --expose-gc dist/test/helpers/leak-child.js finalize
//   node dist/test/helpers/leak-child.js pressure
// Each cycle creates tensors, runs a mix of ops (matmul with bias and activation,
// softmax, layerNorm, attention, concat, views, elementwise, reductions, tidy) and
// disposes everything. Prints one JSON line with memory() and RSS at the start,
// after the warm-up and at the end.
import * as P from '../../lib/index.js';
import { live } from './device.js';

const mode = process.argv[2] === 'finalize' || process.argv[2] === 'pressure' ? process.argv[2] : 'cycles';
const cycles = Number(process.argv[2] ?? 10_000);
const warmup = Number(process.argv[3] ?? 1_000);

const gc = (globalThis as { gc?: () => void }).gc;

// Parameters shared by all cycles (created once, disposed at the end).
const w = P.randn([16, 16], { seed: 1 });
const bias = P.randn([16], { seed: 2 });
const gamma = P.ones([16]);
const beta = P.zeros([16]);
const ids = P.tensor([0, 3, 5, 7], undefined, { dtype: 'int32' });
const table = P.randn([8, 16], { seed: 3 });

function cycle(i: number): P.Tensor {
  // Manual disposal of every tensor.
  const x = P.randn([2, 8, 16], { seed: i });
  const y = P.matmul(x, w, { bias, activation: 'gelu' });
  const s = P.softmax(y);
  const n = P.layerNorm(s, gamma, beta);
  const q = n.reshape([2, 8, 2, 8]); // view
  const a = P.attention(q, q, q);
  const c = P.concat([a, q], 3);
  const ct = c.transpose(1, 2); // views
  const v = ct.slice(3, 0, 8, 2);
  const e = P.embedding(table, ids);
  const m = P.mean(v, -1);
  for (const t of [x, y, s, n, q, a, c, ct, v, e]) t.dispose();
  // The same again through tidy(): only the returned tensor survives.
  const r = P.tidy(() => {
    const x2 = P.randn([4, 16], { seed: i + 1 });
    const h = P.linear(x2, w, bias, 'relu').mul(0.5).add(1);
    const u = P.unsqueeze(h, 0).broadcastTo([2, 4, 16]).contiguous();
    const z = P.tidy(() => [P.logSoftmax(u), P.max(u, -1)]);
    return P.add(P.sum(z[0], -1), z[1]).add(P.mean(P.sum(m, 1), 1, { keepdim: true }));
  });
  m.dispose();
  return r;
}

function drain(): void {
  const z = P.zeros([1]);
  z.dataSync();
  z.dispose();
}

function settle(): void {
  drain();
  if (gc) {
    gc();
    gc();
  }
}

async function run(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = cycle(i);
    // Read now and then, so the queue stays short and reads are part of the mix.
    if (i % 50 === 0) await r.data();
    r.dispose();
  }
}

async function main(): Promise<void> {
  settle();
  const start = live();
  const rssStart = process.memoryUsage().rss;
  await run(warmup);
  settle();
  const warm = live();
  const { rss: rssWarm, heapTotal: heapWarm } = process.memoryUsage();
  const t0 = Date.now();
  await run(cycles);
  const ms = Date.now() - t0;
  settle();
  const end = live();
  const { rss: rssEnd, heapTotal: heapEnd } = process.memoryUsage();
  for (const t of [w, bias, gamma, beta, ids, table]) t.dispose();
  settle();
  const final = live();
  process.stdout.write(
    JSON.stringify({ gc: typeof gc === 'function', cycles, warmup, ms, start, warm, end, final, rssStart, rssWarm, rssEnd, heapWarm, heapEnd }) + '\n',
  );
}

// Tensors that are never disposed are freed by the garbage collector (a
// FinalizationRegistry is the safety net): drop 4,500 of them and collect. A third
// of them leave a tidy() scope (returned from it, or kept), where the net is set
// only as they escape. Then 500 autograd graphs dropped without backward(): their
// nodes' saved tensors (two per product) go with the nodes.
async function finalize(): Promise<void> {
  settle();
  const start = live();
  (() => {
    for (let i = 0; i < 1000; i++) P.randn([64], { seed: i }).add(1).mul(2);
    for (let i = 0; i < 500; i++) P.tidy(() => P.tidy(() => P.randn([64], { seed: i }).add(1)).mul(2));
    for (let i = 0; i < 500; i++) P.tidy(() => { P.keep(P.randn([64], { seed: i })); P.keep(P.ones([3])); });
    for (let i = 0; i < 500; i++) {
      const w = P.randn([64], { seed: i });
      w.requiresGrad = true;
      P.sum(w.mul(w), 0);
    }
  })();
  const made = live();
  // Finalizers run after a collection, from the event loop: collect and yield a few times.
  for (let k = 0; k < 20; k++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  settle();
  const end = live();
  process.stdout.write(JSON.stringify({ gc: typeof gc === 'function', start, made, end }) + '\n');
}

// A loop that never disposes what it makes, as code written for torch's reference
// counting would: per iteration 8 MiB of plain tensors and a 4 MiB autograd graph
// (a leaf, its square, whose node saves the leaf twice, and sums) dropped without
// backward(), then an await, as a server awaits each request. Nothing calls gc():
// only V8's own heuristics decide when the dropped Tensors are collected, so they
// must know what the handles hold (3 GiB over the loop, were nothing collected;
// bindings/addon.h, HandleTable).
// Prints the most bytes live at any iteration.
async function pressure(): Promise<void> {
  const iterations = 250;
  const start = live();
  let peakBytes = 0;
  const t0 = Date.now();
  for (let i = 0; i < iterations; i++) {
    const x = P.randn([1024, 1024], { seed: i });
    x.mul(2);
    const w = P.randn([512, 1024], { seed: i });
    w.requiresGrad = true;
    await P.sum(P.sum(w.mul(w), 1), 0).data();
    peakBytes = Math.max(peakBytes, live().bytes - start.bytes);
  }
  const ms = Date.now() - t0;
  process.stdout.write(JSON.stringify({ iterations, ms, peakBytes, heapUsed: process.memoryUsage().heapUsed }) + '\n');
}

(mode === 'finalize' ? finalize() : mode === 'pressure' ? pressure() : main()).catch((err) => {
  process.stderr.write(`leak-child: ${err?.stack ?? err}\n`);
  process.exit(1);
});
