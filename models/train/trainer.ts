// The image-classification training loop: seeded data order, optimizer + schedule,
// label smoothing, MixUp/CutMix, gradient clipping, periodic evaluation (top-1/top-5),
// JSONL metrics, progress, and checkpoints that resume exactly (model, optimizer,
// schedule position, data position, dropout masks; the engine is deterministic across
// thread counts).
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as P from '../../lib/index.js';
import type { Module, Tensor } from '../../lib/index.js';
import type { ImageSet } from './mnist.js';
import { cropFractionArg, isDataSource, memorySource, type Augment, type DataSource } from './image-pipeline.js';
import { writeFileAtomic } from '../image-io.js';
import { Rng, legacyStreamSeed, streamSeed } from './rng.js';
import { MAX_MAGNITUDE } from './randaugment.js';
import { configJson } from '../save.js';
import { IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD } from '../image-processor.js';
import type { PerceiverConfig } from '../config.js';
import { knownKeysArg, objectArg, optionKeys } from '../args.js';

export interface TrainableClassifier extends Module {
  forward(pixels: Tensor): { logits: Tensor };
  save(dir: string): Promise<void>;
}

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
  /** 'sgd' is SGD with Nesterov momentum 0.9. */
  optimizer: 'lamb' | 'adamw' | 'sgd';
  /**
   * Decoupled weight decay for all three optimizers: weightDecay * p is added to the
   * update, not to the gradient (AdamW's p -= lr * weightDecay * p; LAMB's then scaled
   * by its trust ratio, as optax's lamb). For 'sgd' that is not torch.optim.SGD's
   * weight_decay, an L2 term added to the gradient and so carried by the momentum
   * (about 1 / (1 - 0.9) = 10 times stronger).
   */
  weightDecay: number;
  /** Decay position embeddings too (the reference's decay_pos_embs); biases and norms never. */
  decayPositionEmbeddings: boolean;
  schedule: 'constant_cosine' | 'warmup_cosine' | 'constant';
  /**
   * Linear warm-up: step s (0-based) gets lr (s + 1) / warmupSteps, one step ahead of
   * optax's and HF's schedules (lr s / warmupSteps); see lib/optim/schedules.ts.
   */
  warmupSteps: number;
  /** constant_cosine: fraction of training at the peak rate. */
  constantFraction: number;
  labelSmoothing: number;
  /** MixUp / CutMix Beta(alpha, alpha) parameters; 0 disables. */
  mixup: number;
  cutmix: number;
  /**
   * 'batch': one of MixUp or CutMix (half the batches each when both are on) with one
   * ratio for the whole batch, as timm's default. 'example': the reference's
   * (perceiver/train/dataset.py, my_mixup_cutmix): with both on, the first half of
   * each batch gets MixUp and the rest CutMix, each example with its own ratio (and
   * box); its partner is another example of the batch (the reference's comes from a
   * second batch of the data).
   */
  mixPer: 'batch' | 'example';
  /** Global-norm gradient clipping; 0 disables. */
  clipNorm: number;
  /** Random translation of each training image by up to this many pixels (zero fill); 0 disables. */
  maxShift: number;
  /**
   * Gradient accumulation: each batch runs as this many equal micro-batches (forward
   * and backward each, gradients summed), then one optimizer step; the same update
   * with less memory (batch norm sees micro-batches, as in PyTorch). Must divide batchSize.
   */
  accumulateSteps: number;
  /**
   * 'bfloat16': mixed precision, the forward and backward in bfloat16 (float32
   * accumulation) on float32 master weights, optimizer in float32; evaluation too.
   * 'float16': the same in float16 with dynamic loss scaling (optim.GradScaler; a
   * step whose gradients overflow is skipped), for GPUs without bfloat16 tensor cores.
   */
  precision: 'float32' | 'bfloat16' | 'float16';
  /**
   * RandAugment on image folders: operations per image (0 disables) and magnitude
   * (0..30: 10 is the top of the reference's scale, which larger values extrapolate
   * linearly, as its TF code does; the RandAugment paper went to 28).
   */
  randAugmentLayers: number;
  randAugmentMagnitude: number;
  /**
   * Where RandAugment runs: 'crop', on the random crop before its resize, at the
   * photo's scale, its translate and cutout lengths in pixels, as the reference runs
   * it (for photos; on small images such lengths cover the whole crop); 'resized', on
   * the image resized to the model's size, those lengths scaled to it.
   */
  randAugmentAt: 'crop' | 'resized';
  seed: number;
  /** Steps between checkpoints (0: only at the end, on a stop and after a failed step). */
  checkpointEvery: number;
  /** Evaluate after every epoch (and at the end). */
  evalBatchSize: number;
  /**
   * Evaluation on image folders: the centre square kept, as a fraction of the shorter
   * side, before the resize to the model's size; in (0, 1]. The reference (and HF's
   * processor) keep 224/256 = 0.875. In-memory sets (MNIST) are already at the
   * model's size and are not cropped.
   */
  evalCropFraction: number;
}

export const DEFAULT_TRAIN: TrainConfig = {
  epochs: 10,
  batchSize: 64,
  lr: 1e-3,
  optimizer: 'adamw',
  weightDecay: 0.05,
  decayPositionEmbeddings: false,
  schedule: 'warmup_cosine',
  warmupSteps: 100,
  constantFraction: 0.5,
  labelSmoothing: 0,
  mixup: 0,
  cutmix: 0,
  mixPer: 'batch',
  clipNorm: 0,
  maxShift: 0,
  accumulateSteps: 1,
  precision: 'float32',
  randAugmentLayers: 0,
  randAugmentMagnitude: 5,
  randAugmentAt: 'resized',
  seed: 0,
  checkpointEvery: 0,
  evalBatchSize: 500,
  evalCropFraction: 1,
};

export interface Progress {
  epoch: number;
  step: number;
  totalSteps: number;
  loss: number;
  trainAccuracy: number;
  imagesPerSecond: number;
  etaSeconds: number;
  lr: number;
}

export interface EvalResult {
  epoch: number;
  step: number;
  top1: number;
  top5: number;
  loss: number;
}

export interface TrainState {
  step: number;
  epoch: number;
  /** Index into the epoch's permutation where the next batch starts. */
  position: number;
  history: EvalResult[];
  losses: { step: number; loss: number }[];
  /** The loss scaler's state (precision 'float16'). */
  lossScale?: P.optim.GradScalerState;
  /**
   * Running totals since the last logged training line (summed loss, correct
   * predictions, steps), so a resumed run logs the same averages as an uninterrupted
   * one. Absent in checkpoints that predate it (read as empty).
   */
  window?: { loss: number; correct: number; n: number };
}

export interface TrainRunOptions {
  model: TrainableClassifier;
  /** In-memory sets (MNIST) or streaming sources (image folders). */
  train: ImageSet | DataSource;
  test: ImageSet | DataSource;
  config: Partial<TrainConfig>;
  /** Folder for checkpoint/, metrics.jsonl and the final model. */
  outDir: string;
  /** Continue from outDir/checkpoint (written by an earlier run of the same config). */
  resume?: boolean;
  onProgress?: (p: Progress) => void;
  onEval?: (r: EvalResult) => void;
  /** Aborting finishes the current step, writes a checkpoint and returns. */
  signal?: AbortSignal;
  /** Stop after this many steps in this call (tests; the schedule still spans the whole run). */
  maxSteps?: number;
  /**
   * Profile the step with this index within the call (0 = the first; later ones are
   * past the warm-up): the device time per op and scope (forward, backward/<op>,
   * optimizer) goes to onProfile and to outDir/profile.txt.
   */
  profileStep?: number;
  onProfile?: (p: P.Profile) => void;
}

const RUN_OPTIONS = optionKeys<TrainRunOptions>({
  model: true, train: true, test: true, config: true, outDir: true, resume: true, onProgress: true, onEval: true, signal: true, maxSteps: true, profileStep: true, onProfile: true,
});

function makeOptimizer(model: Module, c: TrainConfig): P.optim.Optimizer {
  const groups = P.optim.decayGroups(model, { weightDecay: c.weightDecay, decayPositionEmbeddings: c.decayPositionEmbeddings });
  if (c.optimizer === 'lamb') return new P.optim.LAMB(groups, { lr: c.lr });
  if (c.optimizer === 'adamw') return new P.optim.AdamW(groups, { lr: c.lr });
  return new P.optim.SGD(groups, { lr: c.lr, momentum: 0.9, nesterov: true });
}

function makeSchedule(c: TrainConfig, totalSteps: number): P.optim.Schedule {
  if (c.schedule === 'constant') return P.optim.constant(c.lr);
  if (c.schedule === 'warmup_cosine') return P.optim.warmupCosine({ lr: c.lr, totalSteps, warmupSteps: Math.min(c.warmupSteps, totalSteps) });
  return P.optim.constantCosine({ lr: c.lr, totalSteps, constantFraction: c.constantFraction, warmupSteps: Math.min(c.warmupSteps, totalSteps) });
}

export function checkTrainConfig(c: TrainConfig): void {
  const int = (k: keyof TrainConfig, min: number) => {
    if (!Number.isInteger(c[k]) || (c[k] as number) < min) throw new RangeError(`train: '${k}' must be an integer >= ${min}, got ${JSON.stringify(c[k])}`);
    // Past 2^53 neighbouring integers are one double: seeds and counts would coincide.
    if (!Number.isSafeInteger(c[k])) throw new RangeError(`train: '${k}' must be at most 2^53 - 1 (Number.MAX_SAFE_INTEGER), got ${JSON.stringify(c[k])}`);
  };
  const num = (k: keyof TrainConfig, lo: number, hi = Infinity) => {
    if (typeof c[k] !== 'number' || !((c[k] as number) >= lo && (c[k] as number) <= hi)) throw new RangeError(`train: '${k}' must be a number in [${lo}, ${hi}], got ${JSON.stringify(c[k])}`);
  };
  int('epochs', 1);
  int('batchSize', 1);
  int('warmupSteps', 0);
  int('seed', 0);
  int('checkpointEvery', 0);
  int('evalBatchSize', 1);
  int('maxShift', 0);
  int('accumulateSteps', 1);
  int('randAugmentLayers', 0);
  num('randAugmentMagnitude', 0, MAX_MAGNITUDE);
  if (c.mixPer !== 'batch' && c.mixPer !== 'example') throw new TypeError(`train: 'mixPer' must be batch or example, got ${JSON.stringify(c.mixPer)}`);
  if (c.randAugmentAt !== 'crop' && c.randAugmentAt !== 'resized') throw new TypeError(`train: 'randAugmentAt' must be crop or resized, got ${JSON.stringify(c.randAugmentAt)}`);
  if (typeof c.evalCropFraction !== 'number' || !(c.evalCropFraction > 0 && c.evalCropFraction <= 1))
    throw new RangeError(`train: 'evalCropFraction' must be a number in (0, 1], got ${JSON.stringify(c.evalCropFraction)}`);
  if (c.batchSize % c.accumulateSteps !== 0)
    throw new RangeError(`train: 'accumulateSteps' (${c.accumulateSteps}) must divide 'batchSize' (${c.batchSize})`);
  num('lr', 0);
  num('weightDecay', 0);
  num('constantFraction', 0, 1);
  num('labelSmoothing', 0, 0.999);
  num('mixup', 0);
  num('cutmix', 0);
  num('clipNorm', 0);
  if (typeof c.decayPositionEmbeddings !== 'boolean') throw new TypeError(`train: 'decayPositionEmbeddings' must be true or false, got ${JSON.stringify(c.decayPositionEmbeddings)}`);
  if (c.precision !== 'float32' && c.precision !== 'bfloat16' && c.precision !== 'float16')
    throw new TypeError(`train: 'precision' must be float32, bfloat16 or float16, got ${JSON.stringify(c.precision)}`);
  if (!['lamb', 'adamw', 'sgd'].includes(c.optimizer)) throw new TypeError(`train: 'optimizer' must be lamb, adamw or sgd, got ${JSON.stringify(c.optimizer)}`);
  if (!['constant_cosine', 'warmup_cosine', 'constant'].includes(c.schedule))
    throw new TypeError(`train: 'schedule' must be constant_cosine, warmup_cosine or constant, got ${JSON.stringify(c.schedule)}`);
}

/** A source batch as tensors on the device. */
async function fetchBatch(src: DataSource, idx: ArrayLike<number>, device: string, aug: Augment | null, evalCropFraction = 1): Promise<{ x: Tensor; y: Tensor; labels: Int32Array }> {
  const b = await src.batch(idx, aug, evalCropFraction);
  return { x: P.tensor(b.pixels, [idx.length, ...src.shape], { device }), y: P.tensor(b.labels, [idx.length], { device }), labels: b.labels };
}

/** fn under autocast for 'bfloat16' and 'float16' (mixed precision), plainly for 'float32'. */
function inPrecision<T>(precision: TrainConfig['precision'], fn: () => T): T {
  return precision === 'float32' ? fn() : P.autocast(precision, fn);
}

/**
 * Top-1 / top-5 accuracy and mean loss of model on set (evaluation mode, no gradients);
 * precision and evalCropFraction as TrainConfig's.
 */
export async function evaluate(
  model: TrainableClassifier,
  set: ImageSet | DataSource,
  batchSize = 500,
  precision: TrainConfig['precision'] = 'float32',
  evalCropFraction = 1,
): Promise<{ top1: number; top5: number; loss: number }> {
  if (model === null || typeof model !== 'object' || typeof model.forward !== 'function' || typeof model.parameters !== 'function')
    throw new TypeError(`evaluate: argument 'model' must be a classifier (forward and parameters methods), got ${model === null ? 'null' : typeof model}`);
  if (set === null || typeof set !== 'object' || (!isDataSource(set) && !(set.pixels instanceof Float32Array && set.labels instanceof Int32Array && Array.isArray(set.shape))))
    throw new TypeError(`evaluate: argument 'set' must be an ImageSet ({ pixels, labels, shape, classes }) or a DataSource, got ${set === null ? 'null' : typeof set}`);
  // The loop steps by batchSize: 0 or a negative size would never end, a fraction would misindex.
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`evaluate: argument 'batchSize' must be an integer >= 1, got ${JSON.stringify(batchSize)}`);
  if (precision !== 'float32' && precision !== 'bfloat16' && precision !== 'float16')
    throw new TypeError(`evaluate: argument 'precision' must be 'float32', 'bfloat16' or 'float16', got ${JSON.stringify(precision)}`);
  cropFractionArg('evaluate', evalCropFraction);
  const src = isDataSource(set) ? set : memorySource(set);
  // Accuracies over no images would be 0 / 0.
  if (src.size === 0) throw new RangeError(`evaluate: argument 'set' has no images (size 0): there is nothing to evaluate`);
  const wasTraining = model.training;
  model.eval();
  const device = model.parameters()[0]?.device ?? 'cpu';
  let top1 = 0;
  let top5 = 0;
  let loss = 0;
  const n = src.size;
  try {
    for (let i = 0; i < n; i += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - i) }, (_, k) => i + k);
      const { x, y, labels } = await fetchBatch(src, idx, device, null, evalCropFraction);
      let logits: Float32Array;
      // A forward that throws (out of memory, a model that cannot take the images)
      // would otherwise leave the batch's tensors to the collector.
      try {
        const [logitsT, lossT] = P.noGrad(() => P.tidy(() => {
          const out = inPrecision(precision, () => model.forward(x).logits);
          return [out, P.crossEntropy(out, y, { reduction: 'sum' })];
        }));
        try {
          logits = (await logitsT.data()) as Float32Array;
          loss += (await lossT.data())[0];
        } finally {
          logitsT.dispose();
          lossT.dispose();
        }
      } finally {
        x.dispose();
        y.dispose();
      }
      const k = logits.length / idx.length;
      for (let r = 0; r < idx.length; r++) {
        const row = logits.subarray(r * k, (r + 1) * k);
        const target = row[labels[r]];
        // A NaN compares false with everything, so a row of NaN would rank its target
        // first: a row with any non-finite logit is wrong (a diverged model scores 0).
        let above = 0;
        let finite = true;
        for (let c = 0; c < k; c++) {
          const v = row[c];
          if (!(v > -Infinity && v < Infinity)) finite = false;
          else if (v > target || (v === target && c < labels[r])) above++;
        }
        if (!finite) continue;
        if (above === 0) top1++;
        if (above < 5) top5++;
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return { top1: top1 / n, top5: top5 / n, loss: loss / n };
}

/**
 * Atomic folder write: build in a temp sibling, then swap it in. A folder cannot be
 * renamed over a non-empty one, so the swap is two renames; a crash between them
 * leaves only `dir.old-PID`, which restoreCheckpointDir puts back.
 */
async function writeCheckpointDir(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  const old = `${dir}.old-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  let moved = false;
  try {
    await write(tmp);
    if (existsSync(dir)) {
      renameSync(dir, old);
      moved = true;
    }
    renameSync(tmp, dir);
  } catch (err) {
    try {
      // The previous checkpoint stays the checkpoint.
      if (moved && !existsSync(dir)) renameSync(old, dir);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    throw err;
  }
  rmSync(old, { recursive: true, force: true });
}

/**
 * Before a resume: a run killed mid-swap (writeCheckpointDir) left `dir.old-PID` (the
 * previous, complete checkpoint) and no `dir`: that one is put back. Other leftovers
 * of killed runs (an old-PID beside a newer `dir`, an unfinished tmp-PID) are removed.
 */
function restoreCheckpointDir(dir: string): void {
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  const name = basename(dir);
  const olds: string[] = [];
  const stale: string[] = [];
  for (const e of readdirSync(parent)) {
    if (!e.startsWith(name)) continue;
    const kind = /^\.(old|tmp)-\d+$/.exec(e.slice(name.length))?.[1];
    if (kind === 'old') olds.push(join(parent, e));
    else if (kind === 'tmp') stale.push(join(parent, e));
  }
  if (!existsSync(dir) && olds.length) {
    olds.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    renameSync(olds.shift()!, dir);
  }
  for (const p of [...olds, ...stale]) rmSync(p, { recursive: true, force: true });
}

// The kinds of stream a run draws (streamSeed's k): an epoch's data order, a step's
// augmentation, a step's dropout masks.
const ORDER_STREAM = 1_000_003;
const AUGMENT_STREAM = 7_919;
const DROPOUT_STREAM = 104_729;

/**
 * The global generator's seed for one step's dropout masks. Each dropout call takes
 * the next seed in sequence, so steps start far apart (hashed), never at step + 1.
 */
export function dropoutSeed(seed: number, step: number): number {
  return Math.floor(new Rng(streamSeed(seed, DROPOUT_STREAM, step)).next() * 2 ** 31);
}

// The streams' version trainer.json records: 2, streamSeed's hash; 1 (no field), the
// earlier low32(seed * k + counter), which a run resumed from such a checkpoint keeps.
const STREAMS_VERSION = 2;

interface Streams {
  version: number;
  order(seed: number, epoch: number): Rng;
  augment(seed: number, step: number): Rng;
  dropout(seed: number, step: number): number;
}

function streamsOf(version: number): Streams {
  if (version === STREAMS_VERSION)
    return { version, order: (s, e) => new Rng(streamSeed(s, ORDER_STREAM, e)), augment: (s, n) => new Rng(streamSeed(s, AUGMENT_STREAM, n)), dropout: dropoutSeed };
  if (version !== 1) throw new Error(`train: the checkpoint's streams are version ${version}, which this version does not know (it knows 1 and ${STREAMS_VERSION})`);
  return {
    version,
    order: (s, e) => new Rng(legacyStreamSeed(s, 1_000_003, e)),
    augment: (s, n) => new Rng(legacyStreamSeed(s, 7_919, n)),
    dropout: (s, n) => {
      const v = legacyStreamSeed(s, 7_919, n);
      const low = ((v >>> 0) ^ 0x5eed5eed) >>> 0;
      return Math.floor(new Rng(v - (v >>> 0) + low).next() * 2 ** 31);
    },
  };
}

const IMAGE_CLASSIFIERS = ['PerceiverForImageClassificationFourier', 'PerceiverForImageClassificationLearned', 'PerceiverForImageClassificationConvProcessing'];

/**
 * The preprocessor_config.json (HF's PerceiverImageProcessor fields) that gives a
 * trained image classifier the pixels its evaluation gave it: the centre crop of
 * evalCropFraction of the shorter side (HF keeps int(size / crop_size * min(H, W)), so
 * crop_size = size / evalCropFraction, rounded where that is not whole: 37 for a
 * 32-pixel model at 0.875, which keeps 0.865), resized to config.image_size, scaled to
 * [0, 1], then normalised with config.image_mean/std when the model has them. HF's
 * model ignores config.image_mean, so HF's processor has to normalise; this port's
 * processor does not when the config has them (imageProcessorOptions), as the model
 * does it. null for a model HF's processor cannot feed: not an image classifier, or
 * not 3 channels (the processor makes RGB).
 */
export function preprocessorConfigFor(modelConfig: Record<string, unknown> | null, evalCropFraction: number): Record<string, unknown> | null {
  if (modelConfig !== null) objectArg('preprocessorConfigFor', 'modelConfig', modelConfig, true);
  cropFractionArg('preprocessorConfigFor', evalCropFraction);
  if (modelConfig === null) return null;
  const arch = (modelConfig.architectures as unknown[] | undefined)?.[0];
  if (typeof arch !== 'string' || !IMAGE_CLASSIFIERS.includes(arch) || (modelConfig.image_channels ?? 3) !== 3) return null;
  const size = modelConfig.image_size ?? 224;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) return null;
  const mean = modelConfig.image_mean as number[] | null | undefined;
  const std = modelConfig.image_std as number[] | null | undefined;
  const normalize = Array.isArray(mean) && Array.isArray(std);
  const crop = Math.round(size / evalCropFraction);
  return {
    crop_size: { height: crop, width: crop },
    do_center_crop: true,
    do_normalize: normalize,
    do_rescale: true,
    do_resize: true,
    // Unused when do_normalize is false: HF's defaults, as its own configs carry them.
    image_mean: normalize ? mean : [...IMAGENET_DEFAULT_MEAN],
    image_processor_type: 'PerceiverImageProcessor',
    image_std: normalize ? std : [...IMAGENET_DEFAULT_STD],
    resample: 3,
    rescale_factor: 1 / 255,
    size: { height: size, width: size },
  };
}

/**
 * Writes dir/preprocessor_config.json for a trained model (preprocessorConfigFor),
 * atomically; a model it does not fit gets none (a stale one is removed). Returns
 * whether one was written.
 */
export async function writePreprocessorConfig(dir: string, model: TrainableClassifier, evalCropFraction: number): Promise<boolean> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`writePreprocessorConfig: argument 'dir' must be a non-empty folder path, got ${JSON.stringify(dir)}`);
  const json = preprocessorConfigFor(modelConfigOf(model), evalCropFraction);
  const path = join(dir, 'preprocessor_config.json');
  if (json === null) {
    rmSync(path, { force: true });
    return false;
  }
  await writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`));
  return true;
}

interface DataInfo {
  trainSize: number;
  testSize: number;
  classes: number;
}

/** checkpoint/trainer.json. 'model' and 'data' are absent in checkpoints that predate them. */
interface TrainerJson {
  state: TrainState;
  config: TrainConfig;
  /** The model's config.json object (null for a classifier without a Perceiver config). */
  model?: Record<string, unknown> | null;
  data?: DataInfo;
  optimizer: Omit<P.optim.OptimizerStateDict, 'tensors'>;
  /** The random streams' version (absent: 1, see streamsOf). */
  streams?: number;
}

/**
 * The model's config as its config.json holds it (after a JSON round trip, as
 * trainer.json gives it back); a classifier of another kind is compared by its own
 * config object, and one without a config is not compared.
 */
function modelConfigOf(model: TrainableClassifier): Record<string, unknown> | null {
  const config = (model as { config?: unknown }).config;
  if (config === null || typeof config !== 'object') return null;
  let json: unknown;
  try {
    json = configJson(config as PerceiverConfig, model.constructor.name);
  } catch {
    json = config;
  }
  return JSON.parse(JSON.stringify(json)) as Record<string, unknown>;
}

function readJsonIfPresent(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`train: cannot read '${path}' (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** JSON with object keys sorted, so equal values compare equal whatever their key order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'undefined';
}

/** 'field: A in the checkpoint, B in this run' for each top-level field that differs. */
function differences(saved: Record<string, unknown>, current: Record<string, unknown>): string[] {
  const show = (v: unknown) => {
    if (v === undefined) return 'absent';
    const text = canonical(v);
    return text.length > 60 ? `${text.slice(0, 57)}...` : text;
  };
  return [...new Set([...Object.keys(saved), ...Object.keys(current)])]
    .sort()
    .filter((k) => canonical(saved[k]) !== canonical(current[k]))
    .map((k) => `${k}: ${show(saved[k])} in the checkpoint, ${show(current[k])} in this run`);
}

/**
 * On resume, metrics.jsonl is cut back to what the checkpoint's state had logged: a
 * run that died after its last checkpoint logged steps that the resumed run logs
 * again. Those are the lines past the checkpoint's step, and an evaluation at that
 * step which the state's history lacks (logged after a checkpoint taken at an
 * epoch's last step, before its evaluation); a line cut short at the end is the
 * crash's. The file is rewritten atomically.
 */
async function trimMetrics(file: string, state: TrainState): Promise<void> {
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const evaluated = new Set(state.history.map((h) => h.step));
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === '') continue;
    let rec: { kind?: unknown; step?: unknown };
    try {
      rec = JSON.parse(lines[i]) as typeof rec;
    } catch {
      if (i === lines.length - 1) continue;
      // Not a line of ours: left as it is.
      kept.push(lines[i]);
      continue;
    }
    const step = rec?.step;
    if (typeof step === 'number' && (step > state.step || (step === state.step && rec.kind === 'eval' && !evaluated.has(step)))) continue;
    kept.push(lines[i]);
  }
  const out = kept.map((l) => `${l}\n`).join('');
  if (out !== text) await writeFileAtomic(file, new TextEncoder().encode(out));
}

/**
 * Runs (or resumes) training; returns the final state and evaluation (null when
 * stopped early: aborted, or maxSteps reached). Re-seeds the global generator
 * (manualSeed) before every step, for the model's dropout. A step or evaluation that
 * throws writes a checkpoint of the last completed step first (when one completed
 * since the last checkpoint and the weights are that step's), then rethrows.
 */
export async function train(o: TrainRunOptions): Promise<{ state: TrainState; final: EvalResult | null; aborted: boolean }> {
  knownKeysArg('train', 'opts', objectArg('train', 'opts', o, true), RUN_OPTIONS);
  // A misspelt setting would train with the default in its place.
  if (o.config !== undefined && o.config !== null) knownKeysArg('train', 'opts.config', objectArg('train', 'opts.config', o.config), Object.keys(DEFAULT_TRAIN));
  const c: TrainConfig = { ...DEFAULT_TRAIN, ...o.config };
  checkTrainConfig(c);
  for (const k of ['maxSteps', 'profileStep'] as const)
    if (o[k] !== undefined && !(Number.isSafeInteger(o[k]) && o[k]! >= 0))
      throw new RangeError(`train: option '${k}' must be an integer >= 0, got ${JSON.stringify(o[k])}`);
  if (o.onProfile !== undefined && typeof o.onProfile !== 'function') throw new TypeError(`train: option 'onProfile' must be a function, got ${typeof o.onProfile}`);
  const { model } = o;
  const data = isDataSource(o.train) ? o.train : memorySource(o.train);
  const test = isDataSource(o.test) ? o.test : memorySource(o.test);
  const device = model.parameters()[0]?.device ?? 'cpu';
  const stepsPerEpoch = Math.floor(data.size / c.batchSize);
  if (stepsPerEpoch < 1) throw new RangeError(`train: the training set (${data.size} images) is smaller than one batch (${c.batchSize})`);
  // Found now rather than by the first evaluation, an epoch of training later.
  if (test.size === 0) throw new RangeError(`train: the test set has no images (size 0): there is nothing to evaluate on`);
  // What the checkpoint's weights and positions belong to, checked on resume.
  const modelConfig = modelConfigOf(model);
  const dataInfo: DataInfo = { trainSize: data.size, testSize: test.size, classes: data.classes.length };
  const totalSteps = stepsPerEpoch * c.epochs;
  mkdirSync(o.outDir, { recursive: true });
  const ckptDir = join(o.outDir, 'checkpoint');
  const metricsFile = join(o.outDir, 'metrics.jsonl');
  model.train().requiresGrad_(true);
  const schedule = makeSchedule(c, totalSteps);
  let state: TrainState = { step: 0, epoch: 0, position: 0, history: [], losses: [], window: { loss: 0, correct: 0, n: 0 } };
  let savedOptimizer: P.optim.OptimizerStateDict | null = null;
  let streams = streamsOf(STREAMS_VERSION);

  if (o.resume) {
    restoreCheckpointDir(ckptDir);
    if (!existsSync(join(ckptDir, 'trainer.json'))) throw new Error(`train: nothing to resume: '${join(ckptDir, 'trainer.json')}' does not exist`);
    const saved = JSON.parse(readFileSync(join(ckptDir, 'trainer.json'), 'utf8')) as TrainerJson;
    streams = streamsOf(saved.streams ?? 1);
    // A setting the checkpoint predates had its default then. The imagenet preset
    // augments as the reference since 2026-11-29 (randAugmentAt, mixPer): its earlier
    // checkpoints resume with those given back, all in one file.
    const predated = Object.fromEntries(
      (['randAugmentAt', 'mixPer'] as const).filter((k) => saved.config[k] === undefined && c[k] !== DEFAULT_TRAIN[k]).map((k) => [k, DEFAULT_TRAIN[k]]),
    );
    for (const k of Object.keys(c) as (keyof TrainConfig)[]) {
      // checkpointEvery and evalCropFraction change neither the weights nor the data
      // order, so a run may resume with others (the evaluations from then on use the new crop).
      const was = JSON.stringify(saved.config[k] ?? DEFAULT_TRAIN[k]);
      if (k === 'checkpointEvery' || k === 'evalCropFraction' || was === JSON.stringify(c[k])) continue;
      const hint = k in predated ? ` (a checkpoint from before this setting: resume it with a --config file holding ${JSON.stringify({ train: predated })})` : '';
      throw new Error(`train: the checkpoint was written with ${k} = ${was}, this run has ${JSON.stringify(c[k])}${hint}`);
    }
    // Checkpoints older than the 'model' field hold the same object as their config.json.
    const savedModel = saved.model !== undefined ? saved.model : readJsonIfPresent(join(ckptDir, 'config.json'));
    if (savedModel && modelConfig) {
      const diffs = differences(savedModel, modelConfig);
      // The imagenet presets normalise their input since 2026-11-29: their earlier
      // checkpoints trained without, and resume with the fields set back to null.
      const hint = diffs.some((d) => d.startsWith('image_mean:') || d.startsWith('image_std:')) && !savedModel.image_mean
        ? ` (a checkpoint of a model that did not normalise its input: resume it with --config '{"model":{"image_mean":null,"image_std":null}}')`
        : '';
      if (diffs.length)
        throw new Error(`train: the checkpoint in '${ckptDir}' was written for another model config (${diffs.length} field${diffs.length > 1 ? 's' : ''} differ): ${diffs.slice(0, 6).join('; ')}${diffs.length > 6 ? '; ...' : ''}${hint}`);
    }
    // Checkpoints older than the 'data' field cannot be checked: their next checkpoint records it.
    if (saved.data) {
      const names: Record<keyof DataInfo, string> = { trainSize: 'training images', testSize: 'test images', classes: 'classes' };
      const diffs = (Object.keys(names) as (keyof DataInfo)[])
        .filter((k) => saved.data![k] !== dataInfo[k])
        .map((k) => `${saved.data![k]} ${names[k]} in the checkpoint, ${dataInfo[k]} in this run`);
      if (diffs.length) throw new Error(`train: the checkpoint in '${ckptDir}' was written for other data: ${diffs.join('; ')}`);
    }
    // Before the loads: should it fail, nothing loaded is left to the collector.
    await trimMetrics(metricsFile, saved.state);
    const weights = await P.loadSafetensors(join(ckptDir, 'model.safetensors'), { device });
    try {
      // Just read, held by nothing else: taken, not copied.
      model.loadStateDict(weights, { assign: true });
    } finally {
      for (const t of Object.values(weights)) t.dispose();
    }
    savedOptimizer = { tensors: await P.loadSafetensors(join(ckptDir, 'optimizer.safetensors'), { device }), ...saved.optimizer };
    state = saved.state;
    state.window ??= { loss: 0, correct: 0, n: 0 };
  }
  // After loading: loadStateDict replaces the parameter tensors, and the optimizer
  // must hold the ones the model trains.
  const opt = makeOptimizer(model, c);
  if (savedOptimizer) {
    try {
      opt.loadStateDict(savedOptimizer);
    } finally {
      for (const t of Object.values(savedOptimizer.tensors)) t.dispose();
    }
  }
  const scaler = c.precision === 'float16' ? new P.optim.GradScaler() : null;
  if (scaler && state.lossScale) scaler.loadStateDict(state.lossScale);

  // The step the checkpoint on disk holds (the starting one: nothing to save before a step).
  let checkpointed = state.step;
  const checkpoint = async () => {
    await writeCheckpointDir(ckptDir, async (tmp) => {
      await model.save(tmp);
      // So that the checkpoint is a model folder that HF's processor feeds as training did.
      await writePreprocessorConfig(tmp, model, c.evalCropFraction);
      // The model folder's safetensors is what resume loads (full precision, HF names).
      const sd = opt.stateDict();
      if (scaler) state.lossScale = scaler.stateDict();
      await P.saveSafetensors(join(tmp, 'optimizer.safetensors'), sd.tensors);
      const json: TrainerJson = { state, config: c, model: modelConfig, data: dataInfo, optimizer: { stepCount: sd.stepCount, steps: sd.steps, groups: sd.groups }, streams: streams.version };
      writeFileSync(join(tmp, 'trainer.json'), JSON.stringify(json, null, 1));
    });
    checkpointed = state.step;
  };

  const log = (rec: Record<string, unknown>) => appendFileSync(metricsFile, JSON.stringify({ time: new Date().toISOString(), ...rec }) + '\n');
  const doEval = async (): Promise<EvalResult> => {
    const r = await evaluate(model, test, c.evalBatchSize, c.precision, c.evalCropFraction);
    const res: EvalResult = { epoch: state.epoch, step: state.step, ...r };
    state.history.push(res);
    log({ kind: 'eval', ...res });
    o.onEval?.(res);
    return res;
  };

  const t0 = performance.now();
  let imagesThisRun = 0;
  let stepsThisRun = 0;
  let final: EvalResult | null = null;
  let aborted = false;
  const micro = c.batchSize / c.accumulateSteps;
  const randAugment = { numLayers: c.randAugmentLayers, magnitude: c.randAugmentMagnitude, at: c.randAugmentAt };
  type Fetched = { x: Tensor; y: Tensor; labels: Int32Array }[];
  // What a step holds while it runs, so that a step that throws leaves no tensors behind:
  // the next step's batches (read ahead), this step's, and its loss and predictions.
  let prefetched: { rng: Rng; batches: Promise<Fetched> } | null = null;
  let fetched: Fetched = [];
  let pending: { loss: Tensor; logits: Tensor; at: number }[] = [];
  // False from the optimizer step until the step's state is recorded: a failure in
  // between leaves weights a step ahead of the state (a non-finite loss: weights gone
  // to NaN), which must not overwrite the last good checkpoint.
  let consistent = true;
  let failed = false;
  try {
    while (state.epoch < c.epochs) {
      // A resumed run whose last evaluation failed: its checkpoint (written on the
      // failure) is at the epoch's end, the evaluation still to do.
      if (state.position === 0 && state.epoch > 0 && state.history.at(-1)?.step !== state.step) final = await doEval();
      const order = streams.order(c.seed, state.epoch).permutation(data.size);
      // The next step's batches are read while this step computes (prefetch), each
      // step with its own Rng, so the pixels do not depend on the timing.
      const stepBatches = (step: number, position: number) => {
        const rng = streams.augment(c.seed, step);
        const aug: Augment = { rng, maxShift: c.maxShift, randAugment };
        const batches = (async () => {
          const out: Fetched = [];
          try {
            for (let m = 0; m < c.accumulateSteps; m++) out.push(await fetchBatch(data, order.subarray(position + m * micro, position + (m + 1) * micro), device, aug));
          } catch (err) {
            // The micro-batches read before the one that failed.
            for (const b of out) for (const t of [b.x, b.y]) t.dispose();
            throw err;
          }
          return out;
        })();
        // A failed prefetch is reported when the step awaits it, not as an unhandled rejection.
        batches.catch(() => undefined);
        return { rng, batches };
      };
      while (state.position + c.batchSize <= order.length) {
        if (o.signal?.aborted || (o.maxSteps !== undefined && stepsThisRun >= o.maxSteps)) {
          aborted = true;
          const ahead = prefetched;
          prefetched = null;
          if (ahead) for (const b of await ahead.batches) for (const t of [b.x, b.y]) t.dispose();
          break;
        }
        const profiling = o.profileStep === stepsThisRun && !P.profiler.isProfiling();
        const current = prefetched ?? stepBatches(state.step, state.position);
        prefetched = null;
        const rng = current.rng;
        fetched = await current.batches;
        prefetched = state.position + 2 * c.batchSize <= order.length ? stepBatches(state.step + 1, state.position + c.batchSize) : null;
        const lr = schedule(state.step);
        opt.setLearningRate(lr);
        let lossValue = 0;
        const pred = new Int32Array(c.batchSize);
        const labels = new Int32Array(c.batchSize);
        // Values are read after the optimizer step is queued, so the queue never waits on JS.
        pending = [];
        // Dropout draws from the global generator: re-seeding it per step makes the
        // masks a function of (seed, step), so a resumed run draws the same ones.
        P.manualSeed(streams.dropout(c.seed, state.step));
        if (profiling) P.profiler.start({ shapes: true });
        for (let m = 0; m < c.accumulateSteps; m++) {
          const batch = fetched[m];
          const { loss, logits } = P.tidy(() => {
            let input = batch.x;
            let target: Tensor = batch.y;
            const mix = mixBatch(rng, c, batch.x, batch.y, data.classes.length);
            if (mix) ({ input, target } = mix);
            const out = P.profiler.scope('forward', () => inPrecision(c.precision, () => model.forward(input).logits));
            // The mean over the whole batch: each micro-batch's mean, divided by their count.
            const l = P.crossEntropy(out, target, { labelSmoothing: c.labelSmoothing });
            return { loss: c.accumulateSteps > 1 ? l.mul(1 / c.accumulateSteps) : l, logits: P.noGrad(() => out.argmax(-1)) };
          });
          if (scaler) {
            const scaled = scaler.scaleLoss(loss);
            scaled.backward();
            scaled.dispose();
          } else loss.backward();
          labels.set(batch.labels, m * micro);
          pending.push({ loss, logits, at: m * micro });
          batch.x.dispose();
          batch.y.dispose();
        }
        consistent = false;
        // float16: gradients back to their true size first; an overflowing step is skipped.
        const finite = scaler ? await scaler.unscale(model.parameters()) : true;
        if (finite) {
          P.profiler.scope('optimizer', () => {
            if (c.clipNorm > 0) P.optim.clipGradNorm(model.parameters(), c.clipNorm).dispose();
            opt.step();
          });
        }
        scaler?.update(finite);
        opt.zeroGrad();
        for (const p of pending) {
          lossValue += (await p.loss.data())[0];
          pred.set((await p.logits.data()) as Int32Array, p.at);
          p.loss.dispose();
          p.logits.dispose();
        }
        if (profiling) {
          const profile = P.profiler.stop();
          const text = `step ${state.step}, batch ${c.batchSize}, ${c.precision}\n${profile.table(Math.max(1, profile.rows.length))}\n`;
          await writeFileAtomic(join(o.outDir, 'profile.txt'), new TextEncoder().encode(text));
          o.onProfile?.(profile);
        }
        if (!Number.isFinite(lossValue)) throw new Error(`train: the loss became ${lossValue} at step ${state.step} (learning rate ${lr}); lower 'lr' or enable 'clipNorm'`);
        state.step++;
        state.position += c.batchSize;
        stepsThisRun++;
        imagesThisRun += c.batchSize;
        const window = state.window!;
        window.loss += lossValue;
        window.n++;
        for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) window.correct++;
        let progress: Progress | null = null;
        if (state.step % 10 === 0 || state.position + c.batchSize > order.length) {
          const secs = (performance.now() - t0) / 1000;
          const ips = imagesThisRun / secs;
          const p: Progress = {
            epoch: state.epoch,
            step: state.step,
            totalSteps,
            loss: window.loss / window.n,
            trainAccuracy: window.correct / (window.n * c.batchSize),
            imagesPerSecond: ips,
            etaSeconds: ((totalSteps - state.step) * c.batchSize) / ips,
            lr,
          };
          state.losses.push({ step: state.step, loss: p.loss });
          state.window = { loss: 0, correct: 0, n: 0 };
          progress = p;
        }
        // The state is the step's before the line goes out and the callback runs: a
        // callback that throws is checkpointed with this window already logged.
        consistent = true;
        if (progress) {
          log({ kind: 'train', ...progress });
          o.onProgress?.(progress);
        }
        if (c.checkpointEvery > 0 && state.step % c.checkpointEvery === 0) await checkpoint();
      }
      if (aborted) break;
      state.epoch++;
      state.position = 0;
      final = await doEval();
    }
    if (!aborted && final === null) {
      // Resumed after the last epoch (the process died before the caller saved the
      // model): the run is complete. Its final evaluation is the one recorded at this
      // step; when that evaluation failed (the checkpoint below was still written, so
      // the training is kept), the history ends at an earlier epoch: evaluate now.
      const last = state.history.at(-1);
      final = last !== undefined && last.step === state.step ? last : await doEval();
    }
  } catch (err) {
    failed = true;
    // One unreadable image late in a long run would otherwise cost every step since the
    // last checkpoint: the state of the last completed step is saved, and --resume
    // continues from it (a failed evaluation runs again first).
    if (consistent && state.step > checkpointed) {
      try {
        await checkpoint();
      } catch (saveErr) {
        throw new Error(`${err instanceof Error ? err.message : String(err)} (and the checkpoint of step ${state.step} after it failed: ${saveErr instanceof Error ? saveErr.message : String(saveErr)})`, { cause: err });
      }
    }
    throw err;
  } finally {
    const ahead = prefetched;
    if (ahead) {
      try {
        for (const b of await ahead.batches) for (const t of [b.x, b.y]) t.dispose();
      } catch {
        // A read that failed disposed what it had read.
      }
    }
    for (const b of fetched) for (const t of [b.x, b.y]) t.dispose();
    for (const p of pending) for (const t of [p.loss, p.logits]) t.dispose();
    if (!failed && (aborted || state.epoch >= c.epochs)) await checkpoint();
    opt.zeroGrad();
    opt.dispose();
    model.eval();
  }
  if (aborted) return { state, final: null, aborted };
  return { state, final, aborted };
}

/**
 * The CutMix box of area about (1 - lam) of an H x W image, centred at a random pixel
 * and clipped, as the reference draws it; `kept`, the share of the image outside it.
 */
function cutmixBox(rng: Rng, lam: number, H: number, W: number): { y0: number; y1: number; x0: number; x1: number; kept: number } {
  const cutH = Math.floor(H * Math.sqrt(1 - lam));
  const cutW = Math.floor(W * Math.sqrt(1 - lam));
  const cy = Math.floor(rng.next() * H);
  const cx = Math.floor(rng.next() * W);
  const [y0, y1] = [Math.max(0, cy - (cutH >> 1)), Math.min(H, cy + (cutH >> 1))];
  const [x0, x1] = [Math.max(0, cx - (cutW >> 1)), Math.min(W, cx + (cutW >> 1))];
  return { y0, y1, x0, x1, kept: 1 - ((y1 - y0) * (x1 - x0)) / (H * W) };
}

/** Each row's partner under a random permutation drawn from rng: its image and its one-hot label, beside x's own. */
function partnersOf(rng: Rng, x: Tensor, y: Tensor, classes: number): { partner: Tensor; yOne: Tensor; yPartner: Tensor } {
  const [B, C, H, W] = x.shape;
  const ids = P.tensor(Int32Array.from(rng.permutation(B)), [B], { device: x.device });
  const yOne = P.oneHot(y, classes);
  return { partner: P.embedding(x.reshape([B, C * H * W]), ids).reshape([B, C, H, W]), yOne, yPartner: P.embedding(yOne, ids) };
}

/**
 * @internal MixUp and/or CutMix of a batch x [B, C, H, W] with labels y [B] (see
 * TrainConfig.mixPer) with soft targets [B, classes]; null when both are off.
 */
export function mixBatch(rng: Rng, c: TrainConfig, x: Tensor, y: Tensor, classes: number): { input: Tensor; target: Tensor } | null {
  if (c.mixPer === 'example') return mixExamples(rng, c, x, y, classes);
  const useMix = c.mixup > 0 && (c.cutmix === 0 || rng.next() < 0.5);
  const useCut = !useMix && c.cutmix > 0;
  if (!useMix && !useCut) return null;
  const [, , H, W] = x.shape;
  const { partner: shuffled, yOne, yPartner: yShuf } = partnersOf(rng, x, y, classes);
  let lam = rng.beta(useMix ? c.mixup : c.cutmix);
  let input: Tensor;
  if (useMix) input = x.mul(lam).add(shuffled.mul(1 - lam));
  else {
    // A box of area (1 - lam) from the partner image; lam recomputed from the clipped box.
    const { y0, y1, x0, x1, kept } = cutmixBox(rng, lam, H, W);
    const box = new Uint8Array(H * W);
    for (let i = y0; i < y1; i++) for (let j = x0; j < x1; j++) box[i * W + j] = 1;
    const mask = P.tensor(box, [1, 1, H, W], { device: x.device });
    input = P.where(mask, shuffled, x);
    lam = kept;
  }
  return { input, target: yOne.mul(lam).add(yShuf.mul(1 - lam)) };
}

/**
 * mixPer 'example': row b of the result is x_b A_b + x_p (1 - A_b) for its partner p
 * (a random permutation), A_b = lam_b everywhere for a MixUp row, and for a CutMix
 * row 0 inside its box (the partner's pixels) and 1 outside; its target weighs the
 * labels by lam_b and the share of the image that stayed x_b's. Only the per-row
 * numbers come from the host; the masks are made on the device.
 */
function mixExamples(rng: Rng, c: TrainConfig, x: Tensor, y: Tensor, classes: number): { input: Tensor; target: Tensor } | null {
  if (c.mixup <= 0 && c.cutmix <= 0) return null;
  const [B, , H, W] = x.shape;
  const mixRows = c.mixup <= 0 ? 0 : c.cutmix <= 0 ? B : Math.floor(B / 2);
  const { partner, yOne, yPartner } = partnersOf(rng, x, y, classes);
  // A = alpha - inside: MixUp rows alpha = lam and no box; CutMix rows 1 and their box.
  const alpha = new Float32Array(B);
  const kept = new Float32Array(B);
  const rows = new Float32Array(B * H);
  const cols = new Float32Array(B * W);
  for (let b = 0; b < B; b++) {
    if (b < mixRows) {
      alpha[b] = kept[b] = rng.beta(c.mixup);
      continue;
    }
    const box = cutmixBox(rng, rng.beta(c.cutmix), H, W);
    const { y0, y1, x0, x1 } = box;
    alpha[b] = 1;
    kept[b] = box.kept;
    rows.fill(1, b * H + y0, b * H + y1);
    cols.fill(1, b * W + x0, b * W + x1);
  }
  const device = x.device;
  let A = P.tensor(alpha, [B, 1, 1, 1], { device });
  if (mixRows < B) {
    A = A.sub(P.tensor(rows, [B, 1, H, 1], { device }).mul(P.tensor(cols, [B, 1, 1, W], { device })));
  }
  const input = partner.add(x.sub(partner).mul(A));
  const target = yPartner.add(yOne.sub(yPartner).mul(P.tensor(kept, [B, 1], { device })));
  return { input, target };
}
