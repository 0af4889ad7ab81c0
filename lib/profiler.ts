// Where the device time goes: per op, output shape and scope, the time between two
// marks on the device's timeline around the op's kernels (CUDA events on a GPU,
// the host clock on the CPU, whose kernels finish when they return). On a GPU that
// is idle when an op is issued, the span also holds the host's own work for the op
// between the marks (an allocation the cache cannot serve, cuBLASLt's choice of
// algorithm for a new shape), as the GPU waited on it. Ops are named
// as the engine issues them (matmul, attention, binary ops by name, cast, ...);
// autograd counts the ops of each backward formula under 'backward.<op>'.
import { native } from './native.js';
import { describe } from './dtype.js';
import { knownKeys, optionKeys } from './ops/args.js';

export interface ProfileOptions {
  /** Key ops by output shape as well (default false). */
  shapes?: boolean;
}

const PROFILE_OPTIONS = optionKeys<ProfileOptions>({ shapes: true });

export interface ProfileRow {
  op: string;
  /** The output's shape, '[8, 512, 1024]'; '' unless the profile keyed shapes. */
  shape: string;
  /** profiler.scope() names, joined by '/'; '' outside any. */
  scope: string;
  device: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  maxMs: number;
  /** totalMs over the sum of every row's totalMs on the same device. */
  share: number;
}

export interface Profile {
  /** From start() to stop(), on the host clock (stop() waits for the devices). */
  wallMs: number;
  /** Per device, the sum of its ops' times: how busy the profiled code kept it. */
  deviceMs: Record<string, number>;
  /** Sorted by totalMs, largest first. */
  rows: ProfileRow[];
  /** The rows as a text table; `limit` rows (default 25) and the rest summed. */
  table(limit?: number): string;
}

let running = false;
const scopes: string[] = [];

/** Whether a profile is being recorded. */
export function isProfiling(): boolean {
  return running;
}

/**
 * Starts recording. Waits for the ops already queued, so that they are not counted.
 * Only one profile records at a time, process-wide: ops issued from anywhere
 * (including concurrent async code) while it runs are counted.
 */
export function start(options: ProfileOptions = {}): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new TypeError(`profiler.start: argument 'options' must be an object, got ${describe(options)}`);
  knownKeys('profiler.start', 'options', options, PROFILE_OPTIONS);
  const shapes = options.shapes ?? false;
  if (typeof shapes !== 'boolean') throw new TypeError(`profiler.start: option 'shapes' must be a boolean, got ${describe(shapes)}`);
  if (running) throw new Error('profiler.start: a profile is already recording; stop() it first');
  native.profilerStart(shapes);
  running = true;
  scopes.length = 0;
}

/** Stops recording; waits for every queued op and device, then sums the times. */
export function stop(): Profile {
  if (!running) throw new Error('profiler.stop: no profile is recording; call start() first');
  running = false;
  scopes.length = 0;
  const r = native.profilerStop();
  const deviceMs: Record<string, number> = {};
  for (const o of r.ops) deviceMs[o.device] = (deviceMs[o.device] ?? 0) + o.totalMs;
  const rows: ProfileRow[] = r.ops
    .map((o) => ({ ...o, meanMs: o.totalMs / o.calls, share: deviceMs[o.device] > 0 ? o.totalMs / deviceMs[o.device] : 0 }))
    .sort((a, b) => b.totalMs - a.totalMs);
  return { wallMs: r.wallMs, deviceMs, rows, table: (limit = 25) => formatTable(rows, r.wallMs, deviceMs, limit) };
}

/**
 * Runs fn with `name` appended to the scope that ops issued inside are counted
 * under. fn must be synchronous (ops are issued synchronously; a scope cannot
 * follow an await). Without a recording profile it just runs fn.
 */
export function scope<T>(name: string, fn: () => T): T {
  if (typeof name !== 'string' || name === '') throw new TypeError(`profiler.scope: argument 'name' must be a non-empty string, got ${describe(name)}`);
  if (typeof fn !== 'function') throw new TypeError(`profiler.scope: argument 'fn' must be a function, got ${describe(fn)}`);
  if (!running) return fn();
  scopes.push(name);
  native.profilerScope(scopes.join('/'));
  try {
    return fn();
  } finally {
    scopes.pop();
    // stop() may have run inside fn; the native side then has no scope to restore.
    if (running) native.profilerScope(scopes.join('/'));
  }
}

function formatTable(rows: ProfileRow[], wallMs: number, deviceMs: Record<string, number>, limit: number): string {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`profile.table: argument 'limit' must be a positive integer, got ${describe(limit)}`);
  const busy = Object.entries(deviceMs).map(([d, ms]) => `${d} busy ${ms.toFixed(2)} ms`).join(', ');
  const lines = [`wall ${wallMs.toFixed(2)} ms; ${busy || 'no ops'}`];
  const name = (r: ProfileRow) => [r.op, r.shape, r.scope && `(${r.scope})`].filter(Boolean).join(' ');
  const width = Math.min(70, Math.max(10, ...rows.slice(0, limit).map((r) => name(r).length)));
  lines.push(`${'op'.padEnd(width)}  ${'device'.padEnd(7)} ${'calls'.padStart(6)} ${'total ms'.padStart(10)} ${'mean ms'.padStart(9)} ${'share'.padStart(6)}`);
  for (const r of rows.slice(0, limit))
    lines.push(`${name(r).slice(0, width).padEnd(width)}  ${r.device.padEnd(7)} ${String(r.calls).padStart(6)} ${r.totalMs.toFixed(3).padStart(10)} ${r.meanMs.toFixed(4).padStart(9)} ${(100 * r.share).toFixed(1).padStart(5)}%`);
  const rest = rows.slice(limit);
  if (rest.length) {
    const ms = rest.reduce((s, r) => s + r.totalMs, 0);
    const calls = rest.reduce((s, r) => s + r.calls, 0);
    lines.push(`${`${rest.length} more`.padEnd(width)}  ${''.padEnd(7)} ${String(calls).padStart(6)} ${ms.toFixed(3).padStart(10)}`);
  }
  return lines.join('\n');
}
