import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, type Tensor } from '../../src/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import { CAME } from '../../src/optim/index.js';
import { assertClose, cameRefState, cameRefStep, lcgValues } from './reference.js';

const OPTIONS = { lr: 0.01, betas: [0.9, 0.999, 0.9999] as const, eps: [1e-30, 1e-16] as const, clipThreshold: 1, weightDecay: 0.05 };

function makeParam(shape: number[], seed: number, dtype: DType): Tensor {
  return tensor(lcgValues(shape.reduce((a, b) => a * b, 1), seed), { shape, dtype, requiresGrad: true });
}

function compareTrajectory(dtype: DType, rtol: number, atol: number): void {
  const shapes = [[4, 3], [5], [2, 3, 4]];
  const params = shapes.map((s, i) => makeParam(s, i + 11, dtype));
  const exempt = params[1]!;
  const opt = new CAME([{ params, noWeightDecay: (p) => p === exempt }], OPTIONS);
  const ref = params.map((p, i) => ({ w: p.toArray(), s: cameRefState(shapes[i]!) }));
  for (let step = 0; step < 6; step++) {
    params.forEach((p, i) => {
      // Scaled differently per row, so the factored statistics are not trivially uniform.
      const g = lcgValues(p.numel, 31 * step + i).map((x, k) => x * (1 + (k % 3)));
      p.grad = tensor(g, { shape: [...p.shape], dtype });
      cameRefStep(ref[i]!.w, p.grad.toArray(), shapes[i]!, ref[i]!.s, p === exempt ? { ...OPTIONS, weightDecay: 0 } : OPTIONS);
    });
    opt.step();
    params.forEach((p, i) => assertClose(p.toArray(), ref[i]!.w, `${dtype} step ${step + 1} param ${shapes[i]!.join('x')}`, rtol, atol));
  }
}

describe('CAME', () => {
  test('matches a float64 reference for matrix, vector and 3-D parameters', () => {
    compareTrajectory('float64', 1e-12, 1e-15);
  });

  test('float32 parameters follow it to float32 precision', () => {
    compareTrajectory('float32', 1e-4, 1e-6);
  });

  test('keeps row/column statistics over the last two dims for ndim >= 2 and full ones for vectors', () => {
    const m = makeParam([2, 3, 4], 1, 'float32');
    const v = makeParam([6], 2, 'float32');
    const opt = new CAME([m, v], { lr: 1e-3 });
    m.grad = tensor(lcgValues(24, 3), { shape: [2, 3, 4] });
    v.grad = tensor(lcgValues(6, 4));
    opt.step();
    const shapes = (p: Tensor) => Object.fromEntries([...opt.stateOf(p)!.buffers].map(([k, t]) => [k, [...t.shape]]));
    assert.deepEqual(shapes(m), {
      exp_avg: [2, 3, 4], exp_avg_sq_row: [2, 3], exp_avg_sq_col: [2, 4], exp_avg_res_row: [2, 3], exp_avg_res_col: [2, 4],
    });
    assert.deepEqual(shapes(v), { exp_avg: [6], exp_avg_sq: [6] });
  });

  test('clips the normalised update to RMS <= clipThreshold', () => {
    // First step of a vector: u = g / sqrt((1 - beta2) g^2) has RMS 1/sqrt(1 - beta2) ~ 31.6,
    // so it is clipped to RMS 1 and the step is lr * (1 - beta1) * u.
    const p = tensor([0, 0, 0, 0], { dtype: 'float64', requiresGrad: true });
    const opt = new CAME([p], { lr: 1 });
    p.grad = tensor([1, -2, 3, -4], { dtype: 'float64' });
    opt.step();
    const moved = p.toArray();
    const rms = Math.sqrt(moved.reduce((a, x) => a + x * x, 0) / moved.length);
    assert.ok(Math.abs(rms - 0.1) < 1e-9, `RMS of the first step ${rms}, expected 0.1`);
    assert.deepEqual(moved.map(Math.sign), [-1, 1, -1, 1]);
  });

  test('rejects lr <= 0, betas outside [0, 1) and negative weight decay', () => {
    const p = makeParam([2], 1, 'float32');
    assert.throws(() => new CAME([p], { lr: 0 }), /CAME: group 0: lr must be a finite number > 0, got 0/);
    assert.throws(() => new CAME([p], { lr: 1e-3, betas: [0.9, 0.999, 1] }), /betas\[2\] must be in \[0, 1\)/);
    assert.throws(() => new CAME([{ params: [p], weightDecay: -1 }], { lr: 1e-3 }), /weightDecay/);
  });
});
