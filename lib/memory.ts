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
 * Returns the allocator's cached blocks to the system. Large freed blocks are
 * kept for reuse because fresh pages are slow to touch; the cache is capped at
 * PERCEIVER_CPU_CACHE_MB (default 1024). Waits for queued kernels first.
 */
export function emptyCache(): void {
  native.emptyCache();
}
