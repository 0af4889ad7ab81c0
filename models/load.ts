// loadModel(dir): a HuggingFace model folder as the task model config.json's
// architectures[0] names, with its weights loaded strictly, as from_pretrained
// would. The weights may be model.safetensors, a sharded model.safetensors.index.json,
// pytorch_model.bin or a sharded pytorch_model.bin.index.json (HF's order of
// preference). Every layout becomes TensorRecords, which are checked against the
// model (names and shapes) before a byte is read, then loaded natively. Every failure
// names the folder and the file, because the CLI shows these messages to users as
// they are.
import { accessSync, closeSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { systemReason } from '../lib/io/atomic.js';
import { isAbsolute, join, normalize, sep } from 'node:path';
import {
  loadRecords,
  readSafetensorsHeader,
  resolveDevice,
  safetensorsRecords,
  type LoadProgress,
  type Module,
  type Tensor,
  type TensorRecord,
  withoutInit,
} from '../lib/index.js';
import { perceiverConfig } from './config.js';
import { readTorchCheckpoint } from '../lib/io/torch.js';
import { openRegularFileSync } from '../lib/io/records.js';
import { checkJsonKeys } from '../lib/io/safetensors.js';
import { SAVE_ID_KEY } from './save.js';
import { createModel, type ArchitectureName, ARCHITECTURES } from './registry.js';
import { knownKeysArg, objectArg, optionKeys } from './args.js';
import { describe } from '../lib/dtype.js';

export interface LoadModelOptions {
  /** Where the weights live; default per resolveDevice(). */
  device?: string;
  /**
   * The weights' dtype, whatever the checkpoint stores (default 'float32', as HF's
   * from_pretrained). A 'bfloat16' or 'float16' model computes in that dtype with
   * float32 accumulation: on CUDA natively, on the CPU converting per op.
   */
  dtype?: 'float32' | 'float16' | 'bfloat16';
  /** Called as each tensor lands: bytes done/total and the tensor's name. */
  onProgress?: (p: LoadProgress) => void;
  /** Aborts the load between tensors; the promise rejects with signal.reason. */
  signal?: AbortSignal;
  /** Receives warnings (unknown config.json fields); default process.emitWarning. */
  onWarning?: (message: string) => void;
}

const LOAD_OPTIONS = optionKeys<LoadModelOptions>({ device: true, dtype: true, onProgress: true, signal: true, onWarning: true });

export type LoadedModel = InstanceType<(typeof ARCHITECTURES)[ArchitectureName]> & Module;

// A config.json is a few KB (a few hundred with 21k labels), an index a few MB at
// most; the caps keep a wrong file under those names from being read whole.
const MAX_CONFIG_BYTES = 16 << 20;
const MAX_INDEX_BYTES = 64 << 20;

/** A small text file, read whole: a FIFO, folder or device is refused, not waited on. */
function readSmallFile(path: string, limit: number): string {
  let opened: ReturnType<typeof openRegularFileSync>;
  try {
    opened = openRegularFileSync(path);
  } catch (err) {
    throw new Error(`loadModel: ${path}: cannot read (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    if (opened.stat.size > BigInt(limit)) throw new RangeError(`loadModel: ${path}: ${opened.stat.size} bytes, more than the ${limit} such a file may have`);
    return readFileSync(opened.fd, 'utf8');
  } finally {
    closeSync(opened.fd);
  }
}

/** Reads and parses dir/config.json. */
export function readModelConfig(dir: string): Record<string, unknown> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`loadModel: argument 'dir' must be a folder path, got ${describe(dir)}`);
  if (!existsSync(dir)) throw new Error(`loadModel: model folder '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new Error(`loadModel: '${dir}' is not a folder (expected a HF model folder with config.json and model.safetensors)`);
  const path = join(dir, 'config.json');
  // existsSync says false for a file it may not look at: that is not a missing file.
  try {
    accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    throw new Error(`loadModel: cannot read the model folder '${dir}': ${systemReason(err)}`);
  }
  if (!existsSync(path)) throw new Error(`loadModel: '${path}' is missing (a HF model folder has config.json and model.safetensors)`);
  const text = readSmallFile(path, MAX_CONFIG_BYTES);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`loadModel: '${path}' is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new TypeError(`loadModel: '${path}' must hold a JSON object`);
  return json as Record<string, unknown>;
}

// Keys every HF PretrainedConfig may write (configuration_utils.py), which the
// Perceiver never reads: present in real config.json files, so they are not
// "unknown" and draw no warning.
const PRETRAINED_CONFIG_KEYS: ReadonlySet<string> = new Set([
  '_name_or_path', '_commit_hash', '_attn_implementation', '_attn_implementation_autoset', 'attn_implementation',
  'transformers_version', 'model_type', 'architectures', 'torch_dtype', 'dtype', 'use_bfloat16',
  'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript', 'tf_legacy_loss', 'pruned_heads',
  'tie_word_embeddings', 'chunk_size_feed_forward', 'is_encoder_decoder', 'is_decoder', 'cross_attention_hidden_size',
  'add_cross_attention', 'tie_encoder_decoder', 'max_length', 'min_length', 'do_sample', 'early_stopping', 'num_beams',
  'num_beam_groups', 'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p', 'repetition_penalty',
  'length_penalty', 'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences',
  'output_scores', 'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id', 'remove_invalid_values',
  'exponential_decay_length_penalty', 'suppress_tokens', 'begin_suppress_tokens', 'finetuning_task', 'id2label',
  'label2id', 'num_labels', 'tokenizer_class', 'prefix', 'bos_token_id', 'pad_token_id', 'eos_token_id', 'sep_token_id',
  'decoder_start_token_id', 'task_specific_params', 'problem_type', 'use_cache', 'gradient_checkpointing',
]);

/** config.json keys that neither PerceiverConfig nor HF's PretrainedConfig defines. */
export function unknownConfigKeys(json: Record<string, unknown>): string[] {
  objectArg('unknownConfigKeys', 'json', json, true);
  const known = new Set(Object.keys(perceiverConfig({})));
  return Object.keys(json).filter((k) => !known.has(k) && !PRETRAINED_CONFIG_KEYS.has(k));
}

/** The weight files of a folder, in HF's order of preference. */
export type WeightsLayout = 'model.safetensors' | 'model.safetensors.index.json' | 'pytorch_model.bin' | 'pytorch_model.bin.index.json';
const LAYOUTS: readonly WeightsLayout[] = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'];

function weightsLayout(dir: string): WeightsLayout {
  const found = LAYOUTS.find((f) => existsSync(join(dir, f)));
  if (!found) throw new Error(`loadModel: '${join(dir, LAYOUTS[0])}' is missing, and so are the other weights layouts (${LAYOUTS.slice(1).join(', ')})`);
  return found;
}


function torchRecords(path: string): Promise<TensorRecord[]> {
  return readTorchCheckpoint(path);
}

/** A shard's records, and the save id its metadata carries (saveModel's shards do). */
interface Shard {
  records: TensorRecord[];
  saveId?: unknown;
}

/**
 * HF's sharded index: {metadata?, weight_map: {tensor name: shard file name}}. Each
 * shard is read with `readShard`; every tensor must be in the shard the map names,
 * no tensor may be in two shards, and a shard may hold nothing the map does not list.
 * Where the index or a shard carries a save id, each shard's must be the index's.
 */
async function shardedRecords(dir: string, index: string, readShard: (path: string) => Promise<Shard>): Promise<TensorRecord[]> {
  const path = join(dir, index);
  const text = readSmallFile(path, MAX_INDEX_BYTES);
  // Tensor names are its keys: a repeated one would be dropped by JSON.parse.
  checkJsonKeys(text, (problem) => {
    throw new Error(`loadModel: ${path}: ${problem}`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`loadModel: ${path}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map))
    throw new Error(`loadModel: ${path}: must be a JSON object with a 'weight_map' object (tensor name -> shard file)`);
  const meta = (json as { metadata?: unknown }).metadata;
  const saveId = meta !== null && typeof meta === 'object' && Object.hasOwn(meta, SAVE_ID_KEY) ? (meta as Record<string, unknown>)[SAVE_ID_KEY] : undefined;
  const shards = new Map<string, string[]>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '')
      throw new Error(`loadModel: ${path}: weight_map['${name}'] must be a shard file name, got ${JSON.stringify(file)}`);
    // Shards live in the folder: a path that leaves it is refused, not followed.
    const norm = normalize(file);
    if (isAbsolute(file) || norm.startsWith('..' + sep) || norm === '..')
      throw new Error(`loadModel: ${path}: weight_map['${name}'] names '${file}', which is outside the model folder`);
    let names = shards.get(norm);
    if (!names) shards.set(norm, (names = []));
    names.push(name);
  }
  const records: TensorRecord[] = [];
  const shardOf = new Map<string, string>();
  for (const [file, names] of shards) {
    const shardPath = join(dir, file);
    if (!existsSync(shardPath)) throw new Error(`loadModel: ${path}: shard '${file}' (holding '${names[0]}'${names.length > 1 ? ` and ${names.length - 1} more` : ''}) is missing`);
    const listed = new Set(names);
    const { records: recs, saveId: shardSaveId } = await readShard(shardPath);
    if (shardSaveId !== saveId)
      throw new Error(
        `loadModel: ${path}: shard '${file}' ${shardSaveId === undefined ? 'carries no save id' : `is from save ${JSON.stringify(shardSaveId)}`}, ` +
          `the index ${saveId === undefined ? 'names none' : `from save ${JSON.stringify(saveId)}`}: files of two saves are mixed (a save was interrupted?); save the model again`,
      );
    for (const r of recs) {
      const other = shardOf.get(r.name);
      if (other !== undefined) throw new Error(`loadModel: ${path}: tensor '${r.name}' is in two shards, '${other}' and '${file}'`);
      shardOf.set(r.name, file);
      if (!listed.has(r.name)) throw new Error(`loadModel: ${path}: shard '${file}' holds '${r.name}', which weight_map does not assign to it`);
      records.push(r);
    }
    const held = new Set(recs.map((r) => r.name));
    const absent = names.filter((n) => !held.has(n));
    if (absent.length) throw new Error(`loadModel: ${path}: weight_map puts '${absent[0]}'${absent.length > 1 ? ` (and ${absent.length - 1} more)` : ''} in shard '${file}', which does not hold it`);
  }
  return records;
}

async function safetensorsFile(path: string): Promise<TensorRecord[]> {
  return safetensorsRecords(path, await readSafetensorsHeader(path));
}

async function safetensorsShard(path: string): Promise<Shard> {
  const header = await readSafetensorsHeader(path);
  return { records: safetensorsRecords(path, header), saveId: Object.hasOwn(header.metadata, SAVE_ID_KEY) ? header.metadata[SAVE_ID_KEY] : undefined };
}

/** The weight records of a model folder, whatever its layout (not yet read). */
export async function readModelRecords(dir: string): Promise<{ path: string; records: TensorRecord[] }> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`readModelRecords: argument 'dir' must be a folder path, got ${describe(dir)}`);
  const layout = weightsLayout(dir);
  const path = join(dir, layout);
  switch (layout) {
    case 'model.safetensors':
      return { path, records: await safetensorsFile(path) };
    case 'model.safetensors.index.json':
      return { path, records: await shardedRecords(dir, layout, safetensorsShard) };
    case 'pytorch_model.bin':
      return { path, records: await torchRecords(path) };
    case 'pytorch_model.bin.index.json':
      return { path, records: await shardedRecords(dir, layout, async (p) => ({ records: await torchRecords(p) })) };
  }
}

const MAX_LISTED = 10;
function list(items: string[]): string {
  return items.length > MAX_LISTED ? `${items.slice(0, MAX_LISTED).join(', ')}, ... (${items.length - MAX_LISTED} more)` : items.join(', ');
}

/** Missing, unexpected and mis-shaped names, found before any byte is read. */
export function checkAgainstModel(model: Module, records: readonly TensorRecord[]): string[] {
  const want = model.stateDict();
  const problems: string[] = [];
  const have = new Set(records.map((r) => r.name));
  const optional = model.optionalStateKeys();
  const missing = Object.keys(want).filter((k) => !have.has(k) && !optional.has(k));
  // Own keys only: a tensor named 'constructor' or '__proto__' is a name like any other.
  const unexpected = records.filter((r) => !Object.hasOwn(want, r.name)).map((r) => r.name);
  const misShaped = records
    .filter((r) => Object.hasOwn(want, r.name) && (r.shape.length !== want[r.name].shape.length || r.shape.some((d, i) => d !== want[r.name].shape[i])))
    .map((r) => `${r.name} (checkpoint [${r.shape.join(', ')}], model [${want[r.name].shape.join(', ')}])`);
  // Worded as loadStateDict words it, so one message shape covers both checks.
  if (misShaped.length) problems.push(`mis-shaped keys: ${list(misShaped)}`);
  if (missing.length) problems.push(`missing keys: ${list(missing)}`);
  if (unexpected.length) problems.push(`unexpected keys: ${list(unexpected)}`);
  return problems;
}

/**
 * The model of class config.architectures[0] with the folder's weights loaded
 * strictly: missing, unexpected or mis-shaped tensors are an error listing them,
 * raised before any weight byte is read.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  opts = objectArg('loadModel', 'opts', opts);
  knownKeysArg('loadModel', 'opts', opts, LOAD_OPTIONS);
  // First, so an unavailable device is reported as such rather than as a config problem.
  const device = resolveDevice('loadModel', opts.device);
  const dtype = opts.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16') throw new TypeError(`loadModel: option 'dtype' must be 'float32', 'float16' or 'bfloat16', got ${JSON.stringify(dtype)}`);
  if (opts.onWarning !== undefined && typeof opts.onWarning !== 'function')
    throw new TypeError(`loadModel: option 'onWarning' must be a function, got ${typeof opts.onWarning}`);
  const config = readModelConfig(dir);
  const configPath = join(dir, 'config.json');
  if (config.model_type !== undefined && config.model_type !== 'perceiver')
    throw new Error(`loadModel: ${configPath}: model_type is ${JSON.stringify(config.model_type)}, not "perceiver"`);
  const unknown = unknownConfigKeys(config);
  if (unknown.length) {
    const msg = `loadModel: ${configPath}: ignoring unknown config fields ${unknown.map((k) => `'${k}'`).join(', ')}`;
    if (opts.onWarning) opts.onWarning(msg);
    else process.emitWarning(msg, { code: 'PERCEIVER_UNKNOWN_CONFIG_FIELD' });
  }
  let model: LoadedModel;
  try {
    // Every parameter is replaced below (the load is strict), so none is drawn: the
    // placeholders hold no memory until then, and are already in the weights' dtype.
    model = withoutInit(() => createModel(config, { device }), { dtype }) as LoadedModel;
    // Casts what is left (buffers made otherwise), so the 16-bit weights land as the model's own tensors.
    if (dtype !== 'float32') model.to(dtype);
  } catch (err) {
    throw new Error(`loadModel: ${configPath}: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    const { path, records } = await readModelRecords(dir);
    const problems = checkAgainstModel(model, records);
    if (problems.length)
      throw new Error(`loadModel: ${path}: loadStateDict (${model.constructor.name}): ${problems.join('; ')} (checked against the model ${configPath} describes, before reading any weight)`);
    const sd: Record<string, Tensor> = await loadRecords(records, { device, dtype, onProgress: opts.onProgress, signal: opts.signal, op: 'loadModel' });
    try {
      // Tensors just read, which nothing else holds: the model takes them, without a
      // second copy of the weights in memory.
      model.loadStateDict(sd, { assign: true });
    } finally {
      // The model keeps its own views of what it loaded.
      for (const t of Object.values(sd)) t.dispose();
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}
