#!/usr/bin/env node
// The linux-arm64 prebuild (AWS Graviton, Ampere, Grace), cross-compiled on an x86-64
// Linux machine with Debian/Ubuntu's aarch64-linux-gnu toolchain
// (apt-get install g++-aarch64-linux-gnu): prebuildify with the `prebuild` script's
// own arguments plus --arch arm64, into prebuilds/linux-arm64/. binding.gyp's link
// flags (scripts/link-flags.mjs) see the compiler's aarch64-linux-gnu target and pin
// glibc calls as for x64, so the file loads on glibc 2.28 (test/package.test.ts
// checks the versions it needs). Where the toolchain is missing it says so and does
// nothing, exit 0: arm64 users then compile from source at install, as before. No
// CUDA library is built for arm64 (nvcc here makes x86-64 code).
//   node scripts/prebuild-arm64.mjs
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CROSS = { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', STRIP: 'aarch64-linux-gnu-strip' };

/** prebuildify's flags in package.json's `prebuild` script (its first command). */
export function prebuildifyArgs(pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))) {
  const m = /^prebuildify((?: --[a-z-]+)*)(?: &&|$)/.exec(pkg.scripts.prebuild);
  if (!m) throw new Error(`package.json's prebuild script does not start with a plain prebuildify call: ${pkg.scripts.prebuild}`);
  return m[1].trim().split(/\s+/).filter(Boolean);
}

/** Newest modification time among what a prebuild is compiled from: binding.gyp, link-flags.mjs, native/ and bindings/ (dot-files, editors' and mutation tests' leftovers, excluded). */
export function newestNativeSource(root = ROOT) {
  let newest = Math.max(statSync(join(root, 'binding.gyp')).mtimeMs, statSync(join(root, 'scripts', 'link-flags.mjs')).mtimeMs);
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(root, 'native'));
  walk(join(root, 'bindings'));
  return newest;
}

/** The .node files in prebuilds/<tuple>/ under `root`, and those of them older than the sources. */
export function prebuildState(tuple, root = ROOT) {
  const dir = join(root, 'prebuilds', tuple);
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
  const newest = files.length ? newestNativeSource(root) : 0;
  return { files, stale: files.filter((f) => statSync(join(dir, f)).mtimeMs < newest) };
}

/** Why no arm64 prebuild can be made here, or null when it can. */
export function crossUnavailable() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `it is cross-compiled from linux-x64 (this is ${process.platform}-${process.arch})`;
  for (const tool of Object.values(CROSS)) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (apt-get install g++-aarch64-linux-gnu)`;
    }
  }
  return null;
}

/**
 * Runs prebuildify with the `prebuild` script's flags plus `extra` in a staging copy
 * of the sources (node-gyp rebuilds build/ where it runs, and the repository's build/
 * holds this machine's addon, which the tests load), then moves the .node files it
 * wrote for `tuple` into dest/prebuilds/<tuple>/, replacing those there, each through
 * a temporary name. Returns the files written. The package test builds the x64
 * prebuild through this too.
 */
export function stagedPrebuild(tuple, { extra = [], env = {}, dest = ROOT, log = console.log } = {}) {
  const stage = mkdtempSync(join(tmpdir(), `pio-prebuild-${tuple}-`));
  try {
    mkdirSync(join(stage, 'scripts'));
    for (const p of ['package.json', 'binding.gyp', 'scripts/link-flags.mjs']) copyFileSync(join(ROOT, p), join(stage, p));
    const visible = (src) => !basename(src).startsWith('.');
    for (const d of ['native', 'bindings']) cpSync(join(ROOT, d), join(stage, d), { recursive: true, filter: visible });
    symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir');
    const args = [...prebuildifyArgs(), ...extra];
    // prebuildify --napi builds against the newest Node it knows; N-API is ABI-stable, so
    // the running Node's headers serve (no download).
    const runEnv = { ...process.env, JOBS: process.env.JOBS ?? String(Math.max(2, cpus().length)), ...env };
    const prefix = dirname(dirname(process.execPath));
    if (!runEnv.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) runEnv.npm_config_nodedir = prefix;
    log(`prebuildify ${args.join(' ')}${env.CXX ? ` (CXX=${env.CXX})` : ''}`);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'prebuildify', 'bin.js'), ...args], { cwd: stage, env: runEnv, encoding: 'utf8', timeout: 10 * 60_000 });
    if (r.status !== 0) throw new Error(`prebuildify ${args.join(' ')} failed (exit ${r.status}, signal ${r.signal}):\n${`${r.stdout}${r.stderr}`.slice(-3000)}`);
    const from = join(stage, 'prebuilds', tuple);
    const built = existsSync(from) ? readdirSync(from).filter((f) => f.endsWith('.node')) : [];
    if (built.length === 0) throw new Error(`prebuildify wrote no .node file for ${tuple}\n${r.stdout.slice(-2000)}`);
    const to = join(dest, 'prebuilds', tuple);
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(to)) if (f.endsWith('.node')) unlinkSync(join(to, f));
    for (const f of built) {
      const tmp = join(to, `.${f}.${process.pid}.tmp`);
      copyFileSync(join(from, f), tmp);
      renameSync(tmp, join(to, f));
    }
    log(`built ${built.join(', ')} for ${tuple} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return built.map((f) => join(to, f));
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** prebuilds/linux-arm64/ under `dest`, cross-compiled (see the top of this file). */
export function buildArm64Prebuild(dest = ROOT, log = console.log) {
  return stagedPrebuild('linux-arm64', { extra: ['--arch', 'arm64', '--strip-bin', CROSS.STRIP], env: { CC: CROSS.CC, CXX: CROSS.CXX }, dest, log });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.length > 2) {
    console.error(`prebuild-arm64: expected no arguments, got ${process.argv.slice(2).join(' ')}`);
    process.exit(2);
  }
  const why = crossUnavailable();
  if (why) {
    console.log(`prebuild-arm64: no linux-arm64 prebuild: ${why}`);
    // One left from an earlier build of older sources would ship with the package.
    for (const f of prebuildState('linux-arm64').stale) {
      unlinkSync(join(ROOT, 'prebuilds', 'linux-arm64', f));
      console.log(`prebuild-arm64: removed prebuilds/linux-arm64/${f}, built from older sources`);
    }
    process.exit(0);
  }
  try {
    buildArm64Prebuild(ROOT, (line) => console.log(`prebuild-arm64: ${line}`));
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
