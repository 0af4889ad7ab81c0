// `perceiver flow --model DIR A B --out flow.png --flo flow.flo`: two image files of
// the same size, tiled over the model's window, written as a Middlebury colour PNG and
// a .flo file (atomically); checked against the library run in this process.
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { computeGridIndices } from '../models/flow-tiling.js';
import { estimateFlow } from '../models/flow-estimate.js';
import { flowToColor } from '../models/flow-vis.js';
import { decodeImage } from '../models/image-io.js';
import { loadModel } from '../models/load.js';
import type { PerceiverForOpticalFlow } from '../models/optical-flow.js';
import { cli } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

const FLOW = caseDir('optical_flow'); // train_size 12x16
const tmp = mkdtempSync(join(tmpdir(), 'perceiver-cli-flow-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const W = 30;
const H = 20;
function frame(dx: number, dy: number, w = W, h = H): Buffer {
  const b = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) b[(y * w + x) * 3 + c] = Math.round(127 + 120 * Math.sin((x - dx) / (3 + c) + (y - dy) / 4));
  return b;
}
const a = join(tmp, 'a.png');
const b = join(tmp, 'b.png');
const wide = join(tmp, 'wide.png');
const tiny = join(tmp, 'tiny.png');
test.before(async () => {
  await sharp(frame(0, 0), { raw: { width: W, height: H, channels: 3 } }).png().toFile(a);
  await sharp(frame(2, 1), { raw: { width: W, height: H, channels: 3 } }).png().toFile(b);
  await sharp(frame(0, 0, W + 1), { raw: { width: W + 1, height: H, channels: 3 } }).png().toFile(wide);
  await sharp(frame(0, 0, 8, 8), { raw: { width: 8, height: 8, channels: 3 } }).png().toFile(tiny);
});

test('--out and --flo: the .flo holds the library flow, the PNG its colour picture; nothing else is left behind', async (t) => {
  const dir = mkdtempSync(join(tmp, 'out-'));
  const out = join(dir, 'flow.png');
  const flo = join(dir, 'flow.flo');
  const r = await cli(['flow', '--model', FLOW, a, b, '--out', out, '--flo', flo, '--json']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(readdirSync(dir).sort(), ['flow.flo', 'flow.png']);
  const summary = JSON.parse(r.stdout) as { height: number; width: number; windows: number; overlap: number; meanFlow: number[]; maxMagnitude: number };
  t.deepEqual([summary.height, summary.width, summary.overlap], [H, W, 6], 'the overlap is lowered to half the 12-pixel window');
  t.is(summary.windows, computeGridIndices([H, W], [12, 16], 6).length);

  const bytes = readFileSync(flo);
  t.is(bytes.readFloatLE(0), 202021.25, "'PIEH' magic");
  t.is(bytes.readInt32LE(4), W);
  t.is(bytes.readInt32LE(8), H);
  t.is(bytes.length, 12 + 4 * H * W * 2);
  const got = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 12, bytes.byteOffset + bytes.length));

  const [fa, fb] = [await decodeImage(a), await decodeImage(b)];
  const frames = new Uint8Array(2 * H * W * 3);
  frames.set(fa.data, 0);
  frames.set(fb.data, H * W * 3);
  const model = (await loadModel(FLOW, { device: 'cpu' })) as PerceiverForOpticalFlow;
  const { flow } = await estimateFlow(model, frames, [H, W]);
  model.dispose();
  let maxDiff = 0;
  for (let i = 0; i < flow.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - flow[i]));
  t.true(maxDiff < 1e-5, `max |diff| ${maxDiff}`);
  let sumU = 0;
  for (let p = 0; p < H * W; p++) sumU += got[2 * p];
  t.true(Math.abs(sumU / (H * W) - summary.meanFlow[0]) < 1e-5);

  const png = await decodeImage(out);
  t.deepEqual([png.height, png.width], [H, W]);
  t.deepEqual(png.data, flowToColor(got, H, W), 'the PNG is the colour wheel picture of the written flow');

  const again = await cli(['flow', '--model', FLOW, a, b, '--flo', join(dir, 'again.flo')]);
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /^flow 30x20 \(width x height\) from \d+ window\(s\): mean \(u, v\) = \(-?\d+\.\d{3}, -?\d+\.\d{3}\) px, max \|flow\| \d+\.\d{3} px\nwrote .*again\.flo\n$/);
  t.deepEqual(readFileSync(join(dir, 'again.flo')), bytes, 'deterministic');
});

test('frames of different sizes, frames smaller than the window, a model of another kind, a missing folder exit 1', async (t) => {
  const out = join(tmp, 'x.png');
  for (const [args, re] of [
    [[a, wide, '--out', out], /the frames differ in size: '.*a\.png' is 30x20, '.*wide\.png' is 31x20 \(width x height\)/],
    [[tiny, tiny, '--out', out], /the frames \(8x8\) are smaller than the model's window \(train_size 12x16\)/],
    [[a, join(tmp, 'missing.png'), '--out', out], /image '.*missing\.png' does not exist/],
    [[a, b, '--out', join(tmp, 'no-dir', 'x.png')], /output folder '.*no-dir' does not exist/],
    // Refused before the frames are decoded (a missing frame would be reported first otherwise).
    [[a, join(tmp, 'missing.png'), '--out', tmp], /^perceiver: error: '.*perceiver-cli-flow-\w+' is a folder, not a regular file: refusing to replace it\n$/],
    [[a, join(tmp, 'missing.png'), '--flo', `${join(tmp, 'sub')}/`], /names a folder \(it ends with '\/'\)/],
  ] as [string[], RegExp][]) {
    const r = await cli(['flow', '--model', FLOW, ...args]);
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, re);
  }
  const r = await cli(['flow', '--model', caseDir('image_conv'), a, b, '--out', out]);
  t.is(r.code, 1);
  t.regex(r.stderr, /flow needs a PerceiverForOpticalFlow model, but '.*image_conv' holds a PerceiverForImageClassificationConvProcessing/);
  t.deepEqual(readdirSync(tmp).filter((f) => f.endsWith('.tmp') || f === 'x.png'), [], 'no output on failure');
});

test('bad flags exit 2', async (t) => {
  const same = join(tmp, 'same');
  for (const [args, re] of [
    [['--model', FLOW, a, b], /give --out FLOW\.png, --flo FLOW\.flo or both/],
    [['--model', FLOW, a, '--out', 'x.png'], /flow needs 2 positional arguments, got 1/],
    // One file for both: the .flo would replace the PNG.
    [['--model', FLOW, a, b, '--out', same, '--flo', same], /--out and --flo name the same file \('.*same'\); give two paths/],
    // Not lowered in silence: the 12x16 window takes at most 6.
    [['--model', FLOW, a, b, '--out', join(tmp, 'ov.png'), '--overlap', '1000000'], /--overlap must be at most 6 \(half the model's 16x12 window, width x height\), got 1000000/],
    [['--model', FLOW, a, b, '--out', '-'], /--out -: writing to stdout is not supported/],
  ] as [string[], RegExp][]) {
    const r = await cli(['flow', ...args]);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, re);
    t.regex(r.stderr, /Usage: perceiver flow/);
  }
});

test('--help on every command, and the overview lists them', async (t) => {
  const top = await cli(['--help']);
  t.is(top.code, 0);
  for (const name of ['run', 'info', 'fill-mask', 'classify', 'flow']) t.regex(top.stdout, new RegExp(`^ {2}${name} {2,}\\S`, 'm'), name);
  for (const [name, must] of [
    ['info', ['--json', 'FLOPs']],
    ['fill-mask', ['<mask:N>', '--top-k', '--json', '--device']],
    ['classify', ['--top-k', 'preprocessor_config.json', 'EXIF', 'ImageNet']],
    ['flow', ['--out', '--flo', '--overlap', 'train_size']],
  ] as [string, string[]][]) {
    const r = await cli([name, '--help']);
    t.is(r.code, 0, name);
    t.true(r.stdout.startsWith(`Usage: perceiver ${name}`), name);
    for (const s of must) t.true(r.stdout.includes(s), `${name} --help mentions ${s}`);
  }
});
