// scripts/link-flags.mjs: the linker flags binding.gyp gives the addon so that it loads
// on glibc 2.28 (native/glibc_compat.cc). What the flags achieve is checked on the
// built files by test/package.test.ts; here, that they name what the source defines.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPAT = readFileSync(join(ROOT, 'native', 'glibc_compat.cc'), 'utf8');
const mod = (await import(pathToFileURL(join(ROOT, 'scripts', 'link-flags.mjs')).href)) as {
  wrappedSymbols: (source?: string) => string[];
  linkFlags: (arch?: string) => string[];
  hasStaticLibstdcxx: (cxx?: string) => boolean;
  compilerTarget: (cxx?: string) => string | null;
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

test('on x86-64 and arm64 glibc Linux the addon gets libstdc++ statically and a --wrap per name; elsewhere no flag', (t) => {
  const flags = mod.linkFlags();
  const glibc = process.platform === 'linux' && Boolean((process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime);
  if ((process.arch !== 'x64' && process.arch !== 'arm64') || !glibc) {
    t.deepEqual(flags, []);
    return;
  }
  t.true(flags.includes('-static-libstdc++'));
  t.true(flags.includes('-Wl,--exclude-libs,ALL'), 'the static libstdc++ stays hidden');
  t.deepEqual(flags.filter((f) => f.startsWith('-Wl,--wrap=')), mod.wrappedSymbols().map((s) => `-Wl,--wrap=${s}`));
  for (const lib of ['libpthread.so.0', 'libdl.so.2', 'librt.so.1']) t.true(flags.includes(`-l:${lib}`), `${lib} is named as needed`);
  // A cross build to arm64 (node-gyp --arch=arm64) gets them only from a compiler that
  // makes arm64 glibc code: glibc_compat.cc then pins the arm64 versions.
  const withCxx = (cxx: string) => {
    const saved = process.env.CXX;
    process.env.CXX = cxx;
    try {
      return mod.linkFlags('arm64');
    } finally {
      if (saved === undefined) delete process.env.CXX;
      else process.env.CXX = saved;
    }
  };
  if (process.arch === 'x64') {
    t.deepEqual(withCxx('g++'), [], 'arm64 with this machine\'s x86-64 compiler: none');
    t.deepEqual(withCxx('/nonexistent/g++'), [], 'arm64 with a compiler that cannot be asked: none');
    if (mod.compilerTarget('aarch64-linux-gnu-g++') === 'aarch64-linux-gnu')
      t.deepEqual(withCxx('aarch64-linux-gnu-g++').filter((f) => f.startsWith('-Wl,--wrap=')), mod.wrappedSymbols().map((s) => `-Wl,--wrap=${s}`), 'arm64 with aarch64-linux-gnu-g++: the same wraps');
  }
  t.deepEqual(mod.linkFlags('ia32'), [], 'another architecture: none');
  // A compiler without libstdc++.a (Fedora/RHEL without libstdc++-static), or none at
  // all, keeps libstdc++ shared rather than failing the link.
  t.false(mod.hasStaticLibstdcxx('/nonexistent/g++'));
  t.false(mod.hasStaticLibstdcxx('true'), 'a compiler that names no file');
});

// The addon and perceiver_cuda.so each carry a hidden copy of libstdc++, yet the CUDA
// library's errors are C++ exceptions thrown through Backend's virtual calls and caught
// (by type, by base, through exception_ptr) in the addon. That works because both
// copies match types by name and share the exception header layout. Built here as two
// small libraries linked the same way, so a toolchain where it stopped working fails
// here, not on a GPU machine's first CUDA error. (Each copy keeps its own count of
// uncaught exceptions, which drifts; nothing of ours reads it: no iostreams.)
test('an exception thrown in one library with a hidden static libstdc++ is caught in another with its own', (t) => {
  const flags = mod.linkFlags();
  if (!flags.includes('-static-libstdc++')) {
    t.pass('no static libstdc++ on this platform: one shared copy, nothing to check');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'pio-eh-'));
  try {
    writeFileSync(join(dir, 'err.h'), `#include <stdexcept>
struct DeviceError : std::runtime_error { using std::runtime_error::runtime_error; int code = 7; };
struct Backend { virtual ~Backend() = default; virtual void synchronize() = 0; virtual void* allocate(unsigned long long n) = 0; };
`);
    writeFileSync(join(dir, 'thrower.cc'), `#include "err.h"
#include <new>
struct Gpu : Backend {
  void synchronize() override { throw DeviceError("device fault"); }
  void* allocate(unsigned long long n) override { if (n > (1ull << 50)) throw std::bad_alloc(); return ::operator new(n); }
};
extern "C" __attribute__((visibility("default"))) Backend* make_backend() { return new Gpu(); }
`);
    writeFileSync(join(dir, 'catcher.cc'), `#include "err.h"
#include <dlfcn.h>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <thread>
extern "C" __attribute__((visibility("default"))) int run(const char* lib) {
  void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) { std::printf("dlopen: %s\\n", dlerror()); return 1; }
  Backend* b = reinterpret_cast<Backend* (*)()>(dlsym(h, "make_backend"))();
  int ok = 0;
  try { b->synchronize(); } catch (const DeviceError& e) { ok += e.code == 7 && std::string(e.what()) == "device fault"; }
  try { b->synchronize(); } catch (const std::exception& e) { ok += std::string(e.what()) == "device fault"; }
  std::exception_ptr first;
  try { b->synchronize(); } catch (...) { first = std::current_exception(); }
  std::exception_ptr copy = first;
  try { std::rethrow_exception(copy); } catch (const std::runtime_error& e) { ok += std::string(e.what()) == "device fault"; }
  try { b->allocate(1ull << 51); } catch (const std::bad_alloc&) { ok += 1; }
  try { try { b->synchronize(); } catch (...) { throw; } } catch (const DeviceError&) { ok += 1; }
  std::thread th([&] { try { b->synchronize(); } catch (const DeviceError&) { ok += 1; } });
  th.join();
  delete b;
  std::printf("caught %d of 6\\n", ok);
  return ok == 6 ? 0 : 2;
}
`);
    writeFileSync(join(dir, 'main.cc'), `#include <dlfcn.h>
#include <cstdio>
int main(int, char** argv) {
  void* h = dlopen(argv[1], RTLD_NOW);
  if (!h) { std::printf("%s\\n", dlerror()); return 1; }
  return reinterpret_cast<int (*)(const char*)>(dlsym(h, "run"))(argv[2]);
}
`);
    const shared = ['-std=c++17', '-O1', '-fPIC', '-shared', '-fvisibility=hidden', '-static-libstdc++', '-Wl,--exclude-libs,ALL'];
    execFileSync('g++', [...shared, 'thrower.cc', '-o', 'libthrower.so'], { cwd: dir });
    execFileSync('g++', [...shared, 'catcher.cc', '-o', 'libcatcher.so', '-ldl', '-pthread'], { cwd: dir });
    execFileSync('g++', ['main.cc', '-o', 'main', '-ldl'], { cwd: dir });
    const nm = execFileSync('nm', ['-D', '--defined-only', join(dir, 'libthrower.so')], { encoding: 'utf8' });
    t.false(/__cxa_throw|_Znwm/.test(nm), 'the thrower exports no libstdc++ symbol: its copy is private');
    const r = spawnSync(join(dir, 'main'), [join(dir, 'libcatcher.so'), join(dir, 'libthrower.so')], { encoding: 'utf8' });
    t.is(r.status, 0, `${r.stdout}${r.stderr} (signal ${r.signal})`);
    t.is(r.stdout.trim(), 'caught 6 of 6');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
