/**
 * CPU 2-D resampling with PyTorch's index rules (aten/src/ATen/native/UpSample.h). Each axis is
 * mapped once into source indices and weights; every (sample, channel) plane then reads two taps
 * per axis (bilinear) or one (nearest). The backward pass scatters with the same taps.
 */
import type { InterpolateArgs, Kernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput } from '../access.js';

/** Source taps of one axis: out[d] = w0[d] * in[i0[d]] + w1[d] * in[i1[d]]. */
export interface AxisTaps {
  i0: Int32Array;
  i1: Int32Array;
  w0: Float64Array;
  w1: Float64Array;
}

/**
 * PyTorch's legacy 'nearest': floor(d * ratio), clamped. The product is rounded to float32, as
 * PyTorch computes this index in float for every dtype; floor is discontinuous, so double
 * precision would pick other pixels whenever d * ratio lands just below an integer. Sizes
 * out == in and out == 2 in are special-cased exactly as PyTorch does.
 */
function nearestTaps(inSize: number, outSize: number, ratio: number): AxisTaps {
  const i0 = new Int32Array(outSize);
  const scale = Math.fround(ratio);
  for (let d = 0; d < outSize; d++) {
    if (outSize === inSize) i0[d] = d;
    else if (outSize === 2 * inSize) i0[d] = d >> 1;
    else i0[d] = Math.min(Math.floor(Math.fround(d * scale)), inSize - 1);
  }
  return { i0, i1: i0, w0: new Float64Array(outSize).fill(1), w1: new Float64Array(outSize) };
}

/**
 * Linear taps: source coordinate ratio * d (alignCorners) or ratio * (d + 0.5) - 0.5 clamped at 0
 * (half-pixel centres); the right tap is clamped to the last pixel.
 */
function linearTaps(inSize: number, outSize: number, ratio: number, alignCorners: boolean): AxisTaps {
  const t: AxisTaps = {
    i0: new Int32Array(outSize), i1: new Int32Array(outSize), w0: new Float64Array(outSize), w1: new Float64Array(outSize),
  };
  for (let d = 0; d < outSize; d++) {
    if (outSize === inSize) {
      t.i0[d] = d; t.i1[d] = d; t.w0[d] = 1; t.w1[d] = 0;
      continue;
    }
    const src = alignCorners ? ratio * d : Math.max(ratio * (d + 0.5) - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(src - i0, 0), 1);
    t.i0[d] = i0;
    t.i1[d] = i0 < inSize - 1 ? i0 + 1 : i0;
    t.w0[d] = 1 - lambda;
    t.w1[d] = lambda;
  }
  return t;
}

export function axisTaps(inSize: number, outSize: number, ratio: number, args: InterpolateArgs): AxisTaps {
  return args.mode === 'nearest' ? nearestTaps(inSize, outSize, ratio) : linearTaps(inSize, outSize, ratio, args.alignCorners);
}

/** [planes, h, w, ho, wo] of an [N, C, H, W] -> [N, C, Ho, Wo] resampling. */
function sizes(x: readonly number[], y: readonly number[]): [number, number, number, number, number] {
  return [x[0]! * x[1]!, x[2]!, x[3]!, y[2]!, y[3]!];
}

function interpolate2d(x: Tensor, out: Tensor, args: InterpolateArgs): void {
  const [planes, h, w, ho, wo] = sizes(x.shape, out.shape);
  const th = axisTaps(h, ho, args.ratio[0], args);
  const tw = axisTaps(w, wo, args.ratio[1], args);
  // Nearest reads one tap: weighting a second one by 0 would turn an infinite pixel into NaN.
  const nearest = args.mode === 'nearest';
  const xs = readNumbers(x);
  withOutput(out, (ys) => {
    let o = 0;
    for (let p = 0; p < planes; p++) {
      const plane = p * h * w;
      for (let oh = 0; oh < ho; oh++) {
        const a = plane + th.i0[oh]! * w;
        const b = plane + th.i1[oh]! * w;
        const ha = th.w0[oh]!;
        const hb = th.w1[oh]!;
        if (nearest) {
          for (let ow = 0; ow < wo; ow++, o++) ys[o] = xs[a + tw.i0[ow]!]!;
          continue;
        }
        for (let ow = 0; ow < wo; ow++, o++) {
          const c0 = tw.i0[ow]!;
          const c1 = tw.i1[ow]!;
          const wa = tw.w0[ow]!;
          const wb = tw.w1[ow]!;
          ys[o] = ha * (wa * xs[a + c0]! + wb * xs[a + c1]!) + hb * (wa * xs[b + c0]! + wb * xs[b + c1]!);
        }
      }
    }
  });
}

function interpolate2dBackward(gy: Tensor, gx: Tensor, args: InterpolateArgs): void {
  const [planes, h, w, ho, wo] = sizes(gx.shape, gy.shape);
  const th = axisTaps(h, ho, args.ratio[0], args);
  const tw = axisTaps(w, wo, args.ratio[1], args);
  // Nearest reads one tap: weighting a second one by 0 would turn an infinite pixel into NaN.
  const nearest = args.mode === 'nearest';
  const gys = readNumbers(gy);
  withOutput(gx, (gxs) => {
    gxs.fill(0);
    let o = 0;
    for (let p = 0; p < planes; p++) {
      const plane = p * h * w;
      for (let oh = 0; oh < ho; oh++) {
        const a = plane + th.i0[oh]! * w;
        const b = plane + th.i1[oh]! * w;
        const ha = th.w0[oh]!;
        const hb = th.w1[oh]!;
        if (nearest) {
          for (let ow = 0; ow < wo; ow++, o++) gxs[a + tw.i0[ow]!] += gys[o]!;
          continue;
        }
        for (let ow = 0; ow < wo; ow++, o++) {
          const g = gys[o]!;
          const c0 = tw.i0[ow]!;
          const c1 = tw.i1[ow]!;
          const wa = tw.w0[ow]! * g;
          const wb = tw.w1[ow]! * g;
          gxs[a + c0] += ha * wa;
          gxs[a + c1] += ha * wb;
          gxs[b + c0] += hb * wa;
          gxs[b + c1] += hb * wb;
        }
      }
    }
  });
}

export const interpolateKernels: Pick<Kernels, 'interpolate2d' | 'interpolate2dBackward'> = {
  interpolate2d, interpolate2dBackward,
};
