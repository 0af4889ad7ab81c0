// Backends and device selection: the CPU is listed with its threads and SIMD level;
// CUDA is listed either with its devices or as unavailable with the exact reason
// (library missing, no driver, no device, cuBLAS not found); asking for CUDA where
// it is unavailable is an error that says why (never a silent CPU fallback); the
// CUDA library is always built where nvcc is; results do not depend on the thread
// count.
import test from 'ava';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { delimiter, dirname, join, resolve } from 'node:path';
import * as P from '../lib/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const LIB_URL = pathToFileURL(join(here, '..', 'lib', 'index.js')).href;
const ROOT = resolve(here, '..', '..');
const CUDA = P.backends()[1];
/** Tests of the unavailable state run where CUDA is unavailable, the others where it is. */
const withoutCuda = CUDA.available ? test.skip : test;
const withCuda = CUDA.available ? test : test.skip;

function nvccOnPath(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = dir && join(dir, 'nvcc');
    if (p && existsSync(p) && statSync(p).isFile()) return p;
  }
  return null;
}

function runNode(code: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PERCEIVER_DEVICE: '', PERCEIVER_NUM_THREADS: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function lastJson(stdout: string): Record<string, any> {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

test('backends() lists the cpu (available, threads, simd) and cuda (available with devices, or unavailable with a reason)', (t) => {
  const list = P.backends();
  t.deepEqual(list.map((b) => b.name), ['cpu', 'cuda']);
  const [cpu, cuda] = list;
  t.true(cpu.available);
  t.true(Number.isInteger(cpu.threads) && cpu.threads! >= 1, `threads ${cpu.threads}`);
  t.is(typeof cpu.simd, 'string');
  t.regex(cpu.simd!, /^(generic|avx2\+fma|avx512f|neon)$/);
  t.is(cpu.reason, undefined);
  if (cuda.available) {
    t.is(cuda.reason, undefined);
    t.true(cuda.devices!.length >= 1);
  } else {
    t.is(cuda.devices, undefined);
    t.is(typeof cuda.reason, 'string');
    t.regex(cuda.reason!, /CUDA|cuda/);
    t.true(cuda.reason!.length > 20, 'the reason says why, not just "unavailable"');
  }
});

test('where nvcc is on PATH, perceiver_cuda.so was built next to the addon and loads (the install builds it)', (t) => {
  const nvcc = nvccOnPath();
  if (!nvcc) {
    t.is(CUDA.library ?? null, null, 'no nvcc here, so no library was built');
    t.regex(CUDA.reason!, /perceiver_cuda\.so\) was not found/);
    return;
  }
  const lib = join(ROOT, 'build', 'Release', 'perceiver_cuda.so');
  t.true(existsSync(lib), `nvcc is at ${nvcc} but ${lib} is missing: the CUDA backend stopped building (run \`node scripts/build-cuda.mjs\` to see why)`);
  t.is(typeof CUDA.library, 'string', `the library did not load: ${CUDA.reason}`);
  t.true(CUDA.library!.endsWith('perceiver_cuda.so'), CUDA.library!);
  if (!CUDA.available)
    t.regex(CUDA.reason!, /no CUDA driver|no CUDA device|CUDA driver cannot be used|cuBLAS not found/, 'the library loaded, so the reason is the machine');
});

withoutCuda('on a machine without a GPU driver the reason is exactly that, with the loader error', (t) => {
  if (!CUDA.library) return t.pass('no CUDA library here (covered above)');
  if (existsSync('/dev/nvidiactl')) return t.pass('this machine has an NVIDIA device node; its reason is checked above');
  t.regex(CUDA.reason!, /^no CUDA driver: libcuda\.so\.1 could not be loaded \(.*libcuda\.so\.1.*\)$/s);
});

withCuda('backends() describes each CUDA device: name, compute capability, memory, driver and cuBLAS versions', (t) => {
  for (const d of CUDA.devices!) {
    t.true(d.name.length > 0);
    t.regex(d.computeCapability, /^\d+\.\d+$/);
    t.true(d.totalMemory > 2 ** 30 && d.freeMemory > 0 && d.freeMemory <= d.totalMemory);
    t.true(d.multiprocessors > 0);
    t.regex(d.driverVersion, /^\d+\.\d+$/);
    t.regex(d.cublasVersion, /^\d+\.\d+\.\d+$/);
  }
  t.throws(() => P.zeros([1], { device: `cuda:${CUDA.devices!.length}` }), { instanceOf: RangeError, message: /does not exist/ });
});

withoutCuda("{ device: 'cuda' } throws an Error with the reason and creates nothing", (t) => {
  const reason = P.backends()[1].reason!;
  // Live handles are counted on this thread only, so the count is exact here.
  const before = [P.memory().cpu.tensors, P.memory().cuda.tensors];
  const calls: [string, () => unknown][] = [
    ['tensor', () => P.tensor([1, 2], undefined, { device: 'cuda' })],
    ['(zeros|full)', () => P.zeros([2], { device: 'cuda' })],
    ['randn', () => P.randn([2], { device: 'cuda:0' })],
    ['arange', () => P.arange(3, undefined, 1, { device: 'cuda:1' })],
  ];
  for (const [op, call] of calls) {
    const err = t.throws(call, { instanceOf: Error });
    t.is(err!.constructor, Error, 'a plain Error (the request was well-formed)');
    t.regex(err!.message, new RegExp(`^${op}: device 'cuda(:\\d)?' was requested but CUDA is unavailable`));
    t.true(err!.message.includes(reason), err!.message);
  }
  t.deepEqual([P.memory().cpu.tensors, P.memory().cuda.tensors], before, 'no tensor was created on any device');
});

test("{ device: 'gpu' } and other unknown names are TypeErrors naming the argument", (t) => {
  for (const device of ['gpu', 'CUDA', 'cuda:', 'cuda:x', 'cpu:0', '']) {
    t.throws(() => P.zeros([2], { device }), {
      instanceOf: TypeError,
      message: /^(zeros|full): argument 'device' must be 'cpu', 'cuda' or 'cuda:N', got '.*'/,
    });
  }
  t.throws(() => P.tensor([1], undefined, { device: 5 as never }), { instanceOf: TypeError, message: /^tensor: argument 'device' .*got number 5/ });
  t.is(P.resolveDevice('x', 'cpu'), 'cpu');
  t.throws(() => P.zeros([1]).to('gpu'), { instanceOf: TypeError, message: /^to: argument 'device' must be/ });
});

withoutCuda(".to('cuda') throws the reason; .to('cpu') of a cpu tensor is the tensor itself", (t) => {
  const x = P.tensor([1, 2], undefined, { device: 'cpu' });
  t.is(x.to('cpu'), x);
  const err = t.throws(() => x.to('cuda'), { instanceOf: Error });
  t.regex(err!.message, /^to: device 'cuda' was requested but CUDA is unavailable/);
  t.true(err!.message.includes(CUDA.reason!), err!.message);
});

withoutCuda('PERCEIVER_DEVICE=cuda makes creation throw the reason (child process), never a silent CPU tensor', async (t) => {
  const r = await runNode(
    `
    const P = await import(${JSON.stringify(LIB_URL)});
    const out = {};
    for (const [name, f] of Object.entries({
      tensor: () => P.tensor([1]),
      zeros: () => P.zeros([2]),
      randn: () => P.randn([2], { seed: 1 }),
      explicitCpu: () => P.zeros([2], { device: 'cpu' }),
    })) {
      try { const x = f(); out[name] = { device: x.device }; }
      catch (e) { out[name] = { error: e.constructor.name, message: e.message }; }
    }
    out.memory = P.memory().cpu.tensors;
    out.reason = P.backends()[1].reason;
    console.log(JSON.stringify(out));
    `,
    { PERCEIVER_DEVICE: 'cuda' },
  );
  t.is(r.code, 0, r.stderr);
  const out = lastJson(r.stdout);
  for (const name of ['tensor', 'zeros', 'randn']) {
    t.is(out[name].error, 'Error', `${name}: ${JSON.stringify(out[name])}`);
    t.regex(out[name].message, /device 'cuda' was requested but CUDA is unavailable/);
    t.true(out[name].message.includes(out.reason), out[name].message);
  }
  t.deepEqual(out.explicitCpu, { device: 'cpu' }, 'an explicit device wins over PERCEIVER_DEVICE');
  t.is(out.memory, 1, 'only the explicit cpu tensor exists');
});

test('PERCEIVER_DEVICE=gpu is a TypeError that names the variable; PERCEIVER_DEVICE=cpu works', async (t) => {
  const code = `
    const P = await import(${JSON.stringify(LIB_URL)});
    try { const x = P.zeros([2]); console.log(JSON.stringify({ device: x.device })); }
    catch (e) { console.log(JSON.stringify({ error: e.constructor.name, message: e.message })); }`;
  const bad = lastJson((await runNode(code, { PERCEIVER_DEVICE: 'gpu' })).stdout);
  t.is(bad.error, 'TypeError');
  t.regex(bad.message, /PERCEIVER_DEVICE.*'gpu'/);
  const good = lastJson((await runNode(code, { PERCEIVER_DEVICE: 'cpu' })).stdout);
  t.deepEqual(good, { device: 'cpu' });
});

test('a PERCEIVER_NUM_THREADS, PERCEIVER_CPU_CACHE_MB, PERCEIVER_GRAD_FOLD or PERCEIVER_ATTENTION_COMPOSE value it cannot take is ignored with a warning naming it, not silently', async (t) => {
  const code = `
    const P = await import(${JSON.stringify(LIB_URL)});
    const x = P.zeros([1 << 20]); await x.data(); x.dispose();
    await P.attention(P.ones([1, 2, 1, 4]), P.ones([1, 3, 1, 4]), P.ones([1, 3, 1, 4])).data();
    console.log(JSON.stringify({ threads: P.backends()[0].threads, cached: P.memory('cpu').cpu.cachedBytes }));`;
  for (const [name, value, valid] of [
    ['PERCEIVER_NUM_THREADS', 'abc', 'an integer from 1 to 1024'],
    ['PERCEIVER_NUM_THREADS', '1.5', 'an integer from 1 to 1024'],
    ['PERCEIVER_NUM_THREADS', '0', 'an integer from 1 to 1024'],
    ['PERCEIVER_CPU_CACHE_MB', '-1', 'a whole number of MiB'],
    ['PERCEIVER_CPU_CACHE_MB', 'lots', 'a whole number of MiB'],
    ['PERCEIVER_GRAD_FOLD', 'off', '0 or 1'],
    ['PERCEIVER_ATTENTION_COMPOSE', 'yes', '0 or 1'],
  ]) {
    const r = await runNode(code, { [name]: value });
    t.is(r.code, 0, r.stderr);
    t.true(r.stderr.includes(`perceiver-io: ignoring ${name}=${value} (${valid}`), `${name}=${value}: ${r.stderr}`);
    t.true(lastJson(r.stdout).threads >= 1);
  }
  const ok = await runNode(code, { PERCEIVER_NUM_THREADS: '1', PERCEIVER_CPU_CACHE_MB: '0', PERCEIVER_GRAD_FOLD: '0', PERCEIVER_ATTENTION_COMPOSE: '1' });
  t.is(ok.stderr, '');
  t.deepEqual(lastJson(ok.stdout), { threads: 1, cached: 0 }, 'valid values are taken: one thread, no cache');
});

test('PERCEIVER_NUM_THREADS=1, 2 and 3 give bit-identical matmul, attention (key splits too) and its gradient, randn, reductions and LAMB updates, and report the thread count', async (t) => {
  t.timeout(120_000);
  const code = `
    import { createHash } from 'node:crypto';
    const P = await import(${JSON.stringify(LIB_URL)});
    const h = async (x) => { const d = await x.data(); return createHash('sha256').update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).digest('hex'); };
    const out = { threads: P.backends()[0].threads };
    const r = P.randn([300, 257], { seed: 42 });
    const w = P.randn([257, 191], { seed: 43 });
    const bias = P.randn([191], { seed: 44 });
    out.randn = await h(r);
    out.rand = await h(P.rand([1000], { seed: 45 }));
    out.matmul = await h(P.matmul(r, w, { bias, activation: 'gelu' }));
    out.batched = await h(P.matmul(P.randn([3, 65, 130], { seed: 46 }), P.randn([130, 70], { seed: 47 }), { transB: false }));
    out.transposed = await h(P.matmul(r, r, { transB: true }));
    out.longK = await h(P.matmul(P.randn([32, 8192], { seed: 52 }), P.randn([8192, 48], { seed: 53 })));
    const q = P.randn([2, 200, 4, 32], { seed: 48 });
    const k = P.randn([2, 333, 4, 32], { seed: 49 });
    const v = P.randn([2, 333, 4, 24], { seed: 50 });
    const mask = P.greater(P.rand([2, 200, 333], { seed: 51 }), 0.2);
    out.attention = await h(P.attention(q, k, v));
    out.masked = await h(P.attention(q, k, v, { mask }));
    // Few (batch, head, query block) units over many keys: the keys are split, and
    // the merge of the partials must not follow the thread count.
    out.keySplits = await h(P.attention(P.randn([1, 1, 4, 64], { seed: 60 }), P.randn([1, 5000, 4, 64], { seed: 61 }), P.randn([1, 5000, 4, 64], { seed: 62 })));
    // The fused gradient, with one key range per (batch, head) and (one head over 1,200
    // keys) with several, whose dQ partials are summed.
    const gradOf = async (qs, ks, vs, m) => {
      const [lq, lk, lv] = [qs, ks, vs].map((x) => { const l = P.add(x, 0); l.requiresGrad = true; return l; });
      const o = P.attention(lq, lk, lv, { mask: m });
      P.backward(o, { gradient: P.randn(o.shape, { seed: 56 }) });
      return h(P.concat([lq.grad, lk.grad, lv.grad].map((g) => P.reshape(g, [-1])), 0));
    };
    out.attentionGrad = await gradOf(q, k, v, mask);
    out.attentionGradRanges = await gradOf(P.randn([1, 200, 1, 32], { seed: 57 }), P.randn([1, 1200, 1, 32], { seed: 58 }), P.randn([1, 1200, 1, 24], { seed: 59 }), null);
    out.reductions = await h(P.concat([P.sum(r, 0), P.mean(r, 0), P.max(r, 0)], 0));
    out.softmax = await h(P.layerNorm(P.softmax(r)));
    const pl = P.randn([100003], { seed: 54 });
    const [ml, vl] = [P.zeros([100003]), P.zeros([100003])];
    P.lambUpdate(pl, P.randn([100003], { seed: 55 }), ml, vl, { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01, step: 1 });
    out.lamb = await h(P.concat([pl, ml, vl], 0));
    console.log(JSON.stringify(out));`;
  const runs = await Promise.all(
    ['1', '2', '3'].map(async (n) => {
      const r = await runNode(code, { PERCEIVER_NUM_THREADS: n });
      t.is(r.code, 0, r.stderr);
      return lastJson(r.stdout);
    }),
  );
  t.deepEqual(runs.map((r) => r.threads), [1, 2, 3]);
  const strip = ({ threads: _threads, ...rest }: Record<string, any>) => rest;
  t.deepEqual(strip(runs[1]), strip(runs[0]), '2 threads vs 1');
  t.deepEqual(strip(runs[2]), strip(runs[0]), '3 threads vs 1');
  // The same values as this process (whatever its thread count).
  const here = createHash('sha256');
  const d = P.randn([300, 257], { seed: 42 }).dataSync();
  here.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  t.is(here.digest('hex'), runs[0].randn);
});

test('build-cuda.mjs puts the library beside the addon that loads: build/Release when compiled, else the prebuild folder unless it ships one', async (t) => {
  type Targets = string | [string, boolean][];
  const { cudaTargets } = (await import(pathToFileURL(join(ROOT, 'scripts', 'build-cuda.mjs')).href)) as { cudaTargets: (root: string, tuple: string, release?: boolean) => Targets };
  const root = mkdtempSync(join(tmpdir(), 'perceiver-cuda-targets-'));
  try {
    const [compiled, prebuilt] = [join(root, 'build', 'Release'), join(root, 'prebuilds', 'linux-arm64')];
    mkdirSync(prebuilt, { recursive: true });
    writeFileSync(join(prebuilt, 'perceiver-io.glibc.node'), '');
    t.deepEqual(cudaTargets(root, 'linux-arm64'), [[prebuilt, false]], 'a prebuilt addon without a library (linux-arm64): built into its folder');
    writeFileSync(join(prebuilt, 'perceiver_cuda.so'), '');
    t.regex(cudaTargets(root, 'linux-arm64') as string, /using the prebuilt addon and its CUDA library: nothing to build/);
    mkdirSync(compiled, { recursive: true });
    writeFileSync(join(compiled, 'perceiver.node'), '');
    t.deepEqual(cudaTargets(root, 'linux-arm64'), [[compiled, false]], 'a compiled addon: beside it');
    t.deepEqual(cudaTargets(root, 'linux-arm64', true), [[compiled, false], [prebuilt, true]], '--prebuild: a stripped copy in prebuilds/ too');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('build-cuda.mjs reads the nvcc a build folder was configured with (a folder configured with another one starts over)', async (t) => {
  const { cachedCudaCompiler } = (await import(pathToFileURL(join(ROOT, 'scripts', 'build-cuda.mjs')).href)) as { cachedCudaCompiler: (dir: string) => string | null };
  const dir = mkdtempSync(join(tmpdir(), 'perceiver-build-cuda-'));
  try {
    t.is(cachedCudaCompiler(dir), null, 'no cache: nothing to compare');
    for (const type of ['STRING', 'FILEPATH']) {
      writeFileSync(join(dir, 'CMakeCache.txt'), `# cache\nCMAKE_CUDA_COMPILER-ADVANCED:INTERNAL=1\nCMAKE_CUDA_COMPILER:${type}=/opt/cuda-12.4/bin/nvcc\n`);
      t.is(cachedCudaCompiler(dir), '/opt/cuda-12.4/bin/nvcc', type);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
