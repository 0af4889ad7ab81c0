// HF's PerceiverImageProcessor on decoded 8-bit RGB images (typed arrays, no tensors):
//   1. centre crop to a square of side int(min(H, W) * size / crop_size) (224/256 of
//      the shorter side with HF's defaults), offsets floor((H - h) / 2), floor((W - w) / 2);
//   2. resize to size x size with PIL's BICUBIC (a = -0.5, support widened by the scale
//      when shrinking, i.e. antialiased), reproduced bit for bit: PIL's 8-bit path uses
//      22-bit fixed-point weights and rounds to uint8 after the horizontal and again
//      after the vertical pass;
//   3. rescale by 1/255 (float64, then float32) and normalise with ImageNet's mean and
//      std in float32, as numpy does in HF's rescale() and normalize();
//   4. lay out as pixel_values [3, size, size] (channels first).
// So HF crops before it resizes (the "resize shorter side, crop 224" is the
// usual torchvision order; HF's Perceiver processor does it the other way round, and
// this follows HF). A model folder's preprocessor_config.json overrides the defaults.
// A model whose config.json has image_mean and image_std (this port's extension; the
// models `perceiver train` writes) normalises its own input, so step 3 then only
// rescales (imageProcessorOptions).
import { describe } from '../lib/dtype.js';
import { boolArg, intArg, knownKeysArg, numberArg, objectArg, optionKeys } from './args.js';

export interface RgbImage {
  /** Row-major [height, width, 3], 8-bit. */
  data: Uint8Array;
  height: number;
  width: number;
}

export interface ImageProcessorOptions {
  doCenterCrop: boolean;
  /** HF's crop_size: the crop keeps size / cropSize of the shorter side. */
  cropSize: [number, number];
  doResize: boolean;
  /** [height, width] of the output. */
  size: [number, number];
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

export const IMAGENET_DEFAULT_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_DEFAULT_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

const PROCESSOR_OPTIONS = optionKeys<ImageProcessorOptions>({
  doCenterCrop: true, cropSize: true, doResize: true, size: true, doRescale: true, rescaleFactor: true, doNormalize: true, mean: true, std: true,
});

/**
 * The fields of an ImageProcessorOptions that op will read (the crop and resize sizes
 * only when those steps run, and so on), checked once per call.
 */
function processorOptionsArg(op: string, opts: ImageProcessorOptions, forCrop: boolean, forPixels: boolean): void {
  objectArg(op, 'opts', opts, true);
  knownKeysArg(op, 'opts', opts, PROCESSOR_OPTIONS);
  const steps = forCrop ? (['doCenterCrop', 'doResize'] as const) : (['doRescale', 'doNormalize'] as const);
  for (const k of steps) boolArg(op, `opts.${k}`, opts[k]);
  const size2 = (k: 'cropSize' | 'size'): void => {
    const v: unknown = opts[k];
    if (!Array.isArray(v) || v.length !== 2) throw new TypeError(`${op}: argument 'opts.${k}' must be [height, width] (2 positive integers), got ${describe(v)}`);
    v.forEach((d, i) => intArg(op, `opts.${k}[${i}]`, d, 1));
  };
  const num3 = (k: 'mean' | 'std'): void => {
    const v: unknown = opts[k];
    if (!Array.isArray(v) || v.length !== 3) throw new TypeError(`${op}: argument 'opts.${k}' must be 3 finite numbers (one per channel), got ${describe(v)}`);
    v.forEach((d, i) => numberArg(op, `opts.${k}[${i}]`, d));
  };
  if (forCrop && opts.doCenterCrop) {
    size2('cropSize');
    size2('size');
  }
  if (forCrop && opts.doResize) size2('size');
  if (forPixels && opts.doRescale) numberArg(op, 'opts.rescaleFactor', opts.rescaleFactor);
  if (forPixels && opts.doNormalize) {
    num3('mean');
    num3('std');
    if (opts.std.some((s) => s === 0)) throw new RangeError(`${op}: argument 'opts.std' must not contain 0, got [${opts.std.join(', ')}]`);
  }
}

/** A TypeError naming op and name when v is not a number at all (a number's range is checked by the caller). */
function numberType(op: string, name: string, v: unknown): void {
  if (typeof v !== 'number') throw new TypeError(`${op}: argument '${name}' must be a positive integer, got ${describe(v)}`);
}

function fail(msg: string): never {
  throw new RangeError(`image processor: ${msg}`);
}

function checkImage(img: RgbImage, what = 'image'): void {
  if (img === null || typeof img !== 'object' || Array.isArray(img))
    throw new TypeError(`image processor: ${what} must be an RGB image {data, height, width}, got ${describe(img)}`);
  const { data, height, width } = img;
  numberType('image processor', `${what}.height`, height);
  numberType('image processor', `${what}.width`, width);
  if (!Number.isSafeInteger(height) || height < 1 || !Number.isSafeInteger(width) || width < 1)
    fail(`${what} height and width must be positive integers, got ${String(height)}x${String(width)}`);
  if (!(data instanceof Uint8Array)) throw new TypeError(`image processor: ${what}.data must be a Uint8Array (8-bit RGB), got ${describe(data)}`);
  if (data.length !== height * width * 3) fail(`${what}.data has ${data.length} bytes, expected ${height}x${width}x3 = ${height * width * 3}`);
}

const MAX_PROCESSOR_SIDE = 8192;

function hw(name: string, v: unknown, bounded = true): [number, number] {
  const given = v;
  if (typeof v === 'number') v = { height: v, width: v };
  if (Array.isArray(v) && v.length === 2) v = { height: v[0], width: v[1] };
  const o = v as { height?: unknown; width?: unknown; shortest_edge?: unknown };
  if (o && typeof o === 'object' && o.shortest_edge !== undefined) fail(`${name} {shortest_edge} is not what PerceiverImageProcessor takes; give {height, width}`);
  const h = o?.height;
  const w = o?.width;
  if (typeof h !== 'number' || typeof w !== 'number' || !Number.isSafeInteger(h) || !Number.isSafeInteger(w) || h < 1 || w < 1)
    fail(`${name} must be {height, width} of positive integers, got ${JSON.stringify(v)}`);
  // A preprocessor_config.json's sizes: the resized image and its pixel values are
  // allocated whole, so a typo's 100000 would fail as an allocation, not by name.
  if (bounded && (h > MAX_PROCESSOR_SIDE || w > MAX_PROCESSOR_SIDE))
    fail(`${name} must be at most ${MAX_PROCESSOR_SIDE} pixels a side, got ${JSON.stringify(given)}`);
  return [h, w];
}

function triple(name: string, v: unknown): [number, number, number] {
  if (typeof v === 'number') v = [v, v, v];
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) fail(`${name} must be 3 finite numbers, got ${JSON.stringify(v)}`);
  return [v[0], v[1], v[2]];
}

/**
 * The processor's options: HF's PerceiverImageProcessor defaults, with the output size
 * taken from the model config's image_size (crop_size scaled to keep HF's 224/256 ratio,
 * so a 56-pixel model crops 56/64 of the shorter side), and a preprocessor_config.json's
 * fields (crop_size, size, image_mean, image_std, do_*, rescale_factor) over them.
 *
 * When the model config has image_mean and image_std, the model normalises its input
 * itself (PerceiverImageClassifier.forward), so doNormalize is false whatever the
 * preprocessor config says: normalising here too would do it twice. (The
 * preprocessor_config.json that `perceiver train` writes asks for normalisation, for
 * HF's model, which ignores config.image_mean.)
 */
export function imageProcessorOptions(modelConfig: Record<string, unknown> = {}, preprocessorConfig: Record<string, unknown> = {}): ImageProcessorOptions {
  objectArg('imageProcessorOptions', 'modelConfig', modelConfig);
  objectArg('imageProcessorOptions', 'preprocessorConfig', preprocessorConfig);
  const imageSize = modelConfig.image_size ?? 224;
  if (typeof imageSize !== 'number' || !Number.isSafeInteger(imageSize) || imageSize < 1) fail(`config image_size must be a positive integer, got ${JSON.stringify(imageSize)}`);
  const p = preprocessorConfig;
  const bool = (k: string, d: boolean): boolean => {
    if (p[k] === undefined) return d;
    if (typeof p[k] !== 'boolean') fail(`preprocessor_config.json ${k} must be true or false, got ${JSON.stringify(p[k])}`);
    return p[k] as boolean;
  };
  if (p.resample !== undefined && p.resample !== 3) fail(`preprocessor_config.json resample ${JSON.stringify(p.resample)} is not supported (only 3, PIL's BICUBIC)`);
  const rescaleFactor = p.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor)) fail(`rescale_factor must be a number, got ${JSON.stringify(rescaleFactor)}`);
  const crop = Math.round((imageSize * 256) / 224);
  const std = triple('image_std', p.image_std ?? [...IMAGENET_DEFAULT_STD]);
  if (std.some((s) => s === 0)) fail(`image_std must not be 0, got ${JSON.stringify(std)}`);
  const present = (v: unknown) => v !== undefined && v !== null;
  const modelNormalizes = present(modelConfig.image_mean) && present(modelConfig.image_std);
  return {
    doCenterCrop: bool('do_center_crop', true),
    cropSize: hw('crop_size', p.crop_size ?? crop, p.crop_size !== undefined),
    doResize: bool('do_resize', true),
    size: hw('size', p.size ?? imageSize, p.size !== undefined),
    doRescale: bool('do_rescale', true),
    rescaleFactor,
    doNormalize: bool('do_normalize', true) && !modelNormalizes,
    mean: triple('image_mean', p.image_mean ?? [...IMAGENET_DEFAULT_MEAN]),
    std,
  };
}

/**
 * HF's center_crop to [h, w]: top = floor((H - h) / 2), left = floor((W - w) / 2); where
 * the crop is larger than the image the outside is zeros (HF pads, then crops).
 */
export function centerCrop(img: RgbImage, h: number, w: number): RgbImage {
  checkImage(img);
  numberType('centerCrop', 'h', h);
  numberType('centerCrop', 'w', w);
  if (!Number.isSafeInteger(h) || h < 1 || !Number.isSafeInteger(w) || w < 1) fail(`crop size must be positive integers, got ${String(h)}x${String(w)}`);
  const top = Math.floor((img.height - h) / 2);
  const left = Math.floor((img.width - w) / 2);
  const out = new Uint8Array(h * w * 3);
  const x0 = Math.max(0, -left);
  const x1 = Math.min(w, img.width - left);
  for (let y = 0; y < h; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height || x1 <= x0) continue;
    const src = (sy * img.width + left + x0) * 3;
    out.set(img.data.subarray(src, src + (x1 - x0) * 3), (y * w + x0) * 3);
  }
  return { data: out, height: h, width: w };
}

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function bicubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** PIL's precompute_coeffs for one axis, as 22-bit fixed-point weights: taps start at bounds[2i], count bounds[2i+1]. */
function coefficients(inSize: number, outSize: number): { bounds: Int32Array; weights: Float64Array; ksize: number } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(2 * outSize);
  const weights = new Float64Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    // C's (int) truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const wt = bicubic((x + xmin - center + 0.5) * ss);
      k[x] = wt;
      ww += wt;
    }
    for (let x = 0; x < xmax; x++) {
      const wt = ww !== 0 ? k[x] / ww : k[x];
      // PIL's normalize_coeffs_8bpc: round half away from zero.
      weights[xx * ksize + x] = wt < 0 ? Math.trunc(-0.5 + wt * ONE) : Math.trunc(0.5 + wt * ONE);
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return { bounds, weights, ksize };
}

function clip8(acc: number): number {
  if (acc <= 0) return 0;
  const v = Math.floor(acc / ONE);
  return v > 255 ? 255 : v;
}

/**
 * PIL's Image.resize(size, BICUBIC) of an 8-bit RGB image, bit for bit: horizontal pass,
 * uint8, vertical pass, uint8 (a pass whose size does not change is skipped, as PIL).
 */
export function resizeBicubic(img: RgbImage, outH: number, outW: number): RgbImage {
  checkImage(img);
  numberType('resizeBicubic', 'outH', outH);
  numberType('resizeBicubic', 'outW', outW);
  if (!Number.isSafeInteger(outH) || outH < 1 || !Number.isSafeInteger(outW) || outW < 1) fail(`resize size must be positive integers, got ${String(outH)}x${String(outW)}`);
  // The passes hold [H, outW] and [outH, outW] RGB bytes in JS typed arrays.
  if (outH * outW > 2 ** 28 || img.height * outW > 2 ** 28)
    throw new RangeError(`resizeBicubic: a ${outH}x${outW} result from a ${img.height}x${img.width} image is over 2^28 pixels a pass`);
  let { data, height: H, width: W } = img;
  if (outW !== W) {
    const { bounds, weights, ksize } = coefficients(W, outW);
    const out = new Uint8Array(H * outW * 3);
    for (let y = 0; y < H; y++) {
      const row = y * W * 3;
      for (let xx = 0; xx < outW; xx++) {
        const x0 = bounds[2 * xx];
        const n = bounds[2 * xx + 1];
        const k = xx * ksize;
        // 2^21: PIL starts each sum at half a unit, so the final shift rounds.
        let r = ONE / 2;
        let g = ONE / 2;
        let b = ONE / 2;
        for (let x = 0; x < n; x++) {
          const wt = weights[k + x];
          const p = row + (x0 + x) * 3;
          r += data[p] * wt;
          g += data[p + 1] * wt;
          b += data[p + 2] * wt;
        }
        const o = (y * outW + xx) * 3;
        out[o] = clip8(r);
        out[o + 1] = clip8(g);
        out[o + 2] = clip8(b);
      }
    }
    data = out;
    W = outW;
  }
  if (outH !== H) {
    const { bounds, weights, ksize } = coefficients(H, outH);
    const out = new Uint8Array(outH * W * 3);
    const rowLen = W * 3;
    for (let yy = 0; yy < outH; yy++) {
      const y0 = bounds[2 * yy];
      const n = bounds[2 * yy + 1];
      const k = yy * ksize;
      for (let i = 0; i < rowLen; i++) {
        let acc = ONE / 2;
        for (let y = 0; y < n; y++) acc += data[(y0 + y) * rowLen + i] * weights[k + y];
        out[yy * rowLen + i] = clip8(acc);
      }
    }
    data = out;
    H = outH;
  }
  return { data: data === img.data ? data.slice() : data, height: H, width: W };
}

/** The image after the crop and the resize (still 8-bit RGB), as PIL would hand it to numpy. */
export function cropAndResize(img: RgbImage, opts: ImageProcessorOptions): RgbImage {
  checkImage(img);
  processorOptionsArg('cropAndResize', opts, true, false);
  let out = img;
  if (opts.doCenterCrop) {
    const minDim = Math.min(img.height, img.width);
    // HF: int(size / crop_size * min_dim) per axis.
    const ch = Math.trunc((opts.size[0] / opts.cropSize[0]) * minDim);
    const cw = Math.trunc((opts.size[1] / opts.cropSize[1]) * minDim);
    if (ch < 1 || cw < 1) fail(`a ${img.width}x${img.height} image (width x height) is too small to centre-crop`);
    out = centerCrop(out, ch, cw);
  }
  if (opts.doResize) out = resizeBicubic(out, opts.size[0], opts.size[1]);
  return out;
}

/** An 8-bit RGB image [H, W, 3] -> float32 [3, H, W], rescaled and normalised as HF's numpy code (float32 arithmetic). */
export function toPixelValues(img: RgbImage, opts: ImageProcessorOptions): Float32Array {
  checkImage(img);
  processorOptionsArg('toPixelValues', opts, false, true);
  const { data, height, width } = img;
  const plane = height * width;
  const out = new Float32Array(3 * plane);
  const f = Math.fround;
  const scale = opts.doRescale ? opts.rescaleFactor : 1;
  for (let c = 0; c < 3; c++) {
    const mean = f(opts.mean[c]);
    const std = f(opts.std[c]);
    // A lookup per byte value: the arithmetic is the same for every pixel of a channel.
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      const x = f(v * scale);
      lut[v] = opts.doNormalize ? f(f(x - mean) / std) : x;
    }
    for (let p = 0; p < plane; p++) out[c * plane + p] = lut[data[p * 3 + c]];
  }
  return out;
}

/** The whole PerceiverImageProcessor: crop, resize, rescale, normalise -> pixel_values [3, h, w]. */
export function preprocessImage(img: RgbImage, opts: ImageProcessorOptions): { pixelValues: Float32Array; height: number; width: number } {
  checkImage(img);
  processorOptionsArg('preprocessImage', opts, true, true);
  const r = cropAndResize(img, opts);
  return { pixelValues: toPixelValues(r, opts), height: r.height, width: r.width };
}
