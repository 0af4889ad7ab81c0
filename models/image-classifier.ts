// What HF's three image classifiers share: an image preprocessor (the only part
// that differs between them), a Perceiver, and a one-query classification decoder
// (with query residual unless config.classifier_query_residual is false).
import { Module, tensor, tidy, toDtype, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel, interpolateFlag } from './perceiver.js';
import { PerceiverImagePreprocessor, type PerceiverImagePreprocessorOptions } from './preprocessors/image.js';
import { PerceiverClassificationDecoder } from './decoders/classification.js';
import { saveModel, type SaveModelOptions } from './save.js';
import { knownKeysArg, objectArg, tensorArg } from './args.js';

export abstract class PerceiverImageClassifier extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;

  protected constructor(
    config: Partial<PerceiverConfig> & Record<string, unknown>,
    opts: { device?: string },
    preprocessorOptions: (c: PerceiverConfig) => PerceiverImagePreprocessorOptions,
  ) {
    super();
    objectArg(this.constructor.name, 'config', config, true);
    opts = objectArg(this.constructor.name, 'opts', opts);
    knownKeysArg(this.constructor.name, 'opts', opts, ['device']);
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

  /**
   * pixelValues [B, C, H, W] (HF layout; C = config.image_channels, 3 by default) ->
   * logits [B, num_labels]. With config.image_mean/std the model normalises its input.
   * opts.interpolatePosEncoding (HF's interpolate_pos_encoding) lets the learned-position
   * classifier take images of another size than config.image_size; the Fourier ones
   * take any size without it.
   */
  forward(pixelValues: Tensor, opts: { interpolatePosEncoding?: boolean } = {}): { logits: Tensor } {
    const op = `${this.constructor.name}.forward`;
    tensorArg(op, 'pixelValues', pixelValues, { rank: 4, dtype: 'float', shape: '[B, C, H, W]' });
    opts = objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, ['interpolatePosEncoding']);
    const interpolatePosEncoding = interpolateFlag(op, opts.interpolatePosEncoding);
    return tidy(() => {
      let x = pixelValues;
      const { image_mean: mean, image_std: std } = this.config;
      if (mean && std) {
        if (x.rank !== 4 || x.shape[1] !== mean.length)
          throw new RangeError(`${this.constructor.name}: pixel_values must be [B, ${mean.length}, H, W] (config.image_mean has ${mean.length} channels), got [${x.shape.join(', ')}]`);
        const shape = [1, mean.length, 1, 1];
        x = x.sub(toDtype(tensor(Float32Array.from(mean), shape, { device: x.device }), x.dtype)).div(toDtype(tensor(Float32Array.from(std), shape, { device: x.device }), x.dtype));
      }
      return { logits: this.perceiver.forward(x, { interpolatePosEncoding }).logits as Tensor };
    });
  }

  /** Writes config.json + model.safetensors (or shards + index) to dir in HF's layout (see models/save.ts). */
  save(dir: string, opts?: SaveModelOptions): Promise<void> {
    return saveModel(this, dir, opts);
  }
}
