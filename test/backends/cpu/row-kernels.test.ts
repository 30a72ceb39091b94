/**
 * CPU row kernels written for speed, against plain reference loops: softmax (one exponential
 * per element; on the thread pool for large inputs) and the depthwise causal conv1d (sliding
 * windows in registers for K = 4). Float64 results must equal the plain loops bit for bit;
 * float32 softmax uses the fast exp and must agree to float32 rounding.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/index.js';
import { ThreadPool } from '../../../src/backends/cpu/threads/index.js';
import { PARALLEL_SOFTMAX_ELEMENTS, rowKernels, softmaxBackwardOn, softmaxOn } from '../../../src/backends/cpu/kernels/rows.js';
import { causalConv1dKernels } from '../../../src/backends/cpu/kernels/causal-conv1d.js';

function randomData(n: number, seed: number): Float64Array {
  return T.randn([n], { dtype: 'float64', generator: new T.Generator(seed) }).toFloat64Array();
}

function fromData(data: Float64Array, shape: number[], dtype: T.DType): T.Tensor {
  return T.cast(T.tensor(data, { dtype: 'float64', shape }), dtype);
}

/** First index where the arrays differ (Object.is; tol > 0: by more than tol * (|want| + floor)), or -1. */
function firstMismatch(got: Float64Array, want: Float64Array, tol: number, floor: number): number {
  for (let i = 0; i < want.length; i++) {
    if (Object.is(got[i], want[i])) continue;
    if (tol === 0 || !(Math.abs(got[i]! - want[i]!) <= tol * (Math.abs(want[i]!) + floor))) return i;
  }
  return -1;
}

function assertSame(label: string, got: Float64Array, want: Float64Array, tol = 0, floor = 0): void {
  assert.equal(got.length, want.length, `${label}: length`);
  const at = firstMismatch(got, want, tol, floor);
  assert.equal(at, -1, `${label}: element ${at} is ${got[at]}, expected ${want[at]}`);
}

/** softmax / log-softmax of each row, evaluated directly in float64. */
function softmaxReference(x: Float64Array, rows: number, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    let mx = -Infinity;
    for (const v of row) mx = Math.max(mx, v);
    if (mx === -Infinity) {
      out.fill(log ? -Infinity : 0, r * cols, (r + 1) * cols);
      continue;
    }
    let sum = 0;
    for (const v of row) sum += Math.exp(v - mx);
    for (let c = 0; c < cols; c++) out[r * cols + c] = log ? row[c]! - (mx + Math.log(sum)) : Math.exp(row[c]! - mx) / sum;
  }
  return out;
}

/** ∂x of softmax (Σ-dot form) or log-softmax (exp(y) form) per row, evaluated directly. */
function softmaxBackwardReference(y: Float64Array, gy: Float64Array, rows: number, cols: number, log: boolean): Float64Array {
  const out = new Float64Array(y.length);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += log ? gy[r * cols + c]! : gy[r * cols + c]! * y[r * cols + c]!;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      out[i] = log ? gy[i]! - Math.exp(y[i]!) * dot : y[i]! * (gy[i]! - dot);
    }
  }
  return out;
}

describe('softmax kernel', () => {
  const two = new ThreadPool(2);
  before(() => assert.ok(two.waitUntilReady(30_000), 'worker thread did not start'));
  after(() => two.destroy());

  const rows = 300;
  const cols = 257;
  assert.ok(rows * cols >= PARALLEL_SOFTMAX_ELEMENTS);
  const data = randomData(rows * cols, 1).map((v) => 4 * v);
  // A fully masked row and a partly masked one, as attention masks produce.
  data.fill(-Infinity, 5 * cols, 6 * cols);
  data.fill(-Infinity, 7 * cols, 7 * cols + 100);

  for (const log of [false, true]) {
    const name = log ? 'log-softmax' : 'softmax';
    const want = softmaxReference(data, rows, cols, log);

    test(`${name} float64: the direct formula bit for bit, on 1 and 2 threads`, () => {
      const x = fromData(data, [rows, cols], 'float64');
      for (const pool of [null, two]) {
        const out = T.empty([rows, cols], { dtype: 'float64' });
        softmaxOn(pool, x, out, log);
        assertSame(`${name} on ${pool === null ? 1 : 2} threads`, out.toFloat64Array(), want);
      }
      const viaTable = T.empty([rows, cols], { dtype: 'float64' });
      rowKernels.softmax(x, viaTable, log);
      assertSame(`${name} via the kernel table`, viaTable.toFloat64Array(), want);
    });

    test(`${name} float32 with the fast exp: float32 rounding of the formula, same bits on 1 and 2 threads`, () => {
      const x = fromData(data, [rows, cols], 'float32');
      const want32 = softmaxReference(x.toFloat64Array(), rows, cols, log);
      const one = T.empty([rows, cols]);
      const both = T.empty([rows, cols]);
      softmaxOn(null, x, one, log);
      softmaxOn(two, x, both, log);
      assertSame(`${name} 2 vs 1 thread`, both.toFloat64Array(), one.toFloat64Array());
      // Probabilities: float32 rounding is relative. Log-probabilities x - lse: lse carries the
      // fast exp's tiny error in absolute terms, so near-zero outputs are compared on scale 1.
      assertSame(`${name} vs float64 formula`, one.toFloat64Array(), want32, 2 ** -23, log ? 1 : 0);
    });

    test(`${name} backward: the direct formula bit for bit in float64, same bits on 1 and 2 threads`, () => {
      const gyData = randomData(rows * cols, 2);
      for (const dtype of ['float64', 'float32'] as const) {
        const y = T.empty([rows, cols], { dtype });
        softmaxOn(null, fromData(data, [rows, cols], dtype), y, log);
        const gy = fromData(gyData, [rows, cols], dtype);
        const [one, both] = [T.empty([rows, cols], { dtype }), T.empty([rows, cols], { dtype })];
        softmaxBackwardOn(null, y, gy, one, log);
        softmaxBackwardOn(two, y, gy, both, log);
        assertSame(`${name} backward ${dtype}: 2 vs 1 thread`, both.toFloat64Array(), one.toFloat64Array());
        const want = softmaxBackwardReference(y.toFloat64Array(), gy.toFloat64Array(), rows, cols, log);
        if (dtype === 'float64') assertSame(`${name} backward float64`, one.toFloat64Array(), want);
        else assertSame(`${name} backward float32`, one.toFloat64Array(), want, 2 ** -20, 1);
      }
    });
  }
});

/** The convolution as K shifted axpys per row, summed in float64 (the original kernel's loop order). */
function convReference(x: Float64Array, w: Float64Array, gy: Float64Array, batch: number, dim: number, len: number, taps: number):
  { out: Float64Array; gx: Float64Array; gw: Float64Array } {
  const out = new Float64Array(x.length);
  const gx = new Float64Array(x.length);
  const gw = new Float64Array(dim * taps);
  const acc = new Float64Array(len);
  for (let b = 0; b < batch; b++) {
    for (let d = 0; d < dim; d++) {
      const row = (b * dim + d) * len;
      acc.fill(0);
      for (let k = 0; k < taps; k++) {
        for (let t = taps - 1 - k; t < len; t++) acc[t] += w[d * taps + k]! * x[row + t - (taps - 1 - k)]!;
      }
      out.set(acc, row);
      acc.fill(0);
      for (let k = 0; k < taps; k++) {
        const shift = taps - 1 - k;
        let dw = 0;
        for (let t = shift; t < len; t++) {
          acc[t - shift] += w[d * taps + k]! * gy[row + t]!;
          dw += gy[row + t]! * x[row + t - shift]!;
        }
        gw[d * taps + k] += dw;
      }
      gx.set(acc, row);
    }
  }
  return { out, gx, gw };
}

describe('causal conv1d kernel', () => {
  const [batch, dim] = [2, 3];
  for (const taps of [1, 2, 3, 4, 5]) {
    test(`K = ${taps}: output and both gradients equal the shifted-axpy loops bit for bit (float64, L = 1..9 and 64)`, () => {
      for (const len of [1, 2, 3, 4, 5, 9, 64]) {
        const x = randomData(batch * dim * len, 10 * taps + len);
        const w = randomData(dim * taps, 20 * taps + len);
        const gy = randomData(batch * dim * len, 30 * taps + len);
        const want = convReference(x, w, gy, batch, dim, len, taps);
        const out = T.empty([batch, dim, len], { dtype: 'float64' });
        const gx = T.empty([batch, dim, len], { dtype: 'float64' });
        const gw = T.empty([dim, taps], { dtype: 'float64' });
        const [xt, wt, gt] = [fromData(x, [batch, dim, len], 'float64'), fromData(w, [dim, taps], 'float64'), fromData(gy, [batch, dim, len], 'float64')];
        causalConv1dKernels.causalConv1d(xt, wt, null, false, out);
        causalConv1dKernels.causalConv1dBackward(xt, wt, null, false, gt, gx, gw, null);
        assertSame(`K=${taps} L=${len} out`, out.toFloat64Array(), want.out);
        assertSame(`K=${taps} L=${len} gx`, gx.toFloat64Array(), want.gx);
        assertSame(`K=${taps} L=${len} gw`, gw.toFloat64Array(), want.gw);
      }
    });
  }

  test('the zero padding is skipped, not multiplied: an infinite first tap leaves the first K-1 outputs finite', () => {
    const len = 6;
    const x = fromData(randomData(len, 7), [1, 1, len], 'float64');
    const w = T.tensor([[Infinity, 0.5, 0.25, 1]], { dtype: 'float64' });
    const out = T.empty([1, 1, len], { dtype: 'float64' });
    causalConv1dKernels.causalConv1d(x, w, null, false, out);
    const o = out.toFloat64Array();
    assert.ok([0, 1, 2].every((t) => Number.isFinite(o[t])), `first outputs ${Array.from(o.subarray(0, 3))}`);
    assert.ok(!Number.isFinite(o[3]!), 'the infinite tap reaches t = 3');
  });
});
