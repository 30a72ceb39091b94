/**
 * addRmsNorm: finite-difference gradients of both outputs (float64, the CPU's fused kernels),
 * equality with the composed ops (float32 and bfloat16 x on a float32 stream), shape errors, the
 * composed fallback (meta backend, backends without the kernels), and the Mamba block using it
 * where drop-path is inactive.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { FusedKernels } from '../../src/backends/backend.js';
import { composedAddRmsNorm } from '../../src/ops/add-rms-norm.js';
import { MambaBlock } from '../../src/models/dimba/mamba.js';
import { Generator } from '../../src/random/generator.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';
import { leaf, maxRelError } from '../helpers/leaves.js';

/** Both outputs in one tensor, so the loss weighs each (gradcheck takes one output). */
const both = (o: { residual: Tensor; normed: Tensor }) => T.cat([T.reshape(o.residual, [-1]), T.reshape(T.cast(o.normed, o.residual.dtype), [-1])], 0);

describe('gradients of both outputs (float64 finite differences, fused CPU kernels)', () => {
  test('residual, x [2, 3, 5], weight [5]', () => {
    gradcheck('addRmsNorm', (r, x, w) => both(T.addRmsNorm(r, x, w, 1e-5)), [rand64([2, 3, 5], 1), rand64([2, 3, 5], 2), rand64([5], 3, 0.5, 1)]);
  });
  test('no residual (the first block), x [4, 7]', () => {
    gradcheck('addRmsNorm first', (x, w) => both(T.addRmsNorm(null, x, w)), [rand64([4, 7], 4), rand64([7], 5, 0.5, 1)]);
  });
  test('no weight, x a transposed view', () => {
    gradcheck('addRmsNorm no weight', (r, x) => both(T.addRmsNorm(r, T.transpose(x, 0, 1), null)), [rand64([3, 6], 6), rand64([6, 3], 7)]);
  });
  test('only the normed output used (the residual gradient is zeros from the engine)', () => {
    gradcheck('addRmsNorm normed', (r, x, w) => T.addRmsNorm(r, x, w).normed, [rand64([5, 4], 8), rand64([5, 4], 9), rand64([4], 10, 0.3, 1)]);
  });
  test('the op runs as one node (the fused CPU kernels)', () => {
    const out = T.addRmsNorm(rand64([2, 4], 11), rand64([2, 4], 12), rand64([4], 13));
    const names = new Set<string>();
    for (const t of [out.residual, out.normed]) {
      let node = t.gradFn;
      while (node && node.name === 'reshape') node = node.inputs[0]?.gradFn ?? null;
      names.add(node?.name ?? 'none');
    }
    assert.deepEqual([...names], ['addRmsNorm']);
  });
});

describe('equal to the composed ops (float32 stream)', () => {
  for (const [dtype, tol] of [['float32', 1e-6], ['bfloat16', 8e-3]] as const) {
    for (const withResidual of [true, false]) {
      test(`x ${dtype}, ${withResidual ? 'with' : 'without'} residual, weight ${dtype}`, () => {
        const make = () => ({
          r: withResidual ? leaf([3, 9, 40], 20, 'float32', 2) : null,
          x: leaf([3, 9, 40], 21, dtype),
          w: leaf([40], 22, dtype, 0.3, 1),
        });
        const a = make();
        const b = make();
        const fa = T.addRmsNorm(a.r, a.x, a.w, 1e-5);
        const fb = composedAddRmsNorm(b.r, b.x, b.w, 1e-5);
        assert.equal(fa.residual.dtype, 'float32');
        assert.equal(fa.normed.dtype, dtype);
        assert.equal(maxRelError(fa.residual, fb.residual), 0, 'the residual sum is exact either way');
        const e = maxRelError(fa.normed, fb.normed);
        assert.ok(e <= tol, `normed differs by ${e} (tolerance ${tol})`);
        const gr = T.cast(rand64([3, 9, 40], 30).detach(), 'float32');
        const gn = T.cast(rand64([3, 9, 40], 31).detach(), dtype);
        const loss = (o: typeof fa) => T.add(T.sum(T.mul(o.residual, gr)), T.sum(T.cast(T.mul(o.normed, gn), 'float32')));
        loss(fa).backward();
        loss(fb).backward();
        const gtol = dtype === 'float32' ? 1e-5 : 2e-2;
        for (const k of ['r', 'x', 'w'] as const) {
          const [ga, gb] = [a[k]?.grad, b[k]?.grad];
          if (!a[k]) continue;
          assert.ok(ga && gb, `${k}: gradient missing`);
          assert.equal(ga.dtype, gb.dtype, `${k}: gradient dtype`);
          const err = maxRelError(ga, gb);
          assert.ok(err <= gtol, `${k}: gradient differs by ${err} (tolerance ${gtol})`);
        }
      });
    }
  }
});

describe('shape and dtype errors name the values', () => {
  test('residual shape', () => {
    assert.throws(() => T.addRmsNorm(T.zeros([2, 4]), T.zeros([2, 5]), null), /residual \[2, 4\] must have x's shape \[2, 5\]/);
  });
  test('weight shape', () => {
    assert.throws(() => T.addRmsNorm(null, T.zeros([2, 5]), T.ones([4])), /weight must be \[5\], got \[4\]/);
  });
  test('eps', () => {
    assert.throws(() => T.addRmsNorm(null, T.zeros([2, 5]), null, -1), /eps must be >= 0, got -1/);
  });
});

describe('composed where the kernels are absent', () => {
  test('a backend without the kernels composes (same values, no addRmsNorm node)', () => {
    const x = leaf([4, 6], 40, 'float32');
    const fused = x.backend.fused as FusedKernels;
    const saved = fused.addRmsNorm;
    fused.addRmsNorm = undefined;
    try {
      const o = T.addRmsNorm(null, x, null);
      assert.notEqual(o.normed.gradFn?.name, 'addRmsNorm');
      assert.equal(maxRelError(o.normed, composedAddRmsNorm(null, x, null).normed), 0);
    } finally {
      fused.addRmsNorm = saved;
    }
  });
  test('meta backend: shapes and dtypes only', () => {
    const o = T.addRmsNorm(T.zeros([2, 3, 8], { device: 'meta' }), T.zeros([2, 3, 8], { device: 'meta', dtype: 'bfloat16' }), null);
    assert.deepEqual(o.normed.shape, [2, 3, 8]);
    assert.equal(o.normed.dtype, 'bfloat16');
    assert.equal(o.residual.dtype, 'float32');
  });
});

describe('MambaBlock', () => {
  const opts = { dState: 4, dConv: 3, expand: 2 };
  test('eval and drop-path 0 use addRmsNorm; the results equal the composed block', () => {
    const block = new MambaBlock(8, opts, 0, new Generator(5));
    const h = leaf([2, 5, 8], 50, 'float32');
    const r = leaf([2, 5, 8], 51, 'float32');
    const out = block.forward(h, r);
    let node = out.residual.gradFn;
    while (node && node.name === 'reshape') node = node.inputs[0]?.gradFn ?? null;
    assert.equal(node?.name, 'addRmsNorm');
    const res = T.add(r, h);
    const want = block.mixer.forward(T.cast(block.norm.forward(res), h.dtype));
    assert.ok(maxRelError(out.hidden, want) <= 1e-5, `hidden differs by ${maxRelError(out.hidden, want)}`);
    assert.equal(maxRelError(out.residual, res), 0);
  });
  test('training with drop-path > 0 keeps the composed path', () => {
    const block = new MambaBlock(8, opts, 0.5, new Generator(6));
    block.train();
    const out = block.forward(leaf([2, 5, 8], 52, 'float32'), leaf([2, 5, 8], 53, 'float32'));
    assert.notEqual(out.residual.gradFn?.name, 'addRmsNorm');
  });
});
