// TensorRecords (from any checkpoint reader) into engine tensors. Every record is
// checked before a byte is read — a name, a known dtype, a shape, strides, and a
// byte range that lies inside its file and matches shape × dtype — so a corrupt
// checkpoint fails at once with the file and tensor named. The bytes then move
// natively (bindings/io.cc, native/file_io.cc): each record's range is pread on
// the device's queue thread straight into its tensor, gathered there when the
// record is strided and narrowed there (I64 -> int32, F64 -> float32, with range
// checks). A bounded window of reads is kept in flight, so progress is reported
// as tensors land and an AbortSignal stops the load between tensors. Each file is
// opened once for the whole load and every read goes through that descriptor, so a
// checkpoint saved over the path meanwhile (a rename, as save.ts does) is not mixed
// into it; a file changed since its reader parsed it, or rewritten in place during
// the load, is an error.
import { native, type NativeHandle } from '../native.js';
import { DTYPE_SIZE, describe, type DTypeName, type FloatDTypeName } from '../dtype.js';
import { resolveDevice } from '../device.js';
import { knownKeys, optionKeys } from '../ops/args.js';
import { wrap, type Tensor } from '../tensor.js';
import {
  MAX_NAME,
  RECORD_ITEM_SIZE,
  contiguousStrides,
  isCount,
  isFloatRecordDType,
  quoteName,
  recordByteSpan,
  type RecordDType,
  type TensorRecord,
} from './records.js';

/** What the addon's checkpoint-loading entry points look like (bindings/io.cc). */
/** An open file (the addon's RecordFile). */
type FileHandle = { readonly __recordFile: unique symbol };

interface NativeIo {
  /** [handle, size in bytes, fileVersion()]. */
  openRecordFile(path: string): [FileHandle, number, string];
  recordFileVersion(file: FileHandle): string;
  closeRecordFile(file: FileHandle): void;
  loadRecord(
    name: string,
    where: string,
    source: FileHandle | Uint8Array,
    offset: number,
    byteLength: number,
    type: RecordDType,
    shape: number[],
    strides: number[] | null,
    dtype: DTypeName,
    device: string,
  ): NativeHandle;
  settle(h: NativeHandle): Promise<ArrayBuffer>;
}

const io = native as unknown as NativeIo;

export type { FloatDTypeName };

export interface LoadProgress {
  /** Bytes of the records whose tensors have landed. */
  bytesDone: number;
  bytesTotal: number;
  tensorsDone: number;
  tensorsTotal: number;
  /** The record that just landed. */
  name: string;
}

export interface LoadRecordsOptions {
  /** Where the tensors are created; default per resolveDevice(). */
  device?: string;
  /**
   * The dtype every floating-point record loads as. Default: as stored for F32, F16
   * and BF16; float32 for F64 and the 8-bit floats. Integers always load as int32
   * (U8 and BOOL as uint8) whatever this says.
   */
  dtype?: FloatDTypeName;
  /** Called after each tensor has landed. */
  onProgress?: (p: LoadProgress) => void;
  /** Stops the load between tensors; the promise rejects with signal.reason. */
  signal?: AbortSignal;
  /** Prefix of error messages (default 'loadRecords'). */
  op?: string;
}

const LOAD_RECORDS_OPTIONS = optionKeys<LoadRecordsOptions>({ device: true, dtype: true, onProgress: true, signal: true, op: true });

// Reads queued ahead of the one being awaited: enough to keep the queue busy,
// few enough that an abort stops within about this many bytes.
const WINDOW_BYTES = 64 << 20;

const FLOAT_DTYPES: readonly string[] = ['float32', 'float16', 'bfloat16'];

// What a file may make loadRecords allocate. Strides of 0 and records sharing bytes
// (tied weights, or one pickled dict reached under many names) let a few bytes stand
// for any number of elements, so both a record's elements and the whole load are
// bounded by the bytes they come from. A record may repeat its bytes a little (a
// broadcast axis such as HF's position_ids): up to twice its span, plus a small
// allowance; the load may hold up to four times the distinct bytes its records cover
// (widening I8 or F8 to 4-byte elements, or a few tied weights), plus an allowance.
const RECORD_EXPANSION = 2;
const RECORD_SLACK = 64 << 10;
const LOAD_EXPANSION = 4;
const LOAD_SLACK = 64 << 20;

/** The engine dtype a record of `d` loads as (see LoadRecordsOptions.dtype). */
export function engineDTypeOf(d: RecordDType, floatDType?: FloatDTypeName): DTypeName {
  if (typeof d !== 'string' || !Object.hasOwn(RECORD_ITEM_SIZE, d))
    throw new TypeError(`engineDTypeOf: argument 'd' must be a record dtype (${Object.keys(RECORD_ITEM_SIZE).join(', ')}), got ${describe(d)}`);
  if (floatDType !== undefined && !FLOAT_DTYPES.includes(floatDType))
    throw new TypeError(`engineDTypeOf: argument 'floatDType' must be one of ${FLOAT_DTYPES.join(', ')}, got ${describe(floatDType)}`);
  if (isFloatRecordDType(d)) {
    if (floatDType) return floatDType;
    return d === 'F16' ? 'float16' : d === 'BF16' ? 'bfloat16' : 'float32';
  }
  return d === 'U8' || d === 'BOOL' ? 'uint8' : 'int32';
}

function where(rec: TensorRecord): string {
  return rec.source.kind === 'file' ? rec.source.path : '<in-memory record>';
}

/**
 * Checks one record's own fields (not yet the file): throws an Error naming the
 * file, the tensor and the problem.
 */
export function checkRecord(rec: TensorRecord, op = 'loadRecords'): void {
  if (rec === null || typeof rec !== 'object') throw new TypeError(`${op}: a record must be an object, got ${describe(rec)}`);
  const src = rec.source as TensorRecord['source'] | undefined;
  const file = src && src.kind === 'file' && typeof src.path === 'string' ? src.path : '<in-memory record>';
  const fail = (problem: string, type: ErrorConstructor = Error): never => {
    throw new type(`${op}: ${file}: tensor ${typeof rec.name === 'string' ? quoteName(rec.name) : `'${String(rec.name)}'`}: ${problem}`);
  };
  if (typeof rec.name !== 'string' || rec.name === '') fail(`the name must be a non-empty string`);
  // Names become Map and Set keys (see MAX_NAME).
  if (rec.name.length > MAX_NAME) fail(`the name is longer than the ${MAX_NAME} characters a tensor name may have`, RangeError);
  if (typeof rec.dtype !== 'string' || !Object.hasOwn(RECORD_ITEM_SIZE, rec.dtype))
    fail(`unsupported dtype ${JSON.stringify(rec.dtype)} (supported: ${Object.keys(RECORD_ITEM_SIZE).join(', ')})`);
  if (!Array.isArray(rec.shape) || rec.shape.length > 8 || !rec.shape.every(isCount))
    fail(`the shape must be at most 8 non-negative integers, got ${JSON.stringify(rec.shape)}`);
  if (rec.strides !== undefined && (!Array.isArray(rec.strides) || rec.strides.length !== rec.shape.length || !rec.strides.every(isCount)))
    fail(`strides must be ${rec.shape.length} non-negative integers, got ${JSON.stringify(rec.strides)}`);
  const numel = rec.shape.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(numel * RECORD_ITEM_SIZE[rec.dtype])) fail(`shape [${rec.shape.join(', ')}] is too large`);
  if (!src || typeof src !== 'object') return fail(`has no source`);
  let available: number;
  if (src.kind === 'file') {
    if (typeof src.path !== 'string' || src.path === '') fail(`the source path must be a non-empty string`);
    if (!isCount(src.offset) || !isCount(src.byteLength))
      fail(`the byte range must be non-negative integers, got offset ${JSON.stringify(src.offset)}, length ${JSON.stringify(src.byteLength)}`);
    if (src.version !== undefined && typeof src.version !== 'string') fail(`the source version must be a string, got ${describe(src.version)}`);
    available = src.byteLength;
  } else if (src.kind === 'bytes') {
    if (!(src.bytes instanceof Uint8Array)) fail(`an in-memory source must hold a Uint8Array, got ${describe(src.bytes)}`);
    available = src.bytes.byteLength;
  } else {
    return fail(`unknown source kind ${JSON.stringify((src as { kind?: unknown }).kind)}`);
  }
  const need = recordByteSpan(rec);
  const strided = rec.strides !== undefined && rec.strides.some((s, i) => rec.shape[i] !== 1 && s !== contiguousStrides(rec.shape)[i]);
  // A contiguous record's range is exactly its tensor; a strided one (a view into a
  // larger storage) needs its span at least.
  if (strided ? need > available : need !== available)
    fail(
      `shape [${rec.shape.join(', ')}] of ${rec.dtype}${strided ? ` at strides [${rec.strides!.join(', ')}]` : ''} needs ${need} bytes but its source holds ${available}`,
    );
  const elementBytes = numel * RECORD_ITEM_SIZE[rec.dtype];
  if (elementBytes > RECORD_EXPANSION * need + RECORD_SLACK)
    fail(
      `shape [${rec.shape.join(', ')}] at strides [${(rec.strides ?? []).join(', ')}] repeats its ${need} bytes as ${elementBytes} ` +
        `(at most ${RECORD_EXPANSION} x ${need} + ${RECORD_SLACK} accepted): overlapping views are refused, since they let a small file ask for any amount of memory`,
      RangeError,
    );
}

/**
 * Refuses a load whose tensors would take more than LOAD_EXPANSION times the distinct
 * bytes their records cover (plus LOAD_SLACK); records are already checked.
 */
function checkExpansion(records: readonly TensorRecord[], floatDType: FloatDTypeName | undefined, op: string): void {
  let total = 0;
  // Byte ranges per file, and per in-memory buffer, merged below so shared bytes count once.
  const ranges = new Map<string | ArrayBufferLike, [number, number][]>();
  for (const rec of records) {
    const numel = rec.shape.reduce((a, b) => a * b, 1);
    total += numel * DTYPE_SIZE[engineDTypeOf(rec.dtype, floatDType)];
    const span = recordByteSpan(rec);
    if (span === 0) continue;
    const src = rec.source;
    const key = src.kind === 'file' ? src.path : src.bytes.buffer;
    const start = src.kind === 'file' ? src.offset : src.bytes.byteOffset;
    let list = ranges.get(key);
    if (!list) ranges.set(key, (list = []));
    list.push([start, start + span]);
  }
  let distinct = 0;
  for (const list of ranges.values()) {
    list.sort((a, b) => a[0] - b[0]);
    let end = 0;
    for (const [s, e] of list) {
      if (e <= end) continue;
      distinct += e - Math.max(s, end);
      end = e;
    }
  }
  if (total > LOAD_EXPANSION * distinct + LOAD_SLACK) {
    const files = [...ranges.keys()].map((k) => (typeof k === 'string' ? k : '<in-memory record>'));
    throw new RangeError(
      `${op}: ${files.slice(0, 3).join(', ')}${files.length > 3 ? ` and ${files.length - 3} more` : ''}: ` +
        `the ${records.length} tensors would take ${total} bytes, from ${distinct} distinct bytes of their sources ` +
        `(at most ${LOAD_EXPANSION} x ${distinct} + ${LOAD_SLACK} accepted): records sharing bytes under many names are refused, ` +
        `since they let a small file ask for any amount of memory`,
    );
  }
}

/**
 * Loads records as engine tensors keyed by record name. Throws before reading
 * anything when a record is malformed, names a missing file or a range past a
 * file's end, or repeats a name; rejects with the record's error when a read or a
 * range check fails. On any failure every tensor made so far is disposed.
 */
export async function loadRecords(records: readonly TensorRecord[], opts: LoadRecordsOptions = {}): Promise<Record<string, Tensor>> {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts))
    throw new TypeError(`loadRecords: argument 'opts' must be an object, got ${describe(opts)}`);
  if (opts.op !== undefined && (typeof opts.op !== 'string' || opts.op === ''))
    throw new TypeError(`loadRecords: option 'op' must be a non-empty string, got ${describe(opts.op)}`);
  const op = opts.op ?? 'loadRecords';
  knownKeys(op, 'opts', opts, LOAD_RECORDS_OPTIONS);
  if (!Array.isArray(records)) throw new TypeError(`${op}: argument 'records' must be an array of TensorRecords, got ${describe(records)}`);
  if (opts.dtype !== undefined && !FLOAT_DTYPES.includes(opts.dtype))
    throw new TypeError(`${op}: option 'dtype' must be one of ${FLOAT_DTYPES.join(', ')}, got ${describe(opts.dtype)}`);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function')
    throw new TypeError(`${op}: option 'onProgress' must be a function, got ${describe(opts.onProgress)}`);
  const signal = opts.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw new TypeError(`${op}: option 'signal' must be an AbortSignal, got ${describe(signal)}`);
  const device = resolveDevice(op, opts.device);
  signal?.throwIfAborted();

  const seen = new Set<string>();
  for (const rec of records) {
    checkRecord(rec, op);
    if (seen.has(rec.name)) throw new Error(`${op}: ${where(rec)}: tensor '${rec.name}' appears twice`);
    seen.add(rec.name);
  }
  // Each file is opened once: every range must lie inside it, and every read of this
  // load goes through that descriptor.
  const files = new Map<string, { handle: FileHandle; size: number; version: string }>();
  const closeAll = () => {
    for (const f of files.values()) io.closeRecordFile(f.handle);
  };
  const changed = (path: string) =>
    new Error(`${op}: ${path}: the file changed after its header was read (saved over, or being written?); read it again`);
  try {
    for (const rec of records) {
      if (rec.source.kind !== 'file') continue;
      const { path, offset, byteLength, version } = rec.source;
      let f = files.get(path);
      if (f === undefined) {
        try {
          const [handle, size, v] = io.openRecordFile(path);
          f = { handle, size, version: v };
        } catch (err) {
          // The addon's message names the path: "<path>: cannot read (<why>)".
          throw new Error(`${op}: ${err instanceof Error ? err.message : String(err)}`);
        }
        files.set(path, f);
      }
      if (version !== undefined && version !== f.version) throw changed(path);
      if (offset + byteLength > f.size)
        throw new Error(`${op}: ${path}: tensor '${rec.name}': bytes [${offset}, ${offset + byteLength}) lie past the end of the file (${f.size} bytes; truncated?)`);
    }
    // After the range checks, so that the distinct bytes counted are bytes of the files.
    checkExpansion(records, opts.dtype, op);
  } catch (err) {
    closeAll();
    throw err;
  }

  const bytesOf = (r: TensorRecord) => (r.source.kind === 'file' ? r.source.byteLength : r.source.bytes.byteLength);
  const bytesTotal = records.reduce((a, r) => a + bytesOf(r), 0);
  const out: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  // Each settle promise resolves to null or the load's error, so none is ever an unhandled rejection.
  const inflight: { rec: TensorRecord; done: Promise<Error | null> }[] = [];
  let inflightBytes = 0;
  let bytesDone = 0;
  let tensorsDone = 0;

  const landOne = async (): Promise<void> => {
    const { rec, done } = inflight.shift()!;
    const err = await done;
    inflightBytes -= bytesOf(rec);
    if (err) throw new Error(err.message.startsWith(`${op}:`) ? err.message : `${op}: ${err.message}`);
    bytesDone += bytesOf(rec);
    tensorsDone++;
    opts.onProgress?.({ bytesDone, bytesTotal, tensorsDone, tensorsTotal: records.length, name: rec.name });
  };

  try {
    for (const rec of records) {
      signal?.throwIfAborted();
      const src = rec.source;
      const h =
        src.kind === 'file'
          ? io.loadRecord(rec.name, `${op}: ${src.path}`, files.get(src.path)!.handle, src.offset, src.byteLength, rec.dtype, [...rec.shape], rec.strides ? [...rec.strides] : null, engineDTypeOf(rec.dtype, opts.dtype), device)
          : io.loadRecord(rec.name, `${op}: <in-memory record>`, src.bytes, 0, src.bytes.byteLength, rec.dtype, [...rec.shape], rec.strides ? [...rec.strides] : null, engineDTypeOf(rec.dtype, opts.dtype), device);
      const t = wrap(h);
      made.push(t);
      // As an own property whatever the name ('__proto__' would otherwise set the prototype).
      Object.defineProperty(out, rec.name, { value: t, enumerable: true, writable: true, configurable: true });
      inflight.push({ rec, done: io.settle(h).then(() => null, (e: unknown) => (e instanceof Error ? e : new Error(String(e)))) });
      inflightBytes += bytesOf(rec);
      while (inflightBytes > WINDOW_BYTES && inflight.length > 1) await landOne();
    }
    while (inflight.length) {
      signal?.throwIfAborted();
      await landOne();
    }
    // A rewrite in place (not a rename) during the load shows in the size or the
    // modification time.
    for (const [path, f] of files) if (io.recordFileVersion(f.handle) !== f.version) throw changed(path);
    return out;
  } catch (err) {
    for (const t of made) t.dispose();
    // Reads already queued still hold their storages; waiting for them (at most a
    // window's worth) means memory is back when the caller sees the error.
    await Promise.all(inflight.map((f) => f.done));
    throw err;
  } finally {
    closeAll();
  }
}
