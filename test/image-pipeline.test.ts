// models/train/image-pipeline: batches from memory and from a streamed image folder
// (decode, random-resized crop, flip, centre crop), reproducible from the step's Rng;
// the folder layouts taken (train/test, ImageNet's train/val, held-out 20%), hidden
// entries and broken links.
import test from 'ava';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { evalCropBox, ImageFolderSource, imageFolderSources, memorySource, randomResizedCrop, listImageFolder } from '../models/train/image-pipeline.js';
import { cropAndResize, imageProcessorOptions } from '../models/image-processor.js';
import { Rng } from '../models/train/rng.js';
import { randAugment } from '../models/train/randaugment.js';
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
  for (const at of ['resized', 'crop'] as const) {
    const ra = { numLayers: 3, magnitude: 9, at };
    const d = await train.batch([1, 2, 3], { rng: new Rng(4), maxShift: 0, randAugment: ra });
    const e = await train.batch([1, 2, 3], { rng: new Rng(4), maxShift: 0, randAugment: ra });
    t.deepEqual(d.pixels, e.pixels, `${at}: RandAugment is drawn from the same Rng`);
    t.notDeepEqual(d.pixels, a.pixels, `${at}: and changes the crops`);
    const grey = imageFolderSources(join(root, 'set'), { size: 8, channels: 1 }).train;
    t.is((await grey.batch([0, 1], { rng: new Rng(1), maxShift: 0, randAugment: ra })).pixels.length, 128, `${at}: grey images too`);
  }
  const grey = imageFolderSources(join(root, 'set'), { size: 8, channels: 1 }).train;
  t.is((await grey.batch([0], null)).pixels.length, 64);
});

// The reference's order: crop and flip at the photo's scale, RandAugment there (its
// translate and cutout lengths in pixels), then the resize. Rebuilt here step by step
// from the image's own Rng (the batch's first draw), as the pipeline draws it.
test("RandAugment at 'crop' augments the crop at the photo's scale, lengths in pixels, before the resize; at 'resized' after it", async (t) => {
  const { train } = imageFolderSources(join(root, 'set'), { size: 16, channels: 3 });
  const file = train.files[1][0];
  const ra = { numLayers: 4, magnitude: 9 };
  const got = await train.batch([1], { rng: new Rng(7), maxShift: 0, randAugment: { ...ra, at: 'crop' } });
  const rng = new Rng(Math.floor(new Rng(7).next() * 2 ** 31));
  const photo = await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const box = randomResizedCrop(rng, photo.info.height, photo.info.width);
  let crop = sharp(photo.data, { raw: { width: photo.info.width, height: photo.info.height, channels: 3 } }).extract(box);
  if (rng.next() < 0.5) crop = crop.flop();
  const cropped = await crop.raw().toBuffer();
  const augmented = randAugment({ data: new Uint8Array(cropped), height: box.height, width: box.width }, new Rng(Math.floor(rng.next() * 2 ** 31)), ra.numLayers, ra.magnitude, 'absolute');
  const resized = await sharp(augmented.data, { raw: { width: box.width, height: box.height, channels: 3 } }).resize(16, 16, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
  const want = new Float32Array(3 * 256);
  for (let p = 0; p < 256; p++) for (let c = 0; c < 3; c++) want[c * 256 + p] = resized[p * 3 + c] / 255;
  t.deepEqual(got.pixels, want);
  const after = await train.batch([1], { rng: new Rng(7), maxShift: 0, randAugment: { ...ra, at: 'resized' } });
  t.notDeepEqual(after.pixels, got.pixels, 'the two orders differ');
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
  // The model folder feeds HF's processor + model what the evaluation fed this one.
  const pre = JSON.parse(readFileSync(join(out, 'model', 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
  t.like(pre, { crop_size: { height: 37, width: 37 }, size: { height: 32, width: 32 }, do_normalize: true, image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225] });
  t.like(JSON.parse(readFileSync(join(out, 'model', 'config.json'), 'utf8')) as Record<string, unknown>, { image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225] });
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

/** A w x h PNG: green inside, a red border `border` pixels wide. */
async function bordered(file: string, w: number, h: number, border: number): Promise<void> {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const edge = x < border || x >= w - border || y < border || y >= h - border;
      px[(y * w + x) * 3] = edge ? 255 : 0;
      px[(y * w + x) * 3 + 1] = edge ? 0 : 200;
    }
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

test("evaluation keeps the centre evalCropFraction of the shorter side, as the reference's 224/256 and HF's processor, then resizes", async (t) => {
  // 256 x 320 with a 16-pixel red border: the centre 224 of the shorter side leaves it out.
  const file = join(root, 'bordered.png');
  await bordered(file, 256, 320, 16);
  t.deepEqual(evalCropBox(320, 256, 0.875), { left: 16, top: 48, width: 224, height: 224 });
  // Offsets rounded down, as HF's center_crop (the reference's ((h - side) + 1) >> 1 would give left 7).
  t.deepEqual(evalCropBox(31, 40, 0.875), { left: 6, top: 2, width: 27, height: 27 });
  t.deepEqual(evalCropBox(5, 5, 0.01), { left: 2, top: 2, width: 1, height: 1 }, 'at least one pixel');
  const src = new ImageFolderSource([[file, 0]], ['a', 'b'], { size: 224, channels: 3 });
  const redOnMiddleRow = (px: Float32Array) => Array.from({ length: 224 }, (_, x) => px[112 * 224 + x]).filter((v) => v > 0.5).length;
  t.true(redOnMiddleRow((await src.batch([0], null)).pixels) > 0, 'the default (1): the whole shorter side, border included');
  const cropped = (await src.batch([0], null, 0.875)).pixels;
  t.is(redOnMiddleRow(cropped), 0, 'the centre 224/256: no border');
  t.true(Math.abs(cropped[224 * 224 + 112 * 224 + 112] - 200 / 255) < 0.01, 'green inside');
  // HF's processor (perceiver classify) crops the same square.
  const hf = cropAndResize({ data: new Uint8Array(await sharp(file).removeAlpha().raw().toBuffer()), height: 320, width: 256 }, imageProcessorOptions({ image_size: 224 }));
  t.is(Array.from({ length: 224 }, (_, x) => hf.data[(112 * 224 + x) * 3]).filter((v) => v > 128).length, 0);
  await t.throwsAsync(src.batch([0], null, 0), { instanceOf: RangeError, message: /^ImageFolderSource\.batch: argument 'evalCropFraction' must be a number in \(0, 1\], got number 0/ });
  t.throws(() => evalCropBox(10, 10, 1.5), { instanceOf: RangeError, message: /^evalCropBox: argument 'evalCropFraction' must be a number in \(0, 1\]/ });
});

test("hidden files and folders (macOS's ._x.jpg and .DS_Store, .ipynb_checkpoints) are not images or classes; a broken symlink is named", async (t) => {
  const dir = join(root, 'hidden');
  for (const c of ['cat', 'dog']) {
    mkdirSync(join(dir, c, '.ipynb_checkpoints'), { recursive: true });
    for (const f of ['1.jpg', '2.jpg']) copyFileSync(join(root, 'set', 'dark', '0.jpg'), join(dir, c, f));
    writeFileSync(join(dir, c, '._1.jpg'), 'AppleDouble resource fork, not a JPEG');
    copyFileSync(join(root, 'set', 'dark', '0.jpg'), join(dir, c, '.ipynb_checkpoints', '1-checkpoint.jpg'));
  }
  mkdirSync(join(dir, '.ipynb_checkpoints'));
  writeFileSync(join(dir, '.DS_Store'), '');
  const { classes, files } = listImageFolder(dir);
  t.deepEqual(classes, ['cat', 'dog']);
  t.deepEqual(files.map(([f, c]) => [f.slice(dir.length + 1), c]), [['cat/1.jpg', 0], ['cat/2.jpg', 0], ['dog/1.jpg', 1], ['dog/2.jpg', 1]]);
  // A symlinked class folder and image count as what they point to...
  symlinkSync(join(dir, 'cat'), join(dir, 'cow'));
  symlinkSync(join(dir, 'dog', '1.jpg'), join(dir, 'dog', '3.jpg'));
  t.is(listImageFolder(dir).files.length, 7, 'cat 2, cow (cat) 2, dog 3');
  // ...and one that points nowhere is named, not a bare "ENOENT: no such file or directory, stat".
  symlinkSync(join(dir, 'gone.jpg'), join(dir, 'dog', '4.jpg'));
  t.throws(() => listImageFolder(dir), { message: /^image folder: '.*hidden\/dog\/4\.jpg' is a broken symbolic link \(to '.*gone\.jpg', which does not exist\): remove it or restore its target$/ });
  rmSync(join(dir, 'dog', '4.jpg'));
  symlinkSync(join(root, 'no-such-class'), join(dir, 'emu'));
  t.throws(() => listImageFolder(dir), { message: /^image folder: '.*hidden\/emu' is a broken symbolic link/ });
});

test("ImageNet's layout, DIR/train/<class> and DIR/val/<class> (or validation/), gives the two splits rather than holding out 20%", (t) => {
  for (const held of ['val', 'validation']) {
    const dir = join(root, `imagenet-${held}`);
    for (const [split, n] of [['train', 3], [held, 1]] as const)
      for (const c of ['n01440764', 'n01443537'])
        for (let i = 0; i < n; i++) {
          mkdirSync(join(dir, split, c), { recursive: true });
          copyFileSync(join(root, 'set', 'dark', '0.jpg'), join(dir, split, c, `${split}_${i}.JPEG`));
        }
    writeFileSync(join(dir, 'LOC_synset_mapping.txt'), 'n01440764 tench\n');
    const { train, test: heldOut } = imageFolderSources(dir, { size: 8, channels: 3 });
    t.deepEqual(train.classes, ['n01440764', 'n01443537'], held);
    t.is(train.size, 6, held);
    t.is(heldOut.size, 2, held);
    t.true(heldOut.files.every(([f]) => f.includes(`/${held}/`)), held);
    mkdirSync(join(dir, held, 'n09999999'));
    copyFileSync(join(root, 'set', 'dark', '0.jpg'), join(dir, held, 'n09999999', 'x.jpg'));
    t.throws(() => imageFolderSources(dir, { size: 8, channels: 3 }), { message: new RegExp(`train/ and ${held}/ must have the same class folders; only in ${held}/: n09999999$`) });
  }
  // Two classes that happen to be called train and val (images, not class folders, in them) stay classes.
  const twoClasses = join(root, 'train-val-classes');
  for (const c of ['train', 'val'])
    for (let i = 0; i < 5; i++) {
      mkdirSync(join(twoClasses, c), { recursive: true });
      copyFileSync(join(root, 'set', 'dark', '0.jpg'), join(twoClasses, c, `${i}.jpg`));
    }
  const split = imageFolderSources(twoClasses, { size: 8, channels: 3 });
  t.deepEqual(split.train.classes, ['train', 'val']);
  t.deepEqual([split.train.size, split.test.size], [8, 2]);
});
