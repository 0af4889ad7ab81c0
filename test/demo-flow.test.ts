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
