// `perceiver convert`: a DeepMind Haiku checkpoint (*.pickle, *.pystate) as a
// HuggingFace model folder (config.json + model.safetensors) that `perceiver run` and
// loadModel read. The rename and the config are models/haiku.ts's; this file reads,
// lays the tensors out and writes the folder atomically.
import { accessSync, constants, existsSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { saveSafetensors, tensor, withoutInit, type Tensor } from '../../lib/index.js';
import { contiguousStrides, RECORD_ITEM_SIZE, type TensorRecord } from '../../lib/io/records.js';
import { readHaikuCheckpoint } from '../../lib/io/haiku.js';
import { HAIKU_ARCHITECTURES, haikuToStateDict, type HaikuConversion } from '../../models/haiku.js';
import { createModel } from '../../models/registry.js';
import { configJson } from '../../models/save.js';
import { checkAgainstModel, unknownConfigKeys } from '../../models/load.js';
import { deadWritersTemps, systemReason, tempBeside } from '../../lib/io/atomic.js';
import { parseFlags, signalExitCode, UsageError, type Command } from './command.js';

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
                       what the weights show (e.g. {"hidden_act": "gelu"} for HF's GELU);
                       the result is checked against the weights before anything is written
  --force              replace OUT_DIR if it exists and is not empty (never the working
                       folder or one holding it, the checkpoint or the --config file)
  -h, --help           show this help

OUT_DIR is written next to itself under a temporary name and renamed into place, so it
is never left half-written; Ctrl-C or SIGTERM before then removes the temporary folder,
leaves OUT_DIR as it was and exits 130 or 143. What a conversion killed outright
(SIGKILL, out of memory) leaves beside OUT_DIR, the next conversion into it clears,
putting OUT_DIR back if the kill came in the middle of the swap.
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

/** Whether `inner` is `outer` or lies inside it (both resolved through symbolic links as far as they exist). */
function within(inner: string, outer: string): boolean {
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const rel = relative(real(outer), real(inner));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * What a replacing writeModelFolder may not do: remove the folder the process runs in
 * (or one above it), or a folder holding a file the conversion still needs (`keep`:
 * the checkpoint, a --config file). Throws naming both.
 */
export function checkReplaceable(outDir: string, keep: readonly string[] = []): void {
  if (within(process.cwd(), outDir))
    throw new Error(`'${outDir}' is the current folder or holds it: refusing to replace it (give a folder elsewhere as OUT_DIR, new or empty)`);
  for (const k of keep) if (within(k, outDir)) throw new Error(`'${k}' lies inside '${outDir}', which --force would replace: refusing (give another OUT_DIR)`);
}

// Each writeModelFolder in progress: its temporary folder, and once swapped in, the
// user's previous folder waiting to be removed. The swap itself is two synchronous
// renames, so a signal handler (JS, between tasks) never sees it half done.
interface PendingWrite {
  tmp: string | null;
  old: string | null;
}
const pendingWrites = new Set<PendingWrite>();

/**
 * For a SIGINT/SIGTERM handler: removes what the writeModelFolder calls in progress
 * have written so far (the OUT_DIR is left as it was) and what a finished swap has
 * not yet cleaned up. Returns how many writes were abandoned before their swap.
 */
export function abandonModelFolderWrites(): number {
  let abandoned = 0;
  for (const w of pendingWrites) {
    if (w.tmp) abandoned++;
    for (const p of [w.tmp, w.old]) if (p) rmSync(p, { recursive: true, force: true });
  }
  pendingWrites.clear();
  return abandoned;
}

/**
 * Clears what a conversion into `outDir` that was killed (SIGKILL, the OOM killer)
 * left beside it: its unfinished folder goes, and the user's previous OUT_DIR, if the
 * kill came between the swap's two renames, is put back (or, where something else
 * has taken its place since, left where it is and named). Returns a note for the user, or ''.
 */
export function recoverKilledWrites(outDir: string): string {
  const out = resolve(outDir);
  const notes: string[] = [];
  const dead = deadWritersTemps(out);
  const unfinished = new Set(dead.filter((d) => d.kind === 'tmp').map((d) => d.path));
  for (const { path, kind } of dead) {
    if (kind !== 'old') continue;
    const tmp = path.replace(/\.old$/, '.tmp');
    try {
      // Without its .tmp the swap had finished: the new folder is in place.
      if (!unfinished.has(tmp)) rmSync(path, { recursive: true, force: true });
      else if (!existsSync(out)) {
        renameSync(path, out);
        notes.push(`put back '${outDir}', which a killed conversion had moved to '${basename(path)}'`);
      } else notes.push(`'${basename(path)}' beside '${outDir}' holds the folder a killed conversion replaced; it is left as it is`);
    } catch (err) {
      notes.push(`cannot clear '${path}' that a killed conversion left: ${systemReason(err)}`);
    }
  }
  // Best effort, as the .old above: a leftover that cannot go (another user's, a busy
  // mount) is named, and the conversion goes on beside it.
  for (const tmp of unfinished) {
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch (err) {
      notes.push(`cannot clear '${tmp}' that a killed conversion left: ${systemReason(err)}`);
    }
  }
  return notes.join('\n');
}

/**
 * Writes a conversion as a HF model folder. Atomic: everything is written into a
 * temporary folder next to `outDir` and renamed into place; an existing non-empty
 * `outDir` is replaced only with `force`, and never when it is (or holds) the
 * current folder.
 */
export async function writeModelFolder(outDir: string, conversion: HaikuConversion, opts: { force?: boolean } = {}): Promise<void> {
  if (typeof outDir !== 'string' || outDir === '') throw new TypeError(`writeModelFolder: argument 'outDir' must be a folder path, got ${JSON.stringify(outDir)}`);
  const out = resolve(outDir);
  const recovered = recoverKilledWrites(outDir);
  if (recovered) process.stderr.write(`perceiver: ${recovered}\n`);
  let replace = false;
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new Error(`'${outDir}' exists and is not a folder`);
    const entries = await readdir(out);
    if (entries.length && !opts.force) throw new Error(`'${outDir}' exists and is not empty (use --force to replace it)`);
    checkReplaceable(outDir);
    replace = true;
  } else if (!existsSync(dirname(out))) {
    throw new Error(`the folder '${dirname(out)}' that would hold '${basename(out)}' does not exist`);
  }
  const tmp = tempBeside(out);
  const old = tmp.replace(/\.tmp$/, '.old'); // one name, so a recovery can pair them
  await mkdir(tmp);
  const pending: PendingWrite = { tmp, old: null };
  pendingWrites.add(pending);
  try {
    const tensors: Record<string, Tensor> = {};
    // An I64 record (BatchNorm's num_batches_tracked) loads as int32; it is stored as
    // I64 again, the dtype of HF's buffer, as saveModel stores it.
    const dtypes: Record<string, 'I64'> = {};
    try {
      // Sorted by name, as saveModel lays the header out.
      for (const rec of [...conversion.records].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        tensors[rec.name] = await recordToTensor(rec);
        if (rec.dtype === 'I64') dtypes[rec.name] = 'I64';
      }
      await saveSafetensors(join(tmp, 'model.safetensors'), tensors, { metadata: { format: 'pt' }, dtypes });
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
    // HF's config.json form, as saveModel writes it (torch_dtype, id2label/label2id in
    // place of num_labels, sorted keys, DeepMind options only where not HF's defaults).
    const config = configJson(conversion.config, conversion.architecture, 'float32');
    await writeFile(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    if (replace) renameSync(out, old);
    try {
      renameSync(tmp, out);
    } catch (err) {
      if (replace) renameSync(old, out); // put the user's folder back
      throw err;
    }
    pending.tmp = null;
    if (replace) pending.old = old;
  } catch (err) {
    pendingWrites.delete(pending);
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  try {
    if (replace) await rm(old, { recursive: true, force: true });
  } finally {
    pendingWrites.delete(pending);
  }
}

/**
 * Builds the conversion's model (without drawing weights) and checks its records
 * against it as loadModel will: a config that does not fit the weights (a --config
 * override of a size the weights show) is refused before anything is written.
 */
export function checkConversion(conversion: HaikuConversion, configFile?: { path: string; keys: string[] }): void {
  const blame = configFile ? ` (--config '${configFile.path}' sets ${configFile.keys.join(', ') || 'nothing'})` : '';
  let problems: string[];
  try {
    const model = withoutInit(() => createModel(conversion.config as unknown as Record<string, unknown>, { device: 'cpu' }));
    try {
      problems = checkAgainstModel(model, conversion.records);
    } finally {
      model.dispose();
    }
  } catch (err) {
    throw new Error(`the converted config does not make a ${conversion.architecture}${blame}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (problems.length)
    throw new Error(`the converted config does not fit the checkpoint's weights${blame}: ${conversion.architecture} ${problems.join('; ')}`);
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
  // A misspelt field would be written into config.json as it is, and only loadModel's
  // warning ("ignoring unknown config fields") would tell, after the conversion.
  const unknown = unknownConfigKeys(json as Record<string, unknown>);
  if (unknown.length)
    throw new Error(`config file '${path}' has unknown config fields ${unknown.map((k) => `'${k}'`).join(', ')} (neither PerceiverConfig's nor PretrainedConfig's: loadModel would ignore them); nothing written`);
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
  const recovered = recoverKilledWrites(outDir);
  if (recovered) process.stderr.write(`perceiver: ${recovered}\n`);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new Error(`'${outDir}' exists and is not a folder`);
    if (!flags.switches.has('--force') && (await readdir(out)).length) throw new Error(`'${outDir}' exists and is not empty (use --force to replace it)`);
    checkReplaceable(outDir, [input, ...(flags.values['--config'] === undefined ? [] : [flags.values['--config']])]);
  }
  // The folder is built beside OUT_DIR and renamed into place: its parent takes the writes.
  if (existsSync(dirname(out))) {
    try {
      accessSync(dirname(out), constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new Error(`cannot write '${outDir}': folder '${dirname(out)}': ${systemReason(err)}`);
    }
  }
  // Until the folder is swapped in, an interrupt leaves OUT_DIR as it was, with no temporary beside it.
  const onSignal = (signal: NodeJS.Signals) => {
    const abandoned = abandonModelFolderWrites();
    process.stderr.write(`perceiver: interrupted (${signal})${abandoned ? `: '${outDir}' left as it was` : ''}\n`);
    process.exit(signalExitCode(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let conversion: HaikuConversion;
  try {
    const read = readHaikuCheckpoint;
    const { params, state } = await read(input);
    conversion = haikuToStateDict(params, state, { architecture: arch, config });
    checkConversion(conversion, config && { path: flags.values['--config']!, keys: Object.keys(config) });
    await writeModelFolder(outDir, conversion, { force: flags.switches.has('--force') });
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  const n = conversion.records.reduce((a, r) => a + r.shape.reduce((x, y) => x * y, 1), 0);
  process.stdout.write(`wrote ${outDir}: ${conversion.architecture}, ${conversion.records.length} tensors, ${n} values\n`);
}

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert a DeepMind Haiku checkpoint (.pickle, .pystate) into a model folder',
  usage: USAGE,
  run,
};
