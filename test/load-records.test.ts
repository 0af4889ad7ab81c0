// Specification of what loadRecords (lib/io/load-records.ts) refuses before it
// allocates: records whose strides repeat their bytes, loads whose records share bytes
// under many names, names too long to key a Map, dtypes only Object.prototype knows;
// and of engineDTypeOf's arguments. Loading itself is specified in records.test.ts.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import type { Tensor, TensorRecord } from '../lib/index.js';
import { baseline, live } from './helpers/device.js';

const dir = mkdtempSync(join(tmpdir(), 'perceiver-load-records-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function file(bytes: Uint8Array): string {
  const path = join(dir, `r-${n++}.bin`);
  writeFileSync(path, bytes);
  return path;
}

function rec(name: string, path: string, shape: number[], strides: number[] | undefined, byteLength: number, offset = 0): TensorRecord {
  return { name, dtype: 'F32', shape, ...(strides && { strides }), source: { kind: 'file', path, offset, byteLength } };
}

function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) t.dispose();
}

test.serial('a stride-0 view repeating a few bytes into a large tensor is refused before anything is allocated, naming the file', async (t) => {
  const path = file(new Uint8Array(new Float32Array([1.5]).buffer));
  const before = await baseline();
  // 2^28 float32 elements (1 GiB) from 4 bytes.
  const huge = rec('w', path, [1 << 28], [0], 4);
  const err = await t.throwsAsync(P.loadRecords([huge]), { instanceOf: RangeError });
  t.regex(err!.message, new RegExp(`^loadRecords: ${path.replace(/[.]/g, '\\.')}: tensor 'w': shape \\[268435456\\] at strides \\[0\\] repeats its 4 bytes as 1073741824`));
  t.throws(() => P.checkRecord(huge), { instanceOf: RangeError, message: /repeats its 4 bytes/ });
  t.is(live().tensors, before.tensors);
  t.is(live().bytes, before.bytes);
});

test('broadcast axes that repeat bytes a little still load: a size-1 axis of stride 0 (HF position_ids), a short stride-0 vector', async (t) => {
  const path = file(new Uint8Array(Float32Array.from({ length: 512 }, (_, i) => i).buffer));
  const ts = await P.loadRecords(
    [rec('position_ids', path, [1, 512], [0, 1], 2048), rec('bcast', path, [3], [0], 4, 8), rec('pairs', path, [4, 2], [1, 1], 20)],
  );
  t.deepEqual(ts.position_ids.shape, [1, 512]);
  t.is((await ts.position_ids.data())[511], 511);
  t.deepEqual(Array.from(await ts.bcast.data()), [2, 2, 2]);
  t.deepEqual(Array.from(await ts.pairs.data()), [0, 1, 1, 2, 2, 3, 3, 4]);
  disposeAll(ts);
});

test.serial('records sharing bytes under many names are refused when they would take more than 4x their distinct bytes + 64 MiB', async (t) => {
  const mib = 1 << 20;
  const path = file(new Uint8Array(mib));
  const before = await baseline();
  // One dict pickled under 100 names: 100 tensors over the same MiB.
  const shared = Array.from({ length: 100 }, (_, i) => rec(`copy${i}.w`, path, [mib / 4], undefined, mib));
  const err = await t.throwsAsync(P.loadRecords(shared), { instanceOf: RangeError });
  t.regex(err!.message, new RegExp(`^loadRecords: ${path.replace(/[.]/g, '\\.')}: the 100 tensors would take 104857600 bytes, from 1048576 distinct bytes`));
  // The same in memory: one buffer under many names.
  const bytes = new Uint8Array(mib);
  const inMemory = shared.map((r): TensorRecord => ({ ...r, source: { kind: 'bytes', bytes } }));
  await t.throwsAsync(P.loadRecords(inMemory), { instanceOf: RangeError, message: /<in-memory record>: the 100 tensors would take 104857600 bytes, from 1048576 distinct/ });
  t.is(live().tensors, before.tensors);
  t.is(live().bytes, before.bytes);
});

test('tied weights (a few names over the same bytes) and records of disjoint bytes load', async (t) => {
  const data = Float32Array.from({ length: 1024 }, (_, i) => i);
  const path = file(new Uint8Array(data.buffer));
  const ts = await P.loadRecords(
    [rec('embed', path, [1024], undefined, 4096), rec('decoder', path, [1024], undefined, 4096), rec('half', path, [512], undefined, 2048, 2048)],
  );
  t.deepEqual(Array.from(await ts.decoder.data()), Array.from(data));
  t.is((await ts.half.data())[0], 512);
  disposeAll(ts);
});

test('a tensor name longer than 1024 characters is refused naming the file and its length; 1024 is accepted', async (t) => {
  const path = file(new Uint8Array(4));
  const long = 'x'.repeat(1025);
  const err = t.throws(() => P.checkRecord(rec(long, path, [1], undefined, 4)), { instanceOf: RangeError });
  t.true(err!.message.startsWith(`loadRecords: ${path}: tensor 'xxx`), err!.message);
  t.regex(err!.message, /\.\.\.' \(1025 characters\): the name is longer than the 1024 characters/);
  t.true(err!.message.length < 300, 'the message does not repeat the whole name');
  await t.throwsAsync(P.loadRecords([rec(long, path, [1], undefined, 4)]), { instanceOf: RangeError });
  const ok = await P.loadRecords([rec('y'.repeat(1024), path, [1], undefined, 4)]);
  t.deepEqual(Object.keys(ok).map((k) => k.length), [1024]);
  disposeAll(ok);
});

test("dtype names only Object.prototype has ('toString', 'constructor', '__proto__') are unsupported dtypes", async (t) => {
  for (const dtype of ['toString', 'constructor', '__proto__', 'valueOf', 'hasOwnProperty']) {
    for (const shape of [[1], [0]]) {
      const r = { name: 'x', dtype, shape, source: { kind: 'bytes', bytes: new Uint8Array(4) } } as unknown as TensorRecord;
      t.throws(() => P.checkRecord(r), { message: new RegExp(`tensor 'x': unsupported dtype "${dtype}" \\(supported: F64, F32`) }, dtype);
      await t.throwsAsync(P.loadRecords([r]), { message: /unsupported dtype/ }, dtype);
    }
  }
});

test('engineDTypeOf maps every record dtype, and refuses unknown dtypes and float dtypes with the argument named', (t) => {
  t.is(P.engineDTypeOf('F32'), 'float32');
  t.is(P.engineDTypeOf('F16'), 'float16');
  t.is(P.engineDTypeOf('BF16'), 'bfloat16');
  t.is(P.engineDTypeOf('F64', 'bfloat16'), 'bfloat16');
  t.is(P.engineDTypeOf('I64', 'float16'), 'int32');
  t.is(P.engineDTypeOf('I8'), 'int32');
  t.is(P.engineDTypeOf('BOOL'), 'uint8');
  for (const d of ['nope', 'C64', 'constructor', undefined, 5])
    t.throws(() => P.engineDTypeOf(d as P.RecordDType), { instanceOf: TypeError, message: /^engineDTypeOf: argument 'd' must be a record dtype \(F64, F32, .*\), got / }, String(d));
  for (const f of ['int8', 'int32', 'float64', null])
    t.throws(() => P.engineDTypeOf('F32', f as 'float32'), { instanceOf: TypeError, message: /^engineDTypeOf: argument 'floatDType' must be one of float32, float16, bfloat16, got / }, String(f));
});

test('in-memory records over a SharedArrayBuffer, or a view into a larger buffer, load their own bytes', async (t) => {
  const sab = new SharedArrayBuffer(24);
  new Float32Array(sab).set([9, 1, 2, 3, 4, 9]);
  // Bytes 4..20 of the shared buffer: the view's offset counts.
  const bytes = new Uint8Array(sab, 4, 16);
  const ts = await P.loadRecords([{ name: 'w', dtype: 'F32', shape: [4], source: { kind: 'bytes', bytes } } as TensorRecord]);
  t.deepEqual(Array.from(await ts.w.data()), [1, 2, 3, 4]);
  disposeAll(ts);
});
