// Fused attention against its two matmuls alone, through the public API, on the
// Perceiver's attention shapes; plus the extra memory each way needs. With
// --backward: the attention's gradient by the fused kernel against the gradient
// composed from products (logits, softmax, dP, dS and three more products; what
// runs where a backend lacks the kernel), from a finished forward to all three
// gradients computed, and the memory beyond the gradients themselves.
//
//   npm run bench:attention                 # table
//   npm run bench:attention -- --json       # one JSON object on stdout
//   npm run bench:attention -- --reps 11 --no-memory
//   npm run bench:attention -- --backward [--dropout 0.1]
//   npm run bench:attention -- --quick      # small shapes: checks that it runs
//
// Time: from issuing the op(s) to `await out.data()` returning (ops are queued, so
// that is the only honest end point; it includes copying the output out, the same
// bytes both ways). "2 matmuls" is S = scale * Q Kᵀ then O = S V, per head as a
// batched matmul over [H, N, D] operands, with S materialised and no softmax in
// between: the bar the fused kernel (which also does the softmax) is held to. The
// two are run alternately within each rep, so that load from other processes falls
// on both; the figure is the median over --reps after two warm-up runs.
//
// Each measurement runs in a child process with its own allocator settings:
// - "warm": MALLOC_MMAP_MAX_=0 and a huge MALLOC_TRIM_THRESHOLD_, so memory freed
//   by one call stays mapped and is reused by the next. glibc otherwise maps every
//   block over 32 MiB afresh, and first-touch page faults on S (98 MiB for the image
//   encoder) can cost more than the product itself, more so in VMs. This is the
//   "matmuls alone" comparison.
// - "default": glibc as configured, i.e. what a user sees; shown for reference.
// - memory: process RSS is all we can see from here (the kernel's scratch is not a
//   tensor, so memory() does not count it). The child runs with
//   MALLOC_MMAP_THRESHOLD_ fixed at 128 KiB, so every block from 128 KiB up is mapped
//   fresh and returned on free (by default glibc raises the threshold after the
//   first free, and later blocks come from memory it kept, invisible to RSS). After
//   warm-up calls it resets the peak (writing 5 to /proc/self/clear_refs resets
//   VmHWM), reads VmRSS, runs one call and waits on a one-row reduction of the output
//   (so no copy of it is made), then reads VmHWM. Extra memory = peak - before -
//   the output tensor's bytes. Where clear_refs cannot be written, RSS is sampled
//   every millisecond during the call instead (which can miss a short peak).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { add, attention, backends, backward, gradKernels, matmul, memory, randn, resetPeakMemoryStats, sum, type Tensor } from '../lib/index.js';

interface Shape {
  label: string;
  nq: number;
  nk: number;
  heads: number;
  dqk: number;
  dv: number;
}

// --quick: the same cases at a fraction of their size, to check that the script runs.
const QUICK = process.argv.includes('--quick');
const SHAPES: Shape[] = QUICK
  ? [
      { label: 'image encoder cross-attention', nq: 64, nk: 1024, heads: 1, dqk: 29, dv: 29 },
      { label: 'latent self-attention', nq: 64, nk: 64, heads: 8, dqk: 16, dv: 16 },
      { label: 'MLM decoder', nq: 128, nk: 32, heads: 8, dqk: 8, dv: 12 },
      { label: 'classifier decoder (1 query)', nq: 1, nk: 64, heads: 1, dqk: 64, dv: 64 },
    ]
  : [
      { label: 'image encoder cross-attention', nq: 512, nk: 50176, heads: 1, dqk: 261, dv: 261 },
      { label: 'latent self-attention', nq: 512, nk: 512, heads: 8, dqk: 128, dv: 128 },
      { label: 'MLM decoder', nq: 2048, nk: 256, heads: 8, dqk: 32, dv: 96 },
      { label: 'classifier decoder (1 query)', nq: 1, nk: 512, heads: 1, dqk: 1024, dv: 1024 },
    ];

const MMAP_THRESHOLD = String(128 * 1024);
const MALLOC_VARS = ['MALLOC_MMAP_MAX_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TOP_PAD_', 'GLIBC_TUNABLES'];
type ChildKind = 'time' | 'memory';

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  qh: Tensor;
  kh: Tensor;
  vh: Tensor;
}

async function makeInputs(s: Shape): Promise<Inputs> {
  const t: Inputs = {
    // The fused op's layout, [B, N, H, D] ...
    q: randn([1, s.nq, s.heads, s.dqk], { seed: 1 }),
    k: randn([1, s.nk, s.heads, s.dqk], { seed: 2 }),
    v: randn([1, s.nk, s.heads, s.dv], { seed: 3 }),
    // ... and head-major operands for the batched matmuls (values do not matter).
    qh: randn([s.heads, s.nq, s.dqk], { seed: 4 }),
    kh: randn([s.heads, s.nk, s.dqk], { seed: 5 }),
    vh: randn([s.heads, s.nk, s.dv], { seed: 6 }),
  };
  for (const x of Object.values(t)) await x.data();
  return t;
}

function disposeAll(t: Inputs): void {
  for (const x of Object.values(t)) x.dispose();
}

function issueFused(t: Inputs): Tensor {
  return attention(t.q, t.k, t.v);
}

function issueUnfused(s: Shape, t: Inputs): Tensor {
  const logits = matmul(t.qh, t.kh, { transB: true, alpha: 1 / Math.sqrt(s.dqk) });
  const out = matmul(logits, t.vh);
  // Safe while queued: the pending matmul keeps its input's storage alive.
  logits.dispose();
  return out;
}

async function timeOnce(issue: () => Tensor): Promise<number> {
  const t0 = performance.now();
  const out = issue();
  await out.data();
  const ms = performance.now() - t0;
  out.dispose();
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// ---- the gradient (--backward) ----------------------------------------------------

interface Forward {
  leaves: Tensor[];
  out: Tensor | null;
  gradient: Tensor;
  kernels: boolean;
}

// --dropout P: attention dropout (fused where the backend can; the composed side
// materialises the weights and their mask). The forward pass then counts too: the
// composed form's forward builds the [Nq, Nk] matrices its backward reads.
const DROPOUT = (() => {
  const i = process.argv.indexOf('--dropout');
  return i < 0 ? 0 : Number(process.argv[i + 1]);
})();

function issueForward(f: Forward): Tensor {
  const [q, k, v] = f.leaves;
  // With dropout the forward picks the gradient's form: composed only when asked.
  if (!f.kernels && DROPOUT > 0) process.env.PERCEIVER_ATTENTION_COMPOSE = '1';
  try {
    return attention(q, k, v, DROPOUT > 0 ? { dropout: DROPOUT, seed: 1 } : {});
  } finally {
    delete process.env.PERCEIVER_ATTENTION_COMPOSE;
  }
}

// Leaves q, k, v that require gradients, and (without dropout) a finished forward.
async function forwardForGrad(t: Inputs, kernels: boolean): Promise<Forward> {
  gradKernels.enabled = kernels;
  const leaves = [t.q, t.k, t.v].map((x) => {
    const l = add(x, 0);
    l.requiresGrad = true;
    return l;
  });
  const f: Forward = { leaves, out: null, gradient: randn(t.q.shape.slice(0, 3).concat([t.v.shape[3]]), { seed: 7 }), kernels };
  if (DROPOUT === 0) f.out = issueForward(f);
  // Waits on one-row reductions, not the tensors' own data: a read's host buffer
  // lives until V8 collects it, and would blur the memory figures.
  await Promise.all(
    [f.gradient, ...leaves, ...(f.out ? [f.out] : [])].map(async (x) => {
      const r = sum(x, x.rank - 1);
      await r.data();
      r.dispose();
    }),
  );
  return f;
}

// Issues the backward pass (with dropout, the forward first); returns a tensor queued
// after all of it (the queue runs in order), whose data() is the end point.
function issueBackward(f: Forward): Tensor {
  if (!f.out) f.out = issueForward(f);
  backward(f.out, { gradient: f.gradient });
  return sum(f.leaves[0].grad!, 1);
}

function disposeForward(f: Forward): void {
  for (const l of f.leaves) l.grad?.dispose();
  for (const x of [...f.leaves, f.out, f.gradient]) x?.dispose();
  gradKernels.enabled = true;
}

async function timeBackward(t: Inputs, kernels: boolean): Promise<number> {
  const f = await forwardForGrad(t, kernels);
  const ms = await timeOnce(() => issueBackward(f));
  disposeForward(f);
  return ms;
}

async function timeShape(s: Shape, reps: number, grad: boolean): Promise<{ fusedMs: number; matmulsMs: number }> {
  const t = await makeInputs(s);
  const fused: number[] = [];
  const unfused: number[] = [];
  for (let i = 0; i < 2 + reps; i++) {
    const f = grad ? await timeBackward(t, true) : await timeOnce(() => issueFused(t));
    const u = grad ? await timeBackward(t, false) : await timeOnce(() => issueUnfused(s, t));
    if (i >= 2) {
      fused.push(f);
      unfused.push(u);
    }
  }
  disposeAll(t);
  return { fusedMs: median(fused), matmulsMs: median(unfused) };
}

// ---- memory (child process) ------------------------------------------------------

function statusKb(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]);
}

function canResetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

// Peak RSS growth (bytes) while `issue` runs, waiting on a 1-row reduction of its
// output so that the output is never copied to JS. outBytes: the result's own bytes
// (by default the output's).
async function peakGrowth(issue: () => Tensor, useHwm: boolean, resultBytes?: number): Promise<{ bytes: number; outBytes: number }> {
  let before: number;
  let sampledPeak = 0;
  let timer: NodeJS.Timeout | undefined;
  if (useHwm) {
    writeFileSync('/proc/self/clear_refs', '5');
    before = statusKb('VmRSS') * 1024;
  } else {
    before = process.memoryUsage.rss();
    sampledPeak = before;
    timer = setInterval(() => {
      sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
    }, 1);
  }
  const out = issue();
  const probe = sum(out, out.rank - 1);
  await probe.data();
  const peak = useHwm ? statusKb('VmHWM') * 1024 : Math.max(sampledPeak, process.memoryUsage.rss());
  if (timer) clearInterval(timer);
  const outBytes = resultBytes ?? out.size * 4;
  probe.dispose();
  out.dispose();
  return { bytes: peak - before, outBytes };
}

interface MemoryRow {
  fusedExtraMiB: number;
  matmulsExtraMiB: number;
}

// The gradient's peak memory (the three gradients included: they need not be live at
// the composed gradient's peak), from the host allocator's own count (tensors, and
// the fused kernel's scratch, which it also takes from there): its cache of freed
// blocks hides reuse from RSS.
async function backwardGrowth(t: Inputs, kernels: boolean): Promise<{ bytes: number; outBytes: number }> {
  const f = await forwardForGrad(t, kernels);
  resetPeakMemoryStats();
  const before = memory().cpu.allocatedBytes;
  const probe = issueBackward(f);
  await probe.data();
  const bytes = memory().cpu.peakAllocatedBytes - before;
  probe.dispose();
  disposeForward(f);
  return { bytes, outBytes: 0 };
}

async function memoryChild(grad: boolean): Promise<void> {
  const useHwm = canResetPeak();
  const rows: MemoryRow[] = [];
  for (const s of SHAPES) {
    const t = await makeInputs(s);
    const measure = (fused: boolean) =>
      grad ? backwardGrowth(t, fused) : fused ? peakGrowth(() => issueFused(t), useHwm) : peakGrowth(() => issueUnfused(s, t), useHwm);
    // Warm-up: thread pool, the GEMM's per-thread packing buffers, V8's code.
    for (let i = 0; i < 2; i++) {
      await measure(true);
      await measure(false);
    }
    const f = await measure(true);
    const u = await measure(false);
    rows.push({
      fusedExtraMiB: (f.bytes - f.outBytes) / 2 ** 20,
      matmulsExtraMiB: (u.bytes - u.outBytes) / 2 ** 20,
    });
    disposeAll(t);
  }
  if (memory().cpu.tensors !== 0) throw new Error(`leaked ${memory().cpu.tensors} tensors`);
  const method = grad ? "the host allocator's peak allocated bytes" : useHwm ? 'VmHWM reset via clear_refs' : 'RSS sampled every 1 ms';
  console.log(JSON.stringify({ method, rows }));
}

async function timeChild(reps: number, grad: boolean): Promise<void> {
  const rows: { fusedMs: number; matmulsMs: number }[] = [];
  for (const s of SHAPES) rows.push(await timeShape(s, reps, grad));
  console.log(JSON.stringify({ rows }));
}

// Runs this script as a child (see the header for why) and returns its JSON line.
function runChild<T>(kind: ChildKind, extraEnv: Record<string, string>, args: string[]): T | { error: string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of MALLOC_VARS) delete env[k];
  Object.assign(env, extraEnv);
  const script = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [...process.execArgv, script, '--child', kind, ...args], {
    env,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.error) return { error: `could not start the ${kind} child: ${r.error.message}` };
  if (r.status !== 0) return { error: `${kind} child exited with ${r.status}: ${r.stderr.trim().split('\n').pop()}` };
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as T;
  } catch {
    return { error: `unexpected output from the ${kind} child: ${r.stdout.slice(0, 200)}` };
  }
}

// ---- main ------------------------------------------------------------------------

interface Options {
  json: boolean;
  reps: number;
  memory: boolean;
  backward: boolean;
  child: ChildKind | null;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { json: false, reps: 7, memory: true, backward: false, child: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--backward') o.backward = true;
    else if (a === '--quick') continue;
    else if (a === '--dropout' && i + 1 < argv.length && Number(argv[i + 1]) >= 0 && Number(argv[i + 1]) < 1) i++;
    else if (a === '--no-memory') o.memory = false;
    else if (a === '--child' && (argv[i + 1] === 'time' || argv[i + 1] === 'memory')) o.child = argv[++i] as ChildKind;
    else if (a === '--reps' && i + 1 < argv.length) o.reps = Math.max(1, Number.parseInt(argv[++i], 10) || 7);
    else if (a === '--help' || a === '-h') {
      console.log('usage: bench-attention [--backward [--dropout P]] [--json] [--reps N] [--no-memory] [--quick]');
      process.exit(0);
    } else {
      console.error(`bench-attention: unknown argument ${a}`);
      process.exit(2);
    }
  }
  return o;
}

type TimeRows = { rows: { fusedMs: number; matmulsMs: number }[] };
type MemRows = { method: string; rows: MemoryRow[] };

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.child === 'memory') return memoryChild(opts.backward);
  if (opts.child === 'time') return timeChild(opts.reps, opts.backward);
  const cpu = backends()[0];
  const mode = [
    ...(opts.backward ? ['--backward', ...(DROPOUT > 0 ? ['--dropout', String(DROPOUT)] : [])] : []),
    ...(QUICK ? ['--quick'] : []),
  ];
  const reps = ['--reps', String(opts.reps), ...mode];

  const warm = runChild<TimeRows>('time', { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 40) }, reps);
  if ('error' in warm) throw new Error(warm.error);
  const dflt = runChild<TimeRows>('time', {}, reps);
  const mem = opts.memory
    ? runChild<MemRows>('memory', { MALLOC_MMAP_THRESHOLD_: MMAP_THRESHOLD }, mode)
    : { error: 'skipped (--no-memory)' };
  const memRows = 'error' in mem ? null : mem.rows;
  const dfltRows = 'error' in dflt ? null : dflt.rows;

  const rows = SHAPES.map((s, i) => ({
    ...s,
    shape: `B=1 Nq=${s.nq} Nk=${s.nk} H=${s.heads} Dqk=${s.dqk} Dv=${s.dv}`,
    fusedMs: warm.rows[i].fusedMs,
    matmulsMs: warm.rows[i].matmulsMs,
    ratio: warm.rows[i].fusedMs / warm.rows[i].matmulsMs,
    defaultMallocFusedMs: dfltRows ? dfltRows[i].fusedMs : null,
    defaultMallocMatmulsMs: dfltRows ? dfltRows[i].matmulsMs : null,
    fusedExtraMiB: memRows ? memRows[i].fusedExtraMiB : null,
    matmulsExtraMiB: memRows ? memRows[i].matmulsExtraMiB : null,
    logitsMiB: (s.heads * s.nq * s.nk * 4) / 2 ** 20,
  }));

  if (opts.json) {
    console.log(
      JSON.stringify(
        {
          threads: cpu.threads,
          simd: cpu.simd,
          reps: opts.reps,
          defaultMalloc: 'error' in dflt ? { error: dflt.error } : 'ok',
          memoryMethod: 'error' in mem ? { error: mem.error } : mem.method,
          results: rows,
        },
        null,
        2,
      ),
    );
    return;
  }

  const f = (x: number | null, d = 2): string => (x === null ? '-' : x.toFixed(d));
  const other = opts.backward ? 'composed' : '2 matmuls';
  console.log(
    opts.backward
      ? `attention gradient${DROPOUT > 0 ? ` with dropout ${DROPOUT}` : ''}: fused kernel vs composed from products — ${cpu.threads} threads, ${cpu.simd}, median of ${opts.reps} runs (alternating)`
      : `fused attention vs its two matmuls — ${cpu.threads} threads, ${cpu.simd}, median of ${opts.reps} runs (alternating)`,
  );
  const table = [
    opts.backward
      ? ['case', 'shape', 'fused ms', `${other} ms`, 'ratio', 'default malloc: fused', other, 'fused peak MiB', `${other} peak MiB`, 'gradients MiB']
      : ['case', 'shape', 'fused ms', `${other} ms`, 'ratio', 'default malloc: fused', other, 'fused extra MiB', 'matmuls extra MiB'],
  ];
  for (const r of rows) {
    table.push([
      r.label,
      r.shape,
      f(r.fusedMs),
      f(r.matmulsMs),
      f(r.ratio),
      f(r.defaultMallocFusedMs),
      f(r.defaultMallocMatmulsMs),
      f(r.fusedExtraMiB),
      f(r.matmulsExtraMiB),
      ...(opts.backward ? [f((((r.nq + r.nk) * r.dqk + r.nk * r.dv) * r.heads * 4) / 2 ** 20)] : []),
    ]);
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  for (const row of table) console.log(row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
  console.log('');
  if (opts.backward)
    console.log(
      (DROPOUT > 0
        ? 'time: ms from issuing the forward pass (with dropout) to all three gradients computed. Main columns '
        : 'time: ms from issuing backward() after a finished forward to all three gradients computed. Main columns ') +
        'with a warm allocator (freed memory reused); "default malloc" as glibc is configured, where each ' +
        '[Nq, Nk] matrix of the composed gradient is mapped afresh.',
    );
  else
    console.log(
      'time: ms from issue to `await out.data()`. Main columns with a warm allocator (freed memory reused, so S costs ' +
        'no first-touch page faults: the matmuls alone); "default malloc" as glibc is configured, where the unfused ' +
        'path also pays for mapping S afresh each call.',
    );
  if ('error' in dflt) console.log(`default-malloc timing failed: ${dflt.error}`);
  if ('error' in mem) {
    console.log(`memory: not measured: ${mem.error}`);
  } else {
    if (opts.backward)
      console.log(
        `memory: peak growth of ${mem.method} during one ${DROPOUT > 0 ? 'forward and ' : ''}backward pass, the three gradients included, in a child ` +
          'process. The composed gradient\'s is mostly its [H, Nq, Nk] matrices (logits, P, dP, dS); the fused ' +
          "kernel's is its per-thread blocks and the dQ partials of split key ranges (16 MiB at most). Blocks of " +
          '1 MiB and up are counted rounded to 2 MiB.',
      );
    else
      console.log(
        `memory: peak RSS growth during one call minus the output tensor, in a child process (${mem.method}; ` +
          `MALLOC_MMAP_THRESHOLD_=${MMAP_THRESHOLD} so blocks from 128 KiB up are fresh mappings). "matmuls extra" is ` +
          'mostly the materialised logits (H x Nq x Nk floats); the fused kernel\'s is its per-thread block scratch. ' +
          'About +-0.5 MiB of noise from V8 and the allocator.',
      );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
