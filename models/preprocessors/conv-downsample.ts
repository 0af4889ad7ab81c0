// HF's Conv2DDownsample ('conv' image prep): Conv 7x7 stride 2 without bias, padded 3
// on every side (HF's Conv2dSamePadding pads (k//2 + k%2 - 1, k//2) = (3, 3) for k = 7),
// BatchNorm, ReLU, MaxPool 3x3 stride 2 WITHOUT padding. DeepMind's original uses TF
// 'SAME' padding for both (224 -> 56 tokens); HF's gives 224 -> 55. Both are offered
// (padding 'hf' | 'same'); the weights are the same. HF also builds exactly one such
// layer whatever spatial_downsample says, and so does this.
import { BatchNorm2d, Conv2d, Module, maxPool2d, relu, tidy, type Tensor } from '../../lib/index.js';
import { boolArg, deviceArg, intArg, knownKeysArg, numberArg, objectArg, oneOfArg, tensorArg } from '../args.js';

const OPTIONS = ['inChannels', 'outChannels', 'useBatchnorm', 'padding', 'initStd', 'device'];

export class Conv2DDownsample extends Module {
  readonly conv: Conv2d;
  readonly batchnorm: BatchNorm2d | null;
  readonly padding: 'hf' | 'same';

  constructor(
    opts: { inChannels?: number; outChannels?: number; useBatchnorm?: boolean; padding?: 'hf' | 'same'; initStd?: number; device?: string } = {},
  ) {
    super();
    const op = 'Conv2DDownsample';
    objectArg(op, 'opts', opts);
    // HF's num_layers is not an option: one layer is built whatever spatial_downsample says.
    knownKeysArg(op, 'opts', opts, OPTIONS);
    for (const k of ['inChannels', 'outChannels'] as const) if (opts[k] !== undefined) intArg(op, `opts.${k}`, opts[k], 1);
    if (opts.useBatchnorm !== undefined) boolArg(op, 'opts.useBatchnorm', opts.useBatchnorm);
    oneOfArg(op, 'opts.padding', opts.padding, ['hf', 'same']);
    if (opts.initStd !== undefined) numberArg(op, 'opts.initStd', opts.initStd, 0);
    deviceArg(op, 'opts.device', opts.device);
    const out = opts.outChannels ?? 64;
    this.padding = opts.padding ?? 'hf';
    this.conv = this.registerModule(
      'conv',
      new Conv2d(opts.inChannels ?? 3, out, 7, { stride: 2, padding: this.padding === 'same' ? 'same' : 3, bias: false, initStd: opts.initStd, device: opts.device }),
    );
    this.batchnorm = opts.useBatchnorm ?? true ? this.registerModule('batchnorm', new BatchNorm2d(out, { device: opts.device })) : null;
  }

  /** x [B, H, W, C] channels-last -> [B, H', W', out]. */
  forward(x: Tensor): Tensor {
    tensorArg('Conv2DDownsample.forward', 'x', x, { rank: 4, dtype: 'float', shape: '[B, H, W, C] (channels-last)' });
    return tidy(() => {
      let y = this.conv.forward(x);
      if (this.batchnorm) y = this.batchnorm.forward(y);
      return maxPool2d(relu(y), { kernel: 3, stride: 2, padding: this.padding === 'same' ? 'same' : 'valid' });
    });
  }
}
