// HF's PerceiverImageProcessor on 8-bit RGB arrays: centre crop of size/crop_size of the
// shorter side at HF's offsets, PIL's BICUBIC resize (fixed point, uint8 after each
// pass), rescale and ImageNet normalisation in float32, channels first. The resize is
// checked against an independent float64 evaluation of the same filter.
import test from 'ava';
import {
  IMAGENET_DEFAULT_MEAN,
  IMAGENET_DEFAULT_STD,
  centerCrop,
  cropAndResize,
  imageProcessorOptions,
  preprocessImage,
  resizeBicubic,
  toPixelValues,
  type RgbImage,
} from '../models/image-processor.js';
import { assertUnknownOptions } from './helpers/options.js';

/** A deterministic busy image: smooth waves plus a hard edge, so both filter lobes matter. */
function pattern(height: number, width: number, seed = 1): RgbImage {
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) {
        const v = 128 + 90 * Math.sin((x * (c + seed)) / 7 + y / 5) + (x > width / 2 ? 30 : -30);
        data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
  return { data, height, width };
}

/** PIL's antialiased bicubic (a = -0.5) as a plain float64 2-D sum over the separable kernel, no fixed point, no intermediate rounding. */
function referenceResize(img: RgbImage, outH: number, outW: number): Float64Array {
  const cubic = (x: number): number => {
    const a = -0.5;
    x = Math.abs(x);
    return x < 1 ? ((a + 2) * x - (a + 3)) * x * x + 1 : x < 2 ? (((x - 5) * x + 8) * x - 4) * a : 0;
  };
  const axis = (inSize: number, outSize: number): { start: number; w: number[] }[] => {
    const scale = inSize / outSize;
    const fs = Math.max(1, scale);
    return Array.from({ length: outSize }, (_, o) => {
      const center = (o + 0.5) * scale;
      const lo = Math.max(0, Math.trunc(center - 2 * fs + 0.5));
      const hi = Math.min(inSize, Math.trunc(center + 2 * fs + 0.5));
      const w: number[] = [];
      for (let i = lo; i < hi; i++) w.push(cubic((i - center + 0.5) / fs));
      const s = w.reduce((a, b) => a + b, 0);
      return { start: lo, w: w.map((v) => v / s) };
    });
  };
  const ys = axis(img.height, outH);
  const xs = axis(img.width, outW);
  const out = new Float64Array(outH * outW * 3);
  for (let oy = 0; oy < outH; oy++)
    for (let ox = 0; ox < outW; ox++)
      for (let c = 0; c < 3; c++) {
        let s = 0;
        ys[oy].w.forEach((wy, i) => xs[ox].w.forEach((wx, j) => (s += wy * wx * img.data[((ys[oy].start + i) * img.width + xs[ox].start + j) * 3 + c])));
        out[(oy * outW + ox) * 3 + c] = s;
      }
  return out;
}

test('resizeBicubic agrees with a float64 evaluation of the filter within the two uint8 roundings', (t) => {
  for (const [h, w, oh, ow] of [
    [37, 53, 16, 20], // shrinking: the kernel widens (antialiasing)
    [9, 11, 24, 30], // enlarging
    [40, 30, 40, 12], // one axis only
    [256, 300, 224, 224],
  ]) {
    const img = pattern(h, w);
    const got = resizeBicubic(img, oh, ow);
    t.is(got.height, oh);
    t.is(got.width, ow);
    const want = referenceResize(img, oh, ow);
    let maxDiff = 0;
    let exact = 0;
    for (let i = 0; i < want.length; i++) {
      const ref = Math.max(0, Math.min(255, want[i]));
      maxDiff = Math.max(maxDiff, Math.abs(got.data[i] - ref));
      if (got.data[i] === Math.round(ref)) exact++;
    }
    // One rounding to uint8 after each pass, each <= 0.5, the second pass's weights sum
    // |w| <= 1.3 for the bicubic kernel: at most ~1.2 levels apart.
    t.true(maxDiff <= 1.25, `${h}x${w} -> ${oh}x${ow}: max |diff| ${maxDiff}`);
    // The intermediate rounding shifts some outputs by one level (most when enlarging).
    t.true(exact / want.length > 0.7, `${h}x${w} -> ${oh}x${ow}: ${exact} of ${want.length} equal the rounded reference`);
  }
});

test('resizeBicubic refuses results its passes could not hold (over 2^28 pixels), with its own error', (t) => {
  const img = { data: new Uint8Array(4 * 4 * 3), height: 4, width: 4 };
  t.throws(() => resizeBicubic(img, 2 ** 20, 2 ** 20), { instanceOf: RangeError, message: /^resizeBicubic: a 1048576x1048576 result from a 4x4 image is over 2\^28 pixels a pass/ });
  t.is(resizeBicubic(img, 64, 64).data.length, 64 * 64 * 3);
});

test('resizeBicubic keeps constant images constant and is the identity at the same size', (t) => {
  const flat: RgbImage = { data: new Uint8Array(31 * 17 * 3).fill(200), height: 31, width: 17 };
  t.true(resizeBicubic(flat, 8, 5).data.every((v) => v === 200));
  t.true(resizeBicubic(flat, 64, 40).data.every((v) => v === 200));
  const img = pattern(12, 9);
  const same = resizeBicubic(img, 12, 9);
  t.deepEqual(same.data, img.data);
  t.not(same.data, img.data, 'a copy, not the input');
});

test('centerCrop takes HF offsets floor((H - h) / 2) and pads with zeros when the crop is larger', (t) => {
  const img = pattern(7, 10);
  const c = centerCrop(img, 4, 5);
  for (let y = 0; y < 4; y++)
    for (let x = 0; x < 5; x++)
      for (let ch = 0; ch < 3; ch++) t.is(c.data[(y * 5 + x) * 3 + ch], img.data[((y + 1) * 10 + x + 2) * 3 + ch]);
  const p = centerCrop(img, 9, 10);
  // ceil((9 - 7) / 2) = 1 row of zeros above, 1 below.
  t.true(p.data.subarray(0, 30).every((v) => v === 0));
  t.deepEqual(p.data.subarray(30, 30 + 7 * 30), img.data);
  t.true(p.data.subarray(8 * 30).every((v) => v === 0));
});

test('the default options are HF PerceiverImageProcessor: crop 224/256 of the shorter side, 224x224, 1/255, ImageNet mean and std', (t) => {
  const o = imageProcessorOptions({ image_size: 224 });
  t.deepEqual(o, {
    doCenterCrop: true,
    cropSize: [256, 256],
    doResize: true,
    size: [224, 224],
    doRescale: true,
    rescaleFactor: 1 / 255,
    doNormalize: true,
    mean: [...IMAGENET_DEFAULT_MEAN],
    std: [...IMAGENET_DEFAULT_STD],
  });
  t.deepEqual(imageProcessorOptions({ image_size: 56 }).cropSize, [64, 64], 'a smaller model keeps the 224/256 ratio');
  const p = imageProcessorOptions({ image_size: 224 }, { crop_size: { height: 240, width: 240 }, size: { height: 200, width: 200 }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] });
  t.deepEqual([p.cropSize, p.size, p.mean, p.std], [[240, 240], [200, 200], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], 'preprocessor_config.json fields win');
  t.throws(() => imageProcessorOptions({}, { resample: 2 }), { message: /resample 2 is not supported \(only 3, PIL's BICUBIC\)/ });
  t.throws(() => imageProcessorOptions({}, { size: { shortest_edge: 224 } }), { message: /shortest_edge/ });
  t.throws(() => imageProcessorOptions({}, { image_std: [1, 0, 1] }), { message: /image_std must not be 0/ });
});

test('a model config with image_mean and image_std (the model normalises its own input) turns normalisation off, whatever preprocessor_config.json says', (t) => {
  const model = { image_size: 224, image_mean: [...IMAGENET_DEFAULT_MEAN], image_std: [...IMAGENET_DEFAULT_STD] };
  t.false(imageProcessorOptions(model).doNormalize);
  // The preprocessor_config.json `perceiver train` writes asks HF's processor to normalise, for HF's model.
  const o = imageProcessorOptions(model, { do_normalize: true, image_mean: [...IMAGENET_DEFAULT_MEAN], image_std: [...IMAGENET_DEFAULT_STD] });
  t.false(o.doNormalize);
  t.true(o.doRescale, 'still scaled to [0, 1], as the trainer feeds the model');
  const img = { data: Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i * 5), height: 4, width: 4 };
  t.deepEqual(toPixelValues(img, o), toPixelValues(img, { ...o, doNormalize: false, doRescale: true }));
  t.true(toPixelValues(img, o).every((v) => v >= 0 && v <= 1));
  // Without them (HF's own configs) the processor normalises, as HF's does.
  t.true(imageProcessorOptions({ image_size: 224, image_mean: null, image_std: null }).doNormalize);
  t.false(imageProcessorOptions({}, { do_normalize: false }).doNormalize);
  t.throws(() => imageProcessorOptions(model, { do_normalize: 'yes' }), { message: /do_normalize must be true or false/ });
});

test('preprocessImage: crop int(min(H, W) * 224 / 256) centred, resize, then (v / 255 - mean) / std channels first', (t) => {
  const img = pattern(300, 400);
  const o = imageProcessorOptions({ image_size: 224 });
  const { pixelValues, height, width } = preprocessImage(img, o);
  t.deepEqual([height, width], [224, 224]);
  t.is(pixelValues.length, 3 * 224 * 224);
  // 300 * 224 / 256 = 262.5 -> 262; top (300 - 262) / 2 = 19, left (400 - 262) / 2 = 69.
  const resized = resizeBicubic(centerCrop(img, 262, 262), 224, 224);
  t.deepEqual(cropAndResize(img, o).data, resized.data);
  for (const [y, x] of [[0, 0], [100, 37], [223, 223]])
    for (let c = 0; c < 3; c++) {
      const v = resized.data[(y * 224 + x) * 3 + c];
      const want = (v / 255 - IMAGENET_DEFAULT_MEAN[c]) / IMAGENET_DEFAULT_STD[c];
      t.true(Math.abs(pixelValues[c * 224 * 224 + y * 224 + x] - want) < 1e-6, `[${c}, ${y}, ${x}]`);
    }
  const raw = toPixelValues(img, { ...o, doRescale: false, doNormalize: false });
  t.is(raw[2 * 300 * 400 + 5], img.data[5 * 3 + 2], 'without rescale and normalise the bytes come through as they are');
});

test('bad images and sizes are refused with the argument named', (t) => {
  t.throws(() => resizeBicubic({ data: new Uint8Array(5), height: 1, width: 2 }, 2, 2), { message: /image\.data has 5 bytes, expected 1x2x3 = 6/ });
  t.throws(() => resizeBicubic({ data: new Float32Array(6) as unknown as Uint8Array, height: 1, width: 2 }, 2, 2), { message: /must be a Uint8Array/ });
  t.throws(() => resizeBicubic(pattern(2, 2), 0, 2), { message: /resize size must be positive integers, got 0x2/ });
  t.throws(() => centerCrop(pattern(2, 2), 1.5, 1), { message: /crop size must be positive integers/ });
  t.throws(() => cropAndResize(pattern(1, 1), imageProcessorOptions({ image_size: 4 })), { message: /too small to centre-crop/ });
  // Width x height, as the CLI's other messages give sizes.
  t.throws(() => cropAndResize(pattern(500, 1), imageProcessorOptions({ image_size: 4 })), { message: /a 1x500 image \(width x height\) is too small to centre-crop/ });
});

test('preprocessor_config.json sizes past 8192 pixels a side are refused by name, not left to fail an allocation', (t) => {
  t.throws(() => imageProcessorOptions({}, { size: 100000 }), { message: /^image processor: size must be at most 8192 pixels a side, got 100000$/ });
  t.throws(() => imageProcessorOptions({}, { crop_size: { height: 9000, width: 10 } }), { message: /crop_size must be at most 8192 pixels a side/ });
  t.deepEqual(imageProcessorOptions({}, { size: 8192 }).size, [8192, 8192]);
});

test('the processor checks its options: type, name, expected and what came', (t) => {
  const img: RgbImage = { data: new Uint8Array(4 * 5 * 3).fill(9), height: 4, width: 5 };
  const o = imageProcessorOptions({ image_size: 4 });
  const cases: [() => unknown, RegExp][] = [
    [() => preprocessImage(img, { ...o, rescaleFactor: 'x' as never }), /^preprocessImage: argument 'opts.rescaleFactor' must be a finite number, got 'x'/],
    [() => preprocessImage(img, { ...o, doResize: NaN as never }), /^preprocessImage: argument 'opts.doResize' must be a boolean, got number NaN/],
    [() => preprocessImage(img, undefined as never), /^preprocessImage: argument 'opts' must be an object, got undefined/],
    [() => preprocessImage(img, { ...o, size: null as never }), /argument 'opts.size' must be \[height, width\] \(2 positive integers\), got null/],
    [() => toPixelValues(img, { ...o, mean: [0, 0] as never }), /^toPixelValues: argument 'opts.mean' must be 3 finite numbers \(one per channel\), got array of length 2/],
    [() => cropAndResize(img, { ...o, cropSize: [4, 1.5] }), /^cropAndResize: argument 'opts.cropSize\[1\]' must be an integer >= 1, got number 1.5/],
    [() => imageProcessorOptions(null as never), /^imageProcessorOptions: argument 'modelConfig' must be an object, got null/],
    [() => imageProcessorOptions({}, 'x' as never), /^imageProcessorOptions: argument 'preprocessorConfig' must be an object, got 'x'/],
    [() => centerCrop(null as never, 2, 2), /image must be an RGB image \{data, height, width\}, got null/],
  ];
  for (const [call, message] of cases) t.throws(call, { message }, String(message));
});

test('preprocessImage, cropAndResize and toPixelValues refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  const img = pattern(8, 8);
  const opts = { ...imageProcessorOptions({ image_size: 4 }), doCentreCrop: false } as never;
  await assertUnknownOptions(t, [
    [() => preprocessImage(img, opts), 'preprocessImage', 'opts', 'doCentreCrop'],
    [() => cropAndResize(img, opts), 'cropAndResize', 'opts', 'doCentreCrop'],
    [() => toPixelValues(img, opts), 'toPixelValues', 'opts', 'doCentreCrop'],
  ]);
});
