// The kernel check harnesses (native/cpu/*_check.cc) compare the GEMM and the fused
// attention with double-precision references on every ISA path this CPU can run
// (AVX-512, AVX2+FMA, portable), which the op tests, running only the detected
// path, cannot. Built with CMakeLists.txt, without Node.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('gemm_check and attention_check pass on every ISA path', (t) => {
  t.timeout(8 * 60_000);
  const build = mkdtempSync(join(tmpdir(), 'pio-cmake-'));
  try {
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: 6 * 60_000 });
      return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
    };
    const cfg = run('cmake', ['-S', root, '-B', build, '-DCMAKE_BUILD_TYPE=Release']);
    t.is(cfg.code, 0, cfg.out);
    const b = run('cmake', ['--build', build, '-j2', '--target', 'gemm_check', 'attention_check']);
    t.is(b.code, 0, b.out);
    const gemm = run(join(build, 'gemm_check'), ['--quick']);
    t.is(gemm.code, 0, gemm.out);
    t.regex(gemm.out, /0 failures/);
    const attn = run(join(build, 'attention_check'), ['--quick']);
    t.is(attn.code, 0, attn.out);
    t.regex(attn.out, /, 0 failed;/);
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
});
