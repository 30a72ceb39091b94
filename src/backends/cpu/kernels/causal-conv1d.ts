/**
 * CPU depthwise causal conv1d (Mamba's conv1d with padding K-1, cut back to L outputs):
 *   out[b, d, t] = Σ_k w[d, k] x[b, d, t - (K-1) + k],  x taken as 0 before t = 0.
 * Sums run in float64, over k in increasing order. Each output is one sliding-window dot
 * product; only the first K-1 steps of a row (window partly before t = 0) take the edge loop,
 * which skips the missing taps instead of multiplying them by zero, so an infinite weight does
 * not turn the padding into NaN. Bias and activation are separate ops in src/ops/causal-conv1d.ts.
 */
import type { Kernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput, writeNumbers, type NumArray } from '../access.js';

/** One row: o[row + t] for every t. Tap k reads x shifted right by K-1-k. */
function convRow(xs: NumArray, ws: NumArray, o: NumArray, row: number, len: number, wAt: number, taps: number): void {
  const edge = Math.min(len, taps - 1);
  for (let t = 0; t < edge; t++) {
    let acc = 0;
    for (let k = taps - 1 - t; k < taps; k++) acc += ws[wAt + k]! * xs[row + t - (taps - 1) + k]!;
    o[row + t] = acc;
  }
  if (taps === 4) {
    // Mamba's d_conv: the window lives in registers.
    if (len <= 3) return;
    const [w0, w1, w2, w3] = [ws[wAt]!, ws[wAt + 1]!, ws[wAt + 2]!, ws[wAt + 3]!];
    let x0 = xs[row]!;
    let x1 = xs[row + 1]!;
    let x2 = xs[row + 2]!;
    for (let t = 3; t < len; t++) {
      const x3 = xs[row + t]!;
      o[row + t] = 0 + w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3;
      x0 = x1;
      x1 = x2;
      x2 = x3;
    }
    return;
  }
  for (let t = edge; t < len; t++) {
    let acc = 0;
    const start = row + t - (taps - 1);
    for (let k = 0; k < taps; k++) acc += ws[wAt + k]! * xs[start + k]!;
    o[row + t] = acc;
  }
}

function causalConv1d(x: Tensor, weight: Tensor, out: Tensor): void {
  const [batch, dim, len] = x.shape as [number, number, number];
  const taps = weight.shape[1]!;
  const xs = readNumbers(x);
  const ws = readNumbers(weight);
  withOutput(out, (o) => {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) convRow(xs, ws, o, (b * dim + d) * len, len, d * taps, taps);
    }
  });
}

/**
 * One row of the input gradient, gx[s] = Σ_k w[k] gy[s + K-1-k] (terms inside the row, k in
 * increasing order), and the row's weight-gradient terms gwRow[k] = Σ_t gy[t] x[t - (K-1-k)].
 */
function convRowBackward(xs: NumArray, ws: NumArray, gs: NumArray, o: NumArray, gwRow: Float64Array,
  row: number, len: number, wAt: number, taps: number): void {
  // Outputs whose window runs past the end of the row: only taps with s + K-1-k < len.
  const full = Math.max(0, len - (taps - 1));
  for (let s = full; s < len; s++) {
    let acc = 0;
    for (let k = 0; k < taps; k++) {
      const t = s + taps - 1 - k;
      if (t < len) acc += ws[wAt + k]! * gs[row + t]!;
    }
    o[row + s] = acc;
  }
  if (taps === 4 && len > 3) {
    rowBackward4(xs, ws, gs, o, gwRow, row, len, wAt);
    return;
  }
  for (let s = 0; s < full; s++) {
    let acc = 0;
    const end = row + s + taps - 1;
    for (let k = 0; k < taps; k++) acc += ws[wAt + k]! * gs[end - k]!;
    o[row + s] = acc;
  }
  for (let k = 0; k < taps; k++) {
    const shift = taps - 1 - k;
    let dw = 0;
    for (let t = shift; t < len; t++) dw += gs[row + t]! * xs[row + t - shift]!;
    gwRow[k] = dw;
  }
}

/**
 * convRowBackward for K = 4 and L > 3 in one pass over t with the windows of x and gy in
 * registers: step t (>= 3) completes gx[t - 3] and adds gy[t] x[t - 3 + k] to each tap's sum.
 * Steps 0..2 add only the taps whose x is inside the row, as the general loop does.
 */
function rowBackward4(xs: NumArray, ws: NumArray, gs: NumArray, o: NumArray, gwRow: Float64Array, row: number, len: number, wAt: number): void {
  const [w0, w1, w2, w3] = [ws[wAt]!, ws[wAt + 1]!, ws[wAt + 2]!, ws[wAt + 3]!];
  let [x0, x1, x2] = [xs[row]!, xs[row + 1]!, xs[row + 2]!];
  let [g0, g1, g2] = [gs[row]!, gs[row + 1]!, gs[row + 2]!];
  let dw3 = 0 + g0 * x0 + g1 * x1 + g2 * x2;
  let dw2 = 0 + g1 * x0 + g2 * x1;
  let dw1 = 0 + g2 * x0;
  let dw0 = 0;
  for (let t = 3; t < len; t++) {
    const x3 = xs[row + t]!;
    const g3 = gs[row + t]!;
    o[row + t - 3] = 0 + w0 * g3 + w1 * g2 + w2 * g1 + w3 * g0;
    dw0 += g3 * x0;
    dw1 += g3 * x1;
    dw2 += g3 * x2;
    dw3 += g3 * x3;
    x0 = x1;
    x1 = x2;
    x2 = x3;
    g0 = g1;
    g1 = g2;
    g2 = g3;
  }
  gwRow[0] = dw0;
  gwRow[1] = dw1;
  gwRow[2] = dw2;
  gwRow[3] = dw3;
}

/** gw[d, k] sums the rows' terms over the batch in batch order. */
function causalConv1dBackward(x: Tensor, weight: Tensor, gy: Tensor, gx: Tensor, gw: Tensor): void {
  const [batch, dim, len] = x.shape as [number, number, number];
  const taps = weight.shape[1]!;
  const xs = readNumbers(x);
  const ws = readNumbers(weight);
  const gs = readNumbers(gy);
  const gwAcc = new Float64Array(dim * taps);
  const gwRow = new Float64Array(taps);
  withOutput(gx, (o) => {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) {
        convRowBackward(xs, ws, gs, o, gwRow, (b * dim + d) * len, len, d * taps, taps);
        for (let k = 0; k < taps; k++) gwAcc[d * taps + k] += gwRow[k]!;
      }
    }
  });
  writeNumbers(gw, gwAcc);
}

export const causalConv1dKernels: Pick<Kernels, 'causalConv1d' | 'causalConv1dBackward'> = {
  causalConv1d,
  causalConv1dBackward,
};
