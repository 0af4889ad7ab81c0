// Reading a TensorRecord's values the slow, obvious way, for tests only: the source's
// bytes, then each logical element (row-major) gathered through the strides.
import { open } from 'node:fs/promises';
import { RECORD_ITEM_SIZE, contiguousStrides, type TensorRecord } from '../../lib/io/records.js';

export async function sourceBytes(rec: TensorRecord): Promise<Uint8Array> {
  if (rec.source.kind === 'bytes') return rec.source.bytes;
  const { path, offset, byteLength } = rec.source;
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(byteLength);
    const { bytesRead } = await fh.read(buf, 0, byteLength, offset);
    if (bytesRead !== byteLength) throw new Error(`${rec.name}: source [${offset}, ${offset + byteLength}) runs past the end of ${path}`);
    return buf;
  } finally {
    await fh.close();
  }
}

/** The record's elements as contiguous row-major little-endian bytes. */
export async function recordBytes(rec: TensorRecord): Promise<Uint8Array> {
  const src = await sourceBytes(rec);
  const item = RECORD_ITEM_SIZE[rec.dtype];
  const count = rec.shape.reduce((a, b) => a * b, 1);
  const strides = rec.strides ?? contiguousStrides(rec.shape);
  const out = new Uint8Array(count * item);
  const idx = new Array<number>(rec.shape.length).fill(0);
  for (let n = 0; n < count; n++) {
    let at = 0;
    for (let d = 0; d < idx.length; d++) at += idx[d] * strides[d];
    if ((at + 1) * item > src.length) throw new Error(`${rec.name}: element ${n} lies at byte ${at * item}, past its ${src.length}-byte source`);
    out.set(src.subarray(at * item, (at + 1) * item), n * item);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < rec.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

function half(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The record's values as JS numbers (row-major); 64-bit ints must be safe integers. */
export async function recordValues(rec: TensorRecord): Promise<number[]> {
  const b = await recordBytes(rec);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = b.length / RECORD_ITEM_SIZE[rec.dtype];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    switch (rec.dtype) {
      case 'F64': out.push(v.getFloat64(i * 8, true)); break;
      case 'F32': out.push(v.getFloat32(i * 4, true)); break;
      case 'F16': out.push(half(v.getUint16(i * 2, true))); break;
      case 'BF16': out.push(new Float32Array(new Uint32Array([v.getUint16(i * 2, true) << 16]).buffer)[0]); break;
      case 'I64': out.push(Number(v.getBigInt64(i * 8, true))); break;
      case 'I32': out.push(v.getInt32(i * 4, true)); break;
      case 'I16': out.push(v.getInt16(i * 2, true)); break;
      case 'I8': out.push(v.getInt8(i)); break;
      case 'U8': case 'BOOL': out.push(v.getUint8(i)); break;
    }
  }
  return out;
}

/** Bytes of a typed array (what `tensor.data()` returns), for byte-exact comparison. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
