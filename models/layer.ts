// One Perceiver block (HF's PerceiverLayer): attention (with its own LayerNorms and
// optional query residual), then x + MLP(LayerNorm(x)).
import { LayerNorm, Module, tidy, type Tensor } from '../lib/index.js';
import { ATTENTION_OPTIONS, attentionInputsArg, PerceiverAttention, type PerceiverAttentionOptions } from './attention.js';
import { PerceiverMLP, type PerceiverMLPOptions } from './mlp.js';
import { intArg, knownKeysArg, objectArg, optionKeys } from './args.js';

export interface PerceiverLayerOptions extends PerceiverAttentionOptions, PerceiverMLPOptions {
  /** Default 4 (HF's default; Perceiver configs set 1). */
  wideningFactor?: number;
}

const LAYER_OPTIONS = [...ATTENTION_OPTIONS, ...optionKeys<Omit<PerceiverLayerOptions, keyof PerceiverAttentionOptions>>({ hiddenAct: true, wideningFactor: true })];

export class PerceiverLayer extends Module {
  readonly attention: PerceiverAttention;
  readonly layernorm: LayerNorm;
  readonly mlp: PerceiverMLP;

  constructor(opts: PerceiverLayerOptions) {
    super();
    objectArg('PerceiverLayer', 'opts', opts, true);
    knownKeysArg('PerceiverLayer', 'opts', opts, LAYER_OPTIONS);
    intArg('PerceiverLayer', 'opts.qDim', opts.qDim, 1);
    if (opts.wideningFactor !== undefined) intArg('PerceiverLayer', 'opts.wideningFactor', opts.wideningFactor, 1);
    // The MLP's options are the MLP's: the attention is given its own.
    const { hiddenAct: _act, wideningFactor: _widening, ...attentionOpts } = opts;
    this.attention = this.registerModule('attention', new PerceiverAttention(attentionOpts));
    this.layernorm = this.registerModule('layernorm', new LayerNorm(opts.qDim, { device: opts.device }));
    this.mlp = this.registerModule(
      'mlp',
      new PerceiverMLP(opts.qDim, opts.wideningFactor ?? 4, { hiddenAct: opts.hiddenAct, initStd: opts.initStd, device: opts.device }),
    );
  }

  /**
   * hiddenStates [B, Nq, qDim], inputs [B, Nk, kvDim] for cross-attention, mask uint8
   * broadcastable to [B, Nq, Nk], queryScale [B, 1, 1] (see PerceiverSelfAttention).
   */
  forward(hiddenStates: Tensor, inputs?: Tensor | null, mask?: Tensor | null, queryScale?: Tensor | null): Tensor {
    attentionInputsArg('PerceiverLayer.forward', hiddenStates, inputs, mask, queryScale);
    return tidy(() => {
      const a = this.attention.forward(hiddenStates, inputs, mask, queryScale);
      return this.mlp.forward(this.layernorm.forward(a), a);
    });
  }
}
