// The Haiku-layout copies of the HF fixture models (test/fixtures/haiku/, written by
// scripts/make-haiku-fixtures.py) as TensorRecords, and a record's values in logical
// order, gathered through its strides in plain JS (test data only: small).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as P from '../../lib/index.js';
import { contiguousStrides, type TensorRecord } from '../../lib/io/records.js';
import { HF_FIXTURES } from './hf-fixture.js';

export const HAIKU_FIXTURES = join(HF_FIXTURES, '..', 'haiku');

export const HAIKU_CASES: Record<string, string> = {
  mlm: 'mlm.pickle',
  image_fourier: 'image_fourier.pystate',
  image_learned: 'image_learned.pystate',
  image_conv: 'image_conv.pystate',
  optical_flow: 'optical_flow.pystate',
  multimodal: 'multimodal.pystate',
};

/** Every tensor of a safetensors file as a record reading from the file. */
export async function safetensorsRecords(path: string): Promise<TensorRecord[]> {
  const h = await P.readSafetensorsHeader(path);
  return [...h.entries].map(([name, e]) => ({
    name,
    dtype: e.dtype as TensorRecord['dtype'],
    shape: [...e.shape],
    source: { kind: 'file' as const, path, offset: h.dataStart + e.dataOffsets[0], byteLength: e.dataOffsets[1] - e.dataOffsets[0] },
  }));
}

/** The case's Haiku params and state (state is empty but for image_conv). */
export async function haikuCase(name: string): Promise<{ params: TensorRecord[]; state: TensorRecord[] }> {
  const params = await safetensorsRecords(join(HAIKU_FIXTURES, `${name}.params.safetensors`));
  const sp = join(HAIKU_FIXTURES, `${name}.state.safetensors`);
  return { params, state: existsSync(sp) ? await safetensorsRecords(sp) : [] };
}

const files = new Map<string, Buffer>();

function sourceBytes(rec: TensorRecord): Uint8Array {
  if (rec.source.kind === 'bytes') return rec.source.bytes;
  const { path, offset, byteLength } = rec.source;
  let buf = files.get(path);
  if (!buf) files.set(path, (buf = readFileSync(path)));
  return buf.subarray(offset, offset + byteLength);
}

/** A record's values in row-major order of its logical shape (numbers; int64 as numbers). */
export function recordValues(rec: TensorRecord): number[] {
  const bytes = sourceBytes(rec);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const read: Record<string, (i: number) => number> = {
    F32: (i) => dv.getFloat32(i * 4, true),
    F64: (i) => dv.getFloat64(i * 8, true),
    I32: (i) => dv.getInt32(i * 4, true),
    I64: (i) => Number(dv.getBigInt64(i * 8, true)),
  };
  const get = read[rec.dtype];
  if (!get) throw new Error(`recordValues: dtype ${rec.dtype} not handled`);
  const strides = rec.strides ?? contiguousStrides(rec.shape);
  const n = rec.shape.reduce((a, b) => a * b, 1);
  const out = new Array<number>(n);
  const idx = new Array<number>(rec.shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    let off = 0;
    for (let d = 0; d < idx.length; d++) off += idx[d] * strides[d];
    out[k] = get(off);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < rec.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}
