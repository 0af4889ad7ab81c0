// HF's PerceiverModel: preprocessor -> latents cross-attend to the inputs (with the
// input mask) -> shared self-attention blocks -> decoder queries cross-attend to the
// latents -> optional postprocessor. Task models wrap it under the name `perceiver`.
import { Module, Tensor, cast, notEqual, reshape, sub, tidy } from '../lib/index.js';
import type { PerceiverConfig } from './config.js';
import { PerceiverEmbeddings } from './embeddings.js';
import { PerceiverEncoder } from './encoder.js';
import type { DecoderQueryContext } from './decoders/basic.js';
import type { Postprocessor } from './postprocessors.js';
import type { Preprocessor, PreprocessorInput } from './preprocessors/preprocessor.js';
import { saveModel, type SaveModelOptions } from './save.js';
import { knownKeysArg, objectArg, optionKeys, optionalTensorArg, tensorArg } from './args.js';
import { describe } from '../lib/dtype.js';

/** What PerceiverModel needs of a decoder. */
export interface Decoder extends Module {
  decoderQuery(inputs: Tensor, ctx?: DecoderQueryContext): Tensor;
  /** queryMask [B, N_out]: DeepMind's decoder query mask (attention_mask_style 'deepmind' only). */
  forward(query: Tensor, z: Tensor, queryMask?: Tensor | null): Tensor;
}

export interface PerceiverModelOutput {
  /** Decoder (and postprocessor) output: [B, N_out, C], [B, num_labels], or one per modality. */
  logits: Tensor | Record<string, Tensor> | null;
  /** Latents after the encoder: [B, num_latents, d_latents]. */
  lastHiddenState: Tensor;
}

export interface PerceiverForwardOptions {
  /** [B, M] (1 = attend, 0 = padding), M = positions after preprocessing. */
  attentionMask?: Tensor | null;
  /**
   * [B, N_out] (1 = query used): DeepMind's decoder query_mask. Needs config
   * attention_mask_style 'deepmind'; HF has no such mask, so under 'hf' it is refused.
   */
  queryMask?: Tensor | null;
  /**
   * Resize the image preprocessor's trainable position table to the image's grid
   * (bicubic, HF's interpolate_pos_encoding), so a learned-position classifier takes
   * other image sizes. Encodings computed per size (Fourier) need no resizing.
   */
  interpolatePosEncoding?: boolean;
  /** Flat output indices per modality (HF's subsampled_output_points), for decoders that subsample. */
  subsampledOutputPoints?: Record<string, ArrayLike<number> | null | undefined> | null;
}

const FORWARD_OPTIONS = optionKeys<PerceiverForwardOptions>({ attentionMask: true, queryMask: true, interpolatePosEncoding: true, subsampledOutputPoints: true });
const PARTS = ['inputPreprocessor', 'decoder', 'outputPostprocessor', 'device'];

/** Checks an interpolatePosEncoding option (default false). */
export function interpolateFlag(op: string, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new TypeError(`${op}: option 'interpolatePosEncoding' must be a boolean, got ${describe(v)}`);
  return v;
}

/**
 * HF's attention_mask [B, M] (1 = attend, 0 = padding; any integer or float dtype) as
 * the engine's uint8 key mask [B, 1, M], broadcast over the latent queries.
 *
 * Values other than 0/1 are read as "attend" when non-zero. For HF's exact behaviour
 * on rows that mask everything, use hfKeyMask.
 */
export function keyMask(attentionMask: Tensor): Tensor {
  return keyMaskOf('keyMask', attentionMask);
}

function keyMaskOf(op: string, attentionMask: Tensor): Tensor {
  tensorArg(op, 'attentionMask', attentionMask, { rank: 2, shape: '[B, M]' });
  return tidy(() => {
    const m = attentionMask.dtype === 'float32' ? attentionMask : cast(attentionMask, 'float32');
    const [B, M] = attentionMask.shape;
    return reshape(notEqual(m, 0), [B, 1, M]);
  });
}

/**
 * HF's attention_mask as HF applies it: it adds (1 - mask) * finfo.min to the
 * cross-attention logits. That equals excluding the key, except when a batch row masks
 * every key: the logits then all round to finfo.min, and HF returns the uniform
 * average of the values, where the engine's fused attention returns 0 (SPEC attend()
 * step 5). Such rows get an all-ones mask and a query scale of 0 (equal logits), so
 * both attention paths reproduce HF without reading the mask back to the host.
 * -> mask uint8 [B, 1, M], queryScale float32 [B, 1, 1] (1, or 0 for those rows).
 */
export function hfKeyMask(attentionMask: Tensor): { mask: Tensor; queryScale: Tensor } {
  return tidy(() => {
    const allowed = cast(keyMaskOf('hfKeyMask', attentionMask), 'float32');
    const anyAllowed = allowed.max(-1, { keepdim: true });
    // Rows with no allowed key become all ones; other rows are unchanged.
    return { mask: notEqual(allowed.add(sub(1, anyAllowed)), 0), queryScale: anyAllowed };
  });
}

export class PerceiverModel extends Module {
  readonly config: PerceiverConfig;
  readonly inputPreprocessor: Preprocessor | null;
  readonly embeddings: PerceiverEmbeddings;
  readonly encoder: PerceiverEncoder;
  readonly decoder: Decoder | null;
  readonly outputPostprocessor: Postprocessor | null;

  constructor(
    config: PerceiverConfig,
    parts: { inputPreprocessor?: Preprocessor; decoder?: Decoder; outputPostprocessor?: Postprocessor; device?: string } = {},
  ) {
    super();
    objectArg('PerceiverModel', 'config', config, true);
    parts = objectArg('PerceiverModel', 'parts', parts);
    knownKeysArg('PerceiverModel', 'parts', parts, PARTS);
    for (const k of ['inputPreprocessor', 'decoder', 'outputPostprocessor'] as const) {
      const v: unknown = parts[k];
      if (v !== undefined && v !== null && !(v instanceof Module)) throw new TypeError(`PerceiverModel: argument 'parts.${k}' must be a Module, got ${describe(v)}`);
    }
    this.config = config;
    const device = parts.device;
    this.inputPreprocessor = parts.inputPreprocessor ? this.registerModule('input_preprocessor', parts.inputPreprocessor) : null;
    this.embeddings = this.registerModule(
      'embeddings',
      new PerceiverEmbeddings(config.num_latents, config.d_latents, { initStd: config.initializer_range, device }),
    );
    this.encoder = this.registerModule(
      'encoder',
      new PerceiverEncoder(config, { kvDim: this.inputPreprocessor?.numChannels ?? config.d_model, device }),
    );
    this.decoder = parts.decoder ? this.registerModule('decoder', parts.decoder) : null;
    this.outputPostprocessor = parts.outputPostprocessor ? this.registerModule('output_postprocessor', parts.outputPostprocessor) : null;
  }

  /** inputs: whatever the preprocessor takes (or [B, M, d_model] without one). */
  forward(inputs: PreprocessorInput, opts: PerceiverForwardOptions = {}): PerceiverModelOutput {
    const op = 'PerceiverModel.forward';
    opts = objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, FORWARD_OPTIONS);
    const attentionMask = optionalTensorArg(op, 'opts.attentionMask', opts.attentionMask, { rank: 2, shape: '[B, M]' });
    const queryMask = optionalTensorArg(op, 'opts.queryMask', opts.queryMask, { rank: 2, shape: '[B, N_out]' });
    const subsampled = opts.subsampledOutputPoints;
    if (subsampled !== undefined && subsampled !== null && (typeof subsampled !== 'object' || Array.isArray(subsampled)))
      throw new TypeError(`${op}: argument 'opts.subsampledOutputPoints' must be an object (modality -> flat indices), got ${describe(subsampled)}`);
    return tidy(() => {
      let x: Tensor;
      let withoutPos: Tensor | Record<string, Tensor> | null = null;
      let modalitySizes: Record<string, number> | undefined;
      if (this.inputPreprocessor) ({ inputs: x, inputsWithoutPos: withoutPos, modalitySizes } = this.inputPreprocessor.forward(inputs, { interpolatePosEncoding: interpolateFlag('PerceiverModel', opts.interpolatePosEncoding) }));
      else {
        if (!(inputs instanceof Tensor)) throw new TypeError(`PerceiverModel: without a preprocessor, inputs must be one [B, M, d_model] tensor, got ${describe(inputs)}`);
        tensorArg(op, 'inputs', inputs);
        x = inputs;
        // Checked here: a wrong rank would otherwise surface as a reshape error deep in the encoder.
        if (x.rank !== 3) throw new RangeError(`PerceiverModel: inputs must be [B, M, d_model] = [B, M, ${this.config.d_model}], got [${x.shape.join(', ')}]`);
        if (x.shape[x.rank - 1] !== this.config.d_model)
          throw new RangeError(`PerceiverModel: inputs have ${x.shape[x.rank - 1]} channels, config.d_model is ${this.config.d_model}`);
      }
      if (queryMask && this.config.attention_mask_style !== 'deepmind')
        throw new TypeError(`PerceiverModel: a decoder query mask needs config attention_mask_style 'deepmind' (HF ignores query masks)`);
      const B = x.shape[0];
      let mask: Tensor | null = null;
      let queryScale: Tensor | null = null;
      if (attentionMask) {
        if (attentionMask.shape[0] !== B || attentionMask.shape[1] !== x.shape[1])
          throw new RangeError(`PerceiverModel: attention_mask [${attentionMask.shape.join(', ')}] does not match the inputs [${B}, ${x.shape[1]}, ...]`);
        if (this.config.attention_mask_style === 'hf') ({ mask, queryScale } = hfKeyMask(attentionMask));
        else mask = keyMask(attentionMask);
      }
      const z = this.encoder.forward(this.embeddings.forward(B), x, mask, queryScale);
      if (!this.decoder) return { logits: null, lastHiddenState: z };
      const points = opts.subsampledOutputPoints ?? null;
      const query = this.decoder.decoderQuery(x, { inputsWithoutPos: withoutPos, modalitySizes, subsampledPoints: points });
      const out = this.decoder.forward(query, z, queryMask);
      if (!this.outputPostprocessor) return { logits: out, lastHiddenState: z };
      // HF: with subsampling the output has one run per modality of the subsampled
      // length (label: one query); otherwise the input modality sizes.
      let outSizes = modalitySizes;
      if (points && modalitySizes) {
        outSizes = {};
        for (const m of Object.keys(modalitySizes)) outSizes[m] = points[m] ? points[m]!.length : 1;
      }
      return { logits: this.outputPostprocessor.forward(out, outSizes), lastHiddenState: z };
    });
  }

  /** Writes config.json + model.safetensors (or shards + index) to dir in HF's layout (see models/save.ts). */
  save(dir: string, opts?: SaveModelOptions): Promise<void> {
    return saveModel(this, dir, opts);
  }
}

