// Specification of the safetensors reader and writer: round trips of every engine
// dtype, every readable file dtype (with I64/F64/BOOL narrowing), metadata, zero-size
// and scalar tensors, header padding, atomic replacement, and corrupt files failing
// with an error that names the file and the problem.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { readBytes } from '../lib/tensor.js';
import { baseline, live } from './helpers/device.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(here, '..', '..', 'test', 'fixtures', 'hf');
const dir = mkdtempSync(join(tmpdir(), 'perceiver-safetensors-'));
let n = 0;
const fresh = (name = 'f') => join(dir, `${name}-${n++}.safetensors`);
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** A file from a header object and a data section, byte for byte. */
function writeRaw(header: unknown, data: Uint8Array | number[] = [], opts: { headerLen?: bigint } = {}): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf-8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.headerLen ?? BigInt(json.length));
  const path = fresh('raw');
  writeFileSync(path, Buffer.concat([len, json, Buffer.from(data instanceof Uint8Array ? data : Uint8Array.from(data))]));
  return path;
}

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) t.dispose();
}

async function rejects(t: import('ava').ExecutionContext, p: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  const err = await t.throwsAsync(p);
  for (const re of patterns) t.regex(err!.message, re);
}

// ---- round trips ------------------------------------------------------------------------------

test.serial('save then read returns every engine dtype with its shape and exact values', async (t) => {
  const before = (await baseline()).tensors;
  const src: Record<string, Tensor> = {
    f32: P.tensor(new Float32Array([1.5, -2.25, 3e-20, 1e30, 0, -0]), [2, 3]),
    f16: P.tensor([0.1, -65504, 6e-8, 1], [4], { dtype: 'float16' }),
    bf16: P.tensor([0.1, -3e38, 1e-38, 1], [2, 2], { dtype: 'bfloat16' }),
    i32: P.tensor(Int32Array.from([-2147483648, 2147483647, 0]), [3, 1]),
    u8: P.tensor(Uint8Array.from([0, 255, 7]), [3]),
    scalar: P.tensor(new Float32Array([42]), []),
    empty: P.tensor(new Float32Array(0), [0, 5]),
  };
  const path = fresh();
  await P.saveSafetensors(path, src, { metadata: { format: 'pt', note: 'ünïcode' } });
  const { tensors, metadata } = await P.readSafetensors(path);
  t.deepEqual(metadata, { format: 'pt', note: 'ünïcode' });
  t.deepEqual(Object.keys(tensors), Object.keys(src), 'header order is insertion order');
  for (const [k, s] of Object.entries(src)) {
    const g = tensors[k];
    t.is(g.dtype, s.dtype, k);
    t.deepEqual(g.shape, s.shape, k);
    t.deepEqual(bytes(new Uint8Array(await readBytes(g))), bytes(new Uint8Array(await readBytes(s))), `${k}: same bytes`);
  }
  disposeAll(src);
  disposeAll(tensors);
  t.is(live().tensors, before, 'no tensor leaked');
});

test('the header is padded with spaces so the data section starts 8-byte aligned', async (t) => {
  for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
    const x = P.tensor(new Float32Array([1]), [1]);
    const path = fresh();
    await P.saveSafetensors(path, { [name]: x });
    x.dispose();
    const buf = readFileSync(path);
    const len = Number(buf.readBigUInt64LE(0));
    t.is((8 + len) % 8, 0, name);
    const header = buf.subarray(8, 8 + len).toString('utf-8');
    t.regex(header, /^\{.*\} *$/s);
    t.deepEqual(JSON.parse(header)[name], { dtype: 'F32', shape: [1], data_offsets: [0, 4] });
    t.is(buf.length, 8 + len + 4);
  }
});

test('every tensor starts aligned to its element size (data in decreasing element size, as HF lays it out); the header keeps the given order', async (t) => {
  const b = P.cast(P.tensor([1, 2, 3]), 'bfloat16'); // 6 bytes: the next 4- or 8-byte tensor would start unaligned
  const u = P.tensor(new Uint8Array([7]), [1]);
  const f = P.tensor([1.5, 2.5]);
  const i = P.tensor(new Int32Array([-1, 2 ** 31 - 1]), [2]);
  const path = fresh();
  await P.saveSafetensors(path, { b, u, f, i }, { dtypes: { i: 'I64' } });
  const buf = readFileSync(path);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf-8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  t.deepEqual(Object.keys(header), ['b', 'u', 'f', 'i']);
  const size = { I64: 8, F32: 4, BF16: 2, U8: 1 } as Record<string, number>;
  for (const [name, e] of Object.entries(header)) t.is((8 + len + e.data_offsets[0]) % size[e.dtype], 0, `${name} (${e.dtype}) at ${e.data_offsets[0]}`);
  t.deepEqual(Object.values(header).map((e) => e.data_offsets[0]), [24, 30, 16, 0], 'I64, F32, BF16, U8');
  const back = await P.loadSafetensors(path);
  t.deepEqual(Array.from(await back.i.data()), [-1, 2 ** 31 - 1]);
  t.deepEqual(Array.from(await back.f.data()), [1.5, 2.5]);
  t.deepEqual(Array.from(await back.b.data()), [1, 2, 3]);
  t.deepEqual(Array.from(await back.u.data()), [7]);
  for (const x of [b, u, f, i, ...Object.values(back)]) x.dispose();
});

test('strided and broadcast views are written in logical row-major order', async (t) => {
  const base = P.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  const tr = base.transpose();
  const bc = P.broadcastTo(P.tensor(new Float32Array([7, 8]), [2, 1]), [2, 3]);
  const path = fresh();
  await P.saveSafetensors(path, { tr, bc });
  const got = await P.loadSafetensors(path);
  t.deepEqual(Array.from(await got.tr.data()), [1, 4, 2, 5, 3, 6]);
  t.deepEqual(Array.from(await got.bc.data()), [7, 7, 7, 8, 8, 8]);
  disposeAll(got);
  for (const x of [base, tr, bc]) x.dispose();
});

test('saving replaces an existing file atomically and leaves no temporary file behind', async (t) => {
  const path = fresh('atomic');
  const a = P.tensor(new Float32Array([1, 2]), [2]);
  await P.saveSafetensors(path, { a });
  await P.saveSafetensors(path, { b: a });
  t.deepEqual(Object.keys(await P.readSafetensorsHeader(path).then((h) => Object.fromEntries(h.entries))), ['b']);
  const disposed = P.tensor(new Float32Array([1]), [1]);
  disposed.dispose();
  await t.throwsAsync(P.saveSafetensors(path, { a, disposed }), { message: /disposed/ });
  t.deepEqual([...(await P.readSafetensorsHeader(path)).entries.keys()], ['b'], 'a failed save leaves the old file intact');
  t.deepEqual(readdirSync(dir).filter((f) => f.startsWith(`.${basename(path)}`)), [], 'no temporary files');
  await rejects(t, P.saveSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), { a }), /^safetensors: .*no-such-dir\/x\.safetensors: output folder '.*no-such-dir' does not exist$/);
  a.dispose();
});

test('saving through a symbolic link replaces the file it points to and keeps the link; a device or folder at the path is refused, untouched', async (t) => {
  const sub = mkdtempSync(join(dir, 'links-'));
  const x = P.tensor(new Float32Array([1, 2, 3]), [3], { device: 'cpu' });
  await P.saveSafetensors(join(sub, 'real.safetensors'), { x });
  symlinkSync('real.safetensors', join(sub, 'link.safetensors'));
  const y = P.tensor(new Float32Array([7, 8]), [2], { device: 'cpu' });
  await P.saveSafetensors(join(sub, 'link.safetensors'), { y });
  t.true(lstatSync(join(sub, 'link.safetensors')).isSymbolicLink(), 'the link is still a link');
  const back = await P.loadSafetensors(join(sub, 'real.safetensors'), { device: 'cpu' });
  t.deepEqual(Object.keys(back), ['y']);
  t.deepEqual([...(await back.y.data())], [7, 8]);
  back.y.dispose();
  symlinkSync('/dev/null', join(sub, 'null.safetensors'));
  await t.throwsAsync(P.saveSafetensors(join(sub, 'null.safetensors'), { x }), {
    message: /^safetensors: .*null\.safetensors: '.*null\.safetensors' \(a link to '\/dev\/null'\) is a character device, not a regular file: refusing to replace it$/,
  });
  t.true(statSync('/dev/null').isCharacterDevice());
  mkdirSync(join(sub, 'folder.safetensors'));
  await t.throwsAsync(P.saveSafetensors(join(sub, 'folder.safetensors'), { x }), { message: /is a folder, not a regular file/ });
  t.deepEqual(readdirSync(sub).sort(), ['folder.safetensors', 'link.safetensors', 'null.safetensors', 'real.safetensors'], 'no temporary file left');
  x.dispose();
  y.dispose();
});

test('a file saved over the path while it loads is not mixed in; one saved over it after its header was read is refused', async (t) => {
  // Six 16 MiB tensors: past the loader's 64 MiB window, so the last ones are queued
  // only after the first has landed, which is when the new file is renamed over the path.
  const n = 4 << 20;
  const save = async (path: string, value: number) => {
    const ts: Record<string, Tensor> = {};
    for (let i = 0; i < 6; i++) ts[`t${i}`] = P.full([n], value);
    await P.saveSafetensors(path, ts);
    disposeAll(ts);
  };
  const path = fresh('replaced');
  const next = fresh('replacement');
  await save(path, 1);
  await save(next, 2);
  let replacedAfter = '';
  const { tensors } = await P.readSafetensors(path, {
    onProgress: (p) => {
      if (replacedAfter) return;
      replacedAfter = p.name;
      renameSync(next, path);
    },
  });
  t.is(replacedAfter, 't0');
  for (const [name, x] of Object.entries(tensors)) {
    const d = (await x.data()) as Float32Array;
    t.deepEqual([d[0], d[n - 1]], [1, 1], `${name} comes from the file that was opened`);
  }
  disposeAll(tensors);

  // The records of a header read before the path was saved over: refused, not read.
  const header = await P.readSafetensorsHeader(path);
  const a = P.tensor(new Float32Array([1, 2]), [2]);
  await P.saveSafetensors(path, { a });
  a.dispose();
  await rejects(t, P.loadRecords(P.safetensorsRecords(path, header)), /replaced-\d+\.safetensors: the file changed after its header was read/);
  // Read again, it loads.
  const again = await P.readSafetensors(path);
  t.deepEqual(Array.from(await again.tensors.a.data()), [1, 2]);
  disposeAll(again.tensors);
});

test("names that Object.prototype has ('constructor', 'toString', '__proto__') are names like any other, saved and read", async (t) => {
  const path = fresh('proto');
  const tensors: Record<string, Tensor> = {};
  for (const [i, name] of ['constructor', 'toString', '__proto__', 'b'].entries())
    Object.defineProperty(tensors, name, { value: P.full([2], i), enumerable: true, writable: true, configurable: true });
  await P.saveSafetensors(path, tensors, { dtypes: { b: 'F16' } });
  t.deepEqual([...(await P.readSafetensorsHeader(path)).entries.keys()], ['constructor', 'toString', '__proto__', 'b']);
  const got = await P.loadSafetensors(path);
  t.deepEqual(Object.keys(got), ['constructor', 'toString', '__proto__', 'b']);
  t.is(Object.getPrototypeOf(got), Object.prototype);
  for (const [i, name] of ['constructor', 'toString', '__proto__', 'b'].entries()) t.deepEqual(Array.from(await got[name].data()), [i, i], name);
  disposeAll(got);
  disposeAll(tensors);
});

test('save refuses non-string metadata and reserved names', async (t) => {
  const a = P.tensor(new Float32Array([1]), [1]);
  await t.throwsAsync(P.saveSafetensors(fresh(), { a }, { metadata: { n: 1 as unknown as string } }), { message: /metadata\['n'\] must be a string/ });
  await t.throwsAsync(P.saveSafetensors(fresh(), { __metadata__: a }), { message: /not a valid tensor name/ });
  await t.throwsAsync(P.saveSafetensors(fresh(), { a: [1] as unknown as Tensor }), { message: /tensors\['a'\] must be a Tensor/ });
  a.dispose();
});

// ---- reading every dtype ----------------------------------------------------------------------

test('reads every dtype of the format: floats as float32 (16-bit as stored), integers as int32, U8 and BOOL as uint8', async (t) => {
  const parts: [string, string, number[], Uint8Array][] = [
    ['f32', 'F32', [2], bytes(new Float32Array([1.25, -3]))],
    ['f16', 'F16', [2], bytes(Uint16Array.from([0x3c00, 0xc000]))], // 1, -2
    ['bf16', 'BF16', [2], bytes(Uint16Array.from([0x3f80, 0x4040]))], // 1, 3
    ['i32', 'I32', [2], bytes(Int32Array.from([-7, 2147483647]))],
    ['u8', 'U8', [3], Uint8Array.from([0, 128, 255])],
    ['i64', 'I64', [2, 2], bytes(BigInt64Array.from([0n, -2147483648n, 2147483647n, 5n]))],
    ['f64', 'F64', [3], bytes(Float64Array.from([0.1, -1e30, Infinity]))],
    ['bool', 'BOOL', [2], Uint8Array.from([1, 0])],
    ['i16', 'I16', [2], bytes(Int16Array.from([-32768, 32767]))],
    ['i8', 'I8', [2], bytes(Int8Array.from([-128, 127]))],
    ['u16', 'U16', [1], bytes(Uint16Array.from([65535]))],
    ['u32', 'U32', [1], bytes(Uint32Array.from([2147483647]))],
    ['u64', 'U64', [1], bytes(BigUint64Array.from([12345n]))],
    // e4m3fn: 0x38 = 1.0, 0xc4 = -3 (sign, exp 8, mant 4 -> 1.5 * 2), 0x01 = 2^-9 (subnormal), 0x7e = 448 (max)
    ['f8e4m3', 'F8_E4M3', [4], Uint8Array.from([0x38, 0xc4, 0x01, 0x7e])],
    // e5m2 is binary16's top byte: 0x3c = 1.0, 0xc0 = -2, 0x7c = inf
    ['f8e5m2', 'F8_E5M2', [3], Uint8Array.from([0x3c, 0xc0, 0x7c])],
  ];
  const header: Record<string, unknown> = {};
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const [name, dtype, shape, b] of parts) {
    header[name] = { dtype, shape, data_offsets: [off, off + b.length] };
    chunks.push(b);
    off += b.length;
  }
  const ts = await P.loadSafetensors(writeRaw(header, Buffer.concat(chunks)));
  const want: Record<string, [P.DTypeName, number[]]> = {
    f32: ['float32', [1.25, -3]],
    f16: ['float16', [1, -2]],
    bf16: ['bfloat16', [1, 3]],
    i32: ['int32', [-7, 2147483647]],
    u8: ['uint8', [0, 128, 255]],
    i64: ['int32', [0, -2147483648, 2147483647, 5]],
    f64: ['float32', [Math.fround(0.1), Math.fround(-1e30), Infinity]],
    bool: ['uint8', [1, 0]],
    i16: ['int32', [-32768, 32767]],
    i8: ['int32', [-128, 127]],
    u16: ['int32', [65535]],
    u32: ['int32', [2147483647]],
    u64: ['int32', [12345]],
    f8e4m3: ['float32', [1, -3, 2 ** -9, 448]],
    f8e5m2: ['float32', [1, -2, Infinity]],
  };
  for (const [name, [dtype, values]] of Object.entries(want)) {
    t.is(ts[name].dtype, dtype, name);
    t.deepEqual(Array.from(await ts[name].data()), values, name);
  }
  t.deepEqual(ts.i64.shape, [2, 2]);
  disposeAll(ts);
});

test('option dtype loads every float tensor as that dtype and leaves integers alone', async (t) => {
  const path = writeRaw(
    {
      f64: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
      f16: { dtype: 'F16', shape: [1], data_offsets: [16, 18] },
      i: { dtype: 'I32', shape: [1], data_offsets: [18, 22] },
    },
    Buffer.concat([bytes(Float64Array.from([1.5, -2])), bytes(Uint16Array.from([0x3c00])), bytes(Int32Array.from([7]))]),
  );
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    const ts = await P.loadSafetensors(path, { dtype });
    t.is(ts.f64.dtype, dtype);
    t.is(ts.f16.dtype, dtype);
    t.is(ts.i.dtype, 'int32');
    t.deepEqual(Array.from(await ts.f64.data()), [1.5, -2]);
    t.deepEqual(Array.from(await ts.f16.data()), [1]);
    disposeAll(ts);
  }
  await rejects(t, P.loadSafetensors(path, { dtype: 'int32' as 'float32' }), /option 'dtype' must be one of float32, float16, bfloat16/);
});

test.serial('narrowing is range-checked: an error names the file, the tensor, the value and its index, and nothing leaks', async (t) => {
  const before = (await baseline()).tensors;
  const a = bytes(new Float32Array([1]));
  const cases: [string, Uint8Array, RegExp][] = [
    ['I64', bytes(BigInt64Array.from([1n, 2147483648n])), /I64 value 2147483648 at flat index 1 does not fit in int32/],
    ['U64', bytes(BigUint64Array.from([1n, 18446744073709551615n])), /U64 value 18446744073709551615 at flat index 1 does not fit in int32/],
    ['U32', bytes(Uint32Array.from([4294967295, 0])), /U32 value 4294967295 at flat index 0 does not fit in int32/],
    ['F64', bytes(Float64Array.from([0, 1e300])), /F64 value .* at flat index 1 is outside the range of float32/],
  ];
  for (const [dtype, b, re] of cases) {
    const n = b.length / (dtype === 'U32' ? 4 : 8);
    const path = writeRaw(
      { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, ids: { dtype, shape: [n], data_offsets: [4, 4 + b.length] } },
      Buffer.concat([a, b]),
    );
    await rejects(t, P.loadSafetensors(path), /'ids'/, re, new RegExp(path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  }
  // A float16 request narrows float32 with the same check.
  const big = writeRaw({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, bytes(new Float32Array([1e6])));
  await rejects(t, P.loadSafetensors(big, { dtype: 'float16' }), /'w'/, /outside the range of float16/);
  t.is(live().tensors, before);
});

test('dtypes with no engine type are errors naming the tensor and the dtype; unknown ones too', async (t) => {
  for (const dtype of ['F4', 'F8_E8M0', 'C64']) {
    const path = writeRaw({ w: { dtype, shape: [1], data_offsets: [0, 1] } }, [0]);
    await rejects(t, P.loadSafetensors(path), /'w'/, new RegExp(`dtype ${dtype} is not supported`));
  }
  await rejects(t, P.loadSafetensors(writeRaw({ w: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, [0])), /'w'/, /unknown dtype 'Q4'/);
});

test('zero-size tensors may share an offset with their neighbours (they hold no bytes to overlap)', async (t) => {
  const path = writeRaw(
    {
      e1: { dtype: 'F32', shape: [0], data_offsets: [0, 0] },
      x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      e2: { dtype: 'I64', shape: [3, 0], data_offsets: [4, 4] },
      e3: { dtype: 'U8', shape: [0], data_offsets: [2, 2] },
    },
    bytes(new Float32Array([9])),
  );
  const ts = await P.loadSafetensors(path);
  t.deepEqual(ts.e1.shape, [0]);
  t.deepEqual(ts.e2.shape, [3, 0]);
  t.is(ts.e2.dtype, 'int32');
  t.deepEqual(Array.from(await ts.x.data()), [9]);
  disposeAll(ts);
});

test('names selects tensors; an unknown name is an error', async (t) => {
  const path = join(FIXTURES, 'mlm', 'input.safetensors');
  const ts = await P.loadSafetensors(path, { names: ['attention_mask'] });
  t.deepEqual(Object.keys(ts), ['attention_mask']);
  t.is(ts.attention_mask.dtype, 'int32');
  disposeAll(ts);
  await rejects(t, P.loadSafetensors(path, { names: ['nope'] }), /no tensor named 'nope'/);
});

test('reads HuggingFace-written files: names, dtypes, shapes, metadata', async (t) => {
  const { tensors, metadata } = await P.readSafetensors(join(FIXTURES, 'mlm', 'input.safetensors'));
  t.deepEqual(metadata, { format: 'pt' });
  t.deepEqual(tensors.inputs.shape, [2, 48]);
  t.is(tensors.inputs.dtype, 'int32');
  const ids = await tensors.inputs.data();
  t.true(Array.from(ids).every((v) => v >= 0 && v < 262));
  t.is(tensors['loss_weights.logits'].dtype, 'float32');
  disposeAll(tensors);
});

// ---- corrupt files ----------------------------------------------------------------------------

const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

test('a file shorter than 8 bytes is refused', async (t) => {
  const path = fresh('short');
  writeFileSync(path, Uint8Array.from([1, 2, 3]));
  await rejects(t, P.loadSafetensors(path), /too short/, new RegExp(`short-\\d+\\.safetensors`));
});

test('a header length past the end of the file is refused without allocating it', async (t) => {
  await rejects(t, P.loadSafetensors(writeRaw(good, new Uint8Array(8), { headerLen: 1n << 60n })), /header length \d+ runs past the end of the file/);
  await rejects(t, P.loadSafetensors(writeRaw(good, [], { headerLen: 1000n })), /runs past the end of the file/);
});

test('a file of another kind (a JPEG given as --input) is called not a safetensors file', async (t) => {
  const path = fresh('photo');
  // A JPEG's first bytes: SOI, APP0 'JFIF', read as a little-endian u64 length.
  writeFileSync(path, Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, ...new Array(100).fill(0)]));
  await rejects(t, P.loadSafetensors(path), /header length \d+ runs past the end of the file/, /: not a safetensors file \(.*\), or a truncated one$/);
});

test('a truncated data section is reported as offsets out of range', async (t) => {
  await rejects(t, P.loadSafetensors(writeRaw(good, new Uint8Array(5))), /tensor 'a'/, /data_offsets \[0, 8\] run past the end of the data section \(5 bytes; truncated\?\)/);
});

test('out-of-range, reversed and malformed offsets are refused', async (t) => {
  const data = new Uint8Array(16);
  await rejects(t, P.loadSafetensors(writeRaw({ a: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } }, data)), /run past the end/);
  await rejects(t, P.loadSafetensors(writeRaw({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, data)), /begin after end/);
  await rejects(t, P.loadSafetensors(writeRaw({ a: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, data)), /'data_offsets' must be/);
  await rejects(t, P.loadSafetensors(writeRaw({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, data)), /'data_offsets' must be/);
});

test('overlapping tensors are refused, naming both', async (t) => {
  const path = writeRaw(
    { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
    new Uint8Array(12),
  );
  await rejects(t, P.loadSafetensors(path), /'a'/, /'b'/, /overlap/);
});

test('a byte count that does not match shape x dtype is refused', async (t) => {
  await rejects(
    t,
    P.loadSafetensors(writeRaw({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8))),
    /tensor 'a'/,
    /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/,
  );
  await rejects(t, P.loadSafetensors(writeRaw({ a: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, new Uint8Array(8))), /'shape' must be/);
  await rejects(
    t,
    P.loadSafetensors(writeRaw({ a: { dtype: 'F64', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, new Uint8Array(8))),
    /needs .* bytes/,
  );
});

test('a header that is not a JSON object of entries is refused', async (t) => {
  await rejects(t, P.loadSafetensors(writeRaw('{"a": ')), /not valid UTF-8 JSON/);
  await rejects(t, P.loadSafetensors(writeRaw('[1, 2]')), /must be a JSON object/);
  await rejects(t, P.loadSafetensors(writeRaw({ a: 5 })), /tensor 'a': entry must be an object/);
  await rejects(t, P.loadSafetensors(writeRaw({ __metadata__: { n: 1 } })), /__metadata__\['n'\] must be a string/);
  const bad = Buffer.from([0x7b, 0xff, 0x7d]); // '{', invalid UTF-8, '}'
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(3n);
  const path = fresh('utf8');
  writeFileSync(path, Buffer.concat([len, bad]));
  await rejects(t, P.loadSafetensors(path), /UTF-8/);
});

test('a missing file is an error naming it', async (t) => {
  const path = join(dir, 'missing.safetensors');
  t.false(existsSync(path));
  await rejects(t, P.loadSafetensors(path), /missing\.safetensors/, /cannot open/);
});

test('parseSafetensorsHeader is pure: a header above the 100 MB cap is refused before it is read or parsed', (t) => {
  const prefix = new Uint8Array(8);
  Buffer.from(prefix.buffer).writeBigUInt64LE(100_000_001n);
  t.throws(() => P.parseSafetensorsHeader('/virtual/huge.safetensors', prefix, 300_000_000), {
    message: /^safetensors: \/virtual\/huge\.safetensors: header length 100000001 exceeds the 100000000-byte limit/,
  });
  t.throws(() => P.parseSafetensorsHeader('/virtual/cut.safetensors', prefix.subarray(0, 4), 300_000_000), { message: /cut\.safetensors: only 4 bytes given/ });
  const json = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 6] } }));
  const file = Buffer.concat([Buffer.alloc(8), json, Buffer.alloc(6)]);
  file.writeBigUInt64LE(BigInt(json.length));
  t.throws(() => P.parseSafetensorsHeader('/virtual/frac.safetensors', file, file.length), { message: /frac\.safetensors: tensor 'w': 'shape' must be an array of at most 8 non-negative integers, got \[1\.5\]/ });
});

test('records of a header point at each tensor’s absolute byte range, in the file version the header was read from', async (t) => {
  const path = join(FIXTURES, 'mlm', 'input.safetensors');
  const h = await P.readSafetensorsHeader(path);
  const version = P.fileVersion(statSync(path, { bigint: true }));
  t.is(h.version, version);
  const recs = P.safetensorsRecords(path, h);
  t.deepEqual(recs.map((r) => r.name), [...h.entries.keys()]);
  for (const r of recs) {
    const e = h.entries.get(r.name)!;
    t.deepEqual(r.source, { kind: 'file', path, offset: h.dataStart + e.dataOffsets[0], byteLength: e.dataOffsets[1] - e.dataOffsets[0], version });
  }
});

test('save can store int32 as I64 (widened, sign-extended) and floats as F16/BF16', async (t) => {
  const ids = P.tensor(Int32Array.from([-2147483648, -1, 0, 7]), [4]);
  const w = P.tensor(new Float32Array([1.5, -2]), [2]);
  const path = fresh('dtypes');
  await P.saveSafetensors(path, { ids, w }, { dtypes: { ids: 'I64', w: 'BF16' } });
  const h = await P.readSafetensorsHeader(path);
  t.is(h.entries.get('ids')!.dtype, 'I64');
  t.is(h.entries.get('w')!.dtype, 'BF16');
  const raw = readFileSync(path);
  const at = h.dataStart + h.entries.get('ids')!.dataOffsets[0];
  t.deepEqual(Array.from(new BigInt64Array(raw.buffer.slice(raw.byteOffset + at, raw.byteOffset + at + 32))), [-2147483648n, -1n, 0n, 7n]);
  const back = await P.loadSafetensors(path);
  t.deepEqual(Array.from(await back.ids.data()), [-2147483648, -1, 0, 7]);
  t.deepEqual(Array.from(await back.w.data()), [1.5, -2]);
  await t.throwsAsync(P.saveSafetensors(fresh(), { w }, { dtypes: { w: 'I64' } }), { message: /tensors\['w'\] \(float32\) cannot be stored as I64/ });
  await t.throwsAsync(P.saveSafetensors(fresh(), { w }, { dtypes: { v: 'F32' } }), { message: /option dtypes names 'v', which is not among the tensors/ });
  disposeAll(back);
  ids.dispose();
  w.dispose();
});

test('a tensor named twice in the header is refused, not collapsed to the last as JSON.parse would', async (t) => {
  const entry = (dtype: string, from: number) => `{"dtype":"${dtype}","shape":[1],"data_offsets":[${from},${from + 4}]}`;
  // Disjoint ranges (the first would be a gap) and the very same range (no gap to see).
  await rejects(t, P.loadSafetensors(writeRaw(`{"a":${entry('F32', 0)},"a":${entry('F32', 4)}}`, new Uint8Array(8))), /raw-\d+\.safetensors: the key 'a' appears twice in one object/);
  await rejects(t, P.loadSafetensors(writeRaw(`{"a":${entry('F32', 0)}, "b":${entry('F32', 4)}, "\\u0061" :${entry('I32', 0)}}`, new Uint8Array(8))), /the key 'a' appears twice/);
  await rejects(t, P.loadSafetensors(writeRaw(`{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, new Uint8Array(4))), /the key 'dtype' appears twice/);
  await rejects(t, P.loadSafetensors(writeRaw(`{"__metadata__":{"k":"1","k":"2"}}`)), /the key 'k' appears twice/);
  // The same key in different objects, and in strings, is not a repeat.
  const ts = await P.loadSafetensors(writeRaw(`{"__metadata__":{"a":"{\\"a\\": 1}"},"a":${entry('F32', 0)}}`, new Uint8Array(4)));
  t.deepEqual(Object.keys(ts), ['a']);
  disposeAll(ts);
});

test('the tensors must cover the data section exactly: bytes no tensor holds are refused', async (t) => {
  const f32 = (from: number) => ({ dtype: 'F32', shape: [1], data_offsets: [from, from + 4] });
  await rejects(t, P.loadSafetensors(writeRaw({ a: f32(0), b: f32(8) }, new Uint8Array(12))), /bytes \[4, 8\) of the data section belong to no tensor/);
  await rejects(t, P.loadSafetensors(writeRaw({ a: f32(4) }, new Uint8Array(8))), /bytes \[0, 4\) of the data section belong to no tensor/);
  await rejects(t, P.loadSafetensors(writeRaw({ a: f32(0) }, new Uint8Array(7))), /the data section's last 3 bytes, from byte 4 on, belong to no tensor/);
  await rejects(t, P.loadSafetensors(writeRaw({}, new Uint8Array(1))), /the data section's last 1 bytes, from byte 0 on, belong to no tensor/);
  const ts = await P.loadSafetensors(writeRaw({ b: f32(4), a: f32(0) }, new Uint8Array(8)));
  t.deepEqual(Object.keys(ts), ['b', 'a']);
  disposeAll(ts);
});

test('tensor and metadata names longer than 1024 characters are refused by the reader and the writer, naming the length', async (t) => {
  const long = 'x'.repeat(1025);
  const entry = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
  await rejects(t, P.loadSafetensors(writeRaw({ [long]: entry })), /the key 'x{60}\.\.\.' \(1025 characters\) is longer than the 1024 characters a name may have/);
  await rejects(t, P.loadSafetensors(writeRaw({ __metadata__: { [long]: 'v' } })), /\(1025 characters\) is longer than the 1024/);
  // Escapes count as the characters they stand for.
  await rejects(t, P.loadSafetensors(writeRaw(`{"${'\\u0078'.repeat(1000)}${'x'.repeat(25)}": ${JSON.stringify(entry)}}`)), /'x{60}\.\.\.' \(1025 characters\)/);
  const ts = await P.loadSafetensors(writeRaw({ ['y'.repeat(1024)]: entry }));
  t.deepEqual(Object.keys(ts).map((k) => k.length), [1024]);
  disposeAll(ts);

  const x = P.zeros([1]);
  const path = fresh('longname');
  await t.throwsAsync(P.saveSafetensors(path, { [long]: x }), { instanceOf: RangeError, message: /^saveSafetensors: tensor name 'x{60}\.\.\.' \(1025 characters\) is longer than the 1024 characters the reader accepts$/ });
  await t.throwsAsync(P.saveSafetensors(path, { x }, { metadata: { [long]: 'v' } }), { instanceOf: RangeError, message: /metadata key 'x{60}\.\.\.' \(1025 characters\)/ });
  t.false(existsSync(path));
  x.dispose();
});

test('the writer refuses a header over the readers’ 100 MB limit before it writes anything', async (t) => {
  const x = P.zeros([1]);
  const path = fresh('hugeheader');
  await t.throwsAsync(P.saveSafetensors(path, { x }, { metadata: { note: 'n'.repeat(100_000_000) } }), {
    instanceOf: RangeError,
    message: /^saveSafetensors: .*hugeheader-\d+\.safetensors: the header would be 1000000\d\d bytes, over the 100000000-byte limit of readers/,
  });
  t.deepEqual(readdirSync(dir).filter((f) => f.includes('hugeheader')), [], 'no file, no temporary');
  x.dispose();
});

test('the readers refuse a named pipe or a folder at once, naming it, instead of waiting on it', async (t) => {
  if (process.platform !== 'win32') {
    const fifo = join(dir, 'fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    await rejects(t, P.readSafetensorsHeader(fifo), /^safetensors: .*fifo\.safetensors: cannot open \(.*fifo\.safetensors is a named pipe \(FIFO\), not a regular file\)$/);
  }
  await rejects(t, P.loadSafetensors(dir), new RegExp(`^safetensors: ${dir}: cannot open \\(${dir} is a directory, not a regular file\\)$`));
  await rejects(t, P.readSafetensors(dir), /is a directory, not a regular file/);
});

test('parseSafetensorsHeader and safetensorsRecords refuse bad arguments with the argument named', (t) => {
  const file = Buffer.concat([Buffer.alloc(8), Buffer.from('{}')]);
  file.writeBigUInt64LE(2n);
  t.throws(() => P.parseSafetensorsHeader(42 as unknown as string, file, file.length), { instanceOf: TypeError, message: /^parseSafetensorsHeader: argument 'path' must be a non-empty string .*, got number 42$/ });
  t.throws(() => P.safetensorsRecords(undefined as unknown as string, undefined as unknown as P.SafetensorsHeader), { instanceOf: TypeError, message: /^safetensorsRecords: argument 'path' must be a file path, got undefined$/ });
  for (const header of [undefined, null, 5, { entries: 5 }, { entries: new Map(), dataStart: -1 }])
    t.throws(() => P.safetensorsRecords('x.safetensors', header as unknown as P.SafetensorsHeader), { instanceOf: TypeError, message: /^safetensorsRecords: argument 'header' must be a SafetensorsHeader/ }, JSON.stringify(header));
  t.throws(() => P.safetensorsRecords('x.safetensors', { entries: new Map(), metadata: {}, dataStart: 10, version: 5 as unknown as string }), { instanceOf: TypeError, message: /'version' must be a string/ });
  t.deepEqual(P.safetensorsRecords('x.safetensors', P.parseSafetensorsHeader('x.safetensors', file, file.length)), []);
});
