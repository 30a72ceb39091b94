/** Random leaves and a relative-error measure shared by the fused-op tests (fused vs composed). */
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { rand64 } from './gradcheck.js';

/** A leaf of `dtype` that requires grad (values drawn in float64 and rounded). */
export function leaf(shape: number[], seed: number, dtype: DType, scale = 1, shift = 0): Tensor {
  return T.cast(rand64(shape, seed, scale, shift).detach(), dtype).requiresGrad_(true);
}

/** max |a - e| / (|e| + mean |e|): relative where e is large, absolute-ish against the mean where it is small. */
export function maxRelError(a: Tensor, e: Tensor): number {
  const av = a.toFloat64Array();
  const ev = e.toFloat64Array();
  let scale = 0;
  for (const v of ev) scale += Math.abs(v);
  scale /= Math.max(1, ev.length);
  let worst = 0;
  for (let i = 0; i < ev.length; i++) worst = Math.max(worst, Math.abs(av[i]! - ev[i]!) / (Math.abs(ev[i]!) + scale));
  return worst;
}
