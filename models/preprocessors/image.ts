// Image input (HF's PerceiverImagePreprocessor). HF's pixel_values are [B, C, H, W]
// (and video/flow inputs [B, T, C, H, W]); inside the model images are channels-last,
// so they are permuted at this boundary. prep_type:
//   conv     Conv2DDownsample (conv 7x7/2 + BN + ReLU + max-pool 3x3/2)
//   conv1x1  a 1x1 convolution with stride spatial_downsample
//   patches  space-to-depth by (temporal, spatial) blocks, optional Linear after
//   pixels   the raw pixels, subsampled by striding
// then the position encoding over the remaining index dims is concatenated (or added).
// conv1x1 and pixels also take video [B, T, C, H, W]: the index dims are then
// (T', H', W'). conv handles 4-D images only.
import { Conv2d, Linear, Module, concat, contiguous, permute, reshape, slice, squeeze, tidy, toDtype, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import {
  PerceiverFourierPositionEncoding,
  PerceiverTrainablePositionEncoding,
  overBatch,
  type FourierOptions,
  type PositionEncoding,
} from '../position-encoding.js';
import { Conv2DDownsample } from './conv-downsample.js';
import { spaceToDepth } from './space-to-depth.js';
import { type Preprocessor, type PreprocessorOptions, type PreprocessorOutput } from './preprocessor.js';
import { boolArg, configArg, deviceArg, intArg, knownKeysArg, objectArg, oneOfArg, optionKeys, tensorArg } from '../args.js';
import { fourierOptionsArg, trainableOptionsArg } from '../position-encoding.js';

export interface PerceiverImagePreprocessorOptions {
  /** Default 'conv' (HF's default). */
  prepType?: 'conv' | 'conv1x1' | 'patches' | 'pixels';
  /** Default 4 (HF's default). */
  spatialDownsample?: number;
  /** Default 1. */
  temporalDownsample?: number;
  /** Default 'fourier'. */
  positionEncodingType?: 'fourier' | 'trainable';
  /** Default 3. */
  inChannels?: number;
  /** Channels of the conv / conv1x1 / conv-after-patching output. Default 64. */
  outChannels?: number;
  /** 'patches': a Linear (HF's conv_after_patches) from convAfterPatchingInChannels to outChannels. Default false. */
  convAfterPatching?: boolean;
  /** Default 54. */
  convAfterPatchingInChannels?: number;
  /** Default true. */
  conv2dUseBatchnorm?: boolean;
  /** 'conv' padding: 'hf' (default, 224 -> 55) or TF 'same' (DeepMind, 224 -> 56). */
  convPadding?: 'hf' | 'same';
  /** Default 'concat'. */
  concatOrAddPos?: 'concat' | 'add';
  /** > 0: a Linear from outChannels projects the position encoding to this many channels. */
  projectPosDim?: number;
  fourier?: FourierOptions;
  trainable?: { indexDims: number | number[]; numChannels: number };
  device?: string;
}

const IMAGE_PREPROCESSOR_OPTIONS = optionKeys<PerceiverImagePreprocessorOptions>({
  prepType: true, spatialDownsample: true, temporalDownsample: true, positionEncodingType: true, inChannels: true, outChannels: true,
  convAfterPatching: true, convAfterPatchingInChannels: true, conv2dUseBatchnorm: true, convPadding: true, concatOrAddPos: true,
  projectPosDim: true, fourier: true, trainable: true, device: true,
});
const FORWARD_OPTIONS = optionKeys<PreprocessorOptions>({ interpolatePosEncoding: true });

type PrepType = NonNullable<PerceiverImagePreprocessorOptions['prepType']>;

export class PerceiverImagePreprocessor extends Module implements Preprocessor {
  readonly prepType: PrepType;
  readonly spatialDownsample: number;
  readonly temporalDownsample: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly concatOrAddPos: 'concat' | 'add';
  readonly convnet: Conv2DDownsample | null = null;
  readonly convnet1x1: Conv2d | null = null;
  readonly convAfterPatches: Linear | null = null;
  readonly positionEmbeddings: PositionEncoding;
  readonly positionsProjection: Linear | null;

  constructor(config: PerceiverConfig, opts: PerceiverImagePreprocessorOptions = {}) {
    super();
    const op = 'PerceiverImagePreprocessor';
    configArg(op, config);
    objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, IMAGE_PREPROCESSOR_OPTIONS);
    oneOfArg(op, 'opts.prepType', opts.prepType, ['conv', 'conv1x1', 'patches', 'pixels']);
    for (const k of ['spatialDownsample', 'temporalDownsample', 'inChannels', 'outChannels', 'convAfterPatchingInChannels'] as const)
      if (opts[k] !== undefined) intArg(op, `opts.${k}`, opts[k], 1);
    if (opts.projectPosDim !== undefined) intArg(op, 'opts.projectPosDim', opts.projectPosDim);
    for (const k of ['convAfterPatching', 'conv2dUseBatchnorm'] as const) if (opts[k] !== undefined) boolArg(op, `opts.${k}`, opts[k]);
    oneOfArg(op, 'opts.convPadding', opts.convPadding, ['hf', 'same']);
    oneOfArg(op, 'opts.concatOrAddPos', opts.concatOrAddPos, ['concat', 'add']);
    oneOfArg(op, 'opts.positionEncodingType', opts.positionEncodingType, ['fourier', 'trainable']);
    if ((opts.positionEncodingType ?? 'fourier') === 'fourier' && opts.fourier !== undefined) fourierOptionsArg(op, opts.fourier, 'opts.fourier');
    if (opts.trainable !== undefined) trainableOptionsArg(op, opts.trainable);
    deviceArg(op, 'opts.device', opts.device);
    const prep = opts.prepType ?? 'conv';
    this.prepType = prep;
    this.spatialDownsample = opts.spatialDownsample ?? 4;
    this.temporalDownsample = opts.temporalDownsample ?? 1;
    this.inChannels = opts.inChannels ?? 3;
    this.outChannels = opts.outChannels ?? 64;
    this.concatOrAddPos = opts.concatOrAddPos ?? 'concat';
    if (this.concatOrAddPos !== 'concat' && this.concatOrAddPos !== 'add')
      throw new TypeError(`PerceiverImagePreprocessor: concat_or_add_pos must be 'concat' or 'add', got '${String(this.concatOrAddPos)}'`);
    const init = { initStd: config.initializer_range, device: opts.device };

    if (prep === 'conv') {
      const layers = Math.log(this.spatialDownsample) / Math.log(4);
      if (Math.abs(layers - Math.round(layers)) > 1e-9 || this.temporalDownsample !== 1)
        throw new RangeError(`PerceiverImagePreprocessor: 'conv' needs a power of 4 spatial and 1 temporal downsampling`);
      this.convnet = this.registerModule(
        'convnet',
        new Conv2DDownsample({ inChannels: this.inChannels, outChannels: this.outChannels, useBatchnorm: opts.conv2dUseBatchnorm ?? true, padding: opts.convPadding, ...init }),
      );
    } else if (prep === 'conv1x1') {
      if (this.temporalDownsample !== 1) throw new RangeError(`PerceiverImagePreprocessor: 'conv1x1' does not downsample in time`);
      this.convnet1x1 = this.registerModule(
        'convnet_1x1',
        new Conv2d(this.inChannels, this.outChannels, 1, { stride: this.spatialDownsample, ...init }),
      );
    }

    const type = opts.positionEncodingType ?? 'fourier';
    if (type === 'fourier') {
      if (!opts.fourier) throw new TypeError(`PerceiverImagePreprocessor: position_encoding_type 'fourier' needs fourier options`);
      this.positionEmbeddings = new PerceiverFourierPositionEncoding({ ...opts.fourier, device: opts.device });
    } else if (type === 'trainable') {
      if (!opts.trainable) throw new TypeError(`PerceiverImagePreprocessor: position_encoding_type 'trainable' needs trainable options`);
      this.positionEmbeddings = new PerceiverTrainablePositionEncoding(opts.trainable.indexDims, opts.trainable.numChannels, init);
    } else throw new TypeError(`PerceiverImagePreprocessor: unknown position encoding type '${String(type)}'`);
    this.registerModule('position_embeddings', this.positionEmbeddings);
    const project = opts.projectPosDim ?? -1;
    // HF sizes this Linear by out_channels, not by the encoding's own width.
    this.positionsProjection = project > 0 ? this.registerModule('positions_projection', new Linear(this.outChannels, project, init)) : null;

    if (opts.convAfterPatching)
      this.convAfterPatches = this.registerModule(
        'conv_after_patches',
        new Linear(opts.convAfterPatchingInChannels ?? 54, this.outChannels, init),
      );
  }

  /** Channels of the encoder inputs, by HF's rules. */
  get numChannels(): number {
    const pos = this.positionsProjection ? this.positionsProjection.outFeatures : this.positionEmbeddings.outputSize;
    if (this.concatOrAddPos === 'add') return pos;
    // HF's is_temporal: an encoding over [T, H, W], Fourier or trainable, means video.
    const temporal = this.positionEmbeddings.numDimensions > 2;
    let inp: number;
    if (this.convAfterPatches || this.prepType === 'conv' || this.prepType === 'conv1x1') inp = this.outChannels;
    else if (this.prepType === 'pixels') inp = this.inChannels;
    else inp = this.inChannels * this.spatialDownsample ** 2 * (temporal ? this.temporalDownsample : 1);
    return inp + pos;
  }

  /**
   * pixel_values [B, C, H, W] (or [B, T, C, H, W] for 'patches', 'pixels', 'conv1x1') ->
   * [B, N, numChannels]. opts.interpolatePosEncoding resizes a trainable position
   * table to the image's grid when the two differ (HF's interpolate_pos_encoding).
   */
  forward(pixels: Tensor, opts: PreprocessorOptions = {}): PreprocessorOutput {
    const op = 'PerceiverImagePreprocessor.forward';
    tensorArg(op, 'pixels', pixels, { rank: [4, 5], dtype: 'float', shape: '[B, C, H, W] or [B, T, C, H, W]' });
    objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, FORWARD_OPTIONS);
    if (opts.interpolatePosEncoding !== undefined) boolArg(op, 'opts.interpolatePosEncoding', opts.interpolatePosEncoding);
    return tidy(() => {
      const x = this.featurize(pixels);
      const [B, ...rest] = x.shape;
      const index = rest.slice(0, -1);
      const n = index.reduce((a, b) => a * b, 1);
      const inputsWithoutPos = reshape(contiguous(x), [B, n, rest[rest.length - 1]]);
      // Every item has the same positions: one item's are projected and cast (to the
      // features' dtype: 16-bit after a 16-bit conv), then broadcast over the batch.
      let pos = this.positionEmbeddings.forward(1, index, { interpolatePosEncoding: opts.interpolatePosEncoding === true });
      if (this.positionsProjection) pos = this.positionsProjection.forward(pos);
      pos = overBatch(toDtype(pos, inputsWithoutPos.dtype), B);
      const inputs = this.concatOrAddPos === 'concat' ? concat([inputsWithoutPos, pos], -1) : inputsWithoutPos.add(pos);
      return { inputs, inputsWithoutPos };
    });
  }

  /** The per-position features, channels-last: [B, ...index dims, C]. */
  private featurize(pixels: Tensor): Tensor {
    if (this.prepType === 'patches') {
      let x = spaceToDepth(pixels, this.temporalDownsample, this.spatialDownsample);
      // Flow: two frames stacked into channels leave a time axis of 1.
      if (x.rank === 5 && x.shape[1] === 1) x = squeeze(x, 1);
      return this.convAfterPatches ? this.convAfterPatches.forward(x) : x;
    }
    if (pixels.rank === 5) return this.featurizeVideo(pixels);
    if (pixels.rank !== 4 || pixels.shape[1] !== this.inChannels)
      throw new RangeError(`PerceiverImagePreprocessor: pixel_values must be [B, ${this.inChannels}, H, W], got [${pixels.shape.join(', ')}]`);
    const nhwc = permute(pixels, [0, 2, 3, 1]);
    if (this.convnet) return this.convnet.forward(nhwc);
    if (this.convnet1x1) return this.convnet1x1.forward(nhwc);
    // 'pixels' subsamples H and W by striding. (HF's code slices the first two axes
    // of a 4-D input instead; its released configs use a stride of 1, where both agree.)
    const s = this.spatialDownsample;
    return s === 1 ? nhwc : slice(slice(nhwc, 1, 0, undefined, s), 2, 0, undefined, s);
  }

  /**
   * Video [B, T, C, H, W] -> [B, T', H', W', C'] ('pixels', 'conv1x1' or 'conv'). The
   * 'conv' downsampler runs on each frame (neither HF nor DeepMind takes video there;
   * this is the per-frame generalisation, BatchNorm in eval mode being per channel).
   */
  private featurizeVideo(pixels: Tensor): Tensor {
    const [B, T, C, H, W] = pixels.shape;
    if (C !== this.inChannels)
      throw new RangeError(`PerceiverImagePreprocessor: video pixel_values must be [B, T, ${this.inChannels}, H, W], got [${pixels.shape.join(', ')}]`);
    const x = permute(pixels, [0, 1, 3, 4, 2]);
    const net = this.convnet ?? this.convnet1x1;
    if (net) {
      // The engine's Conv2d is 4-D, so frames fold into the batch; neither network
      // mixes frames, which makes this the per-frame convolution DeepMind applies.
      const y = net.forward(reshape(contiguous(x), [B * T, H, W, C]));
      const [, Ho, Wo, Co] = y.shape;
      return reshape(contiguous(y), [B, T, Ho, Wo, Co]);
    }
    // 'pixels': DeepMind's inputs[:, ::td, ::sd, ::sd] on the channels-last video.
    const s = this.spatialDownsample;
    const td = this.temporalDownsample;
    let y = td === 1 ? x : slice(x, 1, 0, undefined, td);
    if (s !== 1) y = slice(slice(y, 2, 0, undefined, s), 3, 0, undefined, s);
    return y;
  }
}
