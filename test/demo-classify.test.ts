// scripts/demo-classify.ts: flags parsed as the CLI parses them, --help without running,
// and failures in one line naming the file. Its classification is the library's
// (test/cli-classify.test.ts checks that).
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScript } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-classify-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

test('--help and -h print the usage and exit 0 without building a model', async (t) => {
  for (const flag of ['--help', '-h']) {
    const r = await runScript('demo-classify.js', [flag]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^usage: demo-classify \[--model DIR\] \[--input X\.safetensors\]/);
    t.notRegex(r.stdout, /first call/);
  }
});

test('bad flags exit 2, bad files exit 1, each in one line that names the problem', async (t) => {
  writeFileSync(join(tmp, 'config.json'), '');
  for (const [args, code, message] of [
    [['--modle', caseDir('image_conv')], 2, /^demo-classify: error: unknown option '--modle' \(demo-classify takes --model, --input\)$/],
    [['--model', caseDir('image_conv'), '--model', caseDir('image_conv')], 2, /^demo-classify: error: option '--model' is given twice$/],
    [['--model', tmp], 1, /^demo-classify: error: loadModel: '.*config\.json' is not valid JSON \(Unexpected end of JSON input\)$/],
    [['--model', caseDir('mlm')], 1, /^demo-classify: error: demo-classify needs an image classifier, got PerceiverForMaskedLM in '.*mlm'$/],
    [['--input', join(tmp, 'none.safetensors')], 1, /^demo-classify: error: --input '.*none\.safetensors' does not exist$/],
  ] as [string[], number, RegExp][]) {
    const r = await runScript('demo-classify.js', args);
    t.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    t.is(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    t.regex(r.stderr.trimEnd(), message);
  }
});

test('a model folder runs (weights loaded as loadModel loads them)', async (t) => {
  const r = await runScript('demo-classify.js', ['--model', caseDir('image_conv')]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^PerceiverForImageClassificationConvProcessing: weights from /);
  t.regex(r.stdout, /second call: \d+ ms/);
});
