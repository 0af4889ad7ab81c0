// HF's PerceiverOneHotPreprocessor: a label vector [B, C] becomes one position [B, 1, C].
import { Module, reshape, type Tensor } from '../../lib/index.js';
import type { PerceiverConfig } from '../config.js';
import { type Preprocessor, type PreprocessorOutput } from './preprocessor.js';
import { configArg, tensorArg } from '../args.js';

export class PerceiverOneHotPreprocessor extends Module implements Preprocessor {
  readonly numChannels: number;

  constructor(config: PerceiverConfig) {
    super();
    configArg('PerceiverOneHotPreprocessor', config, ['num_labels']);
    this.numChannels = config.num_labels;
  }

  forward(labels: Tensor): PreprocessorOutput {
    tensorArg('PerceiverOneHotPreprocessor.forward', 'labels', labels, { rank: 2, dtype: 'float', shape: '[B, C]' });
    const inputs = reshape(labels, [labels.shape[0], 1, labels.shape[1]]);
    return { inputs, inputsWithoutPos: inputs };
  }
}
