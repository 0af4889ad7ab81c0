// An image-folder dataset (root/<class>/*.png|jpg, or root/train/<class> and
// root/test/<class>) decoded into memory at a fixed square size. Decoding runs on
// sharp's own worker threads (libvips), many files in flight at once, so the JS
// thread only copies pixels; the set is then as fast to batch as MNIST. For sets
// too large for memory a streaming pipeline is still to come.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage } from '../image-io.js';
import { centerCrop, resizeBicubic } from '../image-processor.js';
import type { ImageSet } from './mnist.js';

const EXTENSIONS = /\.(png|jpe?g|webp|gif|tiff?|bmp)$/i;

function listClasses(dir: string): { classes: string[]; files: [string, number][] } {
  const classes = readdirSync(dir).filter((d) => statSync(join(dir, d)).isDirectory()).sort();
  if (classes.length < 2) throw new Error(`image folder '${dir}' must hold one sub-folder per class (found ${classes.length})`);
  const files: [string, number][] = [];
  classes.forEach((c, i) => {
    for (const f of readdirSync(join(dir, c)).sort()) if (EXTENSIONS.test(f)) files.push([join(dir, c, f), i]);
  });
  if (files.length === 0) throw new Error(`image folder '${dir}' has no images (.png, .jpg, ...)`);
  return { classes, files };
}

async function decodeAll(files: [string, number][], classes: string[], size: number, channels: number, concurrency = 16): Promise<ImageSet> {
  const per = channels * size * size;
  const pixels = new Float32Array(files.length * per);
  const labels = new Int32Array(files.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < files.length; i = next++) {
      const img = await decodeImage(files[i][0]);
      // Shorter side to `size` by a centre crop of the largest square, then resize.
      const side = Math.min(img.height, img.width);
      const sq = resizeBicubic(centerCrop(img, side, side), size, size);
      const base = i * per;
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const s = (y * size + x) * 3;
          if (channels === 1) pixels[base + y * size + x] = (0.299 * sq.data[s] + 0.587 * sq.data[s + 1] + 0.114 * sq.data[s + 2]) / 255;
          else for (let c = 0; c < 3; c++) pixels[base + (c * size + y) * size + x] = sq.data[s + c] / 255;
        }
      labels[i] = files[i][1];
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return { pixels, labels, shape: [channels, size, size], classes };
}

/**
 * { train, test } from root/train and root/test when both exist, else from root with
 * the last 20% of each class (in file-name order) held out for testing.
 */
export async function loadImageFolder(root: string, opts: { size: number; channels: number }): Promise<{ train: ImageSet; test: ImageSet }> {
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`image folder '${root}' does not exist`);
  if (!Number.isSafeInteger(opts.size) || opts.size < 1) throw new RangeError(`loadImageFolder: 'size' must be a positive integer, got ${opts.size}`);
  if (opts.channels !== 1 && opts.channels !== 3) throw new RangeError(`loadImageFolder: 'channels' must be 1 or 3, got ${opts.channels}`);
  if (existsSync(join(root, 'train')) && existsSync(join(root, 'test'))) {
    const tr = listClasses(join(root, 'train'));
    const te = listClasses(join(root, 'test'));
    if (tr.classes.join('\n') !== te.classes.join('\n')) throw new Error(`image folder '${root}': train/ and test/ must have the same class folders`);
    return { train: await decodeAll(tr.files, tr.classes, opts.size, opts.channels), test: await decodeAll(te.files, te.classes, opts.size, opts.channels) };
  }
  const { classes, files } = listClasses(root);
  const train: [string, number][] = [];
  const test: [string, number][] = [];
  classes.forEach((_, c) => {
    const mine = files.filter((f) => f[1] === c);
    const nTest = Math.floor(mine.length * 0.2);
    mine.forEach((f, i) => (i >= mine.length - nTest ? test : train).push(f));
  });
  if (test.length === 0) throw new Error(`image folder '${root}' is too small to hold out a test set (add images, or use train/ and test/ folders)`);
  return { train: await decodeAll(train, classes, opts.size, opts.channels), test: await decodeAll(test, classes, opts.size, opts.channels) };
}
