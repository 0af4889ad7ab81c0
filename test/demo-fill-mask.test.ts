// scripts/demo-fill-mask.ts: flags parsed as the CLI parses them, --help without running,
// and failures in one line naming the file. Its filling is fillMask's
// (test/cli-fill-mask.test.ts checks that).
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScript } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-fill-mask-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

test('--help and -h print the usage and exit 0 without building a model', async (t) => {
  for (const flag of ['--help', '-h']) {
    const r = await runScript('demo-fill-mask.js', [flag]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^usage: demo-fill-mask /);
    t.notRegex(r.stdout, /first call/);
  }
});

test('bad flags exit 2, bad files exit 1, each in one line that names the problem', async (t) => {
  writeFileSync(join(tmp, 'config.json'), '');
  for (const [args, code, message] of [
    [['--txt', 'a'], 2, /^demo-fill-mask: error: unknown option '--txt' \(demo-fill-mask takes --model, --text, --mask\)$/],
    [['--mask', 'a', '--mask', 'b'], 2, /^demo-fill-mask: error: option '--mask' is given twice$/],
    [['--model', tmp], 1, /^demo-fill-mask: error: loadModel: '.*config\.json' is not valid JSON \(Unexpected end of JSON input\)$/],
    [['--model', caseDir('image_conv')], 1, /^demo-fill-mask: error: demo-fill-mask needs a PerceiverForMaskedLM, but '.*image_conv' holds a PerceiverForImageClassificationConvProcessing$/],
    [['--mask', 'absent'], 1, /^demo-fill-mask: error: --mask "absent" does not occur in the text$/],
  ] as [string[], number, RegExp][]) {
    const r = await runScript('demo-fill-mask.js', args);
    t.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    t.is(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    t.regex(r.stderr.trimEnd(), message);
  }
});

test('a model folder runs (weights loaded as loadModel loads them)', async (t) => {
  const r = await runScript('demo-fill-mask.js', ['--model', caseDir('mlm'), '--text', 'a short text', '--mask', 'short']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^weights from .*mlm; /);
  t.regex(r.stdout, /second call: \d+ ms; filled /);
});
