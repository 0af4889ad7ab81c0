// scripts/link-flags.mjs: the linker flags binding.gyp gives the addon so that it loads
// on glibc 2.28 (native/glibc_compat.cc). What the flags achieve is checked on the
// built files by test/package.test.ts; here, that they name what the source defines.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPAT = readFileSync(join(ROOT, 'native', 'glibc_compat.cc'), 'utf8');
const mod = (await import(pathToFileURL(join(ROOT, 'scripts', 'link-flags.mjs')).href)) as {
  wrappedSymbols: (source?: string) => string[];
  linkFlags: (arch?: string) => string[];
};

test('wrappedSymbols reads the PIN lines and the REPLACE comments, nothing else', (t) => {
  const src = [
    '// Each PIN line sends calls elsewhere; PIN(x) in prose is not at a line start',
    '#define PINS(PIN) \\',
    '  PIN(dlopen, GLIBC_2.2.5) \\',
    '  PIN(pthread_setname_np, GLIBC_2.12)',
    '// REPLACE(stat)',
    'int __wrap_stat(const char*, struct stat*);',
    '//REPLACE(__libc_single_threaded): a variable',
  ].join('\n');
  t.deepEqual(mod.wrappedSymbols(src), ['dlopen', 'pthread_setname_np', 'stat', '__libc_single_threaded']);
});

test('every REPLACE has its __wrap_ definition in native/glibc_compat.cc, and every PIN a trampoline', (t) => {
  const names = mod.wrappedSymbols();
  t.true(names.length >= 50, `${names.length} names read`);
  t.is(new Set(names).size, names.length, 'no name twice (--wrap twice is harmless, but a duplicate PIN is a second trampoline: a duplicate symbol)');
  const pins = [...COMPAT.matchAll(/^\s*PIN\((\w+), (GLIBC_[\d.]+)\)/gm)];
  t.true(pins.length > 0);
  for (const [, , version] of pins) t.regex(version, /^GLIBC_2\.(\d|1\d|2[0-8])(\.\d+)?$/, 'a pin goes to a version from before 2.29');
  for (const name of names.filter((n) => !pins.some((p) => p[1] === n)))
    t.regex(COMPAT, new RegExp(`__wrap_${name}\\b[^;]*(\\(|=)`), `${name} is replaced by a definition of __wrap_${name}`);
});

test('on x86-64 glibc Linux the addon gets libstdc++ statically and a --wrap per name; elsewhere no flag', (t) => {
  const flags = mod.linkFlags();
  const glibc = process.platform === 'linux' && Boolean((process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime);
  if (process.arch !== 'x64' || !glibc) {
    t.deepEqual(flags, []);
    return;
  }
  t.true(flags.includes('-static-libstdc++'));
  t.true(flags.includes('-Wl,--exclude-libs,ALL'), 'the static libstdc++ stays hidden');
  t.deepEqual(flags.filter((f) => f.startsWith('-Wl,--wrap=')), mod.wrappedSymbols().map((s) => `-Wl,--wrap=${s}`));
  for (const lib of ['libpthread.so.0', 'libdl.so.2', 'librt.so.1']) t.true(flags.includes(`-l:${lib}`), `${lib} is named as needed`);
  t.deepEqual(mod.linkFlags('arm64'), [], 'a cross build to arm64 (node-gyp --arch=arm64) gets none: the pins are x86-64 versions');
});
