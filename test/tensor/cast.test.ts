/** dtype conversion through the engine's cast op: rounding, specials, integer and bool rules. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';

const roundTrip = (values: number[], dtype: T.DType) => T.cast(T.cast(T.tensor(values, { dtype: 'float64' }), dtype), 'float64').toArray();

describe('cast', () => {
  test('bfloat16 rounds to nearest even and keeps specials', () => {
    // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1).
    const tie = 1 + 2 ** -8;
    const aboveTie = 1 + 2 ** -8 + 2 ** -20;
    const out = roundTrip([tie, aboveTie, 1 + 3 * 2 ** -8, -0, Infinity, -Infinity, NaN], 'bfloat16');
    assert.deepEqual(out.slice(0, 3), [1, 1 + 2 ** -7, 1 + 2 ** -6]);
    assert.ok(Object.is(out[3], -0));
    assert.deepEqual(out.slice(4, 6), [Infinity, -Infinity]);
    assert.ok(Number.isNaN(out[6]));
  });

  test('float16 overflow, subnormals and ties', () => {
    const out = roundTrip([65504, 65519, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11], 'float16');
    assert.deepEqual(out, [65504, 65504, Infinity, 2 ** -24, 0, 2 ** -23, 1]);
  });

  test('float32 rounding of float64 values', () => {
    assert.deepEqual(roundTrip([0.1], 'float32'), [Math.fround(0.1)]);
    assert.deepEqual(roundTrip([1e-45], 'float32'), [Math.fround(1e-45)]);
  });

  test('integers truncate toward zero; bool is value != 0', () => {
    assert.deepEqual(roundTrip([2.7, -2.7, 0], 'int32'), [2, -2, 0]);
    assert.deepEqual(roundTrip([2 ** 40 + 7, -3.9], 'int64'), [2 ** 40 + 7, -3]);
    assert.deepEqual(roundTrip([0, -0.5, NaN, 3], 'bool'), [0, 1, 1, 1]);
  });

  test('int64 storage is exact beyond 2^53 when copied without conversion', () => {
    const big = 2n ** 60n + 1n;
    const t = T.tensor(new BigInt64Array([big, -big]));
    const copy = T.contiguous(T.flip(t, [0])).toHost();
    assert.ok(copy instanceof BigInt64Array);
    assert.deepEqual(Array.from(copy), [-big, big]);
  });

  test('strided half tensors cast correctly', () => {
    const x = T.cast(T.arange(6, undefined, 1, { dtype: 'float32' }).reshape(2, 3), 'bfloat16');
    assert.deepEqual(T.cast(x.T, 'float32').toArray(), [0, 3, 1, 4, 2, 5]);
    assert.deepEqual(T.add(x.T, 0.5).toArray(), [0.5, 3.5, 1.5, 4.5, 2.5, 5.5]);
  });
});
