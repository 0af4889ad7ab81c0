// models/train and `perceiver train`: the MNIST split, exact resume (a run stopped and
// resumed from its checkpoint ends with the same weights as an uninterrupted one, with
// attention dropout too),
// evaluation, the report, and the command line (flags, Ctrl-C).
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import { createModel } from '../models/index.js';
import { loadMnist, mnistDigitsDir, type ImageSet } from '../models/train/mnist.js';
import { PRESETS } from '../models/train/presets.js';
import { evaluate, train, type TrainableClassifier } from '../models/train/trainer.js';
import { Rng } from '../models/train/rng.js';
import { AugmentPool } from '../models/train/augment-pool.js';
import type { Worker } from 'node:worker_threads';
import { cli as runCli } from './helpers/cli-run.js';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-train-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const TINY = {
  ...PRESETS.mnist.model,
  num_latents: 8,
  d_latents: 32,
  num_self_attends_per_block: 1,
  num_self_attention_heads: 2,
  conv_out_channels: 8,
  image_fourier_bands: 2,
  d_model: 8 + 2 + 2 * 2 * 2,
};

function subset(set: ImageSet, n: number): ImageSet {
  const step = Math.floor(set.labels.length / n);
  const idx = Array.from({ length: n }, (_, i) => i * step);
  const pixels = new Float32Array(n * 784);
  idx.forEach((k, i) => pixels.set(set.pixels.subarray(k * 784, (k + 1) * 784), i * 784));
  return { ...set, pixels, labels: Int32Array.from(idx, (k) => set.labels[k]) };
}

const mnist = loadMnist();

test('MNIST: the last 20% (rounded down) of each digit file is the test set', (t) => {
  let train = 0;
  let testN = 0;
  for (let d = 0; d < 10; d++) {
    const n = (JSON.parse(readFileSync(join(mnistDigitsDir(), `${d}.json`), 'utf8')).data as number[]).length / 784;
    testN += Math.floor(n * 0.2);
    train += n - Math.floor(n * 0.2);
  }
  t.is(mnist.train.labels.length, train);
  t.is(mnist.test.labels.length, testN);
  t.is(train + testN, 10000);
  t.deepEqual(mnist.train.shape, [1, 28, 28]);
  t.true(mnist.train.pixels.every((v) => v >= 0 && v <= 1));
  // The first test image of digit 3 is the first image of 3.json's last fifth.
  const three = JSON.parse(readFileSync(join(mnistDigitsDir(), '3.json'), 'utf8')).data as number[];
  const n3 = three.length / 784;
  const at = mnist.test.labels.indexOf(3);
  t.deepEqual(Array.from(mnist.test.pixels.subarray(at * 784, at * 784 + 784)), Array.from(Float32Array.from(three.slice((n3 - Math.floor(n3 * 0.2)) * 784, (n3 - Math.floor(n3 * 0.2) + 1) * 784))));
});

test('Rng: seeded, permutations are permutations, Beta draws lie in (0, 1)', (t) => {
  t.deepEqual(new Rng(5).permutation(10), new Rng(5).permutation(10));
  t.notDeepEqual(Array.from(new Rng(5).permutation(50)), Array.from(new Rng(6).permutation(50)));
  t.deepEqual([...new Rng(1).permutation(100)].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
  const r = new Rng(3);
  const draws = Array.from({ length: 200 }, () => r.beta(0.4));
  t.true(draws.every((b) => b > 0 && b < 1));
  t.true(Math.abs(draws.reduce((a, b) => a + b, 0) / 200 - 0.5) < 0.1, 'symmetric around 1/2');
});

/** How a promise settles within ms: a hang fails the test at once rather than at ava's timeout. */
async function settled<T>(p: Promise<T>, ms = 3000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(() => 'resolved', (e: Error) => `rejected: ${e.message}`),
      new Promise<string>((r) => (timer = setTimeout(() => r(`still pending after ${ms} ms`), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The logged training windows of a metrics.jsonl, without the timing fields (which differ run to run). */
function trainLines(file: string): unknown[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.kind === 'train')
    .map(({ step, epoch, loss, trainAccuracy, lr }) => ({ step, epoch, loss, trainAccuracy, lr }));
}

async function weights(m: P.Module): Promise<number[]> {
  const out: number[] = [];
  for (const p of m.parameters()) out.push(...(await p.data()));
  return out;
}

test.serial('a run stopped after 3 steps and resumed from its checkpoint ends with the same weights as an uninterrupted run', async (t) => {
  const data = { train: subset(mnist.train, 48), test: subset(mnist.test, 20) };
  const config = { epochs: 2, batchSize: 8, lr: 2e-3, warmupSteps: 2, seed: 4, mixup: 0.2, cutmix: 1, labelSmoothing: 0.1, clipNorm: 1, maxShift: 2, optimizer: 'lamb' as const };
  const make = () => {
    P.manualSeed(11);
    return createModel(TINY) as unknown as TrainableClassifier;
  };
  const a = make();
  const whole = await train({ model: a, ...data, config, outDir: join(tmp, 'whole') });
  t.is(whole.state.step, 12);
  t.truthy(whole.final);
  const b = make();
  const first = await train({ model: b, ...data, config, outDir: join(tmp, 'split'), maxSteps: 3 });
  t.is(first.state.step, 3);
  t.is(first.final, null);
  const saved = JSON.parse(readFileSync(join(tmp, 'split', 'checkpoint', 'trainer.json'), 'utf8'));
  t.true(Object.values(saved.optimizer.steps).length > 0 && Object.values(saved.optimizer.steps).every((n) => n === 3), 'each parameter\'s own update count is checkpointed');
  b.dispose();
  const c = make();
  const rest = await train({ model: c, ...data, config, outDir: join(tmp, 'split'), resume: true });
  t.is(rest.state.step, 12);
  const [wc, wa] = [await weights(c), await weights(a)];
  t.is(wc.length, wa.length);
  t.is(wc.findIndex((v, i) => !Object.is(v, wa[i])), -1, 'bit-identical weights');
  t.deepEqual(rest.final, whole.final, 'same evaluation');
  // The steps before the stop count in the first window logged after it, as in one run.
  t.deepEqual(rest.state.losses, whole.state.losses, 'same logged losses');
  t.deepEqual(trainLines(join(tmp, 'split', 'metrics.jsonl')), trainLines(join(tmp, 'whole', 'metrics.jsonl')), 'same logged loss and accuracy');
  const lines = readFileSync(join(tmp, 'split', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string });
  t.true(lines.some((l) => l.kind === 'train') && lines.some((l) => l.kind === 'eval'));
  t.deepEqual(readdirSync(join(tmp, 'split')).sort(), ['checkpoint', 'metrics.jsonl'], 'no temporary folders left');
  await t.throwsAsync(train({ model: c, ...data, config: { ...config, lr: 1 }, outDir: join(tmp, 'split'), resume: true }), { message: /written with lr = 0.002, this run has 1/ });
  await t.throwsAsync(train({ model: c, ...data, config, outDir: join(tmp, 'split'), profileStep: -1 }), { instanceOf: RangeError, message: /option 'profileStep' must be an integer >= 0, got -1/ });
  for (const m of [a, c]) m.dispose();
});

test.serial('with attention dropout, a resumed run still ends with the same weights as an uninterrupted one; the masks change the result', async (t) => {
  const data = { train: subset(mnist.train, 32), test: subset(mnist.test, 8) };
  const config = { epochs: 2, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 6, optimizer: 'adamw' as const };
  const make = (p: number) => {
    P.manualSeed(12);
    return createModel({ ...TINY, attention_probs_dropout_prob: p }) as unknown as TrainableClassifier;
  };
  const a = make(0.3);
  await train({ model: a, ...data, config, outDir: join(tmp, 'drop-whole') });
  const b = make(0.3);
  await train({ model: b, ...data, config, outDir: join(tmp, 'drop-split'), maxSteps: 3 });
  b.dispose();
  // Whatever the global generator did in between, the resumed steps draw the same masks.
  P.manualSeed(999);
  const c = make(0.3);
  const rest = await train({ model: c, ...data, config, outDir: join(tmp, 'drop-split'), resume: true });
  t.is(rest.state.step, 8);
  const [wa, wc] = [await weights(a), await weights(c)];
  t.is(wc.findIndex((v, i) => !Object.is(v, wa[i])), -1, 'bit-identical weights');
  const none = make(0);
  await train({ model: none, ...data, config, outDir: join(tmp, 'drop-none') });
  const wn = await weights(none);
  t.true(wn.some((v, i) => v !== wa[i]), 'p = 0.3 trains differently from p = 0');
  for (const m of [a, c, none]) m.dispose();
});

test.serial('evaluate: top-1 and top-5 over the set, in evaluation mode, restoring the mode', async (t) => {
  const m = createModel(TINY) as unknown as TrainableClassifier;
  m.train();
  const r = await evaluate(m, subset(mnist.test, 40), 16);
  t.true(r.top1 >= 0 && r.top1 <= r.top5 && r.top5 <= 1);
  t.true(Number.isFinite(r.loss));
  t.true(m.training);
  m.dispose();
});

test.serial('evaluate: a batch size that is not an integer >= 1 is refused (0 or a negative one would never end), and so are a bad model and set', async (t) => {
  const m = createModel(TINY) as unknown as TrainableClassifier;
  const set = subset(mnist.test, 4);
  for (const bs of [2.5, 0, -1, Number.NaN]) {
    t.regex(await settled(evaluate(m, set, bs)), new RegExp(`^rejected: evaluate: argument 'batchSize' must be an integer >= 1, got ${JSON.stringify(bs)}$`), String(bs));
  }
  await t.throwsAsync(evaluate(m, set, '4' as unknown as number), { instanceOf: RangeError, message: /'batchSize' must be an integer >= 1, got "4"/ });
  await t.throwsAsync(evaluate(null as unknown as TrainableClassifier, set), { instanceOf: TypeError, message: /argument 'model' must be a classifier/ });
  await t.throwsAsync(evaluate(m, { pixels: [], labels: [] } as unknown as ImageSet), { instanceOf: TypeError, message: /argument 'set' must be an ImageSet/ });
  m.dispose();
});

test.serial('AugmentPool: a worker that dies (exit, or an uncaught error) rejects the jobs it held with the reason; later jobs run on a fresh worker', async (t) => {
  const pool = new AugmentPool(1);
  const img = () => new Uint8Array(8 * 8 * 3).fill(100);
  // The pool's only worker (private: reached here to inject the faults).
  const worker = () => (pool as unknown as { workers: Worker[] }).workers[0];
  t.is(await settled(pool.run(img(), 8, 1, 2, 5)), 'resolved');
  // Exit: the job is sent to a worker that is stopping (as on ERR_WORKER_OUT_OF_MEMORY).
  const dying = worker();
  void dying.terminate();
  t.regex(await settled(pool.run(img(), 8, 2, 2, 5)), /^rejected: RandAugment worker thread exited \(code \d+\) with 1 job\(s\) unfinished$/);
  t.is(await settled(pool.run(img(), 8, 3, 2, 5)), 'resolved', 'a new job after the exit');
  t.not(worker(), dying, 'replaced');
  // An uncaught exception in the worker: a message that is not a job makes its handler throw.
  worker().postMessage(null);
  t.regex(await settled(pool.run(img(), 8, 4, 2, 5)), /^rejected: RandAugment worker thread failed: /);
  t.is(await settled(pool.run(img(), 8, 5, 2, 5)), 'resolved', 'a new job after the error');
  await pool.close();
  t.throws(() => new AugmentPool(0), { instanceOf: RangeError, message: /argument 'size' must be an integer >= 1, got 0/ });
  t.throws(() => pool.run(new Uint8Array(10), 8, 1, 2, 5), { instanceOf: RangeError, message: /'bytes' must hold size \* size \* 3 = 192 bytes \(RGB\), got 10/ });
});

test.serial('checkpoints: resuming a finished run returns its final evaluation; a swap cut short is undone (resume) or rolled back (error)', async (t) => {
  const data = { train: subset(mnist.train, 16), test: subset(mnist.test, 8) };
  const config = { epochs: 1, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 2, optimizer: 'adamw' as const };
  const out = join(tmp, 'swap');
  const m = createModel(TINY) as unknown as TrainableClassifier;
  const whole = await train({ model: m, ...data, config, outDir: out });
  t.truthy(whole.final);
  // Killed between writeCheckpointDir's renames: only checkpoint.old-PID is there (and
  // another run's unfinished temp folder). A checkpoint without 'window' predates it.
  const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { state: { window?: unknown } };
  delete saved.state.window;
  writeFileSync(join(out, 'checkpoint', 'trainer.json'), JSON.stringify(saved));
  renameSync(join(out, 'checkpoint'), join(out, 'checkpoint.old-99999'));
  mkdirSync(join(out, 'checkpoint.tmp-99998'));
  const again = await train({ model: m, ...data, config, outDir: out, resume: true });
  t.false(again.aborted);
  t.is(again.state.step, 2);
  t.deepEqual(again.final, whole.final, 'the final evaluation, not null: the caller saves the model now');
  t.deepEqual(readdirSync(out).sort(), ['checkpoint', 'metrics.jsonl']);
  // The swap's first rename fails (its target is taken): the temp folder goes, checkpoint/ stays.
  const before = readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8');
  mkdirSync(join(out, `checkpoint.old-${process.pid}`, 'x'), { recursive: true });
  await t.throwsAsync(train({ model: m, ...data, config, outDir: out, maxSteps: 1 }), { message: /ENOTEMPTY|EEXIST/ });
  t.deepEqual(readdirSync(out).sort(), ['checkpoint', `checkpoint.old-${process.pid}`, 'metrics.jsonl'], 'no checkpoint.tmp-PID left');
  t.is(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8'), before);
  m.dispose();
});

test('perceiver train: bad flags exit 2 naming the problem; a non-empty output folder is refused', async (t) => {
  for (const [args, msg] of [
    [['--preset', 'cifar'], /--preset must be one of mnist, imagenet, imagenet-debug/],
    [['--epochs', 'two'], /--epochs must be a non-negative integer/],
    [['--lr', '-1'], /--lr must be a positive number/],
    [['--bogus'], /unknown option '--bogus'/],
    [['--profile', 'first'], /--profile must be a non-negative integer/],
    [['--preset', 'imagenet'], /--data DIR is required for the imagenet preset/],
  ] as [string[], RegExp][]) {
    const r = await runCli(['train', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, msg);
  }
  const full = join(tmp, 'full');
  writeFileSync(join(tmp, 'x.json'), '{"model": {}, "bogus": 1}');
  const bad = await runCli(['train', '--config', join(tmp, 'x.json'), '--out', full]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /unknown key bogus/);
});

test.serial('perceiver train on MNIST with a tiny config: --max-steps stops with a checkpoint, --resume finishes, the model folder runs, Ctrl-C checkpoints', async (t) => {
  const cfg = join(tmp, 'tiny.json');
  writeFileSync(cfg, JSON.stringify({ model: TINY, train: { epochs: 1, batchSize: 400 } }));
  const out = join(tmp, 'cli-run');
  const first = await runCli(['train', '--config', cfg, '--out', out, '--max-steps', '5', '--quiet', '--profile', '2']);
  t.is(first.code, 0, first.stderr);
  t.regex(first.stderr, /resume with/);
  // --profile 2: the third step's device time per op and scope, printed and kept.
  t.regex(first.stderr, /profile of one step/);
  const profile = readFileSync(join(out, 'profile.txt'), 'utf8');
  t.regex(profile, /^step 2, batch 400, float32\nwall [\d.]+ ms; cpu busy/);
  for (const scope of ['(forward)', '(backward/matmul)', '(optimizer)']) t.true(profile.includes(scope), scope);
  t.true(existsSync(join(out, 'checkpoint', 'trainer.json')));
  const second = await runCli(['train', '--config', cfg, '--out', out, '--resume', '--quiet']);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stderr, /epoch 1: test top-1 \d+\.\d+%/);
  for (const f of ['model/config.json', 'model/model.safetensors', 'report.png', 'metrics.jsonl']) t.true(existsSync(join(out, f)), f);
  // Died after the final checkpoint, before the model folder and report: --resume writes them.
  for (const f of ['model', 'report.png']) rmSync(join(out, f), { recursive: true });
  const finish = await runCli(['train', '--config', cfg, '--out', out, '--resume', '--quiet']);
  t.is(finish.code, 0, finish.stderr);
  t.notRegex(finish.stderr, /resume with/);
  t.regex(finish.stderr, /done in \d+ s: test top-1 \d+\.\d+%/);
  for (const f of ['model/config.json', 'model/model.safetensors', 'report.png']) t.true(existsSync(join(out, f)), f);
  const again = await runCli(['train', '--config', cfg, '--out', out, '--quiet']);
  t.is(again.code, 1);
  t.regex(again.stderr, /is not empty/);

  // Ctrl-C: the step finishes, a checkpoint is written, the process exits cleanly.
  const out2 = join(tmp, 'cli-int');
  const child = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'perceiver.js'), 'train', '--config', cfg, '--out', out2, '--epochs', '50'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('step 10/') && !child.killed) child.kill('SIGINT');
    });
    child.on('exit', (c) => resolve(c));
  });
  t.is(code, 0, err);
  t.regex(err, /interrupted/);
  t.true(existsSync(join(out2, 'checkpoint', 'trainer.json')));
});

test.serial('gradient accumulation: two micro-batches of 4 step like one batch of 8 (a model without batch norm)', async (t) => {
  const fourier = {
    architectures: ['PerceiverForImageClassificationFourier'],
    num_latents: 8,
    d_latents: 32,
    num_self_attends_per_block: 1,
    num_self_attention_heads: 2,
    num_cross_attention_heads: 1,
    image_channels: 1,
    image_fourier_bands: 2,
    image_fourier_max_resolution: [28, 28],
    d_model: 1 + 2 + 2 * 2 * 2,
    initializer_range: 0.1,
    num_labels: 10,
    // Dropout draws one mask per micro-batch: the two runs would differ by their masks.
    attention_probs_dropout_prob: 0,
  };
  const data = { train: subset(mnist.train, 32), test: subset(mnist.test, 8) };
  const run = async (accumulateSteps: number) => {
    P.manualSeed(5);
    const m = createModel(fourier) as unknown as TrainableClassifier;
    // The batch sizes the training forwards see: micro-batches, not the whole batch.
    const sizes: number[] = [];
    const forward = m.forward.bind(m);
    m.forward = ((x: P.Tensor, ...rest: unknown[]) => {
      if (m.training) sizes.push(x.shape[0]);
      return (forward as (...a: unknown[]) => ReturnType<typeof forward>)(x, ...rest);
    }) as typeof m.forward;
    await train({ model: m, ...data, config: { epochs: 1, batchSize: 8, lr: 0.05, optimizer: 'sgd', weightDecay: 0, warmupSteps: 0, accumulateSteps }, outDir: join(tmp, `acc-${accumulateSteps}`) });
    const w = await weights(m);
    m.dispose();
    return { w, sizes };
  };
  // SGD: the update is linear in the gradient (Adam would magnify round-off in near-zero gradients).
  const [r1, r2] = [await run(1), await run(2)];
  t.deepEqual(r1.sizes, [8, 8, 8, 8], 'four steps of 8');
  t.deepEqual(r2.sizes, [4, 4, 4, 4, 4, 4, 4, 4], 'the same four steps, each two micro-batches of 4');
  const [one, two] = [r1.w, r2.w];
  let worst = 0;
  for (let i = 0; i < one.length; i++) worst = Math.max(worst, Math.abs(one[i] - two[i]) / Math.max(1e-2, Math.abs(one[i])));
  t.true(worst < 1e-3, `max relative difference ${worst}`);
  await t.throwsAsync(run(3), { instanceOf: RangeError, message: /'accumulateSteps' \(3\) must divide 'batchSize' \(8\)/ });
});

test.serial('every preset builds its model and passes the trainer checks', (t) => {
  for (const [name, preset] of Object.entries(PRESETS)) {
    const m = createModel(preset.model);
    t.true(m.numParameters() > 0, name);
    m.dispose();
  }
  t.is(PRESETS.imagenet.train.lr, 2e-3, "the reference's 5e-4 x 1024 / 256");
});

test.serial('precision float16: loss scaling (the scale checkpointed, a resumed run bit-identical), weights near the float32 run', async (t) => {
  const data = { train: subset(mnist.train, 48), test: subset(mnist.test, 16) };
  // SGD: its step is proportional to the gradient, so a scale left in would show (Adam's would not).
  const config = { epochs: 1, batchSize: 8, lr: 0.05, optimizer: 'sgd' as const, weightDecay: 0, warmupSteps: 0, seed: 3 };
  const make = () => {
    P.manualSeed(11);
    return createModel(TINY) as unknown as TrainableClassifier;
  };
  const full = make();
  const f32 = await train({ model: full, ...data, config, outDir: join(tmp, 'prec-f32') });
  const half = make();
  const f16 = await train({ model: half, ...data, config: { ...config, precision: 'float16' }, outDir: join(tmp, 'prec-f16') });
  const saved = JSON.parse(readFileSync(join(tmp, 'prec-f16', 'checkpoint', 'trainer.json'), 'utf8')) as { state: { lossScale?: { scale: number; growthTracker: number } } };
  t.truthy(saved.state.lossScale, 'the loss scale is checkpointed');
  t.true(saved.state.lossScale!.scale > 0 && saved.state.lossScale!.scale <= 2 ** 16);
  t.true(f16.state.losses.every((l) => Number.isFinite(l.loss)));
  // Mixed precision trains the same model: after 6 steps float16's weights differ from
  // float32's by a small part of how far training moved them (mean over all weights).
  const start = make();
  const [w0, w32, w16] = [await weights(start), await weights(full), await weights(half)];
  start.dispose();
  let moved = 0;
  let apart = 0;
  for (let i = 0; i < w32.length; i++) {
    moved += Math.abs(w32[i] - w0[i]);
    apart += Math.abs(w16[i] - w32[i]);
  }
  t.log(`mean |float16 - float32| / mean |float32 - initial| after 6 steps: ${(apart / moved).toFixed(4)}`);
  t.true(apart > 0 && apart < 0.1 * moved, `float16 runs apart by ${apart / moved} of the distance trained`);
  t.truthy(f32.final && f16.final);
  const split = make();
  await train({ model: split, ...data, config: { ...config, precision: 'float16' }, outDir: join(tmp, 'prec-f16-split'), maxSteps: 2 });
  split.dispose();
  const rest = make();
  await train({ model: rest, ...data, config: { ...config, precision: 'float16' }, outDir: join(tmp, 'prec-f16-split'), resume: true });
  const wr = await weights(rest);
  t.is(wr.findIndex((v, i) => !Object.is(v, w16[i])), -1, 'resumed float16 run: bit-identical weights');
  await t.throwsAsync(train({ model: rest, ...data, config: { ...config, precision: 'int8' as 'float16' }, outDir: join(tmp, 'prec-bad') }), {
    instanceOf: TypeError,
    message: /'precision' must be float32, bfloat16 or float16, got "int8"/,
  });
  for (const m of [full, half, rest]) m.dispose();
});
