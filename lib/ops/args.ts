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

export function shape(op: string, name: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw new TypeError(`${op}: argument '${name}' must be an array of integers, got ${describe(v)}`);
  for (let i = 0; i < v.length; i++) {
    const d = v[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d))
      throw new TypeError(`${op}: argument '${name}' must be an array of integers, element ${i} is ${describe(d)}`);
  }
  return v as number[];
}

/** An options object (or undefined); rejects non-objects so typos in call shape surface. */
export function options<T extends object>(op: string, v: T | undefined): Partial<T> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new TypeError(`${op}: argument 'options' must be an object, got ${describe(v)}`);
  return v;
}

/** A number or a pair [h, w] -> [h, w]. */
export function pair(op: string, name: string, v: unknown): [number, number] {
  if (typeof v === 'number') return [int(op, name, v), v];
  if (Array.isArray(v) && v.length === 2) return [int(op, `${name}[0]`, v[0]), int(op, `${name}[1]`, v[1])];
  throw new TypeError(`${op}: option '${name}' must be an integer or [h, w], got ${describe(v)}`);
}
