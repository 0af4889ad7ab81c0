// Text input: token embeddings plus a trainable position embedding per index (HF's
// PerceiverTextPreprocessor: embeddings, position_embeddings).
import { Embedding, Module, slice, tidy, toDtype, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import { type Preprocessor, type PreprocessorOutput } from './preprocessor.js';
import { configArg, knownKeysArg, objectArg, tensorArg } from '../args.js';

export class PerceiverTextPreprocessor extends Module implements Preprocessor {
  readonly embeddings: Embedding;
  readonly positionEmbeddings: Embedding;
  readonly numChannels: number;

  constructor(config: PerceiverConfig, opts: { device?: string } = {}) {
    super();
    configArg('PerceiverTextPreprocessor', config, ['d_model', 'vocab_size', 'max_position_embeddings']);
    objectArg('PerceiverTextPreprocessor', 'opts', opts);
    knownKeysArg('PerceiverTextPreprocessor', 'opts', opts, ['device']);
    const init = { initStd: config.initializer_range, device: opts.device };
    this.numChannels = config.d_model;
    this.embeddings = this.registerModule('embeddings', new Embedding(config.vocab_size, config.d_model, init));
    this.positionEmbeddings = this.registerModule('position_embeddings', new Embedding(config.max_position_embeddings, config.d_model, init));
  }

  /** ids int32 [B, N] (N <= max_position_embeddings) -> [B, N, d_model]. */
  forward(ids: Tensor): PreprocessorOutput {
    tensorArg('PerceiverTextPreprocessor.forward', 'ids', ids);
    if (ids.rank !== 2) throw new RangeError(`PerceiverTextPreprocessor: ids must be [B, N], got shape [${ids.shape.join(', ')}]`);
    if (ids.dtype !== 'int32') throw new TypeError(`PerceiverTextPreprocessor: ids must be int32, got ${ids.dtype}`);
    const n = ids.shape[1];
    const max = this.positionEmbeddings.numEmbeddings;
    if (n > max) throw new RangeError(`PerceiverTextPreprocessor: ${n} tokens exceed max_position_embeddings (${max})`);
    return tidy(() => {
      const inputsWithoutPos = this.embeddings.forward(ids);
      // Positions 0..N-1 are the first N rows of the table: a slice, not a lookup.
      const inputs = inputsWithoutPos.add(toDtype(slice(this.positionEmbeddings.weight, 0, 0, n), inputsWithoutPos.dtype));
      return { inputs, inputsWithoutPos };
    });
  }
}
