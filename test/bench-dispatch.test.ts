// scripts/bench-dispatch.ts is a benchmark, not a test; this only keeps it runnable
// (its rows print, with or without the torch baseline) and its flag checked.
import test from 'ava';
import { runScript } from './helpers/cli-run.js';

const run = (args: string[]) => runScript('bench-dispatch.js', args, 120_000);

test('a short run prints every row: the three op loops in µs per op and the model forward', async (t) => {
  t.timeout(120_000);
  const r = await run(['--ops', '200']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /200 dependent adds, one read \(per op\) +[\d.]+ µs/);
  t.regex(r.stdout, /add, sum, sum \+ read of the result \(per op\) +[\d.]+ µs/);
  t.regex(r.stdout, /200 ops with autograd, forward \+ backward \(per op\) +[\d.]+ µs/);
  t.regex(r.stdout, /miniature language model forward \(\d+ ops\) +[\d.]+ ms/);
  t.regex(r.stdout, /baseline: torch|torch baseline unavailable/);
});

test('--ops must be an integer of at least 100', async (t) => {
  const r = await run(['--ops', '5']);
  t.not(r.code, 0);
  t.regex(r.stderr, /--ops must be an integer >= 100, got 5/);
});
