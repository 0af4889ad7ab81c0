// Optical flow to pictures and files: the Middlebury colour wheel (Baker et al., "A
// Database and Evaluation Methodology for Optical Flow"; the flow_to_color used by
// RAFT), an RGB PNG writer on node:zlib, and the Middlebury .flo format. DeepMind's
// optical_flow colab draws another picture (OpenCV HSV: hue = angle, saturation =
// |flow| * 255 / 24, value 255), so the colours are not the colab's.
import { deflateSync } from 'node:zlib';
import { describe } from '../lib/dtype.js';
import { intArg, knownKeysArg, numberArg, objectArg } from './args.js';

/** A flow field [H, W, 2] as an array or typed array (its elements are not read here). */
function flowArg(op: string, flow: unknown, height: unknown, width: unknown): void {
  if (!Array.isArray(flow) && !(ArrayBuffer.isView(flow) && !(flow instanceof DataView)))
    throw new TypeError(`${op}: argument 'flow' must be an array or typed array of [H, W, 2] values, got ${describe(flow)}`);
  intArg(op, 'height', height, 1);
  intArg(op, 'width', width, 1);
}

/** The 55-colour wheel [55 * 3] (RGB 0..255): red, yellow, green, cyan, blue, magenta. */
export function makeColorWheel(): Uint8Array {
  const segments: [number, (i: number, n: number) => [number, number, number]][] = [
    [15, (i, n) => [255, Math.floor((255 * i) / n), 0]], // RY
    [6, (i, n) => [255 - Math.floor((255 * i) / n), 255, 0]], // YG
    [4, (i, n) => [0, 255, Math.floor((255 * i) / n)]], // GC
    [11, (i, n) => [0, 255 - Math.floor((255 * i) / n), 255]], // CB
    [13, (i, n) => [Math.floor((255 * i) / n), 0, 255]], // BM
    [6, (i, n) => [255, 0, 255 - Math.floor((255 * i) / n)]], // MR
  ];
  const out = new Uint8Array(55 * 3);
  let k = 0;
  for (const [n, f] of segments) for (let i = 0; i < n; i++) out.set(f(i, n), 3 * k++);
  return out;
}

/**
 * flow [H, W, 2] (u right, v down) -> RGB [H, W, 3]: hue from the direction, saturation
 * from the magnitude divided by maxMagnitude (default: the largest magnitude in the
 * field); beyond 1 the colour is darkened to 75%. Zero flow is white.
 */
/** Mean (u, v) and the largest |flow| of an interleaved [H, W, 2] field. */
export function flowSummary(flow: ArrayLike<number>, height: number, width: number): { meanFlow: [number, number]; maxMagnitude: number } {
  flowArg('flowSummary', flow, height, width);
  if (flow.length !== height * width * 2) throw new RangeError(`flowSummary: flow has ${flow.length} values, expected ${height}x${width}x2`);
  const n = height * width;
  let su = 0;
  let sv = 0;
  let maxMagnitude = 0;
  for (let p = 0; p < n; p++) {
    su += flow[2 * p];
    sv += flow[2 * p + 1];
    maxMagnitude = Math.max(maxMagnitude, Math.hypot(flow[2 * p], flow[2 * p + 1]));
  }
  return { meanFlow: [su / n, sv / n], maxMagnitude };
}

export function flowToColor(flow: ArrayLike<number>, height: number, width: number, opts: { maxMagnitude?: number } = {}): Uint8Array {
  flowArg('flowToColor', flow, height, width);
  objectArg('flowToColor', 'opts', opts);
  knownKeysArg('flowToColor', 'opts', opts, ['maxMagnitude']);
  if (opts.maxMagnitude !== undefined) numberArg('flowToColor', 'opts.maxMagnitude', opts.maxMagnitude);
  if (flow.length !== height * width * 2) throw new RangeError(`flowToColor: flow has ${flow.length} values, expected ${height}x${width}x2`);
  const wheel = makeColorWheel();
  const ncols = 55;
  let radMax = opts.maxMagnitude;
  if (radMax === undefined) {
    radMax = 0;
    for (let p = 0; p < height * width; p++) {
      const r = Math.hypot(flow[2 * p], flow[2 * p + 1]);
      if (Number.isFinite(r)) radMax = Math.max(radMax, r);
    }
  } else if (!(radMax > 0) || !Number.isFinite(radMax)) throw new RangeError(`flowToColor: maxMagnitude must be a positive number, got ${String(radMax)}`);
  const scale = 1 / (radMax + 1e-5);
  const out = new Uint8Array(height * width * 3);
  for (let p = 0; p < height * width; p++) {
    let u = flow[2 * p] * scale;
    let v = flow[2 * p + 1] * scale;
    if (!Number.isFinite(u) || !Number.isFinite(v)) u = v = 0;
    const rad = Math.sqrt(u * u + v * v);
    const a = Math.atan2(-v, -u) / Math.PI;
    const fk = ((a + 1) / 2) * (ncols - 1);
    const k0 = Math.floor(fk);
    const k1 = k0 + 1 === ncols ? 0 : k0 + 1;
    const f = fk - k0;
    for (let i = 0; i < 3; i++) {
      let col = (1 - f) * (wheel[3 * k0 + i] / 255) + f * (wheel[3 * k1 + i] / 255);
      col = rad <= 1 ? 1 - rad * (1 - col) : col * 0.75;
      out[3 * p + i] = Math.floor(255 * col);
    }
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Uint8Array): number {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`crc32: argument 'buf' must be a Uint8Array (or Buffer), got ${describe(buf)}`);
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** 8-bit RGB [H, W, 3] -> PNG file bytes (filter 0 on every row, zlib level 9). */
export function encodePng(rgb: Uint8Array, height: number, width: number): Buffer {
  if (!(rgb instanceof Uint8Array)) throw new TypeError(`encodePng: argument 'rgb' must be a Uint8Array of [H, W, 3] bytes, got ${describe(rgb)}`);
  intArg('encodePng', 'height', height, 1);
  intArg('encodePng', 'width', width, 1);
  if (rgb.length !== height * width * 3) throw new RangeError(`encodePng: ${rgb.length} bytes, expected ${height}x${width}x3`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  // compression 0, filter 0, interlace 0
  const raw = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** Middlebury .flo: "PIEH" (202021.25 as float32), int32 width, int32 height, then float32 u, v per pixel (little-endian). */
export function encodeFlo(flow: ArrayLike<number>, height: number, width: number): Buffer {
  flowArg('encodeFlo', flow, height, width);
  if (flow.length !== height * width * 2) throw new RangeError(`encodeFlo: flow has ${flow.length} values, expected ${height}x${width}x2`);
  const out = Buffer.alloc(12 + 4 * flow.length);
  out.writeFloatLE(202021.25, 0);
  out.writeInt32LE(width, 4);
  out.writeInt32LE(height, 8);
  for (let i = 0; i < flow.length; i++) out.writeFloatLE(flow[i], 12 + 4 * i);
  return out;
}
