/**
 * Multi-tensor optimizer kernels (kernels/optim.cu) against the CPU's composed optimizers: the
 * same parameters, gradients and hyperparameters stepped on CUDA (one launch per list) and on the
 * CPU (engine ops per tensor). AdamW, EMA and gradient rescaling round every step as the CPU
 * does, so they must agree bit for bit; CAME's means and the gradient norm sum in another order,
 * so they agree to float32 rounding. Many tensors of odd sizes (1, 3, 1000, 65537 elements:
 * several 16384-element chunks; matrices over 256 rows: several row tiles), float32 parameters and
 * bfloat16/float16 ones with float32 masters, weight-decay groups, a parameter that skips a step.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, tensor, mul, transpose } from '../../src/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import { numelOf } from '../../src/tensor/shape.js';
import { getBackend } from '../../src/backends/registry.js';
import type { FusedKernels } from '../../src/backends/backend.js';
import { AdamW, CAME, EMA, clipGradNorm, type Optimizer, type OptimizerStateDict } from '../../src/optim/index.js';
import { fusedOptimDisabled, optimKernels } from '../../src/backends/cuda/kernels/optim.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { assertClose, cudaSkip, maxRelativeError, realCuda } from './helpers.js';

const skip = cudaSkip;

/** Deterministic values in [-1, 1) (an LCG), identical on both devices. */
function lcg(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const SHAPES: number[][] = [
  [1], [3], [1000], [65537], [], [7, 5], [2, 3, 4], [33, 31], [300, 700], [8, 1, 4], [5, 1],
  // Many small tensors: the record search crosses dozens of records per block.
  ...Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? [i + 2, 3] : [i * 7 + 1])),
];

/** Parameters on `device`; index 3 stays float32 among half ones (like Dimba's scan parameters). */
function makeParams(device: string, dtype: DType): Tensor[] {
  return SHAPES.map((shape, i) => {
    const d = i === 3 && dtype !== 'float32' ? 'float32' : dtype;
    const p = tensor(lcg(numelOf(shape), i + 1), { shape, dtype: d, device, requiresGrad: true });
    return i % 5 === 1 ? Object.assign(p, { noWeightDecay: true }) : p;
  });
}

/** Gradients of step `step`: parameter 2 has none at step 1; [7, 5] gets a transposed (non-contiguous) view. */
function setGrads(params: Tensor[], step: number, device: string): void {
  params.forEach((p, i) => {
    if (step === 1 && i === 2) { p.grad = null; return; }
    const values = lcg(p.numel, 1000 * step + i + 17).map((x) => x * (1 + (i % 4)) * 0.3);
    if (i === 5) p.grad = transpose(tensor(values, { shape: [5, 7], dtype: p.dtype, device }), 0, 1);
    else p.grad = tensor(values, { shape: [...p.shape], dtype: p.dtype, device });
  });
}

type Kind = 'adamw' | 'came';

function makeOptimizer(kind: Kind, params: Tensor[]): Optimizer<never> {
  const half = Math.floor(params.length / 2);
  const opt = kind === 'adamw'
    ? new AdamW([
      { params: params.slice(0, half), lr: 0.02 },
      { params: params.slice(half), betas: [0.3, 0.99], weightDecay: 0.05 },
    ], { lr: 0.01, weightDecay: 0.1 })
    : new CAME([
      { params: params.slice(0, half), lr: 0.02, weightDecay: 0.1 },
      { params: params.slice(half), clipThreshold: 0.5 },
    ], { lr: 0.01 });
  return opt as unknown as Optimizer<never>;
}

/** Counts calls of the CUDA backend's multi-tensor kernels while fn runs. */
function countingFused<T>(fn: (calls: Record<string, number>) => T): T {
  const fused = getBackend('cuda').fused as Record<string, unknown>;
  const calls: Record<string, number> = {};
  const originals = new Map<string, unknown>();
  for (const name of ['adamwStep', 'cameStep', 'emaUpdate', 'sumSquares', 'scaleTensors']) {
    const f = fused[name];
    if (typeof f !== 'function') continue;
    originals.set(name, f);
    fused[name] = (...args: unknown[]) => {
      calls[name] = (calls[name] ?? 0) + 1;
      return (f as (...a: unknown[]) => unknown)(...args);
    };
  }
  try {
    return fn(calls);
  } finally {
    for (const [name, f] of originals) fused[name] = f;
  }
}

interface Run {
  params: Tensor[];
  opt: Optimizer<never>;
  ema: EMA;
}

function run(kind: Kind, dtype: DType, device: string, steps: number): Run {
  const params = makeParams(device, dtype);
  const opt = makeOptimizer(kind, params);
  const ema = new EMA(params, { decay: 0.9 });
  for (let step = 0; step < steps; step++) {
    setGrads(params, step, device);
    opt.step();
    ema.update();
    opt.zeroGrad();
  }
  return { params, opt, ema };
}

/** Compares every parameter, optimizer state tensor and EMA shadow of a CUDA run with the CPU run. */
function compareRuns(what: string, gpu: Run, cpu: Run, rtolFor: (t: Tensor) => number): void {
  gpu.params.forEach((p, i) => assertClose(`${what} param ${i} ${JSON.stringify(p.shape)}`, p, cpu.params[i]!, rtolFor(p)));
  const sg = gpu.opt.stateDict().tensors;
  const sc = cpu.opt.stateDict().tensors;
  assert.deepEqual([...sg.keys()].sort(), [...sc.keys()].sort(), `${what}: state names`);
  for (const [name, t] of sc) assertClose(`${what} ${name}`, sg.get(name)!, t, rtolFor(t));
  gpu.ema.shadowParams.forEach((s, i) => assertClose(`${what} EMA shadow ${i}`, s, cpu.ema.shadowParams[i]!, rtolFor(s)));
}

describe('multi-tensor optimizer kernels on CUDA', { skip }, () => {
  test('the CUDA backend registers them', { skip: !realCuda && 'CPU posing as CUDA' }, () => {
    const fused = getBackend('cuda').fused;
    for (const k of ['adamwStep', 'cameStep', 'emaUpdate', 'sumSquares', 'scaleTensors'] as const) {
      assert.equal(typeof fused[k], 'function', `${k}${fusedOptimDisabled() ? ' (DIMBA_FUSED_OPTIM=0 is set)' : ''}`);
    }
  });

  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    test(`AdamW and EMA, ${dtype} parameters: bit for bit the CPU's composed result over 4 steps`, () => {
      const cpu = run('adamw', dtype, 'cpu', 4);
      const gpu = countingFused((calls) => {
        const r = run('adamw', dtype, 'cuda', 4);
        if (realCuda) {
          // One launch per group, and one more for group 0 at steps 2 and 3, where parameter 2
          // (no gradient at step 1) is a step behind the rest.
          assert.equal(calls.adamwStep, 10, JSON.stringify(calls));
          assert.equal(calls.emaUpdate, 4);
        }
        return r;
      });
      compareRuns(`AdamW ${dtype}`, gpu, cpu, () => 0);
    });
  }

  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`CAME and EMA, ${dtype} parameters: the CPU's composed result to float32 rounding over 4 steps`, () => {
      const cpu = run('came', dtype, 'cpu', 4);
      const gpu = countingFused((calls) => {
        const r = run('came', dtype, 'cuda', 4);
        if (realCuda) assert.equal(calls.cameStep, 10, JSON.stringify(calls));
        return r;
      });
      // Means summed in another order move a last bit now and then; a bf16 parameter can then
      // round to the neighbouring value.
      compareRuns(`CAME ${dtype}`, gpu, cpu, (t) => (t.dtype === 'float32' ? 2e-5 : 1e-2));
      let worst = 0;
      gpu.params.forEach((p, i) => { if (p.dtype === 'float32') worst = Math.max(worst, maxRelativeError(p, cpu.params[i]!)); });
      console.log(`# CAME ${dtype}: largest relative difference of float32 parameters ${worst.toExponential(2)}`);
    });
  }
});

describe('clipGradNorm with multi-tensor kernels on CUDA', { skip }, () => {
  function withGrads(device: string, dtype: DType): Tensor[] {
    const params = makeParams(device, dtype);
    setGrads(params, 0, device);
    return params;
  }

  for (const dtype of ['float32', 'bfloat16'] as const) {
    test(`${dtype}: the norm matches the CPU's, and each gradient becomes mul(grad, coef) exactly`, () => {
      const cpuTotal = clipGradNorm(withGrads('cpu', dtype), 1e9);
      const params = withGrads('cuda', dtype);
      const before = params.map((p) => p.grad!);
      const total = countingFused((calls) => {
        const t = clipGradNorm(params, 0.25);
        if (realCuda) assert.deepEqual(calls, { sumSquares: 1, scaleTensors: 1 });
        return t;
      });
      assert.ok(Math.abs(total - cpuTotal) <= 2e-6 * cpuTotal, `norm ${total} on CUDA, ${cpuTotal} on the CPU`);
      const coef = 0.25 / (total + 1e-6);
      params.forEach((p, i) => {
        assert.notEqual(p.grad, before[i], `param ${i} kept its gradient tensor`);
        assertClose(`${dtype} clipped grad ${i}`, p.grad!, mul(before[i]!.to('cpu'), coef), 0);
      });
    });
  }

  test('a NaN or infinite gradient: the norm says so and no gradient changes', () => {
    for (const bad of [NaN, Infinity]) {
      const params = withGrads('cuda', 'bfloat16');
      const values = lcg(1000, 5);
      values[617] = bad;
      params[2]!.grad = tensor(values, { shape: [1000], dtype: 'bfloat16', device: 'cuda' });
      const before = params.map((p) => p.grad!);
      const copies = before.map((g) => g.to('cpu'));
      const total = clipGradNorm(params, 1);
      assert.ok(Number.isNaN(bad) ? Number.isNaN(total) : total === Infinity, `${bad}: got ${total}`);
      params.forEach((p, i) => {
        assert.equal(p.grad, before[i]);
        assertClose(`grad ${i} after a ${bad} norm`, p.grad!, copies[i]!, 0);
      });
    }
  });
});

describe('optimizer state on CUDA with multi-tensor kernels', { skip }, () => {
  for (const kind of ['adamw', 'came'] as const) {
    test(`${kind}: save after 2 steps, load into a fresh optimizer, 2 more steps: identical to 4 uninterrupted steps`, () => {
      const straight = run(kind, 'bfloat16', 'cuda', 4);

      const first = makeParams('cuda', 'bfloat16');
      const opt = makeOptimizer(kind, first);
      for (let step = 0; step < 2; step++) {
        setGrads(first, step, 'cuda');
        opt.step();
        opt.zeroGrad();
      }
      // As a checkpoint would: tensors to the host, the rest through JSON.
      const saved = opt.stateDict();
      const dict: OptimizerStateDict = {
        tensors: new Map([...saved.tensors].map(([k, t]) => [k, t.to('cpu')])),
        meta: JSON.parse(JSON.stringify(saved.meta)),
      };
      const resumed = first.map((p) => Object.assign(p.detach().to('cpu').to('cuda').requiresGrad_(), { noWeightDecay: (p as { noWeightDecay?: boolean }).noWeightDecay }));
      const opt2 = makeOptimizer(kind, resumed);
      opt2.loadStateDict(dict);
      for (let step = 2; step < 4; step++) {
        setGrads(resumed, step, 'cuda');
        opt2.step();
        opt2.zeroGrad();
      }
      resumed.forEach((p, i) => assertClose(`${kind} resumed param ${i}`, p, straight.params[i]!.to('cpu'), 0));
      const a = opt2.stateDict().tensors;
      for (const [name, t] of straight.opt.stateDict().tensors) assertClose(`${kind} resumed ${name}`, a.get(name)!, t.to('cpu'), 0);
    });
  }
});

describe('DIMBA_FUSED_OPTIM', () => {
  test('=0 leaves the multi-tensor kernels out (nothing is launched or loaded)', () => {
    assert.equal(fusedOptimDisabled({ DIMBA_FUSED_OPTIM: '0' }), true);
    assert.equal(fusedOptimDisabled({}), false);
    const none: FusedKernels = optimKernels({} as CudaRuntime, { DIMBA_FUSED_OPTIM: '0' });
    assert.deepEqual(Object.keys(none), []);
  });
});
