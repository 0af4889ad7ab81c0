// HF's PerceiverBasicVideoAutoencodingDecoder: a BasicDecoder over the T*H*W grid of
// output_shape [B, T, H, W]; its output is laid out as [B, T, H, W, C].
import { Module, reshape, tidy, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import { BASIC_DECODER_OPTIONS, PerceiverBasicDecoder, decoderForwardArgs, type DecoderQueryContext, type PerceiverBasicDecoderOptions } from './basic.js';
import { intListArg, knownKeysArg, objectArg } from '../args.js';

// The output grid is outputShape's: outputIndexDims is not an option.
const VIDEO_DECODER_OPTIONS = [...BASIC_DECODER_OPTIONS.filter((k) => k !== 'outputIndexDims'), 'outputShape'];

export class PerceiverBasicVideoAutoencodingDecoder extends Module {
  readonly decoder: PerceiverBasicDecoder;
  readonly outputShape: readonly number[];

  constructor(config: PerceiverConfig, opts: Omit<PerceiverBasicDecoderOptions, 'outputIndexDims'> & { outputShape: readonly number[] }) {
    super();
    objectArg('PerceiverBasicVideoAutoencodingDecoder', 'opts', opts, true);
    knownKeysArg('PerceiverBasicVideoAutoencodingDecoder', 'opts', opts, VIDEO_DECODER_OPTIONS);
    intListArg('PerceiverBasicVideoAutoencodingDecoder', 'opts.outputShape', opts.outputShape, 1, Infinity, 1);
    if (opts.outputShape.length !== 4) throw new RangeError(`PerceiverBasicVideoAutoencodingDecoder: output_shape must be [B, T, H, W], got [${opts.outputShape.join(', ')}]`);
    this.outputShape = [...opts.outputShape];
    // outputShape is this class's option; the inner decoder is given the grid it describes.
    const { outputShape: _shape, ...decoderOpts } = opts;
    this.decoder = this.registerModule('decoder', new PerceiverBasicDecoder(config, { ...decoderOpts, outputIndexDims: this.outputShape.slice(1) }));
  }

  get numQueryChannels(): number {
    return this.decoder.numQueryChannels;
  }

  decoderQuery(inputs: Tensor, ctx?: DecoderQueryContext): Tensor {
    return this.decoder.decoderQuery(inputs, ctx);
  }

  /** -> [B, T, H, W, C] (the full grid must have been queried). */
  forward(query: Tensor, z: Tensor, queryMask?: Tensor | null): Tensor {
    decoderForwardArgs('PerceiverBasicVideoAutoencodingDecoder.forward', query, z, queryMask);
    return tidy(() => {
      const out = this.decoder.forward(query, z, queryMask);
      return reshape(out, [...this.outputShape, out.shape[2]]);
    });
  }
}
