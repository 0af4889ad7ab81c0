// The DeepMind (Haiku) flavour options (SPEC "Where HuggingFace's port differs") and
// the pieces the HF fixtures do not exercise, each against a plain-JS reference or an
// exact identity: tanh GELU, TF 'SAME' conv preprocessing (224 -> 56x56), the
// classifier decoder without query residual, the flow output scale, the decoder query
// mask with fully masked rows, sine-only Fourier features, and 'add' vs 'concat'
// position encodings. HF configs carry none of these options, so their defaults must
// leave HF's behaviour unchanged (test/models-*.test.ts and test/cli.test.ts check that).
import test from 'ava';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import {
  Conv2DDownsample,
  ConvTranspose2d,
  ConvTranspose3d,
  PerceiverImagePostprocessor,
  spaceToDepth,
  PerceiverAttention,
  PerceiverFourierPositionEncoding,
  PerceiverForImageClassificationConvProcessing,
  PerceiverForImageClassificationLearned,
  PerceiverForMaskedLM,
  PerceiverForOpticalFlow,
  PerceiverImagePreprocessor,
  PerceiverMLP,
  PerceiverSelfAttention,
  hfKeyMask,
  keyMask,
  loadModel,
  perceiverConfig,
  createModel,
  PerceiverModel,
  PerceiverProjectionDecoder,
} from '../models/index.js';
import type { ConvTranspose3dOptions } from '../models/index.js';
import { caseConfig, caseDir, caseTensors, loadCaseWeights, outputError } from './helpers/hf-fixture.js';
import { readAndDispose } from './helpers/read.js';
import {
  assertClose,
  attentionRef,
  batchNormRef,
  conv2dRef,
  geluRef,
  geluTanhRef,
  layerNormRef,
  matmulRef,
  maxPool2dRef,
  permuteRef,
  randomArray,
} from './helpers/reference.js';
import { baseline, live } from './helpers/device.js';
import { assertUnknownOptions } from './helpers/options.js';

type Arr = ArrayLike<number>;

function linearRef(x: Arr, m: number, w: Arr, b: Arr, n: number): Float64Array {
  return matmulRef(x, [m, x.length / m], w, [n, w.length / n], { transB: true, bias: b }).data;
}

function* modules(m: P.Module): Generator<P.Module> {
  yield m;
  for (const [, c] of m.namedChildren()) yield* modules(c);
}

/** Sets every parameter and buffer of a module to seeded values; returns them by name. */
function randomise(mod: P.Module, seed: number, lo = -0.5, hi = 0.5): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const dict: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(mod.stateDict())) {
    // Variances must stay positive and counters integral.
    out[k] = k.endsWith('running_var') ? randomArray(v.size, seed++, 0.5, 1.5) : randomArray(v.size, seed++, lo, hi);
    dict[k] = v.dtype === 'int32' ? P.zeros([...v.shape], { dtype: 'int32' }) : P.tensor(out[k], [...v.shape]);
  }
  mod.loadStateDict(dict);
  for (const v of Object.values(dict)) v.dispose();
  return out;
}

async function data(model: P.Module, name: string): Promise<Float32Array> {
  return (await model.stateDict()[name].data()) as Float32Array;
}

// ---- config -------------------------------------------------------------------------

test('the flavour options default to HF behaviour and bad values are refused with the option name', (t) => {
  const c = perceiverConfig({});
  t.is(c.hidden_act, 'gelu');
  t.is(c.conv_padding, 'hf');
  t.is(c.classifier_query_residual, true);
  t.is(c.flow_output_scale, 1);
  t.is(c.attention_mask_style, 'hf');
  t.throws(() => perceiverConfig({ conv_padding: 'SAME' as never }), { message: /conv_padding must be 'hf' or 'same', got "SAME"/ });
  t.throws(() => perceiverConfig({ classifier_query_residual: 0 as never }), { message: /classifier_query_residual must be true or false/ });
  t.throws(() => perceiverConfig({ flow_output_scale: 0 }), { message: /flow_output_scale must be a finite non-zero number/ });
  t.throws(() => perceiverConfig({ attention_mask_style: 'haiku' as never }), { message: /attention_mask_style must be 'hf' or 'deepmind'/ });
  t.throws(() => perceiverConfig({ hidden_act: 'swish' as never }), { message: /hidden_act 'swish' is not supported/ });
});

test('perceiverConfig: a field of the wrong type or value is refused with its name and what it got (NaN as NaN)', (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ use_query_residual: 'yes' }, /^perceiverConfig: use_query_residual must be true or false, got "yes"$/],
    [{ layer_norm_eps: NaN }, /^perceiverConfig: 'layer_norm_eps' must be a finite number >= 0, got NaN$/],
    [{ layer_norm_eps: -1 }, /'layer_norm_eps' must be a finite number >= 0, got -1$/],
    [{ initializer_range: 'x' }, /^perceiverConfig: 'initializer_range' must be a finite number >= 0, got "x"$/],
    [{ initializer_range: -0.02 }, /'initializer_range' must be a finite number >= 0, got -0.02$/],
    [{ qk_channels: 'x' }, /^perceiverConfig: 'qk_channels' must be null or a positive integer, got "x"$/],
    [{ qk_channels: NaN }, /'qk_channels' must be null or a positive integer, got NaN$/],
    [{ v_channels: -1 }, /'v_channels' must be null or a positive integer, got -1$/],
    [{ v_channels: true }, /'v_channels' must be null or a positive integer, got true$/],
    [{ self_attention_widening_factor: 1.5 }, /'self_attention_widening_factor' must be a positive integer, got 1.5$/],
    [{ cross_attention_widening_factor: 0 }, /'cross_attention_widening_factor' must be a positive integer, got 0$/],
    [{ output_num_channels: {} }, /'output_num_channels' must be a positive integer, got \{\}$/],
    [{ samples_per_patch: NaN }, /'samples_per_patch' must be a positive integer, got NaN$/],
    [{ output_shape: 'x' }, /'output_shape' must be an array of positive integers, got "x"$/],
    [{ output_shape: [1, -16, 4, 4] }, /'output_shape' must be an array of positive integers, got \[1,-16,4,4\]$/],
    [{ train_size: [368] }, /'train_size' must be \[height, width\], two positive integers, got \[368\]$/],
    [{ image_size: '56' }, /'image_size' must be a positive integer, got "56"$/],
    [{ num_frames: -1 }, /'num_frames' must be a positive integer, got -1$/],
    [{ audio_samples_per_frame: 0 }, /'audio_samples_per_frame' must be a positive integer, got 0$/],
    [{ _label_trainable_num_channels: 1.5 }, /'_label_trainable_num_channels' must be a positive integer, got 1.5$/],
    [{ num_labels: -1 }, /'num_labels' must be an integer >= 0, got -1$/],
    [{ id2label: 'x' }, /'id2label' must be an object, got "x"$/],
    [{ label2id: [] }, /'label2id' must be an object, got \[\]$/],
    [{ architectures: 'PerceiverForMaskedLM' }, /'architectures' must be an array of class names, got "PerceiverForMaskedLM"$/],
    [{ d_model: NaN }, /^perceiverConfig: 'd_model' must be a positive integer, got NaN$/],
    [{ hidden_act: null }, /^perceiverConfig: hidden_act must be one of gelu, .*, got null$/],
    [{ flow_output_scale: NaN }, /flow_output_scale must be a finite non-zero number, got NaN$/],
    [{ attention_probs_dropout_prob: NaN }, /attention_probs_dropout_prob must be a number in \[0, 1\), got NaN$/],
  ];
  for (const [json, message] of bad) t.throws(() => perceiverConfig(json as never), { instanceOf: TypeError, message }, JSON.stringify(json));
  t.throws(() => perceiverConfig(null as never), { instanceOf: TypeError, message: /^perceiverConfig: argument 'json' must be a config.json object, got null$/ });
  // Sizes no model can be built at are refused before anything is allocated: a
  // constructor that ran out of memory part-way left gigabytes filling on the queue.
  const before = P.memory().cpu.bytes;
  const huge: [Record<string, unknown>, RegExp][] = [
    [{ d_latents: 2 ** 31 }, /^perceiverConfig: 'd_latents' must be at most 1048576, got 2147483648$/],
    [{ num_labels: 2 ** 21 }, /^perceiverConfig: 'num_labels' must be at most 1048576, got 2097152$/],
    [{ num_latents: 2 ** 16, d_latents: 2 ** 16 }, /^perceiverConfig: num_latents x d_latents \(the latents\) is 4294967296 elements, more than a weight may have \(2147483648\)$/],
    [{ d_latents: 2 ** 15, self_attention_widening_factor: 4 }, /d_latents x d_latents x self_attention_widening_factor \(a latent MLP\) is 4294967296 elements/],
  ];
  for (const [json, message] of huge) t.throws(() => perceiverConfig(json as never), { instanceOf: RangeError, message }, JSON.stringify(json));
  t.throws(() => new PerceiverForMaskedLM({ d_latents: 2 ** 31 } as never), { instanceOf: RangeError, message: /'d_latents' must be at most 1048576/ });
  t.is(P.memory().cpu.bytes, before, 'nothing allocated');
  // HF's legal values stay legal.
  const c = perceiverConfig({ qk_channels: null, v_channels: 64, layer_norm_eps: 0, initializer_range: 0, id2label: {}, use_query_residual: false });
  t.is(c.num_labels, 0);
});

test('PerceiverModel, keyMask, hfKeyMask: bad arguments are refused with the argument named', (t) => {
  const c = perceiverConfig({ d_latents: 8, d_model: 6, num_latents: 4, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 1 });
  const model = new PerceiverModel(c, { decoder: new PerceiverProjectionDecoder({ numClasses: 5, numZChannels: 8 }) });
  const x = P.zeros([1, 5, 6]);
  const m1 = P.ones([5]);
  const bad: [() => unknown, RegExp][] = [
    [() => new PerceiverModel(undefined as never), /^PerceiverModel: argument 'config' must be an object, got undefined$/],
    [() => new PerceiverModel(c, null as never), /^PerceiverModel: argument 'parts' must be an object, got null$/],
    [() => new PerceiverModel(c, { decoder: NaN as never }), /^PerceiverModel: argument 'parts.decoder' must be a Module, got number NaN$/],
    [() => model.forward(x, null as never), /^PerceiverModel.forward: argument 'opts' must be an object, got null$/],
    [() => model.forward(x, { attentionMask: NaN as never }), /^PerceiverModel.forward: argument 'opts.attentionMask' must be a Tensor \[B, M\], got number NaN$/],
    [() => model.forward(x, { attentionMask: m1 }), /^PerceiverModel.forward: argument 'opts.attentionMask' must have rank 2 \[B, M\], got shape \[5\]$/],
    [() => model.forward(x, { queryMask: 'x' as never }), /^PerceiverModel.forward: argument 'opts.queryMask' must be a Tensor \[B, N_out\], got 'x'$/],
    [() => model.forward(x, { subsampledOutputPoints: 5 as never }), /^PerceiverModel.forward: argument 'opts.subsampledOutputPoints' must be an object .*got number 5$/],
    [() => model.forward(undefined as never), /^PerceiverModel: without a preprocessor, inputs must be one \[B, M, d_model\] tensor, got undefined$/],
    [() => keyMask(undefined as never), /^keyMask: argument 'attentionMask' must be a Tensor \[B, M\], got undefined$/],
    [() => keyMask('x' as never), /^keyMask: argument 'attentionMask' must be a Tensor \[B, M\], got 'x'$/],
    [() => hfKeyMask(null as never), /^hfKeyMask: argument 'attentionMask' must be a Tensor \[B, M\], got null$/],
    [() => hfKeyMask(m1), /^hfKeyMask: argument 'attentionMask' must have rank 2 \[B, M\], got shape \[5\]$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
  for (const v of [x, m1]) v.dispose();
  model.dispose();
});

test('createModel: a config or options that are not objects are refused with the argument named', (t) => {
  const config = caseConfig('mlm');
  const bad: [() => unknown, RegExp][] = [
    [() => createModel(undefined as never), /^createModel: argument 'config' must be an object, got undefined$/],
    [() => createModel(null as never), /^createModel: argument 'config' must be an object, got null$/],
    [() => createModel('x' as never), /^createModel: argument 'config' must be an object, got 'x'$/],
    [() => createModel(config, null as never), /^createModel: argument 'opts' must be an object, got null$/],
    [() => createModel({ ...config, architectures: ['toString'] }), /^createModel: architecture 'toString' is not supported/],
    [() => createModel({ ...config, architectures: NaN as never }), /^createModel: config.architectures\[0\] must name the model class, got number NaN$/],
    [() => createModel({ ...config, qk_channels: 'x' as never }), /^perceiverConfig: 'qk_channels' must be null or a positive integer, got "x"$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
});

test('PerceiverModel and createModel refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  const c = perceiverConfig({ d_latents: 8, d_model: 6, num_latents: 4, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 1 });
  const model = new PerceiverModel(c);
  const x = P.zeros([1, 5, 6]);
  await assertUnknownOptions(t, [
    [() => new PerceiverModel(c, { preprocessor: undefined } as never), 'PerceiverModel', 'parts', 'preprocessor'],
    [() => model.forward(x, { interpolatePosEncodng: true } as never), 'PerceiverModel.forward', 'opts', 'interpolatePosEncodng'],
    [() => model.forward(x, { attention_mask: null } as never), 'PerceiverModel.forward', 'opts', 'attention_mask'],
    [() => createModel(caseConfig('mlm'), { dtype: 'bfloat16' } as never), 'createModel', 'opts', 'dtype'],
  ]);
  x.dispose();
  model.dispose();
});

// ---- GELU ---------------------------------------------------------------------------

test("hidden_act 'gelu_new' puts the tanh GELU in every MLP of a model, and it is DeepMind's tanh form, not the erf form", async (t) => {
  const tanhModel = new PerceiverForMaskedLM({ ...caseConfig('mlm'), hidden_act: 'gelu_new' });
  const mlps = [...modules(tanhModel)].filter((m): m is PerceiverMLP => m instanceof PerceiverMLP);
  // encoder cross-attention + 2 self-attends + decoder cross-attention
  t.is(mlps.length, 4);
  for (const m of mlps) t.is(m.activation, 'gelu_tanh');
  tanhModel.dispose();
  const hfModel = new PerceiverForMaskedLM(caseConfig('mlm'));
  for (const m of modules(hfModel)) if (m instanceof PerceiverMLP) t.is(m.activation, 'gelu');
  hfModel.dispose();

  // Inputs up to |3|, where the two forms differ by up to ~5e-4.
  const [n, c] = [16, 8];
  const mlp = new PerceiverMLP(c, 1, { hiddenAct: 'gelu_new' });
  const p = randomise(mlp, 3, -1, 1);
  const x = randomArray(n * c, 4, -3, 3);
  const got = await readAndDispose(mlp.forward(P.tensor(x, [n, c])));
  const h = linearRef(x, n, p['dense1.weight'], p['dense1.bias'], c);
  const want = linearRef(Array.from(h, geluTanhRef), n, p['dense2.weight'], p['dense2.bias'], c);
  const erf = linearRef(Array.from(h, geluRef), n, p['dense2.weight'], p['dense2.bias'], c);
  assertClose(t, got, want, { rtol: 1e-5, atol: 1e-6 });
  const gap = Math.max(...Array.from(want, (w, i) => Math.abs(w - erf[i])));
  t.true(gap > 1e-4, `the two GELU forms must be distinguishable here (max gap ${gap})`);
  mlp.dispose();
});

// ---- conv preprocessor --------------------------------------------------------------

/** Conv 7x7/2 (no bias) -> BatchNorm -> ReLU -> max-pool 3x3/2 with the given paddings, in plain JS. */
function convDownsampleRef(x: Arr, shape: number[], p: Record<string, Float32Array>, cout: number, convPad: 'same' | [number, number, number, number], poolPad: 'same' | 'valid') {
  const oihw = p['conv.weight'];
  const hwio = permuteRef(oihw, [cout, shape[3], 7, 7], [2, 3, 1, 0]).data;
  const conv = conv2dRef(x, shape, hwio, [7, 7, shape[3], cout], { stride: [2, 2], padding: convPad });
  const bn = batchNormRef(conv.data, cout, p['batchnorm.running_mean'], p['batchnorm.running_var'], p['batchnorm.weight'], p['batchnorm.bias']);
  const relu = Array.from(bn, (v) => Math.max(v, 0));
  return maxPool2dRef(relu, conv.shape, [3, 3], [2, 2], poolPad);
}

test("conv padding 'same' is TF SAME for the 7x7/2 conv and the 3x3/2 max-pool; 'hf' pads 3 and pools unpadded", async (t) => {
  const [B, H, W, C, O] = [2, 17, 16, 3, 5];
  const x = randomArray(B * H * W * C, 11, -1, 1);
  for (const padding of ['same', 'hf'] as const) {
    const mod = new Conv2DDownsample({ inChannels: C, outChannels: O, padding });
    const p = randomise(mod, 20);
    const xt = P.tensor(x, [B, H, W, C]);
    const y = mod.forward(xt);
    const want = padding === 'same' ? convDownsampleRef(x, [B, H, W, C], p, O, 'same', 'same') : convDownsampleRef(x, [B, H, W, C], p, O, [3, 3, 3, 3], 'valid');
    // SAME: 17x16 -> 9x8 -> 5x4; HF: 17x16 -> 9x8 -> 4x3.
    t.deepEqual(y.shape, want.shape, padding);
    t.deepEqual(want.shape, padding === 'same' ? [B, 5, 4, O] : [B, 4, 3, O]);
    assertClose(t, await readAndDispose(y), want.data, { rtol: 1e-4, atol: 1e-5, msg: padding });
    xt.dispose();
    mod.dispose();
  }
});

test("conv_padding 'same' gives DeepMind's 56x56 tokens at 224 px (HF: 55x55) and loads HF's weights unchanged", async (t) => {
  const cfg = caseConfig('image_conv');
  const px = P.randn([1, 3, 224, 224], { seed: 5 });
  for (const [padding, side] of [['same', 56], ['hf', 55]] as const) {
    const model = new PerceiverForImageClassificationConvProcessing({ ...cfg, conv_padding: padding });
    await loadCaseWeights('image_conv', model);
    const pre = model.perceiver.inputPreprocessor as PerceiverImagePreprocessor;
    const { inputs, inputsWithoutPos } = pre.forward(px);
    t.deepEqual(inputs.shape, [1, side * side, 64 + 2 + 2 * 2 * 64], padding);
    inputs.dispose();
    (inputsWithoutPos as Tensor).dispose();
    model.dispose();
  }
  // At the fixture's 32 px: 64 tokens instead of 49, so a different (finite) answer.
  const model = new PerceiverForImageClassificationConvProcessing({ ...cfg, conv_padding: 'same' });
  await loadCaseWeights('image_conv', model);
  const input = await caseTensors('image_conv', 'input', ['pixel_values']);
  const expected = await caseTensors('image_conv', 'expected', ['logits']);
  const got = await readAndDispose(model.forward(input.pixel_values).logits);
  t.true(got.every(Number.isFinite));
  t.true(outputError(got, await expected.logits.data()).maxDiff > 1e-3, 'SAME padding changes the answer');
  for (const x of [px, input.pixel_values, expected.logits]) x.dispose();
  model.dispose();
});

// ---- query residual -----------------------------------------------------------------

test('a cross-attention without query residual differs from one with it by exactly the query', async (t) => {
  const [Nq, Nk, qDim, kvDim] = [3, 5, 8, 6];
  const opts = { isCrossAttention: true, qDim, kvDim, numHeads: 2 } as const;
  const withRes = new PerceiverAttention({ ...opts, useQueryResidual: true });
  const without = new PerceiverAttention({ ...opts, useQueryResidual: false });
  const sd = withRes.stateDict();
  without.loadStateDict(sd);
  const q = randomArray(Nq * qDim, 1);
  const [tq, tkv] = [P.tensor(q, [1, Nq, qDim]), P.tensor(randomArray(Nk * kvDim, 2), [1, Nk, kvDim])];
  const a = await readAndDispose(withRes.forward(tq, tkv));
  const b = await readAndDispose(without.forward(tq, tkv));
  assertClose(t, Array.from(a, (v, i) => v - b[i]), q, { rtol: 1e-5, atol: 1e-6 });
  for (const x of [tq, tkv]) x.dispose();
  withRes.dispose();
  without.dispose();
});

test('classifier_query_residual false removes the decoder query residual of the image classifiers (DeepMind learned-position model)', async (t) => {
  const cfg = caseConfig('image_learned');
  const hf = new PerceiverForImageClassificationLearned(cfg);
  const dm = new PerceiverForImageClassificationLearned({ ...cfg, classifier_query_residual: false });
  const layerOf = (m: PerceiverForImageClassificationLearned) => [...modules(m.perceiver.decoder!)].find((x): x is PerceiverAttention => x instanceof PerceiverAttention)!;
  t.true(layerOf(hf).useQueryResidual);
  t.false(layerOf(dm).useQueryResidual);
  t.true(dm.perceiver.encoder.crossAttention.attention.useQueryResidual, "the encoder's residual follows use_query_residual, not this option");
  await loadCaseWeights('image_learned', hf);
  await loadCaseWeights('image_learned', dm);
  const { pixel_values: px } = await caseTensors('image_learned', 'input', ['pixel_values']);
  const a = await readAndDispose(hf.forward(px).logits);
  const b = await readAndDispose(dm.forward(px).logits);
  t.true(outputError(a, b).maxDiff > 1e-4, 'with a non-zero query the residual matters');
  // With an all-zero query the residual adds nothing, so both must agree.
  const key = 'perceiver.decoder.decoder.output_position_encodings.position_embeddings';
  const zero = P.zeros([...hf.stateDict()[key].shape]);
  hf.loadStateDict({ [key]: zero }, { strict: false });
  dm.loadStateDict({ [key]: zero }, { strict: false });
  const c = await readAndDispose(hf.forward(px).logits);
  const d = await readAndDispose(dm.forward(px).logits);
  assertClose(t, d, c, { rtol: 1e-5, atol: 1e-6 });
  for (const x of [zero, px]) x.dispose();
  hf.dispose();
  dm.dispose();
});

// ---- flow scale ---------------------------------------------------------------------

test("flow_output_scale 20 (DeepMind's demo) multiplies HF's flow by 20", async (t) => {
  const model = new PerceiverForOpticalFlow({ ...caseConfig('optical_flow'), flow_output_scale: 20 });
  await loadCaseWeights('optical_flow', model);
  const { inputs } = await caseTensors('optical_flow', 'input', ['inputs']);
  const { logits } = await caseTensors('optical_flow', 'expected', ['logits']);
  const got = await readAndDispose(model.forward(inputs).logits);
  const want = Array.from(await logits.data(), (v) => 20 * v);
  const { maxDiff } = outputError(got, want);
  // The fixture's bound, scaled with the output.
  t.true(maxDiff <= 20 * 1e-4, `max |diff| ${maxDiff}`);
  for (const x of [inputs, logits]) x.dispose();
  model.dispose();
});

// ---- masks --------------------------------------------------------------------------

test('attention with a fully masked query row outputs exactly 0 there; other rows match the reference', async (t) => {
  const [Nq, Nk, qDim, kvDim, H] = [4, 6, 8, 6, 2];
  const att = new PerceiverSelfAttention({ isCrossAttention: true, qDim, kvDim, numHeads: H });
  const p = randomise(att, 30);
  const xq = randomArray(2 * Nq * qDim, 5);
  const xkv = randomArray(2 * Nk * kvDim, 6);
  // outer(query_mask, kv_mask) per batch: batch 0 masks query 1 and keys 0, 3; batch 1 masks query 3 only.
  const qm = [[1, 0, 1, 1], [1, 1, 1, 0]];
  const km = [[0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1]];
  const mask = new Uint8Array(2 * Nq * Nk);
  for (let b = 0; b < 2; b++) for (let i = 0; i < Nq; i++) for (let j = 0; j < Nk; j++) mask[(b * Nq + i) * Nk + j] = qm[b][i] * km[b][j];
  const [tq, tkv, tm] = [P.tensor(xq, [2, Nq, qDim]), P.tensor(xkv, [2, Nk, kvDim]), P.tensor(mask, [2, Nq, Nk])];
  const got = await readAndDispose(att.forward(tq, tkv, tm));
  const lq = layerNormRef(xq, qDim, p['layernorm1.weight'], p['layernorm1.bias']);
  const lkv = layerNormRef(xkv, kvDim, p['layernorm2.weight'], p['layernorm2.bias']);
  const q = linearRef(lq, 2 * Nq, p['query.weight'], p['query.bias'], qDim);
  const k = linearRef(lkv, 2 * Nk, p['key.weight'], p['key.bias'], qDim);
  const v = linearRef(lkv, 2 * Nk, p['value.weight'], p['value.bias'], qDim);
  const want = attentionRef(q, k, v, { B: 2, Nq, Nk, H, Dqk: qDim / H, Dv: qDim / H }, { data: mask, shape: [2, Nq, Nk] });
  assertClose(t, got, want, { rtol: 1e-4, atol: 1e-5 });
  for (const [b, i] of [[0, 1], [1, 3]]) t.deepEqual(Array.from(got.subarray((b * Nq + i) * qDim, (b * Nq + i + 1) * qDim)), new Array(qDim).fill(0), `row ${b},${i}`);
  for (const x of [tq, tkv, tm]) x.dispose();
  att.dispose();
});

test("attention_mask_style 'deepmind': an input whose attention_mask is all 0 gets logits that do not depend on its tokens, and the other rows are untouched", async (t) => {
  const model = new PerceiverForMaskedLM({ ...caseConfig('mlm'), attention_mask_style: 'deepmind' });
  await loadCaseWeights('mlm', model);
  const { inputs } = await caseTensors('mlm', 'input', ['inputs']);
  const ids = (await inputs.data()) as Int32Array;
  const n = ids.length / 2;
  const mask = P.tensor(Uint8Array.from({ length: 2 * n }, (_, i) => (i < n ? 1 : 0)), [2, n]);
  const other = P.tensor(Int32Array.from(ids, (v, i) => (i < n ? v : 6 + ((v * 13 + i) % 256))), [2, n]);
  const a = await readAndDispose(model.forward(inputs, { attentionMask: mask }).logits);
  const b = await readAndDispose(model.forward(other, { attentionMask: mask }).logits);
  t.deepEqual(a, b);
  t.true(a.every(Number.isFinite));
  const row0 = P.slice(inputs, 0, 0, 1);
  const alone = await readAndDispose(model.forward(row0).logits);
  // Batch 2 against batch 1: CUDA's GEMMs may pick another algorithm per batch size, so
  // the bound is float32 rounding at the logits' scale (the fixtures' 1e-4), not bit-equality.
  assertClose(t, a.subarray(0, alone.length), alone, { rtol: 1e-4, atol: 1e-4, msg: 'row 0 as if alone' });
  for (const x of [inputs, mask, other, row0]) x.dispose();
  model.dispose();
});

for (const fastPath of [false, true]) {
  test(`HF masks: a batch row whose attention_mask is all 0 attends uniformly to every key, as HF's finfo.min arithmetic does (${fastPath ? 'fast' : 'plain'} path)`, async (t) => {
    const [Nq, Nk, qDim, kvDim] = [4, 6, 8, 6];
    const att = new PerceiverSelfAttention({ isCrossAttention: true, qDim, kvDim, numHeads: 1 });
    att.fastPath = fastPath;
    const p = randomise(att, 31);
    const xq = randomArray(2 * Nq * qDim, 7);
    const xkv = randomArray(2 * Nk * kvDim, 8);
    const km = [1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0]; // batch 0 partly masked, batch 1 fully
    const hfMask = P.tensor(Int32Array.from(km), [2, Nk]);
    const { mask, queryScale } = hfKeyMask(hfMask);
    const [tq, tkv] = [P.tensor(xq, [2, Nq, qDim]), P.tensor(xkv, [2, Nk, kvDim])];
    const got = await readAndDispose(att.forward(tq, tkv, mask, queryScale));
    const lq = layerNormRef(xq, qDim, p['layernorm1.weight'], p['layernorm1.bias']);
    const lkv = layerNormRef(xkv, kvDim, p['layernorm2.weight'], p['layernorm2.bias']);
    const q = linearRef(lq, 2 * Nq, p['query.weight'], p['query.bias'], qDim);
    const k = linearRef(lkv, 2 * Nk, p['key.weight'], p['key.bias'], qDim);
    const v = linearRef(lkv, 2 * Nk, p['value.weight'], p['value.bias'], qDim);
    const want = attentionRef(q, k, v, { B: 2, Nq, Nk, H: 1, Dqk: qDim, Dv: qDim }, { data: km, shape: [2, 1, Nk] });
    // Batch 1: every logit is finfo.min, so softmax is uniform and each query gets the mean value.
    for (let i = 0; i < Nq; i++)
      for (let c = 0; c < qDim; c++) {
        let sum = 0;
        for (let j = 0; j < Nk; j++) sum += v[(Nk + j) * qDim + c];
        want[(Nq + i) * qDim + c] = sum / Nk;
      }
    assertClose(t, got, want, { rtol: 1e-4, atol: 1e-5 });
    for (const x of [tq, tkv, hfMask, mask, queryScale]) x.dispose();
    att.dispose();
  });
}

test('HF masks through a whole model: a fully masked row equals the unmasked row of a copy whose cross-attention queries are zero', async (t) => {
  const model = new PerceiverForMaskedLM(caseConfig('mlm'));
  await loadCaseWeights('mlm', model);
  const zeroQ = new PerceiverForMaskedLM(caseConfig('mlm'));
  await loadCaseWeights('mlm', zeroQ);
  const sd = zeroQ.stateDict();
  const qKeys = ['perceiver.encoder.cross_attention.attention.self.query.weight', 'perceiver.encoder.cross_attention.attention.self.query.bias'];
  const zeros: Record<string, Tensor> = {};
  for (const key of qKeys) zeros[key] = P.zeros(sd[key].shape);
  zeroQ.loadStateDict(zeros, { strict: false });
  const { inputs } = await caseTensors('mlm', 'input', ['inputs']);
  const n = inputs.shape[1];
  const mask = P.tensor(Uint8Array.from({ length: 2 * n }, (_, i) => (i < n ? 1 : 0)), [2, n]);
  const masked = await readAndDispose(model.forward(inputs, { attentionMask: mask }).logits);
  const row1 = P.slice(inputs, 0, 1, 2);
  const want = await readAndDispose(zeroQ.forward(row1).logits);
  const half = masked.length / 2;
  assertClose(t, masked.subarray(half), want, { rtol: 1e-4, atol: 1e-4, msg: 'row 1 (fully masked)' });
  const alone = await readAndDispose(model.forward(P.slice(inputs, 0, 0, 1)).logits);
  assertClose(t, masked.subarray(0, half), alone, { rtol: 1e-4, atol: 1e-4, msg: 'row 0 untouched (batch 2 against batch 1)' });
  for (const x of [inputs, mask, row1, ...Object.values(zeros)]) x.dispose();
  model.dispose();
  zeroQ.dispose();
});

test("attention_mask_style 'deepmind': a masked decoder query gets a zero attention output, so its logits are output.dense.bias -> MLP -> embedding; unmasked queries are unchanged", async (t) => {
  const cfg = caseConfig('mlm');
  const model = new PerceiverForMaskedLM({ ...cfg, attention_mask_style: 'deepmind' });
  await loadCaseWeights('mlm', model);
  const input = await caseTensors('mlm', 'input', ['inputs', 'attention_mask']);
  const [B, Q, V, C] = [2, 48, 262, 64];
  const masked = (b: number, i: number) => (b === 0 ? i % 5 === 0 : i >= 40);
  const qm = P.tensor(Int32Array.from({ length: B * Q }, (_, j) => (masked(Math.floor(j / Q), j % Q) ? 0 : 1)), [B, Q]);
  const got = await readAndDispose(model.forward(input.inputs, { attentionMask: input.attention_mask, queryMask: qm }).logits);
  const plain = await readAndDispose(model.forward(input.inputs, { attentionMask: input.attention_mask }).logits);

  const pre = 'perceiver.decoder.decoding_cross_attention.';
  const x = await data(model, `${pre}attention.output.dense.bias`);
  const ln = layerNormRef(x, C, await data(model, `${pre}layernorm.weight`), await data(model, `${pre}layernorm.bias`));
  const h = linearRef(ln, 1, await data(model, `${pre}mlp.dense1.weight`), await data(model, `${pre}mlp.dense1.bias`), C);
  const m = linearRef(Array.from(h, geluRef), 1, await data(model, `${pre}mlp.dense2.weight`), await data(model, `${pre}mlp.dense2.bias`), C);
  const y = Array.from(m, (v, i) => v + x[i]);
  const want = linearRef(y, 1, await data(model, 'perceiver.input_preprocessor.embeddings.weight'), await data(model, 'embedding_decoder.bias'), V);
  let checked = 0;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < Q; i++) {
      const row = got.subarray((b * Q + i) * V, (b * Q + i + 1) * V);
      if (masked(b, i)) {
        assertClose(t, row, want, { rtol: 1e-4, atol: 1e-4, msg: `masked query ${b},${i}` });
        checked++;
      } else assertClose(t, row, plain.subarray((b * Q + i) * V, (b * Q + i + 1) * V), { rtol: 1e-6, atol: 1e-6, msg: `query ${b},${i}` });
    }
  t.is(checked, 10 + 8);
  const hf = new PerceiverForMaskedLM(cfg);
  t.throws(() => hf.forward(input.inputs, { queryMask: qm }), { message: /query mask needs config attention_mask_style 'deepmind' \(HF ignores query masks\)/ });
  const bad = P.ones([B, Q - 1]);
  t.throws(() => model.forward(input.inputs, { queryMask: bad }), { message: /query_mask must be \[B, N_out\] = \[2, 48\], got \[2, 47\]/ });
  for (const z of [qm, bad, ...Object.values(input)]) z.dispose();
  hf.dispose();
  model.dispose();
});

// ---- position encodings -------------------------------------------------------------

test('sine-only Fourier features are [pos?, sin(pi * pos * f)] with f = linspace(1, R/2, K) per axis, axis-major, and no cos', async (t) => {
  const dims = [3, 5];
  const R = [6, 10];
  const K = 4;
  for (const concatPos of [true, false]) {
    const pe = new PerceiverFourierPositionEncoding({ numBands: K, maxResolution: R, sineOnly: true, concatPos });
    const ch = (concatPos ? 2 : 0) + 2 * K;
    t.is(pe.outputSize, ch);
    const out = pe.forward(2, dims);
    t.deepEqual(out.shape, [2, 15, ch]);
    const got = await readAndDispose(out);
    const want: number[] = [];
    for (let b = 0; b < 2; b++)
      for (let y = 0; y < dims[0]; y++)
        for (let x = 0; x < dims[1]; x++) {
          const pos = [-1 + (2 * y) / (dims[0] - 1), -1 + (2 * x) / (dims[1] - 1)];
          if (concatPos) want.push(...pos);
          for (let a = 0; a < 2; a++) for (let k = 0; k < K; k++) want.push(Math.sin(Math.PI * pos[a] * (1 + ((R[a] / 2 - 1) * k) / (K - 1))));
        }
    assertClose(t, got, want, { rtol: 0, atol: 2e-6, msg: `concatPos ${concatPos}` });
    pe.dispose();
  }
});

test("position mode 'add' sums the encoding into the features (channels unchanged); 'concat' appends it", async (t) => {
  const cfg = perceiverConfig({});
  const mk = (mode: 'add' | 'concat') =>
    new PerceiverImagePreprocessor(cfg, {
      prepType: 'conv1x1',
      spatialDownsample: 1,
      outChannels: 8,
      positionEncodingType: 'trainable',
      trainable: { indexDims: 12, numChannels: 8 },
      concatOrAddPos: mode,
    });
  const add = mk('add');
  const cat = mk('concat');
  cat.loadStateDict(add.stateDict());
  t.is(add.numChannels, 8);
  t.is(cat.numChannels, 16);
  const px = P.randn([2, 3, 3, 4], { seed: 9 });
  const a = add.forward(px);
  const c = cat.forward(px);
  t.deepEqual(a.inputs.shape, [2, 12, 8]);
  t.deepEqual(c.inputs.shape, [2, 12, 16]);
  const feats = await readAndDispose(a.inputsWithoutPos as Tensor);
  const pos = (await add.stateDict()['position_embeddings.position_embeddings'].data()) as Float32Array;
  const sum = Array.from(feats, (v, i) => v + pos[i % (12 * 8)]);
  assertClose(t, await readAndDispose(a.inputs), sum, { rtol: 1e-6, atol: 1e-7, msg: 'add' });
  const cd = await readAndDispose(c.inputs);
  const cf = Array.from({ length: 2 * 12 * 16 }, (_, j) => {
    const [r, ch] = [Math.floor(j / 16), j % 16];
    return ch < 8 ? feats[r * 8 + ch] : pos[(r % 12) * 8 + ch - 8];
  });
  t.deepEqual(Array.from(cd), cf, 'concat: features first, then the encoding');
  (c.inputsWithoutPos as Tensor).dispose();
  px.dispose();
  add.dispose();
  cat.dispose();
});

// ---- loadModel ----------------------------------------------------------------------

test.serial('loadModel builds the class architectures[0] names, loads its weights strictly, and leaks nothing', async (t) => {
  const before = (await baseline());
  const model = await loadModel(caseDir('optical_flow'));
  if (!(model instanceof PerceiverForOpticalFlow)) throw new Error(`loadModel gave ${model.constructor.name}`);
  const { inputs } = await caseTensors('optical_flow', 'input', ['inputs']);
  const { logits } = await caseTensors('optical_flow', 'expected', ['logits']);
  const got = model.forward(inputs).logits;
  const { maxDiff, bound } = outputError(await got.data(), await logits.data());
  t.true(maxDiff <= bound);
  for (const x of [inputs, logits, got]) x.dispose();
  model.dispose();
  await t.throwsAsync(loadModel(caseDir('nope')), { message: /model folder '.*nope' does not exist/ });
  t.is(live().tensors, before.tensors, 'live tensors');
  t.is(live().bytes, before.bytes, 'live bytes');
});

// ---- image postprocessor ------------------------------------------------------------

/** PyTorch's ConvTranspose2d by its definition: every input pixel scatters weight * value to out[a*s - p + k]. */
function convTransposeRef(x: Arr, [B, H, W, I]: number[], w: Arr, O: number, k: number, s: number, p: number, op = 0): { data: Float64Array; shape: number[] } {
  const [OH, OW] = [(H - 1) * s - 2 * p + k + op, (W - 1) * s - 2 * p + k + op];
  const out = new Float64Array(B * OH * OW * O);
  for (let b = 0; b < B; b++)
    for (let a = 0; a < H; a++)
      for (let c = 0; c < W; c++)
        for (let i = 0; i < I; i++) {
          const xv = x[((b * H + a) * W + c) * I + i];
          for (let ky = 0; ky < k; ky++)
            for (let kx = 0; kx < k; kx++) {
              const [y, z] = [a * s - p + ky, c * s - p + kx];
              if (y < 0 || y >= OH || z < 0 || z >= OW) continue;
              for (let o = 0; o < O; o++) out[((b * OH + y) * OW + z) * O + o] += xv * w[((i * O + o) * k + ky) * k + kx];
            }
        }
  return { data: out, shape: [B, OH, OW, O] };
}

/** Haiku's Conv2DTranspose (lax.conv_transpose, 'SAME', no kernel flip) for k 4, s 2: dilate, pad (2, 2), correlate with w_hk [kh, kw, out, in]. */
function haikuTransposeRef(x: Arr, [B, H, W, I]: number[], wHk: (ky: number, kx: number, o: number, i: number) => number, O: number): Float64Array {
  const [k, s, lo] = [4, 2, 2];
  const [DH, DW] = [(H - 1) * s + 1 + 2 * lo, (W - 1) * s + 1 + 2 * lo];
  const at = (b: number, y: number, z: number, i: number) => {
    const [yy, zz] = [y - lo, z - lo];
    if (yy < 0 || zz < 0 || yy % s || zz % s || yy / s >= H || zz / s >= W) return 0;
    return x[((b * H + yy / s) * W + zz / s) * I + i];
  };
  const [OH, OW] = [DH - k + 1, DW - k + 1];
  const out = new Float64Array(B * OH * OW * O);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < OH; y++)
      for (let z = 0; z < OW; z++)
        for (let o = 0; o < O; o++) {
          let acc = 0;
          for (let ky = 0; ky < k; ky++) for (let kx = 0; kx < k; kx++) for (let i = 0; i < I; i++) acc += at(b, y + ky, z + kx, i) * wHk(ky, kx, o, i);
          out[((b * OH + y) * OW + z) * O + o] = acc;
        }
  return out;
}

test("ConvTranspose2d matches PyTorch's definition for several strides, paddings and kernels", async (t) => {
  for (const [k, s, p, op] of [[4, 2, 1, 0], [3, 2, 0, 0], [3, 1, 1, 0], [5, 3, 2, 0], [3, 2, 1, 1]]) {
    const [B, H, W, I, O] = [2, 3, 4, 3, 5];
    const conv = new ConvTranspose2d(I, O, k, { stride: s, padding: p, outputPadding: op });
    const w = randomise(conv, 40 + k);
    const x = randomArray(B * H * W * I, 41);
    const xt = P.tensor(x, [B, H, W, I]);
    const y = conv.forward(xt);
    const want = convTransposeRef(x, [B, H, W, I], w.weight, O, k, s, p, op);
    for (let j = 0; j < want.data.length; j++) want.data[j] += w.bias[j % O];
    t.deepEqual(y.shape, want.shape, `k ${k} s ${s} p ${p} op ${op}`);
    assertClose(t, await readAndDispose(y), want.data, { rtol: 1e-4, atol: 1e-5, msg: `k ${k} s ${s} p ${p} op ${op}` });
    xt.dispose();
    conv.dispose();
  }
});

test("'conv' image postprocessing upsamples 4x with two 4x4/2 transposed convs and a ReLU, as Haiku's 'SAME' Conv2DTranspose does", async (t) => {
  const [B, H, W, C, N] = [1, 3, 2, 4, 3];
  const post = new PerceiverImagePostprocessor({ postprocType: 'conv', inChannels: C, nOutputs: N, inputReshapeSize: [H, W] });
  const p = randomise(post, 50);
  const x = randomArray(B * H * W * C, 51);
  const xt = P.tensor(x, [B, H * W, C]);
  const y = post.forward(xt);
  t.deepEqual(y.shape, [B, 4 * H, 4 * W, N]);
  // The same weights in Haiku's layout: w_hk[ky, kx, o, i] = w_pt[i, o, 3 - ky, 3 - kx].
  const hk = (w: Arr, O: number) => (ky: number, kx: number, o: number, i: number) => w[((i * O + o) * 4 + (3 - ky)) * 4 + (3 - kx)];
  const h1 = haikuTransposeRef(x, [B, H, W, C], hk(p['convnet.transp_conv1.weight'], 2 * N), 2 * N).map((v, j) => Math.max(v + p['convnet.transp_conv1.bias'][j % (2 * N)], 0));
  const h2 = haikuTransposeRef(h1, [B, 2 * H, 2 * W, 2 * N], hk(p['convnet.transp_conv2.weight'], N), N).map((v, j) => v + p['convnet.transp_conv2.bias'][j % N]);
  assertClose(t, await readAndDispose(y), h2, { rtol: 1e-4, atol: 1e-5 });
  t.throws(() => new PerceiverImagePostprocessor({ postprocType: 'conv', inChannels: C }), { message: /'conv' needs nOutputs/ });
  t.throws(() => new PerceiverImagePostprocessor({ postprocType: 'conv1x1', inChannels: C, nOutputs: N, temporalUpsample: 2 }), { message: /'conv1x1' does not upsample in time/ });
  xt.dispose();
  post.dispose();
});

/**
 * PyTorch's ConvTranspose3d by its definition over channels-last video: every input
 * voxel scatters weight * value to out[a*s - p + k] per axis, p = k - 1 - before, and
 * each axis has (n - 1) * s + before + after - k + 2 outputs (weight [in, out, k, k, k]).
 */
function convTranspose3dRef(x: Arr, [B, T, H, W, I]: number[], w: Arr, O: number, k: number, s: number[], pads: number[][]): { data: Float64Array; shape: number[] } {
  const n = [T, H, W];
  const len = n.map((v, i) => (v - 1) * s[i] + pads[i][0] + pads[i][1] - k + 2);
  const p = pads.map(([before]) => k - 1 - before);
  const out = new Float64Array(B * len[0] * len[1] * len[2] * O);
  for (let b = 0; b < B; b++)
    for (let a0 = 0; a0 < T; a0++)
      for (let a1 = 0; a1 < H; a1++)
        for (let a2 = 0; a2 < W; a2++)
          for (let i = 0; i < I; i++) {
            const xv = x[(((b * T + a0) * H + a1) * W + a2) * I + i];
            for (let k0 = 0; k0 < k; k0++)
              for (let k1 = 0; k1 < k; k1++)
                for (let k2 = 0; k2 < k; k2++) {
                  const [y0, y1, y2] = [a0 * s[0] - p[0] + k0, a1 * s[1] - p[1] + k1, a2 * s[2] - p[2] + k2];
                  if (y0 < 0 || y0 >= len[0] || y1 < 0 || y1 >= len[1] || y2 < 0 || y2 >= len[2]) continue;
                  for (let o = 0; o < O; o++)
                    out[((((b * len[0] + y0) * len[1] + y1) * len[2] + y2) * O) + o] += xv * w[((((i * O + o) * k + k0) * k + k1) * k) + k2];
                }
          }
  return { data: out, shape: [B, len[0], len[1], len[2], O] };
}

/**
 * Haiku's Conv3DTranspose (lax.conv_transpose, 'SAME', no kernel flip) for kernel 4:
 * dilate by the strides, pad (2, 2) where the stride is 2 and (2, 1) where it is 1,
 * correlate with w_hk [kt, kh, kw, out, in].
 */
function haikuTranspose3dRef(x: Arr, [B, T, H, W, I]: number[], wHk: (k0: number, k1: number, k2: number, o: number, i: number) => number, O: number, s: number[]): Float64Array {
  const k = 4;
  const n = [T, H, W];
  const lo = 2;
  const hiOf = (st: number) => (st === 2 ? 2 : 1);
  const D = n.map((v, i) => (v - 1) * s[i] + 1 + lo + hiOf(s[i]));
  const at = (b: number, y: number[], i: number) => {
    const idx: number[] = [];
    for (let d = 0; d < 3; d++) {
      const yy = y[d] - lo;
      if (yy < 0 || yy % s[d] || yy / s[d] >= n[d]) return 0;
      idx.push(yy / s[d]);
    }
    return x[(((b * T + idx[0]) * H + idx[1]) * W + idx[2]) * I + i];
  };
  const len = D.map((v) => v - k + 1);
  const out = new Float64Array(B * len[0] * len[1] * len[2] * O);
  for (let b = 0; b < B; b++)
    for (let y0 = 0; y0 < len[0]; y0++)
      for (let y1 = 0; y1 < len[1]; y1++)
        for (let y2 = 0; y2 < len[2]; y2++)
          for (let o = 0; o < O; o++) {
            let acc = 0;
            for (let k0 = 0; k0 < k; k0++)
              for (let k1 = 0; k1 < k; k1++)
                for (let k2 = 0; k2 < k; k2++)
                  for (let i = 0; i < I; i++) acc += at(b, [y0 + k0, y1 + k1, y2 + k2], i) * wHk(k0, k1, k2, o, i);
            out[((((b * len[0] + y0) * len[1] + y1) * len[2] + y2) * O) + o] = acc;
          }
  return out;
}

test("ConvTranspose3d matches PyTorch's definition for several strides, paddings and kernels, and lax's 'SAME'", async (t) => {
  const [B, T, H, W, I, O] = [2, 3, 2, 3, 3, 4];
  const cases: { k: number; opts: ConvTranspose3dOptions; pads: number[][]; s: number[] }[] = [
    { k: 4, opts: { stride: 2, padding: 1 }, pads: [[2, 2], [2, 2], [2, 2]], s: [2, 2, 2] },
    { k: 3, opts: { stride: [1, 2, 1], padding: [1, 0, 1], outputPadding: [0, 1, 0] }, pads: [[1, 1], [2, 3], [1, 1]], s: [1, 2, 1] },
    { k: 2, opts: {}, pads: [[1, 1], [1, 1], [1, 1]], s: [1, 1, 1] },
    // lax's 'SAME' for kernel 4: (2, 2) at stride 2, (2, 1) at stride 1; n * stride outputs.
    { k: 4, opts: { stride: [2, 1, 2], padding: 'same' }, pads: [[2, 2], [2, 1], [2, 2]], s: [2, 1, 2] },
    { k: 4, opts: { stride: [1, 2, 2], padding: 'same' }, pads: [[2, 1], [2, 2], [2, 2]], s: [1, 2, 2] },
  ];
  for (const { k, opts, pads, s } of cases) {
    const what = `k ${k} ${JSON.stringify(opts)}`;
    const conv = new ConvTranspose3d(I, O, k, opts);
    t.deepEqual(conv.pads, pads, `${what}: pads`);
    const w = randomise(conv, 60 + k);
    const x = randomArray(B * T * H * W * I, 61);
    const xt = P.tensor(x, [B, T, H, W, I]);
    const y = conv.forward(xt);
    const want = convTranspose3dRef(x, [B, T, H, W, I], w.weight, O, k, s, pads);
    for (let j = 0; j < want.data.length; j++) want.data[j] += w.bias[j % O];
    t.deepEqual(y.shape, want.shape, `${what}: shape`);
    if (opts.padding === 'same') t.deepEqual(y.shape, [B, T * s[0], H * s[1], W * s[2], O], `${what}: n * stride`);
    assertClose(t, await readAndDispose(y), want.data, { rtol: 1e-4, atol: 1e-5, msg: what });
    xt.dispose();
    conv.dispose();
  }
  t.throws(() => new ConvTranspose3d(2, 2, 4, { stride: [2, 2] }), { instanceOf: TypeError, message: /'stride' must be an integer or 3 integers/ });
  t.throws(() => new ConvTranspose3d(2, 2, 4, { padding: 4 }), { instanceOf: RangeError, message: /padding must be integers in \[0, 3\]/ });
  t.throws(() => new ConvTranspose3d(2, 2, 4, { padding: 'same', outputPadding: 1 }), { instanceOf: TypeError, message: /outputPadding does not apply/ });
  t.throws(() => new ConvTranspose3d(0, 2, 4), { instanceOf: TypeError, message: /'inChannels' must be a positive integer, got 0/ });
  const conv = new ConvTranspose3d(2, 3, 4, { stride: 2, padding: 1 });
  const img = P.zeros([1, 4, 4, 2]);
  t.throws(() => conv.forward(img), { instanceOf: RangeError, message: /input must be \[B, T, H, W, 2\] \(channels-last\), got \[1, 4, 4, 2\]/ });
  img.dispose();
  conv.dispose();
});

test("'conv' image postprocessing with temporal upsampling is DeepMind's Conv3DUpsample: 4x4x4 'SAME' transposed convs, ReLUs between", async (t) => {
  // temporalUpsample 2, spatialUpsample 4: two layers, strides [2, 2, 2] then [1, 2, 2],
  // channels 2N then N.
  const [B, T, H, W, C, N] = [1, 2, 2, 3, 3, 2];
  const post = new PerceiverImagePostprocessor({ postprocType: 'conv', inChannels: C, nOutputs: N, temporalUpsample: 2, spatialUpsample: 4, inputReshapeSize: [T, H, W] });
  const p = randomise(post, 70);
  t.deepEqual(Object.keys(p).sort(), [
    'convnet.conv3d_transpose_0.bias', 'convnet.conv3d_transpose_0.weight', 'convnet.conv3d_transpose_1.bias', 'convnet.conv3d_transpose_1.weight',
  ]);
  const x = randomArray(B * T * H * W * C, 71);
  const xt = P.tensor(x, [B, T * H * W, C]);
  const y = post.forward(xt);
  t.deepEqual(y.shape, [B, 2 * T, 4 * H, 4 * W, N]);
  // Haiku's layout: w_hk[k0, k1, k2, o, i] = w_pt[i, o, 3 - k0, 3 - k1, 3 - k2].
  const hk = (w: Arr, O: number) => (k0: number, k1: number, k2: number, o: number, i: number) => w[((((i * O + o) * 4 + (3 - k0)) * 4 + (3 - k1)) * 4) + (3 - k2)];
  const h1 = haikuTranspose3dRef(x, [B, T, H, W, C], hk(p['convnet.conv3d_transpose_0.weight'], 2 * N), 2 * N, [2, 2, 2]).map((v, j) => Math.max(v + p['convnet.conv3d_transpose_0.bias'][j % (2 * N)], 0));
  const h2 = haikuTranspose3dRef(h1, [B, 2 * T, 2 * H, 2 * W, 2 * N], hk(p['convnet.conv3d_transpose_1.weight'], N), N, [1, 2, 2]).map((v, j) => v + p['convnet.conv3d_transpose_1.bias'][j % N]);
  assertClose(t, await readAndDispose(y), h2, { rtol: 1e-4, atol: 1e-5 });
  // Gradients reach every parameter through the composed convolutions.
  post.requiresGrad_(true);
  P.tidy(() => P.reshape(P.square(post.forward(xt)), [-1]).sum(0)).backward();
  const params = post.parameters();
  t.is(params.length, 4);
  for (const q of params) t.true(q.grad !== null && Array.from(await q.grad.data()).some((g) => g !== 0), 'a non-zero gradient');
  post.zeroGrad();
  // Time only (spatialUpsample 1): one layer, stride [2, 1, 1].
  const timeOnly = new PerceiverImagePostprocessor({ postprocType: 'conv', inChannels: C, nOutputs: N, temporalUpsample: 2 });
  const v = P.zeros([B, T, H, W, C]);
  const vy = timeOnly.forward(v);
  t.deepEqual(vy.shape, [B, 2 * T, H, W, N]);
  t.throws(() => new PerceiverImagePostprocessor({ postprocType: 'conv', inChannels: C, nOutputs: N, temporalUpsample: 3 }), { instanceOf: RangeError, message: /needs temporalUpsample to be a power of 2, got 3/ });
  t.throws(() => new PerceiverImagePostprocessor({ postprocType: 'conv', inChannels: C, nOutputs: N, temporalUpsample: 2, spatialUpsample: 6 }), { instanceOf: RangeError, message: /needs spatialUpsample to be a power of 2, got 6/ });
  const frame = P.zeros([B, H, W, C]);
  t.throws(() => timeOnly.forward(frame), { instanceOf: RangeError, message: /needs \[B, T, H, W, C\], got \[1, 2, 3, 3\]/ });
  for (const z of [xt, v, vy, frame]) z.dispose();
  post.dispose();
  timeOnly.dispose();
});

test("'patches' image postprocessing is the inverse of the preprocessor's space-to-depth; 'pixels' only reshapes", async (t) => {
  const frames = P.randn([2, 3, 4, 6], { seed: 3 });
  const packed = spaceToDepth(frames, 1, 2);
  const post = new PerceiverImagePostprocessor({ postprocType: 'patches', spatialUpsample: 2 });
  const back = post.forward(packed);
  const nhwc = P.permute(frames, [0, 2, 3, 1]);
  t.deepEqual(back.shape, [2, 4, 6, 3]);
  t.deepEqual(await back.data(), await nhwc.data());
  const video = P.randn([1, 4, 3, 4, 4], { seed: 4 });
  const vpacked = spaceToDepth(video, 2, 2);
  const vpost = new PerceiverImagePostprocessor({ postprocType: 'patches', spatialUpsample: 2, temporalUpsample: 2 });
  const vback = vpost.forward(vpacked);
  const vnhwc = P.permute(video, [0, 1, 3, 4, 2]);
  t.deepEqual(vback.shape, [1, 4, 4, 4, 3]);
  t.deepEqual(await vback.data(), await vnhwc.data());
  const pix = new PerceiverImagePostprocessor({ inputReshapeSize: [2, 3] });
  const flat = P.randn([1, 6, 5], { seed: 6 });
  const img = pix.forward(flat);
  t.deepEqual(img.shape, [1, 2, 3, 5]);
  t.deepEqual(await img.data(), await flat.data());
  for (const x of [frames, packed, back, nhwc, video, vpacked, vback, vnhwc, flat, img]) x.dispose();
});
