// fp32 matmul throughput through the public API, next to OpenBLAS (NumPy) on the
// same machine and thread count, run from this script so both see the same load.
//
//   npm run bench:gemm                    # table
//   npm run bench:gemm -- --json          # one JSON object on stdout
//   npm run bench:gemm -- --reps 15 --no-baseline
//
// Our time for one product runs from issuing matmul() to `await out.data()`
// returning (the queue is asynchronous, so that is the only honest end point; it
// includes copying the result out). The figure is the median over --reps runs after
// two warm-up runs. A second column repeats the measurement ending at
// out.dataSync(), which shows how much of the time is the asynchronous read. The baseline runs Debian's /usr/bin/python3 with NumPy over
// OpenBLAS (apt-get install python3-numpy libopenblas0-pthread; python3-threadpoolctl
// to report which kernel OpenBLAS picked), with OPENBLAS_CORETYPE and
// OPENBLAS_L2_SIZE removed from its environment so OpenBLAS auto-detects its best
// kernel, and OPENBLAS_NUM_THREADS set to our thread count (PERCEIVER_NUM_THREADS).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { backends, matmul, randn, type Tensor } from '../lib/index.js';

interface Shape {
  m: number;
  n: number;
  k: number;
  transB: boolean;
  label: string;
}

const SHAPES: Shape[] = [
  { m: 1024, n: 1024, k: 1024, transB: false, label: 'square 1024' },
  { m: 2048, n: 2048, k: 2048, transB: false, label: 'square 2048' },
  { m: 512, n: 1024, k: 1024, transB: true, label: 'latent linear' },
  { m: 512, n: 1024, k: 261, transB: true, label: 'input projection' },
  { m: 1, n: 1024, k: 1024, transB: true, label: 'single row' },
];

const PYTHON = '/usr/bin/python3';

// Same protocol as ours: inputs made beforehand, two warm-up runs, median of reps.
const BASELINE_PY = `
import json, sys, time
try:
    import numpy as np
except ImportError as e:
    print(json.dumps({"error": "numpy is not installed for " + sys.executable + ": " + str(e)}))
    sys.exit(0)
shapes = json.loads(sys.argv[1])
reps = int(sys.argv[2])
kernel = None
try:
    from threadpoolctl import threadpool_info
    for lib in threadpool_info():
        if lib.get("internal_api") == "openblas":
            kernel = {"version": lib.get("version"), "architecture": lib.get("architecture"),
                      "threads": lib.get("num_threads"), "library": lib.get("filepath")}
except Exception:
    pass
rng = np.random.default_rng(0)
results = []
for s in shapes:
    a = rng.standard_normal((s["m"], s["k"]), dtype=np.float32)
    b = rng.standard_normal((s["n"], s["k"]) if s["transB"] else (s["k"], s["n"]), dtype=np.float32)
    bb = b.T if s["transB"] else b
    for _ in range(2):
        a @ bb
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ bb
        times.append(time.perf_counter() - t0)
    times.sort()
    results.append(times[len(times) // 2])
print(json.dumps({"numpy": np.__version__, "kernel": kernel, "seconds": results}))
`;

interface Baseline {
  seconds?: number[];
  kernel?: { version?: string; architecture?: string; threads?: number; library?: string } | null;
  numpy?: string;
  error?: string;
}

function runBaseline(shapes: Shape[], reps: number, threads: number): Baseline {
  if (!existsSync(PYTHON)) return { error: `${PYTHON} not found` };
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(PYTHON, ['-c', BASELINE_PY, JSON.stringify(shapes), String(reps)], {
    env,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.error) return { error: `${PYTHON} failed to start: ${r.error.message}` };
  if (r.status !== 0) return { error: `${PYTHON} exited with ${r.status}: ${r.stderr.trim().split('\n').pop()}` };
  try {
    return JSON.parse(r.stdout) as Baseline;
  } catch {
    return { error: `unexpected output from ${PYTHON}: ${r.stdout.slice(0, 200)}` };
  }
}

function median(times: number[]): number {
  const t = [...times].sort((x, y) => x - y);
  return t[Math.floor(t.length / 2)];
}

// Seconds per product: [until `await out.data()` returns, until `out.dataSync()`
// returns]. The second isolates the product from the asynchronous read's own
// latency, which is reported separately and not used for the ratio.
async function timeOurs(s: Shape, reps: number): Promise<[number, number]> {
  const a = randn([s.m, s.k], { seed: 1 });
  const b = randn(s.transB ? [s.n, s.k] : [s.k, s.n], { seed: 2 });
  await a.data();
  await b.data();
  const once = async (sync: boolean): Promise<number> => {
    const t0 = performance.now();
    const out: Tensor = matmul(a, b, { transB: s.transB });
    if (sync) out.dataSync();
    else await out.data();
    const ms = performance.now() - t0;
    out.dispose();
    return ms / 1e3;
  };
  const result: number[] = [];
  for (const sync of [false, true]) {
    for (let i = 0; i < 2; i++) await once(sync);
    const times: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await once(sync));
    result.push(median(times));
  }
  a.dispose();
  b.dispose();
  return [result[0], result[1]];
}

function parseArgs(argv: string[]): { json: boolean; reps: number; baseline: boolean } {
  const o = { json: false, reps: 10, baseline: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') o.json = true;
    else if (a === '--no-baseline') o.baseline = false;
    else if (a === '--reps' && i + 1 < argv.length) o.reps = Math.max(1, Number.parseInt(argv[++i], 10) || 10);
    else if (a === '--help' || a === '-h') {
      console.log('usage: bench-gemm [--json] [--reps N] [--no-baseline]');
      process.exit(0);
    } else {
      console.error(`bench-gemm: unknown argument ${a}`);
      process.exit(2);
    }
  }
  return o;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const cpu = backends()[0];
  const threads = cpu.threads ?? 1;
  const gflops = (s: Shape, sec: number): number => (2 * s.m * s.n * s.k) / sec / 1e9;

  const ours: number[] = [], oursSync: number[] = [];
  for (const s of SHAPES) {
    const [t, tSync] = await timeOurs(s, opts.reps);
    ours.push(t);
    oursSync.push(tSync);
  }
  const base: Baseline = opts.baseline ? runBaseline(SHAPES, opts.reps, threads) : { error: 'skipped (--no-baseline)' };

  const rows = SHAPES.map((s, i) => {
    const oursG = gflops(s, ours[i]);
    const blasSec = base.seconds?.[i];
    const blasG = blasSec ? gflops(s, blasSec) : null;
    return {
      shape: `${s.m}x${s.n}x${s.k}${s.transB ? ' (B^T)' : ''}`,
      label: s.label,
      m: s.m,
      n: s.n,
      k: s.k,
      transB: s.transB,
      oursMs: ours[i] * 1e3,
      oursGflops: oursG,
      oursDataSyncGflops: gflops(s, oursSync[i]),
      openblasMs: blasSec ? blasSec * 1e3 : null,
      openblasGflops: blasG,
      ratio: blasG ? oursG / blasG : null,
    };
  });

  if (opts.json) {
    console.log(
      JSON.stringify(
        {
          threads,
          simd: cpu.simd,
          reps: opts.reps,
          baseline: base.error ? { error: base.error } : { numpy: base.numpy, openblas: base.kernel ?? null },
          results: rows,
        },
        null,
        2,
      ),
    );
    return;
  }

  console.log(`perceiver-io sgemm vs OpenBLAS — ${threads} threads, ${cpu.simd}, median of ${opts.reps} runs`);
  if (base.error) {
    console.log(`OpenBLAS baseline unavailable: ${base.error}`);
    if (opts.baseline)
      console.log('(install it with: apt-get install -y python3-numpy libopenblas0-pthread python3-threadpoolctl)');
  } else if (base.kernel) {
    console.log(`OpenBLAS ${base.kernel.version} kernel=${base.kernel.architecture} threads=${base.kernel.threads} (numpy ${base.numpy})`);
  } else {
    console.log(`OpenBLAS via numpy ${base.numpy} (install python3-threadpoolctl to see which kernel it uses)`);
  }
  const table = [['shape', 'case', 'ours GFLOP/s', 'OpenBLAS GFLOP/s', 'ratio', 'ours, dataSync()']];
  for (const r of rows) {
    table.push([
      r.shape,
      r.label,
      r.oursGflops.toFixed(1),
      r.openblasGflops === null ? '-' : r.openblasGflops.toFixed(1),
      r.ratio === null ? '-' : r.ratio.toFixed(2),
      r.oursDataSyncGflops.toFixed(1),
    ]);
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  for (const row of table) console.log(row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
  console.log('ours: from issuing matmul() to `await out.data()` returning (ratio uses this);');
  console.log('"ours, dataSync()": the same product read back with out.dataSync() instead.');
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
