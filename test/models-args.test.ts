// models/args.ts: the argument checks of the model layer's entry points, and the
// messages they give (op, argument, expected, got).
import test from 'ava';
import * as P from '../lib/index.js';
import { boolArg, configArg, deviceArg, intArg, intListArg, knownKeysArg, numberArg, objectArg, oneOfArg, optionKeys, optionalTensorArg, tensorArg } from '../models/args.js';

test('tensorArg: a live Tensor of the rank and dtype asked for, else an error naming the op, the argument and what came', (t) => {
  const x = P.zeros([2, 3]);
  t.is(tensorArg('op', 'x', x, { rank: 2, dtype: 'float' }), x);
  t.is(tensorArg('op', 'x', x, { rank: [2, 3] }), x);
  t.throws(() => tensorArg('op', 'x', undefined, { shape: '[B, N]' }), { instanceOf: TypeError, message: "op: argument 'x' must be a Tensor [B, N], got undefined" });
  t.throws(() => tensorArg('op', 'x', [1, 2]), { instanceOf: TypeError, message: "op: argument 'x' must be a Tensor, got array of length 2" });
  t.throws(() => tensorArg('op', 'x', x, { rank: 3, shape: '[B, N, C]' }), { instanceOf: RangeError, message: "op: argument 'x' must have rank 3 [B, N, C], got shape [2, 3]" });
  t.throws(() => tensorArg('op', 'x', x, { dtype: 'int' }), { instanceOf: TypeError, message: "op: argument 'x' must be int32 or uint8, got float32" });
  t.is(optionalTensorArg('op', 'm', null), null);
  t.is(optionalTensorArg('op', 'm', undefined), null);
  x.dispose();
  t.throws(() => tensorArg('op', 'x', x), { message: "op: argument 'x' is a disposed Tensor" });
});

test('objectArg, intArg, numberArg, boolArg, intListArg: the values they take and the messages of the rest', (t) => {
  t.deepEqual(objectArg('op', 'opts', undefined), {});
  t.throws(() => objectArg('op', 'config', undefined, true), { instanceOf: TypeError, message: "op: argument 'config' must be an object, got undefined" });
  for (const v of [null, 'x', 5, [1]]) t.throws(() => objectArg('op', 'opts', v as never), { instanceOf: TypeError, message: /op: argument 'opts' must be an object, got / });
  t.is(intArg('op', 'n', 3, 1), 3);
  t.throws(() => intArg('op', 'n', 0, 1), { instanceOf: RangeError, message: "op: argument 'n' must be an integer >= 1, got number 0" });
  t.throws(() => intArg('op', 'n', 1.5, 1), { instanceOf: RangeError, message: "op: argument 'n' must be an integer >= 1, got number 1.5" });
  t.throws(() => intArg('op', 'n', '3', 1, 8), { instanceOf: TypeError, message: "op: argument 'n' must be an integer in [1, 8], got '3'" });
  t.is(numberArg('op', 'eps', 1e-5, 0), 1e-5);
  t.throws(() => numberArg('op', 'eps', NaN, 0), { instanceOf: RangeError, message: "op: argument 'eps' must be a finite number >= 0, got number NaN" });
  t.throws(() => numberArg('op', 'p', 2, 0, 1), { instanceOf: RangeError, message: "op: argument 'p' must be a finite number in [0, 1], got number 2" });
  t.is(boolArg('op', 'b', false), false);
  t.throws(() => boolArg('op', 'b', 'x'), { instanceOf: TypeError, message: "op: argument 'b' must be a boolean, got 'x'" });
  t.deepEqual(intListArg('op', 'dims', [2, 3], 1, Infinity, 1), [2, 3]);
  t.throws(() => intListArg('op', 'dims', [], 1, Infinity, 1), { instanceOf: TypeError, message: "op: argument 'dims' must be an array of at least 1 integers, got array of length 0" });
  t.throws(() => intListArg('op', 'dims', [2, 0], 1), { instanceOf: RangeError, message: "op: argument 'dims[1]' must be an integer >= 1, got number 0" });
});

test('configArg, oneOfArg, deviceArg, knownKeysArg: a block\'s config fields, a choice, a device name, unknown option keys', (t) => {
  const config = { d_latents: 8, num_latents: 0 };
  t.is(configArg('Block', config, ['d_latents']), config);
  t.throws(() => configArg('Block', config, ['num_latents']), { instanceOf: RangeError, message: "Block: argument 'config.num_latents' must be an integer >= 1, got number 0" });
  t.throws(() => configArg('Block', undefined as never), { instanceOf: TypeError, message: "Block: argument 'config' must be an object, got undefined" });
  oneOfArg('op', 'mode', undefined, ['a', 'b']);
  oneOfArg('op', 'mode', 'b', ['a', 'b']);
  t.throws(() => oneOfArg('op', 'mode', 'c', ['a', 'b']), { instanceOf: TypeError, message: "op: argument 'mode' must be 'a' or 'b', got 'c'" });
  deviceArg('op', 'device', 'cpu');
  t.throws(() => deviceArg('op', 'device', 5), { instanceOf: TypeError, message: "op: argument 'device' must be a string, got number 5" });
  knownKeysArg('op', 'opts', { a: 1 }, ['a', 'b']);
  t.throws(() => knownKeysArg('op', 'opts', { a: 1, numLayers: 2 }, ['a', 'b']), { instanceOf: TypeError, message: "op: argument 'opts' has unknown option 'numLayers' (known: a, b)" });
});

test('optionKeys: the names of an options type for knownKeysArg, held to the type by the compiler', (t) => {
  t.deepEqual(optionKeys<{ a?: number; b: string }>({ a: true, b: true }), ['a', 'b']);
  // @ts-expect-error a name of the type left out would be refused at run time
  optionKeys<{ a?: number; b: string }>({ a: true });
  // @ts-expect-error a name the type lacks
  optionKeys<{ a?: number }>({ a: true, c: true });
});
