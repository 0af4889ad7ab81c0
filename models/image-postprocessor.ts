// DeepMind's ImagePostprocessor (io_processors.py; HF's port has none): decoder output
// [B, N, C] reshaped to an image grid and turned back into pixels by
//   pixels   nothing (the grid as it is)
//   conv1x1  a 1x1 convolution (stride spatial_upsample, as DeepMind's code has it)
//   conv     Conv2DUpsample: two 4x4 stride-2 transposed convolutions with a ReLU
//            between them, 4x upsampling (DeepMind's 'SAME' padding)
//   patches  reverse space-to-depth by (temporal, spatial) blocks, channels (dt dh dw c)
// Parameters use PyTorch's layouts (ConvTranspose2d weight [in, out, kh, kw]), as the
// rest of models/ does; a Haiku checkpoint's [kh, kw, out, in] kernels map onto them by
// transposing and flipping spatially (the Haiku rename table is not written yet).
import { Conv2d, Module, computeDtype, concat, conv2d, initLayer, permute, relu, reshape, slice, tidy, toDtype, unsqueeze, zeros, type Tensor } from '../lib/index.js';

export interface ConvTranspose2dOptions {
  /** Default 1. */
  stride?: number;
  /** PyTorch's padding: output = (in - 1) * stride - 2 * padding + kernel + outputPadding. Default 0. */
  padding?: number;
  /** Default 0. */
  outputPadding?: number;
  /** Default true. */
  bias?: boolean;
  initStd?: number;
  device?: string;
}

/**
 * PyTorch's ConvTranspose2d over channels-last images. Computed as a stride-1
 * convolution of the input with (stride - 1) zeros inserted between pixels, padded by
 * kernel - 1 - padding, with the kernel flipped: the engine has no transposed
 * convolution, and this form needs only conv2d.
 */
export class ConvTranspose2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;
  readonly stride: number;
  readonly padding: number;
  readonly outputPadding: number;

  constructor(inChannels: number, outChannels: number, kernel: number, opts: ConvTranspose2dOptions = {}) {
    super();
    for (const [n, v] of [['inChannels', inChannels], ['outChannels', outChannels], ['kernel', kernel], ['stride', opts.stride ?? 1]] as const)
      if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`ConvTranspose2d: '${n}' must be a positive integer, got ${String(v)}`);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernel = kernel;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.outputPadding = opts.outputPadding ?? 0;
    if (!Number.isSafeInteger(this.padding) || this.padding < 0 || this.padding > kernel - 1)
      throw new RangeError(`ConvTranspose2d: padding must be an integer in [0, ${kernel - 1}], got ${this.padding}`);
    if (!Number.isSafeInteger(this.outputPadding) || this.outputPadding < 0 || this.outputPadding >= this.stride)
      throw new RangeError(`ConvTranspose2d: outputPadding must be an integer in [0, stride), got ${this.outputPadding}`);
    const { initStd, device } = opts;
    // A transposed convolution's fan_in, as PyTorch counts it: out * k * k.
    const fanIn = outChannels * kernel * kernel;
    this.registerParameter('weight', initLayer([inChannels, outChannels, kernel, kernel], fanIn, false, initStd, device));
    this.registerParameter('bias', opts.bias === false ? null : initLayer([outChannels], fanIn, true, initStd, device));
  }

  /** x [B, H, W, in] -> [B, (H-1)*s - 2p + k + op, (W-1)*s - 2p + k + op, out]. */
  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels)
      throw new RangeError(`ConvTranspose2d: input must be [B, H, W, ${this.inChannels}] (channels-last), got [${x.shape.join(', ')}]`);
    return tidy(() => {
      const s = this.stride;
      const k = this.kernel;
      const weight = this.tensor('weight');
      const dt = computeDtype(weight);
      let d = toDtype(x, dt);
      if (s > 1) for (const axis of [1, 2]) d = dilate(d, axis, s);
      // [in, out, kh, kw] -> HWIO, both spatial axes reversed.
      let w = permute(toDtype(weight, dt), [2, 3, 0, 1]);
      for (const axis of [0, 1]) w = concat(Array.from({ length: k }, (_, i) => slice(w, axis, k - 1 - i, k - i)), axis);
      const lo = k - 1 - this.padding;
      const hi = lo + this.outputPadding;
      const bias = this.optionalTensor('bias');
      return conv2d(d, w, { bias: bias && toDtype(bias, dt), stride: 1, padding: [lo, hi, lo, hi] });
    });
  }
}

/** (s - 1) zeros between neighbours along axis: n -> (n - 1) * s + 1. */
function dilate(x: Tensor, axis: number, s: number): Tensor {
  const shape = [...x.shape];
  const n = shape[axis];
  const gap = zeros([...shape.slice(0, axis + 1), s - 1, ...shape.slice(axis + 1)], { device: x.device, dtype: x.dtype });
  const both = concat([unsqueeze(x, axis + 1), gap], axis + 1);
  shape[axis] = n * s;
  return slice(reshape(both, shape), axis, 0, (n - 1) * s + 1);
}

/**
 * DeepMind's Conv2DUpsample: ConvTranspose 4x4/2 to 2 * nOutputs, ReLU, ConvTranspose
 * 4x4/2 to nOutputs. Haiku's 'SAME' for kernel 4, stride 2 pads 2 on each side of
 * the dilated input, which is PyTorch's padding 1: [B, H, W, C] -> [B, 4H, 4W, nOutputs].
 */
export class Conv2DUpsample extends Module {
  readonly transpConv1: ConvTranspose2d;
  readonly transpConv2: ConvTranspose2d;

  constructor(inChannels: number, nOutputs: number, opts: { initStd?: number; device?: string } = {}) {
    super();
    const o = { stride: 2, padding: 1, ...opts };
    this.transpConv1 = this.registerModule('transp_conv1', new ConvTranspose2d(inChannels, 2 * nOutputs, 4, o));
    this.transpConv2 = this.registerModule('transp_conv2', new ConvTranspose2d(2 * nOutputs, nOutputs, 4, o));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.transpConv2.forward(relu(this.transpConv1.forward(x))));
  }
}

export interface PerceiverImagePostprocessorOptions {
  /** Default 'pixels'. */
  postprocType?: 'pixels' | 'conv1x1' | 'conv' | 'patches';
  /** Default 1 ('conv' always upsamples 4x spatially). */
  spatialUpsample?: number;
  /** Default 1 (temporal upsampling is only supported by 'patches'). */
  temporalUpsample?: number;
  /** Channels of the decoder output (needed by 'conv1x1' and 'conv'). */
  inChannels?: number;
  /** Output channels of 'conv1x1' and 'conv'. */
  nOutputs?: number;
  /** Index dims [H, W] or [T, H, W] that the N decoder outputs are reshaped to. */
  inputReshapeSize?: readonly number[];
  initStd?: number;
  device?: string;
}

/** DeepMind's ImagePostprocessor: [B, N, C] (or already [B, ..., C]) -> channels-last images. */
export class PerceiverImagePostprocessor extends Module {
  readonly postprocType: NonNullable<PerceiverImagePostprocessorOptions['postprocType']>;
  readonly spatialUpsample: number;
  readonly temporalUpsample: number;
  readonly inputReshapeSize: readonly number[] | null;
  readonly convnet: Conv2DUpsample | null = null;
  readonly conv1x1: Conv2d | null = null;

  constructor(opts: PerceiverImagePostprocessorOptions = {}) {
    super();
    const type = opts.postprocType ?? 'pixels';
    if (!['pixels', 'conv1x1', 'conv', 'patches'].includes(type))
      throw new TypeError(`PerceiverImagePostprocessor: postproc_type must be 'pixels', 'conv1x1', 'conv' or 'patches', got ${JSON.stringify(type)}`);
    this.postprocType = type;
    this.spatialUpsample = opts.spatialUpsample ?? 1;
    this.temporalUpsample = opts.temporalUpsample ?? 1;
    this.inputReshapeSize = opts.inputReshapeSize ? [...opts.inputReshapeSize] : null;
    const init = { initStd: opts.initStd, device: opts.device };
    const need = (what: string, v: number | undefined): number => {
      if (v === undefined) throw new TypeError(`PerceiverImagePostprocessor: '${type}' needs ${what}`);
      return v;
    };
    if (type === 'pixels' && (this.spatialUpsample !== 1 || this.temporalUpsample !== 1))
      throw new RangeError(`PerceiverImagePostprocessor: 'pixels' does not upsample`);
    if ((type === 'conv1x1' || type === 'conv') && this.temporalUpsample !== 1)
      throw new RangeError(`PerceiverImagePostprocessor: '${type}' does not upsample in time (DeepMind's Conv3DUpsample is not implemented)`);
    if (type === 'conv1x1')
      this.conv1x1 = this.registerModule(
        'conv1x1',
        new Conv2d(need('inChannels', opts.inChannels), need('nOutputs', opts.nOutputs), 1, { stride: this.spatialUpsample, ...init }),
      );
    if (type === 'conv')
      this.convnet = this.registerModule('convnet', new Conv2DUpsample(need('inChannels', opts.inChannels), need('nOutputs', opts.nOutputs), init));
  }

  forward(inputs: Tensor): Tensor {
    return tidy(() => {
      let x = inputs;
      if (this.inputReshapeSize) x = reshape(x, [x.shape[0], ...this.inputReshapeSize, x.shape[x.rank - 1]]);
      if (this.postprocType === 'pixels') return x;
      if (this.postprocType === 'patches') return depthToSpace(x, this.temporalUpsample, this.spatialUpsample);
      // Video frames go through the 2-D layers one at a time, as hk.BatchApply does.
      const frames = x.rank === 5 ? reshape(x, [x.shape[0] * x.shape[1], ...x.shape.slice(2)]) : x;
      if (frames.rank !== 4) throw new RangeError(`PerceiverImagePostprocessor: '${this.postprocType}' needs [B, H, W, C] or [B, T, H, W, C], got [${x.shape.join(', ')}]`);
      const y = this.convnet ? this.convnet.forward(frames) : this.conv1x1!.forward(frames);
      return x.rank === 5 ? reshape(y, [x.shape[0], x.shape[1], ...y.shape.slice(1)]) : y;
    });
  }
}

/**
 * DeepMind's reverse_space_to_depth: [B, H, W, s*s*C] -> [B, H*s, W*s, C], or
 * [B, T, H, W, t*s*s*C] -> [B, T*t, H*s, W*s, C]; channels ordered (dt, dh, dw, c).
 */
export function depthToSpace(x: Tensor, temporalBlock = 1, spatialBlock = 1): Tensor {
  const s = spatialBlock;
  const t = temporalBlock;
  return tidy(() => {
    if (x.rank === 4) {
      const [B, H, W, C] = x.shape;
      if (C % (s * s) !== 0) throw new RangeError(`depthToSpace: channels (${C}) must be divisible by ${s * s}`);
      const c = C / (s * s);
      return reshape(permute(reshape(x, [B, H, W, s, s, c]), [0, 1, 3, 2, 4, 5]), [B, H * s, W * s, c]);
    }
    if (x.rank === 5) {
      const [B, T, H, W, C] = x.shape;
      if (C % (t * s * s) !== 0) throw new RangeError(`depthToSpace: channels (${C}) must be divisible by ${t * s * s}`);
      const c = C / (t * s * s);
      return reshape(permute(reshape(x, [B, T, H, W, t, s, s, c]), [0, 1, 4, 2, 5, 3, 6, 7]), [B, T * t, H * s, W * s, c]);
    }
    throw new RangeError(`depthToSpace: input must be [B, H, W, C] or [B, T, H, W, C], got [${x.shape.join(', ')}]`);
  });
}
