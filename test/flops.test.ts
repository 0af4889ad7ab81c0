// countFlops: 2 x multiply-adds of every matmul, from the config. The released MLM and
// ImageNet-Fourier configs are checked against the products written out by hand (the
// numbers bench-models reports), and the fast-path count against fast-attention.ts' rule.
import test from 'ava';
import { join } from 'node:path';
import { readSafetensorsHeader } from '../lib/index.js';
import { countFlops } from '../models/flops.js';
import { LANGUAGE_PERCEIVER, VISION_PERCEIVER_FOURIER } from '../models/presets.js';
import { caseConfig, caseDir } from './helpers/hf-fixture.js';
import { assertUnknownOptions } from './helpers/options.js';

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
  t.throws(() => countFlops({ architectures: ['PerceiverForSequenceClassification'] }), { message: /not implemented for PerceiverForSequenceClassification/ });
  t.throws(() => countFlops({}), { message: /architectures\[0\] must name the model class/ });
  t.throws(() => countFlops(VISION_PERCEIVER_FOURIER, { imageSize: 0 }), { message: /imageSize must be a positive integer, got 0/ });
});

// The channel sizes countFlops assumes (HF's qk/v defaults per attention) checked
// against the weight shapes in HF's own checkpoints of the fixtures: every projection
// part must be 2 x rows x the weight's size, every attention product 2 x nq x nk x its
// channels.
const FIXTURE_TOKENS: Record<string, { dir: string; nk: number; decoder: string; nqDecoder: number }> = {
  mlm: { dir: 'mlm', nk: 48, decoder: 'perceiver.decoder.decoding_cross_attention', nqDecoder: 48 },
  image_fourier: { dir: 'image_fourier', nk: 56 * 56, decoder: 'perceiver.decoder.decoder.decoding_cross_attention', nqDecoder: 1 },
  image_learned: { dir: 'image_learned', nk: 12 * 12, decoder: 'perceiver.decoder.decoder.decoding_cross_attention', nqDecoder: 1 },
  image_conv: { dir: 'image_conv', nk: 13 * 13, decoder: 'perceiver.decoder.decoder.decoding_cross_attention', nqDecoder: 1 },
  optical_flow: { dir: 'optical_flow', nk: 12 * 16, decoder: 'perceiver.decoder.decoder.decoding_cross_attention', nqDecoder: 12 * 16 },
  // 2 frames of (16/4)² patches + 128 / 16 audio patches + the label; queries: 2x16x16 pixels + 8 + 1.
  multimodal: { dir: 'multimodal', nk: 2 * 16 + 8 + 1, decoder: 'perceiver.decoder.decoder.decoding_cross_attention', nqDecoder: 2 * 16 * 16 + 8 + 1 },
};

for (const [name, f] of Object.entries(FIXTURE_TOKENS)) {
  test(`${name}: the counted channels are those of HF's weights`, async (t) => {
    const config = caseConfig(f.dir);
    const header = await readSafetensorsHeader(join(caseDir(f.dir), 'model.safetensors'));
    const size = (k: string) => {
      const e = header.entries.get(k);
      if (!e) throw new Error(`no ${k}`);
      return e.shape;
    };
    const numel = (k: string) => size(k).reduce((a, b) => a * b, 1);
    const parts = new Map(countFlops(config).parts.map((p) => [p.name, p.flops]));
    const L = config.num_latents as number;
    const layers: [string, string, number, number, number][] = [
      ['encoder cross-attention', 'perceiver.encoder.cross_attention', L, f.nk, 1],
      ['self-attention', 'perceiver.encoder.self_attends.0', L, L, (config.num_blocks as number) * (config.num_self_attends_per_block as number)],
      ['decoder cross-attention', f.decoder, f.nqDecoder, L, 1],
    ];
    for (const [part, mod, nq, nk, times] of layers) {
      const w = (s: string) => `${mod}.${s}.weight`;
      const x = 2 * times;
      t.is(parts.get(`${part} q projection`), x * nq * numel(w('attention.self.query')), `${part} q`);
      t.is(parts.get(`${part} k projection`), x * nk * numel(w('attention.self.key')), `${part} k`);
      t.is(parts.get(`${part} v projection`), x * nk * numel(w('attention.self.value')), `${part} v`);
      t.is(parts.get(`${part} scores q·kᵀ`), x * nq * nk * size(w('attention.self.key'))[0], `${part} scores`);
      t.is(parts.get(`${part} weights·v`), x * nq * nk * size(w('attention.self.value'))[0], `${part} weights·v`);
      t.is(parts.get(`${part} output projection`), x * nq * numel(w('attention.output.dense')), `${part} output`);
      t.is(parts.get(`${part} MLP`), x * nq * (numel(w('mlp.dense1')) + numel(w('mlp.dense2'))), `${part} MLP`);
    }
  });
}

test('countFlops: bad arguments are refused with the argument named; config fields as perceiverConfig refuses them', (t) => {
  const bad: [() => unknown, RegExp][] = [
    [() => countFlops(undefined as never), /^countFlops: argument 'config' must be an object, got undefined$/],
    [() => countFlops([] as never), /^countFlops: argument 'config' must be an object, got array of length 0$/],
    [() => countFlops(LANGUAGE_PERCEIVER, null as never), /^countFlops: argument 'opts' must be an object, got null$/],
    [() => countFlops({ architectures: 'x' }), /^countFlops: config.architectures\[0\] must name the model class, got 'x'$/],
    [() => countFlops(LANGUAGE_PERCEIVER, { sequenceLength: NaN }), /^countFlops: sequenceLength must be a positive integer, got NaN$/],
    [() => countFlops({ ...VISION_PERCEIVER_FOURIER, layer_norm_eps: 'x' }), /^perceiverConfig: 'layer_norm_eps' must be a finite number >= 0, got "x"$/],
    [() => countFlops({ ...VISION_PERCEIVER_FOURIER, cross_attention_widening_factor: -1 }), /^perceiverConfig: 'cross_attention_widening_factor' must be a positive integer, got -1$/],
    [() => countFlops({ architectures: ['PerceiverForOpticalFlow'], train_size: [368, 496] }, { imageSize: 'x' as never }), /^countFlops: imageSize must be a positive integer, got "x"$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
});

test('countFlops refuses a misspelt option, naming the argument and the key', async (t) => {
  await assertUnknownOptions(t, [[() => countFlops(caseConfig('mlm'), { seqLength: 16 } as never), 'countFlops', 'opts', 'seqLength']]);
});
