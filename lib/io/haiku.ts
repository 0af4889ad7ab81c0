// DeepMind Haiku checkpoints (the Perceiver release's `*.pickle` and `*.pystate`) as
// TensorRecords.
//
// They are plain pickles of a two-level mapping, module path -> parameter name -> numpy
// array; a `.pystate` wraps two of them as {'params': ..., 'state': ...}. A numpy array
// pickles as `_reconstruct(ndarray, (0,), b'b')` plus a BUILD of (version, shape, dtype,
// is_fortran, raw bytes), or under protocol 5 as `_frombuffer(buffer, dtype, shape,
// order)`; its dtype as `dtype('f4', False, True)` plus a BUILD carrying the byte order.
// Haiku's FlatMapping/frozendict and JAX arrays reduce to those (a dict; a numpy array
// rebuilt through `_reconstruct_array`), so the allow-list below is all they need.
//
// The raw bytes sit inside the pickle; large ones are left in the file (FileBytes), so
// records point at the file and a checkpoint of any size costs only its structure.
import {
  FileBytes,
  FileInput,
  PickleError,
  SET_STATE,
  basicGlobals,
  dictFrom,
  globalsMap,
  isPyGlobal,
  isTuple,
  latin1Bytes,
  pyDescribe,
  pyGlobal,
  unpickle,
  type PyGlobal,
  type PyStateful,
} from './pickle.js';
import { MAX_NAME, RECORD_ITEM_SIZE, quoteName, type RecordDType, type RecordSource, type TensorRecord } from './records.js';

class HaikuCheckpointError extends Error {
  constructor(path: string, problem: string) {
    super(`haiku: ${path}: ${problem}`);
    this.name = 'HaikuCheckpointError';
  }
}

// ---- numpy ----------------------------------------------------------------------------------

/** numpy's kind+size codes for the dtypes a record can hold. */
const NUMPY_DTYPES: Record<string, RecordDType> = {
  f8: 'F64', f4: 'F32', f2: 'F16', i8: 'I64', i4: 'I32', i2: 'I16', i1: 'I8', u1: 'U8', b1: 'BOOL',
};

class NumpyDType implements PyStateful {
  /** '<' little, '>' big, '|' not applicable; set by BUILD or a code like '<f4'. */
  byteOrder = '=';
  constructor(readonly code: string) {}

  [SET_STATE](state: unknown): void {
    // (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
    if (!isTuple(state) || state.length < 8 || typeof state[1] !== 'string')
      throw new Error(`dtype state must be a tuple of 8 or 9 with the byte order second, got ${pyDescribe(state)}`);
    if (state[2] !== null || state[3] !== null || state[4] !== null) throw new Error(`structured or sub-array dtype '${this.code}' is not supported`);
    this.byteOrder = state[1];
  }

  /** The record dtype, or an error saying why there is none. */
  recordDType(): RecordDType {
    // Own keys only: a code such as 'constructor' names no dtype.
    const dtype = Object.hasOwn(NUMPY_DTYPES, this.code) ? NUMPY_DTYPES[this.code] : undefined;
    if (dtype === undefined)
      throw new Error(`numpy dtype '${this.code}' is not supported (supported: ${Object.keys(NUMPY_DTYPES).join(', ')})`);
    // numpy pickles spell the order out ('<', '>', or '|' for single bytes); '=' would
    // mean the unknown writing machine's order.
    if (this.byteOrder !== '<' && this.byteOrder !== '|')
      throw new Error(`numpy dtype '${this.byteOrder}${this.code}' is not little-endian; only little-endian arrays are supported`);
    return dtype;
  }
}

/** An ndarray as its pickle describes it. */
class NumpyArray implements PyStateful {
  shape: number[] = [0];
  dtype: NumpyDType | null = null;
  fortran = false;
  data: Uint8Array | FileBytes | null = null;

  [SET_STATE](state: unknown): void {
    // (version, shape, dtype, is_fortran, data), or the same without the version.
    if (!isTuple(state) || (state.length !== 5 && state.length !== 4)) throw new Error(`ndarray state must be a tuple of 4 or 5, got ${pyDescribe(state)}`);
    const [shape, dtype, fortran, data] = state.length === 5 ? state.slice(1) : state;
    this.set(shape, dtype, fortran, data);
  }

  set(shape: unknown, dtype: unknown, fortran: unknown, data: unknown): void {
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0))
      throw new Error(`ndarray shape must be a tuple of non-negative ints, got ${pyDescribe(shape)}`);
    if (!(dtype instanceof NumpyDType)) throw new Error(`ndarray dtype must be a numpy dtype, got ${pyDescribe(dtype)}`);
    if (typeof fortran !== 'boolean' && fortran !== 0 && fortran !== 1) throw new Error(`ndarray is_fortran must be a bool, got ${pyDescribe(fortran)}`);
    if (Array.isArray(data)) throw new Error(`ndarray of dtype '${dtype.code}' holds Python objects, not raw bytes`);
    // Python 2 pickles and latin-1 readers carry the bytes as a str.
    const bytes = typeof data === 'string' ? latin1Bytes(data) : data;
    if (!(bytes instanceof Uint8Array) && !(bytes instanceof FileBytes)) throw new Error(`ndarray data must be bytes, got ${pyDescribe(data)}`);
    const item = RECORD_ITEM_SIZE[dtype.recordDType()];
    let count = 1;
    for (const d of shape as number[]) count *= d;
    if (!Number.isSafeInteger(count * item) || count * item !== bytes.length)
      throw new Error(`ndarray of shape [${shape}] and dtype '${dtype.code}' needs ${count * item} bytes, but its data holds ${bytes.length}`);
    this.shape = [...(shape as number[])];
    this.dtype = dtype;
    this.fortran = Boolean(fortran);
    this.data = bytes;
  }
}

function arity(args: readonly unknown[], min: number, max: number, what: string): void {
  if (args.length < min || args.length > max)
    throw new Error(`${what} takes ${min === max ? min : `${min} to ${max}`} arguments, got ${args.length}`);
}

const NDARRAY = pyGlobal('numpy.ndarray');

function reconstruct(args: readonly unknown[]): NumpyArray {
  // _reconstruct(ndarray, (0,), b'b'): an empty array that BUILD fills in.
  arity(args, 3, 3, '_reconstruct');
  if (args[0] !== NDARRAY) throw new Error(`_reconstruct of ${pyDescribe(args[0])}; only numpy.ndarray is supported`);
  return new NumpyArray();
}

function dtypeCtor(args: readonly unknown[]): NumpyDType {
  // dtype(code, align, copy)
  arity(args, 1, 3, 'dtype');
  const code = args[0];
  if (typeof code !== 'string' || code.length > 32) throw new Error(`dtype of ${pyDescribe(code)}`);
  // A code with its byte order spelled in ('<f4') is accepted as well.
  const m = /^([<>|=]?)(.*)$/.exec(code)!;
  const dt = new NumpyDType(m[2]);
  if (m[1]) dt.byteOrder = m[1];
  return dt;
}

function frombuffer(args: readonly unknown[]): NumpyArray {
  // _frombuffer(buffer, dtype, shape, order): protocol 5's in-band form.
  arity(args, 4, 4, '_frombuffer');
  const [buf, dtype, shape, order] = args;
  if (order !== 'C' && order !== 'F') throw new Error(`_frombuffer order must be 'C' or 'F', got ${pyDescribe(order)}`);
  const a = new NumpyArray();
  a.set(shape, dtype, order === 'F', buf);
  return a;
}

function scalar(args: readonly unknown[]): NumpyArray {
  // scalar(dtype, bytes): a numpy scalar such as np.float32(1.5).
  arity(args, 2, 2, 'scalar');
  const a = new NumpyArray();
  a.set(Object.freeze([]), args[0], false, args[1]);
  return a;
}

function reconstructJaxArray(args: readonly unknown[]): NumpyArray {
  // _reconstruct_array(fun, args, arr_state, aval_state): jax.Array.__reduce__ wraps
  // numpy's own reduction; fun is an allow-listed global, so this calls nothing new.
  arity(args, 4, 4, '_reconstruct_array');
  const [fun, fargs, state] = args;
  if (!isPyGlobal(fun) || fun.call !== reconstruct) throw new Error(`_reconstruct_array of ${pyDescribe(fun)}; only numpy's _reconstruct is supported`);
  if (!isTuple(fargs)) throw new Error(`_reconstruct_array arguments must be a tuple, got ${pyDescribe(fargs)}`);
  const a = reconstruct(fargs);
  a[SET_STATE](state);
  return a;
}

/** A Haiku mapping (FlatMapping, FlatMap, frozendict) is a dict for reading. */
function mappingCtor(name: string) {
  return (args: readonly unknown[]): Map<unknown, unknown> => {
    arity(args, 0, 1, name);
    return dictFrom(args[0]);
  };
}

const HAIKU_GLOBALS: Map<string, PyGlobal> = globalsMap([
  ...basicGlobals(),
  NDARRAY,
  ...['numpy.core.multiarray', 'numpy._core.multiarray'].flatMap((m) => [
    pyGlobal(`${m}._reconstruct`, reconstruct),
    pyGlobal(`${m}.scalar`, scalar),
  ]),
  ...['numpy.core.numeric', 'numpy._core.numeric'].map((m) => pyGlobal(`${m}._frombuffer`, frombuffer)),
  pyGlobal('numpy.dtype', dtypeCtor),
  ...['haiku._src.data_structures', 'haiku.data_structures'].flatMap((m) =>
    ['FlatMapping', 'FlatMap', 'frozendict'].map((n) => pyGlobal(`${m}.${n}`, mappingCtor(n))),
  ),
  // jax.Array (jax >= 0.4) and the older DeviceArray reduce through these; jax before
  // DeviceArray had its own reduction pickled the numpy value directly.
  ...['jax._src.array._reconstruct_array', 'jax._src.device_array.reconstruct_device_array'].map((n) => pyGlobal(n, reconstructJaxArray)),
]);

// ---- records -----------------------------------------------------------------------------------

function record(name: string, a: NumpyArray): TensorRecord {
  const dtype = a.dtype!.recordDType();
  const source: RecordSource =
    a.data instanceof FileBytes
      ? { kind: 'file', path: a.data.path, offset: a.data.offset, byteLength: a.data.length, version: a.data.version }
      : { kind: 'bytes', bytes: a.data! };
  const rec: TensorRecord = { name, dtype, shape: a.shape, source };
  if (a.fortran && a.shape.filter((d) => d !== 1).length > 1) {
    // Column-major: the first axis varies fastest.
    const strides: number[] = [];
    let acc = 1;
    for (const d of a.shape) {
      strides.push(acc);
      acc *= d;
    }
    rec.strides = strides;
  }
  return rec;
}

const MAX_NESTING = 64;
// A pickle can share one dict under many keys, so a walk over a small file can visit
// exponentially many paths; visits and name lengths (MAX_NAME) are capped.
const MAX_VISITS = 1 << 20;

/** Arrays of a (nested) mapping, named `module/path/name`. */
function collect(path: string, tree: unknown, what: string): TensorRecord[] {
  if (!(tree instanceof Map)) throw new HaikuCheckpointError(path, `${what} is ${pyDescribe(tree)}, not a mapping of module name to parameters`);
  const out: TensorRecord[] = [];
  const seen = new Set<string>();
  const onPath = new Set<unknown>();
  let visits = 0;
  const walk = (v: unknown, name: string, depth: number): void => {
    if (++visits > MAX_VISITS) throw new HaikuCheckpointError(path, `${what} has more than ${MAX_VISITS} paths (shared dicts nested to blow up a reader?)`);
    if (name.length > MAX_NAME)
      throw new HaikuCheckpointError(path, `${what} has the name ${quoteName(name)}, longer than the ${MAX_NAME} characters a name may have`);
    if (v instanceof NumpyArray) {
      if (v.dtype === null) throw new HaikuCheckpointError(path, `${what} '${name}' is an ndarray that was never given its state`);
      if (seen.has(name)) throw new HaikuCheckpointError(path, `${what} has two arrays named '${name}'`);
      seen.add(name);
      out.push(record(name, v));
      return;
    }
    if (!(v instanceof Map)) return; // counters saved as Python ints, None: not arrays
    if (depth > MAX_NESTING) throw new HaikuCheckpointError(path, `${what} '${name}' is nested more than ${MAX_NESTING} levels deep`);
    if (onPath.has(v)) throw new HaikuCheckpointError(path, `${what} '${name}' contains itself`);
    onPath.add(v);
    for (const [k, child] of v) {
      if (typeof k !== 'string') throw new HaikuCheckpointError(path, `${what} '${name || '<top>'}' has a key of type ${pyDescribe(k)}, not str`);
      walk(child, name ? `${name}/${k}` : k, depth + 1);
    }
    onPath.delete(v);
  };
  walk(tree, '', 0);
  return out;
}

export interface HaikuCheckpoint {
  /** Parameters, named `<module path>/<name>` (e.g. `perceiver_encoder/~/cross_attention/attention/linear/w`). */
  params: TensorRecord[];
  /** Haiku state (BatchNorm moving averages), named the same way; empty for a params-only file. */
  state: TensorRecord[];
}

/**
 * Reads a Haiku checkpoint: a `.pickle` of module path -> name -> numpy array, or a
 * `.pystate` of {'params': ..., 'state': ...}. Records keep numpy's layout (Linear `w` is
 * [in, out]); Fortran-ordered arrays carry strides. Large arrays are file ranges; small
 * ones are in memory.
 */
export async function readHaikuCheckpoint(path: string): Promise<HaikuCheckpoint> {
  if (typeof path !== 'string' || path.length === 0)
    throw new TypeError(`readHaikuCheckpoint: argument 'path' must be a non-empty string, got ${pyDescribe(path)}`);
  let input: FileInput;
  try {
    input = new FileInput(path);
  } catch (err) {
    throw new HaikuCheckpointError(path, `cannot open (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    // 'P' is also a pickle opcode (PERSID), so a zip would fail obscurely further in.
    if (input.length >= 4 && input.read(0, 4).every((b, i) => b === [0x50, 0x4b, 0x03, 0x04][i]))
      throw new HaikuCheckpointError(path, 'a zip archive, not a pickle (a PyTorch checkpoint? readTorchCheckpoint reads those)');
    const { value, end } = unpickle(input, { label: `haiku: ${path}`, globals: HAIKU_GLOBALS });
    if (end !== input.length) throw new HaikuCheckpointError(path, `${input.length - end} bytes follow the pickle's STOP at byte ${end}`);
    if (!(value instanceof Map)) throw new HaikuCheckpointError(path, `the file holds ${pyDescribe(value)}, not a mapping`);
    const params = value.get('params');
    if (params instanceof Map) {
      // A .pystate: {'params': ..., 'state': ...}; 'state' may be absent or empty.
      const state = value.get('state');
      return { params: collect(path, params, 'params'), state: state == null ? [] : collect(path, state, 'state') };
    }
    return { params: collect(path, value, 'params'), state: [] };
  } catch (err) {
    if (err instanceof HaikuCheckpointError || err instanceof PickleError) throw err;
    throw new HaikuCheckpointError(path, err instanceof Error ? err.message : String(err));
  } finally {
    input.close();
  }
}
