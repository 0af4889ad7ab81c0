// The package as a user gets it: `npm pack` the repository (with a prebuilt binary
// for this platform), install the tarball into a fresh project with install scripts
// off, import it by name, compute, and check that the prebuilt binary was loaded
// (a tarball never carries build/, so nothing else could be).
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dynamicSymbols, elfMachine, neededVersions, newestVersion } from './helpers/elf.js';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..'); // dist/test -> repository root
const TUPLE = `${process.platform}-${process.arch}`;
const PREBUILDS = join(ROOT, 'prebuilds', TUPLE);
const NPM_CLI = join(dirname(process.execPath), process.platform === 'win32' ? 'npm.cmd' : 'npm');
const npmBin = existsSync(NPM_CLI) ? NPM_CLI : 'npm';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Run> {
  return new Promise((res, rej) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, PERCEIVER_DEVICE: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

function describeRun(what: string, r: Run): string {
  return `${what}: code ${r.code}, signal ${r.signal}, ${r.ms} ms\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

function nvccOnPath(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = dir && join(dir, 'nvcc');
    if (p && existsSync(p) && statSync(p).isFile()) return p;
  }
  return null;
}

/**
 * Where nvcc exists the package ships the CUDA backend library next to the prebuilt
 * addon. `npm run prebuild` builds it (scripts/build-cuda.mjs --prebuild); here the
 * copy that `npm install` / `npm ci` already built into build/Release from the same
 * sources is used, so the suite does not compile the CUDA code a second time.
 */
function ensureCudaPrebuild(log: (s: string) => void): boolean {
  if (!nvccOnPath()) {
    log('no nvcc on PATH: the package ships no CUDA library');
    return false;
  }
  const built = join(ROOT, 'build', 'Release', 'perceiver_cuda.so');
  if (!existsSync(built)) throw new Error(`nvcc is on PATH but ${built} is missing: the CUDA backend did not build (run \`node scripts/build-cuda.mjs\`)`);
  mkdirSync(PREBUILDS, { recursive: true });
  const tmp = join(PREBUILDS, `.perceiver_cuda.so.${process.pid}.tmp`);
  copyFileSync(built, tmp);
  renameSync(tmp, join(PREBUILDS, 'perceiver_cuda.so'));
  return true;
}

// scripts/prebuild-arm64.mjs: the linux-arm64 prebuild, cross-compiled where the
// aarch64-linux-gnu toolchain is installed; it also reads the prebuild script's flags.
const arm64 = (await import(pathToFileURL(join(ROOT, 'scripts', 'prebuild-arm64.mjs')).href)) as {
  prebuildifyArgs: () => string[];
  crossUnavailable: () => string | null;
  buildArm64Prebuild: (dest?: string, log?: (s: string) => void) => string[];
  stagedPrebuild: (tuple: string, opts?: { extra?: string[]; env?: NodeJS.ProcessEnv; dest?: string; log?: (s: string) => void }) => string[];
  prebuildState: (tuple: string) => { files: string[]; stale: string[] };
};
const ARM64_PREBUILDS = join(ROOT, 'prebuilds', 'linux-arm64');
const EM_AARCH64 = 183;

/** prebuildify's arguments in the package's `prebuild` script, so the suite builds what a release ships. */
const PREBUILDIFY_ARGS: string[] = arm64.prebuildifyArgs();

/**
 * Makes sure prebuilds/linux-arm64/ holds a binary built from the current sources
 * where this machine can cross-compile it (true); false, saying why, where it cannot.
 * A stale one that cannot be rebuilt here fails: `npm pack` would ship it.
 */
function ensureArm64Prebuild(log: (s: string) => void): boolean {
  const { files: have, stale } = arm64.prebuildState('linux-arm64');
  const fresh = have.length > 0 && stale.length === 0;
  const why = arm64.crossUnavailable();
  if (why) {
    if (have.length > 0 && !fresh) throw new Error(`${ARM64_PREBUILDS} holds a prebuild older than the sources and none can be built here (${why}): delete it or rebuild it`);
    log(have.length ? `linux-arm64 prebuild up to date (no cross toolchain here: ${why})` : `no linux-arm64 prebuild: ${why}`);
    return have.length > 0;
  }
  if (fresh) log(`linux-arm64 prebuild up to date: ${have.join(', ')}`);
  else arm64.buildArm64Prebuild(ROOT, log);
  return true;
}

function prebuiltFiles(): string[] {
  return arm64.prebuildState(TUPLE).files;
}

/**
 * Makes sure prebuilds/<platform>-<arch>/ holds a binary built from the current
 * sources, built as the package's `prebuild` script builds it (prebuildify with its
 * flags, in a staging copy: scripts/prebuild-arm64.mjs, stagedPrebuild), so that the
 * repository's build/ folder, which other tests load, is never rebuilt underneath them.
 */
function ensurePrebuild(log: (s: string) => void): void {
  const { files: existing, stale } = arm64.prebuildState(TUPLE);
  // The name prebuildify gives it: a file of an older naming is rebuilt, not shipped.
  const name = `perceiver-io${PREBUILDIFY_ARGS.includes('--tag-libc') && process.platform === 'linux' ? (existsSync('/etc/alpine-release') ? '.musl' : '.glibc') : ''}.node`;
  if (existing.includes(name) && stale.length === 0) {
    log(`prebuild up to date: ${existing.join(', ')}`);
    return;
  }
  arm64.stagedPrebuild(TUPLE, { log });
}

// The engines floor (Node 20.19) is where require() of an ES module works without a
// flag, so a CommonJS caller can require('perceiver-io') as long as the exports map
// has a condition require() matches: with "import" alone it failed with
// ERR_PACKAGE_PATH_NOT_EXPORTED ('No "exports" main defined'). The package's own name
// resolves through the same exports map here (self-reference), without packing.
test('a CommonJS caller can require() both entry points (Node >= 20.19)', (t) => {
  const r = spawnSync(
    process.execPath,
    ['-e', "const P = require('perceiver-io'); const M = require('perceiver-io/models'); console.log(typeof P.tensor, typeof M.loadModel)"],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PERCEIVER_DEVICE: 'cpu' } },
  );
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), 'function function');
});

const CONSUMER = `
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
const P = await import('perceiver-io');
const require = createRequire(join(process.cwd(), 'index.js'));
const pkgDir = dirname(require.resolve('perceiver-io/package.json'));
const a = P.tensor([[1, 2, 3], [4, 5, 6]]);
const b = P.tensor([[1, 0], [0, 1], [1, 1]]);
const c = P.matmul(a, b, { bias: P.tensor([10, 20]) });
const product = await c.array();
// What the READMEs show importing from the models entry point.
const M = await import('perceiver-io/models');
const documented = ['loadModel', 'PerceiverForMaskedLM', 'BytesTokenizer', 'setFastCrossAttention', 'attentionWithDropout', 'modelInfo',
  'encodePngRgb', 'writeFileAtomic', 'toPixelValues', 'parseMaskedText', 'fillMask', 'topKClasses', 'estimateFlow'];
const missingModels = documented.filter((n) => typeof M[n] !== 'function');
const maps = readFileSync('/proc/self/maps', 'utf8').split('\\n')
  .map((l) => l.trim().split(/\\s+/).slice(5).join(' ')).filter((p) => p.endsWith('.node'));
console.log(JSON.stringify({
  product,
  missingModels,
  backends: P.backends(),
  loaded: [...new Set(maps)],
  resolved: require('node-gyp-build').resolve(pkgDir),
  pkgDir,
  hasBuildDir: existsSync(join(pkgDir, 'build')),
  version: JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version,
}));
`;

const CONSUMER_TS = `
import { matmul, tensor, backends, type Tensor, type BackendInfo } from 'perceiver-io';
const x: Tensor = matmul(tensor([[1, 2]]), tensor([[3], [4]]), { activation: 'relu' });
const b: BackendInfo[] = backends();
export const out: Promise<unknown> = x.data().then((d) => [d[0], b.length]);
`;

// The oldest systems the prebuilt binaries load on: glibc 2.28, as Node's own Linux
// binaries (Debian 10, Ubuntu 20.04, RHEL/Rocky/Alma 8 and later), with GCC 8's libgcc_s
// (RHEL 8's). Both files carry their own libstdc++, so they need no version of it;
// native/glibc_compat.cc pins the calls that a newer glibc would version anew. A newer
// symbol version creeping in (a new libc call, a header of a newer GCC) would shut
// those systems out silently, with a loader error at require time.
const FLOORS: [string, string][] = [['GLIBC_', '2.28'], ['GCC_', '7.0.0']];
const NONE = ['GLIBCXX_', 'CXXABI_', 'GLIBC_PRIVATE'];

test.serial('the prebuilt binaries (linux-x64, and linux-arm64 where it can be cross-compiled) need no glibc newer than 2.28, no libgcc_s newer than GCC 8\'s and no libstdc++', async (t) => {
  // Up to two builds (x64, then arm64), each a synchronous prebuildify of at most 10 min.
  t.timeout(21 * 60_000);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    t.pass(`no Linux x64 prebuild on ${TUPLE}`);
    return;
  }
  ensurePrebuild((s) => t.log(s));
  const files = [...prebuiltFiles(), ...(ensureCudaPrebuild((s) => t.log(s)) ? ['perceiver_cuda.so'] : [])].map((f) => join(PREBUILDS, f));
  if (ensureArm64Prebuild((s) => t.log(s))) {
    const arm = readdirSync(ARM64_PREBUILDS).map((f) => join(ARM64_PREBUILDS, f));
    t.deepEqual(arm.map((f) => relative(ROOT, f)), ['prebuilds/linux-arm64/perceiver-io.glibc.node'], 'one linux-arm64 prebuild, tagged glibc');
    for (const f of arm) t.is(elfMachine(f), EM_AARCH64, `${relative(ROOT, f)} is arm64 code`);
    files.push(...arm);
  }
  for (const path of files) {
    const f = relative(ROOT, path);
    const needs = Object.values(neededVersions(path)).flat();
    t.true(needs.length > 0, `${f}: its version needs were read`);
    // Every redirected call found its pinned target (an undefined __wrap_ name would
    // fail at load time), and none of it is exported.
    const wraps = dynamicSymbols(path).filter((s) => s.name.startsWith('__wrap_'));
    t.deepEqual(wraps.map((s) => s.name), [], `${f}: no __wrap_ symbol in its dynamic symbol table`);
    for (const [prefix, floor] of FLOORS) {
      const newest = newestVersion(needs, prefix);
      t.log(`${f}: newest ${prefix}* needed: ${newest ?? 'none'}`);
      if (newest !== null) t.is(newestVersion([newest, prefix + floor], prefix), prefix + floor, `${f} needs ${newest}, newer than ${prefix}${floor}`);
    }
    t.deepEqual(needs.filter((v) => NONE.some((p) => v.startsWith(p))), [], `${f} needs nothing of libstdc++ nor glibc's private symbols`);
  }
});

test('npm pack + install into a fresh project (scripts off): imports by name, computes a matmul and loads the prebuilt binary, not build/', async (t) => {
  t.timeout(21 * 60_000); // as above: it may build the prebuilds
  ensurePrebuild((s) => t.log(s));
  const shipsCuda = ensureCudaPrebuild((s) => t.log(s));
  const shipsArm64 = process.platform === 'linux' && process.arch === 'x64' && ensureArm64Prebuild((s) => t.log(s));
  const work = mkdtempSync(join(tmpdir(), 'pio-package-'));
  try {
    // --- pack (scripts off: dist/ is already compiled, it is what these tests run) ---
    const packDir = join(work, 'pack');
    mkdirSync(packDir);
    const pack = await run(npmBin, ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: ROOT, timeoutMs: 120_000 });
    t.is(pack.code, 0, describeRun('npm pack', pack));
    const info = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    const files = info[0].files.map((f) => f.path);
    const tarball = join(packDir, info[0].filename);
    t.true(existsSync(tarball), tarball);
    t.log(`${files.length} files, ${(statSync(tarball).size / 1024).toFixed(0)} KiB`);
    t.deepEqual(files.filter((f) => f.startsWith('build/')), [], 'the tarball must not contain build/');
    t.true(files.some((f) => f.startsWith(`prebuilds/${TUPLE}/`) && f.endsWith('.node')), `a prebuilt binary for ${TUPLE}`);
    // Tagged with its C library, so that on musl (Alpine) node-gyp-build passes it
    // over and says none matches, rather than failing to load a glibc binary.
    if (process.platform === 'linux')
      t.deepEqual(files.filter((f) => f.startsWith(`prebuilds/${TUPLE}/`) && f.endsWith('.node')), [`prebuilds/${TUPLE}/perceiver-io.glibc.node`], 'one Linux prebuild, tagged glibc');
    t.deepEqual(files.filter((f) => f.endsWith('.node') && !f.startsWith('prebuilds/')), [], 'no other binaries');
    if (shipsArm64) t.deepEqual(files.filter((f) => f.startsWith('prebuilds/linux-arm64/')), ['prebuilds/linux-arm64/perceiver-io.glibc.node'], 'the linux-arm64 prebuild ships, alone in its folder');
    if (shipsCuda) t.true(files.includes(`prebuilds/${TUPLE}/perceiver_cuda.so`), 'the CUDA backend library ships next to the prebuilt addon');
    t.deepEqual(files.filter((f) => f.endsWith('_check.cu') || f.endsWith('_check.cc')), [], 'no check harnesses');
    // What a compile from source (no prebuilt binary for the machine) runs.
    for (const f of ['package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/native.js', 'binding.gyp',
      'scripts/link-flags.mjs', 'scripts/build-cuda.mjs', 'CMakeLists.txt', 'native/glibc_compat.cc'])
      t.true(files.includes(f), `the tarball contains ${f}`);
    t.deepEqual(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('test/') || f.startsWith('node_modules/')), [], 'no tests or dependencies');

    // --- install into a fresh project, install scripts off ---
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'pio-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
    const install = await run(npmBin, ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
      cwd: app,
      timeoutMs: 180_000,
    });
    t.is(install.code, 0, describeRun('npm install', install));
    const pkgDir = join(app, 'node_modules', 'perceiver-io');
    t.true(existsSync(pkgDir));
    t.false(existsSync(join(pkgDir, 'build')), 'the installed package has no build/ folder');
    t.true(existsSync(join(app, 'node_modules', 'node-gyp-build')), 'dependency node-gyp-build installed');

    // --- use it like a user ---
    const use = await run(process.execPath, ['--input-type=module', '-e', CONSUMER], { cwd: app, timeoutMs: 60_000 });
    t.is(use.code, 0, describeRun('consumer', use));
    const out = JSON.parse(use.stdout.trim().split('\n').pop()!);
    t.deepEqual(out.product, [[14, 25], [20, 31]]);
    t.deepEqual(out.missingModels, [], "every function the READMEs import from 'perceiver-io/models' is exported");
    t.is(out.backends[0].name, 'cpu');
    t.true(out.backends[0].available);
    // The installed package explains its CUDA state: on a machine without a GPU the
    // shipped library loads and the reason is the missing driver or device.
    const cuda = out.backends[1];
    t.is(cuda.name, 'cuda');
    if (shipsCuda) {
      t.is(cuda.library, join(out.pkgDir, 'prebuilds', TUPLE, 'perceiver_cuda.so'), 'the shipped library is the one loaded');
      if (!cuda.available) t.regex(cuda.reason, /^(no CUDA driver|no CUDA device|the CUDA driver cannot be used|cuBLAS not found)/);
    } else {
      t.false(cuda.available);
      t.regex(cuda.reason, /perceiver_cuda\.so\) was not found/);
    }
    t.log(`backends: ${JSON.stringify(out.backends)}`);
    t.log(`loaded: ${out.loaded.join(', ')}`);
    const prebuildDir = join(out.pkgDir, 'prebuilds', TUPLE);
    t.is(out.loaded.length, 1, 'exactly one native addon is mapped');
    t.is(relative(prebuildDir, out.loaded[0]).startsWith('..'), false, `loaded ${out.loaded[0]}, expected a file in ${prebuildDir}`);
    t.is(dirname(out.resolved), prebuildDir, 'node-gyp-build resolves to the prebuild');
    t.false(out.hasBuildDir);
    t.is(out.version, JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);

    // --- with install scripts on (what `npm install` did by default before npm 11.19's
    // allowScripts; `npm rebuild perceiver-io` runs them still): node-gyp-build finds the
    // prebuild and compiles nothing ---
    const rebuild = await run(npmBin, ['rebuild', 'perceiver-io', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 180_000 });
    t.is(rebuild.code, 0, describeRun('npm rebuild perceiver-io', rebuild));
    t.false(existsSync(join(pkgDir, 'build')), 'the install script compiled from source instead of using the prebuild');

    // --- the published types resolve for a TypeScript consumer (NodeNext) ---
    writeFileSync(join(app, 'consumer.mts'), CONSUMER_TS);
    const tsc = await run(
      process.execPath,
      [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', 'consumer.mts'],
      { cwd: app, timeoutMs: 120_000 },
    );
    t.is(tsc.code, 0, describeRun('tsc on a consumer file', tsc));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
