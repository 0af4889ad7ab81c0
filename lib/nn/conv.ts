// Convolutional layers with PyTorch's parameter names and layouts (Conv2d.weight
// OIHW, BatchNorm2d running statistics as buffers) over the engine's channels-last
// images [B, H, W, C]. The OIHW -> HWIO relayout happens per call as a view, so the
// stored weight stays byte-identical to the checkpoint.
import { Tensor } from '../tensor.js';
import { zeros } from '../creation.js';
import { initConstant, initLayer } from './init.js';
import { assign, permute } from '../ops/layout.js';
import { tidy } from '../scope.js';
import { noGrad } from '../autograd/tape.js';
import { conv2d, batchNorm, type Padding } from '../ops/nn.js';
import { Module } from './module.js';
import { epsOption, inputTensor, layerOptions, type InitOptions } from './layers.js';
import { castNeeded, castTo, computeDtype, computeIn } from './autocast.js';
import { describe } from '../dtype.js';
import { optionKeys, options, pair } from '../ops/args.js';

// What conv2d() takes, checked when the layer is made rather than at its first call:
// 'same', 'valid', a number, or [top, bottom, left, right], every count >= 0.
function paddingOption(v: unknown): Padding | number {
  const count = (p: unknown) => typeof p === 'number' && Number.isSafeInteger(p) && p >= 0;
  if (v === 'same' || v === 'valid' || count(v) || (Array.isArray(v) && v.length === 4 && v.every(count))) return v as Padding | number;
  throw new TypeError(`Conv2d: option 'padding' must be 'same', 'valid', an integer >= 0 or [top, bottom, left, right], got ${describe(v)}`);
}

export interface Conv2dModuleOptions extends InitOptions {
  /** Default 1. */
  stride?: number | [number, number];
  /** A number pads every side (PyTorch's `padding=p`); default 0. */
  padding?: Padding | number;
  /** Default true. */
  bias?: boolean;
}

const CONV2D_OPTIONS = optionKeys<Conv2dModuleOptions>({ initStd: true, device: true, stride: true, padding: true, bias: true });

/** 2-D convolution; weight [out, in, kh, kw] as PyTorch stores it, input and output channels-last. */
export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly stride: number | [number, number];
  readonly padding: Padding | number;

  constructor(inChannels: number, outChannels: number, kernel: number | [number, number], opts?: Conv2dModuleOptions) {
    super();
    if (!(typeof kernel === 'number' || (Array.isArray(kernel) && kernel.length === 2)))
      throw new TypeError(`Conv2d: 'kernel' must be a positive integer or [kh, kw], got ${describe(kernel)}`);
    const [kh, kw] = typeof kernel === 'number' ? [kernel, kernel] : kernel;
    for (const [n, v] of [['inChannels', inChannels], ['outChannels', outChannels], ['kernel', kh], ['kernel', kw]] as const)
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0)
        throw new (typeof v === 'number' ? RangeError : TypeError)(`Conv2d: '${n}' must be a positive integer, got ${describe(v)}`);
    const o = layerOptions('Conv2d', opts, CONV2D_OPTIONS);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.stride = o.stride ?? 1;
    const [sh, sw] = pair('Conv2d', 'stride', this.stride);
    if (sh <= 0 || sw <= 0) throw new RangeError(`Conv2d: option 'stride' must be positive, got ${describe(this.stride)}`);
    this.padding = o.padding === undefined ? 0 : paddingOption(o.padding);
    const { initStd, device } = o;
    const fanIn = inChannels * kh * kw;
    this.registerParameter('weight', initLayer([outChannels, inChannels, kh, kw], fanIn, false, initStd, device));
    this.registerParameter('bias', o.bias === false ? null : initLayer([outChannels], fanIn, true, initStd, device));
  }

  /** x [B, H, W, in] -> [B, OH, OW, out]. */
  forward(x: Tensor): Tensor {
    inputTensor('Conv2d', 'x', x);
    if (x.rank !== 4 || x.shape[3] !== this.inChannels)
      throw new RangeError(`Conv2d: input must be [B, H, W, ${this.inChannels}] (channels-last), got [${x.shape.join(', ')}]`);
    const weight = this.tensor('weight');
    return computeIn(computeDtype(weight), [x, weight, this.optionalTensor('bias')], (x, w, bias) => {
      const hwio = permute(w, [2, 3, 1, 0]);
      try {
        return conv2d(x, hwio, { bias, stride: this.stride, padding: this.padding });
      } finally {
        hwio.dispose();
      }
    });
  }
}

export interface BatchNorm2dOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Weight of the new batch in the running statistics. Default 0.1 (PyTorch's). */
  momentum?: number;
  device?: string;
}

const BATCH_NORM_OPTIONS = optionKeys<BatchNorm2dOptions>({ eps: true, momentum: true, device: true });

/**
 * Inference batch norm over the channel (last) axis with PyTorch's state:
 * weight, bias, running_mean, running_var, num_batches_tracked (int32 here; the
 * checkpoint's int64 is narrowed on load).
 */
export class BatchNorm2d extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number;

  constructor(numFeatures: number, opts?: BatchNorm2dOptions) {
    super();
    if (typeof numFeatures !== 'number' || !Number.isSafeInteger(numFeatures) || numFeatures <= 0)
      throw new (typeof numFeatures === 'number' ? RangeError : TypeError)(`BatchNorm2d: 'numFeatures' must be a positive integer, got ${describe(numFeatures)}`);
    const o = options('BatchNorm2d', opts, BATCH_NORM_OPTIONS);
    this.numFeatures = numFeatures;
    this.eps = epsOption('BatchNorm2d', o.eps, 1e-5);
    this.momentum = o.momentum ?? 0.1;
    if (typeof this.momentum !== 'number' || !(this.momentum >= 0 && this.momentum <= 1))
      throw new (typeof this.momentum === 'number' ? RangeError : TypeError)(`BatchNorm2d: 'momentum' must be in [0, 1], got ${describe(o.momentum)}`);
    const device = o.device;
    this.registerParameter('weight', initConstant([numFeatures], 1, device));
    this.registerParameter('bias', initConstant([numFeatures], 0, device));
    this.registerBuffer('running_mean', initConstant([numFeatures], 0, device));
    this.registerBuffer('running_var', initConstant([numFeatures], 1, device));
    // Optional on load: torch fills a missing counter in when a state dict carries no
    // version (a safetensors file), and HF's from_pretrained initialises it.
    this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int32', device }), { optionalOnLoad: true });
  }

  /**
   * x [..., C] (channels-last) -> same shape. Evaluation mode normalises with the
   * running statistics; training mode with the batch's (biased variance), and moves
   * the running ones towards them by `momentum` (unbiased variance), as PyTorch.
   */
  forward(x: Tensor): Tensor {
    inputTensor('BatchNorm2d', 'x', x);
    // Statistics stay in the module's own dtype, under autocast too (float32 master
    // weights keep float32 running statistics).
    const dt = this.tensor('weight').dtype;
    if (castNeeded(x, dt)) return tidy(() => this.forward(castTo(x, dt)));
    if (this.training) return this.forwardTraining(x);
    return batchNorm(x, this.tensor('running_mean'), this.tensor('running_var'), {
      weight: this.tensor('weight'),
      bias: this.tensor('bias'),
      eps: this.eps,
    });
  }

  private forwardTraining(x: Tensor): Tensor {
    const c = this.numFeatures;
    if (x.shape[x.rank - 1] !== c) throw new RangeError(`BatchNorm2d: x must have ${c} channels last, got [${x.shape.join(', ')}]`);
    return tidy(() => {
      const rows = x.reshape([-1, c]);
      const n = rows.shape[0];
      if (n < 2) throw new RangeError(`BatchNorm2d: training mode needs more than one value per channel, got input [${x.shape.join(', ')}]`);
      const mean = rows.mean(0);
      const centred = rows.sub(mean);
      const variance = centred.square().mean(0);
      const y = centred.mul(variance.add(this.eps).rsqrt()).mul(this.tensor('weight')).add(this.tensor('bias'));
      noGrad(() => {
        const m = this.momentum;
        const rm = this.tensor('running_mean');
        const rv = this.tensor('running_var');
        assign(rm, rm.mul(1 - m).add(mean.mul(m)));
        assign(rv, rv.mul(1 - m).add(variance.mul((m * n) / (n - 1))));
        const count = this.tensor('num_batches_tracked');
        assign(count, count.cast('float32').add(1));
      });
      return y.reshape([...x.shape]);
    });
  }
}
