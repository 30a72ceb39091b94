/**
 * CPU residual add + RMSNorm (FusedKernels.addRmsNorm, src/ops/add-rms-norm.ts): the reference
 * the CUDA kernels are tested against. The sum is rounded to the stream's dtype (float32, or
 * float64) as stored, and the statistics read that stored value, as RMSNorm of the residual
 * stream does; the rest is computed in float64 and rounded once, on store.
 */
import type { FusedKernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput } from '../access.js';
import { rowStatistics } from './rows.js';

type AddRmsNormKernels = Required<Pick<FusedKernels, 'addRmsNorm' | 'addRmsNormBackward'>>;

function addRmsNorm(residual: Tensor | null, x: Tensor, weight: Tensor | null, eps: number, resOut: Tensor, normed: Tensor,
  rstd: Tensor): void {
  const [rows, c] = [x.shape[0]!, x.shape[1]!];
  const xs = readNumbers(x);
  const rs = residual ? readNumbers(residual) : null;
  const ws = weight ? readNumbers(weight) : null;
  const res = resOut.dtype === 'float64' ? new Float64Array(rows * c) : new Float32Array(rows * c);
  for (let i = 0; i < res.length; i++) res[i] = (rs ? rs[i]! : 0) + xs[i]!;
  const means = new Float64Array(rows);
  const rstds = new Float64Array(rows);
  withOutput(normed, (dst) => {
    for (let r = 0; r < rows; r++) {
      const base = r * c;
      rowStatistics('rms', res, base, c, eps, means, rstds, r);
      const s = rstds[r]!;
      for (let j = 0; j < c; j++) dst[base + j] = res[base + j]! * s * (ws ? ws[j]! : 1);
    }
  });
  withOutput(resOut, (dst) => dst.set(res));
  withOutput(rstd, (dst) => dst.set(rstds));
}

function addRmsNormBackward(res: Tensor, weight: Tensor | null, rstd: Tensor, gResOut: Tensor | null, gNormed: Tensor,
  gResidual: Tensor, gx: Tensor | null, gWeight: Tensor | null): void {
  const [rows, c] = [res.shape[0]!, res.shape[1]!];
  const vs = readNumbers(res);
  const ws = weight ? readNumbers(weight) : null;
  const ss = readNumbers(rstd);
  const gr = gResOut ? readNumbers(gResOut) : null;
  const gs = readNumbers(gNormed);
  const out = new Float64Array(rows * c);
  const sums = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    const base = r * c;
    const s = ss[r]!;
    let dot = 0;
    for (let j = 0; j < c; j++) {
      const xh = vs[base + j]! * s;
      dot += gs[base + j]! * (ws ? ws[j]! : 1) * xh;
      sums[j] += gs[base + j]! * xh;
    }
    dot /= c;
    for (let j = 0; j < c; j++) {
      const xh = vs[base + j]! * s;
      out[base + j] = s * (gs[base + j]! * (ws ? ws[j]! : 1) - xh * dot) + (gr ? gr[base + j]! : 0);
    }
  }
  withOutput(gResidual, (dst) => dst.set(out));
  if (gx) withOutput(gx, (dst) => dst.set(out));
  if (gWeight) withOutput(gWeight, (dst) => dst.set(sums));
}

export const addRmsNormKernels: AddRmsNormKernels = { addRmsNorm, addRmsNormBackward };
