// GPU throughput of the CUDA backend next to PyTorch on the same GPU: GEMM
// (TFLOP/s, cuBLASLt vs torch.matmul), the fused attention (vs torch's SDPA, and
// its matmul-softmax form where SDPA refuses a shape) at the two shapes that matter
// (the ImageNet encoder's 512 x 50,176 cross-attention, width 261, one head; a
// 512 x 512 self-attention with 8 heads of width 128), and full forward passes of
// the ImageNet (Fourier) and language Perceivers at batch 1 and 32 vs HuggingFace
// transformers (random weights on both sides). The torch side is
// scripts/bench-gpu.py, run as a child process with the same configuration.
//
//   PERCEIVER_DEVICE=cuda node dist/scripts/bench-gpu.js [--out DIR] [--quick] [--no-torch] [--profile] [--only NAME] [--no-fuse]
//
// Each time is the median of a few runs, each ended by a device synchronisation
// (ops are queued); a GEMM's or an attention's run is 5 calls back to back, divided by
// 5 (since the twenty-fifth session; one call per run before). float32 GEMMs run without TF32 on both sides. Models run in
// float32 at batch 1 and in bfloat16 (weights and inputs cast, as HF's .to(bfloat16))
// at batch 1 and 32, the goal. --profile prints (stderr) one profiled forward
// per model and batch: device time per op and output shape. --no-fuse runs the models
// with three projection products per attention, not one (models/fused-projection.ts),
// for an A/B of that switch.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attention, backends, profiler, randn, tensor, tidy, type Tensor } from '../lib/index.js';
import { native } from '../lib/native.js';
import { PerceiverForImageClassificationFourier, PerceiverForMaskedLM, setFusedProjections } from '../models/index.js';
import { LANGUAGE_PERCEIVER, VISION_PERCEIVER_FOURIER } from '../models/presets.js';

const argv = process.argv.slice(2);
const flag = (n: string) => argv.includes(n);
const outDir = argv.includes('--out') ? argv[argv.indexOf('--out') + 1] : null;
const QUICK = flag('--quick');
// --only NAME: only the measurements whose name contains NAME (a GEMM's is "gemm"), for a
// short A/B of one switch; the dispatch latency is always measured.
const ONLY = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] ?? '' : null;
const picked = (name: string) => ONLY === null || name.includes(ONLY);
const cuda = backends()[1];
if (!cuda.available) {
  console.error(`bench-gpu: CUDA is unavailable: ${cuda.reason}`);
  process.exit(2);
}
const device = 'cuda';

// Seconds per call: the median of `runs` samples, each `inner` calls queued back to back
// and one synchronisation, over inner. GEMMs and attention take inner = 5 on both sides
// (bench-gpu.py's timed), since their times are within a few times a synchronisation's
// round trip (15-20 us on an H200), which one call per sample would count each time.
// Warm-up: `warmup` calls, and more until `warmMs` of wall time has passed. On an H200
// (2026-11-28) the same cuBLASLt kernel timed by events took 0.1810 ms at 4096^3 bf16 in
// our process and 0.1827 in torch's, yet bench-gpu had ours at 0.91x: ours ran first,
// three calls after the GPU had idled, where torch's process came after ours had warmed
// it. GEMMs take warmMs = 300 on both sides.
async function timeIt(fn: () => Tensor | void, warmup: number, runs: number, inner = 1, warmMs = 0): Promise<number> {
  const once = () => {
    const r = fn();
    if (r) r.dispose();
  };
  const w0 = performance.now();
  for (let i = 0; i < warmup || performance.now() - w0 < warmMs; i++) {
    once();
    if (i >= warmup) native.synchronize();  // past the fixed calls: pace by the GPU's time
  }
  native.synchronize();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    for (let j = 0; j < inner; j++) once();
    native.synchronize();
    times.push((performance.now() - t0) / 1000 / inner);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

const GEMM = (!picked('gemm') ? [] : QUICK ? [2048, 4096] : [1024, 2048, 4096, 8192]).flatMap((s) =>
  (['float32', 'bfloat16'] as const).map((dtype) => ({ m: s, n: s, k: s, dtype })),
);
// kv: k and v one tensor, as the ImageNet models call the encoder's attention (their
// single-head path attends to the input X with k = v = X: models/fast-attention.ts);
// torch gets the same.
const ATTENTION = (['float32', 'bfloat16'] as const).flatMap((dtype) => [
  { name: 'imagenet cross-attention', batch: 1, nq: 512, nk: 50176, heads: 1, dim: 261, dtype, kv: false },
  { name: 'imagenet cross-attention', batch: 1, nq: 512, nk: 50176, heads: 1, dim: 261, dtype, kv: true },
  { name: 'self-attention 8 heads', batch: 1, nq: 512, nk: 512, heads: 8, dim: 128, dtype, kv: false },
  { name: 'self-attention 8 heads', batch: 32, nq: 512, nk: 512, heads: 8, dim: 128, dtype, kv: false },
]).filter((a) => picked(a.name));
const MODELS = [
  { name: 'imagenet-fourier', config: VISION_PERCEIVER_FOURIER, input: 'pixels', dtype: 'float32', batches: [1] },
  { name: 'imagenet-fourier', config: VISION_PERCEIVER_FOURIER, input: 'pixels', dtype: 'bfloat16', batches: QUICK ? [1] : [1, 32] },
  { name: 'language-mlm', config: LANGUAGE_PERCEIVER, input: 'ids', dtype: 'float32', batches: [1] },
  { name: 'language-mlm', config: LANGUAGE_PERCEIVER, input: 'ids', dtype: 'bfloat16', batches: QUICK ? [1] : [1, 32] },
].filter((m) => picked(m.name));

interface Row { what: string; ours: string; torch: string; ratio: string }
const rows: Row[] = [];
const fmt = (v: number | undefined, unit: string) => (v === undefined ? '-' : `${v.toFixed(unit === 'ms' ? 2 : 1)} ${unit}`);
const ours: Record<string, unknown>[] = [];

async function main(): Promise<void> {
  console.error(`bench-gpu: ${cuda.devices![0].name}, driver ${cuda.devices![0].driverVersion}, cuBLAS ${cuda.devices![0].cublasVersion}`);
  // Dispatch cost: one tiny op and a synchronisation (a round trip), and 1,000 queued
  // tiny ops then one synchronisation (per op), so small-op results can be read apart
  // from kernel speed.
  {
    const x = randn([1], { seed: 1, device });
    const roundTrip = await timeIt(() => x.add(1), 10, 50);
    native.synchronize();
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) x.add(1).dispose();
    native.synchronize();
    const perOp = (performance.now() - t0) / 1000 / 1000;
    ours.push({ kind: 'latency', round_trip: roundTrip, per_op: perOp });
    console.error(`ours latency: round trip ${(roundTrip * 1e6).toFixed(1)} us, ${(perOp * 1e6).toFixed(1)} us per queued op`);
    x.dispose();
  }
  for (const g of GEMM) {
    const a = randn([g.m, g.k], { seed: 1, device }).cast(g.dtype);
    const b = randn([g.k, g.n], { seed: 2, device }).cast(g.dtype);
    const s = await timeIt(() => a.matmul(b), 3, QUICK ? 5 : 10, 5, 300);
    ours.push({ kind: 'gemm', ...g, seconds: s, tflops: (2 * g.m * g.n * g.k) / s / 1e12 });
    console.error(`ours gemm ${JSON.stringify(g)}: ${((2 * g.m * g.n * g.k) / s / 1e12).toFixed(1)} TFLOP/s`);
    a.dispose();
    b.dispose();
  }
  for (const at of ATTENTION) {
    const q = randn([at.batch, at.nq, at.heads, at.dim], { seed: 3, device }).cast(at.dtype);
    const k = randn([at.batch, at.nk, at.heads, at.dim], { seed: 4, device }).cast(at.dtype);
    const v = at.kv ? k : randn([at.batch, at.nk, at.heads, at.dim], { seed: 5, device }).cast(at.dtype);
    const row: Record<string, unknown> = { kind: 'attention', ...at };
    try {
      await attention(q, k, v).data(); // a kernel error surfaces here, once
      row.seconds = await timeIt(() => attention(q, k, v), 2, 5, 5);
    } catch (e) {
      row.error = (e as Error).message.split('\n')[0];
    }
    ours.push(row);
    console.error(`ours attention ${JSON.stringify(row)}`);
    for (const t of at.kv ? [q, k] : [q, k, v]) t.dispose();
  }
  for (const m of MODELS) {
    const model = m.input === 'pixels' ? new PerceiverForImageClassificationFourier(m.config as never) : new PerceiverForMaskedLM(m.config as never);
    if (m.dtype !== 'float32') model.to(m.dtype as 'bfloat16');
    if (flag('--no-fuse')) setFusedProjections(model, false);
    for (const batch of m.batches) {
      const x = m.input === 'pixels'
        ? tidy(() => randn([batch, 3, 224, 224], { device }).cast(m.dtype as 'float32'))
        // Ids made on the host, as a tokenizer makes them: their bounds are known, so the
        // embedding runs without its bad-id check (a stream synchronisation).
        : tensor(Int32Array.from({ length: batch * 2048 }, (_, i) => 6 + (Math.imul(i, 2654435761) >>> 24)), [batch, 2048], { dtype: 'int32', device });
      const row: Record<string, unknown> = { kind: 'model', name: m.name, dtype: m.dtype, batch };
      try {
        const s = await timeIt(() => (model as { forward(x: Tensor): { logits: Tensor } }).forward(x).logits, 1, 3);
        row.seconds = s;
        row.per_second = batch / s;
        if (flag('--profile')) {
          // One more forward under the profiler: where its device time goes, per op and
          // shape. A failure here costs the profile, never the timing above.
          try {
            profiler.start({ shapes: true });
            let prof;
            try {
              (model as { forward(x: Tensor): { logits: Tensor } }).forward(x).logits.dispose();
            } finally {
              prof = profiler.stop();
            }
            console.error(`profile ${m.name} b${batch} ${m.dtype}:\n${prof.table(25)}`);
          } catch (e) {
            console.error(`profile ${m.name} b${batch} ${m.dtype} failed: ${(e as Error).message.split('\n')[0]}`);
          }
        }
      } catch (e) {
        row.error = (e as Error).message.split('\n')[0];
      }
      ours.push(row);
      console.error(`ours model ${JSON.stringify(row)}`);
      x.dispose();
    }
    (model as { dispose?: () => void }).dispose?.();
  }

  let torch: Record<string, any> | null = null;
  if (!flag('--no-torch')) {
    const cfgPath = join(outDir ?? '.', 'bench-gpu-config.json');
    if (outDir) mkdirSync(outDir, { recursive: true });
    writeFileSync(cfgPath, JSON.stringify({ gemm: GEMM, attention: ATTENTION, models: MODELS }));
    const py = spawnSync(process.env.PERCEIVER_BENCH_PYTHON ?? 'python3', [join(import.meta.dirname, '..', '..', 'scripts', 'bench-gpu.py'), '--config', cfgPath], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000,
    });
    if (py.status === 0) torch = JSON.parse(py.stdout.trim().split('\n').pop()!);
    else console.error(`bench-gpu: the torch side failed (status ${py.status}, ${py.error ?? ''}); ours only`);
  }

  for (const o of ours as any[]) {
    if (o.kind === 'latency') {
      const t = torch?.latency;
      rows.push({ what: 'tiny op + synchronize (us)', ours: fmt(o.round_trip * 1e6, 'us'), torch: fmt(t ? t.round_trip * 1e6 : undefined, 'us'), ratio: t ? (t.round_trip / o.round_trip).toFixed(2) : '-' });
      rows.push({ what: 'tiny op, 1000 queued (us/op)', ours: fmt(o.per_op * 1e6, 'us'), torch: fmt(t ? t.per_op * 1e6 : undefined, 'us'), ratio: t ? (t.per_op / o.per_op).toFixed(2) : '-' });
    } else if (o.kind === 'gemm') {
      const t = torch?.gemm.find((r: any) => r.m === o.m && r.dtype === o.dtype);
      rows.push({ what: `gemm ${o.m}^3 ${o.dtype}`, ours: fmt(o.tflops, 'TFLOP/s'), torch: fmt(t?.tflops, 'TFLOP/s'), ratio: t ? (o.tflops / t.tflops).toFixed(2) : '-' });
    } else if (o.kind === 'attention') {
      const t = torch?.attention.find((r: any) => r.nk === o.nk && r.batch === o.batch && r.dtype === o.dtype && !!r.kv === !!o.kv);
      // The goal is against torch's best: SDPA where it takes the shape, or the plain
      // matmul-softmax-matmul where that is faster (the one-head 261-wide encoder in bf16).
      const candidates = ([['sdpa', t?.sdpa_seconds], ['matmul+softmax', t?.matmul_softmax_seconds]] as [string, number | undefined][])
        .filter(([, s]) => typeof s === 'number' && s > 0) as [string, number][];
      const [which, ref] = candidates.length ? candidates.reduce((a, b) => (b[1] < a[1] ? b : a)) : ['-', undefined];
      rows.push({
        what: `attention ${o.batch}x${o.nq}x${o.nk} h${o.heads} d${o.dim}${o.kv ? ' k=v' : ''} ${o.dtype}`,
        ours: o.error ? `error: ${o.error.slice(0, 40)}` : fmt(o.seconds * 1000, 'ms'),
        torch: ref ? `${fmt(ref * 1000, 'ms')} (${which})` : '-',
        ratio: ref && o.seconds ? (ref / o.seconds).toFixed(2) : '-',
      });
    } else {
      const t = torch?.models.find((r: any) => r.name === o.name && r.batch === o.batch && r.dtype === o.dtype);
      rows.push({
        what: `${o.name} b${o.batch} ${o.dtype} (/s)`,
        ours: o.error ? `error: ${o.error.slice(0, 40)}` : fmt(o.per_second, '/s'),
        torch: t?.per_second ? fmt(t.per_second, '/s') : t?.error ? 'error' : '-',
        ratio: t?.per_second && o.per_second ? (o.per_second / t.per_second).toFixed(2) : '-',
      });
    }
  }
  if (outDir) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'bench-gpu.json'), JSON.stringify({ device: cuda.devices![0], ours, torch }, null, 1));
  }
  const w = [Math.max(...rows.map((r) => r.what.length)), 22, 28, 6];
  const line = (c: string[]) => c.map((s, i) => s.padEnd(w[i])).join('  ');
  console.log(line(['measurement', 'ours', 'torch (same GPU)', 'ours/torch']));
  for (const r of rows) console.log(line([r.what, r.ours, r.torch, r.ratio]));
}

await main();
