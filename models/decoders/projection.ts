// DeepMind's ProjectionDecoder (no HF counterpart; SPEC "Decoders"): no attention and
// no queries; the latents are averaged, then one Linear, zero-initialised as in the
// original (hk.Linear with w_init zeros, biases zero): z [B, N, C] -> mean over N
// [B, C] -> [B, num_classes]. An untrained model therefore outputs exactly 0.
import { Linear, Module, mean, tidy, zeros, type Tensor } from '../../lib/index.js';
import { decoderQueryArgs, type DecoderQueryContext } from './basic.js';
import { deviceArg, intArg, knownKeysArg, objectArg, optionKeys, optionalTensorArg, tensorArg } from '../args.js';

export interface PerceiverProjectionDecoderOptions {
  /** Output width (DeepMind's num_classes). */
  numClasses: number;
  /** Latent width C of z (config d_latents). */
  numZChannels: number;
  device?: string;
}

const PROJECTION_DECODER_OPTIONS = optionKeys<PerceiverProjectionDecoderOptions>({ numClasses: true, numZChannels: true, device: true });

export class PerceiverProjectionDecoder extends Module {
  readonly classifier: Linear;
  readonly numClasses: number;
  readonly numZChannels: number;

  constructor(opts: PerceiverProjectionDecoderOptions) {
    super();
    objectArg('PerceiverProjectionDecoder', 'opts', opts, true);
    knownKeysArg('PerceiverProjectionDecoder', 'opts', opts, PROJECTION_DECODER_OPTIONS);
    deviceArg('PerceiverProjectionDecoder', 'opts.device', opts.device);
    const { numClasses, numZChannels, device } = opts;
    for (const [k, v] of [
      ['numClasses', numClasses],
      ['numZChannels', numZChannels],
    ] as const)
      intArg('PerceiverProjectionDecoder', `opts.${k}`, v, 1);
    this.numClasses = numClasses;
    this.numZChannels = numZChannels;
    this.classifier = this.registerModule('classifier', new Linear(numZChannels, numClasses, { initStd: 0, device }));
    const init = { weight: zeros([numClasses, numZChannels], { device }), bias: zeros([numClasses], { device }) };
    this.classifier.loadStateDict(init, { assign: true });
    init.weight.dispose();
    init.bias.dispose();
  }

  /** No queries (DeepMind returns None): an empty [B, 0, 0] tensor, ignored by forward. */
  decoderQuery(inputs: Tensor, _ctx?: DecoderQueryContext): Tensor {
    decoderQueryArgs('PerceiverProjectionDecoder.decoderQuery', inputs, _ctx);
    return zeros([inputs.shape[0], 0, 0], { device: inputs.device });
  }

  /** z [B, N, C] -> [B, num_classes]; query and queryMask are unused. */
  forward(_query: Tensor | null, z: Tensor, queryMask?: Tensor | null): Tensor {
    optionalTensorArg('PerceiverProjectionDecoder.forward', 'query', _query);
    tensorArg('PerceiverProjectionDecoder.forward', 'z', z, { rank: 3, dtype: 'float', shape: `[B, N, ${this.numZChannels}]` });
    if (queryMask) throw new TypeError(`PerceiverProjectionDecoder: has no queries, so a query mask cannot apply`);
    if (z.rank !== 3 || z.shape[2] !== this.numZChannels)
      throw new RangeError(`PerceiverProjectionDecoder: z must be [B, N, ${this.numZChannels}], got [${z.shape.join(', ')}]`);
    return tidy(() => this.classifier.forward(mean(z, 1)));
  }
}
