/**
 * Double-precision reference updates written out element by element from the papers / torch
 * docs, independent of the engine, plus comparison helpers for the optimizer tests.
 */
import assert from 'node:assert/strict';

export interface RefParam {
  shape: number[];
  w: number[];
}

/** Asserts |a - b| <= atol + rtol |b| elementwise, naming the first mismatch. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-12, atol = 1e-14): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - (atol + rtol * Math.abs(expected[i]!));
    if (!(err <= 0) && (worstAt < 0 || err > worst)) { worst = err; worstAt = i; }
  }
  if (worstAt >= 0) {
    assert.fail(`${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Deterministic pseudo-random numbers in [-1, 1) (an LCG), so references need no engine RNG. */
export function lcgValues(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

export interface AdamWRefState { m: number[]; v: number[]; t: number }

/** torch.optim.AdamW's step for one parameter, in float64. */
export function adamwRefStep(w: number[], g: readonly number[], s: AdamWRefState,
  o: { lr: number; betas: readonly [number, number]; eps: number; weightDecay: number }): void {
  const [b1, b2] = o.betas;
  s.t += 1;
  const bc1 = 1 - b1 ** s.t;
  const bc2 = 1 - b2 ** s.t;
  for (let i = 0; i < w.length; i++) {
    w[i] = w[i]! * (1 - o.lr * o.weightDecay);
    s.m[i] = s.m[i]! + (1 - b1) * (g[i]! - s.m[i]!);
    s.v[i] = b2 * s.v[i]! + (1 - b2) * g[i]! * g[i]!;
    const denom = Math.sqrt(s.v[i]!) / Math.sqrt(bc2) + o.eps;
    w[i] = w[i]! - (o.lr / bc1) * (s.m[i]! / denom);
  }
}

export interface CameRefState { m: number[]; v: number[]; vr: number[]; vc: number[]; rr: number[]; rc: number[] }

export function cameRefState(shape: readonly number[]): CameRefState {
  const n = shape.reduce((a, b) => a * b, 1);
  const { batch, rows, cols } = matrixDims(shape);
  return {
    m: new Array<number>(n).fill(0), v: new Array<number>(n).fill(0),
    vr: new Array<number>(batch * rows).fill(0), vc: new Array<number>(batch * cols).fill(0),
    rr: new Array<number>(batch * rows).fill(0), rc: new Array<number>(batch * cols).fill(0),
  };
}

function matrixDims(shape: readonly number[]): { batch: number; rows: number; cols: number } {
  if (shape.length < 2) return { batch: 1, rows: 1, cols: shape[0] ?? 1 };
  const rows = shape[shape.length - 2]!;
  const cols = shape[shape.length - 1]!;
  return { batch: shape.reduce((a, b) => a * b, 1) / (rows * cols), rows, cols };
}

/** Row/col moving averages of x (viewed [batch, rows, cols]) and the factored 1/sqrt estimate. */
function factoredInverseRoot(x: readonly number[], row: number[], col: number[], beta: number, dims: { batch: number; rows: number; cols: number }): number[] {
  const { batch, rows, cols } = dims;
  const out = new Array<number>(x.length);
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += x[(b * rows + r) * cols + c]!;
      row[b * rows + r] = beta * row[b * rows + r]! + (1 - beta) * (s / cols);
    }
    for (let c = 0; c < cols; c++) {
      let s = 0;
      for (let r = 0; r < rows; r++) s += x[(b * rows + r) * cols + c]!;
      col[b * cols + c] = beta * col[b * cols + c]! + (1 - beta) * (s / rows);
    }
    let rowMean = 0;
    for (let r = 0; r < rows; r++) rowMean += row[b * rows + r]! / rows;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        out[(b * rows + r) * cols + c] = 1 / Math.sqrt(row[b * rows + r]! / rowMean) / Math.sqrt(col[b * cols + c]!);
      }
    }
  }
  return out;
}

/** One CAME step (Luo et al. 2023, Algorithm 1 as the authors' code orders it), in float64. */
export function cameRefStep(w: number[], g: readonly number[], shape: readonly number[], s: CameRefState,
  o: { lr: number; betas: readonly [number, number, number]; eps: readonly [number, number]; clipThreshold: number; weightDecay: number }): void {
  const [b1, b2, b3] = o.betas;
  const factored = shape.length >= 2;
  const dims = matrixDims(shape);
  const sq = g.map((x) => x * x + o.eps[0]);
  let u: number[];
  if (factored) {
    const inv = factoredInverseRoot(sq, s.vr, s.vc, b2, dims);
    u = g.map((x, i) => inv[i]! * x);
  } else {
    sq.forEach((x, i) => { s.v[i] = b2 * s.v[i]! + (1 - b2) * x; });
    u = g.map((x, i) => x / Math.sqrt(s.v[i]!));
  }
  const rms = Math.sqrt(u.reduce((a, x) => a + x * x, 0) / u.length);
  const scale = Math.max(1, rms / o.clipThreshold);
  u = u.map((x) => x / scale);
  u.forEach((x, i) => { s.m[i] = b1 * s.m[i]! + (1 - b1) * x; });
  let step: number[];
  if (factored) {
    const res = u.map((x, i) => (x - s.m[i]!) ** 2 + o.eps[1]);
    const inv = factoredInverseRoot(res, s.rr, s.rc, b3, dims);
    step = s.m.map((x, i) => inv[i]! * x);
  } else {
    step = [...s.m];
  }
  for (let i = 0; i < w.length; i++) w[i] = w[i]! - o.weightDecay * o.lr * w[i]! - o.lr * step[i]!;
}
