// A small pool of worker threads running RandAugment (augment-worker.ts). Workers
// start on first use, one per core, and are unref'd while idle, so a process whose
// training has finished exits without closing the pool.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

interface Pending {
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
}

export class AugmentPool {
  private workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private turn = 0;

  constructor(private readonly size = Math.max(1, availableParallelism())) {}

  private start(): void {
    if (this.workers.length) return;
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(new URL('./augment-worker.js', import.meta.url));
      w.on('message', (m: { id: number; bytes?: Uint8Array; error?: string }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.error !== undefined || !m.bytes) p.reject(new Error(`RandAugment worker: ${m.error ?? 'no result'}`));
        else p.resolve(new Uint8Array(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
        if (this.pending.size === 0) for (const x of this.workers) x.unref();
      });
      w.on('error', (err) => {
        for (const p of this.pending.values()) p.reject(err instanceof Error ? err : new Error(String(err)));
        this.pending.clear();
      });
      w.unref();
      this.workers.push(w);
    }
  }

  /** RandAugment of 8-bit RGB [size, size, 3] on a worker; `bytes` is transferred (unusable after). */
  run(bytes: Uint8Array, size: number, seed: number, numLayers: number, magnitude: number): Promise<Uint8Array> {
    this.start();
    const id = this.nextId++;
    const w = this.workers[this.turn++ % this.workers.length];
    w.ref();
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
      w.postMessage({ id, bytes: own, size, seed, numLayers, magnitude }, [own.buffer as ArrayBuffer]);
    });
  }

  /** Stops the workers (pending jobs are rejected). */
  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    for (const p of this.pending.values()) p.reject(new Error('RandAugment pool closed'));
    this.pending.clear();
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

let shared: AugmentPool | null = null;

/** The process-wide pool. */
export function augmentPool(): AugmentPool {
  shared ??= new AugmentPool();
  return shared;
}
