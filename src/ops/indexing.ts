/** Row lookups: index_select, embedding, gather. Index tensors are int32 or int64. */
import { ShapeError, formatShape, normalizeDim } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { contiguous, reshape } from './layout.js';
import { zeros } from './create.js';

function checkIndex(op: string, index: Tensor): void {
  if (index.dtype !== 'int32' && index.dtype !== 'int64') throw new TypeError(`${op}: index must be int32 or int64, got ${index.dtype}`);
}

export function indexSelect(x0: Tensor, dim: number, index0: Tensor): Tensor {
  checkIndex('indexSelect', index0);
  if (index0.ndim > 1) throw new ShapeError(`indexSelect: index must be 1-D, got ${formatShape(index0.shape)}`);
  const x = contiguous(x0);
  const d = normalizeDim(dim, x.ndim, 'indexSelect');
  const index = contiguous(reshape(index0, [-1]));
  const shape = [...x.shape];
  shape[d] = index.numel;
  const out = Tensor.empty(shape, x.dtype, x.backend);
  if (out.numel > 0) x.backend.kernels.indexSelect(x, d, index, out);
  record('indexSelect', [x], [out], ([g]) => {
    const gx = zeros(x.shape, { dtype: g!.dtype, device: g!.device });
    if (g!.numel > 0) g!.backend.kernels.indexAdd(gx, d, index, contiguous(g!));
    return [gx];
  }, { onceDifferentiable: true, saved: [index] });
  return out;
}

/** Rows of `weight` [vocab, dim] for each id: out [...ids.shape, dim]. */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (weight.ndim !== 2) throw new ShapeError(`embedding: weight must be [vocab, dim], got ${formatShape(weight.shape)}`);
  const flat = indexSelect(weight, 0, reshape(ids, [-1]));
  return reshape(flat, [...ids.shape, weight.shape[1]!]);
}

/** out[i][j][k] = x[i][index[i][j][k]][k] for dim 1, and so on (torch.gather). */
export function gather(x0: Tensor, dim: number, index0: Tensor): Tensor {
  checkIndex('gather', index0);
  const x = contiguous(x0);
  const d = normalizeDim(dim, x.ndim, 'gather');
  if (index0.ndim !== x.ndim || index0.shape.some((s, i) => i !== d && s !== x.shape[i])) {
    throw new ShapeError(`gather: index ${formatShape(index0.shape)} must match input ${formatShape(x.shape)} except along dim ${dim}`);
  }
  const index = contiguous(index0);
  const out = Tensor.empty(index.shape, x.dtype, x.backend);
  if (out.numel > 0) x.backend.kernels.gather(x, d, index, out);
  record('gather', [x], [out], ([g]) => {
    const gx = zeros(x.shape, { dtype: g!.dtype, device: g!.device });
    if (g!.numel > 0) g!.backend.kernels.scatterAdd(gx, d, index, contiguous(g!));
    return [gx];
  }, { onceDifferentiable: true, saved: [index] });
  return out;
}
