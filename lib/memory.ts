import { native } from './native.js';

/**
 * Memory of one device type (the sum over GPUs for 'cuda'), in two views:
 * the logical one, what the live storages need, counted as soon as an op is
 * issued; and the physical one, what the allocator holds, counted when a kernel
 * actually gets its memory on the device's queue. Ops are queued, so the JS side
 * can be a whole step ahead of the device: `bytes` then includes outputs of ops
 * not yet run and `peakBytes` overstates what was ever held at once, while
 * `allocatedBytes` and `reservedBytes` compare with torch's memory_allocated and
 * memory_reserved.
 */
export interface DeviceMemory {
  /** Live Tensor handles (not yet disposed or collected). */
  tensors: number;
  /** Live native storages (views share one). */
  storages: number;
  /** Bytes of the live storages. */
  bytes: number;
  /** The most `bytes` reached since start or resetPeakMemoryStats(). */
  peakBytes: number;
  /**
   * Blocks the allocator has handed out and not yet taken back, at their rounded
   * sizes (on the CPU also read buffers and load staging).
   */
  allocatedBytes: number;
  peakAllocatedBytes: number;
  /** allocatedBytes plus the cache: what the allocator holds from the system (driver). */
  reservedBytes: number;
  peakReservedBytes: number;
  /** Freed blocks kept by the allocator for reuse: reservedBytes - allocatedBytes. */
  cachedBytes: number;
}

/** Live tensors and bytes per device. */
export function memory(): { cpu: DeviceMemory; cuda: DeviceMemory } {
  return native.memory();
}

/**
 * Restarts every peak (peakBytes, peakAllocatedBytes, peakReservedBytes) from the
 * current values, after waiting for queued work, so the next peaks are those of
 * the code that runs from here (torch.cuda.reset_peak_memory_stats).
 */
export function resetPeakMemoryStats(): void {
  native.resetPeakMemoryStats();
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
