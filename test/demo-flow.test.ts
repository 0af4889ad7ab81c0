// scripts/demo-flow.ts: its output files are written whole or not at all (a temporary
// name, then a rename). What it computes is checked in test/flow-tiling.test.ts.
import test from 'ava';
import { linkSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScript } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

test('the PNG and .flo replace the old files by rename, never rewriting them in place', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-flow-'));
  try {
    // Outputs hard-linked to other files: written in place, those would change too (as
    // a reader of the old file would see it half-written).
    for (const ext of ['png', 'flo']) {
      writeFileSync(join(tmp, `keep.${ext}`), 'old');
      linkSync(join(tmp, `keep.${ext}`), join(tmp, `flow.${ext}`));
    }
    const r = await runScript('demo-flow.js', ['--model', caseDir('optical_flow'), '--size', '12x16', '--out', join(tmp, 'flow'), '--flo']);
    t.is(r.code, 0, r.stderr);
    for (const ext of ['png', 'flo']) t.is(readFileSync(join(tmp, `keep.${ext}`), 'utf8'), 'old', ext);
    t.deepEqual([...readFileSync(join(tmp, 'flow.png')).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    t.is(readFileSync(join(tmp, 'flow.flo')).length, 12 + 12 * 16 * 2 * 4);
    t.deepEqual(readdirSync(tmp).sort(), ['flow.flo', 'flow.png', 'keep.flo', 'keep.png'], 'no temporary file left');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('many windows (a small-window model over larger frames) are listed by their first and last origins, not all', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-flow-'));
  try {
    // The fixture's window is 12x16: a 40x64 frame pair needs 36 windows at overlap 6.
    const r = await runScript('demo-flow.js', ['--model', caseDir('optical_flow'), '--size', '40x64', '--out', join(tmp, 'flow')]);
    t.is(r.code, 0, r.stderr);
    const line = r.stdout.split('\n').find((l) => / window\(s\) at /.test(l));
    t.truthy(line, r.stdout);
    const [, count] = /^(\d+) window\(s\) at /.exec(line!)!;
    t.true(Number(count) > 8, line);
    t.is((line!.match(/\(\d+,\d+\)/g) ?? []).length, 6, `four first and two last origins: ${line}`);
    t.regex(line!, /^\d+ window\(s\) at \(0,0\) \(0,\d+\) \(0,\d+\) \(0,\d+\) \.\.\. \(\d+,\d+\) \(28,48\), overlap >= \d+$/);
    // Few windows are all listed.
    const few = await runScript('demo-flow.js', ['--model', caseDir('optical_flow'), '--size', '12x16', '--out', join(tmp, 'one')]);
    t.is(few.code, 0, few.stderr);
    t.regex(few.stdout, /^1 window\(s\) at \(0,0\), overlap >= \d+$/m);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('--help prints the usage and exits 0; unknown, repeated and valueless flags and a folder as --out are one line and exit 2, before any work', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-flow-'));
  try {
    const help = await runScript('demo-flow.js', ['--help']);
    t.is(help.code, 0, help.stderr);
    t.regex(help.stdout, /^usage: demo-flow /);
    for (const [args, message] of [
      [['--modle', caseDir('optical_flow')], /^demo-flow: error: unknown option '--modle' \(demo-flow takes --model, /],
      [['--out', join(tmp, 'a'), '--out', join(tmp, 'b')], /^demo-flow: error: option '--out' is given twice$/],
      [['--model'], /^demo-flow: error: option '--model' needs a value$/],
      // PREFIX.png in a folder 'dfo/' would be the hidden file 'dfo/.png'.
      [['--out', `${tmp}/`], /^demo-flow: error: --out is a file name prefix \(PREFIX\.png is written\), not a folder: got '.*\/'$/],
      [['--out', tmp], /^demo-flow: error: --out is a file name prefix/],
      [['--overlap', 'x', '--out', join(tmp, 'o')], /^demo-flow: error: --overlap must be a non-negative integer, got 'x'$/],
    ] as [string[], RegExp][]) {
      const r = await runScript('demo-flow.js', args);
      t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      t.is(r.stdout, '', 'nothing ran');
      t.is(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      t.regex(r.stderr.trimEnd(), message);
    }
    t.deepEqual(readdirSync(tmp), [], 'nothing written');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
