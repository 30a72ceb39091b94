/**
 * CPU row kernels: reductions, softmax and normalisation over the last dim of [rows, cols].
 * Softmax and its backward run on the thread pool for large inputs (../rows/).
 */
import type { Kernels, ReduceOp } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput, type NumArray } from '../access.js';
import { runRowsOnPool } from '../rows/parallel.js';
import { reduceColumns } from './reduce-columns.js';
import { softmaxBackwardRange, softmaxBackwardTask, softmaxRange, softmaxTask } from '../rows/softmax.js';
import { defaultThreadCount, threadPool, type ThreadPool } from '../threads/index.js';

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

/** Elements from which softmax is spread over the thread pool (below, waking workers costs more). */
export const PARALLEL_SOFTMAX_ELEMENTS = 1 << 16;

/** Softmax of x [rows, cols] on `pool`'s threads (null, or data beyond the arena: the calling thread alone). */
export function softmaxOn(pool: ThreadPool | null, x: Tensor, out: Tensor, log: boolean): void {
  const xs = readNumbers(x);
  const cols = x.shape[1]!;
  const rows = x.shape[0]!;
  const fastExp = x.dtype !== 'float64';
  withOutput(out, (dst) => {
    const arrays = [{ data: xs, output: false }, { data: dst, output: true }];
    const threaded = pool !== null && pool.threads > 1 && runRowsOnPool(pool, softmaxTask, rows, cols, arrays, [cols, log ? 1 : 0, fastExp ? 1 : 0]);
    if (!threaded) softmaxRange(xs, dst, cols, 0, rows, log, fastExp);
  });
}

function softmax(x: Tensor, out: Tensor, log: boolean): void {
  const parallel = x.numel >= PARALLEL_SOFTMAX_ELEMENTS && defaultThreadCount() > 1;
  softmaxOn(parallel ? threadPool() : null, x, out, log);
}

/** Softmax backward of y, gy [rows, cols] on `pool`'s threads (null, or data beyond the arena: the calling thread alone). */
export function softmaxBackwardOn(pool: ThreadPool | null, y: Tensor, gy: Tensor, gx: Tensor, log: boolean): void {
  const ys = readNumbers(y);
  const gs = readNumbers(gy);
  const [rows, cols] = [y.shape[0]!, y.shape[1]!];
  const fastExp = y.dtype !== 'float64';
  withOutput(gx, (dst) => {
    const arrays = [{ data: ys, output: false }, { data: gs, output: false }, { data: dst, output: true }];
    const threaded = pool !== null && pool.threads > 1 && runRowsOnPool(pool, softmaxBackwardTask, rows, cols, arrays, [cols, log ? 1 : 0, fastExp ? 1 : 0]);
    if (!threaded) softmaxBackwardRange(ys, gs, dst, cols, 0, rows, log, fastExp);
  });
}

function softmaxBackward(y: Tensor, gy: Tensor, gx: Tensor, log: boolean): void {
  const parallel = y.numel >= PARALLEL_SOFTMAX_ELEMENTS && defaultThreadCount() > 1;
  softmaxBackwardOn(parallel ? threadPool() : null, y, gy, gx, log);
}

/**
 * Row r's statistics (xs[base .. base + cols)) into means[r] and rstds[r]: the mean (0 for
 * 'rms') and 1 / sqrt(mean of squared deviations + eps), in float64. normRows and the fused
 * adaLN kernels (kernels/modulate.ts) share it, so the two paths normalise alike.
 */
export function rowStatistics(kind: 'layer' | 'rms', xs: NumArray, base: number, cols: number, eps: number,
  means: Float64Array, rstds: Float64Array, r: number): void {
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
  means[r] = mu;
  rstds[r] = 1 / Math.sqrt(sq / cols + eps);
}

function normRows(kind: 'layer' | 'rms', x: Tensor, eps: number, out: Tensor, mean: Tensor, rstd: Tensor): void {
  const xs = readNumbers(x);
  const [rows, cols] = [x.shape[0]!, x.shape[1]!];
  const means = new Float64Array(rows);
  const rstds = new Float64Array(rows);
  withOutput(out, (dst) => {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      rowStatistics(kind, xs, base, cols, eps, means, rstds, r);
      const mu = means[r]!;
      const rs = rstds[r]!;
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

export const rowKernels: Pick<Kernels, 'reduceRows' | 'reduceColumns' | 'softmax' | 'softmaxBackward' | 'normRows' | 'normRowsBackward'> = {
  reduceRows, reduceColumns, softmax, softmaxBackward, normRows, normRowsBackward,
};
