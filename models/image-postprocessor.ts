// DeepMind's ImagePostprocessor (io_processors.py; HF's port has none): decoder output
// [B, N, C] reshaped to an image grid and turned back into pixels by
//   pixels   nothing (the grid as it is)
//   conv1x1  a 1x1 convolution (stride spatial_upsample, as DeepMind's code has it)
//   conv     Conv2DUpsample: two 4x4 stride-2 transposed convolutions with a ReLU
//            between them, 4x upsampling (DeepMind's 'SAME' padding); with temporal
//            upsampling, Conv3DUpsample: 4x4x4 transposed 3-D convolutions, each
//            doubling time and/or space, ReLUs between them
//   patches  reverse space-to-depth by (temporal, spatial) blocks, channels (dt dh dw c)
// Parameters use PyTorch's layouts (ConvTranspose2d weight [in, out, kh, kw]), as the
// rest of models/ does; a Haiku checkpoint's [kh, kw, out, in] kernels map onto them by
// transposing and flipping spatially (the Haiku rename table is not written yet).
import { Conv2d, Module, add, computeDtype, concat, conv2d, initLayer, permute, relu, reshape, slice, tidy, toDtype, unsqueeze, zeros, type Tensor } from '../lib/index.js';
import { boolArg, deviceArg, intArg, intListArg, knownKeysArg, numberArg, objectArg, oneOfArg, optionKeys, tensorArg } from './args.js';
import { describe } from '../lib/dtype.js';

/** A positive integer (a TypeError naming the argument and what came otherwise). */
function positiveInt(op: string, name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
    throw new TypeError(`${op}: argument '${name}' must be a positive integer, got ${typeof v === 'number' ? v : describe(v)}`);
}

/** The initStd / device / bias fields every layer here accepts, and the other keys op knows. */
function initOptionsArg(op: string, opts: { initStd?: number; device?: string; bias?: boolean }, known: readonly string[]): void {
  objectArg(op, 'opts', opts);
  knownKeysArg(op, 'opts', opts, known);
  if (opts.initStd !== undefined) numberArg(op, 'opts.initStd', opts.initStd, 0);
  deviceArg(op, 'opts.device', opts.device);
  if (opts.bias !== undefined) boolArg(op, 'opts.bias', opts.bias);
}

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

const CONV_TRANSPOSE_OPTIONS = optionKeys<ConvTranspose2dOptions>({ stride: true, padding: true, outputPadding: true, bias: true, initStd: true, device: true });
// The upsamplers hand bias on to each transposed convolution.
const UPSAMPLE_OPTIONS = ['initStd', 'device', 'bias'];

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
    initOptionsArg('ConvTranspose2d', opts, CONV_TRANSPOSE_OPTIONS);
    for (const [n, v] of [['inChannels', inChannels], ['outChannels', outChannels], ['kernel', kernel], ['stride', opts.stride ?? 1]] as const) positiveInt('ConvTranspose2d', n, v);
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
    tensorArg('ConvTranspose2d.forward', 'x', x, { dtype: 'float', shape: `[B, H, W, ${this.inChannels}]` });
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
      const w = reversed(permute(toDtype(weight, dt), [2, 3, 0, 1]), [0, 1]);
      const lo = k - 1 - this.padding;
      const hi = lo + this.outputPadding;
      const bias = this.optionalTensor('bias');
      return conv2d(d, w, { bias: bias && toDtype(bias, dt), stride: 1, padding: [lo, hi, lo, hi] });
    });
  }
}

export interface ConvTranspose3dOptions {
  /** [time, height, width] or one for all. Default 1. */
  stride?: number | readonly number[];
  /**
   * PyTorch's padding per axis (output = (in - 1) * stride - 2 * padding + kernel +
   * outputPadding), or 'same': lax.conv_transpose's (Haiku's) 'SAME', output = in *
   * stride, which for stride 1 pads the dilated input asymmetrically (kernel 4: 2
   * before, 1 after), where PyTorch's padding cannot. Default 0.
   */
  padding?: number | readonly number[] | 'same';
  /** Default 0. Not with padding 'same'. */
  outputPadding?: number | readonly number[];
  /** Default true. */
  bias?: boolean;
  initStd?: number;
  device?: string;
}

/**
 * PyTorch's ConvTranspose3d over channels-last video [B, T, H, W, C], weight
 * [in, out, kt, kh, kw]. As ConvTranspose2d: a stride-1 correlation of the dilated,
 * padded input with the flipped kernel, here as one 2-D convolution of the frames per
 * temporal tap, summed (the engine has no 3-D convolution).
 */
export class ConvTranspose3d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;
  readonly stride: readonly number[];
  /** Zeros before and after the dilated input, per axis [t, h, w]. */
  readonly pads: readonly (readonly [number, number])[];

  constructor(inChannels: number, outChannels: number, kernel: number, opts: ConvTranspose3dOptions = {}) {
    super();
    initOptionsArg('ConvTranspose3d', opts, CONV_TRANSPOSE_OPTIONS);
    for (const [n, v] of [['inChannels', inChannels], ['outChannels', outChannels], ['kernel', kernel]] as const) positiveInt('ConvTranspose3d', n, v);
    const triple = (name: string, v: unknown, dflt: number): number[] => {
      const a = v === undefined ? [dflt, dflt, dflt] : typeof v === 'number' ? [v, v, v] : Array.isArray(v) ? [...v] : null;
      if (!a || a.length !== 3 || !a.every((x) => Number.isSafeInteger(x)))
        throw new TypeError(`ConvTranspose3d: '${name}' must be an integer or 3 integers [t, h, w], got ${JSON.stringify(v)}`);
      return a as number[];
    };
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernel = kernel;
    const stride = triple('stride', opts.stride, 1);
    if (!stride.every((s) => s >= 1)) throw new RangeError(`ConvTranspose3d: stride must be positive, got [${stride.join(', ')}]`);
    this.stride = stride;
    if (opts.padding === 'same') {
      if (opts.outputPadding !== undefined) throw new TypeError(`ConvTranspose3d: outputPadding does not apply with padding 'same'`);
      // lax.conv_transpose's 'SAME' (jax.lax.convolution._conv_transpose_padding).
      this.pads = stride.map((s) => {
        const len = kernel + s - 2;
        const before = s > kernel - 1 ? kernel - 1 : Math.ceil(len / 2);
        return [before, len - before] as const;
      });
    } else {
      const padding = triple('padding', opts.padding, 0);
      const outputPadding = triple('outputPadding', opts.outputPadding, 0);
      if (!padding.every((p) => p >= 0 && p <= kernel - 1))
        throw new RangeError(`ConvTranspose3d: padding must be integers in [0, ${kernel - 1}], got [${padding.join(', ')}]`);
      if (!outputPadding.every((op, i) => op >= 0 && op < stride[i]))
        throw new RangeError(`ConvTranspose3d: outputPadding must be integers in [0, stride), got [${outputPadding.join(', ')}]`);
      this.pads = padding.map((p, i) => [kernel - 1 - p, kernel - 1 - p + outputPadding[i]] as const);
    }
    const { initStd, device } = opts;
    const fanIn = outChannels * kernel ** 3;  // PyTorch's count for a transposed convolution
    this.registerParameter('weight', initLayer([inChannels, outChannels, kernel, kernel, kernel], fanIn, false, initStd, device));
    this.registerParameter('bias', opts.bias === false ? null : initLayer([outChannels], fanIn, true, initStd, device));
  }

  /** x [B, T, H, W, in] -> [B, T', H', W', out]; per axis (n - 1) * s + before + after - k + 2 (n * s with 'same'). */
  forward(x: Tensor): Tensor {
    tensorArg('ConvTranspose3d.forward', 'x', x, { dtype: 'float', shape: `[B, T, H, W, ${this.inChannels}]` });
    if (x.rank !== 5 || x.shape[4] !== this.inChannels)
      throw new RangeError(`ConvTranspose3d: input must be [B, T, H, W, ${this.inChannels}] (channels-last), got [${x.shape.join(', ')}]`);
    return tidy(() => {
      const k = this.kernel;
      const weight = this.tensor('weight');
      const dt = computeDtype(weight);
      let d = toDtype(x, dt);
      for (const axis of [1, 2, 3]) if (this.stride[axis - 1] > 1) d = dilate(d, axis, this.stride[axis - 1]);
      const [[tb, ta], [hb, ha], [wb, wa]] = this.pads;
      const [B, , H, W, I] = d.shape;
      const blank = (n: number) => zeros([B, n, H, W, I], { device: d.device, dtype: d.dtype });
      if (tb > 0 || ta > 0) d = concat([...(tb > 0 ? [blank(tb)] : []), d, ...(ta > 0 ? [blank(ta)] : [])], 1);
      const T = d.shape[1] - k + 1;
      if (T <= 0 || H + hb + ha - k + 1 <= 0 || W + wb + wa - k + 1 <= 0)
        throw new RangeError(`ConvTranspose3d: input [${x.shape.join(', ')}] gives an empty output`);
      // [in, out, kt, kh, kw] -> [kt][kh, kw, in, out], every axis reversed.
      const w = reversed(permute(toDtype(weight, dt), [2, 3, 4, 0, 1]), [0, 1, 2]);
      const bias = this.optionalTensor('bias');
      let out: Tensor | null = null;
      for (let j = 0; j < k; j++) {
        const frames = reshape(slice(d, 1, j, j + T), [B * T, H, W, I]);
        const term = conv2d(frames, reshape(slice(w, 0, j, j + 1), [k, k, I, this.outChannels]), {
          bias: j === k - 1 && bias ? toDtype(bias, dt) : undefined,
          stride: 1,
          padding: [hb, ha, wb, wa],
        });
        out = out ? add(out, term) : term;
      }
      return reshape(out!, [B, T, ...out!.shape.slice(1)]);
    });
  }
}

/** x with each of `axes` in reverse order (a transposed convolution's kernel flip). */
function reversed(x: Tensor, axes: readonly number[]): Tensor {
  let r = x;
  for (const axis of axes) {
    const n = r.shape[axis];
    r = concat(Array.from({ length: n }, (_, i) => slice(r, axis, n - 1 - i, n - i)), axis);
  }
  return r;
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

  constructor(inChannels: number, nOutputs: number, opts: { initStd?: number; device?: string; bias?: boolean } = {}) {
    super();
    intArg('Conv2DUpsample', 'inChannels', inChannels, 1);
    intArg('Conv2DUpsample', 'nOutputs', nOutputs, 1);
    initOptionsArg('Conv2DUpsample', opts, UPSAMPLE_OPTIONS);
    const o = { stride: 2, padding: 1, ...opts };
    this.transpConv1 = this.registerModule('transp_conv1', new ConvTranspose2d(inChannels, 2 * nOutputs, 4, o));
    this.transpConv2 = this.registerModule('transp_conv2', new ConvTranspose2d(2 * nOutputs, nOutputs, 4, o));
  }

  forward(x: Tensor): Tensor {
    tensorArg('Conv2DUpsample.forward', 'x', x, { rank: 4, dtype: 'float', shape: '[B, H, W, C] (channels-last)' });
    return tidy(() => this.transpConv2.forward(relu(this.transpConv1.forward(x))));
  }
}

/**
 * DeepMind's Conv3DUpsample: max(nTime, nSpace) 4x4x4 transposed convolutions ('SAME'),
 * the i-th with stride [i < nTime ? 2 : 1, i < nSpace ? 2 : 1, ...] and
 * nOutputs * 2^(n - 1 - i) channels, a ReLU after all but the last:
 * [B, T, H, W, C] -> [B, T * 2^nTime, H * 2^nSpace, W * 2^nSpace, nOutputs].
 */
export class Conv3DUpsample extends Module {
  readonly layers: ConvTranspose3d[] = [];

  constructor(inChannels: number, nOutputs: number, nTimeUpsamples: number, nSpaceUpsamples: number, opts: { initStd?: number; device?: string; bias?: boolean } = {}) {
    super();
    intArg('Conv3DUpsample', 'inChannels', inChannels, 1);
    intArg('Conv3DUpsample', 'nOutputs', nOutputs, 1);
    intArg('Conv3DUpsample', 'nTimeUpsamples', nTimeUpsamples, 0);
    intArg('Conv3DUpsample', 'nSpaceUpsamples', nSpaceUpsamples, 0);
    initOptionsArg('Conv3DUpsample', opts, UPSAMPLE_OPTIONS);
    const n = Math.max(nTimeUpsamples, nSpaceUpsamples);
    if (n === 0) throw new RangeError('Conv3DUpsample: nothing to upsample (nTimeUpsamples and nSpaceUpsamples are both 0)');
    let channels = inChannels;
    for (let i = 0; i < n; i++) {
      const out = nOutputs * 2 ** (n - 1 - i);
      const stride = [i < nTimeUpsamples ? 2 : 1, i < nSpaceUpsamples ? 2 : 1, i < nSpaceUpsamples ? 2 : 1];
      this.layers.push(this.registerModule(`conv3d_transpose_${i}`, new ConvTranspose3d(channels, out, 4, { stride, padding: 'same', ...opts })));
      channels = out;
    }
  }

  forward(x: Tensor): Tensor {
    tensorArg('Conv3DUpsample.forward', 'x', x, { rank: 5, dtype: 'float', shape: '[B, T, H, W, C] (channels-last)' });
    return tidy(() => {
      let h = x;
      this.layers.forEach((layer, i) => {
        h = layer.forward(h);
        if (i < this.layers.length - 1) h = relu(h);
      });
      return h;
    });
  }
}

export interface PerceiverImagePostprocessorOptions {
  /** Default 'pixels'. */
  postprocType?: 'pixels' | 'conv1x1' | 'conv' | 'patches';
  /** Default 1 ('conv' always upsamples 4x spatially). */
  spatialUpsample?: number;
  /** Default 1. 'conv' upsamples in time with Conv3DUpsample (powers of 2); 'conv1x1' does not. */
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

const IMAGE_POSTPROCESSOR_OPTIONS = optionKeys<PerceiverImagePostprocessorOptions>({
  postprocType: true, spatialUpsample: true, temporalUpsample: true, inChannels: true, nOutputs: true, inputReshapeSize: true, initStd: true, device: true,
});

/** DeepMind's ImagePostprocessor: [B, N, C] (or already [B, ..., C]) -> channels-last images. */
export class PerceiverImagePostprocessor extends Module {
  readonly postprocType: NonNullable<PerceiverImagePostprocessorOptions['postprocType']>;
  readonly spatialUpsample: number;
  readonly temporalUpsample: number;
  readonly inputReshapeSize: readonly number[] | null;
  readonly convnet: Conv2DUpsample | Conv3DUpsample | null = null;
  readonly conv1x1: Conv2d | null = null;

  constructor(opts: PerceiverImagePostprocessorOptions = {}) {
    super();
    const op = 'PerceiverImagePostprocessor';
    initOptionsArg(op, opts, IMAGE_POSTPROCESSOR_OPTIONS);
    oneOfArg(op, 'opts.postprocType', opts.postprocType, ['pixels', 'conv1x1', 'conv', 'patches']);
    for (const k of ['spatialUpsample', 'temporalUpsample', 'inChannels', 'nOutputs'] as const) if (opts[k] !== undefined) intArg(op, `opts.${k}`, opts[k], 1);
    if (opts.inputReshapeSize !== undefined) intListArg(op, 'opts.inputReshapeSize', opts.inputReshapeSize, 1, Infinity, 1);
    const type = opts.postprocType ?? 'pixels';
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
    if (type === 'conv1x1' && this.temporalUpsample !== 1)
      throw new RangeError(`PerceiverImagePostprocessor: 'conv1x1' does not upsample in time`);
    // DeepMind rounds log2 of the factors; a factor that is not a power of two is refused here.
    const log2 = (what: string, v: number): number => {
      const l = Math.round(Math.log2(v));
      if (!Number.isSafeInteger(v) || v < 1 || 2 ** l !== v)
        throw new RangeError(`PerceiverImagePostprocessor: 'conv' with temporal upsampling needs ${what} to be a power of 2, got ${v}`);
      return l;
    };
    if (type === 'conv1x1')
      this.conv1x1 = this.registerModule(
        'conv1x1',
        new Conv2d(need('inChannels', opts.inChannels), need('nOutputs', opts.nOutputs), 1, { stride: this.spatialUpsample, ...init }),
      );
    if (type === 'conv' && this.temporalUpsample === 1)
      this.convnet = this.registerModule('convnet', new Conv2DUpsample(need('inChannels', opts.inChannels), need('nOutputs', opts.nOutputs), init));
    else if (type === 'conv')
      this.convnet = this.registerModule(
        'convnet',
        new Conv3DUpsample(
          need('inChannels', opts.inChannels),
          need('nOutputs', opts.nOutputs),
          log2('temporalUpsample', this.temporalUpsample),
          log2('spatialUpsample', this.spatialUpsample),
          init,
        ),
      );
  }

  forward(inputs: Tensor): Tensor {
    tensorArg('PerceiverImagePostprocessor.forward', 'inputs', inputs, { rank: [3, 4, 5], dtype: 'float', shape: '[B, N, C] or [B, ..., C]' });
    return tidy(() => {
      let x = inputs;
      if (this.inputReshapeSize) x = reshape(x, [x.shape[0], ...this.inputReshapeSize, x.shape[x.rank - 1]]);
      if (this.postprocType === 'pixels') return x;
      if (this.postprocType === 'patches') return depthToSpace(x, this.temporalUpsample, this.spatialUpsample);
      if (this.convnet instanceof Conv3DUpsample) {
        if (x.rank !== 5) throw new RangeError(`PerceiverImagePostprocessor: 'conv' with temporal upsampling needs [B, T, H, W, C], got [${x.shape.join(', ')}]`);
        return this.convnet.forward(x);
      }
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
  tensorArg('depthToSpace', 'x', x, { rank: [4, 5], shape: '[B, H, W, C] or [B, T, H, W, C]' });
  intArg('depthToSpace', 'temporalBlock', temporalBlock, 1);
  intArg('depthToSpace', 'spatialBlock', spatialBlock, 1);
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
