// models/haiku.ts: DeepMind's Haiku parameter names and layouts onto our HF-named
// stateDict. The oracle is scripts/make-haiku-fixtures.py, an independent inverse (HF
// -> Haiku) of the same table, applied to each HF fixture model: the forward mapping
// must give back every HF tensor exactly (name, shape, values), and nothing else.
import test from 'ava';
import { join } from 'node:path';
import { detectHaikuArchitecture, haikuPreset, haikuToStateDict, HAIKU_ARCHITECTURES } from '../models/haiku.js';
import { perceiverConfig } from '../models/config.js';
import type { ArchitectureName } from '../models/registry.js';
import * as P from '../lib/index.js';
import { permuteRecord, type TensorRecord } from '../lib/io/records.js';
import { caseConfig, caseDir } from './helpers/hf-fixture.js';
import { HAIKU_CASES, haikuCase, recordValues, safetensorsRecords } from './helpers/haiku-fixture.js';
import { assertUnknownOptions } from './helpers/options.js';

const CASES = Object.keys(HAIKU_CASES);

const archOf = (c: string): ArchitectureName => (caseConfig(c).architectures as ArchitectureName[])[0];

for (const c of CASES) {
  test(`${c}: the Haiku checkpoint renames to exactly the HF state dict, every tensor equal in shape and value`, async (t) => {
    const { params, state } = await haikuCase(c);
    const conv = haikuToStateDict(params, state);
    t.is(conv.architecture, archOf(c), 'architecture detected from the module paths');
    const hf = await safetensorsRecords(join(caseDir(c), 'model.safetensors'));
    const hfByName = new Map(hf.map((r) => [r.name, r]));
    t.deepEqual(conv.records.map((r) => r.name).sort(), [...hfByName.keys()].sort(), 'same key set as HF');
    for (const rec of conv.records) {
      const want = hfByName.get(rec.name)!;
      t.deepEqual(rec.shape, want.shape, `${rec.name}: shape`);
      const got = recordValues(rec);
      const exp = recordValues(want);
      if (rec.name.endsWith('num_batches_tracked')) {
        // PyTorch's batch count, which Haiku does not keep: 0, as HF's own conversion leaves it.
        t.deepEqual(got, [0]);
        continue;
      }
      let bad = -1;
      for (let i = 0; i < exp.length && bad < 0; i++) if (!Object.is(got[i], exp[i])) bad = i;
      t.is(bad, -1, `${rec.name}: first differing element ${bad}: ${got[bad]} vs ${exp[bad]}`);
    }
  });
}

test('Linear kernels are transposed [in, out] -> [out, in] and conv kernels HWIO -> OIHW by strides alone', async (t) => {
  const { params, state } = await haikuCase('image_conv');
  const conv = haikuToStateDict(params, state);
  const byName = new Map(conv.records.map((r) => [r.name, r]));
  const q = byName.get('perceiver.encoder.cross_attention.attention.self.query.weight')!;
  const src = params.find((r) => r.name === 'perceiver_encoder/~/cross_attention/attention/linear/w')!;
  t.deepEqual(src.shape, [64, 64]);
  t.deepEqual(q.strides, [1, 64], 'transposed view of the [in, out] bytes');
  t.deepEqual(q.source, src.source, 'same bytes, nothing copied');
  const k = byName.get('perceiver.input_preprocessor.convnet.conv.weight')!;
  t.deepEqual(k.shape, [64, 3, 7, 7]);
  t.deepEqual(k.strides, [1, 64, 1344, 192], 'OIHW view of HWIO [7, 7, 3, 64]');
  const rm = byName.get('perceiver.input_preprocessor.convnet.batchnorm.running_mean')!;
  t.deepEqual(rm.shape, [64], "BatchNorm's [1, 1, 1, 64] moving average squeezed");
});

test('architecture detection: each released module layout names its task model', async (t) => {
  for (const c of CASES) {
    const { params, state } = await haikuCase(c);
    t.is(detectHaikuArchitecture([...params, ...state].map((r) => r.name)), archOf(c), c);
  }
  const err = t.throws(() => detectHaikuArchitecture(['foo/~/bar/w', 'baz/b']));
  t.regex(err.message, /cannot tell which Perceiver.*\(baz, foo\)/);
  t.regex(err.message, /architecture option/);
  t.throws(() => detectHaikuArchitecture('embed/embeddings' as unknown as string[]), { instanceOf: TypeError });
});

test('an explicit architecture overrides detection, and must be a supported one', async (t) => {
  const { params } = await haikuCase('image_fourier');
  // Nothing distinguishes Fourier from the others but the absent preprocessor weights.
  const err = t.throws(() => haikuToStateDict(params, [], 'PerceiverForImageClassificationLearned'));
  t.regex(err.message, /does not match PerceiverForImageClassificationLearned.*lacks: .*convnet_1x1\.weight/);
  t.is(haikuToStateDict(params, [], { architecture: 'PerceiverForImageClassificationFourier' }).architecture, 'PerceiverForImageClassificationFourier');
  const bad = t.throws(() => haikuToStateDict(params, [], 'PerceiverForSequenceClassification'), { instanceOf: TypeError });
  t.regex(bad.message, /option 'architecture' \(or config\.architectures\[0\]\) must be one of .*PerceiverForMaskedLM/);
  // A config's architectures names the model too, and must agree with the option.
  const viaConfig = t.throws(() => haikuToStateDict(params, [], { config: { architectures: ['PerceiverForOpticalFlow'] } }));
  t.regex(viaConfig.message, /does not match PerceiverForOpticalFlow/);
  const clash = t.throws(() => haikuToStateDict(params, [], { architecture: 'PerceiverForImageClassificationFourier', config: { architectures: ['PerceiverForOpticalFlow'] } }));
  t.regex(clash.message, /option 'architecture' is 'PerceiverForImageClassificationFourier' but config\.architectures names \["PerceiverForOpticalFlow"\]|names "PerceiverForOpticalFlow"/);
});

test('strict: a parameter nothing maps is an error naming it', async (t) => {
  const { params } = await haikuCase('mlm');
  const extra: TensorRecord = { ...params[0], name: 'perceiver_encoder/~/cross_attention/attention/linear_4/w' };
  const stray: TensorRecord = { ...params[0], name: 'some_head/linear/w' };
  const err = t.throws(() => haikuToStateDict([...params, extra, stray]));
  t.regex(err.message, /no HuggingFace name: perceiver_encoder\/~\/cross_attention\/attention\/linear_4\/w, some_head\/linear\/w/);
});

test('strict: a missing parameter is an error naming the HF key it would fill', async (t) => {
  const { params } = await haikuCase('mlm');
  const less = params.filter((r) => r.name !== 'perceiver_encoder/~/self_attention_1/mlp/linear_1/b' && r.name !== 'embedding_decoder/bias');
  const err = t.throws(() => haikuToStateDict(less));
  t.regex(err.message, /PerceiverForMaskedLM needs that the checkpoint lacks: .*perceiver\.encoder\.self_attends\.1\.mlp\.dense2\.bias/);
  t.regex(err.message, /embedding_decoder\.bias/);
});

test('strict: a mapped parameter the model has no slot for, and two parameters for one key, are errors', async (t) => {
  const { params } = await haikuCase('mlm');
  const w = params.find((r) => r.name === 'basic_decoder/cross_attention/mlp/linear/w')!;
  // The MLM decoder projects through the embedding matrix, so it has no final layer.
  const err = t.throws(() => haikuToStateDict([...params, { ...w, name: 'basic_decoder/output/w' }]));
  t.regex(err.message, /no slot for: 'basic_decoder\/output\/w' -> 'perceiver\.decoder\.final_layer\.weight'/);
  const latents = params.find((r) => r.name === 'perceiver_encoder/~/trainable_position_encoding/pos_embs')!;
  const dup = t.throws(() => haikuToStateDict([...params, { ...latents, name: 'encoder/~/trainable_position_encoding/pos_embs' }]));
  t.regex(dup.message, /given twice: 'perceiver\.embeddings\.latents' from both/);
});

test('a parameter of the wrong rank is an error naming both names and the shape expected', async (t) => {
  const { params } = await haikuCase('mlm');
  const recs = params.map((r) => (r.name === 'perceiver_encoder/~/cross_attention/attention/linear/w' ? { ...r, shape: [r.shape[0] * r.shape[1]] } : r));
  const err = t.throws(() => haikuToStateDict(recs), { instanceOf: RangeError });
  t.regex(err.message, /'perceiver_encoder\/~\/cross_attention\/attention\/linear\/w' \(for 'perceiver\.encoder\.cross_attention\.attention\.self\.query\.weight'\) has shape \[3072\], expected a 2-D Linear kernel \[in, out\]/);
});

test('the conv model without its state: the error says the moving averages live in the .pystate state', async (t) => {
  const { params, state } = await haikuCase('image_conv');
  t.is(state.length, 6, 'mean_ema and var_ema: average, hidden, counter');
  const err = t.throws(() => haikuToStateDict(params, []));
  t.regex(err.message, /lacks: .*batchnorm\.running_mean, .*batchnorm\.running_var/);
  t.regex(err.message, /moving averages live in the checkpoint's state/);
});

test('arguments are validated', (t) => {
  t.throws(() => haikuToStateDict({} as unknown as TensorRecord[]), { instanceOf: TypeError, message: /argument 'params' must be an array of TensorRecords/ });
  t.throws(() => haikuToStateDict([{ name: 'x' } as unknown as TensorRecord]), { instanceOf: TypeError, message: /params\[0\] is not a TensorRecord/ });
  const rec: TensorRecord = { name: 'embed/embeddings', dtype: 'F32', shape: [2, 2], source: { kind: 'bytes', bytes: new Uint8Array(16) } };
  t.throws(() => haikuToStateDict([{ ...rec, dtype: 'Q8' as never }]), { instanceOf: TypeError, message: /params\[0\] is not a TensorRecord/ });
  t.throws(() => haikuToStateDict([], null as unknown as TensorRecord[]), { instanceOf: TypeError, message: /argument 'state'/ });
  t.throws(() => haikuToStateDict([], [], { config: [] as unknown as Record<string, unknown> }), { instanceOf: TypeError, message: /option 'config'/ });
  t.throws(() => haikuPreset('Nope' as never), { instanceOf: TypeError });
});

// Fields a Haiku checkpoint's shapes determine, per case.
const INFERRED: Record<string, string[]> = {
  mlm: ['vocab_size', 'max_position_embeddings'],
  image_fourier: ['num_labels'],
  image_learned: ['num_labels', 'image_size'],
  image_conv: ['num_labels'],
  optical_flow: [],
  multimodal: ['num_labels', 'samples_per_patch', 'output_num_channels', '_label_trainable_num_channels'],
};
const ENCODER_FIELDS = [
  'num_latents', 'd_latents', 'd_model', 'num_self_attends_per_block', 'cross_attention_widening_factor', 'self_attention_widening_factor',
];

/**
 * The encoder's attention widths a config gives (HF's defaults: cross qk = kv or q
 * channels, self qk = d_latents, v = qk): configs that differ only in spelling a
 * default out agree here.
 */
function widths(c: Record<string, unknown>): number[] {
  const qk = c.qk_channels as number | null;
  const v = c.v_channels as number | null;
  const dLat = c.d_latents as number;
  const crossQk = qk ?? (c.cross_attention_shape_for_attention === 'q' ? dLat : (c.d_model as number));
  const selfQk = qk ?? dLat;
  return [crossQk, v ?? crossQk, selfQk, v ?? selfQk];
}

for (const c of CASES) {
  test(`${c}: the config takes every size the weights show, the rest from the released model, in DeepMind's flavour`, async (t) => {
    const { params, state } = await haikuCase(c);
    const { config, architecture } = haikuToStateDict(params, state);
    const fixture = perceiverConfig(caseConfig(c)) as unknown as Record<string, unknown>;
    const got = config as unknown as Record<string, unknown>;
    for (const k of [...ENCODER_FIELDS, ...INFERRED[c]]) t.deepEqual(got[k], fixture[k], k);
    t.deepEqual(widths(got), widths(fixture), 'attention widths (cross qk, cross v, self qk, self v)');
    const preset = haikuPreset(architecture);
    t.is(config.num_blocks, preset.num_blocks as number, 'num_blocks (shared weights) from the preset');
    t.is(config.num_self_attention_heads, preset.num_self_attention_heads as number, 'heads from the preset');
    t.deepEqual(config.architectures, [architecture]);
    t.is(config.model_type, 'perceiver');
    t.is(config.hidden_act, 'gelu_new', "DeepMind's tanh GELU");
    t.is(config.attention_mask_style, 'deepmind');
    t.is(config.conv_padding, c === 'image_conv' ? 'same' : 'hf');
    t.is(config.classifier_query_residual, c !== 'image_learned');
    t.is(config.flow_output_scale, c === 'optical_flow' ? 20 : 1);
  });
}

test('the caller config wins over preset and shapes', async (t) => {
  const { params } = await haikuCase('optical_flow');
  const { config } = haikuToStateDict(params, [], { config: { train_size: [12, 16], hidden_act: 'gelu', num_self_attention_heads: 4, flow_output_scale: 1 } });
  t.deepEqual(config.train_size, [12, 16]);
  t.is(config.hidden_act, 'gelu');
  t.is(config.num_self_attention_heads, 4);
  t.is(config.flow_output_scale, 1);
  t.is(config.num_blocks, 1);
  const err = t.throws(() => haikuToStateDict(params, [], { config: { hidden_act: 'swish' as never } }));
  t.regex(err.message, /hidden_act 'swish' is not supported/);
});

test('released presets: the sizes of the published checkpoints', (t) => {
  t.is(HAIKU_ARCHITECTURES.length, 6);
  const flow = haikuPreset('PerceiverForOpticalFlow');
  t.like(flow, { num_latents: 2048, d_latents: 512, num_self_attends_per_block: 24, num_self_attention_heads: 16, train_size: [368, 496], flow_output_scale: 20 });
  t.like(haikuPreset('PerceiverForMultimodalAutoencoding'), { num_latents: 784, d_model: 704, num_labels: 700, num_frames: 16, audio_samples_per_frame: 1920 });
  t.like(haikuPreset('PerceiverForMaskedLM'), { d_latents: 1280, num_latents: 256, num_self_attends_per_block: 26, qk_channels: 256, v_channels: 1280 });
  t.like(haikuPreset('PerceiverForImageClassificationConvProcessing'), { num_blocks: 8, num_self_attends_per_block: 6, d_model: 322, conv_padding: 'same' });
});

test("the conv kernel keeps DeepMind's orientation: a Conv2d with the converted weight computes what Haiku's HWIO kernel does", async (t) => {
  const { params, state } = await haikuCase('image_conv');
  const hwio = params.find((r) => r.name === 'image_preprocessor/~/conv2_d_downsample/~/conv/w')!;
  const oihw = haikuToStateDict(params, state).records.find((r) => r.name === 'perceiver.input_preprocessor.convnet.conv.weight')!;
  // Haiku's Conv2D is lax.conv_general_dilated over NHWC with an HWIO kernel: the
  // engine's conv2d convention, so it is the reference here.
  P.manualSeed(7);
  const x = P.randn([1, 11, 9, 3], { device: 'cpu' });
  const kHwio = P.tensor(Float32Array.from(recordValues(hwio)), hwio.shape, { device: 'cpu' });
  const want = P.conv2d(x, kHwio, { stride: 2, padding: 'same' });
  const run = async (rec: TensorRecord): Promise<number> => {
    const conv = new P.Conv2d(3, 64, 7, { stride: 2, padding: 'same', bias: false, device: 'cpu' });
    const w = P.tensor(Float32Array.from(recordValues(rec)), rec.shape, { device: 'cpu' });
    conv.loadStateDict({ weight: w });
    const y = conv.forward(x);
    const [a, b] = [await y.data(), await want.data()];
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    for (const z of [conv, w, y]) z.dispose();
    return d;
  };
  t.true((await run(oihw)) <= 1e-5, 'HWIO -> OIHW ([3, 2, 0, 1]) computes the same convolution');
  // HF's conversion reverses every axis (np.transpose): [O, I, W, H], the kernel
  // transposed in space, which computes something else (SPEC.md, conv preprocessor).
  t.true((await run(permuteRecord(hwio, [3, 2, 1, 0]))) > 1e-3, "HF's np.transpose layout differs");
  for (const z of [x, kHwio, want]) z.dispose();
});

/** Shape-only Haiku records of a CrossAttention (q from dq, kv from dkv) or SelfAttention module. */
function attentionShapes(prefix: string, dq: number, dkv: number | null, qk: number, v: number, widen = 1): [string, number[]][] {
  const out: [string, number[]][] = [];
  const lin = (m: string, i: number, o: number): void => void out.push([`${prefix}/${m}/w`, [i, o]], [`${prefix}/${m}/b`, [o]]);
  const ln = (m: string, c: number): void => void out.push([`${prefix}/${m}/scale`, [c]], [`${prefix}/${m}/offset`, [c]]);
  const kv = dkv ?? dq;
  ln('layer_norm', dq);
  if (dkv !== null) ln('layer_norm_1', dkv);
  ln(dkv !== null ? 'layer_norm_2' : 'layer_norm_1', dq);
  lin('attention/linear', dq, qk);
  lin('attention/linear_1', kv, qk);
  lin('attention/linear_2', kv, v);
  lin('attention/linear_3', v, dq);
  lin('mlp/linear', dq, widen * dq);
  lin('mlp/linear_1', widen * dq, dq);
  return out;
}

const shapeRecords = (list: [string, number[]][]): TensorRecord[] =>
  list.map(([name, shape]) => ({ name, dtype: 'F32', shape, source: { kind: 'bytes', bytes: new Uint8Array(0) } }));

test('released sizes: the language model (qk 256, v 1280 spelled out) and the flow model (defaults) are inferred from their shapes', (t) => {
  const mlm: [string, number[]][] = [
    ['embed/embeddings', [262, 768]],
    ['trainable_position_encoding/pos_embs', [2048, 768]],
    ['perceiver_encoder/~/trainable_position_encoding/pos_embs', [256, 1280]],
    ...attentionShapes('perceiver_encoder/~/cross_attention', 1280, 768, 256, 1280),
    ['basic_decoder/~/trainable_position_encoding/pos_embs', [2048, 768]],
    ...attentionShapes('basic_decoder/cross_attention', 768, 1280, 256, 768),
    ['embedding_decoder/bias', [262]],
  ];
  for (let i = 0; i < 26; i++) mlm.push(...attentionShapes(`perceiver_encoder/~/self_attention${i ? `_${i}` : ''}`, 1280, null, 256, 1280));
  const m = haikuToStateDict(shapeRecords(mlm));
  t.is(m.architecture, 'PerceiverForMaskedLM');
  t.like(m.config, { vocab_size: 262, d_model: 768, max_position_embeddings: 2048, num_latents: 256, d_latents: 1280, num_self_attends_per_block: 26, qk_channels: 256, v_channels: 1280, num_blocks: 1, num_self_attention_heads: 8 });
  t.is(m.records.length, 3 + 18 + 26 * 16 + 1 + 18 + 1, "embeddings, positions, latents, cross-attention, 26 self-attends, decoder queries and cross-attention, bias");

  const flow: [string, number[]][] = [
    ['image_preprocessor/patches_linear/w', [54, 64]],
    ['image_preprocessor/patches_linear/b', [64]],
    ['perceiver_encoder/~/trainable_position_encoding/pos_embs', [2048, 512]],
    ...attentionShapes('perceiver_encoder/~/cross_attention', 512, 322, 322, 322),
    ...attentionShapes('flow_decoder/~/basic_decoder/cross_attention', 322, 512, 512, 512),
    ['flow_decoder/~/basic_decoder/output/w', [322, 2]],
    ['flow_decoder/~/basic_decoder/output/b', [2]],
  ];
  for (let i = 0; i < 24; i++) flow.push(...attentionShapes(`perceiver_encoder/~/self_attention${i ? `_${i}` : ''}`, 512, null, 512, 512));
  const f = haikuToStateDict(shapeRecords(flow));
  t.is(f.architecture, 'PerceiverForOpticalFlow');
  t.like(f.config, { d_model: 322, num_latents: 2048, d_latents: 512, num_self_attends_per_block: 24, qk_channels: null, v_channels: null, cross_attention_shape_for_attention: 'kv', num_self_attention_heads: 16, flow_output_scale: 20 });
  t.deepEqual(f.config.train_size, [368, 496]);

  // The learned-position classifier attends with the latents' width ('q'): 1024, not d_model 512.
  const learned: [string, number[]][] = [
    ['image_preprocessor/~/conv2_d/w', [1, 1, 3, 256]],
    ['image_preprocessor/~/conv2_d/b', [256]],
    ['image_preprocessor/~_build_network_inputs/trainable_position_encoding/pos_embs', [50176, 256]],
    ['image_preprocessor/~_build_network_inputs/position_encoding_projector/linear/w', [256, 256]],
    ['image_preprocessor/~_build_network_inputs/position_encoding_projector/linear/b', [256]],
    ['perceiver_encoder/~/trainable_position_encoding/pos_embs', [512, 1024]],
    ...attentionShapes('perceiver_encoder/~/cross_attention', 1024, 512, 1024, 1024),
    ['classification_decoder/~/basic_decoder/~/trainable_position_encoding/pos_embs', [1, 1024]],
    ...attentionShapes('classification_decoder/~/basic_decoder/cross_attention', 1024, 1024, 1024, 1024),
    ['classification_decoder/~/basic_decoder/output/w', [1024, 1000]],
    ['classification_decoder/~/basic_decoder/output/b', [1000]],
  ];
  for (let i = 0; i < 6; i++) learned.push(...attentionShapes(`perceiver_encoder/~/self_attention${i ? `_${i}` : ''}`, 1024, null, 1024, 1024));
  const l = haikuToStateDict(shapeRecords(learned));
  t.is(l.architecture, 'PerceiverForImageClassificationLearned');
  t.like(l.config, { image_size: 224, num_labels: 1000, d_model: 512, qk_channels: null, v_channels: null, cross_attention_shape_for_attention: 'q', num_blocks: 8, classifier_query_residual: false });
  t.deepEqual(l.records.find((r) => r.name === 'perceiver.input_preprocessor.convnet_1x1.weight')!.shape, [256, 3, 1, 1]);
});

test('haikuToStateDict refuses a misspelt option, naming the argument and the key', async (t) => {
  await assertUnknownOptions(t, [[() => haikuToStateDict([], [], { arch: 'PerceiverForMaskedLM' } as never), 'haikuToStateDict', 'options', 'arch']]);
});
