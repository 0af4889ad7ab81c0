// The Transformer MLP after each attention (HF's PerceiverMLP: dense1, act, dense2).
import { Linear, Module, type Activation, type Tensor, type InitOptions } from '../lib/index.js';
import type { HiddenAct } from './config.js';
import { describe } from '../lib/dtype.js';
import { intArg, knownKeysArg, objectArg, optionKeys, optionalTensorArg, tensorArg } from './args.js';

const ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'gelu_tanh', 'relu', 'none'];

/** HF's hidden_act names as engine activations: 'gelu' is the exact erf form, the *_new/tanh/fast variants the tanh approximation. */
export function activationOf(act: HiddenAct | Activation): Activation {
  switch (act) {
    case 'gelu':
      return 'gelu';
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
    case 'gelu_tanh':
      return 'gelu_tanh';
    case 'relu':
      return 'relu';
    case 'none':
      return 'none';
    default:
      throw new TypeError(
        `PerceiverMLP: unsupported activation ${describe(act)}: argument 'hiddenAct' must be one of ${ACTIVATIONS.map((a) => `'${a}'`).join(', ')}, got ${describe(act)}`,
      );
  }
}

export interface PerceiverMLPOptions extends InitOptions {
  /** HF hidden_act; default 'gelu' (exact). DeepMind's checkpoints were trained with the tanh form. */
  hiddenAct?: HiddenAct | Activation;
}

const MLP_OPTIONS = optionKeys<PerceiverMLPOptions>({ hiddenAct: true, initStd: true, device: true });

export class PerceiverMLP extends Module {
  readonly dense1: Linear;
  readonly dense2: Linear;
  readonly activation: Activation;

  constructor(inputSize: number, wideningFactor: number, opts: PerceiverMLPOptions = {}) {
    super();
    intArg('PerceiverMLP', 'inputSize', inputSize, 1);
    intArg('PerceiverMLP', 'wideningFactor', wideningFactor, 1);
    objectArg('PerceiverMLP', 'opts', opts);
    knownKeysArg('PerceiverMLP', 'opts', opts, MLP_OPTIONS);
    this.activation = activationOf(opts.hiddenAct ?? 'gelu');
    const init = { initStd: opts.initStd, device: opts.device };
    this.dense1 = this.registerModule('dense1', new Linear(inputSize, wideningFactor * inputSize, init));
    this.dense2 = this.registerModule('dense2', new Linear(wideningFactor * inputSize, inputSize, init));
  }

  /** x [..., C] -> [..., C]; the activation is fused into dense1, `residual` (if any) into dense2. */
  forward(x: Tensor, residual: Tensor | null = null): Tensor {
    tensorArg('PerceiverMLP.forward', 'x', x, { dtype: 'float' });
    optionalTensorArg('PerceiverMLP.forward', 'residual', residual, { dtype: 'float' });
    const h = this.dense1.forward(x, this.activation);
    try {
      return this.dense2.forward(h, 'none', residual);
    } finally {
      h.dispose();
    }
  }
}
