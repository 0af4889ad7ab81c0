import { native } from './native.js';

export interface DeviceMemory {
  /** Live Tensor handles (not yet disposed or collected). */
  tensors: number;
  /** Live native allocations (views share one). */
  storages: number;
  bytes: number;
  peakBytes: number;
  /** Freed blocks kept by the allocator for reuse (not counted in bytes). */
  cachedBytes: number;
}

/** Live tensors and bytes per device. */
export function memory(): { cpu: DeviceMemory; cuda: DeviceMemory } {
  return native.memory();
}

/**
 * Returns the allocators' cached blocks to the system. On the CPU large freed
 * blocks are kept for reuse because fresh pages are slow to touch (the cache is
 * capped at PERCEIVER_CPU_CACHE_MB, default 1024); on CUDA every freed block is
 * kept, because cudaMalloc/cudaFree synchronise the device, until an allocation
 * fails or this is called. Waits for queued kernels (and the GPUs) first.
 */
export function emptyCache(): void {
  native.emptyCache();
}
