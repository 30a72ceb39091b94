/**
 * Plain-loop references for the image ops (conv2d, interpolate) written straight from PyTorch's
 * definitions, plus an elementwise comparison that reports where and by how much arrays differ.
 */
import assert from 'node:assert/strict';
import { Generator, randn, tensor, type DType, type Tensor } from '../../src/index.js';

/** Random normal values (float64) from a fixed seed. */
export function randomValues(n: number, seed: number): Float64Array {
  return randn([n], { dtype: 'float64', generator: new Generator(seed) }).toFloat64Array();
}

/** A random tensor of `dtype` and the float64 values it actually holds (after rounding to dtype). */
export function randomTensor(shape: readonly number[], seed: number, dtype: DType = 'float32', requiresGrad = false): { t: Tensor; v: Float64Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = tensor(randomValues(n, seed), { dtype, shape: [...shape], requiresGrad });
  return { t, v: t.toFloat64Array() };
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

/** Fails with shape, max abs/rel error and the first mismatching index when |a - e| > atol + rtol |e|. */
export function assertAllClose(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>, shape: readonly number[],
  tol: { atol: number; rtol: number }): void {
  assert.equal(actual.length, expected.length, `${label}: ${actual.length} values, expected ${expected.length}`);
  let maxAbs = 0;
  let maxRel = 0;
  let first = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e);
    maxAbs = Math.max(maxAbs, err);
    if (e !== 0) maxRel = Math.max(maxRel, err / Math.abs(e));
    if (first < 0 && !(err <= tol.atol + tol.rtol * Math.abs(e))) first = i;
  }
  if (first >= 0) {
    assert.fail(`${label}: shape [${shape.join(', ')}], max abs err ${maxAbs.toExponential(3)}, max rel err ${maxRel.toExponential(3)}; ` +
      `first mismatch at [${unravel(first, shape).join(', ')}]: got ${actual[first]}, expected ${expected[first]}`);
  }
}

// ---- conv2d --------------------------------------------------------------------------------------

export interface ConvRefOptions {
  stride: [number, number];
  /** Symmetric zero padding, or 'same' (PyTorch: total d*(k-1), the odd one after the input). */
  padding: [number, number] | 'same';
  dilation: [number, number];
  groups: number;
}

export interface ConvShapes {
  x: readonly number[];
  w: readonly number[];
  out: number[];
}

/**
 * Calls visit(xi, wi, oi) for every product x[xi] * w[wi] that contributes to out[oi], skipping
 * taps that fall on padding. Forward and both gradients are sums over these triples.
 */
function forEachTap(s: ConvShapes, o: ConvRefOptions, visit: (xi: number, wi: number, oi: number) => void): void {
  const [n, c, h, w] = s.x as [number, number, number, number];
  const [co, cg, kh, kw] = s.w as [number, number, number, number];
  const [, , ho, wo] = s.out as [number, number, number, number];
  const pad = o.padding === 'same'
    ? [Math.floor(o.dilation[0] * (kh - 1) / 2), Math.floor(o.dilation[1] * (kw - 1) / 2)]
    : o.padding;
  const cog = co / o.groups;
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < co; oc++) {
      const grp = Math.floor(oc / cog);
      for (let y = 0; y < ho; y++) {
        for (let x = 0; x < wo; x++) {
          const oi = ((b * co + oc) * ho + y) * wo + x;
          for (let ci = 0; ci < cg; ci++) {
            for (let i = 0; i < kh; i++) {
              const iy = y * o.stride[0] - pad[0]! + i * o.dilation[0];
              if (iy < 0 || iy >= h) continue;
              for (let j = 0; j < kw; j++) {
                const ix = x * o.stride[1] - pad[1]! + j * o.dilation[1];
                if (ix < 0 || ix >= w) continue;
                visit(((b * c + grp * cg + ci) * h + iy) * w + ix, ((oc * cg + ci) * kh + i) * kw + j, oi);
              }
            }
          }
        }
      }
    }
  }
}

/** Output shape by PyTorch's formula floor((H + 2p - d(k-1) - 1) / s) + 1. */
export function convOutShape(x: readonly number[], w: readonly number[], o: ConvRefOptions): number[] {
  if (o.padding === 'same') return [x[0]!, w[0]!, x[2]!, x[3]!];
  const pad = o.padding;
  const dim = (i: number, k: number, d: 0 | 1) => Math.floor((x[i]! + 2 * pad[d] - o.dilation[d] * (k - 1) - 1) / o.stride[d]) + 1;
  return [x[0]!, w[0]!, dim(2, w[2]!, 0), dim(3, w[3]!, 1)];
}

export function conv2dRef(x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | null, s: ConvShapes, o: ConvRefOptions): Float64Array {
  const out = new Float64Array(s.out.reduce((a, b) => a * b, 1));
  const plane = s.out[2]! * s.out[3]!;
  if (bias) for (let i = 0; i < out.length; i++) out[i] = bias[Math.floor(i / plane) % s.out[1]!]!;
  forEachTap(s, o, (xi, wi, oi) => { out[oi] += x[xi]! * w[wi]!; });
  return out;
}

/** Gradients of sum(conv2d(x, w, b) * gy) with respect to x, w and b. */
export function conv2dRefGrads(x: ArrayLike<number>, w: ArrayLike<number>, gy: ArrayLike<number>, s: ConvShapes, o: ConvRefOptions):
  { gx: Float64Array; gw: Float64Array; gb: Float64Array } {
  const gx = new Float64Array(x.length);
  const gw = new Float64Array(w.length);
  const gb = new Float64Array(s.out[1]!);
  forEachTap(s, o, (xi, wi, oi) => {
    gx[xi] += w[wi]! * gy[oi]!;
    gw[wi] += x[xi]! * gy[oi]!;
  });
  const plane = s.out[2]! * s.out[3]!;
  for (let i = 0; i < gy.length; i++) gb[Math.floor(i / plane) % s.out[1]!] += gy[i]!;
  return { gx, gw, gb };
}

// ---- interpolate ---------------------------------------------------------------------------------

export interface InterpRefOptions {
  mode: 'nearest' | 'bilinear';
  size: [number, number];
  /** Scale factors used for coordinate mapping (PyTorch with recompute_scale_factor unset), or null. */
  scales: [number, number] | null;
  alignCorners: boolean;
}

/**
 * Per output index along one axis, the weights of input indices (PyTorch UpSample.h):
 * nearest: floor(dst * scale) in float32 with exact shortcuts for out == in and out == 2 in;
 * bilinear: source coordinate dst * (in-1)/(out-1) (align corners) or (dst + 0.5) / s - 0.5 clamped at 0.
 */
function axisWeights(inSize: number, outSize: number, scale: number | null, o: InterpRefOptions): Map<number, number>[] {
  const rows: Map<number, number>[] = [];
  for (let d = 0; d < outSize; d++) {
    const m = new Map<number, number>();
    if (o.mode === 'nearest') {
      let src: number;
      if (outSize === inSize) src = d;
      else if (outSize === 2 * inSize) src = Math.floor(d / 2);
      else {
        const s = Math.fround(scale !== null ? 1 / scale : inSize / outSize);
        src = Math.min(Math.floor(Math.fround(d * s)), inSize - 1);
      }
      m.set(src, 1);
    } else if (outSize === inSize) {
      m.set(d, 1);
    } else {
      let coord: number;
      if (o.alignCorners) coord = outSize > 1 ? d * (inSize - 1) / (outSize - 1) : 0;
      else coord = Math.max((d + 0.5) * (scale !== null ? 1 / scale : inSize / outSize) - 0.5, 0);
      const lo = Math.min(Math.floor(coord), inSize - 1);
      const hi = Math.min(lo + 1, inSize - 1);
      const frac = Math.min(Math.max(coord - lo, 0), 1);
      m.set(lo, (m.get(lo) ?? 0) + 1 - frac);
      m.set(hi, (m.get(hi) ?? 0) + frac);
    }
    rows.push(m);
  }
  return rows;
}

/** out [N, C, Ho, Wo] as a dense linear map of x; also returns the map's transpose applied to gy. */
export function interpolateRef(x: ArrayLike<number>, xShape: readonly number[], gy: ArrayLike<number> | null, o: InterpRefOptions):
  { out: Float64Array; gx: Float64Array } {
  const [n, c, h, w] = xShape as [number, number, number, number];
  const [ho, wo] = o.size;
  const wh = axisWeights(h, ho, o.scales?.[0] ?? null, o);
  const ww = axisWeights(w, wo, o.scales?.[1] ?? null, o);
  const out = new Float64Array(n * c * ho * wo);
  const gx = new Float64Array(x.length);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < ho; y++) {
      for (let z = 0; z < wo; z++) {
        const oi = (p * ho + y) * wo + z;
        for (const [iy, a] of wh[y]!) {
          for (const [iz, b] of ww[z]!) {
            const xi = (p * h + iy) * w + iz;
            out[oi] += a * b * x[xi]!;
            if (gy) gx[xi] += a * b * gy[oi]!;
          }
        }
      }
    }
  }
  return { out, gx };
}
