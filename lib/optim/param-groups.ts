// Which parameters get weight decay: not biases and not normalisation parameters (the
// reference's mask), and position embeddings only when asked.
import { Module } from '../nn/module.js';
import { describe } from '../dtype.js';
import type { ParamGroup } from './optimizer.js';
import { knownKeys, optionKeys } from '../ops/args.js';

export interface DecayGroupOptions {
  weightDecay: number;
  /**
   * Decay position embeddings too (the reference's decay_pos_embs: learned position
   * embeddings, output queries, the latent array, multimodal padding and mask tokens). Default false.
   */
  decayPositionEmbeddings?: boolean;
}

const DECAY_GROUP_OPTIONS = optionKeys<DecayGroupOptions>({ weightDecay: true, decayPositionEmbeddings: true });

/** True for names the reference exempts from weight decay. */
export function exemptFromDecay(name: string, decayPositionEmbeddings = false): boolean {
  if (typeof name !== 'string') throw new TypeError(`exemptFromDecay: argument 'name' must be a string, got ${describe(name)}`);
  if (typeof decayPositionEmbeddings !== 'boolean')
    throw new TypeError(`exemptFromDecay: argument 'decayPositionEmbeddings' must be a boolean, got ${describe(decayPositionEmbeddings)}`);
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  if (leaf === 'bias') return true;
  if (/(^|\.)(layernorm\d*|layer_norm|norm|batchnorm|bn)\./i.test(name)) return true;
  if (!decayPositionEmbeddings && POS_EMBS.test(name)) return true;
  return false;
}

// What the reference's decay_pos_embs covers: every parameter Haiku names pos_embs (its
// TrainablePositionEncoding), which in HF's names are the position embeddings and
// encodings, the latent array, and the multimodal padding and mask tokens.
const POS_EMBS = /position_embeddings|position_encodings|(^|\.)embeddings\.latents$|\.padding\.[^.]+$|input_preprocessor\.mask\.[^.]+$/;

/** Two groups of model's named parameters: decayed and not (weightDecay 0). */
export function decayGroups(model: Module, o: DecayGroupOptions): ParamGroup[] {
  if (!(model instanceof Module)) throw new TypeError(`decayGroups: argument 'model' must be a Module, got ${describe(model)}`);
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new TypeError(`decayGroups: argument 'options' must be { weightDecay, decayPositionEmbeddings? }, got ${describe(o)}`);
  knownKeys('decayGroups', 'options', o, DECAY_GROUP_OPTIONS);
  if (typeof o.weightDecay !== 'number' || !Number.isFinite(o.weightDecay) || o.weightDecay < 0)
    throw new (typeof o.weightDecay === 'number' ? RangeError : TypeError)(`decayGroups: option 'weightDecay' must be a finite number >= 0, got ${describe(o.weightDecay)}`);
  const dpe = o.decayPositionEmbeddings ?? false;
  if (typeof dpe !== 'boolean') throw new TypeError(`decayGroups: option 'decayPositionEmbeddings' must be a boolean, got ${describe(dpe)}`);
  const decay: ParamGroup = { params: [], names: [], weightDecay: o.weightDecay };
  const none: ParamGroup = { params: [], names: [], weightDecay: 0 };
  for (const [name, p] of model.namedParameters()) {
    const g = exemptFromDecay(name, dpe) ? none : decay;
    g.params.push(p);
    g.names!.push(name);
  }
  return [decay, none].filter((g) => g.params.length > 0);
}
