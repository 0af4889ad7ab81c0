// Fuzzing the checkpoint readers: valid .bin and .pickle files, mutated at random
// (bit flips, interesting integers over length fields, truncation, inserted and deleted
// runs, spliced copies), must each either read cleanly, with every record inside the
// file, or fail with an Error naming the file. Never a crash, a hang, a non-Error throw
// or a record pointing outside the file. Seeded, so a failure reproduces.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { readHaikuCheckpoint } from '../lib/io/haiku.js';
import { RECORD_ITEM_SIZE, contiguousStrides, type TensorRecord } from '../lib/io/records.js';
import { readTorchCheckpoint } from '../lib/io/torch.js';

const here = dirname(fileURLToPath(import.meta.url));
const CKPT = join(here, '..', '..', 'test', 'fixtures', 'checkpoints');
// Thousands of small files: a RAM-backed folder when there is one.
const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'perceiver-fuzz-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const ITERATIONS = 10_000;
// On an idle 2-core machine the run takes 2-5 s. The caps are there to catch a
// pathological input (one read that takes seconds) or a reader gone quadratic, with
// room for a machine shared by other test runs, which can be 5-10x slower.
const TIME_LIMIT_MS = 60_000;
const SLOW_READ_MS = 5_000;

/** xorshift32: small, fast and reproducible. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(src: Buffer, r: (n: number) => number): Buffer {
  const b = Buffer.from(src);
  const at = () => r(Math.max(1, b.length));
  switch (r(7)) {
    case 0: // flip a few bits
      for (let k = 1 + r(4); k > 0; k--) b[at()] ^= 1 << r(8);
      return b;
    case 1: // random bytes
      for (let k = 1 + r(4); k > 0; k--) b[at()] = r(256);
      return b;
    case 2: {
      // an interesting 32-bit value over what may be a length or offset
      const p = r(Math.max(1, b.length - 4));
      if (b.length >= 4) b.writeUInt32LE(INTERESTING[r(INTERESTING.length)], p);
      return b;
    }
    case 3: // truncate
      return b.subarray(0, at());
    case 4: {
      // delete a run
      const p = at();
      return Buffer.concat([b.subarray(0, p), b.subarray(p + 1 + r(64))]);
    }
    case 5: {
      // insert random bytes
      const p = at();
      const ins = Buffer.from(Array.from({ length: 1 + r(16) }, () => r(256)));
      return Buffer.concat([b.subarray(0, p), ins, b.subarray(p)]);
    }
    default: {
      // splice a copy of one part of the file over another
      const from = at();
      const to = at();
      b.set(src.subarray(from, from + 1 + r(32)).subarray(0, b.length - to), to);
      return b;
    }
  }
}

/** A successful read must describe only bytes that exist. */
function checkRecords(recs: TensorRecord[], path: string, size: number): void {
  for (const rec of recs) {
    const item = RECORD_ITEM_SIZE[rec.dtype];
    if (item === undefined) throw new Error(`${rec.name}: unknown dtype ${rec.dtype}`);
    if (!rec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new Error(`${rec.name}: bad shape ${rec.shape}`);
    const strides = rec.strides ?? contiguousStrides(rec.shape);
    const count = rec.shape.reduce((a, d) => a * d, 1);
    const extent = count === 0 ? 0 : 1 + rec.shape.reduce((a, d, i) => a + (d - 1) * strides[i], 0);
    const len = rec.source.kind === 'file' ? rec.source.byteLength : rec.source.bytes.length;
    if (extent * item > len) throw new Error(`${rec.name}: needs ${extent * item} bytes, source has ${len}`);
    if (rec.source.kind === 'file') {
      if (rec.source.path !== path) throw new Error(`${rec.name}: points at another file`);
      if (rec.source.offset < 0 || rec.source.offset + len > size) throw new Error(`${rec.name}: [${rec.source.offset}, +${len}) outside the ${size}-byte file`);
    }
  }
}

const haiku = async (p: string) => Object.values(await readHaikuCheckpoint(p)).flat();
// Mostly the small seeds (where a mutation usually lands in structure rather than in
// tensor bytes), plus two full-size files with real torch.save and numpy layouts.
const TARGETS: { file: string; read: (p: string) => Promise<TensorRecord[]> }[] = [
  { file: 'fuzz_seed.bin', read: readTorchCheckpoint },
  { file: 'fuzz_seed_legacy.bin', read: readTorchCheckpoint },
  { file: 'fuzz_seed_deflated.bin', read: readTorchCheckpoint },
  { file: 'fuzz_seed.pickle', read: haiku },
  { file: 'fuzz_seed_proto2.pickle', read: haiku },
  { file: 'fuzz_seed_flatmapping.pickle', read: haiku },
  { file: 'plain_proto0.pickle', read: haiku },
  { file: 'tied_strided.bin', read: readTorchCheckpoint },
  { file: 'haiku_proto5.pickle', read: haiku },
];

test(`${ITERATIONS} mutated checkpoints read cleanly or fail with an Error naming the file`, async (t) => {
  const r = rng(0x5eed);
  const sources = TARGETS.map((x) => ({ ...x, bytes: readFileSync(join(CKPT, x.file)) }));
  const outcomes = { read: 0, refused: 0 };
  const failure = join(tmpdir(), 'perceiver-fuzz-failure.bin');
  const start = Date.now();
  let i = 0;
  for (; i < ITERATIONS && Date.now() - start < TIME_LIMIT_MS; i++) {
    const target = sources[i % sources.length];
    const mutated = mutate(target.bytes, r);
    const path = join(dir, `m${i % 16}-${target.file}`);
    writeFileSync(path, mutated);
    const failed = (why: string) => {
      writeFileSync(failure, mutated);
      t.fail(`iteration ${i} (${target.file}): ${why}; input saved to ${failure}`);
    };
    let recs: TensorRecord[] | null = null;
    let error: unknown;
    const t0 = Date.now();
    try {
      recs = await target.read(path);
    } catch (err) {
      error = err;
    }
    const took = Date.now() - t0;
    if (took > SLOW_READ_MS) return failed(`one read took ${took} ms`);
    if (recs === null) {
      if (error instanceof Error && error.message.includes(path)) {
        outcomes.refused++;
        continue;
      }
      return failed(`not a clean error: ${error instanceof Error ? error.stack : String(error)}`);
    }
    try {
      checkRecords(recs, path, mutated.length);
    } catch (err) {
      return failed(`read with a bad record: ${(err as Error).message}`);
    }
    outcomes.read++;
  }
  const ms = Date.now() - start;
  t.log(`${i} iterations in ${ms} ms: ${outcomes.read} read, ${outcomes.refused} refused`);
  t.is(i, ITERATIONS, `all ${ITERATIONS} iterations ran within ${TIME_LIMIT_MS} ms`);
  t.true(outcomes.refused > 0 && outcomes.read > 0, 'the mutations exercise both outcomes');
});
