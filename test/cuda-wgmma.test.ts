// What the warpgroup attention kernel (native/cuda/attention_wgmma.cuh) needs from the
// compiler, checked where nvcc is (CI builds the CUDA library there; no GPU needed):
// every instantiation compiles for sm_90a without spilling registers and without
// ptxas serialising its wgmma products (its "Potential Performance Loss" notes,
// C7514 and kin, which it prints only with -Xptxas -v and which the GPU would show
// only as a slower kernel); and the inline PTX in native/cuda/wgmma_mma.inc is what
// scripts/gen-wgmma.py writes. The same compile checks the float32 3xTF32 kernel
// (attention_tf32.cuh), whose five instantiations sit at up to 254 registers, and the
// fixed-width kernel (attention_fixed.cuh), the default at the models' widths: none may
// spill. Skipped, and says so, without nvcc (or python3).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onPath, ptxasReport } from './helpers/ptxas.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const nvcc = onPath('nvcc');
if (!nvcc) console.log('cuda-wgmma: no nvcc on PATH: skipped');

(nvcc ? test : test.skip)('the warpgroup, 3xTF32 and fixed-width attention kernels compile for sm_90a with no spills and no serialised wgmma', (t) => {
  t.timeout(5 * 60_000);
  const dir = mkdtempSync(join(tmpdir(), 'perceiver-wgmma-'));
  try {
    const r = spawnSync(
      'nvcc',
      ['-O3', '-std=c++17', '-gencode', 'arch=compute_90a,code=sm_90a', '-Inative', '-Xptxas', '-v', '-c',
        'native/cuda/attention.cu', '-o', join(dir, 'attention.o')],
      { cwd: root, encoding: 'utf8', timeout: 4 * 60_000 },
    );
    t.is(r.status, 0, `nvcc failed:\n${r.stderr}`);
    const { entries, notes } = ptxasReport(`${r.stdout}\n${r.stderr}`);
    // kWgmmaTiers' six width classes with two warpgroups per block, five with one,
    // five with two taking turns and three over 128-key tiles (128, qk 32 / v 160, qk 32
    // / v 96), and the six of those that also write the log-sum-exp (the turns' 128, qk
    // 32 / v 160, 64 and 32; the 128-key tiles' 128 and qk 32 / v 160), in bf16 and
    // fp16; kTf32Tiers' five width classes. The fixed-width kernels, the
    // default at the models' widths, sit at their launch bounds' register caps (168 of
    // 170 at the language model's decoder heads): code added to them spills there
    // first, slowing every forward (a log-sum-exp write in their epilogue did,
    // 2026-11-28). None may spill.
    const kernels: [name: string, count: number, exact: boolean, message: (found: number) => string][] = [
      ['attention_wgmma_kernel', 50, true, () => entries.map((e) => e.name).join('\n')],
      ['attention_tf32_kernel', 5, true, () => 'kTf32Tiers: five width classes'],
      ['attention_fixed_kernel', 20, false, (found) => `${found} fixed-width instantiations`],
    ];
    for (const [name, count, exact, message] of kernels) {
      const found = entries.filter((e) => e.name.includes(name));
      if (exact) t.is(found.length, count, message(found.length));
      else t.true(found.length >= count, message(found.length));
      for (const e of found) {
        t.true(e.registers > 0 && e.registers <= 255, `${e.name}: ${e.registers} registers`);
        t.is(e.spillStores + e.spillLoads, 0, `${e.name} spills`);
      }
    }
    t.deepEqual(notes.filter((n) => n.includes('attention_wgmma_kernel')), []);
    // The notes name their function; none may name a kernel of this file at all.
    t.deepEqual(notes, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

(nvcc && onPath('python3') ? test : test.skip)('native/cuda/wgmma_mma.inc is what scripts/gen-wgmma.py writes', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'perceiver-wgmma-'));
  try {
    const out = join(dir, 'wgmma_mma.inc');
    const r = spawnSync('python3', ['scripts/gen-wgmma.py', out], { cwd: root, encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    t.is(readFileSync(out, 'utf8'), readFileSync(join(root, 'native', 'cuda', 'wgmma_mma.inc'), 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
