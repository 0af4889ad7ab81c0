// Training data as batches: the in-memory sets (MNIST) and a streaming image folder.
// The folder's images are decoded, cropped, resized and flipped by sharp (libvips)
// on libuv's worker threads, many files in flight at once; JS only turns the final
// size x size bytes into floats. Training batches use the reference's random-resized
// crop (area 8%-100%, aspect 3/4-4/3) and a horizontal flip; evaluation resizes the
// shorter side and takes the centre. Every random choice comes from the step's Rng,
// so a resumed run sees the same pixels.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadSharp } from '../sharp.js';
import type { ImageSet } from './mnist.js';
import { Rng } from './rng.js';
import { augmentPool } from './augment-pool.js';
import { describe } from '../../lib/dtype.js';
import { intArg, intListArg, knownKeysArg, numberArg, objectArg, optionKeys } from '../args.js';

/** A [low, high] pair of finite numbers, 0 < low <= high. */
function rangeArg(op: string, name: string, v: unknown): void {
  if (!Array.isArray(v) || v.length !== 2) throw new TypeError(`${op}: argument '${name}' must be [low, high], got ${describe(v)}`);
  numberArg(op, `${name}[0]`, v[0]);
  if (v[0] <= 0) throw new RangeError(`${op}: argument '${name}[0]' must be a finite number > 0, got number ${v[0]}`);
  numberArg(op, `${name}[1]`, v[1], v[0]);
}

/** A string path, non-empty. */
function pathArg(op: string, name: string, v: unknown): void {
  if (typeof v !== 'string' || v === '') throw new TypeError(`${op}: argument '${name}' must be a non-empty folder path, got ${describe(v)}`);
}

export interface Batch {
  /** [B, C, H, W] in [0, 1]. */
  pixels: Float32Array;
  labels: Int32Array;
}

/** Augmentation for one training batch (null: evaluation, no randomness). */
export interface Augment {
  rng: Rng;
  /** Random translation in pixels (in-memory sets). */
  maxShift: number;
  /** RandAugment after the crop (image folders); numLayers 0 disables. */
  randAugment?: { numLayers: number; magnitude: number };
}

export interface DataSource {
  readonly size: number;
  readonly classes: string[];
  /** [C, H, W] of every item. */
  readonly shape: [number, number, number];
  batch(indices: ArrayLike<number>, augment: Augment | null): Promise<Batch>;
  /** The label of item i (without decoding it). */
  label(i: number): number;
}

export function isDataSource(v: ImageSet | DataSource): v is DataSource {
  return v !== null && typeof v === 'object' && typeof (v as DataSource).batch === 'function';
}

/** An in-memory set (MNIST, a decoded folder) as a source; augmentation: random shifts. */
export function memorySource(set: ImageSet): DataSource {
  const op = 'memorySource';
  objectArg(op, 'set', set, true);
  intListArg(op, 'set.shape', set.shape, 1, Infinity, 3);
  if (set.shape.length !== 3) throw new RangeError(`${op}: argument 'set.shape' must be [C, H, W], got [${set.shape.join(', ')}]`);
  if (!(set.pixels instanceof Float32Array)) throw new TypeError(`${op}: argument 'set.pixels' must be a Float32Array [N, C, H, W], got ${describe(set.pixels)}`);
  if (!(set.labels instanceof Int32Array) && !Array.isArray(set.labels))
    throw new TypeError(`${op}: argument 'set.labels' must be an Int32Array [N], got ${describe(set.labels)}`);
  if (!Array.isArray(set.classes)) throw new TypeError(`${op}: argument 'set.classes' must be an array of class names, got ${describe(set.classes)}`);
  const n = set.shape[0] * set.shape[1] * set.shape[2];
  if (set.pixels.length !== set.labels.length * n)
    throw new RangeError(`${op}: argument 'set.pixels' must hold ${set.labels.length} images of [${set.shape.join(', ')}] (${set.labels.length * n} values), got ${set.pixels.length}`);
  const [C, H, W] = set.shape;
  const per = C * H * W;
  return {
    size: set.labels.length,
    classes: set.classes,
    shape: set.shape,
    label: (i) => set.labels[i],
    async batch(idx, aug) {
      const pixels = new Float32Array(idx.length * per);
      const labels = new Int32Array(idx.length);
      for (let i = 0; i < idx.length; i++) {
        const src = set.pixels.subarray(idx[i] * per, (idx[i] + 1) * per);
        labels[i] = set.labels[idx[i]];
        const shift = aug?.maxShift ?? 0;
        if (shift === 0 || !aug) {
          pixels.set(src, i * per);
          continue;
        }
        const dy = Math.floor(aug.rng.next() * (2 * shift + 1)) - shift;
        const dx = Math.floor(aug.rng.next() * (2 * shift + 1)) - shift;
        for (let c = 0; c < C; c++)
          for (let y = Math.max(0, dy); y < Math.min(H, H + dy); y++) {
            const from = c * H * W + (y - dy) * W;
            pixels.set(src.subarray(from + Math.max(0, -dx), from + Math.min(W, W - dx)), i * per + c * H * W + y * W + Math.max(0, dx));
          }
      }
      return { pixels, labels };
    },
  };
}

const EXTENSIONS = /\.(png|jpe?g|webp|gif|tiff?|bmp|avif)$/i;

/** root/<class>/<image> files, classes sorted by name. */
export function listImageFolder(dir: string): { classes: string[]; files: [string, number][] } {
  pathArg('listImageFolder', 'dir', dir);
  if (!existsSync(dir)) throw new Error(`image folder '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new Error(`image folder '${dir}' is not a folder (expected one sub-folder of images per class)`);
  const classes = readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory()).sort();
  if (classes.length < 2) throw new Error(`image folder '${dir}' must hold one sub-folder per class (found ${classes.length})`);
  const files: [string, number][] = [];
  classes.forEach((c, i) => {
    for (const f of readdirSync(join(dir, c)).sort()) if (EXTENSIONS.test(f)) files.push([join(dir, c, f), i]);
  });
  if (files.length === 0) throw new Error(`image folder '${dir}' has no images (.png, .jpg, ...)`);
  return { classes, files };
}

/** The reference's random-resized crop box in an h x w image (torchvision's sampling, 10 tries, then the centre). */
export function randomResizedCrop(rng: Rng, h: number, w: number, scale: [number, number] = [0.08, 1], ratio: [number, number] = [3 / 4, 4 / 3]): { left: number; top: number; width: number; height: number } {
  const op = 'randomResizedCrop';
  if (rng === null || typeof rng !== 'object' || typeof rng.next !== 'function')
    throw new TypeError(`${op}: argument 'rng' must be an Rng (an object with next()), got ${describe(rng)}`);
  intArg(op, 'h', h, 1);
  intArg(op, 'w', w, 1);
  rangeArg(op, 'scale', scale);
  rangeArg(op, 'ratio', ratio);
  const area = h * w;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng.next() * (scale[1] - scale[0]));
    const logR = Math.log(ratio[0]) + rng.next() * (Math.log(ratio[1]) - Math.log(ratio[0]));
    const aspect = Math.exp(logR);
    const cw = Math.round(Math.sqrt(target * aspect));
    const ch = Math.round(Math.sqrt(target / aspect));
    if (cw > 0 && ch > 0 && cw <= w && ch <= h) {
      return { left: Math.floor(rng.next() * (w - cw + 1)), top: Math.floor(rng.next() * (h - ch + 1)), width: cw, height: ch };
    }
  }
  const side = Math.min(h, w);
  return { left: Math.floor((w - side) / 2), top: Math.floor((h - side) / 2), width: side, height: side };
}

export interface ImageFolderSourceOptions {
  /** Output height = width. */
  size: number;
  channels: 1 | 3;
  /** Files decoded at once (libuv runs UV_THREADPOOL_SIZE of them in parallel). Default 16. */
  concurrency?: number;
}

const FOLDER_OPTIONS = optionKeys<ImageFolderSourceOptions>({ size: true, channels: true, concurrency: true });

/** A folder of images streamed from disk, batch by batch. */
export class ImageFolderSource implements DataSource {
  readonly size: number;
  readonly shape: [number, number, number];
  private readonly concurrency: number;

  constructor(
    readonly files: [string, number][],
    readonly classes: string[],
    private readonly opts: ImageFolderSourceOptions,
  ) {
    const op = 'ImageFolderSource';
    if (!Array.isArray(files)) throw new TypeError(`${op}: argument 'files' must be an array of [path, label], got ${describe(files)}`);
    if (!Array.isArray(classes)) throw new TypeError(`${op}: argument 'classes' must be an array of class names, got ${describe(classes)}`);
    objectArg(op, 'opts', opts, true);
    knownKeysArg(op, 'opts', opts, FOLDER_OPTIONS);
    if (opts.concurrency !== undefined) intArg(op, 'opts.concurrency', opts.concurrency, 1);
    if (!Number.isSafeInteger(opts.size) || opts.size < 1) throw new RangeError(`ImageFolderSource: 'size' must be a positive integer, got ${opts.size}`);
    if (opts.channels !== 1 && opts.channels !== 3) throw new RangeError(`ImageFolderSource: 'channels' must be 1 or 3, got ${String(opts.channels)}`);
    this.size = files.length;
    this.shape = [opts.channels, opts.size, opts.size];
    this.concurrency = opts.concurrency ?? 16;
  }

  label(i: number): number {
    intArg('ImageFolderSource.label', 'i', i, 0, this.files.length - 1);
    return this.files[i][1];
  }

  /** One image as [C, size, size] floats: augmented when a rng is given, else resized and centre-cropped. */
  async load(i: number, rng: Rng | null, aug?: Augment['randAugment']): Promise<Float32Array> {
    const [file] = this.files[i];
    const { size, channels } = this.opts;
    const sharp = await loadSharp();
    try {
      // Upright, in the output's colour space, as raw bytes (lossless between the two passes).
      const decoded = sharp(file, { failOn: 'error', limitInputPixels: 2 ** 28 }).autoOrient().removeAlpha();
      const up = await (channels === 1 ? decoded.grayscale() : decoded.toColourspace('srgb'))
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      let img = sharp(up.data, { raw: { width: up.info.width, height: up.info.height, channels: up.info.channels } });
      if (rng) {
        const box = randomResizedCrop(rng, up.info.height, up.info.width);
        const flip = rng.next() < 0.5;
        img = img.extract(box).resize(size, size, { fit: 'fill', kernel: 'cubic' });
        if (flip) img = img.flop();
      } else {
        img = img.resize(size, size, { fit: 'cover', position: 'centre', kernel: 'cubic' });
      }
      // A one-channel raw input would come back as sRGB without this.
      if (channels === 1) img = img.grayscale();
      const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      if (info.channels !== channels || info.width !== size || info.height !== size)
        throw new Error(`expected ${size}x${size}x${channels}, got ${info.width}x${info.height}x${info.channels}`);
      let bytes: Uint8Array = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (rng && aug && aug.numLayers > 0) {
        // RandAugment works on RGB (a grey image goes through as R = G = B), on a worker
        // thread, seeded from this image's Rng.
        const rgb = channels === 3 ? bytes.slice() : Uint8Array.from({ length: size * size * 3 }, (_, k) => bytes[Math.floor(k / 3)]);
        const done = await augmentPool().run(rgb, size, Math.floor(rng.next() * 2 ** 31), aug.numLayers, aug.magnitude);
        bytes = channels === 3 ? done : Uint8Array.from({ length: size * size }, (_, k) => done[k * 3]);
      }
      // HWC bytes -> CHW floats in [0, 1].
      const out = new Float32Array(channels * size * size);
      for (let p = 0; p < size * size; p++) for (let c = 0; c < channels; c++) out[c * size * size + p] = bytes[p * channels + c] / 255;
      return out;
    } catch (err) {
      throw new Error(`cannot load training image '${file}': ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    }
  }

  async batch(idx: ArrayLike<number>, aug: Augment | null): Promise<Batch> {
    const per = this.shape[0] * this.shape[1] * this.shape[2];
    const pixels = new Float32Array(idx.length * per);
    const labels = new Int32Array(idx.length);
    // One Rng per image, drawn in index order, so the result does not depend on which
    // decode finishes first.
    const rngs = Array.from({ length: idx.length }, () => (aug ? new Rng(Math.floor(aug.rng.next() * 2 ** 31)) : null));
    let next = 0;
    const worker = async () => {
      for (let k = next++; k < idx.length; k = next++) {
        pixels.set(await this.load(idx[k], rngs[k], aug?.randAugment), k * per);
        labels[k] = this.files[idx[k]][1];
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, idx.length) }, worker));
    return { pixels, labels };
  }
}

/**
 * { train, test } streaming sources from root/train and root/test when both exist,
 * else from root with the last 20% of each class (in file-name order) held out.
 */
export function imageFolderSources(root: string, opts: ImageFolderSourceOptions): { train: ImageFolderSource; test: ImageFolderSource } {
  pathArg('imageFolderSources', 'root', root);
  objectArg('imageFolderSources', 'opts', opts, true);
  // Before the folders are listed, which can take a while.
  knownKeysArg('imageFolderSources', 'opts', opts, FOLDER_OPTIONS);
  if (existsSync(join(root, 'train')) && existsSync(join(root, 'test'))) {
    const tr = listImageFolder(join(root, 'train'));
    const te = listImageFolder(join(root, 'test'));
    if (tr.classes.join('\n') !== te.classes.join('\n')) throw new Error(`image folder '${root}': train/ and test/ must have the same class folders`);
    return { train: new ImageFolderSource(tr.files, tr.classes, opts), test: new ImageFolderSource(te.files, te.classes, opts) };
  }
  const { classes, files } = listImageFolder(root);
  const train: [string, number][] = [];
  const test: [string, number][] = [];
  classes.forEach((_, c) => {
    const mine = files.filter((f) => f[1] === c);
    const nTest = Math.floor(mine.length * 0.2);
    mine.forEach((f, i) => (i >= mine.length - nTest ? test : train).push(f));
  });
  if (test.length === 0) throw new Error(`image folder '${root}' is too small to hold out a test set (add images, or use train/ and test/ folders)`);
  return { train: new ImageFolderSource(train, classes, opts), test: new ImageFolderSource(test, classes, opts) };
}
