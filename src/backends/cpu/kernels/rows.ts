/** CPU row kernels: reductions, softmax and normalisation over the last dim of [rows, cols]. */
import type { Kernels, ReduceOp } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput } from '../access.js';

function reduceRows(op: ReduceOp, x: Tensor, out: Tensor): void {
  const xs = readNumbers(x);
  const rows = out.numel;
  const cols = rows === 0 ? 0 : xs.length / rows;
  withOutput(out, (dst) => {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      switch (op) {
        case 'sum': {
          let s = 0;
          for (let c = 0; c < cols; c++) s += xs[base + c]!;
          dst[r] = s;
          break;
        }
        case 'prod': {
          let s = 1;
          for (let c = 0; c < cols; c++) s *= xs[base + c]!;
          dst[r] = s;
          break;
        }
        case 'max': case 'min': case 'argmax': case 'argmin': {
          const wantMax = op === 'max' || op === 'argmax';
          let best = xs[base]!;
          let at = 0;
          for (let c = 1; c < cols && !Number.isNaN(best); c++) {
            const v = xs[base + c]!;
            if (Number.isNaN(v) || (wantMax ? v > best : v < best)) { best = v; at = c; }
          }
          dst[r] = op === 'max' || op === 'min' ? best : at;
          break;
        }
      }
    }
  });
}

function softmax(x: Tensor, out: Tensor, log: boolean): void {
  const xs = readNumbers(x);
  const cols = x.shape[1]!;
  const rows = x.shape[0]!;
  withOutput(out, (dst) => {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let mx = -Infinity;
      for (let c = 0; c < cols; c++) mx = Math.max(mx, xs[base + c]!);
      if (mx === -Infinity) {
        // Every entry masked: define the row as zero weights rather than NaN.
        for (let c = 0; c < cols; c++) dst[base + c] = log ? -Infinity : 0;
        continue;
      }
      let sum = 0;
      for (let c = 0; c < cols; c++) sum += Math.exp(xs[base + c]! - mx);
      if (log) {
        const lse = mx + Math.log(sum);
        for (let c = 0; c < cols; c++) dst[base + c] = xs[base + c]! - lse;
      } else {
        for (let c = 0; c < cols; c++) dst[base + c] = Math.exp(xs[base + c]! - mx) / sum;
      }
    }
  });
}

function softmaxBackward(y: Tensor, gy: Tensor, gx: Tensor, log: boolean): void {
  const ys = readNumbers(y);
  const gs = readNumbers(gy);
  const [rows, cols] = [y.shape[0]!, y.shape[1]!];
  withOutput(gx, (dst) => {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let dot = 0;
      if (log) {
        for (let c = 0; c < cols; c++) dot += gs[base + c]!;
        for (let c = 0; c < cols; c++) {
          const p = Math.exp(ys[base + c]!);
          dst[base + c] = gs[base + c]! - p * dot;
        }
      } else {
        for (let c = 0; c < cols; c++) dot += gs[base + c]! * ys[base + c]!;
        for (let c = 0; c < cols; c++) dst[base + c] = ys[base + c]! * (gs[base + c]! - dot);
      }
    }
  });
}

function normRows(kind: 'layer' | 'rms', x: Tensor, eps: number, out: Tensor, mean: Tensor, rstd: Tensor): void {
  const xs = readNumbers(x);
  const [rows, cols] = [x.shape[0]!, x.shape[1]!];
  const means = new Float64Array(rows);
  const rstds = new Float64Array(rows);
  withOutput(out, (dst) => {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let mu = 0;
      if (kind === 'layer') {
        for (let c = 0; c < cols; c++) mu += xs[base + c]!;
        mu /= cols;
      }
      let sq = 0;
      for (let c = 0; c < cols; c++) {
        const d = xs[base + c]! - mu;
        sq += d * d;
      }
      const rs = 1 / Math.sqrt(sq / cols + eps);
      means[r] = mu;
      rstds[r] = rs;
      for (let c = 0; c < cols; c++) dst[base + c] = (xs[base + c]! - mu) * rs;
    }
  });
  withOutput(mean, (dst) => dst.set(means));
  withOutput(rstd, (dst) => dst.set(rstds));
}

function normRowsBackward(kind: 'layer' | 'rms', x: Tensor, mean: Tensor, rstd: Tensor, gy: Tensor, gx: Tensor): void {
  const xs = readNumbers(x);
  const gs = readNumbers(gy);
  const ms = readNumbers(mean);
  const rs = readNumbers(rstd);
  const [rows, cols] = [x.shape[0]!, x.shape[1]!];
  withOutput(gx, (dst) => {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const mu = ms[r]!;
      const s = rs[r]!;
      let gMean = 0;
      let gDotXhat = 0;
      for (let c = 0; c < cols; c++) {
        const g = gs[base + c]!;
        gMean += g;
        gDotXhat += g * (xs[base + c]! - mu) * s;
      }
      gMean /= cols;
      gDotXhat /= cols;
      const center = kind === 'layer' ? gMean : 0;
      for (let c = 0; c < cols; c++) {
        const xhat = (xs[base + c]! - mu) * s;
        dst[base + c] = s * (gs[base + c]! - center - xhat * gDotXhat);
      }
    }
  });
}

export const rowKernels: Pick<Kernels, 'reduceRows' | 'softmax' | 'softmaxBackward' | 'normRows' | 'normRowsBackward'> = {
  reduceRows, softmax, softmaxBackward, normRows, normRowsBackward,
};
