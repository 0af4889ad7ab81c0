// Specification of the Haiku checkpoint reader: numpy arrays in a module -> name ->
// array mapping come back as records named '<module path>/<name>' with numpy's exact
// bytes (checked against model.safetensors, from which the fixtures were written),
// under every pickle form numpy, Haiku and JAX produce (protocols 2/4/5, FlatMapping,
// jax.Array); `.pystate` splits params and state; Fortran order becomes strides; and
// hostile or unsupported content is a clear error naming the file.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { readHaikuCheckpoint } from '../lib/io/haiku.js';
import { loadRecords } from '../lib/io/load-records.js';
import { loadSafetensors } from '../lib/io/safetensors.js';
import type { TensorRecord } from '../lib/io/records.js';
import type { Tensor } from '../lib/index.js';
import { bytesOf, recordBytes, recordValues } from './helpers/records.js';

const here = dirname(fileURLToPath(import.meta.url));
const CKPT = join(here, '..', '..', 'test', 'fixtures', 'checkpoints');
const MODEL = join(here, '..', '..', 'test', 'fixtures', 'hf', 'mlm', 'model.safetensors');
const MARKER = '/tmp/perceiver-io-pickle-payload-ran';
const ckpt = (name: string) => join(CKPT, name);
const dir = mkdtempSync(join(tmpdir(), 'perceiver-haiku-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

let ref: Record<string, Tensor>;
test.before(async () => {
  ref = await loadSafetensors(MODEL, { device: 'cpu' });
});
test.after.always(() => {
  for (const t of Object.values(ref ?? {})) t.dispose();
});

const byName = (recs: TensorRecord[]) => new Map(recs.map((r) => [r.name, r]));
const values = async (name: string) => Array.from((await ref[name].data()) as Float32Array);
const ENC = 'perceiver_encoder/~/cross_attention';
const QUERY = 'perceiver.encoder.cross_attention.attention.self.query';

test('a params .pickle gives one record per array, named module/name, with numpy layout and exact values', async (t) => {
  const { params, state } = await readHaikuCheckpoint(ckpt('haiku_params.pickle'));
  t.deepEqual(state, []);
  const r = byName(params);
  t.deepEqual([...r.keys()].sort(), [
    'dtypes/bool', 'dtypes/f16', 'dtypes/f64', 'dtypes/i32', 'dtypes/i64', 'dtypes/scalar', 'dtypes/u8',
    'embed/embeddings', 'fortran/w',
    `${ENC}/attention/linear/b`, `${ENC}/attention/linear/w`, `${ENC}/layer_norm/offset`, `${ENC}/layer_norm/scale`,
    'trainable_position_encoding/pos_embs',
  ]);

  // Haiku's Linear w is [in, out]: the transpose of PyTorch's weight, stored C-contiguous.
  const w = r.get(`${ENC}/attention/linear/w`)!;
  t.is(w.dtype, 'F32');
  t.deepEqual(w.shape, [96, 32]);
  t.is(w.strides, undefined);
  const q = await values(`${QUERY}.weight`);
  t.deepEqual(await recordValues(w), Array.from({ length: 96 * 32 }, (_, n) => q[(n % 32) * 96 + Math.floor(n / 32)]));
  t.deepEqual(await recordBytes(r.get(`${ENC}/attention/linear/b`)!), bytesOf(await ref[`${QUERY}.bias`].data()));
  t.deepEqual(await recordBytes(r.get(`${ENC}/layer_norm/scale`)!), bytesOf(await ref[`${QUERY.replace('query', 'layernorm1')}.weight`].data()));
  t.deepEqual(await recordBytes(r.get(`${ENC}/layer_norm/offset`)!), bytesOf(await ref[`${QUERY.replace('query', 'layernorm1')}.bias`].data()));
  t.deepEqual(await recordBytes(r.get('embed/embeddings')!), bytesOf(await ref['perceiver.input_preprocessor.embeddings.weight'].data()));
  t.deepEqual(await recordBytes(r.get('trainable_position_encoding/pos_embs')!), bytesOf(await ref['perceiver.input_preprocessor.position_embeddings.weight'].data()));

  // Large arrays stay in the file; small ones were read with the pickle.
  const size = readFileSync(ckpt('haiku_params.pickle')).length;
  const emb = r.get('embed/embeddings')!;
  t.is(emb.source.kind, 'file');
  if (emb.source.kind === 'file') t.true(emb.source.offset + emb.source.byteLength <= size);
  t.is(r.get(`${ENC}/layer_norm/scale`)!.source.kind, 'bytes');
});

test('a Fortran-ordered array becomes a record with column-major strides', async (t) => {
  const { params } = await readHaikuCheckpoint(ckpt('haiku_params.pickle'));
  const f = byName(params).get('fortran/w')!;
  t.deepEqual(f.shape, [32, 64]);
  t.deepEqual(f.strides, [1, 32]);
  t.deepEqual(await recordBytes(f), bytesOf(await ref['perceiver.encoder.cross_attention.attention.self.key.weight'].data()));
});

test('numpy dtypes map to record dtypes with their values', async (t) => {
  const { params } = await readHaikuCheckpoint(ckpt('haiku_params.pickle'));
  const r = byName(params);
  const lat = await values('perceiver.embeddings.latents');
  const small = [...lat.slice(0, 5), ...lat.slice(96, 101)]; // latents[:2, :5]
  const f16 = r.get('dtypes/f16')!;
  t.is(f16.dtype, 'F16');
  t.deepEqual(f16.shape, [2, 5]);
  t.true((await recordValues(f16)).every((v, i) => Math.abs(v - small[i]) <= Math.abs(small[i]) * 2 ** -10));
  t.deepEqual(await recordValues(r.get('dtypes/f64')!), small);
  t.is(r.get('dtypes/f64')!.dtype, 'F64');
  t.deepEqual(await recordValues(r.get('dtypes/i32')!), Array.from({ length: 12 }, (_, i) => i - 4));
  t.deepEqual(r.get('dtypes/i32')!.shape, [3, 4]);
  t.is(r.get('dtypes/i64')!.dtype, 'I64');
  t.deepEqual(await recordValues(r.get('dtypes/i64')!), Array.from({ length: 12 }, (_, i) => i - 4));
  t.deepEqual(await recordValues(r.get('dtypes/u8')!), Array.from({ length: 12 }, (_, i) => i));
  t.is(r.get('dtypes/bool')!.dtype, 'BOOL');
  t.deepEqual(await recordValues(r.get('dtypes/bool')!), [1, 0, 1]);
  const s = r.get('dtypes/scalar')!;
  t.deepEqual(s.shape, []);
  t.deepEqual(await recordValues(s), [1.5]);
});

test('protocol 2 and 5 pickles, Haiku FlatMapping and jax.Array forms read to the same records', async (t) => {
  const base = byName((await readHaikuCheckpoint(ckpt('haiku_params.pickle'))).params);
  for (const file of ['haiku_proto2.pickle', 'haiku_proto5.pickle', 'haiku_flatmapping.pickle', 'haiku_jax_arrays.pickle']) {
    const { params, state } = await readHaikuCheckpoint(ckpt(file));
    t.deepEqual(state, [], file);
    t.deepEqual(params.map((p) => p.name).sort(), [...base.keys()].filter((n) => /^(dtypes|fortran|perceiver_encoder\/~\/cross_attention\/layer_norm)\//.test(n)).sort(), file);
    for (const p of params) {
      const b = base.get(p.name)!;
      t.is(p.dtype, b.dtype, `${file} ${p.name}`);
      t.deepEqual(p.shape, b.shape, `${file} ${p.name}`);
      t.deepEqual(p.strides, b.strides, `${file} ${p.name}`);
      t.deepEqual(await recordBytes(p), await recordBytes(b), `${file} ${p.name}`);
    }
  }
});

test('numpy 2 pickles (numpy._core modules, numpy scalars) read to the same records', async (t) => {
  const base = byName((await readHaikuCheckpoint(ckpt('haiku_proto2.pickle'))).params);
  for (const file of ['haiku_numpy2_proto4.pickle', 'haiku_numpy2_proto5.pickle']) {
    const r = byName((await readHaikuCheckpoint(ckpt(file))).params);
    t.deepEqual([...r.keys()].sort(), [...base.keys(), 'scalars/i', 'scalars/s'].sort(), file);
    for (const [name, b] of base) {
      const p = r.get(name)!;
      t.deepEqual([p.dtype, p.shape, p.strides], [b.dtype, b.shape, b.strides], `${file} ${name}`);
      t.deepEqual(await recordBytes(p), await recordBytes(b), `${file} ${name}`);
    }
    const s = r.get('scalars/s')!;
    t.deepEqual([s.dtype, s.shape, await recordValues(s)], ['F32', [], [1.5]], file);
    const i = r.get('scalars/i')!;
    t.deepEqual([i.dtype, i.shape, await recordValues(i)], ['I64', [], [-7]], file);
  }
});

test('a .pystate splits params and state (BatchNorm averages and counters)', async (t) => {
  const { params, state } = await readHaikuCheckpoint(ckpt('haiku_model.pystate'));
  t.is(params.length, 10);
  const s = byName(state);
  t.deepEqual([...s.keys()].sort(), [
    'batchnorm/~/mean_ema/average', 'batchnorm/~/mean_ema/counter', 'batchnorm/~/mean_ema/hidden',
    'batchnorm/~/var_ema/average', 'batchnorm/~/var_ema/counter', 'batchnorm/~/var_ema/hidden',
  ]);
  const lat = await values('perceiver.embeddings.latents');
  t.deepEqual(await recordValues(s.get('batchnorm/~/mean_ema/average')!), lat.slice(0, 96));
  t.deepEqual(await recordValues(s.get('batchnorm/~/var_ema/hidden')!), lat.slice(3 * 96, 4 * 96));
  const counter = s.get('batchnorm/~/mean_ema/counter')!;
  t.is(counter.dtype, 'I32');
  t.deepEqual(counter.shape, []);
  t.deepEqual(await recordValues(counter), [3]);
});

test('hostile pickles are refused with the global named, and their payload never runs', async (t) => {
  rmSync(MARKER, { force: true });
  const cases: [string, string][] = [
    ['evil_reduce.pickle', 'posix.system'],
    ['evil_stack_global.pickle', 'os.system'],
    ['evil_inst.pickle', 'os.system'],
    ['evil_obj.pickle', 'os.system'],
    ['evil_eval.pickle', 'builtins.eval'],
    ['evil_nested.pickle', 'posix.system'],
  ];
  for (const [file, global] of cases) {
    const err = await t.throwsAsync(readHaikuCheckpoint(ckpt(file)));
    t.true(err!.message.startsWith(`haiku: ${ckpt(file)}: byte `), err!.message);
    t.true(err!.message.includes(`refused global '${global}'`), err!.message);
  }
  t.false(existsSync(MARKER), 'no payload ran');
});

test('arrays without raw little-endian bytes are clear errors', async (t) => {
  await t.throwsAsync(readHaikuCheckpoint(ckpt('haiku_object_array.pickle')), { message: /haiku_object_array\.pickle: byte \d+: .*holds Python objects, not raw bytes/ });
  await t.throwsAsync(readHaikuCheckpoint(ckpt('haiku_big_endian.pickle')), { message: /haiku_big_endian\.pickle: byte \d+: .*'>f4' is not little-endian/ });
});

test('truncated or padded files and foreign files fail with the file named', async (t) => {
  const full = readFileSync(ckpt('haiku_params.pickle'));
  for (const cut of [0, 1, 2, 11, 50, 200, 1000, 5000, 20000, 60000, full.length - 2, full.length - 1]) {
    const p = join(dir, `cut${cut}.pickle`);
    writeFileSync(p, full.subarray(0, cut));
    const err = await t.throwsAsync(readHaikuCheckpoint(p), undefined, `cut at ${cut}`);
    t.true(err!.message.startsWith(`haiku: ${p}: `), err!.message);
  }
  const padded = join(dir, 'padded.pickle');
  writeFileSync(padded, Buffer.concat([full, Buffer.from('junk')]));
  await t.throwsAsync(readHaikuCheckpoint(padded), { message: /padded\.pickle: 4 bytes follow the pickle's STOP/ });
  await t.throwsAsync(readHaikuCheckpoint(ckpt('pytorch_model_legacy.bin')), { message: /pytorch_model_legacy\.bin: \d+ bytes follow the pickle's STOP/ });
  await t.throwsAsync(readHaikuCheckpoint(ckpt('tied_strided.bin')), { message: /tied_strided\.bin: a zip archive, not a pickle \(a PyTorch checkpoint\? readTorchCheckpoint reads those\)/ });
  await t.throwsAsync(readHaikuCheckpoint(join(dir, 'missing.pickle')), { message: /missing\.pickle: cannot open/ });
  await t.throwsAsync(readHaikuCheckpoint(undefined as unknown as string), { instanceOf: TypeError, message: /argument 'path'/ });
});

test('a small pickle that shares one dict under two keys, 40 levels deep, is refused instead of walked 2^40 times', async (t) => {
  // d0 = {}; d(i) = {'a': d(i-1), 'b': d(i-1)}
  const parts: number[] = [0x80, 2, 0x7d, 0x71, 0];
  for (let i = 1; i <= 40; i++) parts.push(0x7d, 0x28, 0x8c, 1, 0x61, 0x68, i - 1, 0x8c, 1, 0x62, 0x68, i - 1, 0x75, 0x71, i);
  parts.push(0x2e);
  const p = join(dir, 'dag.pickle');
  writeFileSync(p, Buffer.from(parts));
  await t.throwsAsync(readHaikuCheckpoint(p), { message: /dag\.pickle: params has more than \d+ paths/ });
});


// ---- hand-built pickles (protocol 3), for what numpy and Haiku never write ------------------------

const bin = (...parts: (string | number[] | Uint8Array)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const ustr = (s: string) => bin([0x58], u32(s.length), s);
/** A numpy array as numpy pickles it: _reconstruct(ndarray, (0,), b'b'), then BUILD (1, shape, dtype(code), False, data). */
const ndarray = (code: string, shape: number[], data: Uint8Array) =>
  bin(
    'cnumpy.core.multiarray\n_reconstruct\n', 'cnumpy\nndarray\n', [0x4b, 0, 0x85, 0x43, 1], 'b', [0x87], 'R',
    '(', [0x4b, 1], '(', ...shape.map((d) => bin([0x4a], u32(d))), 't', 'cnumpy\ndtype\n', ustr(code), [0x85], 'R', [0x89, 0x42], u32(data.length), data, 't', 'b',
  );
const pickleFile = (name: string, ...body: (string | number[] | Uint8Array)[]) => {
  const p = join(dir, name);
  writeFileSync(p, bin([0x80, 3], ...body, '.'));
  return p;
};

test('one array shared under many names through the pickle memo reads, and loading them all is refused', async (t) => {
  // d0 = {'w': a 1 MiB array}; d(i) = {'a': d(i-1), 'b': d(i-1)}: 2^7 names for the same bytes.
  const parts: (string | number[] | Uint8Array)[] = ['}', ustr('w'), ndarray('<f4', [1 << 18], new Uint8Array(1 << 20)), 's', [0x71, 0]];
  for (let i = 1; i <= 7; i++) parts.push('}(', ustr('a'), [0x68, i - 1], ustr('b'), [0x68, i - 1], 'u', [0x71, i]);
  const p = pickleFile('shared.pickle', ...parts);
  const { params } = await readHaikuCheckpoint(p);
  t.is(params.length, 128);
  await t.throwsAsync(loadRecords(params), { instanceOf: RangeError, message: /shared\.pickle: the 128 tensors would take 134217728 bytes, from 1048576 distinct bytes/ });
});

test('a parameter name longer than 1024 characters is refused, naming the file and the length', async (t) => {
  const w = ['}', ustr('w'), ndarray('<f4', [1], new Uint8Array(4)), 's'];
  const p = pickleFile('longname.pickle', '}', ustr('a'.repeat(600)), '}', ustr('b'.repeat(600)), ...w, 'ss');
  await t.throwsAsync(readHaikuCheckpoint(p), { message: /^haiku: .*longname\.pickle: params has the name 'a{60}\.\.\.' \(1201 characters\), longer than the 1024 characters a name may have$/ });
  const ok = pickleFile('maxname.pickle', '}', ustr('c'.repeat(1022)), ...w, 's');
  t.is((await readHaikuCheckpoint(ok)).params[0].name.length, 1024);
});

test("numpy dtype codes only Object.prototype knows ('constructor', 'toString') are unsupported dtypes", async (t) => {
  for (const code of ['constructor', 'toString', '__proto__']) {
    const p = pickleFile(`dtype-${code}.pickle`, '}', ustr('m'), '}', ustr('w'), ndarray(`|${code}`, [1], new Uint8Array(1)), 'ss');
    await t.throwsAsync(readHaikuCheckpoint(p), { message: new RegExp(`dtype-${code}\\.pickle: byte \\d+: .*numpy dtype '${code}' is not supported \\(supported: f8, f4`) }, code);
  }
});

const fifoTest = process.platform === 'win32' ? test.skip : test;
fifoTest('a named pipe or a folder given as the checkpoint is refused at once, not waited on', async (t) => {
  const fifo = join(dir, 'fifo.pickle');
  execFileSync('mkfifo', [fifo]);
  await t.throwsAsync(readHaikuCheckpoint(fifo), { message: /^haiku: .*fifo\.pickle: cannot open \(.*fifo\.pickle is a named pipe \(FIFO\), not a regular file\)$/ });
  await t.throwsAsync(readHaikuCheckpoint(dir), { message: /cannot open \(.* is a directory, not a regular file\)$/ });
});
