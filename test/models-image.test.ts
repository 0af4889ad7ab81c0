// The three HF image classifiers against HuggingFace (test/fixtures/hf/image_*: small
// random HF models, their pixel_values and the logits HF computed in float64): Fourier
// (raw pixels + float32 Fourier features), Learned (1x1 conv + projected trainable
// positions), Conv (conv/BN/ReLU/max-pool with HF's padding). Then the pieces: float32
// linspace, Fourier features, the pixel layout and space-to-depth.
import test from 'ava';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import {
  PerceiverForImageClassificationConvProcessing,
  PerceiverForImageClassificationFourier,
  PerceiverForImageClassificationLearned,
  PerceiverFourierPositionEncoding,
  PerceiverImagePreprocessor,
  PerceiverModel,
  PerceiverTrainablePositionEncoding,
  fourierFeatures,
  linearPositions,
  linspaceF32,
  perceiverConfig,
  spaceToDepth,
} from '../models/index.js';
import { FOURIER_CACHE_BYTES, FOURIER_CACHE_SIZE } from '../models/position-encoding.js';
import { labelOf, topKClasses } from '../models/classification.js';
import { caseConfig, caseDir, caseTensors, loadCaseWeights, outputError } from './helpers/hf-fixture.js';
import { baseline, live } from './helpers/device.js';
import { assertUnknownOptions } from './helpers/options.js';

const CASES = [
  ['image_fourier', PerceiverForImageClassificationFourier, [2, 3, 12, 12]],
  ['image_learned', PerceiverForImageClassificationLearned, [2, 3, 12, 12]],
  ['image_conv', PerceiverForImageClassificationConvProcessing, [2, 3, 32, 32]],
] as const;

for (const [name, Model, pixelShape] of CASES) {
  test.serial(`${name}: ${Model.name} logits match HuggingFace within 1e-4 * max(1, max|expected|), nothing leaks`, async (t) => {
    const before = (await baseline());
    const model = new Model(caseConfig(name));
    await loadCaseWeights(name, model);
    const input = await caseTensors(name, 'input', ['pixel_values']);
    const expected = await caseTensors(name, 'expected', ['logits']);
    t.deepEqual(input.pixel_values.shape, pixelShape);
    const { logits } = model.forward(input.pixel_values);
    t.deepEqual(logits.shape, [2, 10]);
    const { maxDiff, bound, summary } = outputError(await logits.data(), await expected.logits.data());
    t.log(summary);
    t.true(maxDiff <= bound, summary);
    for (const x of [logits, input.pixel_values, expected.logits]) x.dispose();
    model.dispose();
    t.is(live().tensors, before.tensors, 'live tensors (caches included)');
    t.is(live().bytes, before.bytes, 'live bytes');
  });

  test(`${name}: the state dict names and shapes are exactly those of the HF checkpoint`, async (t) => {
    const model = new Model(caseConfig(name));
    const header = await P.readSafetensorsHeader(join(caseDir(name), 'model.safetensors'));
    const ours = model.stateDict();
    t.deepEqual(Object.keys(ours).sort(), [...header.entries.keys()].sort());
    for (const [k, e] of header.entries) t.deepEqual([...ours[k].shape], e.shape, k);
    model.dispose();
  });
}

const TABLE = 'perceiver.input_preprocessor.position_embeddings.position_embeddings';

test.serial('interpolatePosEncoding: the learned-position classifier on 16x16 images equals a 16x16 model whose table is the 12x12 one resized by bicubic interpolation', async (t) => {
  const before = await baseline();
  const small = new PerceiverForImageClassificationLearned(caseConfig('image_learned'));
  await loadCaseWeights('image_learned', small);
  const big = new PerceiverForImageClassificationLearned({ ...caseConfig('image_learned'), image_size: 16 });
  const sd = small.stateDict();
  const table = sd[TABLE];
  const C = table.shape[1];
  t.deepEqual(table.shape, [144, C]);
  // The reference resizes through interpolate() on [1, C, 12, 12], the layout torch's
  // interpolate takes (checked against torch in nn-interpolate.test); the model resizes
  // its channels-last table with its own products.
  const resized = P.tidy(() => {
    const nchw = P.permute(P.reshape(table, [1, 12, 12, C]), [0, 3, 1, 2]);
    const up = P.interpolate(nchw, [16, 16], { mode: 'bicubic' });
    return P.contiguous(P.reshape(P.contiguous(P.permute(up, [0, 2, 3, 1])), [256, C]));
  });
  big.loadStateDict({ ...sd, [TABLE]: resized });
  const pixels = P.randn([2, 3, 16, 16], { seed: 5 });
  const got = small.forward(pixels, { interpolatePosEncoding: true }).logits;
  const want = big.forward(pixels).logits;
  t.deepEqual(got.shape, [2, 10]);
  const { maxDiff, bound, summary } = outputError(await got.data(), await want.data());
  t.true(maxDiff <= bound / 10, summary);
  // The table at its own size is used as it is: the flag changes nothing on 12x12 images.
  const pixels12 = P.randn([2, 3, 12, 12], { seed: 6 });
  const same = [small.forward(pixels12, { interpolatePosEncoding: true }).logits, small.forward(pixels12).logits];
  t.deepEqual(await same[0].data(), await same[1].data());
  // Without the flag another size is refused, and the message says what to pass.
  t.throws(() => small.forward(pixels), { message: /inputs have 256 positions \(\[16, 16\]\) but the table has 144 as a \[12, 12\] grid \(interpolatePosEncoding: true resizes/ });
  // As many pixels in another shape: the rows would be taken by flat index (a 9x16
  // image's second row reading the table's first row's end), so refused as well.
  const wide = P.randn([2, 3, 9, 16], { seed: 7 });
  t.throws(() => small.forward(wide), { message: /inputs have 144 positions \(\[9, 16\]\) but the table has 144 as a \[12, 12\] grid/ });
  wide.dispose();
  t.throws(() => small.forward(pixels, { interpolatePosEncoding: 1 as never }), { message: /option 'interpolatePosEncoding' must be a boolean, got number/ });
  t.throws(() => small.forward(pixels, null as never), { message: /argument 'opts' must be an object/ });
  for (const x of [got, want, pixels, pixels12, resized, ...same, ...Object.values(sd)]) x.dispose();
  small.dispose();
  big.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
});

test.serial('interpolatePosEncoding: the gradient reaches the trainable table through the resize; non-square tables are refused', async (t) => {
  const model = new PerceiverForImageClassificationLearned(caseConfig('image_learned'));
  const pos = (model.perceiver.inputPreprocessor as PerceiverImagePreprocessor).positionEmbeddings as PerceiverTrainablePositionEncoding;
  const table = pos.positionEmbeddings;
  table.requiresGrad = true;
  const loss = P.tidy(() => model.forward(P.randn([1, 3, 9, 20], { seed: 7 }), { interpolatePosEncoding: true }).logits.sum(1).sum(0));
  loss.backward();
  t.truthy(table.grad);
  t.deepEqual(table.grad!.shape, table.shape);
  const g = await table.grad!.data();
  t.true(g.some((v) => v !== 0), 'every grid point feeds some output pixel');
  t.is(pos.interpolatePosEncoding(12, 12), table);
  // A grid that is not square: rows resize to the height, columns to the width.
  const C = table.shape[1];
  const wide = pos.forward(2, [14, 18], { interpolatePosEncoding: true });
  t.deepEqual(wide.shape, [2, 14 * 18, C]);
  const ref = P.tidy(() => {
    const nchw = P.permute(P.reshape(table, [1, 12, 12, C]), [0, 3, 1, 2]);
    return P.contiguous(P.permute(P.interpolate(nchw, [14, 18], { mode: 'bicubic' }), [0, 2, 3, 1]));
  });
  const { maxDiff, bound, summary } = outputError(await P.contiguous(wide).data(), [...(await ref.data()), ...(await ref.data())]);
  t.true(maxDiff <= bound / 10, summary);
  wide.dispose();
  ref.dispose();
  t.deepEqual(pos.interpolatePosEncoding(3, 5).shape, [15, table.shape[1]]);
  t.throws(() => pos.interpolatePosEncoding(0, 5), { message: /argument 'height' must be a positive integer, got 0/ });
  t.throws(() => pos.forward(1, [2, 3, 4], { interpolatePosEncoding: true }), { message: /index dims are \[2, 3, 4\]/ });
  const line = new PerceiverTrainablePositionEncoding(10, 4);
  t.throws(() => line.interpolatePosEncoding(3, 3), { message: /10 positions are not a square grid/ });
  line.dispose();
  loss.dispose();
  model.dispose();
});

test('interpolatePosEncoding is ignored by Fourier position encodings, which are computed for any size', async (t) => {
  const model = new PerceiverForImageClassificationFourier(caseConfig('image_fourier'));
  const pixels = P.randn([1, 3, 10, 14], { seed: 8 });
  const both = [model.forward(pixels, { interpolatePosEncoding: true }).logits, model.forward(pixels).logits];
  t.deepEqual(await both[0].data(), await both[1].data());
  for (const x of [pixels, ...both]) x.dispose();
  model.dispose();
});

const config = caseConfig('image_fourier');

test('linspaceF32 hits both endpoints and stays within an ulp (of the larger endpoint) of the exact values', (t) => {
  for (const [a, b, n] of [[-1, 1, 12], [-1, 1, 224], [1, 112, 64], [1, 28, 64], [-1, 1, 2], [-1, 1, 37]] as const) {
    const v = linspaceF32(a, b, n);
    t.is(v[0], Math.fround(a));
    t.is(v[n - 1], Math.fround(b));
    for (let i = 0; i < n; i++) {
      const exact = a + ((b - a) * i) / (n - 1);
      // start + i*step cancels near zero, so the error scales with the endpoints, not the value.
      const ulp = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(a), Math.abs(b)))) - 23);
      t.true(Math.abs(v[i] - exact) <= ulp, `linspace(${a}, ${b}, ${n})[${i}] = ${v[i]}, exact ${exact}`);
    }
  }
  t.deepEqual(Array.from(linspaceF32(3, 3, 1)), [3]);
});

test('Fourier features: [pos, sin(pi f), cos(pi f)] axis-major, 258 channels at 64 bands in 2-D', (t) => {
  const dims = [5, 7];
  const pos = linearPositions(dims);
  t.is(pos.length, 35 * 2);
  t.deepEqual([pos[0], pos[1]], [-1, -1]);
  t.is(pos[2 * 8], -0.5, 'row-major: index 8 is (1, 1)');
  t.true(Math.abs(pos[2 * 8 + 1] - -2 / 3) < 1e-7);
  const { data, channels } = fourierFeatures(pos, { numBands: 64, maxResolution: [224, 224] });
  t.is(channels, 258);
  for (const i of [0, 8, 34])
    for (let a = 0; a < 2; a++)
      for (const b of [0, 1, 31, 63]) {
        const p = pos[i * 2 + a];
        const f = 1 + (111 * b) / 63;
        const row = i * 258;
        t.is(data[row + a], p);
        t.true(Math.abs(data[row + 2 + a * 64 + b] - Math.sin(Math.PI * p * f)) < 1e-4, `sin ${i} ${a} ${b}`);
        t.true(Math.abs(data[row + 130 + a * 64 + b] - Math.cos(Math.PI * p * f)) < 1e-4, `cos ${i} ${a} ${b}`);
      }
  const sine = fourierFeatures(pos, { numBands: 4, maxResolution: [8, 8], concatPos: false, sineOnly: true });
  t.is(sine.channels, 8);
});

test('fourierFeatures: every value is the per-element formula bit for bit (sin/cos of fround(pi * fround(p * band))), on grids, -0 and scattered positions, with and without cos and positions', (t) => {
  const f = Math.fround;
  const reference = (pos: Float32Array, numBands: number, maxResolution: number[], concatPos: boolean, sineOnly: boolean) => {
    const k = maxResolution.length;
    const bands = maxResolution.map((r) => linspaceF32(1, r / 2, numBands));
    const channels = (concatPos ? k : 0) + k * numBands * (sineOnly ? 1 : 2);
    const out = new Float32Array((pos.length / k) * channels);
    for (let i = 0; i < pos.length / k; i++) {
      let c = i * channels;
      if (concatPos) for (let a = 0; a < k; a++) out[c++] = pos[i * k + a];
      for (let a = 0; a < k; a++)
        for (let b = 0; b < numBands; b++) {
          const arg = f(f(Math.PI) * f(pos[i * k + a] * bands[a][b]));
          out[c + a * numBands + b] = Math.sin(arg);
          if (!sineOnly) out[c + k * numBands + a * numBands + b] = Math.cos(arg);
        }
    }
    return out;
  };
  const scattered = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i * 12.9898) * 1.5);
  scattered[3] = -0;
  scattered[5] = 0;
  for (const [pos, res] of [
    [linearPositions([9, 13]), [224, 224]],
    [linearPositions([2, 3, 5]), [16, 32, 8]],
    [scattered, [50, 60, 70]],
  ] as [Float32Array, number[]][])
    for (const concatPos of [true, false])
      for (const sineOnly of [false, true]) {
        const got = fourierFeatures(pos, { numBands: 7, maxResolution: res, concatPos, sineOnly }).data;
        const want = reference(pos, 7, res, concatPos, sineOnly);
        t.deepEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `[${res}] concatPos ${concatPos} sineOnly ${sineOnly}`);
      }
});

test('the pixel preprocessor turns [B, C, H, W] into [B, H*W, C + pos] with pixels first, channels-last', async (t) => {
  const c = perceiverConfig(config);
  const pre = new PerceiverImagePreprocessor(c, {
    prepType: 'pixels',
    spatialDownsample: 1,
    fourier: { numBands: 2, maxResolution: [4, 4] },
  });
  t.is(pre.numChannels, 3 + 2 + 2 * 2 * 2);
  const px = Float32Array.from({ length: 2 * 3 * 2 * 3 }, (_, i) => i);
  const x = P.tensor(px, [2, 3, 2, 3]);
  const { inputs, inputsWithoutPos } = pre.forward(x);
  t.deepEqual(inputs.shape, [2, 6, 13]);
  const d = await inputs.data();
  // batch 1, pixel (h=1, w=2), channel 2 -> flat index ((1*3 + 2) * 2 + 1) * 3 + 2 in NCHW
  const nchw = (b: number, ch: number, h: number, w: number) => ((b * 3 + ch) * 2 + h) * 3 + w;
  t.is(d[(1 * 6 + (1 * 3 + 2)) * 13 + 2], nchw(1, 2, 1, 2));
  t.deepEqual([d[(1 * 6 + 5) * 13 + 3], d[(1 * 6 + 5) * 13 + 4]], [1, 1], 'then the positions of (1, 2) in [-1, 1]');
  const strided = new PerceiverImagePreprocessor(c, { prepType: 'pixels', spatialDownsample: 2, fourier: { numBands: 2, maxResolution: [4, 4] } });
  const s = strided.forward(x);
  const sWithout = s.inputsWithoutPos as P.Tensor;
  t.deepEqual(s.inputs.shape, [2, 2, 13], 'stride 2 keeps pixels (0, 0) and (0, 2)');
  t.is((await sWithout.data())[3], nchw(0, 0, 0, 2));
  t.throws(() => new PerceiverImagePreprocessor(c, { prepType: 'conv', spatialDownsample: 2 }), { message: /power of 4/ });
  const fourChannels = P.zeros([1, 4, 2, 2]);
  t.throws(() => pre.forward(fourChannels), { message: /must be \[B, 3, H, W\]/ });
  fourChannels.dispose();
  for (const v of [x, inputs, inputsWithoutPos as P.Tensor, s.inputs, sWithout]) v.dispose();
  pre.dispose();
  strided.dispose();
});

test('spaceToDepth moves (time, height, width) blocks into channels ordered (dt, dh, dw, c), channels-last', async (t) => {
  const [B, T, C, H, W] = [1, 2, 3, 4, 2];
  const x = P.tensor(Float32Array.from({ length: B * T * C * H * W }, (_, i) => i), [B, T, C, H, W]);
  const y = spaceToDepth(x, 2, 2);
  t.deepEqual(y.shape, [1, 1, 2, 1, 2 * 2 * 2 * 3]);
  const d = await y.data();
  const at = (tt: number, c: number, h: number, w: number) => (((tt * C + c) * H + h) * W + w);
  // output (h'=1, w'=0), channel (dt=1, dh=0, dw=1, c=2) = input (t=1, c=2, h=2, w=1)
  t.is(d[1 * 24 + ((1 * 2 + 0) * 2 + 1) * 3 + 2], at(1, 2, 2, 1));
  const img = P.tensor(Float32Array.from({ length: 2 * 4 * 4 }, (_, i) => i), [1, 2, 4, 4]);
  const z = spaceToDepth(img, 1, 2);
  t.deepEqual(z.shape, [1, 2, 2, 8]);
  t.is((await z.data())[((0 * 2 + 1) * 8) + (1 * 2 + 0) * 2 + 1], 1 * 16 + 1 * 4 + 2, '(h\'=0, w\'=1), (dh=1, dw=0, c=1) = (c=1, h=1, w=2)');
  t.throws(() => spaceToDepth(img, 1, 3), { message: /height \(4\) must be divisible by its block size \(3\)/ });
  for (const v of [x, y, img, z]) v.dispose();
});

test('video patches with a trainable [T, H, W] table: numChannels counts the temporal block (HF: num_dimensions > 2), so the model runs', (t) => {
  const c = perceiverConfig({ num_latents: 4, d_latents: 8, d_model: 8, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 1, num_cross_attention_heads: 1 });
  const pre = new PerceiverImagePreprocessor(c, {
    prepType: 'patches',
    spatialDownsample: 2,
    temporalDownsample: 2,
    positionEncodingType: 'trainable',
    trainable: { indexDims: [2, 2, 2], numChannels: 4 },
  });
  t.is(pre.positionEmbeddings.numDimensions, 3);
  t.is(pre.numChannels, 3 * 2 * 2 * 2 + 4, 'C * spatial^2 * temporal pixels + 4 position channels');
  const model = new PerceiverModel(c, { inputPreprocessor: pre });
  const video = P.zeros([1, 4, 3, 4, 4]);
  const { lastHiddenState } = model.forward(video);
  t.deepEqual(lastHiddenState.shape, [1, 4, 8]);
  const flat = new PerceiverTrainablePositionEncoding(5, 2);
  t.is(flat.numDimensions, 1, 'a plain length is one index dim');
  for (const v of [video, lastHiddenState]) v.dispose();
  model.dispose();
  flat.dispose();
});

test.serial('the Fourier table cache keeps the FOURIER_CACHE_SIZE most recent shapes; a view taken before its table was evicted still reads it', async (t) => {
  const before = await baseline();
  const opts = { numBands: 2, maxResolution: [16, 16] };
  const enc = new PerceiverFourierPositionEncoding(opts);
  const held = enc.forward(1, [2, 3]);
  const sizes = Array.from({ length: 3 * FOURIER_CACHE_SIZE }, (_, i) => [4 + i, 5]);
  let afterFill = 0;
  sizes.forEach((dims, i) => {
    enc.forward(2, dims).dispose();
    if (i === FOURIER_CACHE_SIZE - 1) afterFill = live().tensors;
  });
  t.is(live().tensors, afterFill, 'new sizes replace old tables instead of adding to them');
  t.true(live().tensors <= before.tensors + FOURIER_CACHE_SIZE + 1, 'at most FOURIER_CACHE_SIZE tables plus the held view');
  const want = fourierFeatures(linearPositions([2, 3]), opts).data;
  t.deepEqual(Array.from(await held.data()), Array.from(want), 'the [2, 3] table was evicted (and disposed) long ago');
  const again = enc.forward(1, [2, 3]);
  t.deepEqual(Array.from(await again.data()), Array.from(want), 'an evicted shape is recomputed');
  for (const v of [held, again]) v.dispose();
  enc.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
  t.is(live().bytes, before.bytes, 'live bytes');
});

test.serial('the Fourier table cache is bounded in bytes too: large tables do not pile up to FOURIER_CACHE_SIZE of them; the newest is always kept', async (t) => {
  const before = await baseline();
  const opts = { numBands: 2, maxResolution: [16, 16] };
  const enc = new PerceiverFourierPositionEncoding(opts);
  t.is(enc.cacheBytes, FOURIER_CACHE_BYTES);
  // channels 2 + 2 * 2 * 2 = 10: a [h, 5] table holds h * 50 floats. A budget of two
  // [8, 5] tables stands in for FOURIER_CACHE_BYTES (four 224x224 tables at 64 bands).
  enc.cacheBytes = 2 * 8 * 50 * 4;
  const heldBytes = () => live().bytes - before.bytes;
  for (const h of [8, 9, 10, 11]) enc.forward(1, [h, 5]).dispose();
  // Before the byte bound all four were kept (count limit 4): 38 * 50 floats.
  t.true(heldBytes() <= enc.cacheBytes, `tables held ${heldBytes()} bytes, budget ${enc.cacheBytes}`);
  t.is(heldBytes(), 11 * 50 * 4, 'only the newest fits beside nothing older');
  // A table larger than the whole budget is still cached (a server at one large size).
  const big = enc.forward(1, [40, 5]);
  t.is(heldBytes(), 40 * 50 * 4, 'the newest table alone, over budget');
  const want = fourierFeatures(linearPositions([40, 5]), opts).data;
  t.deepEqual(Array.from(await big.data()), Array.from(want));
  big.dispose();
  enc.forward(1, [8, 5]).dispose();
  t.is(heldBytes(), 8 * 50 * 4, 'the over-budget table goes once it is no longer the newest');
  enc.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
  t.is(live().bytes, before.bytes, 'live bytes');
});

test('fourierFeatures: a table past what a Float32Array holds is refused naming the function and the sizes, not with V8\'s bare RangeError', (t) => {
  // 4096 positions x (1 + 2 * 2^20) channels = 8.6e9 values; only the positions are allocated.
  t.throws(() => fourierFeatures(linearPositions([4096]), { numBands: 2 ** 20, maxResolution: [16] }), {
    instanceOf: RangeError,
    message: /^fourierFeatures: 4096 positions x 2097153 channels make 8589938688 values, more than one Float32Array holds \(\d+\); use a smaller input$/,
  });
});

test('the image classifiers, labelOf and topKClasses: bad arguments are refused with the argument named', async (t) => {
  const config = caseConfig('image_learned');
  const model = new PerceiverForImageClassificationLearned(config);
  const pixels = P.zeros([1, 3, 12, 12]);
  const video = P.zeros([2, 1, 3, 12, 12]);
  const ints = P.zeros([1, 3, 12, 12], { dtype: 'int32' });
  const logits1 = P.zeros([10]);
  const logits2 = P.zeros([1, 10]);
  const bad: [() => unknown, RegExp][] = [
    [() => new PerceiverForImageClassificationLearned(undefined as never), /^PerceiverForImageClassificationLearned: argument 'config' must be an object, got undefined$/],
    [() => new PerceiverForImageClassificationFourier('x' as never), /^PerceiverForImageClassificationFourier: argument 'config' must be an object, got 'x'$/],
    [() => new PerceiverForImageClassificationConvProcessing(config, null as never), /^PerceiverForImageClassificationConvProcessing: argument 'opts' must be an object, got null$/],
    [() => new PerceiverForImageClassificationLearned({ ...config, image_size: NaN }), /^perceiverConfig: 'image_size' must be a positive integer, got NaN$/],
    [() => model.forward(undefined as never), /^PerceiverForImageClassificationLearned.forward: argument 'pixelValues' must be a Tensor \[B, C, H, W\], got undefined$/],
    [() => model.forward(3 as never), /^PerceiverForImageClassificationLearned.forward: argument 'pixelValues' must be a Tensor \[B, C, H, W\], got number 3$/],
    [() => model.forward(video), /^PerceiverForImageClassificationLearned.forward: argument 'pixelValues' must have rank 4 \[B, C, H, W\], got shape \[2, 1, 3, 12, 12\]$/],
    [() => model.forward(ints), /^PerceiverForImageClassificationLearned.forward: argument 'pixelValues' must be float32 or bfloat16 or float16, got int32$/],
    [() => model.forward(pixels, [] as never), /^PerceiverForImageClassificationLearned.forward: argument 'opts' must be an object, got array of length 0$/],
    [() => model.forward(pixels, { interpolatePosEncoding: null as never }), /^PerceiverForImageClassificationLearned.forward: option 'interpolatePosEncoding' must be a boolean, got null$/],
    [() => labelOf('x' as never, 0), /^labelOf: argument 'id2label' must be an object \(class index -> label\), got 'x'$/],
    [() => labelOf(undefined, -1), /^labelOf: argument 'index' must be an integer >= 0, got number -1$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
  const badAsync: [() => Promise<unknown>, RegExp][] = [
    [() => topKClasses(undefined as never, 1), /^topKClasses: argument 'logits' must be a Tensor, got undefined$/],
    [() => topKClasses(logits1, 1), /^topKClasses: logits must be \[B, num_classes\], got \[10\]$/],
    [() => topKClasses(logits2, 1, 5 as never), /^topKClasses: argument 'id2label' must be an object \(class index -> label\), got number 5$/],
  ];
  for (const [f, message] of badAsync) await t.throwsAsync(f, { message }, String(message));
  for (const v of [pixels, video, ints, logits1, logits2]) v.dispose();
  model.dispose();
});

test('the image classifiers refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  const config = caseConfig('image_learned');
  const model = new PerceiverForImageClassificationLearned(config);
  const pixels = P.zeros([1, 3, 12, 12]);
  await assertUnknownOptions(t, [
    [() => new PerceiverForImageClassificationLearned(config, { devcie: 'cpu' } as never), 'PerceiverForImageClassificationLearned', 'opts', 'devcie'],
    [() => new PerceiverForImageClassificationFourier(caseConfig('image_fourier'), { dtype: 'float16' } as never), 'PerceiverForImageClassificationFourier', 'opts', 'dtype'],
    [() => new PerceiverForImageClassificationConvProcessing(caseConfig('image_conv'), { padding: 'same' } as never), 'PerceiverForImageClassificationConvProcessing', 'opts', 'padding'],
    [() => model.forward(pixels, { interpolatePosEncodng: true } as never), 'PerceiverForImageClassificationLearned.forward', 'opts', 'interpolatePosEncodng'],
  ]);
  pixels.dispose();
  model.dispose();
});

test('PerceiverFourierPositionEncoding.cacheBytes refuses what is not a byte count (NaN, negative, a string), naming it', (t) => {
  const enc = new PerceiverFourierPositionEncoding({ numBands: 2, maxResolution: [16, 16] });
  const set = (v: unknown) => () => {
    enc.cacheBytes = v as number;
  };
  t.throws(set(NaN), { instanceOf: RangeError, message: /PerceiverFourierPositionEncoding\.cacheBytes: argument 'cacheBytes' must be a finite number >= 0, got number NaN/ });
  t.throws(set(-1), { instanceOf: RangeError, message: /cacheBytes.*got number -1/ });
  t.throws(set('1e9'), { instanceOf: TypeError, message: /cacheBytes.*got/ });
  t.is(enc.cacheBytes, FOURIER_CACHE_BYTES, 'unchanged');
  enc.cacheBytes = 0;
  t.is(enc.cacheBytes, 0);
  enc.dispose();
});
