// What tensors left to the garbage collector cost: training steps of the 'mnist'
// preset's miniature Perceiver IO written three ways, each in its own process (so
// that each has its own peak RSS):
//   tidy     the step inside tidy(), the loss disposed (baseline: nothing is left);
//   dropped  the step as torch code writes it: nothing disposed, every intermediate
//            (and its autograd node) dropped for the garbage collector;
//   graphs   a forward in training mode whose output is read and dropped without
//            backward(), so each graph's saved activations wait for the collector.
// Each awaits its loss as a training loop does. Prints, per way, the most bytes live
// at once (memory().cpu.peakBytes), the peak RSS and ms per step, and the ratios of
// the peaks to the tidy baseline's.
//   node dist/scripts/bench-gc.js [--steps 60] [--batch 64]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import { createModel } from '../models/index.js';
import { PRESETS } from '../models/train/presets.js';
import type { TrainableClassifier } from '../models/train/trainer.js';
import { arg } from './cli-args.js';

const WAYS = ['tidy', 'dropped', 'graphs'] as const;
type Way = (typeof WAYS)[number];
interface Result {
  way: Way;
  msPerStep: number;
  peakLiveBytes: number;
  peakRssBytes: number;
}

function usageError(message: string): never {
  console.error(`bench-gc: ${message}`);
  process.exit(2);
}
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2)
  if (!['--steps', '--batch', '--child'].includes(argv[i])) usageError(`unknown argument ${argv[i]} (expected --steps N, --batch N)`);
function count(name: string, byDefault: number): number {
  let v = String(byDefault);
  if (argv.includes(name))
    try {
      v = arg(name)!;
    } catch {
      usageError(`${name} needs a positive integer`);
    }
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) usageError(`${name} needs a positive integer, got ${v}`);
  return n;
}
const steps = count('--steps', 60);
const batch = count('--batch', 64);

async function child(way: Way): Promise<Result> {
  P.manualSeed(0);
  const model = createModel(PRESETS.mnist.model) as unknown as TrainableClassifier;
  model.train().requiresGrad_(true);
  const opt = new P.optim.AdamW(model.parameters(), { lr: 2e-3, weightDecay: 0.05 });
  const x = P.rand([batch, 1, 28, 28], { seed: 1 });
  const y = P.tensor(Int32Array.from({ length: batch }, (_, i) => i % 10), [batch]);
  const step = async (): Promise<void> => {
    if (way === 'tidy') {
      const loss = P.tidy(() => P.crossEntropy(model.forward(x).logits, y));
      loss.backward();
      opt.step();
      opt.zeroGrad();
      await loss.data();
      loss.dispose();
    } else if (way === 'dropped') {
      const loss = P.crossEntropy(model.forward(x).logits, y);
      loss.backward();
      opt.step();
      opt.zeroGrad();
      await loss.data();
    } else await model.forward(x).logits.data();
  };
  for (let i = 0; i < 3; i++) await step();
  P.resetPeakMemoryStats();
  let peakRss = 0;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    await step();
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const msPerStep = (performance.now() - t0) / steps;
  return { way, msPerStep, peakLiveBytes: P.memory().cpu.peakBytes, peakRssBytes: peakRss };
}

const mode = arg('--child');
if (mode !== undefined) {
  if (!(WAYS as readonly string[]).includes(mode)) usageError(`--child must be one of ${WAYS.join(', ')}, got ${mode}`);
  process.stdout.write(JSON.stringify(await child(mode as Way)) + '\n');
} else {
  const self = fileURLToPath(import.meta.url);
  const results: Result[] = [];
  for (const way of WAYS) {
    const r = spawnSync(process.execPath, [self, '--child', way, '--steps', String(steps), '--batch', String(batch)], {
      encoding: 'utf8',
      env: { ...process.env, PERCEIVER_DEVICE: 'cpu' },
    });
    if (r.status !== 0) throw new Error(`bench-gc: the '${way}' child failed (exit ${r.status}, signal ${r.signal}):\n${r.stderr}`);
    results.push(JSON.parse(r.stdout.trim().split('\n').pop()!) as Result);
  }
  const MiB = 1024 * 1024;
  const base = results[0];
  console.log(`mnist preset, batch ${batch}, ${steps} steps after 3 warm-up ones, cpu; each way in its own process:`);
  for (const r of results)
    console.log(
      `  ${r.way.padEnd(8)} ${r.msPerStep.toFixed(1).padStart(7)} ms/step  peak live ${(r.peakLiveBytes / MiB).toFixed(0).padStart(6)} MiB` +
        ` (${(r.peakLiveBytes / base.peakLiveBytes).toFixed(2)}x tidy)  peak RSS ${(r.peakRssBytes / MiB).toFixed(0).padStart(6)} MiB` +
        ` (${(r.peakRssBytes / base.peakRssBytes).toFixed(2)}x tidy)`,
    );
}
