// Runs a PyTorch baseline script with the first interpreter that has torch
// (PERCEIVER_PYTHON, python3 on PATH, Debian's /usr/bin/python3) and parses the
// JSON object its last line prints.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TorchRun<T> {
  /** The script's JSON result; null when no interpreter could run it. */
  result: T | null;
  /** Which interpreter ran it, or why none could. */
  info: string;
}

export function runTorchBaseline<T>(script: string, args: string[]): TorchRun<T> {
  const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', script);
  let info = '';
  for (const python of [process.env.PERCEIVER_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p)) {
    try {
      const out = execFileSync(python, [path, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { result: JSON.parse(out.trim().split('\n').at(-1)!) as T, info: python };
    } catch (err) {
      info = `torch baseline unavailable (${err instanceof Error ? err.message.split('\n')[0] : String(err)}; apt-get install python3-torch)`;
    }
  }
  return { result: null, info };
}
