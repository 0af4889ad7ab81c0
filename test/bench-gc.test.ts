// scripts/bench-gc.ts is a benchmark, not a test; this only keeps it runnable (a few
// steps of a small batch, each way in its own process, reported with the ratios).
import test from 'ava';
import { runScript } from './helpers/cli-run.js';

const run = (args: string[]) => runScript('bench-gc.js', args, 120_000);

test('--steps 2 --batch 4: the three ways run in their own processes and are reported against tidy', async (t) => {
  t.timeout(120_000);
  const r = await run(['--steps', '2', '--batch', '4']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^mnist preset, batch 4, 2 steps after 3 warm-up ones, cpu/m);
  for (const way of ['tidy', 'dropped', 'graphs'])
    t.regex(r.stdout, new RegExp(`^ {2}${way} +[\\d.]+ ms/step {2}peak live +\\d+ MiB \\([\\d.]+x tidy\\) {2}peak RSS +\\d+ MiB \\([\\d.]+x tidy\\)$`, 'm'));
  t.regex(r.stdout, /^ {2}tidy .*\(1\.00x tidy\).*\(1\.00x tidy\)$/m);
});

test('bad arguments exit 2 naming them', async (t) => {
  const a = await run(['--bogus']);
  t.is(a.code, 2);
  t.regex(a.stderr, /bench-gc: unknown argument --bogus/);
  const b = await run(['--steps', '0']);
  t.is(b.code, 2);
  t.regex(b.stderr, /bench-gc: --steps needs a positive integer, got 0/);
  const c = await run(['--child', 'other']);
  t.is(c.code, 2);
  t.regex(c.stderr, /bench-gc: --child must be one of tidy, dropped, graphs, got other/);
});
