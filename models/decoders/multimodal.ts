// HF's PerceiverMultimodalDecoder: each modality's decoder only builds queries; each
// modality's queries are padded on the channel axis with its trainable
// `padding.<modality>` vector up to max(query channels) + min_padding_size, joined in
// sorted name order, and one shared BasicDecoder (`decoder`, no queries of its own)
// decodes them all.
import { Module, ModuleDict, ParameterDict, broadcastTo, computeDtype, concat, initNormal, reshape, tidy, toDtype, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import { PerceiverBasicDecoder, decoderForwardArgs, decoderQueryArgs, type DecoderQueryContext } from './basic.js';
import { configArg, intArg, knownKeysArg, objectArg, optionKeys } from '../args.js';
import { describe } from '../../lib/dtype.js';

/** A decoder that can build queries for one modality. */
export interface ModalityDecoder extends Module {
  readonly numQueryChannels: number;
  decoderQuery(inputs: Tensor, ctx?: DecoderQueryContext): Tensor;
}

export interface PerceiverMultimodalDecoderOptions {
  modalities: Record<string, ModalityDecoder>;
  outputNumChannels: number;
  /** Default 2. */
  minPaddingSize?: number;
  /** Passed to the shared decoder. Default false. */
  useQueryResidual?: boolean;
  numHeads?: number;
  qkChannels?: number | null;
  vChannels?: number | null;
  device?: string;
}

const MULTIMODAL_DECODER_OPTIONS = optionKeys<PerceiverMultimodalDecoderOptions>({
  modalities: true, outputNumChannels: true, minPaddingSize: true, useQueryResidual: true, numHeads: true, qkChannels: true, vChannels: true, device: true,
});

export class PerceiverMultimodalDecoder extends Module {
  readonly modalities: ModuleDict<ModalityDecoder>;
  readonly decoder: PerceiverBasicDecoder;
  readonly padding: ParameterDict;
  readonly numQueryChannels: number;

  constructor(config: PerceiverConfig, opts: PerceiverMultimodalDecoderOptions) {
    super();
    const op = 'PerceiverMultimodalDecoder';
    configArg(op, config);
    objectArg(op, 'opts', opts, true);
    knownKeysArg(op, 'opts', opts, MULTIMODAL_DECODER_OPTIONS);
    objectArg(op, 'opts.modalities', opts.modalities, true);
    if (Object.keys(opts.modalities).length === 0) throw new RangeError(`${op}: argument 'opts.modalities' must name at least one modality, got none`);
    for (const [m, d] of Object.entries(opts.modalities))
      if (!(d instanceof Module) || typeof d.numQueryChannels !== 'number' || typeof d.decoderQuery !== 'function')
        throw new TypeError(`${op}: argument 'opts.modalities.${m}' must be a decoder Module that builds queries, got ${describe(d)}`);
    if (opts.minPaddingSize !== undefined) intArg(op, 'opts.minPaddingSize', opts.minPaddingSize, 0);
    this.modalities = this.registerModule('modalities', new ModuleDict(opts.modalities));
    this.numQueryChannels = Math.max(...Object.values(opts.modalities).map((d) => d.numQueryChannels)) + (opts.minPaddingSize ?? 2);
    this.decoder = this.registerModule(
      'decoder',
      new PerceiverBasicDecoder(config, {
        outputNumChannels: opts.outputNumChannels,
        positionEncodingType: 'none',
        numChannels: this.numQueryChannels,
        useQueryResidual: opts.useQueryResidual ?? false,
        numHeads: opts.numHeads,
        qkChannels: opts.qkChannels,
        vChannels: opts.vChannels,
        device: opts.device,
      }),
    );
    const padding: Record<string, Tensor> = {};
    for (const [m, d] of Object.entries(opts.modalities))
      padding[m] = initNormal([1, this.numQueryChannels - d.numQueryChannels], config.initializer_range, opts.device);
    this.padding = this.registerModule('padding', new ParameterDict(padding));
  }

  /**
   * inputs [B, M, C] are the concatenated preprocessed inputs; ctx.modalitySizes says
   * how they split (sorted order); ctx.subsampledPoints holds flat output indices per
   * modality (absent or null: that decoder's own full set of queries).
   */
  decoderQuery(inputs: Tensor, ctx: DecoderQueryContext = {}): Tensor {
    decoderQueryArgs('PerceiverMultimodalDecoder.decoderQuery', inputs, ctx);
    const sizes = ctx.modalitySizes;
    if (sizes !== undefined) objectArg('PerceiverMultimodalDecoder.decoderQuery', 'ctx.modalitySizes', sizes);
    if (!sizes) throw new TypeError(`PerceiverMultimodalDecoder: decoderQuery needs the preprocessor's modality sizes`);
    const points = (ctx.subsampledPoints ?? {}) as Record<string, ArrayLike<number> | null | undefined>;
    const without = (ctx.inputsWithoutPos ?? {}) as Record<string, Tensor>;
    return tidy(() => {
      const parts: Record<string, Tensor> = {};
      let start = 0;
      const split: Record<string, Tensor> = {};
      for (const m of Object.keys(sizes).sort()) {
        split[m] = inputs.slice(1, start, start + sizes[m]);
        start += sizes[m];
      }
      for (const [m, dec] of this.modalities.entries) {
        if (!split[m]) throw new TypeError(`PerceiverMultimodalDecoder: the inputs have no modality '${m}'`);
        const q = dec.decoderQuery(split[m], { inputsWithoutPos: without[m] ?? null, subsampledPoints: points[m] ?? null });
        const [B, C] = [q.shape[0], q.shape[q.rank - 1]];
        const flat = reshape(q, [B, q.size / (B * C), C]);
        const padding = this.padding.get(m);
        const dt = computeDtype(padding);
        const pad = broadcastTo(toDtype(padding, dt), [B, flat.shape[1], this.numQueryChannels - C]);
        parts[m] = concat([toDtype(flat, dt), pad], 2);
      }
      return concat(Object.keys(parts).sort().map((m) => parts[m]), 1);
    });
  }

  /** query [B, N_out, numQueryChannels], z -> [B, N_out, output_num_channels]. */
  forward(query: Tensor, z: Tensor, queryMask?: Tensor | null): Tensor {
    decoderForwardArgs('PerceiverMultimodalDecoder.forward', query, z, queryMask);
    return this.decoder.forward(query, z, queryMask);
  }
}
