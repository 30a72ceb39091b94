/**
 * CPU adaLN modulation kernels (FusedKernels.normModulate and friends): the reference the CUDA
 * kernels are tested against. Row statistics from normRows' rowStatistics (float64, stored
 * float32); every value is computed in float64 and rounded once, on store.
 */
import type { FusedKernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput } from '../access.js';
import { rowStatistics } from './rows.js';

type ModulateKernels = Required<Pick<FusedKernels, 'normModulate' | 'normModulateBackward' | 'gatedResidual' | 'gatedResidualBackward'>>;

function dims(x: Tensor): [number, number, number] {
  return [x.shape[0]!, x.shape[1]!, x.shape[2]!];
}

function normModulate(kind: 'layer' | 'rms', x: Tensor, shift: Tensor, scale: Tensor, eps: number, out: Tensor, mean: Tensor, rstd: Tensor): void {
  const [groups, m, c] = dims(x);
  const xs = readNumbers(x);
  const sh = readNumbers(shift);
  const sc = readNumbers(scale);
  const means = new Float64Array(groups * m);
  const rstds = new Float64Array(groups * m);
  withOutput(out, (dst) => {
    for (let g = 0; g < groups; g++) {
      const mod = g * c;
      for (let r = g * m; r < (g + 1) * m; r++) {
        const base = r * c;
        rowStatistics(kind, xs, base, c, eps, means, rstds, r);
        const mu = means[r]!;
        const rs = rstds[r]!;
        for (let j = 0; j < c; j++) dst[base + j] = (xs[base + j]! - mu) * rs * (1 + sc[mod + j]!) + sh[mod + j]!;
      }
    }
  });
  withOutput(mean, (dst) => dst.set(means));
  withOutput(rstd, (dst) => dst.set(rstds));
}

/** gx = rstd * (gn - mean(gn) [layer] - xhat * mean(gn * xhat)) with gn = gy * (1 + scale). */
function normModulateBackward(kind: 'layer' | 'rms', x: Tensor, scale: Tensor, mean: Tensor, rstd: Tensor, gy: Tensor,
  gx: Tensor, gshift: Tensor, gscale: Tensor): void {
  const [groups, m, c] = dims(x);
  const xs = readNumbers(x);
  const sc = readNumbers(scale);
  const ms = readNumbers(mean);
  const rs = readNumbers(rstd);
  const gs = readNumbers(gy);
  const sumShift = new Float64Array(groups * c);
  const sumScale = new Float64Array(groups * c);
  const xhat = new Float64Array(c);
  withOutput(gx, (dst) => {
    for (let g = 0; g < groups; g++) {
      const mod = g * c;
      for (let r = g * m; r < (g + 1) * m; r++) {
        const base = r * c;
        const mu = ms[r]!;
        const s = rs[r]!;
        let gnSum = 0;
        let gnDot = 0;
        for (let j = 0; j < c; j++) {
          const h = (xs[base + j]! - mu) * s;
          const gv = gs[base + j]!;
          const gn = gv * (1 + sc[mod + j]!);
          xhat[j] = h;
          gnSum += gn;
          gnDot += gn * h;
          sumShift[mod + j] += gv;
          sumScale[mod + j] += gv * h;
        }
        const center = kind === 'layer' ? gnSum / c : 0;
        const dotMean = gnDot / c;
        for (let j = 0; j < c; j++) {
          const gn = gs[base + j]! * (1 + sc[mod + j]!);
          dst[base + j] = s * (gn - center - xhat[j]! * dotMean);
        }
      }
    }
  });
  withOutput(gshift, (dst) => dst.set(sumShift));
  withOutput(gscale, (dst) => dst.set(sumScale));
}

function gatedResidual(x: Tensor, gate: Tensor, y: Tensor, out: Tensor): void {
  const [groups, m, c] = dims(x);
  const xs = readNumbers(x);
  const ga = readNumbers(gate);
  const ys = readNumbers(y);
  withOutput(out, (dst) => {
    for (let g = 0; g < groups; g++) {
      for (let r = g * m; r < (g + 1) * m; r++) {
        for (let j = 0, i = r * c; j < c; j++, i++) dst[i] = xs[i]! + ga[g * c + j]! * ys[i]!;
      }
    }
  });
}

function gatedResidualBackward(gate: Tensor, y: Tensor, g0: Tensor, gy: Tensor, ggate: Tensor): void {
  const [groups, m, c] = dims(y);
  const ga = readNumbers(gate);
  const ys = readNumbers(y);
  const gs = readNumbers(g0);
  const sums = new Float64Array(groups * c);
  withOutput(gy, (dst) => {
    for (let g = 0; g < groups; g++) {
      for (let r = g * m; r < (g + 1) * m; r++) {
        for (let j = 0, i = r * c; j < c; j++, i++) {
          dst[i] = gs[i]! * ga[g * c + j]!;
          sums[g * c + j] += gs[i]! * ys[i]!;
        }
      }
    }
  });
  withOutput(ggate, (dst) => dst.set(sums));
}

export const modulateKernels: ModulateKernels = { normModulate, normModulateBackward, gatedResidual, gatedResidualBackward };
