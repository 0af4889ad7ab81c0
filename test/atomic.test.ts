// lib/io/atomic.ts: where an atomic write (temporary file, rename) lands. A symbolic
// link is followed, so the file it points to is replaced and the link kept; anything
// but a regular file (a device, FIFO, socket, folder) is refused by name, since the
// rename would swap it for a plain file.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { atomicTarget, deadWritersTemps, removeDeadWritersTemps, systemReason, tempBeside } from '../lib/io/atomic.js';
import { saveSafetensors, tensor } from '../lib/index.js';
import { writeFileAtomic } from '../models/image-io.js';
import { saveModel } from '../models/save.js';
import { createModel } from '../models/registry.js';

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

/** The pid of a process that has exited (a child waited for). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

/** A temporary name for `target` as writer `pid` of this host would make it. */
function tempOf(target: string, pid: number, kind: 'tmp' | 'old' = 'tmp'): string {
  return tempBeside(target, kind).replace(new RegExp(`-${process.pid}(\\.[0-9a-f]{12}\\.${kind})$`), `-${pid}$1`);
}

test("tempBeside names the writer (host, process); deadWritersTemps finds only the leftovers of this host's exited writers", (t) => {
  const dir = mkdtempSync(join(tmp, 'temps-'));
  const target = join(dir, 'model.safetensors');
  const mine = tempBeside(target);
  t.regex(basename(mine), new RegExp(`^\\.model\\.safetensors\\.[0-9a-f]{8}-${process.pid}\\.[0-9a-f]{12}\\.tmp$`));
  t.not(tempBeside(target), mine, 'fresh each time');
  t.regex(tempBeside(target, 'old'), /\.old$/);
  const gone = deadPid();
  const dead = tempOf(target, gone);
  const deadOld = tempOf(target, gone, 'old');
  const live = tempOf(target, process.ppid); // running: the test runner's parent
  const own = tempOf(target, process.pid);
  const otherHost = join(dir, basename(dead).replace(/\.[0-9a-f]{8}-/, '.00000000-'));
  const otherFile = tempOf(join(dir, 'config.json'), gone);
  const legacy = join(dir, `.model.safetensors.${gone}.0123456789ab.tmp`);
  for (const f of [dead, live, own, otherHost, otherFile, legacy]) writeFileSync(f, 'x');
  mkdirSync(deadOld);
  t.deepEqual(deadWritersTemps(target).map((d) => [basename(d.path), d.kind]).sort(), [[basename(dead), 'tmp'], [basename(deadOld), 'old']].sort());
  removeDeadWritersTemps(target);
  const left = readdirSync(dir).sort();
  t.false(left.includes(basename(dead)), "an exited writer's temporary file is removed");
  t.deepEqual(left, [basename(deadOld), basename(live), basename(own), basename(otherHost), basename(otherFile), basename(legacy)].sort(), 'the rest is left: a moved-aside .old, live writers, other hosts, other files, unknown names');
  t.deepEqual(deadWritersTemps(join(dir, 'missing', 'x')), [], 'a missing folder has none');
});

test('saveSafetensors, writeFileAtomic and saveModel clear what killed writers of their files left', async (t) => {
  const dir = mkdtempSync(join(tmp, 'writers-'));
  const gone = deadPid();
  const files = ['w.safetensors', 'report.png', 'config.json', 'model.safetensors'];
  for (const f of files) writeFileSync(tempOf(join(dir, f), gone), 'half-written');
  t.is(readdirSync(dir).length, 4);
  const x = tensor([1, 2, 3]);
  await saveSafetensors(join(dir, 'w.safetensors'), { x });
  await writeFileAtomic(join(dir, 'report.png'), new Uint8Array([1]));
  t.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 2, 'the two others wait for their own files');
  const model = createModel({ architectures: ['PerceiverForMaskedLM'], d_model: 16, d_latents: 16, num_latents: 4, num_blocks: 1, num_self_attends_per_block: 1, num_self_attention_heads: 2, num_cross_attention_heads: 2, vocab_size: 12, max_position_embeddings: 8 });
  try {
    await saveModel(model, dir);
  } finally {
    model.dispose();
    x.dispose();
  }
  t.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temporary left');
});

// A writer in another PID namespace of this host (a container sharing the folder and the
// hostname: host networking, a set --hostname). Needs unshare(1) and the right to use it.
const canUnshare = process.platform === 'linux' && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;
(canUnshare ? test : test.skip)("removeDeadWritersTemps leaves a live writer's temporary file in another PID namespace alone (its pid means nothing here)", async (t) => {
  const dir = mkdtempSync(join(tmp, 'pidns-'));
  const target = join(dir, 'model.safetensors');
  const atomicJs = new URL('../lib/io/atomic.js', import.meta.url).href;
  // Pids from 1 up in the namespace: a few hundred short processes first, so that the
  // writer's pid is one no process of this namespace has.
  const script = `const { tempBeside } = await import(${JSON.stringify(atomicJs)}); require('node:fs').writeFileSync(tempBeside(${JSON.stringify(target)}), 'x'); console.log('ready'); setTimeout(() => {}, 20000);`;
  const { spawn } = await import('node:child_process');
  const child = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'sh', '-c', `for i in $(seq 400); do /bin/true; done; "${process.execPath}" --input-type=module -e "$0"`, script.replace(/require\('node:fs'\)/, '(await import("node:fs"))')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res, rej) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && res());
      child.on('exit', (code) => rej(new Error(`writer exited ${code}`)));
    });
    const name = readdirSync(dir)[0];
    t.regex(name, /\.tmp$/);
    t.false(new Set(readdirSync('/proc')).has(/-(\d+)\./.exec(name)![1]), 'no process of this namespace has the writer\'s pid');
    removeDeadWritersTemps(target);
    t.deepEqual(readdirSync(dir), [name]);
  } finally {
    child.kill('SIGKILL');
  }
});
