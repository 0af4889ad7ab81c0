// `perceiver classify --model DIR IMAGE...`: image files decoded, preprocessed as HF's
// PerceiverImageProcessor, classified; checked against the library run in this
// process (decodeImage, preprocessImage, the model, softmax) on the three classifiers.
import test from 'ava';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { tensor, type Tensor } from '../lib/index.js';
import { topKClasses, type ClassPrediction } from '../models/classification.js';
import { decodeImage } from '../models/image-io.js';
import { imageProcessorOptions, preprocessImage, type ImageProcessorOptions } from '../models/image-processor.js';
import { loadModel, readModelConfig } from '../models/load.js';
import { cli, permissionTestUser } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-cli-classify-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const W = 80;
const H = 60;
function picture(seed: number): Buffer {
  const b = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) b[(y * W + x) * 3 + c] = Math.round(127 + 120 * Math.sin((x * (c + seed)) / 9 + y / (4 + seed)));
  return b;
}
const png = join(tmp, 'a.png');
const jpg = join(tmp, 'b.jpg');
const grey = join(tmp, 'grey.png');
test.before(async () => {
  await sharp(picture(1), { raw: { width: W, height: H, channels: 3 } }).png().toFile(png);
  await sharp(picture(2), { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toFile(jpg);
  await sharp(picture(3), { raw: { width: W, height: H, channels: 3 } }).toColourspace('b-w').png().toFile(grey);
});

interface Row {
  image: string;
  width: number;
  height: number;
  predictions: ClassPrediction[];
}

async function viaLibrary(dir: string, images: string[], topK: number, opts?: ImageProcessorOptions): Promise<ClassPrediction[][]> {
  const config = readModelConfig(dir);
  const o = opts ?? imageProcessorOptions(config);
  const model = (await loadModel(dir, { device: 'cpu' })) as unknown as { forward(x: Tensor): { logits: Tensor }; dispose(): void };
  const out: ClassPrediction[][] = [];
  for (const path of images) {
    const { pixelValues, height, width } = preprocessImage(await decodeImage(path), o);
    const x = tensor(pixelValues, [1, 3, height, width]);
    const { logits } = model.forward(x);
    out.push((await topKClasses(logits, topK, config.id2label as Record<string, string>))[0]);
    x.dispose();
    logits.dispose();
  }
  model.dispose();
  return out;
}

function same(t: import('ava').ExecutionContext, got: ClassPrediction[], want: ClassPrediction[], what: string): void {
  t.deepEqual(got.map((p) => [p.index, p.label]), want.map((p) => [p.index, p.label]), what);
  for (const [i, p] of got.entries()) t.true(Math.abs(p.probability - want[i].probability) < 1e-6, `${what} #${i}: ${p.probability} vs ${want[i].probability}`);
}

for (const c of ['image_fourier', 'image_learned', 'image_conv']) {
  test(`--json ${c}: PNG, JPEG and grey PNG give the library's top-k`, async (t) => {
    const images = [png, jpg, grey];
    const r = await cli(['classify', '--model', caseDir(c), ...images, '--top-k', '3', '--json']);
    t.is(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Row[];
    t.deepEqual(rows.map((x) => [x.image, x.width, x.height]), images.map((p) => [p, W, H]));
    const want = await viaLibrary(caseDir(c), images, 3);
    for (const [i, row] of rows.entries()) {
      t.is(row.predictions.length, 3);
      t.true(row.predictions.every((p) => /^LABEL_\d$/.test(p.label)), 'labels from id2label');
      t.true(row.predictions[0].probability >= row.predictions[1].probability && row.predictions[1].probability >= row.predictions[2].probability);
      same(t, row.predictions, want[i], `${c} ${row.image}`);
    }
  });
}

test('text output, and a preprocessor_config.json in the folder overrides the defaults', async (t) => {
  const dir = mkdtempSync(join(tmp, 'with-preprocessor-'));
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(caseDir('image_conv'), f), join(dir, f));
  const pre = { do_center_crop: false, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] };
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(pre));
  const r = await cli(['classify', '--model', dir, png]);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines[0], `${png} (${W}x${H}):`);
  t.is(lines.length, 6, 'five labels by default');
  const [want] = await viaLibrary(dir, [png], 5, imageProcessorOptions(readModelConfig(dir), pre));
  for (const [i, p] of want.entries()) t.is(lines[i + 1], `  ${(100 * p.probability).toFixed(2).padStart(6)}%  ${p.label}`);
});

test('a model whose config.json has image_mean and image_std (it normalises its own input) is fed [0, 1] pixels, not normalised twice', async (t) => {
  // The same weights as image_fourier, the normalisation moved into the model: as
  // `perceiver train` saves its imagenet models, with the preprocessor_config.json it writes.
  const dir = mkdtempSync(join(tmp, 'self-normalising-'));
  const config = { ...readModelConfig(caseDir('image_fourier')), image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225] };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  copyFileSync(join(caseDir('image_fourier'), 'model.safetensors'), join(dir, 'model.safetensors'));
  const pre = { do_normalize: true, image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225] };
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(pre));
  const r = await cli(['classify', '--model', dir, png, jpg, '--top-k', '3', '--json']);
  t.is(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Row[];
  // HF's way: its processor normalises, its model (no image_mean) takes the result.
  const want = await viaLibrary(caseDir('image_fourier'), [png, jpg], 3);
  for (const [i, row] of rows.entries()) same(t, row.predictions, want[i], row.image);
  const help = await cli(['classify', '--help']);
  t.regex(help.stdout.replace(/\s+/g, ' '), /a model whose config\.json has image_mean and image_std .* normalises its own input/);
});

test('missing or corrupt images and a model of another kind exit 1; bad flags exit 2', async (t) => {
  const junk = join(tmp, 'junk.png');
  writeFileSync(junk, 'not a png');
  const conv = caseDir('image_conv');
  for (const [args, re] of [
    [['--model', conv, png, join(tmp, 'missing.jpg')], /image '.*missing\.jpg' does not exist/],
    [['--model', conv, junk], /cannot decode image '.*junk\.png': /],
    [['--model', caseDir('mlm'), png], /classify needs a PerceiverForImageClassificationFourier or PerceiverForImageClassificationLearned or PerceiverForImageClassificationConvProcessing model, but '.*mlm' holds a PerceiverForMaskedLM/],
  ] as [string[], RegExp][]) {
    const r = await cli(['classify', ...args]);
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, re);
  }
  for (const [args, re] of [
    [['--model', conv], /classify needs at least one image file/],
    [['--model', conv, png, '--top-k', 'x'], /--top-k must be an integer >= 1, got 'x'/],
  ] as [string[], RegExp][]) {
    const r = await cli(['classify', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, re);
    t.regex(r.stderr, /Usage: perceiver classify/);
  }
});

test('an image or a model folder the user may not read is reported as permission denied, not as a bad format or a missing file', async (t) => {
  const dir = mkdtempSync(join(tmp, 'perm-'));
  const locked = join(dir, 'locked.png');
  copyFileSync(png, locked);
  chmodSync(locked, 0o000);
  const model = join(dir, 'model');
  mkdirSync(model);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(caseDir('image_conv'), f), join(model, f));
  // Root reads anything: the check runs as another user then, with the folders open to it.
  chmodSync(tmp, 0o755);
  chmodSync(dir, 0o755);
  const asUser = permissionTestUser(t);
  if (asUser === null) return;
  const img = await cli(['classify', '--model', model, locked], asUser);
  t.is(img.code, 1, img.stderr);
  t.regex(img.stderr, /^perceiver: error: cannot read image '.*locked\.png': permission denied\n$/);
  chmodSync(model, 0o000);
  const folder = await cli(['classify', '--model', model, png], asUser);
  chmodSync(model, 0o755);
  t.is(folder.code, 1, folder.stderr);
  t.regex(folder.stderr, /^perceiver: error: loadModel: cannot read the model folder '.*model': permission denied\n$/);
});
