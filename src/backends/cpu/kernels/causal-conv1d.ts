/**
 * CPU depthwise causal conv1d (Mamba's conv1d with padding K-1, cut back to L outputs):
 *   out[b, d, t] = Σ_k w[d, k] x[b, d, t - (K-1) + k],  x taken as 0 before t = 0.
 * Tap k reads x shifted right by s = K-1-k, so each tap is one shifted axpy over a row, summed in
 * float64. Bias and activation are separate ops in src/ops/causal-conv1d.ts.
 */
import type { Kernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput, writeNumbers } from '../access.js';

function causalConv1d(x: Tensor, weight: Tensor, out: Tensor): void {
  const [batch, dim, len] = x.shape as [number, number, number];
  const taps = weight.shape[1]!;
  const xs = readNumbers(x);
  const ws = readNumbers(weight);
  const acc = new Float64Array(len);
  withOutput(out, (o) => {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) {
        const row = (b * dim + d) * len;
        acc.fill(0);
        for (let k = 0; k < taps; k++) {
          const w = ws[d * taps + k]!;
          const shift = taps - 1 - k;
          for (let t = shift; t < len; t++) acc[t] += w * xs[row + t - shift]!;
        }
        for (let t = 0; t < len; t++) o[row + t] = acc[t]!;
      }
    }
  });
}

/** gx[s] = Σ_k w[k] gy[s + K-1-k] (within the row); gw[d, k] = Σ_{b,t} gy[b, d, t] x[b, d, t - (K-1-k)]. */
function causalConv1dBackward(x: Tensor, weight: Tensor, gy: Tensor, gx: Tensor, gw: Tensor): void {
  const [batch, dim, len] = x.shape as [number, number, number];
  const taps = weight.shape[1]!;
  const xs = readNumbers(x);
  const ws = readNumbers(weight);
  const gs = readNumbers(gy);
  const gwAcc = new Float64Array(dim * taps);
  const acc = new Float64Array(len);
  withOutput(gx, (o) => {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) {
        const row = (b * dim + d) * len;
        acc.fill(0);
        for (let k = 0; k < taps; k++) {
          const w = ws[d * taps + k]!;
          const shift = taps - 1 - k;
          let dw = 0;
          for (let t = shift; t < len; t++) {
            const g = gs[row + t]!;
            acc[t - shift] += w * g;
            dw += g * xs[row + t - shift]!;
          }
          gwAcc[d * taps + k] += dw;
        }
        for (let t = 0; t < len; t++) o[row + t] = acc[t]!;
      }
    }
  });
  writeNumbers(gw, gwAcc);
}

export const causalConv1dKernels: Pick<Kernels, 'causalConv1d' | 'causalConv1dBackward'> = {
  causalConv1d,
  causalConv1dBackward,
};
