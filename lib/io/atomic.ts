// Where an atomic write (a temporary file in the same folder, then a rename) may put
// its result. A rename replaces whatever directory entry it lands on: a symbolic link
// would become a plain file and the file it pointed to would keep the old bytes, and a
// device, FIFO or socket would be swapped for a file. So a link is followed (the file
// it points to is replaced, the link kept), and anything but a regular file is refused.
import { accessSync, constants, lstatSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';

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
