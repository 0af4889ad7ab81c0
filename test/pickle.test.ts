// Specification of the restricted unpickler: Python values written by CPython under
// every protocol (0-5) come back as the same JS values; only allow-listed globals can
// be named or called, whichever opcode names them; persistent ids go to the caller's
// hook; and malformed or hostile input fails with an error naming the input, the byte
// offset and the problem, within bounded time and memory.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  BufferInput,
  FileBytes,
  FileInput,
  PickleError,
  SET_STATE,
  basicGlobals,
  globalsMap,
  isTuple,
  pyGlobal,
  unpickle,
  type UnpickleOptions,
} from '../lib/io/pickle.js';

const here = dirname(fileURLToPath(import.meta.url));
const CKPT = join(here, '..', '..', 'test', 'fixtures', 'checkpoints');
const MARKER = '/tmp/perceiver-io-pickle-payload-ran';
const BASIC = globalsMap(basicGlobals());

const bytes = (...parts: (string | number[] | Uint8Array)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

function load(buf: Uint8Array, opts: Partial<UnpickleOptions> = {}): unknown {
  return unpickle(new BufferInput(buf), { label: 'test.pickle', globals: BASIC, ...opts }).value;
}

function fails(t: import('ava').ExecutionContext, buf: Uint8Array, re: RegExp, opts: Partial<UnpickleOptions> = {}): PickleError {
  const err = t.throws(() => load(buf, opts), { instanceOf: PickleError });
  t.regex(err!.message, /^test\.pickle: byte \d+: /);
  t.regex(err!.message, re);
  return err as PickleError;
}

test('values pickled by CPython under protocols 0 to 5 all read back the same', (t) => {
  for (let proto = 0; proto <= 5; proto++) {
    const v = load(readFileSync(join(CKPT, `plain_proto${proto}.pickle`))) as Map<string, unknown>;
    const p = `protocol ${proto}`;
    t.true(v instanceof Map, p);
    t.deepEqual(
      v.get('ints'),
      [0, 1, -1, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31 - 1, 2 ** 31, 2n ** 53n, -(2n ** 70n), 2n ** 70n],
      `${p}: ints (bigint past 2^53)`,
    );
    t.deepEqual(v.get('floats'), [0.5, -1e300, Infinity], p);
    t.deepEqual(v.get('consts'), [null, true, false], p);
    t.is(v.get('str'), `h\u00e9llo \u2603 \\ 'q' "\n"`, p);
    t.deepEqual(new Uint8Array(v.get('bytes') as Uint8Array), Uint8Array.from([0, 255, 10, 92]), p);
    const tuple = v.get('tuple') as unknown[];
    t.true(isTuple(tuple), `${p}: tuples are frozen arrays`);
    t.deepEqual(tuple, [1, [2, 3], []], p);
    t.deepEqual(v.get('set'), new Set([7]), p);
    t.deepEqual([...(v.get('frozenset') as Set<number>)], [8], p);
    t.deepEqual(v.get('nested'), new Map([['x', new Map([['y', [1]]])]]), p);
    const shared = v.get('shared') as unknown[][];
    t.is(shared[0], shared[1], `${p}: the memo keeps shared objects shared`);
    t.deepEqual([...(v.get('odict') as Map<string, number>)], [['b', 1], ['a', 2]], `${p}: OrderedDict keeps its order`);
  }
});

test('the pickle ends at STOP, and several pickles can be read back to back', (t) => {
  const one = bytes([0x80, 2, 0x4b, 7], '.');
  const two = bytes(one, [0x80, 2], 'N.');
  const first = unpickle(new BufferInput(two), { label: 'x', globals: BASIC });
  t.deepEqual(first, { value: 7, end: 5 });
  t.deepEqual(unpickle(new BufferInput(two), { label: 'x', globals: BASIC, start: first.end }), { value: null, end: 9 });
});

test('allowed globals are called through their TS functions, and BUILD reaches SET_STATE', (t) => {
  const calls: unknown[] = [];
  class Thing {
    state: unknown;
    [SET_STATE](s: unknown) {
      this.state = s;
    }
  }
  const globals = globalsMap([
    pyGlobal('m.make', (args, kwargs) => {
      calls.push([args, kwargs]);
      return new Thing();
    }),
    pyGlobal('m.token'),
  ]);
  // GLOBAL, tuple, REDUCE, BUILD with a dict.
  const v = load(bytes([0x80, 2], 'cm\nmake\n', [0x4b, 1, 0x85], 'R}', [0x8c, 1], 'k', [0x4b, 2], 'sb.'), { globals }) as Thing;
  t.true(v instanceof Thing);
  t.deepEqual(v.state, new Map([['k', 2]]));
  // NEWOBJ_EX with keyword arguments.
  load(bytes([0x80, 4, 0x8c, 1], 'm', [0x8c, 4], 'make', [0x93, 0x29], '}', [0x8c, 1], 'a', [0x4b, 3], 's', [0x92], '.'), { globals });
  t.deepEqual(calls[1], [[], new Map([['a', 3]])]);
  // A value global is pushed as itself but cannot be called.
  t.is((load(bytes('cm\ntoken\n.'), { globals }) as { name: string }).name, 'm.token');
  fails(t, bytes('cm\ntoken\n)R.'), /REDUCE of global 'm\.token', which is a value, not a callable/, { globals });
  // Only allow-list entries are callable: a dict or a str on the stack is not.
  fails(t, bytes(')', ')R.'), /REDUCE of tuple of 0, which is not an allowed callable/);
  // An allowed function that rejects its arguments is reported with its name.
  fails(t, bytes('ccollections\nOrderedDict\n', [0x4b, 5, 0x85], 'R.'), /collections\.OrderedDict: cannot build a dict from int 5/);
});

test('every way of naming a global refuses names off the allow-list, and nothing runs', (t) => {
  rmSync(MARKER, { force: true });
  const cases: [string, RegExp][] = [
    ['evil_reduce.pickle', /byte 2: refused global 'posix\.system'/],
    ['evil_stack_global.pickle', /byte 14: refused global 'os\.system'/],
    ['evil_inst.pickle', /refused global 'os\.system'/],
    ['evil_obj.pickle', /byte 1: refused global 'os\.system'/],
    ['evil_eval.pickle', /refused global 'builtins\.eval'/],
    ['evil_nested.pickle', /refused global 'posix\.system'/],
  ];
  for (const [file, re] of cases) {
    const err = t.throws(() => unpickle(new BufferInput(readFileSync(join(CKPT, file))), { label: file, globals: BASIC }), { instanceOf: PickleError });
    t.true(err!.message.startsWith(`${file}: byte `), err!.message);
    t.regex(err!.message, re, file);
  }
  for (const g of ['builtins.exec', 'builtins.getattr', 'builtins.__import__', 'subprocess.Popen', 'copyreg._reconstructor', 'torch.load', 'numpy.load'])
    fails(t, bytes(`c${g.replace(/\.(?=[^.]*$)/, '\n')}\n.`), new RegExp(`refused global '${g.replace(/[.]/g, '\\.')}'`));
  t.false(existsSync(MARKER), 'no payload ran');
});

test('extension codes, out-of-band buffers and persistent ids without a hook are refused', (t) => {
  fails(t, bytes([0x80, 2, 0x82, 1], '.'), /extension code 1 refused/);
  fails(t, bytes([0x80, 2, 0x83, 1, 0], '.'), /extension code 1 refused/);
  fails(t, bytes([0x80, 5, 0x97], '.'), /NEXT_BUFFER refused/);
  fails(t, bytes([0x80, 2], 'N', [0x51], '.'), /persistent id None refused/);
  fails(t, bytes('Pkey\n.'), /persistent id str 'key' refused/);
  const seen: unknown[] = [];
  const v = load(bytes([0x80, 2, 0x8c, 1], 'k', [0x51], '.'), { persistentLoad: (pid) => (seen.push(pid), 'resolved') });
  t.is(v, 'resolved');
  t.deepEqual(seen, ['k']);
  fails(t, bytes('N', [0x51], '.'), /persistent id: no such storage/, {
    persistentLoad: () => {
      throw new Error('no such storage');
    },
  });
});

test('malformed pickles fail with the offset and the problem', (t) => {
  fails(t, bytes([0xff]), /byte 0: unknown opcode 0xff/);
  fails(t, bytes('N', [0xfe]), /byte 1: unknown opcode 0xfe/);
  fails(t, bytes([0x80, 6], '.'), /protocol 6 is newer than 5/);
  fails(t, bytes(''), /byte 0: opcode needs 1 bytes but only 0 remain/);
  fails(t, bytes('N'), /byte 1: opcode needs 1 bytes/);
  fails(t, bytes('.'), /STOP with an empty stack/);
  fails(t, bytes('(N.'), /STOP inside an unclosed MARK/);
  fails(t, bytes('t.'), /TUPLE without a MARK/);
  fails(t, bytes('0.'), /POP on an empty stack/);
  fails(t, bytes([0x68, 3], '.'), /memo has no entry 3/);
  fails(t, bytes('NN', [0x4b, 1], 's.'), /SETITEM on None, not a dict/);
  fails(t, bytes(')', [0x4b, 1], 'a.'), /APPEND on tuple of 0, not a list/);
  fails(t, bytes('}(', [0x4b, 1], 'u.'), /SETITEMS with an odd number of items/);
  fails(t, bytes('N}b.'), /BUILD of None with dict of 0 is not supported/);
  fails(t, bytes('I12x\n.'), /INT '12x' is not a decimal integer/);
  fails(t, bytes('Fnope\n.'), /FLOAT 'nope' is not a number/);
  fails(t, bytes('S"abc\'\n.'), /not a quoted string/);
  fails(t, bytes([0x58, 0xff, 0xfe], '.'), /BINUNICODE needs 4 bytes but only 3 remain/);
  fails(t, bytes([0x58, 2, 0, 0, 0, 0xc3, 0x28], '.'), /invalid|utf-8|decode/i);
  fails(t, bytes('cos\nsys'), /GLOBAL name: no newline before the end of the input/);
  fails(t, bytes([0x8c, 1], 'a', [0x4b, 1, 0x93], '.'), /STACK_GLOBAL needs two str, got str 'a' and int 1/);
});

test('lengths are checked against the remaining bytes before anything is allocated', (t) => {
  fails(t, bytes([0x42, 0xff, 0xff, 0xff, 0xff], 'x'), /BINBYTES needs 4294967295 bytes but only 1 remain/);
  fails(t, bytes([0x8e, 0, 0, 0, 0, 0, 0, 0, 0x20]), /BINBYTES8 length \d+ is absurd/);
  fails(t, bytes([0x8d, 0, 0, 0, 0, 1, 0, 0, 0], '.'), /BINUNICODE8 needs 4294967296 bytes but only 1 remain/);
  fails(t, bytes([0x96, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]), /BYTEARRAY8 needs \d+ bytes/);
  fails(t, bytes([0x95, 0xff, 0, 0, 0, 0, 0, 0, 0], 'N.'), /FRAME needs 255 bytes but only 2 remain/);
  fails(t, bytes([0x54, 0xff, 0xff, 0xff, 0x7f], '.'), /BINSTRING needs 2147483647 bytes/);
  fails(t, bytes([0x8b, 0x00, 0x00, 0x01, 0x00], '.'), /LONG4 of 65536 bytes \(at most 1024 accepted\)/);
  fails(t, bytes('I', '1'.repeat(70000), '\n.'), /line longer than 65536 bytes/);
  fails(t, bytes('('.repeat(70000), '.'), /MARKs nested deeper than 65536/);
});

test('a file input leaves large byte strings in the file as FileBytes', (t) => {
  const path = join(CKPT, 'haiku_params.pickle');
  using input = new FileInput(path);
  const globals = new Map(BASIC);
  // Enough of numpy to walk the file: every array is reconstructed into its BUILD state.
  const arrays: unknown[] = [];
  const nd = pyGlobal('numpy.ndarray');
  globals.set('numpy.ndarray', nd);
  globals.set('numpy.dtype', pyGlobal('numpy.dtype', () => ({ [SET_STATE]() {} })));
  globals.set(
    'numpy.core.multiarray._reconstruct',
    pyGlobal('numpy.core.multiarray._reconstruct', () => ({ [SET_STATE]: (s: unknown[]) => arrays.push(s[4]) })),
  );
  const { end } = unpickle(input, { label: path, globals, leaveInFileFrom: 1000 });
  t.is(end, input.length);
  const file = readFileSync(path);
  const big = arrays.filter((a) => a instanceof FileBytes) as FileBytes[];
  t.true(big.length >= 4);
  for (const b of big) {
    t.true(b.length >= 1000);
    t.is(b.path, path);
    t.true(b.offset + b.length <= file.length);
  }
  t.true(arrays.filter((a) => a instanceof Uint8Array).every((a) => (a as Uint8Array).length < 1000));
});

test('constructors reusing one big argument through the memo hit a work budget instead of going quadratic', (t) => {
  // s = 'x' * 100000; then _codecs.encode(s, 'latin1') again and again, 7 bytes per call:
  // unchecked, 20000 calls would allocate 2 GB.
  const parts: (string | number[])[] = [[0x80, 2, 0x58, 0xa0, 0x86, 0x01, 0x00], 'x'.repeat(100000), [0x71, 0]];
  parts.push('c_codecs\nencode\n', [0x71, 1], [0x8c, 6], 'latin1', [0x71, 2]);
  for (let i = 0; i < 20000; i++) parts.push([0x68, 1, 0x68, 0, 0x68, 2, 0x86, 0x52, 0x30]);
  const err = fails(t, bytes(...parts, 'N.'), /REDUCE: the pickle asks for more work than 8 units per input byte/);
  t.true(err.offset > 100000 && err.offset < 101000, `a few calls ran before the budget did (stopped at byte ${err.offset})`);
});

test('str dict keys and set members longer than 1024 characters are refused, whichever way the dict or set is built', (t) => {
  // Longer strings all hash alike in V8, so a dict of many would take quadratic time to build.
  const u32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];
  const long = bytes([0x58, ...u32(1025)], 'k'.repeat(1025));
  const max = bytes([0x58, ...u32(1024)], 'k'.repeat(1024));
  const tooLong = /a dict key or set member is a str of 1025 characters, over the 1024-character limit for names/;
  fails(t, bytes([0x80, 2], '}', long, 'Ns.'), tooLong);
  fails(t, bytes([0x80, 2], '}(', long, 'Nu.'), tooLong);
  fails(t, bytes([0x80, 2], '(', long, 'Nd.'), tooLong);
  fails(t, bytes([0x80, 4, 0x8f, 0x28], long, [0x90], '.'), tooLong);
  fails(t, bytes([0x80, 4, 0x28], long, [0x91], '.'), tooLong);
  // OrderedDict([(key, None)]), set([key]), frozenset([key])
  fails(t, bytes([0x80, 2], 'ccollections\nOrderedDict\n', '(](', long, 'Nta', 'tR.'), tooLong);
  fails(t, bytes([0x80, 2], 'cbuiltins\nset\n', '(]', long, 'a', 'tR.'), tooLong);
  fails(t, bytes([0x80, 2], 'cbuiltins\nfrozenset\n', '(]', long, 'a', 'tR.'), tooLong);
  t.deepEqual([...(load(bytes([0x80, 2], '}', max, 'Ns.')) as Map<string, null>).keys()].map((k) => k.length), [1024]);
  t.is(load(bytes([0x80, 2], long, '.')), 'k'.repeat(1025), 'a long str as a value is fine');
});

test('unpickle refuses malformed options with the option named', (t) => {
  const input = new BufferInput(bytes([0x80, 2], 'N.'));
  for (const v of [-5, 1.5, '10', null])
    t.throws(() => unpickle(input, { label: 'x', globals: BASIC, leaveInFileFrom: v as number }), {
      instanceOf: TypeError,
      message: /^unpickle: option 'leaveInFileFrom' must be a non-negative integer, got /,
    });
  t.throws(() => unpickle(input, { label: 'x', globals: BASIC, persistentLoad: 5 as never }), { instanceOf: TypeError, message: /^unpickle: option 'persistentLoad' must be a function, got int 5$/ });
  t.is(unpickle(input, { label: 'x', globals: BASIC, leaveInFileFrom: 0 }).value, null);
});

const fifoTest = process.platform === 'win32' ? test.skip : test;
fifoTest('a file input refuses a named pipe or a folder at once instead of waiting for a writer', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'perceiver-pickle-'));
  try {
    const fifo = join(dir, 'fifo.pickle');
    execFileSync('mkfifo', [fifo]);
    t.throws(() => new FileInput(fifo), { message: /fifo\.pickle is a named pipe \(FIFO\), not a regular file$/ });
    t.throws(() => new FileInput(dir), { message: /perceiver-pickle-\w+ is a directory, not a regular file$/ });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
