/**
 * The CUDA selective scan against the CPU reference: output, final state and every gradient, for
 * each lane configuration of scan.cu (N up to 16, 32, 64, 128 states), several chunks of time
 * steps, grouped B/C, the optional inputs, mixed dtypes as the Mamba mixer passes them, long
 * sequences, partly filled blocks, and the mixer's strided (transposed, narrowed, flipped) views;
 * and with A given as A_log (aLog: A = -exp(A_log) in-kernel, the gradient w.r.t. A_log).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { FLOATS, TOL, assertClose, checkOp, cudaSkip, randomCpu } from './helpers.js';

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
  /** A passed as A_log (aLog). */
  readonly aLog?: boolean;
}

/**
 * Inputs for one case: A negative (decaying states; with aLog, A_log such that -exp(A_log) is
 * that A), delta positive without the softplus.
 */
function inputs(c: Case, dtype: DType, aDtype: DType = dtype): Tensor[] {
  const bc = c.groups === 0 ? [c.batch, c.nState, c.len] : [c.batch, c.groups, c.nState, c.len];
  const list = [
    randomCpu([c.batch, c.dim, c.len], dtype),
    randomCpu([c.batch, c.dim, c.len], dtype, c.softplus ? (v) => 0.5 * v - 1 : (v) => 0.05 + 0.1 * Math.abs(v)),
    randomCpu([c.dim, c.nState], aDtype, c.aLog ? (v) => 0.5 * v : (v) => -Math.exp(0.5 * v)),
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
    const options = { D, z, deltaBias, deltaSoftplus: c.softplus, aLog: c.aLog ?? false };
    return lastState
      ? ops.selectiveScan(u, delta, A, B, C, { ...options, returnLastState: true })
      : ops.selectiveScan(u, delta, A, B, C, options);
  };
}

const describe = (c: Case) => `B${c.batch} D${c.dim} L${c.len} N${c.nState} G${c.groups}${c.z ? ' z' : ''}${c.D ? ' D' : ''}${c.bias ? ' bias' : ''}${c.softplus ? ' softplus' : ''}${c.aLog ? ' aLog' : ''}`;

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

test('selectiveScan: long sequences, partly filled blocks, N = 8 and 16, groups', { skip }, async (t) => {
  const cases: Case[] = [
    // 4096 steps: 256 chunks, with the chunk-entry states of the backward in a global buffer.
    { batch: 1, dim: 5, len: 4096, nState: 16, groups: 0, ...FULL },
    // 3 x 37 rows: blocks of 32 channels, the second of each batch entry partly filled; L % 4 != 0
    // (dB/dC by scalar atomics) and L % 4 == 0 (vector atomics).
    { batch: 3, dim: 37, len: 77, nState: 16, groups: 0, ...FULL },
    { batch: 2, dim: 37, len: 64, nState: 16, groups: 0, ...FULL },
    { batch: 2, dim: 40, len: 100, nState: 8, groups: 0, ...FULL },
    // Groups of exactly one block, of several blocks, and of a partial block.
    { batch: 2, dim: 64, len: 48, nState: 16, groups: 2, ...FULL },
    { batch: 1, dim: 160, len: 40, nState: 16, groups: 2, ...FULL },
    { batch: 2, dim: 12, len: 33, nState: 8, groups: 4, ...FULL },
  ];
  for (const dtype of ['float32', 'bfloat16'] as const) {
    await t.test(dtype, () => {
      for (const c of cases) {
        checkOp(`selectiveScan ${dtype} ${describe(c)}`, inputs(c, dtype, 'float32'), scanFn(c, true), { gradRtol: gradRtol(dtype) });
      }
    });
  }
});

/**
 * The Mamba mixer passes views, not contiguous tensors: delta is dt_proj's [B, L, D] output
 * transposed, z the second half of in_proj's [B, L, 2D] output transposed (and flipped for the
 * backward direction), B and C slices of x_proj's [B, L, R + 2N] output transposed, and the
 * gradient of the output arrives transposed and flipped. The kernels read all of them through
 * their strides; this runs that layout at Dimba-L-2's widths cut down (D = 2304 / 8, L = 256).
 */
test('selectiveScan on the Mamba mixer\'s strided views (bf16 and float32, Dimba-like shape)', { skip }, async (t) => {
  const R = 5;
  for (const [dtype, batch, dim, len, flipped] of [
    ['bfloat16', 2, 288, 256, false], ['bfloat16', 2, 288, 256, true], ['float32', 1, 72, 130, true],
  ] as const) {
    await t.test(`${dtype} B${batch} D${dim} L${len}${flipped ? ' flipped' : ''}`, () => {
      const N = 16;
      const bases = [
        randomCpu([batch, dim, len], dtype),                                   // u (the conv output, contiguous)
        randomCpu([batch, len, dim], dtype, (v) => 0.5 * v - 1),              // dt_proj output [B, L, D]
        randomCpu([dim, N], 'float32', (v) => -Math.exp(0.5 * v)),             // A
        randomCpu([batch, len, R + 2 * N], dtype),                            // x_proj output [B, L, R + 2N]
        randomCpu([batch, len, 2 * dim], dtype),                              // in_proj output [B, L, 2D]
        randomCpu([dim], 'float32'),                                          // D
        randomCpu([dim], 'float32', (v) => 0.3 * v),                          // dt bias
      ];
      const f = (...xs: Tensor[]): Tensor => {
        const [u, dBase, A, dbc, xz, D, bias] = xs as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
        const flip = (x: Tensor) => (flipped ? ops.flip(x, [2]) : x);
        const delta = ops.transpose(dBase, 1, 2);
        const z = flip(ops.narrow(ops.transpose(xz, 1, 2), 1, dim, dim));
        const B = ops.transpose(ops.narrow(dbc, 2, R, N), 1, 2);
        const C = ops.transpose(ops.narrow(dbc, 2, R + N, N), 1, 2);
        const out = ops.selectiveScan(u, delta, A, B, C, { D, z, deltaBias: bias, deltaSoftplus: true });
        // The loss reads the output transposed and flipped, so its gradient arrives as such a view.
        return ops.transpose(ops.flip(out, [2]), 1, 2);
      };
      checkOp(`selectiveScan mixer views ${dtype}`, bases, f, { gradRtol: gradRtol(dtype) });
    });
  }
});

/**
 * A given as A_log (the Mamba mixer's call since the exp/neg launches were folded in): against the
 * CPU for each lane configuration, the split layout a small batch takes and the wide one (B4
 * D3200 fills the device: 400 blocks), float64 and the mixer's bf16 with float32 A_log; and
 * against the explicit selectiveScan(…, neg(exp(A_log)), …) on the GPU itself.
 */
test('selectiveScan with aLog (A = -exp(A_log)): every gradient, each lane configuration and layout', { skip }, async (t) => {
  const cases: [Case, DType, DType][] = [
    [{ batch: 2, dim: 5, len: 70, nState: 16, groups: 0, ...FULL, aLog: true }, 'float32', 'float32'],
    [{ batch: 1, dim: 3, len: 41, nState: 23, groups: 0, ...FULL, aLog: true }, 'float32', 'float32'],
    [{ batch: 2, dim: 2, len: 35, nState: 40, groups: 0, ...FULL, aLog: true }, 'float32', 'float32'],
    [{ batch: 1, dim: 2, len: 19, nState: 70, groups: 0, ...BARE, z: true, aLog: true }, 'float32', 'float32'],
    [{ batch: 2, dim: 6, len: 33, nState: 5, groups: 3, ...FULL, aLog: true }, 'float32', 'float32'],
    [{ batch: 2, dim: 5, len: 30, nState: 16, groups: 0, ...FULL, aLog: true }, 'float64', 'float64'],
    [{ batch: 2, dim: 40, len: 41, nState: 16, groups: 0, ...FULL, aLog: true }, 'bfloat16', 'float32'],
    [{ batch: 4, dim: 3200, len: 20, nState: 16, groups: 0, ...FULL, aLog: true }, 'bfloat16', 'float32'],
  ];
  for (const [c, dtype, aDtype] of cases) {
    await t.test(`${dtype} (A_log ${aDtype}) ${describe(c)}`, () => {
      checkOp(`selectiveScan aLog ${dtype} ${describe(c)}`, inputs(c, dtype, aDtype), scanFn(c, true), { gradRtol: gradRtol(dtype) });
    });
  }
});

test('selectiveScan with aLog on the GPU equals the explicit neg(exp(A_log)) there', { skip }, async (t) => {
  for (const [c, dtype] of [
    [{ batch: 2, dim: 40, len: 70, nState: 16, groups: 0, ...FULL, aLog: true }, 'float32'],
    [{ batch: 2, dim: 40, len: 41, nState: 16, groups: 0, ...FULL, aLog: true }, 'bfloat16'],
  ] as const) {
    await t.test(`${dtype} ${describe(c)}`, () => {
      const leaves = inputs(c, dtype, 'float32').map((x) => x.to('cuda').requiresGrad_(true));
      const w = randomCpu([c.batch, c.dim, c.len], 'float32').to('cuda');
      const run = (aLog: boolean) => {
        leaves.forEach((x) => { x.grad = null; });
        const [u, delta, ALog, B, C, D, z, bias] = leaves as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
        const A = aLog ? ALog : ops.neg(ops.exp(ALog));
        const out = ops.selectiveScan(u, delta, A, B, C, { D, z, deltaBias: bias, deltaSoftplus: true, aLog });
        ops.sum(ops.mul(ops.cast(out, 'float32'), w)).backward();
        return { out, grads: leaves.map((x) => x.grad!) };
      };
      const fused = run(true);
      const explicit = run(false);
      // The same float32 A either way (the kernel's exp is the exp kernel's expf).
      assert.deepEqual(Array.from(fused.out.to('cpu').toFloat64Array()), Array.from(explicit.out.to('cpu').toFloat64Array()), 'output');
      fused.grads.forEach((g, i) => {
        // Gradients summed with atomics come in another order each run; dA_log is rounded once, not twice.
        assertClose(`gradient of input ${i}`, g.to('cpu'), explicit.grads[i]!.to('cpu'), dtype === 'float32' ? 1e-5 : 1e-2);
      });
    });
  }
});
