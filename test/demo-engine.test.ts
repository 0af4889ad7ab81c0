// scripts/demo-engine.ts: --help prints the usage without running the (seconds-long)
// encoder step; it takes no options, and refuses any in one line.
import test from 'ava';
import { runScript } from './helpers/cli-run.js';

test('--help and -h print the usage and exit 0 without running; any other argument is refused in one line, exit 2', async (t) => {
  for (const flag of ['--help', '-h']) {
    const r = await runScript('demo-engine.js', [flag]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /^usage: demo-engine\n/);
    t.notRegex(r.stdout, /engine demo/);
  }
  for (const [args, message] of [
    [['--bogus'], /^demo-engine: error: unknown option '--bogus' \(demo-engine takes no options\)$/],
    [['extra'], /^demo-engine: error: unexpected argument 'extra' \(demo-engine takes 0 positional arguments\)$/],
  ] as [string[], RegExp][]) {
    const r = await runScript('demo-engine.js', args);
    t.is(r.code, 2, r.stderr);
    t.is(r.stdout, '');
    t.regex(r.stderr.trimEnd(), message);
  }
});
