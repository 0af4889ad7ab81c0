// Device selection: an explicit { device } wins, then PERCEIVER_DEVICE, then CUDA
// when it is available, else the CPU. Asking for CUDA where it is unavailable is
// an error that says why, never a silent fallback.
import { native, type NativeCudaInfo } from './native.js';
import { describe } from './dtype.js';

export type DeviceName = 'cpu' | 'cuda' | `cuda:${number}`;

export interface CudaDeviceInfo {
  index: number;
  /** e.g. 'NVIDIA H100 80GB HBM3'. */
  name: string;
  /** 'major.minor', e.g. '9.0'. */
  computeCapability: string;
  multiprocessors: number;
  /** Bytes. */
  totalMemory: number;
  freeMemory: number;
  /** CUDA version the driver supports, e.g. '13.0'. */
  driverVersion: string;
  /** The CUDA runtime perceiver_cuda.so was built with. */
  runtimeVersion: string;
  /** cuBLASLt's version, e.g. '13.1.0'. */
  cublasVersion: string;
  /** The cuBLASLt file loaded, as it was opened (a soname, or PERCEIVER_CUBLAS_PATH's file). */
  cublasPath: string;
}

export interface BackendInfo {
  name: 'cpu' | 'cuda';
  available: boolean;
  /** Why the backend cannot be used (only when unavailable). */
  reason?: string;
  /** CPU: worker threads (PERCEIVER_NUM_THREADS) and the SIMD level detected. */
  threads?: number;
  simd?: string;
  /** CUDA: the backend library that was loaded (null when none could be). */
  library?: string | null;
  /** CUDA: the devices, when available. */
  devices?: CudaDeviceInfo[];
}

// Whether the library loaded and how many devices it sees cannot change within a
// process; free memory can, so devices are queried again by each backends().
let cudaState: NativeCudaInfo | undefined;
function cuda(): NativeCudaInfo {
  cudaState ??= native.cudaInfo();
  return cudaState;
}

/** Every backend and whether it can be used here. */
export function backends(): BackendInfo[] {
  const cpu = native.cpuInfo();
  const state = cuda();
  const info: BackendInfo = { name: 'cuda', available: state.deviceCount > 0, library: state.library };
  if (state.deviceCount > 0) {
    info.devices = native.cudaInfo().devices.map((d) => {
      if (d.error) throw new Error(`backends: cuda:${d.index}: ${d.error}`);
      return d as CudaDeviceInfo;
    });
  } else {
    info.reason = state.reason;
  }
  return [{ name: 'cpu', available: true, threads: cpu.threads, simd: cpu.simd }, info];
}

/** @internal Validates a device name (not its availability). */
export function checkDevice(op: string, v: unknown): DeviceName {
  if (typeof v === 'string' && (v === 'cpu' || v === 'cuda' || /^cuda:\d{1,4}$/.test(v))) return v as DeviceName;
  throw new TypeError(`${op}: argument 'device' must be 'cpu', 'cuda' or 'cuda:N', got ${describe(v)}`);
}

/** Resolves the device an op's output goes to. */
export function resolveDevice(op: string, device?: unknown): DeviceName {
  let d: DeviceName;
  if (device !== undefined) d = checkDevice(op, device);
  else if (process.env.PERCEIVER_DEVICE) d = checkDevice(`${op} (PERCEIVER_DEVICE)`, process.env.PERCEIVER_DEVICE);
  else return cuda().deviceCount > 0 ? 'cuda' : 'cpu';
  if (d !== 'cpu') {
    const state = cuda();
    if (state.deviceCount === 0) throw new Error(`${op}: device '${d}' was requested but CUDA is unavailable: ${state.reason}`);
    const index = d === 'cuda' ? 0 : Number(d.slice(5));
    if (index >= state.deviceCount)
      throw new RangeError(`${op}: device '${d}' does not exist; this machine has ${state.deviceCount} CUDA device${state.deviceCount === 1 ? '' : 's'}`);
  }
  return d;
}
