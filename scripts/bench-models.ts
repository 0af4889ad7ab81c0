// Forward time of two full-size released Perceiver configurations on this machine,
// random weights, batch 1, with onnxruntime-node running the same ImageNet network
// and weights side by side, and torch eager the same language model.
//
//   node dist/scripts/bench-models.js              # table
//   node dist/scripts/bench-models.js --json       # one JSON object on stdout
//   node dist/scripts/bench-models.js --runs 5 --warmup 1 --no-plain --no-imagenet --no-mlm --no-onnx --no-torch
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
// Its logits are checked against ours. The language model's baseline is the same
// network written in PyTorch (HF's module names again) run by torch eager, no grad,
// with torch's threads set to the core count, in a child process after our runs (so
// not interleaved), its logits checked against ours too. Needs /usr/bin/python3 with
// torch (Debian's python3-torch) and, for the ImageNet baseline, the npm package
// onnxruntime-node; without them the script says why and reports our numbers alone.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
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

// HF's module tree and names, so each rendering loads our state dict strictly.
const PYTHON_MODULES = String.raw`
import json, math, struct, sys, time
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
    def __init__(self, q_dim, kv_dim, qk, v, heads, cross, out, residual=True):
        super().__init__()
        setattr(self, 'self', SelfAttention(q_dim, kv_dim, qk, v, heads, cross))
        self.output = Dense(v, out)
        self.residual = residual

    def forward(self, x, inputs=None):
        o = self.output(getattr(self, 'self')(x, inputs))
        return o + x if self.residual else o

class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense1 = nn.Linear(c, c)
        self.dense2 = nn.Linear(c, c)

    def forward(self, x):
        return self.dense2(nn.functional.gelu(self.dense1(x)))

class Layer(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, cross, residual=True):
        super().__init__()
        self.attention = Attention(q_dim, kv_dim, qk, v, heads, cross, q_dim, residual)
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
        # HF's defaults: query/key widths those of the inputs (cross-attention, shape
        # for attention 'kv') or of the latents; value widths the query/key widths.
        qk, sqk = c.get('qk_channels') or kv, c.get('qk_channels') or L
        v, sv = c.get('v_channels') or qk, c.get('v_channels') or sqk
        self.blocks = c['num_blocks']
        self.cross_attention = Layer(L, kv, qk, v, c['num_cross_attention_heads'], True)
        self.self_attends = nn.ModuleList(
            [Layer(L, L, sqk, sv, c['num_self_attention_heads'], False) for _ in range(c['num_self_attends_per_block'])])

    def forward(self, z, x):
        z = self.cross_attention(z, x)
        for _ in range(self.blocks):
            for layer in self.self_attends:
                z = layer(z)
        return z

class PositionEncoding(nn.Module):
    def __init__(self, c, n=1):
        super().__init__()
        self.position_embeddings = nn.Parameter(torch.zeros(n, c))

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
    def __init__(self, c, decoder, input_preprocessor=None):
        super().__init__()
        if input_preprocessor is not None:
            self.input_preprocessor = input_preprocessor
        self.embeddings = Embeddings(c['num_latents'], c['d_latents'])
        self.encoder = Encoder(c)
        self.decoder = decoder

    def forward(self, x):
        if hasattr(self, 'input_preprocessor'):
            x = self.input_preprocessor(x)
        z = self.embeddings.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.decoder(self.encoder(z, x))

class TextPreprocessor(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = nn.Embedding(c['vocab_size'], c['d_model'])
        self.position_embeddings = nn.Embedding(c['max_position_embeddings'], c['d_model'])

    def forward(self, ids):
        return self.embeddings(ids) + self.position_embeddings(torch.arange(ids.shape[1]))

class TextDecoder(nn.Module):
    """The PerceiverBasicDecoder that HF's PerceiverForMaskedLM builds: 8 heads of 32, no query residual, no final layer."""
    def __init__(self, c):
        super().__init__()
        D, L = c['d_model'], c['d_latents']
        self.output_position_encodings = PositionEncoding(D, c['max_position_embeddings'])
        self.decoding_cross_attention = Layer(D, L, 8 * 32, D, 8, True, residual=False)

    def forward(self, z):
        q = self.output_position_encodings.position_embeddings.unsqueeze(0).expand(z.shape[0], -1, -1)
        return self.decoding_cross_attention(q, z)

class EmbeddingDecoder(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab))

class MaskedLM(nn.Module):
    """HF's PerceiverForMaskedLM, eval mode: logits through the tied input embeddings."""
    def __init__(self, c):
        super().__init__()
        self.perceiver = Perceiver(c, TextDecoder(c), TextPreprocessor(c))
        self.embedding_decoder = EmbeddingDecoder(c['vocab_size'])

    def forward(self, ids):
        h = self.perceiver(ids)
        return torch.matmul(h, self.perceiver.input_preprocessor.embeddings.weight.t()) + self.embedding_decoder.bias

class FourierClassifier(nn.Module):
    """HF's PerceiverForImageClassificationFourier, eval mode: pixels channels-last, then the Fourier features."""
    def __init__(self, c, pos):
        super().__init__()
        self.perceiver = Perceiver(c, ClassificationDecoder(c))
        self.register_buffer('pos', pos, persistent=False)

    def forward(self, pixel_values):
        B, C, H, W = pixel_values.shape
        x = pixel_values.permute(0, 2, 3, 1).reshape(B, H * W, C)
        x = torch.cat([x, self.pos.unsqueeze(0).expand(B, -1, -1)], dim=-1)
        return self.perceiver(x)

`;

// The image classifier exported to ONNX for onnxruntime-node.
const PYTHON_EXPORT = PYTHON_MODULES + String.raw`
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

// The masked language model with our weights, and the input ids.
const PYTHON_MLM_LOAD = PYTHON_MODULES + String.raw`
sd = read_safetensors(d + '/weights.safetensors')
ids = sd.pop('__inputs__').long()
model = MaskedLM(cfg).eval()
model.load_state_dict(sd, strict=True)
`;

// ... exported to ONNX for onnxruntime-node.
const PYTHON_MLM_EXPORT = PYTHON_MLM_LOAD + String.raw`
with torch.no_grad():
    torch.onnx.export(model, (ids,), d + '/model.onnx', input_names=['inputs'], output_names=['logits'],
                      opset_version=17, do_constant_folding=True)
print(json.dumps({'torch': torch.__version__}))
`;

// ... timed in torch eager (no grad), --warmup then --runs forwards; its logits go to
// logits.bin for the comparison with ours.
const PYTHON_MLM = PYTHON_MLM_LOAD + String.raw`
runs, warmup = int(sys.argv[4]), int(sys.argv[5])
times = []
with torch.no_grad():
    for r in range(warmup + runs):
        t0 = time.perf_counter()
        logits = model(ids)
        ms = (time.perf_counter() - t0) * 1000
        if r >= warmup:
            times.append(ms)
logits.numpy().astype('<f4').tofile(d + '/logits.bin')
print(json.dumps({'torch': torch.__version__, 'runs_ms': times}))
`;

// The part of onnxruntime-node's API used here.
interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dispose?: () => void }>>;
  release(): Promise<void>;
}
interface Ort {
  InferenceSession: { create(path: string, opts: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => unknown;
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

/** Why PYTHON cannot run the PyTorch renderings, or null when it can (checked once). */
let torchProbe: string | null | undefined;
function pythonWithoutTorch(): string | null {
  if (torchProbe !== undefined) return torchProbe;
  if (!existsSync(PYTHON)) return (torchProbe = `${PYTHON} not found (set PERCEIVER_BENCH_PYTHON; it needs torch: apt-get install python3-torch)`);
  const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  torchProbe = probe.status === 0 ? null : `${PYTHON} cannot import torch and numpy: ${probe.stderr.trim().split('\n').pop()} (apt-get install python3-torch)`;
  return torchProbe;
}

/** What an ONNX baseline needs: the rendering's tensors, its export script and config, and the one input. */
interface OnnxJob {
  tensors: Record<string, Tensor>;
  script: string;
  config: Record<string, unknown>;
  input: { name: string; type: 'float32' | 'int64'; data: Float32Array | BigInt64Array; dims: number[] };
}

/** Exports a PyTorch rendering to ONNX and opens it in onnxruntime-node; a string says why not. */
async function onnxBaseline(job: OnnxJob, dir: string): Promise<OrtRunner | string> {
  let ort: Ort;
  try {
    // Through a variable, so the script compiles where the optional package is absent.
    const name = 'onnxruntime-node';
    ort = (await import(name)) as Ort;
  } catch (e) {
    return `onnxruntime-node is not installed (${(e as Error).message.split('\n')[0]}); npm install --no-save onnxruntime-node`;
  }
  const noTorch = pythonWithoutTorch();
  if (noTorch) return noTorch;

  log('  exporting the PyTorch rendering to ONNX ...');
  await saveSafetensors(join(dir, 'weights.safetensors'), job.tensors);
  const t0 = performance.now();
  const py = spawnSync(PYTHON, ['-c', job.script, dir, JSON.stringify(job.config), String(cpus().length)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (py.status !== 0) return `the PyTorch export failed: ${py.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  const torchVersion = (JSON.parse(py.stdout.trim().split('\n').pop()!) as { torch: string }).torch;
  log(`  exported in ${((performance.now() - t0) / 1000).toFixed(1)} s (torch ${torchVersion})`);

  const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), {
    intraOpNumThreads: cpus().length,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const feeds = { [job.input.name]: new ort.Tensor(job.input.type, job.input.data, job.input.dims) };
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

interface TorchResult {
  available: boolean;
  reason?: string;
  torchVersion?: string;
  timing?: Timing;
  maxAbsDiffVsOurs?: number;
  maxAbsLogit?: number;
  gflops?: number;
  speedupOursOverTorch?: number;
}

interface TorchRun {
  timing: Timing;
  torchVersion: string;
  logits: Float32Array;
}

/**
 * The masked LM's PyTorch rendering run by torch eager with our weights and input, in
 * a child process after ours: its timing and logits, or a string saying why not.
 */
async function torchMlmBaseline(model: PerceiverForMaskedLM, ids: Tensor, dir: string): Promise<TorchRun | string> {
  const noTorch = pythonWithoutTorch();
  if (noTorch) return noTorch;
  // The ONNX export may have written the same file already.
  if (!existsSync(join(dir, 'weights.safetensors'))) {
    const idsF = ids.cast('float32');
    try {
      await saveSafetensors(join(dir, 'weights.safetensors'), { ...model.stateDict(), __inputs__: idsF });
    } finally {
      idsF.dispose();
    }
  }
  log('  torch eager (same weights and input) ...');
  const args = [dir, JSON.stringify(LANGUAGE_PERCEIVER), String(cpus().length), String(RUNS), String(WARMUP)];
  const py = spawnSync(PYTHON, ['-c', PYTHON_MLM, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (py.status !== 0) return `the PyTorch run failed: ${py.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  const r = JSON.parse(py.stdout.trim().split('\n').pop()!) as { torch: string; runs_ms: number[] };
  log(`  torch: median ${median(r.runs_ms).toFixed(0)} ms of ${r.runs_ms.map((x) => x.toFixed(0)).join(', ')}`);
  const buf = readFileSync(join(dir, 'logits.bin'));
  const logits = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return { timing: { medianMs: median(r.runs_ms), runsMs: r.runs_ms }, torchVersion: r.torch, logits };
}

/** The ONNX baseline's report (its logits checked against ours), releasing its session; or why it is missing. */
async function ortReport(ort: OrtRunner | string, t: Timing | undefined, ours: Float32Array, theirs: Float32Array | undefined, gflop: number, oursMs: number): Promise<OrtResult & { gflops?: number; speedupOursOverOrt?: number }> {
  if (typeof ort === 'string') return { available: false, reason: ort };
  const d = maxAbsDiff(ours, theirs!);
  log(`  onnxruntime-node vs our logits: max |diff| ${d.maxDiff.toExponential(2)} (max |logit| ${d.maxAbs.toExponential(2)})`);
  await ort.release();
  return {
    available: true,
    torchVersion: ort.torchVersion,
    ortVersion: ort.ortVersion,
    timing: t!,
    maxAbsDiffVsOurs: d.maxDiff,
    maxAbsLogit: d.maxAbs,
    gflops: gflop / (t!.medianMs / 1000),
    speedupOursOverOrt: t!.medianMs / oursMs,
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
  torch?: TorchResult;
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
  if (!flag('--no-imagenet')) {
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
        const posT = tensor(pos, [224 * 224, pos.length / (224 * 224)]);
        try {
          ort = await onnxBaseline({
            tensors: { ...model.stateDict(), __fourier_features__: posT, __pixel_values__: pixels },
            script: PYTHON_EXPORT,
            config: VISION_PERCEIVER_FOURIER,
            input: { name: 'pixel_values', type: 'float32', data: new Float32Array((await pixels.data()) as Float32Array), dims: [...pixels.shape] },
          }, dir);
        } finally {
          posT.dispose();
        }
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
      report.onnxruntime = await ortReport(ort, byLabel.get('onnxruntime-node'), outputs.fast, outputs.ort, gflop, fast.medianMs);
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
    const report: ModelReport = {
      model: 'PerceiverForMaskedLM',
      config: LANGUAGE_PERCEIVER,
      input: 'inputs int32 [1, 2048]',
      gflop,
      parts,
      ours: { fast: { medianMs: NaN, runsMs: [], gflops: NaN } },
    };
    const dir = mkdtempSync(join(tmpdir(), 'perceiver-bench-'));
    try {
      let ort: OrtRunner | string = 'skipped (--no-onnx)';
      if (!flag('--no-onnx')) {
        const idsF = ids.cast('float32');
        try {
          const idData = (await ids.data()) as Int32Array;
          ort = await onnxBaseline({
            tensors: { ...model.stateDict(), __inputs__: idsF },
            script: PYTHON_MLM_EXPORT,
            config: LANGUAGE_PERCEIVER,
            input: { name: 'inputs', type: 'int64', data: BigInt64Array.from(idData, (x) => BigInt(x)), dims: [...ids.shape] },
          }, dir);
        } finally {
          idsF.dispose();
        }
        if (typeof ort === 'string') log(`  onnxruntime-node baseline UNAVAILABLE: ${ort}`);
      }
      const outputs: Record<string, Float32Array> = {};
      const contenders: [string, () => Promise<unknown>][] = [['ours', async () => (outputs.ours = await forwardData(model, ids))]];
      if (typeof ort !== 'string') {
        const runner = ort;
        contenders.push(['onnxruntime-node', async () => (outputs.ort = await runner.run())]);
      }
      const timings = await timeAll(contenders);
      const fast = timings[0];
      report.ours = { fast: { ...fast, gflops: gflop / (fast.medianMs / 1000) } };
      report.onnxruntime = await ortReport(ort, timings[1], outputs.ours, outputs.ort, gflop, fast.medianMs);
      if (!flag('--no-torch')) {
        const t = await torchMlmBaseline(model, ids, dir);
        if (typeof t === 'string') {
          log(`  torch baseline UNAVAILABLE: ${t}`);
          report.torch = { available: false, reason: t };
        } else {
          const d = maxAbsDiff(outputs.ours, t.logits);
          log(`  torch vs our logits: max |diff| ${d.maxDiff.toExponential(2)} (max |logit| ${d.maxAbs.toExponential(2)})`);
          report.torch = {
            available: true,
            torchVersion: t.torchVersion,
            timing: t.timing,
            maxAbsDiffVsOurs: d.maxDiff,
            maxAbsLogit: d.maxAbs,
            gflops: gflop / (t.timing.medianMs / 1000),
            speedupOursOverTorch: t.timing.medianMs / fast.medianMs,
          };
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    reports.push(report);
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
    if (r.torch?.available)
      row.push(`torch ${r.torch.torchVersion} eager ${r.torch.timing!.medianMs.toFixed(0)} ms (${r.torch.gflops!.toFixed(1)} GFLOP/s)`, `ours/torch speed ${r.torch.speedupOursOverTorch!.toFixed(2)}x`);
    else if (r.torch) row.push(`torch unavailable`);
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
