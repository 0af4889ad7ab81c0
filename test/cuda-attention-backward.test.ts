// What the flash attention gradient (native/cuda/attention_backward.cu) needs from the
// compiler, checked where nvcc is (no GPU needed): each tier's kernel, with 4 and 8
// warps per block, in bfloat16 and float16, compiles for sm_80 and sm_90 within 255
// registers and without spilling (they sit at 168-255: dK and dV stay in registers for
// the whole walk over the queries), and so does the row statistics' kernel. Their
// results are checked on the CPU emulation (cuda-emu.test.ts, family "flash") and on a
// GPU by scripts/device-check.sh. Skipped, and says so, without nvcc.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onPath, ptxasReport } from './helpers/ptxas.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const nvcc = onPath('nvcc');
if (!nvcc) console.log('cuda-attention-backward: no nvcc on PATH: skipped');

(nvcc ? test : test.skip)('the flash gradient and row statistics kernels compile for sm_80 and sm_90 with no spills', (t) => {
  t.timeout(4 * 60_000);
  const dir = mkdtempSync(join(tmpdir(), 'perceiver-flash-'));
  try {
    const r = spawnSync(
      'nvcc',
      ['-O3', '-std=c++17', '-gencode', 'arch=compute_80,code=sm_80', '-gencode', 'arch=compute_90,code=sm_90', '-Inative',
        '-Xptxas', '-v', '-c', 'native/cuda/attention_backward.cu', '-o', join(dir, 'attention_backward.o')],
      { cwd: root, encoding: 'utf8', timeout: 3 * 60_000 },
    );
    t.is(r.status, 0, `nvcc failed:\n${r.stderr}`);
    const flash = ptxasReport(`${r.stdout}\n${r.stderr}`).entries.filter((e) => e.name.includes('flash_backward_kernel'));
    // kFlashBackwardTiers' four width classes with 4 and 8 warps, in two dtypes, for two
    // architectures.
    t.is(flash.length, 32, flash.map((e) => `${e.arch} ${e.name}`).join('\n'));
    t.deepEqual([...new Set(flash.map((e) => e.arch))].sort(), ['sm_80', 'sm_90']);
    // The row statistics' kernel: three width classes.
    const lse = ptxasReport(`${r.stdout}\n${r.stderr}`).entries.filter((e) => e.name.includes('flash_lse_kernel'));
    t.is(lse.length, 12, lse.map((e) => `${e.arch} ${e.name}`).join('\n'));
    for (const e of [...flash, ...lse]) {
      t.true(e.registers > 0 && e.registers <= 255, `${e.arch} ${e.name}: ${e.registers} registers`);
      t.is(e.spillStores + e.spillLoads, 0, `${e.arch} ${e.name} spills`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
