// HF's PerceiverAudioPreprocessor ('patches'): the waveform [B, T, 1] is cut into
// patches of samples_per_patch samples, [B, T/spp, spp], and the position encoding
// over the patch index is concatenated (or added).
import { Linear, Module, concat, reshape, tidy, toDtype, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import {
  PerceiverFourierPositionEncoding,
  PerceiverTrainablePositionEncoding,
  overBatch,
  type FourierOptions,
  type PositionEncoding,
} from '../position-encoding.js';
import { type Preprocessor, type PreprocessorOutput } from './preprocessor.js';
import { configArg, deviceArg, intArg, knownKeysArg, objectArg, oneOfArg, optionKeys, tensorArg } from '../args.js';
import { fourierOptionsArg, trainableOptionsArg } from '../position-encoding.js';

export interface PerceiverAudioPreprocessorOptions {
  /** Default 96 (HF's default). */
  samplesPerPatch?: number;
  /** Default 'fourier'. */
  positionEncodingType?: 'fourier' | 'trainable';
  /** Default 'concat'. */
  concatOrAddPos?: 'concat' | 'add';
  /** In-width of positions_projection. Default 64. */
  outChannels?: number;
  projectPosDim?: number;
  fourier?: FourierOptions;
  trainable?: { indexDims: number | number[]; numChannels: number };
  device?: string;
}

const AUDIO_PREPROCESSOR_OPTIONS = optionKeys<PerceiverAudioPreprocessorOptions>({
  samplesPerPatch: true, positionEncodingType: true, concatOrAddPos: true, outChannels: true, projectPosDim: true, fourier: true, trainable: true, device: true,
});

export class PerceiverAudioPreprocessor extends Module implements Preprocessor {
  readonly samplesPerPatch: number;
  readonly concatOrAddPos: 'concat' | 'add';
  readonly positionEmbeddings: PositionEncoding;
  readonly positionsProjection: Linear | null;

  constructor(config: PerceiverConfig, opts: PerceiverAudioPreprocessorOptions = {}) {
    super();
    const op = 'PerceiverAudioPreprocessor';
    configArg(op, config);
    objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, AUDIO_PREPROCESSOR_OPTIONS);
    for (const k of ['samplesPerPatch', 'outChannels'] as const) if (opts[k] !== undefined) intArg(op, `opts.${k}`, opts[k], 1);
    if (opts.projectPosDim !== undefined) intArg(op, 'opts.projectPosDim', opts.projectPosDim);
    oneOfArg(op, 'opts.concatOrAddPos', opts.concatOrAddPos, ['concat', 'add']);
    oneOfArg(op, 'opts.positionEncodingType', opts.positionEncodingType, ['fourier', 'trainable']);
    if ((opts.positionEncodingType ?? 'fourier') === 'fourier' && opts.fourier !== undefined) fourierOptionsArg(op, opts.fourier, 'opts.fourier');
    if (opts.trainable !== undefined) trainableOptionsArg(op, opts.trainable);
    deviceArg(op, 'opts.device', opts.device);
    this.samplesPerPatch = opts.samplesPerPatch ?? 96;
    this.concatOrAddPos = opts.concatOrAddPos ?? 'concat';
    const init = { initStd: config.initializer_range, device: opts.device };
    const type = opts.positionEncodingType ?? 'fourier';
    if (type === 'fourier') {
      if (!opts.fourier) throw new TypeError(`PerceiverAudioPreprocessor: position_encoding_type 'fourier' needs fourier options`);
      this.positionEmbeddings = new PerceiverFourierPositionEncoding({ ...opts.fourier, device: opts.device });
    } else {
      if (!opts.trainable) throw new TypeError(`PerceiverAudioPreprocessor: position_encoding_type 'trainable' needs trainable options`);
      this.positionEmbeddings = new PerceiverTrainablePositionEncoding(opts.trainable.indexDims, opts.trainable.numChannels, init);
    }
    this.registerModule('position_embeddings', this.positionEmbeddings);
    const project = opts.projectPosDim ?? -1;
    this.positionsProjection =
      project > 0 ? this.registerModule('positions_projection', new Linear(opts.outChannels ?? 64, project, init)) : null;
  }

  get numChannels(): number {
    const pos = this.positionsProjection ? this.positionsProjection.outFeatures : this.positionEmbeddings.outputSize;
    return this.concatOrAddPos === 'add' ? pos : this.samplesPerPatch + pos;
  }

  /** audio [B, T, ...] with T*... divisible by samples_per_patch -> [B, T/spp, numChannels]. */
  forward(audio: Tensor): PreprocessorOutput {
    tensorArg('PerceiverAudioPreprocessor.forward', 'audio', audio, { rank: [2, 3, 4, 5, 6], dtype: 'float', shape: '[B, T, ...]' });
    const B = audio.shape[0];
    const total = audio.size / B;
    if (total % this.samplesPerPatch !== 0)
      throw new RangeError(`PerceiverAudioPreprocessor: ${total} samples per item do not divide into patches of ${this.samplesPerPatch}`);
    return tidy(() => {
      const patches = reshape(audio, [B, total / this.samplesPerPatch, this.samplesPerPatch]);
      // One item's positions, projected and cast once, then broadcast over the batch.
      let pos = this.positionEmbeddings.forward(1, [patches.shape[1]]);
      if (this.positionsProjection) pos = this.positionsProjection.forward(pos);
      pos = overBatch(toDtype(pos, patches.dtype), B);
      const inputs = this.concatOrAddPos === 'concat' ? concat([patches, pos], -1) : patches.add(pos);
      return { inputs, inputsWithoutPos: patches };
    });
  }
}
