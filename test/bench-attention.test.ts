// scripts/bench-attention.ts is a benchmark, not a test; this only keeps it runnable
// in its three modes (the forward against two matmuls, the gradient against the
// composed one, and with dropout), on its --quick shapes.
import test from 'ava';
import { runScript } from './helpers/cli-run.js';

const run = (args: string[]) => runScript('bench-attention.js', args, 120_000);

const number = String.raw`-?[\d.]+`;
const row = (label: string, columns: number) => new RegExp(`^${label} +B=1 Nq=\\d+ Nk=\\d+ H=\\d+ Dqk=\\d+ Dv=\\d+(?: +${number}){${columns}}$`, 'm');

for (const [name, args, title, columns] of [
  ['the forward against its two matmuls', [], /^fused attention vs its two matmuls/m, 7],
  ['the gradient against the composed one', ['--backward'], /^attention gradient: fused kernel vs composed/m, 8],
  ['the gradient with dropout, from the forward pass', ['--backward', '--dropout', '0.1'], /^attention gradient with dropout 0\.1:/m, 8],
] as const)
  test(`--quick: ${name}: a row per case, with times, ratio and memory`, async (t) => {
    t.timeout(120_000);
    const r = await run(['--quick', '--reps', '1', ...args]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, title);
    for (const label of ['image encoder cross-attention', 'latent self-attention', 'MLM decoder', 'classifier decoder \\(1 query\\)'])
      t.regex(r.stdout, row(label, columns), label);
    t.notRegex(r.stdout, /not measured/);
  });

test('unknown arguments exit 2 naming them', async (t) => {
  const r = await run(['--bogus']);
  t.is(r.code, 2);
  t.regex(r.stderr, /bench-attention: unknown argument --bogus/);
});
