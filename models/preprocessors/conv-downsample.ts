// HF's Conv2DDownsample ('conv' image prep): Conv 7x7 stride 2 without bias, padded 3
// on every side (HF's Conv2dSamePadding pads (k//2 + k%2 - 1, k//2) = (3, 3) for k = 7),
// BatchNorm, ReLU, MaxPool 3x3 stride 2 WITHOUT padding. DeepMind's original uses TF
// 'SAME' padding for both (224 -> 56 tokens); HF's gives 224 -> 55. Both are offered
// (padding 'hf' | 'same'); the weights are the same. HF also builds exactly one such
// layer whatever spatial_downsample says, and so does this.
import { BatchNorm2d, Conv2d, Module, maxPool2d, relu, tidy, type Tensor } from '../../lib/index.js';

export class Conv2DDownsample extends Module {
  readonly conv: Conv2d;
  readonly batchnorm: BatchNorm2d | null;
  readonly padding: 'hf' | 'same';

  constructor(
    opts: { inChannels?: number; outChannels?: number; useBatchnorm?: boolean; padding?: 'hf' | 'same'; initStd?: number; device?: string } = {},
  ) {
    super();
    const out = opts.outChannels ?? 64;
    this.padding = opts.padding ?? 'hf';
    if (this.padding !== 'hf' && this.padding !== 'same')
      throw new TypeError(`Conv2DDownsample: padding must be 'hf' or 'same', got ${JSON.stringify(this.padding)}`);
    this.conv = this.registerModule(
      'conv',
      new Conv2d(opts.inChannels ?? 3, out, 7, { stride: 2, padding: this.padding === 'same' ? 'same' : 3, bias: false, initStd: opts.initStd, device: opts.device }),
    );
    this.batchnorm = opts.useBatchnorm ?? true ? this.registerModule('batchnorm', new BatchNorm2d(out, { device: opts.device })) : null;
  }

  /** x [B, H, W, C] channels-last -> [B, H', W', out]. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = this.conv.forward(x);
      if (this.batchnorm) y = this.batchnorm.forward(y);
      return maxPool2d(relu(y), { kernel: 3, stride: 2, padding: this.padding === 'same' ? 'same' : 'valid' });
    });
  }
}
