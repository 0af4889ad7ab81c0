// RandAugment's operations (the reference's set and magnitude scales) on 8-bit RGB.
import test from 'ava';
import { applyOp, randAugment, RANDAUGMENT_OPS, type RgbBytes } from '../models/train/randaugment.js';
import { Rng } from '../models/train/rng.js';

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
  const ac = applyOp(img, 'AutoContrast', 5).data;
  for (let c = 0; c < 3; c++) {
    const ch = ac.filter((_, i) => i % 3 === c);
    t.is(Math.min(...ch), 0);
    t.is(Math.max(...ch), 255);
  }
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
  t.throws(() => randAugment(img, new Rng(1), 2, 11), { instanceOf: RangeError, message: /'magnitude' must be in \[0, 10\]/ });
  t.throws(() => randAugment(img, new Rng(1), -1, 5), { instanceOf: RangeError });
  let changed = 0;
  for (let s = 0; s < 20; s++) if (randAugment(img, new Rng(s), 2, 9).data.some((v, i) => v !== img.data[i])) changed++;
  t.true(changed >= 15, `${changed} of 20 seeds changed the image`);
});
