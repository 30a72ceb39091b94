/**
 * CPU depthwise causal conv1d (Mamba's conv1d with padding K-1, cut back to L outputs) with the
 * optional bias and SiLU of causal_conv1d_fn fused in:
 *   v[b, d, t]   = bias[d] + Σ_k w[d, k] x[b, d, t - (K-1) + k],  x taken as 0 before t = 0
 *   out[b, d, t] = silu ? silu(v) : v
 * Operands may have any strides (the [B, D, L] view of a channel-last [B, L, D] buffer, a flipped
 * time axis): they are read and written in logical order through access.ts. Sums run in float64,
 * over k in increasing order. Each output is one sliding-window dot product; only the first K-1
 * steps of a row (window partly before t = 0) take the edge loop, which skips the missing taps
 * instead of multiplying them by zero, so an infinite weight does not turn the padding into NaN.
 * The backward recomputes v from x (K taps) rather than keeping it: gv = gy silu'(v), then
 * gx[s] = Σ_k w[k] gv[s + K-1-k], gw[d, k] = Σ_{b,t} gv x[t - (K-1-k)], gbias[d] = Σ_{b,t} gv.
 */
import type { Kernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput, writeNumbers, type NumArray } from '../access.js';
import { sigmoid } from './math.js';

/** One row: o[at + t] for every t. Tap k reads x shifted right by K-1-k. */
function convRow(xs: NumArray, ws: NumArray, o: NumArray | Float64Array, row: number, at: number, len: number, wAt: number,
  taps: number): void {
  const edge = Math.min(len, taps - 1);
  for (let t = 0; t < edge; t++) {
    let acc = 0;
    for (let k = taps - 1 - t; k < taps; k++) acc += ws[wAt + k]! * xs[row + t - (taps - 1) + k]!;
    o[at + t] = acc;
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
      o[at + t] = 0 + w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3;
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
    o[at + t] = acc;
  }
}

/** d silu(v) / dv = σ(v) (1 + v (1 - σ(v))). */
function siluGrad(v: number): number {
  const s = sigmoid(v);
  return s * (1 + v * (1 - s));
}

function causalConv1d(x: Tensor, weight: Tensor, bias: Tensor | null, silu: boolean, out: Tensor): void {
  const [batch, dim, len] = x.shape as [number, number, number];
  const taps = weight.shape[1]!;
  const xs = readNumbers(x);
  const ws = readNumbers(weight);
  const bs = bias ? readNumbers(bias) : null;
  withOutput(out, (o) => {
    // Without bias or activation the conv is stored as is (bit for bit the plain conv's sums);
    // otherwise v stays in float64 until the one rounding at the store.
    const plain = bs === null && !silu;
    const v = plain ? null : new Float64Array(len);
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) {
        const row = (b * dim + d) * len;
        if (v === null) {
          convRow(xs, ws, o, row, row, len, d * taps, taps);
          continue;
        }
        convRow(xs, ws, v, row, 0, len, d * taps, taps);
        const bd = bs ? bs[d]! : 0;
        for (let t = 0; t < len; t++) {
          const pre = bs ? v[t]! + bd : v[t]!;
          o[row + t] = silu ? pre * sigmoid(pre) : pre;
        }
      }
    }
  });
}

/**
 * One row of the input gradient, gx[s] = Σ_k w[k] g[s + K-1-k] (terms inside the row, k in
 * increasing order), and the row's weight-gradient terms gwRow[k] = Σ_t g[t] x[t - (K-1-k)].
 * g is the pre-activation gradient (gy itself without bias and silu), read at gAt.
 */
function convRowBackward(xs: NumArray, ws: NumArray, gs: NumArray, o: NumArray, gwRow: Float64Array,
  row: number, gAt: number, len: number, wAt: number, taps: number): void {
  // Outputs whose window runs past the end of the row: only taps with s + K-1-k < len.
  const full = Math.max(0, len - (taps - 1));
  for (let s = full; s < len; s++) {
    let acc = 0;
    for (let k = 0; k < taps; k++) {
      const t = s + taps - 1 - k;
      if (t < len) acc += ws[wAt + k]! * gs[gAt + t]!;
    }
    o[row + s] = acc;
  }
  if (taps === 4 && len > 3) {
    rowBackward4(xs, ws, gs, o, gwRow, row, gAt, len, wAt);
    return;
  }
  for (let s = 0; s < full; s++) {
    let acc = 0;
    const end = gAt + s + taps - 1;
    for (let k = 0; k < taps; k++) acc += ws[wAt + k]! * gs[end - k]!;
    o[row + s] = acc;
  }
  for (let k = 0; k < taps; k++) {
    const shift = taps - 1 - k;
    let dw = 0;
    for (let t = shift; t < len; t++) dw += gs[gAt + t]! * xs[row + t - shift]!;
    gwRow[k] = dw;
  }
}

/**
 * convRowBackward for K = 4 and L > 3 in one pass over t with the windows of x and g in
 * registers: step t (>= 3) completes gx[t - 3] and adds g[t] x[t - 3 + k] to each tap's sum.
 * Steps 0..2 add only the taps whose x is inside the row, as the general loop does.
 */
function rowBackward4(xs: NumArray, ws: NumArray, gs: NumArray, o: NumArray, gwRow: Float64Array, row: number, gAt: number,
  len: number, wAt: number): void {
  const [w0, w1, w2, w3] = [ws[wAt]!, ws[wAt + 1]!, ws[wAt + 2]!, ws[wAt + 3]!];
  let [x0, x1, x2] = [xs[row]!, xs[row + 1]!, xs[row + 2]!];
  let [g0, g1, g2] = [gs[gAt]!, gs[gAt + 1]!, gs[gAt + 2]!];
  let dw3 = 0 + g0 * x0 + g1 * x1 + g2 * x2;
  let dw2 = 0 + g1 * x0 + g2 * x1;
  let dw1 = 0 + g2 * x0;
  let dw0 = 0;
  for (let t = 3; t < len; t++) {
    const x3 = xs[row + t]!;
    const g3 = gs[gAt + t]!;
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

/** gw[d, k] and gbias[d] sum the rows' terms over the batch in batch order. */
function causalConv1dBackward(x: Tensor, weight: Tensor, bias: Tensor | null, silu: boolean, gy: Tensor, gx: Tensor,
  gw: Tensor, gbias: Tensor | null): void {
  const [batch, dim, len] = x.shape as [number, number, number];
  const taps = weight.shape[1]!;
  const xs = readNumbers(x);
  const ws = readNumbers(weight);
  const bs = bias ? readNumbers(bias) : null;
  const gs = readNumbers(gy);
  const gwAcc = new Float64Array(dim * taps);
  const gbAcc = new Float64Array(dim);
  const gwRow = new Float64Array(taps);
  // The pre-activation v and its gradient for one row (only with silu; otherwise gv = gy).
  const v = silu ? new Float64Array(len) : null;
  const gv = silu ? new Float64Array(len) : null;
  withOutput(gx, (o) => {
    for (let b = 0; b < batch; b++) {
      for (let d = 0; d < dim; d++) {
        const row = (b * dim + d) * len;
        let g: NumArray = gs;
        let gAt = row;
        if (v !== null && gv !== null) {
          convRow(xs, ws, v, row, 0, len, d * taps, taps);
          const bd = bs ? bs[d]! : 0;
          for (let t = 0; t < len; t++) gv[t] = gs[row + t]! * siluGrad(bs ? v[t]! + bd : v[t]!);
          g = gv;
          gAt = 0;
        }
        convRowBackward(xs, ws, g, o, gwRow, row, gAt, len, d * taps, taps);
        for (let k = 0; k < taps; k++) gwAcc[d * taps + k] += gwRow[k]!;
        if (gbias) {
          let sum = 0;
          for (let t = 0; t < len; t++) sum += g[gAt + t]!;
          gbAcc[d] += sum;
        }
      }
    }
  });
  writeNumbers(gw, gwAcc);
  if (gbias) writeNumbers(gbias, gbAcc);
}

export const causalConv1dKernels: Pick<Kernels, 'causalConv1d' | 'causalConv1dBackward'> = {
  causalConv1d,
  causalConv1dBackward,
};
