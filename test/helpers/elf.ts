// The symbol versions an ELF shared object needs (its .gnu.version_r section), read
// without binutils: what decides the oldest glibc and libstdc++ it loads with.
import { readFileSync } from 'node:fs';

const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_DYNSYM = 11;

function sections(path: string) {
  const b = readFileSync(path);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${path}: only 64-bit little-endian ELF is read here`);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const section = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 0x18)), size: Number(b.readBigUInt64LE(o + 0x20)),
      link: b.readUInt32LE(o + 0x28), info: b.readUInt32LE(o + 0x2c),
    };
  };
  const cstr = (o: number) => b.toString('latin1', o, b.indexOf(0, o));
  return { b, shnum, section, cstr };
}

/** The file's e_machine: the architecture its code is for (62 x86-64, 183 aarch64). */
export function elfMachine(path: string): number {
  return sections(path).b.readUInt16LE(0x12);
}

/** The dynamic symbol table's names, and whether each is defined here (not imported). */
export function dynamicSymbols(path: string): { name: string; defined: boolean }[] {
  const { b, shnum, section, cstr } = sections(path);
  const out: { name: string; defined: boolean }[] = [];
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_DYNSYM) continue;
    const strtab = section(s.link).offset;
    // Elf64_Sym { st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64 }
    for (let p = s.offset + 24; p < s.offset + s.size; p += 24)
      out.push({ name: cstr(strtab + b.readUInt32LE(p)), defined: b.readUInt16LE(p + 6) !== 0 });
  }
  return out;
}

/** Versions needed, by library file name: { 'libc.so.6': ['GLIBC_2.2.5', ...], ... }. 64-bit little-endian ELF only. */
export function neededVersions(path: string): Record<string, string[]> {
  const { b, shnum, section, cstr } = sections(path);
  const out: Record<string, string[]> = {};
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    const strtab = section(s.link).offset;
    // Elf64_Verneed { vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32 }
    // Elf64_Vernaux { vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32 }
    for (let k = 0, p = s.offset; k < s.info; k++) {
      const names: string[] = (out[cstr(strtab + b.readUInt32LE(p + 4))] ??= []);
      for (let j = 0, a = p + b.readUInt32LE(p + 8); j < b.readUInt16LE(p + 2); j++) {
        names.push(cstr(strtab + b.readUInt32LE(a + 8)));
        a += b.readUInt32LE(a + 12);
      }
      p += b.readUInt32LE(p + 12);
    }
  }
  return out;
}

/** The newest of `versions` named `prefix` + dotted numbers ('GLIBC_', 'GLIBCXX_'), or null. */
export function newestVersion(versions: string[], prefix: string): string | null {
  const nums = (v: string) => v.slice(prefix.length).split('.').map(Number);
  let best: string | null = null;
  for (const v of versions) {
    if (!v.startsWith(prefix) || !/^\d+(\.\d+)*$/.test(v.slice(prefix.length))) continue;
    if (best === null) best = v;
    else {
      const [x, y] = [nums(v), nums(best)];
      for (let i = 0; i < Math.max(x.length, y.length); i++) {
        if ((x[i] ?? 0) !== (y[i] ?? 0)) {
          if ((x[i] ?? 0) > (y[i] ?? 0)) best = v;
          break;
        }
      }
    }
  }
  return best;
}
