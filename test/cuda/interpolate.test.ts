/**
 * CUDA interpolate (nearest and bilinear, half-pixel and align-corners, sizes and scale factors)
 * against the CPU backend, forward and backward, every float dtype; nearest also moves integers.
 */
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import type { InterpolateOptions } from '../../src/ops/interpolate.js';
import { FLOATS, checkOp, cudaSkip, randomCpu, randomInts } from './helpers.js';

const skip = cudaSkip;

const OPTIONS: readonly InterpolateOptions[] = [
  { size: [10, 13], mode: 'nearest' },
  { scaleFactor: 2, mode: 'nearest' },
  { size: [3, 4], mode: 'nearest' },
  { scaleFactor: [1.5, 0.7], mode: 'nearest' },
  { size: [10, 13], mode: 'bilinear' },
  { size: [10, 13], mode: 'bilinear', alignCorners: true },
  { size: [3, 2], mode: 'bilinear' },
  { size: [1, 6], mode: 'bilinear', alignCorners: true },
  { scaleFactor: 1.7, mode: 'bilinear' },
  { scaleFactor: 1.7, mode: 'bilinear', recomputeScaleFactor: true },
  { size: [7, 5], mode: 'bilinear' },
];

test('interpolate nearest and bilinear, forward and backward, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      const x = randomCpu([2, 3, 7, 5], dtype);
      for (const o of OPTIONS) checkOp(`interpolate ${JSON.stringify(o)} ${dtype}`, [x], (v) => ops.interpolate(v, o));
      // A strided input (the op makes it contiguous first).
      checkOp(`interpolate transposed input ${dtype}`, [x], (v) => ops.interpolate(ops.transpose(v, 2, 3), { size: [9, 4], mode: 'bilinear' }));
    });
  }
});

test('nearest interpolation of integer tensors matches exactly', { skip }, () => {
  for (const dtype of ['int32', 'int64', 'bool'] as const) {
    const x = randomInts([2, 2, 5, 6], dtype === 'bool' ? 0 : -50, dtype === 'bool' ? 2 : 50, dtype);
    checkOp(`interpolate nearest ${dtype}`, [x], (v) => ops.interpolate(v, { size: [8, 11] }), { rtol: 0 });
  }
});
