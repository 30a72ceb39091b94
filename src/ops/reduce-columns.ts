/**
 * When a reduction can read x in place as columns: the [outer, reduced, inner] view the backends'
 * reduceColumns kernel takes, found by merging dims (kept apart from src/ops/reduce.ts so it is
 * not part of the ops namespace).
 */
import type { Tensor } from '../tensor/tensor.js';

interface Run {
  size: number;
  stride: number;
  reduced: boolean;
}

/**
 * x as an [outer, reduced, inner] view (inner stride 1, no copy) when, after dropping size-1 dims
 * and merging neighbours whose strides chain, the dims read kept-reduced-kept or reduced-kept;
 * null otherwise (reduced dims innermost, interleaved, or an inner part that is not contiguous).
 */
export function columnView(x: Tensor, reducedDims: readonly number[]): Tensor | null {
  if (x.numel === 0) return null;
  const runs: Run[] = [];
  for (let d = 0; d < x.ndim; d++) {
    const size = x.shape[d]!;
    if (size === 1) continue;
    const stride = x.strides[d]!;
    const reduced = reducedDims.includes(d);
    const last = runs[runs.length - 1];
    if (last !== undefined && last.reduced === reduced && last.stride === stride * size) {
      last.size *= size;
      last.stride = stride;
    } else {
      runs.push({ size, stride, reduced });
    }
  }
  const pattern = runs.map((r) => (r.reduced ? 'R' : 'K')).join('');
  if (pattern !== 'RK' && pattern !== 'KRK') return null;
  const [outer, mid, inner] = pattern === 'RK' ? [{ size: 1, stride: 0 }, runs[0]!, runs[1]!] : (runs as [Run, Run, Run]);
  if (inner.stride !== 1) return null;
  return x.withLayout([outer.size, mid.size, inner.size], [outer.stride, mid.stride, 1], x.offset);
}
