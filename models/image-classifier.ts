// What HF's three image classifiers share: an image preprocessor (the only part
// that differs between them), a Perceiver, and a one-query classification decoder
// (with query residual unless config.classifier_query_residual is false).
import { Module, tidy, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel } from './perceiver.js';
import { PerceiverImagePreprocessor, type PerceiverImagePreprocessorOptions } from './preprocessors/image.js';
import { PerceiverClassificationDecoder } from './decoders/classification.js';
import { saveModel, type SaveModelOptions } from './save.js';

export abstract class PerceiverImageClassifier extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;

  protected constructor(
    config: Partial<PerceiverConfig> & Record<string, unknown>,
    opts: { device?: string },
    preprocessorOptions: (c: PerceiverConfig) => PerceiverImagePreprocessorOptions,
  ) {
    super();
    const c = perceiverConfig(config);
    this.config = c;
    const device = opts.device;
    const inputPreprocessor = new PerceiverImagePreprocessor(c, { ...preprocessorOptions(c), device });
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

  /** Writes config.json + model.safetensors (or shards + index) to dir in HF's layout (see models/save.ts). */
  save(dir: string, opts?: SaveModelOptions): Promise<void> {
    return saveModel(this, dir, opts);
  }
}
