import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, type Tensor } from '../../src/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import { AdamW, OptimizerError } from '../../src/optim/index.js';
import { adamwRefStep, assertClose, lcgValues, type AdamWRefState } from './reference.js';

const OPTIONS = { lr: 0.05, betas: [0.9, 0.999] as const, eps: 1e-8, weightDecay: 0.1 };

function makeParam(shape: number[], seed: number, dtype: DType): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(lcgValues(n, seed), { shape, dtype, requiresGrad: true });
}

/** Runs `steps` AdamW steps on three params (decayed, flagged, predicate-exempt) and the reference beside them. */
function compareTrajectory(dtype: DType, rtol: number, atol: number): void {
  const w = makeParam([3, 4], 1, dtype);
  const bias = Object.assign(makeParam([4], 2, dtype), { noWeightDecay: true });
  const scale = makeParam([2], 3, dtype);
  const opt = new AdamW([
    { params: [w, bias] },
    { params: [scale], noWeightDecay: (p) => p === scale, lr: 0.02 },
  ], OPTIONS);
  const params = [w, bias, scale];
  const ref = params.map((p) => ({ w: p.toArray(), s: { m: new Array<number>(p.numel).fill(0), v: new Array<number>(p.numel).fill(0), t: 0 } as AdamWRefState }));
  const refOptions = [OPTIONS, { ...OPTIONS, weightDecay: 0 }, { ...OPTIONS, lr: 0.02, weightDecay: 0 }];
  for (let step = 0; step < 6; step++) {
    params.forEach((p, i) => {
      p.grad = tensor(lcgValues(p.numel, 100 * step + i + 7).map((x) => x * (i + 1)), { shape: [...p.shape], dtype });
      adamwRefStep(ref[i]!.w, p.grad.toArray(), ref[i]!.s, refOptions[i]!);
    });
    opt.step();
    params.forEach((p, i) => assertClose(p.toArray(), ref[i]!.w, `${dtype} step ${step + 1} param ${i}`, rtol, atol));
  }
}

describe('AdamW', () => {
  test('matches a float64 reference of torch.optim.AdamW, with decayed and exempt parameters', () => {
    compareTrajectory('float64', 1e-13, 1e-15);
  });

  test('float32 parameters follow the same trajectory to float32 precision', () => {
    compareTrajectory('float32', 2e-5, 1e-6);
  });

  test('updates the parameter tensor in place and skips parameters without a gradient', () => {
    const p = makeParam([2, 2], 4, 'float32');
    const idle = makeParam([3], 5, 'float32');
    const storage = p.storage;
    const before = idle.toArray();
    const opt = new AdamW([p, idle], { lr: 0.1 });
    p.grad = tensor([1, -1, 0.5, 2], { shape: [2, 2] });
    opt.step();
    assert.equal(p.storage, storage);
    assert.notDeepEqual(p.toArray(), lcgValues(4, 4).map(Math.fround));
    assert.deepEqual(idle.toArray(), before);
    assert.equal(opt.stateOf(idle), undefined);
    assert.equal(opt.stateOf(p)!.step, 1);
    opt.zeroGrad();
    assert.equal(p.grad, null);
  });

  test('bfloat16 parameters keep float32 master weights that the update goes to', () => {
    const p = makeParam([8], 6, 'bfloat16');
    const ref = { w: p.toArray(), s: { m: new Array<number>(8).fill(0), v: new Array<number>(8).fill(0), t: 0 } };
    // An lr far below bf16's resolution: without master weights the parameter would never move.
    const options = { lr: 1e-4, betas: [0.9, 0.999] as const, eps: 1e-8, weightDecay: 0 };
    const opt = new AdamW([p], options);
    for (let step = 0; step < 20; step++) {
      p.grad = tensor(lcgValues(8, step + 50), { dtype: 'bfloat16' });
      adamwRefStep(ref.w, p.grad.toArray(), ref.s, options);
      opt.step();
    }
    const master = opt.stateOf(p)!.master!;
    assert.equal(master.dtype, 'float32');
    assertClose(master.toArray(), ref.w, 'master weights', 1e-5, 1e-7);
    const rounded = tensor(master.toArray(), { dtype: 'bfloat16' }).toArray();
    assert.deepEqual(p.toArray(), rounded);
    assert.equal(opt.stateOf(p)!.buffers.get('exp_avg')!.dtype, 'float32');
  });

  test('rejects bad hyperparameters and parameter lists with errors naming them', () => {
    const p = makeParam([2], 7, 'float32');
    assert.throws(() => new AdamW([p], { lr: -1 }), (e: unknown) => e instanceof OptimizerError && /lr/.test(e.message));
    assert.throws(() => new AdamW([p], { betas: [0.9, 1] }), /betas\[1\]/);
    assert.throws(() => new AdamW([]), /empty parameter list/);
    assert.throws(() => new AdamW([{ params: [p] }, { params: [p] }]), /more than one place/);
    const typo = { params: [p], weight_decay: 0.1 };
    assert.throws(() => new AdamW([typo]), /unknown option 'weight_decay'/);
    assert.throws(() => new AdamW([tensor([1, 2], { dtype: 'int32' })]), /int32/);
    const q = makeParam([2], 8, 'float32');
    const opt = new AdamW([q]);
    q.grad = tensor([1, 2, 3]);
    assert.throws(() => opt.step(), /shape \[2\] but its grad has \[3\]/);
  });
});
