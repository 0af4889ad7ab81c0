// HF's PerceiverEmbeddingDecoder: logits through the (tied) input embedding matrix,
// logits = h Eᵀ + bias. Its only parameter is the bias; E belongs to the preprocessor.
import { Module, computeDtype, computeIn, initConstant, linear, type Tensor } from '../../lib/index.js';

export class PerceiverEmbeddingDecoder extends Module {
  constructor(vocabSize: number, opts: { device?: string } = {}) {
    super();
    this.registerParameter('bias', initConstant([vocabSize], 0, opts.device));
  }

  /** hidden [B, N, d_model], embedding weight [vocab, d_model] -> [B, N, vocab]. */
  forward(hidden: Tensor, embeddingWeight: Tensor): Tensor {
    const bias = this.tensor('bias');
    return computeIn(computeDtype(bias), [hidden, embeddingWeight, bias], (h, w, b) => linear(h, w, b));
  }
}
