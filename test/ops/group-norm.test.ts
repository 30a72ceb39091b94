/** groupNorm: a hand-worked example, a reference loop on random inputs, finite differences, errors. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { ShapeError } from '../../src/tensor/shape.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';
import { assertAllClose, randomTensor } from './image-reference.js';

/** Statistics per (sample, group of C/G channels), biased variance, then a per-channel affine. */
function groupNormRef(x: ArrayLike<number>, shape: readonly number[], groups: number, weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null, eps: number): Float64Array {
  const [n, c] = [shape[0]!, shape[1]!];
  const spatial = shape.slice(2).reduce((a, b) => a * b, 1);
  const per = (c / groups) * spatial;
  const out = new Float64Array(x.length);
  for (let s = 0; s < n * groups; s++) {
    let mean = 0;
    for (let i = 0; i < per; i++) mean += x[s * per + i]!;
    mean /= per;
    let variance = 0;
    for (let i = 0; i < per; i++) variance += (x[s * per + i]! - mean) ** 2;
    variance /= per;
    for (let i = 0; i < per; i++) {
      const ch = Math.floor((s * per + i) / spatial) % c;
      const v = (x[s * per + i]! - mean) / Math.sqrt(variance + eps);
      out[s * per + i] = v * (weight ? weight[ch]! : 1) + (bias ? bias[ch]! : 0);
    }
  }
  return out;
}

describe('groupNorm forward', () => {
  test('hand-worked: one group over [1, 2, 3, 4]', () => {
    // mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25
    const s = Math.sqrt(1.25 + 1e-5);
    const y = T.groupNorm(T.tensor([[[1, 2], [3, 4]]], { dtype: 'float64' }), 1,
      T.tensor([2, -1], { dtype: 'float64' }), T.tensor([0.5, 0], { dtype: 'float64' }));
    assertAllClose('groupNorm', y.toFloat64Array(), [(-1.5 / s) * 2 + 0.5, (-0.5 / s) * 2 + 0.5, -0.5 / s, -1.5 / s], y.shape,
      { atol: 1e-12, rtol: 1e-12 });
  });
  test('hand-worked: two groups are normalised separately', () => {
    // Group 0 holds channel 0 = [0, 10] (mean 5, variance 25); group 1 holds channel 1 = [3, 3]
    // (variance 0: eps keeps the deviation 0 finite, giving exactly 0).
    const y = T.groupNorm(T.tensor([[[0, 10], [3, 3]]], { dtype: 'float64' }), 2, null, null, 1e-5);
    const s = Math.sqrt(25 + 1e-5);
    assertAllClose('groupNorm', y.toFloat64Array(), [-5 / s, 5 / s, 0, 0], y.shape, { atol: 1e-12, rtol: 1e-12 });
  });

  const cases: [string, number[], number, boolean][] = [
    ['[2, 6, 3, 4], 3 groups, affine', [2, 6, 3, 4], 3, true],
    ['[3, 8, 5], 4 groups, affine', [3, 8, 5], 4, true],
    ['[2, 4, 3, 3], instance norm (groups = C)', [2, 4, 3, 3], 4, false],
    ['[2, 4, 3, 3], layer norm (1 group)', [2, 4, 3, 3], 1, true],
  ];
  cases.forEach(([name, shape, groups, affine], k) => {
    test(name, () => {
      const x = randomTensor(shape, 900 + k, 'float32');
      const w = affine ? randomTensor([shape[1]!], 910 + k) : null;
      const b = affine ? randomTensor([shape[1]!], 920 + k) : null;
      const y = T.groupNorm(x.t, groups, w?.t, b?.t, 1e-5);
      assert.deepEqual(y.shape, shape);
      assertAllClose(name, y.toFloat64Array(), groupNormRef(x.v, shape, groups, w?.v ?? null, b?.v ?? null, 1e-5), shape, { atol: 1e-5, rtol: 1e-5 });
    });
  });
});

describe('groupNorm gradients (finite differences, float64)', () => {
  test('x, weight and bias, 4-D', () => {
    gradcheck('groupNorm 4-D', (x, w, b) => T.groupNorm(x, 2, w, b), [rand64([2, 4, 3, 2], 1), rand64([4], 2), rand64([4], 3)]);
  });
  test('x, weight and bias, 3-D', () => {
    gradcheck('groupNorm 3-D', (x, w, b) => T.groupNorm(x, 3, w, b, 1e-6), [rand64([2, 6, 5], 4), rand64([6], 5), rand64([6], 6)]);
  });
  test('x without affine, groups = C', () => {
    gradcheck('groupNorm instance', (x) => T.groupNorm(x, 3), [rand64([2, 3, 2, 3], 7, 2, 1)]);
  });
});

describe('groupNorm errors', () => {
  test('groups must divide the channels', () => {
    assert.throws(() => T.groupNorm(T.zeros([2, 6, 4, 4]), 4), (e: unknown) => e instanceof ShapeError && /groupNorm: 6 channels do not split into 4 groups/.test(e.message));
  });
  test('input needs a channel dim', () => {
    assert.throws(() => T.groupNorm(T.zeros([6]), 2), (e: unknown) => e instanceof ShapeError && /groupNorm: input must be \[N, C, \.\.\.\], got \[6\]/.test(e.message));
  });
});
