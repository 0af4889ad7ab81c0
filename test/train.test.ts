// models/train and `perceiver train`: the MNIST split, exact resume (a run stopped and
// resumed from its checkpoint ends with the same weights as an uninterrupted one, with
// attention dropout too),
// evaluation, the report, and the command line (flags, Ctrl-C).
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import { createModel } from '../models/index.js';
import { loadMnist, mnistDigitsDir, type ImageSet } from '../models/train/mnist.js';
import { PRESETS } from '../models/train/presets.js';
import { checkTrainConfig, DEFAULT_TRAIN, dropoutSeed, evaluate, mixBatch, preprocessorConfigFor, train, type TrainableClassifier } from '../models/train/trainer.js';
import { IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, imageProcessorOptions, preprocessImage } from '../models/image-processor.js';
import { loadModel, readModelConfig } from '../models/load.js';
import { memorySource, type DataSource } from '../models/train/image-pipeline.js';
import { Rng, streamSeed } from '../models/train/rng.js';
import { AugmentPool } from '../models/train/augment-pool.js';
import type { Worker } from 'node:worker_threads';
import { cli as runCli } from './helpers/cli-run.js';
import { assertUnknownOptions } from './helpers/options.js';
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
  const job = (seed: number) => ({ seed, numLayers: 2, magnitude: 5, lengths: 'scaled' as const });
  // The pool's only worker (private: reached here to inject the faults).
  const worker = () => (pool as unknown as { workers: Worker[] }).workers[0];
  t.is(await settled(pool.run(img(), 8, 8, job(1))), 'resolved');
  // Exit: the job is sent to a worker that is stopping (as on ERR_WORKER_OUT_OF_MEMORY).
  const dying = worker();
  void dying.terminate();
  t.regex(await settled(pool.run(img(), 8, 8, job(2))), /^rejected: RandAugment worker thread exited \(code \d+\) with 1 job\(s\) unfinished$/);
  t.is(await settled(pool.run(img(), 8, 8, job(3))), 'resolved', 'a new job after the exit');
  t.not(worker(), dying, 'replaced');
  // An uncaught exception in the worker: a message that is not a job makes its handler throw.
  worker().postMessage(null);
  t.regex(await settled(pool.run(img(), 8, 8, job(4))), /^rejected: RandAugment worker thread failed: /);
  t.is(await settled(pool.run(img(), 8, 8, job(5))), 'resolved', 'a new job after the error');
  await pool.close();
  t.throws(() => new AugmentPool(0), { instanceOf: RangeError, message: /argument 'size' must be an integer >= 1, got 0/ });
  t.throws(() => pool.run(new Uint8Array(10), 8, 8, job(1)), { instanceOf: RangeError, message: /'bytes' must hold height \* width \* 3 = 192 bytes \(RGB\), got 10/ });
  t.throws(() => pool.run(img(), 8, 8, { ...job(1), lengths: 'pixels' as never }), { instanceOf: TypeError, message: /'job.lengths' must be 'absolute' or 'scaled', got "pixels"/ });
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
    // 'close', not 'exit': stderr's last lines may still be in flight at exit.
    child.on('close', (c) => resolve(c));
  });
  // Checkpointed, yet stopped: the status says so, as a shell reports a Ctrl-C'd process.
  t.is(code, 130, err);
  t.regex(err, /interrupted \(SIGINT\)/);
  t.true(existsSync(join(out2, 'checkpoint', 'trainer.json')));
});

test.serial('perceiver train: SIGTERM checkpoints as Ctrl-C does and exits 143; --resume continues from it', async (t) => {
  const cfg = join(tmp, 'tiny-term.json');
  writeFileSync(cfg, JSON.stringify({ model: TINY, train: { epochs: 50, batchSize: 400 } }));
  const out = join(tmp, 'cli-term');
  const child = spawn(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'perceiver.js'), 'train', '--config', cfg, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const code = await new Promise<number | null>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('step 10/') && !child.killed) child.kill('SIGTERM');
    });
    // 'close', not 'exit': stderr's last lines may still be in flight at exit.
    child.on('close', (c) => resolve(c));
  });
  t.is(code, 143, err);
  t.regex(err, /interrupted \(SIGTERM\): finishing the step and writing a checkpoint/);
  t.regex(err, /resume with: /);
  const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { state: { step: number } };
  t.true(saved.state.step >= 10, `step ${saved.state.step}`);
  const resumed = await runCli(['train', '--config', cfg, '--out', out, '--resume', '--max-steps', '1', '--quiet']);
  t.is(resumed.code, 0, resumed.stderr);
});

test('perceiver train: a folder holding only what a run stopped before its first checkpoint left (metrics.jsonl) starts afresh, saying so; --resume there says why it cannot', async (t) => {
  const cfg = join(tmp, 'tiny-fresh.json');
  writeFileSync(cfg, JSON.stringify({ model: TINY, train: { epochs: 1, batchSize: 400 } }));
  const out = join(tmp, 'aborted');
  mkdirSync(join(out, 'checkpoint.tmp-12345'), { recursive: true });
  writeFileSync(join(out, 'metrics.jsonl'), '{"kind":"train","step":10}\n');
  const resume = await runCli(['train', '--config', cfg, '--out', out, '--resume', '--quiet']);
  t.is(resume.code, 1);
  t.regex(resume.stderr, /--resume: '.*checkpoint' does not exist \(the run stopped before its first checkpoint: run again without --resume to start afresh\)/);
  const r = await runCli(['train', '--config', cfg, '--out', out, '--max-steps', '1', '--quiet']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /'.*aborted' holds no checkpoint, only what a stopped run left \(.*metrics\.jsonl.*\): starting afresh/);
  t.true(existsSync(join(out, 'checkpoint', 'trainer.json')));
  t.false(existsSync(join(out, 'checkpoint.tmp-12345')));
  const metrics = join(out, 'metrics.jsonl');
  t.false(existsSync(metrics) && readFileSync(metrics, 'utf8').includes('"step":10}'), "the old run's metrics are gone");
  // A folder with anything else in it is still someone's: refused.
  const mine = join(tmp, 'mine');
  mkdirSync(mine);
  writeFileSync(join(mine, 'metrics.jsonl'), '');
  writeFileSync(join(mine, 'notes.txt'), 'keep');
  const refused = await runCli(['train', '--config', cfg, '--out', mine, '--max-steps', '1', '--quiet']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /output folder '.*mine' is not empty/);
});

test('perceiver train: a folder another live run holds (its lock names a running process) is refused, not cleared; a dead run\'s lock is taken over', async (t) => {
  const cfg = join(tmp, 'tiny-lock.json');
  writeFileSync(cfg, JSON.stringify({ model: TINY, train: { epochs: 1, batchSize: 400 } }));
  // A run still before its first checkpoint: only metrics.jsonl, and its lock (this
  // test's own process stands for the live run).
  const live = join(tmp, 'live');
  mkdirSync(live);
  writeFileSync(join(live, 'metrics.jsonl'), '{"kind":"train","step":3}\n');
  writeFileSync(join(live, '.perceiver-train.lock'), `${process.pid}\n`);
  const refused = await runCli(['train', '--config', cfg, '--out', live, '--max-steps', '1', '--quiet']);
  t.is(refused.code, 1, refused.stderr);
  t.regex(refused.stderr, new RegExp(`output folder '.*live' is in use by another training run \\(pid ${process.pid}\\)`));
  t.is(readFileSync(join(live, 'metrics.jsonl'), 'utf8'), '{"kind":"train","step":3}\n', "the live run's files are untouched");
  // The same folder once that run is gone (a pid no process has): started afresh, and
  // the lock released at the end.
  const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(join(live, '.perceiver-train.lock'), `${gone}\n`);
  const r = await runCli(['train', '--config', cfg, '--out', live, '--max-steps', '1', '--quiet']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /starting afresh/);
  t.false(existsSync(join(live, '.perceiver-train.lock')));
});

test('perceiver train: --config sections must be objects and model fields known; --out must be a folder whose parent exists; --lr takes decimal numbers only', async (t) => {
  const write = (name: string, json: unknown) => {
    writeFileSync(join(tmp, name), JSON.stringify(json));
    return join(tmp, name);
  };
  for (const [file, msg] of [
    [write('model-string.json', { model: 'x' }), /config file '.*model-string\.json': "model" must be an object of config\.json fields, got "x"/],
    [write('model-array.json', { model: [1] }), /"model" must be an object of config\.json fields, got \[1\]/],
    [write('train-null.json', { train: null }), /"train" must be an object of train settings, got null/],
    [write('model-typo.json', { model: { num_latentz: 5, d_latent: 7 } }), /config file '.*model-typo\.json': unknown model fields num_latentz, d_latent \(/],
    // An inherited name is no setting either (the check once used `in`).
    [write('train-proto.json', { train: { toString: 1, epochs: 1 } }), /config file '.*train-proto\.json': unknown train setting toString \(known: /],
  ] as [string, RegExp][]) {
    const r = await runCli(['train', '--config', file, '--out', join(tmp, 'never-cfg')]);
    t.is(r.code, 1, `${file}: ${r.stderr}`);
    t.regex(r.stderr, msg);
  }
  t.false(existsSync(join(tmp, 'never-cfg')));
  writeFileSync(join(tmp, 'a-file'), 'x');
  for (const [args, msg] of [
    [['--out', join(tmp, 'a-file')], /output folder '.*a-file' exists and is not a folder/],
    [['--out', join(tmp, 'no', 'such', 'x')], /the folder '.*no\/such' that would hold the output folder 'x' does not exist/],
    [['--data', join(tmp, 'a-file'), '--out', join(tmp, 'never-data')], /image folder '.*a-file' is not a folder/],
  ] as [string[], RegExp][]) {
    const r = await runCli(['train', ...args]);
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, msg);
  }
  t.false(existsSync(join(tmp, 'no')));
  for (const lr of ['0x10', ' 0.1', '1e', 'Infinity']) {
    const r = await runCli(['train', `--lr=${lr}`, '--out', join(tmp, 'never-lr')]);
    t.is(r.code, 2, `${lr}: ${r.stderr}`);
    t.regex(r.stderr, /--lr must be a positive number/);
  }
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
    t.notThrows(() => checkTrainConfig({ ...DEFAULT_TRAIN, ...preset.train }), name);
  }
  t.is(PRESETS.imagenet.train.lr, 2e-3, "the reference's 5e-4 x 1024 / 256");
});

test('the imagenet presets normalise with ImageNet\'s mean and std, evaluate on the centre 224/256, and checkpoint periodically', (t) => {
  for (const name of ['imagenet', 'imagenet-debug']) {
    const { model, train: tc } = PRESETS[name];
    // The pipeline yields [0, 1]; the model normalises (config.image_mean/std), as the
    // reference's _normalize_image does before its network.
    t.deepEqual(model.image_mean, [...IMAGENET_DEFAULT_MEAN], name);
    t.deepEqual(model.image_std, [...IMAGENET_DEFAULT_STD], name);
    t.is(tc.evalCropFraction, 0.875, `${name}: the reference's 224 / 256`);
    t.true((tc.checkpointEvery ?? 0) > 0, `${name}: a failure or pre-emption loses at most checkpointEvery steps`);
  }
  t.is(PRESETS.imagenet.train.checkpointEvery, 1000);
  t.is(PRESETS.mnist.train.evalCropFraction, undefined, 'mnist: the default, 1 (in-memory images are not cropped anyway)');
  t.is(DEFAULT_TRAIN.evalCropFraction, 1);
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

test('seeds: the streams a seed draws are pinned; large safe seeds get their own per epoch and step, none lost to rounding', (t) => {
  // The streams the trainer draws, pinned: a change moves every run's data order,
  // augmentation and dropout (the demo's measured accuracy is seed 0's). These values
  // changed when streamSeed became a hash of (seed, kind, counter): the old
  // low32(seed * k + counter) gave seed 0 the same stream for every kind (epoch e's
  // order was step e's augmentation), see test/rng.test.ts.
  t.deepEqual([0, 1].map((e) => Array.from(new Rng(streamSeed(0, 1_000_003, e)).permutation(10))), [[0, 4, 6, 7, 3, 8, 2, 1, 9, 5], [5, 0, 3, 6, 8, 4, 1, 2, 7, 9]]);
  t.deepEqual(Array.from(new Rng(streamSeed(4, 1_000_003, 1)).permutation(10)), [9, 0, 3, 5, 8, 6, 1, 7, 4, 2]);
  t.deepEqual([0, 1, 2].map((s) => new Rng(streamSeed(0, 7_919, s)).next()), [0.29446203215047717, 0.5481942808255553, 0.03539018821902573]);
  t.deepEqual([0, 1, 2, 1000].map((s) => dropoutSeed(0, s)), [220502714, 1184091562, 1033634729, 1776988823]);
  t.is(dropoutSeed(4, 7), 294404118);
  // seed * 1_000_003 + epoch rounded to one double for seed 1e12 (one data order for
  // every epoch), seed * 7919 + step for seed 2^52 (one augmentation and dropout mask).
  for (const seed of [1e12, 2 ** 52, Number.MAX_SAFE_INTEGER]) {
    const orders = new Set([0, 1, 2, 3].map((e) => Array.from(new Rng(streamSeed(seed, 1_000_003, e)).permutation(12)).join(',')));
    t.is(orders.size, 4, `seed ${seed}: a data order per epoch`);
    t.is(new Set([0, 1, 2, 3].map((s) => new Rng(streamSeed(seed, 7_919, s)).next())).size, 4, `seed ${seed}: augmentation per step`);
    t.is(new Set([0, 1, 2, 3].map((s) => dropoutSeed(seed, s))).size, 4, `seed ${seed}: dropout per step`);
    t.notThrows(() => checkTrainConfig({ ...DEFAULT_TRAIN, seed }));
  }
  // Rng read its seed as a 32-bit integer: seeds 2^32 apart were one stream.
  t.not(new Rng(5).next(), new Rng(5 + 2 ** 32).next());
  // Within [-2^31, 2^32) the seed still goes in as its 32 bits, as before (the high
  // word is folded in only past that range): -1 and 2^32 - 1 keep their one stream.
  for (const k of [1, 5, 2 ** 31]) t.is(new Rng(-k).next(), new Rng(2 ** 32 - k).next(), `-${k}`);
  t.not(new Rng(-(2 ** 31) - 1).next(), new Rng(2 ** 31 - 1).next());
  t.not(dropoutSeed(5, 3), dropoutSeed(5 + 2 ** 32, 3));
  t.not(new Rng(streamSeed(5, 1_000_003, 0)).next(), new Rng(streamSeed(5 + 2 ** 32, 1_000_003, 0)).next());
  t.throws(() => checkTrainConfig({ ...DEFAULT_TRAIN, seed: 2 ** 53 }), { instanceOf: RangeError, message: /'seed' must be at most 2\^53 - 1 \(Number.MAX_SAFE_INTEGER\), got 9007199254740992/ });
  t.throws(() => new Rng(2 ** 60), { instanceOf: RangeError, message: /^Rng: argument 'seed' must be a safe integer/ });
  t.throws(() => streamSeed(-1, 7, 0), { instanceOf: RangeError, message: /^streamSeed: argument 'seed' must be an integer in \[0, 2\^53\), got -1/ });
});

/** A classifier whose logits are fixed rows (one per image, in set order). */
function fixedLogits(rows: number[][]): TrainableClassifier {
  let at = 0;
  class Fixed extends P.Module {
    forward(x: P.Tensor): { logits: P.Tensor } {
      const n = x.shape[0];
      const part = rows.slice(at, at + n);
      at += n;
      return { logits: P.tensor(Float32Array.from(part.flat()), [n, rows[0].length]) };
    }
    async save(): Promise<void> {}
  }
  return new Fixed() as unknown as TrainableClassifier;
}

test.serial('evaluate: a row with a NaN or infinite logit is wrong (NaN compares false, so it ranked first); an empty set is refused', async (t) => {
  const classes = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const set: ImageSet = { pixels: new Float32Array(5 * 4), labels: Int32Array.from([1, 2, 3, 0, 4]), shape: [1, 2, 2], classes };
  const N = Number.NaN;
  const r = await evaluate(
    fixedLogits([
      [N, N, N, N, N, N, N], // a diverged model: every logit NaN
      [0, 0, 5, 0, 0, 0, 0], // right
      [0, 0, 0, Infinity, 0, 0, 0], // the target at +Infinity
      [1, N, 0, 0, 0, 0, 0], // the target finite, another logit NaN
      [0, 1, 2, 3, 4, 0, 0], // right
    ]),
    set,
    2,
  );
  t.is(r.top1, 2 / 5);
  t.is(r.top5, 2 / 5);
  const empty: ImageSet = { pixels: new Float32Array(0), labels: new Int32Array(0), shape: [1, 2, 2], classes };
  await t.throwsAsync(evaluate(fixedLogits([[0]]), empty), { instanceOf: RangeError, message: /^evaluate: argument 'set' has no images \(size 0\)/ });
  const m = createModel(TINY) as unknown as TrainableClassifier;
  await t.throwsAsync(train({ model: m, train: subset(mnist.train, 16), test: { ...subset(mnist.test, 0), labels: new Int32Array(0) }, config: { epochs: 1, batchSize: 8 }, outDir: join(tmp, 'no-test') }), {
    instanceOf: RangeError,
    message: /train: the test set has no images/,
  });
  t.false(existsSync(join(tmp, 'no-test', 'checkpoint')), 'refused before any training');
  m.dispose();
});

test.serial('resume refuses a checkpoint of another model config or data set, saying what differs; checkpoints without those records still resume', async (t) => {
  const data = { train: subset(mnist.train, 32), test: subset(mnist.test, 8) };
  const config = { epochs: 1, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 3 };
  const out = join(tmp, 'resume-check');
  const m = createModel(TINY) as unknown as TrainableClassifier;
  await train({ model: m, ...data, config, outDir: out, maxSteps: 1 });
  const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as Record<string, unknown>;
  t.deepEqual(saved.model, JSON.parse(readFileSync(join(out, 'checkpoint', 'config.json'), 'utf8')), "the model's config.json object");
  t.deepEqual(saved.data, { trainSize: 32, testSize: 8, classes: 10 });
  // Same shapes, another function: the weights would load and train the wrong model.
  const other = createModel({ ...TINY, hidden_act: 'gelu_new', attention_probs_dropout_prob: 0.5 }) as unknown as TrainableClassifier;
  await t.throwsAsync(train({ model: other, ...data, config, outDir: out, resume: true }), {
    message: /^train: the checkpoint in '.*' was written for another model config \(2 fields differ\): attention_probs_dropout_prob: 0 in the checkpoint, 0\.5 in this run; hidden_act: "gelu" in the checkpoint, "gelu_new" in this run$/,
  });
  await t.throwsAsync(train({ model: m, train: subset(mnist.train, 40), test: subset(mnist.test, 10), config, outDir: out, resume: true }), {
    message: /^train: the checkpoint in '.*' was written for other data: 32 training images in the checkpoint, 40 in this run; 8 test images in the checkpoint, 10 in this run$/,
  });
  await t.throwsAsync(train({ model: m, train: { ...data.train, classes: [...data.train.classes, 'x'] }, test: data.test, config, outDir: out, resume: true }), {
    message: /other data: 10 classes in the checkpoint, 11 in this run/,
  });
  // Written before trainer.json held these: the model is checked against the
  // checkpoint's config.json; the data cannot be (the next checkpoint records it).
  delete saved.model;
  delete saved.data;
  writeFileSync(join(out, 'checkpoint', 'trainer.json'), JSON.stringify(saved));
  await t.throwsAsync(train({ model: other, ...data, config, outDir: out, resume: true }), { message: /another model config \(2 fields differ\)/ });
  const done = await train({ model: m, ...data, config, outDir: out, resume: true });
  t.is(done.state.step, 4);
  t.deepEqual(JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')).data, { trainSize: 32, testSize: 8, classes: 10 });
  for (const x of [m, other]) x.dispose();
});

test.serial("a final evaluation that failed is run again on resume, not replaced by the previous epoch's", async (t) => {
  const data = { train: subset(mnist.train, 16), test: subset(mnist.test, 8) };
  const config = { epochs: 2, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 1 };
  const make = () => {
    P.manualSeed(21);
    return createModel(TINY) as unknown as TrainableClassifier;
  };
  const a = make();
  const whole = await train({ model: a, ...data, config, outDir: join(tmp, 'final-whole') });
  a.dispose();
  // A test set whose reads fail from the second evaluation on (a disk gone, say).
  const src = memorySource(data.test);
  let evals = 0;
  let failing = true;
  const flaky: DataSource = {
    size: src.size,
    classes: src.classes,
    shape: src.shape,
    label: (i) => src.label(i),
    batch: (idx, aug) => (failing && evals >= 1 ? Promise.reject(new Error('test image unreadable')) : src.batch(idx, aug)),
  };
  const out = join(tmp, 'final-split');
  const b = make();
  await t.throwsAsync(train({ model: b, train: data.train, test: flaky, config, outDir: out, onEval: () => evals++ }), { message: 'test image unreadable' });
  b.dispose();
  // The training finished and was checkpointed; its last evaluation is missing.
  const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { state: { step: number; history: { step: number }[] } };
  t.is(saved.state.step, 4);
  t.deepEqual(saved.state.history.map((h) => h.step), [2]);
  failing = false;
  const c = P.withoutInit(() => createModel(TINY)) as unknown as TrainableClassifier;
  const rest = await train({ model: c, train: data.train, test: flaky, config, outDir: out, resume: true });
  t.deepEqual(rest.final, whole.final, "the final step's evaluation");
  t.deepEqual(rest.state.history, whole.state.history);
  t.deepEqual(JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')).state.history, whole.state.history, 'and checkpointed');
  c.dispose();
});

/** kind@step and the logged values of a metrics.jsonl's lines, without the timing fields. */
function metricLines(file: string): unknown[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
    .map(({ kind, step, epoch, loss, trainAccuracy, lr, top1, top5 }) => ({ kind, step, epoch, loss, trainAccuracy, lr, top1, top5 }));
}

test.serial('metrics.jsonl after crashes and resumes holds the lines of an uninterrupted run, once each', async (t) => {
  const data = { train: subset(mnist.train, 48), test: subset(mnist.test, 8) };
  const config = { epochs: 2, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 5, checkpointEvery: 3 };
  const make = () => {
    P.manualSeed(22);
    return createModel(TINY) as unknown as TrainableClassifier;
  };
  const a = make();
  await train({ model: a, ...data, config, outDir: join(tmp, 'metrics-whole') });
  a.dispose();
  const out = join(tmp, 'metrics-split');
  const file = join(out, 'metrics.jsonl');
  // A crash just after the first epoch's evaluation was logged: the checkpoint of that
  // step (6) was taken before the evaluation, whose line must not stay twice.
  const b = make();
  await t.throwsAsync(train({ model: b, ...data, config, outDir: out, onEval: () => { throw new Error('crash'); } }), { message: 'crash' });
  b.dispose();
  // Then a process killed at step 10, which cut its last line short. A throw is
  // checkpointed (step 10); a kill leaves the last periodic checkpoint (step 9), taken
  // aside here and put back, so the resumed run logs step 10 again.
  const c = P.withoutInit(() => createModel(TINY)) as unknown as TrainableClassifier;
  const at9 = join(tmp, 'metrics-checkpoint-9');
  const onProgress = (p: { step: number }) => {
    if (p.step !== 10) return;
    cpSync(join(out, 'checkpoint'), at9, { recursive: true });
    throw new Error('crash');
  };
  await t.throwsAsync(train({ model: c, ...data, config, outDir: out, resume: true, onProgress }), { message: 'crash' });
  c.dispose();
  t.is((JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { state: { step: number } }).state.step, 10, 'the failure was checkpointed');
  rmSync(join(out, 'checkpoint'), { recursive: true });
  renameSync(at9, join(out, 'checkpoint'));
  writeFileSync(file, readFileSync(file, 'utf8') + '{"kind":"train","st');
  const d = P.withoutInit(() => createModel(TINY)) as unknown as TrainableClassifier;
  await train({ model: d, ...data, config, outDir: out, resume: true });
  d.dispose();
  const whole = metricLines(join(tmp, 'metrics-whole', 'metrics.jsonl'));
  t.deepEqual(whole.map((l) => `${(l as { kind: string }).kind}@${(l as { step: number }).step}`), ['train@6', 'eval@6', 'train@10', 'train@12', 'eval@12']);
  t.deepEqual(metricLines(file), whole);
  t.deepEqual(readdirSync(out).sort(), ['checkpoint', 'metrics.jsonl'], 'no temporary file left');
});

test('perceiver train: flag values out of range are usage errors (exit 2), not a failed run', async (t) => {
  for (const [args, msg] of [
    [['--epochs', '0'], /perceiver: error: --epochs must be an integer >= 1, got '0'/],
    [['--accumulate', '3'], /perceiver: error: --accumulate \(3\) must divide the batch size \(64, the preset's\)/],
    [['--batch-size', '0'], /--batch-size must be an integer >= 1, got '0'/],
    [['--seed', '9007199254740993'], /--seed must be at most 2\^53 - 1, got '9007199254740993'/],
  ] as [string[], RegExp][]) {
    const r = await runCli(['train', ...args, '--out', join(tmp, 'flags-never')]);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, msg);
    t.regex(r.stderr, /Usage: perceiver train/);
  }
  t.false(existsSync(join(tmp, 'flags-never')));
  // A bad value in a config file is the file's fault (exit 1), named before any data is read.
  writeFileSync(join(tmp, 'epochs0.json'), '{"train": {"epochs": 0}}');
  const r = await runCli(['train', '--config', join(tmp, 'epochs0.json'), '--out', join(tmp, 'flags-never')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^perceiver: error: config file '.*epochs0.json': train: 'epochs' must be an integer >= 1, got 0\n$/);
});

test('train refuses a misspelt option or setting before any work, naming the argument and the key', async (t) => {
  const model = createModel(PRESETS.mnist.model) as unknown as TrainableClassifier;
  const set = { pixels: new Float32Array(0), labels: new Int32Array(0), shape: [1, 28, 28], classes: [] } as unknown as ImageSet;
  const outDir = join(tmp, 'unknown-option');
  await assertUnknownOptions(t, [
    [() => train({ model, train: set, test: set, config: {}, outDir, onProgres: () => undefined } as never), 'train', 'opts', 'onProgres'],
    // The run would otherwise train with the default learning rate.
    [() => train({ model, train: set, test: set, config: { learningRate: 0.1 } as never, outDir }), 'train', 'opts.config', 'learningRate'],
  ]);
  t.false(existsSync(outDir), 'nothing was written');
  model.dispose();
});

/** A source over `set` whose batch number `failAt` (counting every read, 1-based) fails, or yields NaN pixels, while `on()`. */
function flakySource(set: ImageSet, failAt: number, how: 'throw' | 'nan', on: () => boolean): DataSource & { reads: number } {
  const src = memorySource(set);
  const out = {
    reads: 0,
    size: src.size,
    classes: src.classes,
    shape: src.shape,
    label: (i: number) => src.label(i),
    async batch(idx: ArrayLike<number>, aug: Parameters<DataSource['batch']>[1]) {
      out.reads++;
      const b = await src.batch(idx, aug);
      if (on() && out.reads === failAt) {
        if (how === 'throw') throw new Error("cannot load training image 'cat/img007.jpg': Input file has corrupt header");
        b.pixels.fill(Number.NaN);
      }
      return b;
    },
  };
  return out;
}

const liveTensors = () => P.memory().cpu.tensors;

test.serial('a step that throws (an unreadable image) checkpoints the last completed step; --resume ends with the weights of an uninterrupted run', async (t) => {
  const data = { train: subset(mnist.train, 48), test: subset(mnist.test, 8) };
  const config = { epochs: 2, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 6, maxShift: 1 };
  const make = () => {
    P.manualSeed(31);
    return createModel(TINY) as unknown as TrainableClassifier;
  };
  const a = make();
  const whole = await train({ model: a, ...data, config, outDir: join(tmp, 'throw-whole') });
  const wa = await weights(a);
  a.dispose();
  // Read 8 is step 7's batch (6 steps an epoch, each step's read one ahead): steps 0-6
  // complete, the first epoch's evaluation included, and no checkpoint was due.
  let failing = true;
  const flaky = flakySource(data.train, 8, 'throw', () => failing);
  const out = join(tmp, 'throw-split');
  const b = make();
  await t.throwsAsync(train({ model: b, train: flaky, test: data.test, config, outDir: out }), { message: /^cannot load training image 'cat\/img007\.jpg'/ });
  b.dispose();
  const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { state: { step: number; epoch: number; position: number } };
  t.deepEqual([saved.state.step, saved.state.epoch, saved.state.position], [7, 1, 8], 'the last completed step');
  failing = false;
  const c = P.withoutInit(() => createModel(TINY)) as unknown as TrainableClassifier;
  const rest = await train({ model: c, train: flaky, test: data.test, config, outDir: out, resume: true });
  const wc = await weights(c);
  c.dispose();
  t.is(rest.state.step, 12);
  t.is(wc.findIndex((v, i) => !Object.is(v, wa[i])), -1, 'bit-identical weights');
  t.deepEqual(rest.state.history, whole.state.history);
  t.deepEqual(trainLines(join(out, 'metrics.jsonl')), trainLines(join(tmp, 'throw-whole', 'metrics.jsonl')));
});

test.serial('a non-finite loss throws without overwriting the last checkpoint (the weights are already NaN), and no batch tensors are left behind', async (t) => {
  const data = { train: subset(mnist.train, 48), test: subset(mnist.test, 8) };
  const config = { epochs: 1, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 2, checkpointEvery: 3 };
  P.manualSeed(5);
  const m = createModel(TINY) as unknown as TrainableClassifier;
  // A first step makes what the model keeps between calls (cached position encodings).
  await train({ model: m, ...data, config, outDir: join(tmp, 'nan-loss-warm'), maxSteps: 1 });
  const before = liveTensors();
  // Read 5: step 4's batch, NaN pixels; step 5's batch is being read ahead when it throws.
  const out = join(tmp, 'nan-loss');
  await t.throwsAsync(train({ model: m, train: flakySource(data.train, 5, 'nan', () => true), test: data.test, config, outDir: out }), { message: /^train: the loss became NaN at step 4/ });
  // A read still running after the throw would add its tensors now.
  await new Promise((r) => setTimeout(r, 50));
  t.is(liveTensors(), before, 'the batch read ahead was disposed');
  const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { state: { step: number } };
  t.is(saved.state.step, 3, "step 3's periodic checkpoint, not NaN weights under step 4's state");
  m.dispose();
  // A forward that throws (a model that cannot take the images) leaves nothing behind either.
  const wrong = createModel({ ...TINY, image_channels: 3 }) as unknown as TrainableClassifier;
  await t.throwsAsync(train({ model: wrong, ...data, config, outDir: join(tmp, 'forward-throws-warm') }));
  const start = liveTensors();
  await t.throwsAsync(train({ model: wrong, ...data, config, outDir: join(tmp, 'forward-throws') }));
  await new Promise((r) => setTimeout(r, 50));
  t.is(liveTensors(), start, 'the batches of the failed step and of the one read ahead were disposed');
  t.false(existsSync(join(tmp, 'forward-throws', 'checkpoint')), 'no step completed: nothing to checkpoint');
  wrong.dispose();
});

test.serial('an evaluation that throws mid-run is checkpointed at the epoch\'s end; --resume runs it first, then goes on as an uninterrupted run', async (t) => {
  const data = { train: subset(mnist.train, 16), test: subset(mnist.test, 8) };
  const config = { epochs: 3, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 8 };
  const make = () => {
    P.manualSeed(41);
    return createModel(TINY) as unknown as TrainableClassifier;
  };
  const a = make();
  const whole = await train({ model: a, ...data, config, outDir: join(tmp, 'eval-throw-whole') });
  const wa = await weights(a);
  a.dispose();
  // The second evaluation's read fails (the test set holds one batch: read 2).
  let failing = true;
  const flaky = flakySource(data.test, 2, 'throw', () => failing);
  const out = join(tmp, 'eval-throw-split');
  const b = make();
  await t.throwsAsync(train({ model: b, train: data.train, test: flaky, config: { ...config, evalBatchSize: 8 }, outDir: out }), { message: /cannot load training image/ });
  b.dispose();
  const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer.json'), 'utf8')) as { state: { step: number; epoch: number; position: number; history: { step: number }[] } };
  t.deepEqual([saved.state.step, saved.state.epoch, saved.state.position], [4, 2, 0]);
  t.deepEqual(saved.state.history.map((h) => h.step), [2], "the failed evaluation is not in the history");
  failing = false;
  const c = P.withoutInit(() => createModel(TINY)) as unknown as TrainableClassifier;
  const rest = await train({ model: c, train: data.train, test: flaky, config: { ...config, evalBatchSize: 8 }, outDir: out, resume: true });
  const wc = await weights(c);
  c.dispose();
  t.deepEqual(rest.state.history, whole.state.history, 'every epoch evaluated once, the failed one on resume');
  t.is(wc.findIndex((v, i) => !Object.is(v, wa[i])), -1, 'bit-identical weights');
  t.deepEqual(metricLines(join(out, 'metrics.jsonl')), metricLines(join(tmp, 'eval-throw-whole', 'metrics.jsonl')));
});

/**
 * One training step of a tiny model into tmp/name, whose checkpoint then loses the
 * given settings, as one written before they existed; `was` holds what it had.
 */
async function checkpointWithout(name: string, keys: string[]) {
  const data = { train: subset(mnist.train, 32), test: subset(mnist.test, 8) };
  const config = { epochs: 1, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 3 };
  const out = join(tmp, name);
  const m = createModel(TINY) as unknown as TrainableClassifier;
  await train({ model: m, ...data, config, outDir: out, maxSteps: 1 });
  const file = join(out, 'checkpoint', 'trainer.json');
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { config: Record<string, unknown> };
  const was = Object.fromEntries(keys.map((k) => [k, saved.config[k]]));
  for (const k of keys) delete saved.config[k];
  writeFileSync(file, JSON.stringify(saved));
  return { m, data, config, out, was };
}

test.serial('evalCropFraction: in (0, 1]; a checkpoint written before it existed resumes under a preset that sets it, and one may resume with another value', async (t) => {
  for (const bad of [0, -0.5, 1.5, Number.NaN, '0.875'])
    t.throws(() => checkTrainConfig({ ...DEFAULT_TRAIN, evalCropFraction: bad as number }), { instanceOf: RangeError, message: /^train: 'evalCropFraction' must be a number in \(0, 1\], got / }, String(bad));
  const { m, data, config, out, was } = await checkpointWithout('crop-resume', ['evalCropFraction']);
  t.deepEqual(was, { evalCropFraction: 1 });
  const r = await train({ model: m, ...data, config: { ...config, evalCropFraction: 0.875 }, outDir: out, resume: true, maxSteps: 1 });
  t.is(r.state.step, 2);
  // Evaluation only: neither the weights nor the data order depend on it.
  const done = await train({ model: m, ...data, config: { ...config, evalCropFraction: 0.5 }, outDir: out, resume: true });
  t.is(done.state.step, 4);
  // The other settings are still compared.
  await t.throwsAsync(train({ model: m, ...data, config: { ...config, seed: 4 }, outDir: out, resume: true }), { message: /written with seed = 3, this run has 4/ });
  m.dispose();
});

// Row b of a batch holds the value b + 1 everywhere (2 channels of 5 x 7), label b % 3;
// the expected mix is rebuilt from the same Rng's draws, in the order the spec gives.
test("mixPer 'example' (the reference's): the first half MixUp, the rest CutMix, each row its own ratio and box, a partner from the batch; 'batch': one ratio for all", async (t) => {
  const [B, C, H, W] = [6, 2, 5, 7];
  const x = P.tensor(Float32Array.from({ length: B * C * H * W }, (_, i) => Math.floor(i / (C * H * W)) + 1), [B, C, H, W]);
  const y = P.tensor(Int32Array.from({ length: B }, (_, b) => b % 3), [B]);
  const config = { ...DEFAULT_TRAIN, mixup: 0.2, cutmix: 1, mixPer: 'example' as const };
  const mixed = mixBatch(new Rng(11), config, x, y, 3)!;
  const input = (await mixed.input.data()) as Float32Array;
  const target = (await mixed.target.data()) as Float32Array;
  const rng = new Rng(11);
  const perm = rng.permutation(B);
  const lams: number[] = [];
  for (let b = 0; b < B; b++) {
    const p = perm[b];
    const row = input.subarray(b * C * H * W, (b + 1) * C * H * W);
    let kept: number;
    if (b < B / 2) {
      // MixUp: lam (b + 1) + (1 - lam) (p + 1) at every pixel.
      kept = rng.beta(0.2);
      const want = kept * (b + 1) + (1 - kept) * (p + 1);
      t.true(row.every((v) => Math.abs(v - want) < 1e-5), `row ${b}: MixUp with row ${p} at ${kept}`);
    } else {
      // CutMix: a box of area about 1 - lam around a random pixel, clipped, from the partner.
      const lam = rng.beta(1);
      const cutH = Math.floor(H * Math.sqrt(1 - lam));
      const cutW = Math.floor(W * Math.sqrt(1 - lam));
      const cy = Math.floor(rng.next() * H);
      const cx = Math.floor(rng.next() * W);
      const [y0, y1] = [Math.max(0, cy - (cutH >> 1)), Math.min(H, cy + (cutH >> 1))];
      const [x0, x1] = [Math.max(0, cx - (cutW >> 1)), Math.min(W, cx + (cutW >> 1))];
      kept = 1 - ((y1 - y0) * (x1 - x0)) / (H * W);
      for (let c = 0; c < C; c++)
        for (let i = 0; i < H; i++)
          for (let j = 0; j < W; j++) {
            const inside = i >= y0 && i < y1 && j >= x0 && j < x1;
            t.is(row[(c * H + i) * W + j], inside ? p + 1 : b + 1, `row ${b} (${c}, ${i}, ${j}): box [${y0}, ${y1}) x [${x0}, ${x1}]`);
          }
    }
    lams.push(kept);
    const want = [0, 0, 0];
    want[b % 3] += kept;
    want[p % 3] += 1 - kept;
    for (let k = 0; k < 3; k++) t.true(Math.abs(target[b * 3 + k] - want[k]) < 1e-6, `row ${b}: target ${target.subarray(b * 3, b * 3 + 3)} against ${want}`);
  }
  t.true(new Set(lams.slice(0, 3)).size === 3, 'each MixUp row its own ratio');
  // Either alone: every row gets it.
  const only = mixBatch(new Rng(2), { ...config, cutmix: 0 }, x, y, 3)!;
  const first = new Rng(2);
  first.permutation(B);
  const lam0 = first.beta(0.2);
  const v = (await only.input.data())[0];
  t.true(Math.abs(v - (lam0 * 1 + (1 - lam0) * (new Rng(2).permutation(B)[0] + 1))) < 1e-5, 'MixUp alone: row 0 too');
  t.is(mixBatch(new Rng(2), { ...config, mixup: 0, cutmix: 0 }, x, y, 3), null);
  // 'batch': one ratio for the whole batch (MixUp alone here): every row's kept share is the same.
  const batch = mixBatch(new Rng(3), { ...config, cutmix: 0, mixPer: 'batch' }, x, y, 3)!;
  const tb = (await batch.target.data()) as Float32Array;
  const bperm = new Rng(3).permutation(B);
  const shares = Array.from({ length: B }, (_, b) => b).filter((b) => bperm[b] % 3 !== b % 3).map((b) => tb[b * 3 + (b % 3)]);
  t.true(shares.length >= 2 && shares.every((s) => s === shares[0]) && shares[0] > 0 && shares[0] < 1, `kept shares ${shares}`);
  for (const m of [mixed, only, batch]) for (const tt of [m.input, m.target]) tt.dispose();
  for (const bad of ['pair', '', null])
    t.throws(() => checkTrainConfig({ ...DEFAULT_TRAIN, mixPer: bad as 'batch' }), { instanceOf: TypeError, message: /^train: 'mixPer' must be batch or example, got / }, String(bad));
  t.is(PRESETS.imagenet.train.mixPer, 'example', 'the imagenet preset mixes as the reference');
  x.dispose();
  y.dispose();
});

test.serial("randAugmentAt: crop or resized; a checkpoint written before it and mixPer existed resumes as 'resized' and 'batch', and is refused otherwise, saying how to resume it", async (t) => {
  for (const bad of ['photo', '', null, 1])
    t.throws(() => checkTrainConfig({ ...DEFAULT_TRAIN, randAugmentAt: bad as 'crop' }), { instanceOf: TypeError, message: /^train: 'randAugmentAt' must be crop or resized, got / }, String(bad));
  t.is(DEFAULT_TRAIN.randAugmentAt, 'resized');
  t.is(PRESETS.imagenet.train.randAugmentAt, 'crop', "the imagenet preset augments as the reference");
  const { m, data, config, out, was } = await checkpointWithout('ra-at-resume', ['randAugmentAt', 'mixPer']);
  t.deepEqual(was, { randAugmentAt: 'resized', mixPer: 'batch' });
  await t.throwsAsync(train({ model: m, ...data, config: { ...config, randAugmentAt: 'crop' }, outDir: out, resume: true }), {
    message: /written with randAugmentAt = "resized", this run has "crop" \(a checkpoint from before this setting: resume it with a --config file holding \{"train":\{"randAugmentAt":"resized"\}\}\)$/,
  });
  // Both settings as the imagenet preset has them: one hint names both.
  await t.throwsAsync(train({ model: m, ...data, config: { ...config, randAugmentAt: 'crop', mixPer: 'example' }, outDir: out, resume: true }), {
    message: /written with mixPer = "batch", this run has "example" \(.*holding \{"train":\{"randAugmentAt":"resized","mixPer":"batch"\}\}\)$/,
  });
  const r = await train({ model: m, ...data, config, outDir: out, resume: true, maxSteps: 1 });
  t.is(r.state.step, 2);
  m.dispose();
});

test.serial('a checkpoint written before the streams were hashed (no streams field) resumes on the streams it began with, and says so in its next checkpoints', async (t) => {
  const data = { train: subset(mnist.train, 64), test: subset(mnist.test, 8) };
  const config = { epochs: 1, batchSize: 8, lr: 2e-3, warmupSteps: 0, seed: 0, maxShift: 2 };
  const lossesAfterResume = async (name: string, legacy: boolean) => {
    const out = join(tmp, name);
    P.manualSeed(0);
    const m = createModel(TINY) as unknown as TrainableClassifier;
    await train({ model: m, ...data, config, outDir: out, maxSteps: 2 });
    const file = join(out, 'checkpoint', 'trainer.json');
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { streams?: number };
    t.is(saved.streams, 2, 'a new run records its streams');
    if (legacy) {
      delete saved.streams;
      writeFileSync(file, JSON.stringify(saved));
    }
    const r = await train({ model: m, ...data, config, outDir: out, resume: true, maxSteps: 2 });
    const after = JSON.parse(readFileSync(file, 'utf8')) as { streams?: number };
    t.is(after.streams, legacy ? 1 : 2, 'the resumed run keeps the streams it began with');
    m.dispose();
    return r.state.window;
  };
  // The same weights at step 2; the next two steps draw other images and shifts (their
  // running loss differs).
  t.notDeepEqual(await lossesAfterResume('streams-legacy', true), await lossesAfterResume('streams-current', false));
});

test.serial("the checkpoint of an RGB image model carries a preprocessor_config.json with which HF's processor feeds HF's model (no config.image_mean) what training fed ours", async (t) => {
  const config = {
    architectures: ['PerceiverForImageClassificationFourier'],
    num_latents: 8,
    d_latents: 16,
    num_self_attends_per_block: 1,
    num_self_attention_heads: 2,
    num_cross_attention_heads: 1,
    image_fourier_bands: 2,
    image_fourier_max_resolution: [8, 8],
    d_model: 3 + 2 + 2 * 2 * 2,
    image_size: 8,
    num_labels: 2,
    image_mean: [...IMAGENET_DEFAULT_MEAN],
    image_std: [...IMAGENET_DEFAULT_STD],
  };
  const n = 16;
  const pixels = Float32Array.from({ length: n * 3 * 64 }, (_, i) => ((i * 7919) % 255) / 255);
  const set: ImageSet = { pixels, labels: Int32Array.from({ length: n }, (_, i) => i % 2), shape: [3, 8, 8], classes: ['a', 'b'] };
  P.manualSeed(2);
  const m = createModel(config) as unknown as TrainableClassifier;
  const out = join(tmp, 'preprocessor');
  await train({ model: m, train: set, test: set, config: { epochs: 1, batchSize: 8, warmupSteps: 0, evalCropFraction: 0.875 }, outDir: out, maxSteps: 1 });
  m.dispose();
  const dir = join(out, 'checkpoint');
  const pre = JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
  t.deepEqual(pre, {
    // HF keeps int(size / crop_size * min(H, W)): 8 / 9 here (8 / 0.875 = 9.14, rounded).
    crop_size: { height: 9, width: 9 },
    do_center_crop: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [...IMAGENET_DEFAULT_MEAN],
    image_processor_type: 'PerceiverImageProcessor',
    image_std: [...IMAGENET_DEFAULT_STD],
    resample: 3,
    rescale_factor: 1 / 255,
    size: { height: 8, width: 8 },
  });
  t.deepEqual(preprocessorConfigFor({ ...config, image_size: 224 }, 224 / 256)?.crop_size, { height: 256, width: 256 }, "the reference's 224 of 256");
  // HF's model ignores config.image_mean: the same weights without it, fed by HF's processor.
  const hfDir = join(tmp, 'preprocessor-hf');
  mkdirSync(hfDir);
  const { image_mean: _m, image_std: _s, ...hfConfig } = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(hfDir, 'config.json'), JSON.stringify(hfConfig));
  cpSync(join(dir, 'model.safetensors'), join(hfDir, 'model.safetensors'));
  const ours = (await loadModel(dir, { device: 'cpu' })) as unknown as TrainableClassifier;
  const hf = (await loadModel(hfDir, { device: 'cpu' })) as unknown as TrainableClassifier;
  const img = { data: Uint8Array.from({ length: 12 * 10 * 3 }, (_, i) => (i * 37) % 256), height: 12, width: 10 };
  const run = async (model: TrainableClassifier, opts: ReturnType<typeof imageProcessorOptions>) => {
    const { pixelValues, height, width } = preprocessImage(img, opts);
    const x = P.tensor(pixelValues, [1, 3, height, width]);
    const logits = model.forward(x).logits;
    const v = Array.from((await logits.data()) as Float32Array);
    for (const tt of [x, logits]) tt.dispose();
    return v;
  };
  const ourOpts = imageProcessorOptions(readModelConfig(dir), pre);
  t.false(ourOpts.doNormalize, 'our processor leaves the normalisation to our model');
  const a = await run(ours, ourOpts);
  const b = await run(hf, imageProcessorOptions(hfConfig, pre));
  a.forEach((v, i) => t.true(Math.abs(v - b[i]) < 1e-5, `logit ${i}: ${v} vs ${b[i]}`));
  for (const x of [ours, hf]) x.dispose();
  // An RGB model trained on [0, 1] pixels (no image_mean) is fed [0, 1] pixels by both processors.
  const raw = preprocessorConfigFor({ ...config, image_mean: null, image_std: null }, 1);
  t.like(raw, { do_normalize: false, crop_size: { height: 8, width: 8 } });
  t.false(imageProcessorOptions({ ...config, image_mean: null, image_std: null }, raw!).doNormalize);
  // A one-channel model (MNIST) gets none: HF's processor makes RGB.
  t.is(preprocessorConfigFor(PRESETS.mnist.model, 1), null);
  t.false(existsSync(join(tmp, 'throw-whole', 'checkpoint', 'preprocessor_config.json')));
});

test('perceiver train --help says which image-folder layouts it takes', async (t) => {
  const r = await runCli(['train', '--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /DIR\/val\/<class>\/\.\.\. \(or validation\/\)/);
  t.regex(r.stdout, /Hidden files and folders/);
  t.regex(r.stdout, /preprocessor_config\.json/);
});
