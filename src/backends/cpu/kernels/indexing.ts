/** CPU row lookups and their scatter-add gradients, on [outer, size, inner] decompositions of dim. */
import type { Kernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readIndices, readNumbers, withOutput, writeNumbers } from '../access.js';
import { hostOf } from '../storage.js';

function split(shape: readonly number[], dim: number): [number, number, number] {
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  return [outer, shape[dim]!, inner];
}

function indexSelect(x: Tensor, dim: number, index: Tensor, out: Tensor): void {
  const [outer, size, inner] = split(x.shape, dim);
  const idx = readIndices(index, size, 'indexSelect');
  const src = hostOf(x);
  const dst = hostOf(out);
  const copyRow = (to: number, from: number) => dst.set(src.subarray(from, from + inner) as never, to);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < idx.length; j++) {
      copyRow(out.offset + (o * idx.length + j) * inner, x.offset + (o * size + idx[j]!) * inner);
    }
  }
}

/** Accumulates into out through a float64 scratch copy (exact for every float dtype). */
function accumulate(out: Tensor, fn: (acc: Float64Array) => void): void {
  const acc = Float64Array.from(readNumbers(out));
  fn(acc);
  writeNumbers(out, acc);
}

function indexAdd(out: Tensor, dim: number, index: Tensor, src: Tensor): void {
  const [outer, size, inner] = split(out.shape, dim);
  const idx = readIndices(index, size, 'indexAdd');
  const vs = readNumbers(src);
  accumulate(out, (acc) => {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < idx.length; j++) {
        const to = (o * size + idx[j]!) * inner;
        const from = (o * idx.length + j) * inner;
        for (let i = 0; i < inner; i++) acc[to + i] += vs[from + i]!;
      }
    }
  });
}

function gather(x: Tensor, dim: number, index: Tensor, out: Tensor): void {
  const [outer, size, inner] = split(x.shape, dim);
  const [, isize] = split(index.shape, dim);
  const idx = readIndices(index, size, 'gather');
  const xs = readNumbers(x);
  withOutput(out, (dst) => {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < isize; j++) {
        for (let i = 0; i < inner; i++) {
          const at = (o * isize + j) * inner + i;
          dst[at] = xs[(o * size + idx[at]!) * inner + i]!;
        }
      }
    }
  });
}

function scatterAdd(out: Tensor, dim: number, index: Tensor, src: Tensor): void {
  const [outer, size, inner] = split(out.shape, dim);
  const [, isize] = split(index.shape, dim);
  const idx = readIndices(index, size, 'scatterAdd');
  const vs = readNumbers(src);
  accumulate(out, (acc) => {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < isize; j++) {
        for (let i = 0; i < inner; i++) {
          const at = (o * isize + j) * inner + i;
          acc[(o * size + idx[at]!) * inner + i] += vs[at]!;
        }
      }
    }
  });
}

export const indexingKernels: Pick<Kernels, 'indexSelect' | 'indexAdd' | 'gather' | 'scatterAdd'> = {
  indexSelect, indexAdd, gather, scatterAdd,
};


