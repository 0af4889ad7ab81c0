import { native } from './native.js';

export interface DeviceMemory {
  /** Live Tensor handles (not yet disposed or collected). */
  tensors: number;
  /** Live native allocations (views share one). */
  storages: number;
  bytes: number;
  peakBytes: number;
}

/** Live tensors and bytes per device. */
export function memory(): { cpu: DeviceMemory; cuda: DeviceMemory } {
  return native.memory();
}
