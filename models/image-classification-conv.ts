// HF's PerceiverForImageClassificationConvProcessing: conv 7x7/2 + BN + ReLU + max-pool
// 3x3/2 (HF's padding: 224 -> 55x55 tokens; conv_padding 'same': DeepMind's 56x56), concatenated with 2-D Fourier features
// whose max_resolution the class fixes at 56x56, a Perceiver, and a one-query
// classification decoder with query residual.
import { Module, tidy, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel } from './perceiver.js';
import { PerceiverImagePreprocessor } from './preprocessors/image.js';
import { PerceiverClassificationDecoder } from './decoders/classification.js';

export class PerceiverForImageClassificationConvProcessing extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;

  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super();
    const c = perceiverConfig(config);
    this.config = c;
    const device = opts.device;
    const inputPreprocessor = new PerceiverImagePreprocessor(c, {
      prepType: 'conv',
      convPadding: c.conv_padding,
      spatialDownsample: 1,
      positionEncodingType: 'fourier',
      fourier: { concatPos: true, maxResolution: [56, 56], numBands: 64, sineOnly: false },
      device,
    });
    const decoder = new PerceiverClassificationDecoder(c, {
      numChannels: c.d_latents,
      trainable: { numChannels: c.d_latents, indexDims: 1 },
      useQueryResidual: c.classifier_query_residual,
      device,
    });
    this.perceiver = this.registerModule('perceiver', new PerceiverModel(c, { inputPreprocessor, decoder, device }));
  }

  /** pixelValues [B, 3, H, W] (HF layout) -> logits [B, num_labels]. */
  forward(pixelValues: Tensor): { logits: Tensor } {
    return tidy(() => ({ logits: this.perceiver.forward(pixelValues).logits as Tensor }));
  }
}
