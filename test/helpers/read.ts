// Reading a result that the test does not keep: its values, then it is disposed.
import type { Tensor, TypedData } from '../../lib/index.js';

export async function readAndDispose(x: Tensor): Promise<TypedData> {
  try {
    return await x.data();
  } finally {
    x.dispose();
  }
}
