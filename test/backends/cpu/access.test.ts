/**
 * writeNumbers / withOutput into strided float storage (transposed, flipped, offset views): the
 * values land at the view's storage positions in logical order, other elements untouched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/index.js';
import { withOutput, writeNumbers } from '../../../src/backends/cpu/access.js';
import type { Tensor } from '../../../src/tensor/tensor.js';

/** Storage positions of t's elements in logical order. */
function positions(t: Tensor): number[] {
  const out: number[] = [];
  const idx = new Array<number>(t.ndim).fill(0);
  for (let i = 0; i < t.numel; i++) {
    out.push(t.offset + idx.reduce((s, v, d) => s + v * t.strides[d]!, 0));
    for (let d = t.ndim - 1; d >= 0; d--) {
      if (++idx[d]! < t.shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

for (const dtype of ['float32', 'float64'] as const) {
  test(`writeNumbers fills strided ${dtype} views in logical order`, () => {
    const views: [string, (base: Tensor) => Tensor][] = [
      ['transposed', (b) => T.transpose(b, 0, 1)],
      ['flipped', (b) => T.flip(b, [1])],
      ['narrowed and transposed', (b) => T.transpose(T.narrow(b, 1, 1, 3), 0, 1)],
      ['3-d permuted', (b) => T.permute(T.reshape(b, [2, 3, 4]), [2, 0, 1])],
    ];
    for (const [name, make] of views) {
      const base = T.full([6, 4], -1, { dtype });
      const view = make(base);
      const values = Array.from({ length: view.numel }, (_, i) => i + 0.5);
      writeNumbers(view, values);
      const storage = base.toFloat64Array();
      const expected = new Array<number>(24).fill(-1);
      positions(view).forEach((p, i) => { expected[p] = values[i]!; });
      assert.deepEqual(Array.from(storage), expected, name);
    }
  });
}

test('withOutput into a transposed float32 view writes what the kernel filled', () => {
  const base = T.zeros([3, 5]);
  const view = T.transpose(base, 0, 1);
  withOutput(view, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = i; });
  assert.deepEqual(Array.from(T.contiguous(view).toFloat64Array()), Array.from({ length: 15 }, (_, i) => i));
});
