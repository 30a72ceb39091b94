import { test } from 'node:test';
import assert from 'node:assert/strict';
import { epochPermutation, indexAt, uniformAt } from '../../src/data/shuffle.js';

test('epochPermutation is a permutation, fixed by (seed, epoch)', () => {
  const a = epochPermutation(1000, 7, 3);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
  assert.deepEqual(epochPermutation(1000, 7, 3), a);
  assert.notDeepEqual(epochPermutation(1000, 7, 4), a);
  assert.notDeepEqual(epochPermutation(1000, 8, 3), a);
  assert.deepEqual([...epochPermutation(0, 1, 1)], []);
  assert.deepEqual([...epochPermutation(1, 1, 1)], [0]);
});

test('epochPermutation is close to uniform: where item 0 lands over many epochs', () => {
  const n = 5;
  const epochs = 5000;
  const counts = new Array<number>(n).fill(0);
  for (let e = 0; e < epochs; e++) counts[epochPermutation(n, 11, e).indexOf(0)]! += 1;
  const expected = epochs / n;
  const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 20, `chi² ${chi2.toFixed(1)} for counts ${counts.join(', ')}`); // df 4: p < 0.001 at 18.5
});

test('uniformAt is in [0, 1), deterministic, and differs between streams', () => {
  let sum = 0;
  for (let i = 0; i < 4000; i++) {
    const u = uniformAt(3, 1, i, 0);
    assert.ok(u >= 0 && u < 1);
    sum += u;
  }
  assert.ok(Math.abs(sum / 4000 - 0.5) < 0.02, `mean ${sum / 4000}`);
  assert.equal(uniformAt(3, 1, 5, 2), uniformAt(3, 1, 5, 2));
  assert.notEqual(uniformAt(3, 1, 5, 2), uniformAt(3, 2, 5, 2));
  assert.notEqual(uniformAt(3, 1, 5, 2), uniformAt(2 ** 40 + 3, 1, 5, 2)); // the seed's high word counts
  const k = indexAt(3, 1, 5, 2, 7);
  assert.ok(Number.isInteger(k) && k >= 0 && k < 7);
  assert.throws(() => uniformAt(-1, 1, 0, 0), /seed must be a non-negative safe integer, got -1/);
});
