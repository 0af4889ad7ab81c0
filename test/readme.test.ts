// README.md's API tour is run as written (its import pointed at this build), so the
// first code a reader copies keeps working as the API changes.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = join(here, '..', '..');
const LIB_URL = pathToFileURL(join(here, '..', 'lib', 'index.js')).href;

test("README's API tour runs as written and prints what it says", (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const tour = /## API tour\s+```ts\n([\s\S]*?)```/.exec(readme);
  t.truthy(tour, 'README.md has an API tour in a ts block');
  const code = tour![1].replace(/from 'perceiver-io'/g, `from ${JSON.stringify(LIB_URL)}`);
  t.true(code.includes(LIB_URL), "the tour imports from 'perceiver-io'");
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, PERCEIVER_DEVICE: process.env.PERCEIVER_TEST_DEVICE || 'cpu' },
  });
  t.is(r.status, 0, r.stderr);
  // z.shape, then its first values; then memory().cpu's counters.
  t.regex(r.stdout, /^\[ 2, 512, 1, 256 \] Float32Array\(4\) \[/);
  t.regex(r.stdout, /tensors: \d+,/);
});
