/**
 * src/optim's multi-tensor paths, driven on the CPU through a JavaScript emulation of the
 * backend kernels (fused-emulation.ts): batching by device, group and step count, the rounded
 * coefficients, gradients the kernels cannot read directly, and agreement with the composed path
 * bit for bit. The CPU backend itself has no such kernels, so everything else runs composed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mul, tensor, transpose, type Tensor } from '../../src/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import { numelOf } from '../../src/tensor/shape.js';
import { getBackend } from '../../src/backends/registry.js';
import { AdamW, CAME, EMA, clipGradNorm, type Optimizer } from '../../src/optim/index.js';
import { lcgValues } from './reference.js';
import { withEmulatedKernels, type EmulationLog } from './fused-emulation.js';

const SHAPES = [[1], [3], [7, 5], [2, 3, 4], [1000], [33, 31], [0, 3], [5, 1]];

function makeParams(dtype: DType, mixed: boolean): Tensor[] {
  return SHAPES.map((shape, i) => {
    // Like Dimba's scan parameters, one float32 parameter among half ones.
    const d = mixed && i === 3 ? 'float32' : dtype;
    const p = tensor(lcgValues(numelOf(shape), i + 1), { shape, dtype: d, requiresGrad: true });
    return i === 1 ? Object.assign(p, { noWeightDecay: true }) : p;
  });
}

/** Gradients for step `step`: parameter 4 has none at step 2 (its step count falls behind); [7, 5] gets a transposed view. */
function setGrads(params: Tensor[], step: number): void {
  params.forEach((p, i) => {
    if (step === 2 && i === 4) { p.grad = null; return; }
    const values = lcgValues(p.numel, 100 * step + i + 7).map((x) => x * (i + 1) * 0.7);
    if (i === 2) {
      p.grad = transpose(tensor(values, { shape: [5, 7], dtype: p.dtype }), 0, 1);
      assert.ok(!p.grad.isContiguous);
    } else {
      p.grad = tensor(values, { shape: [...p.shape], dtype: p.dtype });
    }
  });
}

type Kind = 'adamw' | 'came';

function makeOptimizer(kind: Kind, params: Tensor[]): Optimizer<never> {
  const opt = kind === 'adamw'
    ? new AdamW([
      { params: params.slice(0, 5), lr: 0.02 },
      // beta1 0.3: the first moment's lerp starts from the gradient end.
      { params: params.slice(5), betas: [0.3, 0.99], weightDecay: 0.05 },
    ], { lr: 0.01, weightDecay: 0.1 })
    : new CAME([
      { params: params.slice(0, 5), lr: 0.02, weightDecay: 0.1 },
      { params: params.slice(5), clipThreshold: 0.5 },
    ], { lr: 0.01 });
  return opt as unknown as Optimizer<never>;
}

interface Trajectory {
  params: Float64Array[];
  state: [string, Float64Array][];
  shadows: Float64Array[];
}

function trajectory(kind: Kind, dtype: DType, mixed: boolean): Trajectory {
  const params = makeParams(dtype, mixed);
  const opt = makeOptimizer(kind, params);
  const ema = new EMA(params, { decay: 0.9 });
  for (let step = 0; step < 5; step++) {
    setGrads(params, step);
    opt.step();
    ema.update();
    opt.zeroGrad();
  }
  return {
    params: params.map((p) => p.toFloat64Array()),
    state: [...opt.stateDict().tensors].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => [k, t.toFloat64Array()]),
    shadows: ema.shadowParams.map((s) => s.toFloat64Array()),
  };
}

function assertSameBits(a: Float64Array, b: Float64Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}: element ${i} is ${a[i]} on the multi-tensor path, ${b[i]} composed`);
  }
}

function assertSameTrajectory(fused: Trajectory, composed: Trajectory, what: string): void {
  fused.params.forEach((p, i) => assertSameBits(p, composed.params[i]!, `${what} param ${i}`));
  assert.deepEqual(fused.state.map(([k]) => k), composed.state.map(([k]) => k), `${what}: state names`);
  fused.state.forEach(([k, v], i) => assertSameBits(v, composed.state[i]![1], `${what} ${k}`));
  fused.shadows.forEach((s, i) => assertSameBits(s, composed.shadows[i]!, `${what} EMA shadow ${i}`));
}

describe('multi-tensor optimizer paths (emulated kernels on the CPU)', () => {
  test('the CPU backend has no multi-tensor kernels of its own', () => {
    const fused = getBackend('cpu').fused;
    for (const k of ['adamwStep', 'cameStep', 'emaUpdate', 'sumSquares', 'scaleTensors'] as const) assert.equal(fused[k], undefined, k);
  });

  for (const kind of ['adamw', 'came'] as const) {
    for (const [dtype, mixed] of [['float32', false], ['bfloat16', true], ['float16', false]] as const) {
      test(`${kind}, ${dtype}${mixed ? ' with a float32 parameter' : ''}: identical to the composed path, with one kernel call per group and step count`, () => {
        const composed = trajectory(kind, dtype, mixed);
        let log: EmulationLog | undefined;
        const fused = withEmulatedKernels((l) => { log = l; return trajectory(kind, dtype, mixed); });
        assertSameTrajectory(fused, composed, `${kind} ${dtype}`);
        const name = kind === 'adamw' ? 'adamwStep' : 'cameStep';
        // One call per group (the empty [0, 3] parameter never reaches a kernel); parameter 4 has
        // no gradient at step 2, so from step 3 on it is a step behind and group 0 needs two calls.
        assert.deepEqual(log!.sizes[name], [5, 2, 5, 2, 4, 2, 4, 1, 2, 4, 1, 2]);
        assert.deepEqual(log!.sizes.emaUpdate, [7, 7, 7, 7, 7]);
        // Cache keys are reused step after step: three lists for the optimizer, one for the EMA.
        assert.equal(log!.keys.size, 4);
      });
    }
  }

  test('float64 parameters stay on the composed path', () => {
    withEmulatedKernels((log) => {
      const params = makeParams('float64', false);
      const opt = makeOptimizer('adamw', params);
      const ema = new EMA(params, { decay: 0.5 });
      setGrads(params, 0);
      opt.step();
      ema.update();
      assert.equal(clipGradNorm(params, 1e-3) > 0, true);
      assert.deepEqual(log.calls, {});
    });
  });
});

describe('clipGradNorm on the multi-tensor path (emulated kernels on the CPU)', () => {
  function gradsOf(dtype: DType): Tensor[] {
    const params = makeParams(dtype, dtype === 'bfloat16');
    setGrads(params, 1);
    return params;
  }

  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`${dtype}: the norm agrees with the composed one and every gradient is scaled as mul(grad, coef) would`, () => {
      const composed = clipGradNorm(gradsOf(dtype), 1e9);
      const params = gradsOf(dtype);
      const before = params.map((p) => p.grad);
      withEmulatedKernels((log) => {
        const total = clipGradNorm(params, 0.5);
        assert.ok(Math.abs(total - composed) <= 1e-6 * composed, `norm ${total} vs composed ${composed}`);
        assert.deepEqual(log.calls, { sumSquares: 1, scaleTensors: 1 });
        const coef = 0.5 / (total + 1e-6);
        params.forEach((p, i) => {
          // Empty gradients are left alone, as on the composed path.
          if (!before[i] || before[i]!.numel === 0) return;
          assert.notEqual(p.grad, before[i], `param ${i} keeps its old gradient tensor`);
          assert.equal(p.grad!.dtype, before[i]!.dtype);
          assertSameBits(p.grad!.toFloat64Array(), mul(before[i]!, coef).toFloat64Array(), `${dtype} grad ${i}`);
        });
      });
    });
  }

  test('a NaN or infinite gradient: the norm is reported and no gradient changes', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const params = gradsOf('bfloat16');
      params[3]!.grad = tensor([1, bad, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23], { shape: [2, 3, 4] });
      const before = params.map((p) => p.grad);
      const values = params.map((p) => p.grad?.toFloat64Array());
      withEmulatedKernels((log) => {
        const total = clipGradNorm(params, 1);
        assert.ok(Number.isNaN(bad) ? Number.isNaN(total) : total === Infinity, `${bad}: got ${total}`);
        assert.equal(log.calls.sumSquares, 1);
        assert.equal(log.calls.scaleTensors, undefined);
      });
      params.forEach((p, i) => {
        assert.equal(p.grad, before[i]);
        if (values[i]) assertSameBits(p.grad!.toFloat64Array(), values[i]!, `grad ${i}`);
      });
    }
  });

  test('a gradient shared by two parameters is scaled once for each', () => {
    const a = tensor([0, 0], { requiresGrad: true });
    const b = tensor([0, 0], { requiresGrad: true });
    const g = tensor([3, 4]);
    a.grad = g;
    b.grad = g;
    withEmulatedKernels(() => {
      const total = clipGradNorm([a, b], 1);
      assert.ok(Math.abs(total - Math.sqrt(50)) < 1e-5);
    });
    const c = Math.fround(1 / (Math.sqrt(50) + 1e-6));
    assert.deepEqual(a.grad!.toArray(), [Math.fround(3 * c), Math.fround(4 * c)]);
    assert.deepEqual(b.grad!.toArray(), a.grad!.toArray());
    assert.deepEqual(g.toArray(), [3, 4]);
  });

  test('other norm types and float64 gradients use the composed reduction', () => {
    withEmulatedKernels((log) => {
      clipGradNorm(gradsOf('float32'), 1e9, 1);
      clipGradNorm(gradsOf('float32'), 1e9, Infinity);
      clipGradNorm(gradsOf('float64'), 1e9);
      assert.deepEqual(log.calls, {});
    });
  });
});
