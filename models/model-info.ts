// What a HF model folder holds, without loading its weights: the architecture, the
// parameter count (total and per top-level module) and dtypes from the weights'
// headers (model.safetensors, shards, pytorch_model.bin), file sizes, the config values that define the network, and its FLOPs.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { withoutInit } from '../lib/index.js';
import { perceiverConfig, type PerceiverConfig } from './config.js';
import { countFlops, type FlopCount } from './flops.js';
import { checkAgainstModel, readModelConfig, readModelRecords } from './load.js';
import { ARCHITECTURES, createModel } from './registry.js';

export interface ModelInfo {
  dir: string;
  architecture: string;
  /** Every file in the folder (not recursive) with its size in bytes. */
  files: { name: string; bytes: number }[];
  /** Learned parameters (BatchNorm running statistics excluded, as torch's parameters()). */
  parameters: number;
  /** Values of stored buffers (BatchNorm running_mean / running_var / num_batches_tracked). */
  bufferValues: number;
  /** Parameters per top-level module: 'perceiver.encoder', 'perceiver.decoder', 'embedding_decoder', ... */
  modules: { name: string; parameters: number; tensors: number }[];
  /** Stored tensors and values per safetensors dtype ('F32', 'BF16', ...). */
  dtypes: { dtype: string; tensors: number; values: number }[];
  /** The config values that shape the network (HF defaults filled in). */
  config: Record<string, unknown>;
  /** null where the architecture is not counted (the reason in flopsError). */
  flops: FlopCount | null;
  flopsError?: string;
}

const BUFFER = /\.(running_mean|running_var|num_batches_tracked)$/;

const KEYS: (keyof PerceiverConfig)[] = [
  'num_latents', 'd_latents', 'd_model', 'num_blocks', 'num_self_attends_per_block', 'num_self_attention_heads', 'num_cross_attention_heads',
  'qk_channels', 'v_channels', 'cross_attention_shape_for_attention', 'self_attention_widening_factor', 'cross_attention_widening_factor', 'hidden_act',
];
const TASK_KEYS: Record<string, (keyof PerceiverConfig)[]> = {
  PerceiverForMaskedLM: ['vocab_size', 'max_position_embeddings'],
  PerceiverForImageClassificationFourier: ['image_size', 'num_labels'],
  PerceiverForImageClassificationLearned: ['image_size', 'num_labels'],
  PerceiverForImageClassificationConvProcessing: ['image_size', 'num_labels', 'conv_padding'],
  PerceiverForOpticalFlow: ['train_size', 'flow_output_scale'],
  PerceiverForMultimodalAutoencoding: ['num_frames', 'image_size', 'audio_samples_per_frame', 'samples_per_patch', 'output_shape', 'output_num_channels', 'num_labels'],
};

/** A top-level module of a parameter name: the first two parts under 'perceiver.', else the first. */
function moduleOf(name: string): string {
  const parts = name.split('.');
  return parts[0] === 'perceiver' && parts.length > 2 ? `${parts[0]}.${parts[1]}` : parts.length > 1 ? parts[0] : '(root)';
}

/** Describes a HF model folder (config.json + weights in any layout loadModel reads) from the config and the weights' headers. */
export async function modelInfo(dir: string): Promise<ModelInfo> {
  const json = readModelConfig(dir);
  const a = json.architectures;
  if (!Array.isArray(a) || typeof a[0] !== 'string') throw new Error(`modelInfo: '${join(dir, 'config.json')}' names no architecture (architectures[0])`);
  const architecture = a[0];
  // What loadModel would refuse is refused here too, so info never vouches for a
  // folder that run, classify, ... cannot load: another model_type, an unsupported
  // class, weights (in any of HF's layouts) that do not fit the config.
  if (json.model_type !== undefined && json.model_type !== 'perceiver')
    throw new Error(`modelInfo: ${join(dir, 'config.json')}: model_type is ${JSON.stringify(json.model_type)}, not "perceiver"`);
  if (!Object.hasOwn(ARCHITECTURES, architecture))
    throw new Error(`modelInfo: ${join(dir, 'config.json')}: architecture '${architecture}' is not supported (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  const { path, records } = await readModelRecords(dir);
  let problems: string[];
  try {
    const model = withoutInit(() => createModel(json, { device: 'cpu' }));
    try {
      problems = checkAgainstModel(model, records);
    } finally {
      model.dispose();
    }
  } catch (err) {
    throw new Error(`modelInfo: ${join(dir, 'config.json')}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (problems.length) throw new Error(`modelInfo: ${path}: the weights do not fit the config (${architecture}): ${problems.join('; ')}`);
  const entries: [string, { dtype: string; shape: readonly number[] }][] = records.map((r) => [r.name, r]);
  let parameters = 0;
  let bufferValues = 0;
  const modules = new Map<string, { parameters: number; tensors: number }>();
  const dtypes = new Map<string, { tensors: number; values: number }>();
  for (const [name, e] of entries) {
    const n = e.shape.reduce((x, y) => x * y, 1);
    const d = dtypes.get(e.dtype) ?? { tensors: 0, values: 0 };
    d.tensors++;
    d.values += n;
    dtypes.set(e.dtype, d);
    if (BUFFER.test(name)) {
      bufferValues += n;
      continue;
    }
    parameters += n;
    const m = modules.get(moduleOf(name)) ?? { parameters: 0, tensors: 0 };
    m.parameters += n;
    m.tensors++;
    modules.set(moduleOf(name), m);
  }
  const files = readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort()
    .map((name) => ({ name, bytes: statSync(join(dir, name)).size }));
  const c = perceiverConfig(json as Partial<PerceiverConfig> & Record<string, unknown>);
  const config: Record<string, unknown> = {};
  for (const k of [...KEYS, ...(TASK_KEYS[architecture] ?? [])]) config[k] = c[k];
  let flops: FlopCount | null = null;
  let flopsError: string | undefined;
  try {
    flops = countFlops(json);
  } catch (err) {
    flopsError = err instanceof Error ? err.message : String(err);
  }
  return {
    dir,
    architecture,
    files,
    parameters,
    bufferValues,
    modules: [...modules].map(([name, m]) => ({ name, ...m })),
    dtypes: [...dtypes].map(([dtype, d]) => ({ dtype, ...d })),
    config,
    flops,
    ...(flopsError === undefined ? {} : { flopsError }),
  };
}
