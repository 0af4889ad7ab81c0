// A restricted unpickler for checkpoint files (PyTorch .bin, Haiku pickles).
//
// Python's pickle is a small stack machine whose GLOBAL/REDUCE opcodes can import and
// call anything, which is how a hostile checkpoint runs code. Here nothing is ever
// imported: every global a pickle names must be on an allow-list the caller passes,
// each entry a plain TypeScript function that builds a JS value. Any other global,
// opcode, extension code or out-of-band buffer is refused with an error naming the
// file, the byte offset and what was refused.
//
// The machine is linear in the input: every opcode consumes at least one byte and does
// work proportional to what earlier opcodes pushed, so a hostile file cannot make it
// hang. Lengths are checked against the bytes that remain before anything is
// allocated, integers and lines have hard caps, and the stack, mark and memo sizes are
// bounded, so memory stays proportional to the file.
//
// Large byte strings in a pickle read from a file (numpy arrays in Haiku checkpoints)
// are not read: they come back as FileBytes (an offset and a length), so a multi-GiB
// pickle never lands in the JS heap.
import { closeSync, readSync } from 'node:fs';
import { MAX_NAME, fileVersion, openRegularFileSync } from './records.js';

// ---- Python values as JS values -----------------------------------------------------------
//
// None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
// str -> string, bytes/bytearray -> Uint8Array or FileBytes, list -> mutable array,
// tuple -> frozen array, dict -> Map, set/frozenset -> Set. Allowed globals push
// whatever their PyGlobal says.

/** A byte string left in the file: `length` bytes at absolute `offset` of `path`. */
export class FileBytes {
  constructor(
    readonly path: string,
    readonly offset: number,
    readonly length: number,
    /** fileVersion() of the file as it was parsed. */
    readonly version?: string,
  ) {}
}

/** An entry of the allow-list: what a GLOBAL pushes, and what calling it makes. */
export interface PyGlobal {
  /** `module.name`, for messages. */
  readonly name: string;
  /**
   * REDUCE, NEWOBJ, INST and OBJ call this with the argument tuple's items (NEWOBJ_EX
   * adds keyword arguments). Absent: the global is a value (a dtype, a class passed as
   * an argument) and calling it is an error.
   */
  readonly call?: (args: readonly unknown[], kwargs?: ReadonlyMap<unknown, unknown>) => unknown;
}

/** Objects that accept BUILD (Python's `__setstate__`) implement this. */
export const SET_STATE: unique symbol = Symbol('pickle.setState');
export interface PyStateful {
  [SET_STATE](state: unknown): void;
}

// Only entries made by pyGlobal count, so no other value can pose as a callable.
const GLOBALS = new WeakSet<PyGlobal>();

/** Makes an allow-list entry. */
export function pyGlobal(name: string, call?: PyGlobal['call']): PyGlobal {
  const g: PyGlobal = Object.freeze(call ? { name, call } : { name });
  GLOBALS.add(g);
  return g;
}

export function isPyGlobal(v: unknown): v is PyGlobal {
  return typeof v === 'object' && v !== null && GLOBALS.has(v as PyGlobal);
}

export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

/** A short description of a Python value for error messages (never its whole content). */
export function pyDescribe(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return v.length > 60 ? `str '${v.slice(0, 57)}...'` : `str '${v}'`;
  if (typeof v === 'number') return Number.isInteger(v) ? `int ${v}` : `float ${v}`;
  if (typeof v === 'bigint') return `int ${v}`;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (Array.isArray(v)) return `${isTuple(v) ? 'tuple' : 'list'} of ${v.length}`;
  if (v instanceof Map) return `dict of ${v.size}`;
  if (v instanceof Set) return `set of ${v.size}`;
  if (v instanceof Uint8Array || v instanceof FileBytes) return `bytes of ${v.length}`;
  if (isPyGlobal(v)) return `global '${v.name}'`;
  return (v as object).constructor?.name ?? typeof v;
}

// ---- input ------------------------------------------------------------------------------

/** Random-access bytes the unpickler reads from. Reads are synchronous and bounded. */
export interface ByteInput {
  /** Total length in bytes. */
  readonly length: number;
  /** Exactly `len` bytes at `pos` (the caller has checked the range). */
  read(pos: number, len: number): Uint8Array;
  /** The byte at `pos` (checked by the caller): opcodes and small operands, without a view per byte. */
  byteAt(pos: number): number;
  /** The file, when bytes can be left in it (FileBytes). */
  readonly path?: string;
  /** fileVersion() of that file when it was opened. */
  readonly version?: string;
}

export class BufferInput implements ByteInput {
  constructor(private readonly buf: Uint8Array) {
    if (!(buf instanceof Uint8Array)) throw new TypeError(`BufferInput: argument 'buf' must be a Uint8Array, got ${pyDescribe(buf)}`);
  }
  get length(): number {
    return this.buf.length;
  }
  read(pos: number, len: number): Uint8Array {
    return this.buf.subarray(pos, pos + len);
  }
  byteAt(pos: number): number {
    return this.buf[pos];
  }
}

/**
 * A file read through a sliding window with positioned synchronous reads: the
 * unpickler walks it front to back one opcode at a time, and an opcode's operands are
 * small except byte strings, which are either read once or left in the file. The
 * window grows while reading is sequential and shrinks after a jump (past an array
 * left in the file), so skipped bytes are not read.
 */
export class FileInput implements ByteInput, Disposable {
  private static readonly MIN_WINDOW = 1 << 12;
  private static readonly MAX_WINDOW = 1 << 20;
  readonly length: number;
  readonly version: string;
  private fd: number;
  /** One buffer reused for every window: what read() returns is valid until the next read. */
  private buffer: Uint8Array | null = null;
  private window: Uint8Array = new Uint8Array(0);
  private windowStart = 0;
  private windowSize = FileInput.MIN_WINDOW;

  constructor(readonly path: string) {
    if (typeof path !== 'string') throw new TypeError(`FileInput: argument 'path' must be a string, got ${pyDescribe(path)}`);
    const { fd, stat } = openRegularFileSync(path);
    this.fd = fd;
    this.length = Number(stat.size);
    this.version = fileVersion(stat);
  }

  read(pos: number, len: number): Uint8Array {
    if (pos >= this.windowStart && pos + len <= this.windowStart + this.window.length)
      return this.window.subarray(pos - this.windowStart, pos - this.windowStart + len);
    if (len > FileInput.MAX_WINDOW / 2) return this.readFresh(pos, len);
    const sequential = pos >= this.windowStart && pos <= this.windowStart + this.window.length;
    this.windowSize = sequential ? Math.min(this.windowSize * 2, FileInput.MAX_WINDOW) : FileInput.MIN_WINDOW;
    const size = Math.min(Math.max(this.windowSize, len), this.length - pos);
    this.buffer ??= new Uint8Array(Math.min(FileInput.MAX_WINDOW, this.length));
    this.window = this.readInto(this.buffer.subarray(0, size), pos);
    this.windowStart = pos;
    return this.window.subarray(0, len);
  }

  /** Exactly `len` bytes at `pos`, read on their own, leaving the window alone. */
  peek(pos: number, len: number): Uint8Array {
    return this.readFresh(pos, len);
  }

  byteAt(pos: number): number {
    if (pos >= this.windowStart && pos < this.windowStart + this.window.length) return this.window[pos - this.windowStart];
    return this.read(pos, 1)[0];
  }

  private readFresh(pos: number, len: number): Uint8Array {
    return this.readInto(new Uint8Array(len), pos);
  }

  private readInto(out: Uint8Array, pos: number): Uint8Array {
    const len = out.length;
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, out, done, Math.min(len - done, 1 << 30), pos + done);
      if (n === 0) throw new Error(`unexpected end of file at byte ${pos + done} (the file shrank while being read?)`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

// ---- options and errors -------------------------------------------------------------------

export interface UnpickleOptions {
  /** Names the input in every error: the file path, plus the archive entry if any. */
  label: string;
  /** The allow-list, keyed `module.name` (e.g. `collections.OrderedDict`); entries made with pyGlobal. */
  globals: ReadonlyMap<string, PyGlobal>;
  /** PERSID/BINPERSID handler; without one, persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Where the pickle starts in the input (several pickles can follow each other). */
  start?: number;
  /** Byte strings at least this long stay in the file as FileBytes (file inputs only). Default 4096. */
  leaveInFileFrom?: number;
}

/** Raised for anything the unpickler refuses or cannot parse. */
export class PickleError extends Error {
  constructor(
    readonly label: string,
    readonly offset: number,
    readonly problem: string,
  ) {
    super(`${label}: byte ${offset}: ${problem}`);
    this.name = 'PickleError';
  }
}

// Caps that no real checkpoint comes near but that keep a hostile file's cost bounded.
const MAX_STACK = 1 << 24;
const MAX_MARK_DEPTH = 1 << 16;
const MAX_MEMO = 1 << 24;
const MAX_LINE = 1 << 16;
const MAX_LONG_BYTES = 1024;
// Constructors do work proportional to their arguments (OrderedDict copies its dict),
// and the memo lets one big argument be passed again for a few bytes each time. Their
// total is charged against a budget proportional to the input, so a pickle cannot
// turn a few bytes into quadratic work.
const WORK_PER_BYTE = 8;
const WORK_BASE = 1 << 20;
const HIGHEST_PROTOCOL = 5;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes as a string of the same char codes (TextDecoder's 'latin1' is really windows-1252). */
export function latin1String(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

/** Bytes of a Python str under 'latin1' (each char must be < 256). */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new Error(`character U+${c.toString(16).padStart(4, '0')} at index ${i} is not latin-1`);
    out[i] = c;
  }
  return out;
}

function toInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Two's-complement little-endian integer (LONG1/LONG4). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return toInt(v);
}

/** A Python decimal integer literal as text (INT, LONG, GET, PUT lines). */
function parseDecimal(s: string, what: string): number | bigint {
  const t = s.endsWith('L') ? s.slice(0, -1) : s;
  if (!/^[+-]?\d+$/.test(t) || t.length > 4 * MAX_LONG_BYTES) throw new Error(`${what} '${s.slice(0, 40)}' is not a decimal integer`);
  return toInt(BigInt(t));
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '',
};

/** The body of a protocol-0 STRING: a Python repr, quotes included. */
function unquoteString(s: string): string {
  if (s.length < 2 || s[0] !== s[s.length - 1] || (s[0] !== "'" && s[0] !== '"'))
    throw new Error('STRING operand is not a quoted string');
  const body = s.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = body[++i];
    if (n === undefined) throw new Error('STRING ends in a lone backslash');
    if (Object.hasOwn(SIMPLE_ESCAPES, n)) out += SIMPLE_ESCAPES[n];
    else if (n === 'x') {
      const h = body.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) throw new Error(`bad \\x escape in STRING`);
      out += String.fromCharCode(parseInt(h, 16));
      i += 2;
    } else if (n >= '0' && n <= '7') {
      let j = i;
      while (j < i + 3 && body[j] >= '0' && body[j] <= '7') j++;
      out += String.fromCharCode(parseInt(body.slice(i, j), 8) & 0xff);
      i = j - 1;
    } else out += '\\' + n;
  }
  return out;
}

/** raw-unicode-escape (protocol-0 UNICODE): bytes are latin-1 except \uXXXX and \UXXXXXXXX. */
function rawUnicodeEscape(b: Uint8Array): string {
  const s = latin1String(b);
  return s.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})/g, (_, hex: string) => {
    const cp = parseInt(hex.slice(1), 16);
    if (cp > 0x10ffff) throw new Error(`code point U+${cp.toString(16)} out of range in UNICODE`);
    return String.fromCodePoint(cp);
  });
}

// ---- the machine ----------------------------------------------------------------------------

/**
 * Runs one pickle from `opts.start` (default 0) to its STOP and returns the value and
 * the offset just past STOP. Throws PickleError for anything refused or malformed.
 */
export function unpickle(input: ByteInput, opts: UnpickleOptions): { value: unknown; end: number } {
  if (typeof input !== 'object' || input === null || typeof input.read !== 'function' || typeof input.byteAt !== 'function' || !Number.isSafeInteger(input.length))
    throw new TypeError(`unpickle: argument 'input' must be a ByteInput (BufferInput, FileInput), got ${pyDescribe(input)}`);
  if (typeof opts !== 'object' || opts === null) throw new TypeError(`unpickle: argument 'opts' must be an object, got ${pyDescribe(opts)}`);
  if (typeof opts.label !== 'string') throw new TypeError(`unpickle: option 'label' must be a string, got ${pyDescribe(opts.label)}`);
  if (!(opts.globals instanceof Map)) throw new TypeError(`unpickle: option 'globals' must be a Map of pyGlobal entries, got ${pyDescribe(opts.globals)}`);
  if (opts.start !== undefined && !(Number.isSafeInteger(opts.start) && opts.start >= 0))
    throw new TypeError(`unpickle: option 'start' must be a non-negative integer, got ${pyDescribe(opts.start)}`);
  if (opts.leaveInFileFrom !== undefined && !(Number.isSafeInteger(opts.leaveInFileFrom) && opts.leaveInFileFrom >= 0))
    throw new TypeError(`unpickle: option 'leaveInFileFrom' must be a non-negative integer, got ${pyDescribe(opts.leaveInFileFrom)}`);
  if (opts.persistentLoad !== undefined && typeof opts.persistentLoad !== 'function')
    throw new TypeError(`unpickle: option 'persistentLoad' must be a function, got ${pyDescribe(opts.persistentLoad)}`);
  return new Machine(input, opts).run();
}

class Machine {
  private pos: number;
  private opStart: number;
  private readonly stack: unknown[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly leaveFrom: number;
  private work = 0;
  private readonly workLimit: number;

  constructor(
    private readonly input: ByteInput,
    private readonly opts: UnpickleOptions,
  ) {
    this.pos = opts.start ?? 0;
    this.opStart = this.pos;
    this.leaveFrom = opts.leaveInFileFrom ?? 4096;
    this.workLimit = WORK_BASE + WORK_PER_BYTE * input.length;
  }

  run(): { value: unknown; end: number } {
    try {
      if (!(this.pos >= 0 && this.pos <= this.input.length)) this.fail(`start offset ${this.pos} is outside the input (${this.input.length} bytes)`);
      for (;;) {
        this.opStart = this.pos;
        const op = this.byte();
        if (op === 0x2e /* STOP */) {
          if (this.marks.length) this.fail('STOP inside an unclosed MARK');
          if (this.stack.length === 0) this.fail('STOP with an empty stack');
          return { value: this.stack.pop(), end: this.pos };
        }
        this.step(op);
        if (this.stack.length > MAX_STACK) this.fail(`stack exceeds ${MAX_STACK} items`);
      }
    } catch (err) {
      if (err instanceof PickleError) throw err;
      // Anything thrown by a helper or an allow-listed constructor gets the file and offset.
      const msg = err instanceof Error ? err.message : String(err);
      throw new PickleError(this.opts.label, this.opStart, msg);
    }
  }

  private fail(problem: string): never {
    throw new PickleError(this.opts.label, this.opStart, problem);
  }

  // -- reading operands --

  private need(n: number, what: string): void {
    if (n > this.input.length - this.pos)
      this.fail(`${what} needs ${n} bytes but only ${this.input.length - this.pos} remain (file truncated?)`);
  }

  private bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.input.read(this.pos, n);
    this.pos += n;
    return b;
  }

  private byte(what = 'opcode'): number {
    this.need(1, what);
    return this.input.byteAt(this.pos++);
  }

  private u16(): number {
    this.need(2, 'operand');
    const lo = this.input.byteAt(this.pos++);
    return lo | (this.input.byteAt(this.pos++) << 8);
  }

  private u32(what = 'operand'): number {
    this.need(4, what);
    const i = this.input;
    const v = i.byteAt(this.pos) | (i.byteAt(this.pos + 1) << 8) | (i.byteAt(this.pos + 2) << 16);
    const hi = i.byteAt(this.pos + 3);
    this.pos += 4;
    return v + hi * 0x1000000;
  }

  private i32(): number {
    const u = this.u32();
    return u | 0;
  }

  private u64(what: string): number {
    const lo = this.u32(what);
    const hi = this.u32(what);
    // A length past 2^53 cannot fit in any file, so it is refused rather than rounded.
    if (hi >= 0x200000) this.fail(`${what} length ${BigInt(hi) * 2n ** 32n + BigInt(lo)} is absurd`);
    return hi * 0x100000000 + lo;
  }

  private line(what: string): string {
    const start = this.pos;
    const limit = Math.min(this.input.length, start + MAX_LINE);
    for (let p = start; p < limit; p++) {
      if (this.input.byteAt(p) === 0x0a) {
        const s = latin1String(this.input.read(start, p - start));
        this.pos = p + 1;
        return s.endsWith('\r') ? s.slice(0, -1) : s;
      }
    }
    if (limit === this.input.length) this.fail(`${what}: no newline before the end of the input (file truncated?)`);
    this.fail(`${what}: line longer than ${MAX_LINE} bytes`);
  }

  /** A byte string: read when small or in memory, left in the file when large. */
  private byteString(n: number, what: string): Uint8Array | FileBytes {
    this.need(n, what);
    const path = this.input.path;
    if (path !== undefined && n >= this.leaveFrom) {
      const fb = new FileBytes(path, this.pos, n, this.input.version);
      this.pos += n;
      return fb;
    }
    // A copy, so a record never pins the whole pickle buffer (and Buffer#slice would not copy).
    return new Uint8Array(this.bytes(n, what));
  }

  private text(n: number, what: string): string {
    // Names and keys are short ASCII; TextDecoder's fixed cost dominates for those.
    if (n <= 64) {
      this.need(n, what);
      let s = '';
      for (let i = 0; i < n; i++) {
        const c = this.input.byteAt(this.pos + i);
        if (c >= 0x80) return utf8.decode(this.bytes(n, what));
        s += String.fromCharCode(c);
      }
      this.pos += n;
      return s;
    }
    return utf8.decode(this.bytes(n, what));
  }

  // -- stack --

  private push(v: unknown): void {
    this.stack.push(v);
  }

  private pop(what: string): unknown {
    const floor = this.marks.length ? this.marks[this.marks.length - 1] : 0;
    if (this.stack.length <= floor) this.fail(`${what} on an empty stack`);
    return this.stack.pop();
  }

  private top(what: string): unknown {
    const floor = this.marks.length ? this.marks[this.marks.length - 1] : 0;
    if (this.stack.length <= floor) this.fail(`${what} on an empty stack`);
    return this.stack[this.stack.length - 1];
  }

  private popMark(what: string): unknown[] {
    const m = this.marks.pop();
    if (m === undefined) this.fail(`${what} without a MARK`);
    return this.stack.splice(m);
  }

  private memoPut(i: number | bigint, v: unknown): void {
    if (typeof i !== 'number' || i < 0) this.fail(`memo index ${i} out of range`);
    if (!this.memo.has(i) && this.memo.size >= MAX_MEMO) this.fail(`memo exceeds ${MAX_MEMO} entries`);
    this.memo.set(i, v);
  }

  private memoGet(i: number | bigint): unknown {
    if (typeof i !== 'number' || !this.memo.has(i)) this.fail(`memo has no entry ${i}`);
    return this.memo.get(i);
  }

  // -- globals and calls --

  private global(module: string, name: string): PyGlobal {
    const key = `${module}.${name}`;
    const g = this.opts.globals.get(key);
    if (g === undefined) this.fail(`refused global '${key}': not on this reader's allow-list (a pickle naming it could run code)`);
    return g;
  }

  private callable(v: unknown, what: string): NonNullable<PyGlobal['call']> {
    if (!isPyGlobal(v)) this.fail(`${what} of ${pyDescribe(v)}, which is not an allowed callable`);
    if (!v.call) this.fail(`${what} of global '${v.name}', which is a value, not a callable`);
    return v.call;
  }

  /** Charges the shallow size of each value (what a constructor may walk) to the work budget. */
  private charge(values: readonly unknown[], what: string): void {
    for (const v of values) {
      this.work += 1;
      if (typeof v === 'string') this.work += v.length;
      else if (Array.isArray(v)) this.work += v.length;
      else if (v instanceof Map || v instanceof Set) this.work += v.size;
    }
    if (this.work > this.workLimit)
      this.fail(`${what}: the pickle asks for more work than ${WORK_PER_BYTE} units per input byte (a pickle built to hang a reader?)`);
  }

  private invoke(callee: unknown, args: unknown, what: string, kwargs?: unknown): unknown {
    const fn = this.callable(callee, what);
    this.charge(isTuple(args) ? args : [args], what);
    if (kwargs instanceof Map) this.charge([kwargs], what);
    if (!isTuple(args)) this.fail(`${what}: arguments must be a tuple, got ${pyDescribe(args)}`);
    if (kwargs !== undefined && !(kwargs instanceof Map)) this.fail(`${what}: keyword arguments must be a dict, got ${pyDescribe(kwargs)}`);
    try {
      return fn(args, kwargs as ReadonlyMap<unknown, unknown> | undefined);
    } catch (err) {
      if (err instanceof PickleError) throw err;
      this.fail(`${(callee as PyGlobal).name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private setItems(target: unknown, items: unknown[], what: string): void {
    if (!(target instanceof Map)) this.fail(`${what} on ${pyDescribe(target)}, not a dict`);
    if (items.length % 2) this.fail(`${what} with an odd number of items`);
    for (let i = 0; i < items.length; i += 2) target.set(checkKey(items[i]), items[i + 1]);
  }

  private appendItems(target: unknown, items: unknown[], what: string): void {
    if (!Array.isArray(target) || isTuple(target)) this.fail(`${what} on ${pyDescribe(target)}, not a list`);
    for (const v of items) (target as unknown[]).push(v);
  }

  private addItems(target: unknown, items: unknown[]): void {
    if (!(target instanceof Set) || Object.isFrozen(target)) this.fail(`ADDITEMS on ${pyDescribe(target)}, not a set`);
    for (const v of items) target.add(checkKey(v));
  }

  private build(target: unknown, state: unknown): void {
    this.charge(isTuple(state) ? state : [state], 'BUILD');
    if (typeof target === 'object' && target !== null && SET_STATE in target) {
      try {
        (target as PyStateful)[SET_STATE](state);
      } catch (err) {
        if (err instanceof PickleError) throw err;
        this.fail(`BUILD of ${pyDescribe(target)}: ${err instanceof Error ? err.message : String(err)}`);
      }
      return;
    }
    // A dict subclass's instance attributes (state_dict()._metadata, for one) are
    // bookkeeping about the tensors, not tensors: accept and drop them.
    if (target instanceof Map && (state instanceof Map || (isTuple(state) && state.length === 2))) return;
    this.fail(`BUILD of ${pyDescribe(target)} with ${pyDescribe(state)} is not supported`);
  }

  private persistent(pid: unknown): unknown {
    const load = this.opts.persistentLoad;
    if (!load) this.fail(`persistent id ${pyDescribe(pid)} refused: this file format has none`);
    try {
      return load(pid);
    } catch (err) {
      if (err instanceof PickleError) throw err;
      this.fail(`persistent id: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // -- one opcode --

  private step(op: number): void {
    switch (op) {
      case 0x80: {
        // PROTO
        const v = this.byte();
        if (v > HIGHEST_PROTOCOL) this.fail(`pickle protocol ${v} is newer than ${HIGHEST_PROTOCOL}`);
        return;
      }
      case 0x95: {
        // FRAME: only a read-ahead hint; its length must still fit the input.
        const n = this.u64('FRAME');
        this.need(n, 'FRAME');
        return;
      }
      case 0x28: // MARK
        if (this.marks.length >= MAX_MARK_DEPTH) this.fail(`MARKs nested deeper than ${MAX_MARK_DEPTH}`);
        this.marks.push(this.stack.length);
        return;
      case 0x30: // POP
        if (this.marks.length && this.stack.length === this.marks[this.marks.length - 1]) this.marks.pop();
        else this.pop('POP');
        return;
      case 0x31: // POP_MARK
        this.popMark('POP_MARK');
        return;
      case 0x32: // DUP
        this.push(this.top('DUP'));
        return;

      // constants and numbers
      case 0x4e: // NONE
        return this.push(null);
      case 0x88: // NEWTRUE
        return this.push(true);
      case 0x89: // NEWFALSE
        return this.push(false);
      case 0x4a: // BININT
        return this.push(this.i32());
      case 0x4b: // BININT1
        return this.push(this.byte());
      case 0x4d: // BININT2
        return this.push(this.u16());
      case 0x8a: {
        // LONG1
        const n = this.byte();
        return this.push(decodeLong(this.bytes(n, 'LONG1')));
      }
      case 0x8b: {
        // LONG4
        const n = this.i32();
        if (n < 0 || n > MAX_LONG_BYTES) this.fail(`LONG4 of ${n} bytes (at most ${MAX_LONG_BYTES} accepted)`);
        return this.push(decodeLong(this.bytes(n, 'LONG4')));
      }
      case 0x49: {
        // INT (text): also spells True/False as 01/00.
        const s = this.line('INT');
        if (s === '01') return this.push(true);
        if (s === '00') return this.push(false);
        return this.push(parseDecimal(s, 'INT'));
      }
      case 0x4c: // LONG (text)
        return this.push(parseDecimal(this.line('LONG'), 'LONG'));
      case 0x46: {
        // FLOAT (text)
        // Python's repr spells the specials inf, -inf and nan.
        const s = this.line('FLOAT').trim();
        if (/^[+-]?inf(inity)?$/i.test(s)) return this.push(s.startsWith('-') ? -Infinity : Infinity);
        if (/^[+-]?nan$/i.test(s)) return this.push(NaN);
        const v = Number(s);
        if (s === '' || Number.isNaN(v)) this.fail(`FLOAT '${s.slice(0, 40)}' is not a number`);
        return this.push(v);
      }
      case 0x47: {
        // BINFLOAT: big-endian double
        const b = this.bytes(8, 'BINFLOAT');
        return this.push(new DataView(b.buffer, b.byteOffset, 8).getFloat64(0, false));
      }

      // strings and bytes
      case 0x58: // BINUNICODE
        return this.push(this.text(this.u32('BINUNICODE'), 'BINUNICODE'));
      case 0x8c: // SHORT_BINUNICODE
        return this.push(this.text(this.byte(), 'SHORT_BINUNICODE'));
      case 0x8d: // BINUNICODE8
        return this.push(this.text(this.u64('BINUNICODE8'), 'BINUNICODE8'));
      case 0x56: // UNICODE (text, raw-unicode-escape)
        return this.push(rawUnicodeEscape(latin1Bytes(this.line('UNICODE'))));
      // Python 2 str: latin-1 text here, as Python 3 reads it with encoding='latin1'.
      case 0x53: // STRING
        return this.push(unquoteString(this.line('STRING')));
      case 0x54: {
        // BINSTRING
        const n = this.i32();
        if (n < 0) this.fail(`BINSTRING with negative length ${n}`);
        return this.push(latin1String(this.bytes(n, 'BINSTRING')));
      }
      case 0x55: // SHORT_BINSTRING
        return this.push(latin1String(this.bytes(this.byte(), 'SHORT_BINSTRING')));
      case 0x42: // BINBYTES
        return this.push(this.byteString(this.u32('BINBYTES'), 'BINBYTES'));
      case 0x43: // SHORT_BINBYTES
        return this.push(this.byteString(this.byte(), 'SHORT_BINBYTES'));
      case 0x8e: // BINBYTES8
        return this.push(this.byteString(this.u64('BINBYTES8'), 'BINBYTES8'));
      case 0x96: // BYTEARRAY8
        return this.push(this.byteString(this.u64('BYTEARRAY8'), 'BYTEARRAY8'));
      case 0x97: // NEXT_BUFFER
        this.fail('NEXT_BUFFER refused: out-of-band buffers are not part of a checkpoint file');
      case 0x98: // READONLY_BUFFER: a no-op on an in-band buffer
        this.top('READONLY_BUFFER');
        return;

      // containers
      case 0x29: // EMPTY_TUPLE
        return this.push(Object.freeze([]));
      case 0x85: // TUPLE1
        return this.push(Object.freeze([this.pop('TUPLE1')]));
      case 0x86: {
        // TUPLE2
        const b = this.pop('TUPLE2');
        const a = this.pop('TUPLE2');
        return this.push(Object.freeze([a, b]));
      }
      case 0x87: {
        // TUPLE3
        const c = this.pop('TUPLE3');
        const b = this.pop('TUPLE3');
        const a = this.pop('TUPLE3');
        return this.push(Object.freeze([a, b, c]));
      }
      case 0x74: // TUPLE
        return this.push(Object.freeze(this.popMark('TUPLE')));
      case 0x5d: // EMPTY_LIST
        return this.push([]);
      case 0x6c: // LIST
        return this.push(this.popMark('LIST'));
      case 0x7d: // EMPTY_DICT
        return this.push(new Map());
      case 0x64: {
        // DICT
        const m = new Map();
        this.setItems(m, this.popMark('DICT'), 'DICT');
        return this.push(m);
      }
      case 0x8f: // EMPTY_SET
        return this.push(new Set());
      case 0x91: // FROZENSET
        return this.push(Object.freeze(new Set(this.popMark('FROZENSET').map(checkKey))));
      case 0x61: {
        // APPEND
        const v = this.pop('APPEND');
        return this.appendItems(this.top('APPEND'), [v], 'APPEND');
      }
      case 0x65: {
        // APPENDS
        const items = this.popMark('APPENDS');
        return this.appendItems(this.top('APPENDS'), items, 'APPENDS');
      }
      case 0x73: {
        // SETITEM
        const v = this.pop('SETITEM');
        const k = this.pop('SETITEM');
        return this.setItems(this.top('SETITEM'), [k, v], 'SETITEM');
      }
      case 0x75: {
        // SETITEMS
        const items = this.popMark('SETITEMS');
        return this.setItems(this.top('SETITEMS'), items, 'SETITEMS');
      }
      case 0x90: {
        // ADDITEMS
        const items = this.popMark('ADDITEMS');
        return this.addItems(this.top('ADDITEMS'), items);
      }

      // memo
      case 0x70: // PUT
        return this.memoPut(parseDecimal(this.line('PUT'), 'PUT'), this.top('PUT'));
      case 0x71: // BINPUT
        return this.memoPut(this.byte(), this.top('BINPUT'));
      case 0x72: // LONG_BINPUT
        return this.memoPut(this.u32(), this.top('LONG_BINPUT'));
      case 0x94: // MEMOIZE
        return this.memoPut(this.memo.size, this.top('MEMOIZE'));
      case 0x67: // GET
        return this.push(this.memoGet(parseDecimal(this.line('GET'), 'GET')));
      case 0x68: // BINGET
        return this.push(this.memoGet(this.byte()));
      case 0x6a: // LONG_BINGET
        return this.push(this.memoGet(this.u32()));

      // globals, calls, objects
      case 0x63: {
        // GLOBAL
        const module = this.line('GLOBAL module');
        const name = this.line('GLOBAL name');
        return this.push(this.global(module, name));
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = this.pop('STACK_GLOBAL');
        const module = this.pop('STACK_GLOBAL');
        if (typeof module !== 'string' || typeof name !== 'string')
          this.fail(`STACK_GLOBAL needs two str, got ${pyDescribe(module)} and ${pyDescribe(name)}`);
        return this.push(this.global(module, name));
      }
      case 0x52: {
        // REDUCE
        const args = this.pop('REDUCE');
        const callee = this.pop('REDUCE');
        return this.push(this.invoke(callee, args, 'REDUCE'));
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args); allowed classes build the same way either path.
        const args = this.pop('NEWOBJ');
        const cls = this.pop('NEWOBJ');
        return this.push(this.invoke(cls, args, 'NEWOBJ'));
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = this.pop('NEWOBJ_EX');
        const args = this.pop('NEWOBJ_EX');
        const cls = this.pop('NEWOBJ_EX');
        return this.push(this.invoke(cls, args, 'NEWOBJ_EX', kwargs));
      }
      case 0x69: {
        // INST: module and name inline, arguments since the MARK.
        const module = this.line('INST module');
        const name = this.line('INST name');
        const g = this.global(module, name);
        const args = this.popMark('INST');
        return this.push(this.invoke(g, Object.freeze(args), 'INST'));
      }
      case 0x6f: {
        // OBJ: class and arguments since the MARK.
        const items = this.popMark('OBJ');
        if (items.length === 0) this.fail('OBJ without a class');
        return this.push(this.invoke(items[0], Object.freeze(items.slice(1)), 'OBJ'));
      }
      case 0x62: {
        // BUILD
        const state = this.pop('BUILD');
        return this.build(this.top('BUILD'), state);
      }
      case 0x50: // PERSID
        return this.push(this.persistent(this.line('PERSID')));
      case 0x51: // BINPERSID
        return this.push(this.persistent(this.pop('BINPERSID')));
      case 0x82:
      case 0x83:
      case 0x84: {
        // EXT1/2/4: the copyreg extension registry maps codes to arbitrary globals.
        const code = op === 0x82 ? this.byte() : op === 0x83 ? this.u16() : this.i32();
        this.fail(`extension code ${code} refused: the extension registry can name any global`);
      }
      default:
        this.fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')} (not a pickle, or a corrupt one)`);
    }
  }
}

/**
 * A dict key or set member, refused when it is a str longer than MAX_NAME: such keys
 * hash alike in V8 (see MAX_NAME), so a dict of many of them would take quadratic time
 * to build. Checkpoint keys are module and parameter names.
 */
function checkKey<T>(k: T): T {
  if (typeof k === 'string' && k.length > MAX_NAME)
    throw new Error(`a dict key or set member is a str of ${k.length} characters, over the ${MAX_NAME}-character limit for names`);
  return k;
}

// ---- globals every reader may share ----------------------------------------------------------

/**
 * A dict from a Python mapping or iterable of pairs (OrderedDict(), haiku FlatMapping).
 * A dict argument is returned as is rather than copied: checkpoints pass fresh dicts,
 * and a copy per call is what a memo-reusing pickle would exploit.
 */
export function dictFrom(arg: unknown): Map<unknown, unknown> {
  if (arg === undefined || arg === null) return new Map();
  if (arg instanceof Map) return arg;
  if (Array.isArray(arg)) {
    const m = new Map();
    for (const pair of arg) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new Error(`expected (key, value) pairs, got ${pyDescribe(pair)}`);
      m.set(checkKey(pair[0]), pair[1]);
    }
    return m;
  }
  throw new Error(`cannot build a dict from ${pyDescribe(arg)}`);
}

function arity(args: readonly unknown[], min: number, max: number, what: string): void {
  if (args.length < min || args.length > max)
    throw new Error(`${what} takes ${min === max ? min : `${min} to ${max}`} arguments, got ${args.length}`);
}

/**
 * Plain-data globals real checkpoints use that cannot run anything: OrderedDict,
 * set/frozenset, and `_codecs.encode(str, 'latin1')`, which is how protocol 2 spells a
 * bytes object.
 */
export function basicGlobals(): PyGlobal[] {
  return [
    pyGlobal('collections.OrderedDict', (args) => {
      arity(args, 0, 1, 'OrderedDict');
      return dictFrom(args[0]);
    }),
    pyGlobal('builtins.set', (args) => {
      arity(args, 0, 1, 'set');
      if (args.length && !Array.isArray(args[0])) throw new Error(`set() of ${pyDescribe(args[0])}`);
      return new Set((args[0] as unknown[] | undefined)?.map(checkKey));
    }),
    pyGlobal('builtins.frozenset', (args) => {
      arity(args, 0, 1, 'frozenset');
      if (args.length && !Array.isArray(args[0])) throw new Error(`frozenset() of ${pyDescribe(args[0])}`);
      return Object.freeze(new Set((args[0] as unknown[] | undefined)?.map(checkKey)));
    }),
    pyGlobal('builtins.bytearray', (args) => {
      arity(args, 0, 2, 'bytearray');
      if (args.length === 0) return new Uint8Array(0);
      if (typeof args[0] === 'string' && (args[1] === 'latin1' || args[1] === 'latin-1')) return latin1Bytes(args[0]);
      if (args[0] instanceof Uint8Array || args[0] instanceof FileBytes) return args[0];
      throw new Error(`bytearray() of ${pyDescribe(args[0])}`);
    }),
    pyGlobal('_codecs.encode', (args) => {
      arity(args, 1, 2, 'encode');
      const [s, enc = 'utf-8'] = args;
      if (typeof s !== 'string') throw new Error(`encode() of ${pyDescribe(s)}`);
      if (enc === 'latin1' || enc === 'latin-1') return latin1Bytes(s);
      if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(s);
      throw new Error(`encoding ${pyDescribe(enc)} is not supported (latin1 and utf-8 are)`);
    }),
  ];
}

/** An allow-list keyed by name. Python 2 module names map onto Python 3's. */
export function globalsMap(entries: readonly PyGlobal[]): Map<string, PyGlobal> {
  const m = new Map<string, PyGlobal>();
  for (const g of entries) {
    m.set(g.name, g);
    if (g.name.startsWith('builtins.')) m.set(`__builtin__.${g.name.slice(9)}`, g);
  }
  return m;
}
