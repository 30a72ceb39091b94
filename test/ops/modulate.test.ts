/**
 * layerNormModulate and gatedResidual: finite-difference gradients (the CPU backend's fused
 * kernels run them), the fused kernels against the composed ops they replace (float32, bfloat16),
 * shape rules, the composed fallback (mixed dtypes, the meta backend), and drop-path in the
 * Transformer block (the gate carries it: same draw, same result as dropping gate * branch).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { withDefaultDevice } from '../../src/backends/registry.js';
import { composedGatedResidual, composedNormModulate, type ModulateNorm } from '../../src/ops/modulate.js';
import { TransformerBlock } from '../../src/models/dimba/transformer-block.js';
import { dropPath } from '../../src/models/dimba/drop-path.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';
import { leaf, maxRelError } from '../helpers/leaves.js';

const KINDS: readonly ModulateNorm[] = ['layer', 'rms'];

/** [x shape, modulation shape] pairs: every form the ops accept. */
const FORMS: readonly [number[], number[]][] = [
  [[2, 3, 5], [2, 1, 5]],
  [[2, 3, 5], [5]],
  [[2, 3, 5], [1, 1, 5]],
  [[2, 3, 5], [2, 1, 1]],
  [[2, 3, 5], [1]],
  [[4, 5], [4, 5]],
  [[4, 5], [5]],
  [[2, 2, 3, 4], [2, 1, 1, 4]],
  [[6], [6]],
];

describe('layerNormModulate gradients (float64 finite differences)', () => {
  for (const kind of KINDS) {
    for (const [xs, ms] of FORMS) {
      test(`${kind}: x [${xs}], shift and scale [${ms}]`, () => {
        gradcheck(`layerNormModulate ${kind}`, (x, shift, scale) => T.layerNormModulate(x, shift, scale, 1e-5, kind),
          [rand64(xs, 1, 1.5, 0.3), rand64(ms, 2), rand64(ms, 3, 0.5)]);
      });
    }
  }
  test('shift and scale as strided views of one [B, 2, C] tensor (the model takes chunks)', () => {
    gradcheck('layerNormModulate chunks', (x, mods) => {
      const [shift, scale] = T.chunk(mods, 2, 1) as [T.Tensor, T.Tensor];
      return T.layerNormModulate(x, shift, scale);
    }, [rand64([2, 3, 6], 4), rand64([2, 2, 6], 5)]);
  });
});

describe('gatedResidual gradients (float64 finite differences)', () => {
  for (const [xs, ms] of FORMS) {
    test(`x, y [${xs}], gate [${ms}]`, () => {
      gradcheck('gatedResidual', T.gatedResidual, [rand64(xs, 6), rand64(ms, 7), rand64(xs, 8)]);
    });
  }
  test('gate as a strided chunk, y as a transposed view', () => {
    gradcheck('gatedResidual views', (x, mods, y) => {
      const gate = T.chunk(mods, 3, 1)[2]!;
      return T.gatedResidual(x, gate, T.transpose(y, 1, 2));
    }, [rand64([2, 4, 3], 9), rand64([2, 3, 3], 10), rand64([2, 3, 4], 11)]);
  });
});

/** Runs f on fresh leaves twice (fused, composed); compares outputs and the gradients of sum(out * w). */
function compareFusedComposed(name: string, shapes: number[][], dtype: DType, rtol: number,
  fused: (...xs: Tensor[]) => Tensor, composed: (...xs: Tensor[]) => Tensor): void {
  const make = () => shapes.map((s, i) => leaf(s, 20 + i, dtype, i === 0 ? 2 : 0.5, i === 0 ? 0.5 : 0));
  const a = make();
  const b = make();
  const ya = fused(...a);
  const yb = composed(...b);
  assert.equal(ya.dtype, yb.dtype, `${name}: dtype`);
  assert.deepEqual(ya.shape, yb.shape, `${name}: shape`);
  const out = maxRelError(ya, yb);
  assert.ok(out <= rtol, `${name}: output differs by ${out} (tolerance ${rtol})`);
  const w = T.cast(rand64([...ya.shape], 99).detach(), dtype);
  T.sum(T.mul(ya, w)).backward();
  T.sum(T.mul(yb, w)).backward();
  a.forEach((t, i) => {
    const err = maxRelError(t.grad!, b[i]!.grad!);
    assert.ok(err <= rtol * 2, `${name}: gradient of input ${i} differs by ${err} (tolerance ${rtol * 2})`);
  });
}

describe('fused kernels equal the composed ops', () => {
  const TOLS: [DType, number][] = [['float32', 2e-5], ['bfloat16', 2e-2]];
  for (const [dtype, rtol] of TOLS) {
    for (const kind of KINDS) {
      test(`layerNormModulate ${kind} ${dtype}`, () => {
        for (const [xs, ms] of [[[3, 7, 33], [3, 1, 33]], [[2, 5, 64], [64]], [[9, 16], [9, 16]]] as const) {
          compareFusedComposed(`${kind} ${dtype} [${xs}] [${ms}]`, [[...xs], [...ms], [...ms]], dtype, rtol,
            (x, s, c) => T.layerNormModulate(x, s, c, 1e-6, kind), (x, s, c) => composedNormModulate(x, s, c, 1e-6, kind));
        }
      });
    }
    test(`gatedResidual ${dtype}`, () => {
      for (const [xs, ms] of [[[3, 7, 33], [3, 1, 33]], [[2, 5, 64], [1, 1, 64]], [[9, 16], [16]]] as const) {
        compareFusedComposed(`gatedResidual ${dtype} [${xs}] [${ms}]`, [[...xs], [...ms], [...xs]], dtype, rtol,
          T.gatedResidual, composedGatedResidual);
      }
    });
  }

  test('the fused path really runs on the CPU (one graph node, float32 statistics saved)', () => {
    const x = leaf([2, 3, 4], 1, 'float32');
    const y = T.layerNormModulate(x, leaf([2, 1, 4], 2, 'float32'), leaf([2, 1, 4], 3, 'float32'));
    assert.equal(y.gradFn?.name, 'layerNormModulate');
    const r = T.gatedResidual(x, leaf([2, 1, 4], 4, 'float32'), y);
    assert.equal(r.gradFn?.name, 'gatedResidual');
  });

  test('bf16 in, bf16 out; zero-row inputs give zero modulation gradients', () => {
    const x = leaf([2, 3, 8], 1, 'bfloat16');
    assert.equal(T.layerNormModulate(x, leaf([2, 1, 8], 2, 'bfloat16'), leaf([2, 1, 8], 3, 'bfloat16')).dtype, 'bfloat16');
    const empty = T.zeros([2, 0, 4]).requiresGrad_(true);
    const shift = leaf([2, 1, 4], 4, 'float32');
    const scale = leaf([2, 1, 4], 5, 'float32');
    const gate = leaf([2, 1, 4], 6, 'float32');
    T.layerNormModulate(empty, shift, scale).backward(T.zeros([2, 0, 4]));
    T.gatedResidual(empty, gate, empty).backward(T.zeros([2, 0, 4]));
    for (const t of [shift, scale, gate]) assert.deepEqual([...t.grad!.toFloat64Array()], new Array(8).fill(0));
  });
});

describe('shape rules and fallbacks', () => {
  test('a [B, C] modulation of a 3-D x is refused, naming the shapes', () => {
    const x = T.zeros([2, 3, 4]);
    assert.throws(() => T.layerNormModulate(x, T.zeros([2, 4]), T.zeros([2, 1, 4])), /shift \[2, 4\] must broadcast as \[2, 1, 4\] against x \[2, 3, 4\]/);
    assert.throws(() => T.layerNormModulate(x, T.zeros([2, 1, 4]), T.zeros([1, 3, 4])), /scale \[1, 3, 4\]/);
    assert.throws(() => T.gatedResidual(x, T.zeros([2, 1, 5]), x), /gate \[2, 1, 5\]/);
    assert.throws(() => T.gatedResidual(x, T.zeros([2, 1, 4]), T.zeros([2, 3, 5])), /y \[2, 3, 5\] must have x's shape \[2, 3, 4\]/);
    assert.throws(() => T.layerNormModulate(x, T.zeros([4]), T.zeros([4]), 1e-6, 'group' as ModulateNorm), /kind must be 'layer' or 'rms', got "group"/);
    assert.throws(() => T.layerNormModulate(x, T.zeros([4]), T.zeros([4]), -1), /eps must be >= 0, got -1/);
  });

  test('mixed dtypes compose with type promotion (float32 modulation of a bf16 x gives float32)', () => {
    const x = leaf([2, 3, 4], 1, 'bfloat16');
    const shift = leaf([2, 1, 4], 2, 'float32');
    const y = T.layerNormModulate(x, shift, leaf([2, 1, 4], 3, 'float32'));
    assert.equal(y.dtype, 'float32');
    assert.notEqual(y.gradFn?.name, 'layerNormModulate');
    const expected = composedNormModulate(x.detach(), shift.detach(), T.cast(rand64([2, 1, 4], 3).detach(), 'float32'));
    assert.ok(maxRelError(y, expected) < 1e-6);
  });

  test('the meta backend (no fused kernels) composes and gives the right shapes', () => {
    withDefaultDevice('meta', () => {
      const x = T.zeros([2, 5, 8], { dtype: 'bfloat16' });
      const m = T.zeros([2, 1, 8], { dtype: 'bfloat16' });
      const y = T.layerNormModulate(x, m, m);
      assert.deepEqual([...y.shape], [2, 5, 8]);
      assert.equal(y.dtype, 'bfloat16');
      assert.deepEqual([...T.gatedResidual(x, m, y).shape], [2, 5, 8]);
    });
  });
});

describe('TransformerBlock with the fused ops', () => {
  const c = 16;
  const make = (dropPathProb: number) =>
    new TransformerBlock(c, 2, 2, { qkNorm: false, srRatio: 1, sampling: 'conv' }, dropPathProb, new T.Generator(3));
  /** The block as released, with the composed ops and drop-path on gate * branch. */
  function reference(block: TransformerBlock, x: Tensor, y: Tensor, t0: Tensor, hw: [number, number]): Tensor {
    const [b] = x.shape as [number];
    const mods = T.add(T.unsqueeze(block.scaleShiftTable, 0), T.reshape(t0, [b, 6, c]));
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = T.chunk(mods, 6, 1) as Tensor[];
    const mod = (v: Tensor, shift: Tensor, scale: Tensor) => T.add(T.mul(T.layerNorm(v, [c], null, null, 1e-6), T.add(scale!, 1)), shift!);
    const attnOut = block.attn.forward(mod(x, shiftMsa!, scaleMsa!), hw);
    let h = T.add(x, dropPath(T.mul(gateMsa!, attnOut), block.dropPathProb, block.training));
    h = T.add(h, block.crossAttn.forward(h, y, null));
    const mlpOut = block.mlp.forward(mod(h, shiftMlp!, scaleMlp!));
    return T.add(h, dropPath(T.mul(gateMlp!, mlpOut), block.dropPathProb, block.training));
  }

  for (const [p, training] of [[0, false], [0.5, true]] as const) {
    test(`equals the released composition (dropPath ${p}, training ${training}), gradients included`, () => {
      const block = make(p);
      block.train(training);
      const inputs = () => [rand64([4, 4, c], 1), rand64([4, 3, c], 2), rand64([4, 6 * c], 3, 0.3)].map((t) => T.cast(t.detach(), 'float32').requiresGrad_(true));
      const [x1, y1, t1] = inputs() as [Tensor, Tensor, Tensor];
      const [x2, y2, t2] = inputs() as [Tensor, Tensor, Tensor];
      T.manualSeed(11);
      const fused = block.forward(x1, y1, t1, null, [2, 2]);
      T.manualSeed(11);
      const expected = reference(block, x2, y2, t2, [2, 2]);
      assert.ok(maxRelError(fused, expected) < 1e-5, `output differs by ${maxRelError(fused, expected)}`);
      if (p > 0) {
        // Some samples dropped: the branch of a dropped sample leaves x unchanged after the first half.
        T.manualSeed(11);
        const keep = T.lt(T.rand([4, 1, 1]), 1 - p).toFloat64Array();
        assert.ok(keep.some((k) => k === 0) && keep.some((k) => k === 1), `draw keeps ${[...keep]}; pick a seed that drops some`);
      }
      T.sum(T.mul(fused, fused)).backward();
      T.sum(T.mul(expected, expected)).backward();
      for (const [a, e, n] of [[x1, x2, 'x'], [y1, y2, 'y'], [t1, t2, 't0']] as const) {
        const err = maxRelError(a.grad!, e.grad!);
        assert.ok(err < 1e-5, `gradient of ${n} differs by ${err}`);
      }
    });
  }
});
