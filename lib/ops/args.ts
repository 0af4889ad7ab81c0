// Checks for plain JS arguments (integers, shapes, options), with messages that
// name the op and the argument.
import { describe } from '../dtype.js';

export function int(op: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v))
    throw new TypeError(`${op}: argument '${name}' must be an integer, got ${describe(v)}`);
  return v;
}

export function num(op: string, name: string, v: unknown): number {
  if (typeof v !== 'number' || Number.isNaN(v))
    throw new TypeError(`${op}: argument '${name}' must be a number, got ${describe(v)}`);
  return v;
}

export function bool(op: string, name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`${op}: option '${name}' must be a boolean, got ${describe(v)}`);
  return v;
}

/**
 * A fresh array of the integers v holds, each read once: the caller's array (its
 * getters, a Proxy) is not read again, neither by the native side, where running JS
 * in the middle of an op could free what it holds, nor after the check.
 */
export function shape(op: string, name: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw new TypeError(`${op}: argument '${name}' must be an array of integers, got ${describe(v)}`);
  const out: number[] = [];
  for (let i = 0, n = v.length; i < n; i++) {
    const d: unknown = v[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d))
      throw new TypeError(`${op}: argument '${name}' must be an array of integers, element ${i} is ${describe(d)}`);
    out.push(d);
  }
  return out;
}

/**
 * An options type's keys, listed once at module load. Typed so that the list cannot
 * miss or invent a key of T: the types are gone at run time, the list is not.
 */
export function optionKeys<T extends object>(keys: { readonly [K in keyof T]-?: true }): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/**
 * Refuses own keys of v that are not among `known`, as torch refuses an unexpected
 * keyword argument: a misspelt option would otherwise be ignored and its default
 * used. Allocates nothing unless it throws (ops check their options on every call).
 */
export function knownKeys(op: string, name: string, v: object, known: readonly string[]): void {
  for (const k in v) if (!known.includes(k) && Object.hasOwn(v, k)) unknownKeys(op, name, v, known);
}

function unknownKeys(op: string, name: string, v: object, known: readonly string[]): never {
  const unknown = Object.keys(v).filter((k) => !known.includes(k));
  const s = unknown.length > 1 ? 's' : '';
  throw new TypeError(`${op}: argument '${name}' has unknown option${s} ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${known.join(', ')})`);
}

/** An options object (or undefined) with only `known` keys; rejects non-objects so typos in call shape surface. */
export function options<T extends object>(op: string, v: T | undefined, known: readonly string[]): Partial<T> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new TypeError(`${op}: argument 'options' must be an object, got ${describe(v)}`);
  knownKeys(op, 'options', v, known);
  return v;
}

/** A number or a pair [h, w] -> [h, w]. */
export function pair(op: string, name: string, v: unknown): [number, number] {
  if (typeof v === 'number') return [int(op, name, v), v];
  if (Array.isArray(v) && v.length === 2) return [int(op, `${name}[0]`, v[0]), int(op, `${name}[1]`, v[1])];
  throw new TypeError(`${op}: option '${name}' must be an integer or [h, w], got ${describe(v)}`);
}
