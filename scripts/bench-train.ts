// One training step (forward, backward, AdamW) of the 'mnist' preset's miniature
// Perceiver IO on this machine, against the same model in Debian's python3-torch
// (scripts/bench-train.py), side by side. Goal: >= 1.0x torch's steps/s.
//   node dist/scripts/bench-train.js [--batch 64] [--steps 20] [--no-fuse] [--no-torch]
// --no-fuse: three projection products per attention, not one (models/fused-projection.ts).
import * as P from '../lib/index.js';
import { createModel, setFusedProjections } from '../models/index.js';
import { PRESETS } from '../models/train/presets.js';
import type { TrainableClassifier } from '../models/train/trainer.js';
import { arg } from './cli-args.js';
import { runTorchBaseline } from './torch-baseline.js';
import { profileTrainingStep, timeTrainingSteps } from './train-step-timer.js';

const batch = Number(arg('--batch') ?? 64);
const steps = Number(arg('--steps') ?? 20);
const threads = Number(process.env.PERCEIVER_NUM_THREADS ?? P.backends()[0].threads ?? 2);

P.manualSeed(0);
const model = createModel(PRESETS.mnist.model) as unknown as TrainableClassifier;
model.train().requiresGrad_(true);
const fuse = !process.argv.includes('--no-fuse');
if (!fuse) setFusedProjections(model, false);
const opt = new P.optim.AdamW(model.parameters(), { lr: 2e-3, weightDecay: 0.05 });
const x = P.rand([batch, 1, 28, 28], { seed: 1 });
const y = P.tensor(Int32Array.from({ length: batch }, (_, i) => i % 10), [batch]);
const times = (await timeTrainingSteps(model, opt, x, y, steps, 3)).sort((a, b) => a - b);
const ours = times[Math.floor(times.length / 2)];
// --profile: where one step's time goes, per op and scope (forward, backward/<op>, optimizer).
if (process.argv.includes('--profile')) console.log((await profileTrainingStep(model, opt, x, y)).table(30));

const torch = process.argv.includes('--no-torch')
  ? { result: null, info: 'torch not run (--no-torch)' }
  : runTorchBaseline<{ ms_per_step: number; params: number; torch: string }>('bench-train.py', [String(batch), String(steps), String(threads)]);
const torchMs = torch.result?.ms_per_step ?? null;
const torchInfo = torch.result ? `torch ${torch.result.torch} (${torch.info}), ${torch.result.params.toLocaleString('en-US')} parameters` : torch.info;
console.log(`training step, mnist preset, batch ${batch}, ${threads} threads, median of ${steps}:`);
console.log(`  perceiver-io  ${ours.toFixed(1)} ms/step  (${(1000 / ours).toFixed(2)} steps/s, ${model.numParameters().toLocaleString('en-US')} parameters${fuse ? '' : ', projections apart'})`);
if (torchMs !== null) {
  console.log(`  pytorch       ${torchMs.toFixed(1)} ms/step  (${(1000 / torchMs).toFixed(2)} steps/s; ${torchInfo})`);
  console.log(`  ratio         ${(torchMs / ours).toFixed(2)}x torch's steps/s (goal >= 1.0x)`);
} else console.log(`  ${torchInfo}`);
opt.dispose();
model.dispose();
