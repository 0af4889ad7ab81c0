// Fuzzing the safetensors reader and the record loader: valid files mutated (bit
// flips, truncations, header-length edits, JSON edits with random values, random
// headers, inserted and deleted bytes) must either parse/load — and then satisfy
// every invariant the reader promises — or fail with an Error whose message names
// the file. Never a crash, a hang, a non-Error throw or a leaked tensor. Header
// parsing is pure (parseSafetensorsHeader), so most iterations run in memory; a
// subset is written to disk and loaded in full through the native reader.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import type { TensorRecord } from '../lib/index.js';
import { caseDir } from './helpers/hf-fixture.js';
import { baseline, live } from './helpers/device.js';

const dir = mkdtempSync(join(tmpdir(), 'perceiver-fuzz-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** mulberry32: a small seeded generator, so a failure reproduces from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL', 'F4', 'C64', 'Q4', ''];

function randomValue(r: () => number, depth = 0): unknown {
  const k = Math.floor(r() * (depth > 2 ? 8 : 11));
  switch (k) {
    case 0: return Math.floor(r() * 64) - 8;
    case 1: return [0, -1, 1.5, -0, 1e300, 2 ** 53 + 2, 2 ** 64, Number.MAX_SAFE_INTEGER, 4294967296][Math.floor(r() * 9)];
    case 2: return DTYPES[Math.floor(r() * DTYPES.length)];
    case 3: return null;
    case 4: return r() < 0.5;
    case 5: return 'x'.repeat(Math.floor(r() * 5));
    case 6: return [Math.floor(r() * 10), Math.floor(r() * 10)];
    case 7: return [];
    case 8: return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    case 9: return { dtype: randomValue(r, depth + 1), shape: randomValue(r, depth + 1), data_offsets: randomValue(r, depth + 1) };
    default: return Object.fromEntries(Array.from({ length: Math.floor(r() * 3) }, (_, i) => [`k${i}`, randomValue(r, depth + 1)]));
  }
}

function encode(header: unknown, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  let json = Buffer.from(JSON.stringify(header), 'utf-8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
  return new Uint8Array(Buffer.concat([len, json, data]));
}

/** A small valid file with every readable dtype, a zero-size tensor and metadata. */
function smallFile(): Uint8Array {
  const parts: [string, string, number[], number][] = [
    ['a', 'F32', [2, 3], 4], ['b', 'F16', [4], 2], ['c', 'I64', [3], 8], ['d', 'BOOL', [5], 1], ['e', 'F64', [2], 8],
    ['f', 'BF16', [1, 1, 2], 2], ['g', 'U8', [0, 4], 1], ['h', 'I32', [], 4], ['i', 'F8_E4M3', [3], 1], ['j', 'U16', [2], 2],
  ];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'fuzz' } };
  let off = 0;
  for (const [name, dtype, shape, item] of parts) {
    const size = shape.reduce((x, y) => x * y, 1) * item;
    header[name] = { dtype, shape, data_offsets: [off, off + size] };
    off += size;
  }
  // Small integers and ordinary floats, so a successful load stays in range.
  const data = new Uint8Array(off);
  for (let i = 0; i < off; i += 8) data[i] = (i >> 3) & 0x3f;
  return encode(header, data);
}

function headerOf(buf: Uint8Array): { json: Record<string, unknown>; n: number } {
  const n = Number(Buffer.from(buf.buffer, buf.byteOffset, 8).readBigUInt64LE(0));
  return { json: JSON.parse(Buffer.from(buf.subarray(8, 8 + n)).toString('utf-8')) as Record<string, unknown>, n };
}

/** One random mutation of a valid file; `size` is the file size it claims to have. */
function mutate(r: () => number, base: Uint8Array, baseSize: number): { buf: Uint8Array; size: number; kind: string } {
  const { json, n } = headerOf(base);
  const data = base.subarray(8 + n);
  const extra = baseSize - base.length; // bytes of the real file beyond the prefix we hold
  const kind = ['bitflip', 'truncate', 'length', 'json', 'json', 'json', 'random', 'splice'][Math.floor(r() * 8)];
  switch (kind) {
    case 'bitflip': {
      const buf = new Uint8Array(base);
      const span = Math.min(buf.length, 8 + n + 32);
      for (let k = 1 + Math.floor(r() * 8); k > 0; k--) buf[Math.floor(r() * span)] ^= 1 << Math.floor(r() * 8);
      return { buf, size: baseSize, kind };
    }
    case 'truncate': {
      const size = Math.floor(r() * baseSize);
      return { buf: base.subarray(0, Math.min(size, base.length)), size, kind };
    }
    case 'length': {
      const choices = [BigInt(n) + BigInt(Math.floor(r() * 33) - 16), 2n ** 63n, 2n ** 64n - 1n, BigInt(Math.floor(r() * 2 ** 32)), 0n, 100_000_001n];
      const buf = new Uint8Array(base);
      const v = choices[Math.floor(r() * choices.length)];
      Buffer.from(buf.buffer).writeBigUInt64LE(v < 0n ? 0n : v, 0);
      return { buf, size: baseSize, kind };
    }
    case 'json': {
      const h = structuredClone(json);
      const names = Object.keys(h);
      const name = names[Math.floor(r() * names.length)];
      const entry = h[name] as Record<string, unknown>;
      const op = Math.floor(r() * 6);
      if (op === 0) h[name] = randomValue(r);
      else if (op === 1) delete h[name];
      else if (op === 2) h[`new${Math.floor(r() * 9)}`] = randomValue(r);
      else if (entry && typeof entry === 'object') {
        const field = ['dtype', 'shape', 'data_offsets'][Math.floor(r() * 3)];
        if (op === 3) entry[field] = randomValue(r);
        else if (op === 4) delete entry[field];
        // op 5: a plausible edit (offsets shifted, shape dimension changed)
        else if (Array.isArray(entry[field])) (entry[field] as number[])[0] = Math.floor(r() * 40) - 4;
      }
      const buf = encode(h, data);
      return { buf, size: buf.length + extra, kind };
    }
    case 'random': {
      const buf = encode(randomValue(r), data);
      return { buf, size: buf.length + extra, kind };
    }
    default: {
      // Insert or delete a few bytes inside the header, keeping the stated length.
      const at = 8 + Math.floor(r() * n);
      const k = 1 + Math.floor(r() * 4);
      const parts = r() < 0.5 ? [base.subarray(0, at), base.subarray(at + k)] : [base.subarray(0, at), Uint8Array.from({ length: k }, () => Math.floor(r() * 256)), base.subarray(at)];
      const buf = new Uint8Array(Buffer.concat(parts));
      return { buf, size: buf.length + extra, kind };
    }
  }
}

/** What a successful parse promises. */
function checkInvariants(h: P.SafetensorsHeader, size: number): string | null {
  const dataSize = size - h.dataStart;
  const ranges: [number, number][] = [];
  for (const [name, e] of h.entries) {
    const [b, end] = e.dataOffsets;
    if (!(Number.isSafeInteger(b) && Number.isSafeInteger(end) && b >= 0 && b <= end && end <= dataSize)) return `${name}: bad range`;
    const count = e.shape.reduce((x, y) => x * y, 1);
    if (count * P.RECORD_ITEM_SIZE[e.dtype] !== end - b) return `${name}: size mismatch`;
    if (end > b) ranges.push([b, end]);
  }
  ranges.sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < ranges.length; i++) if (ranges[i][0] < ranges[i - 1][1]) return 'overlap';
  for (const v of Object.values(h.metadata)) if (typeof v !== 'string') return 'metadata';
  return null;
}

test.serial('10,000 mutated headers parse or fail cleanly; a subset loads fully or fails cleanly; nothing leaks', async (t) => {
  const t0 = performance.now();
  const before = (await baseline()).tensors;
  const fixture = readFileSync(join(caseDir('mlm'), 'model.safetensors'));
  const fixtureHeaderLen = Number(fixture.readBigUInt64LE(0));
  const bases = [
    { name: 'small', buf: smallFile(), size: 0 },
    // The HF file: only its header prefix is mutated in memory; the size is the real file's.
    { name: 'hf', buf: new Uint8Array(fixture.subarray(0, 8 + fixtureHeaderLen)), size: fixture.length },
  ];
  bases[0].size = bases[0].buf.length;
  const r = rng(0x5eed);
  const counts: Record<string, { ok: number; err: number }> = {};
  let loaded = 0;
  let loadErrors = 0;
  const ITER = 10_000;
  for (let i = 0; i < ITER; i++) {
    const base = bases[i % 5 === 4 ? 1 : 0];
    const { buf, size, kind } = mutate(r, base.buf, base.size);
    const path = `/fuzz/${base.name}-${i}.safetensors`;
    counts[kind] ??= { ok: 0, err: 0 };
    let header: P.SafetensorsHeader | null = null;
    try {
      header = P.parseSafetensorsHeader(path, buf, size);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes(path)) {
        t.fail(`iteration ${i} (${kind}): threw ${String(err)} without naming the file`);
        return;
      }
      counts[kind].err++;
    }
    if (header) {
      counts[kind].ok++;
      const bad = checkInvariants(header, size);
      if (bad) {
        t.fail(`iteration ${i} (${kind}): parsed a header that breaks an invariant: ${bad}`);
        return;
      }
    }
    // Every 25th small-file case goes through the whole native load from disk.
    if (base.name === 'small' && i % 25 === 0) {
      const file = join(dir, `f-${i}.safetensors`);
      writeFileSync(file, buf.length >= size ? buf.subarray(0, size) : buf);
      try {
        const ts = await P.loadSafetensors(file);
        for (const x of Object.values(ts)) {
          await x.data();
          x.dispose();
        }
        loaded++;
      } catch (err) {
        if (!(err instanceof Error) || !err.message.includes(file)) {
          t.fail(`full load ${i} (${kind}): threw ${String(err)} without naming the file`);
          return;
        }
        loadErrors++;
      }
      rmSync(file);
    }
  }
  const ms = performance.now() - t0;
  t.log(`${ITER} iterations in ${ms.toFixed(0)} ms; ${loaded} full loads succeeded, ${loadErrors} failed cleanly`);
  t.log(Object.entries(counts).map(([k, v]) => `${k}: ${v.ok} ok / ${v.err} refused`).join('; '));
  t.true(Object.values(counts).every((v) => v.err > 0), 'every mutation kind produced refusals');
  t.true(loaded > 0 && loadErrors > 0, 'full loads saw both outcomes');
  t.is(live().tensors, before, 'no tensor leaked');
});

test.serial('random records (shapes, strides, dtypes, ranges) load or are refused cleanly', async (t) => {
  const before = (await baseline()).tensors;
  const r = rng(42);
  const file = join(dir, 'records.bin');
  const content = new Uint8Array(4096);
  for (let i = 0; i < content.length; i++) content[i] = (i * 13) & 0x3f; // small values: in range for every dtype
  writeFileSync(file, content);
  const dtypes = Object.keys(P.RECORD_ITEM_SIZE) as P.RecordDType[];
  let ok = 0;
  let refused = 0;
  for (let i = 0; i < 600; i++) {
    const nd = Math.floor(r() * 4);
    const shape = Array.from({ length: nd }, () => Math.floor(r() * 6) - (r() < 0.03 ? 3 : 0));
    const strides = r() < 0.5 ? undefined : shape.map(() => Math.floor(r() * 12) - (r() < 0.03 ? 2 : 0));
    const dtype = r() < 0.03 ? ('X9' as P.RecordDType) : dtypes[Math.floor(r() * dtypes.length)];
    const offset = Math.floor(r() * 4200);
    const byteLength = Math.floor(r() * 600);
    const rec: TensorRecord =
      r() < 0.2
        ? { name: `m${i}`, dtype, shape, strides, source: { kind: 'bytes', bytes: content.subarray(0, byteLength) } }
        : { name: `f${i}`, dtype, shape, strides, source: { kind: 'file', path: file, offset, byteLength } };
    try {
      const ts = await P.loadRecords([rec]);
      for (const x of Object.values(ts)) {
        await x.data();
        x.dispose();
      }
      ok++;
    } catch (err) {
      const where = rec.source.kind === 'file' ? file : '<in-memory record>';
      if (!(err instanceof Error) || !err.message.includes(where)) {
        t.fail(`record ${i}: threw ${String(err)} without naming ${where}`);
        return;
      }
      refused++;
    }
  }
  t.log(`${ok} loaded, ${refused} refused`);
  t.true(ok > 0 && refused > 0);
  t.is(live().tensors, before);
});
