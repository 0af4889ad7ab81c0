// HF's PerceiverForSequenceClassification: bytes -> text preprocessor -> Perceiver ->
// one trainable classification query (with query residual) -> logits [B, num_labels].
// HF releases no checkpoint of it; it is the text counterpart of the image classifiers.
import { Module, tidy, type Tensor } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { PerceiverModel } from './perceiver.js';
import { PerceiverTextPreprocessor } from './preprocessors/text.js';
import { PerceiverClassificationDecoder } from './decoders/classification.js';
import { saveModel, type SaveModelOptions } from './save.js';
import { knownKeysArg, objectArg, optionalTensorArg, tensorArg, tokenIdsArg } from './args.js';

export class PerceiverForSequenceClassification extends Module {
  readonly config: PerceiverConfig;
  readonly perceiver: PerceiverModel;

  /** config: a config.json object (HF defaults fill what it omits; num_labels from id2label). */
  constructor(config: Partial<PerceiverConfig> & Record<string, unknown>, opts: { device?: string } = {}) {
    super();
    objectArg('PerceiverForSequenceClassification', 'config', config, true);
    opts = objectArg('PerceiverForSequenceClassification', 'opts', opts);
    knownKeysArg('PerceiverForSequenceClassification', 'opts', opts, ['device']);
    const c = perceiverConfig(config);
    this.config = c;
    const device = opts.device;
    const decoder = new PerceiverClassificationDecoder(c, {
      numChannels: c.d_latents,
      trainable: { numChannels: c.d_latents, indexDims: 1 },
      useQueryResidual: true,
      device,
    });
    this.perceiver = this.registerModule(
      'perceiver',
      new PerceiverModel(c, { inputPreprocessor: new PerceiverTextPreprocessor(c, { device }), decoder, device }),
    );
  }

  /**
   * inputs: int32 byte ids [B, N] (N <= max_position_embeddings); attentionMask [B, N]
   * (1 = token, 0 = padding); queryMask [B, 1] (the one classification query;
   * attention_mask_style 'deepmind' only) -> logits [B, num_labels].
   */
  forward(inputs: Tensor, opts: { attentionMask?: Tensor | null; queryMask?: Tensor | null } = {}): { logits: Tensor } {
    const op = 'PerceiverForSequenceClassification.forward';
    tensorArg(op, 'inputs', inputs, { rank: 2, dtype: ['int32'], shape: '[B, N]' });
    tokenIdsArg(op, 'inputs', inputs, this.config.vocab_size);
    opts = objectArg(op, 'opts', opts);
    knownKeysArg(op, 'opts', opts, ['attentionMask', 'queryMask']);
    optionalTensorArg(op, 'opts.attentionMask', opts.attentionMask, { rank: 2, shape: '[B, N]' });
    optionalTensorArg(op, 'opts.queryMask', opts.queryMask, { rank: 2, shape: '[B, 1]' });
    return tidy(() => ({
      logits: this.perceiver.forward(inputs, { attentionMask: opts.attentionMask ?? null, queryMask: opts.queryMask ?? null }).logits as Tensor,
    }));
  }

  /** Writes config.json + model.safetensors (or shards + index) to dir in HF's layout (see models/save.ts). */
  save(dir: string, opts?: SaveModelOptions): Promise<void> {
    return saveModel(this, dir, opts);
  }
}
