// DeepMind's Haiku checkpoints (the released *.pickle / *.pystate files) onto our
// HuggingFace-named models: which Haiku module path becomes which stateDict key, the
// layout each parameter changes to, which task model a checkpoint is, and the config
// (the released models' sizes where shapes cannot tell, DeepMind's behaviour where it
// differs from HF's). Records are renamed and re-strided, never read: the bytes stay
// where the reader found them until a loader copies them into their tensors.
//
// Module paths are Haiku's: `<parent>/~/<child>` for a module built in the parent's
// constructor, `<parent>/<child>` for one built in __call__, `<parent>/~<method>/<child>`
// in another method; repeated names get `_1`, `_2`, ... (see models/README.md).
import { contiguousStrides, permuteRecord, RECORD_ITEM_SIZE, type TensorRecord } from '../lib/io/records.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { LANGUAGE_PERCEIVER, VISION_PERCEIVER_FOURIER } from './presets.js';
import type { ArchitectureName } from './registry.js';
import { knownKeysArg, optionKeys } from './args.js';

export const HAIKU_ARCHITECTURES: readonly ArchitectureName[] = [
  'PerceiverForMaskedLM',
  'PerceiverForImageClassificationFourier',
  'PerceiverForImageClassificationLearned',
  'PerceiverForImageClassificationConvProcessing',
  'PerceiverForOpticalFlow',
  'PerceiverForMultimodalAutoencoding',
];

export interface HaikuConversionOptions {
  /** The task model; detected from the module paths when absent. */
  architecture?: string;
  /** config.json fields that win over the preset and over what the shapes say. */
  config?: Record<string, unknown>;
}

const CONVERSION_OPTIONS = optionKeys<HaikuConversionOptions>({ architecture: true, config: true });

export interface HaikuConversion {
  architecture: ArchitectureName;
  /** A full config.json object (architectures, model_type and the DeepMind-flavour options included). */
  config: PerceiverConfig & { model_type: 'perceiver' };
  /** Named as the model's stateDict, in PyTorch layout (as stride permutations of the Haiku bytes). */
  records: TensorRecord[];
}

/** How a Haiku array becomes its HF tensor. */
type Layout =
  | 'linear' // w [in, out] -> weight [out, in]
  | 'conv' // HWIO -> OIHW
  | 'vector' // 1-D as is (biases, LayerNorm scale / offset)
  | 'matrix' // 2-D as is (embeddings, position encodings, latents)
  | 'squeeze'; // BatchNorm's [1, 1, 1, C] -> [C]

interface Target {
  name: string;
  layout: Layout;
}

const has = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function linearLeaf(hf: string, leaf: string): Target | null {
  if (leaf === 'w') return { name: `${hf}.weight`, layout: 'linear' };
  if (leaf === 'b') return { name: `${hf}.bias`, layout: 'vector' };
  return null;
}

function convLeaf(hf: string, leaf: string): Target | null {
  if (leaf === 'w') return { name: `${hf}.weight`, layout: 'conv' };
  if (leaf === 'b') return { name: `${hf}.bias`, layout: 'vector' };
  return null;
}

function layerNormLeaf(hf: string, leaf: string): Target | null {
  if (leaf === 'scale') return { name: `${hf}.weight`, layout: 'vector' };
  if (leaf === 'offset') return { name: `${hf}.bias`, layout: 'vector' };
  return null;
}

// perceiver.py's Attention builds its four conv_1d (hk.Linear) in __call__ in this order.
const ATTENTION_LINEARS: Record<string, string> = {
  linear: 'attention.self.query',
  linear_1: 'attention.self.key',
  linear_2: 'attention.self.value',
  linear_3: 'attention.output.dense',
};
const MLP_LINEARS: Record<string, string> = { linear: 'mlp.dense1', linear_1: 'mlp.dense2' };
// CrossAttention normalises the query, then the key/value inputs, then the MLP input;
// SelfAttention has one norm for q = kv, then the MLP input.
const CROSS_NORMS: Record<string, string> = {
  layer_norm: 'attention.self.layernorm1',
  layer_norm_1: 'attention.self.layernorm2',
  layer_norm_2: 'layernorm',
};
const SELF_NORMS: Record<string, string> = { layer_norm: 'attention.self.layernorm1', layer_norm_1: 'layernorm' };

/** A parameter inside a CrossAttention / SelfAttention module (`rest` is its path below the module). */
function attentionBlock(hf: string, rest: string, norms: Record<string, string>): Target | null {
  const p = rest.split('/');
  if (p.length === 2 && has(norms, p[0])) return layerNormLeaf(`${hf}.${norms[p[0]]}`, p[1]);
  if (p.length === 3 && p[0] === 'attention' && has(ATTENTION_LINEARS, p[1])) return linearLeaf(`${hf}.${ATTENTION_LINEARS[p[1]]}`, p[2]);
  if (p.length === 3 && p[0] === 'mlp' && has(MLP_LINEARS, p[1])) return linearLeaf(`${hf}.${MLP_LINEARS[p[1]]}`, p[2]);
  return null;
}

const IGNORED = Symbol('ignored');
type Rule = [RegExp, (m: RegExpExecArray, arch: ArchitectureName) => Target | null | typeof IGNORED];

const ENC = '(?:perceiver_encoder|encoder)'; // 'encoder' in the multimodal colab
const CONV_DS = 'image_preprocessor/~/conv2_d_downsample/~';
const POSTPROCESSOR_MODALITY: Record<string, string> = { audio: 'audio', projection: 'image', classification: 'label' };

/** Haiku `<module path>/<name>` -> HF key, first match wins (models/README.md has it as a table). */
const RULES: Rule[] = [
  // Encoder
  [new RegExp(`^${ENC}/~/trainable_position_encoding/pos_embs$`), () => ({ name: 'perceiver.embeddings.latents', layout: 'matrix' })],
  [new RegExp(`^${ENC}/~/cross_attention/(.+)$`), (m) => attentionBlock('perceiver.encoder.cross_attention', m[1], CROSS_NORMS)],
  [
    new RegExp(`^${ENC}/~/self_attention(?:_([1-9][0-9]*))?/(.+)$`),
    (m) => attentionBlock(`perceiver.encoder.self_attends.${m[1] ?? '0'}`, m[2], SELF_NORMS),
  ],
  // Input preprocessors
  [/^embed\/embeddings$/, () => ({ name: 'perceiver.input_preprocessor.embeddings.weight', layout: 'matrix' })],
  [/^trainable_position_encoding\/pos_embs$/, () => ({ name: 'perceiver.input_preprocessor.position_embeddings.weight', layout: 'matrix' })],
  [/^image_preprocessor\/~\/conv2_d\/(w|b)$/, (m) => convLeaf('perceiver.input_preprocessor.convnet_1x1', m[1])],
  [
    /^image_preprocessor\/~_build_network_inputs\/trainable_position_encoding\/pos_embs$/,
    () => ({ name: 'perceiver.input_preprocessor.position_embeddings.position_embeddings', layout: 'matrix' }),
  ],
  [
    /^image_preprocessor\/~_build_network_inputs\/position_encoding_projector\/linear\/(w|b)$/,
    (m) => linearLeaf('perceiver.input_preprocessor.positions_projection', m[1]),
  ],
  [new RegExp(`^${CONV_DS}/conv/w$`), () => ({ name: 'perceiver.input_preprocessor.convnet.conv.weight', layout: 'conv' })],
  [
    new RegExp(`^${CONV_DS}/batchnorm/(scale|offset)$`),
    (m) => ({ name: `perceiver.input_preprocessor.convnet.batchnorm.${m[1] === 'scale' ? 'weight' : 'bias'}`, layout: 'squeeze' }),
  ],
  // BatchNorm state: ExponentialMovingAverage keeps `average` (used), `hidden` (the
  // debiasing accumulator) and `counter`, which PyTorch has no slot for.
  [
    new RegExp(`^${CONV_DS}/batchnorm/~/(mean|var)_ema/average$`),
    (m) => ({ name: `perceiver.input_preprocessor.convnet.batchnorm.running_${m[1]}`, layout: 'squeeze' }),
  ],
  [new RegExp(`^${CONV_DS}/batchnorm/~/(mean|var)_ema/(hidden|counter)$`), () => IGNORED],
  [/^image_preprocessor\/patches_linear\/(w|b)$/, (m) => linearLeaf('perceiver.input_preprocessor.conv_after_patches', m[1])],
  [/^multimodal_preprocessor\/([a-z0-9]+)_padding\/pos_embs$/, (m) => ({ name: `perceiver.input_preprocessor.padding.${m[1]}`, layout: 'matrix' })],
  [/^multimodal_preprocessor\/([a-z0-9]+)_mask_token\/pos_embs$/, (m) => ({ name: `perceiver.input_preprocessor.mask.${m[1]}`, layout: 'matrix' })],
  // Decoders. The MLM's BasicDecoder is top level; the others wrap one built in their constructor.
  [/^basic_decoder\/~\/trainable_position_encoding\/pos_embs$/, () => ({ name: 'perceiver.decoder.output_position_encodings.position_embeddings', layout: 'matrix' })],
  [/^basic_decoder\/cross_attention\/(.+)$/, (m) => attentionBlock('perceiver.decoder.decoding_cross_attention', m[1], CROSS_NORMS)],
  [/^basic_decoder\/output\/(w|b)$/, (m) => linearLeaf('perceiver.decoder.final_layer', m[1])],
  [
    /^(?:classification|flow|multimodal)_decoder\/~\/basic_decoder\/cross_attention\/(.+)$/,
    (m) => attentionBlock('perceiver.decoder.decoder.decoding_cross_attention', m[1], CROSS_NORMS),
  ],
  [/^(?:classification|flow|multimodal)_decoder\/~\/basic_decoder\/output\/(w|b)$/, (m) => linearLeaf('perceiver.decoder.decoder.final_layer', m[1])],
  [
    /^classification_decoder\/~\/basic_decoder\/~\/trainable_position_encoding\/pos_embs$/,
    // In the multimodal model the classification decoder only builds the label queries.
    (_m, arch) => ({
      name: arch === 'PerceiverForMultimodalAutoencoding'
        ? 'perceiver.decoder.modalities.label.decoder.output_position_encodings.position_embeddings'
        : 'perceiver.decoder.decoder.output_position_encodings.position_embeddings',
      layout: 'matrix',
    }),
  ],
  [/^multimodal_decoder\/~decoder_query\/([a-z0-9]+)_padding\/pos_embs$/, (m) => ({ name: `perceiver.decoder.padding.${m[1]}`, layout: 'matrix' })],
  // Output postprocessors
  [/^embedding_decoder\/bias$/, () => ({ name: 'embedding_decoder.bias', layout: 'vector' })],
  [
    /^(audio|projection|classification)_postprocessor\/linear\/(w|b)$/,
    (m) => linearLeaf(`perceiver.output_postprocessor.modalities.${POSTPROCESSOR_MODALITY[m[1]]}.classifier`, m[2]),
  ],
];

/** The HF key (and layout) of one Haiku parameter; null when nothing maps it, IGNORED for state PyTorch has no slot for. */
function mapName(name: string, arch: ArchitectureName): Target | null | typeof IGNORED {
  for (const [re, fn] of RULES) {
    const m = re.exec(name);
    if (m) return fn(m, arch);
  }
  return null;
}

/** The module path of `<module path>/<name>`. */
function modulePath(name: string): string {
  const i = name.lastIndexOf('/');
  return i < 0 ? '' : name.slice(0, i);
}

/**
 * Which task model a Haiku checkpoint is, from its module paths (as the released
 * colabs name them): the MLM's byte embedding, the flow / multimodal decoders, and for
 * the ImageNet classifiers the preprocessor's convolutions (none: Fourier features).
 */
export function detectHaikuArchitecture(names: readonly string[]): ArchitectureName {
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string'))
    throw new TypeError(`detectHaikuArchitecture: argument 'names' must be an array of '<module path>/<name>' strings`);
  const mods = new Set(names.map(modulePath));
  const top = new Set([...mods].map((m) => m.split('/')[0]));
  if (top.has('embed') || top.has('embedding_decoder')) return 'PerceiverForMaskedLM';
  if (top.has('flow_decoder')) return 'PerceiverForOpticalFlow';
  if (top.has('multimodal_decoder') || top.has('multimodal_preprocessor')) return 'PerceiverForMultimodalAutoencoding';
  if (top.has('classification_decoder')) {
    if ([...mods].some((m) => m.startsWith('image_preprocessor/~/conv2_d_downsample'))) return 'PerceiverForImageClassificationConvProcessing';
    if (mods.has('image_preprocessor/~/conv2_d')) return 'PerceiverForImageClassificationLearned';
    return 'PerceiverForImageClassificationFourier';
  }
  const seen = [...top].sort().join(', ') || 'none';
  throw new Error(
    `detectHaikuArchitecture: cannot tell which Perceiver this is from its top-level modules (${seen}); expected one of the released ` +
      `DeepMind checkpoints (MLM: embed, ImageNet: classification_decoder, optical flow: flow_decoder, multimodal: multimodal_decoder). ` +
      `Name it with the architecture option (${HAIKU_ARCHITECTURES.join(', ')})`,
  );
}

// ---------------------------------------------------------------------------------
// The keys each task model's stateDict holds (HF's, as the fixtures list them).

/** weight and bias of a Linear, LayerNorm or BatchNorm. */
const WB = (p: string): string[] => [`${p}.weight`, `${p}.bias`];

function attentionKeys(prefix: string, cross: boolean): string[] {
  const mods = [
    'attention.self.layernorm1',
    ...(cross ? ['attention.self.layernorm2'] : []),
    'attention.self.query',
    'attention.self.key',
    'attention.self.value',
    'attention.output.dense',
    'layernorm',
    'mlp.dense1',
    'mlp.dense2',
  ];
  return mods.flatMap((m) => WB(`${prefix}.${m}`));
}

function expectedKeys(arch: ArchitectureName, numSelfAttends: number): string[] {
  const keys = ['perceiver.embeddings.latents', ...attentionKeys('perceiver.encoder.cross_attention', true)];
  for (let i = 0; i < numSelfAttends; i++) keys.push(...attentionKeys(`perceiver.encoder.self_attends.${i}`, false));
  const inner = (): string[] => [
    ...attentionKeys('perceiver.decoder.decoder.decoding_cross_attention', true),
    ...WB('perceiver.decoder.decoder.final_layer'),
  ];
  const classifier = (): string[] => ['perceiver.decoder.decoder.output_position_encodings.position_embeddings', ...inner()];
  const ip = 'perceiver.input_preprocessor';
  switch (arch) {
    case 'PerceiverForMaskedLM':
      keys.push(
        `${ip}.embeddings.weight`,
        `${ip}.position_embeddings.weight`,
        'perceiver.decoder.output_position_encodings.position_embeddings',
        ...attentionKeys('perceiver.decoder.decoding_cross_attention', true),
        'embedding_decoder.bias',
      );
      break;
    case 'PerceiverForImageClassificationFourier':
      keys.push(...classifier());
      break;
    case 'PerceiverForImageClassificationLearned':
      keys.push(...classifier(), ...WB(`${ip}.convnet_1x1`), `${ip}.position_embeddings.position_embeddings`, ...WB(`${ip}.positions_projection`));
      break;
    case 'PerceiverForImageClassificationConvProcessing':
      keys.push(
        ...classifier(),
        `${ip}.convnet.conv.weight`,
        ...WB(`${ip}.convnet.batchnorm`),
        `${ip}.convnet.batchnorm.running_mean`,
        `${ip}.convnet.batchnorm.running_var`,
        `${ip}.convnet.batchnorm.num_batches_tracked`,
      );
      break;
    case 'PerceiverForOpticalFlow':
      keys.push(...inner(), ...WB(`${ip}.conv_after_patches`));
      break;
    case 'PerceiverForMultimodalAutoencoding':
      keys.push(...inner(), 'perceiver.decoder.modalities.label.decoder.output_position_encodings.position_embeddings');
      for (const m of ['audio', 'image', 'label'])
        keys.push(`perceiver.decoder.padding.${m}`, `${ip}.padding.${m}`, `${ip}.mask.${m}`, ...WB(`perceiver.output_postprocessor.modalities.${m}.classifier`));
      break;
  }
  return keys;
}

// ---------------------------------------------------------------------------------
// Layout

function relayout(rec: TensorRecord, t: Target): TensorRecord {
  const shape = rec.shape;
  const bad = (want: string): never => {
    throw new RangeError(`haikuToStateDict: Haiku parameter '${rec.name}' (for '${t.name}') has shape [${shape.join(', ')}], expected ${want}`);
  };
  const renamed = { ...rec, name: t.name };
  switch (t.layout) {
    case 'linear':
      if (shape.length !== 2) bad('a 2-D Linear kernel [in, out]');
      return permuteRecord(renamed, [1, 0]);
    case 'conv':
      if (shape.length !== 4) bad('a 4-D convolution kernel [H, W, in, out]');
      return permuteRecord(renamed, [3, 2, 0, 1]);
    case 'vector':
      if (shape.length !== 1) bad('a 1-D vector');
      return renamed;
    case 'matrix':
      if (shape.length !== 2) bad('a 2-D array');
      return renamed;
    case 'squeeze': {
      // [1, 1, 1, C] (Haiku keeps the reduced axes) -> [C]; size-1 axes carry no layout.
      const keep = shape.map((d, i) => (d === 1 ? -1 : i)).filter((i) => i >= 0);
      if (keep.length > 1) bad('one axis of channels, the others of size 1 (BatchNorm)');
      const axis = keep.length ? keep[0] : shape.length - 1;
      if (axis < 0) bad('at least one axis');
      const strides = rec.strides ?? contiguousStrides(shape);
      return { ...renamed, shape: [shape[axis]], strides: [strides[axis]] };
    }
  }
}

// ---------------------------------------------------------------------------------
// Config: the released models' sizes (HF's config.json of DeepMind's checkpoints) for
// what the shapes cannot tell, and DeepMind's behaviour (see config.ts).

const DEEPMIND = { hidden_act: 'gelu_new', attention_mask_style: 'deepmind' } as const;

// DeepMind released no sequence classifier, so it has no preset.
const PRESETS: Partial<Record<ArchitectureName, Record<string, unknown>>> = {
  PerceiverForMaskedLM: { ...LANGUAGE_PERCEIVER, ...DEEPMIND },
  PerceiverForImageClassificationFourier: { ...VISION_PERCEIVER_FOURIER, ...DEEPMIND },
  PerceiverForImageClassificationLearned: {
    ...VISION_PERCEIVER_FOURIER,
    d_model: 512,
    cross_attention_shape_for_attention: 'q',
    ...DEEPMIND,
    classifier_query_residual: false,
  },
  PerceiverForImageClassificationConvProcessing: { ...VISION_PERCEIVER_FOURIER, d_model: 322, ...DEEPMIND, conv_padding: 'same' },
  PerceiverForOpticalFlow: {
    num_latents: 2048,
    d_latents: 512,
    d_model: 322,
    num_blocks: 1,
    num_self_attends_per_block: 24,
    num_self_attention_heads: 16,
    num_cross_attention_heads: 1,
    qk_channels: null,
    v_channels: null,
    train_size: [368, 496],
    ...DEEPMIND,
    flow_output_scale: 20,
  },
  PerceiverForMultimodalAutoencoding: {
    num_latents: 784,
    d_latents: 512,
    d_model: 704,
    num_blocks: 1,
    num_self_attends_per_block: 8,
    num_self_attention_heads: 8,
    num_cross_attention_heads: 1,
    qk_channels: null,
    v_channels: null,
    num_labels: 700,
    num_frames: 16,
    image_size: 224,
    audio_samples_per_frame: 1920,
    samples_per_patch: 16,
    output_shape: [1, 16, 224, 224],
    output_num_channels: 512,
    _label_trainable_num_channels: 1024,
    ...DEEPMIND,
  },
};

/** The released configuration of a task model in DeepMind's flavour (a config.json object). */
export function haikuPreset(architecture: ArchitectureName): Record<string, unknown> {
  if (!HAIKU_ARCHITECTURES.includes(architecture))
    throw new TypeError(`haikuPreset: argument 'architecture' must be one of ${HAIKU_ARCHITECTURES.join(', ')}, got ${JSON.stringify(architecture)}`);
  return { ...PRESETS[architecture], architectures: [architecture] };
}

type Shapes = Map<string, number[]>;

/**
 * qk / v channels and the cross-attention's shape_for_attention as one HF config can
 * say them: `null` means the per-layer default, so the solver tries the explicit and
 * the default settings and keeps the first that reproduces every observed width.
 */
function solveChannels(
  shapes: Shapes,
  dModel: number,
  dLatents: number,
  preferred: 'kv' | 'q',
): { qk_channels: number | null; v_channels: number | null; cross_attention_shape_for_attention: 'kv' | 'q' } | null {
  const dim0 = (k: string): number | undefined => shapes.get(k)?.[0];
  const qkC = dim0('perceiver.encoder.cross_attention.attention.self.query.weight');
  const vC = dim0('perceiver.encoder.cross_attention.attention.self.value.weight');
  const qkS = dim0('perceiver.encoder.self_attends.0.attention.self.query.weight');
  const vS = dim0('perceiver.encoder.self_attends.0.attention.self.value.weight');
  if (qkC === undefined || vC === undefined) return null;
  const shapesForAttn: ('kv' | 'q')[] = preferred === 'kv' ? ['kv', 'q'] : ['q', 'kv'];
  const qks = [null, qkC, ...(qkS === undefined ? [] : [qkS])];
  const vs = [null, vC, ...(vS === undefined ? [] : [vS])];
  for (const sfa of shapesForAttn)
    for (const qk of qks)
      for (const v of vs) {
        const crossQk = qk ?? (sfa === 'kv' ? dModel : dLatents);
        const crossV = v ?? crossQk;
        const selfQk = qk ?? dLatents;
        const selfV = v ?? selfQk;
        if (crossQk === qkC && crossV === vC && (qkS === undefined || selfQk === qkS) && (vS === undefined || selfV === vS))
          return { qk_channels: qk, v_channels: v, cross_attention_shape_for_attention: sfa };
      }
  return null;
}

/** config.json fields the shapes determine. */
function inferFromShapes(arch: ArchitectureName, shapes: Shapes, numSelfAttends: number, preset: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { num_self_attends_per_block: numSelfAttends };
  const s = (k: string): number[] | undefined => shapes.get(k);
  const latents = s('perceiver.embeddings.latents');
  if (latents) [out.num_latents, out.d_latents] = latents;
  const kvNorm = s('perceiver.encoder.cross_attention.attention.self.layernorm2.weight');
  if (kvNorm) out.d_model = kvNorm[0];
  const widening = (prefix: string): number | undefined => {
    const w = s(`${prefix}.mlp.dense1.weight`);
    return w && w[1] > 0 && w[0] % w[1] === 0 ? w[0] / w[1] : undefined;
  };
  const cw = widening('perceiver.encoder.cross_attention');
  if (cw !== undefined) out.cross_attention_widening_factor = cw;
  const sw = widening('perceiver.encoder.self_attends.0');
  if (sw !== undefined) out.self_attention_widening_factor = sw;
  if (latents && kvNorm) {
    const pref = preset.cross_attention_shape_for_attention === 'q' ? 'q' : 'kv';
    const ch = solveChannels(shapes, kvNorm[0], latents[1], pref);
    if (ch === null) {
      const w = (k: string): string => `[${(s(k) ?? []).join(', ')}]`;
      throw new Error(
        `haikuToStateDict: the encoder's attention widths cannot be expressed by one HF config (qk_channels, v_channels, ` +
          `cross_attention_shape_for_attention): cross-attention query ${w('perceiver.encoder.cross_attention.attention.self.query.weight')}, ` +
          `value ${w('perceiver.encoder.cross_attention.attention.self.value.weight')}; self-attention query ` +
          `${w('perceiver.encoder.self_attends.0.attention.self.query.weight')}, value ${w('perceiver.encoder.self_attends.0.attention.self.value.weight')}`,
      );
    }
    Object.assign(out, ch);
  }
  const ip = 'perceiver.input_preprocessor';
  switch (arch) {
    case 'PerceiverForMaskedLM': {
      const emb = s(`${ip}.embeddings.weight`);
      if (emb) out.vocab_size = emb[0];
      const pos = s(`${ip}.position_embeddings.weight`);
      if (pos) out.max_position_embeddings = pos[0];
      break;
    }
    case 'PerceiverForImageClassificationLearned': {
      const pos = s(`${ip}.position_embeddings.position_embeddings`);
      const side = pos ? Math.round(Math.sqrt(pos[0])) : 0;
      if (pos && side * side === pos[0]) out.image_size = side;
      const b = s('perceiver.decoder.decoder.final_layer.bias');
      if (b) out.num_labels = b[0];
      break;
    }
    case 'PerceiverForImageClassificationFourier':
    case 'PerceiverForImageClassificationConvProcessing': {
      const b = s('perceiver.decoder.decoder.final_layer.bias');
      if (b) out.num_labels = b[0];
      break;
    }
    case 'PerceiverForOpticalFlow':
      break;
    case 'PerceiverForMultimodalAutoencoding': {
      const post = 'perceiver.output_postprocessor.modalities';
      const label = s(`${post}.label.classifier.bias`);
      if (label) out.num_labels = label[0];
      const audio = s(`${post}.audio.classifier.bias`);
      if (audio) out.samples_per_patch = audio[0];
      const fin = s('perceiver.decoder.decoder.final_layer.weight');
      if (fin) out.output_num_channels = fin[0];
      const q = s('perceiver.decoder.modalities.label.decoder.output_position_encodings.position_embeddings');
      if (q) out._label_trainable_num_channels = q[1];
      break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------

function checkRecords(arg: string, recs: unknown): TensorRecord[] {
  if (!Array.isArray(recs)) throw new TypeError(`haikuToStateDict: argument '${arg}' must be an array of TensorRecords, got ${recs === null ? 'null' : typeof recs}`);
  recs.forEach((r, i) => {
    const ok =
      r !== null && typeof r === 'object' && typeof r.name === 'string' && typeof r.dtype === 'string' && has(RECORD_ITEM_SIZE, r.dtype) &&
      Array.isArray(r.shape) && r.shape.every((d: unknown) => Number.isSafeInteger(d) && (d as number) >= 0) &&
      r.source !== null && typeof r.source === 'object';
    if (!ok) throw new TypeError(`haikuToStateDict: ${arg}[${i}] is not a TensorRecord ({name, dtype, shape, source})`);
  });
  return recs as TensorRecord[];
}

const list = (xs: string[], max = 20): string => (xs.length > max ? `${xs.slice(0, max).join(', ')}, ... (${xs.length} in all)` : xs.join(', '));

/**
 * A Haiku checkpoint (records named `<module path>/<name>`, as readHaikuCheckpoint gives
 * them; `state` holds the BatchNorm moving averages of a .pystate) as our stateDict:
 * renamed, Linear kernels transposed to [out, in], conv kernels HWIO -> OIHW,
 * BatchNorm's [1, 1, 1, C] squeezed, and a config.json for it (the released model's
 * sizes where shapes cannot tell them, DeepMind's flavour, then `options.config`).
 * Strict: a parameter nothing maps, a key the model needs that nothing provides, or
 * two parameters for one key is an error that lists them.
 */
export function haikuToStateDict(params: TensorRecord[], state: TensorRecord[] = [], options: string | HaikuConversionOptions = {}): HaikuConversion {
  checkRecords('params', params);
  checkRecords('state', state);
  const opts: HaikuConversionOptions = typeof options === 'string' ? { architecture: options } : options;
  if (opts === null || typeof opts !== 'object') throw new TypeError(`haikuToStateDict: argument 'options' must be an architecture name or an options object`);
  knownKeysArg('haikuToStateDict', 'options', opts, CONVERSION_OPTIONS);
  if (opts.config !== undefined && (opts.config === null || typeof opts.config !== 'object' || Array.isArray(opts.config)))
    throw new TypeError(`haikuToStateDict: option 'config' must be a config.json object`);
  const all = [...params, ...state];
  const fromConfig = Array.isArray(opts.config?.architectures) ? (opts.config.architectures as unknown[])[0] : undefined;
  if (opts.architecture !== undefined && fromConfig !== undefined && fromConfig !== opts.architecture)
    throw new Error(`haikuToStateDict: option 'architecture' is '${opts.architecture}' but config.architectures names ${JSON.stringify(fromConfig)}`);
  const named = opts.architecture ?? fromConfig;
  let arch: ArchitectureName;
  if (named !== undefined) {
    if (!HAIKU_ARCHITECTURES.includes(named as ArchitectureName))
      throw new TypeError(`haikuToStateDict: option 'architecture' (or config.architectures[0]) must be one of ${HAIKU_ARCHITECTURES.join(', ')}, got ${JSON.stringify(named)}`);
    arch = named as ArchitectureName;
  } else {
    arch = detectHaikuArchitecture(all.map((r) => r.name));
  }

  const unmapped: string[] = [];
  const byKey = new Map<string, { rec: TensorRecord; from: string }>();
  const duplicates: string[] = [];
  for (const rec of all) {
    const t = mapName(rec.name, arch);
    if (t === IGNORED) continue;
    if (t === null) {
      unmapped.push(rec.name);
      continue;
    }
    const prev = byKey.get(t.name);
    if (prev) {
      duplicates.push(`'${t.name}' from both '${prev.from}' and '${rec.name}'`);
      continue;
    }
    byKey.set(t.name, { rec: relayout(rec, t), from: rec.name });
  }
  // PyTorch's BatchNorm counts batches where Haiku's EMA keeps its own counter; eval
  // never reads it, and HF's converted checkpoint holds 0 there too.
  const bnWeight = 'perceiver.input_preprocessor.convnet.batchnorm.weight';
  if (arch === 'PerceiverForImageClassificationConvProcessing' && byKey.has(bnWeight))
    byKey.set('perceiver.input_preprocessor.convnet.batchnorm.num_batches_tracked', {
      rec: { name: 'perceiver.input_preprocessor.convnet.batchnorm.num_batches_tracked', dtype: 'I64', shape: [], source: { kind: 'bytes', bytes: new Uint8Array(8) } },
      from: '(BatchNorm batch count)',
    });

  const selfIdx = [...byKey.keys()].map((k) => /^perceiver\.encoder\.self_attends\.(\d+)\./.exec(k)).filter((m) => m !== null).map((m) => Number(m[1]));
  const numSelfAttends = selfIdx.length ? Math.max(...selfIdx) + 1 : 0;
  const expected = expectedKeys(arch, numSelfAttends);
  const expectedSet = new Set(expected);
  const missing = expected.filter((k) => !byKey.has(k));
  const unexpected = [...byKey.entries()].filter(([k]) => !expectedSet.has(k)).map(([k, v]) => `'${v.from}' -> '${k}'`);
  if (numSelfAttends === 0) missing.push('perceiver.encoder.self_attends.0.* (the checkpoint has no self-attention layers)');
  const problems: string[] = [];
  if (unmapped.length) problems.push(`Haiku parameters with no HuggingFace name: ${list(unmapped)}`);
  if (unexpected.length) problems.push(`parameters ${arch} has no slot for: ${list(unexpected)}`);
  if (missing.length) problems.push(`keys ${arch} needs that the checkpoint lacks: ${list(missing)}`);
  if (duplicates.length) problems.push(`keys given twice: ${list(duplicates)}`);
  if (arch === 'PerceiverForImageClassificationConvProcessing' && missing.some((k) => k.endsWith('.running_mean') || k.endsWith('.running_var')) && state.length === 0)
    problems.push(`the BatchNorm moving averages live in the checkpoint's state (a .pystate holding {'params', 'state'}), and none was given`);
  if (problems.length) throw new Error(`haikuToStateDict: the checkpoint does not match ${arch}: ${problems.join('; ')}`);

  const shapes: Shapes = new Map([...byKey].map(([k, v]) => [k, v.rec.shape]));
  const preset = haikuPreset(arch);
  const inferred = inferFromShapes(arch, shapes, numSelfAttends, preset);
  const merged = { ...preset, ...inferred, ...(opts.config ?? {}), architectures: [arch] };
  const config = { ...perceiverConfig(merged as Parameters<typeof perceiverConfig>[0]), model_type: 'perceiver' as const };
  // Records in the model's own key order, so a written file reads like HF's.
  const records = expected.map((k) => byKey.get(k)!.rec);
  return { architecture: arch, config, records };
}
