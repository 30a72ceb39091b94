/**
 * CPU column reduction: the middle dim of x [outer, reduced, inner] into out [outer, inner]. Each
 * column accumulates in a double in the order r = 0, 1, ... exactly as reduceRows folds a row, so
 * the result equals the transposing path's bit for bit; the loop runs along inner (contiguous) so
 * it reads x once, in storage order.
 */
import type { ReduceOp } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput, type NumArray } from '../access.js';
import { hostOf } from '../storage.js';

/** x's elements and the element offsets of (o, r, 0): storage read in place for float32/float64, else decoded. */
function columnSource(x: Tensor): { xs: NumArray; base: number; so: number; sr: number } {
  const [, reduced, inner] = x.shape as [number, number, number];
  const data = hostOf(x);
  if (data instanceof Float32Array || data instanceof Float64Array) {
    return { xs: data, base: x.offset, so: x.strides[0]!, sr: x.strides[1]! };
  }
  return { xs: readNumbers(x), base: 0, so: reduced * inner, sr: inner };
}

export function reduceColumns(op: ReduceOp, x: Tensor, out: Tensor): void {
  if (x.ndim !== 3) throw new TypeError(`reduceColumns: x must be [outer, reduced, inner], got ${x.ndim} dims`);
  const [outer, reduced, inner] = x.shape as [number, number, number];
  if (inner > 1 && x.strides[2] !== 1) throw new TypeError(`reduceColumns: inner stride must be 1, got ${x.strides[2]}`);
  if (out.numel !== outer * inner) throw new TypeError(`reduceColumns: out has ${out.numel} elements, expected ${outer * inner}`);
  if (out.numel === 0) return;
  const { xs, base, so, sr } = columnSource(x);
  const acc = new Float64Array(inner);
  const at = new Float64Array(inner);
  const wantMax = op === 'max' || op === 'argmax';
  withOutput(out, (dst) => {
    for (let o = 0; o < outer; o++) {
      const row0 = base + o * so;
      if (op === 'sum' || op === 'prod') {
        acc.fill(op === 'sum' ? 0 : 1);
        for (let r = 0; r < reduced; r++) {
          const row = row0 + r * sr;
          if (op === 'sum') for (let i = 0; i < inner; i++) acc[i]! += xs[row + i]!;
          else for (let i = 0; i < inner; i++) acc[i]! *= xs[row + i]!;
        }
        dst.set(acc, o * inner);
        continue;
      }
      // Extremes: the first NaN of a column wins and ties keep the lowest index, as in reduceRows.
      at.fill(0);
      if (reduced === 0) acc.fill(NaN);
      else for (let i = 0; i < inner; i++) acc[i] = xs[row0 + i]!;
      for (let r = 1; r < reduced; r++) {
        const row = row0 + r * sr;
        for (let i = 0; i < inner; i++) {
          const b = acc[i]!;
          const v = xs[row + i]!;
          if (b === b && (v !== v || (wantMax ? v > b : v < b))) { acc[i] = v; at[i] = r; }
        }
      }
      dst.set(op === 'max' || op === 'min' ? acc : at, o * inner);
    }
  });
}
