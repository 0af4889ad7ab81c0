// HF's PerceiverClassificationDecoder: a BasicDecoder with one query whose output row
// is the class logits.
import { Module, reshape, slice, tidy, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import { BASIC_DECODER_OPTIONS, PerceiverBasicDecoder, decoderForwardArgs, type DecoderQueryContext, type PerceiverBasicDecoderOptions } from './basic.js';
import { configArg, knownKeysArg, objectArg } from '../args.js';

// The output is one query of num_labels channels: those two are the class's, not options.
const CLASSIFICATION_DECODER_OPTIONS = BASIC_DECODER_OPTIONS.filter((k) => k !== 'outputNumChannels' && k !== 'outputIndexDims');

export class PerceiverClassificationDecoder extends Module {
  readonly decoder: PerceiverBasicDecoder;
  readonly numLabels: number;

  constructor(config: PerceiverConfig, opts: Omit<PerceiverBasicDecoderOptions, 'outputNumChannels' | 'outputIndexDims'>) {
    super();
    configArg('PerceiverClassificationDecoder', config, ['num_labels']);
    objectArg('PerceiverClassificationDecoder', 'opts', opts, true);
    knownKeysArg('PerceiverClassificationDecoder', 'opts', opts, CLASSIFICATION_DECODER_OPTIONS);
    this.numLabels = config.num_labels;
    this.decoder = this.registerModule(
      'decoder',
      new PerceiverBasicDecoder(config, { ...opts, outputNumChannels: config.num_labels, outputIndexDims: 1 }),
    );
  }

  get numQueryChannels(): number {
    return this.decoder.numQueryChannels;
  }

  decoderQuery(inputs: Tensor, ctx?: DecoderQueryContext): Tensor {
    return this.decoder.decoderQuery(inputs, ctx);
  }

  /** -> [B, num_labels]. */
  forward(query: Tensor, z: Tensor, queryMask?: Tensor | null): Tensor {
    decoderForwardArgs('PerceiverClassificationDecoder.forward', query, z, queryMask);
    return tidy(() => {
      const out = this.decoder.forward(query, z, queryMask);
      return reshape(slice(out, 1, 0, 1), [out.shape[0], out.shape[2]]);
    });
  }
}
