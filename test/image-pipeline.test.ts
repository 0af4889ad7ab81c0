// models/train/image-pipeline: batches from memory and from a streamed image folder
// (decode, random-resized crop, flip, centre crop), reproducible from the step's Rng.
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { ImageFolderSource, imageFolderSources, memorySource, randomResizedCrop, listImageFolder } from '../models/train/image-pipeline.js';
import { Rng } from '../models/train/rng.js';
import { cli } from './helpers/cli-run.js';
import { assertUnknownOptions } from './helpers/options.js';

const root = mkdtempSync(join(tmpdir(), 'perceiver-pipeline-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));

// Two classes of 40x30 images: class 'dark' left half black, 'light' all white-ish.
test.before(async () => {
  for (const [cls, value] of [['dark', 20], ['light', 230]] as const) {
    mkdirSync(join(root, 'set', cls), { recursive: true });
    for (let i = 0; i < 6; i++) {
      const px = Buffer.alloc(40 * 30 * 3, value);
      for (let y = 0; y < 30; y++) for (let x = 0; x < 40; x++) px[(y * 40 + x) * 3] = (x * 6 + i) & 255; // a red ramp: left != right
      const file = join(root, 'set', cls, `${i}.${i % 2 ? 'png' : 'jpg'}`);
      writeFileSync(file, await sharp(px, { raw: { width: 40, height: 30, channels: 3 } })[i % 2 ? 'png' : 'jpeg']({ quality: 95 }).toBuffer());
    }
  }
  writeFileSync(join(root, 'set', 'dark', 'notes.txt'), 'not an image');
});

test('an image folder splits the last 20% of each class (by name) into the test set; other files are ignored', (t) => {
  const { train, test: held } = imageFolderSources(join(root, 'set'), { size: 16, channels: 3 });
  t.deepEqual(train.classes, ['dark', 'light']);
  t.is(train.size, 10);
  t.is(held.size, 2);
  t.deepEqual([held.label(0), held.label(1)], [0, 1]);
  t.throws(() => listImageFolder(join(root, 'nope')), { message: /does not exist/ });
  // A file given for the folder is named as what it is, not as missing.
  t.throws(() => listImageFolder(join(root, 'set', 'dark', 'notes.txt')), { message: /image folder '.*notes\.txt' is not a folder/ });
});

test('evaluation batches resize the shorter side and crop the centre; training batches are reproducible from the Rng and differ between seeds', async (t) => {
  const { train } = imageFolderSources(join(root, 'set'), { size: 16, channels: 3 });
  const ev = await train.batch([0, 7], null);
  t.is(ev.pixels.length, 2 * 3 * 16 * 16);
  t.deepEqual(Array.from(ev.labels), [0, 1]);
  t.true(ev.pixels.every((v) => v >= 0 && v <= 1));
  // Green is constant per class: ~20/255 for dark, ~230/255 for light, in any crop.
  t.true(Math.abs(ev.pixels[256 + 100] - 20 / 255) < 0.03);
  t.true(Math.abs(ev.pixels[3 * 256 + 256 + 100] - 230 / 255) < 0.03);
  const a = await train.batch([1, 2, 3], { rng: new Rng(4), maxShift: 0 });
  const b = await train.batch([1, 2, 3], { rng: new Rng(4), maxShift: 0 });
  const c = await train.batch([1, 2, 3], { rng: new Rng(5), maxShift: 0 });
  t.deepEqual(a.pixels, b.pixels);
  t.notDeepEqual(a.pixels, c.pixels);
  const ra = { numLayers: 3, magnitude: 9 };
  const d = await train.batch([1, 2, 3], { rng: new Rng(4), maxShift: 0, randAugment: ra });
  const e = await train.batch([1, 2, 3], { rng: new Rng(4), maxShift: 0, randAugment: ra });
  t.deepEqual(d.pixels, e.pixels, 'RandAugment is drawn from the same Rng');
  t.notDeepEqual(d.pixels, a.pixels, 'and changes the crops');
  const grey = imageFolderSources(join(root, 'set'), { size: 8, channels: 1 }).train;
  t.is((await grey.batch([0, 1], { rng: new Rng(1), maxShift: 0, randAugment: ra })).pixels.length, 128);
  t.is((await grey.batch([0], null)).pixels.length, 64);
});

test('randomResizedCrop: boxes inside the image, area 8%-100%, aspect 3/4-4/3, the centre square after 10 misses', (t) => {
  const rng = new Rng(1);
  for (let i = 0; i < 500; i++) {
    const b = randomResizedCrop(rng, 30, 40);
    t.true(b.left >= 0 && b.top >= 0 && b.left + b.width <= 40 && b.top + b.height <= 30);
    const area = (b.width * b.height) / 1200;
    if (!(b.width === 30 && b.height === 30)) {
      t.true(area > 0.06 && area <= 1.05, `area ${area}`);
      t.true(b.width / b.height > 0.7 && b.width / b.height < 1.45, `aspect ${b.width / b.height}`);
    }
  }
  t.deepEqual(randomResizedCrop(new Rng(1), 2, 400, [0.9, 1], [1, 1]), { left: 199, top: 0, width: 2, height: 2 });
});

test('memory sets: shifts move the image by whole pixels with zero fill', async (t) => {
  const pixels = Float32Array.from({ length: 16 }, (_, i) => i + 1);
  const src = memorySource({ pixels, labels: Int32Array.from([3]), shape: [1, 4, 4], classes: ['a', 'b', 'c', 'd'] });
  t.deepEqual(Array.from((await src.batch([0], null)).pixels), Array.from(pixels));
  const shifted = (await src.batch([0], { rng: new Rng(2), maxShift: 1 })).pixels;
  const nonzero = Array.from(shifted).filter((v) => v !== 0);
  t.true(nonzero.length >= 9 && nonzero.every((v) => v >= 1 && v <= 16));
});

test.serial('perceiver train streams an image folder (imagenet-debug preset, one epoch)', async (t) => {
  const out = join(root, 'run');
  const r = await cli(['train', '--preset', 'imagenet-debug', '--data', join(root, 'set'), '--epochs', '1', '--batch-size', '4', '--out', out, '--quiet']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /10 training and 2 test images/);
  t.regex(r.stderr, /epoch 1: test top-1/);
  const bad = await cli(['train', '--preset', 'imagenet-debug', '--data', join(root, 'missing'), '--out', join(root, 'run2')]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /image folder '.*missing' does not exist/);
});

test('the pipeline checks its arguments: type, name, expected and what came', (t) => {
  const rng = new Rng(1);
  const cases: [() => unknown, RegExp][] = [
    [() => randomResizedCrop(rng, 'x' as never, 8), /^randomResizedCrop: argument 'h' must be an integer >= 1, got 'x'/],
    [() => randomResizedCrop(null as never, 8, 8), /^randomResizedCrop: argument 'rng' must be an Rng \(an object with next\(\)\), got null/],
    [() => randomResizedCrop(rng, 8, 8, [1, 0.5]), /^randomResizedCrop: argument 'scale\[1\]' must be a finite number >= 1, got number 0.5/],
    [() => randomResizedCrop(rng, 8, 8, [0.08, 1], null as never), /^randomResizedCrop: argument 'ratio' must be \[low, high\], got null/],
    [() => memorySource(undefined as never), /^memorySource: argument 'set' must be an object, got undefined/],
    [() => memorySource({ pixels: new Float32Array(16), labels: Int32Array.from([1]), shape: [1, 4, 4], classes: 'x' as never }), /^memorySource: argument 'set.classes' must be an array of class names, got 'x'/],
    [() => listImageFolder(5 as never), /^listImageFolder: argument 'dir' must be a non-empty folder path, got number 5/],
    [() => imageFolderSources(undefined as never, { size: 8, channels: 3 }), /^imageFolderSources: argument 'root' must be a non-empty folder path, got undefined/],
  ];
  for (const [call, message] of cases) t.throws(call, { message }, String(message));
});

test('imageFolderSources and ImageFolderSource refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  await assertUnknownOptions(t, [
    // Before the folder is listed.
    [() => imageFolderSources('no-such-folder', { size: 8, channels: 3, workers: 4 } as never), 'imageFolderSources', 'opts', 'workers'],
    [() => new ImageFolderSource([], [], { size: 8, channels: 3, imageSize: 8 } as never), 'ImageFolderSource', 'opts', 'imageSize'],
  ]);
});
