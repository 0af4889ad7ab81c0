// Argument checks for the model layer's public entry points (model and module
// constructors, forward methods, processors and helpers), with messages in the engine
// ops' form: "<op>: argument '<name>' must be ..., got ...". They run once per call on
// a handful of values, never per element.
import { Tensor, type DTypeName, type InitOptions } from '../lib/index.js';
import { hostInt32Range } from '../lib/creation.js';
import { describe } from '../lib/dtype.js';
import { optionKeys } from '../lib/ops/args.js';

export interface TensorArgOptions {
  /** The ranks accepted. */
  rank?: number | readonly number[];
  /** 'float' (float32, bfloat16, float16), 'int' (int32, uint8), or a list of dtypes. */
  dtype?: 'float' | 'int' | readonly DTypeName[];
  /** How the expected shape reads in the message, e.g. '[B, N]'. */
  shape?: string;
}

const FLOAT: readonly DTypeName[] = ['float32', 'bfloat16', 'float16'];
const INT: readonly DTypeName[] = ['int32', 'uint8'];

/** v as a live Tensor of the rank and dtype asked for; a TypeError or RangeError naming op and name otherwise. */
export function tensorArg(op: string, name: string, v: unknown, o: TensorArgOptions = {}): Tensor {
  const shape = o.shape ? ` ${o.shape}` : '';
  if (!(v instanceof Tensor)) throw new TypeError(`${op}: argument '${name}' must be a Tensor${shape}, got ${describe(v)}`);
  if (v.disposed) throw new Error(`${op}: argument '${name}' is a disposed Tensor`);
  if (o.rank !== undefined) {
    const ranks = typeof o.rank === 'number' ? [o.rank] : o.rank;
    if (!ranks.includes(v.rank))
      throw new RangeError(`${op}: argument '${name}' must have rank ${ranks.join(' or ')}${shape}, got shape [${v.shape.join(', ')}]`);
  }
  if (o.dtype !== undefined) {
    const dtypes = o.dtype === 'float' ? FLOAT : o.dtype === 'int' ? INT : o.dtype;
    if (!dtypes.includes(v.dtype)) throw new TypeError(`${op}: argument '${name}' must be ${dtypes.join(' or ')}, got ${v.dtype}`);
  }
  return v;
}

/** Like tensorArg, where undefined and null mean "none". */
export function optionalTensorArg(op: string, name: string, v: unknown, o: TensorArgOptions = {}): Tensor | null {
  return v === undefined || v === null ? null : tensorArg(op, name, v, o);
}

/** An options (or config) object; undefined gives {} unless required. Arrays and other non-objects are refused. */
export function objectArg<T extends object>(op: string, name: string, v: T | undefined | null, required = false): T {
  if (v === undefined && !required) return {} as T;
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Tensor)
    throw new TypeError(`${op}: argument '${name}' must be an object, got ${describe(v)}`);
  return v;
}

/** " >= min", " <= max", " in [min, max]" or nothing, for the messages below. */
function rangeText(min: number, max: number): string {
  if (min === -Infinity) return max === Infinity ? '' : ` <= ${max}`;
  return max === Infinity ? ` >= ${min}` : ` in [${min}, ${max}]`;
}

/** An integer in [min, max]. */
export function intArg(op: string, name: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    const err = typeof v === 'number' ? RangeError : TypeError;
    throw new err(`${op}: argument '${name}' must be an integer${rangeText(min, max)}, got ${describe(v)}`);
  }
  return v;
}

/** A finite number in [min, max]. */
export function numberArg(op: string, name: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    const err = typeof v === 'number' ? RangeError : TypeError;
    throw new err(`${op}: argument '${name}' must be a finite number${rangeText(min, max)}, got ${describe(v)}`);
  }
  return v;
}

/** A boolean. */
export function boolArg(op: string, name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`${op}: argument '${name}' must be a boolean, got ${describe(v)}`);
  return v;
}

/** An array of integers in [min, max] (at least minLength of them). */
export function intListArg(op: string, name: string, v: unknown, min = -Infinity, max = Infinity, minLength = 0): number[] {
  if (!Array.isArray(v) || v.length < minLength)
    throw new TypeError(`${op}: argument '${name}' must be an array of ${minLength > 0 ? `at least ${minLength} ` : ''}integers, got ${describe(v)}`);
  v.forEach((d, i) => intArg(op, `${name}[${i}]`, d, min, max));
  return v as number[];
}

/**
 * A PerceiverConfig given to a block's constructor: an object whose named fields are
 * positive integers (the ones the block reads). perceiverConfig() checks a whole
 * config; this keeps a block given a hand-made or foreign object from failing inside.
 */
export function configArg<C extends object>(op: string, config: C, positiveInts: readonly (keyof C & string)[] = []): C {
  objectArg(op, 'config', config, true);
  for (const k of positiveInts) intArg(op, `config.${k}`, config[k], 1);
  return config;
}

/** v is one of the strings allowed (undefined passes: the caller applies its default). */
export function oneOfArg(op: string, name: string, v: unknown, allowed: readonly string[]): void {
  if (v !== undefined && !allowed.includes(v as string))
    throw new TypeError(`${op}: argument '${name}' must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${describe(v)}`);
}

/** A device name, when given. */
export function deviceArg(op: string, name: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'string') throw new TypeError(`${op}: argument '${name}' must be a string, got ${describe(v)}`);
}

// One check of option names for lib and models alike: lib's (the message, and a
// list the compiler holds to its options type).
export { optionKeys, knownKeys as knownKeysArg } from '../lib/ops/args.js';

/** The options of a layer that only initialises weights (lib's InitOptions). */
export const INIT_OPTIONS = optionKeys<InitOptions>({ initStd: true, device: true });

/**
 * Token ids the host has seen (a tensor made from host data, not written since) must
 * be in [0, vocab): said here, naming the model's argument, where the embedding would
 * fail later, on data(), with its own op's name. Ids computed on the device are
 * checked by the embedding itself.
 */
export function tokenIdsArg(op: string, name: string, ids: Tensor, vocab: number): void {
  const range = hostInt32Range(ids);
  if (range !== null && (range[0] < 0 || range[1] >= vocab))
    throw new RangeError(`${op}: argument '${name}' must hold token ids in [0, ${vocab}), got ids from ${range[0]} to ${range[1]}`);
}
