// countFlops: 2 x multiply-adds of every matmul, from the config. The released MLM and
// ImageNet-Fourier configs are checked against the products written out by hand (the
// numbers bench-models reports), and the fast-path count against fast-attention.ts' rule.
import test from 'ava';
import { countFlops } from '../models/flops.js';
import { LANGUAGE_PERCEIVER, VISION_PERCEIVER_FOURIER } from '../models/presets.js';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

test('deepmind/language-perceiver: 2048 bytes', (t) => {
  const enc = sum([256 * 1280 * 256, 2048 * 768 * 256, 2048 * 768 * 1280, 256 * 2048 * 256, 256 * 2048 * 1280, 256 * 1280 * 1280, 2 * 256 * 1280 * 1280]);
  const self = 26 * sum([256 * 1280 * 256, 256 * 1280 * 256, 256 * 1280 * 1280, 256 * 256 * 256, 256 * 256 * 1280, 256 * 1280 * 1280, 2 * 256 * 1280 * 1280]);
  const dec = sum([2048 * 768 * 256, 256 * 1280 * 256, 256 * 1280 * 768, 2048 * 256 * 256, 2048 * 256 * 768, 2048 * 768 * 768, 2 * 2048 * 768 * 768]);
  const logits = 2048 * 768 * 262;
  const f = countFlops(LANGUAGE_PERCEIVER);
  t.is(f.flops, 2 * (enc + self + dec + logits));
  t.is(f.fastFlops, f.flops, 'eight heads everywhere: no fast path');
  t.is(f.input, '2048 bytes (2048 output positions)');
  t.is(countFlops(LANGUAGE_PERCEIVER, { sequenceLength: 100 }).parts.find((p) => p.name === 'encoder cross-attention k projection')!.flops, 2 * 100 * 768 * 256);
});

test('deepmind/vision-perceiver-fourier: 224x224, and the one-head fast path', (t) => {
  const N = 224 * 224;
  const enc = sum([512 * 1024 * 261, N * 261 * 261, N * 261 * 261, 512 * N * 261, 512 * N * 261, 512 * 261 * 1024, 2 * 512 * 1024 * 1024]);
  const self = 48 * sum([512 * 1024 * 1024, 512 * 1024 * 1024, 512 * 1024 * 1024, 512 * 512 * 1024, 512 * 512 * 1024, 512 * 1024 * 1024, 2 * 512 * 1024 * 1024]);
  const dec = sum([1024 * 1024, 512 * 1024 * 1024, 512 * 1024 * 1024, 512 * 1024, 512 * 1024, 1024 * 1024, 2 * 1024 * 1024]);
  const f = countFlops(VISION_PERCEIVER_FOURIER);
  t.is(f.flops, 2 * (enc + self + dec + 1024 * 1000));
  t.true(Math.abs(f.flops / 1e9 - 406.12) < 0.01, `${(f.flops / 1e9).toFixed(2)} GFLOP`);
  // Fast path: no k/v projections of the inputs; queries folded through Wk (512 x 261 x 261), P·X (2 x 512 x N x 261), then Wv.
  const encFast = sum([512 * 1024 * 261, 512 * 261 * 261, 2 * 512 * N * 261, 512 * 261 * 261, 512 * 261 * 1024, 2 * 512 * 1024 * 1024]);
  const decFast = sum([1024 * 1024, 1024 * 1024, 2 * 512 * 1024, 1024 * 1024, 1024 * 1024, 2 * 1024 * 1024]);
  t.is(f.fastFlops, 2 * (encFast + self + decFast + 1024 * 1000));
});

test('every counted architecture at its config input size; unknown ones and bad sizes are refused', (t) => {
  const conv = countFlops({ ...VISION_PERCEIVER_FOURIER, architectures: ['PerceiverForImageClassificationConvProcessing'], d_model: 322 });
  t.is(conv.input, 'image 224x224 (55x55 tokens)');
  t.is(conv.parts[0].flops, 2 * 112 * 112 * 64 * 3 * 49);
  t.is(countFlops({ ...VISION_PERCEIVER_FOURIER, architectures: ['PerceiverForImageClassificationConvProcessing'], d_model: 322, conv_padding: 'same' }).input, 'image 224x224 (56x56 tokens)');
  const flow = countFlops({ architectures: ['PerceiverForOpticalFlow'], train_size: [368, 496], d_model: 322, num_latents: 2048, d_latents: 512 });
  t.is(flow.parts.find((p) => p.name === 'flow (final_layer)')!.flops, 2 * 368 * 496 * 322 * 2);
  t.throws(() => countFlops({ architectures: ['PerceiverForMultimodalAutoencoding'] }), { message: /not implemented for PerceiverForMultimodalAutoencoding/ });
  t.throws(() => countFlops({}), { message: /architectures\[0\] must name the model class/ });
  t.throws(() => countFlops(VISION_PERCEIVER_FOURIER, { imageSize: 0 }), { message: /imageSize must be a positive integer, got 0/ });
});
