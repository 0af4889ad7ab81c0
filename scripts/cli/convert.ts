// `perceiver convert`: a DeepMind Haiku checkpoint (*.pickle, *.pystate) as a
// HuggingFace model folder (config.json + model.safetensors) that `perceiver run` and
// loadModel read. The rename and the config are models/haiku.ts's; this file reads,
// lays the tensors out and writes the folder atomically.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { saveSafetensors, tensor, type Tensor } from '../../lib/index.js';
import { contiguousStrides, RECORD_ITEM_SIZE, type TensorRecord } from '../../lib/io/records.js';
import { readHaikuCheckpoint } from '../../lib/io/haiku.js';
import { HAIKU_ARCHITECTURES, haikuToStateDict, type HaikuConversion } from '../../models/haiku.js';
import { parseFlags, UsageError, type Command } from './command.js';

const USAGE = `Usage: perceiver convert IN.pickle|IN.pystate OUT_DIR [--architecture NAME] [--config FILE] [--force]

Converts a DeepMind Perceiver checkpoint (Haiku: language_perceiver_io_bytes.pickle,
imagenet_*.pystate, optical_flow_checkpoint.pystate, video_autoencoding_checkpoint.pystate)
into a HuggingFace model folder: OUT_DIR/config.json and OUT_DIR/model.safetensors.

The task model is detected from the checkpoint's module names. Sizes the weights do not
show (blocks, heads, image and frame sizes) are the released models'; the config asks
for DeepMind's behaviour where it differs from HuggingFace's (tanh GELU, SAME padding
in the conv preprocessor, no query residual in the learned-position classifier, flow
x20, decoder query masks).

Options:
  --architecture NAME  the task model, when detection is not wanted:
                         ${HAIKU_ARCHITECTURES.join('\n                         ')}
  --config FILE        a JSON object of config.json fields that override the preset and
                       what the weights show (e.g. {"hidden_act": "gelu"} for HF's GELU)
  --force              replace OUT_DIR if it exists and is not empty
  -h, --help           show this help

OUT_DIR is written next to itself under a temporary name and renamed into place, so it
is never left half-written.
`;


async function recordBytes(rec: TensorRecord): Promise<Uint8Array> {
  const src = rec.source;
  let bytes: Uint8Array;
  if (src.kind === 'bytes') bytes = src.bytes;
  else {
    const fh = await open(src.path, 'r');
    try {
      bytes = new Uint8Array(src.byteLength);
      let done = 0;
      while (done < src.byteLength) {
        const { bytesRead } = await fh.read(bytes, done, src.byteLength - done, src.offset + done);
        if (bytesRead === 0) throw new Error(`'${src.path}' ends before the ${src.byteLength} bytes of '${rec.name}' at offset ${src.offset}`);
        done += bytesRead;
      }
    } finally {
      await fh.close();
    }
  }
  return bytes;
}

/**
 * A record as an engine tensor in its logical (row-major) layout. Records here are
 * axis permutations of a contiguous array (a transpose or a squeeze of a reader's
 * record), so the bytes are taken in their stored order and permuted by the engine.
 */
export async function recordToTensor(rec: TensorRecord): Promise<Tensor> {
  if (!['F32', 'F64', 'I32', 'I64', 'U8', 'BOOL'].includes(rec.dtype))
    throw new Error(`'${rec.name}': dtype ${rec.dtype} is not supported by convert (float32, float64, int32, int64, uint8 are)`);
  const n = rec.shape.reduce((a, b) => a * b, 1);
  const item = RECORD_ITEM_SIZE[rec.dtype];
  const strides = rec.strides ?? contiguousStrides(rec.shape);
  // Stored order: axes by decreasing stride (size-1 axes anywhere, they carry no layout).
  const order = rec.shape.map((_, i) => i).sort((a, b) => strides[b] - strides[a] || a - b);
  const stored = order.map((i) => rec.shape[i]);
  const want = contiguousStrides(stored);
  if (order.some((ax, j) => rec.shape[ax] !== 1 && strides[ax] !== want[j]))
    throw new Error(`'${rec.name}': strides [${strides.join(', ')}] of shape [${rec.shape.join(', ')}] are not a permutation of a contiguous array`);
  const raw = await recordBytes(rec);
  if (raw.byteLength !== n * item) throw new Error(`'${rec.name}': ${raw.byteLength} bytes for ${n} elements of ${rec.dtype}`);
  const buf = raw.slice().buffer; // aligned copy: a typed array view needs its item alignment
  let data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
  switch (rec.dtype) {
    case 'F32': data = new Float32Array(buf); break;
    case 'F64': data = new Float64Array(buf); break; // narrowed to float32 by tensor()
    case 'I32': data = new Int32Array(buf); break;
    case 'I64': data = new BigInt64Array(buf); break; // narrowed to int32, range-checked
    default: data = new Uint8Array(buf); break; // U8, BOOL
  }
  const t = tensor(data, stored, { device: 'cpu' });
  const perm = rec.shape.map((_, i) => order.indexOf(i));
  if (perm.every((p, i) => p === i)) return t;
  try {
    return t.permute(perm).contiguous();
  } finally {
    t.dispose();
  }
}

/**
 * Writes a conversion as a HF model folder. Atomic: everything is written into a
 * temporary folder next to `outDir` and renamed into place; an existing non-empty
 * `outDir` is replaced only with `force`.
 */
export async function writeModelFolder(outDir: string, conversion: HaikuConversion, opts: { force?: boolean } = {}): Promise<void> {
  if (typeof outDir !== 'string' || outDir === '') throw new TypeError(`writeModelFolder: argument 'outDir' must be a folder path, got ${JSON.stringify(outDir)}`);
  const out = resolve(outDir);
  let replace = false;
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new Error(`'${outDir}' exists and is not a folder`);
    const entries = await readdir(out);
    if (entries.length && !opts.force) throw new Error(`'${outDir}' exists and is not empty (use --force to replace it)`);
    replace = true;
  } else if (!existsSync(dirname(out))) {
    throw new Error(`the folder '${dirname(out)}' that would hold '${basename(out)}' does not exist`);
  }
  const tag = `${process.pid}.${randomBytes(6).toString('hex')}`;
  const tmp = join(dirname(out), `.${basename(out)}.${tag}.tmp`);
  const old = join(dirname(out), `.${basename(out)}.${tag}.old`);
  await mkdir(tmp);
  try {
    const tensors: Record<string, Tensor> = {};
    try {
      for (const rec of conversion.records) tensors[rec.name] = await recordToTensor(rec);
      await saveSafetensors(join(tmp, 'model.safetensors'), tensors, { metadata: { format: 'pt' } });
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
    await writeFile(join(tmp, 'config.json'), `${JSON.stringify(conversion.config, null, 2)}\n`);
    if (replace) await rename(out, old);
    try {
      await rename(tmp, out);
    } catch (err) {
      if (replace) await rename(old, out); // put the user's folder back
      throw err;
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  if (replace) await rm(old, { recursive: true, force: true });
}

function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new Error(`config file '${path}' does not exist`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`config file '${path}' is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`config file '${path}' must hold a JSON object`);
  return json as Record<string, unknown>;
}

async function run(argv: string[]): Promise<void> {
  const flags = parseFlags('convert', argv, { values: ['--architecture', '--config'], switches: ['--force'], positional: [2, 2] });
  const [input, outDir] = flags.positional;
  const arch = flags.values['--architecture'];
  if (arch !== undefined && !(HAIKU_ARCHITECTURES as readonly string[]).includes(arch))
    throw new UsageError(`--architecture must be one of ${HAIKU_ARCHITECTURES.join(', ')}, got '${arch}'`);
  const config = flags.values['--config'] === undefined ? undefined : readConfigFile(flags.values['--config']);
  if (!existsSync(input)) throw new Error(`checkpoint '${input}' does not exist`);
  // Checked before the checkpoint is read, so a refusal costs nothing.
  const out = resolve(outDir);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new Error(`'${outDir}' exists and is not a folder`);
    if (!flags.switches.has('--force') && (await readdir(out)).length) throw new Error(`'${outDir}' exists and is not empty (use --force to replace it)`);
  }
  const read = readHaikuCheckpoint;
  const { params, state } = await read(input);
  const conversion = haikuToStateDict(params, state, { architecture: arch, config });
  await writeModelFolder(outDir, conversion, { force: flags.switches.has('--force') });
  const n = conversion.records.reduce((a, r) => a + r.shape.reduce((x, y) => x * y, 1), 0);
  process.stdout.write(`wrote ${outDir}: ${conversion.architecture}, ${conversion.records.length} tensors, ${n} values\n`);
}

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert a DeepMind Haiku checkpoint (.pickle, .pystate) into a model folder',
  usage: USAGE,
  run,
};
