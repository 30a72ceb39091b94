/**
 * The sizes every backend's conv2d (im2col + GEMM) works from, computed once from the operand
 * shapes and Conv2dArgs: shared so the CPU and CUDA kernels cannot disagree on them.
 */
import type { Conv2dArgs } from './backend.js';

export interface ConvGeometry {
  n: number; c: number; h: number; w: number;
  co: number; ho: number; wo: number;
  kh: number; kw: number; sh: number; sw: number; ph: number; pw: number; dh: number; dw: number;
  groups: number;
  /** Input and output channels per group, patch length, output pixels per channel. */
  cg: number; cog: number; k: number; p: number;
  /** A 1x1, stride-1, unpadded convolution over the same grid: a plain matmul, no im2col. */
  pointwise: boolean;
}

/** x [N, C, H, W], weight [Co, C/groups, kh, kw], out [N, Co, Ho, Wo]. */
export function convGeometry(xShape: readonly number[], wShape: readonly number[], oShape: readonly number[], args: Conv2dArgs): ConvGeometry {
  const [n, c, h, w] = xShape as [number, number, number, number];
  const [co, cg, kh, kw] = wShape as [number, number, number, number];
  const [ho, wo] = [oShape[2]!, oShape[3]!];
  const [sh, sw] = args.stride;
  const [ph, pw] = args.padding;
  const [dh, dw] = args.dilation;
  return {
    n, c, h, w, co, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw, groups: args.groups,
    cg, cog: co / args.groups, k: cg * kh * kw, p: ho * wo,
    pointwise: kh === 1 && kw === 1 && sh === 1 && sw === 1 && ph === 0 && pw === 0 && ho === h && wo === w,
  };
}
