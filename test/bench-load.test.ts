// scripts/bench-load.ts is a benchmark, not a test; this only keeps it runnable (its
// --tiny config: folders written, each load in a child process, the two ways reported).
import test from 'ava';
import { runScript } from './helpers/cli-run.js';

const run = (args: string[]) => runScript('bench-load.js', args, 120_000);

test('--tiny: both ways load in fresh processes and are reported with times, memory and ratios', async (t) => {
  t.timeout(120_000);
  const r = await run(['--tiny', '--runs', '1']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^tiny language model, [\d.]+M parameters/m);
  t.regex(r.stdout, /^ {2}loadModel \(no initial draws\) +\d+ ms +resident +\d+ MiB/m);
  t.regex(r.stdout, /^ {2}construct with draws, then load +\d+ ms +resident +\d+ MiB/m);
  t.regex(r.stdout, /^ {2}speed-up [\d.]+x, memory [\d.]+x$/m);
});

test('bad arguments exit 2 naming them', async (t) => {
  const a = await run(['--bogus']);
  t.is(a.code, 2);
  t.regex(a.stderr, /bench-load: unknown argument --bogus/);
  const b = await run(['--runs', '0']);
  t.is(b.code, 2);
  t.regex(b.stderr, /bench-load: --runs needs a positive integer, got 0/);
});
