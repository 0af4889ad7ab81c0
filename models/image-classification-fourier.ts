// HF's PerceiverForImageClassificationFourier: raw pixels concatenated with 2-D Fourier
// features (64 bands, max_resolution fixed at 224x224 by the class, whatever the image
// size), a Perceiver, and a one-query classification decoder with query residual.
import { type PerceiverConfig } from './config.js';
import { PerceiverImageClassifier } from './image-classifier.js';

export class PerceiverForImageClassificationFourier extends PerceiverImageClassifier {
  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super(config, opts, (c) => ({
      prepType: 'pixels',
      spatialDownsample: 1,
      inChannels: c.image_channels,
      positionEncodingType: 'fourier',
      fourier: { concatPos: true, maxResolution: c.image_fourier_max_resolution ?? [224, 224], numBands: c.image_fourier_bands ?? 64, sineOnly: false },
    }));
  }
}
