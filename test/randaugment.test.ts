// RandAugment's operations (the reference's set and magnitude scales) on 8-bit RGB,
// each checked against test/fixtures/randaugment/ (scripts/make-randaugment-fixtures.py:
// the reference's TF ops rendered in numpy, checked there against PIL 9.4).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { applyOp, cutout, randAugment, RANDAUGMENT_OPS, type RandAugmentOp, type RgbBytes } from '../models/train/randaugment.js';
import { Rng } from '../models/train/rng.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'randaugment');

interface FixtureCase {
  op: RandAugmentOp;
  image: string;
  magnitude: number;
  sign?: 1 | -1;
  centre?: [number, number];
  offset: number;
  source: string;
}

const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as {
  images: Record<string, { file: string; width: number; height: number }>;
  expected: string;
  cases: FixtureCase[];
};
const expectedBytes = new Uint8Array(readFileSync(join(FIXTURES, manifest.expected)));
const images: Record<string, RgbBytes> = Object.fromEntries(
  Object.entries(manifest.images).map(([name, m]) => [name, { data: new Uint8Array(readFileSync(join(FIXTURES, m.file))), width: m.width, height: m.height }]),
);

function run(c: FixtureCase): Uint8Array {
  const img = images[c.image];
  const before = img.data.slice();
  const out = c.op === 'Cutout' ? cutout(img, c.magnitude, c.centre![0], c.centre![1]) : applyOp(img, c.op, c.magnitude, c.sign ?? 1);
  if (!before.every((v, i) => v === img.data[i])) throw new Error(`${c.op} wrote into its input`);
  return out.data;
}

/** Largest |difference| and the number of pixels with any channel differing. */
function compare(got: Uint8Array, want: Uint8Array): { maxAbs: number; pixels: number } {
  let maxAbs = 0;
  let pixels = 0;
  for (let p = 0; p < got.length; p += 3) {
    const d = Math.max(Math.abs(got[p] - want[p]), Math.abs(got[p + 1] - want[p + 1]), Math.abs(got[p + 2] - want[p + 2]));
    if (d > 0) pixels++;
    maxAbs = Math.max(maxAbs, d);
  }
  return { maxAbs, pixels };
}

const GEOMETRIC = new Set<RandAugmentOp>(['Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY']);

test('fixtures: every operation is covered, on two image sizes where the size matters', (t) => {
  t.deepEqual([...new Set(manifest.cases.map((c) => c.op))].sort(), [...RANDAUGMENT_OPS].sort());
  for (const op of ['AutoContrast', 'Equalize', 'Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY'])
    t.true(manifest.cases.some((c) => c.op === op && c.image === 'odd'), `${op} on the odd-sized image`);
  t.is(expectedBytes.length, Math.max(...manifest.cases.map((c) => c.offset + images[c.image].data.length)));
});

test('fixtures: point and enhancement operations match the reference exactly', (t) => {
  for (const c of manifest.cases.filter((c) => !GEOMETRIC.has(c.op))) {
    const got = run(c);
    const { maxAbs, pixels } = compare(got, expectedBytes.subarray(c.offset, c.offset + got.length));
    t.is(maxAbs, 0, `${c.op} on ${c.image} at magnitude ${c.magnitude}: ${pixels} pixels differ (expected: ${c.source})`);
  }
});

// The warps compute coordinates in float32 as TF's kernel does, so shears and
// translations (exact IEEE products and sums) must match exactly. Rotate goes through
// cos and sin, which the fixtures round from Python's float64 libm and we from V8's:
// both are within an ulp of the true value, and the float32 results agree unless a
// value falls on a float32 rounding boundary; such a flip moves a coordinate by ~1e-7
// and changes a pixel only if that coordinate also sits on a .5 rounding tie. At most
// 0.5% of a rotated image's pixels may differ for that reason (none do today).
test('fixtures: geometric operations match the reference (Rotate: up to 0.5% of pixels at rounding ties)', (t) => {
  for (const c of manifest.cases.filter((c) => GEOMETRIC.has(c.op))) {
    const got = run(c);
    const { maxAbs, pixels } = compare(got, expectedBytes.subarray(c.offset, c.offset + got.length));
    const allowed = c.op === 'Rotate' ? Math.floor(0.005 * images[c.image].width * images[c.image].height) : 0;
    t.true(pixels <= allowed, `${c.op} on ${c.image} at magnitude ${c.magnitude}, sign ${c.sign}: ${pixels} pixels differ (max |d| ${maxAbs}), ${allowed} allowed`);
  }
});

function image(W = 8, H = 6): RgbBytes {
  const data = new Uint8Array(W * H * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) % 200 + 20;
  return { data, width: W, height: H };
}

test('identities: factor-1 enhancements, zero-magnitude geometry, SolarizeAdd 0; Invert twice', (t) => {
  const img = image();
  for (const op of ['Brightness', 'Color', 'Contrast', 'Sharpness'] as const) t.deepEqual(applyOp(img, op, 5).data, img.data, `${op} at magnitude 5 (factor 1)`);
  for (const op of ['Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'SolarizeAdd'] as const) t.deepEqual(applyOp(img, op, 0).data, img.data, `${op} at magnitude 0`);
  t.deepEqual(applyOp(applyOp(img, 'Invert', 5), 'Invert', 5).data, img.data);
  t.is(applyOp(img, 'Invert', 5).data[0], 255 - img.data[0]);
});

test('pixel operations: Posterize keeps the top bits, Solarize inverts above the threshold, Brightness 0 is black', (t) => {
  const img = image();
  t.true(applyOp(img, 'Posterize', 10).data.every((v) => v % 16 === 0), 'magnitude 10: 4 bits');
  t.true(applyOp(img, 'Posterize', 5).data.every((v) => v % 64 === 0), 'magnitude 5: 2 bits');
  const sol = applyOp(img, 'Solarize', 5).data; // threshold 128
  img.data.forEach((v, i) => t.is(sol[i], v < 128 ? v : 255 - v));
  t.true(applyOp(img, 'Brightness', 0).data.every((v) => v === 0 || v < 30), 'factor 0.1');
  // The reference stretches each channel in float32 and truncates: hi * scale + offset
  // can come out a hair under 255, and does for this image's 20..219 range.
  const ac = applyOp(img, 'AutoContrast', 5).data;
  for (let c = 0; c < 3; c++) {
    const ch = ac.filter((_, i) => i % 3 === c);
    t.is(Math.min(...ch), 0);
    t.true(Math.max(...ch) >= 254);
  }
});

test("lengths 'absolute' take the reference's translate and cutout lengths as pixels whatever the size; 'scaled' (the default) scales them from 224", (t) => {
  const W = 448;
  const H = 4;
  const data = new Uint8Array(W * H * 3);
  for (let x = 0; x < W; x++) for (let y = 0; y < H; y++) data[(y * W + x) * 3] = x >> 1;
  const img = { data, width: W, height: H };
  t.is(applyOp(img, 'TranslateX', 10, 1, undefined, 'absolute').data[(1 * W + 0) * 3], 50, 'out(0) = in(100)');
  t.is(applyOp(img, 'TranslateX', 10, 1).data[(1 * W + 0) * 3], 100, 'scaled: out(0) = in(200)');
  const tall = { data: new Uint8Array(3 * 448 * 3), width: 3, height: 448 };
  for (let y = 0; y < 448; y++) tall.data[y * 9] = y >> 1;
  t.is(applyOp(tall, 'TranslateY', 10, 1, undefined, 'absolute').data[0], 50, 'TranslateY: out(0) = in(100)');
  t.is(applyOp(tall, 'TranslateY', 10, 1, undefined, 'scaled').data[0], 100, 'TranslateY scaled by the height: out(0) = in(200)');
  // Cutout at magnitude 10: a square of side 80 px, or 160 px scaled to 448.
  const big = { data: new Uint8Array(448 * 448 * 3), width: 448, height: 448 };
  const grey = (im: RgbBytes) => im.data.filter((v, i) => i % 3 === 0 && v === 128).length;
  t.is(grey(cutout(big, 10, 224, 224, 'absolute')), 80 * 80);
  t.is(grey(cutout(big, 10, 224, 224)), 160 * 160);
  const small = image(20, 20);
  t.deepEqual(randAugment(small, new Rng(5), 4, 9, 'absolute').data, randAugment(small, new Rng(5), 4, 9, 'absolute').data, 'seeded');
  t.throws(() => randAugment(small, new Rng(5), 4, 9, 'pixels' as never), { instanceOf: TypeError, message: /randAugment: 'lengths' must be 'absolute' or 'scaled', got "pixels"/ });
  t.throws(() => cutout(small, 5, 1, 1, 'model' as never), { instanceOf: TypeError, message: /cutout: 'lengths' must be/ });
});

test('geometry: TranslateX by 100 px at width 224 moves content left and fills grey; Rotate keeps the centre', (t) => {
  const W = 224;
  const H = 4;
  const data = new Uint8Array(W * H * 3);
  for (let x = 0; x < W; x++) for (let y = 0; y < H; y++) data[(y * W + x) * 3] = x;
  const moved = applyOp({ data, width: W, height: H }, 'TranslateX', 10, 1).data;
  t.is(moved[(1 * W + 0) * 3], 100, 'out(0) = in(100)');
  t.is(moved[(1 * W + 200) * 3], 128, 'pulled in from outside: grey');
  const img = image(9, 9);
  const rot = applyOp(img, 'Rotate', 10, -1).data;
  const c = (4 * 9 + 4) * 3;
  t.deepEqual([rot[c], rot[c + 1], rot[c + 2]], [img.data[c], img.data[c + 1], img.data[c + 2]]);
});

test('randAugment: seeded, every operation reachable, bad arguments refused', (t) => {
  const img = image(16, 16);
  t.deepEqual(randAugment(img, new Rng(3), 4, 5).data, randAugment(img, new Rng(3), 4, 5).data);
  t.deepEqual(randAugment(img, new Rng(3), 0, 5).data, img.data);
  t.is(RANDAUGMENT_OPS.length, 16);
  // Magnitudes past the reference's 10 are taken (see 'magnitudes above 10'), up to 30.
  t.throws(() => randAugment(img, new Rng(1), 2, 31), { instanceOf: RangeError, message: /'magnitude' must be in \[0, 30\] \(10 is the top of the reference's scale; above, the ops extrapolate\), got 31/ });
  t.throws(() => randAugment(img, new Rng(1), -1, 5), { instanceOf: RangeError });
  let changed = 0;
  for (let s = 0; s < 20; s++) if (randAugment(img, new Rng(s), 2, 9).data.some((v, i) => v !== img.data[i])) changed++;
  t.true(changed >= 15, `${changed} of 20 seeds changed the image`);
});

test("Contrast blends toward the reference's pixel-count level: 196 at 224 x 224", (t) => {
  const W = 224;
  const data = new Uint8Array(W * W * 3);
  for (let i = 0; i < data.length; i++) data[i] = i % 256;
  const out = applyOp({ data, width: W, height: W }, 'Contrast', 0).data; // factor 0.1
  for (const i of [0, 100, 196, 255]) t.is(out[i], Math.trunc(Math.fround(196 + Math.fround(Math.fround(0.1) * (data[i] - 196)))), `value ${data[i]}`);
});

test('bad arguments are refused with the argument named', (t) => {
  const img = image();
  t.throws(() => applyOp({ ...img, data: img.data.subarray(1) }, 'Invert', 5), { instanceOf: RangeError, message: /'img.data' must hold width \* height \* 3 = 144 bytes/ });
  t.throws(() => applyOp({ ...img, data: [1, 2, 3] as unknown as Uint8Array }, 'Invert', 5), { instanceOf: TypeError, message: /'img.data' must be a Uint8Array/ });
  t.throws(() => applyOp({ ...img, width: 0 }, 'Invert', 5), { instanceOf: RangeError, message: /'img.width' and 'img.height'/ });
  t.throws(() => applyOp(img, 'Blur' as RandAugmentOp, 5), { instanceOf: RangeError, message: /'op' must be one of AutoContrast, .*got Blur/ });
  t.throws(() => applyOp(img, 'Rotate', Number.NaN), { instanceOf: RangeError, message: /'magnitude' must be in \[0, 30\] .*, got NaN/ });
  t.throws(() => applyOp(img, 'Rotate', 5, 0 as 1), { instanceOf: RangeError, message: /'sign' must be 1 or -1, got 0/ });
  t.throws(() => applyOp(img, 'Cutout', 5), { instanceOf: RangeError, message: /'Cutout' needs 'centre'/ });
  t.throws(() => cutout(img, 5, 6, 0), { instanceOf: RangeError, message: /'centreY' must be an integer in \[0, 6\), got 6/ });
  t.throws(() => cutout(img, 5, 0, -1), { instanceOf: RangeError, message: /'centreX' must be an integer in \[0, 8\), got -1/ });
  t.deepEqual(applyOp(img, 'Cutout', 10, 1, { y: 2, x: 3 }).data, cutout(img, 10, 2, 3).data);
});

test("magnitudes above 10 extrapolate the reference's linear scale (its _MAX_LEVEL 10 divides, nothing clips), up to 30", (t) => {
  const W = 224;
  const H = 4;
  const data = new Uint8Array(W * H * 3);
  for (let x = 0; x < W; x++) for (let y = 0; y < H; y++) data[(y * W + x) * 3] = x;
  // TranslateX: 100 px per 10 at 224 px, so 200 px at 20.
  const moved = applyOp({ data, width: W, height: H }, 'TranslateX', 20, 1).data;
  t.is(moved[(1 * W + 0) * 3], 200, 'out(0) = in(200)');
  t.is(moved[(1 * W + 23) * 3], 223, 'out(23) = in(223)');
  t.is(moved[(1 * W + 24) * 3], 128, 'past the image: grey');
  const img = image(16, 16);
  // Posterize: int(magnitude / 10 * 4) bits and the TF shift 8 - bits as a uint8,
  // clamped to 7: 6 bits at 15, all 8 at 20 (unchanged), 1 bit past 8 (the wrapped shift).
  t.true(applyOp(img, 'Posterize', 15).data.every((v, i) => v === (img.data[i] & 0xfc)), 'magnitude 15: 6 bits');
  t.deepEqual(applyOp(img, 'Posterize', 20).data, img.data, 'magnitude 20: 8 bits');
  t.true(applyOp(img, 'Posterize', 25).data.every((v, i) => v === (img.data[i] & 0x80)), 'magnitude 25: 10 bits, shift clamped to 7');
  // Brightness: factor magnitude / 10 * 1.8 + 0.1, 3.7 at 20, clipped at 255.
  const bright = applyOp(img, 'Brightness', 20).data;
  img.data.forEach((v, i) => t.is(bright[i], Math.min(255, Math.trunc(Math.fround(Math.fround(3.7) * v)))));
  // Cutout: a square of side 2 * int(magnitude / 10 * 40) at 224, so 160 at 20.
  const big = { data: new Uint8Array(W * W * 3), width: W, height: W };
  t.is(cutout(big, 20, 112, 112).data.filter((v) => v === 128).length, 160 * 160 * 3);
  t.notThrows(() => randAugment(img, new Rng(1), 4, 28), "the RandAugment paper's largest, 28");
  t.notThrows(() => applyOp(img, 'Rotate', 30));
});
