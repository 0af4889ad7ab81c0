// Device selection: an explicit { device } wins, then PERCEIVER_DEVICE, then CUDA
// when it is available, else the CPU. Asking for CUDA where it is unavailable is
// an error that says why, never a silent fallback.
import { native } from './native.js';
import { describe } from './dtype.js';

export type DeviceName = 'cpu' | 'cuda' | `cuda:${number}`;

export interface BackendInfo {
  name: 'cpu' | 'cuda';
  available: boolean;
  /** Why the backend cannot be used (only when unavailable). */
  reason?: string;
  /** CPU: worker threads (PERCEIVER_NUM_THREADS) and the SIMD level detected. */
  threads?: number;
  simd?: string;
}

const CUDA_REASON =
  'the CUDA backend library (perceiver_cuda.so) is not part of this build; this version runs on the CPU only';

/** Every backend and whether it can be used here. */
export function backends(): BackendInfo[] {
  const cpu = native.cpuInfo();
  return [
    { name: 'cpu', available: true, threads: cpu.threads, simd: cpu.simd },
    { name: 'cuda', available: false, reason: CUDA_REASON },
  ];
}

function checkName(op: string, v: unknown): DeviceName {
  if (typeof v === 'string' && (v === 'cpu' || v === 'cuda' || /^cuda:\d{1,4}$/.test(v))) return v as DeviceName;
  throw new TypeError(`${op}: argument 'device' must be 'cpu', 'cuda' or 'cuda:N', got ${describe(v)}`);
}

/** Resolves the device an op's output goes to. */
export function resolveDevice(op: string, device?: unknown): DeviceName {
  let d: DeviceName;
  if (device !== undefined) d = checkName(op, device);
  else if (process.env.PERCEIVER_DEVICE) d = checkName(`${op} (PERCEIVER_DEVICE)`, process.env.PERCEIVER_DEVICE);
  else return backends().find((b) => b.name === 'cuda')?.available ? 'cuda' : 'cpu';
  if (d !== 'cpu') {
    const cuda = backends().find((b) => b.name === 'cuda');
    if (!cuda?.available) throw new Error(`${op}: device '${d}' was requested but CUDA is unavailable: ${cuda?.reason}`);
  }
  return d;
}
