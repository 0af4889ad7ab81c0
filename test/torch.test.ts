// Specification of the PyTorch checkpoint reader: both torch.save layouts give records
// with exactly the bytes, shape and dtype of the tensors in model.safetensors (the
// fixtures were written from it by scripts/make-test-checkpoints.py); tied weights and
// views share bytes, non-contiguous views carry strides, every dtype is named right;
// and hostile, truncated or foreign files fail with an error naming the file.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadSafetensors } from '../lib/io/safetensors.js';
import { readTorchCheckpoint } from '../lib/io/torch.js';
import { loadRecords } from '../lib/io/load-records.js';
import type { TensorRecord } from '../lib/io/records.js';
import type { Tensor } from '../lib/index.js';
import { bytesOf, recordBytes, recordValues } from './helpers/records.js';

const here = dirname(fileURLToPath(import.meta.url));
const CKPT = join(here, '..', '..', 'test', 'fixtures', 'checkpoints');
const MODEL = join(here, '..', '..', 'test', 'fixtures', 'hf', 'mlm', 'model.safetensors');
const MARKER = '/tmp/perceiver-io-pickle-payload-ran';
const ckpt = (name: string) => join(CKPT, name);
const dir = mkdtempSync(join(tmpdir(), 'perceiver-torch-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

let reference: Record<string, Tensor>;
test.before(async () => {
  reference = await loadSafetensors(MODEL, { device: 'cpu' });
});
test.after.always(() => {
  for (const t of Object.values(reference ?? {})) t.dispose();
});

const byName = (recs: TensorRecord[]) => new Map(recs.map((r) => [r.name, r]));

/** Every record equals the same-named tensor of model.safetensors, byte for byte. */
async function matchesReference(t: import('ava').ExecutionContext, recs: TensorRecord[]): Promise<void> {
  for (const r of recs) {
    const ref = reference[r.name];
    t.truthy(ref, `${r.name} is in model.safetensors`);
    t.is(r.dtype, 'F32', r.name);
    t.deepEqual(r.shape, ref.shape, r.name);
    t.deepEqual(await recordBytes(r), bytesOf(await ref.data()), `${r.name}: same bytes`);
  }
}

test('the zip layout (pytorch_model.bin) gives every tensor of the model with its exact bytes', async (t) => {
  const recs = await readTorchCheckpoint(ckpt('pytorch_model.bin'));
  t.deepEqual(recs.map((r) => r.name).sort(), Object.keys(reference).sort(), 'all 73 tensors, named as in the state_dict');
  await matchesReference(t, recs);
  const size = readFileSync(ckpt('pytorch_model.bin')).length;
  for (const r of recs) {
    t.is(r.source.kind, 'file', `${r.name}: a byte range of the file, not a copy`);
    if (r.source.kind === 'file') t.true(r.source.offset + r.source.byteLength <= size);
    t.is(r.strides, undefined, `${r.name}: contiguous`);
  }
});

test('the legacy layout (_use_new_zipfile_serialization=False) gives the same bytes from file offsets', async (t) => {
  const recs = await readTorchCheckpoint(ckpt('pytorch_model_legacy.bin'));
  t.is(recs.length, 20);
  t.true(recs.every((r) => r.source.kind === 'file'));
  await matchesReference(t, recs);
});

test('tied weights share bytes; views carry offsets and strides; Parameters are tensors', async (t) => {
  const recs = byName(await readTorchCheckpoint(ckpt('tied_strided.bin')));
  const w = reference['perceiver.encoder.cross_attention.attention.self.query.weight']; // [32, 96]
  const wv = Array.from((await w.data()) as Float32Array);
  const at = (i: number, j: number) => wv[i * 96 + j];

  // The checkpoint nests {'model': {'encoder': ..., 'head': ...}, 'step', 'config'}:
  // the weights are read from 'model', named with dots, and non-tensors are skipped.
  t.true([...recs.keys()].every((n) => n.startsWith('encoder.') || n.startsWith('head.')));
  const q = recs.get('encoder.query.weight')!;
  const tied = recs.get('encoder.query_tied.weight')!;
  t.deepEqual(tied.source, q.source, 'two names over the same bytes');
  t.deepEqual(await recordBytes(q), bytesOf(await w.data()));

  const tr = recs.get('encoder.query_t')!;
  t.deepEqual(tr.shape, [96, 32]);
  t.deepEqual(tr.strides, [1, 96]);
  t.deepEqual(await recordValues(tr), Array.from({ length: 96 * 32 }, (_, n) => at(n % 32, Math.floor(n / 32))));

  const rows = recs.get('encoder.query_rows')!; // w[4:6]
  t.deepEqual(rows.shape, [2, 96]);
  t.is(rows.strides, undefined, 'a row slice is contiguous');
  t.deepEqual(await recordValues(rows), wv.slice(4 * 96, 6 * 96));
  if (rows.source.kind === 'file' && q.source.kind === 'file') t.is(rows.source.offset, q.source.offset + 4 * 96 * 4);

  const col = recs.get('encoder.query_col')!; // w[:, 5]
  t.deepEqual(col.shape, [32]);
  t.deepEqual(col.strides, [96]);
  t.deepEqual(await recordValues(col), Array.from({ length: 32 }, (_, i) => at(i, 5)));

  const eo = recs.get('encoder.query_every_other')!; // w[::2, 1::3]
  t.deepEqual(eo.shape, [16, 32]);
  t.deepEqual(eo.strides, [192, 3]);
  t.deepEqual(await recordValues(eo), Array.from({ length: 16 * 32 }, (_, n) => at(2 * Math.floor(n / 32), 1 + 3 * (n % 32))));

  const pos = Array.from((await reference['perceiver.input_preprocessor.position_embeddings.weight'].data()) as Float32Array);
  const param = recs.get('encoder.param')!;
  t.deepEqual(param.shape, [2, 64]);
  t.deepEqual(await recordValues(param), pos.slice(0, 128));

  t.deepEqual(await recordBytes(recs.get('head.bias')!), bytesOf(await reference['embedding_decoder.bias'].data()));
});

test('every storage type maps to its record dtype with the right values', async (t) => {
  const recs = byName(await readTorchCheckpoint(ckpt('tied_strided.bin')));
  const pos = Array.from((await reference['perceiver.input_preprocessor.position_embeddings.weight'].data()) as Float32Array);
  const small = [0, 1, 2].flatMap((i) => pos.slice(i * 64, i * 64 + 4)); // emb[:3, :4]
  const expect: [string, string, number[], (got: number, want: number) => boolean][] = [
    ['f64', 'F64', small, (a, b) => a === b],
    ['f16', 'F16', small, (a, b) => Math.abs(a - b) <= Math.abs(b) * 2 ** -10],
    ['bf16', 'BF16', small, (a, b) => Math.abs(a - b) <= Math.abs(b) * 2 ** -7],
    ['i64', 'I64', Array.from({ length: 12 }, (_, i) => i - 3), (a, b) => a === b],
    ['i32', 'I32', Array.from({ length: 12 }, (_, i) => i - 3), (a, b) => a === b],
    ['i16', 'I16', Array.from({ length: 12 }, (_, i) => i - 3), (a, b) => a === b],
    ['i8', 'I8', Array.from({ length: 12 }, (_, i) => i - 3), (a, b) => a === b],
    ['u8', 'U8', Array.from({ length: 12 }, (_, i) => i), (a, b) => a === b],
    ['bool', 'BOOL', [1, 0, 1], (a, b) => a === b],
    ['scalar', 'F32', [2.5], (a, b) => a === b],
  ];
  for (const [name, dtype, want, same] of expect) {
    const r = recs.get(`encoder.${name}`)!;
    t.is(r.dtype as string, dtype, name);
    const got = await recordValues(r);
    t.is(got.length, want.length, name);
    t.true(got.every((g, i) => same(g, want[i])), `${name}: ${got.slice(0, 4)} vs ${want.slice(0, 4)}`);
  }
  t.deepEqual(recs.get('encoder.i64')!.shape, [3, 4]);
  t.deepEqual(recs.get('encoder.scalar')!.shape, []);
  const empty = recs.get('encoder.empty')!;
  t.deepEqual(empty.shape, [0, 5]);
  t.is(empty.source.kind === 'file' ? empty.source.byteLength : -1, 0);
});

test('the legacy and the re-zipped DEFLATE archive of the same object give the same records', async (t) => {
  const zip = await readTorchCheckpoint(ckpt('tied_strided.bin'));
  for (const other of ['tied_strided_legacy.bin', 'tied_strided_deflated.bin']) {
    const recs = byName(await readTorchCheckpoint(ckpt(other)));
    t.deepEqual([...recs.keys()].sort(), zip.map((r) => r.name).sort(), other);
    for (const r of zip) {
      const o = recs.get(r.name)!;
      t.is(o.dtype, r.dtype, `${other} ${r.name}`);
      t.deepEqual(o.shape, r.shape, `${other} ${r.name}`);
      t.deepEqual(o.strides, r.strides, `${other} ${r.name}`);
      t.deepEqual(await recordBytes(o), await recordBytes(r), `${other} ${r.name}`);
    }
    if (other.includes('deflated')) t.true([...recs.values()].every((r) => r.source.kind === 'bytes'), 'compressed storages are inflated');
  }
});

test("torch 2's byteorder and serialization_id records are read; a big-endian archive is refused", async (t) => {
  const [rec] = await readTorchCheckpoint(ckpt('torch2_layout.bin'));
  t.is(rec.name, 'latents');
  t.deepEqual(await recordBytes(rec), bytesOf(await reference['perceiver.embeddings.latents'].data()));
  await t.throwsAsync(readTorchCheckpoint(ckpt('big_endian.bin')), { message: /big_endian\.bin: byteorder is 'big'; only little-endian checkpoints are supported/ });
});

test('a data.pkl that calls os.system is refused, naming the file and the global, and nothing runs', async (t) => {
  rmSync(MARKER, { force: true });
  const err = await t.throwsAsync(readTorchCheckpoint(ckpt('evil_torch.bin')));
  t.regex(err!.message, /evil_torch\.bin/);
  t.regex(err!.message, /archive\/data\.pkl/);
  t.regex(err!.message, /byte \d+/);
  t.regex(err!.message, /refused global 'posix\.system'/);
  t.false(existsSync(MARKER), 'the payload never ran');
});

test('zip bombs are refused before they inflate', async (t) => {
  const lie = await t.throwsAsync(readTorchCheckpoint(ckpt('zip_bomb.bin')));
  t.regex(lie!.message, /zip_bomb\.bin.*archive\/data\.pkl.*inflates past its declared 100 bytes/);
  const big = await t.throwsAsync(readTorchCheckpoint(ckpt('zip_bomb_declared.bin')));
  t.regex(big!.message, /zip_bomb_declared\.bin.*declares 3221225472 bytes, over the \d+-byte limit/);
});

test('every truncation of a checkpoint fails with an error naming the file', async (t) => {
  for (const name of ['tied_strided.bin', 'tied_strided_legacy.bin']) {
    const full = readFileSync(ckpt(name));
    const cuts = [0, 1, 2, 10, 100, 500, 1000, 2000, 3000, 5000, 8000, 12000, full.length - 100, full.length - 22, full.length - 1];
    for (const cut of cuts) {
      const p = join(dir, `cut-${cut}-${name}`);
      writeFileSync(p, full.subarray(0, cut));
      const err = await t.throwsAsync(readTorchCheckpoint(p), undefined, `${name} cut at ${cut}`);
      t.true(err!.message.includes(p), `${name} cut at ${cut}: ${err!.message}`);
    }
  }
});

test('a legacy file whose storages are cut short says which storage and where', async (t) => {
  const full = readFileSync(ckpt('pytorch_model_legacy.bin'));
  const p = join(dir, 'short-legacy.bin');
  writeFileSync(p, full.subarray(0, full.length - 4));
  await t.throwsAsync(readTorchCheckpoint(p), { message: /short-legacy\.bin: storage '\d+' \[\d+, \d+\) runs past the end of the file/ });
});

test('files that are not checkpoints, and bad arguments, are clear errors', async (t) => {
  await t.throwsAsync(readTorchCheckpoint(MODEL), { message: /model\.safetensors: not a PyTorch checkpoint: starts with/ });
  await t.throwsAsync(readTorchCheckpoint(ckpt('plain_proto2.pickle')), { message: /plain_proto2\.pickle: not a PyTorch checkpoint \(the first pickle is dict/ });
  await t.throwsAsync(readTorchCheckpoint(ckpt('haiku_params.pickle')), { message: /haiku_params\.pickle.*refused global 'numpy/ });
  await t.throwsAsync(readTorchCheckpoint(join(dir, 'missing.bin')), { message: /missing\.bin: cannot open/ });
  await t.throwsAsync(readTorchCheckpoint(42 as unknown as string), { instanceOf: TypeError, message: /argument 'path'/ });
});

test('a legacy file saved with pickle_protocol=1 reads as torch.load reads it', async (t) => {
  // torch.save({'w': torch.tensor([1., 2., 3., 4.]).view(2, 2).t()}, f, pickle_protocol=1,
  // _use_new_zipfile_serialization=False): no PROTO opcode, the magic number a LONG ('L...').
  const b64 =
    'TDExOTU0NzAzNzE0NjAzODgwMTMzMzM1NkwKLk3pAy59cQAoWBAAAABwcm90b2NvbF92ZXJzaW9ucQFN6QNYDQAAAGxpdHRsZV9lbmRpYW5xAkkwMQpYCgAAAHR5cGVfc2l6ZXNxA31xBChYBQAAAHNob3J0cQVLAlgDAAAAaW50cQZLBFgEAAAAbG9uZ3EHSwR1dS59cQBYAQAAAHdxAWN0b3JjaC5fdXRpbHMKX3JlYnVpbGRfdGVuc29yX3YyCnECKChYBwAAAHN0b3JhZ2VxA2N0b3JjaApGbG9hdFN0b3JhZ2UKcQRYCQAAADIzODkxNjg0OHEFWAMAAABjcHVxBksETnRxB1FLAChLAksCdHEIKEsBSwJ0cQlJMDAKY2NvbGxlY3Rpb25zCk9yZGVyZWREaWN0CnEKKVJxC3RxDFJxDXMuXXEAWAkAAAAyMzg5MTY4NDhxAWEuBAAAAAAAAAAAAIA/AAAAQAAAQEAAAIBA';
  const p = join(dir, 'legacy_proto1.bin');
  writeFileSync(p, Buffer.from(b64, 'base64'));
  const [rec] = await readTorchCheckpoint(p);
  t.is(rec.name, 'w');
  t.deepEqual(rec.shape, [2, 2]);
  t.deepEqual(rec.strides, [1, 2]);
  t.deepEqual(await recordValues(rec), [1, 3, 2, 4]);
});

// ---- hand-built legacy files, for what torch.save never writes ---------------------------------

/** Pickle opcodes from readable pieces: strings are raw latin-1, numbers are bytes. */
const op = (...parts: (string | number[] | Uint8Array)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const str = (s: string) => op([0x58, s.length, 0, 0, 0], s);
const int = (n: number) => op([0x4a, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff]);

/** A legacy-layout file: the three header pickles, `main`, the key list and the storages. */
function legacyFile(name: string, main: Buffer, storages: [string, Buffer][]): string {
  const magic = op([0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], '.');
  const proto = op([0x80, 2, 0x4d, 0xe9, 0x03], '.');
  const sysInfo = op([0x80, 2], '}', str('little_endian'), [0x88], 's.');
  const keys = op([0x80, 2], ']', ...storages.map(([k]) => str(k).toString('latin1')), '.');
  const keyList = storages.length ? op([0x80, 2], ']', '(', keys.subarray(3, -1).toString('latin1'), 'e.') : op([0x80, 2], '].');
  const data = storages.flatMap(([, b]) => {
    const n = Buffer.alloc(8);
    n.writeBigInt64LE(BigInt(b.length / 4));
    return [n, b];
  });
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([magic, proto, sysInfo, main, keyList, ...data]));
  return p;
}

function tensorPickle(size: number[], stride: number[], storageNumel: number, storageType = 'FloatStorage'): Buffer {
  const tuple = (xs: number[]) => op('(', ...xs.map((x) => int(x).toString('latin1')), 't');
  return op(
    [0x80, 2], '}', str('w'),
    'ctorch._utils\n_rebuild_tensor_v2\n', '((', str('storage'), `ctorch\n${storageType}\n`, str('0'), str('cpu'), int(storageNumel), 'Nt', 'Q',
    int(0), tuple(size), tuple(stride), [0x89], 'ccollections\nOrderedDict\n)R', 't', 'R', 's.',
  );
}

test('a hand-built legacy file reads, and its record points at the storage bytes', async (t) => {
  const bytes = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
  const p = legacyFile('hand.bin', tensorPickle([2, 2], [1, 2], 4), [['0', bytes]]);
  const [rec] = await readTorchCheckpoint(p);
  t.is(rec.name, 'w');
  t.deepEqual(rec.strides, [1, 2]);
  t.deepEqual(await recordValues(rec), [1, 3, 2, 4]);
});

test('tensors reaching past their storage, and unsupported storage types, are refused', async (t) => {
  const bytes = Buffer.from(new Float32Array([1, 2, 3, 4]).buffer);
  await t.throwsAsync(readTorchCheckpoint(legacyFile('past.bin', tensorPickle([3], [2], 4), [['0', bytes]])), {
    message: /past\.bin \[legacy\] object: byte \d+: torch\._utils\._rebuild_tensor_v2: _rebuild_tensor_v2: size \[3\] stride \[2\] at offset 0 reaches element 4, past the storage's 4/,
  });
  await t.throwsAsync(readTorchCheckpoint(legacyFile('complex.bin', tensorPickle([2], [1], 4, 'ComplexFloatStorage'), [['0', bytes]])), {
    message: /complex\.bin \[legacy\] object: byte \d+: refused global 'torch\.ComplexFloatStorage'/,
  });
  await t.throwsAsync(readTorchCheckpoint(legacyFile('unused.bin', tensorPickle([2], [1], 4), [['0', bytes], ['1', bytes]])), {
    message: /unused\.bin: storage '1' is listed but no tensor uses it/,
  });
  await t.throwsAsync(readTorchCheckpoint(legacyFile('missing.bin', tensorPickle([2], [1], 4), [])), {
    message: /missing\.bin: storage '0' is used but its bytes are missing/,
  });
});

test('a small checkpoint sharing one dict under two keys, 30 levels deep, is refused instead of walked 2^30 times', async (t) => {
  const parts: (string | number[])[] = [[0x80, 2, 0x7d, 0x71, 0]];
  for (let i = 1; i <= 30; i++) parts.push([0x7d, 0x28], str('a').toString('latin1'), [0x68, i - 1], str('b').toString('latin1'), [0x68, i - 1, 0x75, 0x71, i]);
  const p = legacyFile('dag.bin', op(...parts, '.'), []);
  await t.throwsAsync(readTorchCheckpoint(p), { message: /dag\.bin: the checkpoint's structure has more than \d+ paths/ });
});

test('a stride-0 view over a one-element storage reads as such, and loading it is refused before anything is allocated', async (t) => {
  // size [2^28], stride [0] over one float: 1 GiB of tensor from a file of a few hundred bytes.
  const p = legacyFile('stride0.bin', tensorPickle([1 << 28], [0], 1), [['0', Buffer.from(new Float32Array([1.5]).buffer)]]);
  const recs = await readTorchCheckpoint(p);
  t.deepEqual(recs[0].strides, [0]);
  await t.throwsAsync(loadRecords(recs), { instanceOf: RangeError, message: /stride0\.bin: tensor 'w': shape \[268435456\] at strides \[0\] repeats its 4 bytes/ });
});

test('one tensor shared under many names through the pickle memo reads, and loading them all is refused', async (t) => {
  // d0 = {'w': tensor over 1 MiB}; d(i) = {'a': d(i-1), 'b': d(i-1)}: 2^7 names for one storage.
  const numel = 1 << 18;
  const main = tensorPickle([numel], [1], numel);
  const parts: (string | number[] | Uint8Array)[] = [main.subarray(0, main.length - 1), [0x71, 0]];
  for (let i = 1; i <= 7; i++) parts.push([0x7d, 0x28], str('a'), [0x68, i - 1], str('b'), [0x68, i - 1, 0x75, 0x71, i]);
  const p = legacyFile('shared.bin', op(...parts, '.'), [['0', Buffer.alloc(numel * 4)]]);
  const recs = await readTorchCheckpoint(p);
  t.is(recs.length, 128);
  await t.throwsAsync(loadRecords(recs), { instanceOf: RangeError, message: /shared\.bin: the 128 tensors would take 134217728 bytes, from 1048576 distinct bytes/ });
  const two = await loadRecords(recs.slice(0, 2));
  t.is(Object.keys(two).length, 2);
  for (const x of Object.values(two)) x.dispose();
});

/** BINUNICODE with its 4-byte length: names longer than 255 characters. */
const longStr = (s: string) => {
  const b = Buffer.alloc(5);
  b[0] = 0x58;
  b.writeUInt32LE(s.length, 1);
  return Buffer.concat([b, Buffer.from(s, 'latin1')]);
};

test('a tensor name longer than 1024 characters is refused, naming the file and the length', async (t) => {
  // {'a' * 600: {'b' * 600: {'w': tensor}}}: each key is short enough, the names 1201 characters and more.
  const inner = tensorPickle([1], [1], 1).subarray(2, -1);
  const p = legacyFile('longname.bin', op([0x80, 2], '}', longStr('a'.repeat(600)), '}', longStr('b'.repeat(600)), inner, 'ss.'), [['0', Buffer.alloc(4)]]);
  await t.throwsAsync(readTorchCheckpoint(p), {
    message: /^torch: .*longname\.bin: the name 'a{60}\.\.\.' \(1201 characters\) is longer than the 1024 characters a tensor name may have$/,
  });
  // One key that long is refused by the unpickler already, as a dict key.
  const q = legacyFile('longkey.bin', op([0x80, 2], '}', longStr('k'.repeat(5000)), inner, 's.'), [['0', Buffer.alloc(4)]]);
  await t.throwsAsync(readTorchCheckpoint(q), { message: /longkey\.bin \[legacy\] object: byte \d+: a dict key or set member is a str of 5000 characters, over the 1024-character limit/ });
  // 1024 characters in all is a name.
  const ok = legacyFile('maxname.bin', op([0x80, 2], '}', longStr('c'.repeat(1022)), inner, 's.'), [['0', Buffer.alloc(4)]]);
  t.is((await readTorchCheckpoint(ok))[0].name.length, 1024);
});

const fifoTest = process.platform === 'win32' ? test.skip : test;
fifoTest('a named pipe or a folder given as the checkpoint is refused at once, not waited on', async (t) => {
  const fifo = join(dir, 'fifo.bin');
  execFileSync('mkfifo', [fifo]);
  await t.throwsAsync(readTorchCheckpoint(fifo), { message: /^torch: .*fifo\.bin: cannot open \(.*fifo\.bin is a named pipe \(FIFO\), not a regular file\)$/ });
  await t.throwsAsync(readTorchCheckpoint(dir), { message: /cannot open \(.* is a directory, not a regular file\)$/ });
});
