/**
 * AdamW and CAME trajectories against test/fixtures/optim_reference.json, written by
 * test/fixtures/make_optim_fixture.py with PyTorch (torch.optim.AdamW, and CAME following the
 * authors' reference implementation) in float64.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tensor, type Tensor } from '../../src/index.js';
import type { DType } from '../../src/tensor/dtype.js';
import { AdamW, CAME, type Optimizer, type AdamWOptions, type CAMEOptions } from '../../src/optim/index.js';
import { assertClose } from './reference.js';

// dist/test/optim/ -> repository root.
const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/optim_reference.json', import.meta.url));

interface Fixture {
  steps: number;
  decayed: string[];
  adamw: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  came: { lr: number; betas: [number, number, number]; eps: [number, number]; clipThreshold: number; weightDecay: number };
  params: Record<string, { shape: number[]; init: number[] }>;
  grads: Record<string, number[]>[];
  trajectories: Record<'adamw' | 'came', Record<string, number[][]>>;
}

function loadFixture(): Fixture {
  if (!existsSync(FIXTURE)) {
    assert.fail(`${FIXTURE} is missing: run \`python3 test/fixtures/make_optim_fixture.py\` on the GPU machine (it needs torch) and commit its output`);
  }
  return JSON.parse(readFileSync(FIXTURE, 'utf8')) as Fixture;
}

type Build = (groups: { params: Tensor[]; weightDecay?: number }[], fx: Fixture) => Optimizer<AdamWOptions> | Optimizer<CAMEOptions>;

function runAgainst(kind: 'adamw' | 'came', build: Build, dtype: DType, rtol: number, atol: number): void {
  const fx = loadFixture();
  const names = Object.keys(fx.params);
  const params = new Map(names.map((n) => [n, tensor(fx.params[n]!.init, { shape: fx.params[n]!.shape, dtype, requiresGrad: true })]));
  const decayed = names.filter((n) => fx.decayed.includes(n)).map((n) => params.get(n)!);
  const exempt = names.filter((n) => !fx.decayed.includes(n)).map((n) => params.get(n)!);
  const opt = build([{ params: decayed }, { params: exempt, weightDecay: 0 }], fx);
  for (let step = 0; step < fx.steps; step++) {
    for (const [name, p] of params) p.grad = tensor(fx.grads[step]![name]!, { shape: [...p.shape], dtype });
    opt.step();
    for (const [name, p] of params) {
      assertClose(p.toArray(), fx.trajectories[kind][name]![step]!, `${kind} ${dtype} step ${step + 1} ${name}`, rtol, atol);
    }
  }
}

const adamw: Build = (groups, fx) => new AdamW(groups, { ...fx.adamw });
const came: Build = (groups, fx) => new CAME(groups, { ...fx.came });

describe('optimizers against the PyTorch fixture', () => {
  test('AdamW matches torch.optim.AdamW in float64', () => runAgainst('adamw', adamw, 'float64', 1e-12, 1e-14));
  test('AdamW float32 stays within float32 rounding of it', () => runAgainst('adamw', adamw, 'float32', 1e-5, 1e-6));
  test('CAME matches the reference algorithm in float64', () => runAgainst('came', came, 'float64', 1e-11, 1e-14));
  test('CAME float32 stays within float32 rounding of it', () => runAgainst('came', came, 'float32', 1e-4, 1e-6));
});
