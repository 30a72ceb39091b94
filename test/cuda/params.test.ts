/** Kernel parameter buffers and dim merging for strided kernels (runs everywhere: koffi memory, no GPU). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KernelParams, KernelParamError } from '../../src/backends/cuda/params.js';
import { LayoutError, MAX_DIMS, mergeDims, putDims, putStrides } from '../../src/backends/cuda/layout.js';

function le64(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigInt64(0, true);
}

test('each parameter is written in place, aligned, with its pointer slot set', () => {
  const p = new KernelParams(256, 16);
  p.begin().i32(-7).ptr(0x7f12_3456_7890).f32(1.5).f64(-2.25).i64(-(2 ** 40) - 3).u64(2n ** 63n + 5n).u32(0xffffffff).bits(2, 0xbeefn);
  assert.equal(p.length, 8);
  assert.equal(new DataView(p.readBack(0, 4).buffer).getInt32(0, true), -7);
  assert.equal(le64(p.readBack(1, 8)), 0x7f12_3456_7890n);
  assert.equal(new DataView(p.readBack(2, 4).buffer).getFloat32(0, true), 1.5);
  assert.equal(new DataView(p.readBack(3, 8).buffer).getFloat64(0, true), -2.25);
  assert.equal(le64(p.readBack(4, 8)), -(2n ** 40n) - 3n);
  assert.equal(new DataView(p.readBack(5, 8).buffer).getBigUint64(0, true), 2n ** 63n + 5n);
  assert.equal(new DataView(p.readBack(6, 4).buffer).getUint32(0, true), 0xffffffff);
  assert.equal(new DataView(p.readBack(7, 2).buffer).getUint16(0, true), 0xbeef);
  // begin() starts over in the same memory.
  p.begin().i64(42);
  assert.equal(p.length, 1);
  assert.equal(le64(p.readBack(0, 8)), 42n);
  assert.throws(() => p.readBack(1, 8), KernelParamError);
});

test('running out of parameter space is an error, not a silent overwrite', () => {
  const p = new KernelParams(16, 8);
  p.begin().i64(1).i64(2);
  assert.throws(() => p.i32(3), /exceed 16 bytes/);
});

test('Dims and Strides structs are nine int64 words', () => {
  const p = new KernelParams();
  putDims(p.begin(), [3, 5]);
  putStrides(p, [-5, 1], 14);
  const dims = new BigInt64Array(p.readBack(0, 72).buffer);
  assert.deepEqual(Array.from(dims), [3n, 5n, 0n, 0n, 0n, 0n, 0n, 0n, 2n]);
  const strides = new BigInt64Array(p.readBack(1, 72).buffer);
  assert.deepEqual(Array.from(strides), [-5n, 1n, 0n, 0n, 0n, 0n, 0n, 0n, 14n]);
});

test('mergeDims folds dims every operand walks contiguously and drops size-1 dims', () => {
  // Contiguous [2, 3, 4] and a broadcast scalar: one dim.
  assert.deepEqual(mergeDims([2, 3, 4], [[12, 4, 1], [0, 0, 0]]), { sizes: [24], strides: [[1], [0]] });
  // A transposed operand keeps its dims apart.
  assert.deepEqual(mergeDims([3, 4], [[1, 3], [4, 1]]), { sizes: [3, 4], strides: [[1, 3], [4, 1]] });
  // Broadcast along the middle dim: [2, 1->5, 4] merges nothing across the stride-0 dim.
  assert.deepEqual(mergeDims([2, 5, 4], [[4, 0, 1]]), { sizes: [2, 5, 4], strides: [[4, 0, 1]] });
  // Size-1 dims vanish; a 0-d tensor becomes one element.
  assert.deepEqual(mergeDims([1, 6, 1], [[99, 1, 7]]), { sizes: [6], strides: [[1]] });
  assert.deepEqual(mergeDims([], [[], []]), { sizes: [1], strides: [[0], [0]] });
  // Negative strides (flip) merge when consistent.
  assert.deepEqual(mergeDims([2, 3], [[-3, -1]]), { sizes: [6], strides: [[-1]] });
});

test('a layout that stays above the kernels\' dim limit is refused with the op named', () => {
  const shape = Array.from({ length: MAX_DIMS + 1 }, () => 2);
  const strides = shape.map((_, i) => 2 ** (2 * (shape.length - i)));
  assert.throws(() => mergeDims(shape, [strides], 'copy'), (e: unknown) => e instanceof LayoutError && /copy: a 9-d strided layout still has 9 dims/.test(e.message));
});
