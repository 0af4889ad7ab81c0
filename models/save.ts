// saveModel(model, dir): the HF folder layout from_pretrained reads — config.json
// (the full PerceiverConfig as HF's to_json_string writes it: sorted keys,
// architectures, model_type) and model.safetensors (metadata {format: 'pt'}, HF's
// names, keys sorted as HF's writer sorts them). The state dict is HF's 1:1: the
// masked-LM's decoder borrows the input embedding weight at call time, so that
// weight is stored once, as in HF; no other Perceiver weight is tied. Both files are
// written under temporary names in the folder, then renamed, so a failure leaves the
// folder as it was and a reader never sees a config without its weights' writes done.
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Module, type SafetensorsDType, type Tensor } from '../lib/index.js';
import { writeSafetensorsTemp } from '../lib/io/safetensors.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';

/** Classes whose name is their HF architecture name (the registry's, plus the bare model). */
const SAVABLE: readonly string[] = [
  'PerceiverModel',
  'PerceiverForMaskedLM',
  'PerceiverForImageClassificationFourier',
  'PerceiverForImageClassificationLearned',
  'PerceiverForImageClassificationConvProcessing',
  'PerceiverForOpticalFlow',
  'PerceiverForMultimodalAutoencoding',
];

// Options of this port that HF's PerceiverConfig does not have: written only when a
// model departs from HF's behaviour, so a HF-flavoured save is a plain HF config.
const DEEPMIND_OPTIONS = ['conv_padding', 'classifier_query_residual', 'flow_output_scale', 'attention_mask_style'] as const;

/**
 * The config.json object for `config` as architecture `arch`: every HF
 * PerceiverConfig field, the PretrainedConfig keys it came with (id2label, ...),
 * id2label/label2id derived from num_labels as HF derives them, and the DeepMind
 * options that differ from their defaults.
 */
export function configJson(config: PerceiverConfig, arch: string): Record<string, unknown> {
  const defaults = perceiverConfig({}) as unknown as Record<string, unknown>;
  const src = config as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) if (v !== undefined) out[k] = v;
  for (const k of DEEPMIND_OPTIONS) if (out[k] === defaults[k]) delete out[k];
  // HF stores labels, not num_labels (a property of PretrainedConfig over id2label).
  const n = config.num_labels;
  delete out.num_labels;
  const given = config.id2label;
  if (!given || Object.keys(given).length !== n) {
    out.id2label = Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), `LABEL_${i}`]));
    out.label2id = Object.fromEntries(Array.from({ length: n }, (_, i) => [`LABEL_${i}`, i]));
  } else if (out.label2id === undefined) {
    out.label2id = Object.fromEntries(Object.entries(given).map(([i, name]) => [name, Number(i)]));
  }
  out.architectures = [arch];
  out.model_type = 'perceiver';
  out.torch_dtype = 'float32';
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
}

function tempName(dir: string, file: string): string {
  return join(dir, `.${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Writes `model` to `dir` (created if missing) as config.json + model.safetensors,
 * replacing those two files atomically each.
 */
export async function saveModel(model: Module & { config: PerceiverConfig }, dir: string): Promise<void> {
  if (!(model instanceof Module)) throw new TypeError(`saveModel: argument 'model' must be a Perceiver model, got ${typeof model}`);
  const arch = model.constructor.name;
  if (!SAVABLE.includes(arch)) throw new TypeError(`saveModel: ${arch} has no HF architecture name (savable: ${SAVABLE.join(', ')})`);
  if (model.config === null || typeof model.config !== 'object') throw new TypeError(`saveModel: the ${arch} has no config`);
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`saveModel: argument 'dir' must be a folder path, got ${JSON.stringify(dir)}`);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Error(`saveModel: cannot create the folder '${dir}' (${err instanceof Error ? err.message : String(err)})`);
  }
  const sd = model.stateDict();
  const tensors: Record<string, Tensor> = {};
  const dtypes: Record<string, SafetensorsDType> = {};
  const seen = new Map<Tensor, string>();
  for (const key of Object.keys(sd).sort()) {
    const t = sd[key];
    // A tensor registered under two names is one weight: stored once, as HF stores tied weights.
    if (seen.has(t)) continue;
    seen.set(t, key);
    tensors[key] = t;
    // PyTorch's BatchNorm counts batches in int64; HF's loader expects that dtype back.
    if (key.endsWith('.num_batches_tracked') && t.dtype === 'int32') dtypes[key] = 'I64';
  }

  const configTmp = tempName(dir, 'config.json');
  let weightsTmp: string | undefined;
  try {
    await writeFile(configTmp, JSON.stringify(configJson(model.config, arch), null, 2) + '\n', { flag: 'wx' });
    weightsTmp = await writeSafetensorsTemp(join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' }, dtypes });
    await rename(weightsTmp, join(dir, 'model.safetensors'));
    weightsTmp = undefined;
    await rename(configTmp, join(dir, 'config.json'));
  } catch (err) {
    await unlink(configTmp).catch(() => undefined);
    if (weightsTmp) await unlink(weightsTmp).catch(() => undefined);
    throw new Error(`saveModel: ${dir}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
