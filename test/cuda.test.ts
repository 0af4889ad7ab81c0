// The CUDA backend's memory and execution model, on a machine with a GPU (skipped
// elsewhere; the kernels' values are covered by the whole suite run with
// PERCEIVER_TEST_DEVICE=cuda, see docs/DEVICE.md): transfers both ways and
// between queues keep issue order; mixed devices are an error; memory() counts
// CUDA tensors and the caching allocator's blocks, and emptyCache() returns them;
// running out of memory and a bad embedding id reject data() with the op's name
// instead of crashing; the CPU and CUDA random streams agree; the fused optimizer
// updates and the training kernels agree with the CPU's, deterministically.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as P from '../lib/index.js';
import type { Tensor } from '../lib/index.js';
import { native } from '../lib/native.js';
import { wrap } from '../lib/tensor.js';
import { randomArray } from './helpers/reference.js';

const cuda = P.backends()[1].available ? test : test.skip;
// Tests that count live tensors and cached bytes run alone: ava runs a file's other tests concurrently.
const cudaSerial = P.backends()[1].available ? test.serial : test.skip;

cuda('to(): cpu -> cuda -> cpu round-trips every dtype bit for bit, and ordering follows issue order', async (t) => {
  const src = randomArray(100_003, 1, -5, 5);
  for (const dtype of ['float32', 'bfloat16', 'float16', 'int32', 'uint8'] as const) {
    const x = P.tensor(src, undefined, { device: 'cpu' }).cast(dtype);
    const back = x.to('cuda').to('cpu');
    t.is(back.device, 'cpu');
    t.deepEqual(Array.from(await back.data()), Array.from(await x.data()), dtype);
  }
  // A large transfer crosses several 16 MiB staging chunks.
  const big = P.randn([5_000_000], { seed: 7, device: 'cpu' });
  t.deepEqual(await big.to('cuda').to('cpu').data(), await big.data());
  // Produced on the GPU, read on the CPU right after: the copy waits for the kernel.
  const g = P.arange(0, 1000, 1, { device: 'cuda' }).mul(2);
  const c = g.to('cpu').add(1);
  t.deepEqual(Array.from(await c.data()).slice(0, 4), [1, 3, 5, 7]);
});

cuda('to(): the copy holds the values of when to() was called, whatever in-place writes are issued right after it, both ways', async (t) => {
  // Optimizer steps write parameters in place: a snapshot taken before a step must not
  // see it. Large tensors keep the copies slow enough for a late write to overtake them.
  const n = 8_000_000;
  for (let round = 0; round < 5; round++) {
    const g = P.full([n], round + 1, { device: 'cuda' });
    const snap = g.to('cpu');
    P.assign(g, P.zeros([n], { device: 'cuda' }));
    const c = P.full([n], round + 1, { device: 'cpu' });
    const up = c.to('cuda');
    P.assign(c, P.zeros([n], { device: 'cpu' }));
    const [s, u] = [await snap.data(), await up.data()];
    t.true(s.every((v) => v === round + 1), `cuda -> cpu round ${round}: the snapshot saw a later write`);
    t.true(u.every((v) => v === round + 1), `cpu -> cuda round ${round}: the copy saw a later write`);
    t.is((await g.data())[n - 1], 0);
    for (const x of [g, snap, c, up]) x.dispose();
  }
});

cuda('ops on tensors of two devices are an Error that says to move one with .to()', (t) => {
  const a = P.zeros([2], { device: 'cpu' });
  const b = P.zeros([2], { device: 'cuda' });
  t.throws(() => P.add(a, b), { message: /add: argument 'b' is on cuda:0 but 'a' is on cpu; move one with \.to\(\) first/ });
  t.throws(() => P.matmul(b.reshape([1, 2]), a.reshape([2, 1])), { message: /is on cpu but 'a' is on cuda:0/ });
});

cudaSerial('memory() counts cuda tensors and bytes; emptyCache() returns the cached blocks', async (t) => {
  P.emptyCache();
  const before = P.memory().cuda;
  const x = P.zeros([1024, 1024], { device: 'cuda' });
  await x.data();
  const during = P.memory().cuda;
  t.is(during.tensors, before.tensors + 1);
  t.is(during.bytes, before.bytes + 4 * 1024 * 1024);
  x.dispose();
  const after = P.memory().cuda;
  t.is(after.bytes, before.bytes);
  t.true(after.cachedBytes >= 4 * 1024 * 1024, `cached ${after.cachedBytes}`);
  P.emptyCache();
  t.is(P.memory().cuda.cachedBytes, 0);
});

cuda('out of memory rejects data() with the op and the size, and the process keeps working', async (t) => {
  const huge = P.zeros([2 ** 40], { device: 'cuda' }); // 4 TiB
  // Allocation happens in the queue: the failure rejects the next read of anything
  // that depends on it (a slice here: the whole would not fit one ArrayBuffer anyway).
  const err = await t.throwsAsync(P.slice(huge, 0, 0, 3).data());
  t.regex(err!.message, /full: out of memory: could not allocate 4398046511104 bytes on cuda:0/);
  huge.dispose();
  t.deepEqual(Array.from(await P.ones([3], { device: 'cuda' }).data()), [1, 1, 1]);
});

cuda('a bad embedding id rejects data() with the id and position, as on the cpu', async (t) => {
  const table = P.zeros([5, 3], { device: 'cuda' });
  const ids = P.tensor([1, 7, 2], [3], { dtype: 'int32', device: 'cuda' });
  const err = await t.throwsAsync(P.embedding(table, ids).data());
  t.regex(err!.message, /embedding: index 7 at position 1 is out of range \[0, 5\) of the embedding table/);
});

cuda('ids computed on the gpu are checked there; ids from the host, whose bounds are known, report a bad id too', async (t) => {
  const table = P.arange(0, 15, 1, { device: 'cuda' }).reshape([5, 3]);
  const made = P.arange(0, 7, 1, { dtype: 'int32', device: 'cuda' }); // bounds unknown: checked on the device
  t.is(native.int32Bounds(made.handle), null);
  const e1 = await t.throwsAsync(P.embedding(table, made).data());
  t.regex(e1!.message, /embedding: index 5 at position 5 is out of range \[0, 5\)/);
  const copied = P.tensor([4, 0, 6], [3], { dtype: 'int32', device: 'cpu' }).to('cuda');
  const e2 = await t.throwsAsync(P.oneHot(copied, 5).data());
  t.regex(e2!.message, /one_hot: index 6 at position 2 is out of range \[0, 5\)/);
  const good = P.tensor([4, 0, 2], [3], { dtype: 'int32', device: 'cpu' }).to('cuda');
  t.deepEqual(Array.from(await P.embedding(table, good).data()), [12, 13, 14, 0, 1, 2, 6, 7, 8]);
  t.deepEqual(native.int32Bounds(good.handle), [0, 4], 'learnt by the copy, which data() waited for');
});

cuda('randn and rand give the cpu values for the same seed', async (t) => {
  const a = await P.randn([10_001], { seed: 123, device: 'cuda' }).data();
  const b = await P.randn([10_001], { seed: 123, device: 'cpu' }).data();
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  t.true(worst <= 1e-6, `worst difference ${worst}`);
  const u = await P.rand([5000], { seed: 9, device: 'cuda' }).data();
  const v = await P.rand([5000], { seed: 9, device: 'cpu' }).data();
  t.deepEqual(Array.from(u), Array.from(v));
});

cuda('matmul through cuBLASLt matches the cpu on odd shapes, views and broadcast batches (float32, 1e-5)', async (t) => {
  const cases: [number[], number[], P.MatmulOptions][] = [
    [[1, 1], [1, 1], {}],
    [[7, 13], [13, 5], { activation: 'relu' }],
    [[3, 33, 65], [65, 17], { activation: 'gelu' }],
    [[2, 3, 31, 9], [2, 1, 9, 30], {}],
    [[40, 24], [50, 24], { transB: true, activation: 'gelu_tanh' }],
    [[24, 40], [24, 50], { transA: true, alpha: 0.5 }],
  ];
  let seed = 1;
  for (const [sa, sb, opts] of cases) {
    const a = P.randn(sa, { seed: seed++, device: 'cpu' });
    const b = P.randn(sb, { seed: seed++, device: 'cpu' });
    const n = opts.transB ? sb[sb.length - 2] : sb[sb.length - 1];
    const bias = P.randn([n], { seed: seed++, device: 'cpu' });
    const want = await P.matmul(a, b, { ...opts, bias }).data();
    const got = await P.matmul(a.to('cuda'), b.to('cuda'), { ...opts, bias: bias.to('cuda') }).data();
    // Relative to |want| plus the output's RMS: a GELU output near 0 carries the rounding
    // of its pre-activation, a sum of K products of the RMS's size.
    const rms = Math.sqrt(Array.from(want).reduce((s, v) => s + v * v, 0) / want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + rms));
    t.true(worst <= 1e-5, `${JSON.stringify([sa, sb, opts])}: worst relative error ${worst}`);
  }
});

/** Largest |got - want| / (|want| + atol) over all elements. */
function worstError(got: ArrayLike<number>, want: ArrayLike<number>, atol: number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + atol));
  return worst;
}

// 16-bit attention calls of 2^30 flops and up that both forwards take are timed both
// ways on their shape's first call (native/cuda/attention_tune.h); the call's result must
// still be the chosen path's, the same bits as every later call's.
cuda('16-bit attention over 2^30 flops: the first call, timed both ways, gives the bits of later calls, within tolerance of float32', async (t) => {
  // A padding mask [B, 1, Nk] (a view broadcast over the queries): the second batch
  // row's last 300 keys masked.
  const pad = new Uint8Array(2 * 1024).fill(1);
  pad.fill(0, 1024 + 724);
  const cases: [string, number[], number[], boolean][] = [
    ['one 261-wide head over 4096 keys (the image encoders\' kind)', [1, 512, 1, 261], [1, 4096, 1, 261], false],
    ['8 heads of 128 over 1024 keys, batch 2', [2, 1024, 8, 128], [2, 1024, 8, 128], false],
    ['8 heads of 128 over 1024 keys, batch 2, a padding mask', [2, 1024, 8, 128], [2, 1024, 8, 128], true],
  ];
  for (const dtype of ['bfloat16', 'float16'] as const) {
    for (const [what, qs, ks, masked] of cases) {
      const q32 = P.randn(qs, { seed: 31, device: 'cuda' });
      const k32 = P.randn(ks, { seed: 32, device: 'cuda' });
      const v32 = P.randn(ks, { seed: 33, device: 'cuda' });
      const [q, k, v] = [q32, k32, v32].map((x) => x.cast(dtype));
      const mask = masked ? P.tensor(pad, [2, 1, 1024], { dtype: 'uint8', device: 'cuda' }) : undefined;
      const first = await P.attention(q, k, v, { mask }).cast('float32').data();
      const later = await P.attention(q, k, v, { mask }).cast('float32').data();
      t.deepEqual(Array.from(later), Array.from(first), `${dtype} ${what}: a later call differs from the first`);
      const want = await P.attention(q.cast('float32'), k.cast('float32'), v.cast('float32'), { mask }).data();
      // Outputs are weighted means of ~400 N(0, 1) values (typically 0.05 in size), and each
      // weight is rounded to the dtype before it meets V, as in flash attention. Over 2M
      // outputs that rounding's tail reaches 3e-4 absolute in bfloat16 (0.030 relative at
      // atol 1e-2 on an H200), so bfloat16 is measured against the outputs' size. A wrong
      // path or wrong bits are off by O(1).
      const worst = worstError(first, want, dtype === 'bfloat16' ? 3e-2 : 1e-2);
      t.true(worst <= (dtype === 'bfloat16' ? 3e-2 : 5e-3), `${dtype} ${what}: worst relative error ${worst}`);
    }
  }
});

/**
 * Runs `body` (an ES module's text after `import * as P from` the library) in a child
 * process with `env` added: for the CUDA switches, which each process reads once.
 */
function runWithEnv(body: string, env: Record<string, string>) {
  const lib = new URL('../lib/index.js', import.meta.url).href;
  return spawnSync(process.execPath, ['--input-type=module', '-e', `import * as P from ${JSON.stringify(lib)};\n${body}`], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
}

// The single-head encoders attend to their input with k = v = X (models/fast-attention.ts),
// which the fixed-width kernel's 272 and 336 classes take with one shared-memory tile
// for both. In a process with the tuning off, so that the fused kernel runs whatever
// the products' speed.
cuda('the single-head encoders\' calls (k and v one tensor, 261 and 322 wide) in the fused kernel match float32', (t) => {
  const script = `const out = [];
    for (const [c, nq, nk, masked] of [[261, 512, 3000, false], [261, 70, 1000, true], [322, 200, 2000, true]]) {
      const q32 = P.randn([2, nq, 1, c], { seed: 41, device: 'cuda' });
      const x32 = P.randn([2, nk, 1, c], { seed: 42, device: 'cuda' });
      const pad = new Uint8Array(2 * nk).fill(1);
      pad.fill(0, nk + nk - 300);
      const mask = masked ? P.tensor(pad, [2, 1, nk], { dtype: 'uint8', device: 'cuda' }) : undefined;
      for (const dtype of ['bfloat16', 'float16']) {
        const [q, x] = [q32.cast(dtype), x32.cast(dtype)];
        const got = await P.attention(q, x, x, { mask }).cast('float32').data();
        // From the inputs as rounded, in float32 (the products).
        const xf = x.cast('float32');
        const want = await P.attention(q.cast('float32'), xf, xf, { mask }).data();
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + 1e-2));
        out.push({ c, nq, nk, masked, dtype, worst });
      }
    }
    console.log(JSON.stringify(out));`;
  const r = runWithEnv(script, { PERCEIVER_CUDA_ATTENTION_TUNE: '0' });
  t.is(r.status, 0, r.stderr);
  const rows = JSON.parse(r.stdout.trim().split('\n').pop()!) as { c: number; dtype: string; masked: boolean; worst: number }[];
  t.is(rows.length, 6);
  for (const row of rows) t.true(row.worst <= (row.dtype === 'bfloat16' ? 3e-2 : 5e-3), JSON.stringify(row));
});

cuda('PERCEIVER_CUDA_ATTENTION_TUNE=verbose prints each shape\'s timing once; =0 times nothing', (t) => {
  const script = `const q = P.randn([1, 512, 1, 261], { seed: 1, device: 'cuda' }).cast('bfloat16');
    const x = P.randn([1, 4096, 1, 261], { seed: 2, device: 'cuda' }).cast('bfloat16');
    for (let i = 0; i < 3; i++) await P.attention(q, x, x).data();`;
  const lines = (mode: string) => {
    const r = runWithEnv(script, { PERCEIVER_CUDA_ATTENTION_TUNE: mode });
    t.is(r.status, 0, r.stderr);
    return r.stderr.split('\n').filter((l) => l.includes('attention tuning'));
  };
  const verbose = lines('verbose');
  t.is(verbose.length, 1, verbose.join('\n'));
  // The fused side there is the encoders' class (k and v one tensor): the warpgroup
  // kernel's on compute capability 9.0 (H100, H200), the fixed-width kernel's elsewhere.
  t.regex(verbose[0], /attention tuning \[B1 H1 Nq512 Nk4096 Dqk261 Dv261 bfloat16\]: fused \d+\.\d+ ms \((fixed 272x272 tcf|wgmma 272x272)\), products (\d+\.\d+|inf) ms; takes (the products|the fused kernel)$/);
  t.deepEqual(lines('0'), []);
});

// The cuBLASLt search (a candidate): one account per shape, and its pick computes the
// same product as the heuristic's (bf16 within its rounding of the float32 product).
cuda('PERCEIVER_CUDA_GEMM_TUNE=search-verbose accounts for each shape once, and its product matches float32', (t) => {
  const script = `const a32 = P.randn([2048, 1280], { seed: 5, device: 'cuda' });
    const b32 = P.randn([1280, 1280], { seed: 6, device: 'cuda' });
    const [a, b] = [a32.cast('bfloat16'), b32.cast('bfloat16')];
    let got;
    for (let i = 0; i < 3; i++) got = await P.matmul(a, b).cast('float32').data();
    const want = await P.matmul(a.cast('float32'), b.cast('float32')).data();
    let ss = 0, worst = 0;
    for (const w of want) ss += w * w;
    const rms = Math.sqrt(ss / want.length);
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + rms));
    console.log(JSON.stringify({ worst }));`;
  for (const mode of ['search-verbose', 'search']) {
    const r = runWithEnv(script, { PERCEIVER_CUDA_GEMM_TUNE: mode });
    t.is(r.status, 0, r.stderr);
    const { worst } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { worst: number };
    t.true(worst <= 1.6e-2, `${mode}: worst relative error ${worst}`);
    const lines = r.stderr.split('\n').filter((l) => l.includes('matmul search'));
    if (mode === 'search') {
      t.deepEqual(lines, []);
      continue;
    }
    // The float32 reference is searched too, on its own line.
    t.true(lines.some((l) => l.includes('matmul search float32 [2048, 1280]')), lines.join('\n'));
    lines.splice(lines.findIndex((l) => l.includes('matmul search float32')), 1);
    t.is(lines.length, 1, lines.join('\n'));
    t.regex(lines[0], /^perceiver cuda: matmul search bfloat16 \[2048, 1280\] x \[1280, 1280\] batch 1, .*: \d+ heuristic and \d+ searched configurations \(\d+ checked, \d+\.\d ms on the host\), \d+ timed; heuristic's fastest #\d+ \d+\.\d+ ms .*; fastest: #\d+ .*; keeps #\d+$/);
  }
});

cuda("fused optimizer updates on cuda match the cpu kernels, and LAMB's device-side norms are deterministic", async (t) => {
  const n = 300_007;
  const rules: [string, (p: Tensor, g: Tensor, s: Tensor[], step: number) => void][] = [
    ['adamUpdate', (p, g, [m, v], step) => P.adamUpdate(p, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.05, step })],
    ['lambUpdate', (p, g, [m, v], step) => P.lambUpdate(p, g, m, v, { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.1, step })],
    ['sgdUpdate', (p, g, [b], _step) => P.sgdUpdate(p, g, b, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
  ];
  for (const [name, rule] of rules) {
    const results: Float32Array[][] = [];
    for (const device of ['cpu', 'cuda', 'cuda'] as const) {
      const p = P.tensor(randomArray(n, 1), [n], { device });
      const s = [P.zeros([n], { device }), P.zeros([n], { device })];
      for (let step = 1; step <= 3; step++) {
        const g = P.tensor(randomArray(n, 10 + step), [n], { device });
        rule(p, g, s, step);
        g.dispose();
      }
      results.push(await Promise.all([p, ...s].map(async (x) => (await x.data()) as Float32Array)));
      for (const x of [p, ...s]) x.dispose();
    }
    results[0].forEach((want, i) => {
      const worst = worstError(results[1][i], want, 1e-3);
      t.true(worst <= 1e-5, `${name} output ${i}: worst relative error ${worst}`);
      t.deepEqual(results[2][i], results[1][i], `${name} output ${i}: two cuda runs differ`);
    });
  }
});

cuda('training kernels on cuda (layer norm, gelu, max pool, softmax) match the cpu in float32, bfloat16 and float16, bit for bit run to run', async (t) => {
  t.true(native.hasBackwardKernels('cuda'), 'the cuda backend reports its training kernels');
  const [rows, c] = [1031, 77];
  const x = P.tensor(randomArray(rows * c, 1, -3, 3), [rows, c], { device: 'cpu' });
  const g = P.tensor(randomArray(rows * c, 2), [rows, c], { device: 'cpu' });
  const w = P.tensor(randomArray(c, 3, 0.5, 1.5), [c], { device: 'cpu' });
  const img = P.tensor(randomArray(2 * 9 * 11 * 5, 4), [2, 9, 11, 5], { device: 'cpu' });
  const pool = P.maxPool2d(img, { kernel: 3, stride: 2, padding: 'same' });
  const gp = P.tensor(randomArray(pool.size, 5), [...pool.shape], { device: 'cpu' });
  const sm = P.softmax(x, -1);
  const tol = { float32: 1e-4, bfloat16: 3e-2, float16: 5e-3 } as const;
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    // The cpu reference runs in float32 on the inputs rounded to dtype.
    const r = (t: Tensor) => t.cast(dtype).cast('float32');
    const on = (t: Tensor) => t.cast(dtype).to('cuda');
    const runs = (dev: 'cpu' | 'cuda') => {
      const prep = dev === 'cpu' ? r : on;
      const [gx, gw, gb] = native.layerNormBackward(prep(x).handle, prep(w).handle, prep(g).handle, 1e-5, true, true);
      return [
        wrap(gx), wrap(gw!), wrap(gb!),
        wrap(native.geluBackward(prep(x).handle, prep(g).handle, false)),
        wrap(native.geluBackward(prep(x).handle, prep(g).handle, true)),
        wrap(native.maxPool2dBackward(prep(img).handle, prep(gp).handle, 3, 3, 2, 2, 'same')),
        // Softmax's gradient from its output, in dtype and from float32 into dtype (the
        // attention gradient's use): the cpu computes in float32 and rounds once.
        wrap(native.softmaxBackward(prep(sm).handle, prep(g).handle, dev === 'cpu' ? 'float32' : dtype)),
        wrap(native.softmaxBackward((dev === 'cpu' ? sm : sm.to('cuda')).handle, (dev === 'cpu' ? g : g.to('cuda')).handle, dev === 'cpu' ? 'float32' : dtype)),
      ];
    };
    const want = await Promise.all(runs('cpu').map((v) => v.data()));
    const got = await Promise.all(runs('cuda').map((v) => v.cast('float32').data()));
    const again = await Promise.all(runs('cuda').map((v) => v.cast('float32').data()));
    ['layer norm gx', 'layer norm gw', 'layer norm gb', 'gelu', 'gelu tanh', 'max pool', 'softmax', 'softmax from float32'].forEach((name, i) => {
      const worst = worstError(got[i], want[i], 1e-1);
      t.true(worst <= tol[dtype], `${name} ${dtype}: worst relative error ${worst}`);
      t.deepEqual(again[i], got[i], `${name} ${dtype}: two runs differ`);
    });
  }
});
