// The device the test suite runs on, chosen in one place: PERCEIVER_TEST_DEVICE
// ('cpu' by default, 'cuda' for the GPU run of scripts/device-check.sh). ava loads
// this module first in every test process (package.json "ava.require") and it
// sets PERCEIVER_DEVICE, which every creation function without an explicit
// { device } follows, so the same tests and references run on either device.
// Tests that are about device selection itself set PERCEIVER_DEVICE explicitly
// in the child processes they spawn.
import { memory } from '../../lib/memory.js';
import { native } from '../../lib/native.js';

const requested = process.env.PERCEIVER_TEST_DEVICE || 'cpu';
if (!/^(cpu|cuda|cuda:\d{1,4})$/.test(requested))
  throw new TypeError(`PERCEIVER_TEST_DEVICE must be 'cpu', 'cuda' or 'cuda:N', got '${requested}'`);
process.env.PERCEIVER_DEVICE = requested;
if (requested !== 'cpu') {
  // Fail the run once, with the reason, rather than every test with the same error.
  const { backends } = await import('../../lib/device.js');
  const cuda = backends()[1];
  if (!cuda.available) throw new Error(`PERCEIVER_TEST_DEVICE=${requested} but CUDA is unavailable: ${cuda.reason}`);
}

export const TEST_DEVICE: string = requested;
export const ON_CUDA: boolean = requested.startsWith('cuda');

/**
 * Relative tolerance for comparing a result of `dtype` with a float64 reference:
 * float32 results are within ~1e-5 on either device (GPU sums run in a different
 * order); 16-bit results carry their own rounding (bfloat16 has 8 bits of
 * mantissa, float16 11).
 */
export function rtolFor(dtype: string): number {
  if (dtype === 'bfloat16') return 1e-2;
  if (dtype === 'float16') return 2e-3;
  return 1e-5;
}

/**
 * Live tensors, storages and bytes over every device: the counts a leak check
 * compares, whichever device the suite runs on, once the queues are drained.
 */
export function live(): { tensors: number; storages: number; bytes: number } {
  // Queued kernels hold their operands' storages until they run: drain the queues so
  // that storages already disposed are counted as freed.
  native.synchronize();
  const { cpu, cuda } = memory();
  return { tensors: cpu.tensors + cuda.tensors, storages: cpu.storages + cuda.storages, bytes: cpu.bytes + cuda.bytes };
}

/** TEST_DEVICE as tensors report it ('cuda' is 'cuda:0'). */
export const DEVICE_NAME: string = requested === 'cuda' ? 'cuda:0' : requested;

/**
 * live() taken as a baseline: tensors that earlier tests dropped without disposing
 * are collected first (ava runs with --expose-gc) and their finalizers, which
 * Node runs from a later turn of the event loop, are let run. Otherwise a garbage
 * collection in the middle of a test frees them and the test's own count comes out
 * lower than its baseline.
 */
export async function baseline(): Promise<{ tensors: number; storages: number; bytes: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let pass = 0; pass < 2; pass++) {
    gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return live();
}
