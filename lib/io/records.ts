// A tensor inside a checkpoint file, described but not yet read. Every reader
// (safetensors, PyTorch .bin, Haiku pickles) produces these, renaming and layout
// conversion (Linear [in,out] -> [out,in], conv HWIO -> OIHW) rewrite them as
// stride permutations, and one loader turns them into engine tensors. So nothing
// ever holds a whole checkpoint file in the JS heap, and a transpose costs no copy
// until the bytes land in their final tensor.
import { closeSync, constants, fstatSync, openSync, type BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { describe } from '../dtype.js';

/** @internal A non-negative safe integer (a dimension, stride, offset or byte count). */
export const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkShape(op: string, name: string, v: unknown): number[] {
  if (!Array.isArray(v) || !v.every(isCount))
    throw new TypeError(`${op}: argument '${name}' must be an array of non-negative integers, got ${Array.isArray(v) ? `[${v.map(describe).join(', ')}]` : describe(v)}`);
  return v;
}

// The fields of a record these helpers read: dtype, shape, strides.
function checkLayout(op: string, rec: unknown): asserts rec is Pick<TensorRecord, 'dtype' | 'shape' | 'strides'> {
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec))
    throw new TypeError(`${op}: argument 'rec' must be a TensorRecord, got ${describe(rec)}`);
  const r = rec as Partial<TensorRecord>;
  if (typeof r.dtype !== 'string' || !Object.prototype.hasOwnProperty.call(RECORD_ITEM_SIZE, r.dtype))
    throw new TypeError(`${op}: argument 'rec.dtype' must be one of ${Object.keys(RECORD_ITEM_SIZE).join(', ')}, got ${describe(r.dtype)}`);
  checkShape(op, 'rec.shape', r.shape);
  if (r.strides !== undefined) {
    checkShape(op, 'rec.strides', r.strides);
    if (r.strides.length !== r.shape!.length)
      throw new RangeError(`${op}: argument 'rec.strides' must have one stride per dimension (${r.shape!.length}), got ${r.strides.length}`);
  }
}

/**
 * Element types checkpoint formats name, in safetensors' spelling. Every one of them
 * loads (lib/io/load-records.ts): floats as float32 (or a requested 16-bit float),
 * integers as int32 and U8/BOOL as uint8, narrowing with a range check.
 */
export type RecordDType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export const RECORD_ITEM_SIZE: Readonly<Record<RecordDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/** Whether a record dtype is a floating-point type. */
export function isFloatRecordDType(d: RecordDType): boolean {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16' || d === 'F8_E4M3' || d === 'F8_E5M2';
}

/**
 * Where a record's bytes are: a byte range of a file, or bytes already in memory.
 * `version` (fileVersion() of the file its reader parsed) makes loadRecords refuse a
 * file that has been replaced or rewritten since.
 */
export type RecordSource =
  | { kind: 'file'; path: string; offset: number; byteLength: number; version?: string }
  | { kind: 'bytes'; bytes: Uint8Array };

/**
 * A file's identity and contents' version as fstat gives them: "device:inode:size:
 * mtime in ns" (the addon's RecordFile::version() spells it the same way). A save
 * that renames a new file over the path changes the inode; a rewrite in place, the
 * size or the modification time.
 */
export function fileVersion(st: BigIntStats): string {
  if (st === null || typeof st !== 'object') throw new TypeError(`fileVersion: argument 'st' must be fs BigIntStats (stat with { bigint: true }), got ${describe(st)}`);
  for (const k of ['dev', 'ino', 'size', 'mtimeNs'] as const)
    if (typeof st[k] !== 'bigint') throw new TypeError(`fileVersion: argument 'st' must be fs BigIntStats (stat with { bigint: true }): '${k}' is ${describe(st[k])}`);
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
}

/**
 * @internal The longest tensor or entry name any reader accepts. V8 hashes a string
 * longer than 16,383 characters by its length alone, so a file naming many tensors
 * with such names would make every Map and Set lookup a linear scan; real names are
 * well under a hundred characters.
 */
export const MAX_NAME = 1024;

/** @internal A name quoted for a message; a long one cut short, so the message stays readable. */
export function quoteName(name: string): string {
  return name.length > 80 ? `'${name.slice(0, 60)}...' (${name.length} characters)` : `'${name}'`;
}

// Opening a named pipe for reading blocks until a writer opens it, which would hang
// the process on a mistyped path; O_NONBLOCK makes that open return at once, and it
// changes nothing for a regular file.
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

function notRegular(path: string, st: BigIntStats): Error | null {
  if (st.isFile()) return null;
  const what = st.isDirectory()
    ? 'a directory'
    : st.isFIFO()
      ? 'a named pipe (FIFO)'
      : st.isSocket()
        ? 'a socket'
        : st.isCharacterDevice()
          ? 'a character device'
          : st.isBlockDevice()
            ? 'a block device'
            : 'not a file';
  return new Error(`${path} is ${what}, not a regular file`);
}

/**
 * @internal Opens `path` read-only and returns its descriptor and fstat; anything but
 * a regular file (a directory, a FIFO, a device) is refused with an Error naming the
 * path and what it is, and the descriptor is closed. The caller closes it otherwise.
 */
export function openRegularFileSync(path: string): { fd: number; stat: BigIntStats } {
  const fd = openSync(path, READ_FLAGS);
  try {
    const stat = fstatSync(fd, { bigint: true });
    const err = notRegular(path, stat);
    if (err) throw err;
    return { fd, stat };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** @internal openRegularFileSync for fs/promises users. */
export async function openRegularFile(path: string): Promise<{ fh: FileHandle; stat: BigIntStats }> {
  const fh = await open(path, READ_FLAGS);
  try {
    const stat = await fh.stat({ bigint: true });
    const err = notRegular(path, stat);
    if (err) throw err;
    return { fh, stat };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

export interface TensorRecord {
  /** The tensor's name in its file (or, after renaming, in the model's stateDict). */
  name: string;
  dtype: RecordDType;
  /** Logical shape. */
  shape: number[];
  /**
   * Element strides of the logical shape within the source, which starts at the
   * tensor's first element; row-major contiguous when absent. Always little-endian.
   */
  strides?: number[];
  source: RecordSource;
}

/** Row-major strides of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  checkShape('contiguousStrides', 'shape', shape);
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** The record with its axes reordered (out axis i = in axis perm[i]); no bytes move. */
export function permuteRecord(rec: TensorRecord, perm: readonly number[]): TensorRecord {
  checkLayout('permuteRecord', rec);
  const n = rec.shape.length;
  if (!Array.isArray(perm)) throw new TypeError(`permuteRecord: argument 'perm' must be an array of axes, got ${describe(perm)}`);
  if (perm.length !== n || [...perm].sort((a, b) => a - b).some((p, i) => p !== i))
    throw new RangeError(`permuteRecord: argument 'perm' must be a permutation of 0..${n - 1} for '${rec.name}' of shape [${rec.shape.join(', ')}], got [${perm.join(', ')}]`);
  const strides = rec.strides ?? contiguousStrides(rec.shape);
  return { ...rec, shape: perm.map((p) => rec.shape[p]), strides: perm.map((p) => strides[p]) };
}

/**
 * Bytes from a record's first element to the end of its last (0 for an empty
 * tensor): what its source must hold.
 */
export function recordByteSpan(rec: Pick<TensorRecord, 'dtype' | 'shape' | 'strides'>): number {
  checkLayout('recordByteSpan', rec);
  const item = RECORD_ITEM_SIZE[rec.dtype];
  if (rec.shape.some((d) => d === 0)) return 0;
  const strides = rec.strides ?? contiguousStrides(rec.shape);
  let last = 0;
  for (let i = 0; i < rec.shape.length; i++) last += (rec.shape[i] - 1) * strides[i];
  return (last + 1) * item;
}
