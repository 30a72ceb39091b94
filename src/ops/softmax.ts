/** Softmax and log-softmax over one dim (moved last for the row kernel). */
import { isFloating } from '../tensor/dtype.js';
import { normalizeDim } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { cast, contiguous, reshape, transpose } from './layout.js';

function rowwise(x0: Tensor, dim: number, log: boolean): Tensor {
  const x = isFloating(x0.dtype) ? x0 : cast(x0, 'float32');
  const d = normalizeDim(dim, x.ndim, log ? 'logSoftmax' : 'softmax');
  const last = x.ndim - 1;
  const moved = d === last ? x : transpose(x, d, last);
  const cols = x.shape[d]!;
  const rows = contiguous(moved);
  const y = Tensor.empty(rows.shape, x.dtype, x.backend);
  if (y.numel > 0) x.backend.kernels.softmax(reshape(rows, [-1, cols]), reshape(y, [-1, cols]), log);
  record(log ? 'logSoftmax' : 'softmax', [rows], [y], ([g]) => {
    const gx = Tensor.empty(y.shape, y.dtype, y.backend);
    if (gx.numel > 0) y.backend.kernels.softmaxBackward(reshape(y, [-1, cols]), reshape(contiguous(g!), [-1, cols]), reshape(gx, [-1, cols]), log);
    return [gx];
  }, { onceDifferentiable: true, saved: [y] });
  return d === last ? y : transpose(y, d, last);
}

export function softmax(x: Tensor, dim = -1): Tensor {
  return rowwise(x, dim, false);
}

export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return rowwise(x, dim, true);
}
