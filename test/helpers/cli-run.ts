// Runs a compiled script (the `perceiver` command line, a benchmark) as a child process
// on the CPU backend, as users run them.
import { execFile, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The child's working folder (default: this process's). */
  cwd?: string;
  /** Run as this user and group (only root may): how a test sees permission errors when it runs as root. */
  uid?: number;
  gid?: number;
}

/** Runs scripts/<name> (compiled) with args; timeoutMs 0 (the default) waits as long as it takes. */
export function runScript(name: string, args: string[], timeoutMs = 0, opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const env = { ...process.env, PERCEIVER_DEVICE: 'cpu' };
    execFile(process.execPath, [join(SCRIPTS, name), ...args], { env, maxBuffer: 64 << 20, timeout: timeoutMs, ...opts }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export function cli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  return runScript('perceiver.js', args, 0, opts);
}

/** The compiled script's path, for tests that spawn it themselves (to signal it). */
export function scriptPath(name: string): string {
  return join(SCRIPTS, name);
}

let otherUser: RunOptions | null | undefined;

/**
 * Whom a permission test runs the CLI as: this process's user, or where that is root
 * (who reads and writes anything) the unprivileged uid 65534, provided it can run the
 * CLI from this checkout (not under a folder only root may enter); null if it cannot,
 * and the test, told so, has nothing to check.
 */
export function permissionTestUser(t: { log(message: string): void; pass(): void }): RunOptions | null {
  if (otherUser === undefined) {
    if (process.getuid?.() !== 0) otherUser = {};
    else {
      const nobody = { uid: 65534, gid: 65534 };
      const r = spawnSync(process.execPath, [join(SCRIPTS, 'perceiver.js'), '--help'], { ...nobody, encoding: 'utf8', timeout: 60_000 });
      otherUser = r.status === 0 ? nobody : null;
    }
  }
  if (otherUser === null) {
    t.log('skipped: running as root, and uid 65534 cannot run the CLI from this checkout');
    t.pass();
  }
  return otherUser;
}
