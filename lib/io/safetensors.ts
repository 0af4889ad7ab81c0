// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian tensor bytes. Checkpoints can be many GiB, so reading is
// header -> TensorRecords -> loadRecords (each tensor's byte range read natively into
// its tensor), and writing goes one tensor at a time with positioned writes: no
// whole-file buffer exists on either path. Every header field is checked before any
// byte is trusted, because a corrupt or hostile file must fail with a message, not
// crash the engine or allocate absurd amounts.
import type { BigIntStats } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { atomicTarget, removeDeadWritersTemps, tempBeside } from './atomic.js';

import { describe, type DTypeName } from '../dtype.js';
import { Tensor, readBytes } from '../tensor.js';
import { cast } from '../ops/layout.js';
import { MAX_NAME, RECORD_ITEM_SIZE, fileVersion, openRegularFile, quoteName, type RecordDType, type TensorRecord } from './records.js';
import { loadRecords, type LoadRecordsOptions } from './load-records.js';
import { knownKeys, optionKeys } from '../ops/args.js';

/**
 * safetensors dtype names this reader accepts: every dtype of the format except the
 * sub-byte and exotic ones (F4, F6_*, F8_E8M0, C64), which are refused by name.
 * Floats load as float32 (F16/BF16 as stored unless a float dtype is asked for),
 * integers as int32 (I64, U32, U64 with a range check), U8 and BOOL as uint8.
 */
export type SafetensorsDType = RecordDType;

/** Bytes per element of every dtype the reader knows. */
const ITEM_SIZE: Readonly<Record<string, number>> = RECORD_ITEM_SIZE;

// Dtypes the format defines that have no engine type to land in (sub-byte floats,
// the exponent-only float8, complex).
const UNSUPPORTED: readonly string[] = ['F4', 'F6_E2M3', 'F6_E3M2', 'F8_E8M0', 'C64'];

const WRITE_DTYPE: Record<DTypeName, SafetensorsDType> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', int32: 'I32', uint8: 'U8',
};

// The Rust reference implementation refuses headers above 100 MB; so do we, before parsing.
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's entry in the header, as validated. */
export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range [begin, end) relative to the end of the header. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** Tensors in header order. */
  entries: Map<string, SafetensorsEntry>;
  /** `__metadata__` (string to string), empty when absent. */
  metadata: Record<string, string>;
  /** Absolute file offset of the first data byte (8 + header length). */
  dataStart: number;
  /**
   * fileVersion() of the file the header was read from (readSafetensorsHeader), so
   * that loading its records refuses a file saved over it since.
   */
  version?: string;
}

export interface ReadSafetensorsOptions extends Omit<LoadRecordsOptions, 'op'> {
  /** Load only these names (an unknown name is an error). Default: every tensor. */
  names?: readonly string[];
}

export interface WriteSafetensorsOptions {
  /** Stored as `__metadata__`; values must be strings. HF's convention is {format: 'pt'}. */
  metadata?: Record<string, string>;
  /**
   * Stored dtype per tensor name, when not the tensor's own: a float tensor as F32,
   * F16 or BF16 (converted by the engine), an int32 tensor as I64 (widened; PyTorch
   * keeps counters such as BatchNorm's num_batches_tracked in int64).
   */
  dtypes?: Record<string, SafetensorsDType>;
}

const READ_OPTIONS = optionKeys<ReadSafetensorsOptions>({ names: true, device: true, dtype: true, onProgress: true, signal: true });
const WRITE_OPTIONS = optionKeys<WriteSafetensorsOptions>({ metadata: true, dtypes: true });

function fail(path: string, problem: string): never {
  throw new Error(`safetensors: ${path}: ${problem}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function headerLength(path: string, first8: Uint8Array, fileSize: number): number {
  if (fileSize < 8) fail(path, `file is ${fileSize} bytes, too short for the 8-byte header length`);
  const headerLen = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0);
  // A file of another kind (an image, a pickle, a .bin) read as safetensors fails here,
  // its first 8 bytes taken as a huge length: say what that most likely means.
  const notSafetensors = 'not a safetensors file (8-byte little-endian header length, then a JSON header), or a truncated one';
  if (headerLen > BigInt(fileSize - 8))
    fail(path, `header length ${headerLen} runs past the end of the file (${fileSize} bytes; at most ${fileSize - 8} available): ${notSafetensors}`);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) fail(path, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit: ${notSafetensors}`);
  return Number(headerLen);
}

const isWhitespace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * @internal Checks the object keys of JSON text before JSON.parse sees it: each at most
 * MAX_NAME characters, none twice in one object. JSON.parse keeps the last of repeated
 * keys without a word, and builds objects of long keys in quadratic time (see
 * MAX_NAME), so both are refused here, by `fail`, with the key named. Malformed JSON
 * is left for JSON.parse to report.
 */
export function checkJsonKeys(text: string, fail: (problem: string) => never): void {
  // One entry per open object (its keys so far) or array (null).
  const stack: (Set<string> | null)[] = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(null);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x22 /* " */) {
      let end = i + 1;
      let escaped = false;
      while (end < n) {
        const d = text.charCodeAt(end);
        if (d === 0x22) break;
        if (d === 0x5c) {
          escaped = true;
          end++;
        }
        end++;
      }
      if (end >= n) return;
      let next = end + 1;
      while (next < n && isWhitespace(text.charCodeAt(next))) next++;
      const keys = stack.length ? stack[stack.length - 1] : null;
      if (keys && text.charCodeAt(next) === 0x3a /* : */) {
        const raw = text.slice(i + 1, end);
        let key = raw;
        if (escaped) {
          // An escape stands for at least one character in at most six, so decoding a longer key is not worth it.
          if (raw.length > 6 * MAX_NAME)
            fail(`a key written in ${raw.length} characters, escapes included, is longer than the ${MAX_NAME} characters a name may have`);
          try {
            key = JSON.parse(`"${raw}"`) as string;
          } catch {
            return;
          }
        }
        if (key.length > MAX_NAME) fail(`the key ${quoteName(key)} is longer than the ${MAX_NAME} characters a name may have`);
        if (keys.has(key)) fail(`the key ${quoteName(key)} appears twice in one object (JSON.parse would keep only the last)`);
        keys.add(key);
      }
      i = end;
    }
  }
}

/**
 * Parses and checks a header, given the file's first bytes (at least 8 + the header
 * length; more is fine) and the file's total size. Pure: no I/O, so corrupt headers
 * can be checked (and fuzzed) in memory. Throws an Error naming `path` and the problem.
 */
export function parseSafetensorsHeader(path: string, prefix: Uint8Array, fileSize: number): SafetensorsHeader {
  if (typeof path !== 'string' || path === '')
    throw new TypeError(`parseSafetensorsHeader: argument 'path' must be a non-empty string (the file, for messages), got ${describe(path)}`);
  if (!(prefix instanceof Uint8Array)) throw new TypeError(`parseSafetensorsHeader: argument 'prefix' must be a Uint8Array, got ${describe(prefix)}`);
  if (!Number.isSafeInteger(fileSize) || fileSize < 0)
    throw new TypeError(`parseSafetensorsHeader: argument 'fileSize' must be a non-negative integer, got ${describe(fileSize)}`);
  if (prefix.byteLength < Math.min(8, fileSize)) fail(path, `only ${prefix.byteLength} bytes given for the 8-byte header length`);
  const n = headerLength(path, prefix, fileSize);
  if (prefix.byteLength < 8 + n) fail(path, `only ${prefix.byteLength} bytes given for a ${n}-byte header`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(prefix.subarray(8, 8 + n));
  } catch (err) {
    fail(path, `header is not valid UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  checkJsonKeys(text, (problem) => fail(path, problem));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    fail(path, `header is not valid UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isPlainObject(json)) fail(path, `header must be a JSON object, got ${describe(json)}`);

  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(raw)) fail(path, `__metadata__ must be an object of strings, got ${describe(raw)}`);
      for (const [k, v] of Object.entries(raw))
        if (typeof v !== 'string') fail(path, `__metadata__['${k}'] must be a string, got ${describe(v)}`);
      metadata = raw as Record<string, string>;
      continue;
    }
    if (name === '') fail(path, `a tensor has an empty name`);
    entries.set(name, checkEntry(path, name, raw, dataSize));
  }

  // The tensors must tile the data section exactly, as the reference implementation
  // requires: an overlap would alias two tensors, and a gap is most likely a tensor
  // lost from the header. Zero-size tensors hold no bytes, so they cannot overlap
  // anything or fill a gap.
  const sorted = [...entries]
    .filter(([, e]) => e.dataOffsets[1] > e.dataOffsets[0])
    .sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  let covered = 0;
  for (let i = 0; i < sorted.length; i++) {
    const [cn, ce] = sorted[i];
    if (ce.dataOffsets[0] < covered) {
      const [pn, pe] = sorted[i - 1];
      fail(path, `tensors '${pn}' [${pe.dataOffsets.join(', ')}) and '${cn}' [${ce.dataOffsets.join(', ')}) overlap`);
    }
    if (ce.dataOffsets[0] > covered)
      fail(path, `bytes [${covered}, ${ce.dataOffsets[0]}) of the data section belong to no tensor (one missing from the header?)`);
    covered = ce.dataOffsets[1];
  }
  if (covered !== dataSize)
    fail(path, `the data section's last ${dataSize - covered} bytes, from byte ${covered} on, belong to no tensor (one missing from the header?)`);
  return { entries, metadata, dataStart };
}

function checkEntry(path: string, name: string, raw: unknown, dataSize: number): SafetensorsEntry {
  const where = `tensor '${name}'`;
  if (!isPlainObject(raw)) fail(path, `${where}: entry must be an object, got ${describe(raw)}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string') fail(path, `${where}: 'dtype' must be a string, got ${describe(dtype)}`);
  const item = Object.hasOwn(ITEM_SIZE, dtype) ? ITEM_SIZE[dtype] : undefined;
  if (item === undefined)
    fail(
      path,
      UNSUPPORTED.includes(dtype)
        ? `${where}: dtype ${dtype} is not supported by the engine (supported: ${Object.keys(ITEM_SIZE).join(', ')})`
        : `${where}: unknown dtype '${dtype}' (supported: ${Object.keys(ITEM_SIZE).join(', ')})`,
    );
  if (!Array.isArray(shape) || shape.length > 8 || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0))
    fail(path, `${where}: 'shape' must be an array of at most 8 non-negative integers, got ${JSON.stringify(shape)}`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    offsets.some((o) => typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0)
  )
    fail(path, `${where}: 'data_offsets' must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(path, `${where}: data_offsets [${begin}, ${end}] has begin after end`);
  if (end > dataSize)
    fail(path, `${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes; truncated?)`);
  const count = numel(shape as number[]);
  if (!Number.isSafeInteger(count * item) || count * item !== end - begin)
    fail(
      path,
      `${where}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${count * item} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  return { dtype: dtype as SafetensorsDType, shape: shape as number[], dataOffsets: [begin, end] };
}

async function readFully(path: string, fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    // One read() is capped at 2 GiB by the OS; loop for large reads and short reads.
    const chunk = Math.min(buf.byteLength - done, 1 << 30);
    const { bytesRead } = await fh.read(buf, done, chunk, position + done);
    if (bytesRead === 0) fail(path, `unexpected end of file at byte ${position + done} (file truncated?)`);
    done += bytesRead;
  }
}

/** The header of a safetensors file (names, dtypes, shapes, offsets, metadata), checked against the file size. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  if (typeof path !== 'string' || path === '') throw new TypeError(`safetensors: argument 'path' must be a file path, got ${describe(path)}`);
  let fh: FileHandle;
  let st: BigIntStats;
  try {
    ({ fh, stat: st } = await openRegularFile(path));
  } catch (err) {
    fail(path, `cannot open (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    const size = Number(st.size);
    const first8 = new Uint8Array(Math.min(8, size));
    await readFully(path, fh, first8, 0);
    const n = headerLength(path, first8, size);
    const prefix = new Uint8Array(8 + n);
    prefix.set(first8);
    await readFully(path, fh, prefix.subarray(8), 8);
    return { ...parseSafetensorsHeader(path, prefix, size), version: fileVersion(st) };
  } finally {
    await fh.close();
  }
}

/** One record per tensor of a parsed header (in header order), for loadRecords. */
export function safetensorsRecords(path: string, header: SafetensorsHeader): TensorRecord[] {
  if (typeof path !== 'string' || path === '') throw new TypeError(`safetensorsRecords: argument 'path' must be a file path, got ${describe(path)}`);
  if (!isPlainObject(header) || !(header.entries instanceof Map) || !Number.isSafeInteger(header.dataStart) || header.dataStart < 8)
    throw new TypeError(
      `safetensorsRecords: argument 'header' must be a SafetensorsHeader (from readSafetensorsHeader or parseSafetensorsHeader), got ${describe(header)}`,
    );
  if (header.version !== undefined && typeof header.version !== 'string')
    throw new TypeError(`safetensorsRecords: argument 'header': 'version' must be a string, got ${describe(header.version)}`);
  return [...header.entries].map(([name, e]) => ({
    name,
    dtype: e.dtype,
    shape: [...e.shape],
    source: {
      kind: 'file',
      path,
      offset: header.dataStart + e.dataOffsets[0],
      byteLength: e.dataOffsets[1] - e.dataOffsets[0],
      ...(header.version !== undefined && { version: header.version }),
    },
  }));
}

/**
 * Reads tensors from a safetensors file: the header is checked, then each tensor's
 * byte range is read natively into its tensor (see loadRecords for progress and
 * abort). F32, F16, BF16, I32 and U8 load as stored; F64 and the float8s load as
 * float32 (F64 rounded to nearest: a finite value beyond float32's range is an
 * error naming it, never a silent infinity); I64, I16, I8, U64, U32, U16 load as
 * int32 (a value outside int32 is an error naming it); BOOL loads as uint8.
 * `opts.dtype` loads every float tensor as that float dtype instead.
 */
export async function readSafetensors(
  path: string,
  opts: ReadSafetensorsOptions = {},
): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  if (opts === null || typeof opts !== 'object') throw new TypeError(`readSafetensors: argument 'opts' must be an object, got ${describe(opts)}`);
  knownKeys('readSafetensors', 'opts', opts, READ_OPTIONS);
  const header = await readSafetensorsHeader(path);
  let records = safetensorsRecords(path, header);
  if (opts.names !== undefined) {
    if (!Array.isArray(opts.names)) throw new TypeError(`readSafetensors: option 'names' must be an array of strings, got ${describe(opts.names)}`);
    const byName = new Map(records.map((r) => [r.name, r]));
    records = [...new Set(opts.names)].map((name) => byName.get(name) ?? fail(path, `no tensor named '${name}'`));
  }
  const { names: _names, ...rest } = opts;
  const tensors = await loadRecords(records, { ...rest, op: 'safetensors' });
  return { tensors, metadata: header.metadata };
}

/** Like readSafetensors, only the tensors. */
export async function loadSafetensors(path: string, opts?: ReadSafetensorsOptions): Promise<Record<string, Tensor>> {
  // Checked here too, so that the message names the function called.
  if (opts !== null && typeof opts === 'object') knownKeys('loadSafetensors', 'opts', opts, READ_OPTIONS);
  return (await readSafetensors(path, opts)).tensors;
}

/** int32 elements as little-endian int64 (sign-extended): two words per element, no BigInt. */
function widenToI64(src: Int32Array): Uint8Array {
  const out = new Int32Array(src.length * 2);
  for (let i = 0; i < src.length; i++) {
    out[2 * i] = src[i];
    out[2 * i + 1] = src[i] >> 31;
  }
  return new Uint8Array(out.buffer);
}

/**
 * @internal Writes the file under a temporary name next to `path` and returns that
 * name (the caller renames it; saveModel renames a folder's files together).
 */
export async function writeSafetensorsTemp(
  path: string,
  tensors: Record<string, Tensor>,
  opts: WriteSafetensorsOptions = {},
): Promise<string> {
  if (typeof path !== 'string' || path === '') throw new TypeError(`saveSafetensors: argument 'path' must be a file path, got ${describe(path)}`);
  if (!isPlainObject(tensors)) throw new TypeError(`saveSafetensors: argument 'tensors' must be an object of Tensors, got ${describe(tensors)}`);
  if (opts === null || typeof opts !== 'object') throw new TypeError(`saveSafetensors: argument 'opts' must be an object, got ${describe(opts)}`);
  knownKeys('saveSafetensors', 'opts', opts, WRITE_OPTIONS);
  const header: Record<string, unknown> = {};
  if (opts.metadata !== undefined) {
    if (!isPlainObject(opts.metadata)) throw new TypeError(`saveSafetensors: option 'metadata' must be an object of strings`);
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== 'string') throw new TypeError(`saveSafetensors: metadata[${quoteName(k)}] must be a string, got ${describe(v)}`);
      if (k.length > MAX_NAME) throw new RangeError(`saveSafetensors: metadata key ${quoteName(k)} is longer than the ${MAX_NAME} characters the reader accepts`);
    }
    header.__metadata__ = opts.metadata;
  }
  const dtypes = opts.dtypes ?? {};
  if (!isPlainObject(dtypes)) throw new TypeError(`saveSafetensors: option 'dtypes' must be an object of dtype names, got ${describe(dtypes)}`);
  for (const k of Object.keys(dtypes))
    if (!Object.hasOwn(tensors, k)) throw new RangeError(`saveSafetensors: option dtypes names '${k}', which is not among the tensors`);
  const list = Object.entries(tensors);
  const stored: SafetensorsDType[] = [];
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__' || name === '') throw new RangeError(`saveSafetensors: '${name}' is not a valid tensor name`);
    if (name.length > MAX_NAME) throw new RangeError(`saveSafetensors: tensor name ${quoteName(name)} is longer than the ${MAX_NAME} characters the reader accepts`);
    if (!(t instanceof Tensor)) throw new TypeError(`saveSafetensors: tensors['${name}'] must be a Tensor, got ${describe(t)}`);
    if (t.disposed) throw new Error(`saveSafetensors: tensors['${name}'] is a disposed Tensor`);
    const own = WRITE_DTYPE[t.dtype];
    // Own keys only: a tensor named 'constructor' or '__proto__' is just a name.
    const want = Object.hasOwn(dtypes, name) ? dtypes[name] : own;
    const isFloat = (d: string) => d === 'F32' || d === 'F16' || d === 'BF16';
    if (want !== own && !(isFloat(own) && isFloat(want)) && !(own === 'I32' && want === 'I64'))
      throw new TypeError(`saveSafetensors: tensors['${name}'] (${t.dtype}) cannot be stored as ${String(want)} (floats store as F32, F16 or BF16; int32 also as I64)`);
    stored.push(want);
  }
  // The data in decreasing element size (stable), as HF's writer lays it out, so every
  // tensor starts aligned to its element size: a reader may view it in place (a JS
  // BigInt64Array at an offset not a multiple of 8 throws). The header keeps the
  // caller's order.
  const layout = list.map((_, i) => i).sort((a, b) => ITEM_SIZE[stored[b]] - ITEM_SIZE[stored[a]]);
  const offsets = new Array<number>(list.length);
  for (const i of layout) {
    offsets[i] = offset;
    offset += list[i][1].size * ITEM_SIZE[stored[i]];
  }
  list.forEach(([name, t], i) => {
    Object.defineProperty(header, name, {
      value: { dtype: stored[i], shape: [...t.shape], data_offsets: [offsets[i], offsets[i] + t.size * ITEM_SIZE[stored[i]]] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  });
  let json = Buffer.from(JSON.stringify(header), 'utf-8');
  // The data section starts 8-byte aligned; the spec pads the header with spaces.
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  // Checked before anything is written: a file the reader would refuse is no save.
  if (json.length > MAX_HEADER_BYTES)
    throw new RangeError(`saveSafetensors: ${path}: the header would be ${json.length} bytes, over the ${MAX_HEADER_BYTES}-byte limit of readers (too many tensors, or too much metadata)`);
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(json.length));

  removeDeadWritersTemps(path);
  const tmp = tempBeside(path);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx');
  } catch (err) {
    fail(path, `cannot create ${tmp} (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    let pos = 0;
    const write = async (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.length - done, 1 << 30), pos + done);
        done += bytesWritten;
      }
      pos += bytes.length;
    };
    await write(lenBuf);
    await write(json);
    for (const i of layout) {
      const t = list[i][1];
      const want = stored[i];
      // readBytes() gives the logical row-major bytes in the tensor's own dtype
      // (16-bit floats stay 16-bit), which is exactly the stored layout.
      if (want === 'I64') {
        await write(widenToI64(new Int32Array(await readBytes(t))));
      } else if (want !== WRITE_DTYPE[t.dtype]) {
        const c = cast(t, want === 'F32' ? 'float32' : want === 'F16' ? 'float16' : 'bfloat16');
        try {
          await write(new Uint8Array(await readBytes(c)));
        } finally {
          c.dispose();
        }
      } else {
        await write(new Uint8Array(await readBytes(t)));
      }
    }
    await fh.sync();
    await fh.close();
    return tmp;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    if (err instanceof Error && err.message.startsWith('safetensors:')) throw err;
    fail(path, `write failed (${err instanceof Error ? err.message : String(err)})`);
  }
}

/**
 * Writes tensors as safetensors: float32 F32, float16 F16, bfloat16 BF16, int32 I32,
 * uint8 U8 (or as `opts.dtypes` says). Atomic: the file is written under a temporary
 * name in the same folder and renamed over `path`, so readers never see a
 * half-written file.
 */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  opts: WriteSafetensorsOptions = {},
): Promise<void> {
  if (typeof path !== 'string' || path === '') throw new TypeError(`saveSafetensors: argument 'path' must be a file path, got ${describe(path)}`);
  let target: string;
  try {
    target = atomicTarget(path);
  } catch (err) {
    fail(path, err instanceof Error ? err.message : String(err));
  }
  const tmp = await writeSafetensorsTemp(target, tensors, opts);
  try {
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    fail(path, `write failed (${err instanceof Error ? err.message : String(err)})`);
  }
}
