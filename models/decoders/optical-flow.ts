// HF's PerceiverOpticalFlowDecoder: the queries are the preprocessed inputs themselves
// (one per pixel), the BasicDecoder projects each to 2 flow channels, and the result is
// divided by rescale_factor and laid out as [B, H, W, 2]. (HF also builds a Fourier
// encoding for this decoder but never queries with it; it has no parameters.)
import { Module, reshape, tidy, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import { PerceiverBasicDecoder, decoderForwardArgs, decoderQueryArgs, type DecoderQueryContext } from './basic.js';
import { configArg, intArg, intListArg, knownKeysArg, numberArg, objectArg, optionKeys } from '../args.js';

export interface PerceiverOpticalFlowDecoderOptions {
  /** Channels of the preprocessed inputs (the queries). */
  numChannels: number;
  /** [H, W] of the output. */
  outputImageShape: readonly number[];
  /** Default 2. */
  outputNumChannels?: number;
  /** Default 100. */
  rescaleFactor?: number;
  /** Applied after the division: 1 (HF, default); DeepMind's demo multiplies by 20. */
  outputScale?: number;
  /** Default false. */
  useQueryResidual?: boolean;
  device?: string;
}

const FLOW_DECODER_OPTIONS = optionKeys<PerceiverOpticalFlowDecoderOptions>({
  numChannels: true, outputImageShape: true, outputNumChannels: true, rescaleFactor: true, outputScale: true, useQueryResidual: true, device: true,
});

export class PerceiverOpticalFlowDecoder extends Module {
  readonly decoder: PerceiverBasicDecoder;
  readonly outputImageShape: readonly number[];
  readonly rescaleFactor: number;
  readonly outputScale: number;

  constructor(config: PerceiverConfig, opts: PerceiverOpticalFlowDecoderOptions) {
    super();
    const op = 'PerceiverOpticalFlowDecoder';
    configArg(op, config);
    objectArg(op, 'opts', opts, true);
    knownKeysArg(op, 'opts', opts, FLOW_DECODER_OPTIONS);
    intArg(op, 'opts.numChannels', opts.numChannels, 1);
    intListArg(op, 'opts.outputImageShape', opts.outputImageShape, 1, Infinity, 1);
    if (opts.outputNumChannels !== undefined) intArg(op, 'opts.outputNumChannels', opts.outputNumChannels, 1);
    for (const k of ['rescaleFactor', 'outputScale'] as const)
      if (opts[k] !== undefined && numberArg(op, `opts.${k}`, opts[k]) === 0) throw new RangeError(`${op}: argument 'opts.${k}' must be a finite non-zero number, got number 0`);
    this.outputImageShape = [...opts.outputImageShape];
    this.rescaleFactor = opts.rescaleFactor ?? 100;
    this.outputScale = opts.outputScale ?? 1;
    this.decoder = this.registerModule(
      'decoder',
      new PerceiverBasicDecoder(config, {
        outputNumChannels: opts.outputNumChannels ?? 2,
        positionEncodingType: 'none',
        numChannels: opts.numChannels,
        useQueryResidual: opts.useQueryResidual ?? false,
        device: opts.device,
      }),
    );
  }

  /** The preprocessed inputs are the queries: one per output pixel, so none can be left out. */
  decoderQuery(inputs: Tensor, ctx: DecoderQueryContext = {}): Tensor {
    decoderQueryArgs('PerceiverOpticalFlowDecoder.decoderQuery', inputs, ctx);
    // HF raises too; ignoring the points would return every pixel to a caller expecting a subset.
    if (ctx.subsampledPoints !== null && ctx.subsampledPoints !== undefined)
      throw new TypeError(`PerceiverOpticalFlowDecoder: subsampled output points are not supported (HF: "FlowDecoder doesn't support subsampling yet."); got subsampledOutputPoints, expected none`);
    return inputs;
  }

  /** query [B, H*W, C], z [B, N, d_latents] -> flow [B, H, W, 2]. */
  forward(query: Tensor, z: Tensor, queryMask?: Tensor | null): Tensor {
    decoderForwardArgs('PerceiverOpticalFlowDecoder.forward', query, z, queryMask);
    const n = this.outputImageShape.reduce((a, b) => a * b, 1);
    if (query.shape[1] !== n)
      throw new RangeError(`PerceiverOpticalFlowDecoder: ${query.shape[1]} queries but the output image [${this.outputImageShape.join(', ')}] has ${n} pixels (train_size must equal the input size)`);
    return tidy(() => {
      // One multiply: with the default scale of 1 this is HF's division exactly.
      const out = this.decoder.forward(query, z, queryMask).scale(this.outputScale / this.rescaleFactor);
      return reshape(out, [out.shape[0], ...this.outputImageShape, out.shape[2]]);
    });
  }
}
