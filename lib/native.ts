// The only place that loads the addon. node-gyp-build looks for a prebuilt binary
// under prebuilds/<platform>-<arch>/ and falls back to build/Release; when neither
// loads, one error says what was tried and what to do.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';

import type { DTypeName } from './dtype.js';

/**
 * A native tensor handle: a number naming a slot of the addon's handle table
 * (bindings/addon.h HandleTable). Only lib/tensor.ts makes Tensors of them.
 */
export type NativeHandle = number & { readonly __nativeHandle: unique symbol };

type H = NativeHandle;
type Pad = 'same' | 'valid' | number[];

/** The addon's exports (bindings/ops.cc). Every argument is required here; defaults live in lib/. */
export interface NativeAddon {
  /** Registers the buffer handleMeta and every new handle write their metadata to. */
  setMetaBuffer(buffer: Float64Array): void;
  /** Writes h's metadata to the meta buffer: [h, dtype code, device (-1 cpu, else the CUDA index), ndim, ...shape]. */
  handleMeta(h: H): void;
  handleStrides(h: H): number[];
  handleIsContiguous(h: H): boolean;
  /** Frees the handle's slot; idempotent. */
  handleDispose(h: H): void;
  /** The bytes of storages this environment's handles keep alive, as reported to V8 (each storage once). */
  handleReportedBytes(): number;
  handleRead(h: H): Promise<ArrayBuffer>;
  handleReadSync(h: H): ArrayBuffer;
  /** Names of the dtype codes handleMeta returns. */
  dtypeNames: DTypeName[];
  fromBuffer(data: ArrayBufferView | ArrayBuffer, shape: number[], dtype: string, device: string): H;
  full(shape: number[], value: number, dtype: string, device: string): H;
  /** Storage no kernel has written; its values are undefined until one does. */
  empty(shape: number[], dtype: string, device: string): H;
  arange(start: number, step: number, length: number, dtype: string, device: string): H;
  random(kind: 'normal' | 'uniform', shape: number[], seed: number, p1: number, p2: number, device: string): H;
  contiguous(x: H): H;
  reshape(x: H, shape: number[]): H;
  permute(x: H, axes: number[]): H;
  slice(x: H, axis: number, start: number, end: number, step: number): H;
  broadcastTo(x: H, shape: number[]): H;
  concat(xs: H[], axis: number): H;
  cast(x: H, dtype: string): H;
  assign(dst: H, src: H): void;
  unary(op: string, x: H, alpha: number, beta: number): H;
  binary(op: string, a: H, b: H): H;
  where(cond: H, a: H, b: H): H;
  /** addend (sum only): of the result's shape and x's dtype, added before the one rounding. */
  reduce(op: string, x: H, axis: number, keepdim: boolean, addend?: H | null): H;
  softmax(x: H, log: boolean): H;
  layerNorm(x: H, weight: H | null, bias: H | null, eps: number): H;
  matmul(a: H, b: H, transA: boolean, transB: boolean, bias: H | null, activation: string, alpha: number, outFloat32?: boolean, addend?: H | null): H;
  attention(q: H, k: H, v: H, mask: H | null, scale: number, withLse?: false, dropoutP?: number, seed?: number): H;
  attention(q: H, k: H, v: H, mask: H | null, scale: number, withLse: true, dropoutP?: number, seed?: number): [H, H | null];
  embedding(weight: H, ids: H): H;
  oneHot(ids: H, depth: number, on: number, off: number, dtype: string): H;
  conv2d(x: H, weight: H, bias: H | null, strideH: number, strideW: number, padding: Pad): H;
  maxPool2d(x: H, kernelH: number, kernelW: number, strideH: number, strideW: number, padding: Pad): H;
  /** The addends (x's dtype, each gradient's shape) join gx, gw and gb before their one rounding. */
  layerNormBackward(
    x: H,
    weight: H | null,
    g: H,
    eps: number,
    needWeight: boolean,
    needBias: boolean,
    gxAddend?: H | null,
    gwAddend?: H | null,
    gbAddend?: H | null,
  ): [H, H | null, H | null];
  geluBackward(x: H, g: H, tanh: boolean): H;
  softmaxBackward(y: H, g: H, dtype: string): H;
  attentionBackward(q: H, k: H, v: H, mask: H | null, out: H, g: H, lse: H | null, scale: number, dropoutP?: number, seed?: number): [H, H, H];
  hasAttentionBackward(device: string): boolean;
  attentionBackwardFused(device: string, dtype: string, dqk: number, dv: number, dropout: boolean): boolean;
  hasAttentionDropout(device: string): boolean;
  handleClone(x: H): H;
  handleVersion(x: H): number;
  handleStorageId(x: H): number;
  /** Bounds the engine knows on x's int32 values (learnt where they passed through host memory), or null. */
  int32Bounds(x: H): [number, number] | null;
  maxPool2dBackward(x: H, g: H, kh: number, kw: number, sh: number, sw: number, pad: unknown): H;
  hasBackwardKernels(device: string): boolean;
  adamUpdate(param: H, grad: H, expAvg: H, expAvgSq: H, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, lamb: boolean): void;
  sgdUpdate(param: H, grad: H, momentumBuffer: H | null, lr: number, momentum: number, weightDecay: number, nesterov: boolean): void;
  batchNorm(x: H, mean: H, variance: H, weight: H | null, bias: H | null, eps: number): H;
  memory(): Record<'cpu' | 'cuda', import('./memory.js').DeviceMemory>;
  resetPeakMemoryStats(): void;
  profilerStart(shapes: boolean): void;
  profilerScope(scope: string): void;
  profilerStop(): { wallMs: number; ops: { op: string; shape: string; scope: string; device: string; calls: number; totalMs: number; maxMs: number }[] };
  emptyCache(): void;
  synchronize(): void;
  cpuInfo(): { threads: number; simd: string };
  to(x: H, device: string): H;
  cudaInfo(): NativeCudaInfo;
}

/** The CUDA backend library's state (bindings/ops.cc CudaInfo). */
export interface NativeCudaInfo {
  /** Path of perceiver_cuda.so when it loaded, else null. */
  library: string | null;
  deviceCount: number;
  /** Why CUDA cannot be used (absent when deviceCount > 0). */
  reason?: string;
  devices: Array<{
    index: number;
    error?: string;
    name?: string;
    computeCapability?: string;
    multiprocessors?: number;
    totalMemory?: number;
    freeMemory?: number;
    driverVersion?: string;
    runtimeVersion?: string;
    cublasVersion?: string;
    cublasPath?: string;
  }>;
}

const require = createRequire(import.meta.url);

function packageRoot(): string {
  // dist/lib/native.js -> package root (two levels up), with a walk-up fallback.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function load(): NativeAddon {
  const root = packageRoot();
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return nodeGypBuild(root) as NativeAddon;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `perceiver-io: could not load the native addon.\n` +
        `  tried: ${join(root, 'prebuilds', `${process.platform}-${process.arch}`)} (prebuilt) and ` +
        `${join(root, 'build', 'Release')} (built from source)\n` +
        `  reason: ${reason}\n` +
        `  fix: run \`npm rebuild perceiver-io\` (needs python3, make and a C++17 compiler), ` +
        `or install on a platform with a prebuilt binary (linux-x64 with glibc 2.28 or newer).`,
    );
  }
}

export const native: NativeAddon = load();

/** @internal The metadata of the newest handle (see NativeAddon.handleMeta); 4 + 8 dims. */
export const handleMetaBuffer = new Float64Array(12);
native.setMetaBuffer(handleMetaBuffer);
