/** interpolate: hand-worked values, a reference loop on random inputs, finite differences, errors. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { ShapeError } from '../../src/tensor/shape.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';
import { assertAllClose, interpolateRef, randomTensor, type InterpRefOptions } from './image-reference.js';

const close = (label: string, t: T.Tensor, expected: number[]) =>
  assertAllClose(label, t.toFloat64Array(), expected, t.shape, { atol: 1e-6, rtol: 1e-6 });

const ramp = (n: number) => T.reshape(T.arange(0, n, 1, { dtype: 'float32' }), [1, 1, 1, n]);

describe('interpolate: hand-worked values', () => {
  const x = T.tensor([[[[1, 2], [3, 4]]]]);

  test('bilinear 2x up, half-pixel centres (edges clamp)', () => {
    // Output column d samples input coordinate (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (last pixel).
    close('bilinear', T.interpolate(x, { size: [4, 4], mode: 'bilinear' }), [
      1, 1.25, 1.75, 2,
      1.5, 1.75, 2.25, 2.5,
      2.5, 2.75, 3.25, 3.5,
      3, 3.25, 3.75, 4,
    ]);
  });
  test('bilinear with aligned corners', () => {
    close('alignCorners', T.interpolate(x, { size: [3, 3], mode: 'bilinear', alignCorners: true }), [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4]);
  });
  test('nearest picks floor(dst * in / out)', () => {
    close('nearest up', T.interpolate(T.tensor([[[[1, 2, 3]]]]), { size: [2, 5] }), [1, 1, 2, 2, 3, 1, 1, 2, 2, 3]);
    close('nearest down', T.interpolate(ramp(5), { size: [1, 3], mode: 'nearest' }), [0, 1, 3]);
  });
  test('nearest computes the scaled index in float32, as PyTorch does', () => {
    // 11 * 26 / 22 = 13 exactly, but float32(26/22) * 11 rounds to just below 13.
    const out = T.interpolate(ramp(26), { size: [1, 22] }).toArray();
    assert.equal(out[11], 12);
    assert.equal(out[12], 14);
  });
  test('a scale factor maps coordinates by 1 / scale unless recomputed', () => {
    // 5 * 1.5 -> 7 columns. With the scale, column d samples (d + 0.5) / 1.5 - 0.5; recomputed, (d + 0.5) * 5 / 7 - 0.5.
    close('scale', T.interpolate(ramp(5), { scaleFactor: [1, 1.5], mode: 'bilinear' }), [0, 0.5, 7 / 6, 11 / 6, 2.5, 19 / 6, 23 / 6]);
    close('recomputed', T.interpolate(ramp(5), { scaleFactor: [1, 1.5], mode: 'bilinear', recomputeScaleFactor: true }),
      [0, 1.5 * 5 / 7 - 0.5, 2.5 * 5 / 7 - 0.5, 2, 4.5 * 5 / 7 - 0.5, 5.5 * 5 / 7 - 0.5, 4]);
  });
});

interface Case {
  name: string;
  x: number[];
  options: T.InterpolateOptions;
}

const CASES: Case[] = [
  { name: 'nearest up, non-integer ratio', x: [2, 3, 5, 4], options: { size: [7, 9] } },
  { name: 'nearest down', x: [1, 2, 9, 8], options: { size: [4, 3], mode: 'nearest' } },
  { name: 'nearest exact 2x', x: [1, 2, 3, 4], options: { scaleFactor: 2 } },
  { name: 'nearest scale factor [1.7, 0.6]', x: [2, 1, 6, 10], options: { scaleFactor: [1.7, 0.6] } },
  { name: 'bilinear up', x: [2, 3, 5, 4], options: { size: [8, 11], mode: 'bilinear' } },
  { name: 'bilinear down', x: [1, 2, 11, 9], options: { size: [4, 5], mode: 'bilinear' } },
  { name: 'bilinear align corners up', x: [2, 2, 4, 5], options: { size: [7, 9], mode: 'bilinear', alignCorners: true } },
  { name: 'bilinear align corners down to one pixel', x: [1, 2, 5, 6], options: { size: [1, 3], mode: 'bilinear', alignCorners: true } },
  { name: 'bilinear scale factor 1.5', x: [1, 3, 5, 7], options: { scaleFactor: 1.5, mode: 'bilinear' } },
  { name: 'bilinear scale factor 0.6', x: [1, 1, 9, 7], options: { scaleFactor: [0.6, 0.75], mode: 'bilinear' } },
  { name: 'bilinear same size is a copy', x: [1, 2, 4, 4], options: { scaleFactor: [1.2, 1], mode: 'bilinear' } },
  { name: 'positional-embedding grid 16x16 -> 24x24', x: [1, 8, 16, 16], options: { size: [24, 24], mode: 'bilinear' } },
];

function refOptions(c: Case): InterpRefOptions {
  const o = c.options;
  const pair = (v: number | readonly [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);
  const scales = o.scaleFactor !== undefined ? pair(o.scaleFactor) : null;
  const size = o.size !== undefined ? pair(o.size) : [Math.floor(c.x[2]! * scales![0]), Math.floor(c.x[3]! * scales![1])] as [number, number];
  return { mode: o.mode ?? 'nearest', size, scales: o.recomputeScaleFactor ? null : scales, alignCorners: o.alignCorners ?? false };
}

describe('interpolate matches the reference loop', () => {
  CASES.forEach((c, k) => {
    test(c.name, () => {
      const x = randomTensor(c.x, 500 + k, 'float32', true);
      const o = refOptions(c);
      const y = T.interpolate(x.t, c.options);
      const outShape = [c.x[0]!, c.x[1]!, ...o.size];
      assert.deepEqual(y.shape, outShape);
      const gy = randomTensor(outShape, 600 + k);
      const ref = interpolateRef(x.v, c.x, gy.v, o);
      assertAllClose(`${c.name}: forward`, y.toFloat64Array(), ref.out, outShape, { atol: 1e-6, rtol: 1e-6 });
      y.backward(gy.t);
      assertAllClose(`${c.name}: grad x`, x.t.grad!.toFloat64Array(), ref.gx, c.x, { atol: 1e-5, rtol: 1e-5 });
    });
  });

  test('strided input', () => {
    const x = randomTensor([2, 5, 4, 3], 700);
    const view = T.permute(x.t, [0, 3, 2, 1]);
    const options: T.InterpolateOptions = { size: [6, 7], mode: 'bilinear' };
    assert.deepEqual(T.interpolate(view, options).toArray(), T.interpolate(T.contiguous(view), options).toArray());
  });

  test('nearest keeps integer dtypes', () => {
    const x = T.tensor([[[[1, 2], [3, 4]]]], { dtype: 'int32' });
    const y = T.interpolate(x, { scaleFactor: 2 });
    assert.equal(y.dtype, 'int32');
    assert.deepEqual(y.toArray(), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });

  test('nearest passes infinities through without NaN', () => {
    const y = T.interpolate(T.tensor([[[[Infinity, -1], [2, 3]]]]), { size: [3, 3] });
    assert.deepEqual(y.toArray(), [Infinity, Infinity, -1, Infinity, Infinity, -1, 2, 2, 3]);
  });
});

describe('interpolate gradients (finite differences, float64)', () => {
  const checks: [string, number[], T.InterpolateOptions][] = [
    ['nearest up', [1, 2, 3, 4], { size: [5, 7] }],
    ['nearest down', [2, 1, 7, 6], { size: [3, 4] }],
    ['bilinear up', [2, 2, 3, 4], { size: [5, 7], mode: 'bilinear' }],
    ['bilinear down', [1, 2, 7, 6], { size: [3, 4], mode: 'bilinear' }],
    ['bilinear align corners', [1, 2, 4, 3], { size: [6, 5], mode: 'bilinear', alignCorners: true }],
    ['bilinear scale factor', [1, 1, 5, 4], { scaleFactor: [1.5, 0.75], mode: 'bilinear' }],
  ];
  checks.forEach(([name, shape, options], k) => {
    test(name, () => gradcheck(`interpolate ${name}`, (x) => T.interpolate(x, options), [rand64(shape, 800 + k)]));
  });
});

describe('interpolate argument errors', () => {
  const x = T.zeros([1, 2, 4, 4]);
  test('size and scale factor', () => {
    assert.throws(() => T.interpolate(x, {}), /interpolate: give exactly one of size and scaleFactor/);
    assert.throws(() => T.interpolate(x, { size: 8, scaleFactor: 2 }), /give exactly one of size and scaleFactor/);
    assert.throws(() => T.interpolate(x, { size: [0, 3] }), /size must be positive integers, got \[0, 3\]/);
    assert.throws(() => T.interpolate(x, { scaleFactor: -2 }), /scaleFactor must be positive, got \[-2, -2\]/);
    assert.throws(() => T.interpolate(x, { scaleFactor: 0.2 }), (e: unknown) => e instanceof ShapeError && /into an empty 0x0 image/.test(e.message));
  });
  test('mode, alignCorners, rank and dtype', () => {
    assert.throws(() => T.interpolate(x, { size: 8, alignCorners: true }), /alignCorners can only be set with mode bilinear/);
    assert.throws(() => T.interpolate(T.zeros([2, 4, 4]), { size: 8 }), (e: unknown) => e instanceof ShapeError && /input must be \[N, C, H, W\], got \[2, 4, 4\]/.test(e.message));
    assert.throws(() => T.interpolate(T.zeros([1, 1, 2, 2], { dtype: 'int32' }), { size: 4, mode: 'bilinear' }), /bilinear needs a floating input, got int32/);
  });
});
