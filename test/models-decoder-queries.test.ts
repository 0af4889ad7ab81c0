// Fourier decoder queries over a full output grid (DeepMind's output_index_dims) and
// over subsampled points, and 5-D video inputs of the 'pixels', 'conv1x1' and 'conv' image
// preprocessors, against plain-JS references in double precision.
import test from 'ava';
import * as P from '../lib/index.js';
import { PerceiverBasicDecoder, PerceiverImagePreprocessor, PerceiverModel, perceiverConfig } from '../models/index.js';
import { readAndDispose } from './helpers/read.js';
import { assertClose, assertExact, randomArray } from './helpers/reference.js';
import { baseline, live } from './helpers/device.js';

const config = perceiverConfig({
  d_model: 6,
  d_latents: 16,
  num_latents: 5,
  num_blocks: 1,
  num_self_attends_per_block: 1,
  num_self_attention_heads: 2,
  num_cross_attention_heads: 1,
});

/** Fourier features of coordinates pos [n][k] as the SPEC lists them: [pos, sin, cos], axis-major bands. */
function fourierRef(pos: number[][], numBands: number, maxRes: readonly number[]): number[][] {
  const bands = maxRes.map((r) => Array.from({ length: numBands }, (_, b) => (numBands === 1 ? 1 : 1 + ((r / 2 - 1) * b) / (numBands - 1))));
  return pos.map((p) => {
    const args: number[] = [];
    p.forEach((x, a) => bands[a].forEach((f) => args.push(Math.PI * x * f)));
    return [...p, ...args.map(Math.sin), ...args.map(Math.cos)];
  });
}

/** Row-major multi-indices of a grid. */
function gridIndices(dims: readonly number[]): number[][] {
  const n = dims.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, (_, i) => {
    const idx = new Array<number>(dims.length);
    for (let a = dims.length - 1; a >= 0; a--) {
      idx[a] = i % dims[a];
      i = Math.floor(i / dims[a]);
    }
    return idx;
  });
}

/** linspace(-1, 1, d) per axis, 'ij' order. */
const fullGridRef = (dims: readonly number[]): number[][] => gridIndices(dims).map((idx) => idx.map((i, a) => (dims[a] === 1 ? -1 : -1 + (2 * i) / (dims[a] - 1))));

/** -1 + 2 * idx / d of flat points. */
const subsampledRef = (points: number[], dims: readonly number[]): number[][] => {
  const all = gridIndices(dims);
  return points.map((p) => all[p].map((i, a) => -1 + (2 * i) / dims[a]));
};

/** The same rows for every batch element. */
const repeat = (rows: number[][], B: number): number[] => Array.from({ length: B }, () => rows.flat()).flat();

const DIMS = [3, 4];
const FOURIER = { numBands: 3, maxResolution: [6, 8] };
const QC = 2 + 2 * 2 * 3; // pos + sin + cos

function fourierDecoder(opts: { concat?: boolean } = {}): PerceiverBasicDecoder {
  return new PerceiverBasicDecoder(config, {
    outputNumChannels: 5,
    positionEncodingType: 'fourier',
    outputIndexDims: DIMS,
    numChannels: QC + (opts.concat ? 3 : 0),
    concatPreprocessedInput: opts.concat,
    fourier: FOURIER,
  });
}

test.serial('Fourier queries over the full output grid are linspace(-1, 1, d) features of output_index_dims', async (t) => {
  const before = (await baseline());
  const dec = fourierDecoder();
  // Inputs of another length and width than the grid: the grid comes from output_index_dims, not from them.
  const inputs = P.zeros([2, 7, 6]);
  const q = dec.decoderQuery(inputs);
  t.deepEqual(q.shape, [2, 12, QC]);
  const want = repeat(fourierRef(fullGridRef(DIMS), 3, FOURIER.maxResolution), 2);
  assertClose(t, await readAndDispose(q), want, { rtol: 1e-5, atol: 1e-5, shape: [2, 12, QC] });
  // A second call reuses the cached table and gives the same queries.
  const again = await readAndDispose(dec.decoderQuery(inputs));
  assertClose(t, again, want, { rtol: 1e-5, atol: 1e-5 });
  inputs.dispose();
  dec.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
});

test.serial('concat_preprocessed_input puts the inputs without position in front of the full-grid queries', async (t) => {
  const dec = fourierDecoder({ concat: true });
  const withoutData = randomArray(2 * 12 * 3, 11);
  const without = P.tensor(withoutData, [2, 12, 3]);
  const inputs = P.zeros([2, 12, 6]);
  const q = dec.decoderQuery(inputs, { inputsWithoutPos: without });
  t.deepEqual(q.shape, [2, 12, 3 + QC]);
  const feats = fourierRef(fullGridRef(DIMS), 3, FOURIER.maxResolution);
  const want: number[] = [];
  for (let b = 0; b < 2; b++)
    for (let n = 0; n < 12; n++) want.push(...Array.from(withoutData.subarray((b * 12 + n) * 3, (b * 12 + n + 1) * 3)), ...feats[n]);
  assertClose(t, await readAndDispose(q), want, { rtol: 1e-5, atol: 1e-5, shape: [2, 12, 3 + QC] });
  for (const x of [without, inputs]) x.dispose();
  dec.dispose();
});

test.serial('subsampled points use -1 + 2*idx/d, and agree with the full grid where both conventions meet', async (t) => {
  const dec = fourierDecoder();
  const inputs = P.zeros([2, 7, 6]);
  const points = [0, 5, 11, 7, 2];
  const q = dec.decoderQuery(inputs, { subsampledPoints: points });
  t.deepEqual(q.shape, [2, points.length, QC]);
  const sub = await readAndDispose(q);
  assertClose(t, sub, repeat(fourierRef(subsampledRef(points, DIMS), 3, FOURIER.maxResolution), 2), { rtol: 1e-5, atol: 1e-5, shape: [2, points.length, QC] });
  // Point 0 is (-1, -1) in both conventions, so its row equals the full grid's row 0;
  // elsewhere they differ (e.g. point 11: (1, 1) on the grid, (1/3, 1/2) subsampled).
  const full = await readAndDispose(dec.decoderQuery(inputs));
  assertClose(t, sub.subarray(0, QC), full.subarray(0, QC), { rtol: 0, atol: 0 });
  t.not(sub[2 * QC], full[11 * QC]);
  t.throws(() => dec.decoderQuery(inputs, { subsampledPoints: [12] }), { instanceOf: RangeError, message: /outside the output grid/ });
  inputs.dispose();
  dec.dispose();
});

test.serial('project_pos_dim: a Linear over the Fourier features, full grid and subsampled alike', async (t) => {
  const P7 = 7;
  const dec = new PerceiverBasicDecoder(config, {
    outputNumChannels: 5,
    positionEncodingType: 'fourier',
    outputIndexDims: DIMS,
    numChannels: P7,
    projectPosDim: P7,
    fourier: FOURIER,
  });
  const w = randomArray(P7 * QC, 21, -0.5, 0.5);
  const b = randomArray(P7, 22, -0.5, 0.5);
  const dict = { 'positions_projection.weight': P.tensor(w, [P7, QC]), 'positions_projection.bias': P.tensor(b, [P7]) };
  dec.loadStateDict(dict, { strict: false });
  for (const v of Object.values(dict)) v.dispose();
  const project = (rows: number[][]): number[][] =>
    rows.map((r) => Array.from({ length: P7 }, (_, o) => r.reduce((s, v, c) => s + v * w[o * QC + c], b[o])));
  const inputs = P.zeros([2, 7, 6]);
  const full = dec.decoderQuery(inputs);
  t.deepEqual(full.shape, [2, 12, P7]);
  assertClose(t, await readAndDispose(full), repeat(project(fourierRef(fullGridRef(DIMS), 3, FOURIER.maxResolution)), 2), { rtol: 1e-5, atol: 1e-5 });
  const points = [3, 10];
  const sub = dec.decoderQuery(inputs, { subsampledPoints: points });
  assertClose(t, await readAndDispose(sub), repeat(project(fourierRef(subsampledRef(points, DIMS), 3, FOURIER.maxResolution)), 2), { rtol: 1e-5, atol: 1e-5 });
  inputs.dispose();
  dec.dispose();
});

test.serial('a PerceiverModel with a full-grid Fourier decoder outputs [B, prod(output_index_dims), output_num_channels]', async (t) => {
  const before = (await baseline());
  const model = new PerceiverModel(config, { decoder: fourierDecoder() });
  const inputs = P.tensor(randomArray(2 * 9 * 6, 12), [2, 9, 6]);
  const { logits, lastHiddenState } = model.forward(inputs);
  t.deepEqual((logits as P.Tensor).shape, [2, 12, 5]);
  t.deepEqual(lastHiddenState.shape, [2, 5, 16]);
  t.true(Array.from(await readAndDispose(logits as P.Tensor)).every(Number.isFinite));
  lastHiddenState.dispose();
  inputs.dispose();
  model.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
});

/** Video [B, T, C, H, W] element. */
const at5 = (x: ArrayLike<number>, s: readonly number[], b: number, t: number, c: number, h: number, w: number): number =>
  x[(((b * s[1] + t) * s[2] + c) * s[3] + h) * s[4] + w];

test.serial("'pixels' video: strided in time and space, flattened over (T', H', W') with Fourier positions", async (t) => {
  const before = (await baseline());
  const shape = [2, 3, 3, 5, 4];
  const [B, T, C, H, W] = shape;
  const [td, sd] = [2, 2];
  const out = [Math.ceil(T / td), Math.ceil(H / sd), Math.ceil(W / sd)]; // 2, 3, 2
  const fourier = { numBands: 2, maxResolution: out };
  const prep = new PerceiverImagePreprocessor(config, { prepType: 'pixels', spatialDownsample: sd, temporalDownsample: td, inChannels: C, fourier });
  const posC = 3 + 3 * 2 * 2;
  t.is(prep.numChannels, C + posC);
  const data = randomArray(shape.reduce((a, b) => a * b, 1), 13);
  const x = P.tensor(data, shape);
  const { inputs, inputsWithoutPos } = prep.forward(x);
  const N = out[0] * out[1] * out[2];
  t.deepEqual((inputsWithoutPos as P.Tensor).shape, [B, N, C]);
  t.deepEqual(inputs.shape, [B, N, C + posC]);
  const wantPix: number[] = [];
  for (let b = 0; b < B; b++)
    for (const [ti, hi, wi] of gridIndices(out)) for (let c = 0; c < C; c++) wantPix.push(at5(data, shape, b, ti * td, c, hi * sd, wi * sd));
  assertExact(t, await readAndDispose(inputsWithoutPos as P.Tensor), wantPix);
  const feats = fourierRef(fullGridRef(out), 2, out);
  const want: number[] = [];
  for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) want.push(...wantPix.slice((b * N + n) * C, (b * N + n + 1) * C), ...feats[n]);
  assertClose(t, await readAndDispose(inputs), want, { rtol: 1e-5, atol: 1e-5, shape: [B, N, C + posC] });
  x.dispose();
  prep.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
});

test.serial("'conv1x1' video: a strided 1x1 convolution per frame, positions over (T, H', W')", async (t) => {
  const before = (await baseline());
  const shape = [2, 2, 3, 5, 5];
  const [B, T, C, H, W] = shape;
  const [sd, O] = [2, 4];
  const out = [T, Math.ceil(H / sd), Math.ceil(W / sd)]; // 2, 3, 3
  const fourier = { numBands: 2, maxResolution: out };
  const prep = new PerceiverImagePreprocessor(config, { prepType: 'conv1x1', spatialDownsample: sd, inChannels: C, outChannels: O, fourier });
  const w = randomArray(O * C, 14, -0.5, 0.5);
  const bias = randomArray(O, 15, -0.5, 0.5);
  const dict = { 'convnet_1x1.weight': P.tensor(w, [O, C, 1, 1]), 'convnet_1x1.bias': P.tensor(bias, [O]) };
  prep.loadStateDict(dict);
  for (const v of Object.values(dict)) v.dispose();
  const posC = 3 + 3 * 2 * 2;
  t.is(prep.numChannels, O + posC);
  const data = randomArray(shape.reduce((a, b) => a * b, 1), 16);
  const x = P.tensor(data, shape);
  const { inputs, inputsWithoutPos } = prep.forward(x);
  const N = out[0] * out[1] * out[2];
  t.deepEqual(inputs.shape, [B, N, O + posC]);
  const wantConv: number[] = [];
  for (let b = 0; b < B; b++)
    for (const [ti, hi, wi] of gridIndices(out))
      for (let o = 0; o < O; o++) {
        let s = bias[o];
        for (let c = 0; c < C; c++) s += w[o * C + c] * at5(data, shape, b, ti, c, hi * sd, wi * sd);
        wantConv.push(s);
      }
  assertClose(t, await readAndDispose(inputsWithoutPos as P.Tensor), wantConv, { rtol: 1e-5, atol: 1e-6, shape: [B, N, O] });
  const feats = fourierRef(fullGridRef(out), 2, out);
  const want: number[] = [];
  for (let b = 0; b < B; b++) for (let n = 0; n < N; n++) want.push(...wantConv.slice((b * N + n) * O, (b * N + n + 1) * O), ...feats[n]);
  assertClose(t, await readAndDispose(inputs), want, { rtol: 1e-5, atol: 1e-5, shape: [B, N, O + posC] });
  x.dispose();
  prep.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
});

test('video inputs with the wrong channel count are refused, by every prep type', (t) => {
  const pix = new PerceiverImagePreprocessor(config, { prepType: 'pixels', spatialDownsample: 1, inChannels: 3, fourier: { numBands: 1, maxResolution: [2, 2, 2] } });
  const bad = P.zeros([1, 2, 4, 2, 2]);
  t.throws(() => pix.forward(bad), { instanceOf: RangeError, message: /\[B, T, 3, H, W\]/ });
  const conv = new PerceiverImagePreprocessor(config, { prepType: 'conv', fourier: { numBands: 1, maxResolution: [2, 2] } });
  const video = P.zeros([1, 2, 4, 8, 8]);
  t.throws(() => conv.forward(video), { instanceOf: RangeError, message: /\[B, T, 3, H, W\]/ });
  for (const x of [bad, video]) x.dispose();
  pix.dispose();
  conv.dispose();
});

test.serial("'conv' video: the conv downsampler runs on each frame, positions over (T, H', W')", async (t) => {
  const [B, T, C, H, W] = [2, 2, 3, 16, 16];
  const prep = new PerceiverImagePreprocessor(config, {
    prepType: 'conv',
    spatialDownsample: 4,
    inChannels: C,
    outChannels: 8,
    fourier: { numBands: 2, maxResolution: [T, 3, 3] },
  });
  // The 4-D path (convnet on one image) with the same weights is the reference.
  const image = new PerceiverImagePreprocessor(config, { prepType: 'conv', spatialDownsample: 4, inChannels: C, outChannels: 8, fourier: { numBands: 2, maxResolution: [3, 3] } });
  image.loadStateDict(prep.stateDict());
  const x = P.tensor(randomArray(B * T * C * H * W, 21), [B, T, C, H, W]);
  const video = prep.forward(x);
  const without = video.inputsWithoutPos as P.Tensor;
  // HF pads the 7x7/2 conv by 3 and pools unpadded: 16 -> 8 -> 3 (3x3 tokens per frame).
  t.deepEqual(without.shape, [B, T * 9, 8]);
  t.deepEqual(video.inputs.shape, [B, T * 9, 8 + 3 + 3 * 2 * 2]);
  const got = await readAndDispose(without);
  for (let b = 0; b < B; b++)
    for (let f = 0; f < T; f++) {
      const frame = P.reshape(P.contiguous(P.slice(P.slice(x, 0, b, b + 1), 1, f, f + 1)), [1, C, H, W]);
      const single = image.forward(frame);
      const want = await readAndDispose(single.inputsWithoutPos as P.Tensor);
      single.inputs.dispose();
      const at = (b * T + f) * 9 * 8;
      assertExact(t, got.subarray(at, at + 9 * 8), want, `batch ${b}, frame ${f}`);
      frame.dispose();
    }
  video.inputs.dispose();
  x.dispose();
  prep.dispose();
  image.dispose();
});
