/** Stochastic depth: drop a residual branch for whole samples with probability p (scaled by 1/(1-p)). */
import * as T from '../../index.js';
import type { Tensor } from '../../tensor/tensor.js';

export function dropPath(x: Tensor, p: number, training: boolean): Tensor {
  if (!training || p === 0) return x;
  const keep = T.lt(T.rand([x.shape[0]!, ...x.shape.slice(1).map(() => 1)], { device: x.device }), 1 - p);
  return T.mul(x, T.mul(T.cast(keep, x.dtype), 1 / (1 - p)));
}
