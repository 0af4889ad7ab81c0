// The optimizer step alone (AdamW, LAMB, SGD with Nesterov momentum) over the 'mnist'
// preset's parameters, with fixed random gradients: the cost of the update kernels.
//   node dist/scripts/bench-optim.js [--steps 50]
import * as P from '../lib/index.js';
import { createModel } from '../models/index.js';
import { PRESETS } from '../models/train/presets.js';
import type { TrainableClassifier } from '../models/train/trainer.js';
import { arg } from './cli-args.js';

const steps = Number(arg('--steps') ?? 50);

P.manualSeed(0);
const model = createModel(PRESETS.mnist.model) as unknown as TrainableClassifier;
const params = model.parameters();
params.forEach((p, i) => (p.grad = P.randn([...p.shape], { seed: 100 + i }).mul(1e-2)));

const rules: [string, () => P.optim.Optimizer][] = [
  ['AdamW', () => new P.optim.AdamW(params, { lr: 1e-3, weightDecay: 0.05 })],
  ['LAMB', () => new P.optim.LAMB(params, { lr: 1e-3, weightDecay: 0.05 })],
  ['SGD (Nesterov)', () => new P.optim.SGD(params, { lr: 1e-2, momentum: 0.9, nesterov: true, weightDecay: 1e-4 })],
];
const count = params.reduce((n, p) => n + p.size, 0);
console.log(`optimizer step, mnist preset (${params.length} tensors, ${count.toLocaleString('en-US')} parameters), median of ${steps}:`);
for (const [name, make] of rules) {
  const opt = make();
  const times: number[] = [];
  for (let i = 0; i < steps + 5; i++) {
    const t0 = performance.now();
    opt.step();
    // Queued in order: the last parameter's update is the step's last kernel.
    await params.at(-1)!.data();
    if (i >= 5) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(`  ${name.padEnd(15)} ${times[Math.floor(times.length / 2)].toFixed(2)} ms/step`);
  opt.dispose();
}
model.dispose();
