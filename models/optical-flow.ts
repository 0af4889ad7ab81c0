// HF's PerceiverForOpticalFlow: two frames of 3x3 patches per pixel [B, 2, 27, H, W]
// are stacked into 54 channels (space-to-depth over time), projected to 64, joined
// with 2-D Fourier features over train_size; each pixel's features then query the
// latents for its flow. Output [B, H, W, 2] = decoder output / 100 (HF; the DeepMind
// demo multiplies by 20 afterwards: config flow_output_scale 20). train_size must equal the input's H, W.
import { Module, tidy, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel } from './perceiver.js';
import { PerceiverImagePreprocessor } from './preprocessors/image.js';
import { PerceiverOpticalFlowDecoder } from './decoders/optical-flow.js';
import { saveModel, type SaveModelOptions } from './save.js';
import { knownKeysArg, objectArg, tensorArg } from './args.js';

export class PerceiverForOpticalFlow extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;

  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super();
    objectArg('PerceiverForOpticalFlow', 'config', config, true);
    opts = objectArg('PerceiverForOpticalFlow', 'opts', opts);
    knownKeysArg('PerceiverForOpticalFlow', 'opts', opts, ['device']);
    const c = perceiverConfig(config);
    this.config = c;
    const device = opts.device;
    const inputPreprocessor = new PerceiverImagePreprocessor(c, {
      prepType: 'patches',
      spatialDownsample: 1,
      convAfterPatching: true,
      convAfterPatchingInChannels: 54,
      temporalDownsample: 2,
      positionEncodingType: 'fourier',
      fourier: { numBands: 64, maxResolution: c.train_size, sineOnly: false, concatPos: true },
      device,
    });
    const decoder = new PerceiverOpticalFlowDecoder(c, {
      numChannels: inputPreprocessor.numChannels,
      outputImageShape: c.train_size,
      rescaleFactor: 100,
      outputScale: c.flow_output_scale,
      useQueryResidual: false,
      outputNumChannels: 2,
      device,
    });
    this.perceiver = this.registerModule('perceiver', new PerceiverModel(c, { inputPreprocessor, decoder, device }));
  }

  /** inputs [B, 2, 27, H, W] (two frames of 3x3x3 patches, HF layout) -> flow [B, H, W, 2]. */
  forward(inputs: Tensor): { logits: Tensor } {
    tensorArg('PerceiverForOpticalFlow.forward', 'inputs', inputs, { rank: 5, dtype: 'float', shape: '[B, 2, 27, H, W]' });
    if (inputs.shape[1] !== 2 || inputs.shape[2] !== 27)
      throw new RangeError(`PerceiverForOpticalFlow.forward: argument 'inputs' must be [B, 2, 27, H, W] (two frames of 3x3x3 patches), got shape [${inputs.shape.join(', ')}]`);
    // The decoder's queries are train_size's grid: an input of the same pixel count in
    // another shape would come back poured row by row into that grid (HF reshapes so).
    const [h, w] = this.config.train_size;
    if (inputs.shape[3] !== h || inputs.shape[4] !== w)
      throw new RangeError(`PerceiverForOpticalFlow.forward: argument 'inputs' must be ${h} x ${w} pixels (config train_size), got ${inputs.shape[3]} x ${inputs.shape[4]}; estimateFlow() tiles larger frames`);
    return tidy(() => ({ logits: this.perceiver.forward(inputs).logits as Tensor }));
  }

  /** Writes config.json + model.safetensors (or shards + index) to dir in HF's layout (see models/save.ts). */
  save(dir: string, opts?: SaveModelOptions): Promise<void> {
    return saveModel(this, dir, opts);
  }
}
