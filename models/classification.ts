// Top-k classes from an image classifier's logits, labelled by config.id2label.
import type { Tensor } from '../lib/index.js';
import { describe } from '../lib/dtype.js';
import { intArg, tensorArg } from './args.js';

function checkId2label(op: string, v: unknown): void {
  if (v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v)))
    throw new TypeError(`${op}: argument 'id2label' must be an object (class index -> label), got ${describe(v)}`);
}

export interface ClassPrediction {
  index: number;
  label: string;
  probability: number;
}

/** A label per class index: id2label's entry, else 'LABEL_i' (HF's default naming). */
export function labelOf(id2label: Record<string, string> | undefined, index: number): string {
  checkId2label('labelOf', id2label);
  intArg('labelOf', 'index', index, 0);
  return id2label?.[String(index)] ?? `LABEL_${index}`;
}

/**
 * logits [B, num_classes] -> per row the topK classes by softmax probability (ties by
 * index). The logits tensor is not disposed.
 */
export async function topKClasses(logits: Tensor, topK: number, id2label?: Record<string, string>): Promise<ClassPrediction[][]> {
  tensorArg('topKClasses', 'logits', logits, { dtype: 'float' });
  if (logits.rank !== 2) throw new RangeError(`topKClasses: logits must be [B, num_classes], got [${logits.shape.join(', ')}]`);
  checkId2label('topKClasses', id2label);
  const [B, C] = logits.shape;
  if (!Number.isSafeInteger(topK) || topK < 1) throw new RangeError(`topKClasses: topK must be a positive integer, got ${String(topK)}`);
  const probs = logits.softmax(-1);
  let p: Float32Array;
  try {
    p = (await probs.data()) as Float32Array;
  } finally {
    probs.dispose();
  }
  const out: ClassPrediction[][] = [];
  for (let b = 0; b < B; b++) {
    const row = p.subarray(b * C, (b + 1) * C);
    const order = Array.from(row.keys()).sort((x, y) => row[y] - row[x] || x - y);
    out.push(order.slice(0, Math.min(topK, C)).map((i) => ({ index: i, label: labelOf(id2label, i), probability: row[i] })));
  }
  return out;
}
