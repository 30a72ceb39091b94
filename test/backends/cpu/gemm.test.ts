import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { dgemmReference, GemmArgumentError, PARALLEL_WORK, SMALL_WORK, sgemm, sgemmBatched } from '../../../src/backends/cpu/gemm/index.js';
import { runSgemm, runSgemmBatched } from '../../../src/backends/cpu/gemm/driver.js';
import { threadPool } from '../../../src/backends/cpu/threads/index.js';

// Jobs run with whichever workers are ready; wait for them so the threaded paths really use them.
before(() => {
  assert.ok(threadPool().waitUntilReady(30_000), 'CPU worker threads did not start');
});

/** Deterministic uniform values in [-1, 1). */
function randomFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

interface Problem {
  transA: boolean; transB: boolean; M: number; N: number; K: number;
  alpha?: number; beta?: number;
  /** Extra leading-dimension padding and offsets. */
  padA?: number; padB?: number; padC?: number; offA?: number; offB?: number; offC?: number;
}

interface Operands {
  A: Float32Array; offA: number; lda: number;
  B: Float32Array; offB: number; ldb: number;
  C: Float32Array; offC: number; ldc: number;
}

function makeOperands(p: Problem, seed: number, batch = 1, cFill?: number): Operands & { strideA: number; strideB: number; strideC: number } {
  const [aRows, aCols] = p.transA ? [p.K, p.M] : [p.M, p.K];
  const [bRows, bCols] = p.transB ? [p.N, p.K] : [p.K, p.N];
  const lda = aCols + (p.padA ?? 0);
  const ldb = bCols + (p.padB ?? 0);
  const ldc = p.N + (p.padC ?? 0);
  const strideA = aRows * lda + 5;
  const strideB = bRows * ldb + 3;
  const strideC = p.M * ldc + 7;
  const offA = p.offA ?? 0;
  const offB = p.offB ?? 0;
  const offC = p.offC ?? 0;
  const C = randomFloats(offC + batch * strideC, seed + 2);
  if (cFill !== undefined) C.fill(cFill);
  return {
    A: randomFloats(offA + batch * strideA, seed), offA, lda, strideA,
    B: randomFloats(offB + batch * strideB, seed + 1), offB, ldb, strideB,
    C, offC, ldc, strideC,
  };
}

/**
 * Checks C against the float64 reference with the fp32 error bound for K-term dot products:
 * |c - ref| <= (K + 2) * 2^-23 * (|alpha| * (|A| @ |B|) + |beta * C0|), elementwise.
 */
function assertMatchesReference(p: Problem, o: Operands, C0: Float32Array, label: string): void {
  const { M, N, K } = p;
  const alpha = p.alpha ?? 1;
  const beta = p.beta ?? 0;
  const f64 = (x: Float32Array): Float64Array => Float64Array.from(x);
  const ref = f64(C0);
  dgemmReference(p.transA, p.transB, M, N, K, alpha, f64(o.A), o.offA, o.lda, f64(o.B), o.offB, o.ldb, beta, ref, o.offC, o.ldc);
  const absC0 = Float64Array.from(C0, (v) => (beta === 0 ? 0 : Math.abs(beta * v)));
  const bound = new Float64Array(absC0.length);
  dgemmReference(p.transA, p.transB, M, N, K, Math.abs(alpha), f64(o.A.map(Math.abs)), o.offA, o.lda, f64(o.B.map(Math.abs)), o.offB, o.ldb, 0, bound, o.offC, o.ldc);
  let maxAbs = 0;
  let maxRel = 0;
  let first: string | undefined;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const at = o.offC + i * o.ldc + j;
      const err = Math.abs(o.C[at]! - ref[at]!);
      const tol = (K + 2) * 2 ** -23 * (bound[at]! + absC0[at]!) + 1e-30;
      maxAbs = Math.max(maxAbs, err);
      maxRel = Math.max(maxRel, err / (Math.abs(ref[at]!) + 1e-30));
      if (!(err <= tol) && first === undefined) first = `C[${i},${j}] = ${o.C[at]} vs reference ${ref[at]} (tolerance ${tol})`;
    }
  }
  // Elements outside the M x N window (padding, other batch entries) must be untouched.
  for (let at = 0; at < o.C.length; at++) {
    const r = at - o.offC;
    const inside = r >= 0 && Math.floor(r / o.ldc) < M && r % o.ldc < N;
    if (!inside && !Object.is(o.C[at], C0[at])) {
      first ??= `C element ${at} outside the output window changed from ${C0[at]} to ${o.C[at]}`;
      break;
    }
  }
  if (first !== undefined) {
    assert.fail(`${label} M=${M} N=${N} K=${K} transA=${p.transA} transB=${p.transB}: max abs err ${maxAbs.toExponential(3)}, max rel err ${maxRel.toExponential(3)}; first mismatch ${first}`);
  }
}

/** Runs sgemm (or, with `workspaceLimit`, the driver under that heap limit) and checks the result. */
function runProblem(p: Problem, seed: number, cFill?: number, workspaceLimit?: number): void {
  const o = makeOperands(p, seed, 1, cFill);
  const C0 = o.C.slice();
  const alpha = p.alpha ?? 1;
  const beta = p.beta ?? 0;
  if (workspaceLimit === undefined) {
    sgemm(p.transA, p.transB, p.M, p.N, p.K, alpha, o.A, o.offA, o.lda, o.B, o.offB, o.ldb, beta, o.C, o.offC, o.ldc);
  } else {
    runSgemm({ transA: p.transA, transB: p.transB, M: p.M, N: p.N, K: p.K, alpha, beta, ...o }, { workspaceLimit });
  }
  assertMatchesReference(p, o, C0, workspaceLimit === undefined ? 'sgemm' : `sgemm (workspace ${workspaceLimit} B)`);
}

const TRANSPOSES: Array<[boolean, boolean]> = [[false, false], [false, true], [true, false], [true, true]];

describe('sgemm', () => {
  test('thresholds order the paths', () => {
    assert.ok(SMALL_WORK < PARALLEL_WORK);
  });

  const sizes: Array<[number, number, number]> = [
    [1, 1, 1], [1, 7, 3], [3, 1, 5], [3, 5, 7], [8, 8, 8], // plain JS path
    [17, 63, 65], [63, 65, 17], [65, 3, 130], [1, 130, 63], // wasm, calling thread
    [130, 129, 131], [250, 17, 500], [13, 700, 260], // threaded, few tiles
  ];
  test('the size list covers every path', () => {
    const works = sizes.map(([M, N, K]) => M * N * K);
    assert.ok(works.some((w) => w <= SMALL_WORK) && works.some((w) => w > SMALL_WORK && w < PARALLEL_WORK));
    assert.ok(works.filter((w) => w >= PARALLEL_WORK).length >= 3);
  });
  for (const [transA, transB] of TRANSPOSES) {
    test(`odd sizes, transA=${transA} transB=${transB}`, () => {
      sizes.forEach(([M, N, K], i) => runProblem({ transA, transB, M, N, K }, 10 + i));
    });
    test(`leading dimensions, offsets, alpha and beta, transA=${transA} transB=${transB}`, () => {
      runProblem({ transA, transB, M: 19, N: 23, K: 31, alpha: 0.75, beta: -1.5, padA: 3, padB: 5, padC: 2, offA: 7, offB: 11, offC: 13 }, 1);
      runProblem({ transA, transB, M: 131, N: 70, K: 97, alpha: -2, beta: 0.5, padA: 1, padB: 9, padC: 4, offA: 3, offB: 1, offC: 5 }, 2);
      runProblem({ transA, transB, M: 4, N: 5, K: 6, alpha: 1, beta: 1, padA: 2, padB: 2, padC: 2, offA: 1, offB: 2, offC: 3 }, 3);
    });
    test(`large threaded problem, transA=${transA} transB=${transB}`, () => {
      runProblem({ transA, transB, M: 301, N: 259, K: 517, alpha: 1.25, beta: 0.25, padA: 4, padB: 1, padC: 3, offA: 2, offB: 5, offC: 1 }, 4);
    });
  }

  test('beta = 0 ignores NaN and Infinity in C', () => {
    for (const [M, N, K] of [[3, 4, 5], [40, 33, 50], [200, 130, 90]] as const) {
      runProblem({ transA: false, transB: false, M, N, K, beta: 0, padC: 3 }, 5, Number.NaN);
      runProblem({ transA: true, transB: false, M, N, K, alpha: 2, beta: 0 }, 6, Number.POSITIVE_INFINITY);
    }
  });

  test('alpha = 0 and K = 0 scale C by beta', () => {
    runProblem({ transA: false, transB: true, M: 20, N: 30, K: 40, alpha: 0, beta: 3 }, 7);
    runProblem({ transA: false, transB: false, M: 20, N: 30, K: 0, alpha: 1, beta: 0.5 }, 8);
    runProblem({ transA: true, transB: true, M: 9, N: 4, K: 0, alpha: 1, beta: 0 }, 9, Number.NaN);
  });

  test('problems larger than the workspace are split along M, N or K', () => {
    for (const [transA, transB] of TRANSPOSES) {
      runProblem({ transA, transB, M: 300, N: 20, K: 30, alpha: 0.5, beta: 2, padA: 1, padB: 2, padC: 3 }, 30, undefined, 32 * 1024);
      runProblem({ transA, transB, M: 20, N: 300, K: 30, alpha: 0.5, beta: 2, offA: 1, offB: 2, offC: 3 }, 31, undefined, 32 * 1024);
      runProblem({ transA, transB, M: 20, N: 30, K: 900, alpha: -1, beta: 0.5 }, 32, undefined, 32 * 1024);
      runProblem({ transA, transB, M: 200, N: 190, K: 180, beta: 0 }, 33, Number.NaN, 400 * 1024); // threaded parts
    }
  });

  test('M = 0 or N = 0 does nothing', () => {
    const C = new Float32Array([1, 2, 3]);
    sgemm(false, false, 0, 3, 4, 1, new Float32Array(0), 0, 4, new Float32Array(12), 0, 3, 0, C, 0, 3);
    sgemm(false, false, 1, 0, 4, 1, new Float32Array(4), 0, 4, new Float32Array(0), 0, 1, 0, C, 0, 1);
    assert.deepEqual(Array.from(C), [1, 2, 3]);
  });

  test('one thread (DIMBA_CPU_THREADS=1) takes the calling-thread path', () => {
    const saved = process.env['DIMBA_CPU_THREADS'];
    process.env['DIMBA_CPU_THREADS'] = '1';
    try {
      runProblem({ transA: false, transB: true, M: 200, N: 150, K: 120, alpha: 0.5, beta: 2 }, 11);
    } finally {
      if (saved === undefined) delete process.env['DIMBA_CPU_THREADS'];
      else process.env['DIMBA_CPU_THREADS'] = saved;
    }
  });

  test('rejects bad arguments, naming the op and the argument', () => {
    const A = new Float32Array(12);
    const B = new Float32Array(12);
    const C = new Float32Array(9);
    assert.throws(() => sgemm(false, false, 3, 3, 4, 1, A, 0, 3, B, 0, 3, 0, C, 0, 3), (e: unknown) => e instanceof GemmArgumentError && /sgemm: lda = 3/.test(e.message));
    assert.throws(() => sgemm(false, false, 3, 3, 4, 1, A, 1, 4, B, 0, 3, 0, C, 0, 3), (e: unknown) => e instanceof GemmArgumentError && /sgemm: A needs 13 elements/.test(e.message));
    assert.throws(() => sgemm(false, false, 3, 3, 4, 1, A, 0, 4, B, 0, 3, 0, C, 1, 3), /sgemm: C needs 10 elements/);
    assert.throws(() => sgemm(false, false, -1, 3, 4, 1, A, 0, 4, B, 0, 3, 0, C, 0, 3), /sgemm: M must be a non-negative integer/);
    assert.throws(() => sgemm(true, false, 3, 3, 4, 1, A, 0, 2, B, 0, 3, 0, C, 0, 3), /sgemm: lda = 2 is less than the 3 columns of A/);
  });
});

describe('sgemmBatched', () => {
  interface BatchOptions {
    shareB?: boolean; cFill?: number; path?: 'threads across entries' | 'threads within entries';
    /** Run the driver with this heap limit (batches then go in chunks). */
    workspaceLimit?: number;
  }
  function runBatch(p: Problem, batch: number, seed: number, { shareB = false, cFill, path, workspaceLimit }: BatchOptions = {}): void {
    const work = p.M * p.N * p.K;
    if (path === 'threads across entries') assert.ok(work < PARALLEL_WORK && work * batch >= PARALLEL_WORK, 'test sizes do not reach the path');
    if (path === 'threads within entries') assert.ok(work >= PARALLEL_WORK, 'test sizes do not reach the path');
    const o = makeOperands(p, seed, batch, cFill);
    const strideB = shareB ? 0 : o.strideB;
    const C0 = o.C.slice();
    if (workspaceLimit === undefined) {
      sgemmBatched(p.transA, p.transB, p.M, p.N, p.K, p.alpha ?? 1, o.A, o.offA, o.lda, o.strideA, o.B, o.offB, o.ldb, strideB,
        p.beta ?? 0, o.C, o.offC, o.ldc, o.strideC, batch);
    } else {
      runSgemmBatched({ transA: p.transA, transB: p.transB, M: p.M, N: p.N, K: p.K, alpha: p.alpha ?? 1, beta: p.beta ?? 0, ...o },
        { strideA: o.strideA, strideB, strideC: o.strideC, batch }, { workspaceLimit });
    }
    for (let b = 0; b < batch; b++) {
      const entry: Operands = { ...o, offA: o.offA + b * o.strideA, offB: o.offB + b * strideB, offC: o.offC + b * o.strideC };
      // Each entry is checked on its own window; the other entries' windows legitimately changed.
      const C0b = C0.slice();
      const Cb = o.C.slice();
      for (let other = 0; other < batch; other++) {
        if (other === b) continue;
        for (let i = 0; i < p.M; i++) {
          const s = o.offC + other * o.strideC + i * o.ldc;
          Cb.set(C0b.subarray(s, s + p.N), s);
        }
      }
      assertMatchesReference(p, { ...entry, C: Cb }, C0b, `sgemmBatched entry ${b}/${batch}`);
    }
  }

  for (const [transA, transB] of TRANSPOSES) {
    test(`small entries across threads, transA=${transA} transB=${transB}`, () => {
      runBatch({ transA, transB, M: 33, N: 45, K: 41, alpha: 0.5, beta: 0.25, padA: 1, padB: 2, padC: 3, offA: 1, offB: 2, offC: 3 }, 40, 20, { path: 'threads across entries' });
    });
  }
  test('shared B (stride 0), beta = 0 with NaN in C', () => {
    runBatch({ transA: false, transB: true, M: 48, N: 48, K: 24, beta: 0 }, 48, 21, { shareB: true, cFill: Number.NaN, path: 'threads across entries' });
  });
  test('batches larger than the workspace go in chunks', () => {
    runBatch({ transA: true, transB: false, M: 40, N: 41, K: 39, alpha: 1.5, beta: -1 }, 50, 24, { path: 'threads across entries', workspaceLimit: 120 * 1024 });
    runBatch({ transA: false, transB: true, M: 40, N: 41, K: 39, beta: 0 }, 50, 25, { shareB: true, cFill: Number.NaN, path: 'threads across entries', workspaceLimit: 100 * 1024 });
  });
  test('few tiny entries on the calling thread', () => {
    runBatch({ transA: true, transB: false, M: 3, N: 5, K: 7, alpha: 2, beta: 1 }, 5, 22);
  });
  test('large entries, each threaded', () => {
    runBatch({ transA: false, transB: false, M: 130, N: 120, K: 140, beta: 1 }, 2, 23, { path: 'threads within entries' });
  });
  test('batch = 0 does nothing; bad strides are rejected', () => {
    const C = new Float32Array([5]);
    sgemmBatched(false, false, 1, 1, 1, 1, new Float32Array(1), 0, 1, 1, new Float32Array(1), 0, 1, 1, 0, C, 0, 1, 1, 0);
    assert.equal(C[0], 5);
    assert.throws(() => sgemmBatched(false, false, 2, 2, 2, 1, new Float32Array(8), 0, 2, 4, new Float32Array(8), 0, 2, 4, 0, new Float32Array(7), 0, 2, 4, 2),
      /sgemmBatched: C needs 8 elements/);
  });
});
