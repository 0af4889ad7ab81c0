// `perceiver info DIR`: architecture, files, parameters (total and per top-level
// module), dtypes, key config values and FLOPs, read from the folder without loading
// the weights. The counts are checked against the loaded model and the header.
import test from 'ava';
import { mkdtempSync, copyFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import { countFlops } from '../models/flops.js';
import { loadModel, readModelConfig } from '../models/load.js';
import { modelInfo, type ModelInfo } from '../models/model-info.js';
import { saveModel } from '../models/save.js';
import { cli } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

const CASES = ['mlm', 'image_fourier', 'image_learned', 'image_conv', 'optical_flow', 'multimodal'];
const tmp = mkdtempSync(join(tmpdir(), 'perceiver-cli-info-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

// The command line for three cases (a child process each costs seconds on a loaded
// machine), the library function behind it for all six.
const VIA_CLI = new Set(['mlm', 'image_conv', 'multimodal']);

for (const c of CASES) {
  test(`info ${c}: parameters equal the loaded model's, every stored value is counted once, FLOPs are countFlops'`, async (t) => {
    const dir = caseDir(c);
    let info: ModelInfo;
    if (VIA_CLI.has(c)) {
      const r = await cli(['info', dir, '--json']);
      t.is(r.code, 0, r.stderr);
      info = JSON.parse(r.stdout) as ModelInfo;
    } else info = await modelInfo(dir);
    const config = readModelConfig(dir);
    t.is(info.architecture, (config.architectures as string[])[0]);
    const model = await loadModel(dir, { device: 'cpu' });
    t.is(info.parameters, model.numParameters(), 'the parameters torch would count');
    model.dispose();
    t.is(info.modules.reduce((s, m) => s + m.parameters, 0), info.parameters, 'the modules partition the parameters');
    t.true(info.modules.every((m) => /^(perceiver\.[a-z_]+|[a-z_]+)$/.test(m.name)), info.modules.map((m) => m.name).join(', '));
    const header = await P.readSafetensorsHeader(join(dir, 'model.safetensors'));
    const values = [...header.entries.values()].reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0);
    t.is(info.dtypes.reduce((s, d) => s + d.values, 0), values);
    t.is(info.dtypes.reduce((s, d) => s + d.tensors, 0), header.entries.size);
    t.is(info.parameters + info.bufferValues, values);
    for (const f of info.files) t.is(f.bytes, statSync(join(dir, f.name)).size, f.name);
    t.true(info.files.some((f) => f.name === 'model.safetensors'));
    t.is(info.config.d_latents, config.d_latents);
    t.deepEqual(info.flops, countFlops(config));
    t.true(info.flops!.fastFlops <= info.flops!.flops);
  });
}

test('info prints a readable summary', async (t) => {
  const r = await cli(['info', caseDir('image_conv')]);
  t.is(r.code, 0, r.stderr);
  for (const re of [
    /: PerceiverForImageClassificationConvProcessing\n/,
    /^ {2}model\.safetensors +\d+\.\d KiB$/m,
    /^parameters: [\d,]+ \([\d.]+ k\), plus 129 buffer values \(BatchNorm statistics\)$/m,
    /^ {2}perceiver\.encoder +[\d,]+ {2}\(50 tensors\)$/m,
    /^dtypes: F32 \(\d+ tensors, [\d,]+ values\), I64 \(1 tensors, 1 values\)$/m,
    /^ {2}image_size +56$/m,
    /^FLOPs per example at image 56x56 \(13x13 tokens\): [\d.]+ MFLOP as written, [\d.]+ MFLOP as run here$/m,
    /^ {2}encoder cross-attention +[\d.]+ MFLOP$/m,
  ])
    t.regex(r.stdout, re);
});

test('bad invocations exit 2, a folder that is not a model exits 1', async (t) => {
  for (const [args, re] of [
    [['info'], /info needs 1 positional argument, got 0/],
    [['info', caseDir('mlm'), '--bogus'], /unknown option '--bogus' \(info takes --json\)/],
  ] as [string[], RegExp][]) {
    const r = await cli(args);
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, re);
    t.regex(r.stderr, /Usage: perceiver info DIR/);
  }
  const noWeights = mkdtempSync(join(tmp, 'no-weights-'));
  copyFileSync(join(caseDir('mlm'), 'config.json'), join(noWeights, 'config.json'));
  // Folders the other commands refuse are refused here too.
  const bert = mkdtempSync(join(tmp, 'bert-'));
  writeFileSync(join(bert, 'config.json'), JSON.stringify({ ...readModelConfig(caseDir('mlm')), model_type: 'bert' }));
  copyFileSync(join(caseDir('mlm'), 'model.safetensors'), join(bert, 'model.safetensors'));
  const misfit = mkdtempSync(join(tmp, 'misfit-'));
  copyFileSync(join(caseDir('mlm'), 'config.json'), join(misfit, 'config.json'));
  copyFileSync(join(caseDir('image_conv'), 'model.safetensors'), join(misfit, 'model.safetensors'));
  for (const [args, re] of [
    [['info', join(tmp, 'nowhere')], /model folder '.*nowhere' does not exist/],
    [['info', noWeights], /model\.safetensors' is missing/],
    [['info', bert], /config\.json: model_type is "bert", not "perceiver"/],
    [['info', misfit], /model\.safetensors: the weights do not fit the config \(PerceiverForMaskedLM\): .*missing keys/],
  ] as [string[], RegExp][]) {
    const r = await cli(args);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, re);
  }
});

test('a sharded folder (model.safetensors.index.json + shards) is described as loadModel loads it', async (t) => {
  const dir = mkdtempSync(join(tmp, 'sharded-'));
  const model = await loadModel(caseDir('mlm'), { device: 'cpu' });
  await saveModel(model, dir, { maxShardBytes: 200_000 });
  const parameters = model.numParameters();
  model.dispose();
  const r = await cli(['info', dir, '--json']);
  t.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as ModelInfo;
  t.is(info.parameters, parameters);
  t.true(info.files.some((f) => f.name === 'model.safetensors.index.json'));
  t.true(info.files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f.name)).length > 1, 'several shards');
});
