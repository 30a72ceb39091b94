/** The benches' check that two calls computed one product (shared by gemm.ts and linear-bias.ts). */
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/** Largest |a - b| / (|b| + mean |b|) over the first (up to 64) rows. */
export function agreement(a: Tensor, b: Tensor): number {
  const rows = Math.min(64, a.shape[0]!);
  const x = T.narrow(a, 0, 0, rows).to('cpu').toFloat64Array();
  const y = T.narrow(b, 0, 0, rows).to('cpu').toFloat64Array();
  let scale = 0;
  for (const v of y) scale += Math.abs(v) / y.length;
  let err = 0;
  for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i]! - y[i]!) / (Math.abs(y[i]!) + scale));
  return err;
}
