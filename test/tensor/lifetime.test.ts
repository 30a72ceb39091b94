/**
 * Deterministic tensor lifetimes (src/tensor/lifetime.ts): tidy scopes, keep(), held-only
 * gradients, graph-owned saved tensors and the engine's early release, measured with the
 * live-storage statistic. Every measurement is taken inside one synchronous test body, where no
 * FinalizationRegistry callback can run, so the numbers are exact.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { smallDimbaStep } from '../helpers/train-step.js';

const live = (): number => T.memoryStats('cpu').liveBytes;
const bytes = (...ts: (Tensor | null)[]): number => ts.reduce((n, t) => n + (t ? t.numel * 4 : 0), 0);
const f64 = (shape: number[], seed: number, requiresGrad = false): Tensor =>
  T.randn(shape, { dtype: 'float64', generator: new T.Generator(seed), requiresGrad });

describe('T.tidy', () => {
  test('disposes what fn created except what it returns (in arrays, plain objects and Maps)', () => {
    const before = live();
    const inner: Tensor[] = [];
    const out = T.tidy(() => {
      const a = T.ones([100]);
      const b = T.mul(a, 2);
      inner.push(a, b);
      return { c: T.add(b, 1), list: [T.exp(a)], map: new Map([['k', T.neg(b)]]) };
    });
    assert.ok(inner.every((t) => t.isDisposed), 'intermediates are disposed');
    assert.deepEqual(out.c.toArray().slice(0, 2), [3, 3]);
    assert.equal(out.map.get('k')!.toArray()[0], -2);
    assert.equal(live() - before, bytes(out.c, out.list[0]!, out.map.get('k')!));
  });

  test('nested scopes: an inner result survives into the outer scope and dies with it unless returned', () => {
    const before = live();
    let fromInner: Tensor | null = null;
    const kept = T.tidy(() => {
      fromInner = T.tidy(() => T.mul(T.ones([10]), 3));
      assert.equal(fromInner.isDisposed, false);
      return T.tidy(() => T.add(fromInner!, 1));
    });
    assert.equal(fromInner!.isDisposed, true, 'the outer scope disposed the inner result it did not return');
    assert.deepEqual(kept.toArray(), new Array(10).fill(4));
    assert.equal(live() - before, bytes(kept));
  });

  test('keep() takes a tensor out of every scope; dispose() still releases it', () => {
    const before = live();
    let cache: Tensor | null = null;
    T.tidy(() => T.tidy(() => { cache = T.keep(T.full([8], 7)); T.ones([8]); }));
    assert.deepEqual(cache!.toArray(), new Array(8).fill(7));
    assert.equal(live() - before, bytes(cache));
    cache!.dispose();
    assert.equal(live(), before);
  });

  test('tensors created outside every scope are never disposed by one, even when a node saved them', () => {
    const w = f64([4, 3], 1, true);
    const x = f64([2, 4], 2);
    T.tidy(() => T.sum(T.square(T.matmul(x, w))).backward());
    assert.equal(x.isDisposed, false);
    assert.equal(w.isDisposed, false);
    const expected = T.mul(T.matmul(x.T, T.matmul(x, w)), 2).toArray();
    assert.deepEqual(w.grad!.toArray(), expected);
  });

  test('use after dispose throws DisposedTensorError naming the op and how the tensor went', () => {
    let leaked: Tensor | null = null;
    T.tidy(() => { leaked = T.ones([2, 2]); });
    assert.throws(() => T.exp(leaked!), (e: Error) => e instanceof T.DisposedTensorError && /^exp: Tensor\(shape=\[2, 2\].*T\.tidy scope/.test(e.message));
    assert.throws(() => leaked!.toArray(), /DisposedTensorError: toArray: .*disposed/);
    const m = T.ones([2, 2]);
    m.dispose();
    assert.throws(() => T.matmul(m, m), /DisposedTensorError: matmul: .*by dispose\(\)/);
    assert.deepEqual(m.shape, [2, 2], 'metadata stays readable');
    const x = f64([3], 3, true);
    const y = T.exp(x);
    const loss = T.sum(T.mul(y, y));
    y.dispose();
    assert.throws(() => loss.backward(), /DisposedTensorError: backward of 'mul': .*by dispose\(\)/);
  });

  test('tidy refuses an async fn, and an exception disposes the scope and propagates', () => {
    assert.throws(() => T.tidy(async () => T.ones([1])), T.ScopeError);
    const before = live();
    let made: Tensor | null = null;
    assert.throws(() => T.tidy(() => { made = T.ones([5]); throw new Error('boom'); }), /boom/);
    assert.equal(made!.isDisposed, true);
    assert.equal(live(), before);
  });

  test('views share one counted storage; disposing one view leaves the others usable', () => {
    const before = T.memoryStats('cpu');
    const base = T.arange(0, 12, 1, { dtype: 'float32' });
    const v = base.reshape(3, 4);
    const w = v.T;
    assert.equal(T.memoryStats('cpu').liveStorages - before.liveStorages, 1);
    base.dispose();
    v.dispose();
    assert.deepEqual(w.toArray().slice(0, 3), [0, 4, 8]);
    assert.equal(live() - before.liveBytes, 48);
    w.dispose();
    assert.equal(live(), before.liveBytes);
  });
});

describe('lifetimes through autograd', () => {
  test('a graph returned from a scope backpropagates later; backward releases its saved tensors', () => {
    const w = f64([16, 16], 4, true);
    const x = f64([8, 16], 5);
    const model = () => T.sum(T.tanh(T.matmul(T.sigmoid(T.matmul(x, w)), w)));
    model().backward();
    const reference = w.grad!.toArray();
    w.grad = null;

    const before = live();
    const loss = T.tidy(model);
    const held = live() - before;
    assert.ok(held > bytes(loss) * 100, `the saved activations are still live (${held} bytes)`);
    loss.backward();
    assert.deepEqual(w.grad!.toArray(), reference, 'bitwise the gradient of the unscoped run');
    assert.equal(live() - before, (bytes(loss) + bytes(w.grad)) * 2, 'only the loss and the gradient remain (float64)');
  });

  test('backward with retainGraph keeps the saved tensors for a second backward', () => {
    const w = f64([4], 6, true);
    const loss = T.tidy(() => T.sum(T.exp(T.mul(w, w))));
    loss.backward(undefined, { retainGraph: true });
    const once = w.grad!.toArray();
    loss.backward();
    assert.deepEqual(w.grad!.toArray(), once.map((v) => 2 * v));
    assert.throws(() => loss.backward(), /second time/);
  });

  test('a graph not returned from its scope is released with it, with a clear error if reached', () => {
    const w = f64([4], 7, true);
    let escaped: Tensor | null = null;
    const before = live();
    T.tidy(() => { escaped = T.sum(T.exp(w)); });
    assert.equal(live(), before, 'the graph\'s saved tensors went with the scope');
    assert.throws(() => escaped!.backward(), /T\.tidy scope that recorded it ended/);
  });

  test('aliasing: one gradient object in two .grad slots stays until both let go', () => {
    const a = f64([6], 8, true);
    const b = f64([6], 9, true);
    const c = f64([6], 10);
    const before = live();
    T.tidy(() => T.sum(T.mul(T.add(a, b), c)).backward());
    assert.equal(a.grad, b.grad, 'add hands the same gradient object to both inputs');
    assert.equal(live() - before, bytes(a.grad) * 2);
    a.grad = null;
    assert.equal(b.grad!.isDisposed, false);
    b.grad = null;
    assert.equal(live(), before, 'released with its last slot');
  });

  test('aliasing inside one pass: a gradient that is both summed and passed on is not released early', () => {
    const x = f64([5], 10, true);
    const run = () => {
      const y = T.mul(x, 3);
      // add's backward gives g to y's node and to the leaf x; y's node sums into x as well.
      return T.sum(T.mul(T.add(y, x), T.add(x, y)));
    };
    run().backward();
    const reference = x.grad!.toArray();
    x.grad = null;
    T.tidy(() => run().backward());
    assert.deepEqual(x.grad!.toArray(), reference);
  });

  test('micro-batch accumulation in scopes: replacing or clearing .grad releases the old gradient', () => {
    const w = f64([32], 11, true);
    const before = live();
    for (let i = 0; i < 3; i++) T.tidy(() => T.sum(T.mul(T.exp(w), i + 1)).backward());
    assert.equal(live() - before, bytes(w.grad) * 2, 'one gradient, however many backward passes');
    const expected = T.tidy(() => T.mul(T.exp(w), 6).toArray());
    w.grad!.toArray().forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-12));
    T.tidy(() => { w.grad = T.mul(w.grad!, 0.5); });
    assert.equal(live() - before, bytes(w.grad) * 2, 'the replaced gradient was released');
    const g = T.keep(w.grad!);
    w.grad = null;
    assert.equal(g.isDisposed, false, 'a kept gradient survives clearing');
    g.dispose();
    assert.equal(live(), before);
  });

  test('backward outside any scope leaves gradients free (PyTorch-like): clearing .grad does not dispose them', () => {
    const w = f64([4], 12, true);
    T.sum(T.exp(w)).backward();
    const g = w.grad!;
    w.grad = null;
    assert.equal(g.isDisposed, false);
  });

  test('a gradient hook may keep the gradient it receives; intermediate gradients go with backward', () => {
    const x = f64([4], 13, true);
    const seen: Tensor[] = [];
    x.registerHook((g) => { seen.push(g); });
    const y = T.mul(x, 2);
    y.registerHook((g) => { seen.push(g); return T.mul(g, 0.5); });
    T.tidy(() => T.sum(T.square(y)).backward());
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[1]!.toArray(), x.toArray().map((v) => 2 * 2 * v * 0.5 * 2));
  });

  test('createGraph inside a scope: second-order gradients', () => {
    const x = T.tensor([1.5, -0.5], { requiresGrad: true, dtype: 'float64' });
    const g2 = T.tidy(() => {
      const y = T.sum(T.mul(T.mul(x, x), x));
      const [g] = T.grad(y, [x], undefined, { createGraph: true });
      return T.grad(T.sum(g!), [x])[0]!;
    });
    assert.deepEqual(g2.toArray(), [9, -3]);
  });

  test('grad() keeps a held-only .grad it borrows', () => {
    const x = f64([3], 14, true);
    T.tidy(() => T.sum(x).backward());
    const [g] = T.grad(T.sum(T.square(x)), [x]);
    assert.deepEqual(x.grad!.toArray(), [1, 1, 1]);
    assert.deepEqual(g!.toArray(), x.toArray().map((v) => 2 * v));
  });

  test('checkpointed blocks in scopes: same gradients, and their recomputed activations are released', () => {
    const w1 = f64([12, 12], 15, true);
    const w2 = f64([12, 12], 16, true);
    const x = f64([6, 12], 17);
    const block = (h: Tensor) => T.tanh(T.matmul(T.silu(T.matmul(h, w1)), w2));
    T.sum(T.square(block(block(x)))).backward();
    const reference = [w1.grad!.toArray(), w2.grad!.toArray()];
    w1.grad = null;
    w2.grad = null;
    const before = live();
    T.tidy(() => T.sum(T.square(T.checkpoint(block, T.checkpoint(block, x)))).backward());
    assert.deepEqual([w1.grad!.toArray(), w2.grad!.toArray()], reference);
    assert.equal(live() - before, (bytes(w1.grad) + bytes(w2.grad)) * 2, 'only the gradients remain');
  });
});

/**
 * Each differentiable op's forward runs in a scope that returns only the loss; backward after the
 * scope ended needs every tensor the op's backward reads to be declared saved (record's `saved`).
 */
describe('every differentiable op backpropagates after the scope of its forward ended', () => {
  const a = () => f64([2, 3, 4], 21, true);
  const b = () => f64([2, 3, 4], 22, true);
  const pos = () => T.add(T.abs(f64([2, 3, 4], 23)), 0.5).requiresGrad_();
  const cases: [string, () => Tensor[], (...xs: Tensor[]) => Tensor][] = [
    ['unary ops', () => [a()], (x) => T.add(T.add(T.tanh(x), T.sigmoid(x)), T.add(T.silu(x), T.add(T.gelu(x), T.softplus(x))))],
    ['exp/log/sqrt/rsqrt/reciprocal', () => [pos()], (x) => T.add(T.add(T.log(x), T.sqrt(x)), T.add(T.rsqrt(x), T.add(T.reciprocal(x), T.exp(x))))],
    ['sin/cos/square/abs/relu/clamp/pow', () => [a()], (x) => T.add(T.add(T.sin(x), T.cos(x)), T.add(T.square(x), T.add(T.abs(x), T.add(T.relu(x), T.add(T.clamp(x, -0.5, 0.5), T.pow(x, 3))))))],
    ['mul/div/sub (broadcast)', () => [a(), pos()], (x, y) => T.sub(T.mul(x, y), T.div(x, T.narrow(y, 0, 0, 1)))],
    ['pow/maximum/minimum/atan2', () => [pos(), a()], (x, y) => T.add(T.add(T.pow(x, y), T.maximum(x, y)), T.add(T.minimum(x, y), T.atan2(y, x)))],
    ['where', () => [a(), b()], (x, y) => T.where(T.gt(x, y), x, y)],
    ['matmul/linear', () => [a(), f64([4, 5], 24, true), f64([5], 25, true)], (x, w, bias) => T.linear(T.matmul(T.mul(T.matmul(x, T.transpose(x, -1, -2)), 0.1), x), w.T, bias)],
    ['softmax/logSoftmax', () => [a()], (x) => T.add(T.softmax(x, 1), T.logSoftmax(x, -1))],
    ['layerNorm/rmsNorm/groupNorm', () => [a(), f64([4], 26, true), f64([4], 27, true)], (x, w, bias) => T.add(T.add(T.layerNorm(x, [4], w, bias), T.rmsNorm(x, [4], w)), T.groupNorm(x, 1, null, null))],
    ['sum/mean/max/min/prod/variance', () => [a()], (x) => T.add(T.add(T.sum(x, 1), T.mean(x, 1)), T.add(T.max(x, 1), T.add(T.min(x, 1), T.add(T.prod(x, 1), T.variance(x, 1)))))],
    ['indexSelect/embedding/gather', () => [a()], (x) => T.add(T.indexSelect(x, 1, T.tensor([2, 0], { dtype: 'int32' })), T.gather(x, 1, T.tensor([[[0, 1, 2, 0], [2, 2, 1, 0]], [[1, 1, 1, 1], [0, 0, 0, 2]]], { dtype: 'int32' })))],
    ['views/cat/stack/flip/narrow/expand', () => [a(), b()], (x, y) => T.add(T.cat([T.flip(x, [2]), T.narrow(y, 1, 1, 2)], 1).sum(1), T.stack([x, y]).sum(0).sum(1)).add(T.expand(T.unsqueeze(T.sum(x, [1, 2]), 1), [2, 4]))],
    ['cast/clone/contiguous', () => [a()], (x) => T.cast(T.contiguous(T.permute(T.clone(T.cast(x, 'float32')), [2, 0, 1])), 'float64')],
    ['conv2d/interpolate', () => [f64([1, 2, 5, 5], 28, true), f64([3, 2, 3, 3], 29, true), f64([3], 30, true)],
      (x, w, bias) => T.interpolate(T.conv2d(x, w, bias, { padding: 1 }), { size: [7, 7], mode: 'bilinear' })],
    ['causalConv1d', () => [f64([2, 3, 6], 31, true), f64([3, 4], 32, true), f64([3], 33, true)], (x, w, bias) => T.causalConv1d(x, w, bias, 'silu')],
    ['selectiveScan', () => [f64([1, 2, 5], 34, true), T.abs(f64([1, 2, 5], 35)).requiresGrad_(), T.neg(T.abs(f64([2, 3], 36))).requiresGrad_(), f64([1, 3, 5], 37, true), f64([1, 3, 5], 38, true), f64([2], 39, true), f64([1, 2, 5], 40, true)],
      (u, delta, A, B, C, D, z) => T.selectiveScan(u, delta, A, B, C, { D, z, deltaSoftplus: true })],
    ['attention (composed)', () => [f64([1, 2, 3, 4], 41, true), f64([1, 2, 5, 4], 42, true), f64([1, 2, 5, 4], 43, true)],
      (q, k, v) => T.scaledDotProductAttention(q, k, v, { keyPadding: T.tensor([[true, true, true, false, true]]) })],
    ['dropout/checkpoint', () => [a()], (x) => T.checkpoint((h) => T.dropout(T.tanh(h), 0.5), x)],
  ];
  for (const [name, makeInputs, fn] of cases) {
    test(name, () => {
      const lossOf = (xs: Tensor[]) => {
        const out = fn(...xs);
        return T.sum(T.mul(out, T.cast(T.randn(out.shape, { generator: new T.Generator(99) }), out.dtype)));
      };
      const plain = makeInputs();
      T.manualSeed(5);
      lossOf(plain).backward();
      const scoped = makeInputs();
      const before = live();
      T.manualSeed(5);
      const loss = T.tidy(() => lossOf(scoped));
      loss.backward();
      scoped.forEach((x, i) => assert.deepEqual(x.grad!.toArray(), plain[i]!.grad!.toArray(), `input ${i}`));
      const left = live() - before - scoped.reduce((n, x) => n + x.numel * 8, 0) - 8;
      assert.equal(left, 0, `${left} bytes besides the loss and the gradients stayed live`);
    });
  }
});

describe('training without yielding', () => {
  test('a Dimba training step in scopes: gradients bitwise those of the unscoped step', () => {
    const plain = smallDimbaStep();
    const scoped = smallDimbaStep();
    plain.gradients(false);
    scoped.gradients(true);
    const ps = plain.model.namedParameters();
    const ss = scoped.model.namedParameters();
    ps.forEach(([name, p], i) => assert.deepEqual(ss[i]![1].grad!.toArray(), p.grad!.toArray(), name));
    for (let i = 0; i < 2; i++) assert.equal(scoped.step(true), plain.step(false), `loss of step ${i + 1}`);
    ps.forEach(([name, p], i) => assert.deepEqual(ss[i]![1].toArray(), p.toArray(), `${name} after 2 steps`));
  });

  test('backward peaks near the activations its forward saved: consumed gradients go at once', () => {
    const run = smallDimbaStep({ batch: 4, config: { inputSize: 16 } });
    run.step(true);
    const start = live();
    let saved = 0;
    let peak = 0;
    T.tidy(() => {
      const loss = T.tidy(() => run.forwardLoss());
      saved = live() - start;
      T.resetPeakMemoryStats('cpu');
      loss.backward();
      peak = T.memoryStats('cpu').peakLiveBytes - start;
    });
    run.optimizer.zeroGrad();
    assert.equal(live(), start);
    const params = run.model.parameters().reduce((n, p) => n + p.numel * 4, 0);
    assert.ok(peak <= saved * 1.1 + params, `backward peak ${peak} bytes vs ${saved} saved + ${params} of parameter gradients`);
  });

  test('N scoped steps hold constant live bytes after step 1 (without scopes they grow every step)', () => {
    const run = smallDimbaStep();
    run.gradients(true); // fills the model's own caches (its positional embedding)
    run.optimizer.zeroGrad();
    const after: number[] = [];
    T.resetPeakMemoryStats('cpu');
    const start = live();
    for (let i = 0; i < 5; i++) {
      run.step(true);
      after.push(live());
    }
    const peak = T.memoryStats('cpu').peakLiveBytes - start;
    assert.deepEqual(after, new Array(5).fill(after[0]), `live bytes after each step: ${after.join(', ')}`);
    // Step 1 adds only AdamW's two moments per parameter.
    const params = run.model.parameters().reduce((n, p) => n + p.numel * 4, 0);
    assert.equal(after[0]! - start, 2 * params);

    const plain = smallDimbaStep();
    const grown: number[] = [];
    T.resetPeakMemoryStats('cpu');
    const plainStart = live();
    for (let i = 0; i < 3; i++) {
      plain.step(false);
      grown.push(live());
    }
    const plainPeak = T.memoryStats('cpu').peakLiveBytes - plainStart;
    assert.ok(grown[2]! > grown[1]! && grown[1]! > grown[0]!, `unscoped live bytes grow: ${grown.join(', ')}`);
    console.log(`# Dimba-XS (8x8, batch 2) CPU training step, peak live tensor bytes above the model: ${(plainPeak / 2 ** 20).toFixed(2)} MiB unscoped (first step), ${(peak / 2 ** 20).toFixed(2)} MiB scoped; unscoped steps leave ${((grown[2]! - grown[1]!) / 2 ** 20).toFixed(2)} MiB each`);
  });
});
