import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, mul, sum } from '../../src/index.js';
import { clipGradNorm } from '../../src/optim/index.js';

function withGrad(values: number[], grad: number[], dtype: 'float32' | 'float64' = 'float64') {
  const p = tensor(values, { dtype, requiresGrad: true });
  p.grad = tensor(grad, { dtype });
  return p;
}

describe('clipGradNorm', () => {
  test('returns the total 2-norm and scales all gradients to maxNorm when it is larger', () => {
    const a = withGrad([0, 0], [3, 0]);
    const b = withGrad([0, 0, 0], [0, 4, 0]);
    const idle = tensor([1], { requiresGrad: true });
    const total = clipGradNorm([a, b, idle], 1);
    assert.ok(Math.abs(total - 5) < 1e-12);
    const c = 1 / (5 + 1e-6);
    assert.deepEqual(a.grad!.toArray(), [3 * c, 0]);
    assert.deepEqual(b.grad!.toArray(), [0, 4 * c, 0]);
    assert.equal(idle.grad, null);
  });

  test('leaves gradients alone when the norm is within maxNorm', () => {
    const a = withGrad([0, 0], [0.3, -0.4]);
    const before = a.grad;
    assert.ok(Math.abs(clipGradNorm([a], 1) - 0.5) < 1e-12);
    assert.equal(a.grad, before);
  });

  test('supports the 1-norm, p-norms and the infinity norm', () => {
    assert.ok(Math.abs(clipGradNorm([withGrad([0, 0], [1, -2]), withGrad([0], [-3])], 100, 1) - 6) < 1e-12);
    assert.ok(Math.abs(clipGradNorm([withGrad([0, 0], [1, -2]), withGrad([0], [-3])], 100, 3) - 36 ** (1 / 3)) < 1e-12);
    const a = withGrad([0, 0], [1, -7]);
    const total = clipGradNorm([a, withGrad([0], [2])], 3.5, Infinity);
    assert.equal(total, 7);
    assert.ok(Math.abs(a.grad!.toArray()[1]! - -7 * 3.5 / (7 + 1e-6)) < 1e-12);
  });

  test('returns a NaN or infinite norm without touching any gradient', () => {
    for (const bad of [NaN, Infinity]) {
      for (const norm of [2, Infinity]) {
        const a = withGrad([0, 0], [100, 100], 'float32');
        const b = withGrad([0, 0], [bad, 1], 'float32');
        const [ga, gb] = [a.grad, b.grad];
        const total = clipGradNorm([a, b], 1, norm);
        assert.ok(bad !== bad ? Number.isNaN(total) : total === Infinity, `norm ${norm} with ${bad}: got ${total}`);
        assert.equal(a.grad, ga);
        assert.equal(b.grad, gb);
        assert.deepEqual(a.grad!.toArray(), [100, 100]);
      }
    }
  });

  test('a gradient shared by two leaves is scaled once for each', () => {
    // The engine gives both inputs of an add the same gradient tensor.
    const x = tensor([3, 0], { requiresGrad: true });
    const y = tensor([0, 4], { requiresGrad: true });
    sum(mul(tensor([1, 1]), x.add(y))).backward();
    assert.ok(Math.abs(clipGradNorm([x, y], 1) - Math.sqrt(2) * Math.sqrt(2)) < 1e-6);
    const c = 1 / (2 + 1e-6);
    for (const t of [x, y]) t.grad!.toArray().forEach((v) => assert.ok(Math.abs(v - c) < 1e-6, `${v} vs ${c}`));
  });
});
