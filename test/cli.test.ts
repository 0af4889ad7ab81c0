// The `perceiver run` command (DESIGN.md's CLI contract) as users in other languages
// call it: a child process per run, named inputs in, named outputs out. Every HF
// fixture case must reproduce HF's outputs within the fixtures' tolerance, and bad
// invocations must fail with a non-zero status and a message that says what to fix.
import test from 'ava';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../lib/index.js';
import { caseDir, outputError } from './helpers/hf-fixture.js';
import { cli, permissionTestUser } from './helpers/cli-run.js';
import { loadModel } from '../models/load.js';
import type { PerceiverForImageClassificationLearned } from '../models/index.js';

const CASES = ['mlm', 'image_fourier', 'image_learned', 'image_conv', 'optical_flow', 'multimodal'];
const tmp = mkdtempSync(join(tmpdir(), 'perceiver-cli-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

const fixture = (c: string, file: string): string => join(caseDir(c), file);

for (const c of CASES) {
  test(`run ${c}: every output matches HF's expected.safetensors within 1e-4 * max(1, max|expected|)`, async (t) => {
    const dir = mkdtempSync(join(tmp, `${c}-`));
    const out = join(dir, 'out.safetensors');
    const r = await cli(['run', '--model', caseDir(c), '--input', fixture(c, 'input.safetensors'), '--output', out, '--device', 'cpu', '--dtype', 'float32']);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /note: ignored inputs not used for inference: loss_weights\.logits/);
    const got = await P.loadSafetensors(out);
    const header = await P.readSafetensorsHeader(fixture(c, 'expected.safetensors'));
    const names = [...header.entries.keys()].filter((k) => k === 'logits' || k.startsWith('logits.'));
    t.deepEqual(Object.keys(got).sort(), names.sort(), 'the output holds exactly the expected outputs');
    const want = await P.loadSafetensors(fixture(c, 'expected.safetensors'), { names });
    for (const k of names) {
      t.deepEqual(got[k].shape, want[k].shape, k);
      const { maxDiff, bound, summary } = outputError(await got[k].data(), await want[k].data());
      t.log(`${k}: ${summary}`);
      t.true(maxDiff <= bound, `${k}: ${summary}`);
    }
    for (const x of [...Object.values(got), ...Object.values(want)]) x.dispose();
    t.deepEqual(readdirSync(dir), ['out.safetensors'], 'no temporary file is left behind');
  });
}

test('run --dtype bfloat16: bfloat16 weights and outputs, within bfloat16 rounding of HF (models-dtype.test.ts has the bound)', async (t) => {
  const dir = mkdtempSync(join(tmp, 'bf16-'));
  const out = join(dir, 'out.safetensors');
  const r = await cli(['run', '--model', caseDir('image_conv'), '--input', fixture('image_conv', 'input.safetensors'), '--output', out, '--device', 'cpu', '--dtype', 'bfloat16']);
  t.is(r.code, 0, r.stderr);
  const got = await P.loadSafetensors(out);
  const want = await P.loadSafetensors(fixture('image_conv', 'expected.safetensors'), { names: ['logits'] });
  t.is(got.logits.dtype, 'bfloat16');
  t.deepEqual(got.logits.shape, want.logits.shape);
  const [g, w] = [await got.logits.data(), await want.logits.data()];
  const maxAbs = Math.max(1, ...Array.from(w, Math.abs));
  t.true(g.every((v, i) => Math.abs(v - w[i]) <= 3e-2 * maxAbs));
  for (const x of [...Object.values(got), ...Object.values(want)]) x.dispose();
});

test('run --interpolate-pos-encoding: the learned-position classifier on another image size, as in process; refused without it and for other models', async (t) => {
  const dir = mkdtempSync(join(tmp, 'interp-'));
  const input = join(dir, 'in.safetensors');
  const out = join(dir, 'out.safetensors');
  const pixels = P.randn([1, 3, 15, 10], { seed: 3, device: 'cpu' });  // the model below runs on the cpu
  await P.saveSafetensors(input, { pixel_values: pixels });
  const r = await cli(['run', '--model', caseDir('image_learned'), '--input', input, '--output', out, '--device', 'cpu', '--interpolate-pos-encoding']);
  t.is(r.code, 0, r.stderr);
  const got = await P.loadSafetensors(out);
  const model = await loadModel(caseDir('image_learned'), { device: 'cpu' });
  const want = (model as PerceiverForImageClassificationLearned).forward(pixels, { interpolatePosEncoding: true }).logits;
  t.deepEqual(await got.logits.data(), await want.data());
  const plain = await cli(['run', '--model', caseDir('image_learned'), '--input', input, '--output', out, '--device', 'cpu']);
  t.not(plain.code, 0);
  t.regex(plain.stderr, /inputs have 150 positions \(\[15, 10\]\) but the table has 144 as a \[12, 12\] grid \(interpolatePosEncoding: true resizes/);
  const mlm = await cli(['run', '--model', caseDir('mlm'), '--input', fixture('mlm', 'input.safetensors'), '--output', out, '--device', 'cpu', '--interpolate-pos-encoding']);
  t.not(mlm.code, 0);
  t.regex(mlm.stderr, /interpolatePosEncoding applies to the image classifiers, not to PerceiverForMaskedLM/);
  for (const x of [pixels, want, ...Object.values(got)]) x.dispose();
  model.dispose();
});

test('--help prints the usage with every option and exits 0', async (t) => {
  const top = await cli(['--help']);
  t.is(top.code, 0);
  t.regex(top.stdout, /Usage: perceiver <command>/);
  t.regex(top.stdout, /^ {2}run {2,}/m, 'the overview lists run');
  for (const args of [['help', 'run'], ['run', '--help'], ['run', '-h']]) {
    const r = await cli(args);
    t.is(r.code, 0, args.join(' '));
    for (const s of ['perceiver run', '--model', '--input', '--output', '--device', '--dtype', 'pixel_values', 'subsampled_output_points.image'])
      t.true(r.stdout.includes(s), `${args.join(' ')}: usage mentions ${s}`);
  }
});

const mlmArgs = (out: string) => ['--model', caseDir('mlm'), '--input', fixture('mlm', 'input.safetensors'), '--output', out];

test('bad invocations exit with status 2 and name the problem', async (t) => {
  const out = join(tmp, 'bad.safetensors');
  const cases: [string[], RegExp][] = [
    [[], /no command given/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['help', 'frobnicate'], /unknown command 'frobnicate'/],
    [['run'], /missing required options --model, --input, --output/],
    [['run', '--model', caseDir('mlm'), '--output', out], /missing required option --input/],
    [['run', ...mlmArgs(out), '--bogus', '1'], /unknown option '--bogus'/],
    [['run', ...mlmArgs(out), 'extra'], /unexpected argument 'extra'/],
    [['run', '--model', '--input', 'x', '--output', out], /option '--model' needs a value/],
    [['run', ...mlmArgs(out), '--model', caseDir('mlm')], /option '--model' is given twice/],
    [['run', ...mlmArgs(out), '--device', 'tpu'], /--device must be cpu, cuda or cuda:N, got 'tpu'/],
    [['run', ...mlmArgs(out), '--dtype', 'int8'], /--dtype must be float32, bfloat16 or float16, got 'int8'/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message, args.join(' '));
    const usage = args[0] === 'run' ? /Usage: perceiver run/ : /Usage: perceiver <command>/;
    t.regex(r.stderr, usage, 'the usage follows the error');
  }
});

test('missing files, a non-model folder and wrong input names exit with status 1 and a clear message', async (t) => {
  const out = join(tmp, 'bad.safetensors');
  const noWeights = mkdtempSync(join(tmp, 'no-weights-'));
  copyFileSync(fixture('mlm', 'config.json'), join(noWeights, 'config.json'));
  const badConfig = mkdtempSync(join(tmp, 'bad-config-'));
  writeFileSync(join(badConfig, 'config.json'), JSON.stringify({ architectures: ['BertForMaskedLM'] }));
  copyFileSync(fixture('mlm', 'model.safetensors'), join(badConfig, 'model.safetensors'));
  const wrongWeights = mkdtempSync(join(tmp, 'wrong-weights-'));
  copyFileSync(fixture('mlm', 'config.json'), join(wrongWeights, 'config.json'));
  copyFileSync(fixture('image_conv', 'model.safetensors'), join(wrongWeights, 'model.safetensors'));
  const input = (c: string) => fixture(c, 'input.safetensors');
  const cases: [string[], RegExp][] = [
    [['--model', join(tmp, 'nowhere'), '--input', input('mlm'), '--output', out], /model folder '.*nowhere' does not exist/],
    [['--model', caseDir('mlm'), '--input', join(tmp, 'nothing.safetensors'), '--output', out], /input file '.*nothing\.safetensors' does not exist/],
    [['--model', tmp, '--input', input('mlm'), '--output', out], /config\.json' is missing/],
    [['--model', noWeights, '--input', input('mlm'), '--output', out], /model\.safetensors' is missing/],
    [['--model', badConfig, '--input', input('mlm'), '--output', out], /architecture 'BertForMaskedLM' is not supported \(supported: PerceiverForMaskedLM/],
    [['--model', wrongWeights, '--input', input('mlm'), '--output', out], /model\.safetensors: loadStateDict \(PerceiverForMaskedLM\): .*missing keys/],
    [['--model', caseDir('mlm'), '--input', input('image_conv'), '--output', out], /unknown input 'pixel_values'; missing input 'inputs'\. It accepts: inputs, attention_mask/],
    [['--model', caseDir('multimodal'), '--input', input('optical_flow'), '--output', out], /unknown input 'inputs'; missing inputs 'inputs\.audio', .*It accepts: inputs\.audio, inputs\.image/],
    [['--model', caseDir('mlm'), '--input', fixture('mlm', 'config.json'), '--output', out], /safetensors: .*config\.json: /],
    [['--model', caseDir('image_conv'), '--input', input('image_conv'), '--output', join(tmp, 'no-such-dir', 'out.safetensors')], /output folder '.*no-such-dir' does not exist/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(['run', ...args]);
    t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /^perceiver: error: /m, args.join(' '));
    t.regex(r.stderr, message, args.join(' '));
  }
});

test('--device cuda runs on CUDA, or where CUDA is unavailable fails saying why', async (t) => {
  const out = join(tmp, 'cuda.safetensors');
  const r = await cli(['run', ...mlmArgs(out), '--device', 'cuda']);
  const cuda = P.backends().find((b) => b.name === 'cuda');
  if (cuda?.available) t.is(r.code, 0, r.stderr);
  else {
    t.is(r.code, 1);
    t.regex(r.stderr, /^perceiver: error: loadModel: device 'cuda' was requested but CUDA is unavailable: /m);
  }
});

test('both pixel_values and inputs for an image classifier are refused; inputs alone is accepted as HF does', async (t) => {
  const px = await P.loadSafetensors(fixture('image_conv', 'input.safetensors'), { names: ['pixel_values'] });
  const both = join(tmp, 'both.safetensors');
  const alias = join(tmp, 'alias.safetensors');
  await P.saveSafetensors(both, { pixel_values: px.pixel_values, inputs: px.pixel_values });
  await P.saveSafetensors(alias, { inputs: px.pixel_values });
  px.pixel_values.dispose();
  const out = join(tmp, 'alias-out.safetensors');
  const r1 = await cli(['run', '--model', caseDir('image_conv'), '--input', both, '--output', out]);
  t.is(r1.code, 1);
  t.regex(r1.stderr, /give exactly one of 'pixel_values' or 'inputs' \(both were given\)/);
  const r2 = await cli(['run', '--model', caseDir('image_conv'), '--input', alias, '--output', out]);
  t.is(r2.code, 0, r2.stderr);
  t.is(r2.stderr, '', 'nothing to note');
  const got = await P.loadSafetensors(out);
  t.deepEqual(got.logits.shape, [2, 10]);
  got.logits.dispose();
});

test('--output is checked before the model is read: a device, a folder, a path ending in /, a file used as a folder and - are refused by name', async (t) => {
  const dir = mkdtempSync(join(tmp, 'outputs-'));
  mkdirSync(join(dir, 'existing'));
  writeFileSync(join(dir, 'file'), 'x');
  // --model names no folder: an output refusal coming first shows it was checked first.
  const nowhere = join(tmp, 'no-model-here');
  const cases: [string, number, RegExp][] = [
    ['/dev/null', 1, /^perceiver: error: '\/dev\/null' is a character device, not a regular file: refusing to replace it\n$/],
    [join(dir, 'existing'), 1, /^perceiver: error: '.*existing' is a folder, not a regular file: refusing to replace it\n$/],
    [`${join(dir, 'new')}/`, 1, /^perceiver: error: '.*new\/' names a folder \(it ends with '\/'\): give a file path\n$/],
    [join(dir, 'file', 'x'), 1, /^perceiver: error: cannot write '.*file\/x': '.*file' is not a folder\n$/],
    ['-', 2, /^perceiver: error: --output -: writing to stdout is not supported; give a file path\n/],
  ];
  for (const [out, code, message] of cases) {
    const r = await cli(['run', '--model', nowhere, '--input', fixture('mlm', 'input.safetensors'), '--output', out]);
    t.is(r.code, code, `${out}: ${r.stderr}`);
    t.regex(r.stderr, message, out);
  }
  t.true(statSync('/dev/null').isCharacterDevice(), 'the device is still a device');
  t.deepEqual(readdirSync(dir).sort(), ['existing', 'file']);
  t.false(existsSync('-'));
  // A folder the user may not write into, seen as another user when the tests run as root.
  const ro = join(dir, 'ro');
  mkdirSync(ro, { mode: 0o555 });
  chmodSync(tmp, 0o755);
  chmodSync(dir, 0o755);
  const asUser = permissionTestUser(t);
  if (asUser === null) return;
  const r = await cli(['run', '--model', nowhere, '--input', fixture('mlm', 'input.safetensors'), '--output', join(ro, 'x.safetensors')], asUser);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /^perceiver: error: cannot write '.*x\.safetensors': folder '.*ro': permission denied\n$/);
});

test('--output through a symbolic link writes the file it points to and keeps the link', async (t) => {
  const dir = mkdtempSync(join(tmp, 'link-'));
  writeFileSync(join(dir, 'target.safetensors'), 'old');
  symlinkSync('target.safetensors', join(dir, 'out.safetensors'));
  const r = await cli(['run', ...mlmArgs(join(dir, 'out.safetensors'))]);
  t.is(r.code, 0, r.stderr);
  t.true(lstatSync(join(dir, 'out.safetensors')).isSymbolicLink());
  const got = await P.loadSafetensors(join(dir, 'target.safetensors'), { device: 'cpu' });
  t.deepEqual(Object.keys(got), ['logits']);
  got.logits.dispose();
  t.deepEqual(readdirSync(dir).sort(), ['out.safetensors', 'target.safetensors']);
});

test("an input the forward pass rejects (an id out of the vocabulary) is reported as the model's error, not as a failed write", async (t) => {
  const dir = mkdtempSync(join(tmp, 'oob-'));
  const ids = P.tensor(Int32Array.from([1000, 1, 2, 3]), [1, 4], { device: 'cpu' });
  await P.saveSafetensors(join(dir, 'in.safetensors'), { inputs: ids });
  ids.dispose();
  const r = await cli(['run', '--model', caseDir('mlm'), '--input', join(dir, 'in.safetensors'), '--output', join(dir, 'out.safetensors')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^perceiver: error: embedding: index 1000 at position 0 is out of range \[0, 262\)/);
  t.notRegex(r.stderr, /write failed|safetensors:/);
  t.deepEqual(readdirSync(dir), ['in.safetensors'], 'no output, no temporary file');
});
