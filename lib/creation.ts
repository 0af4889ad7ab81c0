// Creating tensors from JS data and from nothing (zeros, ones, arange, random).
import { native } from './native.js';
import { checkDType, describe, type DTypeName } from './dtype.js';
import { resolveDevice } from './device.js';
import { Tensor, wrap } from './tensor.js';
import { int, num, optionKeys, options, shape as shapeArg } from './ops/args.js';
import { cast } from './ops/layout.js';

export interface CreateOptions {
  dtype?: DTypeName;
  /** 'cpu' | 'cuda' | 'cuda:N'; default per resolveDevice() (PERCEIVER_DEVICE, else CUDA when available, else CPU). */
  device?: string;
}

const CREATE_OPTIONS = optionKeys<CreateOptions>({ dtype: true, device: true });

type NestedNumbers = number | readonly NestedNumbers[];
export type TensorData = ArrayBufferView | NestedNumbers;

function inferShape(op: string, data: NestedNumbers): number[] {
  const s: number[] = [];
  let cur: NestedNumbers = data;
  while (Array.isArray(cur)) {
    s.push(cur.length);
    cur = cur[0] as NestedNumbers;
    if (cur === undefined) break;
  }
  return s;
}

function flattenChecked(op: string, data: NestedNumbers, shape: number[], depth: number, out: number[]): void {
  if (depth === shape.length) {
    if (typeof data !== 'number') throw new TypeError(`${op}: argument 'data' must hold numbers, found ${describe(data)}`);
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth])
    throw new RangeError(`${op}: argument 'data' is ragged: expected ${shape[depth]} elements at depth ${depth}, got ${Array.isArray(data) ? data.length : describe(data)}`);
  for (const e of data) flattenChecked(op, e, shape, depth + 1, out);
}

/** The typed array the engine can take directly, and its dtype. */
function toEngineArray(op: string, data: ArrayBufferView): { arr: Float32Array | Int32Array | Uint8Array; dtype: DTypeName } {
  if (data instanceof Float32Array) return { arr: data, dtype: 'float32' };
  if (data instanceof Int32Array) return { arr: data, dtype: 'int32' };
  if (data instanceof Uint8Array || data instanceof Uint8ClampedArray)
    return { arr: new Uint8Array(data.buffer, data.byteOffset, data.length), dtype: 'uint8' };
  if (data instanceof Float64Array) return { arr: new Float32Array(data), dtype: 'float32' };
  if (data instanceof Int8Array || data instanceof Int16Array || data instanceof Uint16Array)
    return { arr: new Int32Array(data), dtype: 'int32' };
  if (data instanceof Uint32Array) {
    for (let i = 0; i < data.length; i++)
      if (data[i] > 0x7fffffff) throw new RangeError(`${op}: argument 'data' value ${data[i]} at ${i} does not fit in int32`);
    return { arr: new Int32Array(data), dtype: 'int32' };
  }
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    // int64 ids (as PyTorch files hold them) are narrowed with a range check.
    const out = new Int32Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v > 2147483647n || v < -2147483648n) throw new RangeError(`${op}: argument 'data' value ${v} at ${i} does not fit in int32`);
      out[i] = Number(v);
    }
    return { arr: out, dtype: 'int32' };
  }
  throw new TypeError(`${op}: argument 'data' of type ${describe(data)} is not supported; use a Float32Array, Int32Array, Uint8Array or number arrays`);
}

/**
 * Doubles into a dtype other than float32 from the doubles themselves, as cast() would
 * take them (integers truncated toward zero and saturated, NaN as 0; 16-bit floats
 * rounded once): through float32 first, int32 lost what is past 2^24 and the 16-bit
 * types rounded twice.
 */
function fromFloat64(data: Float64Array, want: DTypeName): { arr: Int32Array | Uint8Array; dtype: DTypeName } {
  const n = data.length;
  if (want === 'int32' || want === 'uint8') {
    const [lo, hi] = want === 'int32' ? [-2147483648, 2147483647] : [0, 255];
    const out = want === 'int32' ? new Int32Array(n) : new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = data[i];
      out[i] = v !== v ? 0 : v <= lo ? lo : v >= hi ? hi : Math.trunc(v);
    }
    return { arr: out, dtype: want };
  }
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) bits[i] = want === 'float16' ? toFloat16Bits(data[i]) : toBFloat16Bits(data[i]);
  return { arr: new Uint8Array(bits.buffer), dtype: want };
}

/**
 * A tensor from JS data: a typed array (with a shape, default 1-D), nested number
 * arrays (shape inferred) or a number (a scalar). opts.dtype converts the values.
 */
export function tensor(data: TensorData, shape?: readonly number[], opts?: CreateOptions): Tensor {
  const o = options('tensor', opts, CREATE_OPTIONS);
  const device = resolveDevice('tensor', o.device);
  const want = o.dtype === undefined ? undefined : checkDType('tensor', 'dtype', o.dtype);
  let arr: Float32Array | Int32Array | Uint8Array;
  let src: DTypeName;
  let s: number[];
  if (ArrayBuffer.isView(data)) {
    if (data instanceof DataView) throw new TypeError(`tensor: argument 'data' must be a typed array, got DataView`);
    // N-API does not hand out memory that another thread may be writing (a
    // SharedArrayBuffer), so the engine copies from a snapshot of it.
    if (typeof SharedArrayBuffer === 'function' && data.buffer instanceof SharedArrayBuffer) data = (data as unknown as { slice(): ArrayBufferView }).slice();
    ({ arr, dtype: src } = data instanceof Float64Array && want !== undefined && want !== 'float32' ? fromFloat64(data, want) : toEngineArray('tensor', data));
    s = shape === undefined ? [src === 'float16' || src === 'bfloat16' ? arr.length / 2 : arr.length] : shapeArg('tensor', 'shape', shape);
  } else if (typeof data === 'number' || Array.isArray(data)) {
    const inferred = inferShape('tensor', data as NestedNumbers);
    const flat: number[] = [];
    flattenChecked('tensor', data as NestedNumbers, inferred, 0, flat);
    s = shape === undefined ? inferred : shapeArg('tensor', 'shape', shape);
    if (want === 'int32' || want === 'uint8') {
      for (let i = 0; i < flat.length; i++) checkIntegerValue('tensor', `data[${i}]`, flat[i], want);
      arr = want === 'int32' ? Int32Array.from(flat) : Uint8Array.from(flat);
      src = want;
    } else if (want === 'float16' || want === 'bfloat16') {
      // Round once, from the exact double, as PyTorch does (not via float32).
      const bits = new Uint16Array(flat.length);
      for (let i = 0; i < flat.length; i++) bits[i] = want === 'float16' ? toFloat16Bits(flat[i]) : toBFloat16Bits(flat[i]);
      arr = new Uint8Array(bits.buffer);
      src = want;
    } else {
      arr = Float32Array.from(flat);
      src = 'float32';
    }
  } else {
    throw new TypeError(`tensor: argument 'data' must be a typed array, a number or nested number arrays, got ${describe(data)}`);
  }
  const n = s.reduce((a, b) => a * b, 1);
  const count = src === 'float16' || src === 'bfloat16' ? arr.length / 2 : arr.length;
  if (n !== count)
    throw new RangeError(`tensor: argument 'shape' [${s.join(', ')}] has ${n} elements but 'data' has ${count}`);
  const t = wrap(native.fromBuffer(arr, s, src, device));
  if (src === 'int32') hostInts.add(t);
  if (want === undefined || want === src) return t;
  try {
    return cast(t, want);
  } finally {
    t.dispose();
  }
}

// int32 tensors that tensor() made from host values. The engine learns the min and
// max of such values as it copies them in (the bounds that let its id checks be
// skipped); for these tensors, until something writes them, those are exactly their
// values' range, where for others they may be wider (a view's are its whole storage's).
const hostInts = new WeakSet<Tensor>();

/**
 * @internal The [min, max] of t's values when known without reading them back: t is
 * an int32 tensor tensor() made from host values (on a GPU, once its copy has run)
 * and nothing has written it since; else null.
 */
export function hostInt32Range(t: Tensor): [number, number] | null {
  if (!hostInts.has(t) || t.disposed || native.handleVersion(t.handle) !== 0) return null;
  return native.int32Bounds(t.handle);
}

/** A tensor of shape filled with value. */
export function full(shape: readonly number[], value: number, opts?: CreateOptions): Tensor {
  const o = options('full', opts, CREATE_OPTIONS);
  const dtype = o.dtype === undefined ? 'float32' : checkDType('full', 'dtype', o.dtype);
  fullValue(value);
  if (dtype === 'int32' || dtype === 'uint8') checkIntegerValue('full', 'value', value, dtype);
  return wrap(native.full(shapeArg('full', 'shape', shape), value, dtype, resolveDevice('full', o.device)));
}

/**
 * @internal A tensor whose values are undefined (storage no kernel has written, taken
 * on first use): for placeholders that are replaced before anything reads them.
 */
export function uninitialized(shape: readonly number[], opts?: CreateOptions): Tensor {
  const o = options('uninitialized', opts, CREATE_OPTIONS);
  const dtype = o.dtype === undefined ? 'float32' : checkDType('uninitialized', 'dtype', o.dtype);
  return wrap(native.empty(shapeArg('uninitialized', 'shape', shape), dtype, resolveDevice('uninitialized', o.device)));
}

export const zeros = (shape: readonly number[], opts?: CreateOptions): Tensor => full(shape, 0, opts);
export const ones = (shape: readonly number[], opts?: CreateOptions): Tensor => full(shape, 1, opts);

/** [start, start+step, ...) below stop; arange(n) is 0..n-1. */
export function arange(start: number, stop?: number, step = 1, opts?: CreateOptions): Tensor {
  const o = options('arange', opts, CREATE_OPTIONS);
  finite('arange', 'start', start);
  finite('arange', 'step', step);
  if (stop === undefined) [start, stop] = [0, start];
  finite('arange', 'stop', stop);
  if (step === 0) throw new RangeError(`arange: argument 'step' must not be 0`);
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const dtype = o.dtype === undefined ? 'float32' : checkDType('arange', 'dtype', o.dtype);
  if ((dtype === 'int32' || dtype === 'uint8') && n > 0) {
    checkIntegerValue('arange', 'start', start, dtype);
    checkIntegerValue('arange', 'step', step, 'int32');
    checkIntegerValue('arange', 'stop', start + (n - 1) * step, dtype);
  }
  return wrap(native.arange(start, step, n, dtype, resolveDevice('arange', o.device)));
}

let nextSeed = Math.floor(Math.random() * 2 ** 31);

/** Seeds the generator used by randn/rand calls that pass no seed. */
export function manualSeed(seed: number): void {
  const s = int('manualSeed', 'seed', seed);
  if (s < 0) throw new RangeError(`manualSeed: argument 'seed' must be >= 0, got ${s}`);
  nextSeed = s;
}

export interface RandomOptions {
  /** Same seed, same values, on any thread count. Default: the global sequence (manualSeed). */
  seed?: number;
  device?: string;
}

/** @internal A draw's seed: `seed` validated, or the next of the global sequence (manualSeed). */
export function seedOf(op: string, seed: unknown): number {
  if (seed === undefined) return nextSeed++ % Number.MAX_SAFE_INTEGER;
  const s = int(op, 'seed', seed);
  if (s < 0) throw new RangeError(`${op}: option 'seed' must be >= 0, got ${s}`);
  return s;
}

const NORMAL_OPTIONS = optionKeys<RandomOptions & { mean?: number; std?: number }>({ seed: true, device: true, mean: true, std: true });
const UNIFORM_OPTIONS = optionKeys<RandomOptions & { low?: number; high?: number }>({ seed: true, device: true, low: true, high: true });

/** Normal samples, float32. */
export function randn(shape: readonly number[], opts?: RandomOptions & { mean?: number; std?: number }): Tensor {
  const o = options('randn', opts, NORMAL_OPTIONS);
  return wrap(
    native.random(
      'normal',
      shapeArg('randn', 'shape', shape),
      seedOf('randn', o.seed),
      o.mean === undefined ? 0 : finite('randn', 'mean', o.mean),
      o.std === undefined ? 1 : finite('randn', 'std', o.std),
      resolveDevice('randn', o.device),
    ),
  );
}

/** Uniform samples in [low, high), float32. */
export function rand(shape: readonly number[], opts?: RandomOptions & { low?: number; high?: number }): Tensor {
  const o = options('rand', opts, UNIFORM_OPTIONS);
  return wrap(
    native.random(
      'uniform',
      shapeArg('rand', 'shape', shape),
      seedOf('rand', o.seed),
      o.low === undefined ? 0 : finite('rand', 'low', o.low),
      o.high === undefined ? 1 : finite('rand', 'high', o.high),
      resolveDevice('rand', o.device),
    ),
  );
}

// A number that must be finite (a range's ends, a distribution's parameters).
function finite(op: string, name: string, v: unknown): number {
  num(op, name, v);
  if (!Number.isFinite(v)) throw new RangeError(`${op}: argument '${name}' must be finite, got ${describe(v)}`);
  return v as number;
}

function fullValue(v: unknown): number {
  // NaN and infinities are legitimate fill values (masks, sentinels).
  if (typeof v !== 'number') throw new TypeError(`full: argument 'value' must be a number, got ${describe(v)}`);
  return v;
}

const INT_RANGE = { int32: [-2147483648, 2147483647], uint8: [0, 255] } as const;

/** Integer dtypes take integers in range; anything else is an error, never a wrap-around. */
function checkIntegerValue(op: string, name: string, v: number, dtype: 'int32' | 'uint8'): void {
  const [lo, hi] = INT_RANGE[dtype];
  if (!Number.isFinite(v)) throw new RangeError(`${op}: '${name}' = ${v} is outside the range of ${dtype} [${lo}, ${hi}]`);
  if (!Number.isInteger(v)) throw new TypeError(`${op}: ${dtype} needs integers, '${name}' is ${v}`);
  if (v < lo || v > hi) throw new RangeError(`${op}: '${name}' = ${v} is outside the range of ${dtype} [${lo}, ${hi}]`);
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** IEEE bits of the binary format with `mb` mantissa and `eb` exponent bits nearest to x (ties to even). */
function roundToBits(x: number, mb: number, eb: number): number {
  const bias = (1 << (eb - 1)) - 1;
  const expAll = ((1 << eb) - 1) << mb;
  if (Number.isNaN(x)) return expAll | (1 << (mb - 1));
  const sign = x < 0 || Object.is(x, -0) ? 1 << (mb + eb) : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | expAll;
  const emin = 1 - bias;
  // Subnormals (and the carry into the smallest normal) are a plain multiple of the quantum.
  if (a < 2 ** emin) return sign | roundHalfEven(a / 2 ** (emin - mb));
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let m = roundHalfEven(a / 2 ** (e - mb));
  if (m === 2 ** (mb + 1)) {
    m = 2 ** mb;
    e++;
  }
  if (e > bias) return sign | expAll;
  return sign | ((e + bias) << mb) | (m - 2 ** mb);
}

const toFloat16Bits = (x: number): number => roundToBits(x, 10, 5);
const toBFloat16Bits = (x: number): number => roundToBits(x, 7, 8);
