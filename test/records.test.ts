// Specification of the common record pipeline (lib/io/records.ts,
// lib/io/load-records.ts): any reader's TensorRecords (file byte ranges or
// in-memory bytes, possibly strided by a layout permutation) load natively into
// engine tensors, with dtype narrowing, progress and abort; every malformed record
// is refused before any byte is read, with the file and tensor named; nothing leaks.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import type { Tensor, TensorRecord } from '../lib/index.js';
import { readHaikuCheckpoint } from '../lib/io/haiku.js';
import { readTorchCheckpoint } from '../lib/io/torch.js';
import { baseline, live } from './helpers/device.js';

const dir = mkdtempSync(join(tmpdir(), 'perceiver-records-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A file holding `pad` junk bytes, then `data`; returns the path and the data's offset. */
function fileWith(data: Uint8Array, pad = 13): { path: string; offset: number } {
  const path = join(dir, `r-${n++}.bin`);
  writeFileSync(path, Buffer.concat([Buffer.alloc(pad, 0xee), data, Buffer.alloc(5, 0xee)]));
  return { path, offset: pad };
}

function fileRecord(name: string, dtype: P.RecordDType, shape: number[], data: Uint8Array, strides?: number[]): TensorRecord {
  const { path, offset } = fileWith(data);
  return { name, dtype, shape, ...(strides ? { strides } : {}), source: { kind: 'file', path, offset, byteLength: data.byteLength } };
}

function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) t.dispose();
}

const iota = (k: number) => Float32Array.from({ length: k }, (_, i) => i + 0.5);

test('contiguous file records load at their offset, in their dtype', async (t) => {
  const ts = await P.loadRecords([
    fileRecord('w', 'F32', [2, 3], bytes(iota(6))),
    fileRecord('ids', 'I64', [3], bytes(BigInt64Array.from([-1n, 0n, 7n]))),
    fileRecord('m', 'BOOL', [2], Uint8Array.from([1, 0])),
  ]);
  t.deepEqual(Object.keys(ts), ['w', 'ids', 'm']);
  t.deepEqual(ts.w.shape, [2, 3]);
  t.deepEqual(Array.from(await ts.w.data()), Array.from(iota(6)));
  t.is(ts.ids.dtype, 'int32');
  t.deepEqual(Array.from(await ts.ids.data()), [-1, 0, 7]);
  t.is(ts.m.dtype, 'uint8');
  disposeAll(ts);
});

test('permuteRecord moves no bytes; the loader gathers the permuted layout natively', async (t) => {
  // A Linear stored [in, out] (as Haiku does) read as [out, in].
  const rec = fileRecord('linear', 'F32', [3, 4], bytes(iota(12)));
  const tr = P.permuteRecord(rec, [1, 0]);
  t.deepEqual(tr.shape, [4, 3]);
  t.deepEqual(tr.strides, [1, 4]);
  t.deepEqual(tr.source, rec.source, 'same bytes');
  // A conv kernel stored HWIO [2, 2, 3, 5] read as OIHW [5, 3, 2, 2].
  const hwio = iota(2 * 2 * 3 * 5);
  const conv = P.permuteRecord(fileRecord('conv', 'F32', [2, 2, 3, 5], bytes(hwio)), [3, 2, 0, 1]);
  const ts = await P.loadRecords([tr, conv]);
  const ref = P.tensor(iota(12), [3, 4]).transpose();
  t.deepEqual(Array.from(await ts.linear.data()), Array.from(await ref.data()));
  const refConv = P.tensor(hwio, [2, 2, 3, 5]).permute([3, 2, 0, 1]);
  t.deepEqual(ts.conv.shape, [5, 3, 2, 2]);
  t.deepEqual(Array.from(await ts.conv.data()), Array.from(await refConv.data()));
  t.true(ts.conv.isContiguous, 'the loaded tensor is dense');
  for (const x of [ref, refConv]) x.dispose();
  disposeAll(ts);
  t.throws(() => P.permuteRecord(tr, [0, 0]), { message: /must be a permutation of 0\.\.1/ });
});

test('strided records may view a larger storage; narrowing and gathering happen in one pass', async (t) => {
  // Every other row of a [4, 2] F64 storage, as a torch view would store it.
  const storage = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const rec: TensorRecord = { ...fileRecord('rows', 'F64', [2, 2], bytes(storage), [4, 1]) };
  const mem: TensorRecord = { name: 'mem', dtype: 'I16', shape: [2, 2], strides: [1, 2], source: { kind: 'bytes', bytes: bytes(Int16Array.from([1, 2, 3, 4])) } };
  const ts = await P.loadRecords([rec, mem]);
  t.is(ts.rows.dtype, 'float32');
  t.deepEqual(Array.from(await ts.rows.data()), [1, 2, 5, 6]);
  t.is(ts.mem.dtype, 'int32');
  t.deepEqual(Array.from(await ts.mem.data()), [1, 3, 2, 4]);
  disposeAll(ts);
});

test('option dtype converts float records (to 16-bit storage here) and keeps integers', async (t) => {
  const ts = await P.loadRecords([fileRecord('w', 'F32', [2], bytes(Float32Array.from([1.5, -2]))), fileRecord('i', 'I32', [1], bytes(Int32Array.from([3])))], { dtype: 'bfloat16' });
  t.is(ts.w.dtype, 'bfloat16');
  t.deepEqual(Array.from(await ts.w.data()), [1.5, -2]);
  t.is(ts.i.dtype, 'int32');
  disposeAll(ts);
});

test('progress is reported per tensor with bytes done/total and the name; the last report is complete', async (t) => {
  const recs = [fileRecord('a', 'F32', [4], bytes(iota(4))), fileRecord('b', 'F32', [0], new Uint8Array(0)), fileRecord('c', 'U8', [3], Uint8Array.from([1, 2, 3]))];
  const seen: P.LoadProgress[] = [];
  const ts = await P.loadRecords(recs, { onProgress: (p) => seen.push(p) });
  t.deepEqual(seen.map((p) => p.name), ['a', 'b', 'c']);
  t.deepEqual(seen.map((p) => p.bytesDone), [16, 16, 19]);
  t.true(seen.every((p) => p.bytesTotal === 19 && p.tensorsTotal === 3));
  t.is(seen[2].tensorsDone, 3);
  disposeAll(ts);
});

test.serial('an AbortSignal stops the load with its reason and disposes what was loaded', async (t) => {
  const before = (await baseline()).tensors;
  const recs = Array.from({ length: 20 }, (_, i) => fileRecord(`t${i}`, 'F32', [64], bytes(iota(64))));
  const pre = new AbortController();
  pre.abort();
  // signal.reason as is: by default a DOMException named AbortError.
  await t.throwsAsync(P.loadRecords(recs, { signal: pre.signal }), { any: true, name: 'AbortError' });
  const ac = new AbortController();
  let calls = 0;
  const err = await t.throwsAsync(
    P.loadRecords(recs, {
      signal: ac.signal,
      onProgress: () => {
        if (++calls === 3) ac.abort(new Error('user cancelled'));
      },
    }),
  );
  t.is(err!.message, 'user cancelled');
  t.true(calls < 20, `stopped after ${calls} tensors`);
  t.is(live().tensors, before, 'nothing leaked');
});

test.serial('malformed records are refused before any byte is read, naming the file and the tensor', async (t) => {
  const before = (await baseline()).tensors;
  const good = fileRecord('ok', 'F32', [2], bytes(iota(2)));
  const path = good.source.kind === 'file' ? good.source.path : '';
  const src = good.source as Extract<TensorRecord['source'], { kind: 'file' }>;
  const bad: [Partial<TensorRecord> & Record<string, unknown>, RegExp][] = [
    [{ dtype: 'Q8' as P.RecordDType }, /unsupported dtype "Q8"/],
    [{ shape: [2, -1] }, /the shape must be at most 8 non-negative integers/],
    [{ shape: [1.5] }, /the shape must be/],
    [{ strides: [1, 1] }, /strides must be 1 non-negative integers/],
    [{ shape: [3] }, /shape \[3\] of F32 needs 12 bytes but its source holds 8/],
    [{ shape: [2], strides: [2] }, /shape \[2\] of F32 at strides \[2\] needs 12 bytes but its source holds 8/],
    [{ source: { ...src, offset: 20, byteLength: 8 } }, /bytes \[20, 28\) lie past the end of the file \(26 bytes; truncated\?\)/],
    [{ source: { ...src, offset: -1 } }, /the byte range must be non-negative integers/],
    [{ source: { ...src, path: join(dir, 'nope.bin') } }, /nope\.bin: cannot read/],
    [{ name: '' }, /the name must be a non-empty string/],
  ];
  for (const [patch, re] of bad) {
    const rec = { ...good, ...patch } as TensorRecord;
    const err = await t.throwsAsync(P.loadRecords([fileRecord('first', 'F32', [1], bytes(iota(1))), rec]));
    t.regex(err!.message, re, JSON.stringify(patch));
    t.regex(err!.message, /^loadRecords: /);
    if (!('source' in patch)) t.true(err!.message.includes(path), `names the file: ${err!.message}`);
  }
  await t.throwsAsync(P.loadRecords([good, good]), { message: /tensor 'ok' appears twice/ });
  await t.throwsAsync(P.loadRecords('x' as unknown as TensorRecord[]), { message: /argument 'records' must be an array/ });
  t.is(live().tensors, before, 'nothing was made');
});

test('a narrowing failure while loading rejects naming the file, the tensor and the value', async (t) => {
  const rec = fileRecord('big', 'I64', [2], bytes(BigInt64Array.from([1n, -(2n ** 40n)])));
  const err = await t.throwsAsync(P.loadRecords([rec]));
  t.regex(err!.message, /^loadRecords: .*r-\d+\.bin: tensor 'big': I64 value -1099511627776 at flat index 1 does not fit in int32/);
});

test('a file that shrinks after it was checked fails the read with a clear error, not a crash', async (t) => {
  // The native read re-checks (a short pread is an error on the tensor), and so does
  // the load's end (the file's size and modification time).
  const rec = fileRecord('w', 'F32', [1024], bytes(iota(1024)));
  const src = rec.source as Extract<TensorRecord['source'], { kind: 'file' }>;
  const p = P.loadRecords([rec]);
  // Truncated while the load runs: whether the read came before or after, the load
  // must fail (the short read, or the version check at its end).
  writeFileSync(src.path, new Uint8Array(100));
  const err = await t.throwsAsync(p);
  t.regex(err!.message, /r-\d+\.bin.*(past the end of the file|the file ends at byte|the file changed after its header was read)/);
});

test('throughput: a 32 MiB float32 record loads natively (contiguous and transposed)', async (t) => {
  const rows = 2048;
  const cols = 4096;
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i += 1021) data[i] = i;
  const { path, offset } = fileWith(bytes(data), 64);
  const rec: TensorRecord = { name: 'w', dtype: 'F32', shape: [rows, cols], source: { kind: 'file', path, offset, byteLength: data.byteLength } };
  let t0 = performance.now();
  const a = await P.loadRecords([rec]);
  const contiguousMs = performance.now() - t0;
  t0 = performance.now();
  const b = await P.loadRecords([P.permuteRecord(rec, [1, 0])]);
  const transposedMs = performance.now() - t0;
  t.log(`32 MiB: contiguous ${contiguousMs.toFixed(1)} ms (${(32 / 1024 / (contiguousMs / 1000)).toFixed(2)} GiB/s), transposed ${transposedMs.toFixed(1)} ms`);
  // Every non-zero element, at its place and at its transposed place.
  const av = (await a.w.data()) as Float32Array;
  const bv = (await b.w.data()) as Float32Array;
  let wrong = 0;
  for (let i = 0; i < data.length; i += 1021) {
    const r = Math.floor(i / cols), c = i % cols;
    if (av[i] !== i || bv[c * rows + r] !== i) wrong++;
  }
  t.is(wrong, 0);
  t.is(av.reduce((n, v) => n + (v !== 0 ? 1 : 0), 0), Math.ceil(data.length / 1021) - 1, 'and nothing else (data[0] is 0)');
  disposeAll(a);
  disposeAll(b);
});

test('every permutation of 2-4 axes (sizes 1 to 70, crossing the 32-element tiles) gathers exactly what permute() gives', async (t) => {
  const shapes = [[70, 33], [1, 40, 3], [5, 1, 37, 2], [3, 4, 5, 6], [33, 2, 65]];
  const perms = (k: number): number[][] => (k === 1 ? [[0]] : perms(k - 1).flatMap((p) => Array.from({ length: k }, (_, i) => [...p.slice(0, i), k - 1, ...p.slice(i)])));
  let checked = 0;
  for (const shape of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: size }, (_, i) => i);
    const rec = fileRecord('x', 'F32', shape, bytes(data));
    const I16 = { ...fileRecord('y', 'I16', shape, bytes(Int16Array.from(data))) };
    const base = P.tensor(data, shape);
    for (const perm of perms(shape.length)) {
      const ts = await P.loadRecords([P.permuteRecord(rec, perm), P.permuteRecord(I16, perm)]);
      const ref = base.permute(perm);
      const want = Array.from(await ref.data());
      t.deepEqual(Array.from(await ts.x.data()), want, `F32 [${shape}] perm [${perm}]`);
      t.deepEqual(Array.from(await ts.y.data()), want, `I16 -> int32 [${shape}] perm [${perm}]`);
      ref.dispose();
      disposeAll(ts);
      checked++;
    }
    base.dispose();
  }
  t.is(checked, 2 + 6 + 24 + 24 + 6);
});

test('the native entry points refuse bad arguments with errors, never a crash', async (t) => {
  const { native } = await import('../lib/native.js');
  const io = native as unknown as Record<string, (...args: unknown[]) => unknown>;
  const { path } = fileWith(bytes(iota(4)));
  const ok: unknown[] = ['w', 'here', path, 13, 16, 'F32', [4], null, 'float32', 'cpu'];
  const h = io.loadRecord(...ok);
  native.handleMeta(h as never);
  const { handleMetaBuffer: meta } = await import('../lib/native.js');
  t.deepEqual([meta[0], meta[3], meta[4]], [h, 1, 4], 'the handle, one axis, of 4');
  await io.settle(h);
  native.handleDispose(h as never);
  const bad: [number, unknown, RegExp][] = [
    [0, 5, /argument 'name' must be a string/],
    [2, 42, /argument 'source' must be a file path, a file handle or a Uint8Array/],
    [3, -1, /byte range must be non-negative/],
    [3, 0.5, /argument 'offset' must be an integer/],
    [5, 'F99', /unknown dtype 'F99'/],
    [6, 'x', /argument 'shape' must be an array of integers/],
    [7, [1, 2], /strides \[1, 2\] do not match shape \[4\]/],
    [8, 'int32', /F32 cannot be loaded as int32/],
    [8, 'float64', /argument 'dtype' must be one of/],
    [9, 'tpu', /argument 'device' must be 'cpu', 'cuda' or 'cuda:N'/],
    [4, 8, /needs 16 bytes but the source holds 8/],
  ];
  for (const [i, v, re] of bad) {
    const args = [...ok];
    args[i] = v;
    t.throws(() => io.loadRecord(...args), { message: re }, `argument ${i} = ${JSON.stringify(v)}`);
  }
  t.throws(() => io.loadRecord('w'), { message: /expected 10 arguments, got 1/ });
  t.throws(() => io.settle({}), { message: /argument 'tensor' must be a Tensor/ });

  // An open file: its size and version, reads through it, then a closed handle refused.
  const [file, size, version] = io.openRecordFile(path) as [unknown, number, string];
  t.is(size, statSync(path).size);
  t.regex(version, new RegExp(`^\\d+:\\d+:${size}:\\d+$`));
  t.is(io.recordFileVersion(file), version);
  const viaFile = io.loadRecord('w', 'here', file, 13, 16, 'F32', [4], null, 'float32', 'cpu');
  await io.settle(viaFile);
  native.handleDispose(viaFile as never);
  io.closeRecordFile(file);
  io.closeRecordFile(file);
  t.throws(() => io.loadRecord('w', 'here', file, 13, 16, 'F32', [4], null, 'float32', 'cpu'), { message: /the file handle was closed/ });
  t.throws(() => io.recordFileVersion(file), { message: /the file handle was closed/ });
  t.throws(() => io.recordFileVersion('x'), { message: /must be a handle from openRecordFile/ });
  t.throws(() => io.openRecordFile(join(dirname(path), 'nope')), { message: /nope: cannot read \(No such file or directory\)/ });
  t.throws(() => io.openRecordFile(dirname(path)), { message: /cannot read \(not a regular file\)/ });
  t.throws(() => io.openRecordFile(5), { message: /argument 'path' must be a string/ });
  // A FIFO is refused too, without waiting for a writer (open() would, on the JS thread),
  // and so is a load from one by path, which opens it on the queue's thread.
  const fifo = join(mkdtempSync(join(tmpdir(), 'pio-fifo-')), 'model.bin');
  execFileSync('mkfifo', [fifo]);
  t.throws(() => io.openRecordFile(fifo), { message: /model\.bin: cannot read \(not a regular file\)/ });
  const fromFifo = io.loadRecord('w', 'here', fifo, 0, 16, 'F32', [4], null, 'float32', 'cpu');
  await t.throwsAsync(io.settle(fromFifo) as Promise<unknown>, { message: /cannot read .*model\.bin \(not a regular file\)/ });
  native.handleDispose(fromFifo as never);
  rmSync(dirname(fifo), { recursive: true });
});

test('every reader stamps its file records with the version of the file it parsed, and loading refuses a file changed since', async (t) => {
  const ckpts = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'checkpoints');
  const haiku = async (p: string) => Object.values(await readHaikuCheckpoint(p)).flat();
  const readers: [string, (p: string) => Promise<TensorRecord[]>][] = [
    ['tied_strided.bin', readTorchCheckpoint], // torch.save's zip archive
    ['fuzz_seed_legacy.bin', readTorchCheckpoint], // the legacy (pre-1.6) layout
    ['haiku_proto5.pickle', haiku],
  ];
  for (const [file, read] of readers) {
    // A copy, so that it can be rewritten.
    const path = join(dir, file);
    copyFileSync(join(ckpts, file), path);
    const recs = (await read(path)).filter((r) => r.source.kind === 'file');
    t.true(recs.length > 0, `${file} leaves arrays in the file`);
    const version = P.fileVersion(statSync(path, { bigint: true }));
    for (const r of recs) t.is((r.source as { version?: string }).version, version, `${file}: ${r.name}`);
    disposeAll(await P.loadRecords(recs));
    // Saved over (a new inode) after it was parsed.
    copyFileSync(path, `${path}.new`);
    renameSync(`${path}.new`, path);
    await t.throwsAsync(P.loadRecords(recs), { message: new RegExp(`${file.replace('.', '\\.')}: the file changed after its header was read`) });
  }
});

test('the record helpers refuse malformed records, shapes and stats instead of returning NaN or garbage', async (t) => {
  const bad = (v: unknown) => v as never;
  const rec: TensorRecord = { name: 'a', dtype: 'F32', shape: [2, 3], source: { kind: 'bytes', bytes: new Uint8Array(24) } };
  const cases: [string, () => unknown, RegExp][] = [
    ['recordByteSpan()', () => P.recordByteSpan(bad(undefined)), /^recordByteSpan: argument 'rec' must be a TensorRecord, got undefined/],
    ['recordByteSpan dtype', () => P.recordByteSpan({ ...rec, dtype: bad('x') }), /^recordByteSpan: argument 'rec.dtype' must be one of F64, .*got 'x'/],
    ['recordByteSpan strides', () => P.recordByteSpan({ ...rec, strides: bad('x') }), /^recordByteSpan: argument 'rec.strides' must be an array of non-negative integers, got 'x'/],
    ['recordByteSpan shape', () => P.recordByteSpan({ ...rec, shape: [2, NaN] }), /^recordByteSpan: argument 'rec.shape' must be an array of non-negative integers, got \[number 2, number NaN\]/],
    ['permuteRecord()', () => P.permuteRecord(bad(undefined), [0]), /^permuteRecord: argument 'rec' must be a TensorRecord, got undefined/],
    ['permuteRecord perm', () => P.permuteRecord(rec, bad('x')), /^permuteRecord: argument 'perm' must be an array of axes, got 'x'/],
    ['contiguousStrides()', () => P.contiguousStrides(bad(undefined)), /^contiguousStrides: argument 'shape' must be an array of non-negative integers, got undefined/],
    ['contiguousStrides string', () => P.contiguousStrides(bad('x')), /^contiguousStrides: argument 'shape' must be an array of non-negative integers, got 'x'/],
    ['fileVersion()', () => P.fileVersion(bad(undefined)), /^fileVersion: argument 'st' must be fs BigIntStats/],
    ['fileVersion number stats', () => P.fileVersion(bad({ dev: 1, ino: 2, size: 3, mtimeNs: 4 })), /^fileVersion: argument 'st' must be fs BigIntStats .*'dev' is number 1/],
  ];
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
  await t.throwsAsync(P.loadRecords([], bad(null)), { instanceOf: TypeError, message: /^loadRecords: argument 'opts' must be an object, got null/ });
  await t.throwsAsync(P.loadRecords([], { op: bad(5) }), { instanceOf: TypeError, message: /^loadRecords: option 'op' must be a non-empty string, got number 5/ });
  t.is(P.recordByteSpan({ dtype: 'F32', shape: [2, 3], strides: [1, 2] }), 24);
});
