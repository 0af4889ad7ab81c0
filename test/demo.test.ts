// scripts/demo.ts (`npm run demo`): the flags it passes through to `perceiver train`,
// --out in both spellings, and bad flags reported in one line with exit 2. The demo's
// full training run takes minutes and is not run here.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScript } from './helpers/cli-run.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

test('--out=DIR is the output folder as --out DIR is (a second --out was added and refused as given twice)', async (t) => {
  const out = join(tmp, 'eq');
  // No step: the run stops at once with its checkpoint, and the demo exits 0 as
  // perceiver train --max-steps does (130 is for Ctrl-C).
  const r = await runScript('demo.js', [`--out=${out}`, '--max-steps', '0', '--quiet']);
  t.is(r.code, 0, r.stderr);
  t.true(existsSync(join(out, 'checkpoint', 'trainer.json')));
  t.notRegex(r.stderr, /given twice/);
});

test('without --out the demo writes under runs/ of the working folder, making runs/ where it is missing (the README command in a fresh clone)', async (t) => {
  const cwd = join(tmp, 'fresh-clone');
  mkdirSync(cwd);
  const r = await runScript('demo.js', ['--max-steps', '0', '--quiet'], 0, { cwd });
  t.is(r.code, 0, r.stderr);
  const runs = readdirSync(join(cwd, 'runs'));
  t.is(runs.length, 1);
  t.regex(runs[0], /^mnist-/);
  t.true(existsSync(join(cwd, 'runs', runs[0], 'checkpoint', 'trainer.json')));
});

test('a bad flag is one line on stderr and exit 2, as perceiver train reports it (no stack trace)', async (t) => {
  for (const [args, msg] of [
    [['--epochs', '0'], "demo: error: --epochs must be an integer >= 1, got '0'"],
    [['--bogus'], 'demo: error: unknown option '],
  ] as [string[], string][]) {
    const r = await runScript('demo.js', [...args, '--out', join(tmp, 'never')]);
    t.is(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    t.is(lines.length, 2, r.stderr);
    t.regex(lines[0], /^perceiver-io demo: training on MNIST/);
    t.true(lines[1].startsWith(msg), lines[1]);
  }
  t.deepEqual(readdirSync(tmp).filter((n) => n === 'never'), []);
});

test('--help and -h print the usage (with perceiver train\'s options) and exit 0 without training', async (t) => {
  for (const flag of ['--help', '-h']) {
    const r = await runScript('demo.js', [flag, '--out', join(tmp, 'help-never')]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^usage: demo /);
    t.regex(r.stdout, /Usage: perceiver train/);
    t.is(r.stderr, '', 'nothing started');
  }
  t.false(existsSync(join(tmp, 'help-never')));
});
