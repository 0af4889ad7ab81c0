// PerceiverConfig: HF's config.json fields (snake_case, as stored) with HF's defaults,
// so a config.json object is read as HF's PerceiverConfig would read it.

export type HiddenAct = 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'gelu_fast' | 'relu';

export interface PerceiverConfig {
  architectures?: string[];
  num_latents: number;
  d_latents: number;
  d_model: number;
  num_blocks: number;
  num_self_attends_per_block: number;
  num_self_attention_heads: number;
  num_cross_attention_heads: number;
  qk_channels: number | null;
  v_channels: number | null;
  cross_attention_shape_for_attention: 'kv' | 'q';
  self_attention_widening_factor: number;
  cross_attention_widening_factor: number;
  hidden_act: HiddenAct;
  attention_probs_dropout_prob: number;
  initializer_range: number;
  /** Present in HF configs but never read by HF's model: every LayerNorm uses 1e-5. */
  layer_norm_eps: number;
  use_query_residual: boolean;
  vocab_size: number;
  max_position_embeddings: number;
  image_size: number;
  train_size: [number, number];
  num_frames: number;
  audio_samples_per_frame: number;
  samples_per_patch: number;
  output_shape: number[];
  output_num_channels: number;
  _label_trainable_num_channels: number;
  num_labels: number;
  id2label?: Record<string, string>;

  // DeepMind (Haiku) flavour options. Not HF fields: HF's configs never carry them, so
  // their defaults are HF's behaviour and a HF checkpoint runs as HF runs it. The GELU
  // flavour needs no field of its own: hidden_act 'gelu' is the exact erf form (HF),
  // 'gelu_new' / 'gelu_pytorch_tanh' / 'gelu_fast' the tanh form DeepMind trained with.

  /**
   * The 'conv' image preprocessor's padding. 'hf' (default): conv 7x7/2 padded 3 on
   * every side, max-pool 3x3/2 unpadded (224 -> 55x55 tokens). 'same': TF 'SAME' for
   * both, as DeepMind's original (224 -> 56x56 tokens).
   */
  conv_padding: 'hf' | 'same';
  /** Query residual in the image classifiers' one-query decoder. Default true (HF); DeepMind's learned-position classifier has none. */
  classifier_query_residual: boolean;
  /** Optical flow: multiplies the output after HF's /100. Default 1 (HF); DeepMind's demo uses 20. */
  flow_output_scale: number;
  /**
   * 'hf' (default): only the encoder's input (key) mask exists; a decoder query mask is
   * refused, as HF ignores it. 'deepmind': the decoder also takes a query mask, and the
   * decoder attention is masked by outer(query_mask, kv_mask) (the latents have no mask),
   * so a masked query's attention output is 0, and a row whose every key is masked
   * outputs 0. Under 'hf' such a row attends uniformly to all keys, as HF's additive
   * finfo.min mask makes it.
   */
  attention_mask_style: 'hf' | 'deepmind';

  // Image-classifier extensions for models trained here (MNIST's one channel, small
  // images). Not HF fields; the defaults are the released models' values.

  /** Channels of pixel_values. Default 3. */
  image_channels: number;
  /** Output channels of the 'conv' preprocessor. Default 64. */
  conv_out_channels: number;
  /** Fourier bands of the image position encoding; null: the class's (64). */
  image_fourier_bands: number | null;
  /** max_resolution of the image Fourier features; null: the class's ([56, 56] for conv, [224, 224] for Fourier). */
  image_fourier_max_resolution: number[] | null;
  /** Per-channel normalisation (x - mean) / std applied inside the model; null: none (HF: the processor does it). */
  image_mean: number[] | null;
  image_std: number[] | null;
}

const DEFAULTS: Omit<PerceiverConfig, 'num_labels'> = {
  num_latents: 256,
  d_latents: 1280,
  d_model: 768,
  num_blocks: 1,
  num_self_attends_per_block: 26,
  num_self_attention_heads: 8,
  num_cross_attention_heads: 8,
  qk_channels: null,
  v_channels: null,
  cross_attention_shape_for_attention: 'kv',
  self_attention_widening_factor: 1,
  cross_attention_widening_factor: 1,
  hidden_act: 'gelu',
  attention_probs_dropout_prob: 0.1,
  initializer_range: 0.02,
  layer_norm_eps: 1e-12,
  use_query_residual: true,
  vocab_size: 262,
  max_position_embeddings: 2048,
  image_size: 56,
  train_size: [368, 496],
  num_frames: 16,
  audio_samples_per_frame: 1920,
  samples_per_patch: 16,
  output_shape: [1, 16, 224, 224],
  output_num_channels: 512,
  _label_trainable_num_channels: 1024,
  conv_padding: 'hf',
  classifier_query_residual: true,
  flow_output_scale: 1,
  attention_mask_style: 'hf',
  image_channels: 3,
  conv_out_channels: 64,
  image_fourier_bands: null,
  image_fourier_max_resolution: null,
  image_mean: null,
  image_std: null,
};

// Far past any released Perceiver (d_latents 1280, num_latents 2048, 262 bytes of
// vocabulary): 2^20 per size, 2^31 elements (8 GiB in float32) per weight.
const MAX_SIZE = 2 ** 20;
const MAX_WEIGHT = 2 ** 31;

const ACTS: readonly string[] = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'relu'];

/** A value as the messages show it: JSON, except numbers (NaN, Infinity) and undefined, which JSON would hide. */
function show(v: unknown): string {
  if (v === undefined || typeof v === 'number' || typeof v === 'bigint') return String(v);
  if (typeof v === 'function') return 'a function';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

const isPositiveInt = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isPlainObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A full config from a (possibly partial) config.json object; unknown keys are kept. */
export function perceiverConfig(json: Partial<PerceiverConfig> & Record<string, unknown> = {}): PerceiverConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new TypeError(`perceiverConfig: argument 'json' must be a config.json object, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : show(json)}`);
  const cfg = { ...DEFAULTS, ...json } as PerceiverConfig;
  // HF derives num_labels from id2label when present (PretrainedConfig), else 2.
  if (json.num_labels === undefined) cfg.num_labels = json.id2label ? Object.keys(json.id2label).length : 2;
  if (typeof cfg.hidden_act !== 'string')
    throw new TypeError(`perceiverConfig: hidden_act must be one of ${ACTS.join(', ')}, got ${show(cfg.hidden_act)}`);
  if (!ACTS.includes(cfg.hidden_act))
    throw new TypeError(`perceiverConfig: hidden_act '${String(cfg.hidden_act)}' is not supported (use one of ${ACTS.join(', ')})`);
  if (cfg.cross_attention_shape_for_attention !== 'kv' && cfg.cross_attention_shape_for_attention !== 'q')
    throw new TypeError(`perceiverConfig: cross_attention_shape_for_attention must be 'kv' or 'q', got '${String(cfg.cross_attention_shape_for_attention)}'`);
  if (cfg.conv_padding !== 'hf' && cfg.conv_padding !== 'same')
    throw new TypeError(`perceiverConfig: conv_padding must be 'hf' or 'same', got ${show(cfg.conv_padding)}`);
  if (typeof cfg.classifier_query_residual !== 'boolean')
    throw new TypeError(`perceiverConfig: classifier_query_residual must be true or false, got ${show(cfg.classifier_query_residual)}`);
  if (typeof cfg.flow_output_scale !== 'number' || !Number.isFinite(cfg.flow_output_scale) || cfg.flow_output_scale === 0)
    throw new TypeError(`perceiverConfig: flow_output_scale must be a finite non-zero number, got ${show(cfg.flow_output_scale)}`);
  if (typeof cfg.attention_probs_dropout_prob !== 'number' || !(cfg.attention_probs_dropout_prob >= 0 && cfg.attention_probs_dropout_prob < 1))
    throw new TypeError(`perceiverConfig: attention_probs_dropout_prob must be a number in [0, 1), got ${show(cfg.attention_probs_dropout_prob)}`);
  if (cfg.attention_mask_style !== 'hf' && cfg.attention_mask_style !== 'deepmind')
    throw new TypeError(`perceiverConfig: attention_mask_style must be 'hf' or 'deepmind', got ${show(cfg.attention_mask_style)}`);
  for (const k of ['image_mean', 'image_std', 'image_fourier_max_resolution'] as const) {
    const v = cfg[k];
    if (v !== null && (!Array.isArray(v) || v.length === 0 || v.some((e) => typeof e !== 'number' || !Number.isFinite(e))))
      throw new TypeError(`perceiverConfig: '${k}' must be null or an array of numbers, got ${show(v)}`);
  }
  if ((cfg.image_mean === null) !== (cfg.image_std === null) || (cfg.image_mean && cfg.image_mean.length !== cfg.image_std!.length))
    throw new TypeError(`perceiverConfig: 'image_mean' and 'image_std' must be given together, one value per channel`);
  if (cfg.image_std?.some((s) => s === 0)) throw new TypeError(`perceiverConfig: 'image_std' must not contain 0`);
  if (cfg.image_fourier_bands !== null && (!Number.isSafeInteger(cfg.image_fourier_bands) || cfg.image_fourier_bands <= 0))
    throw new TypeError(`perceiverConfig: 'image_fourier_bands' must be null or a positive integer, got ${show(cfg.image_fourier_bands)}`);
  for (const k of ['num_latents', 'd_latents', 'd_model', 'image_channels', 'conv_out_channels', 'num_blocks', 'num_self_attends_per_block', 'num_self_attention_heads', 'num_cross_attention_heads', 'vocab_size', 'max_position_embeddings'] as const) {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
      throw new TypeError(`perceiverConfig: '${k}' must be a positive integer, got ${show(v)}`);
  }
  // HF's other fields, with HF's meaning: sizes are positive integers, qk/v_channels
  // null (derived from the attention's inputs) or a positive integer.
  for (const k of [
    'self_attention_widening_factor', 'cross_attention_widening_factor', 'image_size', 'num_frames', 'audio_samples_per_frame',
    'samples_per_patch', 'output_num_channels', '_label_trainable_num_channels',
  ] as const) {
    const v = cfg[k];
    if (!isPositiveInt(v)) throw new TypeError(`perceiverConfig: '${k}' must be a positive integer, got ${show(v)}`);
  }
  // HF reads num_labels as len(id2label), which may be 0.
  if (typeof cfg.num_labels !== 'number' || !Number.isSafeInteger(cfg.num_labels) || cfg.num_labels < 0)
    throw new TypeError(`perceiverConfig: 'num_labels' must be an integer >= 0, got ${show(cfg.num_labels)}`);
  for (const k of ['qk_channels', 'v_channels'] as const) {
    const v = cfg[k];
    if (v !== null && !isPositiveInt(v)) throw new TypeError(`perceiverConfig: '${k}' must be null or a positive integer, got ${show(v)}`);
  }
  // Sizes a model can be built at: a constructor that runs out of memory part-way
  // leaves what it had allocated (gigabytes, filled on the queue) until the collector
  // runs, and a later op waits behind those fills.
  for (const k of [
    'num_latents', 'd_latents', 'd_model', 'image_channels', 'conv_out_channels', 'num_self_attention_heads', 'num_cross_attention_heads',
    'vocab_size', 'max_position_embeddings', 'self_attention_widening_factor', 'cross_attention_widening_factor', 'image_size',
    'num_frames', 'audio_samples_per_frame', 'samples_per_patch', 'output_num_channels', '_label_trainable_num_channels', 'num_labels',
    'qk_channels', 'v_channels',
  ] as const) {
    const v = cfg[k];
    if (typeof v === 'number' && v > MAX_SIZE) throw new RangeError(`perceiverConfig: '${k}' must be at most ${MAX_SIZE}, got ${v}`);
  }
  const weights: [string, number][] = [
    ['num_latents x d_latents (the latents)', cfg.num_latents * cfg.d_latents],
    ['d_latents x d_latents x self_attention_widening_factor (a latent MLP)', cfg.d_latents * cfg.d_latents * cfg.self_attention_widening_factor],
    ['d_latents x d_model x cross_attention_widening_factor (the cross-attention)', cfg.d_latents * cfg.d_model * cfg.cross_attention_widening_factor],
    ['vocab_size x d_model (the embeddings)', cfg.vocab_size * cfg.d_model],
    ['max_position_embeddings x d_model (the positions)', cfg.max_position_embeddings * cfg.d_model],
  ];
  for (const [what, n] of weights)
    if (n > MAX_WEIGHT) throw new RangeError(`perceiverConfig: ${what} is ${n} elements, more than a weight may have (${MAX_WEIGHT})`);
  if (typeof cfg.use_query_residual !== 'boolean')
    throw new TypeError(`perceiverConfig: use_query_residual must be true or false, got ${show(cfg.use_query_residual)}`);
  // HF draws weights from normal(0, initializer_range); layer_norm_eps is a LayerNorm epsilon.
  for (const k of ['initializer_range', 'layer_norm_eps'] as const) {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new TypeError(`perceiverConfig: '${k}' must be a finite number >= 0, got ${show(v)}`);
  }
  if (!Array.isArray(cfg.train_size) || cfg.train_size.length !== 2 || !cfg.train_size.every(isPositiveInt))
    throw new TypeError(`perceiverConfig: 'train_size' must be [height, width], two positive integers, got ${show(cfg.train_size)}`);
  if (!Array.isArray(cfg.output_shape) || cfg.output_shape.length === 0 || !cfg.output_shape.every(isPositiveInt))
    throw new TypeError(`perceiverConfig: 'output_shape' must be an array of positive integers, got ${show(cfg.output_shape)}`);
  for (const k of ['id2label', 'label2id'] as const) {
    const v = (cfg as unknown as Record<string, unknown>)[k];
    if (v !== undefined && v !== null && !isPlainObject(v)) throw new TypeError(`perceiverConfig: '${k}' must be an object, got ${show(v)}`);
  }
  if (cfg.architectures !== undefined && cfg.architectures !== null && !Array.isArray(cfg.architectures))
    throw new TypeError(`perceiverConfig: 'architectures' must be an array of class names, got ${show(cfg.architectures)}`);
  return cfg;
}
