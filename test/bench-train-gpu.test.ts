// scripts/bench-train-gpu.ts runs on a GPU machine only in device-check, where a broken
// flag costs device time; its CPU dry run (--device cpu --tiny) is checked here, with
// the profile and the memory figures device-check reads.
import test from 'ava';
import { runScript } from './helpers/cli-run.js';

const run = (args: string[]) => runScript('bench-train-gpu.js', args, 240_000);

test('the CPU dry run trains the tiny model in both precisions and prints profiles, allocator peaks and one JSON line', async (t) => {
  t.timeout(240_000);
  const r = await run(['--device', 'cpu', '--tiny', '--steps', '1', '--warmup', '1', '--no-torch', '--profile', '--batch', '2']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ours: Record<string, number | string>[]; device: string; fused_projections: boolean };
  t.is(out.device, 'cpu');
  t.true(out.fused_projections);
  t.deepEqual(out.ours.map((o) => o.precision), ['float32', 'bfloat16']);
  for (const o of out.ours) {
    t.true((o.ms_per_step as number) > 0, JSON.stringify(o));
    // The allocator's peaks: what it held from the system is at least what it handed out.
    t.true((o.peak_gib as number) > 0 && (o.reserved_gib as number) >= (o.peak_gib as number), JSON.stringify(o));
    t.true((o.issue_ms as number) > 0 && (o.issue_ms as number) <= (o.ms_per_step as number), JSON.stringify(o));
  }
  for (const p of ['float32', 'bfloat16']) t.regex(r.stdout, new RegExp(`perceiver-io ${p} step profile:\\nwall [\\d.]+ ms; cpu busy`));
  t.regex(r.stdout, /\(forward\)/);
  t.regex(r.stdout, /\(backward\/attention\)/);
  // The fused projections: the attention's gradient goes back to each one product joined.
  t.regex(r.stdout, /concat \[[\d, ]+\] \(backward\/attention\)/);
  t.regex(r.stdout, /\(optimizer\)/);
});

test('--no-fuse trains with three projection products per attention, and says so', async (t) => {
  t.timeout(240_000);
  const r = await run(['--device', 'cpu', '--tiny', '--steps', '1', '--warmup', '0', '--no-torch', '--precision', 'float32', '--batch', '2', '--no-fuse', '--profile']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ours: { ms_per_step: number }[]; fused_projections: boolean };
  t.false(out.fused_projections);
  t.true(out.ours[0].ms_per_step > 0);
  // Three products per attention: no joined gradient to form.
  t.regex(r.stdout, /\(backward\/attention\)/);
  t.notRegex(r.stdout, /concat \[[\d, ]+\] \(backward\/attention\)/);
});

test('bad flags are errors naming the flag', async (t) => {
  const r = await run(['--device', 'cpu', '--tiny', '--precision', 'double']);
  t.not(r.code, 0);
  t.regex(r.stderr, /--precision must be 'float32', 'bfloat16' or 'both', got 'double'/);
});
