// models/train/rng: the seeded generator and streamSeed, the seed of each of a run's
// streams (an epoch's data order, a step's augmentation, a step's dropout masks).
import test from 'ava';
import { Rng, streamSeed } from '../models/train/rng.js';

const ORDER = 1_000_003;
const AUGMENT = 7_919;
const DROPOUT = 104_729;

test('streamSeed: at seed 0 (the default) streams of different kinds differ; epoch e\'s data order is not step e\'s augmentation', (t) => {
  // low32(seed * k + counter) was the counter alone at seed 0, whatever k.
  for (let c = 0; c < 50; c++) {
    t.not(streamSeed(0, ORDER, c), streamSeed(0, AUGMENT, c), `counter ${c}`);
    t.not(new Rng(streamSeed(0, ORDER, c)).next(), new Rng(streamSeed(0, AUGMENT, c)).next(), `counter ${c}: first draws`);
  }
});

test('streamSeed: a grid of (k, counter) pairs gives distinct seeds for every seed tried, safe integers', (t) => {
  const kinds = [0, 1, 2, 3, ORDER, AUGMENT, DROPOUT, 2 ** 32 - 1];
  for (const seed of [0, 1, 2, 7, 12345, 2 ** 31, 2 ** 32, 1e12, Number.MAX_SAFE_INTEGER]) {
    const seen = new Map<number, string>();
    for (const k of kinds)
      for (let c = 0; c < 300; c++) {
        const s = streamSeed(seed, k, c);
        t.true(Number.isSafeInteger(s) && s >= 0, `seed ${seed}, k ${k}, counter ${c}: ${s}`);
        const before = seen.get(s);
        if (before !== undefined) t.fail(`seed ${seed}: (k ${k}, counter ${c}) and (${before}) share the stream ${s}`);
        seen.set(s, `k ${k}, counter ${c}`);
      }
    t.is(seen.size, kinds.length * 300, `seed ${seed}`);
  }
  // seed * k + counter made (k1, c1) and (k2, c1 + (k1 - k2) * seed) one stream: at seed 1,
  // step 992084's augmentation was epoch 0's data order.
  t.not(streamSeed(1, AUGMENT, ORDER - AUGMENT), streamSeed(1, ORDER, 0));
  // And the same (k, counter) under nearby seeds are different streams.
  t.is(new Set([0, 1, 2, 3, 2 ** 32, 2 ** 32 + 1].map((seed) => streamSeed(seed, AUGMENT, 5))).size, 6);
});

test('streamSeed: deterministic, and its arguments checked by name', (t) => {
  t.is(streamSeed(3, ORDER, 9), streamSeed(3, ORDER, 9));
  t.throws(() => streamSeed(-1, 7, 0), { instanceOf: RangeError, message: /^streamSeed: argument 'seed' must be an integer in \[0, 2\^53\), got -1/ });
  t.throws(() => streamSeed(0, 2 ** 32, 0), { instanceOf: RangeError, message: /^streamSeed: argument 'k' must be an integer in \[0, 2\^32\), got 4294967296/ });
  t.throws(() => streamSeed(0, 1.5, 0), { instanceOf: RangeError, message: /^streamSeed: argument 'k' must be an integer/ });
  t.throws(() => streamSeed(0, 7, 2 ** 32), { instanceOf: RangeError, message: /^streamSeed: argument 'counter' must be an integer in \[0, 2\^32\), got 4294967296/ });
});
