// The released configurations (config.json of DeepMind's checkpoints as
// HuggingFace publishes them), for building full-size models with random weights
// in demos and benchmarks, or as a starting point for one's own.

/** deepmind/vision-perceiver-fourier: 224x224 pixels + 2D Fourier features (261 channels). */
export const VISION_PERCEIVER_FOURIER = {
  architectures: ['PerceiverForImageClassificationFourier'],
  d_latents: 1024,
  num_latents: 512,
  num_blocks: 8,
  num_self_attends_per_block: 6,
  num_self_attention_heads: 8,
  num_cross_attention_heads: 1,
  qk_channels: null,
  v_channels: null,
  cross_attention_shape_for_attention: 'kv' as const,
  self_attention_widening_factor: 1,
  cross_attention_widening_factor: 1,
  d_model: 261,
  image_size: 224,
  hidden_act: 'gelu' as const,
  use_query_residual: true,
  num_labels: 1000,
  initializer_range: 0.02,
};

/** deepmind/language-perceiver: 2048 UTF-8 bytes, masked language modelling. */
export const LANGUAGE_PERCEIVER = {
  architectures: ['PerceiverForMaskedLM'],
  d_latents: 1280,
  num_latents: 256,
  d_model: 768,
  num_blocks: 1,
  num_self_attends_per_block: 26,
  num_self_attention_heads: 8,
  num_cross_attention_heads: 8,
  qk_channels: 256,
  v_channels: 1280,
  cross_attention_shape_for_attention: 'kv' as const,
  self_attention_widening_factor: 1,
  cross_attention_widening_factor: 1,
  hidden_act: 'gelu' as const,
  use_query_residual: true,
  vocab_size: 262,
  max_position_embeddings: 2048,
  initializer_range: 0.02,
};
