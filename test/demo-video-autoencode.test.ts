// scripts/demo-video-autoencode.ts: its PNG is written whole or not at all (a temporary
// name, then a rename). The chunked decoding is checked in
// test/models-multimodal-chunked.test.ts.
import test from 'ava';
import { linkSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScript } from './helpers/cli-run.js';
import { caseDir } from './helpers/hf-fixture.js';

test('the PNG replaces an old file by rename, never rewriting it in place', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-video-'));
  try {
    // An output hard-linked to another file: written in place, that one would change too.
    writeFileSync(join(tmp, 'keep.png'), 'old');
    linkSync(join(tmp, 'keep.png'), join(tmp, 'video.png'));
    const r = await runScript('demo-video-autoencode.js', ['--model', caseDir('multimodal'), '--chunks', '2', '--out', join(tmp, 'video')]);
    t.is(r.code, 0, r.stderr);
    t.is(readFileSync(join(tmp, 'keep.png'), 'utf8'), 'old');
    t.deepEqual([...readFileSync(join(tmp, 'video.png')).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    t.deepEqual(readdirSync(tmp).sort(), ['keep.png', 'video.png'], 'no temporary file left');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('--help prints the usage and exits 0; bad flags and a folder as --out are one line and exit 2', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'perceiver-demo-video-'));
  try {
    const help = await runScript('demo-video-autoencode.js', ['-h']);
    t.is(help.code, 0, help.stderr);
    t.regex(help.stdout, /^usage: demo-video-autoencode /);
    for (const [args, message] of [
      [['--chunkz', '2'], /^demo-video-autoencode: error: unknown option '--chunkz'/],
      [['--chunks', '0'], /^demo-video-autoencode: error: --chunks must be a positive integer, got '0'$/],
      [['--reencode', '--reencode'], /^demo-video-autoencode: error: option '--reencode' is given twice$/],
      [['--out', `${tmp}/`], /^demo-video-autoencode: error: --out is a file name prefix/],
    ] as [string[], RegExp][]) {
      const r = await runScript('demo-video-autoencode.js', args);
      t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      t.is(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      t.regex(r.stderr.trimEnd(), message);
    }
    t.deepEqual(readdirSync(tmp), []);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
