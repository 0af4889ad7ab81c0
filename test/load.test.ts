// Specification of loadModel(dir): a HuggingFace model folder in any of HF's
// weights layouts (model.safetensors, a sharded model.safetensors.index.json,
// pytorch_model.bin, a sharded pytorch_model.bin.index.json) as the class
// config.json's architectures[0] names; config fields HF's PretrainedConfig
// defines pass silently, others draw one warning; weights that do not fit the
// config, broken indexes and broken files fail with the folder and file named,
// before any weight is read where possible; progress and abort work; nothing leaks.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { readBytes } from '../lib/tensor.js';
import { loadModel, unknownConfigKeys, PerceiverForMaskedLM, readModelConfig, readModelRecords, checkNamedInputs, forwardNamed, isIgnoredInput, namedInputSpec } from '../models/index.js';
import { caseConfig, caseDir, caseTensors } from './helpers/hf-fixture.js';
import { baseline, live } from './helpers/device.js';
import { readAndDispose } from './helpers/read.js';
import { assertUnknownOptions } from './helpers/options.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-load-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** A fresh folder with the case's config.json (optionally edited) and, unless told otherwise, its model.safetensors. */
function folder(c: string, opts: { config?: (cfg: Record<string, unknown>) => void; weights?: boolean } = {}): string {
  const dir = join(tmp, `${c}-${n++}`);
  mkdirSync(dir);
  const cfg = caseConfig(c);
  opts.config?.(cfg);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  if (opts.weights !== false) copyFileSync(join(caseDir(c), 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

function disposeAll(ts: Record<string, Tensor>): void {
  for (const t of Object.values(ts)) t.dispose();
}

/**
 * Splits the case's weights over `k` shards with HF's index; returns the folder. With
 * `saveIds`, shard i's metadata carries save_id saveIds.shards[i] and the index's
 * saveIds.index (as saveModel writes them); undefined ones are left out.
 */
async function shardedCopy(c: string, k: number, saveIds?: { index?: string; shards: (string | undefined)[] }): Promise<string> {
  const dir = folder(c, { weights: false });
  const sd = await P.loadSafetensors(join(caseDir(c), 'model.safetensors'));
  const names = Object.keys(sd);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let i = 0; i < k; i++) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(k).padStart(5, '0')}.safetensors`;
    const part = Object.fromEntries(names.filter((_, j) => j % k === i).map((name) => [name, sd[name]]));
    for (const [name, t] of Object.entries(part)) {
      weightMap[name] = file;
      total += t.size * 4;
    }
    const id = saveIds?.shards[i];
    await P.saveSafetensors(join(dir, file), part, { metadata: { format: 'pt', ...(id !== undefined && { save_id: id }) } });
  }
  const metadata = { total_size: total, ...(saveIds?.index !== undefined && { save_id: saveIds.index }) };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata, weight_map: weightMap }, null, 2));
  disposeAll(sd);
  return dir;
}

async function sameWeights(t: import('ava').ExecutionContext, a: P.Module, b: P.Module): Promise<void> {
  const sa = a.stateDict();
  const sb = b.stateDict();
  t.deepEqual(Object.keys(sb).sort(), Object.keys(sa).sort());
  for (const k of Object.keys(sa)) {
    t.deepEqual(sb[k].shape, sa[k].shape, k);
    t.is(sb[k].dtype, sa[k].dtype, k);
    t.true(Buffer.from(await readBytes(sb[k])).equals(Buffer.from(await readBytes(sa[k]))), `${k}: same bytes`);
  }
}

// ---- layouts ----------------------------------------------------------------------------------

// One text, one image (with BatchNorm's int64 counter) and the multimodal model.
for (const c of ['mlm', 'image_conv', 'multimodal']) {
  test(`${c}: a sharded model.safetensors.index.json copy loads exactly the weights of model.safetensors`, async (t) => {
    const plain = await loadModel(caseDir(c));
    const sharded = await loadModel(await shardedCopy(c, 3));
    t.is(sharded.constructor, plain.constructor);
    await sameWeights(t, plain, sharded);
    plain.dispose();
    sharded.dispose();
  });
}

test.serial('loadModel draws no initial weights (the checkpoint replaces every one) and leaves the random sequence as construction would', async (t) => {
  P.manualSeed(3);
  P.profiler.start();
  let model: P.Module;
  try {
    model = await loadModel(caseDir('mlm'));
  } finally {
    const ops = new Set(P.profiler.stop().rows.map((r) => r.op));
    t.false(ops.has('randn') || ops.has('rand'), `ops run by loadModel: ${[...ops].join(', ')}`);
  }
  const after = P.randn([4]);
  P.manualSeed(3);
  const built = new PerceiverForMaskedLM(caseConfig('mlm'));
  const afterBuilt = P.randn([4]);
  t.deepEqual(Array.from(await after.data()), Array.from(await afterBuilt.data()));
  const x = P.tensor([[5, 6, 7, 8]], undefined, { dtype: 'int32' });
  const loaded = (model! as PerceiverForMaskedLM).forward(x).logits;
  t.true((await loaded.data()).every(Number.isFinite), 'the loaded model computes finite logits');
  for (const y of [after, afterBuilt, x, loaded]) y.dispose();
  built.dispose();
  model!.dispose();
});

test('model.safetensors is preferred over an index, as HF prefers it', async (t) => {
  const dir = await shardedCopy('mlm', 2);
  copyFileSync(join(caseDir('mlm'), 'model.safetensors'), join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors.index.json'), 'not json'); // would fail if read
  const m = await loadModel(dir);
  t.true(m instanceof PerceiverForMaskedLM);
  m.dispose();
});

test('pytorch_model.bin goes to the PyTorch reader (lib/io/torch.js); an unreadable one fails naming the file', async (t) => {
  const dir = folder('mlm', { weights: false });
  writeFileSync(join(dir, 'pytorch_model.bin'), Buffer.from('this is not a torch checkpoint'));
  const err = await t.throwsAsync(loadModel(dir));
  t.regex(err!.message, /pytorch_model\.bin/);
});

test('pytorch_model.bin.index.json shards go to the same reader; a missing or unreadable shard is named', async (t) => {
  const dir = folder('mlm', { weights: false });
  const shard = 'pytorch_model-00001-of-00001.bin';
  writeFileSync(join(dir, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { 'embedding_decoder.bias': shard } }));
  await t.throwsAsync(loadModel(dir), { message: /pytorch_model\.bin\.index\.json: shard 'pytorch_model-00001-of-00001\.bin' \(holding 'embedding_decoder\.bias'\) is missing/ });
  writeFileSync(join(dir, shard), Buffer.from('not a torch checkpoint either'));
  const err = await t.throwsAsync(loadModel(dir));
  t.regex(err!.message, /pytorch_model-00001-of-00001\.bin/);
});

test('a folder without weights lists the layouts it looked for', async (t) => {
  const dir = folder('mlm', { weights: false });
  await t.throwsAsync(loadModel(dir), {
    message: /model\.safetensors' is missing, and so are the other weights layouts \(model\.safetensors\.index\.json, pytorch_model\.bin, pytorch_model\.bin\.index\.json\)/,
  });
});

// ---- broken indexes ---------------------------------------------------------------------------

test('broken sharded indexes fail naming the index and the problem', async (t) => {
  const indexOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const rewrite = (dir: string, edit: (wm: Record<string, string>) => void) => {
    const idx = indexOf(dir);
    edit(idx.weight_map);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(idx));
  };
  const shard1 = 'model-00001-of-00002.safetensors';
  const shard2 = 'model-00002-of-00002.safetensors';

  let dir = await shardedCopy('mlm', 2);
  rmSync(join(dir, shard2));
  await t.throwsAsync(loadModel(dir), { message: /model\.safetensors\.index\.json: shard 'model-00002-of-00002\.safetensors' \(holding '.*' and \d+ more\) is missing/ });

  // A tensor in two shards: write shard 2 again holding one of shard 1's tensors too.
  dir = await shardedCopy('mlm', 2);
  const s1 = await P.loadSafetensors(join(dir, shard1));
  const s2 = await P.loadSafetensors(join(dir, shard2));
  const dup = Object.keys(s1)[0];
  await P.saveSafetensors(join(dir, shard2), { ...s2, [dup]: s1[dup] });
  await t.throwsAsync(loadModel(dir), { message: new RegExp(`tensor '${dup.replace(/\./g, '\\.')}' is in two shards, '${shard1}' and '${shard2}'`) });
  disposeAll(s1);
  disposeAll(s2);

  dir = await shardedCopy('mlm', 2);
  rewrite(dir, (wm) => {
    const k = Object.keys(wm).find((name) => wm[name] === shard1)!;
    wm[k] = shard2;
  });
  await t.throwsAsync(loadModel(dir), { message: /model\.safetensors\.index\.json: (shard '.*' holds '.*', which weight_map does not assign to it|weight_map puts '.*' in shard '.*', which does not hold it)/ });

  dir = await shardedCopy('mlm', 2);
  rewrite(dir, (wm) => {
    wm[Object.keys(wm)[0]] = '../../etc/passwd';
  });
  await t.throwsAsync(loadModel(dir), { message: /names '\.\.\/\.\.\/etc\/passwd', which is outside the model folder/ });

  dir = await shardedCopy('mlm', 2);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weights: {} }));
  await t.throwsAsync(loadModel(dir), { message: /model\.safetensors\.index\.json: must be a JSON object with a 'weight_map' object/ });
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": ');
  await t.throwsAsync(loadModel(dir), { message: /model\.safetensors\.index\.json: not valid JSON/ });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 5 } }));
  await t.throwsAsync(loadModel(dir), { message: /weight_map\['a'\] must be a shard file name, got 5/ });
});

// ---- weights that do not fit the config --------------------------------------------------------

// Serial: it counts live tensors and bytes, which concurrent tests would move.
test.serial('weights of the wrong shapes for the config are refused before any weight is read, listing them', async (t) => {
  const before = (await baseline());
  const dir = folder('mlm', { config: (c) => (c.num_latents = 32) });
  const err = await t.throwsAsync(loadModel(dir, { onProgress: () => t.fail('no tensor may be read') }));
  t.regex(err!.message, /model\.safetensors: loadStateDict \(PerceiverForMaskedLM\): mis-shaped keys: /);
  t.regex(err!.message, /checked against the model .*config\.json describes, before reading any weight/);
  t.regex(err!.message, /perceiver\.embeddings\.latents \(checkpoint \[16, 96\], model \[32, 96\]\)/);
  t.is(live().tensors, before.tensors, 'the model built for the check is disposed');
  t.is(live().bytes, before.bytes);
});

test('missing and unexpected tensors are listed by name', async (t) => {
  const dir = folder('mlm', { weights: false });
  const sd = await P.loadSafetensors(join(caseDir('mlm'), 'model.safetensors'));
  const { ['embedding_decoder.bias']: dropped, ...rest } = sd;
  await P.saveSafetensors(join(dir, 'model.safetensors'), { ...rest, 'extra.weight': dropped });
  const err = await t.throwsAsync(loadModel(dir));
  t.regex(err!.message, /missing keys: embedding_decoder\.bias/);
  t.regex(err!.message, /unexpected keys: extra\.weight/);
  disposeAll(sd);
});

test("a conv-processing checkpoint without BatchNorm's num_batches_tracked loads (torch fills the counter in for a safetensors state dict); without running_mean it is refused", async (t) => {
  const sd = await P.loadSafetensors(join(caseDir('image_conv'), 'model.safetensors'));
  const counter = Object.keys(sd).filter((k) => k.endsWith('.num_batches_tracked'));
  t.deepEqual(counter, ['perceiver.input_preprocessor.convnet.batchnorm.num_batches_tracked']);
  const { [counter[0]]: dropped, ...rest } = sd;
  const dir = folder('image_conv', { weights: false });
  await P.saveSafetensors(join(dir, 'model.safetensors'), rest);
  const model = await loadModel(dir);
  t.is((await model.stateDict()[counter[0]].data())[0], 0, "the model's own counter (0) stays");
  model.dispose();
  const mean = 'perceiver.input_preprocessor.convnet.batchnorm.running_mean';
  const { [mean]: droppedMean, ...noMean } = rest;
  await P.saveSafetensors(join(dir, 'model.safetensors'), noMean);
  const err = await t.throwsAsync(loadModel(dir));
  t.true(err!.message.includes(`missing keys: ${mean} (checked against`), err!.message);
  dropped.dispose();
  droppedMean.dispose();
  disposeAll(rest);
});

test('a corrupt model.safetensors fails naming the file', async (t) => {
  const dir = folder('mlm');
  const buf = readFileSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), buf.subarray(0, buf.length - 100));
  await t.throwsAsync(loadModel(dir), { message: /model\.safetensors: tensor '.*': data_offsets .* run past the end of the data section/ });
});

// ---- config.json ------------------------------------------------------------------------------

test('HF PretrainedConfig fields pass silently; unknown fields draw one warning naming them', async (t) => {
  const generic = { torch_dtype: 'float32', transformers_version: '4.40.0', _name_or_path: 'deepmind/language-perceiver', id2label: { 0: 'a' }, label2id: { a: 0 }, return_dict: true, problem_type: null };
  t.deepEqual(unknownConfigKeys({ ...caseConfig('mlm'), ...generic }), []);
  const warnings: string[] = [];
  const quiet = await loadModel(folder('mlm', { config: (c) => Object.assign(c, generic) }), { onWarning: (w) => warnings.push(w) });
  t.deepEqual(warnings, []);
  quiet.dispose();
  const noisy = await loadModel(folder('mlm', { config: (c) => Object.assign(c, { d_latens: 3, frobnicate: true }) }), { onWarning: (w) => warnings.push(w) });
  t.is(warnings.length, 1);
  t.regex(warnings[0], /config\.json: ignoring unknown config fields 'd_latens', 'frobnicate'/);
  noisy.dispose();
  // Without onWarning, a process warning with a code.
  const got = new Promise<Error>((resolve) => process.once('warning', resolve));
  (await loadModel(folder('mlm', { config: (c) => (c.frobnicate = 1) }))).dispose();
  const w = await got;
  t.regex(w.message, /'frobnicate'/);
  t.is((w as Error & { code?: string }).code, 'PERCEIVER_UNKNOWN_CONFIG_FIELD');
});

test('every PerceiverConfig field is honoured: a changed field changes the model built', async (t) => {
  // hidden_act: the same weights compute another function.
  const input = await caseTensors('mlm', 'input', ['inputs', 'attention_mask']);
  const logitsOf = async (m: Awaited<ReturnType<typeof loadModel>>) =>
    (await readAndDispose((m as PerceiverForMaskedLM).forward(input.inputs, { attentionMask: input.attention_mask }).logits)) as Float32Array;
  const exact = await loadModel(caseDir('mlm'));
  const tanh = await loadModel(folder('mlm', { config: (c) => Object.assign(c, { hidden_act: 'gelu_new' }) }));
  t.is(tanh.config.hidden_act, 'gelu_new');
  const [a, b] = [await logitsOf(exact), await logitsOf(tanh)];
  t.true(a.some((v, i) => v !== b[i]), 'gelu_new changes the logits');
  for (const m of [exact, tanh]) m.dispose();
  for (const x of Object.values(input)) x.dispose();
  // A structural field: one latent layer per block, so the checkpoint's second is unexpected.
  await t.throwsAsync(loadModel(folder('mlm', { config: (c) => Object.assign(c, { num_self_attends_per_block: 1 }) })), { message: /self_attends\.1\./ });
  await t.throwsAsync(loadModel(folder('mlm', { config: (c) => (c.hidden_act = 'swish') })), { message: /config\.json: .*hidden_act 'swish' is not supported/ });
  await t.throwsAsync(loadModel(folder('mlm', { config: (c) => (c.model_type = 'bert') })), { message: /config\.json: model_type is "bert", not "perceiver"/ });
  await t.throwsAsync(loadModel(folder('mlm', { config: (c) => (c.architectures = ['BertForMaskedLM']) })), {
    message: /config\.json: .*architecture 'BertForMaskedLM' is not supported/,
  });
});

// ---- options ----------------------------------------------------------------------------------

test('dtype: float32 by default, bfloat16 and float16 on request (models-dtype.test.ts checks their outputs); anything else is a TypeError', async (t) => {
  const m = await loadModel(caseDir('mlm'));
  t.true(Object.values(m.stateDict()).every((x) => x.dtype === 'float32' || x.dtype === 'int32'));
  m.dispose();
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const h = await loadModel(caseDir('mlm'), { dtype });
    t.true(Object.values(h.stateDict()).every((x) => x.dtype === dtype || x.dtype === 'int32'), dtype);
    h.dispose();
  }
  await t.throwsAsync(loadModel(caseDir('mlm'), { dtype: 'int8' as 'float32' }), { instanceOf: TypeError, message: /option 'dtype' must be/ });
});

test('progress reports every tensor once, in bytes, ending at the file total', async (t) => {
  const seen: P.LoadProgress[] = [];
  const m = await loadModel(caseDir('image_learned'), { onProgress: (p) => seen.push(p) });
  const header = await P.readSafetensorsHeader(join(caseDir('image_learned'), 'model.safetensors'));
  t.is(seen.length, header.entries.size);
  t.deepEqual(new Set(seen.map((p) => p.name)), new Set(header.entries.keys()));
  const total = [...header.entries.values()].reduce((a, e) => a + e.dataOffsets[1] - e.dataOffsets[0], 0);
  t.true(seen.every((p, i) => p.bytesTotal === total && (i === 0 || p.bytesDone >= seen[i - 1].bytesDone)));
  t.is(seen.at(-1)!.bytesDone, total);
  m.dispose();
});

// Serial: it counts live tensors and bytes.
test.serial('an AbortSignal stops loadModel and leaves nothing behind', async (t) => {
  const before = (await baseline());
  const ac = new AbortController();
  let calls = 0;
  const err = await t.throwsAsync(
    loadModel(caseDir('multimodal'), {
      signal: ac.signal,
      onProgress: () => {
        if (++calls === 5) ac.abort(new Error('stop'));
      },
    }),
  );
  t.is(err!.message, 'stop');
  t.is(live().tensors, before.tensors);
  t.is(live().bytes, before.bytes);
});

test('loadModel, readModelConfig, readModelRecords, unknownConfigKeys and the named-input helpers: bad arguments are refused with the argument named', async (t) => {
  const model = new PerceiverForMaskedLM(caseConfig('mlm'));
  const ids = P.zeros([1, 4], { dtype: 'int32' });
  const other = new P.Linear(2, 2);
  const bad: [() => unknown, RegExp][] = [
    [() => readModelConfig(NaN as never), /^loadModel: argument 'dir' must be a folder path, got number NaN$/],
    [() => unknownConfigKeys(undefined as never), /^unknownConfigKeys: argument 'json' must be an object, got undefined$/],
    [() => unknownConfigKeys('x' as never), /^unknownConfigKeys: argument 'json' must be an object, got 'x'$/],
    [() => isIgnoredInput(5 as never), /^isIgnoredInput: argument 'name' must be a string, got number 5$/],
    [() => namedInputSpec(undefined as never), /^namedInputSpec: argument 'model' must be a Perceiver task model \(.*\), got undefined$/],
    [() => namedInputSpec(other as never), /^namedInputSpec: argument 'model' must be a Perceiver task model \(.*\), got Linear, which has no named-input mapping$/],
    [() => checkNamedInputs(null as never, ['inputs']), /^checkNamedInputs: argument 'model' must be a Perceiver task model \(.*\), got null$/],
    [() => checkNamedInputs(model, 'inputs' as never), /^checkNamedInputs: argument 'names' must be an array of input names, got 'inputs'$/],
    [() => checkNamedInputs(model, ['inputs', null] as never), /^checkNamedInputs: argument 'names\[1\]' must be a string, got null$/],
  ];
  for (const [f, message] of bad) t.throws(f, { message }, String(message));
  const badAsync: [() => Promise<unknown>, RegExp][] = [
    [() => loadModel(caseDir('mlm'), [] as never), /^loadModel: argument 'opts' must be an object, got array of length 0$/],
    [() => readModelRecords(undefined as never), /^readModelRecords: argument 'dir' must be a folder path, got undefined$/],
    [() => readModelRecords({} as never), /^readModelRecords: argument 'dir' must be a folder path, got Object$/],
    [() => forwardNamed(undefined as never, { inputs: ids }), /^forwardNamed: argument 'model' must be a Perceiver task model \(.*\), got undefined$/],
    [() => forwardNamed(model, undefined as never), /^forwardNamed: argument 'inputs' must be an object, got undefined$/],
    [() => forwardNamed(model, { inputs: ids }, [] as never), /^forwardNamed: argument 'opts' must be an object, got array of length 0$/],
    [() => forwardNamed(model, { inputs: 'x' } as never), /^forwardNamed: argument 'inputs\['inputs'\]' must be a Tensor, got 'x'$/],
    [() => forwardNamed(model, { inputs: ids, attention_mask: null } as never), /^forwardNamed: argument 'inputs\['attention_mask'\]' must be a Tensor, got null$/],
  ];
  for (const [f, message] of badAsync) await t.throwsAsync(f, { message }, String(message));
  ids.dispose();
  other.dispose();
  model.dispose();
});

test('shards of two saves are refused, naming the shard and both save ids; one save id throughout loads', async (t) => {
  const mixed = await shardedCopy('mlm', 2, { index: 'new', shards: ['new', 'old'] });
  await t.throwsAsync(loadModel(mixed), {
    message: /model\.safetensors\.index\.json: shard 'model-00002-of-00002\.safetensors' is from save "old", the index from save "new": files of two saves are mixed \(a save was interrupted\?\); save the model again/,
  });
  await t.throwsAsync(loadModel(await shardedCopy('mlm', 2, { shards: ['new', 'new'] })), { message: /shard 'model-00001-of-00002\.safetensors' is from save "new", the index names none/ });
  await t.throwsAsync(loadModel(await shardedCopy('mlm', 2, { index: 'new', shards: ['new', undefined] })), { message: /shard 'model-00002-of-00002\.safetensors' carries no save id, the index from save "new"/ });
  const m = await loadModel(await shardedCopy('mlm', 2, { index: 'same', shards: ['same', 'same'] }));
  t.true(m instanceof PerceiverForMaskedLM);
  m.dispose();
});

test('an index naming a tensor twice is refused, not collapsed to the last as JSON.parse would', async (t) => {
  const dir = await shardedCopy('mlm', 2);
  const path = join(dir, 'model.safetensors.index.json');
  const text = readFileSync(path, 'utf8');
  const [first] = Object.keys((JSON.parse(text) as { weight_map: Record<string, string> }).weight_map);
  writeFileSync(path, text.replace('"weight_map": {', `"weight_map": {\n    "${first}": "model-00002-of-00002.safetensors",`));
  await t.throwsAsync(loadModel(dir), { message: new RegExp(`model\\.safetensors\\.index\\.json: the key '${first.replace(/\./g, '\\.')}' appears twice in one object`) });
});

test("tensors named like Object.prototype's members ('constructor', 'toString', '__proto__') are unexpected keys like any other", async (t) => {
  const sd = await P.loadSafetensors(join(caseDir('mlm'), 'model.safetensors'));
  const extra = P.zeros([2]);
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    const dir = folder('mlm', { weights: false });
    await P.saveSafetensors(join(dir, 'model.safetensors'), { ...sd, [name]: extra });
    await t.throwsAsync(loadModel(dir), { message: new RegExp(`loadStateDict \\(PerceiverForMaskedLM\\): unexpected keys: ${name}`) }, name);
  }
  extra.dispose();
  disposeAll(sd);
});

const fifoTest = process.platform === 'win32' ? test.skip : test;
fifoTest('a named pipe as config.json, index or weights is refused at once, naming it, instead of waited on', async (t) => {
  let dir = folder('mlm', { weights: false });
  rmSync(join(dir, 'config.json'));
  execFileSync('mkfifo', [join(dir, 'config.json')]);
  await t.throwsAsync(loadModel(dir), { message: /^loadModel: .*config\.json: cannot read \(.*config\.json is a named pipe \(FIFO\), not a regular file\)$/ });
  dir = folder('mlm', { weights: false });
  execFileSync('mkfifo', [join(dir, 'model.safetensors.index.json')]);
  await t.throwsAsync(loadModel(dir), { message: /^loadModel: .*model\.safetensors\.index\.json: cannot read \(.* is a named pipe \(FIFO\), not a regular file\)$/ });
  dir = folder('mlm', { weights: false });
  execFileSync('mkfifo', [join(dir, 'model.safetensors')]);
  await t.throwsAsync(loadModel(dir), { message: /model\.safetensors: cannot open \(.* is a named pipe \(FIFO\), not a regular file\)$/ });
  dir = folder('mlm', { weights: false });
  execFileSync('mkfifo', [join(dir, 'pytorch_model.bin')]);
  await t.throwsAsync(loadModel(dir), { message: /pytorch_model\.bin: cannot open \(.* is a named pipe \(FIFO\), not a regular file\)$/ });
});

test('loadModel and forwardNamed refuse a misspelt option, naming the op, the argument and the key', async (t) => {
  const model = new PerceiverForMaskedLM(caseConfig('mlm'));
  await assertUnknownOptions(t, [
    // Before the folder is read: the load would otherwise run in float32.
    [() => loadModel(caseDir('mlm'), { dtyp: 'bfloat16' } as never), 'loadModel', 'opts', 'dtyp'],
    [() => loadModel(caseDir('mlm'), { onWarnings: () => undefined } as never), 'loadModel', 'opts', 'onWarnings'],
    [() => forwardNamed(model, {}, { interpolate_pos_encoding: true } as never), 'forwardNamed', 'opts', 'interpolate_pos_encoding'],
  ]);
  model.dispose();
});
