// RandAugment (Cubuk et al.) with the operation set and magnitude scales the
// Perceiver reference's ImageNet pipeline uses (perceiver/train/autoaugment.py, the
// TF EfficientNet list, run under TF 2.5 and tensorflow-addons 0.13): each training
// image gets `numLayers` operations drawn uniformly from the set, every one at the
// same `magnitude`, geometric ones with a random sign. The reference's scale is 0..10
// (its _MAX_LEVEL), each op's argument linear in magnitude / 10 and not bounded, so
// a larger magnitude extrapolates (the RandAugment paper used up to 28 with this
// code); magnitudes up to MAX_MAGNITUDE = 30 are taken, with the same mapping.
// Operates on 8-bit RGB [H, W, 3]: the crop at the photo's scale, before the resize, as
// the reference runs it (lengths 'absolute': its translate and cutout constants are
// pixel counts whatever the crop's size), or the resized image at the model's scale
// (lengths 'scaled': the constants, meant for 224 px, scaled to the image). Pixels
// moved in from outside the image and cutout squares are grey (128), the reference's
// replace value.
//
// The ops follow the reference's TF code, not PIL, where the two differ: float32
// arithmetic (Math.fround) truncated to uint8, TF's grey level, nearest-neighbour
// warps that round float32 coordinates half away from zero. test/randaugment.test.ts
// checks every op against fixtures rendered from that code and checked against PIL
// (scripts/make-randaugment-fixtures.py), which say where PIL differs and why.
import type { Rng } from './rng.js';

export interface RgbBytes {
  data: Uint8Array;
  height: number;
  width: number;
}

/**
 * How the reference's pixel lengths (translate 100 px, cutout 40 px at magnitude 10)
 * apply: 'absolute', as pixel counts whatever the image's size (the reference, which
 * augments its crops at the photo's scale); 'scaled', by width / 224 (height / 224 for
 * TranslateY), for images already at the model's size.
 */
export type RandAugmentLengths = 'absolute' | 'scaled';

function lengthScale(lengths: RandAugmentLengths, side: number): number {
  return lengths === 'absolute' ? 1 : side / 224;
}

function checkLengths(fn: string, lengths: unknown): void {
  if (lengths !== 'absolute' && lengths !== 'scaled') throw new TypeError(`${fn}: 'lengths' must be 'absolute' or 'scaled', got ${JSON.stringify(lengths)}`);
}

export const RANDAUGMENT_OPS = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'Color', 'Contrast',
  'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Cutout', 'SolarizeAdd',
] as const;
export type RandAugmentOp = (typeof RANDAUGMENT_OPS)[number];

const FILL = 128;
const f32 = Math.fround;
/** float32 -> uint8 as TF's clip_by_value(0, 255) then cast: truncation. */
const toByte = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : v | 0);

function lookup(img: RgbBytes, lut: Uint8Array): RgbBytes {
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = lut[src[i]];
  return { ...img, data: out };
}

/** One 256-entry table per channel, back to back in `luts`. */
function lookupPerChannel(img: RgbBytes, luts: Uint8Array): RgbBytes {
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let p = 0; p < src.length; p += 3) {
    out[p] = luts[src[p]];
    out[p + 1] = luts[256 + src[p + 1]];
    out[p + 2] = luts[512 + src[p + 2]];
  }
  return { ...img, data: out };
}

/** autoaugment.blend(degenerate, image, f) for one value: degenerate + f * (image - degenerate) in float32. */
const blendValue = (d: number, v: number, f: number) => toByte(f32(d + f32(f * (v - d))));

/** Blend with a per-pixel degenerate image (Color, Sharpness). */
function blend(img: RgbBytes, degenerate: Uint8Array, factor: number): RgbBytes {
  const f = f32(factor);
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = blendValue(degenerate[i], src[i], f);
  return { ...img, data: out };
}

/** Blend with a constant degenerate image (Brightness, Contrast): one lookup table. */
function blendConstant(img: RgbBytes, degenerate: number, factor: number): RgbBytes {
  const f = f32(factor);
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = blendValue(degenerate, v, f);
  return lookup(img, lut);
}

// tf.image.rgb_to_grayscale on uint8: each channel to float32 (x * (1/255)), weighted by
// (0.2989, 0.5870, 0.1140), summed in channel order, scaled by 255.5 and truncated.
// The per-channel terms are exact float32 values, tabulated once.
const GREY_TERMS = [0.2989, 0.587, 0.114].map((w) => {
  const t = new Float32Array(256);
  for (let v = 0; v < 256; v++) t[v] = f32(f32(v * f32(1 / 255)) * f32(w));
  return t;
});

function grey(img: RgbBytes): Uint8Array {
  const [r, g, b] = GREY_TERMS;
  const src = img.data;
  const out = new Uint8Array(src.length);
  for (let p = 0; p < src.length; p += 3) {
    const v = toByte(f32(f32(f32(r[src[p]] + g[src[p + 1]]) + b[src[p + 2]]) * 255.5));
    out[p] = out[p + 1] = out[p + 2] = v;
  }
  return out;
}

// The reference's sharpness kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 in float32, as
// tabulated float32 products of each byte value with the two distinct taps.
const SMOOTH_EDGE = new Float32Array(256).map((_, v) => f32(v * f32(1 / 13)));
const SMOOTH_CENTRE = new Float32Array(256).map((_, v) => f32(v * f32(5 / 13)));

/** The sharpness op's degenerate image: the 3x3 smoothing (taps summed row by row in float32, truncated); the border keeps the original. */
function smooth(img: RgbBytes): Uint8Array {
  const { width: W, height: H, data } = img;
  const out = new Uint8Array(data);
  const row = W * 3;
  for (let y = 1; y < H - 1; y++)
    for (let i = y * row + 3; i < (y + 1) * row - 3; i++) {
      let s = SMOOTH_EDGE[data[i - row - 3]];
      s = f32(s + SMOOTH_EDGE[data[i - row]]);
      s = f32(s + SMOOTH_EDGE[data[i - row + 3]]);
      s = f32(s + SMOOTH_EDGE[data[i - 3]]);
      s = f32(s + SMOOTH_CENTRE[data[i]]);
      s = f32(s + SMOOTH_EDGE[data[i + 3]]);
      s = f32(s + SMOOTH_EDGE[data[i + row - 3]]);
      s = f32(s + SMOOTH_EDGE[data[i + row]]);
      s = f32(s + SMOOTH_EDGE[data[i + row + 3]]);
      out[i] = toByte(s);
    }
  return out;
}

/** Round half away from zero (C's std::round; Math.round rounds -0.5 up to 0). */
const roundHalfAway = (v: number) => (v >= 0 ? Math.floor(v + 0.5) : -Math.floor(0.5 - v));

/**
 * tfa.image.transform, NEAREST, constant fill: output (x, y) reads input
 * (round(t0 x + t1 y + t2), round(t3 x + t4 y + t5)), evaluated in float32 as TF's
 * kernel does, and a rounded index outside the image reads the fill.
 */
function warp(img: RgbBytes, t: readonly number[]): RgbBytes {
  const { width: W, height: H, data } = img;
  const [t0, t1, t2, t3, t4, t5] = t.map(f32);
  const colX = new Float32Array(W);
  const colY = new Float32Array(W);
  for (let x = 0; x < W; x++) {
    colX[x] = t0 * x;
    colY[x] = t3 * x;
  }
  const out = new Uint8Array(data.length).fill(FILL);
  for (let y = 0; y < H; y++) {
    const rowX = f32(t1 * y);
    const rowY = f32(t4 * y);
    for (let x = 0, o = y * W * 3; x < W; x++, o += 3) {
      const sx = roundHalfAway(f32(f32(colX[x] + rowX) + t2));
      const sy = roundHalfAway(f32(f32(colY[x] + rowY) + t5));
      if (sx < 0 || sy < 0 || sx >= W || sy >= H) continue;
      const s = (sy * W + sx) * 3;
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
  return { ...img, data: out };
}

/** tfa's angles_to_projective_transforms for `degrees`, in float32 (cos and sin rounded from float64). */
function rotation(degrees: number, W: number, H: number): number[] {
  const rad = f32(f32(degrees) * f32(Math.PI / 180));
  const cos = f32(Math.cos(rad));
  const sin = f32(Math.sin(rad));
  const xOff = f32(f32(W - 1 - f32(f32(cos * (W - 1)) - f32(sin * (H - 1)))) / 2);
  const yOff = f32(f32(H - 1 - f32(f32(sin * (W - 1)) + f32(cos * (H - 1)))) / 2);
  return [cos, -sin, xOff, sin, cos, yOff];
}

function checkImage(fn: string, img: RgbBytes): void {
  if (img === null || typeof img !== 'object') throw new TypeError(`${fn}: 'img' must be { data, width, height }, got ${img}`);
  const { data, width, height } = img;
  if (!(data instanceof Uint8Array)) throw new TypeError(`${fn}: 'img.data' must be a Uint8Array, got ${Object.prototype.toString.call(data)}`);
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1)
    throw new RangeError(`${fn}: 'img.width' and 'img.height' must be positive integers, got ${width} x ${height}`);
  if (data.length !== width * height * 3) throw new RangeError(`${fn}: 'img.data' must hold width * height * 3 = ${width * height * 3} bytes (RGB), got ${data.length}`);
}

/**
 * The largest magnitude taken: 3x the reference's scale, past the paper's 28. Beyond
 * it the ops have nothing left to do (a 90-degree rotation, a shift of 300 px at 224).
 */
export const MAX_MAGNITUDE = 30;

function checkMagnitude(fn: string, magnitude: number): void {
  if (typeof magnitude !== 'number' || !(magnitude >= 0 && magnitude <= MAX_MAGNITUDE))
    throw new RangeError(`${fn}: 'magnitude' must be in [0, ${MAX_MAGNITUDE}] (10 is the top of the reference's scale; above, the ops extrapolate), got ${magnitude}`);
}

/**
 * The reference's cutout: a grey square of side 2 * pad, pad = int(magnitude / 10 * 40)
 * pixels (times width / 224 for lengths 'scaled'), centred on row `centreY`, column
 * `centreX` and clipped to the image.
 */
export function cutout(img: RgbBytes, magnitude: number, centreY: number, centreX: number, lengths: RandAugmentLengths = 'scaled'): RgbBytes {
  checkImage('cutout', img);
  checkMagnitude('cutout', magnitude);
  checkLengths('cutout', lengths);
  const { width: W, height: H } = img;
  if (!Number.isInteger(centreY) || centreY < 0 || centreY >= H) throw new RangeError(`cutout: 'centreY' must be an integer in [0, ${H}), got ${centreY}`);
  if (!Number.isInteger(centreX) || centreX < 0 || centreX >= W) throw new RangeError(`cutout: 'centreX' must be an integer in [0, ${W}), got ${centreX}`);
  const pad = Math.floor((magnitude / 10) * 40 * lengthScale(lengths, W));
  const data = new Uint8Array(img.data);
  const x0 = Math.max(0, centreX - pad);
  const x1 = Math.min(W, centreX + pad);
  for (let y = Math.max(0, centreY - pad); y < Math.min(H, centreY + pad); y++) data.fill(FILL, (y * W + x0) * 3, (y * W + x1) * 3);
  return { ...img, data };
}

/**
 * One operation at `magnitude` (0..30, the reference's scale 0..10 extrapolated) on a new image. `sign` (+1 or -1) is the
 * reference's random negation of the geometric ops' argument: Rotate by
 * sign * magnitude * 3 degrees (tfa.image.rotate's sense), ShearX/Y by
 * sign * magnitude * 0.03, TranslateX/Y by sign * magnitude * 10 px (times width or
 * height / 224 for lengths 'scaled'), output (x, y) reading input (x + shift, y) for
 * TranslateX. Cutout needs its centre (`centre`); randAugment draws one.
 */
export function applyOp(
  img: RgbBytes,
  op: RandAugmentOp,
  magnitude: number,
  sign: 1 | -1 = 1,
  centre?: { y: number; x: number },
  lengths: RandAugmentLengths = 'scaled',
): RgbBytes {
  checkImage('applyOp', img);
  checkLengths('applyOp', lengths);
  if (!(RANDAUGMENT_OPS as readonly string[]).includes(op)) throw new RangeError(`applyOp: 'op' must be one of ${RANDAUGMENT_OPS.join(', ')}, got ${op}`);
  checkMagnitude('applyOp', magnitude);
  if (sign !== 1 && sign !== -1) throw new RangeError(`applyOp: 'sign' must be 1 or -1, got ${sign}`);
  const m = magnitude / 10;
  const enhance = m * 1.8 + 0.1;
  const { width: W, height: H, data } = img;
  switch (op) {
    case 'AutoContrast': {
      // Per channel: x * (255 / (hi - lo)) - lo * scale in float32, truncated.
      const lo = [255, 255, 255];
      const hi = [0, 0, 0];
      for (let p = 0; p < data.length; p += 3)
        for (let c = 0; c < 3; c++) {
          const v = data[p + c];
          if (v < lo[c]) lo[c] = v;
          if (v > hi[c]) hi[c] = v;
        }
      const luts = new Uint8Array(768);
      for (let c = 0; c < 3; c++) {
        const scale = f32(255 / (hi[c] - lo[c]));
        const offset = f32(-lo[c] * scale);
        for (let v = 0; v < 256; v++) luts[c * 256 + v] = hi[c] > lo[c] ? toByte(f32(f32(v * scale) + offset)) : v;
      }
      return lookupPerChannel(img, luts);
    }
    case 'Equalize': {
      // Per channel, PIL's ImageOps.equalize (the reference's is the same): a lookup
      // table from the cumulative histogram, step = (count - last bin's count) // 255.
      const hist = new Int32Array(768);
      for (let p = 0; p < data.length; p += 3) {
        hist[data[p]]++;
        hist[256 + data[p + 1]]++;
        hist[512 + data[p + 2]]++;
      }
      const luts = new Uint8Array(768);
      for (let c = 0; c < 3; c++) {
        const h = hist.subarray(c * 256, c * 256 + 256);
        let last = 255;
        while (h[last] === 0) last--;
        const step = Math.floor((W * H - h[last]) / 255);
        let acc = Math.floor(step / 2);
        for (let v = 0; v < 256; v++) {
          luts[c * 256 + v] = step === 0 ? v : Math.min(255, Math.floor(acc / step));
          acc += h[v];
        }
      }
      return lookupPerChannel(img, luts);
    }
    case 'Invert': {
      const lut = new Uint8Array(256);
      for (let v = 0; v < 256; v++) lut[v] = 255 - v;
      return lookup(img, lut);
    }
    case 'Posterize': {
      // The reference's shift is 8 - bits as a uint8, which TF clamps to 7: 0 bits
      // (magnitude < 2.5) keeps 1; 8 bits (magnitude 20 to 22.4) keeps all; past 8 the
      // negative shift wraps to 256 - n, clamped to 7 again: 1 bit.
      const shift = Math.min(7, (8 - Math.floor(m * 4)) & 0xff);
      const mask = (0xff << shift) & 0xff;
      const lut = new Uint8Array(256);
      for (let v = 0; v < 256; v++) lut[v] = v & mask;
      return lookup(img, lut);
    }
    case 'Solarize': {
      const threshold = Math.floor(m * 256);
      const lut = new Uint8Array(256);
      for (let v = 0; v < 256; v++) lut[v] = v < threshold ? v : 255 - v;
      return lookup(img, lut);
    }
    case 'SolarizeAdd': {
      const add = Math.floor(m * 110);
      const lut = new Uint8Array(256);
      for (let v = 0; v < 256; v++) lut[v] = v < 128 ? Math.min(255, v + add) : v;
      return lookup(img, lut);
    }
    case 'Color':
      return blend(img, grey(img), enhance);
    case 'Contrast':
      // The reference's degenerate level is its grey histogram's sum / 256, i.e. the
      // pixel count / 256 (196 at 224 x 224), not PIL's mean grey level: kept as it trained.
      return blendConstant(img, toByte(f32(f32(W * H) / 256)), enhance);
    case 'Brightness':
      return blendConstant(img, 0, enhance);
    case 'Sharpness':
      return blend(img, smooth(img), enhance);
    case 'Rotate':
      return warp(img, rotation(sign * m * 30, W, H));
    case 'ShearX':
      return warp(img, [1, sign * m * 0.3, 0, 0, 1, 0]);
    case 'ShearY':
      return warp(img, [1, 0, 0, sign * m * 0.3, 1, 0]);
    case 'TranslateX':
      // The reference's translate_const of 100 px.
      return warp(img, [1, 0, sign * m * 100 * lengthScale(lengths, W), 0, 1, 0]);
    case 'TranslateY':
      return warp(img, [1, 0, 0, 0, 1, sign * m * 100 * lengthScale(lengths, H)]);
    case 'Cutout':
      if (!centre) throw new RangeError("applyOp: 'Cutout' needs 'centre' ({ y, x }); randAugment draws one");
      return cutout(img, magnitude, centre.y, centre.x, lengths);
  }
}

/** numLayers random operations at `magnitude` (0..30), drawn from rng. */
export function randAugment(img: RgbBytes, rng: Rng, numLayers: number, magnitude: number, lengths: RandAugmentLengths = 'scaled'): RgbBytes {
  checkImage('randAugment', img);
  checkLengths('randAugment', lengths);
  if (!Number.isInteger(numLayers) || numLayers < 0) throw new RangeError(`randAugment: 'numLayers' must be an integer >= 0, got ${numLayers}`);
  checkMagnitude('randAugment', magnitude);
  let out = img;
  for (let l = 0; l < numLayers; l++) {
    const op = RANDAUGMENT_OPS[Math.floor(rng.next() * RANDAUGMENT_OPS.length)];
    const sign: 1 | -1 = rng.next() < 0.5 ? -1 : 1;
    if (op === 'Cutout') {
      const y = Math.floor(rng.next() * out.height);
      const x = Math.floor(rng.next() * out.width);
      out = cutout(out, magnitude, y, x, lengths);
    } else out = applyOp(out, op, magnitude, sign, undefined, lengths);
  }
  return out;
}
