// What the task commands (fill-mask, classify, flow) share: the model folder checked
// for the right architecture before any weights are read, and integer flags.
import { loadModel, readModelConfig, type LoadedModel } from '../../models/load.js';
import { UsageError } from './command.js';

/** config.json's architectures[0], or an error naming the folder. */
export function architectureOf(dir: string): { config: Record<string, unknown>; architecture: string } {
  const config = readModelConfig(dir);
  const a = config.architectures;
  if (!Array.isArray(a) || typeof a[0] !== 'string') throw new Error(`'${dir}/config.json' names no architecture (architectures[0])`);
  return { config, architecture: a[0] };
}

/** Loads the folder's model if its architecture is one the command runs; else says which it is and what is needed. */
export async function loadTaskModel(command: string, dir: string, device: string | undefined, accepts: readonly string[]): Promise<{ model: LoadedModel; config: Record<string, unknown>; architecture: string }> {
  const { config, architecture } = architectureOf(dir);
  if (!accepts.includes(architecture))
    throw new Error(`${command} needs a ${accepts.join(' or ')} model, but '${dir}' holds a ${architecture}`);
  return { model: await loadModel(dir, { device }), config, architecture };
}

/** An integer flag in [min, max], else a UsageError. */
export function intFlag(name: string, value: string | undefined, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return dflt;
  const v = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(v) || v < min || v > max)
    throw new UsageError(`${name} must be an integer${max < Number.MAX_SAFE_INTEGER ? ` in [${min}, ${max}]` : ` >= ${min}`}, got '${value}'`);
  return v;
}
