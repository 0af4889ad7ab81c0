// PyTorch checkpoints (torch.save, e.g. pytorch_model.bin) as TensorRecords.
//
// Two layouts exist. The current one (torch >= 1.6) is a zip: `<archive>/data.pkl`
// pickles the object with each storage as a persistent id ('storage', type, key,
// location, numel), and `<archive>/data/<key>` holds that storage's raw bytes, STORED,
// so a record is just a byte range of the file. The legacy one is a stream of pickles
// (magic number, protocol version, sys_info, the object, the sorted storage keys)
// followed by each storage as an int64 element count and its raw bytes.
//
// Only the pickle is read into memory, through the restricted unpickler: the globals
// below are all a tensor needs (the rebuild functions, storage types, dtypes,
// OrderedDict), and anything else, os.system included, is refused.
import { closeSync, readSync } from 'node:fs';

import {
  BufferInput,
  FileInput,
  PickleError,
  basicGlobals,
  globalsMap,
  isTuple,
  pyDescribe,
  pyGlobal,
  unpickle,
  type PyGlobal,
} from './pickle.js';
import {
  MAX_NAME,
  RECORD_ITEM_SIZE,
  contiguousStrides,
  openRegularFileSync,
  quoteName,
  type RecordDType,
  type RecordSource,
  type TensorRecord,
} from './records.js';
import { ZipError, ZipReader, type ZipEntry } from './zip.js';

class TorchCheckpointError extends Error {
  constructor(path: string, problem: string) {
    super(`torch: ${path}: ${problem}`);
    this.name = 'TorchCheckpointError';
  }
}

// ---- what the pickle builds ------------------------------------------------------------------

/** A storage as its persistent id names it; where its bytes are is resolved afterwards. */
class Storage {
  constructor(
    readonly key: string,
    readonly dtype: RecordDType,
    /** Length in elements. */
    readonly numel: number,
    /** Element offset into the root storage (legacy storage views); 0 otherwise. */
    readonly viewOffset = 0,
    readonly root: Storage | null = null,
  ) {}
}

class TorchTensor {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly shape: number[],
    readonly strides: number[],
  ) {}
}

const STORAGE_DTYPES: [string, RecordDType][] = [
  ['DoubleStorage', 'F64'],
  ['FloatStorage', 'F32'],
  ['HalfStorage', 'F16'],
  ['BFloat16Storage', 'BF16'],
  ['LongStorage', 'I64'],
  ['IntStorage', 'I32'],
  ['ShortStorage', 'I16'],
  ['CharStorage', 'I8'],
  ['ByteStorage', 'U8'],
  ['BoolStorage', 'BOOL'],
  ['UntypedStorage', 'U8'],
];
const storageTypes = new Map<PyGlobal, RecordDType>();

const DTYPE_NAMES = [
  'float64', 'double', 'float32', 'float', 'float16', 'half', 'bfloat16', 'int64', 'long', 'int32', 'int',
  'int16', 'short', 'int8', 'uint8', 'bool', 'complex64', 'complex128', 'cfloat', 'cdouble',
];

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function intTuple(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every(isIndex)) throw new Error(`${what} must be a tuple of non-negative ints, got ${pyDescribe(v)}`);
  return [...v];
}

function rebuildTensor(args: readonly unknown[], what: string): TorchTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof Storage)) throw new Error(`${what}: storage must be a storage, got ${pyDescribe(storage)}`);
  if (!isIndex(offset)) throw new Error(`${what}: storage_offset must be a non-negative int, got ${pyDescribe(offset)}`);
  const shape = intTuple(size, `${what}: size`);
  const strides = intTuple(stride, `${what}: stride`);
  if (strides.length !== shape.length) throw new Error(`${what}: size has ${shape.length} dims but stride has ${strides.length}`);
  // The tensor's furthest element must lie inside its storage.
  if (!shape.includes(0)) {
    let last = offset;
    for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * strides[i];
    if (!(last < storage.numel))
      throw new Error(`${what}: size [${shape}] stride [${strides}] at offset ${offset} reaches element ${last}, past the storage's ${storage.numel}`);
  } else if (offset > storage.numel) throw new Error(`${what}: storage_offset ${offset} is past the storage's ${storage.numel} elements`);
  return new TorchTensor(storage, offset, shape, strides);
}

const TORCH_GLOBALS = globalsMap([
  ...basicGlobals(),
  pyGlobal('torch._utils._rebuild_tensor_v2', (args) => {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args.length < 6 || args.length > 7) throw new Error(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
    return rebuildTensor(args, '_rebuild_tensor_v2');
  }),
  pyGlobal('torch._utils._rebuild_tensor', (args) => {
    if (args.length !== 4) throw new Error(`_rebuild_tensor takes 4 arguments, got ${args.length}`);
    return rebuildTensor(args, '_rebuild_tensor');
  }),
  pyGlobal('torch._utils._rebuild_parameter', (args) => {
    // (data, requires_grad, backward_hooks): a Parameter is its tensor here.
    if (args.length !== 3) throw new Error(`_rebuild_parameter takes 3 arguments, got ${args.length}`);
    if (!(args[0] instanceof TorchTensor)) throw new Error(`_rebuild_parameter: data must be a tensor, got ${pyDescribe(args[0])}`);
    return args[0];
  }),
  pyGlobal('torch._utils._rebuild_parameter_with_state', (args) => {
    if (args.length !== 4) throw new Error(`_rebuild_parameter_with_state takes 4 arguments, got ${args.length}`);
    if (!(args[0] instanceof TorchTensor)) throw new Error(`_rebuild_parameter_with_state: data must be a tensor, got ${pyDescribe(args[0])}`);
    return args[0];
  }),
  ...STORAGE_DTYPES.flatMap(([name, dtype]) => {
    const gs = [pyGlobal(`torch.${name}`)];
    if (name === 'UntypedStorage') gs.push(pyGlobal('torch.storage.UntypedStorage'));
    for (const g of gs) storageTypes.set(g, dtype);
    return gs;
  }),
  // Dtypes and devices appear as plain values (configs saved next to the weights).
  ...DTYPE_NAMES.map((n) => pyGlobal(`torch.${n}`)),
  pyGlobal('torch.Size', (args) => {
    if (args.length !== 1) throw new Error(`torch.Size takes 1 argument, got ${args.length}`);
    return Object.freeze(intTuple(args[0], 'torch.Size'));
  }),
  pyGlobal('torch.device', (args) => {
    if (!args.every((a) => typeof a === 'string' || isIndex(a))) throw new Error(`torch.device of ${args.map(pyDescribe).join(', ')}`);
    return args.join(':');
  }),
]);

/**
 * Persistent ids: ('storage', storage_type, key, location, numel) in the zip layout,
 * plus view_metadata (None or (view_key, offset, size)) in the legacy one.
 */
function storageLoader(storages: Map<string, Storage>, legacy: boolean) {
  return (pid: unknown): Storage => {
    if (!isTuple(pid) || pid[0] !== 'storage') throw new Error(`expected a ('storage', ...) persistent id, got ${pyDescribe(pid)}`);
    const expected = legacy ? 6 : 5;
    if (pid.length !== expected) throw new Error(`a storage persistent id has ${expected} fields here, got ${pid.length}`);
    const [, type, key, location, numel] = pid;
    const dtype = storageTypes.get(type as PyGlobal);
    if (dtype === undefined) throw new Error(`unsupported storage type ${pyDescribe(type)}`);
    if (typeof key !== 'string' || key.length === 0 || key.length > 256 || key.includes('/') || key.includes('\\') || key === '..')
      throw new Error(`storage key ${pyDescribe(key)} is not a plain name`);
    if (typeof location !== 'string') throw new Error(`storage location must be a str, got ${pyDescribe(location)}`);
    if (!isIndex(numel)) throw new Error(`storage size must be a non-negative int, got ${pyDescribe(numel)}`);
    let root = storages.get(key);
    if (root === undefined) {
      root = new Storage(key, dtype, numel);
      storages.set(key, root);
    } else if (root.dtype !== dtype || root.numel !== numel)
      throw new Error(`storage '${key}' is named as ${dtype}[${numel}] after ${root.dtype}[${root.numel}]`);
    const view = legacy ? pid[5] : null;
    if (view === null) return root;
    if (!isTuple(view) || view.length !== 3 || typeof view[0] !== 'string' || !isIndex(view[1]) || !isIndex(view[2]))
      throw new Error(`storage view metadata must be (key, offset, size), got ${pyDescribe(view)}`);
    if (view[1] + view[2] > numel) throw new Error(`storage view [${view[1]}, ${view[1] + view[2]}) is outside storage '${key}' of ${numel}`);
    return new Storage(view[0], dtype, view[2], view[1], root);
  };
}

// ---- from the unpickled object to named tensors ------------------------------------------------

const MAX_NESTING = 64;
// A pickle can share one dict under many keys, so a walk over a small file can visit
// exponentially many paths; visits and name lengths (MAX_NAME) are capped.
const MAX_VISITS = 1 << 20;

/** The tensors of a checkpoint object, named by their dotted path. */
function flatten(path: string, top: unknown): Map<string, TorchTensor> {
  if (!(top instanceof Map)) throw new TorchCheckpointError(path, `the checkpoint holds ${pyDescribe(top)}, not a dict of tensors`);
  // Training checkpoints wrap the weights: {'state_dict': ..., 'optimizer': ...} or {'model': ...}.
  let root: Map<unknown, unknown> = top;
  const hasTensor = [...top.values()].some((v) => v instanceof TorchTensor);
  for (const key of ['state_dict', 'model']) {
    const inner = top.get(key);
    if (!hasTensor && inner instanceof Map) {
      root = inner;
      break;
    }
  }
  const out = new Map<string, TorchTensor>();
  const onPath = new Set<unknown>();
  let visits = 0;
  const walk = (v: unknown, name: string, depth: number): void => {
    if (++visits > MAX_VISITS) throw new TorchCheckpointError(path, `the checkpoint's structure has more than ${MAX_VISITS} paths (shared dicts nested to blow up a reader?)`);
    if (name.length > MAX_NAME)
      throw new TorchCheckpointError(path, `the name ${quoteName(name)} is longer than the ${MAX_NAME} characters a tensor name may have`);
    if (v instanceof TorchTensor) {
      if (out.has(name)) throw new TorchCheckpointError(path, `two tensors are both named '${name}'`);
      out.set(name, v);
      return;
    }
    const isMap = v instanceof Map;
    if (!isMap && !Array.isArray(v)) return; // numbers, strings, dtypes: not weights
    if (depth > MAX_NESTING) throw new TorchCheckpointError(path, `'${name}' is nested more than ${MAX_NESTING} levels deep`);
    if (onPath.has(v)) throw new TorchCheckpointError(path, `'${name}' contains itself`);
    onPath.add(v);
    const items: [unknown, unknown][] = isMap ? [...(v as Map<unknown, unknown>)] : (v as unknown[]).map((x, i) => [i, x]);
    for (const [k, child] of items) {
      if (typeof k !== 'string' && typeof k !== 'number')
        throw new TorchCheckpointError(path, `'${name || '<top>'}' has a key of type ${pyDescribe(k)}; tensor names need str keys`);
      walk(child, name ? `${name}.${k}` : String(k), depth + 1);
    }
    onPath.delete(v);
  };
  walk(root, '', 0);
  return out;
}

/** A tensor's record, given where its root storage's bytes are. */
function toRecord(name: string, t: TorchTensor, locate: (root: Storage) => RecordSource): TensorRecord {
  const item = RECORD_ITEM_SIZE[t.storage.dtype];
  const root = t.storage.root ?? t.storage;
  const first = t.storage.viewOffset + t.offset;
  const count = t.shape.reduce((a, b) => a * b, 1);
  let extent = 0;
  if (count > 0) {
    extent = 1;
    for (let i = 0; i < t.shape.length; i++) extent += (t.shape[i] - 1) * t.strides[i];
  }
  const whole = locate(root);
  const rec: TensorRecord = { name, dtype: t.storage.dtype, shape: t.shape, source: slice(whole, first * item, extent * item) };
  const want = contiguousStrides(t.shape);
  // A size-1 axis never moves, so its stride does not matter for contiguity.
  if (t.shape.some((d, i) => d !== 1 && t.strides[i] !== want[i])) rec.strides = t.strides;
  return rec;
}

function slice(src: RecordSource, start: number, length: number): RecordSource {
  if (src.kind === 'file') return { ...src, offset: src.offset + start, byteLength: length };
  return { kind: 'bytes', bytes: src.bytes.subarray(start, start + length) };
}

// ---- the two layouts ---------------------------------------------------------------------------

// data.pkl holds names and shapes only, so it is small even for huge models.
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

async function readZipLayout(path: string): Promise<TensorRecord[]> {
  const zip = await ZipReader.open(path);
  try {
    const pkls = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkls.length === 0) {
      const hint = [...zip.entries.keys()].some((n) => n.endsWith('/constants.pkl')) ? ' (a TorchScript archive? only torch.save checkpoints are read)' : '';
      throw new TorchCheckpointError(path, `no '<archive>/data.pkl' entry in the zip${hint}`);
    }
    if (pkls.length > 1) throw new TorchCheckpointError(path, `several data.pkl entries (${pkls.join(', ')})`);
    const prefix = pkls[0].slice(0, -'data.pkl'.length);
    const byteorder = zip.get(`${prefix}byteorder`);
    if (byteorder) {
      const order = (await zip.read(byteorder, 16)).toString('latin1').trim();
      if (order !== 'little') throw new TorchCheckpointError(path, `byteorder is '${order}'; only little-endian checkpoints are supported`);
    }
    const pkl = await zip.read(zip.get(pkls[0])!, MAX_PICKLE_BYTES);
    const storages = new Map<string, Storage>();
    const { value } = unpickle(new BufferInput(pkl), {
      label: `torch: ${path} [${pkls[0]}]`,
      globals: TORCH_GLOBALS,
      persistentLoad: storageLoader(storages, false),
    });
    const tensors = flatten(path, value);

    const sources = new Map<Storage, RecordSource>();
    for (const s of storages.values()) {
      const entryName = `${prefix}data/${s.key}`;
      const entry: ZipEntry | undefined = zip.get(entryName);
      if (!entry) throw new TorchCheckpointError(path, `storage '${s.key}' has no '${entryName}' entry`);
      const bytes = s.numel * RECORD_ITEM_SIZE[s.dtype];
      if (entry.uncompressedSize !== bytes)
        throw new TorchCheckpointError(path, `'${entryName}' holds ${entry.uncompressedSize} bytes but its storage is ${s.dtype}[${s.numel}] = ${bytes} bytes`);
      // torch.save stores storages uncompressed; a re-zipped archive costs one inflate each.
      sources.set(
        s,
        entry.method === 0
          ? { kind: 'file', path, offset: entry.dataOffset, byteLength: bytes, version: zip.version }
          : { kind: 'bytes', bytes: new Uint8Array(await zip.read(entry)) },
      );
    }
    return [...tensors].map(([name, t]) => toRecord(name, t, (root) => sources.get(root)!));
  } finally {
    await zip.close();
  }
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

function readLegacyLayout(path: string): TensorRecord[] {
  let input: FileInput;
  try {
    input = new FileInput(path);
  } catch (err) {
    throw new TorchCheckpointError(path, `cannot open (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    const label = `torch: ${path} [legacy]`;
    // Plain values only; a foreign pickle then fails on the magic number check, not on a global.
    const plain = globalsMap(basicGlobals());
    let at = 0;
    const next = (what: string, globals = plain, persistentLoad?: (pid: unknown) => unknown): unknown => {
      const r = unpickle(input, { label: `${label} ${what}`, globals, persistentLoad, start: at });
      at = r.end;
      return r.value;
    };
    const magic = next('magic number');
    if (magic !== LEGACY_MAGIC) throw new TorchCheckpointError(path, `not a PyTorch checkpoint (the first pickle is ${pyDescribe(magic)}, not torch's magic number)`);
    const protocol = next('protocol version');
    if (protocol !== LEGACY_PROTOCOL) throw new TorchCheckpointError(path, `legacy protocol version ${pyDescribe(protocol)} is not supported (${LEGACY_PROTOCOL} is)`);
    const sysInfo = next('sys_info');
    if (!(sysInfo instanceof Map)) throw new TorchCheckpointError(path, `sys_info is ${pyDescribe(sysInfo)}, not a dict`);
    if (sysInfo.get('little_endian') === false) throw new TorchCheckpointError(path, 'the checkpoint was saved big-endian; only little-endian is supported');
    const storages = new Map<string, Storage>();
    const value = next('object', TORCH_GLOBALS, storageLoader(storages, true));
    const keys = next('storage keys');
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string'))
      throw new TorchCheckpointError(path, `the storage key list is ${pyDescribe(keys)}, not a list of str`);
    const tensors = flatten(path, value);

    // Each storage in key order: an int64 element count, then its bytes.
    const sources = new Map<Storage, RecordSource>();
    for (const key of keys as string[]) {
      const s = storages.get(key);
      if (!s) throw new TorchCheckpointError(path, `storage '${key}' is listed but no tensor uses it`);
      if (sources.has(s)) throw new TorchCheckpointError(path, `storage '${key}' is listed twice`);
      if (at + 8 > input.length) throw new TorchCheckpointError(path, `storage '${key}' header at byte ${at} is past the end of the file (truncated?)`);
      const hdr = input.peek(at, 8);
      const count = new DataView(hdr.buffer, hdr.byteOffset, 8).getBigInt64(0, true);
      if (count !== BigInt(s.numel))
        throw new TorchCheckpointError(path, `storage '${key}' at byte ${at} says ${count} elements, its persistent id ${s.numel}`);
      const bytes = s.numel * RECORD_ITEM_SIZE[s.dtype];
      if (at + 8 + bytes > input.length)
        throw new TorchCheckpointError(path, `storage '${key}' [${at + 8}, ${at + 8 + bytes}) runs past the end of the file (${input.length} bytes; truncated?)`);
      sources.set(s, { kind: 'file', path, offset: at + 8, byteLength: bytes, version: input.version });
      at += 8 + bytes;
    }
    for (const s of storages.values()) if (!sources.has(s)) throw new TorchCheckpointError(path, `storage '${s.key}' is used but its bytes are missing`);
    return [...tensors].map(([name, t]) => toRecord(name, t, (root) => sources.get(root)!));
  } finally {
    input.close();
  }
}

/**
 * Reads a PyTorch checkpoint written by torch.save (pytorch_model.bin and friends), in
 * either the zip layout or the legacy one, as one record per tensor. Nested dicts are
 * flattened with dots; a checkpoint whose top level holds no tensors but a 'state_dict'
 * or 'model' dict is read from that dict. Tensors sharing a storage (tied weights,
 * views) give records over the same bytes; non-contiguous ones carry strides. No tensor
 * bytes are read, except for storages an archiver recompressed.
 */
export async function readTorchCheckpoint(path: string): Promise<TensorRecord[]> {
  if (typeof path !== 'string' || path.length === 0)
    throw new TypeError(`readTorchCheckpoint: argument 'path' must be a non-empty string, got ${pyDescribe(path)}`);
  let head = Buffer.alloc(4);
  try {
    const { fd } = openRegularFileSync(path);
    try {
      head = head.subarray(0, readSync(fd, head, 0, 4, 0));
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw new TorchCheckpointError(path, `cannot open (${err instanceof Error ? err.message : String(err)})`);
  }
  try {
    if (head.length >= 2 && head[0] === 0x50 && head[1] === 0x4b) return await readZipLayout(path);
    // The legacy layout opens with its magic number pickled: after PROTO (0x80) at
    // pickle_protocol 2 (torch's default) and above, as the text LONG 'L119547...' at
    // 0 and 1, which torch.load reads too.
    if (head.length >= 1 && head[0] === 0x80) return readLegacyLayout(path);
    if (head.toString('latin1') === 'L119') return readLegacyLayout(path);
  } catch (err) {
    if (err instanceof TorchCheckpointError || err instanceof PickleError || err instanceof ZipError) throw err;
    throw new TorchCheckpointError(path, err instanceof Error ? err.message : String(err));
  }
  throw new TorchCheckpointError(
    path,
    `not a PyTorch checkpoint: starts with ${[...head].map((b) => b.toString(16).padStart(2, '0')).join(' ') || 'nothing'} (a zip starts 50 4b, a legacy pickle 80 or 4c 31 31 39)`,
  );
}
