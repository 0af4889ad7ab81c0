// HF's PerceiverOneHotPreprocessor: a label vector [B, C] becomes one position [B, 1, C].
import { Module, reshape, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import type { Preprocessor, PreprocessorOutput } from './preprocessor.js';

export class PerceiverOneHotPreprocessor extends Module implements Preprocessor {
  readonly numChannels: number;

  constructor(config: PerceiverConfig) {
    super();
    this.numChannels = config.num_labels;
  }

  forward(labels: Tensor): PreprocessorOutput {
    if (labels.rank !== 2) throw new RangeError(`PerceiverOneHotPreprocessor: labels must be [B, C], got [${labels.shape.join(', ')}]`);
    const inputs = reshape(labels, [labels.shape[0], 1, labels.shape[1]]);
    return { inputs, inputsWithoutPos: inputs };
  }
}
