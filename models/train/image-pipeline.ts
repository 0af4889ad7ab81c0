// Training data as batches: the in-memory sets (MNIST) and a streaming image folder.
// The folder's images are decoded, cropped, resized and flipped by sharp (libvips)
// on libuv's worker threads, many files in flight at once; JS only turns the final
// size x size bytes into floats. Training batches use a random-resized crop with the
// reference's ranges (area 8%-100%, aspect 3/4-4/3) but torchvision's sampling (the
// reference draws its box with TF's sample_distorted_bounding_box and falls back to
// its evaluation crop), and a horizontal flip; RandAugment then runs either on the
// crop before its resize, at the photo's scale, as the reference runs it ('crop'), or
// on the resized image at the model's scale ('resized').
// Evaluation keeps the centre square of a fraction of the shorter side (the
// reference's 224/256) and resizes it. The resizes are libvips' cubic, not the PIL
// bicubic `perceiver classify` runs (models/image-processor.ts): on a noisy 500x375
// photo, 328 -> 224 pixels, 26% of the bytes differ, by at most 5 (0.26 on average).
// Every random choice comes from the step's Rng, so a resumed run sees the same pixels.
import { readdirSync, statSync, existsSync, lstatSync, readlinkSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { loadSharp } from '../sharp.js';
import type { ImageSet } from './mnist.js';
import { Rng } from './rng.js';
import { augmentPool } from './augment-pool.js';
import { describe } from '../../lib/dtype.js';
import { intArg, intListArg, knownKeysArg, numberArg, objectArg, optionKeys } from '../args.js';

// RandAugment works on RGB, on a worker thread, seeded from the image's Rng: a grey
// image goes through as R = G = B and comes back as its R. toRgb copies (the worker
// takes the buffer).
function toRgb(bytes: Uint8Array, channels: 1 | 3): Uint8Array {
  if (channels === 3) return bytes.slice();
  const rgb = new Uint8Array(bytes.length * 3);
  for (let p = 0; p < bytes.length; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = bytes[p];
  return rgb;
}
function fromRgb(rgb: Uint8Array, channels: 1 | 3): Uint8Array {
  if (channels === 3) return rgb;
  const grey = new Uint8Array(rgb.length / 3);
  for (let p = 0; p < grey.length; p++) grey[p] = rgb[3 * p];
  return grey;
}

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
  /**
   * RandAugment (image folders); numLayers 0 disables. `at` 'crop': on the crop and
   * flip, before the resize, its lengths in pixels (the reference); 'resized': on the
   * resized image, its lengths scaled to it (randaugment.ts, RandAugmentLengths).
   */
  randAugment?: { numLayers: number; magnitude: number; at: 'crop' | 'resized' };
}

export interface DataSource {
  readonly size: number;
  readonly classes: string[];
  /** [C, H, W] of every item. */
  readonly shape: [number, number, number];
  /**
   * augment null: evaluation, where evalCropFraction (default 1) is the centre square
   * kept of the shorter side before the resize; sources whose items are already at
   * the model's size (memorySource) ignore it.
   */
  batch(indices: ArrayLike<number>, augment: Augment | null, evalCropFraction?: number): Promise<Batch>;
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

function lstatSafe(path: string): ReturnType<typeof lstatSync> | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * The entries of a folder that a user would mean: not hidden ones (a name starting
 * with '.': macOS's AppleDouble '._x.jpg' and '.DS_Store', '.ipynb_checkpoints'), each
 * with whether it is a folder; a symbolic link counts as what it points to, and one
 * that points nowhere is an error naming it (stat's bare ENOENT would not).
 */
function visibleEntries(dir: string): { name: string; isDir: boolean }[] {
  const out: { name: string; isDir: boolean }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }) as Dirent[]) {
    if (e.name.startsWith('.')) continue;
    if (!e.isSymbolicLink()) {
      out.push({ name: e.name, isDir: e.isDirectory() });
      continue;
    }
    const path = join(dir, e.name);
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ELOOP') throw err;
      let target = '?';
      try {
        target = readlinkSync(path);
      } catch {
        // Named without its target.
      }
      throw new Error(`image folder: '${path}' is a broken symbolic link (to '${target}', which ${code === 'ELOOP' ? 'loops' : 'does not exist'}): remove it or restore its target`);
    }
    out.push({ name: e.name, isDir });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** root/<class>/<image> files, classes sorted by name; hidden files and folders (a leading '.') are skipped. */
export function listImageFolder(dir: string): { classes: string[]; files: [string, number][] } {
  pathArg('listImageFolder', 'dir', dir);
  if (!existsSync(dir)) {
    if (lstatSafe(dir)?.isSymbolicLink()) throw new Error(`image folder '${dir}' is a broken symbolic link (to '${readlinkSync(dir)}', which does not exist)`);
    throw new Error(`image folder '${dir}' does not exist`);
  }
  if (!statSync(dir).isDirectory()) throw new Error(`image folder '${dir}' is not a folder (expected one sub-folder of images per class)`);
  const classes = visibleEntries(dir).filter((e) => e.isDir).map((e) => e.name);
  if (classes.length < 2) throw new Error(`image folder '${dir}' must hold one sub-folder per class (found ${classes.length})`);
  const files: [string, number][] = [];
  classes.forEach((c, i) => {
    for (const f of visibleEntries(join(dir, c))) if (!f.isDir && EXTENSIONS.test(f.name)) files.push([join(dir, c, f.name), i]);
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

/** @internal An evaluation crop fraction: a number in (0, 1]. */
export function cropFractionArg(op: string, v: unknown): void {
  if (typeof v !== 'number' || !(v > 0 && v <= 1)) throw new RangeError(`${op}: argument 'evalCropFraction' must be a number in (0, 1], got ${describe(v)}`);
}

/**
 * The evaluation crop in an h x w image: the centre square of side
 * floor(min(h, w) * fraction) (the reference's int(224 / 256 * min) at 0.875), at
 * top floor((h - side) / 2), left floor((w - side) / 2). HF's processor (what
 * `perceiver classify` runs, and what the trained model's preprocessor_config.json
 * feeds HF's model) rounds the offsets down; the reference rounds them up
 * (((h - side) + 1) >> 1): they differ by one pixel when h - side is odd, and
 * evaluating as the model will be used afterwards is what matters.
 */
export function evalCropBox(h: number, w: number, fraction: number): { left: number; top: number; width: number; height: number } {
  intArg('evalCropBox', 'h', h, 1);
  intArg('evalCropBox', 'w', w, 1);
  cropFractionArg('evalCropBox', fraction);
  const side = Math.max(1, Math.floor(Math.min(h, w) * fraction));
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

  /**
   * One image as [C, size, size] floats: augmented when a rng is given, else the centre
   * square of evalCropFraction of the shorter side, resized.
   */
  async load(i: number, rng: Rng | null, aug?: Augment['randAugment'], evalCropFraction = 1): Promise<Float32Array> {
    cropFractionArg('ImageFolderSource.load', evalCropFraction);
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
      const augmenting = rng !== null && aug !== undefined && aug.numLayers > 0;
      if (rng) {
        const box = randomResizedCrop(rng, up.info.height, up.info.width);
        const flip = rng.next() < 0.5;
        img = img.extract(box);
        if (augmenting && aug.at === 'crop') {
          // The reference's order: crop, flip, RandAugment at the photo's scale, resize.
          if (flip) img = img.flop();
          // A one-channel raw input comes back as sRGB unless told (as below).
          if (channels === 1) img = img.grayscale();
          const crop = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
          if (crop.info.channels !== channels) throw new Error(`expected a crop of ${channels} channels, got ${crop.info.channels}`);
          const { width, height } = crop.info;
          const rgb = toRgb(new Uint8Array(crop.data.buffer, crop.data.byteOffset, crop.data.byteLength), channels);
          const done = await augmentPool().run(rgb, height, width, { seed: Math.floor(rng.next() * 2 ** 31), ...aug, lengths: 'absolute' });
          img = sharp(fromRgb(done, channels), { raw: { width, height, channels } }).resize(size, size, { fit: 'fill', kernel: 'cubic' });
        } else {
          img = img.resize(size, size, { fit: 'fill', kernel: 'cubic' });
          if (flip) img = img.flop();
        }
      } else if (evalCropFraction === 1) {
        // The whole shorter side (as before the fraction existed, pixel for pixel).
        img = img.resize(size, size, { fit: 'cover', position: 'centre', kernel: 'cubic' });
      } else {
        const box = evalCropBox(up.info.height, up.info.width, evalCropFraction);
        img = img.extract(box).resize(size, size, { fit: 'fill', kernel: 'cubic' });
      }
      // A one-channel raw input would come back as sRGB without this.
      if (channels === 1) img = img.grayscale();
      const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      if (info.channels !== channels || info.width !== size || info.height !== size)
        throw new Error(`expected ${size}x${size}x${channels}, got ${info.width}x${info.height}x${info.channels}`);
      let bytes: Uint8Array = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (rng && augmenting && aug.at === 'resized') {
        const done = await augmentPool().run(toRgb(bytes, channels), size, size, { seed: Math.floor(rng.next() * 2 ** 31), ...aug, lengths: 'scaled' });
        bytes = fromRgb(done, channels);
      }
      // HWC bytes -> CHW floats in [0, 1].
      const out = new Float32Array(channels * size * size);
      for (let p = 0; p < size * size; p++) for (let c = 0; c < channels; c++) out[c * size * size + p] = bytes[p * channels + c] / 255;
      return out;
    } catch (err) {
      throw new Error(`cannot load training image '${file}': ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    }
  }

  async batch(idx: ArrayLike<number>, aug: Augment | null, evalCropFraction = 1): Promise<Batch> {
    cropFractionArg('ImageFolderSource.batch', evalCropFraction);
    const per = this.shape[0] * this.shape[1] * this.shape[2];
    const pixels = new Float32Array(idx.length * per);
    const labels = new Int32Array(idx.length);
    // One Rng per image, drawn in index order, so the result does not depend on which
    // decode finishes first.
    const rngs = Array.from({ length: idx.length }, () => (aug ? new Rng(Math.floor(aug.rng.next() * 2 ** 31)) : null));
    let next = 0;
    const worker = async () => {
      for (let k = next++; k < idx.length; k = next++) {
        pixels.set(await this.load(idx[k], rngs[k], aug?.randAugment, evalCropFraction), k * per);
        labels[k] = this.files[idx[k]][1];
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, idx.length) }, worker));
    return { pixels, labels };
  }
}

/**
 * The held-out split's folder name when root is ImageNet's layout: its only
 * (non-hidden) folders are train/ and val/ (or validation/), and train/ holds folders
 * (classes) rather than images. A two-class set whose classes happen to be called
 * 'train' and 'val' has images in them, and stays a set of classes.
 */
function valSplit(root: string): string | null {
  if (!existsSync(root) || !statSync(root).isDirectory()) return null;
  const dirs = visibleEntries(root).filter((e) => e.isDir).map((e) => e.name);
  if (dirs.length !== 2 || dirs[0] !== 'train' || (dirs[1] !== 'val' && dirs[1] !== 'validation')) return null;
  return visibleEntries(join(root, 'train')).some((e) => e.isDir) ? dirs[1] : null;
}

/**
 * { train, test } streaming sources from root/train and root/test when both exist;
 * from root/train and root/val (or root/validation) when those are root's only
 * folders and hold class folders (ImageNet's layout); else from root with the last
 * 20% of each class (in file-name order) held out.
 */
export function imageFolderSources(root: string, opts: ImageFolderSourceOptions): { train: ImageFolderSource; test: ImageFolderSource } {
  pathArg('imageFolderSources', 'root', root);
  objectArg('imageFolderSources', 'opts', opts, true);
  // Before the folders are listed, which can take a while.
  knownKeysArg('imageFolderSources', 'opts', opts, FOLDER_OPTIONS);
  const held = existsSync(join(root, 'train')) && existsSync(join(root, 'test')) ? 'test' : valSplit(root);
  if (held !== null) {
    const tr = listImageFolder(join(root, 'train'));
    const te = listImageFolder(join(root, held));
    if (tr.classes.join('\n') !== te.classes.join('\n')) {
      const missing = tr.classes.filter((c) => !te.classes.includes(c));
      const extra = te.classes.filter((c) => !tr.classes.includes(c));
      const show = (l: string[]) => `${l.slice(0, 3).join(', ')}${l.length > 3 ? `, ... (${l.length})` : ''}`;
      throw new Error(
        `image folder '${root}': train/ and ${held}/ must have the same class folders` +
          `${missing.length ? `; only in train/: ${show(missing)}` : ''}${extra.length ? `; only in ${held}/: ${show(extra)}` : ''}`,
      );
    }
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
