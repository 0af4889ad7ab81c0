// The CUDA kernels that native/cuda/emu compiles for the CPU (attention.cu's forward
// through every tier, path and key split, float32's SIMT kernel included;
// attention_gemm.cu's composed forward and gradient, its cuBLASLt products as plain
// loops; attention_tune.cu's timed choice between the two, on the host's clock;
// attention_backward.cu's flash gradient; backward.cu's gradients; update.cu, random.cu, embedding.cu, conv2d.cu,
// pool.cu and batchnorm.cu; the 16-byte binary and layer-norm kernels of
// elementwise.cu and reduce.cu with their fallbacks) run here from their own source
// against double-precision references, so a kernel's index arithmetic, fragment
// layouts and dispatch are checked on every CI run, GPU or not; their asynchronous
// copies land only when waited for, and a shared-memory race (two threads' accesses
// with no barrier between them, one a copy) fails a check even where the numbers come
// out right. This is not a GPU run: what only hardware does (timing, scheduling, the
// tensor cores' own rounding) is left to scripts/device-check.sh. Needs g++ (or $CXX) and the CUDA headers (found
// next to nvcc, or in $CUDA_HOME or /usr/local/cuda); skipped, and says so, without them.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function cudaInclude(): string | null {
  const candidates: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const nvcc = join(dir, 'nvcc');
    if (dir && existsSync(nvcc)) candidates.push(join(dirname(realpathSync(nvcc)), '..', 'include'));
  }
  if (process.env.CUDA_HOME) candidates.push(join(process.env.CUDA_HOME, 'include'));
  candidates.push('/usr/local/cuda/include');
  return candidates.find((d) => existsSync(join(d, 'cuda_bf16.h'))) ?? null;
}

const include = cudaInclude();
const emuDir = join(root, 'native', 'cuda', 'emu');
const cudaDir = join(root, 'native', 'cuda');
/** The emulation's own files (its .cc units among them) and the kernel sources they include. */
const sources = () => [
  ...readdirSync(emuDir).map((f) => join(emuDir, f)),
  ...readdirSync(cudaDir).filter((f) => /\.(cu|cuh|h)$/.test(f)).map((f) => join(cudaDir, f)),
];

/** The emulation binary, rebuilt when any source under native/cuda is newer. */
function build(t: import('ava').ExecutionContext): string | null {
  const out = join(root, 'build', 'cuda-emu');
  const bin = join(out, 'emu_check');
  const files = sources();
  const newest = Math.max(...files.map((f) => statSync(f).mtimeMs));
  if (existsSync(bin) && statSync(bin).mtimeMs >= newest) return bin;
  mkdirSync(out, { recursive: true });
  const cxx = process.env.CXX ?? 'g++';
  const units = files.filter((f) => f.endsWith('.cc'));
  // No contracted multiply-adds: the bit-for-bit checks compare with references that
  // round each operation, as the kernels' _rn intrinsics do.
  const flags = ['-std=c++20', '-O1', '-ffp-contract=off', '-Wall', '-Wno-unknown-pragmas'];
  const r = spawnSync(cxx, [...flags, `-I${include}`, '-Inative', ...units, '-o', bin], {
    cwd: root,
    encoding: 'utf8',
    timeout: 4 * 60_000,
  });
  if (r.status !== 0) {
    t.fail(`${cxx} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr ?? r.error}`);
    return null;
  }
  return bin;
}

/**
 * Runs the checks with `env` added, asserting that none failed and the binary exited
 * 0; returns the failure and check counts of its last line and its PASS lines.
 */
function run(t: import('ava').ExecutionContext, bin: string, args: string[], env: Record<string, string>, what: string) {
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 3 * 60_000, env: { ...process.env, ...env } });
  const out = `${r.stdout}\n${r.stderr}`;
  const lines = out.split('\n');
  const failed = lines.filter((l) => l.startsWith('FAIL'));
  t.deepEqual(failed, [], `${what}:\n${failed.join('\n')}`);
  t.is(r.status, 0, out.slice(-2000));
  const m = /^(OK|FAILED): (\d+) failure\(s\) in (\d+) checks$/m.exec(out);
  return { out, failures: m ? Number(m[2]) : -1, checks: m ? Number(m[3]) : 0, passed: (re: RegExp) => lines.filter((l) => re.test(l)).length };
}

const maybe = include ? test.serial : test.skip;
if (!include) console.log('cuda-emu: no CUDA headers (cuda_bf16.h) next to nvcc, in $CUDA_HOME or /usr/local/cuda: skipped');

type Family = (name: string, env?: Record<string, string>, what?: string, filter?: string) => ReturnType<typeof run>;
/**
 * A test over the emulation binary (built if missing or stale): `family` runs one
 * family of its checks, the attention and composed shapes whose names contain `filter`.
 */
function emulated(title: string, body: (t: import('ava').ExecutionContext, family: Family) => void) {
  maybe(title, (t) => {
    t.timeout(5 * 60_000);
    const bin = build(t);
    if (bin) body(t, (name, env = {}, what = name, filter) => run(t, bin, filter ? [name, filter] : [name], env, what));
  });
}

emulated('the attention kernels, emulated on the CPU, match the reference through every tier, path and key split', (t, family) => {
  // Unset, the public entry (path 0) takes the fixed-width kernel at the widths it has
  // (two row tiles per warp where its 128-row blocks fill the SMs, else 4 warps of one)
  // and the occupancy tiers 7 and 8 where their blocks fill the SMs; with
  // FIXED=8 and OCCUPANCY=1, the 8-warp variant and the occupancy tiers everywhere.
  // Unset, the fixed-width kernel writes 16-bit rows of whole 16-byte units through
  // shared memory; switched, OSTORE=1 has it write them in pairs, as the others do.
  const switched = {
    PERCEIVER_CUDA_ATTENTION_OCCUPANCY: '1',
    PERCEIVER_CUDA_ATTENTION_FIXED: '8',
    PERCEIVER_CUDA_ATTENTION_OSTORE: '1',
  };
  for (const env of [{}, switched]) {
    const what = JSON.stringify(env);
    const r = family('attention', env, what);
    t.is(r.failures, 0);
    // 18 shapes: bf16 and fp16 through 11 paths, fp32 through 3, each with 1 and 3 key
    // ranges, less the paths a shape lacks; and one routing shape through auto. The
    // 14th, 128 wide, has a mask broadcast over the queries (stride 0, as padding masks
    // come), whose other rows are inverted: a kernel that reads them fails. The 15th to
    // 17th are the single-head encoders' calls, k and v one array.
    t.true(r.checks >= 330, `${what}: ${r.checks} checks ran`);
    // Not one race anywhere (a race fails its check; this says so by name).
    t.false(/race\(s\)/.test(r.out), what);
    // Every call asked for its rows' log-sum-exp too (the flash gradient's). The
    // fixed-width kernel wrote it, matching the reference, at the flash gradient's widths
    // in one key range (128, qk 32 / v 160, 64, 32, and 120 in the 128 class; masked
    // rows too); so did the warpgroup kernel's ping-pong tiers (path 15) at 128 (five
    // shapes, one of them bf16 only), qk 32 / v 160 (three, one bf16 only), 64 and 32:
    // 18; every other path left it untouched, for the backend's own pass.
    t.false(/ of tol -> /.test(r.out), `${what}: a check without the log-sum-exp`);
    t.true(r.passed(/ of tol, lse written \d+\.\d+ -> fixed (128x128|32x160|64x64|32x32) tcf[23]? *$/) >= 30, what);
    t.is(r.passed(/ path 15 .* of tol, lse written \d+\.\d+ -> wgmmap (128x128|32x160|64x64|32x32)$/), 20, what);
    t.is(r.passed(/ path 16 .* of tol, lse written \d+\.\d+ -> wgmmak (128x128|32x160)$/), 16, what);
    t.is(
      r.passed(/ of tol, lse written .* -> (?!fixed (128x128|32x160|64x64|32x32) tcf[23]? *$|wgmmap (128x128|32x160|64x64|32x32)$|wgmmak (128x128|32x160)$)/),
      0,
      what,
    );
    // The occupancy variant (path 14, tcf3) at the language model's two classes: 3
    // shapes, 2 dtypes, 1 and 3 key ranges.
    t.is(r.passed(/^PASS .* path 14 .* -> fixed 32x(160|96) tcf3 *$/), 12, what);
    t.is(r.passed(/^PASS .* splits 3 .* lse written /), 0, `${what}: merged key ranges`);
    // The occupancy tiers (path 7) ran at the widths they serve: 128 (three times), 96,
    // 160 (twice), 150, 261 (twice), 264, the 272-wide chunks of a 520-wide head, 96 and
    // 120.
    t.is(r.passed(/^PASS .* path 7 /), 52, what);
    // The fixed-width kernel: 4 warps (path 8) at 64, 128 (twice), qk 32 / v 160
    // (twice), qk 32 / v 96, 32, 120 and the encoders' classes, k and v one array (261
    // at stride 261 and 264 in place in the 272 class, 322 in the 336 class; not 261
    // with k and v apart, nor 128-wide heads at odd strides, whose Q it reads with
    // 16-byte copies); 8 warps (path 9) at 128 (twice), 120 and qk 32 / v 160 (twice);
    // 4 warps of two row tiles (path 10) at 128 (twice) and 120. Path 8 also twice more
    // at qk 32 / v 160 with its output off 16-byte alignment (out-shift, below).
    t.is(r.passed(/^PASS .* path 8 /), 46, what);
    t.is(r.passed(/^PASS .* path 9 /), 20, what);
    t.is(r.passed(/^PASS .* path 10 /), 12, what);
    // The warpgroup kernel (paths 11 and 12, two and one warpgroups per block; the
    // emulation's device is an H100) at its classes: 64, 128 (three times, once at odd
    // strides), qk 32 / v 160 (twice), qk 32 / v 96, 32, 120 and (two warpgroups only)
    // 261 (twice) and 264, whose unaligned rows it takes (Q read element by element, K
    // and V through the padded copies), and once more each at 128 and qk 32 / v 160 over
    // enough keys that its stages are reused while both warpgroups of a block hold rows
    // (bf16 only), and at 128, qk 32 / v 160 and qk 32 / v 96 over five, five and four
    // 128-key tiles. Path 15 (two warpgroups apart, taking turns: the ping-pong tiers) at
    // the classes of path 12; path 16 (two warpgroups over 128-key tiles) at 128 (four
    // times), qk 32 / v 160 (twice) and qk 32 / v 96, and the stage-reusing shapes of
    // its classes. Under auto by default only at the encoders' 272 class (261 with k and
    // v apart or one array, 264), elsewhere only switched on.
    t.is(r.passed(/^PASS .* path 11 /), 53, what);
    t.is(r.passed(/^PASS .* path 12 /), 41, what);
    t.is(r.passed(/^PASS .* path 15 /), 41, what);
    t.is(r.passed(/^PASS .* path 15 .* -> wgmmap /), 41, `${what}: path 15 never falls back to another tier`);
    t.is(r.passed(/^PASS .* path 16 /), 33, what);
    t.is(r.passed(/^PASS .* path 16 .* -> wgmmak /), 33, `${what}: path 16 never falls back to another tier`);
    t.is(r.passed(/ path 0 .*-> wgmma 272x272$/), 12, `${what}: the warpgroup kernel under auto at the encoders' class`);
    t.is(r.passed(/ path 0 .*-> wgmma(?! 272x272$)/), 0, `${what}: and nowhere else`);
    // The layout probes: every output element reads exactly the V element it should
    // through the fixed-width kernel (5 classes; the encoders' take no probe, whose K
    // and V differ; its occupancy variant at the 2 it has) and the warpgroup kernel (6
    // with two warpgroups, 5 with one, 5 with two taking turns, 3 over 128-key tiles), V
    // holding its key index and then its column index.
    t.is(r.passed(/^PASS probe (keys|columns) +(tcf|tcf3|tcg|tcg1|tcgp|tcgk) +qk\d+ v\d+ +ok -> (fixed|wgmma[1pk]?) /), 52, what);
    t.is(r.passed(/^PASS probe (keys|columns) +tcf3 +qk32 v(160|96) +ok -> fixed 32x(160|96) tcf3 *$/), 4, what);
    t.is(r.passed(/^PASS probe (keys|columns) +tcx +qk\d+ v\d+ +ok -> tf32x3 /), 10, `${what}: float32 probes`);
    // And what a failure would print (attention_diagnose.h, the probes' report) names
    // what was done to outputs made wrong on purpose: columns or rows swapped in blocks,
    // a NaN, a row that read another key.
    t.is(r.passed(/^PASS diagnose: /), 7, what);
    // The key splits planned at the models' shapes (no wave left mostly idle).
    t.is(r.passed(/^PASS split plan: /), 6, what);
    t.is(r.passed(/^PASS .*float32 +path 2 /), 36, `${what}: the SIMT kernel`);
    // float32 on tensor cores in 3xTF32 (path 13) at its classes, where rows are 16-byte
    // aligned: 64, 128 (twice), qk 32 / v 160 (twice), qk 32 / v 96, 32 and 120 (within float32's 1e-5;
    // the same kernel with one TF32 product instead of three fails them). Auto takes it
    // there, and the SIMT kernel elsewhere (odd rows, 150, 261, 264, 322, 520, 1024: the
    // backend sends those to the products first).
    t.is(r.passed(/^PASS .*float32 +path 13 /), 18, `${what}: the 3xTF32 kernel (twice with out-shift)`);
    // Outputs one and two elements off their arrays' alignment: element by element, then
    // in pairs, through the fixed-width kernel, a tier and (float32) the 3xTF32 kernel;
    // nothing written outside the output (a misaligned store would end the run).
    t.is(r.passed(/^PASS out-shift-[12] +(bfloat16 +path (8|1)|float32 +path 13) splits 1 /), 6, what);
    t.false(/elements written outside the output/.test(r.out), what);
    t.is(r.passed(/ path 0 .*-> tf32x3 /), 16, `${what}: the 3xTF32 kernel under auto`);
    t.is(r.passed(/float32 +path 0 .*-> simt$/), 20, `${what}: the SIMT kernel under auto`);
    // And the backend asks for it at its widths on sm_80+ with 16-byte rows (128 x 128,
    // 120 x 120, 32 x 160, an aligned call), and nowhere else (261, sm_75, K rows off 16
    // bytes, bfloat16): attention_tf32_widths / _serves, backend.cu.
    t.is(r.passed(/^PASS tf32 routing: .* takes it$/), 4, `${what}: the backend's questions`);
    t.is(r.passed(/^PASS tf32 routing: .* does not$/), 4, `${what}: the backend's questions`);
    // Heads wider than the widest tier run on tensor cores, in column chunks of V.
    t.is(r.passed(/^PASS (qk40-v520|w1024-odd) .* path 1 /), 8, `${what}: Dv in chunks`);
    // Which kernel the public entry took (each line ends with it).
    const auto = (shape: string, kernel: RegExp) => r.passed(new RegExp(`^PASS ${shape} .* path 0 .*-> ${kernel.source}$`));
    t.is(r.passed(/ path 0 .*-> fixed /), 37, `${what}: fixed-width kernel under auto`);
    t.is(auto('w128', /fixed 128x128 tcf/), 4, what);
    t.is(auto('qk32-v160', /fixed 32x160 tcf/), 4, what);
    // The encoders' calls in the warpgroup kernel's 272 class (the emulation's device is
    // an H100), k and v one array or apart; 322 in the fixed-width kernel's 336 class
    // (k and v one array); 128-wide heads at odd strides on the tiers.
    t.is(auto('w26[14]-kv', /wgmma 272x272/), 8, what);
    t.is(auto('w261', /wgmma 272x272/), 4, `${what}: k and v apart`);
    t.is(auto('w322-kv', /fixed 336x336 tcf/), 4, what);
    t.is(auto('w128-odd', env === switched ? /tc tier 7/ : /tc tier 1/), 4, `${what}: unaligned multi-head rows stay on the tiers`);
    if (env === switched) {
      t.is(r.passed(/ path 0 .*-> tc tier [789]$/), 16, `${what}: occupancy tiers under auto`);
      t.is(auto('rows-fill-sms', /fixed 128x128 tcf8/), 1, what);
      t.is(auto('w96-odd', /tc tier 7/), 4, `${what}: unaligned rows stay on the tiers`);
    } else {
      // The small shapes' blocks leave the SMs idle: no occupancy tier.
      t.is(r.passed(/ path 0 .*-> tc tier [789]$/), 0, `${what}: occupancy tiers under auto`);
      t.is(auto('rows-fill-sms', /fixed 128x128 tcf2/), 1, what);
      t.is(auto('w96-odd', /tc tier 1/), 4, `${what}: unaligned rows stay on the tiers`);
    }
  }
  // The ways back, =0: without the fixed-width kernel, the occupancy tier where the
  // blocks fill the SMs; without that either, the wide kernel there and tier 1 elsewhere.
  const route = (env: Record<string, string>, shape: string, kernel: RegExp, count: number) => {
    const what = `${JSON.stringify(env)} ${shape}`;
    const r = family('attention', env, what, shape);
    t.is(r.passed(new RegExp(`^PASS ${shape} .* path 0 .*-> ${kernel.source}$`)), count, what);
  };
  route({ PERCEIVER_CUDA_ATTENTION_FIXED: '0' }, 'rows-fill-sms', /tc tier 7/, 1);
  route({ PERCEIVER_CUDA_ATTENTION_FIXED: '0' }, 'w128', /tc tier 1/, 4);
  route({ PERCEIVER_CUDA_ATTENTION_FIXED: '0', PERCEIVER_CUDA_ATTENTION_OCCUPANCY: '0' }, 'rows-fill-sms', /tc tier 6/, 1);
  // PERCEIVER_CUDA_ATTENTION_WGMMA=0: the encoders back on the fixed-width kernel's 272
  // class (k and v one array) and the tiers (apart).
  route({ PERCEIVER_CUDA_ATTENTION_WGMMA: '0' }, 'w261-kv', /fixed 272x272 tcf/, 4);
  route({ PERCEIVER_CUDA_ATTENTION_WGMMA: '0' }, 'w264-kv', /fixed 272x272 tcf/, 4);
  route({ PERCEIVER_CUDA_ATTENTION_WGMMA: '0' }, 'w261', /tc tier 3/, 4);
  // PERCEIVER_CUDA_ATTENTION_WGMMA=1: auto takes the warpgroup kernel wherever it serves
  // (K and V rows aligned, directly or through the padded copies, at its widths), ahead
  // of the fixed-width kernel: two warpgroups per block where 128-row blocks fill the
  // SMs, else one where the widths have such a variant (not 272).
  const wgmma = { PERCEIVER_CUDA_ATTENTION_WGMMA: '1' };
  route(wgmma, 'rows-fill-sms', /wgmma 128x128/, 1);
  route(wgmma, 'w128', /wgmma1 128x128/, 4);
  route(wgmma, 'qk32-v160', /wgmma1 32x160/, 4);
  route(wgmma, 'w96-odd', /tc tier 1/, 4);
  route(wgmma, 'w261', /wgmma 272x272/, 4);
  route({ PERCEIVER_CUDA_ATTENTION_WGMMA: '64' }, 'w128', /wgmma1 128x128/, 4);
  // =pp: as =1, with the ping-pong tier for the two-warpgroup blocks where the widths
  // have one (not 272, which keeps its plain tier).
  const pingpong = { PERCEIVER_CUDA_ATTENTION_WGMMA: 'pp' };
  route(pingpong, 'rows-fill-sms', /wgmmap 128x128/, 1);
  route(pingpong, 'w128', /wgmma1 128x128/, 4);
  route(pingpong, 'w261', /wgmma 272x272/, 4);
  // =k128: as =1, with the 128-key tier for the two-warpgroup blocks where the widths
  // have one (128, qk 32 / v 160 and qk 32 / v 96; not 272).
  const wideKeys = { PERCEIVER_CUDA_ATTENTION_WGMMA: 'k128' };
  route(wideKeys, 'rows-fill-sms', /wgmmak 128x128/, 1);
  route(wideKeys, 'w128', /wgmma1 128x128/, 4);
  route(wideKeys, 'w261', /wgmma 272x272/, 4);
  // PERCEIVER_CUDA_ATTENTION_TF32X3=0: float32 back on the SIMT kernel under auto, and
  // the backend never asks for the 3xTF32 kernel (it sends float32 to the products).
  const noTf32 = { PERCEIVER_CUDA_ATTENTION_TF32X3: '0' };
  route(noTf32, 'w128', /simt/, 2);
  route(noTf32, 'qk32-v160', /simt/, 2);
  const asked = family('attention', noTf32, 'tf32 routing', 'routing');
  t.is(asked.passed(/^PASS tf32 routing: .* takes it$/), 0);
  t.is(asked.passed(/^PASS tf32 routing: .* does not$/), 8);
});

emulated('the composed attention (attention_gemm.cu), emulated with its products as loops, matches the reference forward and gradient', (t, family) => {
  const r = family('composed');
  // 9 shapes x 3 dtypes x (one chunk of keys, 64-key chunks) x (forward, gradient with
  // the forward's row statistics, gradient with its own). The shapes: several heads with
  // masked rows and masked chunks; one head with dropout; odd strides with dropout; more
  // batch rows than heads (products over a head's batch rows) with masks, and with odd
  // strides and 13-wide rows (padded copies) and dropout; rows of 1500 keys (a block per
  // row, then 24 chunks whose running max moves); one head whose k and v are one
  // array (one padded copy serves both); a mask broadcast over the queries (stride 0,
  // as the op layer passes a padding mask), whose other rows the call must not read;
  // no keys.
  t.is(r.checks, 162);
  t.is(r.passed(/^PASS composed .* broadcast-mask /), 18);
  t.is(r.passed(/^PASS composed gradient, own lse .* 64-key chunks .*dropout/), 9);
  t.is(r.passed(/^PASS composed forward +(batch-heads|batch-odd|long-rows|shared-kv) /), 24);
});

emulated('products through copies (gemm_split.cuh): float32 as three TF32 products keeps float32 accuracy where one TF32 product does not; 16-bit products with unaligned rows reach the product aligned; products over a long k split into slices of k sum them in order; the cuBLASLt search times its configurations in turn', (t, family) => {
  const r = family('gemm');
  // 6 float32 products (transposes, a batch sharing B, padded rows, beta, an addend,
  // bias and ReLU, 4096-long sums, entries over 2^±12) at float32's tolerance, and for
  // each the control: one TF32 product on the same operands must miss it.
  t.is(r.passed(/^PASS 3xTF32 /), 6);
  t.is(r.passed(/^PASS 1xTF32 control /), 6);
  // 5 16-bit products in bf16 and fp16 (261-wide rows in A, B and C; an unaligned
  // addend with a shared B; C in float32 accumulating; A one element in; one already
  // aligned, which must need no copy): the result, and that every operand reached the
  // product in whole 16-byte units with the copies the plan should make.
  t.is(r.passed(/^PASS aligned copies .*worst=/), 10);
  t.is(r.passed(/^PASS aligned copies .*: plan .*, 0 unaligned product/), 10);
  t.is(r.passed(/^PASS aligned copies aligned .*: plan +no copies/), 2);
  // Split-K: 5 products in each of three dtypes (a ragged last slice, transposes with
  // padded rows and a bias, an addend, beta accumulating, two slices), four with a
  // float32 C (one accumulating into rows wider than n), four with a shared B or
  // operands in 16-byte units: the result, two products per matrix (and, where the
  // operands are in 16-byte units, so are every slice's); and the plan on 132 SMs for
  // the encoder gradient's dQ (split at 2 and 8 images, not at 1, which cuBLASLt splits
  // itself, nor at 16 or with an activation) and for products it must leave whole.
  t.is(r.passed(/^PASS split-K .*worst=/), 23);
  t.is(r.passed(/^PASS split-K .*: launches +\d+ products \(2 per matrix\)/), 23);
  t.is(r.passed(/^PASS split-K aligned .*: launches .*, all aligned$/), 2);
  t.is(r.passed(/^PASS split-K plan dQ of [28] images .*: 44 slices of 1144/), 2);
  t.is(r.passed(/^PASS split-K plan dQ of 1 image .*: 0 slices/), 1);
  t.is(r.passed(/^PASS split-K plan /), 11);
  // The cuBLASLt search's order of timing (gemm_search.h): every algorithm's first
  // configuration before any second, each algorithm's tiles in turn, cut short at 3 and 5.
  t.is(r.passed(/^PASS search order, /), 4);
  t.is(r.checks, 93);
});

emulated('attention tuning (attention_tune.cu) times the fused kernel against the products on the first call of a shape, keeps the faster by its margin, and ends the call with the chosen path\'s own bits', (t, family) => {
  const r = family('tune');
  // 4 shapes (one head over 600 keys, 8 heads with a mask, padded 13-wide rows, a small
  // one timed the full number of times) in bf16 and fp16, and the padded one again with
  // its products slowed so that the fused kernel wins: 7 checks each (nothing kept
  // before; both paths timed alike; the choice follows the timings and the margin; the
  // first call's out and lse are the chosen path's bits; a later call runs it once,
  // untimed; without lse the key differs and is timed afresh).
  t.is(r.passed(/^PASS tune the faster by the margin .*takes products$/), 8);
  t.is(r.passed(/^PASS tune the faster by the margin .*slowed products: .*takes fused$/), 1);
  t.is(r.passed(/^PASS tune first call's out and lse are the chosen path's bits /), 9);
  // The products out of memory (the fused kernel kept, its bits), another error thrown
  // with nothing kept, and calls not timed: under the flops, out over k, lse over q;
  // and out over k once its shape is kept (with lse: the products, emulated), which
  // runs the kept path once.
  t.is(r.passed(/^PASS tune products out of memory keep the fused kernel and its bits /), 1);
  t.is(r.passed(/^PASS tune a products fault is thrown, nothing kept /), 1);
  t.is(r.passed(/^PASS tune .* runs fused once, untimed /), 3);
  t.is(r.passed(/^PASS tune out over k, its shape kept, runs the kept path \(products\) once /), 1);
  t.is(r.checks, 70);
});

emulated('the flash attention gradient (attention_backward.cu), emulated on the CPU, matches the reference gradient', (t, family) => {
  const r = family('flash');
  // 8 shapes (every tier; ragged query and key tiles; padded widths; masks with a wholly
  // masked row; a mask broadcast over the queries, whose other rows must not be read)
  // x 2 dtypes x (taken, the row statistics' own kernel, then the gradient with the
  // reference's row statistics, with attention_gemm.cu's, one (batch, head) pair per
  // launch, blocks of 8 warps, and dQ by atomics), and 10 calls it must turn away; rows
  // of far negative logits over a ragged key tile, and the products' row statistics of
  // NaN scores (below).
  t.is(r.checks, 8 * 2 * 7 + 10 + 8 + 1);
  t.is(r.passed(/^PASS flash lm-bcast-mask /), 14);
  t.is(r.passed(/^PASS flash .* row lse /), 16);
  t.is(r.passed(/^PASS flash .* pair by pair /), 16);
  t.is(r.passed(/^PASS flash .*\] 8 warps +worst/), 16);
  t.is(r.passed(/^PASS flash refuses /), 10);
  // The keys past Nk in a ragged last tile had P = exp(0 - L): with every logit of a row
  // far below 0 that overflowed float16, and dQ = dS K met 0 x inf = NaN in every
  // element of the row. Float16 at L = -18 (Nk 70, and 64 in 8 warps' 128-key tiles)
  // within tolerance of the products' gradient, bfloat16 at L = -199 finite, 4 and 8 warps.
  t.is(r.passed(/^PASS flash far logits /), 8);
  // The products' row statistics: NaN for a row of NaN scores (it was +inf, "every key
  // masked"), and for NaN scores in the first chunk only (it was the later chunks' value).
  t.is(r.passed(/^PASS products' row lse with NaN scores: every score nan .* the first chunk's nan$/), 1);
});

emulated('heads with no qk width (Dqk = 0) run through a tier, and auto where 128-row blocks fill the SMs, instead of dividing by zero in the occupancy tiers\' copies', (t, family) => {
  const r = family('attention', {}, 'Dqk 0', 'qk0');
  t.is(r.checks, 2);
  t.is(r.passed(/^PASS qk0(-fill)? .* -> tc tier 1$/), 2);
  t.regex(r.out, /SKIP qk0 +bfloat16 path 7 /, 'the occupancy tiers refuse it');
});

emulated('a NaN score makes its attention row NaN through every path and the key ranges\' merge (a fully masked row stays 0): the output and the log-sum-exp the flash gradient reads', (t, family) => {
  const r = family('attention', {}, 'NaN scores', 'nan');
  // 4 shapes (64, 128 masked, the language model's qk 32 / v 160 and qk 32 / v 96): bf16
  // through 13 paths and float32 through 3, with 1 and 3 key ranges, less the paths a
  // shape lacks. Before, the single-range kernels wrote +inf for the log-sum-exp of
  // those rows (a gradient of 0), and the merge of key ranges wrote 0 for a query whose
  // every score was NaN.
  t.is(r.checks, 108);
  t.is(r.passed(/^PASS NaN .* 0 elements and 0 lse wrong -> /), 108);
  t.true(r.passed(/^PASS NaN .* path 1[56] splits 1 .* -> wgmma[pk] /) >= 6, 'the candidate warpgroup tiers among them');
});

emulated('the rest of elementwise.cu and reduce.cu, emulated on the CPU, match the reference', (t, family) => {
  const r = family('elementwise');
  // fill and arange in five dtypes; copies (transposed, casts, saturating integer
  // casts, and rows that are not whole 16-byte units: the image inputs' concat into
  // rows of 261 from a broadcast source, a permute of 41-wide heads, in three dtypes;
  // and enough rows that each warp copies a run of four, carrying through three dims);
  // per float dtype: 15 unary ops on a transposed input, comparisons into uint8, pow,
  // minimum and where with broadcasts, 5 reductions over rows and columns (4 shapes)
  // and a sum with an addend (a shared bias's gradient) in each, softmax and
  // log-softmax at two widths; and fill, arange and int32 casts into the 16-bit types
  // at values whose nearest float is a 16-bit halfway point, rounded once as the CPU.
  t.is(r.checks, 176);
  t.is(r.passed(/^PASS (fill|arange|int32 cast) rounds once /), 5);
  t.is(r.passed(/^PASS reduce sum \+ addend /), 12);
  t.is(r.passed(/^PASS copy (rows of 258 into rows of 261|permuting 41-wide heads) /), 6);
  t.is(r.passed(/^PASS copy rows in runs of four, carrying through three dims /), 1);
  t.is(r.passed(/^PASS unary .* \(transposed input\)/), 45);
  t.is(r.passed(/^PASS reduce argmax /), 12);
});

emulated('the training kernels (backward.cu), emulated on the CPU, match the reference gradients', (t, family) => {
  const r = family('training');
  // Per dtype: layer norm's gx (4 shapes) with gw and gb (3 of them), softmax at 128,
  // 256 and 512 threads per row, GELU in both forms, max pooling with and without
  // padding, and with NaN inputs (the window's gradient to its NaN, as the forward's
  // output); and softmax's 16-bit gradients from float32 probabilities; layer norm's
  // three gradients with the gradients already accumulated added in.
  t.is(r.checks, 65);
  t.is(r.passed(/^PASS max_pool2d_backward .* with NaN /), 3);
  t.is(r.passed(/^PASS layer_norm_backward .* \+ addends g[xwb] /), 9);
  t.is(r.passed(/^PASS layer_norm_backward .* \[200, 70\] g[wb] /), 6, 'weight and bias sums over four row chunks');
});

emulated('the other kernel files (optimizer updates, random draws, gathers, convolution, pooling, batch norm), emulated on the CPU, match their references', (t, family) => {
  const r = family('ops');
  t.is(r.checks, 80);
  // Bit for bit against the CPU backend's own kernels: Adam, SGD (three forms), LAMB's
  // moments, rand, randn and the fused attention's dropout mask.
  t.is(r.passed(/^PASS .* bit for bit /), 19);
  // The embedding gather, element by element and in 16-byte packs (rows of whole
  // packs, aligned), and an out-of-range id failing with the CPU's message in both
  // kernels, one-hot's too, and a table of empty rows (its ids checked all the same),
  // in every dtype.
  t.is(r.passed(/^PASS embedding \w+ rows of 24 +worst/), 3);
  t.is(r.passed(/^PASS .* bad id +index 9 at position 2 is out of range \[0, 7\)/), 15);
  t.is(r.passed(/^PASS embedding \w+ rows of 0 bad id /), 3);
  // Ids the host knows are in range run without the flag, so without a stream
  // synchronisation: the same results, and ids that break that promise are neither
  // read nor written, nor reported.
  t.is(r.passed(/^PASS (embedding|one_hot) .*, ids known +worst/), 12);
  t.is(r.passed(/^PASS embedding .*, ids known bad id unread +0 of \d+ elements wrong$/), 9);
});

emulated('the emulation finds shared-memory races: a copy read without a wait or a barrier, or overwritten while read; a store read without a barrier', (t, family) => {
  const r = family('races');
  t.is(r.checks, 16);
  // The ordered pipeline reads the right values with no race; each scenario that leaves
  // out a wait or a barrier is reported (run() already failed on any FAIL line).
  t.is(r.passed(/^PASS races: wait, barrier, read +0 race\(s\)$/), 1);
  t.is(r.passed(/^PASS races: .* [1-9]\d* race\(s\); the first: /), 11);
  // Plain stores (the fixed-width kernel's staged output rows): a warp barrier orders
  // them before their own warp's loads, not before the other warp's.
  t.is(r.passed(/^PASS races: stores, __syncwarp, a load from the same warp +0 race\(s\)$/), 1);
  t.is(r.passed(/^PASS races: stores, a load from the same warp \(no __syncwarp\) .* read of another thread's store /), 1);
  // A warpgroup product: exact when its copies are fenced for the async proxy and its
  // result is read after wgmma_wait; a race without the fence, NaN read before the wait.
  t.is(r.passed(/^PASS races: wgmma: wait, fence, barrier, product, wait, read +0 race\(s\)$/), 1);
  t.is(r.passed(/^PASS races: wgmma: no fence\.proxy\.async .* race\(s\); the first: wgmma read of a copy /), 1);
  t.is(r.passed(/^PASS races: wgmma: the result read before wgmma_wait +0 race\(s\); wrong values$/), 1);
  // Named barriers (the ping-pong tiers' warpgroups apart): a sync over a half orders
  // its threads' copies before their reads; without it, or with an arrival only, a race.
  t.is(r.passed(/^PASS races: two halves: wait, named barrier over the half, read +0 race\(s\)$/), 1);
  t.is(r.passed(/^PASS races: two halves: (wait, read \(no named barrier\)|wait, bar\.arrive \(no sync\), read) .* race\(s\); the first: /), 2);
});

emulated('PERCEIVER_CUDA_ATTENTION_FIXED=3 routes the language model\'s classes to the occupancy variant and leaves the others on the default', (t, family) => {
  const env = { PERCEIVER_CUDA_ATTENTION_FIXED: '3' };
  const lm = family('attention', env, 'FIXED=3, qk 32', 'qk32');
  t.is(lm.failures, 0);
  // qk32-v160, -v96 and -v160-rows: bf16 and fp16, 1 and 3 key ranges, through auto.
  t.is(lm.passed(/^PASS qk32-v(160|96)(-rows)? +(bfloat16|float16) +path 0 .* -> fixed 32x(160|96) tcf3 *$/), 12);
  t.is(lm.passed(/^PASS .* path 0 .* -> fixed 32x(160|96) tcf *$/), 0);
  // Where 128-row blocks fill the SMs at 128 x 128: still the two-row-tile variant.
  const wide = family('attention', env, 'FIXED=3, rows-fill-sms', 'rows-fill');
  t.is(wide.failures, 0);
  t.is(wide.passed(/^PASS rows-fill-sms .* path 0 .* -> fixed 128x128 tcf2 *$/), 1);
});

emulated('binary ops, layer norm, softmax and their gradients, dense unary ops, column sums, the GEMM\'s bias/activation pass and GELU\'s gradient, emulated on the CPU, match the reference with and without the 16-byte kernels', (t, family) => {
  // The 16-byte kernels off, on, and on without the sixteenth session's row kernels.
  for (const [vec, row] of [['0', '1'], ['1', '1'], ['1', '0']]) {
    const what = `PERCEIVER_CUDA_VECTOR_KERNELS=${vec} PERCEIVER_CUDA_ROW_KERNELS=${row}`;
    const r = family('rows', { PERCEIVER_CUDA_VECTOR_KERNELS: vec, PERCEIVER_CUDA_ROW_KERNELS: row }, what);
    t.regex(r.out, new RegExp(what));
    t.is(r.checks, 322, `${what}: ${r.checks} checks ran`);
    // Gradients already accumulated joined in: the column sums once more with an addend
    // (5 shapes per dtype), layer norm's gx, gw and gb in each of its three row kernels.
    t.is(r.passed(/^PASS column sum .* \+ addend, /), 15, what);
    t.is(r.passed(/^PASS layer_norm_backward .* \+ addends g[xwb] /), 27, what);
    // Per float dtype: 4 unary ops and 2 GELU gradients, whole packs and one element in;
    // 7 bias/activation passes (rows wider than the row, batches apart and back to back,
    // rows not whole packs). Both kernels give the element kernels' formula's exact bits.
    t.is(r.passed(/^PASS (unary|gelu_backward) .* bit for bit /), 38, what);
    // GELU's gradient far out (float32): 0 and 1, where the tanh form made NaN on a GPU.
    t.is(r.passed(/^PASS gelu_backward far out (erf|tanh) float32 +bit for bit /), 2, what);
    // And in the negative tail, against doubles, GELU and its gradient in both forms,
    // where 1 + erf and 1 + tanh cancel (the formulas above are the kernels' own).
    t.is(r.passed(/^PASS gelu(_backward)?( tanh)?'s negative tail, float32 +worst/), 4, what);
    t.is(r.passed(/^PASS bias_act .* bit for bit /), 21, what);
    // Column sums, means and sums with an addend (bias gradients): 45, of which those whose
    // columns are whole packs of aligned data take the two-kernel path with its workspace
    // (4 shapes in float32, 3 in 16 bits).
    t.is(r.passed(/^PASS column (sum|mean) /), 45, what);
    t.is(r.passed(/^PASS column .* workspace [1-9]\d* bytes /), vec === '1' && row === '1' ? 30 : 0, what);
    // Layer norm's gradient (gx, gw, gb) at 8 shapes: rows of 1-8 packs per lane for the
    // row-per-warp kernel, wider or narrower rows of whole packs for the packed sums, and
    // rows of 33-500 that are not whole packs (a row per warp, element loads); and the
    // 3 shapes with addends.
    t.is(r.passed(/^PASS layer_norm_backward .* g[xwb] /), 66 + 27, what);
    // Layer norm's rows of 3-512 that are not whole packs per lane: a row per warp too.
    t.is(r.passed(/^PASS layer_norm \w+ \[(11, 261|6, 3|7, 77|4, 512)\]/), 12, what);
    // Softmax and log-softmax over rows of 3-1500 with masked keys (a masked key's
    // log-probability exactly -inf), and softmax's gradient, a row per warp up to 1024.
    t.is(r.passed(/^PASS (log_)?softmax \w+ \[7, \d+\] \(masked keys\)/), 30, what);
    t.is(r.passed(/^PASS softmax_backward /), 16, what);
  }
});
