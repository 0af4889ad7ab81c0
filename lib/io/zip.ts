// A minimal zip reader for checkpoint archives (torch.save writes a zip of a pickle
// plus one STORED entry per tensor storage).
//
// The central directory is the only index trusted; each local header is read once to
// find where its data starts, and every range is checked against the file and against
// the other entries (overlapping entries are how some zip bombs multiply their size).
// STORED entries are never read here: callers get their byte range and read tensors
// straight from the file. Entries read into memory are capped twice, by the declared
// size and by a hard limit, so a DEFLATE stream that inflates past either is refused
// as a zip bomb, and their CRC-32 is checked.
import { closeSync, read as readCb, readSync } from 'node:fs';
import { promisify } from 'node:util';
import { crc32, inflateRawSync } from 'node:zlib';
import { MAX_NAME, fileVersion, openRegularFileSync } from './records.js';

/** One file in the archive, from the central directory and its local header. */
export interface ZipEntry {
  name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  method: 0 | 8;
  compressedSize: number;
  uncompressedSize: number;
  crc32: number;
  /** Absolute offset of the entry's (possibly compressed) data. */
  dataOffset: number;
}

/** The most any entry may inflate to in memory, whatever it declares. */
export const MAX_INFLATED_BYTES = 512 * 1024 * 1024;
const MAX_ENTRIES = 1 << 20;
const SMALL_READ = 1 << 20;

/** An open archive file; a small one is also held whole, so its records cost no reads. */
interface Source {
  path: string;
  fd: number;
  whole: Buffer | null;
}
const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

export class ZipError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`zip: ${path}: ${problem}`);
    this.name = 'ZipError';
  }
}

function u64(b: Buffer, at: number, path: string, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(path, `${what} ${v} is absurd`);
  return Number(v);
}

/** Why a name is unsafe to treat as an archive path, or null when it is fine. */
function badName(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (name.includes('\0')) return 'contains a NUL byte';
  if (name.includes('\\')) return 'contains a backslash';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'is absolute';
  if (name.split('/').some((part) => part === '..' || part === '.')) return "has a '.' or '..' component";
  return null;
}

export class ZipReader {
  private constructor(
    readonly path: string,
    private src: Source,
    readonly size: number,
    /** Entries by name, in central-directory order. */
    readonly entries: ReadonlyMap<string, ZipEntry>,
    /** fileVersion() of the archive when it was opened. */
    readonly version: string,
  ) {}

  /** Opens an archive and validates its whole directory. */
  static async open(path: string): Promise<ZipReader> {
    if (typeof path !== 'string') throw new TypeError(`zip: argument 'path' must be a string, got ${typeof path}`);
    // Synchronous open and directory walk: these are small reads, and a thread-pool
    // round trip for each (one per tensor) would dominate opening an archive.
    let opened: ReturnType<typeof openRegularFileSync>;
    try {
      opened = openRegularFileSync(path);
    } catch (err) {
      throw new ZipError(path, `cannot open (${err instanceof Error ? err.message : String(err)})`);
    }
    const { fd, stat: st } = opened;
    try {
      const size = Number(st.size);
      const src: Source = { path, fd, whole: null };
      if (size <= SMALL_READ) src.whole = readAt(src, 0, size);
      return new ZipReader(path, src, size, readDirectory(src, size), fileVersion(st));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private handle(): Source {
    if (this.src.fd < 0) throw new ZipError(this.path, 'reader is closed');
    return this.src;
  }

  get(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /**
   * An entry's bytes in memory, inflated if needed and CRC-checked. `limit` (default
   * and at most MAX_INFLATED_BYTES) caps the size accepted.
   */
  async read(entry: ZipEntry, limit = MAX_INFLATED_BYTES): Promise<Buffer> {
    if (typeof entry !== 'object' || entry === null || this.entries.get(entry.name) !== entry)
      throw new TypeError(`zip: ${this.path}: argument 'entry' must be an entry of this archive (from get() or entries)`);
    if (!(Number.isSafeInteger(limit) && limit >= 0)) throw new TypeError(`zip: ${this.path}: argument 'limit' must be a non-negative integer, got ${String(limit)}`);
    const cap = Math.min(limit, MAX_INFLATED_BYTES);
    const where = `entry '${entry.name}'`;
    if (entry.uncompressedSize > cap)
      throw new ZipError(this.path, `${where} declares ${entry.uncompressedSize} bytes, over the ${cap}-byte limit for entries read into memory`);
    if (entry.method === 8 && entry.compressedSize > cap + 1024)
      throw new ZipError(this.path, `${where} has ${entry.compressedSize} compressed bytes, over the ${cap}-byte limit`);
    let raw: Buffer;
    // Small entries (a pickle, a version string) skip the thread-pool round trip.
    if (entry.compressedSize <= SMALL_READ) raw = Buffer.from(readAt(this.handle(), entry.dataOffset, entry.compressedSize));
    else {
      raw = Buffer.alloc(entry.compressedSize);
      await readFully(this.path, this.handle().fd, raw, entry.dataOffset);
    }
    let out: Buffer;
    if (entry.method === 0) out = raw;
    else {
      try {
        // One byte of headroom over the declared size: output that fills it means the
        // stream inflates past what it declared.
        out = inflateRawSync(raw, { maxOutputLength: entry.uncompressedSize + 1 });
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError)
          throw new ZipError(this.path, `${where} inflates past its declared ${entry.uncompressedSize} bytes (zip bomb?)`);
        throw new ZipError(this.path, `${where} is not valid DEFLATE data (${err instanceof Error ? err.message : String(err)})`);
      }
    }
    if (out.length !== entry.uncompressedSize)
      throw new ZipError(
        this.path,
        out.length > entry.uncompressedSize
          ? `${where} inflates past its declared ${entry.uncompressedSize} bytes (zip bomb?)`
          : `${where} holds ${out.length} bytes, not the ${entry.uncompressedSize} it declares`,
      );
    const sum = crc32(out) >>> 0;
    if (sum !== entry.crc32)
      throw new ZipError(this.path, `${where} fails its CRC-32 check (0x${sum.toString(16)} != 0x${entry.crc32.toString(16)}): the file is corrupt`);
    return out;
  }

  async close(): Promise<void> {
    if (this.src.fd >= 0) closeSync(this.src.fd);
    this.src = { path: this.path, fd: -1, whole: null };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

const readAsync = promisify(readCb);

/** A large read, off the JS thread. */
async function readFully(path: string, fd: number, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.byteLength) {
    const { bytesRead } = await readAsync(fd, buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
    if (bytesRead === 0) throw new ZipError(path, `unexpected end of file at byte ${position + done} (file truncated?)`);
    done += bytesRead;
  }
}

/** A small synchronous read (directory records, small entries). */
function readAt(src: Source, position: number, length: number): Buffer {
  const { path, fd, whole } = src;
  if (whole && position + length <= whole.length) return whole.subarray(position, position + length);
  const b = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, b, done, length - done, position + done);
    if (n === 0) throw new ZipError(path, `unexpected end of file at byte ${position + done} (file truncated?)`);
    done += n;
  }
  return b;
}

function readDirectory(src: Source, size: number): Map<string, ZipEntry> {
  const path = src.path;
  const fail: (problem: string) => never = (problem) => {
    throw new ZipError(path, problem);
  };
  if (size < 22) fail(`file is ${size} bytes, too short for a zip archive (the end record alone is 22)`);

  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = readAt(src, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('no end-of-central-directory record (not a zip archive, or truncated)');
  const eocdPos = size - tailLen + eocd;
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) fail('multi-disk archives are not supported');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  let cdEnd = eocdPos;

  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // zip64: a locator just before the end record points at the zip64 end record.
    if (eocdPos < 20) fail('zip64 fields without a zip64 locator');
    const loc = readAt(src, eocdPos - 20, 20);
    if (loc.readUInt32LE(0) !== ZIP64_LOCATOR_SIG) fail('zip64 fields without a zip64 locator');
    const recPos = u64(loc, 8, path, 'zip64 end record offset');
    if (recPos + 56 > eocdPos - 20) fail(`zip64 end record offset ${recPos} is outside the file`);
    const rec = readAt(src, recPos, 56);
    if (rec.readUInt32LE(0) !== ZIP64_EOCD_SIG) fail(`no zip64 end record at byte ${recPos}`);
    count = u64(rec, 32, path, 'zip64 entry count');
    cdSize = u64(rec, 40, path, 'zip64 central directory size');
    cdOffset = u64(rec, 48, path, 'zip64 central directory offset');
    cdEnd = recPos;
  }
  if (count > MAX_ENTRIES) fail(`${count} entries, over the ${MAX_ENTRIES} this reader accepts`);
  if (cdOffset + cdSize > cdEnd) fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) runs past its end record at byte ${cdEnd}`);
  if (count * 46 > cdSize) fail(`central directory of ${cdSize} bytes cannot hold ${count} entries`);

  const cd = readAt(src, cdOffset, cdSize);
  // A small archive's local headers come from one read; a large one's one at a time.
  const area = cdOffset <= SMALL_READ ? readAt(src, 0, cdOffset) : null;
  const entries = new Map<string, ZipEntry>();
  const spans: { name: string; start: number; end: number }[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cd.readUInt32LE(p) !== CENTRAL_SIG) fail(`central directory entry ${i} is malformed (byte ${cdOffset + p})`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localOffset = cd.readUInt32LE(p + 42);
    const recLen = 46 + nameLen + extraLen + commentLen;
    if (p + recLen > cdSize) fail(`central directory entry ${i} runs past the directory`);
    // Names become Map keys (see MAX_NAME); checked on the bytes, before decoding.
    if (nameLen > MAX_NAME) fail(`entry ${i} has a name of ${nameLen} bytes, over the ${MAX_NAME}-byte limit`);
    const rawName = cd.subarray(p + 46, p + 46 + nameLen);
    let name: string;
    try {
      name = flags & 0x800 ? new TextDecoder('utf-8', { fatal: true }).decode(rawName) : rawName.toString('latin1');
    } catch {
      fail(`entry ${i} has a name that is not valid UTF-8`);
    }
    const why = badName(name);
    if (why) fail(`entry name '${name.slice(0, 100)}' ${why}`);
    if (entries.has(name)) fail(`entry '${name}' appears twice`);

    // zip64 extended information: the 8-byte values replace those set to 0xffffffff, in order.
    const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
    for (let q = 0; q + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(q);
      const len = extra.readUInt16LE(q + 2);
      if (q + 4 + len > extra.length) fail(`entry '${name}' has a malformed extra field`);
      if (id === 0x0001) {
        let r = q + 4;
        const take = (what: string): number => {
          if (r + 8 > q + 4 + len) fail(`entry '${name}' has a short zip64 extra field`);
          const v = u64(extra, r, path, `entry '${name}' ${what}`);
          r += 8;
          return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localOffset === 0xffffffff) localOffset = take('local header offset');
      }
      q += 4 + len;
    }
    p += recLen;

    if (flags & 0x1) fail(`entry '${name}' is encrypted`);
    if (method !== 0 && method !== 8) fail(`entry '${name}' uses compression method ${method} (only STORED and DEFLATE are supported)`);
    if (method === 0 && compressedSize !== uncompressedSize)
      fail(`STORED entry '${name}' declares ${compressedSize} stored but ${uncompressedSize} uncompressed bytes`);
    if (localOffset + 30 > cdOffset) fail(`entry '${name}' local header at byte ${localOffset} is outside the data area`);
    // The local header and its name in one read (the name must match the central one).
    const localLen = Math.min(30 + nameLen, cdOffset - localOffset);
    const local = area ? area.subarray(localOffset, localOffset + localLen) : readAt(src, localOffset, localLen);
    if (local.readUInt32LE(0) !== LOCAL_SIG) fail(`entry '${name}' has no local header at byte ${localOffset}`);
    const localNameLen = local.readUInt16LE(26);
    const localExtraLen = local.readUInt16LE(28);
    if (localNameLen !== nameLen || !local.subarray(30).equals(rawName)) fail(`entry '${name}' has a different name in its local header`);
    const dataOffset = localOffset + 30 + localNameLen + localExtraLen;
    if (dataOffset + compressedSize > cdOffset)
      fail(`entry '${name}' data [${dataOffset}, ${dataOffset + compressedSize}) runs into the central directory at byte ${cdOffset}`);
    entries.set(name, Object.freeze({ name, method: method as 0 | 8, compressedSize, uncompressedSize, crc32: crc, dataOffset }));
    spans.push({ name, start: localOffset, end: dataOffset + compressedSize });
  }

  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++)
    if (spans[i].start < spans[i - 1].end) fail(`entries '${spans[i - 1].name}' and '${spans[i].name}' overlap`);
  return entries;
}
