// The CUDA backend's memory and execution model, on a machine with a GPU (skipped
// elsewhere; the kernels' values are covered by the whole suite run with
// PERCEIVER_TEST_DEVICE=cuda, see docs/DEVICE.md): transfers both ways and
// between queues keep issue order; mixed devices are an error; memory() counts
// CUDA tensors and the caching allocator's blocks, and emptyCache() returns them;
// running out of memory and a bad embedding id reject data() with the op's name
// instead of crashing; the CPU and CUDA random streams agree.
import test from 'ava';
import * as P from '../lib/index.js';
import { randomArray } from './helpers/reference.js';

const cuda = P.backends()[1].available ? test : test.skip;

cuda('to(): cpu -> cuda -> cpu round-trips every dtype bit for bit, and ordering follows issue order', async (t) => {
  const src = randomArray(100_003, 1, -5, 5);
  for (const dtype of ['float32', 'bfloat16', 'float16', 'int32', 'uint8'] as const) {
    const x = P.tensor(src, undefined, { device: 'cpu' }).cast(dtype);
    const back = x.to('cuda').to('cpu');
    t.is(back.device, 'cpu');
    t.deepEqual(Array.from(await back.data()), Array.from(await x.data()), dtype);
  }
  // A large transfer crosses several 16 MiB staging chunks.
  const big = P.randn([5_000_000], { seed: 7, device: 'cpu' });
  t.deepEqual(await big.to('cuda').to('cpu').data(), await big.data());
  // Produced on the GPU, read on the CPU right after: the copy waits for the kernel.
  const g = P.arange(0, 1, 1000, { device: 'cuda' }).mul(2);
  const c = g.to('cpu').add(1);
  t.deepEqual(Array.from(await c.data()).slice(0, 4), [1, 3, 5, 7]);
});

cuda('ops on tensors of two devices are an Error that says to move one with .to()', (t) => {
  const a = P.zeros([2], { device: 'cpu' });
  const b = P.zeros([2], { device: 'cuda' });
  t.throws(() => P.add(a, b), { message: /add: argument 'b' is on cuda:0 but 'a' is on cpu; move one with \.to\(\) first/ });
  t.throws(() => P.matmul(b.reshape([1, 2]), a.reshape([2, 1])), { message: /is on cpu but 'a' is on cuda:0/ });
});

cuda('memory() counts cuda tensors and bytes; emptyCache() returns the cached blocks', async (t) => {
  P.emptyCache();
  const before = P.memory().cuda;
  const x = P.zeros([1024, 1024], { device: 'cuda' });
  await x.data();
  const during = P.memory().cuda;
  t.is(during.tensors, before.tensors + 1);
  t.is(during.bytes, before.bytes + 4 * 1024 * 1024);
  x.dispose();
  const after = P.memory().cuda;
  t.is(after.bytes, before.bytes);
  t.true(after.cachedBytes >= 4 * 1024 * 1024, `cached ${after.cachedBytes}`);
  P.emptyCache();
  t.is(P.memory().cuda.cachedBytes, 0);
});

cuda('out of memory rejects data() with the op and the size, and the process keeps working', async (t) => {
  const huge = P.zeros([2 ** 40], { device: 'cuda' }); // 4 TiB
  const err = await t.throwsAsync(huge.data());
  t.regex(err!.message, /full: out of memory: could not allocate 4398046511104 bytes on cuda:0/);
  huge.dispose();
  t.deepEqual(Array.from(await P.ones([3], { device: 'cuda' }).data()), [1, 1, 1]);
});

cuda('a bad embedding id rejects data() with the id and position, as on the cpu', async (t) => {
  const table = P.zeros([5, 3], { device: 'cuda' });
  const ids = P.tensor([1, 7, 2], [3], { dtype: 'int32', device: 'cuda' });
  const err = await t.throwsAsync(P.embedding(table, ids).data());
  t.regex(err!.message, /embedding: index 7 at position 1 is out of range \[0, 5\) of the embedding table/);
});

cuda('randn and rand give the cpu values for the same seed', async (t) => {
  const a = await P.randn([10_001], { seed: 123, device: 'cuda' }).data();
  const b = await P.randn([10_001], { seed: 123, device: 'cpu' }).data();
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  t.true(worst <= 1e-6, `worst difference ${worst}`);
  const u = await P.rand([5000], { seed: 9, device: 'cuda' }).data();
  const v = await P.rand([5000], { seed: 9, device: 'cpu' }).data();
  t.deepEqual(Array.from(u), Array.from(v));
});

cuda('matmul through cuBLASLt matches the cpu on odd shapes, views and broadcast batches (float32, 1e-5)', async (t) => {
  const cases: [number[], number[], P.MatmulOptions][] = [
    [[1, 1], [1, 1], {}],
    [[7, 13], [13, 5], { activation: 'relu' }],
    [[3, 33, 65], [65, 17], { activation: 'gelu' }],
    [[2, 3, 31, 9], [2, 1, 9, 30], {}],
    [[40, 24], [50, 24], { transB: true, activation: 'gelu_tanh' }],
    [[24, 40], [24, 50], { transA: true, alpha: 0.5 }],
  ];
  let seed = 1;
  for (const [sa, sb, opts] of cases) {
    const a = P.randn(sa, { seed: seed++, device: 'cpu' });
    const b = P.randn(sb, { seed: seed++, device: 'cpu' });
    const n = opts.transB ? sb[sb.length - 2] : sb[sb.length - 1];
    const bias = P.randn([n], { seed: seed++, device: 'cpu' });
    const want = await P.matmul(a, b, { ...opts, bias }).data();
    const got = await P.matmul(a.to('cuda'), b.to('cuda'), { ...opts, bias: bias.to('cuda') }).data();
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + 1e-3));
    t.true(worst <= 1e-5, `${JSON.stringify([sa, sb, opts])}: worst relative error ${worst}`);
  }
});
