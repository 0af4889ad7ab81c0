// PerceiverForMultimodalAutoencoding against HuggingFace (test/fixtures/hf/multimodal:
// a small random HF model; video [1, 2, 3, 16, 16], audio [1, 128, 1], label [1, 7];
// decoded at image points 0..63, audio points 0..3 and the label's one query).
import test from 'ava';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import { PerceiverBasicDecoder, PerceiverForMultimodalAutoencoding, PerceiverMultimodalDecoder, subsampledPositions } from '../models/index.js';
import { caseConfig, caseDir, caseTensors, loadCaseWeights, outputError } from './helpers/hf-fixture.js';
import { baseline, live } from './helpers/device.js';
import { assertUnknownOptions } from './helpers/options.js';

const NAME = 'multimodal';
const config = caseConfig(NAME);
const INPUTS = ['inputs.image', 'inputs.audio', 'inputs.label', 'subsampled_output_points.image', 'subsampled_output_points.audio'];

async function run(model: PerceiverForMultimodalAutoencoding, input: Record<string, P.Tensor>, label?: P.Tensor) {
  return model.forward(
    { image: input['inputs.image'], audio: input['inputs.audio'], label: label ?? input['inputs.label'] },
    {
      subsampledOutputPoints: {
        image: await input['subsampled_output_points.image'].data(),
        audio: await input['subsampled_output_points.audio'].data(),
      },
    },
  ).logits;
}

test.serial('every modality matches HuggingFace within 1e-4 * max(1, max|expected|), and nothing leaks', async (t) => {
  const before = (await baseline());
  const model = new PerceiverForMultimodalAutoencoding(config);
  await loadCaseWeights(NAME, model);
  const input = await caseTensors(NAME, 'input', INPUTS);
  const expected = await caseTensors(NAME, 'expected', ['logits.audio', 'logits.image', 'logits.label']);
  const logits = await run(model, input);
  t.deepEqual(Object.keys(logits).sort(), ['audio', 'image', 'label']);
  const shapes = { audio: [1, 64], image: [1, 64, 3], label: [1, 7] } as const;
  for (const m of ['audio', 'image', 'label'] as const) {
    t.deepEqual(logits[m].shape, shapes[m], m);
    const { maxDiff, bound, summary } = outputError(await logits[m].data(), await expected[`logits.${m}`].data());
    t.log(`${m}: ${summary}`);
    t.true(maxDiff <= bound, `${m}: ${summary}`);
  }
  for (const x of [...Object.values(logits), ...Object.values(input), ...Object.values(expected)]) x.dispose();
  model.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
  t.is(live().bytes, before.bytes, 'live bytes');
});

test('the state dict names and shapes are exactly those of the HF checkpoint', async (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  const header = await P.readSafetensorsHeader(join(caseDir(NAME), 'model.safetensors'));
  const ours = model.stateDict();
  t.deepEqual(Object.keys(ours).sort(), [...header.entries.keys()].sort());
  for (const [k, e] of header.entries) t.deepEqual([...ours[k].shape], e.shape, k);
  t.is(model.numParameters(), 497059, 'case.json num_parameters');
  model.dispose();
});

test('the label input does not matter: it is always replaced by its mask token', async (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  await loadCaseWeights(NAME, model);
  const input = await caseTensors(NAME, 'input', INPUTS);
  const other = P.tensor(new Float32Array([3, -1, 0, 2, 5, 1, 9]), [1, 7]);
  const a = await run(model, input);
  const b = await run(model, input, other);
  for (const m of ['audio', 'image', 'label']) t.deepEqual(await a[m].data(), await b[m].data(), m);
  for (const x of [...Object.values(a), ...Object.values(b), ...Object.values(input), other]) x.dispose();
  model.dispose();
});

test('subsampled points sit at -1 + 2 * unravel(i) / dims (not linspace), and must lie on the grid', (t) => {
  t.deepEqual(Array.from(subsampledPositions([0, 1, 7], [8])), [-1, -0.75, 0.75]);
  // index 21 of [2, 4, 4] is (1, 1, 1)
  t.deepEqual(Array.from(subsampledPositions([21], [2, 4, 4])), [0, -0.5, -0.5]);
  t.throws(() => subsampledPositions([32], [2, 4, 4]), { message: /outside the output grid \[2, 4, 4\]/ });
});

test("the audio decoder's grid is HF's n_audio_samples // samples_per_patch: a trailing partial patch gets no query", (t) => {
  // 2 frames x 5 samples = 10 samples, 4 per patch: 2 whole patches.
  const model = new PerceiverForMultimodalAutoencoding({
    num_latents: 4, d_latents: 8, d_model: 8, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 1, num_cross_attention_heads: 1,
    num_frames: 2, image_size: 4, audio_samples_per_frame: 5, samples_per_patch: 4, output_shape: [1, 2, 4, 4], num_labels: 3,
    _label_trainable_num_channels: 4, output_num_channels: 4,
  });
  const audio = (model.perceiver.decoder as PerceiverMultimodalDecoder).modalities.get('audio') as PerceiverBasicDecoder;
  t.deepEqual(audio.outputIndexDims, [2]);
  const inputs = { image: P.zeros([1, 2, 3, 4, 4]), audio: P.zeros([1, 8, 1]), label: P.zeros([1, 3]) };
  t.throws(() => model.forward(inputs, { subsampledOutputPoints: { image: [0, 1], audio: [0, 1, 2] } }), { message: /subsampled point 2 .* outside the output grid \[2\]/ });
  for (const v of Object.values(inputs)) v.dispose();
  model.dispose();
});

test('PerceiverForMultimodalAutoencoding: bad arguments are refused with the argument named', (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  const image = P.zeros([1, 2, 3, 16, 16]);
  const audio = P.zeros([1, 128, 1]);
  const label = P.zeros([1, 7]);
  const inputs = { image, audio, label };
  const points = { subsampledOutputPoints: { image: [0, 1], audio: [0] } };
  const [stereo, frames3, short, label2] = [P.zeros([1, 64, 2]), P.zeros([1, 3, 3, 16, 16]), P.zeros([1, 96, 1]), P.zeros([2, 7])];
  const bad: [() => unknown, RegExp][] = [
    [() => new PerceiverForMultimodalAutoencoding(undefined as never), /^PerceiverForMultimodalAutoencoding: argument 'config' must be an object, got undefined$/],
    [() => new PerceiverForMultimodalAutoencoding(config, null as never), /^PerceiverForMultimodalAutoencoding: argument 'opts' must be an object, got null$/],
    [() => new PerceiverForMultimodalAutoencoding({ ...config, output_shape: [1, 2, 16, 1.5] }), /^perceiverConfig: 'output_shape' must be an array of positive integers, got \[1,2,16,1.5\]$/],
    [() => new PerceiverForMultimodalAutoencoding({ ...config, samples_per_patch: 'x' as never }), /^perceiverConfig: 'samples_per_patch' must be a positive integer, got "x"$/],
    [() => model.forward(undefined as never, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs' must be an object, got undefined$/],
    [() => model.forward({ ...inputs, image: 'x' } as never, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs.image' must be a Tensor \[B, T, 3, H, W\], got 'x'$/],
    [() => model.forward({ ...inputs, audio: null } as never, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs.audio' must be a Tensor \[B, samples, 1\], got null$/],
    [() => model.forward({ ...inputs, audio: label }, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs.audio' must have rank 3 \[B, samples, 1\], got shape \[1, 7\]$/],
    [() => model.forward({ ...inputs, label: NaN } as never, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs.label' must be a Tensor \[B, num_labels\], got number NaN$/],
    [() => model.forward(inputs, undefined as never), /^PerceiverForMultimodalAutoencoding.forward: argument 'opts' must be an object, got undefined$/],
    [() => model.forward(inputs, {} as never), /^PerceiverForMultimodalAutoencoding.forward: argument 'opts.subsampledOutputPoints' must be an object, got undefined$/],
    [() => model.forward(inputs, { subsampledOutputPoints: { image: 5, audio: [0] } } as never), /^PerceiverForMultimodalAutoencoding.forward: argument 'opts.subsampledOutputPoints.image' must be an array or typed array of flat indices, got number 5$/],
    [() => model.forward(inputs, { subsampledOutputPoints: { image: [0] } } as never), /^PerceiverForMultimodalAutoencoding.forward: argument 'opts.subsampledOutputPoints.audio' must be an array or typed array of flat indices, got undefined$/],
    // Inputs the config's grid does not describe: they would be encoded as they are and
    // decoded at the config's size, or (two audio channels) read as interleaved samples.
    [() => model.forward({ ...inputs, audio: stereo }, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs.audio' must be \[B, samples, 1\] \(one channel\), got \[1, 64, 2\]$/],
    [() => model.forward({ ...inputs, image: frames3 }, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs.image' must be \[B, 2, 3, 16, 16\] \(the config's output_shape\), got \[1, 3, 3, 16, 16\]$/],
    [() => model.forward({ ...inputs, audio: short }, points), /^PerceiverForMultimodalAutoencoding.forward: argument 'inputs.audio' must hold 128 samples \(the config's \d+ patches of \d+\), got 96$/],
    [() => model.forward({ ...inputs, label: label2 }, points), /^PerceiverForMultimodalAutoencoding.forward: arguments 'inputs.image', '.audio' and '.label' must have one batch size, got 1, 1 and 2$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
  for (const v of [image, audio, label, stereo, frames3, short, label2]) v.dispose();
  model.dispose();
});

test('PerceiverForMultimodalAutoencoding refuses a misspelt option, naming the op, the argument and the key', async (t) => {
  const model = new PerceiverForMultimodalAutoencoding(config);
  const inputs = { image: P.zeros([1, 2, 3, 16, 16]), audio: P.zeros([1, 128, 1]), label: P.zeros([1, 7]) };
  await assertUnknownOptions(t, [
    [() => new PerceiverForMultimodalAutoencoding(config, { devcie: 'cpu' } as never), 'PerceiverForMultimodalAutoencoding', 'opts', 'devcie'],
    [
      () => model.forward(inputs, { subsampledOutputPoints: { image: [0], audio: [0] }, subsampledPoints: { image: [1] } } as never),
      'PerceiverForMultimodalAutoencoding.forward', 'opts', 'subsampledPoints',
    ],
  ]);
  for (const v of Object.values(inputs)) v.dispose();
  model.dispose();
});
