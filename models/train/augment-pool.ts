// A small pool of worker threads running RandAugment (augment-worker.ts). Workers
// start on first use, one per core, and are unref'd while idle, so a process whose
// training has finished exits without closing the pool.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { MAX_MAGNITUDE, type RandAugmentLengths } from './randaugment.js';
import type { AugmentJob } from './augment-worker.js';

interface Pending {
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
}

export class AugmentPool {
  private workers: Worker[] = [];
  /** Each worker's unfinished jobs: when a worker dies, its jobs would otherwise never settle. */
  private readonly jobs = new Map<Worker, Map<number, Pending>>();
  private nextId = 0;
  private turn = 0;
  private readonly size: number;

  constructor(size = Math.max(1, availableParallelism())) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`AugmentPool: argument 'size' must be an integer >= 1, got ${JSON.stringify(size)}`);
    this.size = size;
  }

  /** Starts workers up to the pool's size: on first use, and in place of any that died. */
  private start(): void {
    while (this.workers.length < this.size) {
      const w = new Worker(new URL('./augment-worker.js', import.meta.url));
      const jobs = new Map<number, Pending>();
      w.on('message', (m: { id: number; bytes?: Uint8Array; error?: string }) => {
        const p = jobs.get(m.id);
        if (!p) return;
        jobs.delete(m.id);
        if (m.error !== undefined || !m.bytes) p.reject(new Error(`RandAugment worker: ${m.error ?? 'no result'}`));
        else p.resolve(new Uint8Array(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
        if (jobs.size === 0) w.unref();
      });
      w.on('error', (err) => this.fail(w, `RandAugment worker thread failed: ${err instanceof Error ? err.message : String(err)}`));
      // A result that cannot be deserialized is lost, and with it the job's id: the worker is dropped.
      w.on('messageerror', (err) => this.fail(w, `RandAugment worker thread sent a result that cannot be read: ${err.message}`));
      w.on('exit', (code) => this.fail(w, `RandAugment worker thread exited (code ${code}) with ${jobs.size} job(s) unfinished`));
      w.unref();
      this.workers.push(w);
      this.jobs.set(w, jobs);
    }
  }

  /**
   * Drops a dead (or unreadable) worker: its jobs are rejected at once, and the next
   * run() starts a fresh worker in its place, so one crash fails the jobs it held
   * rather than every later one, and never leaves a job waiting forever.
   */
  private fail(w: Worker, message: string): void {
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
    const jobs = [...(this.jobs.get(w)?.values() ?? [])];
    this.jobs.delete(w);
    for (const p of jobs) p.reject(new Error(message));
    void w.terminate().catch(() => undefined);
  }

  /**
   * RandAugment of 8-bit RGB [height, width, 3] on a worker, `lengths` as in
   * randaugment.ts; `bytes` is transferred (unusable after).
   */
  run(bytes: Uint8Array, height: number, width: number, job: { seed: number; numLayers: number; magnitude: number; lengths: RandAugmentLengths }): Promise<Uint8Array> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`AugmentPool.run: argument 'bytes' must be a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
    for (const [name, v] of [['height', height], ['width', width]] as const)
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`AugmentPool.run: argument '${name}' must be an integer >= 1, got ${JSON.stringify(v)}`);
    if (bytes.length !== height * width * 3)
      throw new RangeError(`AugmentPool.run: argument 'bytes' must hold height * width * 3 = ${height * width * 3} bytes (RGB), got ${bytes.length}`);
    const { seed, numLayers, magnitude, lengths } = job;
    if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new TypeError(`AugmentPool.run: argument 'job.seed' must be a finite number, got ${JSON.stringify(seed)}`);
    if (!Number.isSafeInteger(numLayers) || numLayers < 0) throw new RangeError(`AugmentPool.run: argument 'job.numLayers' must be an integer >= 0, got ${JSON.stringify(numLayers)}`);
    if (typeof magnitude !== 'number' || !(magnitude >= 0 && magnitude <= MAX_MAGNITUDE))
      throw new RangeError(`AugmentPool.run: argument 'job.magnitude' must be a number in [0, ${MAX_MAGNITUDE}], got ${JSON.stringify(magnitude)}`);
    if (lengths !== 'absolute' && lengths !== 'scaled') throw new TypeError(`AugmentPool.run: argument 'job.lengths' must be 'absolute' or 'scaled', got ${JSON.stringify(lengths)}`);
    this.start();
    const id = this.nextId++;
    const w = this.workers[this.turn++ % this.workers.length];
    const jobs = this.jobs.get(w)!;
    return new Promise<Uint8Array>((resolve, reject) => {
      const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
      jobs.set(id, { resolve, reject });
      w.ref();
      try {
        w.postMessage({ id, bytes: own, height, width, seed, numLayers, magnitude, lengths } satisfies AugmentJob, [own.buffer as ArrayBuffer]);
      } catch (err) {
        // Not sent: forget the job, or the ref'd worker would keep the process alive for it.
        jobs.delete(id);
        if (jobs.size === 0) w.unref();
        throw err;
      }
    });
  }

  /** Stops the workers (pending jobs are rejected). */
  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    for (const w of ws) {
      for (const p of this.jobs.get(w)?.values() ?? []) p.reject(new Error('RandAugment pool closed'));
      this.jobs.delete(w);
    }
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

let shared: AugmentPool | null = null;

/** The process-wide pool. */
export function augmentPool(): AugmentPool {
  shared ??= new AugmentPool();
  return shared;
}
