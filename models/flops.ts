// FLOPs of one forward pass per example, counted analytically from the config: 2 per
// multiply-add of every matmul (projections, the two attention products, MLPs, convs,
// the classifier / logits layers). Softmax, LayerNorm, GELU, biases, pooling and
// position-encoding arithmetic are left out: they are linear in the activations and
// small next to the matmuls. The network is counted as written (HF's formulation);
// `fastFlops` is the count with the one-head cross-attention fast path (fast-attention.ts)
// wherever attention.ts takes it, i.e. what this engine actually computes.
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { fastCrossAttentionMacs, plainCrossAttentionMacs } from './fast-attention.js';
import { knownKeysArg, objectArg, optionKeys } from './args.js';
import { describe } from '../lib/dtype.js';

export interface FlopPart {
  /** e.g. 'encoder cross-attention k projection'. */
  name: string;
  /** The multiply-adds as a product of the sizes, e.g. '2*512*50176*261' (FLOPs, x repeats). */
  formula: string;
  flops: number;
}

export interface FlopCount {
  architecture: string;
  /** What one example is, e.g. 'image 224x224', '2048 bytes'. */
  input: string;
  parts: FlopPart[];
  /** Sum of parts: the network as written. */
  flops: number;
  /** With the one-head cross-attention fast path where the engine takes it. */
  fastFlops: number;
}

export interface FlopOptions {
  /** Image side (classifiers; default config.image_size), or [H, W] for optical flow (default train_size; the model only takes train_size). */
  imageSize?: number;
  /** Bytes per example for the masked LM, special tokens included (default max_position_embeddings). */
  sequenceLength?: number;
}

const FLOP_OPTIONS = optionKeys<FlopOptions>({ imageSize: true, sequenceLength: true });

interface LayerDims {
  nq: number;
  nk: number;
  qDim: number;
  kvDim: number;
  qk: number;
  v: number;
  out: number;
  widen: number;
  heads: number;
  cross: boolean;
}

/** The channel defaults of HF's PerceiverAttention (as attention.ts resolves them). */
function channels(c: PerceiverConfig, cross: boolean, qDim: number, kvDim: number, qk: number | null, v: number | null): { qk: number; v: number; out: number } {
  let q = qk;
  if (cross && q === null) q = c.cross_attention_shape_for_attention === 'q' ? qDim : kvDim;
  q ??= qDim;
  const vv = v ?? q;
  return { qk: q, v: vv, out: cross ? qDim : vv };
}

class Counter {
  readonly parts: FlopPart[] = [];
  private fastSaving = 0;

  add(name: string, factors: number[], times = 1): void {
    const macs = factors.reduce((a, b) => a * b, 1) * times;
    this.parts.push({ name, formula: `2*${factors.join('*')}${times > 1 ? ` x ${times}` : ''}`, flops: 2 * macs });
  }

  /** One PerceiverLayer: attention (q, k, v, scores, weights·v, output) and its MLP. */
  layer(prefix: string, d: LayerDims, times = 1): void {
    const { nq, nk, qDim, kvDim, qk, v, out, widen } = d;
    this.add(`${prefix} q projection`, [nq, qDim, qk], times);
    this.add(`${prefix} k projection`, [nk, kvDim, qk], times);
    this.add(`${prefix} v projection`, [nk, kvDim, v], times);
    this.add(`${prefix} scores q·kᵀ`, [nq, nk, qk], times);
    this.add(`${prefix} weights·v`, [nq, nk, v], times);
    this.add(`${prefix} output projection`, [nq, v, out], times);
    this.add(`${prefix} MLP`, [2, nq, qDim, widen * qDim], times);
    // attention.ts takes the fast path under exactly this condition.
    if (d.cross && d.heads === 1) {
      const plain = plainCrossAttentionMacs(nq, nk, kvDim, qk, v);
      const fast = fastCrossAttentionMacs(nq, nk, kvDim, qk, v);
      if (fast < plain) this.fastSaving += 2 * (plain - fast) * times;
    }
  }

  result(architecture: string, input: string): FlopCount {
    const flops = this.parts.reduce((s, p) => s + p.flops, 0);
    return { architecture, input, parts: this.parts, flops, fastFlops: flops - this.fastSaving };
  }
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new RangeError(`countFlops: ${name} must be a positive integer, got ${typeof v === 'number' || v === undefined ? String(v) : JSON.stringify(v)}`);
  return v;
}

/** The encoder: a cross-attention from num_latents latents to nk inputs of d_model channels, then the self-attention blocks. */
function encoder(k: Counter, c: PerceiverConfig, nk: number): void {
  const L = c.d_latents;
  const x = channels(c, true, L, c.d_model, c.qk_channels, c.v_channels);
  k.layer('encoder cross-attention', { nq: c.num_latents, nk, qDim: L, kvDim: c.d_model, ...x, widen: c.cross_attention_widening_factor, heads: c.num_cross_attention_heads, cross: true });
  const s = channels(c, false, L, L, c.qk_channels, c.v_channels);
  k.layer(
    'self-attention',
    { nq: c.num_latents, nk: c.num_latents, qDim: L, kvDim: L, ...s, widen: c.self_attention_widening_factor, heads: c.num_self_attention_heads, cross: false },
    c.num_blocks * c.num_self_attends_per_block,
  );
}

/** A BasicDecoder's cross-attention: nq queries of qDim channels attend to the latents. */
function decoder(k: Counter, c: PerceiverConfig, nq: number, qDim: number, opts: { qk?: number; v?: number; heads?: number } = {}): void {
  const ch = channels(c, true, qDim, c.d_latents, opts.qk ?? null, opts.v ?? null);
  k.layer('decoder cross-attention', { nq, nk: c.num_latents, qDim, kvDim: c.d_latents, ...ch, widen: 1, heads: opts.heads ?? 1, cross: true });
}

function classifierDecoder(k: Counter, c: PerceiverConfig): void {
  decoder(k, c, 1, c.d_latents);
  k.add('classifier (final_layer)', [1, c.d_latents, c.num_labels]);
}

/**
 * FLOPs per example of the task model config.architectures[0] names, at the config's
 * input size (options override it). Throws for an architecture it cannot count.
 */
export function countFlops(config: Record<string, unknown>, opts: FlopOptions = {}): FlopCount {
  objectArg('countFlops', 'config', config, true);
  opts = objectArg('countFlops', 'opts', opts);
  knownKeysArg('countFlops', 'opts', opts, FLOP_OPTIONS);
  const arch = Array.isArray(config.architectures) ? String(config.architectures[0]) : undefined;
  if (!arch)
    throw new TypeError(`countFlops: config.architectures[0] must name the model class, got ${Array.isArray(config.architectures) ? JSON.stringify(config.architectures) : describe(config.architectures)}`);
  const c = perceiverConfig(config as Partial<PerceiverConfig> & Record<string, unknown>);
  const k = new Counter();
  switch (arch) {
    case 'PerceiverForMaskedLM': {
      const n = positiveInt('sequenceLength', opts.sequenceLength ?? c.max_position_embeddings);
      const S = c.max_position_embeddings;
      encoder(k, c, n);
      // HF fixes the decoder at 8 heads, qk 8*32, v d_model; its S trainable queries have d_model channels.
      decoder(k, c, S, c.d_model, { qk: 8 * 32, v: c.d_model, heads: 8 });
      k.add('logits through the embedding', [S, c.d_model, c.vocab_size]);
      return k.result(arch, `${n} bytes (${S} output positions)`);
    }
    case 'PerceiverForImageClassificationFourier': {
      const s = positiveInt('imageSize', opts.imageSize ?? c.image_size);
      encoder(k, c, s * s);
      classifierDecoder(k, c);
      return k.result(arch, `image ${s}x${s}`);
    }
    case 'PerceiverForImageClassificationLearned': {
      const s = positiveInt('imageSize', opts.imageSize ?? c.image_size);
      const n = s * s;
      k.add('conv1x1 3 -> 256', [n, 3, 256]);
      k.add('position projection 256 -> 256', [n, 256, 256]);
      encoder(k, c, n);
      classifierDecoder(k, c);
      return k.result(arch, `image ${s}x${s}`);
    }
    case 'PerceiverForImageClassificationConvProcessing': {
      const s = positiveInt('imageSize', opts.imageSize ?? c.image_size);
      // conv 7x7/2 (padded 3, or SAME), then max-pool 3x3/2 (unpadded, or SAME).
      const conv = c.conv_padding === 'same' ? Math.ceil(s / 2) : Math.floor((s + 6 - 7) / 2) + 1;
      const pool = c.conv_padding === 'same' ? Math.ceil(conv / 2) : Math.floor((conv - 3) / 2) + 1;
      if (pool < 1) throw new RangeError(`countFlops: a ${s}x${s} image is too small for the conv preprocessor`);
      k.add('conv 7x7/2 3 -> 64', [conv * conv, 64, 3 * 49]);
      encoder(k, c, pool * pool);
      classifierDecoder(k, c);
      return k.result(arch, `image ${s}x${s} (${pool}x${pool} tokens)`);
    }
    case 'PerceiverForOpticalFlow': {
      const [h, w] = c.train_size;
      if (opts.imageSize !== undefined && positiveInt('imageSize', opts.imageSize) !== h)
        throw new RangeError(`countFlops: PerceiverForOpticalFlow only takes its train_size ${h}x${w}; larger frames are tiled (flow-tiling.ts)`);
      const n = h * w;
      k.add('patches linear 54 -> 64', [n, 54, 64]);
      encoder(k, c, n);
      // The queries are the preprocessed inputs (d_model channels), one per pixel.
      decoder(k, c, n, c.d_model);
      k.add('flow (final_layer)', [n, c.d_model, 2]);
      return k.result(arch, `frame pair ${h}x${w}`);
    }
    case 'PerceiverForMultimodalAutoencoding': {
      // Every output point decoded (one example = the whole video, audio and label; the
      // colab decodes it in chunks, which splits the decoder's rows, not its total).
      const T = c.num_frames;
      const S = c.image_size;
      const spp = c.samples_per_patch;
      const nAudio = T * c.audio_samples_per_frame;
      if (S % 4 !== 0 || nAudio % spp !== 0) throw new RangeError(`countFlops: image_size must be a multiple of 4 and the audio a whole number of patches`);
      const audioTokens = nAudio / spp;
      encoder(k, c, T * (S / 4) ** 2 + audioTokens + 1);
      const imagePoints = c.output_shape.slice(1).reduce((a, b) => a * b, 1);
      const nq = imagePoints + audioTokens + 1;
      // Query channels: the widest modality's queries (3-D Fourier with 32 bands, 1-D with
      // 192, the label's trainable query) plus 2 of padding, as the multimodal decoder pads them.
      const qDim = Math.max(3 * 2 * 32 + 3, 2 * 192 + 1, c._label_trainable_num_channels) + 2;
      decoder(k, c, nq, qDim);
      k.add('decoder final_layer', [nq, qDim, c.output_num_channels]);
      k.add('image postprocessor (projection to RGB)', [imagePoints, c.output_num_channels, 3]);
      k.add('audio postprocessor', [audioTokens, c.output_num_channels, spp]);
      k.add('label postprocessor', [1, c.output_num_channels, c.num_labels]);
      return k.result(arch, `${T} frames ${S}x${S} + ${nAudio} audio samples + label, every output point decoded`);
    }
    default:
      throw new RangeError(`countFlops: FLOP counting is not implemented for ${arch} (counted: PerceiverForMaskedLM, PerceiverForImageClassification{Fourier,Learned,ConvProcessing}, PerceiverForOpticalFlow, PerceiverForMultimodalAutoencoding)`);
  }
}
