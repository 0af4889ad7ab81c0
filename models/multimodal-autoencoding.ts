// HF's PerceiverForMultimodalAutoencoding: video (4x4 patches + 3-D Fourier
// features), audio (patches + 1-D Fourier features) and a label (always replaced by
// its mask token) are padded to one width and encoded together; the decoder queries
// Fourier features of subsampled output points (image, audio) and a trainable label
// query, and per-modality heads map the shared decoder's output back:
// logits {audio [B, n_audio * samples_per_patch], image [B, n_image, 3], label [B, num_labels]}.
import { Module, tidy, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel } from './perceiver.js';
import { PerceiverAudioPreprocessor } from './preprocessors/audio.js';
import { PerceiverImagePreprocessor } from './preprocessors/image.js';
import { PerceiverOneHotPreprocessor } from './preprocessors/one-hot.js';
import { PerceiverMultimodalPreprocessor } from './preprocessors/multimodal.js';
import { PerceiverBasicDecoder } from './decoders/basic.js';
import { PerceiverBasicVideoAutoencodingDecoder } from './decoders/video-autoencoding.js';
import { PerceiverClassificationDecoder } from './decoders/classification.js';
import { PerceiverMultimodalDecoder } from './decoders/multimodal.js';
import {
  PerceiverAudioPostprocessor,
  PerceiverClassificationPostprocessor,
  PerceiverMultimodalPostprocessor,
  PerceiverProjectionPostprocessor,
} from './postprocessors.js';
import { saveModel, type SaveModelOptions } from './save.js';
import { knownKeysArg, objectArg, tensorArg } from './args.js';
import { describe } from '../lib/dtype.js';

/** Checks a MultimodalInputs argument (op's argument `name`): the three tensors by rank and dtype. */
export function checkMultimodalInputs(op: string, name: string, inputs: unknown): MultimodalInputs {
  const i = objectArg(op, name, inputs as MultimodalInputs, true);
  tensorArg(op, `${name}.image`, i.image, { rank: 5, dtype: 'float', shape: '[B, T, 3, H, W]' });
  tensorArg(op, `${name}.audio`, i.audio, { rank: 3, dtype: 'float', shape: '[B, samples, 1]' });
  tensorArg(op, `${name}.label`, i.label, { rank: 2, shape: '[B, num_labels]' });
  // Two channels would be read as twice the samples, interleaved, into patches.
  if (i.audio.shape[2] !== 1)
    throw new RangeError(`${op}: argument '${name}.audio' must be [B, samples, 1] (one channel), got [${i.audio.shape.join(', ')}]`);
  const [bi, ba, bl] = [i.image.shape[0], i.audio.shape[0], i.label.shape[0]];
  if (ba !== bi || bl !== bi)
    throw new RangeError(`${op}: arguments '${name}.image', '.audio' and '.label' must have one batch size, got ${bi}, ${ba} and ${bl}`);
  return i;
}

/**
 * The audio the decoder's grid describes (HF's: whole patches of num_frames x
 * audio_samples_per_frame samples); other lengths would be encoded as they are and
 * decoded at the config's size.
 */
export function checkAudioGrid(op: string, name: string, audio: Tensor, c: PerceiverConfig): void {
  const patches = Math.floor((c.num_frames * c.audio_samples_per_frame) / c.samples_per_patch);
  if (audio.shape[1] !== patches * c.samples_per_patch)
    throw new RangeError(
      `${op}: argument '${name}' must hold ${patches * c.samples_per_patch} samples (the config's ${patches} patches of ${c.samples_per_patch}), got ${audio.shape[1]}`,
    );
}

/** Checks an argument that must be flat indices: an array or a typed array (its length is read, not its elements). */
export function checkIndexList(op: string, name: string, v: unknown): ArrayLike<number> {
  if (!Array.isArray(v) && !(ArrayBuffer.isView(v) && !(v instanceof DataView)))
    throw new TypeError(`${op}: argument '${name}' must be an array or typed array of flat indices, got ${describe(v)}`);
  return v as ArrayLike<number>;
}

export interface MultimodalInputs {
  /** [B, T, 3, H, W]. */
  image: Tensor;
  /** [B, num_frames * audio_samples_per_frame, 1]. */
  audio: Tensor;
  /** [B, num_labels] (replaced by the mask token, so its values do not matter). */
  label: Tensor;
}

export class PerceiverForMultimodalAutoencoding extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;

  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super();
    objectArg('PerceiverForMultimodalAutoencoding', 'config', config, true);
    opts = objectArg('PerceiverForMultimodalAutoencoding', 'opts', opts);
    knownKeysArg('PerceiverForMultimodalAutoencoding', 'opts', opts, ['device']);
    const c = perceiverConfig(config);
    this.config = c;
    const device = opts.device;
    const nAudio = c.num_frames * c.audio_samples_per_frame;
    const audioFourier = { numBands: 192, maxResolution: [nAudio], sineOnly: false, concatPos: true };
    const imageFourier = { numBands: 32, maxResolution: [c.num_frames, c.image_size, c.image_size], sineOnly: false, concatPos: true };
    const inputPreprocessor = new PerceiverMultimodalPreprocessor({
      minPaddingSize: 4,
      modalities: {
        audio: new PerceiverAudioPreprocessor(c, { positionEncodingType: 'fourier', fourier: audioFourier, samplesPerPatch: c.samples_per_patch, device }),
        image: new PerceiverImagePreprocessor(c, {
          prepType: 'patches',
          spatialDownsample: 4,
          temporalDownsample: 1,
          positionEncodingType: 'fourier',
          fourier: imageFourier,
          device,
        }),
        label: new PerceiverOneHotPreprocessor(c),
      },
      maskProbs: { image: 0, audio: 0, label: 1 },
      initStd: c.initializer_range,
      device,
    });
    const decoder = new PerceiverMultimodalDecoder(c, {
      modalities: {
        audio: new PerceiverBasicDecoder(c, {
          // HF's n_audio_samples // samples_per_patch: a trailing partial patch gets no query.
          outputIndexDims: [Math.floor(nAudio / c.samples_per_patch)],
          outputNumChannels: c.output_num_channels,
          positionEncodingOnly: true,
          positionEncodingType: 'fourier',
          fourier: audioFourier,
          device,
        }),
        image: new PerceiverBasicVideoAutoencodingDecoder(c, {
          outputShape: c.output_shape,
          outputNumChannels: c.output_num_channels,
          positionEncodingOnly: true,
          positionEncodingType: 'fourier',
          fourier: imageFourier,
          device,
        }),
        label: new PerceiverClassificationDecoder(c, {
          positionEncodingOnly: true,
          positionEncodingType: 'trainable',
          trainable: { numChannels: c._label_trainable_num_channels, indexDims: 1 },
          device,
        }),
      },
      outputNumChannels: c.output_num_channels,
      useQueryResidual: false,
      device,
    });
    const init = { initStd: c.initializer_range, device };
    const outputPostprocessor = new PerceiverMultimodalPostprocessor({
      audio: new PerceiverAudioPostprocessor(c, c.output_num_channels, { device }),
      image: new PerceiverProjectionPostprocessor(c.output_num_channels, 3, init),
      label: new PerceiverClassificationPostprocessor(c, c.output_num_channels, { device }),
    });
    this.perceiver = this.registerModule('perceiver', new PerceiverModel(c, { inputPreprocessor, decoder, outputPostprocessor, device }));
  }

  /**
   * subsampledOutputPoints: flat indices into the image grid (num_frames x image_size x
   * image_size) and the audio patch grid; the label always has its one query.
   */
  forward(
    inputs: MultimodalInputs,
    opts: { subsampledOutputPoints: { image: ArrayLike<number>; audio: ArrayLike<number> } },
  ): { logits: Record<string, Tensor> } {
    const op = 'PerceiverForMultimodalAutoencoding.forward';
    checkMultimodalInputs(op, 'inputs', inputs);
    // The decoder's queries are the config's grid: more frames, a larger image or more
    // audio would be encoded and then decoded at the config's size, silently.
    const c = this.config;
    const [, T, , H, W] = inputs.image.shape;
    const [, oT, oH, oW] = c.output_shape;
    if (T !== oT || H !== oH || W !== oW)
      throw new RangeError(`${op}: argument 'inputs.image' must be [B, ${oT}, 3, ${oH}, ${oW}] (the config's output_shape), got [${inputs.image.shape.join(', ')}]`);
    checkAudioGrid(op, 'inputs.audio', inputs.audio, c);
    opts = objectArg(op, 'opts', opts, true);
    knownKeysArg(op, 'opts', opts, ['subsampledOutputPoints']);
    const points = objectArg(op, 'opts.subsampledOutputPoints', opts.subsampledOutputPoints, true);
    checkIndexList(op, 'opts.subsampledOutputPoints.image', points.image);
    checkIndexList(op, 'opts.subsampledOutputPoints.audio', points.audio);
    return tidy(() => ({
      logits: this.perceiver.forward(inputs as unknown as Record<string, Tensor>, {
        subsampledOutputPoints: { ...opts.subsampledOutputPoints, label: null },
      }).logits as Record<string, Tensor>,
    }));
  }

  /** Writes config.json + model.safetensors (or shards + index) to dir in HF's layout (see models/save.ts). */
  save(dir: string, opts?: SaveModelOptions): Promise<void> {
    return saveModel(this, dir, opts);
  }
}
