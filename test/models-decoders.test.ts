// DeepMind's ProjectionDecoder (mean over latents, then a zero-initialised Linear) and
// IdentityPostprocessor, against plain-JS references; also inside a PerceiverModel.
import test from 'ava';
import * as P from '../lib/index.js';
import { PerceiverBasicDecoder, PerceiverIdentityPostprocessor, PerceiverModel, PerceiverProjectionDecoder, perceiverConfig } from '../models/index.js';
import * as M from '../models/index.js';
import { readAndDispose } from './helpers/read.js';
import { assertUnknownOptions } from './helpers/options.js';
import { assertClose, randomArray } from './helpers/reference.js';
import { baseline, live } from './helpers/device.js';

/** mean over N of z [B, N, C], then x W^T + b: [B, K]. */
function projectionRef(z: ArrayLike<number>, B: number, N: number, C: number, w: ArrayLike<number>, b: ArrayLike<number>, K: number): Float64Array {
  const out = new Float64Array(B * K);
  for (let bi = 0; bi < B; bi++) {
    const m = new Float64Array(C);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) m[c] += z[(bi * N + n) * C + c] / N;
    for (let k = 0; k < K; k++) {
      let s = b[k];
      for (let c = 0; c < C; c++) s += m[c] * w[k * C + c];
      out[bi * K + k] = s;
    }
  }
  return out;
}

test.serial('zero-initialised: an untrained decoder outputs exactly 0', async (t) => {
  const dec = new PerceiverProjectionDecoder({ numClasses: 5, numZChannels: 8 });
  t.deepEqual(Object.keys(dec.stateDict()).sort(), ['classifier.bias', 'classifier.weight']);
  t.deepEqual([...dec.stateDict()['classifier.weight'].shape], [5, 8]);
  const z = P.tensor(randomArray(2 * 3 * 8, 1), [2, 3, 8]);
  const q = dec.decoderQuery(z);
  t.deepEqual(q.shape, [2, 0, 0]);
  const out = dec.forward(q, z);
  t.deepEqual(out.shape, [2, 5]);
  t.true(Array.from(await readAndDispose(out)).every((v) => v === 0));
  for (const x of [z, q]) x.dispose();
  dec.dispose();
});

test.serial('mean over latents then Linear matches the plain-JS reference, and nothing leaks', async (t) => {
  const before = (await baseline());
  const [B, N, C, K] = [3, 7, 16, 10];
  const dec = new PerceiverProjectionDecoder({ numClasses: K, numZChannels: C });
  const w = randomArray(K * C, 2, -0.5, 0.5);
  const b = randomArray(K, 3, -0.5, 0.5);
  const dict = { 'classifier.weight': P.tensor(w, [K, C]), 'classifier.bias': P.tensor(b, [K]) };
  dec.loadStateDict(dict);
  for (const v of Object.values(dict)) v.dispose();
  const zData = randomArray(B * N * C, 4);
  const z = P.tensor(zData, [B, N, C]);
  const got = await readAndDispose(dec.forward(null, z));
  assertClose(t, got, projectionRef(zData, B, N, C, w, b, K), { rtol: 1e-5, atol: 1e-6, shape: [B, K] });
  z.dispose();
  dec.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
});

test('identity postprocessor returns the decoder output unchanged as a new view', async (t) => {
  const data = randomArray(24, 5);
  const x = P.tensor(data, [2, 3, 4]);
  const post = new PerceiverIdentityPostprocessor();
  const y = post.forward(x);
  t.not(y, x);
  t.deepEqual(y.shape, [2, 3, 4]);
  t.deepEqual(Array.from(await readAndDispose(y)), Array.from(data));
  t.false(x.disposed, 'disposing the output leaves the input alive');
  t.deepEqual(post.stateDict(), {});
  x.dispose();
});

test.serial('a PerceiverModel with the projection decoder outputs Linear(mean(latents))', async (t) => {
  const config = perceiverConfig({ d_model: 12, d_latents: 16, num_latents: 6, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 1 });
  const K = 4;
  const model = new PerceiverModel(config, {
    decoder: new PerceiverProjectionDecoder({ numClasses: K, numZChannels: config.d_latents }),
    outputPostprocessor: new PerceiverIdentityPostprocessor(),
  });
  const w = randomArray(K * 16, 6, -0.5, 0.5);
  const b = randomArray(K, 7, -0.5, 0.5);
  const dict = { 'decoder.classifier.weight': P.tensor(w, [K, 16]), 'decoder.classifier.bias': P.tensor(b, [K]) };
  model.loadStateDict(dict, { strict: false });
  for (const v of Object.values(dict)) v.dispose();
  const inputs = P.tensor(randomArray(2 * 5 * 12, 8), [2, 5, 12]);
  const { logits, lastHiddenState } = model.forward(inputs);
  const z = await readAndDispose(lastHiddenState);
  const got = await readAndDispose(logits as P.Tensor);
  assertClose(t, got, projectionRef(z, 2, 6, 16, w, b, K), { rtol: 1e-5, atol: 1e-6, shape: [2, K] });
  inputs.dispose();
  model.dispose();
});

test('bad arguments give clear errors', (t) => {
  t.throws(() => new PerceiverProjectionDecoder({ numClasses: 0, numZChannels: 4 }), { instanceOf: RangeError, message: /argument 'opts.numClasses' must be an integer >= 1, got number 0/ });
  t.throws(() => new PerceiverProjectionDecoder({ numClasses: 2, numZChannels: 1.5 }), { instanceOf: RangeError, message: /numZChannels/ });
  const dec = new PerceiverProjectionDecoder({ numClasses: 2, numZChannels: 4 });
  const z = P.zeros([1, 3, 5]);
  t.throws(() => dec.forward(null, z), { instanceOf: RangeError, message: /z must be \[B, N, 4\], got \[1, 3, 5\]/ });
  const z4 = P.zeros([1, 3, 4]);
  const m = P.ones([1, 3]);
  t.throws(() => dec.forward(null, z4, m), { instanceOf: TypeError, message: /query mask/ });
  for (const x of [z, z4, m]) x.dispose();
  dec.dispose();
});

test('PerceiverBasicDecoder refuses output index dims that are not positive integers, naming the option', (t) => {
  const c = perceiverConfig({ num_latents: 2, d_latents: 4, d_model: 4, num_self_attention_heads: 1, num_cross_attention_heads: 1 });
  const fourier = { numBands: 2, maxResolution: [4] };
  const make = (outputIndexDims: unknown) => () =>
    new PerceiverBasicDecoder(c, { outputNumChannels: 2, positionEncodingType: 'fourier', fourier, outputIndexDims: outputIndexDims as number[] });
  t.throws(make([2.5]), { instanceOf: RangeError, message: /option 'outputIndexDims' must be a positive integer or a non-empty array of them, got \[2\.5\]/ });
  t.throws(make(0), { instanceOf: RangeError, message: /outputIndexDims' .* got 0/ });
  t.throws(make([4, -1]), { instanceOf: RangeError, message: /got \[4, -1\]/ });
  t.throws(make([]), { instanceOf: RangeError, message: /got \[\]/ });
  t.throws(make(['4']), { instanceOf: TypeError, message: /outputIndexDims/ });
  const ok = make([4])();
  t.deepEqual(ok.outputIndexDims, [4]);
  ok.dispose();
});

test('PerceiverModel without a preprocessor refuses inputs that are not [B, M, d_model], saying so', (t) => {
  const model = new PerceiverModel(perceiverConfig({ num_latents: 2, d_latents: 4, d_model: 4, num_blocks: 1, num_self_attention_heads: 1, num_cross_attention_heads: 1 }));
  for (const shape of [[2, 3, 5, 4], [3, 4]]) {
    const x = P.zeros(shape);
    t.throws(() => model.forward(x), { instanceOf: RangeError, message: new RegExp(`inputs must be \\[B, M, d_model\\] = \\[B, M, 4\\], got \\[${shape.join(', ')}\\]`) });
    x.dispose();
  }
  model.dispose();
});

test('decoders check their arguments: type, name, expected and what came', (t) => {
  const cfg = perceiverConfig({ d_latents: 8, d_model: 6, num_latents: 4, num_self_attention_heads: 2, num_cross_attention_heads: 1, num_labels: 3 });
  const basic = new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, outputIndexDims: [3], numChannels: 8, positionEncodingType: 'trainable', trainable: { indexDims: 3, numChannels: 8 } });
  const z = P.zeros([1, 4, 8]);
  const cases: [() => unknown, RegExp][] = [
    [() => new PerceiverBasicDecoder(cfg, undefined as never), /^PerceiverBasicDecoder: argument 'opts' must be an object, got undefined/],
    [() => new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, positionEncodingType: 'x' as never }), /argument 'opts.positionEncodingType' must be 'trainable' or 'fourier' or 'none', got 'x'/],
    [() => new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, positionEncodingType: 'fourier', outputIndexDims: [3], fourier: { numBands: 1.5, maxResolution: [3] } }), /argument 'opts.fourier.numBands' must be an integer >= 1, got number 1.5/],
    [() => basic.forward(undefined as never, z), /^PerceiverBasicDecoder.forward: argument 'query' must be a Tensor \[B, N_out, C\], got undefined/],
    [() => basic.decoderQuery('x' as never), /^PerceiverBasicDecoder.decoderQuery: argument 'inputs' must be a Tensor/],
    [() => new M.PerceiverClassificationDecoder(null as never, {}), /^PerceiverClassificationDecoder: argument 'config' must be an object, got null/],
    [() => new PerceiverProjectionDecoder(undefined as never), /^PerceiverProjectionDecoder: argument 'opts' must be an object, got undefined/],
    [() => new PerceiverProjectionDecoder({ numClasses: 5, numZChannels: 8 }).forward(null, 'x' as never), /^PerceiverProjectionDecoder.forward: argument 'z' must be a Tensor \[B, N, 8\], got 'x'/],
    [() => new PerceiverProjectionDecoder({ numClasses: 5, numZChannels: 8 }).decoderQuery({ batchSize: 1 } as never), /^PerceiverProjectionDecoder.decoderQuery: argument 'inputs' must be a Tensor \[B, M, C\], got Object/],
    [() => new M.PerceiverEmbeddingDecoder(10).forward(P.zeros([1, 3, 6]), undefined as never), /^PerceiverEmbeddingDecoder.forward: argument 'embeddingWeight' must be a Tensor \[vocab, d_model\], got undefined/],
    [() => M.subsampledPositions([0, 1, 2], [NaN]), /^subsampledPositions: argument 'dims\[0\]' must be an integer >= 1, got number NaN/],
    [() => M.subsampledPositions([{} as never], [4]), /^subsampledPositions: argument 'points\[0\]' must be an integer index into the output grid \[4\], got Object/],
    [() => M.subsampledPositions(5 as never, [4]), /^subsampledPositions: argument 'points' must be an array of flat indices, got number 5/],
    [() => M.queryRowMask(undefined as never, 2, 3), /^queryRowMask: argument 'queryMask' must be a Tensor \[B, N_out\], got undefined/],
    [() => new M.PerceiverMultimodalDecoder(cfg, { modalities: {}, outputNumChannels: 4 }), /argument 'opts.modalities' must name at least one modality, got none/],
    [() => new M.PerceiverOpticalFlowDecoder(cfg, { numChannels: 8, outputImageShape: 'x' as never }), /^PerceiverOpticalFlowDecoder: argument 'opts.outputImageShape' must be an array of at least 1 integers, got 'x'/],
  ];
  for (const [call, message] of cases) t.throws(call, { message }, String(message));
  basic.dispose();
  z.dispose();
});

test('decoders refuse a misspelt option or query context key, naming the op, the argument and the key', async (t) => {
  const cfg = perceiverConfig({ d_latents: 8, d_model: 6, num_latents: 4, num_self_attention_heads: 2, num_cross_attention_heads: 1, num_labels: 3 });
  const trainable = { indexDims: 3, numChannels: 8 };
  const basic = new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, numChannels: 8, trainable });
  const queries = new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, positionEncodingOnly: true, trainable });
  const multimodal = new M.PerceiverMultimodalDecoder(cfg, { modalities: { a: queries }, outputNumChannels: 4 });
  const flow = new M.PerceiverOpticalFlowDecoder(cfg, { numChannels: 6, outputImageShape: [1, 3] });
  const projection = new PerceiverProjectionDecoder({ numClasses: 5, numZChannels: 8 });
  const x = P.zeros([1, 3, 6]);
  await assertUnknownOptions(t, [
    [() => new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, numChannels: 8, trainable, queryResidual: true } as never), 'PerceiverBasicDecoder', 'opts', 'queryResidual'],
    [() => new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, trainable: { ...trainable, std: 1 } as never }), 'PerceiverBasicDecoder', 'opts.trainable', 'std'],
    [
      () => new PerceiverBasicDecoder(cfg, { outputNumChannels: 4, positionEncodingType: 'fourier', outputIndexDims: [3], fourier: { numBands: 2, maxResolution: [3], sine_only: true } as never }),
      'PerceiverBasicDecoder', 'opts.fourier', 'sine_only',
    ],
    [() => basic.decoderQuery(x, { subsampledOutputPoints: [0] } as never), 'PerceiverBasicDecoder.decoderQuery', 'ctx', 'subsampledOutputPoints'],
    [() => multimodal.decoderQuery(x, { modalitySizes: { a: 3 }, subsampled: {} } as never), 'PerceiverMultimodalDecoder.decoderQuery', 'ctx', 'subsampled'],
    [() => flow.decoderQuery(x, { inputsWithoutPosition: x } as never), 'PerceiverOpticalFlowDecoder.decoderQuery', 'ctx', 'inputsWithoutPosition'],
    [() => projection.decoderQuery(x, { modalitySize: {} } as never), 'PerceiverProjectionDecoder.decoderQuery', 'ctx', 'modalitySize'],
    // The class sets the output to one query of num_labels channels.
    [() => new M.PerceiverClassificationDecoder(cfg, { trainable, outputNumChannels: 3 } as never), 'PerceiverClassificationDecoder', 'opts', 'outputNumChannels'],
    [() => new M.PerceiverEmbeddingDecoder(10, { initStd: 0.02 } as never), 'PerceiverEmbeddingDecoder', 'opts', 'initStd'],
    [() => new M.PerceiverMultimodalDecoder(cfg, { modalities: { a: queries }, outputNumChannels: 4, minPadding: 2 } as never), 'PerceiverMultimodalDecoder', 'opts', 'minPadding'],
    [() => new M.PerceiverOpticalFlowDecoder(cfg, { numChannels: 6, outputImageShape: [1, 3], scaleFactor: 100 } as never), 'PerceiverOpticalFlowDecoder', 'opts', 'scaleFactor'],
    [() => new PerceiverProjectionDecoder({ numClasses: 5, numZChannels: 8, numLabels: 5 } as never), 'PerceiverProjectionDecoder', 'opts', 'numLabels'],
    // The grid is outputShape's.
    [
      () => new M.PerceiverBasicVideoAutoencodingDecoder(cfg, { outputShape: [1, 1, 2, 2], outputNumChannels: 3, trainable, outputIndexDims: [1, 2, 2] } as never),
      'PerceiverBasicVideoAutoencodingDecoder', 'opts', 'outputIndexDims',
    ],
  ]);
  for (const m of [basic, multimodal, flow, projection]) m.dispose();
  x.dispose();
});
