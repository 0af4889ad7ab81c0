// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian tensor bytes. Checkpoints can be many GiB, so tensor
// bytes are read with positioned reads on a file handle, one tensor at a time, and
// written the same way: no whole-file buffer exists on either path. Every header
// field is checked before any byte is trusted, because a corrupt or hostile file must
// fail with a message, not crash the engine or allocate absurd amounts.
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { native } from '../native.js';
import { describe, type DTypeName } from '../dtype.js';
import { resolveDevice } from '../device.js';
import { Tensor, wrap } from '../tensor.js';

/** safetensors dtype names this reader accepts. */
export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'U8' | 'I64' | 'F64' | 'BOOL';

/** Bytes per element of every dtype in the safetensors spec (so errors can tell "unsupported" from "unknown"). */
const ITEM_SIZE: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** How each readable dtype lands in the engine. I64 and F64 are narrowed: the engine has no 64-bit types. */
const ENGINE_DTYPE: Record<SafetensorsDType, DTypeName> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', I32: 'int32', U8: 'uint8',
  I64: 'int32', F64: 'float32', BOOL: 'uint8',
};

const WRITE_DTYPE: Record<DTypeName, SafetensorsDType> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', int32: 'I32', uint8: 'U8',
};

// The Rust reference implementation refuses headers above 100 MB; so do we, before parsing.
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's entry in the header, as validated. */
export interface SafetensorsEntry {
  dtype: string;
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
}

export interface ReadSafetensorsOptions {
  /** Where the tensors are created; default per resolveDevice(). */
  device?: string;
  /** Load only these names (an unknown name is an error). Default: every tensor. */
  names?: readonly string[];
}

export interface WriteSafetensorsOptions {
  /** Stored as `__metadata__`; values must be strings. HF's convention is {format: 'pt'}. */
  metadata?: Record<string, string>;
}

function fail(path: string, problem: string): never {
  throw new Error(`safetensors: ${path}: ${problem}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Parses and checks the header of an open file of the given size. */
async function parseHeader(path: string, fh: FileHandle, fileSize: number): Promise<SafetensorsHeader> {
  if (fileSize < 8) fail(path, `file is ${fileSize} bytes, too short for the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  await readFully(path, fh, lenBuf, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(fileSize - 8))
    fail(path, `header length ${headerLen} runs past the end of the file (${fileSize} bytes; at most ${fileSize - 8} available)`);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) fail(path, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(headerLen);
  const headerBuf = Buffer.alloc(n);
  await readFully(path, fh, headerBuf, 8);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBuf));
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
    entries.set(name, checkEntry(path, name, raw, dataSize));
  }

  // Overlap check: sorted by start, each range must begin at or after the previous end.
  // Zero-size tensors hold no bytes, so they cannot overlap anything.
  const sorted = [...entries]
    .filter(([, e]) => e.dataOffsets[1] > e.dataOffsets[0])
    .sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  for (let i = 1; i < sorted.length; i++) {
    const [pn, pe] = sorted[i - 1];
    const [cn, ce] = sorted[i];
    if (ce.dataOffsets[0] < pe.dataOffsets[1])
      fail(path, `tensors '${pn}' [${pe.dataOffsets.join(', ')}) and '${cn}' [${ce.dataOffsets.join(', ')}) overlap`);
  }
  return { entries, metadata, dataStart };
}

function checkEntry(path: string, name: string, raw: unknown, dataSize: number): SafetensorsEntry {
  const where = `tensor '${name}'`;
  if (!isPlainObject(raw)) fail(path, `${where}: entry must be an object, got ${describe(raw)}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string') fail(path, `${where}: 'dtype' must be a string, got ${describe(dtype)}`);
  const item = ITEM_SIZE[dtype];
  if (item === undefined) fail(path, `${where}: unknown dtype '${dtype}'`);
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0))
    fail(path, `${where}: 'shape' must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    offsets.some((o) => typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0)
  )
    fail(path, `${where}: 'data_offsets' must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(path, `${where}: data_offsets [${begin}, ${end}] has begin after end`);
  if (end > dataSize)
    fail(path, `${where}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataSize} bytes)`);
  const count = numel(shape as number[]);
  if (!Number.isSafeInteger(count * item) || count * item !== end - begin)
    fail(
      path,
      `${where}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${count * item} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  return { dtype, shape: shape as number[], dataOffsets: [begin, end] };
}

async function readFully(path: string, fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    // One read() is capped at 2 GiB by the OS; loop for large tensors and short reads.
    const chunk = Math.min(buf.byteLength - done, 1 << 30);
    const { bytesRead } = await fh.read(buf, done, chunk, position + done);
    if (bytesRead === 0) fail(path, `unexpected end of file at byte ${position + done} (file truncated?)`);
    done += bytesRead;
  }
}

/** The header of a safetensors file (names, dtypes, shapes, offsets, metadata), checked against the file size. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openOrFail(path);
  try {
    return await parseHeader(path, fh, (await fh.stat()).size);
  } finally {
    await fh.close();
  }
}

async function openOrFail(path: string): Promise<FileHandle> {
  if (typeof path !== 'string') throw new TypeError(`safetensors: argument 'path' must be a string, got ${describe(path)}`);
  try {
    return await open(path, 'r');
  } catch (err) {
    fail(path, `cannot open (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Converts one tensor's bytes (little-endian, as stored) to an engine tensor. */
function toTensor(path: string, name: string, e: SafetensorsEntry, bytes: ArrayBuffer, device: string): Tensor {
  const dtype = e.dtype as SafetensorsDType;
  const target = ENGINE_DTYPE[dtype];
  let arr: ArrayBufferView;
  switch (dtype) {
    case 'I64': {
      const src = new BigInt64Array(bytes);
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const v = src[i];
        if (v > 2147483647n || v < -2147483648n)
          fail(path, `tensor '${name}': I64 value ${v} at flat index ${i} does not fit in int32 (the engine's integer type)`);
        out[i] = Number(v);
      }
      arr = out;
      break;
    }
    case 'F64':
      arr = new Float32Array(new Float64Array(bytes));
      break;
    case 'F32':
      arr = new Float32Array(bytes);
      break;
    case 'I32':
      arr = new Int32Array(bytes);
      break;
    default:
      // U8, BOOL and the 16-bit floats go in as raw bytes.
      arr = new Uint8Array(bytes);
  }
  return wrap(native.fromBuffer(arr, e.shape, target, device));
}

/**
 * Reads tensors from a safetensors file. float32/float16/bfloat16/int32/uint8 load as
 * stored; I64 is narrowed to int32 (a value out of range is an error), F64 to float32,
 * BOOL to uint8. Other dtypes are an error naming the tensor.
 */
export async function readSafetensors(
  path: string,
  opts: ReadSafetensorsOptions = {},
): Promise<{ tensors: Record<string, Tensor>; metadata: Record<string, string> }> {
  const device = resolveDevice('readSafetensors', opts.device);
  const fh = await openOrFail(path);
  const tensors: Record<string, Tensor> = {};
  try {
    const header = await parseHeader(path, fh, (await fh.stat()).size);
    const names = opts.names ? [...new Set(opts.names)] : [...header.entries.keys()];
    for (const name of names) {
      const e = header.entries.get(name);
      if (e === undefined) fail(path, `no tensor named '${name}'`);
      if (!(e.dtype in ENGINE_DTYPE))
        fail(path, `tensor '${name}' has dtype ${e.dtype}, which is not supported (readable: ${Object.keys(ENGINE_DTYPE).join(', ')})`);
    }
    for (const name of names) {
      const e = header.entries.get(name)!;
      const [begin, end] = e.dataOffsets;
      // A fresh ArrayBuffer per tensor: offset 0, so typed views over it are aligned.
      const bytes = new ArrayBuffer(end - begin);
      await readFully(path, fh, new Uint8Array(bytes), header.dataStart + begin);
      tensors[name] = toTensor(path, name, e, bytes, device);
    }
    return { tensors, metadata: header.metadata };
  } catch (err) {
    for (const t of Object.values(tensors)) t.dispose();
    throw err;
  } finally {
    await fh.close();
  }
}

/** Like readSafetensors, only the tensors. */
export async function loadSafetensors(path: string, opts?: ReadSafetensorsOptions): Promise<Record<string, Tensor>> {
  return (await readSafetensors(path, opts)).tensors;
}

/**
 * Writes tensors as safetensors: float32 F32, float16 F16, bfloat16 BF16, int32 I32,
 * uint8 U8. Atomic: the file is written under a temporary name in the same folder and
 * renamed over `path`, so readers never see a half-written file.
 */
export async function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  opts: WriteSafetensorsOptions = {},
): Promise<void> {
  if (typeof path !== 'string') throw new TypeError(`saveSafetensors: argument 'path' must be a string, got ${describe(path)}`);
  if (!isPlainObject(tensors)) throw new TypeError(`saveSafetensors: argument 'tensors' must be an object of Tensors, got ${describe(tensors)}`);
  const header: Record<string, unknown> = {};
  if (opts.metadata !== undefined) {
    if (!isPlainObject(opts.metadata)) throw new TypeError(`saveSafetensors: option 'metadata' must be an object of strings`);
    for (const [k, v] of Object.entries(opts.metadata))
      if (typeof v !== 'string') throw new TypeError(`saveSafetensors: metadata['${k}'] must be a string, got ${describe(v)}`);
    header.__metadata__ = opts.metadata;
  }
  const list = Object.entries(tensors);
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__' || name === '') throw new RangeError(`saveSafetensors: '${name}' is not a valid tensor name`);
    if (!(t instanceof Tensor)) throw new TypeError(`saveSafetensors: tensors['${name}'] must be a Tensor, got ${describe(t)}`);
    if (t.disposed) throw new Error(`saveSafetensors: tensors['${name}'] is a disposed Tensor`);
    const dtype = WRITE_DTYPE[t.dtype];
    const size = t.size * ITEM_SIZE[dtype];
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf-8');
  // The data section starts 8-byte aligned; the spec pads the header with spaces.
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(json.length));

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle;
  try {
    fh = await open(tmp, 'wx');
  } catch (err) {
    fail(path, `cannot create ${tmp} (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    let pos = 0;
    for (const chunk of [lenBuf, json]) {
      await fh.write(chunk, 0, chunk.length, pos);
      pos += chunk.length;
    }
    for (const [, t] of list) {
      // handle.read() gives the logical row-major bytes in the tensor's own dtype
      // (16-bit floats stay 16-bit), which is exactly the stored layout.
      const bytes = new Uint8Array(await t.handle.read());
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.length - done, 1 << 30), pos + done);
        done += bytesWritten;
      }
      pos += bytes.length;
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    if (err instanceof Error && err.message.startsWith('safetensors:')) throw err;
    fail(path, `write failed (${err instanceof Error ? err.message : String(err)})`);
  }
}

