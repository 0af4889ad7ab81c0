/** Element types a tensor can hold. float16/bfloat16 are storage types on the CPU. */
export type DTypeName = 'float32' | 'float16' | 'bfloat16' | 'int32' | 'uint8';

/** The floating dtypes; 16-bit ones compute with float32 accumulation. */
export type FloatDTypeName = 'float32' | 'float16' | 'bfloat16';

export function isFloatDType(v: unknown): v is FloatDTypeName {
  return v === 'float32' || v === 'float16' || v === 'bfloat16';
}

export const DTYPES: readonly DTypeName[] = ['float32', 'float16', 'bfloat16', 'int32', 'uint8'];

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<DTypeName, number>> = { float32: 4, float16: 2, bfloat16: 2, int32: 4, uint8: 1 };

/** What `data()` returns per dtype: 16-bit floats are widened to float32. */
export type DataFor<D extends DTypeName> = D extends 'int32'
  ? Int32Array
  : D extends 'uint8'
    ? Uint8Array
    : Float32Array;

export type TypedData = Float32Array | Int32Array | Uint8Array;

export function isDType(v: unknown): v is DTypeName {
  return typeof v === 'string' && (DTYPES as readonly string[]).includes(v);
}

export function checkDType(op: string, name: string, v: unknown): DTypeName {
  if (!isDType(v))
    throw new TypeError(`${op}: argument '${name}' must be one of ${DTYPES.map((d) => `'${d}'`).join(', ')}, got ${describe(v)}`);
  return v;
}

/** A short description of a value for error messages. */
/** @internal A class's static brand check (Tensor's), which describe() consults. */
export const isBranded: unique symbol = Symbol('isBranded');

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `array of length ${v.length}`;
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (typeof v === 'object') {
    const c = (v as { constructor?: unknown }).constructor;
    if (typeof c !== 'function') return 'object';
    // A class that brands its instances (Tensor): an object that merely shares its
    // prototype would otherwise be named like a real one.
    const branded = (c as { [isBranded]?: (v: unknown) => boolean })[isBranded];
    if (typeof branded === 'function' && !branded(v)) return `object with ${c.name}'s prototype (not a ${c.name})`;
    return c.name;
  }
  return typeof v;
}
