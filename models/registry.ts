// From a HF config.json to the task model it names (`architectures[0]`), as
// from_pretrained does.
import type { Module } from '../lib/index.js';
import type { PerceiverConfig } from './config.js';
import { PerceiverForMaskedLM } from './masked-lm.js';
import { PerceiverForSequenceClassification } from './sequence-classification.js';
import { PerceiverForImageClassificationFourier } from './image-classification-fourier.js';
import { PerceiverForImageClassificationLearned } from './image-classification-learned.js';
import { PerceiverForImageClassificationConvProcessing } from './image-classification-conv.js';
import { PerceiverForOpticalFlow } from './optical-flow.js';
import { PerceiverForMultimodalAutoencoding } from './multimodal-autoencoding.js';
import { knownKeysArg, objectArg } from './args.js';
import { describe } from '../lib/dtype.js';

type ConfigJson = Partial<PerceiverConfig> & Record<string, unknown>;

export const ARCHITECTURES = {
  PerceiverForMaskedLM,
  PerceiverForSequenceClassification,
  PerceiverForImageClassificationFourier,
  PerceiverForImageClassificationLearned,
  PerceiverForImageClassificationConvProcessing,
  PerceiverForOpticalFlow,
  PerceiverForMultimodalAutoencoding,
} as const;

export type ArchitectureName = keyof typeof ARCHITECTURES;

/** A freshly initialised model of the class config.architectures[0] names. */
export function createModel(config: ConfigJson, opts: { device?: string } = {}): InstanceType<(typeof ARCHITECTURES)[ArchitectureName]> & Module {
  objectArg('createModel', 'config', config, true);
  opts = objectArg('createModel', 'opts', opts);
  knownKeysArg('createModel', 'opts', opts, ['device']);
  const arch = Array.isArray(config.architectures) ? config.architectures[0] : undefined;
  if (typeof arch !== 'string')
    throw new TypeError(`createModel: config.architectures[0] must name the model class, got ${Array.isArray(config.architectures) ? JSON.stringify(config.architectures) : describe(config.architectures)}`);
  if (!Object.prototype.hasOwnProperty.call(ARCHITECTURES, arch))
    throw new Error(`createModel: architecture '${arch}' is not supported (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  return new ARCHITECTURES[arch as ArchitectureName](config, opts);
}
