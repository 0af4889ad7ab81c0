// HF's PerceiverForImageClassificationConvProcessing: conv 7x7/2 + BN + ReLU + max-pool
// 3x3/2 (HF's padding: 224 -> 55x55 tokens; conv_padding 'same': DeepMind's 56x56), concatenated with 2-D Fourier features
// whose max_resolution the class fixes at 56x56, a Perceiver, and a one-query
// classification decoder with query residual.
import { type PerceiverConfig } from './config.js';
import { PerceiverImageClassifier } from './image-classifier.js';

export class PerceiverForImageClassificationConvProcessing extends PerceiverImageClassifier {
  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super(config, opts, (c) => ({
      prepType: 'conv',
      convPadding: c.conv_padding,
      spatialDownsample: 1,
      inChannels: c.image_channels,
      outChannels: c.conv_out_channels,
      positionEncodingType: 'fourier',
      fourier: { concatPos: true, maxResolution: c.image_fourier_max_resolution ?? [56, 56], numBands: c.image_fourier_bands ?? 64, sineOnly: false },
    }));
  }
}
