// HF's PerceiverForImageClassificationLearned: a 1x1 conv to 256 channels concatenated
// with a trainable position table [image_size², 256] passed through a 256 -> 256
// Linear, a Perceiver, and a one-query classification decoder with query residual.
import { Module, tidy, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel } from './perceiver.js';
import { PerceiverImagePreprocessor } from './preprocessors/image.js';
import { PerceiverClassificationDecoder } from './decoders/classification.js';

export class PerceiverForImageClassificationLearned extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;

  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super();
    const c = perceiverConfig(config);
    this.config = c;
    const device = opts.device;
    const inputPreprocessor = new PerceiverImagePreprocessor(c, {
      prepType: 'conv1x1',
      spatialDownsample: 1,
      outChannels: 256,
      positionEncodingType: 'trainable',
      concatOrAddPos: 'concat',
      projectPosDim: 256,
      trainable: { numChannels: 256, indexDims: c.image_size ** 2 },
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

  /** pixelValues [B, 3, image_size, image_size] (HF layout) -> logits [B, num_labels]. */
  forward(pixelValues: Tensor): { logits: Tensor } {
    return tidy(() => ({ logits: this.perceiver.forward(pixelValues).logits as Tensor }));
  }
}
