// The Perceiver encoder: one cross-attention (latents attend to the inputs), then
// num_blocks applications of one stack of self-attention layers. The stack's weights
// are shared by every block (HF's self_attends.{i} exist once, whatever num_blocks is).
import { Module, ModuleList, tidy, type Tensor } from '../lib/index.js';
import type { PerceiverConfig } from './config.js';
import { PerceiverLayer } from './layer.js';
import { configArg, intArg, knownKeysArg, objectArg, optionKeys, optionalTensorArg, tensorArg } from './args.js';
import { shareJoinedWeights } from './fused-projection.js';

export interface PerceiverEncoderOptions {
  /** Channels of the preprocessed inputs (the cross-attention's keys and values). */
  kvDim: number;
  device?: string;
}

const ENCODER_OPTIONS = optionKeys<PerceiverEncoderOptions>({ kvDim: true, device: true });

export class PerceiverEncoder extends Module {
  readonly crossAttention: PerceiverLayer;
  readonly selfAttends: ModuleList<PerceiverLayer>;
  readonly numBlocks: number;

  constructor(config: PerceiverConfig, opts: PerceiverEncoderOptions) {
    super();
    configArg('PerceiverEncoder', config, ['d_latents', 'num_self_attention_heads', 'num_cross_attention_heads', 'num_blocks', 'num_self_attends_per_block']);
    objectArg('PerceiverEncoder', 'opts', opts, true);
    knownKeysArg('PerceiverEncoder', 'opts', opts, ENCODER_OPTIONS);
    intArg('PerceiverEncoder', 'opts.kvDim', opts.kvDim, 1);
    const c = config;
    for (const [name, heads] of [['num_self_attention_heads', c.num_self_attention_heads], ['num_cross_attention_heads', c.num_cross_attention_heads]] as const)
      if (c.d_latents % heads !== 0) throw new RangeError(`PerceiverEncoder: d_latents (${c.d_latents}) must be divisible by ${name} (${heads})`);
    const common = { hiddenAct: c.hidden_act, initStd: c.initializer_range, attentionProbsDropoutProb: c.attention_probs_dropout_prob, device: opts.device };
    this.numBlocks = c.num_blocks;
    this.crossAttention = this.registerModule(
      'cross_attention',
      new PerceiverLayer({
        ...common,
        isCrossAttention: true,
        qkChannels: c.qk_channels,
        vChannels: c.v_channels,
        numHeads: c.num_cross_attention_heads,
        qDim: c.d_latents,
        kvDim: opts.kvDim,
        wideningFactor: c.cross_attention_widening_factor,
        shapeForAttention: c.cross_attention_shape_for_attention,
        useQueryResidual: c.use_query_residual,
      }),
    );
    const layers: PerceiverLayer[] = [];
    for (let i = 0; i < c.num_self_attends_per_block; i++)
      layers.push(
        new PerceiverLayer({
          ...common,
          isCrossAttention: false,
          qkChannels: c.qk_channels,
          vChannels: c.v_channels,
          numHeads: c.num_self_attention_heads,
          qDim: c.d_latents,
          kvDim: c.d_latents,
          wideningFactor: c.self_attention_widening_factor,
        }),
      );
    this.selfAttends = this.registerModule('self_attends', new ModuleList(layers));
  }

  /**
   * latents [B, N, d_latents], inputs [B, M, kvDim], inputsMask uint8 broadcastable to
   * [B, N, M] (0 = input position not attended), queryScale [B, 1, 1] for the
   * cross-attention's queries (hfKeyMask) -> [B, N, d_latents].
   */
  forward(latents: Tensor, inputs: Tensor, inputsMask?: Tensor | null, queryScale?: Tensor | null): Tensor {
    const op = 'PerceiverEncoder.forward';
    tensorArg(op, 'latents', latents, { rank: 3, dtype: 'float', shape: '[B, N, d_latents]' });
    tensorArg(op, 'inputs', inputs, { rank: 3, dtype: 'float', shape: '[B, M, kvDim]' });
    optionalTensorArg(op, 'inputsMask', inputsMask, { shape: '[B, N, M] (broadcastable)' });
    optionalTensorArg(op, 'queryScale', queryScale, { rank: 3, dtype: 'float', shape: '[B, 1, 1]' });
    // The blocks call each self-attention numBlocks times: in training, each layer's
    // projection weights are joined once for all of them (fused-projection.ts).
    return shareJoinedWeights(() => tidy(() => {
      let z = this.crossAttention.forward(latents, inputs, inputsMask, queryScale);
      for (let b = 0; b < this.numBlocks; b++)
        for (const layer of this.selfAttends) {
          const next = layer.forward(z);
          z.dispose();
          z = next;
        }
      return z;
    }));
  }
}
