// RandAugment (Cubuk et al.) with the operation set and magnitude scales the
// Perceiver reference's ImageNet pipeline uses (the TF EfficientNet autoaugment
// list): each training image gets `numLayers` operations drawn uniformly from the
// set, every one at the same `magnitude` on a 0..10 scale, geometric ones with a
// random sign. Operates on 8-bit RGB [H, W, 3] after the crop, in place of PIL;
// the fill for pixels moved in from outside the image is grey (128), as there.
import type { Rng } from './rng.js';

export interface RgbBytes {
  data: Uint8Array;
  height: number;
  width: number;
}

export const RANDAUGMENT_OPS = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'Color', 'Contrast',
  'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Cutout', 'SolarizeAdd',
] as const;
export type RandAugmentOp = (typeof RANDAUGMENT_OPS)[number];

const FILL = 128;
const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));

/** PIL's ImageEnhance: blend the image with a degenerate version by factor f (1 = unchanged). */
function blend(img: RgbBytes, degenerate: Uint8Array, f: number): RgbBytes {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clamp(degenerate[i] + f * (img.data[i] - degenerate[i]));
  return { ...img, data: out };
}

function grey(img: RgbBytes): Uint8Array {
  const g = new Uint8Array(img.data.length);
  for (let p = 0; p < img.data.length; p += 3) {
    const v = clamp(0.299 * img.data[p] + 0.587 * img.data[p + 1] + 0.114 * img.data[p + 2]);
    g[p] = g[p + 1] = g[p + 2] = v;
  }
  return g;
}

/** Inverse-mapped affine warp (nearest neighbour): out(x, y) = in(a x + b y + c, d x + e y + f). */
function affine(img: RgbBytes, m: [number, number, number, number, number, number]): RgbBytes {
  const { width: W, height: H, data } = img;
  const out = new Uint8Array(data.length).fill(FILL);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const sx = Math.round(m[0] * x + m[1] * y + m[2]);
      const sy = Math.round(m[3] * x + m[4] * y + m[5]);
      if (sx < 0 || sy < 0 || sx >= W || sy >= H) continue;
      const o = (y * W + x) * 3;
      const s = (sy * W + sx) * 3;
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  return { ...img, data: out };
}

/** One operation at `magnitude` (0..10); `sign` is +1 or -1 for the geometric ones. */
export function applyOp(img: RgbBytes, op: RandAugmentOp, magnitude: number, sign: 1 | -1 = 1): RgbBytes {
  const m = magnitude / 10;
  const { width: W, height: H, data } = img;
  switch (op) {
    case 'AutoContrast': {
      const out = new Uint8Array(data.length);
      for (let c = 0; c < 3; c++) {
        let lo = 255;
        let hi = 0;
        for (let p = c; p < data.length; p += 3) {
          lo = Math.min(lo, data[p]);
          hi = Math.max(hi, data[p]);
        }
        const scale = hi > lo ? 255 / (hi - lo) : 1;
        for (let p = c; p < data.length; p += 3) out[p] = hi > lo ? clamp((data[p] - lo) * scale) : data[p];
      }
      return { ...img, data: out };
    }
    case 'Equalize': {
      // Per channel, as PIL's ImageOps.equalize: a lookup table from the cumulative histogram.
      const out = new Uint8Array(data.length);
      for (let c = 0; c < 3; c++) {
        const hist = new Array<number>(256).fill(0);
        for (let p = c; p < data.length; p += 3) hist[data[p]]++;
        const nonzero = hist.filter((h) => h > 0);
        const step = Math.floor((data.length / 3 - nonzero[nonzero.length - 1]) / 255);
        if (step === 0) {
          for (let p = c; p < data.length; p += 3) out[p] = data[p];
          continue;
        }
        const lut = new Uint8Array(256);
        let acc = Math.floor(step / 2);
        for (let v = 0; v < 256; v++) {
          lut[v] = Math.min(255, Math.floor(acc / step));
          acc += hist[v];
        }
        for (let p = c; p < data.length; p += 3) out[p] = lut[data[p]];
      }
      return { ...img, data: out };
    }
    case 'Invert':
      return { ...img, data: data.map((v) => 255 - v) };
    case 'Posterize': {
      const bits = Math.max(1, Math.floor(m * 4));
      const mask = (0xff << (8 - bits)) & 0xff;
      return { ...img, data: data.map((v) => v & mask) };
    }
    case 'Solarize': {
      const threshold = Math.floor(m * 256);
      return { ...img, data: data.map((v) => (v < threshold ? v : 255 - v)) };
    }
    case 'SolarizeAdd': {
      const add = Math.floor(m * 110);
      return { ...img, data: data.map((v) => (v < 128 ? Math.min(255, v + add) : v)) };
    }
    case 'Color':
      return blend(img, grey(img), m * 1.8 + 0.1);
    case 'Contrast': {
      const g = grey(img);
      let mean = 0;
      for (let p = 0; p < g.length; p += 3) mean += g[p];
      mean /= g.length / 3;
      return blend(img, new Uint8Array(data.length).fill(clamp(mean)), m * 1.8 + 0.1);
    }
    case 'Brightness':
      return blend(img, new Uint8Array(data.length), m * 1.8 + 0.1);
    case 'Sharpness': {
      // PIL's SMOOTH kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 as the degenerate image; borders kept.
      const smooth = new Uint8Array(data);
      for (let y = 1; y < H - 1; y++)
        for (let x = 1; x < W - 1; x++)
          for (let c = 0; c < 3; c++) {
            let s = 0;
            for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += data[((y + dy) * W + x + dx) * 3 + c] * (dx === 0 && dy === 0 ? 5 : 1);
            smooth[(y * W + x) * 3 + c] = clamp(s / 13);
          }
      return blend(img, smooth, m * 1.8 + 0.1);
    }
    case 'Rotate': {
      const a = ((sign * m * 30) * Math.PI) / 180;
      const [cx, cy] = [(W - 1) / 2, (H - 1) / 2];
      const [cos, sin] = [Math.cos(a), Math.sin(a)];
      return affine(img, [cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy]);
    }
    case 'ShearX':
      return affine(img, [1, sign * m * 0.3, 0, 0, 1, 0]);
    case 'ShearY':
      return affine(img, [1, 0, 0, sign * m * 0.3, 1, 0]);
    case 'TranslateX':
      // The reference's translate_const of 100 px at 224, scaled to this width.
      return affine(img, [1, 0, sign * m * 100 * (W / 224), 0, 1, 0]);
    case 'TranslateY':
      return affine(img, [1, 0, 0, 0, 1, sign * m * 100 * (H / 224)]);
    case 'Cutout':
      // Handled by randAugment (it needs a random centre).
      return img;
  }
}

/** numLayers random operations at `magnitude` (0..10), drawn from rng. */
export function randAugment(img: RgbBytes, rng: Rng, numLayers: number, magnitude: number): RgbBytes {
  if (!Number.isInteger(numLayers) || numLayers < 0) throw new RangeError(`randAugment: 'numLayers' must be an integer >= 0, got ${numLayers}`);
  if (!(magnitude >= 0 && magnitude <= 10)) throw new RangeError(`randAugment: 'magnitude' must be in [0, 10], got ${magnitude}`);
  let out = img;
  for (let l = 0; l < numLayers; l++) {
    const op = RANDAUGMENT_OPS[Math.floor(rng.next() * RANDAUGMENT_OPS.length)];
    const sign: 1 | -1 = rng.next() < 0.5 ? -1 : 1;
    if (op === 'Cutout') {
      // A grey square of side 2 * 40 * m (the reference's cutout_const at 224) at a random centre.
      const half = Math.round((magnitude / 10) * 40 * (out.width / 224));
      const cy = Math.floor(rng.next() * out.height);
      const cx = Math.floor(rng.next() * out.width);
      const data = new Uint8Array(out.data);
      for (let y = Math.max(0, cy - half); y < Math.min(out.height, cy + half); y++)
        for (let x = Math.max(0, cx - half); x < Math.min(out.width, cx + half); x++) data.fill(FILL, (y * out.width + x) * 3, (y * out.width + x) * 3 + 3);
      out = { ...out, data };
    } else out = applyOp(out, op, magnitude, sign);
  }
  return out;
}
