#!/usr/bin/env node
// Builds the CUDA backend library (perceiver_cuda.so) with CMake when nvcc is
// found, and puts it next to the addon so the addon finds it: build/Release/ when the
// install compiled the addon, else the prebuilt addon's prebuilds/<platform>-<arch>/
// (a prebuild shipped without the library, as linux-arm64's).
// Part of `npm install` / `npm ci` (after node-gyp-build); never fails the install
// for lack of CUDA: without nvcc it says so and exits 0. A failed build with nvcc
// present is reported loudly but does not fail the install either, because the
// CPU backend still works; test/device.test.ts fails when nvcc is on PATH and the
// library is missing, so CI cannot lose it silently.
//
//   node scripts/build-cuda.mjs              build into build/Release/
//   node scripts/build-cuda.mjs --prebuild   also copy (stripped) to prebuilds/<platform>-<arch>/
//   PERCEIVER_CUDA_ARCHS=90 ...              one architecture (fast; for device runs)
//   PERCEIVER_SKIP_CUDA=1                    skip
//
// This file is plain JavaScript because it runs before TypeScript is compiled.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuild = process.argv.includes('--prebuild');
const say = (s) => console.log(`perceiver-io: ${s}`);

/**
 * Where the library goes, as [folder, strip] pairs, or why nothing is built. An
 * install that compiled the addon puts it in build/Release/ beside it. One that
 * loaded a prebuilt addon compiled nothing: its prebuild folder's own library serves
 * (the published linux-x64 one ships it), and where the folder has none (linux-arm64,
 * built without nvcc) it is built there, where the addon looks. --prebuild (a release)
 * puts a stripped copy in prebuilds/ too.
 */
export function cudaTargets(root, tuple, release = false) {
  const compiled = join(root, 'build', 'Release');
  const prebuilt = join(root, 'prebuilds', tuple);
  if (release) return [[compiled, false], [prebuilt, true]];
  if (existsSync(join(compiled, 'perceiver.node'))) return [[compiled, false]];
  if (existsSync(join(prebuilt, 'perceiver_cuda.so'))) return 'using the prebuilt addon and its CUDA library: nothing to build';
  return [[prebuilt, false]];
}

export function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {}
  }
  return null;
}

function main() {
  if (process.env.PERCEIVER_SKIP_CUDA === '1') return say('PERCEIVER_SKIP_CUDA=1: not building the CUDA backend');
  if (process.platform !== 'linux') return say(`the CUDA backend is built on Linux only (this is ${process.platform})`);
  const nvcc = findOnPath('nvcc');
  if (!nvcc) return say('nvcc not found on PATH: CPU only (the CUDA backend is built when nvcc is found)');
  const targets = cudaTargets(ROOT, `${process.platform}-${process.arch}`, prebuild);
  if (typeof targets === 'string') return say(targets);
  const cmake = findOnPath('cmake');
  if (!cmake) {
    console.warn('perceiver-io: WARNING: nvcc was found but cmake was not; the CUDA backend was NOT built (install cmake >= 3.18 and run `npm rebuild`)');
    return;
  }
  const buildDir = join(ROOT, 'build', 'cuda');
  // CMake keeps the compiler of the first configure: after a toolkit change (the old
  // one removed, or another nvcc first on PATH) the build would fail or use the old
  // one, so a folder configured with another nvcc starts over.
  const cudacxx = process.env.CUDACXX || nvcc;  // what CMake is given
  const cached = cachedCudaCompiler(buildDir);
  if (cached && realOrSelf(cached) !== realOrSelf(cudacxx)) {
    say(`build/cuda was configured with ${cached}; reconfiguring for ${cudacxx}`);
    rmSync(buildDir, { recursive: true, force: true });
  }
  const env = { ...process.env, CUDACXX: cudacxx };
  const jobs = String(Math.max(1, Number(process.env.JOBS) || cpus().length));
  const t0 = Date.now();
  // Passed every time (empty = the release set): CMake caches it, and a one-arch
  // build must not stick to the next default one.
  const archs = process.env.PERCEIVER_CUDA_ARCHS || '';
  const steps = [
    ['-S', ROOT, '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release', '-DPERCEIVER_CPU=OFF', `-DPERCEIVER_CUDA_ARCHS=${archs}`],
    ['--build', buildDir, '--target', 'perceiver_cuda', '-j', jobs],
  ];
  say(`building the CUDA backend with ${nvcc} (architectures ${archs || 'sm_75, 80, 86, 89, 90 + PTX'}; takes a few minutes)`);
  for (const args of steps) {
    const r = spawnSync(cmake, args, { stdio: 'inherit', env });
    if (r.status !== 0) {
      console.warn(`perceiver-io: WARNING: building the CUDA backend failed (cmake ${args.join(' ')}: ${r.error ?? `exit ${r.status}`}); CPU only`);
      return;
    }
  }
  const lib = join(buildDir, 'perceiver_cuda.so');
  const place = (dir, strip) => {
    mkdirSync(dir, { recursive: true });
    const tmp = join(dir, `.perceiver_cuda.so.${process.pid}.tmp`);
    copyFileSync(lib, tmp);
    if (strip && findOnPath('strip')) spawnSync('strip', ['--strip-unneeded', tmp], { stdio: 'inherit' });
    renameSync(tmp, join(dir, 'perceiver_cuda.so'));
    say(`placed ${join(dir, 'perceiver_cuda.so')}`);
  };
  for (const [dir, strip] of targets) place(dir, strip);
  say(`CUDA backend built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

/** The nvcc a CMake build folder was configured with, or null. */
export function cachedCudaCompiler(buildDir) {
  try {
    const m = /^CMAKE_CUDA_COMPILER:[A-Z]+=(.+)$/m.exec(readFileSync(join(buildDir, 'CMakeCache.txt'), 'utf8'));
    return m ? m[1].trim() : null;
  } catch {
    return null;
  }
}

function realOrSelf(p) {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

if (process.argv[1] && realOrSelf(process.argv[1]) === realOrSelf(fileURLToPath(import.meta.url))) main();
