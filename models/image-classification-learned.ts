// HF's PerceiverForImageClassificationLearned: a 1x1 conv to 256 channels concatenated
// with a trainable position table [image_size², 256] passed through a 256 -> 256
// Linear, a Perceiver, and a one-query classification decoder with query residual.
import { type PerceiverConfig } from './config.js';
import { PerceiverImageClassifier } from './image-classifier.js';

export class PerceiverForImageClassificationLearned extends PerceiverImageClassifier {
  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super(config, opts, (c) => ({
      prepType: 'conv1x1',
      spatialDownsample: 1,
      inChannels: c.image_channels,
      outChannels: 256,
      positionEncodingType: 'trainable',
      concatOrAddPos: 'concat',
      projectPosDim: 256,
      trainable: { numChannels: 256, indexDims: c.image_size ** 2 },
    }));
  }
}
