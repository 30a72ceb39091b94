/**
 * Strided layouts for elementwise kernels. Dims that every operand walks contiguously (the outer
 * stride equals the inner stride times the inner size) are merged and size-1 dims dropped, so
 * contiguous tensors reach a kernel as one dim and index without divisions (offset1/2/3 in
 * common.cuh), and few shapes exceed the kernels' 8 dims.
 */
import type { KernelParams } from './params.js';

export const MAX_DIMS = 8;

export class LayoutError extends Error {
  override name = 'LayoutError';
}

export interface MergedLayout {
  /** Sizes, outer to inner (at least one dim). */
  readonly sizes: number[];
  /** Per operand, one stride per merged dim. */
  readonly strides: number[][];
}

export function mergeDims(shape: readonly number[], operands: readonly (readonly number[])[], op = 'kernel'): MergedLayout {
  const sizes: number[] = [];
  const strides: number[][] = operands.map(() => []);
  for (let d = shape.length - 1; d >= 0; d--) {
    const size = shape[d]!;
    if (size === 1) continue;
    const last = sizes.length - 1;
    const mergeable = last >= 0 && operands.every((s, k) => s[d] === strides[k]![0]! * sizes[0]!);
    if (mergeable) {
      sizes[0] = sizes[0]! * size;
    } else {
      sizes.unshift(size);
      operands.forEach((s, k) => strides[k]!.unshift(s[d]!));
    }
  }
  if (sizes.length === 0) {
    sizes.push(1);
    strides.forEach((s) => s.push(0));
  }
  if (sizes.length > MAX_DIMS) {
    throw new LayoutError(`${op}: a ${shape.length}-d strided layout still has ${sizes.length} dims after merging; CUDA elementwise kernels take at most ${MAX_DIMS} (make the input contiguous first)`);
  }
  return { sizes, strides };
}

/** Writes common.cuh's Dims: size[8], ndim. */
export function putDims(p: KernelParams, sizes: readonly number[]): KernelParams {
  const words = new Array<number>(MAX_DIMS + 1).fill(0);
  sizes.forEach((s, i) => { words[i] = s; });
  words[MAX_DIMS] = sizes.length;
  return p.i64Struct(words);
}

/** Writes common.cuh's Strides: stride[8], offset (elements). */
export function putStrides(p: KernelParams, strides: readonly number[], offset: number): KernelParams {
  const words = new Array<number>(MAX_DIMS + 1).fill(0);
  strides.forEach((s, i) => { words[i] = s; });
  words[MAX_DIMS] = offset;
  return p.i64Struct(words);
}
