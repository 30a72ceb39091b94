/**
 * selectiveScan with aLog: the A operand is A_log and the scan uses A = -exp(A_log). Checked
 * against the explicit composition selectiveScan(…, neg(exp(A_log)), …) (values and every
 * gradient), by finite differences for A_log, on both CPU routes (the reference loops for small
 * problems, the thread-pool kernels above FAST_SCAN_WORK state updates) and through
 * selectiveScanPair.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { FAST_SCAN_WORK, PARALLEL_SCAN_WORK } from '../../src/backends/cpu/kernels/scan.js';
import type { ScanInputs } from '../../src/backends/backend.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

interface Case {
  readonly name: string;
  readonly batch: number;
  readonly dim: number;
  readonly len: number;
  readonly nState: number;
  /** null: B and C given as [batch, N, L]. */
  readonly groups: number | null;
  readonly softplus: boolean;
  /** D, z and deltaBias present. */
  readonly full: boolean;
}

const NAMES = ['u', 'delta', 'A_log', 'B', 'C', 'D', 'z', 'deltaBias'] as const;

/** Leaf tensors in NAMES order (the last three only when c.full), A_log around log(1..N) as S4D-real. */
function leaves(c: Case, seed: number, dtype: T.DType = 'float64'): T.Tensor[] {
  const bc = c.groups === null ? [c.batch, c.nState, c.len] : [c.batch, c.groups, c.nState, c.len];
  const row = [c.batch, c.dim, c.len];
  const all = [
    rand64(row, seed), rand64(row, seed + 1, 0.3, c.softplus ? -0.5 : 0.6), rand64([c.dim, c.nState], seed + 2, 0.5, 0.3),
    rand64(bc, seed + 3), rand64(bc, seed + 4), rand64([c.dim], seed + 5), rand64(row, seed + 6), rand64([c.dim], seed + 7, 0.3),
  ].slice(0, c.full ? 8 : 5);
  return dtype === 'float64' ? all : all.map((t) => T.cast(t.detach(), dtype).requiresGrad_());
}

/** The scan of leaves xs, A given as A_log (aLog) or formed by the explicit -exp ops. */
function scanOf(c: Case, aLog: boolean) {
  return (...xs: T.Tensor[]): T.Tensor => {
    const [u, delta, ALog, B, C, D, z, bias] = xs as [T.Tensor, T.Tensor, T.Tensor, T.Tensor, T.Tensor, T.Tensor?, T.Tensor?, T.Tensor?];
    const A = aLog ? ALog : T.neg(T.exp(ALog));
    return T.selectiveScan(u, delta, A, B, C, { D: D ?? null, z: z ?? null, deltaBias: bias ?? null, deltaSoftplus: c.softplus, aLog });
  };
}

const work = (c: Case) => c.batch * c.dim * c.len * c.nState;

/** Largest |a - e| / (|e| + mean |e|) (0 for identical arrays). */
function relErr(actual: Float64Array, expected: Float64Array): number {
  assert.equal(actual.length, expected.length);
  let scale = 0;
  for (const v of expected) scale += Math.abs(v);
  scale = expected.length ? scale / expected.length : 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i]! - expected[i]!) / (Math.abs(expected[i]!) + scale || 1);
    if (!(e <= worst)) worst = e;
  }
  return worst;
}

/** Output and every leaf's gradient (loss = Σ out · w) of the scan with and without aLog. */
function bothWays(c: Case, seed: number, dtype: T.DType): { name: string; flag: Float64Array; explicit: Float64Array }[] {
  const runs = [true, false].map((aLog) => {
    const xs = leaves(c, seed, dtype);
    const out = scanOf(c, aLog)(...xs);
    const w = T.cast(rand64([...out.shape], seed + 99).detach(), out.dtype);
    T.sum(T.mul(out, w)).backward();
    return { out: out.toFloat64Array(), grads: xs.map((x) => x.grad!.toFloat64Array()), dtype: xs.map((x) => x.grad!.dtype) };
  });
  const [flag, explicit] = runs as [typeof runs[0], typeof runs[0]];
  flag.dtype.forEach((d, i) => assert.equal(d, dtype, `${c.name}: the gradient of ${NAMES[i]} is ${dtype}`));
  return [
    { name: 'out', flag: flag.out, explicit: explicit.out },
    ...flag.grads.map((g, i) => ({ name: `d${NAMES[i]}`, flag: g, explicit: explicit.grads[i]! })),
  ];
}

// Small problems run the reference loops; the others the thread-pool route (the caller only,
// then the whole pool), which forms A and chains dA separately.
const CASES: Case[] = [
  { name: 'reference, every option', batch: 2, dim: 3, len: 7, nState: 4, groups: null, softplus: true, full: true },
  { name: 'reference, bare, 2 groups', batch: 2, dim: 4, len: 6, nState: 3, groups: 2, softplus: false, full: false },
  { name: 'thread pool (caller), every option', batch: 2, dim: 16, len: 40, nState: 16, groups: null, softplus: true, full: true },
  { name: 'thread pool (all threads), 2 groups', batch: 2, dim: 32, len: 130, nState: 16, groups: 2, softplus: true, full: true },
];

describe('selectiveScan aLog equals the explicit A = -exp(A_log)', () => {
  test('the cases cover both CPU routes', () => {
    assert.ok(work(CASES[0]!) < FAST_SCAN_WORK && work(CASES[1]!) < FAST_SCAN_WORK);
    assert.ok(work(CASES[2]!) >= FAST_SCAN_WORK && work(CASES[2]!) < PARALLEL_SCAN_WORK);
    assert.ok(work(CASES[3]!) >= PARALLEL_SCAN_WORK);
  });

  for (const c of CASES) {
    test(`float64, ${c.name}: output and every gradient`, () => {
      for (const r of bothWays(c, 100, 'float64')) {
        const err = relErr(r.flag, r.explicit);
        assert.ok(err <= 1e-14, `${c.name} ${r.name}: relative error ${err.toExponential(2)} against the explicit -exp`);
      }
    });
    // float32 compute (the wasm kernels on the pool route): A is the same float32 value either
    // way; dA_log is rounded once instead of twice.
    test(`float32, ${c.name}: output and every gradient`, () => {
      for (const r of bothWays(c, 200, 'float32')) {
        const err = relErr(r.flag, r.explicit);
        assert.ok(err <= (r.name === 'dA_log' ? 1e-6 : 1e-7), `${c.name} ${r.name}: relative error ${err.toExponential(2)}`);
      }
    });
  }

  test('the flag matters: A_log read as A gives another output', () => {
    const c = CASES[0]!;
    const xs = leaves(c, 300);
    const asLog = scanOf(c, true)(...xs).toFloat64Array();
    const [u, delta, ALog, B, C, D, z, bias] = xs;
    const asA = T.selectiveScan(u!, delta!, ALog!, B!, C!, { D, z, deltaBias: bias, deltaSoftplus: true }).toFloat64Array();
    assert.ok(relErr(asA, asLog) > 1e-2, 'aLog changes the scan');
  });

  test('the last state too', () => {
    const c = CASES[2]!;
    const xs = leaves(c, 400);
    const last = (aLog: boolean) => {
      const [u, delta, ALog, B, C] = xs as [T.Tensor, T.Tensor, T.Tensor, T.Tensor, T.Tensor];
      const A = aLog ? ALog : T.neg(T.exp(ALog));
      return T.selectiveScan(u, delta, A, B, C, { deltaSoftplus: true, aLog, returnLastState: true })[1].toFloat64Array();
    };
    assert.ok(relErr(last(true), last(false)) <= 1e-14);
  });
});

describe('selectiveScan aLog gradients (float64 finite differences)', () => {
  for (const c of CASES.slice(0, 2)) {
    test(`every input, ${c.name}`, () => {
      gradcheck(`selectiveScan aLog ${c.name}`, scanOf(c, true), leaves(c, 500));
    });
  }

  test('A_log through a reverse-time scan as well (the bidirectional mixer)', () => {
    const c: Case = { name: 'bidirectional', batch: 1, dim: 3, len: 5, nState: 3, groups: null, softplus: true, full: false };
    const flipL = (x: T.Tensor) => T.flip(x, [-1]);
    const [u, delta, , B, C] = leaves(c, 600);
    const ALogF = rand64([3, 3], 610, 0.5, 0.3);
    const ALogB = rand64([3, 3], 620, 0.5, 0.3);
    gradcheck('bidirectional aLog', (aF, aB) => T.add(
      T.selectiveScan(u!, delta!, aF!, B!, C!, { deltaSoftplus: true, aLog: true }),
      flipL(T.selectiveScan(flipL(u!), flipL(delta!), aB!, flipL(B!), flipL(C!), { deltaSoftplus: true, aLog: true })),
    ), [ALogF, ALogB]);
  });
});

describe('selectiveScanPair with aLog', () => {
  const c: Case = { name: 'pair', batch: 2, dim: 3, len: 9, nState: 4, groups: null, softplus: true, full: true };
  const call = (xs: T.Tensor[], aLog: boolean): T.SelectiveScanCall => {
    const [u, delta, ALog, B, C, D, z, bias] = xs.map((x) => x.detach()) as T.Tensor[];
    return { u: u!, delta: delta!, A: aLog ? ALog! : T.neg(T.exp(ALog!)), B: B!, C: C!, options: { D, z, deltaBias: bias, deltaSoftplus: true, aLog } };
  };
  const [xa, xb] = [leaves(c, 700), leaves(c, 800)];
  const explicit = (xs: T.Tensor[]) => T.selectiveScanCall(call(xs, false)).toFloat64Array();

  test('without the fused kernel: each scan as the explicit -exp one', () => {
    const [ya, yb] = T.selectiveScanPair(call(xa, true), call(xb, true));
    assert.ok(relErr(ya.toFloat64Array(), explicit(xa)) <= 1e-14);
    assert.ok(relErr(yb.toFloat64Array(), explicit(xb)) <= 1e-14);
    // One direction with A_log, the other with A: each keeps its own form.
    const [ma, mb] = T.selectiveScanPair(call(xa, true), call(xb, false));
    assert.ok(relErr(ma.toFloat64Array(), explicit(xa)) <= 1e-14);
    assert.ok(relErr(mb.toFloat64Array(), explicit(xb)) <= 1e-14);
  });

  test('the fused kernel receives the flag of each problem', () => {
    const backend = xa[0]!.backend;
    const fused = backend.fused;
    const saved = fused.selectiveScanPair;
    const seen: [boolean | undefined, boolean | undefined][] = [];
    fused.selectiveScanPair = (a: ScanInputs, b: ScanInputs, outA, outB) => {
      seen.push([a.aLog, b.aLog]);
      backend.kernels.selectiveScan(a, outA, null);
      backend.kernels.selectiveScan(b, outB, null);
      return true;
    };
    try {
      const [ya, yb] = T.noGrad(() => T.selectiveScanPair(call(xa, true), call(xb, true)));
      assert.deepEqual(seen, [[true, true]]);
      assert.ok(relErr(ya.toFloat64Array(), explicit(xa)) <= 1e-14);
      assert.ok(relErr(yb.toFloat64Array(), explicit(xb)) <= 1e-14);
    } finally {
      if (saved) fused.selectiveScanPair = saved;
      else delete fused.selectiveScanPair;
    }
  });
});
