// Preloaded into a child process (node --import) by tests that interrupt a command in
// the middle of writing: the first fs/promises writeFile of a path ending in
// $PERCEIVER_STALL_WRITE never finishes, and 'stalled' is printed on stderr so the test
// knows when to send its signal.
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const fsp = require('node:fs/promises') as typeof import('node:fs/promises');
const suffix = process.env.PERCEIVER_STALL_WRITE;
if (suffix) {
  const writeFile = fsp.writeFile;
  let stalled = false;
  fsp.writeFile = ((path: unknown, ...rest: unknown[]) => {
    if (!stalled && String(path).endsWith(suffix)) {
      stalled = true;
      process.stderr.write('stalled\n');
      // Held open by the timer: a promise alone would let the process exit.
      return new Promise(() => setInterval(() => undefined, 1000));
    }
    return (writeFile as (...a: unknown[]) => Promise<void>)(path, ...rest);
  }) as typeof fsp.writeFile;
  syncBuiltinESMExports();
}
