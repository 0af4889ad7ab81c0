// models/derived.ts: when a value cached from tensors is still current. It is while
// each input is the same live tensor and no tensor has been written in place since.
import test from 'ava';
import * as P from '../lib/index.js';
import { derivedFrom, stillDerived } from '../models/derived.js';

test('a derivation stays current until a write, a replaced or disposed input, or other inputs', (t) => {
  const a = P.randn([3]);
  const b = P.randn([3]);
  const c = derivedFrom([a, b]);
  t.false(stillDerived(null, [a, b]), 'nothing cached');
  t.true(stillDerived(c, [a, b]));
  t.false(stillDerived(c, [b, a]), 'the inputs in another order');
  t.false(stillDerived(c, [a]), 'fewer inputs');
  const other = P.randn([3]);
  t.false(stillDerived(c, [a, other]), 'an input replaced');
  P.tidy(() => P.assign(other, P.zeros([3])));
  t.false(stillDerived(c, [a, b]), 'a write to any tensor since');
  const d = derivedFrom([a, b]);
  t.true(stillDerived(d, [a, b]));
  b.dispose();
  t.false(stillDerived(d, [a, b]), 'an input disposed');
  for (const x of [a, other]) x.dispose();
});
