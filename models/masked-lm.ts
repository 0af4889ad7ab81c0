// HF's PerceiverForMaskedLM: bytes -> text preprocessor -> Perceiver -> a decoder with
// max_position_embeddings trainable queries -> logits through the input embeddings.
// As in HF, the output always has max_position_embeddings rows, whatever N is.
import { Module, tidy, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel } from './perceiver.js';
import { PerceiverTextPreprocessor } from './preprocessors/text.js';
import { PerceiverBasicDecoder } from './decoders/basic.js';
import { PerceiverEmbeddingDecoder } from './decoders/embedding.js';
import { saveModel, type SaveModelOptions } from './save.js';
import { knownKeysArg, objectArg, optionalTensorArg, tensorArg, tokenIdsArg } from './args.js';

export class PerceiverForMaskedLM extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;
  readonly embeddingDecoder: PerceiverEmbeddingDecoder;
  private readonly text: PerceiverTextPreprocessor;

  /** config: a config.json object (HF defaults fill what it omits). */
  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super();
    objectArg('PerceiverForMaskedLM', 'config', config, true);
    opts = objectArg('PerceiverForMaskedLM', 'opts', opts);
    knownKeysArg('PerceiverForMaskedLM', 'opts', opts, ['device']);
    const c = perceiverConfig(config);
    this.config = c;
    const device = opts.device;
    this.text = new PerceiverTextPreprocessor(c, { device });
    const decoder = new PerceiverBasicDecoder(c, {
      outputNumChannels: c.d_latents,
      outputIndexDims: c.max_position_embeddings,
      numChannels: c.d_model,
      // Fixed by HF's class, not read from the config.
      qkChannels: 8 * 32,
      vChannels: c.d_model,
      numHeads: 8,
      useQueryResidual: false,
      finalProject: false,
      trainable: { numChannels: c.d_model, indexDims: c.max_position_embeddings },
      device,
    });
    this.perceiver = this.registerModule('perceiver', new PerceiverModel(c, { inputPreprocessor: this.text, decoder, device }));
    this.embeddingDecoder = this.registerModule('embedding_decoder', new PerceiverEmbeddingDecoder(c.vocab_size, { device }));
  }

  /**
   * inputs: int32 byte ids [B, N]; attentionMask [B, N] (1 = token, 0 = padding);
   * queryMask [B, max_position_embeddings] (attention_mask_style 'deepmind' only)
   * -> logits [B, max_position_embeddings, vocab_size].
   */
  forward(inputs: Tensor, opts: { attentionMask?: Tensor | null; queryMask?: Tensor | null } = {}): { logits: Tensor } {
    const op = 'PerceiverForMaskedLM.forward';
    tensorArg(op, 'inputs', inputs, { rank: 2, dtype: ['int32'], shape: '[B, N]' });
    tokenIdsArg(op, 'inputs', inputs, this.config.vocab_size);
    opts = objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, ['attentionMask', 'queryMask']);
    optionalTensorArg(op, 'opts.attentionMask', opts.attentionMask, { rank: 2, shape: '[B, N]' });
    optionalTensorArg(op, 'opts.queryMask', opts.queryMask, { rank: 2, shape: '[B, max_position_embeddings]' });
    return tidy(() => {
      const { logits: hidden } = this.perceiver.forward(inputs, opts);
      return { logits: this.embeddingDecoder.forward(hidden as Tensor, this.text.embeddings.weight) };
    });
  }

  /** Writes config.json + model.safetensors (or shards + index) to dir in HF's layout (see models/save.ts). */
  save(dir: string, opts?: SaveModelOptions): Promise<void> {
    return saveModel(this, dir, opts);
  }
}
