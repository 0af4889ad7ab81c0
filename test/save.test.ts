// Specification of model.save(dir) (models/save.ts): HF's folder layout as HF's
// save_pretrained writes it. For every HF fixture, loadModel -> save gives a
// config.json equal to HF's and a model.safetensors with HF's names, dtypes, shapes
// and metadata, and loading the saved folder gives identical tensors and identical
// outputs; `perceiver run` runs a saved folder; DeepMind-flavour options appear only
// when they differ from HF's defaults; saves are atomic.
import test from 'ava';
import { execFile } from 'node:child_process';
import fs, { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { readBytes } from '../lib/tensor.js';
import { configJson, createModel, forwardNamed, loadModel, PerceiverForImageClassificationConvProcessing, PerceiverForMaskedLM, PerceiverModel, saveModel } from '../models/index.js';
import { perceiverConfig } from '../models/config.js';
import { caseConfig, caseDir, outputError } from './helpers/hf-fixture.js';
import { assertUnknownOptions } from './helpers/options.js';

const CASES = ['mlm', 'image_fourier', 'image_learned', 'image_conv', 'optical_flow', 'multimodal'];
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'perceiver.js');
const tmp = mkdtempSync(join(tmpdir(), 'perceiver-save-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = (name: string) => join(tmp, `${name}-${n++}`);

function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) t.dispose();
}

const sameBytes = async (a: Tensor, b: Tensor) => Buffer.from(await readBytes(a)).equals(Buffer.from(await readBytes(b)));

for (const c of CASES) {
  test(`${c}: loadModel -> save -> loadModel keeps HF's files, every tensor and the outputs`, async (t) => {
    const model = await loadModel(caseDir(c));
    const dir = freshDir(c);
    await model.save(dir);
    t.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors'], 'exactly the two files, no temporaries');

    // config.json: what HF wrote, key for key; sorted and indented as HF writes it.
    const text = readFileSync(join(dir, 'config.json'), 'utf8');
    t.deepEqual(JSON.parse(text), caseConfig(c));
    t.deepEqual(Object.keys(JSON.parse(text)), Object.keys(JSON.parse(text)).sort());
    t.true(text.endsWith('}\n'));

    // model.safetensors: HF's names, dtypes (BatchNorm's counter stays I64), shapes, metadata.
    const ours = await P.readSafetensorsHeader(join(dir, 'model.safetensors'));
    const hf = await P.readSafetensorsHeader(join(caseDir(c), 'model.safetensors'));
    t.deepEqual(ours.metadata, { format: 'pt' });
    const summary = (h: P.SafetensorsHeader) => Object.fromEntries([...h.entries].map(([k, e]) => [k, [e.dtype, e.shape]]));
    t.deepEqual(summary(ours), summary(hf));
    t.deepEqual([...ours.entries.keys()], [...ours.entries.keys()].sort(), 'keys sorted');

    const again = await loadModel(dir);
    const a = model.stateDict();
    const b = again.stateDict();
    for (const k of Object.keys(a)) t.true(await sameBytes(a[k], b[k]), `${k}: same bytes`);

    const inputs = await P.loadSafetensors(join(caseDir(c), 'input.safetensors'));
    const o1 = (await forwardNamed(model, inputs)).outputs;
    const o2 = (await forwardNamed(again, inputs)).outputs;
    t.deepEqual(Object.keys(o2), Object.keys(o1));
    for (const k of Object.keys(o1)) t.true(await sameBytes(o1[k], o2[k]), `output ${k}: identical`);
    for (const ts of [inputs, o1, o2]) disposeAll(ts);
    model.dispose();
    again.dispose();
  });
}

test('a saved folder runs under `perceiver run` and reproduces HF’s outputs', async (t) => {
  const model = await loadModel(caseDir('mlm'));
  const dir = freshDir('cli');
  await model.save(dir);
  model.dispose();
  const out = join(tmp, `cli-out-${n++}.safetensors`);
  const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(process.execPath, [CLI, 'run', '--model', dir, '--input', join(caseDir('mlm'), 'input.safetensors'), '--output', out, '--device', 'cpu'], (err, _o, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr }),
    ),
  );
  t.is(r.code, 0, r.stderr);
  const got = await P.loadSafetensors(out);
  const want = await P.loadSafetensors(join(caseDir('mlm'), 'expected.safetensors'), { names: ['logits'] });
  const { maxDiff, bound, summary } = outputError(await got.logits.data(), await want.logits.data());
  t.true(maxDiff <= bound, summary);
  disposeAll(got);
  disposeAll(want);
});

test('DeepMind-flavour options are written only when they differ from HF’s defaults', async (t) => {
  const base = caseConfig('image_conv');
  const hfish = configJson(perceiverConfig(base), 'PerceiverForImageClassificationConvProcessing');
  for (const k of ['conv_padding', 'classifier_query_residual', 'flow_output_scale', 'attention_mask_style']) t.false(k in hfish, k);
  const dm = configJson(perceiverConfig({ ...base, conv_padding: 'same', attention_mask_style: 'deepmind', flow_output_scale: 20, classifier_query_residual: false }), 'PerceiverForOpticalFlow');
  t.like(dm, { conv_padding: 'same', attention_mask_style: 'deepmind', flow_output_scale: 20, classifier_query_residual: false, architectures: ['PerceiverForOpticalFlow'] });

  // A DeepMind-flavoured model round-trips its options through save and loadModel.
  const m = new PerceiverForImageClassificationConvProcessing({ ...base, conv_padding: 'same' });
  const dir = freshDir('dm');
  await m.save(dir);
  const back = await loadModel(dir);
  t.is(back.config.conv_padding, 'same');
  m.dispose();
  back.dispose();
});

test('labels are written as HF writes them: id2label/label2id from num_labels, never num_labels itself', async (t) => {
  const cfg = configJson(perceiverConfig({ num_labels: 3 }), 'PerceiverForImageClassificationLearned');
  t.false('num_labels' in cfg);
  t.deepEqual(cfg.id2label, { 0: 'LABEL_0', 1: 'LABEL_1', 2: 'LABEL_2' });
  t.deepEqual(cfg.label2id, { LABEL_0: 0, LABEL_1: 1, LABEL_2: 2 });
  const named = configJson(perceiverConfig({ id2label: { 0: 'cat', 1: 'dog' } }), 'PerceiverForImageClassificationLearned');
  t.deepEqual(named.id2label, { 0: 'cat', 1: 'dog' });
  t.deepEqual(named.label2id, { cat: 0, dog: 1 });
  t.like(named, { model_type: 'perceiver', torch_dtype: 'float32' });
});

test('torch_dtype names the dtype the weights are saved in (a bfloat16 model is not a float32 one)', async (t) => {
  const m = new PerceiverModel(perceiverConfig({ num_latents: 4, d_latents: 8, d_model: 8, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 2 }));
  const dir = mkdtempSync(join(tmpdir(), 'pio-save-dtype-'));
  try {
    await saveModel(m, dir);
    t.is(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype, 'float32');
    m.to('bfloat16');
    await saveModel(m, dir);
    t.is(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  } finally {
    m.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the bare PerceiverModel saves under its own architecture name', async (t) => {
  const m = new PerceiverModel(perceiverConfig({ num_latents: 4, d_latents: 8, d_model: 8, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 2 }));
  const dir = freshDir('bare');
  await m.save(dir);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  t.deepEqual(cfg.architectures, ['PerceiverModel']);
  const h = await P.readSafetensorsHeader(join(dir, 'model.safetensors'));
  t.deepEqual([...h.entries.keys()].sort(), Object.keys(m.stateDict()).sort());
  m.dispose();
});

test('every registered task model saves under its class name and loads back with the same weights', async (t) => {
  // PerceiverForSequenceClassification was once missing from a hand-kept list of savable classes.
  const m = createModel({ architectures: ['PerceiverForSequenceClassification'], num_latents: 4, d_latents: 8, d_model: 8, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 2, max_position_embeddings: 16, num_labels: 3 });
  const dir = freshDir('seq');
  await m.save(dir);
  t.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).architectures, ['PerceiverForSequenceClassification']);
  const back = await loadModel(dir, { device: m.parameters()[0].device });
  const [a, b] = [m.stateDict(), back.stateDict()];
  t.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  for (const k of Object.keys(a)) t.deepEqual(Array.from(await b[k].data()), Array.from(await a[k].data()), k);
  m.dispose();
  back.dispose();
});

test('a failed save leaves the folder as it was, with no temporary files', async (t) => {
  const dir = freshDir('atomic');
  const m = await loadModel(caseDir('mlm'));
  await m.save(dir);
  const before = readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))] as const);
  const victim = m.stateDict()['embedding_decoder.bias'];
  victim.dispose();
  await t.throwsAsync(m.save(dir), { message: /saveModel: .*atomic-\d+: .*tensors\['embedding_decoder\.bias'\] is a disposed Tensor/ });
  t.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  for (const [f, bytes] of before) t.true(readFileSync(join(dir, f)).equals(bytes), `${f} unchanged`);
  m.dispose();
});

test('files of the folder that are symbolic links are replaced through the link (the link kept); a folder in place of one fails the save before any file changes', async (t) => {
  const dir = freshDir('links');
  const elsewhere = freshDir('elsewhere');
  mkdirSync(dir);
  mkdirSync(elsewhere);
  writeFileSync(join(elsewhere, 'config.json'), '{}');
  writeFileSync(join(elsewhere, 'model.safetensors'), 'old');
  for (const f of ['config.json', 'model.safetensors']) symlinkSync(join(elsewhere, f), join(dir, f));
  const m = await loadModel(caseDir('mlm'), { device: 'cpu' });
  await m.save(dir);
  for (const f of ['config.json', 'model.safetensors']) t.true(lstatSync(join(dir, f)).isSymbolicLink(), `${f} is still a link`);
  t.deepEqual(readdirSync(elsewhere).sort(), ['config.json', 'model.safetensors'], 'no temporary file left beside the targets');
  const back = await loadModel(dir, { device: 'cpu' });
  t.is(back.constructor.name, 'PerceiverForMaskedLM');
  back.dispose();
  const blocked = freshDir('blocked');
  mkdirSync(join(blocked, 'config.json'), { recursive: true });
  await t.throwsAsync(m.save(blocked), { message: /saveModel: .*blocked-\d+: '.*config\.json' is a folder, not a regular file: refusing to replace it/ });
  t.deepEqual(readdirSync(blocked), ['config.json'], 'nothing written');
  m.dispose();
});

test('save validates its arguments', async (t) => {
  const m = new PerceiverForMaskedLM({ ...caseConfig('mlm') });
  await t.throwsAsync(saveModel(m, ''), { instanceOf: TypeError, message: /argument 'dir' must be a folder path/ });
  await t.throwsAsync(saveModel({} as PerceiverForMaskedLM, freshDir('x')), { instanceOf: TypeError, message: /must be a Perceiver model/ });
  const file = join(tmp, `file-${n++}`);
  writeFileSync(file, 'x');
  await t.throwsAsync(m.save(join(file, 'sub')), { message: /saveModel: cannot create the folder/ });
  mkdirSync(freshDir('ok'));
  m.dispose();
});

test('maxShardBytes writes HF’s sharded layout, which loads identically; saving again switches layouts cleanly', async (t) => {
  const model = await loadModel(caseDir('image_conv'));
  const dir = freshDir('shards');
  await model.save(dir, { maxShardBytes: 200_000 });
  const files = readdirSync(dir).sort();
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  t.true(shards.length >= 3, files.join(', '));
  t.deepEqual(files, ['config.json', 'model.safetensors.index.json', ...shards].sort());
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
    metadata: { total_size: number; save_id: string };
    weight_map: Record<string, string>;
  };
  t.regex(index.metadata.save_id, /^[0-9a-f]{16}$/);
  const hf = await P.readSafetensorsHeader(join(caseDir('image_conv'), 'model.safetensors'));
  t.deepEqual(Object.keys(index.weight_map).sort(), [...hf.entries.keys()].sort());
  t.is(index.metadata.total_size, [...hf.entries.values()].reduce((a, e) => a + e.dataOffsets[1] - e.dataOffsets[0], 0));
  for (const s of shards) {
    const h = await P.readSafetensorsHeader(join(dir, s));
    t.deepEqual(h.metadata, { format: 'pt', save_id: index.metadata.save_id }, 'every shard carries the save id of its index');
    const bytes = [...h.entries.values()].reduce((a, e) => a + e.dataOffsets[1] - e.dataOffsets[0], 0);
    t.true(bytes <= 200_000 || h.entries.size === 1, `${s}: ${bytes} bytes`);
  }
  const sharded = await loadModel(dir);
  const a = model.stateDict();
  const b = sharded.stateDict();
  for (const k of Object.keys(a)) t.true(await sameBytes(a[k], b[k]), k);
  sharded.dispose();

  // Back to one file: the index goes (model.safetensors would win anyway), and the reverse.
  await model.save(dir);
  t.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors'], 'the index and the old shards are gone');
  await model.save(dir, { maxShardBytes: 300_000 });
  t.false(readdirSync(dir).includes('model.safetensors'), 'a stale model.safetensors would shadow the new shards');
  (await loadModel(dir)).dispose();
  await t.throwsAsync(model.save(dir, { maxShardBytes: 0 }), { instanceOf: TypeError, message: /option 'maxShardBytes' must be a positive integer, got 0/ });
  t.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files');
  model.dispose();
});

test('configJson: bad arguments are refused with the argument named, and config fields as perceiverConfig refuses them', (t) => {
  const config = perceiverConfig(caseConfig('mlm'));
  const bad: [() => unknown, RegExp][] = [
    [() => configJson(undefined as never, 'PerceiverForMaskedLM'), /^configJson: argument 'config' must be an object, got undefined$/],
    [() => configJson('x' as never, 'PerceiverForMaskedLM'), /^configJson: argument 'config' must be an object, got 'x'$/],
    [() => configJson([] as never, 'PerceiverForMaskedLM'), /^configJson: argument 'config' must be an object, got array of length 0$/],
    [() => configJson(config, undefined as never), /^configJson: argument 'arch' must be a model class name, got undefined$/],
    [() => configJson(config, 5 as never), /^configJson: argument 'arch' must be a model class name, got number 5$/],
    [() => configJson({ ...config, num_latents: 'x' } as never, 'PerceiverForMaskedLM'), /^perceiverConfig: 'num_latents' must be a positive integer, got "x"$/],
    [() => configJson({ ...config, qk_channels: NaN }, 'PerceiverForMaskedLM'), /^perceiverConfig: 'qk_channels' must be null or a positive integer, got NaN$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
});

test('every task model module loads on its own, not only through the index (save.ts reaches the registry lazily)', async (t) => {
  const here = dirname(fileURLToPath(import.meta.url));
  const files = ['masked-lm', 'sequence-classification', 'image-classification-learned', 'image-classification-fourier', 'image-classification-conv', 'optical-flow', 'multimodal-autoencoding'];
  const code = `for (const f of ${JSON.stringify(files)}) await import(${JSON.stringify(join(here, '..', 'models'))} + '/' + f + '.js');`;
  // One fresh process per module: a module already loaded through another hides the cycle.
  await Promise.all(
    files.map(
      (f) =>
        new Promise<void>((resolve) => {
          execFile(process.execPath, ['--input-type=module', '-e', code.replace(JSON.stringify(files), JSON.stringify([f]))], (err, _out, stderr) => {
            t.is(err, null, `${f}: ${stderr}`);
            resolve();
          });
        }),
    ),
  );
});

// ---- saves cut short ---------------------------------------------------------------------------

/**
 * Runs `save` as a process killed after its first `k` renames and unlinks would: every
 * later one fails, its cleanup included. Returns what was done, in order, and whether
 * the save got through anyway.
 */
async function killedAfter(k: number, save: () => Promise<void>): Promise<{ done: string[]; finished: boolean }> {
  type Op = (...args: string[]) => Promise<void>;
  const promises = fs.promises as unknown as Record<'rename' | 'unlink', Op>;
  const real = { rename: promises.rename, unlink: promises.unlink };
  const done: string[] = [];
  let count = 0;
  const killable = (name: 'rename' | 'unlink'): Op => async (...args) => {
    if (count++ >= k) throw new Error('killed');
    await real[name](...args);
    done.push(`${name} ${basename(args[args.length - 1])}`);
  };
  promises.rename = killable('rename');
  promises.unlink = killable('unlink');
  syncBuiltinESMExports();
  try {
    await save();
    return { done, finished: true };
  } catch {
    return { done, finished: false };
  } finally {
    promises.rename = real.rename;
    promises.unlink = real.unlink;
    syncBuiltinESMExports();
  }
}

// Serial: it swaps fs.promises' rename and unlink, which concurrent tests would call.
test.serial('a save cut short at any step leaves a folder that loads one save’s weights whole, the new one under the new config, or fails clearly', async (t) => {
  const config = caseConfig('image_conv');
  const a = createModel(config);
  const b = createModel(config);
  const bytesOf = async (m: P.Module) => Object.fromEntries(await Promise.all(Object.entries(m.stateDict()).map(async ([k, v]) => [k, Buffer.from(await readBytes(v))] as const)));
  const [wa, wb] = [await bytesOf(a), await bytesOf(b)];
  const shards = { maxShardBytes: 200_000 };
  // [old layout, new layout]: the switch both ways, and shards re-saved under the same names.
  const scenarios: [string, { maxShardBytes?: number }, { maxShardBytes?: number }][] = [
    ['one file -> shards', {}, shards],
    ['shards -> the same number of shards', shards, shards],
    ['shards -> one file', shards, {}],
  ];
  for (const [what, before, after] of scenarios) {
    for (let k = 0; ; k++) {
      const dir = freshDir('killed');
      await saveModel(a, dir, before);
      const { done, finished } = await killedAfter(k, () => saveModel(b, dir, after));
      const where = `${what}, cut after ${done.join(', ') || 'nothing'}`;
      let loaded: P.Module;
      try {
        loaded = await loadModel(dir);
      } catch (err) {
        t.regex((err as Error).message, /^loadModel: /, where);
        continue;
      }
      const w = await bytesOf(loaded);
      loaded.dispose();
      const isA = Object.keys(wa).every((key) => w[key].equals(wa[key]));
      const isB = Object.keys(wb).every((key) => w[key].equals(wb[key]));
      t.true(isA || isB, `${where}: the weights of one save, not a mix`);
      if (done.includes('rename config.json')) t.true(isB, `${where}: the new config.json loads the new weights`);
      if (finished) {
        t.true(isB, `${what}: the finished save loads`);
        break;
      }
    }
  }
  a.dispose();
  b.dispose();
});

test('saveModel and save() refuse a misspelt option before writing anything, naming the op, the argument and the key', async (t) => {
  const model = new PerceiverForMaskedLM(caseConfig('mlm'));
  const dir = join(tmp, 'unknown-option');
  await assertUnknownOptions(t, [
    [() => saveModel(model, dir, { maxShardSize: 1 << 20 } as never), 'saveModel', 'opts', 'maxShardSize'],
    [() => model.save(dir, { shardBytes: 1 << 20 } as never), 'saveModel', 'opts', 'shardBytes'],
  ]);
  t.false(fs.existsSync(dir), 'no folder was made');
  model.dispose();
});
