import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { record } from '../../src/ops/record.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

const close = (a: number[], b: number[], tol = 1e-9) =>
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= tol, `element ${i}: ${v} vs ${b[i]}`));

describe('autograd engine', () => {
  test('gradients accumulate across backward calls and through shared inputs', () => {
    const x = T.tensor([1, 2, 3], { requiresGrad: true });
    T.sum(T.mul(x, x)).backward();
    close(x.grad!.toArray(), [2, 4, 6]);
    T.sum(T.add(x, x)).backward();
    close(x.grad!.toArray(), [4, 6, 8]);
  });

  test('diamond graph sums both paths', () => {
    const x = T.tensor([0.5, -1], { requiresGrad: true, dtype: 'float64' });
    const y = T.exp(x);
    T.sum(T.add(T.mul(y, 2), T.sin(y))).backward();
    const ey = x.toArray().map(Math.exp);
    close(x.grad!.toArray(), ey.map((e) => e * (2 + Math.cos(e))));
  });

  test('noGrad records nothing and detach cuts the graph', () => {
    const x = T.tensor([1, 2], { requiresGrad: true });
    const y = T.noGrad(() => T.mul(x, 3));
    assert.equal(y.requiresGrad, false);
    const z = T.mul(x, 3).detach();
    assert.equal(z.requiresGrad, false);
    assert.throws(() => T.sum(z).backward(), /does not require grad/);
  });

  test('a second backward without retainGraph fails clearly; with it, works', () => {
    const x = T.tensor([1, 2], { requiresGrad: true });
    const l = T.sum(T.exp(x));
    l.backward(undefined, { retainGraph: true });
    l.backward();
    close(x.grad!.toArray(), [2 * Math.E, 2 * Math.exp(2)], 1e-5);
    assert.throws(() => l.backward(), /second time/);
  });

  test('non-scalar backward needs a gradient of matching shape', () => {
    const x = T.tensor([1, 2], { requiresGrad: true });
    const y = T.mul(x, 2);
    assert.throws(() => y.backward(), /scalar/);
    assert.throws(() => y.backward(T.ones([3])), /does not match/);
    y.backward(T.tensor([1, 10]));
    close(x.grad!.toArray(), [2, 20]);
  });

  test('leaf hooks fire once per backward with the complete gradient and can replace it', () => {
    const x = T.tensor([1, 2], { requiresGrad: true });
    const seen: number[][] = [];
    x.registerHook((g) => { seen.push(g.toArray()); return T.mul(g, 10); });
    T.sum(T.add(T.mul(x, 2), T.mul(x, 3))).backward();
    assert.deepEqual(seen, [[5, 5]]);
    close(x.grad!.toArray(), [50, 50]);
  });

  test('hooks on intermediate tensors see and modify the flowing gradient', () => {
    const x = T.tensor([1, 2], { requiresGrad: true });
    const y = T.mul(x, 2);
    y.registerHook((g) => T.mul(g, 0.5));
    T.sum(T.mul(y, y)).backward();
    close(x.grad!.toArray(), [4, 8]);
  });

  test('grad() returns gradients without touching .grad', () => {
    const x = T.tensor([3], { requiresGrad: true });
    x.grad = T.tensor([100]);
    const [g] = T.grad(T.sum(T.square(x)), [x]);
    close(g!.toArray(), [6]);
    close(x.grad.toArray(), [100]);
  });

  test('gradcheck itself detects a wrong backward', () => {
    const wrongSquare = (x: T.Tensor) => {
      const out = T.noGrad(() => T.square(x));
      record('wrongSquare', [x], [out], ([g]) => [T.mul(g!, 3)]);
      return out;
    };
    assert.throws(() => gradcheck('wrong', wrongSquare, [rand64([3], 1)]), /differs/);
  });

  test('higher-order gradient with createGraph (ops whose backward is composed of ops)', () => {
    const x = T.tensor([1.5], { requiresGrad: true, dtype: 'float64' });
    const y = T.mul(T.mul(x, x), x);
    const [g] = T.grad(y, [x], undefined, { createGraph: true });
    close(g!.toArray(), [3 * 1.5 ** 2]);
    const [g2] = T.grad(T.sum(g!), [x]);
    close(g2!.toArray(), [6 * 1.5]);
  });
});

describe('activation checkpointing', () => {
  test('recomputation replays the same dropout mask', () => {
    const w = T.tensor([[0.5, -1, 2], [1, 1, 1], [0.1, 0.2, 0.3]], { requiresGrad: true });
    const x = T.tensor([[1, 2, 3], [4, 5, 6]]);
    const block = (inp: T.Tensor) => T.dropout(T.matmul(inp, w), 0.5);
    T.manualSeed(7);
    T.sum(T.square(block(x))).backward();
    const direct = w.grad!.toArray();
    w.grad = null;
    T.manualSeed(7);
    T.sum(T.square(T.checkpoint(block, x))).backward();
    close(w.grad!.toArray(), direct, 1e-5);
  });
  test('random draws after a checkpointed block are unaffected by its recomputation', () => {
    const x = T.tensor([1, 2, 3], { requiresGrad: true });
    T.manualSeed(3);
    const y = T.checkpoint((a) => T.dropout(a, 0.5), x);
    const after = T.rand([4]).toArray();
    T.sum(y).backward();
    T.manualSeed(3);
    T.dropout(x, 0.5);
    assert.deepEqual(T.rand([4]).toArray(), after);
  });
});

describe('higher-order gradients', () => {
  test('createGraph through an op with a kernel backward is refused, not silently wrong', () => {
    const x = T.tensor([0.3, -0.2], { requiresGrad: true, dtype: 'float64' });
    assert.throws(() => T.grad(T.sum(T.tanh(x)), [x], undefined, { createGraph: true }), /'tanh' has a kernel backward/);
  });
  test('narrow and cat are twice differentiable', () => {
    const x = T.tensor([1, 2, 3, 4], { requiresGrad: true, dtype: 'float64' });
    const n = T.narrow(x, 0, 1, 2);
    const y = T.sum(T.mul(T.mul(n, n), n));
    const [g] = T.grad(y, [x], undefined, { createGraph: true });
    close(g!.toArray(), [0, 12, 27, 0]);
    const [g2] = T.grad(T.sum(g!), [x]);
    close(g2!.toArray(), [0, 12, 18, 0]);
  });
});
