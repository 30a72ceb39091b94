/**
 * CPU conv2d as im2col + GEMM. For each sample and group, the input patches of a block of output
 * rows are unrolled into a column matrix cols [Cg*kh*kw, rows*Wo], so that
 *   forward          out[Cog, L]  = W[Cog, K] @ cols[K, L]
 *   backward input   gcols[K, L]  = W^T @ gy[Cog, L], folded back into gx (col2im)
 *   backward weight  gW[Cog, K]  += gy[Cog, L] @ cols^T
 * with K = Cg*kh*kw and L the block's output pixels. Output rows are blocked so that cols stays
 * within COLS_BUDGET elements (a 3x3 conv on a 1024^2 VAE feature map would otherwise need GBs).
 * 1x1 convolutions with stride 1 and no padding use the input itself as cols.
 */
import type { Conv2dArgs, Kernels } from '../../backend.js';
import { convGeometry, type ConvGeometry } from '../../conv-geometry.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { computeArray, readNumbers, withOutput, type NumArray } from '../access.js';
import { dgemmReference, sgemm } from '../gemm/index.js';

/** Most elements of one column block (16 MiB of float32). */
const COLS_BUDGET = 1 << 22;

interface Geometry extends ConvGeometry {
  /** Output rows per column block. */
  rows: number;
  /** Per kernel column j, the output columns [lo, hi) whose tap lands inside the input. */
  colLo: Int32Array; colHi: Int32Array;
}

function geometry(xShape: readonly number[], wShape: readonly number[], oShape: readonly number[], args: Conv2dArgs): Geometry {
  const g = convGeometry(xShape, wShape, oShape, args);
  const colLo = new Int32Array(g.kw);
  const colHi = new Int32Array(g.kw);
  for (let j = 0; j < g.kw; j++) {
    const shift = j * g.dw - g.pw;
    const lo = Math.max(0, Math.ceil(-shift / g.sw));
    const hi = Math.min(g.wo, Math.floor((g.w - 1 - shift) / g.sw) + 1);
    colLo[j] = Math.min(lo, g.wo);
    colHi[j] = Math.max(hi, colLo[j]!);
  }
  return { ...g, rows: Math.max(1, Math.min(g.ho, Math.floor(COLS_BUDGET / Math.max(1, g.k * g.wo)))), colLo, colHi };
}

/**
 * C[M, N] = alpha op(A) op(B) + beta C (row-major, leading dimensions): the SIMD sgemm for float32
 * and half types (computed in float32), the plain loop for float64.
 */
function gemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: NumArray, offA: number, lda: number, B: NumArray, offB: number, ldb: number,
  beta: number, C: NumArray, offC: number, ldc: number,
): void {
  if (A instanceof Float32Array && B instanceof Float32Array && C instanceof Float32Array) {
    sgemm(transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc);
  } else if (A instanceof Float64Array && B instanceof Float64Array && C instanceof Float64Array) {
    dgemmReference(transA, transB, M, N, K, alpha, A, offA, lda, B, offB, ldb, beta, C, offC, ldc);
  } else {
    throw new TypeError('conv2d: CPU kernel got operands of mixed precision');
  }
}

/** Unrolls output rows [r0, r1) of one sample's group (channels from xOff) into cols [k, L]. */
function im2col(g: Geometry, xs: NumArray, xOff: number, r0: number, r1: number, cols: NumArray): void {
  const { h, w, wo, sh, sw, ph, pw, dh, dw } = g;
  let d = 0;
  for (let c = 0; c < g.cg; c++) {
    const plane = xOff + c * h * w;
    for (let i = 0; i < g.kh; i++) {
      for (let j = 0; j < g.kw; j++) {
        const lo = g.colLo[j]!;
        const hi = g.colHi[j]!;
        const shift = j * dw - pw;
        for (let oh = r0; oh < r1; oh++, d += wo) {
          const ih = oh * sh - ph + i * dh;
          if (ih < 0 || ih >= h) { cols.fill(0, d, d + wo); continue; }
          const src = plane + ih * w + shift;
          if (lo > 0) cols.fill(0, d, d + lo);
          // At stride 1 the taps of a row are one contiguous run: a typed-array copy beats the loop.
          if (sw === 1 && hi - lo >= 16) cols.set(xs.subarray(src + lo, src + hi), d + lo);
          else for (let ow = lo; ow < hi; ow++) cols[d + ow] = xs[src + ow * sw]!;
          if (hi < wo) cols.fill(0, d + hi, d + wo);
        }
      }
    }
  }
}

/** Adds cols [k, L] of output rows [r0, r1) back onto the input positions they were read from. */
function col2im(g: Geometry, cols: NumArray, gx: NumArray, xOff: number, r0: number, r1: number): void {
  const { h, w, wo, sh, sw, ph, pw, dh, dw } = g;
  let d = 0;
  for (let c = 0; c < g.cg; c++) {
    const plane = xOff + c * h * w;
    for (let i = 0; i < g.kh; i++) {
      for (let j = 0; j < g.kw; j++) {
        const lo = g.colLo[j]!;
        const hi = g.colHi[j]!;
        const shift = j * dw - pw;
        for (let oh = r0; oh < r1; oh++, d += wo) {
          const ih = oh * sh - ph + i * dh;
          if (ih < 0 || ih >= h) continue;
          const dst = plane + ih * w + shift;
          for (let ow = lo; ow < hi; ow++) gx[dst + ow * sw] += cols[d + ow]!;
        }
      }
    }
  }
}

function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor, args: Conv2dArgs): void {
  const g = geometry(x.shape, weight.shape, out.shape, args);
  const xs = readNumbers(x);
  const ws = readNumbers(weight);
  const bs = bias ? readNumbers(bias) : null;
  withOutput(out, (ys) => {
    if (bs) {
      for (let s = 0; s < g.n; s++) {
        for (let o = 0; o < g.co; o++) ys.fill(bs[o]!, (s * g.co + o) * g.p, (s * g.co + o + 1) * g.p);
      }
    }
    const beta = bs ? 1 : 0;
    const cols = g.pointwise ? xs : computeArray(out, g.k * g.rows * g.wo);
    for (let s = 0; s < g.n; s++) {
      for (let grp = 0; grp < g.groups; grp++) {
        const xOff = (s * g.c + grp * g.cg) * g.h * g.w;
        const yOff = (s * g.co + grp * g.cog) * g.p;
        const wOff = grp * g.cog * g.k;
        if (g.pointwise) {
          gemm(false, false, g.cog, g.p, g.k, 1, ws, wOff, g.k, xs, xOff, g.p, beta, ys, yOff, g.p);
          continue;
        }
        for (let r0 = 0; r0 < g.ho; r0 += g.rows) {
          const r1 = Math.min(g.ho, r0 + g.rows);
          const L = (r1 - r0) * g.wo;
          im2col(g, xs, xOff, r0, r1, cols);
          gemm(false, false, g.cog, L, g.k, 1, ws, wOff, g.k, cols, 0, L, beta, ys, yOff + r0 * g.wo, g.p);
        }
      }
    }
  });
}

function conv2dBackwardInput(gy: Tensor, weight: Tensor, gx: Tensor, args: Conv2dArgs): void {
  const g = geometry(gx.shape, weight.shape, gy.shape, args);
  const gys = readNumbers(gy);
  const ws = readNumbers(weight);
  withOutput(gx, (gxs) => {
    gxs.fill(0);
    const cols = computeArray(gx, g.pointwise ? 0 : g.k * g.rows * g.wo);
    for (let s = 0; s < g.n; s++) {
      for (let grp = 0; grp < g.groups; grp++) {
        const xOff = (s * g.c + grp * g.cg) * g.h * g.w;
        const yOff = (s * g.co + grp * g.cog) * g.p;
        const wOff = grp * g.cog * g.k;
        if (g.pointwise) {
          gemm(true, false, g.k, g.p, g.cog, 1, ws, wOff, g.k, gys, yOff, g.p, 0, gxs, xOff, g.p);
          continue;
        }
        for (let r0 = 0; r0 < g.ho; r0 += g.rows) {
          const r1 = Math.min(g.ho, r0 + g.rows);
          const L = (r1 - r0) * g.wo;
          gemm(true, false, g.k, L, g.cog, 1, ws, wOff, g.k, gys, yOff + r0 * g.wo, g.p, 0, cols, 0, L);
          col2im(g, cols, gxs, xOff, r0, r1);
        }
      }
    }
  });
}

function conv2dBackwardWeight(gy: Tensor, x: Tensor, gw: Tensor, args: Conv2dArgs): void {
  const g = geometry(x.shape, gw.shape, gy.shape, args);
  const gys = readNumbers(gy);
  const xs = readNumbers(x);
  withOutput(gw, (gws) => {
    gws.fill(0);
    const cols = g.pointwise ? xs : computeArray(gw, g.k * g.rows * g.wo);
    for (let s = 0; s < g.n; s++) {
      for (let grp = 0; grp < g.groups; grp++) {
        const xOff = (s * g.c + grp * g.cg) * g.h * g.w;
        const yOff = (s * g.co + grp * g.cog) * g.p;
        const wOff = grp * g.cog * g.k;
        if (g.pointwise) {
          gemm(false, true, g.cog, g.k, g.p, 1, gys, yOff, g.p, xs, xOff, g.p, 1, gws, wOff, g.k);
          continue;
        }
        for (let r0 = 0; r0 < g.ho; r0 += g.rows) {
          const r1 = Math.min(g.ho, r0 + g.rows);
          const L = (r1 - r0) * g.wo;
          im2col(g, xs, xOff, r0, r1, cols);
          gemm(false, true, g.cog, g.k, L, 1, gys, yOff + r0 * g.wo, g.p, cols, 0, L, 1, gws, wOff, g.k);
        }
      }
    }
  });
}

export const convKernels: Pick<Kernels, 'conv2d' | 'conv2dBackwardInput' | 'conv2dBackwardWeight'> = {
  conv2d, conv2dBackwardInput, conv2dBackwardWeight,
};
