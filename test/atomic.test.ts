// lib/io/atomic.ts: where an atomic write (temporary file, rename) lands. A symbolic
// link is followed, so the file it points to is replaced and the link kept; anything
// but a regular file (a device, FIFO, socket, folder) is refused by name, since the
// rename would swap it for a plain file.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atomicTarget, systemReason } from '../lib/io/atomic.js';

const tmp = mkdtempSync(join(tmpdir(), 'perceiver-atomic-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));

test('a plain path is its own target, existing or new; a link (or a chain, or one to a file not yet there) resolves to the file it names', (t) => {
  const dir = mkdtempSync(join(tmp, 'links-'));
  writeFileSync(join(dir, 'real'), 'x');
  t.is(atomicTarget(join(dir, 'real')), join(dir, 'real'));
  t.is(atomicTarget(join(dir, 'new')), join(dir, 'new'));
  symlinkSync('real', join(dir, 'link'));
  symlinkSync(join(dir, 'link'), join(dir, 'link2'));
  t.is(atomicTarget(join(dir, 'link')), join(dir, 'real'), 'relative to the link, not to the working folder');
  t.is(atomicTarget(join(dir, 'link2')), join(dir, 'real'));
  mkdirSync(join(dir, 'sub'));
  symlinkSync(join('sub', 'later'), join(dir, 'dangling'));
  t.is(atomicTarget(join(dir, 'dangling')), join(dir, 'sub', 'later'));
  symlinkSync('loop', join(dir, 'loop'));
  t.throws(() => atomicTarget(join(dir, 'loop')), { message: /too many levels of symbolic links/ });
});

test('a device, a FIFO, a folder, a link to one of them, a path ending in a separator are refused, naming the path', (t) => {
  const dir = mkdtempSync(join(tmp, 'kinds-'));
  t.throws(() => atomicTarget('/dev/null'), { message: "'/dev/null' is a character device, not a regular file: refusing to replace it" });
  symlinkSync('/dev/null', join(dir, 'null'));
  t.throws(() => atomicTarget(join(dir, 'null')), { message: /'.*null' \(a link to '\/dev\/null'\) is a character device, not a regular file/ });
  mkdirSync(join(dir, 'd'));
  t.throws(() => atomicTarget(join(dir, 'd')), { message: /'.*d' is a folder, not a regular file: refusing to replace it/ });
  t.throws(() => atomicTarget(`${join(dir, 'e')}/`), { message: /'.*e\/' names a folder \(it ends with '\/'\): give a file path/ });
  try {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    t.throws(() => atomicTarget(join(dir, 'fifo')), { message: /'.*fifo' is a FIFO \(named pipe\), not a regular file/ });
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
    t.log('no mkfifo here: the FIFO case is not checked');
  }
});

test('a missing folder, a file in place of a folder and (with writable) a read-only folder are named', (t) => {
  const dir = mkdtempSync(join(tmp, 'folders-'));
  writeFileSync(join(dir, 'file'), 'x');
  t.throws(() => atomicTarget(join(dir, 'none', 'x')), { message: /^output folder '.*none' does not exist$/ });
  t.throws(() => atomicTarget(join(dir, 'file', 'x')), { message: /^cannot write '.*file\/x': '.*file' is not a folder$/ });
  t.throws(() => atomicTarget(join(dir, 'file', 'deeper', 'x')), { message: /^cannot write '.*x': a part of '.*deeper' is not a folder$/ });
  mkdirSync(join(dir, 'ro'), { mode: 0o555 });
  t.is(atomicTarget(join(dir, 'ro', 'x')), join(dir, 'ro', 'x'), 'without writable, only the kinds are checked');
  if (process.getuid?.() === 0) t.log('root writes into read-only folders: the writable case is checked by the CLI tests as another user');
  else t.throws(() => atomicTarget(join(dir, 'ro', 'x'), { writable: true }), { message: /^cannot write '.*x': folder '.*ro': permission denied$/ });
  t.throws(() => atomicTarget(''), { instanceOf: TypeError });
});

test('systemReason words permission and read-only errors for users', (t) => {
  const err = (code: string) => Object.assign(new Error(`${code}: raw`), { code });
  t.is(systemReason(err('EACCES')), 'permission denied');
  t.is(systemReason(err('EPERM')), 'permission denied');
  t.is(systemReason(err('EROFS')), 'read-only file system');
  t.is(systemReason(err('EIO')), 'EIO: raw');
});
