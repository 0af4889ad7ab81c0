// ptxas -v's report (nvcc -Xptxas -v), for the tests that hold CUDA kernels to their
// register budgets where nvcc is (no GPU needed).
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface PtxasEntry {
  name: string;
  arch: string;
  registers: number;
  spillStores: number;
  spillLoads: number;
}

export const onPath = (exe: string) => (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, exe)));

/** Each kernel entry's registers and spills, and ptxas's notes about wgmma. */
export function ptxasReport(text: string): { entries: PtxasEntry[]; notes: string[] } {
  const entries: PtxasEntry[] = [];
  let current: PtxasEntry | null = null;
  for (const line of text.split('\n')) {
    const entry = /Compiling entry function '([^']+)' for '(sm_\w+)'/.exec(line);
    if (entry) {
      current = { name: entry[1], arch: entry[2], registers: -1, spillStores: -1, spillLoads: -1 };
      entries.push(current);
      continue;
    }
    const spill = /(\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (spill && current) {
      current.spillStores = Number(spill[1]);
      current.spillLoads = Number(spill[2]);
    }
    const used = /Used (\d+) registers/.exec(line);
    if (used && current) current.registers = Number(used[1]);
  }
  return { entries, notes: text.split('\n').filter((l) => /\(C75\d\d\)|wgmma\.mma_async instructions are serialized/.test(l)) };
}
