// Time to load a model folder, each load in a fresh process (as a server starts): our
// loadModel, which builds the model without drawing its initial weights (they are all
// replaced; lib/nn/init.ts), against the same load after a construction that draws
// them (what loadModel did before: createModel, then loadSafetensors and
// loadStateDict), alternating in the same run. Also the resident memory each process
// ends with.
//
//   node dist/scripts/bench-load.js                 # the released language and ImageNet Fourier configs
//   node dist/scripts/bench-load.js --runs 5 --tiny  # a small config (a smoke test)
//
// The folders are written once, with random weights, to a temporary folder that is
// removed at the end.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSafetensors, manualSeed } from '../lib/index.js';
import { createModel, loadModel, readModelConfig } from '../models/index.js';
import { LANGUAGE_PERCEIVER, VISION_PERCEIVER_FOURIER } from '../models/presets.js';

const SELF = fileURLToPath(import.meta.url);
const argv = process.argv.slice(2);

type Mode = 'loadModel' | 'eager';

// Child: one load, then a JSON line with its time and resident memory.
if (argv[0] === '--child') {
  const [, mode, dir] = argv as [string, Mode, string];
  const t0 = performance.now();
  let model;
  if (mode === 'loadModel') model = await loadModel(dir);
  else {
    model = createModel(readModelConfig(dir));
    const sd = await loadSafetensors(join(dir, 'model.safetensors'));
    model.loadStateDict(sd, { assign: true });
    for (const t of Object.values(sd)) t.dispose();
  }
  // The weights are in place once a read of one of them returns.
  await Object.values(model.stateDict())[0].data();
  const ms = performance.now() - t0;
  console.log(JSON.stringify({ ms, rssMiB: process.memoryUsage().rss / 2 ** 20 }));
  process.exit(0);
}

const known = new Set(['--runs', '--tiny']);
for (let i = 0; i < argv.length; i++) {
  if (!known.has(argv[i])) {
    console.error(`bench-load: unknown argument ${argv[i]} (expected --runs N, --tiny)`);
    process.exit(2);
  }
  if (argv[i] === '--runs') i++;
}
const runsAt = argv.indexOf('--runs');
const RUNS = runsAt >= 0 ? Number(argv[runsAt + 1]) : 3;
if (!Number.isSafeInteger(RUNS) || RUNS < 1) {
  console.error(`bench-load: --runs needs a positive integer, got ${argv[runsAt + 1]}`);
  process.exit(2);
}
const TINY = argv.includes('--tiny');

function child(mode: Mode, dir: string): { ms: number; rssMiB: number } {
  const r = spawnSync(process.execPath, [SELF, '--child', mode, dir], { encoding: 'utf8', env: { ...process.env, PERCEIVER_DEVICE: 'cpu' } });
  if (r.status !== 0) throw new Error(`bench-load: the ${mode} child failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; rssMiB: number };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const configs: [string, Record<string, unknown>][] = TINY
  ? [['tiny language model', { ...LANGUAGE_PERCEIVER, d_latents: 64, num_latents: 16, d_model: 32, num_self_attends_per_block: 2, qk_channels: 32, v_channels: 64, max_position_embeddings: 64 }]]
  : [
      ['language model (PerceiverForMaskedLM)', LANGUAGE_PERCEIVER],
      ['ImageNet Fourier (PerceiverForImageClassificationFourier)', VISION_PERCEIVER_FOURIER],
    ];

const root = mkdtempSync(join(tmpdir(), 'perceiver-bench-load-'));
try {
  console.log(`CPU: ${cpus()[0]?.model ?? '?'} x ${cpus().length}; ${RUNS} runs per way, each in a fresh process, alternating; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const [name, config] of configs) {
    manualSeed(1);
    const model = createModel(config);
    const dir = join(root, name.split(' ')[0]);
    await model.save(dir);
    const params = model.numParameters();
    model.dispose();
    const res: Record<Mode, { ms: number; rssMiB: number }[]> = { loadModel: [], eager: [] };
    for (let r = 0; r < RUNS; r++) for (const mode of ['eager', 'loadModel'] as const) res[mode].push(child(mode, dir));
    const row = (mode: Mode) => {
      const ms = median(res[mode].map((x) => x.ms));
      const rss = median(res[mode].map((x) => x.rssMiB));
      return { ms, rss };
    };
    const a = row('loadModel');
    const b = row('eager');
    console.log(`\n${name}, ${(params / 1e6).toFixed(1)}M parameters (${((params * 4) / 2 ** 20).toFixed(0)} MiB of float32):`);
    console.log(`  loadModel (no initial draws)         ${a.ms.toFixed(0).padStart(7)} ms   resident ${a.rss.toFixed(0).padStart(6)} MiB   (${res.loadModel.map((x) => x.ms.toFixed(0)).join(', ')})`);
    console.log(`  construct with draws, then load      ${b.ms.toFixed(0).padStart(7)} ms   resident ${b.rss.toFixed(0).padStart(6)} MiB   (${res.eager.map((x) => x.ms.toFixed(0)).join(', ')})`);
    console.log(`  speed-up ${(b.ms / a.ms).toFixed(2)}x, memory ${(a.rss / b.rss).toFixed(2)}x`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
