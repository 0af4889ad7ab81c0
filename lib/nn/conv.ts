// Convolutional layers with PyTorch's parameter names and layouts (Conv2d.weight
// OIHW, BatchNorm2d running statistics as buffers) over the engine's channels-last
// images [B, H, W, C]. The OIHW -> HWIO relayout happens per call as a view, so the
// stored weight stays byte-identical to the checkpoint.
import { Tensor } from '../tensor.js';
import { rand, zeros, ones, randn } from '../creation.js';
import { permute } from '../ops/layout.js';
import { conv2d, batchNorm, type Padding } from '../ops/nn.js';
import { Module } from './module.js';
import type { InitOptions } from './layers.js';

export interface Conv2dModuleOptions extends InitOptions {
  /** Default 1. */
  stride?: number | [number, number];
  /** A number pads every side (PyTorch's `padding=p`); default 0. */
  padding?: Padding | number;
  /** Default true. */
  bias?: boolean;
}

/** 2-D convolution; weight [out, in, kh, kw] as PyTorch stores it, input and output channels-last. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly stride: number | [number, number];
  readonly padding: Padding | number;

  constructor(inChannels: number, outChannels: number, kernel: number | [number, number], opts: Conv2dModuleOptions = {}) {
    super();
    const [kh, kw] = typeof kernel === 'number' ? [kernel, kernel] : kernel;
    for (const [n, v] of [['inChannels', inChannels], ['outChannels', outChannels], ['kernel', kh], ['kernel', kw]] as const)
      if (!Number.isSafeInteger(v) || v <= 0) throw new TypeError(`Conv2d: '${n}' must be a positive integer, got ${String(v)}`);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    const { initStd, device } = opts;
    // PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    const bound = 1 / Math.sqrt(inChannels * kh * kw);
    const init = (shape: number[], isBias: boolean): Tensor =>
      initStd === undefined
        ? rand(shape, { low: -bound, high: bound, device })
        : isBias
          ? zeros(shape, { device })
          : randn(shape, { std: initStd, device });
    this.registerParameter('weight', init([outChannels, inChannels, kh, kw], false));
    this.registerParameter('bias', opts.bias === false ? null : init([outChannels], true));
  }

  /** x [B, H, W, in] -> [B, OH, OW, out]. */
  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels)
      throw new RangeError(`Conv2d: input must be [B, H, W, ${this.inChannels}] (channels-last), got [${x.shape.join(', ')}]`);
    const hwio = permute(this.tensor('weight'), [2, 3, 1, 0]);
    try {
      return conv2d(x, hwio, { bias: this.optionalTensor('bias'), stride: this.stride, padding: this.padding });
    } finally {
      hwio.dispose();
    }
  }
}

export interface BatchNorm2dOptions {
  /** Default 1e-5. */
  eps?: number;
  device?: string;
}

/**
 * Inference batch norm over the channel (last) axis with PyTorch's state:
 * weight, bias, running_mean, running_var, num_batches_tracked (int32 here; the
 * checkpoint's int64 is narrowed on load).
 */
export class BatchNorm2d extends Module {
  readonly numFeatures: number;
  readonly eps: number;

  constructor(numFeatures: number, opts: BatchNorm2dOptions = {}) {
    super();
    if (!Number.isSafeInteger(numFeatures) || numFeatures <= 0)
      throw new TypeError(`BatchNorm2d: 'numFeatures' must be a positive integer, got ${String(numFeatures)}`);
    this.numFeatures = numFeatures;
    this.eps = opts.eps ?? 1e-5;
    const device = opts.device;
    this.registerParameter('weight', ones([numFeatures], { device }));
    this.registerParameter('bias', zeros([numFeatures], { device }));
    this.registerBuffer('running_mean', zeros([numFeatures], { device }));
    this.registerBuffer('running_var', ones([numFeatures], { device }));
    this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int32', device }));
  }

  /** x [..., C] (channels-last) -> same shape, with the running statistics. */
  forward(x: Tensor): Tensor {
    return batchNorm(x, this.tensor('running_mean'), this.tensor('running_var'), {
      weight: this.tensor('weight'),
      bias: this.tensor('bias'),
      eps: this.eps,
    });
  }
}
