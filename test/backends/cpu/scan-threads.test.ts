/**
 * The selective scan on the thread pool (src/backends/cpu/scan) against the single-threaded
 * reference loops of kernels/scan.ts: bit-identical for float64 operands; for float32 operands
 * (float32 compute: WebAssembly state loops, fast exp) within float32 tolerance; independent of
 * the number of threads either way. Sizes are above PARALLEL_SCAN_WORK so the kernel table's own
 * dispatch takes the threaded path too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/index.js';
import type { ScanGrads, ScanInputs } from '../../../src/backends/backend.js';
import { ThreadPool } from '../../../src/backends/cpu/threads/index.js';
import { expFast } from '../../../src/backends/cpu/kernels/math.js';
import {
  PARALLEL_SCAN_WORK, scanKernels, selectiveScanBackwardReference, selectiveScanReference,
} from '../../../src/backends/cpu/kernels/scan.js';
import { selectiveScanBackwardParallel, selectiveScanParallel } from '../../../src/backends/cpu/scan/index.js';

interface Case {
  batch: number; dim: number; len: number;
  /** Not a multiple of 4: the state loops' remainder path runs too. */
  nState: number;
  groups: number;
  optional: boolean;
}

function makeInputs(c: Case, dtype: T.DType, seed: number): ScanInputs {
  const g = new T.Generator(seed);
  const randn = (shape: number[], scale = 1, shift = 0) =>
    T.add(T.mul(T.randn(shape, { dtype: 'float64', generator: g }), scale), shift);
  const cast = (t: T.Tensor) => T.contiguous(T.cast(t, dtype));
  const rows = [c.batch, c.dim, c.len];
  const bc = [c.batch, c.groups, c.nState, c.len];
  return {
    u: cast(randn(rows)),
    // Without the softplus, Δ must be positive for exp(Δ A) to be a decay.
    delta: cast(c.optional ? randn(rows, 0.5, -1) : randn(rows, 0.05, 0.3)),
    A: cast(T.neg(T.exp(randn([c.dim, c.nState], 0.5)))),
    B: cast(randn(bc)),
    C: cast(randn(bc)),
    D: c.optional ? cast(randn([c.dim])) : null,
    z: c.optional ? cast(randn(rows)) : null,
    deltaBias: c.optional ? cast(randn([c.dim], 0.3)) : null,
    deltaSoftplus: c.optional,
  };
}

interface Outputs { out: T.Tensor; last: T.Tensor; grads: ScanGrads }

type Runner = {
  forward(inputs: ScanInputs, out: T.Tensor, last: T.Tensor): void;
  backward(inputs: ScanInputs, gy: T.Tensor, grads: ScanGrads): void;
};

function run(inputs: ScanInputs, gy: T.Tensor, runner: Runner): Outputs {
  const like = (t: T.Tensor) => T.empty(t.shape, { dtype: t.dtype });
  const [batch, dim] = inputs.u.shape as [number, number, number];
  const out = like(inputs.u);
  const last = T.empty([batch, dim, inputs.A.shape[1]!], { dtype: inputs.u.dtype === 'float64' ? 'float64' : 'float32' });
  runner.forward(inputs, out, last);
  const grads: ScanGrads = {
    du: like(inputs.u), ddelta: like(inputs.delta), dA: like(inputs.A), dB: like(inputs.B), dC: like(inputs.C),
    dD: inputs.D && like(inputs.D), dz: inputs.z && like(inputs.z), ddeltaBias: inputs.deltaBias && like(inputs.deltaBias),
  };
  runner.backward(inputs, gy, grads);
  return { out, last, grads };
}

const reference: Runner = { forward: selectiveScanReference, backward: selectiveScanBackwardReference };
const onPool = (pool: ThreadPool): Runner => ({
  forward: (inputs, out, last) => assert.ok(selectiveScanParallel(inputs, out, last, pool), 'the forward fits the arena'),
  backward: (inputs, gy, grads) => assert.ok(selectiveScanBackwardParallel(inputs, gy, grads, pool), 'the backward fits the arena'),
});
const kernelTable: Runner = { forward: scanKernels.selectiveScan, backward: scanKernels.selectiveScanBackward };

function named(o: Outputs): [string, T.Tensor][] {
  const list: [string, T.Tensor | null][] = [
    ['out', o.out], ['last state', o.last], ['du', o.grads.du], ['ddelta', o.grads.ddelta], ['dA', o.grads.dA],
    ['dB', o.grads.dB], ['dC', o.grads.dC], ['dD', o.grads.dD], ['dz', o.grads.dz], ['ddeltaBias', o.grads.ddeltaBias],
  ];
  return list.filter((e): e is [string, T.Tensor] => e[1] !== null);
}

/** Compares every output; tol = 0 demands identical bits. Fails with the first mismatch and the worst error. */
function assertSame(label: string, got: Outputs, want: Outputs, tol: number): void {
  const wanted = new Map(named(want));
  for (const [name, t] of named(got)) {
    const a = t.toFloat64Array();
    const b = wanted.get(name)!.toFloat64Array();
    assert.equal(a.length, b.length, `${label} ${name}: length`);
    let scale = 0;
    for (const v of b) scale = Math.max(scale, Math.abs(v));
    if (tol > 0) assert.ok(Number.isFinite(scale), `${label} ${name}: the test data overflowed`);
    let worst = 0;
    let worstAt = -1;
    for (let i = 0; i < a.length; i++) {
      const err = Math.abs(a[i]! - b[i]!);
      const bad = !Object.is(a[i], b[i]) && (tol === 0 || !(err <= tol * (scale + Math.abs(b[i]!))));
      if (bad && (worstAt < 0 || err > worst)) { worst = err; worstAt = i; }
    }
    assert.ok(worstAt < 0, `${label} ${name} [${t.shape.join(', ')}]: element ${worstAt} is ${a[worstAt]}, expected ${b[worstAt]} `
      + `(worst abs error ${worst}, scale ${scale})`);
  }
}

const cases: Case[] = [
  { batch: 3, dim: 24, len: 110, nState: 18, groups: 2, optional: true },
  { batch: 2, dim: 20, len: 130, nState: 27, groups: 1, optional: false },
  // Odd channels per group: the float32 path pairs channels and leaves one per group to JS.
  { batch: 2, dim: 15, len: 340, nState: 13, groups: 3, optional: true },
];

describe('threaded selective scan', () => {
  const two = new ThreadPool(2);
  const one = new ThreadPool(1);
  before(() => assert.ok(two.waitUntilReady(30_000), 'worker thread did not start'));
  after(() => {
    two.destroy();
    one.destroy();
  });

  for (const c of cases) {
    const label = `B=${c.batch} D=${c.dim} L=${c.len} N=${c.nState} G=${c.groups}${c.optional ? ', D, z, deltaBias, softplus' : ', no options'}`;
    assert.ok(c.batch * c.dim * c.len * c.nState >= PARALLEL_SCAN_WORK, `${label} is large enough to be threaded`);

    test(`float64 equals the reference bit for bit (${label})`, () => {
      const inputs = makeInputs(c, 'float64', 1);
      const gy = T.randn(inputs.u.shape, { dtype: 'float64', generator: new T.Generator(2) });
      const want = run(inputs, gy, reference);
      assertSame('2 threads', run(inputs, gy, onPool(two)), want, 0);
      assertSame('1 thread', run(inputs, gy, onPool(one)), want, 0);
      assertSame('kernel table', run(inputs, gy, kernelTable), want, 0);
    });

    test(`float32 compute: within float32 tolerance of the reference, same bits on any thread count (${label})`, () => {
      const inputs = makeInputs(c, 'float32', 3);
      const gy = T.randn(inputs.u.shape, { generator: new T.Generator(4) });
      const threaded = run(inputs, gy, onPool(two));
      assertSame('2 vs 1 thread', threaded, run(inputs, gy, onPool(one)), 0);
      // Float32 states over L steps and float32 sums over N and a group's channels: a few float32
      // ulps of each tensor's largest element.
      assertSame('vs reference', threaded, run(inputs, gy, reference), 2e-6);
    });
  }

  test('the result does not depend on which thread took which item (repeated runs)', () => {
    const inputs = makeInputs(cases[0]!, 'float32', 5);
    const gy = T.randn(inputs.u.shape, { generator: new T.Generator(6) });
    const first = run(inputs, gy, onPool(two));
    for (let i = 0; i < 3; i++) assertSame(`run ${i + 2}`, run(inputs, gy, onPool(two)), first, 0);
  });
});

describe('expFast', () => {
  test('relative error below 1e-10 over the range the scan uses and beyond', () => {
    let worst = 0;
    let at = 0;
    for (let i = 0; i <= 200_000; i++) {
      const x = -700 + i * (1400 / 200_000) + 1e-3 * Math.sin(i);
      const err = Math.abs(expFast(x) / Math.exp(x) - 1);
      if (err > worst) { worst = err; at = x; }
    }
    assert.ok(worst < 1e-10, `worst relative error ${worst} at x = ${at}`);
  });

  test('limits and special values follow Math.exp', () => {
    for (const x of [0, -0, 1, -1, 709, -708, 709.5, 710, -708.5, -745, -746, Infinity, -Infinity]) {
      const want = Math.exp(x);
      const got = expFast(x);
      assert.ok(got === want || Math.abs(got / want - 1) < 1e-10, `expFast(${x}) = ${got}, Math.exp = ${want}`);
    }
    assert.ok(Number.isNaN(expFast(NaN)));
    assert.equal(expFast(0), 1);
  });
});
