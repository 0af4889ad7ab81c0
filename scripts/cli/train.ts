// `perceiver train`: image-classification training from a preset (or a config file)
// on the embedded MNIST digits or an image folder (root/<class>/*.png|jpg).
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { systemReason } from '../../lib/io/atomic.js';
import * as P from '../../lib/index.js';
import { createModel } from '../../models/registry.js';
import { unknownConfigKeys } from '../../models/load.js';
import { loadMnist } from '../../models/train/mnist.js';
import { PRESETS } from '../../models/train/presets.js';
import { train, checkTrainConfig, writePreprocessorConfig, DEFAULT_TRAIN, type TrainConfig, type TrainableClassifier, type Progress } from '../../models/train/trainer.js';
import { trainingReportPng } from '../../models/train/plot.js';
import { writeFileAtomic } from '../../models/image-io.js';
import { imageFolderSources, memorySource, type DataSource } from '../../models/train/image-pipeline.js';
import { checkDeviceFlag, parseFlags, signalExitCode, UsageError, type Command } from './command.js';

const USAGE = `Usage: perceiver train [--preset mnist|imagenet|imagenet-debug] [--config FILE.json] [--data mnist|DIR]
                       [--out DIR] [--resume] [--epochs N] [--batch-size N] [--lr X] [--seed N]
                       [--checkpoint-every N] [--accumulate N] [--precision float32|bfloat16|float16] [--device cpu|cuda] [--quiet]

Trains a Perceiver image classifier and writes, under --out:
  checkpoint/      the latest checkpoint (model folder + optimizer state + trainer.json), written atomically;
                   also after a step or evaluation fails (an unreadable image), so --resume continues
  model/           the final model as a HF-layout folder ('perceiver run --model OUT/model' takes it), with a
                   preprocessor_config.json (RGB models) for HF's PerceiverImageProcessor: the evaluation crop
                   and the normalisation the model trained with
  metrics.jsonl    one JSON line per logged training window and per evaluation
  report.png       loss and test-accuracy curves, and test images with their predicted labels

Options:
  --preset NAME          mnist (default): the miniature model of 'npm run demo';
                         imagenet: the reference's ImageNet recipe (LAMB, constant_cosine, label smoothing 0.1);
                         imagenet-debug: a tiny model on small images
  --config FILE          JSON { "model": {config.json fields}, "train": {TrainConfig fields} } merged over the preset
  --data mnist|DIR       the embedded MNIST digits (default for the mnist preset), or an image folder:
                         DIR/train/<class>/*.png|jpg and DIR/test/<class>/...; ImageNet's DIR/train/<class>/...
                         and DIR/val/<class>/... (or validation/) when those are DIR's only folders; else
                         DIR/<class>/... with the last 20% of each class held out. Hidden files and folders
                         (a leading '.') are skipped
  --out DIR              output folder (default runs/<preset>-<time>)
  --resume               continue the run in --out from its checkpoint (same settings required)
  --epochs, --batch-size, --lr, --seed, --checkpoint-every   override the preset's values
  --accumulate N         run each batch as N micro-batches (gradient accumulation; N divides the batch)
  --precision NAME       float32 (default), bfloat16 or float16: mixed precision (16-bit compute, float32
                         master weights and optimizer; float16 with dynamic loss scaling; fast on CUDA,
                         slower on the CPU, which converts per op)
  --device NAME          cpu, cuda or cuda:N (default: PERCEIVER_DEVICE, else cuda when available, else cpu)
  --max-steps N          stop after N steps in this call (checkpoint written; --resume continues)
  --profile N            profile step N of this call (0 = the first): device time per op and scope,
                         printed and written to OUT/profile.txt
  --quiet                no progress bar
  -h, --help             show this help

Ctrl-C (or SIGTERM) finishes the current step, writes a checkpoint and exits with status 130
(143 for SIGTERM); --resume continues exactly. A second signal ends the process at once.
An --out folder holding no checkpoint, only what a run stopped before its first one left
(metrics.jsonl, profile.txt), is started afresh.
`;

const DECIMAL = /^[+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

function intFlag(flags: Record<string, string>, name: string, min = 0): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`${name} must be a non-negative integer, got '${v}'`);
  const n = Number(v);
  // A bad flag value is the invocation's fault: exit 2 with the usage, not a failed run.
  if (n < min) throw new UsageError(`${name} must be an integer >= ${min}, got '${v}'`);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${name} must be at most 2^53 - 1, got '${v}'`);
  return n;
}

function bar(p: Progress): string {
  const width = 24;
  const done = Math.round((width * p.step) / p.totalSteps);
  const eta = Math.max(0, Math.round(p.etaSeconds));
  return `\r[${'#'.repeat(done)}${'.'.repeat(width - done)}] step ${p.step}/${p.totalSteps} epoch ${p.epoch + 1} loss ${p.loss.toFixed(4)} acc ${(100 * p.trainAccuracy).toFixed(1)}% ${p.imagesPerSecond.toFixed(0)} img/s ETA ${Math.floor(eta / 60)}m${String(eta % 60).padStart(2, '0')}s `;
}

export interface TrainCliResult {
  outDir: string;
  top1: number | null;
  seconds: number;
  /** The signal that stopped the run (its checkpoint written), if one did. */
  interrupted?: NodeJS.Signals;
}


// The files a run writes before its first checkpoint (a checkpoint.tmp-PID is one being written).
// (and .NAME.PID.HEX.tmp: a file being written atomically when the run was killed).
const ABORTED_RUN_FILES = /^(metrics\.jsonl|profile\.txt|checkpoint\.tmp-\d+|\..+\.tmp)$/;

/** argv without --resume and without --out and its value (the hint adds them back). */
function withoutOut(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--resume') continue;
    if (argv[i] === '--out') {
      i++;
      continue;
    }
    if (argv[i].startsWith('--out=')) continue;
    out.push(argv[i]);
  }
  return out;
}

/** The command's body, also used by the demo. */
export async function runTraining(argv: string[], log: (s: string) => void = (s) => process.stderr.write(s)): Promise<TrainCliResult> {
  const flags = parseFlags('train', argv, {
    values: ['--preset', '--config', '--data', '--out', '--epochs', '--batch-size', '--lr', '--seed', '--checkpoint-every', '--device', '--max-steps', '--accumulate', '--precision', '--profile'],
    switches: ['--resume', '--quiet'],
  });
  const v = flags.values;
  const presetName = v['--preset'] ?? 'mnist';
  const preset = PRESETS[presetName];
  if (!preset) throw new UsageError(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${presetName}'`);
  const device = checkDeviceFlag(v['--device']);
  let modelCfg: Record<string, unknown> = { ...preset.model };
  let trainCfg: Partial<TrainConfig> = { ...preset.train };
  if (v['--config']) {
    const path = v['--config'];
    if (!existsSync(path)) throw new Error(`config file '${path}' does not exist`);
    let json: { model?: Record<string, unknown>; train?: Partial<TrainConfig> };
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new Error(`config file '${path}' is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`config file '${path}' must hold { "model": {...}, "train": {...} }`);
    const unknown = Object.keys(json).filter((k) => k !== 'model' && k !== 'train');
    if (unknown.length) throw new Error(`config file '${path}': unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (expected "model" and "train")`);
    // A string or array would be spread in as keys "0", "1", ...
    for (const k of ['model', 'train'] as const) {
      const section: unknown = json[k];
      if (section !== undefined && (section === null || typeof section !== 'object' || Array.isArray(section)))
        throw new Error(`config file '${path}': "${k}" must be an object of ${k === 'model' ? 'config.json fields' : 'train settings'}, got ${JSON.stringify(section)}`);
    }
    // A misspelt field would otherwise be saved in config.json and change nothing.
    const badModel = unknownConfigKeys(json.model ?? {});
    if (badModel.length)
      throw new Error(`config file '${path}': unknown model field${badModel.length > 1 ? 's' : ''} ${badModel.join(', ')} (config.json fields of PerceiverConfig, e.g. num_latents, d_latents, image_size)`);
    const badTrain = Object.keys(json.train ?? {}).filter((k) => !Object.hasOwn(DEFAULT_TRAIN, k));
    if (badTrain.length) throw new Error(`config file '${path}': unknown train setting${badTrain.length > 1 ? 's' : ''} ${badTrain.join(', ')} (known: ${Object.keys(DEFAULT_TRAIN).join(', ')})`);
    modelCfg = { ...modelCfg, ...(json.model ?? {}) };
    trainCfg = { ...trainCfg, ...(json.train ?? {}) };
  }
  const overrides: [string, keyof TrainConfig, number][] = [['--epochs', 'epochs', 1], ['--batch-size', 'batchSize', 1], ['--seed', 'seed', 0], ['--checkpoint-every', 'checkpointEvery', 0], ['--accumulate', 'accumulateSteps', 1]];
  for (const [flag, key, min] of overrides) {
    const n = intFlag(v, flag, min);
    if (n !== undefined) (trainCfg as Record<string, unknown>)[key] = n;
  }
  const maxSteps = intFlag(v, '--max-steps');
  const profileStep = intFlag(v, '--profile');
  if (v['--precision'] !== undefined) {
    const p = v['--precision'];
    if (p !== 'float32' && p !== 'bfloat16' && p !== 'float16') throw new UsageError(`--precision must be float32, bfloat16 or float16, got '${p}'`);
    trainCfg.precision = p;
  }
  if (v['--lr'] !== undefined) {
    // Decimal only: Number() would also take '0x10', '  0.1' and '1_0'-like spellings.
    const lr = DECIMAL.test(v['--lr']) ? Number(v['--lr']) : NaN;
    if (!(lr > 0) || !Number.isFinite(lr)) throw new UsageError(`--lr must be a positive number, got '${v['--lr']}'`);
    trainCfg.lr = lr;
  }
  const batchSize = trainCfg.batchSize ?? DEFAULT_TRAIN.batchSize;
  const accumulate = trainCfg.accumulateSteps ?? DEFAULT_TRAIN.accumulateSteps;
  if (batchSize % accumulate !== 0) {
    const source = v['--config'] ? 'config' : 'preset';
    if (v['--accumulate'] !== undefined)
      throw new UsageError(`--accumulate (${accumulate}) must divide the batch size (${batchSize}${v['--batch-size'] === undefined ? `, the ${source}'s` : ''})`);
    if (v['--batch-size'] !== undefined) throw new UsageError(`--batch-size (${batchSize}) must be a multiple of the ${source}'s accumulateSteps (${accumulate})`);
  }
  // The rest of the settings (a config file's) before any data is read or model built.
  try {
    checkTrainConfig({ ...DEFAULT_TRAIN, ...trainCfg });
  } catch (err) {
    throw new Error(`${v['--config'] ? `config file '${v['--config']}': ` : ''}${err instanceof Error ? err.message : String(err)}`);
  }
  const dataArg = v['--data'] ?? (presetName === 'mnist' ? 'mnist' : undefined);
  if (!dataArg) throw new UsageError(`--data DIR is required for the ${presetName} preset (an image folder)`);
  let data: { train: DataSource; test: DataSource };
  if (dataArg === 'mnist') {
    const m = loadMnist();
    data = { train: memorySource(m.train), test: memorySource(m.test) };
  } else {
    const channels = Number(modelCfg.image_channels ?? 3);
    if (channels !== 1 && channels !== 3) throw new Error(`image_channels must be 1 or 3 for an image folder, got ${channels}`);
    data = imageFolderSources(dataArg, { size: Number(modelCfg.image_size ?? 224), channels });
  }
  modelCfg.num_labels = data.train.classes.length;
  modelCfg.id2label = Object.fromEntries(data.train.classes.map((c, i) => [String(i), c]));
  const outDir = resolve(v['--out'] ?? join('runs', `${presetName}-${new Date().toISOString().replace(/[:.]/g, '-')}`));
  const resume = flags.switches.has('--resume');
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new Error(`output folder '${outDir}' exists and is not a folder`);
  // As the other commands: a given --out goes into a folder that exists (runs/ is made for the default).
  if (v['--out'] !== undefined && !existsSync(outDir) && !existsSync(dirname(outDir)))
    throw new Error(`the folder '${dirname(outDir)}' that would hold the output folder '${basename(outDir)}' does not exist`);
  const holder = existsSync(outDir) ? outDir : existsSync(dirname(outDir)) ? dirname(outDir) : null;
  if (holder !== null) {
    try {
      accessSync(holder, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new Error(`cannot write into '${holder}': ${systemReason(err)}`);
    }
  }
  // One run per folder: a second, started while the first had not yet checkpointed,
  // would have taken its folder for a stopped run's and cleared it.
  const created = !existsSync(outDir);
  mkdirSync(outDir, { recursive: true });
  const unlock = lockRun(outDir);
  let model: TrainableClassifier;
  try {
    // checkpoint.old-PID: a run killed while swapping in a new checkpoint; train() restores it.
    const hasCheckpoint = () => existsSync(join(outDir, 'checkpoint')) || readdirSync(outDir).some((n) => /^checkpoint\.old-\d+$/.test(n));
    // What a run that failed or was killed before its first checkpoint leaves behind:
    // nothing to resume from, so a rerun starts afresh instead of being refused.
    const entries = readdirSync(outDir).filter((n) => n !== RUN_LOCK);
    const onlyLeftovers = entries.length > 0 && !hasCheckpoint() && entries.every((n) => ABORTED_RUN_FILES.test(n));
    if (resume && !hasCheckpoint())
      throw new Error(`--resume: '${join(outDir, 'checkpoint')}' does not exist${onlyLeftovers ? ' (the run stopped before its first checkpoint: run again without --resume to start afresh)' : ''}`);
    if (!resume && entries.length > 0 && !onlyLeftovers) throw new Error(`output folder '${outDir}' is not empty (use --resume to continue it, or another --out)`);
    P.manualSeed(trainCfg.seed ?? 0);
    // Resuming replaces every parameter with the checkpoint's, so none is drawn first.
    const build = () => createModel(modelCfg, { device }) as unknown as TrainableClassifier;
    model = resume ? P.withoutInit(build) : build();
    if (onlyLeftovers) {
      log(`perceiver train: '${outDir}' holds no checkpoint, only what a stopped run left (${entries.join(', ')}): starting afresh\n`);
      for (const n of entries) rmSync(join(outDir, n), { recursive: true, force: true });
    }
  } catch (err) {
    unlock();
    if (created) rmSync(outDir, { recursive: true, force: true });
    throw err;
  }
  const quiet = flags.switches.has('--quiet');
  const ac = new AbortController();
  let interrupted: NodeJS.Signals | undefined;
  // SIGTERM (a kill, a job scheduler) as Ctrl-C; a second signal ends the process at once.
  const onSignal = (signal: NodeJS.Signals) => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    interrupted = signal;
    log(`\nperceiver: interrupted (${signal}): finishing the step and writing a checkpoint...\n`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = performance.now();
  log(`perceiver train: ${preset.description}\n  ${model.numParameters().toLocaleString('en-US')} parameters, ${data.train.size} training and ${data.test.size} test images, output ${outDir}\n`);
  try {
    const { state, final, aborted } = await train({
      model,
      train: data.train,
      test: data.test,
      config: trainCfg,
      outDir,
      resume,
      signal: ac.signal,
      maxSteps,
      profileStep,
      onProfile: (p) => log(`${quiet ? "" : "\n"}profile of one step (also in ${join(outDir, "profile.txt")}):\n${p.table(30)}\n`),
      onProgress: quiet ? undefined : (p) => log(bar(p)),
      onEval: (r) => log(`${quiet ? '' : '\n'}epoch ${r.epoch}: test top-1 ${(100 * r.top1).toFixed(2)}%, top-5 ${(100 * r.top5).toFixed(2)}%, loss ${r.loss.toFixed(4)}\n`),
    });
    // Not the signal: a Ctrl-C after the last step still ends a finished run, which is saved below.
    if (aborted || final === null) {
      log(`stopped at step ${state.step}; resume with: perceiver train ${withoutOut(argv).join(' ')} --out ${outDir} --resume\n`);
      return { outDir, top1: null, seconds: (performance.now() - t0) / 1000, interrupted };
    }
    await model.save(join(outDir, 'model'));
    const evalCropFraction = trainCfg.evalCropFraction ?? DEFAULT_TRAIN.evalCropFraction;
    await writePreprocessorConfig(join(outDir, 'model'), model, evalCropFraction);
    // The report: curves plus 32 test images spread over the set (it is grouped by class).
    const n = Math.min(32, data.test.size);
    const per = data.test.shape[0] * data.test.shape[1] * data.test.shape[2];
    const picks = Array.from({ length: n }, (_, i) => Math.floor((i * data.test.size) / n));
    const chosen = await data.test.batch(picks, null, evalCropFraction);
    const x = P.tensor(chosen.pixels, [n, ...data.test.shape], { device });
    const pred = P.noGrad(() => P.tidy(() => model.forward(x).logits.argmax(-1)));
    const predicted = (await pred.data()) as Int32Array;
    x.dispose();
    pred.dispose();
    const [, h, w] = data.test.shape;
    const png = trainingReportPng({
      losses: state.losses,
      accuracy: state.history.map((r) => ({ step: r.step, top1: r.top1 })),
      samples: picks.map((_, i) => ({
        // The first channel, as grey.
        pixels: chosen.pixels.subarray(i * per, i * per + h * w),
        height: h,
        width: w,
        label: chosen.labels[i],
        predicted: predicted[i],
      })),
    });
    await writeFileAtomic(join(outDir, 'report.png'), png);
    const seconds = (performance.now() - t0) / 1000;
    log(`done in ${seconds.toFixed(0)} s: test top-1 ${final ? (100 * final.top1).toFixed(2) : '?'}%; model in ${join(outDir, 'model')}, report ${join(outDir, 'report.png')}\n`);
    // A signal after the last step stopped nothing: the run finished, and exits 0.
    return { outDir, top1: final?.top1 ?? null, seconds };
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    model.dispose();
    unlock();
  }
}

// The lock file a running `perceiver train` holds in its output folder: its pid.
const RUN_LOCK = '.perceiver-train.lock';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes outDir for this process (a lock file holding its pid, made with O_EXCL), or
 * refuses where a live run holds it; a lock whose process is gone (a killed run) is
 * taken over. Returns the release.
 */
function lockRun(outDir: string): () => void {
  const path = join(outDir, RUN_LOCK);
  for (;;) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot lock the output folder '${outDir}': ${systemReason(err)}`);
      let pid = NaN;
      try {
        pid = Number(readFileSync(path, 'utf8').trim());
      } catch {
        // Gone between the two calls: try again.
      }
      if (Number.isSafeInteger(pid) && pid > 0 && isAlive(pid))
        throw new Error(`output folder '${outDir}' is in use by another training run (pid ${pid}); wait for it, or use another --out`);
      rmSync(path, { force: true });
    }
  }
  return () => rmSync(path, { force: true });
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'train an image classifier (MNIST preset, the reference ImageNet recipe, image folders)',
  usage: USAGE,
  async run(argv) {
    const { interrupted } = await runTraining(argv);
    // Checkpointed, but stopped: a script running this sees the interruption.
    return interrupted ? signalExitCode(interrupted) : undefined;
  },
};

