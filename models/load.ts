// loadModel(dir): a HuggingFace model folder (config.json + model.safetensors) as the
// task model config.architectures[0] names, with its weights loaded strictly, as
// from_pretrained would. Every failure names the folder and the file, because the
// CLI shows these messages to users as they are.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadSafetensors, resolveDevice, type Module } from '../lib/index.js';
import { createModel, type ArchitectureName, ARCHITECTURES } from './registry.js';

export interface LoadModelOptions {
  /** Where the weights live; default per resolveDevice(). */
  device?: string;
}

export type LoadedModel = InstanceType<(typeof ARCHITECTURES)[ArchitectureName]> & Module;

/** Reads and parses dir/config.json. */
export function readModelConfig(dir: string): Record<string, unknown> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError(`loadModel: argument 'dir' must be a folder path, got ${JSON.stringify(dir)}`);
  if (!existsSync(dir)) throw new Error(`loadModel: model folder '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new Error(`loadModel: '${dir}' is not a folder (expected a HF model folder with config.json and model.safetensors)`);
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`loadModel: '${path}' is missing (a HF model folder has config.json and model.safetensors)`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`loadModel: '${path}' is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new TypeError(`loadModel: '${path}' must hold a JSON object`);
  return json as Record<string, unknown>;
}

/** Picks the weights file; only model.safetensors is read for now. */
function weightsPath(dir: string): string {
  const st = join(dir, 'model.safetensors');
  if (existsSync(st)) return st;
  // Name what is there, so a user with another layout knows it is unsupported, not absent.
  const other = ['model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'].filter((f) => existsSync(join(dir, f)));
  const found = other.length ? ` (found ${other.join(', ')}, which is not supported yet: convert it to model.safetensors)` : '';
  throw new Error(`loadModel: '${st}' is missing${found}`);
}

/**
 * The model of class config.architectures[0] with dir/model.safetensors loaded
 * strictly (missing, unexpected or mis-shaped keys are an error listing them).
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  // First, so an unavailable device is reported as such rather than as a config problem.
  const device = resolveDevice('loadModel', opts.device);
  const config = readModelConfig(dir);
  const weights = weightsPath(dir);
  let model: LoadedModel;
  try {
    model = createModel(config, { device }) as LoadedModel;
  } catch (err) {
    throw new Error(`loadModel: ${join(dir, 'config.json')}: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    const sd = await loadSafetensors(weights, { device });
    try {
      model.loadStateDict(sd);
    } finally {
      // The model keeps its own views of what it loaded.
      for (const t of Object.values(sd)) t.dispose();
    }
  } catch (err) {
    model.dispose();
    throw new Error(`loadModel: ${weights}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return model;
}
