/**
 * The CUDA selective scan against the CPU reference: output, final state and every gradient, for
 * each lane configuration of scan.cu (N up to 16, 32, 64, 128 states), several chunks of time
 * steps, grouped B/C, the optional inputs, and mixed dtypes as the Mamba mixer passes them.
 */
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { FLOATS, TOL, checkOp, cudaSkip, randomCpu } from './helpers.js';

const skip = cudaSkip;

/**
 * float32 gradients pass through a sequential recurrence over L and sums in another order
 * (atomicAdd across rows), so they get 1e-4; other dtypes keep their TOL (doubled for half types).
 */
const gradRtol = (dtype: DType) => (dtype === 'float32' ? 1e-4 : TOL[dtype] * (dtype === 'bfloat16' || dtype === 'float16' ? 2 : 1));

interface Case {
  readonly batch: number;
  readonly dim: number;
  readonly len: number;
  readonly nState: number;
  /** B/C groups (0: the [batch, N, L] form). */
  readonly groups: number;
  readonly z: boolean;
  readonly D: boolean;
  readonly bias: boolean;
  readonly softplus: boolean;
}

/** Inputs for one case: A negative (decaying states), delta positive without the softplus. */
function inputs(c: Case, dtype: DType, aDtype: DType = dtype): Tensor[] {
  const bc = c.groups === 0 ? [c.batch, c.nState, c.len] : [c.batch, c.groups, c.nState, c.len];
  const list = [
    randomCpu([c.batch, c.dim, c.len], dtype),
    randomCpu([c.batch, c.dim, c.len], dtype, c.softplus ? (v) => 0.5 * v - 1 : (v) => 0.05 + 0.1 * Math.abs(v)),
    randomCpu([c.dim, c.nState], aDtype, (v) => -Math.exp(0.5 * v)),
    randomCpu(bc, dtype),
    randomCpu(bc, dtype),
  ];
  if (c.D) list.push(randomCpu([c.dim], aDtype));
  if (c.z) list.push(randomCpu([c.batch, c.dim, c.len], dtype));
  if (c.bias) list.push(randomCpu([c.dim], aDtype, (v) => 0.3 * v));
  return list;
}

function scanFn(c: Case, lastState: boolean) {
  return (...xs: Tensor[]): Tensor | Tensor[] => {
    const [u, delta, A, B, C, ...rest] = xs as [Tensor, Tensor, Tensor, Tensor, Tensor, ...Tensor[]];
    let i = 0;
    const D = c.D ? rest[i++]! : null;
    const z = c.z ? rest[i++]! : null;
    const deltaBias = c.bias ? rest[i++]! : null;
    const options = { D, z, deltaBias, deltaSoftplus: c.softplus };
    return lastState
      ? ops.selectiveScan(u, delta, A, B, C, { ...options, returnLastState: true })
      : ops.selectiveScan(u, delta, A, B, C, options);
  };
}

const describe = (c: Case) => `B${c.batch} D${c.dim} L${c.len} N${c.nState} G${c.groups}${c.z ? ' z' : ''}${c.D ? ' D' : ''}${c.bias ? ' bias' : ''}${c.softplus ? ' softplus' : ''}`;

const FULL = { z: true, D: true, bias: true, softplus: true } as const;
const BARE = { z: false, D: false, bias: false, softplus: false } as const;

test('selectiveScan forward, final state and every gradient, each lane configuration and dtype', { skip }, async (t) => {
  const cases: Case[] = [
    // N <= 16: 16 lanes a row, 8 rows a block; L spans two chunks of 32 steps plus a tail.
    { batch: 2, dim: 5, len: 70, nState: 16, groups: 0, ...FULL },
    { batch: 1, dim: 3, len: 9, nState: 4, groups: 0, ...BARE },
    // 32 lanes, then 2 and 4 states a lane (chunks of 16 and 8 steps).
    { batch: 1, dim: 3, len: 41, nState: 23, groups: 0, ...FULL },
    { batch: 2, dim: 2, len: 35, nState: 40, groups: 0, ...FULL },
    { batch: 1, dim: 2, len: 19, nState: 70, groups: 0, ...BARE, z: true },
    // Grouped B/C: channels of one group share (and sum gradients into) one B/C row.
    { batch: 2, dim: 6, len: 33, nState: 8, groups: 3, ...FULL },
  ];
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const c of cases) {
        checkOp(`selectiveScan ${dtype} ${describe(c)}`, inputs(c, dtype), scanFn(c, false), { gradRtol: gradRtol(dtype) });
      }
      const c = cases[0]!;
      checkOp(`selectiveScan last state ${dtype} ${describe(c)}`, inputs(c, dtype), scanFn(c, true), { gradRtol: gradRtol(dtype) });
    });
  }
});

test('selectiveScan with half-precision activations and float32 A, D, deltaBias (the Mamba mixer layout)', { skip }, () => {
  const c: Case = { batch: 2, dim: 4, len: 37, nState: 16, groups: 0, ...FULL };
  for (const dtype of ['bfloat16', 'float16'] as const) {
    checkOp(`selectiveScan ${dtype} with float32 A ${describe(c)}`, inputs(c, dtype, 'float32'), scanFn(c, true), { gradRtol: gradRtol(dtype) });
  }
  // float32 activations with float64 parameters compute everything in float64.
  checkOp(`selectiveScan float32 with float64 A ${describe(c)}`, inputs(c, 'float32', 'float64'), scanFn(c, false), { gradRtol: 1e-4 });
});

test('selectiveScan of length 1 and of a single row', { skip }, () => {
  for (const c of [
    { batch: 1, dim: 1, len: 1, nState: 3, groups: 0, ...FULL },
    { batch: 1, dim: 1, len: 64, nState: 16, groups: 0, ...FULL },
  ]) {
    checkOp(`selectiveScan float32 ${describe(c)}`, inputs(c, 'float32'), scanFn(c, true), { gradRtol: 1e-4 });
  }
});
