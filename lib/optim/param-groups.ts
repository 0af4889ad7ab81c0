// Which parameters get weight decay: not biases and not normalisation parameters (the
// reference's mask), and position embeddings only when asked.
import type { Module } from '../nn/module.js';
import type { ParamGroup } from './optimizer.js';

export interface DecayGroupOptions {
  weightDecay: number;
  /** Decay position embeddings too. Default false. */
  decayPositionEmbeddings?: boolean;
}

/** True for names the reference exempts from weight decay. */
export function exemptFromDecay(name: string, decayPositionEmbeddings = false): boolean {
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  if (leaf === 'bias') return true;
  if (/(^|\.)(layernorm\d*|layer_norm|norm|batchnorm|bn)\./i.test(name)) return true;
  if (!decayPositionEmbeddings && /position_embeddings|position_encodings/.test(name)) return true;
  return false;
}

/** Two groups of model's named parameters: decayed and not (weightDecay 0). */
export function decayGroups(model: Module, o: DecayGroupOptions): ParamGroup[] {
  const decay: ParamGroup = { params: [], names: [], weightDecay: o.weightDecay };
  const none: ParamGroup = { params: [], names: [], weightDecay: 0 };
  for (const [name, p] of model.namedParameters()) {
    const g = exemptFromDecay(name, o.decayPositionEmbeddings) ? none : decay;
    g.params.push(p);
    g.names!.push(name);
  }
  return [decay, none].filter((g) => g.params.length > 0);
}
