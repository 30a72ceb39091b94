/**
 * linearGelu and mlpGelu: finite-difference gradients, equality with the composed ops they
 * replace (linear, gelu tanh, linear), the FusedKernels plumbing (a backend's linearGelu /
 * matmulGeluBackward taking or declining a call, DIMBA_FUSED_GELU=0), shape errors, and the
 * model's Mlp running as one mlpGelu node.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import type { FusedKernels, MatmulArgs } from '../../src/backends/backend.js';
import { DEFAULT_GELU_BACKWARD, composedMlpGelu, geluBackwardMode } from '../../src/ops/linear-gelu.js';
import { Mlp, geluTanh } from '../../src/models/dimba/embedders.js';
import { Generator } from '../../src/random/generator.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';
import { leaf, maxRelError } from '../helpers/leaves.js';

describe('gradients (float64 finite differences)', () => {
  test('linearGelu, x [2, 3, 4], weight [5, 4]', () => {
    gradcheck('linearGelu', T.linearGelu, [rand64([2, 3, 4], 1), rand64([5, 4], 2, 0.7), rand64([5], 3, 0.5)]);
  });
  test('linearGelu on a transposed input view', () => {
    gradcheck('linearGelu view', (x, w, b) => T.linearGelu(T.transpose(x, 0, 1), w, b),
      [rand64([4, 3], 4), rand64([6, 4], 5), rand64([6], 6)]);
  });
  test('mlpGelu, x [2, 3, 4], w1 [6, 4], w2 [5, 6]', () => {
    gradcheck('mlpGelu', T.mlpGelu, [rand64([2, 3, 4], 7), rand64([6, 4], 8, 0.8), rand64([6], 9, 0.5),
      rand64([5, 6], 10, 0.6), rand64([5], 11, 0.5)]);
  });
  test('mlpGelu with only some inputs requiring grad', () => {
    const w1 = rand64([6, 4], 13).detach();
    const b2 = rand64([3], 14).detach();
    gradcheck('mlpGelu partial', (x, b1, w2) => T.mlpGelu(x, w1, b1, w2, b2),
      [rand64([5, 4], 12), rand64([6], 15), rand64([3, 6], 16)]);
  });
});

/** Runs both on fresh leaves; outputs must agree to `outTol`, gradients of sum(out * w) to `gradTol`. */
function compare(name: string, shapes: number[][], dtype: DType, outTol: number, gradTol: number,
  f: (...xs: Tensor[]) => Tensor, g: (...xs: Tensor[]) => Tensor): void {
  const make = () => shapes.map((s, i) => leaf(s, 30 + i, dtype, i === 0 ? 1.5 : 0.5));
  const a = make();
  const b = make();
  const ya = f(...a);
  const yb = g(...b);
  assert.equal(ya.dtype, yb.dtype);
  assert.deepEqual(ya.shape, yb.shape);
  const out = maxRelError(ya, yb);
  assert.ok(out <= outTol, `${name}: output differs by ${out} (tolerance ${outTol})`);
  const w = T.cast(rand64([...ya.shape], 77).detach(), dtype);
  T.sum(T.mul(ya, w)).backward();
  T.sum(T.mul(yb, w)).backward();
  a.forEach((t, i) => {
    const err = maxRelError(t.grad!, b[i]!.grad!);
    assert.ok(err <= gradTol, `${name}: gradient of input ${i} differs by ${err} (tolerance ${gradTol})`);
  });
}

describe('equal to the composed ops on the CPU', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    // The CPU composes the same kernels in the same order, so outputs are bit-identical; the
    // weight gradients sum in another order (g^T act rather than act^T g), so they get a tolerance.
    const gradTol = dtype === 'float32' ? 1e-5 : 1e-2;
    test(`linearGelu ${dtype}`, () => {
      compare(`linearGelu ${dtype}`, [[3, 7, 33], [20, 33], [20]], dtype, 0, gradTol,
        T.linearGelu, (x, w, b) => T.gelu(T.linear(x, w, b), 'tanh'));
    });
    test(`mlpGelu ${dtype}`, () => {
      compare(`mlpGelu ${dtype}`, [[3, 7, 33], [40, 33], [40], [17, 40], [17]], dtype, 0, gradTol,
        T.mlpGelu, composedMlpGelu);
    });
  }
  test('mixed dtypes and a missing bias compose the ordinary ops (same values)', () => {
    const x = leaf([4, 8], 40, 'float32');
    const w1 = leaf([6, 8], 41, 'bfloat16');
    const b1 = leaf([6], 42, 'float32');
    const w2 = leaf([3, 6], 43, 'float32');
    const y = T.mlpGelu(x, w1, b1, w2, null);
    assert.notEqual(y.gradFn?.name, 'mlpGelu');
    assert.equal(maxRelError(y, composedMlpGelu(x, w1, b1, w2, null)), 0);
    assert.notEqual(T.linearGelu(x, T.cast(w1, 'float32'), null).gradFn?.name, 'linearGelu');
  });
  test('no grad: no node, same values', () => {
    const x = leaf([5, 8], 44, 'float32');
    const w = leaf([6, 8], 45, 'float32');
    const b = leaf([6], 46, 'float32');
    const y = T.noGrad(() => T.linearGelu(x, w, b));
    assert.equal(y.requiresGrad, false);
    assert.equal(maxRelError(y, T.gelu(T.linear(x, w, b), 'tanh')), 0);
  });
});

describe('shape and device errors name the values', () => {
  const x = T.zeros([2, 4]);
  test('weight width', () => {
    assert.throws(() => T.linearGelu(x, T.zeros([3, 5]), T.zeros([3])), /input \[2, 4\] does not match weight \[3, 5\]/);
  });
  test('w2 must follow w1', () => {
    assert.throws(() => T.mlpGelu(x, T.zeros([3, 4]), T.zeros([3]), T.zeros([2, 5]), T.zeros([2])), /w2 \[2, 5\] must be \[out, 3\]/);
  });
  test('weight must be 2-D', () => {
    assert.throws(() => T.linearGelu(x, T.zeros([4]), null), /weight must be 2-D/);
  });
});

/** A CPU stand-in for a backend's epilogue kernels, built from the required kernels; counts calls. */
function fakeEpilogues(cpu: Tensor, accept: boolean) {
  const k = cpu.backend.kernels;
  const calls = { forward: 0, forwardPreact: 0, backward: 0, backwardBias: 0 };
  const fused: Pick<FusedKernels, 'linearGelu' | 'matmulGeluBackward'> = {
    linearGelu(a: Tensor, b: Tensor, bias: Tensor, out: Tensor, preact: Tensor | null, args: MatmulArgs) {
      if (!accept) return false;
      calls.forward++;
      if (preact) calls.forwardPreact++;
      const h = preact ?? Tensor.empty(out.shape, out.dtype, out.backend);
      k.matmul(a, b, h, { ...args, bias });
      k.unary('gelu_tanh', h, out, {});
      return true;
    },
    matmulGeluBackward(a: Tensor, b: Tensor, preact: Tensor, out: Tensor, gbias: Tensor | null, args: MatmulArgs) {
      if (!accept) return false;
      calls.backward++;
      const prod = Tensor.empty(out.shape, out.dtype, out.backend);
      k.matmul(a, b, prod, args);
      k.unaryBackward('gelu_tanh', preact, prod, out, {});
      if (gbias) {
        calls.backwardBias++;
        k.copy(T.sum(out, 0), gbias);
      }
      return true;
    },
  };
  return { fused, calls };
}

function withFused<R>(cpu: Tensor, kernels: Partial<FusedKernels>, fn: () => R): R {
  const target = cpu.backend.fused as FusedKernels;
  const saved = { linearGelu: target.linearGelu, matmulGeluBackward: target.matmulGeluBackward };
  Object.assign(target, kernels);
  try {
    return fn();
  } finally {
    Object.assign(target, saved);
  }
}

describe('the fused kernels when a backend has them', () => {
  const shapes = [[3, 5, 12], [16, 12], [16], [7, 16], [7]];
  const run = (kernels: Partial<FusedKernels>) => {
    const xs = shapes.map((s, i) => leaf(s, 60 + i, 'float32', 0.8));
    const y = withFused(xs[0]!, kernels, () => {
      const out = T.mlpGelu(xs[0]!, xs[1]!, xs[2]!, xs[3]!, xs[4]!);
      T.sum(T.mul(out, T.cast(rand64([...out.shape], 5).detach(), 'float32'))).backward();
      return out;
    });
    return { y, grads: xs.map((t) => t.grad!) };
  };
  const reference = run({});

  test('taken: forward keeps the pre-activation, backward fuses dgelu (and the bias gradient under bgrad); same results', () => {
    const saved = process.env.DIMBA_FUSED_GELU_BACKWARD;
    try {
      for (const [mode, backwardBias] of [[undefined, 0], ['bgrad', 1], ['dgelu', 0]] as const) {
        if (mode === undefined) delete process.env.DIMBA_FUSED_GELU_BACKWARD;
        else process.env.DIMBA_FUSED_GELU_BACKWARD = mode;
        const { fused, calls } = fakeEpilogues(T.zeros([1]), true);
        const got = run(fused);
        assert.deepEqual(calls, { forward: 1, forwardPreact: 1, backward: 1, backwardBias }, `mode ${mode ?? 'default'}`);
        assert.equal(maxRelError(got.y, reference.y), 0);
        got.grads.forEach((g, i) => assert.ok(maxRelError(g, reference.grads[i]!) <= 1e-6, `gradient ${i}`));
      }
    } finally {
      if (saved === undefined) delete process.env.DIMBA_FUSED_GELU_BACKWARD;
      else process.env.DIMBA_FUSED_GELU_BACKWARD = saved;
    }
  });

  test('declined: the op composes (same results)', () => {
    const { fused, calls } = fakeEpilogues(T.zeros([1]), false);
    const got = run(fused);
    assert.deepEqual(calls, { forward: 0, forwardPreact: 0, backward: 0, backwardBias: 0 });
    assert.equal(maxRelError(got.y, reference.y), 0);
    got.grads.forEach((g, i) => assert.ok(maxRelError(g, reference.grads[i]!) <= 1e-6, `gradient ${i}`));
  });

  test('without grad the forward asks for no pre-activation', () => {
    const { fused, calls } = fakeEpilogues(T.zeros([1]), true);
    const xs = shapes.map((s, i) => leaf(s, 60 + i, 'float32', 0.8));
    const y = withFused(xs[0]!, fused, () => T.noGrad(() => T.mlpGelu(xs[0]!, xs[1]!, xs[2]!, xs[3]!, xs[4]!)));
    assert.deepEqual(calls, { forward: 1, forwardPreact: 0, backward: 0, backwardBias: 0 });
    assert.equal(maxRelError(y, reference.y), 0);
  });

  test('DIMBA_FUSED_GELU=0 leaves the kernels unused', () => {
    const { fused, calls } = fakeEpilogues(T.zeros([1]), true);
    const before = process.env.DIMBA_FUSED_GELU;
    process.env.DIMBA_FUSED_GELU = '0';
    try {
      run(fused);
    } finally {
      if (before === undefined) delete process.env.DIMBA_FUSED_GELU;
      else process.env.DIMBA_FUSED_GELU = before;
    }
    assert.deepEqual(calls, { forward: 0, forwardPreact: 0, backward: 0, backwardBias: 0 });
  });
});

test('the model Mlp with GELU-tanh is one mlpGelu node and equals the composed layers', () => {
  const mlp = new Mlp(8, 32, 8, geluTanh, new Generator(3));
  const x = T.cast(rand64([2, 5, 8], 70).detach(), 'float32').requiresGrad_(true);
  const y = mlp.forward(x);
  assert.equal(y.gradFn?.name, 'reshape', 'the output is the node output reshaped back');
  const ref = mlp.fc2.forward(T.gelu(mlp.fc1.forward(x), 'tanh'));
  assert.equal(maxRelError(y, ref), 0);
  const names: string[] = [];
  const walk = (t: Tensor) => {
    const node = t.gradFn;
    if (!node) return;
    names.push(node.name);
    for (const i of node.inputs) if (i) walk(i);
  };
  walk(y);
  assert.ok(names.includes('mlpGelu'), `graph nodes: ${names.join(', ')}`);
  assert.ok(!names.includes('gelu_tanh') && !names.includes('linear'), `graph nodes: ${names.join(', ')}`);
});

test('DIMBA_FUSED_GELU_BACKWARD picks the backward epilogue or fails naming the value', () => {
  assert.equal(geluBackwardMode({}), DEFAULT_GELU_BACKWARD);
  assert.equal(geluBackwardMode({ DIMBA_FUSED_GELU_BACKWARD: 'dgelu' }), 'dgelu');
  assert.equal(geluBackwardMode({ DIMBA_FUSED_GELU_BACKWARD: ' off ' }), 'off');
  assert.throws(() => geluBackwardMode({ DIMBA_FUSED_GELU_BACKWARD: 'fast' }), /DIMBA_FUSED_GELU_BACKWARD="fast": expected bgrad, dgelu or off/);
});
