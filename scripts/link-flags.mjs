#!/usr/bin/env node
// Prints the linker flags that keep the addon loadable on older Linux distributions
// than the one it is built on; binding.gyp splices them into its ldflags, passing its
// target_arch. Nothing is printed where they do not apply (anything but an x86-64 or
// arm64 glibc Linux build, native or cross-compiled with a *-linux-gnu compiler).
//
// - libstdc++ linked in statically and hidden (-Wl,--exclude-libs,ALL): the addon then
//   needs no GLIBCXX/CXXABI version at all, where GCC 12's headers alone asked for
//   GCC 11's libstdc++ (RHEL 8 ships GCC 8's). N-API is a C interface; the CUDA
//   library's exceptions do reach the addon's catch blocks, across the two private
//   copies, which test/link-flags.test.ts checks works. libgcc stays shared: the
//   static one calls _dl_find_object (glibc 2.35). Where the compiler has no
//   libstdc++.a (Fedora/RHEL without libstdc++-static) libstdc++ stays shared: a
//   build from source is for the machine it runs on.
// - -Wl,--wrap for every PIN and REPLACE line of native/glibc_compat.cc, which says why.
// - libpthread, libdl and librt named as needed: glibc before 2.34 keeps the pinned
//   versions there rather than in libc (they are empty stubs from 2.34 on).
//
// CMakeLists.txt reads the same lines for perceiver_cuda.so. Plain JavaScript: it
// runs before TypeScript is compiled.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The symbols native/glibc_compat.cc redirects, in file order. */
export function wrappedSymbols(source = readFileSync(join(ROOT, 'native', 'glibc_compat.cc'), 'utf8')) {
  return [...source.matchAll(/^\s*(?:\/\/\s*)?(?:PIN|REPLACE)\(([A-Za-z_][A-Za-z0-9_]*)[,)]/gm)].map((m) => m[1]);
}

function isGlibc() {
  if (process.platform !== 'linux') return false;
  const report = process.report;
  if (!report) return false;
  report.excludeNetwork = true;
  return Boolean(report.getReport().header.glibcVersionRuntime);
}

/** What the C++ compiler `cxx` (a command line, as $CXX) prints for `flag`; '' when it cannot be run. */
function askCompiler(cxx, flag) {
  try {
    const [bin, ...args] = cxx.trim().split(/\s+/);
    return execFileSync(bin, [...args, flag], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

/** Whether the C++ compiler node-gyp will use ($CXX, else g++) has a static libstdc++. */
export function hasStaticLibstdcxx(cxx = process.env.CXX || 'g++') {
  const path = askCompiler(cxx, '-print-file-name=libstdc++.a');
  return path.startsWith('/') && existsSync(path);
}

/** The target triple of the C++ compiler node-gyp will use ($CXX, else g++), e.g. aarch64-linux-gnu; null if it cannot say. */
export function compilerTarget(cxx = process.env.CXX || 'g++') {
  return askCompiler(cxx, '-dumpmachine') || null;
}

const TRIPLE_ARCH = { x64: 'x86_64', arm64: 'aarch64' };

/**
 * The flags for a build targeting `arch` (node-gyp's target_arch; a cross build's
 * differs from this Node's): x64 or arm64, on glibc. A native build asks the running
 * Node which C library it has; a cross build (arm64 from x64, with CXX naming
 * aarch64-linux-gnu-g++) asks the compiler's target triple.
 */
export function linkFlags(arch = process.arch) {
  if (!(arch in TRIPLE_ARCH) || process.platform !== 'linux') return [];
  const target = arch === process.arch ? null : compilerTarget() ?? '';
  if (target === null ? !isGlibc() : !(target.startsWith(`${TRIPLE_ARCH[arch]}-`) && target.endsWith('-linux-gnu'))) return [];
  return [
    ...(hasStaticLibstdcxx() ? ['-static-libstdc++', '-Wl,--exclude-libs,ALL'] : []),
    ...wrappedSymbols().map((s) => `-Wl,--wrap=${s}`),
    '-Wl,--push-state,--no-as-needed', '-l:libpthread.so.0', '-l:libdl.so.2', '-l:librt.so.1', '-Wl,--pop-state',
  ];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) console.log(linkFlags(process.argv[2] || process.arch).join(' '));
