// Specification of Module (PyTorch-style registration, dotted state-dict names, strict
// loading with one error listing every problem, ownership, dispose) and of the basic
// layers Linear / LayerNorm / Embedding against plain-JS references.
import test from 'ava';
import * as P from '../lib/index.js';
import { BatchNorm2d, Embedding, LayerNorm, Linear, Module, ModuleList, type Tensor } from '../lib/index.js';
import { assertClose, layerNormRef, matmulRef, randomArray } from './helpers/reference.js';
import { readAndDispose } from './helpers/read.js';
import { baseline, live } from './helpers/device.js';

class Block extends Module {
  readonly proj: Linear;
  readonly norm: LayerNorm;
  constructor() {
    super();
    this.proj = this.registerModule('proj', new Linear(3, 2));
    this.norm = this.registerModule('norm', new LayerNorm(2));
    this.registerBuffer('count', P.zeros([1], { dtype: 'int32' }));
  }
}

class Net extends Module {
  readonly blocks: ModuleList<Block>;
  readonly head: Linear;
  constructor() {
    super();
    this.registerParameter('scale', P.ones([2]));
    this.blocks = this.registerModule('blocks', new ModuleList([new Block(), new Block()]));
    this.head = this.registerModule('head', new Linear(2, 1, { bias: false }));
  }
}

const KEYS = [
  'scale',
  'blocks.0.proj.weight',
  'blocks.0.proj.bias',
  'blocks.0.norm.weight',
  'blocks.0.norm.bias',
  'blocks.1.proj.weight',
  'blocks.1.proj.bias',
  'blocks.1.norm.weight',
  'blocks.1.norm.bias',
  'head.weight',
];

function stateOf(net: Module): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(net.stateDict())) out[k] = P.full([...v.shape], v.dtype === 'int32' ? 0 : 0.5, { dtype: v.dtype });
  return out;
}

test('namedParameters gives dotted attribute paths in registration order; the state dict adds the buffers in torch\'s order', (t) => {
  const net = new Net();
  t.deepEqual(net.namedParameters().map(([k]) => k), KEYS);
  t.deepEqual(net.namedBuffers().map(([k]) => k), ['blocks.0.count', 'blocks.1.count']);
  // torch's order: each module's parameters, its buffers, then its children's.
  const withBuffers = KEYS.flatMap((k) => (k.endsWith('proj.weight') ? [k.replace('proj.weight', 'count'), k] : [k]));
  t.deepEqual(Object.keys(net.stateDict()), withBuffers);
  t.deepEqual(withBuffers.slice(0, 3), ['scale', 'blocks.0.count', 'blocks.0.proj.weight']);
  t.deepEqual(net.namedParameters().find(([k]) => k === 'head.weight')![1].shape, [1, 2], 'Linear weight is [out, in]');
  t.is(net.numParameters(), 2 + 2 * (6 + 2 + 2 + 2) + 2);
  t.is(net.blocks.length, 2);
  t.deepEqual(net.namedChildren().map(([k]) => k), ['blocks', 'head']);
  net.dispose();
});

test.serial('loadStateDict replaces every tensor with a copy of the given one (with assign: true, a view of it); the caller still owns and disposes its own', async (t) => {
  const before = (await baseline());
  for (const assign of [false, true]) {
    const net = new Net();
    const sd = stateOf(net);
    const result = net.loadStateDict(sd, { assign });
    t.deepEqual(result, { missingKeys: [], unexpectedKeys: [] });
    for (const v of Object.values(sd)) v.dispose();
    for (const [k, v] of Object.entries(net.stateDict())) t.true(Array.from(await v.data()).every((x) => x === (v.dtype === 'int32' ? 0 : 0.5)), k);
    net.dispose();
  }
  t.is(live().tensors, before.tensors, 'no tensor leaked');
  t.is(live().bytes, before.bytes, 'no storage leaked');
  const lin = new Linear(1, 1);
  t.throws(() => lin.loadStateDict({}, { assign: 1 as unknown as boolean }), { instanceOf: TypeError, message: /option 'assign' must be a boolean, got number 1/ });
  lin.dispose();
});

test("one module's state loaded into another shares no memory with it: training the second leaves the first alone (assign: true shares it)", async (t) => {
  for (const assign of [false, true]) {
    const a = new Linear(2, 2);
    const b = new Linear(2, 2);
    b.loadStateDict(a.stateDict(), { assign });
    const before = Array.from(await a.weight.data());
    b.requiresGrad_();
    const opt = new P.optim.SGD(b.parameters(), { lr: 1 });
    P.tidy(() => P.backward(P.sum(P.sum(b.forward(P.ones([1, 2])), 0), 0)));
    opt.step();
    opt.dispose();
    const after = Array.from(await a.weight.data());
    if (assign) t.notDeepEqual(after, before, 'assign: true: b took a\'s tensors themselves');
    else t.deepEqual(after, before, 'a was never trained');
    a.dispose();
    b.dispose();
  }
});

test('strict loading lists every missing, unexpected and mis-shaped key in one error and changes nothing', async (t) => {
  const net = new Net();
  const sd = stateOf(net);
  sd['blocks.1.proj.weight'].dispose();
  delete sd['blocks.1.proj.weight'];
  sd['head.weight'].dispose();
  sd['head.weight'] = P.zeros([2, 1]);
  sd['head.bias'] = P.zeros([1]);
  const err = t.throws(() => net.loadStateDict(sd));
  t.regex(err!.message, /missing keys: blocks\.1\.proj\.weight/);
  t.regex(err!.message, /unexpected keys: head\.bias/);
  t.regex(err!.message, /mis-shaped keys: head\.weight \(checkpoint \[2, 1\], model \[1, 2\]\)/);
  t.true(Array.from(await net.stateDict().scale.data()).every((x) => x === 1), 'nothing was loaded');
  for (const v of Object.values(sd)) v.dispose();
  net.dispose();
});

test("a buffer registered optionalOnLoad (BatchNorm's num_batches_tracked) may be missing from a strict load: the module keeps its own value; it is listed by optionalStateKeys", async (t) => {
  class Conv extends Module {
    readonly bn = this.registerModule('bn', new BatchNorm2d(2));
  }
  const net = new Conv();
  t.deepEqual([...net.optionalStateKeys()], ['bn.num_batches_tracked']);
  const sd = stateOf(net);
  sd['bn.num_batches_tracked'].dispose();
  delete sd['bn.num_batches_tracked'];
  t.deepEqual(net.loadStateDict(sd), { missingKeys: [], unexpectedKeys: [] });
  t.deepEqual(Array.from(await net.stateDict()['bn.running_mean'].data()), [0.5, 0.5], 'the rest loaded');
  t.is((await net.stateDict()['bn.num_batches_tracked'].data())[0], 0);
  sd['bn.running_var'].dispose();
  delete sd['bn.running_var'];
  t.throws(() => net.loadStateDict(sd), { message: /missing keys: bn\.running_var$/ }, 'the other buffers stay required');
  for (const v of Object.values(sd)) v.dispose();
  net.dispose();
});

test('non-strict loading reports missing and unexpected keys but still refuses mis-shaped ones', (t) => {
  const net = new Net();
  const sd = stateOf(net);
  sd['scale'].dispose();
  delete sd['scale'];
  sd['extra'] = P.zeros([3]);
  t.deepEqual(net.loadStateDict(sd, { strict: false }), { missingKeys: ['scale'], unexpectedKeys: ['extra'] });
  sd['head.weight'].dispose();
  sd['head.weight'] = P.zeros([3]);
  t.throws(() => net.loadStateDict(sd, { strict: false }), { message: /mis-shaped keys: head\.weight/ });
  for (const v of Object.values(sd)) v.dispose();
  net.dispose();
});

test('a checkpoint tensor of another dtype is cast to the parameter dtype', async (t) => {
  const lin = new Linear(2, 1);
  const w = P.tensor([[1.5, -2]], undefined, { dtype: 'bfloat16' });
  const b = P.tensor(Int32Array.from([3]), [1]);
  lin.loadStateDict({ weight: w, bias: b });
  t.is(lin.weight.dtype, 'float32');
  t.deepEqual(Array.from(await lin.bias!.data()), [3]);
  w.dispose();
  b.dispose();
  lin.dispose();
});

test('registration errors: duplicate names, dotted names, non-tensors', (t) => {
  class Bad extends Module {
    constructor(which: number) {
      super();
      if (which === 0) {
        this.registerParameter('w', P.zeros([1]));
        this.registerParameter('w', P.zeros([1]));
      } else if (which === 1) this.registerParameter('a.b', P.zeros([1]));
      else this.registerParameter('w', [1] as unknown as Tensor);
    }
  }
  t.throws(() => new Bad(0), { message: /'w' is already registered/ });
  t.throws(() => new Bad(1), { message: /without '\.'/ });
  t.throws(() => new Bad(2), { message: /must be a Tensor or null/ });
});

test.serial('parameters created inside tidy() survive it; dispose() frees them all and the module refuses further use', (t) => {
  const before = live().tensors;
  const lin = P.tidy(() => new Linear(4, 3));
  t.false(lin.weight.disposed);
  t.is(live().tensors, before + 2);
  const w = lin.weight;
  lin.dispose();
  lin.dispose();
  t.true(w.disposed);
  t.is(live().tensors, before);
  t.throws(() => lin.weight, { message: /used after dispose/ });
});

test('Linear computes x Wᵀ + b with a PyTorch-layout weight, activation fused', async (t) => {
  const [M, K, N] = [5, 7, 4];
  const x = randomArray(M * K, 1);
  const w = randomArray(N * K, 2);
  const b = randomArray(N, 3);
  const lin = new Linear(K, N);
  const [tw, tb, tx] = [P.tensor(w, [N, K]), P.tensor(b, [N]), P.tensor(x, [M, K])];
  lin.loadStateDict({ weight: tw, bias: tb });
  const ref = matmulRef(x, [M, K], w, [N, K], { transB: true, bias: b }).data;
  assertClose(t, await readAndDispose(lin.forward(tx)), ref, { rtol: 1e-5, atol: 1e-5 });
  const relu = await readAndDispose(lin.forward(tx, 'relu'));
  assertClose(t, relu, Array.from(ref, (v) => Math.max(v, 0)), { rtol: 1e-5, atol: 1e-5 });
  const wide = P.zeros([2, K + 1]);
  t.throws(() => lin.forward(wide), { message: /Linear: input has 8 features/ });
  for (const v of [tw, tb, tx, wide]) v.dispose();
  lin.dispose();
});

test('LayerNorm (eps 1e-5, weight ones, bias zeros by default) and Embedding match references', async (t) => {
  const x = randomArray(3 * 6, 4, -3, 3);
  const ln = new LayerNorm(6);
  t.is(ln.eps, 1e-5);
  const tx = P.tensor(x, [3, 6]);
  assertClose(t, await readAndDispose(ln.forward(tx)), layerNormRef(x, 6), { rtol: 1e-5, atol: 1e-5 });
  const emb = new Embedding(5, 2);
  const table = P.tensor(new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), [5, 2]);
  emb.loadStateDict({ weight: table });
  const ids = P.tensor(Int32Array.from([4, 0]), [2]);
  t.deepEqual(Array.from(await readAndDispose(emb.forward(ids))), [8, 9, 0, 1]);
  for (const v of [tx, table, ids]) v.dispose();
  ln.dispose();
  emb.dispose();
});

// ---- to(): dtype and device -------------------------------------------------------------

test("to('bfloat16') casts every floating parameter and buffer, keeps integer buffers and the gradient flag, drops gradients", async (t) => {
  P.manualSeed(3);
  const net = new Net();
  net.requiresGrad_(true);
  const before = Object.fromEntries(await Promise.all(Object.entries(net.stateDict()).map(async ([k, v]) => [k, await v.data()] as const)));
  const w = net.blocks.items[0].proj.weight;
  P.tidy(() => net.blocks.items[0].proj.forward(P.ones([1, 3])).sum(1).sum(0)).backward();
  t.truthy(w.grad, 'a gradient exists before');
  t.is(net.to('bfloat16'), net, 'returns this');
  t.true(w.disposed, 'the old tensor is released');
  for (const [k, v] of Object.entries(net.stateDict())) {
    t.is(v.dtype, k.endsWith('count') ? 'int32' : 'bfloat16', k);
    const got = await v.data();
    // bfloat16 keeps the top 16 bits of the float32: |relative error| <= 2^-8.
    for (let i = 0; i < got.length; i++) t.true(Math.abs(got[i] - before[k][i]) <= Math.abs(before[k][i]) * 2 ** -8, `${k}[${i}]`);
  }
  t.true(net.parameters().every((p) => p.requiresGrad && p.grad === null), 'still leaves, without gradients');
  net.to({ dtype: 'float16' });
  t.true(net.parameters().every((p) => p.dtype === 'float16'));
  net.to('float32');
  t.true(net.parameters().every((p) => p.dtype === 'float32'));
  net.dispose();
});

test('a bfloat16 module computes in bfloat16 from float32 inputs, as the same math on the cast weights', async (t) => {
  P.manualSeed(4);
  const lin = new Linear(5, 3);
  const x = P.randn([2, 5]);
  const want = await readAndDispose(P.tidy(() => P.linear(x.cast('bfloat16'), lin.weight.cast('bfloat16'), lin.bias!.cast('bfloat16'))));
  lin.to('bfloat16');
  const y = lin.forward(x);
  t.is(y.dtype, 'bfloat16');
  t.deepEqual(await readAndDispose(y), want, 'bit-identical to casting by hand');
  x.dispose();
  lin.dispose();
});

test('to() validates its argument, and names the reason a device is unavailable', (t) => {
  const lin = new Linear(2, 2);
  t.throws(() => lin.to({ dtype: 'int32' as 'float32' }), { instanceOf: TypeError, message: /to: option 'dtype' must be 'float32', 'float16' or 'bfloat16', got 'int32'/ });
  t.throws(() => lin.to(null as unknown as string), { instanceOf: TypeError, message: /to: argument 'target' must be a dtype, a device or \{ dtype, device \}/ });
  t.throws(() => lin.to('tpu'), { message: /to.*'tpu'/ });
  if (!P.backends()[1].available) t.throws(() => lin.to('cuda'), { message: /to: device 'cuda' was requested but CUDA is unavailable: / });
  t.is(lin.to('cpu'), lin, 'moving to where it is changes nothing');
  t.is(lin.weight.device, 'cpu');
  lin.dispose();
  t.throws(() => lin.to('float16'), { message: /used after dispose/ });
});

test('layers and containers refuse bad constructor options and non-Tensor inputs with errors naming the layer and the argument', (t) => {
  const x = P.zeros([1, 5, 5, 3]);
  const lin = new Linear(3, 4);
  const norm = new LayerNorm(4);
  const conv = new P.Conv2d(3, 4, 3);
  const bn = new P.BatchNorm2d(3);
  const bnTrain = new P.BatchNorm2d(3).train();
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, typeof Error, RegExp][] = [
    ['Linear opts null', () => new Linear(3, 4, bad(null)), TypeError, /^Linear: argument 'options' must be an object, got null/],
    ['Linear bias string', () => new Linear(3, 4, { bias: bad('x') }), TypeError, /^Linear: option 'bias' must be a boolean, got 'x'/],
    ['Linear initStd Infinity', () => new Linear(3, 4, { initStd: Infinity }), RangeError, /^Linear: option 'initStd' must be a finite number >= 0, got number Infinity/],
    ['Linear.forward string', () => lin.forward(bad('x')), TypeError, /^Linear.forward: argument 'x' must be a Tensor, got 'x'/],
    ['Linear.forward undefined', () => lin.forward(bad(undefined)), TypeError, /^Linear.forward: argument 'x' must be a Tensor, got undefined/],
    ['Linear.forward addend', () => lin.forward(P.zeros([2, 3]), 'none', bad(5)), TypeError, /^Linear.forward: argument 'addend' must be a Tensor or null, got number 5/],
    ['LayerNorm opts string', () => new LayerNorm(4, bad('x')), TypeError, /^LayerNorm: argument 'options' must be an object, got 'x'/],
    ['LayerNorm eps string', () => new LayerNorm(4, { eps: bad('x') }), TypeError, /^LayerNorm: option 'eps' must be a finite number >= 0, got 'x'/],
    ['LayerNorm.forward null', () => norm.forward(bad(null)), TypeError, /^LayerNorm.forward: argument 'x' must be a Tensor, got null/],
    ['Conv2d no kernel', () => new P.Conv2d(bad(undefined), bad(undefined), bad(undefined)), TypeError, /^Conv2d: 'kernel' must be a positive integer or \[kh, kw\], got undefined/],
    ['Conv2d opts null', () => new P.Conv2d(3, 4, 3, bad(null)), TypeError, /^Conv2d: argument 'options' must be an object, got null/],
    ['Conv2d opts string', () => new P.Conv2d(3, 4, 3, bad('x')), TypeError, /^Conv2d: argument 'options' must be an object, got 'x'/],
    ['Conv2d stride string', () => new P.Conv2d(3, 4, 3, { stride: bad('x') }), TypeError, /^Conv2d: option 'stride' must be an integer or \[h, w\], got 'x'/],
    ['Conv2d padding bogus', () => new P.Conv2d(3, 4, 3, { padding: bad('bogus') }), TypeError, /^Conv2d: option 'padding' must be 'same', 'valid', an integer >= 0 or \[top, bottom, left, right\], got 'bogus'/],
    ['Conv2d bias string', () => new P.Conv2d(3, 4, 3, { bias: bad('x') }), TypeError, /^Conv2d: option 'bias' must be a boolean, got 'x'/],
    ['Conv2d.forward object', () => conv.forward(bad({})), TypeError, /^Conv2d.forward: argument 'x' must be a Tensor, got Object/],
    ['BatchNorm2d opts string', () => new P.BatchNorm2d(3, bad('x')), TypeError, /^BatchNorm2d: argument 'options' must be an object, got 'x'/],
    ['BatchNorm2d eps string', () => new P.BatchNorm2d(3, { eps: bad('x') }), TypeError, /^BatchNorm2d: option 'eps' must be a finite number >= 0, got 'x'/],
    ['BatchNorm2d.forward (eval) number', () => bn.forward(bad(3)), TypeError, /^BatchNorm2d.forward: argument 'x' must be a Tensor, got number 3/],
    ['BatchNorm2d.forward (training) string', () => bnTrain.forward(bad('x')), TypeError, /^BatchNorm2d.forward: argument 'x' must be a Tensor, got 'x'/],
    ['Embedding opts null', () => new Embedding(5, 3, bad(null)), TypeError, /^Embedding: argument 'options' must be an object, got null/],
    ['ModuleList()', () => new ModuleList(bad(undefined)), TypeError, /^ModuleList: argument 'modules' must be an array of Modules, got undefined/],
    ['ModuleDict(undefined)', () => new P.ModuleDict(bad(undefined)), TypeError, /^ModuleDict: argument 'modules' must be an object of Modules by name, got undefined/],
    ['ModuleDict(5)', () => new P.ModuleDict(bad(5)), TypeError, /^ModuleDict: argument 'modules' must be an object of Modules by name, got number 5/],
    ['ParameterDict(undefined)', () => new P.ParameterDict(bad(undefined)), TypeError, /^ParameterDict: argument 'params' must be an object of Tensors by name, got undefined/],
    ['ModuleDict.get(5)', () => new P.ModuleDict({ a: lin }).get(bad(5)), TypeError, /^ModuleDict.get: argument 'name' must be a string, got number 5/],
    ['namedParameters(5)', () => lin.namedParameters(bad(5)), TypeError, /^namedParameters: argument 'prefix' must be a string, got number 5/],
    ['loadStateDict([])', () => lin.loadStateDict(bad([])), TypeError, /^loadStateDict: argument 'dict' must be an object of Tensors, got array of length 0/],
  ];
  for (const [name, fn, instanceOf, message] of cases) t.throws(fn, { instanceOf, message }, name);
  // Valid calls are unchanged: defaults, explicit undefined options, and a stride pair.
  t.notThrows(() => new Linear(3, 4, undefined).dispose());
  t.notThrows(() => new P.Conv2d(3, 4, [3, 1], { stride: [2, 1], padding: [1, 1, 0, 0], bias: false, initStd: 0 }).dispose());
  for (const m of [lin, norm, conv, bn, bnTrain]) m.dispose();
  x.dispose();
});

test('layers, loadStateDict and to() refuse an unknown option key, naming the layer or method, the argument and the key', (t) => {
  const lin = new Linear(2, 2);
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, RegExp][] = [
    ['Linear', () => new Linear(2, 2, bad({ biass: false })), /^Linear: argument 'options' has unknown option 'biass' \(known: initStd, device, bias\)$/],
    ['LayerNorm', () => new LayerNorm(2, bad({ epsilon: 1e-6 })), /^LayerNorm: argument 'options' has unknown option 'epsilon' \(known: eps, device\)$/],
    ['Embedding', () => new Embedding(4, 2, bad({ std: 0.02 })), /^Embedding: argument 'options' has unknown option 'std' \(known: initStd, device\)$/],
    ['Embedding bias', () => new Embedding(4, 2, bad({ bias: false })), /^Embedding: argument 'options' has unknown option 'bias'/],
    ['Conv2d', () => new P.Conv2d(2, 2, 3, bad({ pad: 1 })), /^Conv2d: argument 'options' has unknown option 'pad' \(known: initStd, device, stride, padding, bias\)$/],
    ['BatchNorm2d', () => new P.BatchNorm2d(2, bad({ mom: 0.1 })), /^BatchNorm2d: argument 'options' has unknown option 'mom' \(known: eps, momentum, device\)$/],
    ['loadStateDict', () => lin.loadStateDict(lin.stateDict(), bad({ strict: false, asign: true })), /^loadStateDict: argument 'opts' has unknown option 'asign' \(known: strict, assign\)$/],
    ['to', () => lin.to(bad({ dtype: 'float32', devcie: 'cpu' })), /^to: argument 'target' has unknown option 'devcie' \(known: dtype, device\)$/],
  ];
  const weight = lin.weight;
  for (const [name, fn, message] of cases) t.throws(fn, { instanceOf: TypeError, message }, name);
  t.is(lin.weight, weight, 'nothing was loaded');
  lin.dispose();
});

test('registering a module into itself or into one of its descendants is refused; a module shared by two parents is not a cycle', (t) => {
  class Holder extends Module {
    add<M extends Module>(name: string, m: M): M {
      return this.registerModule(name, m);
    }
  }
  const root = new Holder();
  const child = root.add('child', new Holder());
  const grandchild = child.add('grandchild', new Holder());
  const message = (name: string, cls: string) =>
    new RegExp(`^registerModule: '${name}' must not be this Holder or a module that contains it \\(that would make a cycle\\), got ${cls}$`);
  t.throws(() => root.add('self', root), { message: message('self', 'Holder') });
  t.throws(() => child.add('parent', root), { message: message('parent', 'Holder') });
  t.throws(() => grandchild.add('up', root), { message: message('up', 'Holder') });
  // A failed registration adds nothing; the tree still walks.
  t.deepEqual(root.namedChildren().map(([n]) => n), ['child']);
  const shared = new Linear(2, 2);
  root.add('a', shared);
  child.add('b', shared);
  t.deepEqual(root.namedParameters().map(([n]) => n), ['child.b.weight', 'child.b.bias']);
  root.dispose();
});

test("a module shared by two parents: its parameters once (torch's named_parameters), its state under both names", async (t) => {
  class Pair extends Module {
    constructor(a: Module, b: Module) {
      super();
      this.registerModule('0', a);
      this.registerModule('1', b);
    }
  }
  const lin = new Linear(2, 2);
  const pair = new Pair(lin, lin);
  t.deepEqual(pair.namedParameters().map(([n]) => n), ['0.weight', '0.bias']);
  t.is(pair.numParameters(), 6);
  t.deepEqual(Object.keys(pair.stateDict()), ['0.weight', '0.bias', '1.weight', '1.bias']);
  t.deepEqual(pair.loadStateDict(pair.stateDict()), { missingKeys: [], unexpectedKeys: [] });
  // Listed twice, the optimizer refused it and clipping counted and scaled the gradient
  // twice: total 7.07 and 0.06, where torch's clip_grad_norm_ gives 5 and 0.6.
  const opt = new P.optim.SGD(pair.parameters(), { lr: 0.1 });
  lin.weight.grad = P.tensor(new Float32Array([3, 0, 0, 0]), [2, 2]);
  lin.bias!.grad = P.tensor(new Float32Array([4, 0]), [2]);
  t.is((await readAndDispose(P.optim.clipGradNorm(pair.parameters(), 1)))[0], 5);
  assertClose(t, (await lin.weight.grad.data()) as Float32Array, [0.6, 0, 0, 0], { rtol: 1e-6, atol: 0 });
  opt.zeroGrad();
  opt.dispose();
  pair.dispose();
});

test('layer sizes that are not positive integers are described as given (type and value), not stringified', (t) => {
  const bad = (v: unknown) => v as never;
  const cases: [string, () => unknown, typeof Error, RegExp][] = [
    ['LayerNorm([3])', () => new LayerNorm(bad([3])), TypeError, /^LayerNorm: 'normalizedShape' must be a positive integer, got array of length 1$/],
    ["Linear('3', 3)", () => new Linear(bad('3'), 3), TypeError, /^Linear: 'inFeatures' must be a positive integer, got '3'$/],
    ['Linear(3, 0)', () => new Linear(3, 0), RangeError, /^Linear: 'outFeatures' must be a positive integer, got number 0$/],
    ['Embedding(2.5, 3)', () => new Embedding(2.5, 3), RangeError, /^Embedding: 'numEmbeddings' must be a positive integer, got number 2.5$/],
    ["Conv2d('3', 4, 3)", () => new P.Conv2d(bad('3'), 4, 3), TypeError, /^Conv2d: 'inChannels' must be a positive integer, got '3'$/],
    ['Conv2d(3, 4, [3, 0])', () => new P.Conv2d(3, 4, [3, 0]), RangeError, /^Conv2d: 'kernel' must be a positive integer, got number 0$/],
    ['BatchNorm2d([3])', () => new P.BatchNorm2d(bad([3])), TypeError, /^BatchNorm2d: 'numFeatures' must be a positive integer, got array of length 1$/],
    ["BatchNorm2d momentum '0.1'", () => new P.BatchNorm2d(3, { momentum: bad('0.1') }), TypeError, /^BatchNorm2d: 'momentum' must be in \[0, 1\], got '0.1'$/],
  ];
  for (const [name, fn, instanceOf, message] of cases) t.throws(fn, { instanceOf, message }, name);
});
