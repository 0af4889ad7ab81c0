// PerceiverForOpticalFlow against HuggingFace (test/fixtures/hf/optical_flow: a small
// random HF model, inputs [1, 2, 27, 12, 16], flow HF computed in float64): patches
// stacked over both frames, a 54 -> 64 Linear, Fourier features over train_size, the
// inputs as decoder queries, output / 100 as [B, H, W, 2].
import test from 'ava';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import { PerceiverForOpticalFlow } from '../models/index.js';
import { estimateFlow } from '../models/flow-estimate.js';
import { caseConfig, caseDir, caseTensors, loadCaseWeights, outputError } from './helpers/hf-fixture.js';
import { baseline, live } from './helpers/device.js';
import { assertUnknownOptions } from './helpers/options.js';

const config = caseConfig('optical_flow');

test.serial('flow matches HuggingFace within 1e-4 * max(1, max|expected|), and nothing leaks', async (t) => {
  const before = (await baseline());
  const model = new PerceiverForOpticalFlow(config);
  await loadCaseWeights('optical_flow', model);
  const input = await caseTensors('optical_flow', 'input', ['inputs']);
  const expected = await caseTensors('optical_flow', 'expected', ['logits']);
  const { logits } = model.forward(input.inputs);
  t.deepEqual(logits.shape, [1, 12, 16, 2]);
  const want = await expected.logits.data();
  const { maxDiff, bound, summary } = outputError(await logits.data(), want);
  t.log(summary);
  t.true(maxDiff <= bound, summary);
  // The outputs are ~0.1: hold them to 1e-4 of their own size as well.
  const relBound = 1e-4 * Math.max(...Array.from(want, Math.abs));
  t.true(maxDiff <= relBound, `max |diff| ${maxDiff} exceeds 1e-4 * max|expected| = ${relBound}`);
  for (const x of [logits, input.inputs, expected.logits]) x.dispose();
  model.dispose();
  t.is(live().tensors, before.tensors, 'live tensors');
  t.is(live().bytes, before.bytes, 'live bytes');
});

test('the state dict names and shapes are exactly those of the HF checkpoint', async (t) => {
  const model = new PerceiverForOpticalFlow(config);
  const header = await P.readSafetensorsHeader(join(caseDir('optical_flow'), 'model.safetensors'));
  const ours = model.stateDict();
  t.deepEqual(Object.keys(ours).sort(), [...header.entries.keys()].sort());
  for (const [k, e] of header.entries) t.deepEqual([...ours[k].shape], e.shape, k);
  t.is(model.perceiver.inputPreprocessor!.numChannels, 322, '64 + 2 + 2 * 2 * 64');
  model.dispose();
});

test('an input whose size differs from train_size is refused with the reason', (t) => {
  const model = new PerceiverForOpticalFlow(config);
  const x = P.zeros([1, 2, 27, 8, 16]);
  t.throws(() => model.forward(x), { message: /^PerceiverForOpticalFlow\.forward: argument 'inputs' must be 12 x 16 pixels \(config train_size\), got 8 x 16/ });
  // The same pixel count in another shape too: the decoder's grid would take them row by row.
  const turned = P.zeros([1, 2, 27, 16, 12]);
  t.throws(() => model.forward(turned), { message: /must be 12 x 16 pixels \(config train_size\), got 16 x 12/ });
  turned.dispose();
  x.dispose();
  model.dispose();
});

test("subsampled output points are refused, as HF's \"FlowDecoder doesn't support subsampling yet\", not silently ignored", (t) => {
  const model = new PerceiverForOpticalFlow({
    num_latents: 4, d_latents: 8, d_model: 8, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 1, num_cross_attention_heads: 1, train_size: [4, 4],
  });
  const x = P.zeros([1, 2, 27, 4, 4]);
  t.throws(() => model.perceiver.forward(x, { subsampledOutputPoints: { image: [0, 1] } }), {
    instanceOf: TypeError,
    message: /PerceiverOpticalFlowDecoder: subsampled output points are not supported/,
  });
  const { logits } = model.perceiver.forward(x, { subsampledOutputPoints: null });
  t.deepEqual((logits as P.Tensor).shape, [1, 4, 4, 2], 'no points: every pixel, as before');
  for (const v of [x, logits as P.Tensor]) v.dispose();
  model.dispose();
});

test('PerceiverForOpticalFlow and estimateFlow: bad arguments are refused with the argument named', async (t) => {
  const tiny = {
    num_latents: 4, d_latents: 8, d_model: 8, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 1, num_cross_attention_heads: 1, train_size: [4, 4] as [number, number],
  };
  const model = new PerceiverForOpticalFlow(tiny);
  const frames4 = P.zeros([1, 27, 4, 4]);
  const oneFrame = P.zeros([1, 1, 27, 4, 4]);
  const ints = P.zeros([1, 2, 27, 4, 4], { dtype: 'int32' });
  const bad: [() => unknown, RegExp][] = [
    [() => new PerceiverForOpticalFlow(undefined as never), /^PerceiverForOpticalFlow: argument 'config' must be an object, got undefined$/],
    [() => new PerceiverForOpticalFlow(tiny, 'cpu' as never), /^PerceiverForOpticalFlow: argument 'opts' must be an object, got 'cpu'$/],
    [() => new PerceiverForOpticalFlow({ ...tiny, train_size: [4, NaN] as [number, number] }), /^perceiverConfig: 'train_size' must be \[height, width\], two positive integers, got \[4,null\]$/],
    [() => model.forward(undefined as never), /^PerceiverForOpticalFlow.forward: argument 'inputs' must be a Tensor \[B, 2, 27, H, W\], got undefined$/],
    [() => model.forward(frames4), /^PerceiverForOpticalFlow.forward: argument 'inputs' must have rank 5 \[B, 2, 27, H, W\], got shape \[1, 27, 4, 4\]$/],
    [() => model.forward(oneFrame), /^PerceiverForOpticalFlow.forward: argument 'inputs' must be \[B, 2, 27, H, W\] \(two frames of 3x3x3 patches\), got shape \[1, 1, 27, 4, 4\]$/],
    [() => model.forward(ints), /^PerceiverForOpticalFlow.forward: argument 'inputs' must be float32 or bfloat16 or float16, got int32$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
  const rgb = new Uint8Array(2 * 4 * 4 * 3);
  const badAsync: [() => Promise<unknown>, RegExp][] = [
    [() => estimateFlow(undefined as never, rgb, [4, 4]), /^estimateFlow: argument 'model' must be a PerceiverForOpticalFlow, got undefined$/],
    [() => estimateFlow(model, null as never, [4, 4]), /^estimateFlow: argument 'frames' must be an array or typed array of RGB values \[2, H, W, 3\], got null$/],
    [() => estimateFlow(model, rgb.subarray(3), [4, 4]), /^estimateFlow: argument 'frames' must hold 2 x 4 x 4 x 3 = 96 values .*, got 93$/],
    [() => estimateFlow(model, rgb, undefined as never), /^estimateFlow: argument 'size' must be \[height, width\], got undefined$/],
    [() => estimateFlow(model, rgb, [4, 'x'] as never), /^estimateFlow: argument 'size\[1\]' must be an integer >= 1, got 'x'$/],
    [() => estimateFlow(model, rgb, [4, 4], null as never), /^estimateFlow: argument 'opts' must be an object, got null$/],
    [() => estimateFlow(model, rgb, [4, 4], { onWindow: 5 as never }), /^estimateFlow: argument 'opts.onWindow' must be a function, got number 5$/],
    // Pixel values the model never saw, or that are not numbers (coerced or NaN before).
    [() => estimateFlow(model, Array.from(rgb, (_, i) => (i === 7 ? 300 : 0)), [4, 4]), /^estimateFlow: argument 'frames' must hold RGB values in \[0, 255\], got number 300 at index 7$/],
    [() => estimateFlow(model, Float32Array.from(rgb, (_, i) => (i === 2 ? NaN : 1)), [4, 4]), /got number NaN at index 2$/],
    [() => estimateFlow(model, Array.from(rgb, (_, i) => (i === 5 ? '9' : 0)) as never, [4, 4]), /got '9' at index 5$/],
    [() => estimateFlow(model, new Array(96), [4, 4]), /got undefined at index 0$/],
  ];
  for (const [f, message] of badAsync) await t.throwsAsync(f, { message }, String(message));
  for (const v of [frames4, oneFrame, ints]) v.dispose();
  model.dispose();
});

test('PerceiverForOpticalFlow and estimateFlow refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  const tiny = {
    num_latents: 4, d_latents: 8, d_model: 8, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 1, num_cross_attention_heads: 1, train_size: [4, 4] as [number, number],
  };
  const model = new PerceiverForOpticalFlow(tiny);
  const rgb = new Uint8Array(2 * 4 * 4 * 3);
  await assertUnknownOptions(t, [
    [() => new PerceiverForOpticalFlow(tiny, { outputScale: 20 } as never), 'PerceiverForOpticalFlow', 'opts', 'outputScale'],
    [() => estimateFlow(model, rgb, [4, 4], { minOverlap: 10 } as never), 'estimateFlow', 'opts', 'minOverlap'],
  ]);
  model.dispose();
});
