// `perceiver convert` (scripts/cli/convert.ts): a Haiku checkpoint becomes a HF model
// folder that loads and computes what HF computes. The Haiku-layout copies of the HF
// fixtures (test/fixtures/haiku/, written by scripts/make-haiku-fixtures.py) go
// through haikuToStateDict and writeModelFolder, then loadModel + forwardNamed must
// reproduce HF's expected outputs (with HF's flavour asked for in the config, since
// the expected values are HF's). The pickle files themselves need lib/io/haiku.ts's
// reader, developed on a parallel branch: those tests fail, saying so, until it lands.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { tempBeside } from '../lib/io/atomic.js';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import type { TensorRecord } from '../lib/io/records.js';
import { haikuToStateDict } from '../models/haiku.js';
import { readHaikuCheckpoint } from '../lib/io/haiku.js';
import { loadModel } from '../models/load.js';
import { forwardNamed } from '../models/named-io.js';
import { recordToTensor, recoverKilledWrites, writeModelFolder } from '../scripts/cli/convert.js';
import { caseConfig, caseDir, outputError } from './helpers/hf-fixture.js';
import { cli, scriptPath, permissionTestUser } from './helpers/cli-run.js';
import { HAIKU_CASES, HAIKU_FIXTURES, haikuCase, recordValues } from './helpers/haiku-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-convert-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

/** The fixture's config with HF's behaviour wherever DeepMind's flavour would differ. */
function hfFlavour(c: string): Record<string, unknown> {
  return { ...caseConfig(c), conv_padding: 'hf', classifier_query_residual: true, flow_output_scale: 1, attention_mask_style: 'hf' };
}

/** A model folder's outputs on the case's inputs, as plain arrays. */
async function outputsOf(c: string, dir: string): Promise<Record<string, { shape: number[]; data: number[] }>> {
  const model = await loadModel(dir, { device: 'cpu' });
  const inputs = await P.loadSafetensors(join(caseDir(c), 'input.safetensors'), { device: 'cpu' });
  try {
    const { outputs } = await forwardNamed(model, inputs);
    const res: Record<string, { shape: number[]; data: number[] }> = {};
    for (const [k, v] of Object.entries(outputs)) {
      res[k] = { shape: [...v.shape], data: [...(await v.data())] };
      v.dispose();
    }
    return res;
  } finally {
    for (const x of Object.values(inputs)) x.dispose();
    model.dispose();
  }
}

/** Runs a model folder on the case's inputs and compares every output with HF's. */
async function checkOutputs(t: import('ava').ExecutionContext, c: string, dir: string): Promise<void> {
  const outputs = await outputsOf(c, dir);
  const names = Object.keys(outputs);
  const want = await P.loadSafetensors(join(caseDir(c), 'expected.safetensors'), { names });
  for (const k of names) {
    t.deepEqual(outputs[k].shape, want[k].shape, k);
    const { maxDiff, bound, summary } = outputError(outputs[k].data, await want[k].data());
    t.log(`${c} ${k}: ${summary}`);
    t.true(maxDiff <= bound, `${c} ${k}: ${summary}`);
  }
  for (const x of Object.values(want)) x.dispose();
}

for (const c of Object.keys(HAIKU_CASES)) {
  test(`${c}: converted Haiku weights written as a model folder reproduce HF's outputs, identical to the HF checkpoint's`, async (t) => {
    const { params, state } = await haikuCase(c);
    const conversion = haikuToStateDict(params, state, { config: hfFlavour(c) });
    const dir = join(tmp, `folder-${c}`);
    await writeModelFolder(dir, conversion);
    t.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
    const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    t.deepEqual(written.architectures, caseConfig(c).architectures);
    t.is(written.model_type, 'perceiver');
    const header = await P.readSafetensorsHeader(join(dir, 'model.safetensors'));
    t.deepEqual(header.metadata, { format: 'pt' });
    t.deepEqual([...header.entries.keys()].sort(), conversion.records.map((r) => r.name).sort());
    await checkOutputs(t, c, dir);
    t.deepEqual(await outputsOf(c, dir), await outputsOf(c, caseDir(c)), "identical outputs to the HF checkpoint's folder");
  });
}

test("a converted folder holds what HF's save_pretrained writes: HF's dtypes (BatchNorm's counter I64), sorted keys, HF's config.json form", async (t) => {
  const { params, state } = await haikuCase('image_conv');
  const conversion = haikuToStateDict(params, state, { config: hfFlavour('image_conv') });
  const dir = join(tmp, 'folder-hf-form');
  await writeModelFolder(dir, conversion);
  const summary = (h: P.SafetensorsHeader) => Object.fromEntries([...h.entries].map(([k, e]) => [k, [e.dtype, e.shape]]));
  const ours = await P.readSafetensorsHeader(join(dir, 'model.safetensors'));
  const hf = await P.readSafetensorsHeader(join(caseDir('image_conv'), 'model.safetensors'));
  // PyTorch's BatchNorm counts batches in int64: HF's checkpoint holds I64 there, not I32.
  t.is(ours.entries.get('perceiver.input_preprocessor.convnet.batchnorm.num_batches_tracked')?.dtype, 'I64');
  t.deepEqual(summary(ours), summary(hf));
  t.deepEqual([...ours.entries.keys()], [...ours.entries.keys()].sort(), 'keys sorted');
  const text = readFileSync(join(dir, 'config.json'), 'utf8');
  const written = JSON.parse(text) as Record<string, unknown>;
  t.deepEqual(Object.keys(written), Object.keys(written).sort(), 'config keys sorted');
  t.is(written.torch_dtype, 'float32');
  t.false('num_labels' in written, 'labels as id2label/label2id, as HF writes them');
  t.deepEqual(written.id2label, caseConfig('image_conv').id2label);
  t.deepEqual(written.label2id, caseConfig('image_conv').label2id);
  // HF's flavour asked for: no DeepMind option is left at HF's default value.
  for (const k of ['conv_padding', 'classifier_query_residual', 'flow_output_scale', 'attention_mask_style', 'image_channels', 'conv_out_channels']) t.false(k in written, k);
  const back = await loadModel(dir, { device: 'cpu' });
  t.is(back.constructor.name, 'PerceiverForImageClassificationConvProcessing');
  back.dispose();
});

test('recordToTensor lays a transposed or squeezed record out row-major, as the record reads', async (t) => {
  const bytes = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
  const rec: TensorRecord = { name: 'w', dtype: 'F32', shape: [3, 2], strides: [1, 3], source: { kind: 'bytes', bytes } };
  const x = await recordToTensor(rec);
  t.deepEqual(x.shape, [3, 2]);
  t.deepEqual([...(await x.data())], recordValues(rec));
  t.deepEqual([...(await x.data())], [0, 3, 1, 4, 2, 5]);
  x.dispose();
  const hwio: TensorRecord = { name: 'k', dtype: 'F32', shape: [2, 1, 1, 3], strides: [1, 2, 6, 2], source: { kind: 'bytes', bytes } };
  const k = await recordToTensor(hwio);
  t.deepEqual([...(await k.data())], recordValues(hwio));
  k.dispose();
  const i64: TensorRecord = { name: 'n', dtype: 'I64', shape: [], source: { kind: 'bytes', bytes: new Uint8Array(8) } };
  const n = await recordToTensor(i64);
  t.is(n.dtype, 'int32');
  t.deepEqual([...(await n.data())], [0]);
  n.dispose();
  await t.throwsAsync(recordToTensor({ ...rec, strides: [3, 1] }), { message: /'w': strides \[3, 1\] of shape \[3, 2\] are not a permutation of a contiguous array/ });
  await t.throwsAsync(recordToTensor({ ...rec, shape: [4, 2], strides: undefined }), { message: /'w': 24 bytes for 8 elements of F32/ });
  await t.throwsAsync(recordToTensor({ ...rec, dtype: 'BF16', shape: [6], strides: undefined }), { message: /dtype BF16 is not supported by convert/ });
});

test('writeModelFolder refuses a non-empty folder without force, replaces it with force, and leaves no temporary behind', async (t) => {
  const { params } = await haikuCase('mlm');
  const conversion = haikuToStateDict(params, [], { config: hfFlavour('mlm') });
  const parent = mkdtempSync(join(tmp, 'replace-'));
  const dir = join(parent, 'out');
  mkdirSync(dir);
  writeFileSync(join(dir, 'keep.txt'), 'mine');
  await t.throwsAsync(writeModelFolder(dir, conversion), { message: /'.*out' exists and is not empty \(use --force to replace it\)/ });
  t.deepEqual(readdirSync(dir), ['keep.txt'], 'untouched');
  await writeModelFolder(dir, conversion, { force: true });
  t.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  t.deepEqual(readdirSync(parent), ['out'], 'no .tmp or .old folder left');
  const empty = join(parent, 'empty');
  mkdirSync(empty);
  await writeModelFolder(empty, conversion);
  t.true(existsSync(join(empty, 'model.safetensors')), 'an empty folder is filled without --force');
  writeFileSync(join(parent, 'file'), 'x');
  await t.throwsAsync(writeModelFolder(join(parent, 'file'), conversion, { force: true }), { message: /exists and is not a folder/ });
  await t.throwsAsync(writeModelFolder(join(parent, 'no', 'such'), conversion), { message: /folder '.*no' that would hold 'such' does not exist/ });
  // A record whose bytes are gone fails the write, and nothing is left half-written.
  const broken = { ...conversion, records: [...conversion.records, { ...conversion.records[0], name: 'x', source: { kind: 'file' as const, path: join(parent, 'gone'), offset: 0, byteLength: 4 } }] };
  await t.throwsAsync(writeModelFolder(join(parent, 'fresh'), broken), { message: /gone/ });
  t.deepEqual(readdirSync(parent).sort(), ['empty', 'file', 'out']);
  await t.throwsAsync(writeModelFolder('' as string, conversion), { instanceOf: TypeError });
});

const pickle = (c: string): string => join(HAIKU_FIXTURES, HAIKU_CASES[c]);

test('a conversion killed mid-write (SIGKILL) is cleared up by the next: its folder goes, a swap cut between its renames is undone', async (t) => {
  const gone = spawnSync(process.execPath, ['-e', '']).pid!; // a writer that no longer runs
  const leftovers = (out: string) => {
    const tmpDir = tempBeside(out).replace(new RegExp(`-${process.pid}\\.`), `-${gone}.`);
    return { tmpDir, oldDir: tmpDir.replace(/\.tmp$/, '.old') };
  };
  const parent = mkdtempSync(join(tmp, 'killed-'));
  // Killed between moving OUT_DIR aside and moving the new folder in: OUT_DIR is missing.
  const out = join(parent, 'out');
  const { tmpDir, oldDir } = leftovers(out);
  mkdirSync(tmpDir);
  mkdirSync(oldDir);
  writeFileSync(join(oldDir, 'mine.txt'), 'mine');
  t.regex(recoverKilledWrites(out), /put back '.*out', which a killed conversion had moved to '\.out\.[0-9a-f]{8}-\d+\.[0-9a-f]{12}\.old'/);
  t.deepEqual(readdirSync(parent), ['out']);
  t.is(readFileSync(join(out, 'mine.txt'), 'utf8'), 'mine');
  // Killed after the swap, while removing the old folder: the new one is in place.
  const done = leftovers(out);
  mkdirSync(done.oldDir);
  t.is(recoverKilledWrites(out), '');
  t.deepEqual(readdirSync(parent), ['out']);
  // Cut between the renames, and OUT_DIR made again since: the old folder is kept and named.
  const again = leftovers(out);
  mkdirSync(again.tmpDir);
  mkdirSync(again.oldDir);
  t.regex(recoverKilledWrites(out), /'\.out\..*\.old' beside '.*out' holds the folder a killed conversion replaced; it is left as it is/);
  t.deepEqual(readdirSync(parent).sort(), [basename(again.oldDir), 'out'].sort());
  // Through the CLI: killed before the swap, the next run clears the unfinished folder and writes.
  const fresh = join(parent, 'fresh');
  mkdirSync(leftovers(fresh).tmpDir);
  const r = await cli(['convert', pickle('mlm'), fresh]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(readdirSync(fresh).sort(), ['config.json', 'model.safetensors']);
  t.false(readdirSync(parent).some((f) => f.startsWith('.fresh.')), 'no temporary of fresh left');
});

test('convert --help lists the arguments and options; bad invocations exit 2, bad files 1', async (t) => {
  for (const args of [['convert', '--help'], ['help', 'convert']]) {
    const r = await cli(args);
    t.is(r.code, 0);
    for (const s of ['perceiver convert IN.pickle|IN.pystate OUT_DIR', '--architecture', '--config', '--force', 'PerceiverForOpticalFlow'])
      t.true(r.stdout.includes(s), `usage mentions ${s}`);
  }
  t.regex((await cli(['--help'])).stdout, /^ {2}convert {2,}/m, 'the overview lists convert');
  const out = join(tmp, 'cli-out');
  const usage: [string[], RegExp][] = [
    [['convert'], /convert needs 2 positional arguments, got 0/],
    [['convert', pickle('mlm')], /needs 2 positional arguments, got 1/],
    [['convert', pickle('mlm'), out, 'more'], /unexpected argument 'more'/],
    [['convert', pickle('mlm'), out, '--architecture', 'mlm'], /--architecture must be one of PerceiverForMaskedLM, .*got 'mlm'/],
    [['convert', pickle('mlm'), out, '--frobnicate'], /unknown option '--frobnicate'/],
  ];
  for (const [args, message] of usage) {
    const r = await cli(args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message);
    t.regex(r.stderr, /Usage: perceiver convert/);
  }
  const full = join(tmp, 'cli-full');
  mkdirSync(full);
  writeFileSync(join(full, 'x'), '');
  writeFileSync(join(tmp, 'bad.json'), '{nope');
  writeFileSync(join(tmp, 'typo.json'), JSON.stringify({ hidden_actt: 'gelu', num_latents: 8 }));
  const failing: [string[], RegExp][] = [
    [['convert', join(tmp, 'none.pickle'), out], /checkpoint '.*none\.pickle' does not exist/],
    [['convert', pickle('mlm'), full], /'.*cli-full' exists and is not empty \(use --force to replace it\)/],
    [['convert', pickle('mlm'), join(full, 'x'), '--force'], /'.*x' exists and is not a folder/],
    [['convert', pickle('mlm'), out, '--config', join(tmp, 'missing.json')], /config file '.*missing\.json' does not exist/],
    [['convert', pickle('mlm'), out, '--config', join(tmp, 'bad.json')], /config file '.*bad\.json' is not valid JSON/],
    // A misspelt field was written into config.json as it was, silently.
    [['convert', pickle('mlm'), out, '--config', join(tmp, 'typo.json')], /config file '.*typo\.json' has unknown config fields 'hidden_actt' \(neither PerceiverConfig's nor PretrainedConfig's: loadModel would ignore them\); nothing written/],
  ];
  for (const [args, message] of failing) {
    const r = await cli(args);
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /^perceiver: error: /m);
    t.regex(r.stderr, message);
  }
  t.false(existsSync(out), 'nothing written');
});

// ---------------------------------------------------------------------------------
// The pickles themselves: lib/io/haiku.ts's readHaikuCheckpoint, then the whole CLI.

for (const c of Object.keys(HAIKU_CASES)) {
  test(`${c}: ${HAIKU_CASES[c]} reads as the same Haiku records, and 'perceiver convert' + 'perceiver run' reproduce HF's outputs`, async (t) => {
    const read = await readHaikuCheckpoint(pickle(c));
    const oracle = await haikuCase(c);
    for (const part of ['params', 'state'] as const) {
      const want = new Map(oracle[part].map((r) => [r.name, r]));
      t.deepEqual(read[part].map((r) => r.name).sort(), [...want.keys()].sort(), `${part}: names`);
      for (const r of read[part]) {
        const w = want.get(r.name);
        if (!w) continue;
        t.deepEqual(r.shape, w.shape, `${r.name}: shape`);
        t.deepEqual(recordValues(r), recordValues(w), `${r.name}: values`);
      }
    }
    const cfg = join(tmp, `hf-${c}.json`);
    writeFileSync(cfg, JSON.stringify(hfFlavour(c)));
    const dir = join(tmp, `cli-${c}`);
    const r = await cli(['convert', pickle(c), dir, '--config', cfg]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`wrote .*cli-${c}: ${(caseConfig(c).architectures as string[])[0]}, \\d+ tensors`));
    await checkOutputs(t, c, dir);
    if (c === 'mlm') {
      const again = await cli(['convert', pickle(c), dir, '--config', cfg]);
      t.is(again.code, 1, 'refuses to overwrite');
      t.regex(again.stderr, /exists and is not empty \(use --force to replace it\)/);
      const forced = await cli(['convert', pickle(c), dir, '--force']);
      t.is(forced.code, 0, `--force replaces: ${forced.stderr}`);
      const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      t.is(written.hidden_act, 'gelu_new', "without --config: DeepMind's flavour");
    }
  });
}

test('convert --force never replaces the working folder, a folder above it, or a folder holding the checkpoint or the --config file', async (t) => {
  const work = mkdtempSync(join(tmp, 'work-'));
  copyFileSync(pickle('mlm'), join(work, 'mlm.pickle'));
  writeFileSync(join(work, 'notes.txt'), 'mine');
  mkdirSync(join(work, 'sub'));
  for (const [cwd, args, message] of [
    [work, ['mlm.pickle', '.', '--force'], /'\.' is the current folder or holds it: refusing to replace it/],
    [join(work, 'sub'), ['../mlm.pickle', '..', '--force'], /'\.\.' is the current folder or holds it/],
    [tmp, [join(work, 'mlm.pickle'), work, '--force'], /'.*mlm\.pickle' lies inside '.*work-\w+', which --force would replace: refusing/],
  ] as [string, string[], RegExp][]) {
    const r = await cli(['convert', ...args], { cwd });
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message);
  }
  writeFileSync(join(work, 'c.json'), '{}');
  const r = await cli(['convert', pickle('mlm'), work, '--force', '--config', join(work, 'c.json')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /'.*c\.json' lies inside '.*work-\w+', which --force would replace/);
  t.deepEqual(readdirSync(work).sort(), ['c.json', 'mlm.pickle', 'notes.txt', 'sub'], 'nothing removed');
  // A parent folder the user may not write into: refused before the checkpoint is read
  // (as another user when the tests run as root, who writes anywhere).
  const ro = join(work, 'ro');
  mkdirSync(ro, { mode: 0o555 });
  chmodSync(tmp, 0o755);
  chmodSync(work, 0o755);
  const asUser = permissionTestUser(t);
  if (asUser === null) return;
  const denied = await cli(['convert', join(work, 'mlm.pickle'), join(ro, 'out')], asUser);
  t.is(denied.code, 1, denied.stderr);
  t.regex(denied.stderr, /^perceiver: error: cannot write '.*out': folder '.*ro': permission denied\n$/);
});

test("convert --config that does not fit the weights is refused before anything is written, naming the config's keys and the weights", async (t) => {
  const cfg = join(tmp, 'misfit.json');
  writeFileSync(cfg, JSON.stringify({ d_model: 32, num_latents: 8 }));
  const out = join(tmp, 'misfit-out');
  const r = await cli(['convert', pickle('mlm'), out, '--config', cfg]);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /^perceiver: error: the converted config does not fit the checkpoint's weights \(--config '.*misfit\.json' sets d_model, num_latents\): PerceiverForMaskedLM mis-shaped keys: perceiver\.embeddings\.latents \(checkpoint \[\d+, \d+\], model \[8, \d+\]\)/);
  t.false(existsSync(out));
  t.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('.misfit-out')), [], 'no temporary folder');
});

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} while convert --force writes leaves OUT_DIR as it was, no temporary folder beside it, and exits ${code}`, async (t) => {
    const parent = mkdtempSync(join(tmp, `signal-${signal}-`));
    const out = join(parent, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'old.txt'), 'previous');
    // The config.json write into the temporary folder hangs, so the signal lands mid-write.
    const child = spawn(process.execPath, ['--import', join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'stall-write.js'), scriptPath('perceiver.js'), 'convert', pickle('mlm'), out, '--force'], {
      env: { ...process.env, PERCEIVER_DEVICE: 'cpu', PERCEIVER_STALL_WRITE: 'config.json' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    const exit = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('stalled') && child.signalCode === null && !child.killed) child.kill(signal);
      });
      // 'close', not 'exit': stderr's last lines may still be in flight at exit.
      child.on('close', (c) => resolve(c));
    });
    t.true(err.includes('stalled'), err);
    t.is(exit, code, err);
    t.regex(err, new RegExp(`perceiver: interrupted \\(${signal}\\): '.*out' left as it was`));
    t.deepEqual(readdirSync(parent), ['out'], 'no .tmp or .old folder');
    t.deepEqual(readdirSync(out), ['old.txt']);
  });
}

// A leftover that cannot be removed: a folder under it is a mount point (EBUSY), which
// needs a mount namespace (unshare -m, as root); elsewhere the case is skipped.
const canUnshareMount = process.platform === 'linux' && spawnSync('unshare', ['-m', 'true']).status === 0;
(canUnshareMount ? test : test.skip)('recoverKilledWrites names a killed conversion\'s unfinished folder it cannot remove and goes on, as for the moved-aside one (it threw the bare EBUSY)', (t) => {
  const gone = spawnSync(process.execPath, ['-e', '']).pid!;
  const parent = mkdtempSync(join(tmp, 'busy-'));
  const out = join(parent, 'out');
  const tmpDir = tempBeside(out).replace(new RegExp(`-${process.pid}\\.`), `-${gone}.`);
  mkdirSync(join(tmpDir, 'sub'), { recursive: true });
  const convertJs = new URL('../scripts/cli/convert.js', import.meta.url).href;
  const script = `import(${JSON.stringify(convertJs)}).then((m) => console.log(JSON.stringify(m.recoverKilledWrites(${JSON.stringify(out)}))))`;
  const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount -t tmpfs none "$1" && "${process.execPath}" -e "$0"`, script, join(tmpDir, 'sub')], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(JSON.parse(r.stdout) as string, /cannot clear '.*\.out\..*\.tmp' that a killed conversion left: EBUSY/);
});
