// Forward time of two full-size released Perceiver configurations on this machine,
// random weights, batch 1, with onnxruntime-node running the same ImageNet network
// and weights side by side.
//
//   node dist/scripts/bench-models.js              # table
//   node dist/scripts/bench-models.js --json       # one JSON object on stdout
//   node dist/scripts/bench-models.js --runs 5 --warmup 1 --no-plain --no-mlm --no-onnx
//   node dist/scripts/bench-models.js --warm-malloc   # rerun itself with glibc told to keep freed memory
//
// --warm-malloc: the engine takes large blocks from glibc malloc, which maps every
// block over 32 MiB afresh (the image encoder's [50,176 x 261] tensors are 52 MB), so
// each forward pays first-touch page faults that onnxruntime's arena does not. The
// flag reruns the script with MALLOC_MMAP_MAX_=0 and a huge MALLOC_TRIM_THRESHOLD_ so
// freed memory is reused, which is what a caching allocator in the engine would give;
// the header says which setting was active.
//
// Models: PerceiverForImageClassificationFourier (224x224 pixels + 258 Fourier
// channels = 261, 512 x 1024 latents, 8 blocks x 6 shared self-attends, 8/1 heads,
// 1000 classes) and PerceiverForMaskedLM (2048 bytes, d_model 768, 256 x 1280 latents,
// 26 self-attends, qk 256, v 1280, 8 heads). Each time is from calling forward() to
// `await logits.data()` returning (ops are queued, so that is the honest end point);
// the median over --runs after --warmup calls. GFLOP are counted analytically from
// the shapes (2 per multiply-add, matmuls and the two attention products only) for the
// network as written, i.e. with the key/value projections the one-head fast path
// skips; GFLOP/s is that count over the time, so a faster formulation shows as a
// higher effective rate. The fast path's own count is printed too.
//
// Baseline: the same ImageNet network written out in PyTorch (embedded below; HF's
// module names, so it loads the safetensors file this script writes: our random
// weights, the Fourier features and the input), exported with torch.onnx.export
// (opset 17) and run by onnxruntime-node on all cores with full graph optimisation.
// Its logits are checked against ours. Needs /usr/bin/python3 with torch (Debian's
// python3-torch) and the npm package onnxruntime-node; without them the script says
// why and reports our numbers alone.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed, randn, rand, saveSafetensors, tensor, tidy, type Tensor } from '../lib/index.js';
import {
  PerceiverForImageClassificationFourier,
  PerceiverForMaskedLM,
  fourierFeatures,
  linearPositions,
} from '../models/index.js';
import { setFastCrossAttention } from '../models/attention.js';
import { countFlops } from '../models/flops.js';
import { LANGUAGE_PERCEIVER, VISION_PERCEIVER_FOURIER } from '../models/presets.js';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const numArg = (name: string, dflt: number) => {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} needs a non-negative integer, got ${argv[i + 1]}`);
  return v;
};
const WARM_ENV = { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(64 * 2 ** 30) };
if (flag('--warm-malloc') && process.env.MALLOC_MMAP_MAX_ !== '0') {
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
    env: { ...process.env, ...WARM_ENV },
    stdio: 'inherit',
  });
  process.exit(child.status ?? 1);
}
const MALLOC = process.env.MALLOC_MMAP_MAX_ === '0' ? `warm (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=${process.env.MALLOC_TRIM_THRESHOLD_ ?? 'default'})` : 'glibc default';
const JSON_OUT = flag('--json');
const RUNS = Math.max(1, numArg('--runs', 3));
const WARMUP = numArg('--warmup', 1);
const PYTHON = process.env.PERCEIVER_BENCH_PYTHON ?? '/usr/bin/python3';
const log = (s: string) => {
  if (!JSON_OUT) console.log(s);
  else console.error(s);
};

// ---------------------------------------------------------------- configurations



// ---------------------------------------------------------------- FLOP counts

interface Part {
  name: string;
  formula: string;
  gflop: number;
}

// The counts come from models/flops.ts, the same function `perceiver info` reports.
function gflopParts(config: Record<string, unknown>): { parts: Part[]; gflop: number; fastGflop: number } {
  const f = countFlops(config);
  return { parts: f.parts.map((p) => ({ name: p.name, formula: p.formula, gflop: p.flops / 1e9 })), gflop: f.flops / 1e9, fastGflop: f.fastFlops / 1e9 };
}

function imagenetParts(): { parts: Part[]; fastGflop: number } {
  return gflopParts(VISION_PERCEIVER_FOURIER);
}

function mlmParts(): Part[] {
  return gflopParts(LANGUAGE_PERCEIVER).parts;
}

// ---------------------------------------------------------------- timing

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface Timing {
  medianMs: number;
  runsMs: number[];
}

/**
 * Times each contender WARMUP + RUNS times, round-robin within each rep, so that load
 * from other processes on a shared machine falls on all of them alike.
 */
async function timeAll(contenders: [string, () => Promise<unknown>][]): Promise<Timing[]> {
  const runs: number[][] = contenders.map(() => []);
  for (let rep = 0; rep < WARMUP + RUNS; rep++)
    for (const [i, [label, fn]] of contenders.entries()) {
      // Idle thread pools (ours, onnxruntime's) may spin for a while after a call;
      // a pause keeps that off the next contender's clock.
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      await fn();
      const ms = performance.now() - t0;
      if (rep >= WARMUP) runs[i].push(ms);
      log(`  ${label}: ${rep < WARMUP ? 'warm-up' : `run ${rep - WARMUP + 1}`} ${ms.toFixed(0)} ms`);
    }
  return runs.map((runsMs, i) => {
    log(`  ${contenders[i][0]}: median ${median(runsMs).toFixed(0)} ms of ${runsMs.map((x) => x.toFixed(0)).join(', ')}`);
    return { medianMs: median(runsMs), runsMs };
  });
}

async function forwardData(model: { forward(x: Tensor): { logits: Tensor } }, x: Tensor): Promise<Float32Array> {
  const { logits } = model.forward(x);
  try {
    return (await logits.data()) as Float32Array;
  } finally {
    logits.dispose();
  }
}

// ---------------------------------------------------------------- the PyTorch rendering

const PYTHON_EXPORT = String.raw`
import json, math, struct, sys
import numpy as np
import torch
from torch import nn

d = sys.argv[1]
cfg = json.loads(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]))

def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, e in header.items():
        if k == '__metadata__':
            continue
        assert e['dtype'] == 'F32', (k, e['dtype'])
        a, b = e['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).copy().reshape(e['shape']))
    return out

class SelfAttention(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, cross):
        super().__init__()
        self.heads = heads
        self.layernorm1 = nn.LayerNorm(q_dim)
        self.layernorm2 = nn.LayerNorm(kv_dim) if cross else nn.Identity()
        self.query = nn.Linear(q_dim, qk)
        self.key = nn.Linear(kv_dim, qk)
        self.value = nn.Linear(kv_dim, v)

    def forward(self, x, inputs=None):
        h = self.layernorm1(x)
        kv = self.layernorm2(inputs) if inputs is not None else h
        B, Nq, _ = h.shape
        Nk = kv.shape[1]
        H = self.heads
        q = self.query(h).view(B, Nq, H, -1).transpose(1, 2)
        k = self.key(kv).view(B, Nk, H, -1).transpose(1, 2)
        v = self.value(kv).view(B, Nk, H, -1).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        o = torch.matmul(s.softmax(-1), v)
        return o.transpose(1, 2).reshape(B, Nq, -1)

class Dense(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.dense = nn.Linear(i, o)

    def forward(self, x):
        return self.dense(x)

class Attention(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, cross, out):
        super().__init__()
        setattr(self, 'self', SelfAttention(q_dim, kv_dim, qk, v, heads, cross))
        self.output = Dense(v, out)

    def forward(self, x, inputs=None):
        return self.output(getattr(self, 'self')(x, inputs)) + x

class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense1 = nn.Linear(c, c)
        self.dense2 = nn.Linear(c, c)

    def forward(self, x):
        return self.dense2(nn.functional.gelu(self.dense1(x)))

class Layer(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, cross):
        super().__init__()
        self.attention = Attention(q_dim, kv_dim, qk, v, heads, cross, q_dim)
        self.layernorm = nn.LayerNorm(q_dim)
        self.mlp = MLP(q_dim)

    def forward(self, x, inputs=None):
        a = self.attention(x, inputs)
        return self.mlp(self.layernorm(a)) + a

class Embeddings(nn.Module):
    def __init__(self, n, c):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(n, c))

class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        L, kv = c['d_latents'], c['d_model']
        self.blocks = c['num_blocks']
        self.cross_attention = Layer(L, kv, kv, kv, c['num_cross_attention_heads'], True)
        self.self_attends = nn.ModuleList(
            [Layer(L, L, L, L, c['num_self_attention_heads'], False) for _ in range(c['num_self_attends_per_block'])])

    def forward(self, z, x):
        z = self.cross_attention(z, x)
        for _ in range(self.blocks):
            for layer in self.self_attends:
                z = layer(z)
        return z

class PositionEncoding(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.position_embeddings = nn.Parameter(torch.zeros(1, c))

class BasicDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        L = c['d_latents']
        self.output_position_encodings = PositionEncoding(L)
        self.decoding_cross_attention = Layer(L, L, L, L, 1, True)
        self.final_layer = nn.Linear(L, c['num_labels'])

    def forward(self, z):
        q = self.output_position_encodings.position_embeddings.unsqueeze(0).expand(z.shape[0], -1, -1)
        return self.final_layer(self.decoding_cross_attention(q, z))

class ClassificationDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.decoder = BasicDecoder(c)

    def forward(self, z):
        return self.decoder(z)[:, 0, :]

class Perceiver(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c['num_latents'], c['d_latents'])
        self.encoder = Encoder(c)
        self.decoder = ClassificationDecoder(c)

    def forward(self, x):
        z = self.embeddings.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.decoder(self.encoder(z, x))

class FourierClassifier(nn.Module):
    """HF's PerceiverForImageClassificationFourier, eval mode: pixels channels-last, then the Fourier features."""
    def __init__(self, c, pos):
        super().__init__()
        self.perceiver = Perceiver(c)
        self.register_buffer('pos', pos, persistent=False)

    def forward(self, pixel_values):
        B, C, H, W = pixel_values.shape
        x = pixel_values.permute(0, 2, 3, 1).reshape(B, H * W, C)
        x = torch.cat([x, self.pos.unsqueeze(0).expand(B, -1, -1)], dim=-1)
        return self.perceiver(x)

sd = read_safetensors(d + '/weights.safetensors')
pos = sd.pop('__fourier_features__')
pixels = sd.pop('__pixel_values__')
model = FourierClassifier(cfg, pos).eval()
model.load_state_dict(sd, strict=True)
with torch.no_grad():
    torch.onnx.export(model, (pixels,), d + '/model.onnx', input_names=['pixel_values'], output_names=['logits'],
                      opset_version=17, do_constant_folding=True)
print(json.dumps({'torch': torch.__version__}))
`;

// The part of onnxruntime-node's API used here.
interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dispose?: () => void }>>;
  release(): Promise<void>;
}
interface Ort {
  InferenceSession: { create(path: string, opts: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: string, data: Float32Array, dims: number[]) => unknown;
  env: { versions?: { node?: string } };
}

interface OrtResult {
  available: boolean;
  reason?: string;
  torchVersion?: string;
  ortVersion?: string;
  timing?: Timing;
  maxAbsDiffVsOurs?: number;
  maxAbsLogit?: number;
}

interface OrtRunner {
  torchVersion: string;
  ortVersion?: string;
  /** One forward; resolves to the logits. */
  run(): Promise<Float32Array>;
  release(): Promise<void>;
}

/** Exports the PyTorch rendering of model to ONNX and opens it in onnxruntime-node; a string says why not. */
async function onnxBaseline(model: PerceiverForImageClassificationFourier, pixels: Tensor, pos: Float32Array, dir: string): Promise<OrtRunner | string> {
  let ort: Ort;
  try {
    // Through a variable, so the script compiles where the optional package is absent.
    const name = 'onnxruntime-node';
    ort = (await import(name)) as Ort;
  } catch (e) {
    return `onnxruntime-node is not installed (${(e as Error).message.split('\n')[0]}); npm install --no-save onnxruntime-node`;
  }
  if (!existsSync(PYTHON)) return `${PYTHON} not found (set PERCEIVER_BENCH_PYTHON; it needs torch: apt-get install python3-torch)`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return `${PYTHON} cannot import torch and numpy: ${probe.stderr.trim().split('\n').pop()} (apt-get install python3-torch)`;

  log('  exporting the PyTorch rendering to ONNX ...');
  const posT = tensor(pos, [224 * 224, pos.length / (224 * 224)]);
  await saveSafetensors(join(dir, 'weights.safetensors'), { ...model.stateDict(), __fourier_features__: posT, __pixel_values__: pixels });
  posT.dispose();
  const t0 = performance.now();
  const py = spawnSync(PYTHON, ['-c', PYTHON_EXPORT, dir, JSON.stringify(VISION_PERCEIVER_FOURIER), String(cpus().length)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (py.status !== 0) return `the PyTorch export failed: ${py.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  const torchVersion = (JSON.parse(py.stdout.trim().split('\n').pop()!) as { torch: string }).torch;
  log(`  exported in ${((performance.now() - t0) / 1000).toFixed(1)} s (torch ${torchVersion})`);

  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), {
    intraOpNumThreads: cpus().length,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const px = new Float32Array((await pixels.data()) as Float32Array);
  const feeds = { pixel_values: new ort.Tensor('float32', px, [...pixels.shape]) };
  return {
    torchVersion,
    ortVersion: ort.env.versions?.node,
    async run() {
      const out = await session.run(feeds);
      const data = out.logits.data as Float32Array;
      out.logits.dispose?.();
      return data;
    },
    release: () => session.release(),
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): { maxDiff: number; maxAbs: number } {
  let maxDiff = a.length === b.length ? 0 : Infinity;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Number.isNaN(a[i] - b[i]) ? Infinity : Math.abs(a[i] - b[i]));
    maxAbs = Math.max(maxAbs, Math.abs(a[i]));
  }
  return { maxDiff, maxAbs };
}

// ---------------------------------------------------------------- main

interface ModelReport {
  model: string;
  config: Record<string, unknown>;
  input: string;
  gflop: number;
  parts: Part[];
  fastPathGflop?: number;
  ours: { fast: Timing & { gflops: number }; plain?: Timing & { gflops: number } };
  onnxruntime?: OrtResult & { gflops?: number; speedupOursOverOrt?: number };
}

function printParts(parts: Part[]): void {
  for (const p of parts) log(`    ${p.name.padEnd(42)} ${p.formula.padEnd(30)} ${p.gflop.toFixed(3).padStart(9)} GFLOP`);
}

async function main(): Promise<void> {
  manualSeed(42);
  const threads = cpus().length;
  const reports: ModelReport[] = [];
  const loadBefore = loadavg();
  log(`CPU: ${cpus()[0]?.model ?? '?'} x ${threads}; runs ${RUNS} after ${WARMUP} warm-up; malloc ${MALLOC}; load average ${loadBefore.map((x) => x.toFixed(2)).join(' ')}`);
  // Other processes skew every figure; the load average says how busy the machine was.
  if (loadBefore[0] > threads * 0.5) log(`  WARNING: the 1-minute load average (${loadBefore[0].toFixed(2)}) shows other work on this ${threads}-CPU machine; timings will be noisy`);

  // ImageNet Fourier
  {
    log('\nPerceiverForImageClassificationFourier (released config, random weights), batch 1, 224x224');
    const model = new PerceiverForImageClassificationFourier(VISION_PERCEIVER_FOURIER);
    const pixels = randn([1, 3, 224, 224]);
    const { parts, fastGflop } = imagenetParts();
    const gflop = parts.reduce((s, p) => s + p.gflop, 0);
    printParts(parts);
    log(`    ${'total (network as written)'.padEnd(73)} ${gflop.toFixed(3).padStart(9)} GFLOP`);
    log(`    ${'total executed by the one-head fast path'.padEnd(73)} ${fastGflop.toFixed(3).padStart(9)} GFLOP`);
    const report: ModelReport = {
      model: 'PerceiverForImageClassificationFourier',
      config: VISION_PERCEIVER_FOURIER,
      input: 'pixel_values [1, 3, 224, 224]',
      gflop,
      parts,
      fastPathGflop: fastGflop,
      ours: { fast: { medianMs: NaN, runsMs: [], gflops: NaN } },
    };
    const dir = mkdtempSync(join(tmpdir(), 'perceiver-bench-'));
    let ort: OrtRunner | string = 'skipped (--no-onnx)';
    try {
      if (!flag('--no-onnx')) {
        const pos = fourierFeatures(linearPositions([224, 224]), { maxResolution: [224, 224], numBands: 64, concatPos: true, sineOnly: false }).data;
        ort = await onnxBaseline(model, pixels, pos, dir);
        if (typeof ort === 'string') log(`  onnxruntime-node baseline UNAVAILABLE: ${ort}`);
      }
      const outputs: Record<string, Float32Array> = {};
      const contenders: [string, () => Promise<unknown>][] = [
        ['ours (fast path)', async () => {
          setFastCrossAttention(model, true);
          outputs.fast = await forwardData(model, pixels);
        }],
      ];
      if (!flag('--no-plain'))
        contenders.push(['ours (plain path)', async () => {
          setFastCrossAttention(model, false);
          outputs.plain = await forwardData(model, pixels);
        }]);
      if (typeof ort !== 'string') {
        const runner = ort;
        contenders.push(['onnxruntime-node', async () => {
          outputs.ort = await runner.run();
        }]);
      }
      const timings = await timeAll(contenders);
      setFastCrossAttention(model, true);
      const byLabel = new Map(contenders.map(([label], i) => [label, timings[i]]));
      const fast = byLabel.get('ours (fast path)')!;
      report.ours = { fast: { ...fast, gflops: gflop / (fast.medianMs / 1000) } };
      const plain = byLabel.get('ours (plain path)');
      if (plain) {
        report.ours.plain = { ...plain, gflops: gflop / (plain.medianMs / 1000) };
        const d = maxAbsDiff(outputs.fast, outputs.plain);
        log(`  fast vs plain logits: max |diff| ${d.maxDiff.toExponential(2)} (max |logit| ${d.maxAbs.toExponential(2)})`);
      }
      if (typeof ort === 'string') report.onnxruntime = { available: false, reason: ort };
      else {
        const t = byLabel.get('onnxruntime-node')!;
        const d = maxAbsDiff(outputs.fast, outputs.ort);
        log(`  onnxruntime-node vs our logits: max |diff| ${d.maxDiff.toExponential(2)} (max |logit| ${d.maxAbs.toExponential(2)})`);
        report.onnxruntime = {
          available: true,
          torchVersion: ort.torchVersion,
          ortVersion: ort.ortVersion,
          timing: t,
          maxAbsDiffVsOurs: d.maxDiff,
          maxAbsLogit: d.maxAbs,
          gflops: gflop / (t.medianMs / 1000),
          speedupOursOverOrt: t.medianMs / fast.medianMs,
        };
        await ort.release();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    pixels.dispose();
    model.dispose();
    reports.push(report);
  }

  // Masked LM
  if (!flag('--no-mlm')) {
    log('\nPerceiverForMaskedLM (released config, random weights), batch 1, 2048 bytes');
    const model = new PerceiverForMaskedLM(LANGUAGE_PERCEIVER);
    const ids = tidy(() => rand([1, 2048], { low: 6, high: 262 }).cast('int32'));
    const parts = mlmParts();
    const gflop = parts.reduce((s, p) => s + p.gflop, 0);
    printParts(parts);
    log(`    ${'total'.padEnd(73)} ${gflop.toFixed(3).padStart(9)} GFLOP`);
    const [fast] = await timeAll([['ours', () => forwardData(model, ids)]]);
    reports.push({
      model: 'PerceiverForMaskedLM',
      config: LANGUAGE_PERCEIVER,
      input: 'inputs int32 [1, 2048]',
      gflop,
      parts,
      ours: { fast: { ...fast, gflops: gflop / (fast.medianMs / 1000) } },
    });
    ids.dispose();
    model.dispose();
  }

  log('\nSummary (median ms, effective GFLOP/s on the network-as-written count)');
  for (const r of reports) {
    const row = [`${r.model}: ${r.gflop.toFixed(1)} GFLOP`, `ours ${r.ours.fast.medianMs.toFixed(0)} ms (${r.ours.fast.gflops.toFixed(1)} GFLOP/s)`];
    if (r.ours.plain) row.push(`ours plain path ${r.ours.plain.medianMs.toFixed(0)} ms (${r.ours.plain.gflops.toFixed(1)} GFLOP/s)`);
    if (r.onnxruntime?.available)
      row.push(`onnxruntime-node ${r.onnxruntime.timing!.medianMs.toFixed(0)} ms (${r.onnxruntime.gflops!.toFixed(1)} GFLOP/s)`, `ours/ort speed ${r.onnxruntime.speedupOursOverOrt!.toFixed(2)}x`);
    else if (r.onnxruntime) row.push(`onnxruntime-node unavailable`);
    log('  ' + row.join('; '));
  }
  const loadAfter = loadavg();
  log(`load average at the end: ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
  if (JSON_OUT) console.log(JSON.stringify({ cpu: cpus()[0]?.model, threads, malloc: MALLOC, runs: RUNS, warmup: WARMUP, loadavgBefore: loadBefore, loadavgAfter: loadAfter, reports }, null, 2));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
