// saveModel(model, dir): the HF folder layout from_pretrained reads — config.json
// (the full PerceiverConfig as HF's to_json_string writes it: sorted keys,
// architectures, model_type) and model.safetensors (metadata {format: 'pt'}, HF's
// names, keys sorted as HF's writer sorts them). The state dict is HF's 1:1: the
// masked-LM's decoder borrows the input embedding weight at call time, so that
// weight is stored once, as in HF; no other Perceiver weight is tied. With
// maxShardBytes the weights go to HF's sharded layout instead. Every file is written
// under a temporary name in the folder, then renamed, so a failure leaves the folder
// as it was and a reader never sees a config whose weights are half-written.
//
// A save can still be cut short between renames. The order below makes every such
// folder either the old model, or the new weights (under the old config until the new
// one lands), or an error at load: the weights go in first; an entry file of the other
// layout is removed before the new index or config goes in (model.safetensors takes
// precedence over an index); the config goes last. Shards re-saved under the same
// names carry the save's id, as does their index, so that a folder left with shards
// of two saves is refused by loadModel rather than loaded mixed.
import { mkdir, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Module, type SafetensorsDType, type Tensor } from '../lib/index.js';
import { writeSafetensorsTemp } from '../lib/io/safetensors.js';
import { atomicTarget, removeDeadWritersTemps, tempBeside } from '../lib/io/atomic.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
// A cycle (the task models import saveModel); read only inside saveModel, after both loaded.
import { knownKeysArg, objectArg, optionKeys } from './args.js';
import { DTYPE_SIZE, describe, isFloatDType } from '../lib/dtype.js';


// Options of this port that HF's PerceiverConfig does not have: written only when a
// model departs from HF's behaviour, so a HF-flavoured save is a plain HF config.
const EXTENSION_OPTIONS = [
  'conv_padding', 'classifier_query_residual', 'flow_output_scale', 'attention_mask_style',
  'image_channels', 'conv_out_channels', 'image_fourier_bands', 'image_fourier_max_resolution', 'image_mean', 'image_std',
] as const;

/**
 * The config.json object for `config` as architecture `arch`: every HF
 * PerceiverConfig field, the PretrainedConfig keys it came with (id2label, ...),
 * id2label/label2id derived from num_labels as HF derives them, and the DeepMind
 * options that differ from their defaults.
 */
export function configJson(config: PerceiverConfig, arch: string, torchDtype: 'float32' | 'float16' | 'bfloat16' = 'float32'): Record<string, unknown> {
  objectArg('configJson', 'config', config, true);
  if (typeof arch !== 'string' || arch === '') throw new TypeError(`configJson: argument 'arch' must be a model class name, got ${describe(arch)}`);
  // The config's fields are checked as a config.json's are (perceiverConfig's messages name the field).
  perceiverConfig(config as unknown as Partial<PerceiverConfig> & Record<string, unknown>);
  const defaults = perceiverConfig({}) as unknown as Record<string, unknown>;
  const src = config as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) if (v !== undefined) out[k] = v;
  for (const k of EXTENSION_OPTIONS) if (JSON.stringify(out[k]) === JSON.stringify(defaults[k])) delete out[k];
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
  out.torch_dtype = torchDtype;
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
}

const INDEX = 'model.safetensors.index.json';
/** @internal The metadata key of the save id in shards and their index (models/load.ts checks it). */
export const SAVE_ID_KEY = 'save_id';

export interface SaveModelOptions {
  /**
   * Split the weights into shards of at most this many bytes (a tensor larger than
   * that gets a shard of its own), written as HF's sharded layout:
   * model-0000i-of-0000N.safetensors + model.safetensors.index.json. Default: one
   * model.safetensors, as HF writes any Perceiver (HF shards above 5 GB).
   */
  maxShardBytes?: number;
}

const SAVE_OPTIONS = optionKeys<SaveModelOptions>({ maxShardBytes: true });

/**
 * Writes `model` to `dir` (created if missing) as config.json + model.safetensors
 * (or shards + index). Every file is written under a temporary name first, then
 * each is renamed into place; a weights file of the other layout left from an
 * earlier save is removed, since it would take precedence (model.safetensors) or
 * go stale (an index).
 */
export async function saveModel(model: Module & { config: PerceiverConfig }, dir: string, opts: SaveModelOptions = {}): Promise<void> {
  if (!(model instanceof Module)) throw new TypeError(`saveModel: argument 'model' must be a Perceiver model, got ${typeof model}`);
  const arch = model.constructor.name;
  // Loaded here, not at the top: every task model's module imports this one (for its
  // save()), and the registry imports every task model, so a static import would make
  // a task model's module unloadable on its own.
  const { ARCHITECTURES } = await import('./registry.js');
  // Classes whose name is their HF architecture name: the registry's, and the bare model.
  const savable = ['PerceiverModel', ...Object.keys(ARCHITECTURES)];
  if (!savable.includes(arch)) throw new TypeError(`saveModel: ${arch} has no HF architecture name (savable: ${savable.join(', ')})`);
  if (model.config === null || typeof model.config !== 'object') throw new TypeError(`saveModel: the ${arch} has no config`);
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`saveModel: argument 'dir' must be a folder path, got ${JSON.stringify(dir)}`);
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new TypeError(`saveModel: argument 'opts' must be an object, got ${JSON.stringify(opts)}`);
  knownKeysArg('saveModel', 'opts', opts, SAVE_OPTIONS);
  const maxShard = opts.maxShardBytes;
  if (maxShard !== undefined && !(Number.isSafeInteger(maxShard) && maxShard > 0))
    throw new TypeError(`saveModel: option 'maxShardBytes' must be a positive integer, got ${JSON.stringify(maxShard)}`);
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
  const bytesOf = (k: string) => tensors[k].size * (dtypes[k] === 'I64' ? 8 : DTYPE_SIZE[tensors[k].dtype]);
  // HF's torch_dtype names the floating weights' dtype (what from_pretrained's
  // torch_dtype="auto" loads them in): a model saved in bf16 is not a float32 one.
  const floating = [...new Set(Object.values(tensors).map((t) => t.dtype).filter(isFloatDType))];
  const torchDtype = floating.length === 1 ? floating[0] : 'float32';
  const keys = Object.keys(tensors);
  const total = keys.reduce((a, k) => a + bytesOf(k), 0);

  // Greedy in sorted key order, as HF's shard_checkpoint fills shards.
  const groups: string[][] = [];
  if (maxShard === undefined || total <= maxShard) groups.push(keys);
  else {
    let cur: string[] = [];
    let size = 0;
    for (const k of keys) {
      if (cur.length && size + bytesOf(k) > maxShard) {
        groups.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(k);
      size += bytesOf(k);
    }
    if (cur.length) groups.push(cur);
  }
  const sharded = groups.length > 1;
  const pad = (i: number) => String(i).padStart(5, '0');
  const files = sharded ? groups.map((_, i) => `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`) : ['model.safetensors'];

  const pending: [string, string][] = []; // [temporary, final], not yet renamed
  const saveId = randomBytes(8).toString('hex');
  try {
    const configFinal = atomicTarget(join(dir, 'config.json'));
    removeDeadWritersTemps(configFinal);
    const configTmp = tempBeside(configFinal);
    await writeFile(configTmp, JSON.stringify(configJson(model.config, arch, torchDtype), null, 2) + '\n', { flag: 'wx' });
    pending.push([configTmp, configFinal]);
    for (let i = 0; i < groups.length; i++) {
      const part = Object.fromEntries(groups[i].map((k) => [k, tensors[k]]));
      const partDtypes = Object.fromEntries(groups[i].filter((k) => Object.hasOwn(dtypes, k)).map((k) => [k, dtypes[k]]));
      const metadata: Record<string, string> = sharded ? { format: 'pt', [SAVE_ID_KEY]: saveId } : { format: 'pt' };
      const final = atomicTarget(join(dir, files[i]));
      const tmp = await writeSafetensorsTemp(final, part, { metadata, dtypes: partDtypes });
      pending.push([tmp, final]);
    }
    if (sharded) {
      const weightMap = Object.fromEntries(groups.flatMap((g, i) => g.map((k) => [k, files[i]])));
      const indexFinal = atomicTarget(join(dir, INDEX));
      removeDeadWritersTemps(indexFinal);
      const indexTmp = tempBeside(indexFinal);
      const index = { metadata: { total_size: total, [SAVE_ID_KEY]: saveId }, weight_map: weightMap };
      await writeFile(indexTmp, JSON.stringify(index, null, 2) + '\n', { flag: 'wx' });
      pending.push([indexTmp, indexFinal]);
    }
    const [config, ...weights] = pending;
    const index = sharded ? weights.pop()! : null;
    const put = async ([tmp, final]: [string, string]) => {
      await rename(tmp, final);
      pending.splice(pending.findIndex(([t]) => t === tmp), 1);
    };
    for (const w of weights) await put(w);
    if (index) {
      // Gone before the index lands, or it would shadow the new shards; a failure here fails the save.
      await unlink(join(dir, 'model.safetensors')).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await put(index);
    }
    await put(config);
    // What an earlier save of the other layout (or another shard count) left: an index
    // that model.safetensors now shadows, and shards this save did not write, as HF's
    // save_pretrained removes them.
    if (!sharded) await unlink(join(dir, INDEX)).catch(() => undefined);
    for (const f of await readdir(dir))
      if (/^model-\d{5}-of-\d{5}\.safetensors$/.test(f) && !files.includes(f)) await unlink(join(dir, f)).catch(() => undefined);
  } catch (err) {
    for (const [tmp] of pending) await unlink(tmp).catch(() => undefined);
    throw new Error(`saveModel: ${dir}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
