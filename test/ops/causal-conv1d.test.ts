/** Depthwise causal conv1d: kernel against a zero-padded reference loop, gradients, errors. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

/**
 * nn.Conv1d(groups = dim, padding = K-1) written out: pad K-1 zeros on the left and on the right,
 * cross-correlate, keep the first L outputs (Mamba's conv1d(x)[..., :L]).
 */
function referenceConv(x: Float64Array, w: Float64Array, bias: Float64Array | null, silu: boolean,
  batch: number, dim: number, len: number, taps: number): Float64Array {
  const padded = len + 2 * (taps - 1);
  const out = new Float64Array(batch * dim * len);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < dim; d++) {
      const xp = new Float64Array(padded);
      for (let t = 0; t < len; t++) xp[taps - 1 + t] = x[(b * dim + d) * len + t]!;
      const full = padded - taps + 1;
      for (let t = 0; t < Math.min(len, full); t++) {
        let s = bias ? bias[d]! : 0;
        for (let k = 0; k < taps; k++) s += w[d * taps + k]! * xp[t + k]!;
        out[(b * dim + d) * len + t] = silu ? s / (1 + Math.exp(-s)) : s;
      }
    }
  }
  return out;
}

function assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= atol + rtol * Math.abs(expected[i]!))) {
      assert.fail(`${what}: first mismatch at ${i}: got ${actual[i]}, expected ${expected[i]} (abs error ${err})`);
    }
  }
}

describe('causalConv1d forward', () => {
  const shapes: [number, number, number, number][] = [[2, 3, 7, 4], [1, 2, 5, 1], [2, 2, 3, 5]];
  for (const [batch, dim, len, taps] of shapes) {
    test(`matches the padded reference: x [${batch}, ${dim}, ${len}], K = ${taps}, bias and silu on/off`, () => {
      const x = rand64([batch, dim, len], 1);
      const w = rand64([dim, taps], 2);
      const bias = rand64([dim], 3);
      for (const withBias of [false, true]) {
        for (const activation of [null, 'silu'] as const) {
          const out = T.causalConv1d(x, w, withBias ? bias : null, activation);
          assert.deepEqual(out.shape, [batch, dim, len]);
          const ref = referenceConv(x.toFloat64Array(), w.toFloat64Array(), withBias ? bias.toFloat64Array() : null,
            activation === 'silu', batch, dim, len, taps);
          assertClose(`bias=${withBias} activation=${activation}`, out.toFloat64Array(), ref, 1e-13, 1e-12);
        }
      }
    });
  }

  test('nn.Conv1d depthwise weight [dim, 1, K] equals [dim, K]', () => {
    const x = rand64([2, 3, 6], 4);
    const w = rand64([3, 4], 5);
    const a = T.causalConv1d(x, w, null, 'silu').toFloat64Array();
    const b = T.causalConv1d(x, T.reshape(w, [3, 1, 4]), null, 'silu').toFloat64Array();
    assert.deepEqual(Array.from(b), Array.from(a));
  });

  test('float32 and bfloat16 keep x\'s dtype', () => {
    const x = rand64([1, 4, 8], 6);
    const w = rand64([4, 4], 7);
    const bias = rand64([4], 8);
    const ref = referenceConv(x.toFloat64Array(), w.toFloat64Array(), bias.toFloat64Array(), true, 1, 4, 8, 4);
    const out32 = T.causalConv1d(T.cast(x, 'float32'), T.cast(w, 'float32'), T.cast(bias, 'float32'), 'silu');
    assert.equal(out32.dtype, 'float32');
    assertClose('float32', out32.toFloat64Array(), ref, 1e-5, 1e-5);
    const outBf = T.causalConv1d(T.cast(x, 'bfloat16'), T.cast(w, 'float32'), T.cast(bias, 'float32'), 'silu');
    assert.equal(outBf.dtype, 'bfloat16');
    assertClose('bfloat16', outBf.toFloat64Array(), ref, 5e-2, 3e-2);
  });

  test('a strided (transposed) input', () => {
    const xt = rand64([2, 5, 3], 9); // [batch, L, dim] storage
    const w = rand64([3, 2], 10);
    const out = T.causalConv1d(T.transpose(xt, 1, 2), w);
    const x = T.contiguous(T.transpose(xt, 1, 2)).toFloat64Array();
    assertClose('strided x', out.toFloat64Array(), referenceConv(x, w.toFloat64Array(), null, false, 2, 3, 5, 2), 1e-13, 1e-12);
  });
});

describe('causalConv1d gradients (float64 finite differences)', () => {
  test('x, weight and bias with silu', () => {
    gradcheck('causalConv1d silu', (x, w, b) => T.causalConv1d(x, w, b, 'silu'), [rand64([2, 3, 6], 11), rand64([3, 4], 12), rand64([3], 13)]);
  });
  test('x and [dim, 1, K] weight without bias or activation', () => {
    gradcheck('causalConv1d plain', (x, w) => T.causalConv1d(x, w), [rand64([2, 2, 5], 14), rand64([2, 1, 3], 15)]);
  });
  test('kernel longer than the sequence', () => {
    gradcheck('causalConv1d K > L', (x, w) => T.causalConv1d(x, w), [rand64([1, 2, 3], 16), rand64([2, 5], 17)]);
  });
});

describe('causalConv1d argument errors', () => {
  const x = rand64([2, 3, 5], 20);
  const w = rand64([3, 4], 21);
  const cases: [string, () => unknown, RegExp][] = [
    ['x not 3-d', () => T.causalConv1d(rand64([3, 5], 1), w), /causalConv1d: x must be \[batch, dim, L\], got \[3, 5\]/],
    ['weight channels', () => T.causalConv1d(x, rand64([2, 4], 1)), /causalConv1d: weight must be \[dim, K\] or \[dim, 1, K\] with dim = 3.*got \[2, 4\]/],
    ['weight [dim, 2, K]', () => T.causalConv1d(x, rand64([3, 2, 4], 1)), /causalConv1d: weight must be .*got \[3, 2, 4\]/],
    ['weight K = 0', () => T.causalConv1d(x, T.zeros([3, 0], { dtype: 'float64' })), /causalConv1d: weight must be .*K >= 1, got \[3, 0\]/],
    ['bias size', () => T.causalConv1d(x, w, rand64([4], 1)), /causalConv1d: bias must be \[dim\] = \[3\], got \[4\]/],
    ['integer x', () => T.causalConv1d(T.zeros([2, 3, 5], { dtype: 'int32' }), w), /causalConv1d: x must be a floating tensor, got int32/],
  ];
  for (const [name, call, message] of cases) {
    test(name, () => assert.throws(call, message));
  }
  test('unknown activation', () => {
    const activation: string = 'gelu';
    assert.throws(() => T.causalConv1d(x, w, null, activation as T.CausalConv1dActivation), /causalConv1d: activation must be 'silu' or null, got "gelu"/);
  });
});
