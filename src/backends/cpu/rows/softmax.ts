/**
 * Softmax row loops (forward and backward) over [rows, cols] arrays, shared by the
 * single-threaded kernels and the pool tasks. Each exponential is computed once: kept in float64 scratch between the sum and the
 * normalisation, so the result equals exp(x - max) / sum evaluated directly. With `fastExp`
 * (float32 data) exp is `expFast`, whose error (< 1e-10) is far below float32 rounding.
 */

import type { NumArray } from '../access.js';
import { expFast } from '../kernels/math.js';
import { defineTask } from '../threads/index.js';
import { rowJob } from './parallel.js';

let scratch = new Float64Array(0);

function rowScratch(cols: number): Float64Array {
  if (scratch.length < cols) scratch = new Float64Array(cols);
  return scratch;
}

export function softmaxRange(xs: NumArray, dst: NumArray, cols: number, r0: number, r1: number, log: boolean, fastExp: boolean): void {
  const e = rowScratch(cols);
  for (let r = r0; r < r1; r++) {
    const base = r * cols;
    let mx = -Infinity;
    for (let c = 0; c < cols; c++) mx = Math.max(mx, xs[base + c]!);
    if (mx === -Infinity) {
      // Every entry masked: define the row as zero weights rather than NaN.
      for (let c = 0; c < cols; c++) dst[base + c] = log ? -Infinity : 0;
      continue;
    }
    let sum = 0;
    for (let c = 0; c < cols; c++) {
      const v = fastExp ? expFast(xs[base + c]! - mx) : Math.exp(xs[base + c]! - mx);
      e[c] = v;
      sum += v;
    }
    if (log) {
      const lse = mx + Math.log(sum);
      for (let c = 0; c < cols; c++) dst[base + c] = xs[base + c]! - lse;
    } else {
      for (let c = 0; c < cols; c++) dst[base + c] = e[c]! / sum;
    }
  }
}

/** ∂x of (log-)softmax rows given y = softmax(x) (or log-softmax) and ∂y. */
export function softmaxBackwardRange(ys: NumArray, gs: NumArray, dst: NumArray, cols: number, r0: number, r1: number,
  log: boolean, fastExp: boolean): void {
  for (let r = r0; r < r1; r++) {
    const base = r * cols;
    let dot = 0;
    if (log) {
      for (let c = 0; c < cols; c++) dot += gs[base + c]!;
      for (let c = 0; c < cols; c++) {
        const p = fastExp ? expFast(ys[base + c]!) : Math.exp(ys[base + c]!);
        dst[base + c] = gs[base + c]! - p * dot;
      }
    } else {
      for (let c = 0; c < cols; c++) dot += gs[base + c]! * ys[base + c]!;
      for (let c = 0; c < cols; c++) dst[base + c] = ys[base + c]! * (gs[base + c]! - dot);
    }
  }
}

/** args extra = [cols, log, fastExp]; arrays = [x, out]. */
export const softmaxTask = defineTask(import.meta.url, 'softmaxTask', (args, ctx) => {
  const job = rowJob(args, ctx);
  const [xs, dst] = job.arrays as [NumArray, NumArray];
  const [cols, log, fast] = [job.extra[0]!, job.extra[1] === 1, job.extra[2] === 1];
  job.forBlocks((r0, r1) => softmaxRange(xs, dst, cols, r0, r1, log, fast));
});

/** args extra = [cols, log, fastExp]; arrays = [y, gy, gx]. */
export const softmaxBackwardTask = defineTask(import.meta.url, 'softmaxBackwardTask', (args, ctx) => {
  const job = rowJob(args, ctx);
  const [ys, gs, dst] = job.arrays as [NumArray, NumArray, NumArray];
  const [cols, log, fast] = [job.extra[0]!, job.extra[1] === 1, job.extra[2] === 1];
  job.forBlocks((r0, r1) => softmaxBackwardRange(ys, gs, dst, cols, r0, r1, log, fast));
});
