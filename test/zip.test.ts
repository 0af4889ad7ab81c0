// Specification of the zip reader: the directory of a torch.save archive with each
// entry's data offset, in-memory reads that inflate and CRC-check, zip64 records, and
// refusal of everything unsafe (path escapes, duplicates, overlaps, encryption, other
// methods, zip bombs, truncation) with an error naming the file.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateRawSync } from 'node:zlib';

import { MAX_INFLATED_BYTES, ZipReader } from '../lib/io/zip.js';

const here = dirname(fileURLToPath(import.meta.url));
const CKPT = join(here, '..', '..', 'test', 'fixtures', 'checkpoints');
const dir = mkdtempSync(join(tmpdir(), 'perceiver-zip-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

interface Spec {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
  flags?: number;
  method?: number;
  /** Overrides of what the central directory declares. */
  size?: number;
  compressedSize?: number;
  localOffset?: number;
}

/** Writes a zip byte by byte so each field can be made wrong on purpose. */
function makeZip(specs: Spec[], opts: { zip64?: boolean; comment?: string } = {}): string {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const s of specs) {
    const name = Buffer.from(s.name, 'utf-8');
    const body = s.deflate ? deflateRawSync(s.data) : Buffer.from(s.data);
    const method = s.method ?? (s.deflate ? 8 : 0);
    const crc = crc32(s.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(s.flags ?? 0x800, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(s.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const localOffset = offset;
    parts.push(local, name, body);
    offset += 30 + name.length + body.length;

    const z64 = opts.zip64 ?? false;
    const extra = Buffer.alloc(z64 ? 28 : 0);
    if (z64) {
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(s.size ?? s.data.length), 4);
      extra.writeBigUInt64LE(BigInt(s.compressedSize ?? body.length), 12);
      extra.writeBigUInt64LE(BigInt(s.localOffset ?? localOffset), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(s.flags ?? 0x800, 8);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(z64 ? 0xffffffff : (s.compressedSize ?? body.length), 20);
    c.writeUInt32LE(z64 ? 0xffffffff : (s.size ?? s.data.length), 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(extra.length, 30);
    c.writeUInt32LE(z64 ? 0xffffffff : (s.localOffset ?? localOffset), 42);
    central.push(c, name, extra);
  }
  const cd = Buffer.concat(central);
  const cdOffset = offset;
  const tail: Buffer[] = [cd];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(specs.length), 24);
    rec.writeBigUInt64LE(BigInt(specs.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const comment = Buffer.from(opts.comment ?? '');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(opts.zip64 ? 0xffff : specs.length, 8);
  end.writeUInt16LE(opts.zip64 ? 0xffff : specs.length, 10);
  end.writeUInt32LE(opts.zip64 ? 0xffffffff : cd.length, 12);
  end.writeUInt32LE(opts.zip64 ? 0xffffffff : cdOffset, 16);
  end.writeUInt16LE(comment.length, 20);
  const path = join(dir, `z${n++}.zip`);
  writeFileSync(path, Buffer.concat([...parts, ...tail, end, comment]));
  return path;
}

const text = (s: string) => new TextEncoder().encode(s);

async function refused(t: import('ava').ExecutionContext, path: string, re: RegExp): Promise<void> {
  const err = await t.throwsAsync(async () => {
    const z = await ZipReader.open(path);
    try {
      for (const e of z.entries.values()) await z.read(e);
    } finally {
      await z.close();
    }
  });
  t.true(err!.message.includes(path), err!.message);
  t.regex(err!.message, re);
}

test("a torch.save archive lists its entries, and STORED entries' offsets point at their bytes", async (t) => {
  const path = join(CKPT, 'tied_strided.bin');
  const file = readFileSync(path);
  await using z = await ZipReader.open(path);
  t.true(z.entries.has('archive/data.pkl'));
  t.true(z.entries.has('archive/version'));
  t.true([...z.entries.keys()].filter((k) => k.startsWith('archive/data/')).length > 0);
  for (const e of z.entries.values()) {
    t.is(e.method, 0, `${e.name}: torch.save stores uncompressed`);
    const bytes = await z.read(e);
    t.deepEqual(bytes, file.subarray(e.dataOffset, e.dataOffset + e.uncompressedSize), e.name);
  }
  t.is((await z.read(z.get('archive/version')!)).toString(), '3\n');
});

test('DEFLATE entries inflate to the same bytes as the stored archive', async (t) => {
  await using stored = await ZipReader.open(join(CKPT, 'tied_strided.bin'));
  await using deflated = await ZipReader.open(join(CKPT, 'tied_strided_deflated.bin'));
  t.deepEqual([...deflated.entries.keys()].sort(), [...stored.entries.keys()].sort());
  for (const e of deflated.entries.values()) {
    t.is(e.method, 8, e.name);
    t.deepEqual(await deflated.read(e), await stored.read(stored.get(e.name)!), e.name);
  }
});

test('zip64 end records and extra fields are read', async (t) => {
  const path = makeZip([{ name: 'a/data.pkl', data: text('hello') }, { name: 'a/b', data: text('world!'), deflate: true }], { zip64: true });
  await using z = await ZipReader.open(path);
  t.deepEqual([...z.entries.keys()], ['a/data.pkl', 'a/b']);
  t.is((await z.read(z.get('a/data.pkl')!)).toString(), 'hello');
  t.is((await z.read(z.get('a/b')!)).toString(), 'world!');
});

test('an archive comment does not hide the end record', async (t) => {
  const path = makeZip([{ name: 'x', data: text('1') }], { comment: 'PK\x05\x06 not really an end record' });
  await using z = await ZipReader.open(path);
  t.is((await z.read(z.get('x')!)).toString(), '1');
});

test('entries read into memory are CRC-checked', async (t) => {
  const file = readFileSync(join(CKPT, 'tied_strided.bin'));
  const z0 = await ZipReader.open(join(CKPT, 'tied_strided.bin'));
  const e = z0.get('archive/data/1')!;
  await z0.close();
  const copy = Buffer.from(file);
  copy[e.dataOffset + 3] ^= 0x40;
  const path = join(dir, 'crc.zip');
  writeFileSync(path, copy);
  await using z = await ZipReader.open(path);
  await t.throwsAsync(z.read(z.get('archive/data/1')!), { message: /crc\.zip: entry 'archive\/data\/1' fails its CRC-32 check/ });
});

test('zip bombs: output past the declared size, a declared size over the cap, and a caller limit', async (t) => {
  const zeros = new Uint8Array(1 << 22);
  await refused(t, makeZip([{ name: 'p', data: zeros, deflate: true, size: 1000 }]), /entry 'p' inflates past its declared 1000 bytes \(zip bomb\?\)/);
  await refused(t, makeZip([{ name: 'p', data: zeros, deflate: true, size: MAX_INFLATED_BYTES + 1 }]), /declares \d+ bytes, over the \d+-byte limit/);
  await using z = await ZipReader.open(makeZip([{ name: 'p', data: zeros, deflate: true }]));
  await t.throwsAsync(z.read(z.get('p')!, 1024), { message: /over the 1024-byte limit/ });
  t.is((await z.read(z.get('p')!)).length, zeros.length);
});

test('names that could escape a folder, and duplicates, are refused', async (t) => {
  const d = text('x');
  await refused(t, makeZip([{ name: '../evil', data: d }]), /entry name '\.\.\/evil' has a '\.' or '\.\.' component/);
  await refused(t, makeZip([{ name: 'a/../../b', data: d }]), /component/);
  await refused(t, makeZip([{ name: '/etc/passwd', data: d }]), /is absolute/);
  await refused(t, makeZip([{ name: 'C:/x', data: d }]), /is absolute/);
  await refused(t, makeZip([{ name: 'a\\b', data: d }]), /backslash/);
  await refused(t, makeZip([{ name: 'a\0b', data: d }]), /NUL/);
  await refused(t, makeZip([{ name: 'same', data: d }, { name: 'same', data: d }]), /'same' appears twice/);
});

test('overlapping entries, encryption, other methods and bad offsets are refused', async (t) => {
  const d = text('0123456789');
  await refused(t, makeZip([{ name: 'a', data: d, size: 40, compressedSize: 40 }, { name: 'b', data: d }]), /entries 'a' and 'b' overlap/);
  await refused(t, makeZip([{ name: 'a', data: d, flags: 0x801 }]), /entry 'a' is encrypted/);
  await refused(t, makeZip([{ name: 'a', data: d, method: 12 }]), /compression method 12/);
  await refused(t, makeZip([{ name: 'a', data: d, localOffset: 5 }]), /no local header at byte 5/);
  await refused(t, makeZip([{ name: 'a', data: d, size: 11 }]), /STORED entry 'a' declares 10 stored but 11 uncompressed bytes/);
  await refused(t, makeZip([{ name: 'a', data: d, size: 9000, compressedSize: 9000 }]), /runs into the central directory/);
});

test('truncated archives and non-zips fail with the file named', async (t) => {
  const full = readFileSync(join(CKPT, 'tied_strided.bin'));
  for (const cut of [0, 10, 21, 1000, full.length - 200, full.length - 23, full.length - 1]) {
    const path = join(dir, `cut${cut}.zip`);
    writeFileSync(path, full.subarray(0, cut));
    await refused(t, path, /too short|no end-of-central-directory|runs past|outside|malformed|unexpected end/);
  }
  await refused(t, join(CKPT, 'plain_proto4.pickle'), /no end-of-central-directory record/);
  await refused(t, join(dir, 'missing.zip'), /cannot open/);
});

test('entry names longer than 1024 bytes are refused with the entry and the length named; 1024 is accepted', async (t) => {
  // Longer names all hash alike in V8: an archive of many would take quadratic time to index.
  await refused(t, makeZip([{ name: 'a/' + 'x'.repeat(1023), data: text('x') }]), /entry 0 has a name of 1025 bytes, over the 1024-byte limit/);
  const ok = await ZipReader.open(makeZip([{ name: 'y'.repeat(1024), data: text('x') }]));
  t.deepEqual([...ok.entries.keys()].map((k) => k.length), [1024]);
  await ok.close();
});

const fifoTest = process.platform === 'win32' ? test.skip : test;
fifoTest('a named pipe or a folder is refused at once instead of waited on', async (t) => {
  const fifo = join(dir, 'fifo.zip');
  execFileSync('mkfifo', [fifo]);
  await refused(t, fifo, /^zip: .*fifo\.zip: cannot open \(.*fifo\.zip is a named pipe \(FIFO\), not a regular file\)$/);
  await refused(t, dir, /cannot open \(.* is a directory, not a regular file\)$/);
});
