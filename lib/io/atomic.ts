// Where an atomic write (a temporary file in the same folder, then a rename) may put
// its result. A rename replaces whatever directory entry it lands on: a symbolic link
// would become a plain file and the file it pointed to would keep the old bytes, and a
// device, FIFO or socket would be swapped for a file. So a link is followed (the file
// it points to is replaced, the link kept), and anything but a regular file is refused.
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, constants, lstatSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, type Stats } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';

const MAX_LINKS = 40; // Linux's own limit (ELOOP)

function kind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** A system error as users read it: 'permission denied', 'read-only file system', else the message. */
export function systemReason(err: unknown): string {
  switch (errnoOf(err)) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

export interface AtomicTargetOptions {
  /** Also check that the folder can take new files (for checks made before the work starts). */
  writable?: boolean;
}

/**
 * The path an atomic write of `path` must create its temporary file next to and rename
 * onto: `path` itself, or for a symbolic link (a chain of them) the file it finally
 * points to, which need not exist yet. Throws an Error naming `path` when that target
 * exists and is not a regular file (a folder, device, FIFO, socket), when `path` ends
 * with a separator, or when the target's folder is missing or not a folder (and, with
 * `writable`, when it cannot be written).
 */
export function atomicTarget(path: string, opts: AtomicTargetOptions = {}): string {
  if (typeof path !== 'string' || path === '') throw new TypeError(`argument 'path' must be a file path, got ${JSON.stringify(path)}`);
  if (path.endsWith('/') || (process.platform === 'win32' && path.endsWith('\\')))
    throw new Error(`'${path}' names a folder (it ends with '${path.at(-1)}'): give a file path`);
  let target = path;
  for (let links = 0; ; links++) {
    let st: Stats;
    try {
      st = lstatSync(target);
    } catch (err) {
      // ENOENT: a new file. ENOTDIR: its folder is a file, which the check below words.
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') break;
      throw new Error(`cannot write '${path}': ${systemReason(err)}`);
    }
    if (!st.isSymbolicLink()) {
      if (!st.isFile()) throw new Error(`'${path}'${target === path ? '' : ` (a link to '${target}')`} is ${kind(st)}, not a regular file: refusing to replace it`);
      break;
    }
    if (links >= MAX_LINKS) throw new Error(`cannot write '${path}': too many levels of symbolic links`);
    target = resolve(dirname(target), readlinkSync(target));
  }
  const dir = dirname(target);
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') throw new Error(`output folder '${dir}' does not exist`);
    if (errnoOf(err) !== 'ENOTDIR') throw new Error(`cannot write '${path}': ${systemReason(err)}`);
    throw new Error(`cannot write '${path}': a part of '${dir}' is not a folder`);
  }
  if (!st.isDirectory()) throw new Error(`cannot write '${path}': '${dir}' is not a folder`);
  if (opts.writable) {
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new Error(`cannot write '${path}': folder '${dir}': ${systemReason(err)}`);
    }
  }
  return target;
}

// A temporary name says which writer made it (this host, this process), so that a later
// write can remove what a killed writer (SIGKILL, the OOM killer) left, without touching
// a live writer's file, in this process, another one, or on another host sharing the folder.
// A pid means something only in its PID namespace on its boot: containers sharing a
// folder often share the hostname too (host networking, a set --hostname) while each
// has its own pids, and cloned machines share names. So the tag covers the boot and
// the PID namespace as well (Linux; elsewhere the hostname alone).
const HOST_TAG = createHash('sha256').update(writerDomain()).digest('hex').slice(0, 8);

function writerDomain(): string {
  const parts = [hostname()];
  try {
    parts.push(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  } catch {
    // not Linux
  }
  try {
    parts.push(readlinkSync('/proc/self/ns/pid'));
  } catch {
    // not Linux
  }
  return parts.join('\0');
}

export type TempKind = 'tmp' | 'old';

/** A fresh temporary name beside `target`: `.NAME.HOST-PID.RANDOM.tmp` (or `.old`, for what a swap moves aside). */
export function tempBeside(target: string, kind: TempKind = 'tmp'): string {
  return join(dirname(target), `.${basename(target)}.${HOST_TAG}-${process.pid}.${randomBytes(6).toString('hex')}.${kind}`);
}

function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoOf(err) !== 'ESRCH'; // EPERM: running, as another user
  }
}

/** The temporaries of `target` (tempBeside's names) whose writer, a process of this host, is no longer running. */
export function deadWritersTemps(target: string): { path: string; kind: TempKind }[] {
  const prefix = `.${basename(target)}.${HOST_TAG}-`;
  let names: string[];
  try {
    names = readdirSync(dirname(target));
  } catch {
    return [];
  }
  const found: { path: string; kind: TempKind }[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.[0-9a-f]{12}\.(tmp|old)$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !processRunning(pid)) found.push({ path: join(dirname(target), name), kind: m[2] as TempKind });
  }
  return found;
}

/**
 * Removes the temporary files (or folders) that killed writers of `target` left beside
 * it. Best effort: what cannot be removed stays, and the write goes on.
 */
export function removeDeadWritersTemps(target: string): void {
  for (const { path, kind } of deadWritersTemps(target)) {
    if (kind !== 'tmp') continue; // an .old holds what a swap moved aside: its owner decides
    try {
      rmSync(path, { recursive: true, force: true });
    } catch {
      // someone else's to clear
    }
  }
}
