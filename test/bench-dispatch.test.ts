// scripts/bench-dispatch.ts is a benchmark, not a test; this only keeps it runnable
// (its rows print, with or without the torch baseline) and its flag checked.
import test from 'ava';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'bench-dispatch.js');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, ...args], { env: { ...process.env, PERCEIVER_DEVICE: 'cpu' }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

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
