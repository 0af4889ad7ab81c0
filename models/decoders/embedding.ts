// HF's PerceiverEmbeddingDecoder: logits through the (tied) input embedding matrix,
// logits = h Eᵀ + bias. Its only parameter is the bias; E belongs to the preprocessor.
import { Module, computeDtype, computeIn, initConstant, linear, type Tensor } from '../../lib/index.js';
import { deviceArg, intArg, knownKeysArg, objectArg, tensorArg } from '../args.js';

export class PerceiverEmbeddingDecoder extends Module {
  constructor(vocabSize: number, opts: { device?: string } = {}) {
    super();
    intArg('PerceiverEmbeddingDecoder', 'vocabSize', vocabSize, 1);
    objectArg('PerceiverEmbeddingDecoder', 'opts', opts);
    knownKeysArg('PerceiverEmbeddingDecoder', 'opts', opts, ['device']);
    deviceArg('PerceiverEmbeddingDecoder', 'opts.device', opts.device);
    this.registerParameter('bias', initConstant([vocabSize], 0, opts.device));
  }

  /** hidden [B, N, d_model], embedding weight [vocab, d_model] -> [B, N, vocab]. */
  forward(hidden: Tensor, embeddingWeight: Tensor): Tensor {
    tensorArg('PerceiverEmbeddingDecoder.forward', 'hidden', hidden, { dtype: 'float', shape: '[B, N, d_model]' });
    tensorArg('PerceiverEmbeddingDecoder.forward', 'embeddingWeight', embeddingWeight, { rank: 2, dtype: 'float', shape: '[vocab, d_model]' });
    const bias = this.tensor('bias');
    return computeIn(computeDtype(bias), [hidden, embeddingWeight, bias], (h, w, b) => linear(h, w, b));
  }
}
