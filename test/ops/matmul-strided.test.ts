/**
 * matmul / linear on operands whose rows are strided (MatmulArgs.ldA / ldB): a row view of a
 * wider buffer (the Mamba mixer's dt = split(x_proj(u), [R, N, N])[0], [B, L, 72] of [B, L, 104]),
 * transposed views of such buffers, and batched products with padded rows. The values and
 * gradients against the copied-contiguous operands and finite differences, that no copy of the
 * buffer is made (forward or backward), the leading dimensions the kernel receives, the layouts
 * still copied, and the kernels' checks of the leading dimensions they are given.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { MatmulArgs } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';
import { observeKernels } from '../helpers/observe-kernels.js';

const cpu = getBackend('cpu');

const rand = (shape: number[], seed: number, dtype: T.DType = 'float32') =>
  T.cast(T.randn(shape, { dtype: 'float64', generator: new T.Generator(seed) }), dtype);

function assertBitwise(name: string, got: T.Tensor, want: T.Tensor): void {
  assert.deepEqual([...got.shape], [...want.shape], `${name}: shape`);
  assert.equal(got.dtype, want.dtype, `${name}: dtype`);
  const a = got.toFloat64Array();
  const e = want.toFloat64Array();
  for (let i = 0; i < a.length; i++) assert.ok(Object.is(a[i], e[i]), `${name}: element ${i}: ${a[i]} vs ${e[i]}`);
}

const observe = <R>(buffer: T.Tensor, body: () => R) => observeKernels(cpu.kernels, buffer, body);

/** Names of every node in the autograd graph below y. */
function graphOps(y: T.Tensor): string[] {
  const names: string[] = [];
  const seen = new Set<unknown>();
  const visit = (t: T.Tensor | null) => {
    const node = t?.gradFn;
    if (!node || seen.has(node)) return;
    seen.add(node);
    names.push(node.name);
    for (const x of node.inputs) visit(x);
  };
  visit(y);
  return names;
}

/** The Mamba mixer's dt: the first R columns of x_proj's [B, L, R + 2N] output. */
const dtOf = (dbc: T.Tensor, r: number, n: number) => T.split(dbc, [r, n, n], 2)[0]!;

/** Plain float64 loops: y[.., i, j] = sum_p a[.., i, p] b[.., p, j] over a and b already broadcast to one batch. */
function naiveMatmul(a: T.Tensor, b: T.Tensor): Float64Array {
  const [m, k] = a.shape.slice(-2) as [number, number];
  const n = b.shape[b.ndim - 1]!;
  const batch = a.numel / (m * k);
  const av = T.contiguous(a).toFloat64Array();
  const bv = T.contiguous(b).toFloat64Array();
  const out = new Float64Array(batch * m * n);
  for (let e = 0; e < batch; e++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += av[e * m * k + i * k + p]! * bv[e * k * n + p * n + j]!;
        out[e * m * n + i * n + j] = s;
      }
    }
  }
  return out;
}

type View = (t: T.Tensor) => T.Tensor;

interface PaddedCase {
  readonly name: string;
  /** The buffers (leaves) and the views of them that are multiplied. */
  readonly bufs: [T.Tensor, T.Tensor];
  readonly views: [View, View];
}

/**
 * Batched operands with padded storage, for every transpose pair: a [2, 5, 7] and b [2, 7, 4]
 * read from wider buffers (rows, and batch entries, farther apart than dense).
 */
function paddedCases(dtype: T.DType, seed: number): PaddedCase[] {
  // Rows of 7 of 9 (a), of 4 of 6 (b); transposed: 5 of 8, 7 of 10; batch entries a row or more further apart.
  const aBuf = rand([2, 6, 9], seed, dtype);
  const bBuf = rand([2, 8, 6], seed + 1, dtype);
  const aTBuf = rand([2, 8, 8], seed + 2, dtype);
  const bTBuf = rand([2, 5, 10], seed + 3, dtype);
  const a: View = (x) => T.narrow(T.narrow(x, 2, 1, 7), 1, 0, 5);
  const b: View = (x) => T.narrow(T.narrow(x, 2, 2, 4), 1, 1, 7);
  const aT: View = (x) => T.transpose(T.narrow(T.narrow(x, 2, 0, 5), 1, 1, 7), 1, 2);
  const bT: View = (x) => T.transpose(T.narrow(T.narrow(x, 2, 3, 7), 1, 0, 4), 1, 2);
  return [
    { name: 'NN', bufs: [aBuf, bBuf], views: [a, b] },
    { name: 'TN', bufs: [aTBuf, bBuf], views: [aT, b] },
    { name: 'NT', bufs: [aBuf, bTBuf], views: [a, bT] },
    { name: 'TT', bufs: [aTBuf, bTBuf], views: [aT, bT] },
  ];
}

const product = (c: PaddedCase) => (x: T.Tensor, y: T.Tensor) => T.matmul(c.views[0](x), c.views[1](y));

describe('matmul and linear on row views of wider buffers (leading dimensions)', () => {
  test('the Mamba dt case: linear of [B, L, 72] of a [B, L, 104] buffer equals linear of its copy, bitwise (float32, bfloat16, float64)', () => {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as const) {
      const dbc = rand([2, 16, 104], 1, dtype);
      const w = rand([64, 72], 2, dtype);
      const bias = rand([64], 3, dtype);
      const dt = dtOf(dbc, 72, 16);
      assert.deepEqual([...dt.strides], [16 * 104, 104, 1], 'dt is the strided view the mixer makes');
      assertBitwise(`${dtype} linear`, T.linear(dt, w), T.linear(T.contiguous(dt), w));
      assertBitwise(`${dtype} linear with bias`, T.linear(dt, w, bias), T.linear(T.contiguous(dt), w, bias));
    }
  });

  test('values equal a plain float64 loop (folded rows, batched padded rows, every transpose pair)', () => {
    const dbc = rand([3, 4, 11], 4, 'float64');
    const w = rand([5, 6], 5, 'float64');
    const dt = T.narrow(dbc, 2, 0, 6);
    const want = naiveMatmul(T.reshape(T.contiguous(dt), [1, 12, 6]), T.reshape(T.contiguous(T.transpose(w, 0, 1)), [1, 6, 5]));
    assert.deepEqual([...T.linear(dt, w).toFloat64Array()], [...want]);
    for (const c of paddedCases('float64', 6)) {
      const [x, y] = c.bufs;
      assert.deepEqual([...product(c)(x, y).toFloat64Array()], [...naiveMatmul(c.views[0](x), c.views[1](y))], c.name);
    }
  });

  test('batched padded rows, every transpose pair: bitwise equal to the contiguous copies (float32, bfloat16, float64, int32)', () => {
    for (const dtype of ['float32', 'bfloat16', 'float64', 'int32'] as const) {
      for (const c of paddedCases(dtype, 10)) {
        const [x, y] = c.bufs;
        assertBitwise(`${dtype} ${c.name}`, product(c)(x, y), T.matmul(T.contiguous(c.views[0](x)), T.contiguous(c.views[1](y))));
      }
    }
  });

  test('4-D batches that fold into one stride, and a weight applied to a 4-D row view', () => {
    const buf = rand([2, 3, 5, 9], 20);
    const w = rand([9, 4], 21);
    const x = T.narrow(buf, 3, 2, 6); // [2, 3, 5, 6], rows 9 apart, batch entries 45 apart
    const b = T.narrow(rand([2, 3, 6, 7], 22), 3, 0, 4); // [2, 3, 6, 4] of rows of 7
    assertBitwise('4-D batched', T.matmul(x, b), T.matmul(T.contiguous(x), T.contiguous(b)));
    const wv = T.narrow(w, 0, 1, 6); // [6, 4], contiguous rows: a row slice
    assertBitwise('4-D folded', T.matmul(x, wv), T.matmul(T.contiguous(x), T.contiguous(wv)));
    // A weight stored wider than it is used, read transposed: x @ w[:, :6]^T.
    const wide = rand([4, 10], 23);
    assertBitwise('linear of a column slice of the weight', T.linear(x, T.narrow(wide, 1, 2, 6)), T.linear(T.contiguous(x), T.contiguous(T.narrow(wide, 1, 2, 6))));
  });

  test('no copy of the buffer, forward or backward, and the kernel gets its leading dimensions', () => {
    // The mixer's case: dt from the buffer, through the dt_proj linear and back.
    const dbc = rand([2, 16, 104], 30).requiresGrad_();
    const w = rand([64, 72], 31).requiresGrad_();
    const fwd = observe(dbc, () => T.linear(dtOf(dbc, 72, 16), w));
    assert.equal(fwd.copies, 0, 'the forward copies no part of the buffer');
    assert.ok(!graphOps(fwd.result).includes('contiguous'), `graph: ${graphOps(fwd.result).join(', ')}`);
    assert.equal(fwd.calls.length, 1);
    assert.deepEqual(pick(fwd.calls[0]!), { batch: 1, m: 32, n: 64, k: 72, transA: false, transB: true, ldA: 104, ldB: 72 });
    const bwd = observe(dbc, () => T.sum(T.mul(fwd.result, rand([2, 16, 64], 32))).backward());
    assert.equal(bwd.copies, 0, 'the backward copies no part of the buffer');
    // dx = g w (plain), dw^T = dt^T g: dt read transposed, its rows still 104 apart.
    assert.equal(bwd.calls.length, 2);
    assert.ok(bwd.calls.some((c) => c.transA && c.ldA === 104 && c.m === 72 && c.k === 32), JSON.stringify(bwd.calls.map(pick)));
    assert.ok(w.grad && dbc.grad);

    // Batched, both operands padded and one transposed.
    const tn = paddedCases('float32', 40)[1]!;
    const f = product(tn);
    const xs = tn.bufs[0].detach().requiresGrad_();
    const ys = tn.bufs[1].detach().requiresGrad_();
    for (const buf of [xs, ys]) {
      const run = observe(buf, () => {
        const out = f(xs, ys);
        T.sum(out).backward();
        return out;
      });
      assert.equal(run.copies, 0);
      assert.ok(!graphOps(run.result).includes('contiguous'));
      xs.grad = null;
      ys.grad = null;
    }
  });

  test('float64 gradients match finite differences', () => {
    gradcheck('Mamba dt linear', (dbc, w) => T.linear(dtOf(dbc, 6, 2), w), [rand64([2, 3, 10], 50), rand64([5, 6], 51)]);
    gradcheck('Mamba dt linear with bias', (dbc, w, b) => T.linear(dtOf(dbc, 6, 2), w, b),
      [rand64([2, 3, 10], 52), rand64([5, 6], 53), rand64([5], 54)]);
    gradcheck('transposed row view', (buf, w) => T.linear(T.transpose(T.narrow(buf, 2, 1, 4), 1, 2), w),
      [rand64([2, 3, 7], 55), rand64([2, 3], 56)]);
    for (const c of paddedCases('float64', 60)) {
      gradcheck(`batched ${c.name}`, product(c), [c.bufs[0].detach().requiresGrad_(), c.bufs[1].detach().requiresGrad_()]);
    }
  });

  test('gradients equal those through the copies (float32, bitwise)', () => {
    const inputs = () => [rand([2, 16, 104], 70).requiresGrad_(), rand([64, 72], 71).requiresGrad_()];
    const gy = rand([2, 16, 64], 72);
    const [d1, w1] = inputs();
    const [d2, w2] = inputs();
    T.sum(T.mul(T.linear(dtOf(d1!, 72, 16), w1!), gy)).backward();
    T.sum(T.mul(T.linear(T.contiguous(dtOf(d2!, 72, 16)), w2!), gy)).backward();
    assertBitwise('grad of the buffer', d1!.grad!, d2!.grad!);
    assertBitwise('grad of the weight', w1!.grad!, w2!.grad!);
  });

  test('layouts the kernel cannot read in place are still copied, and right: overlapping, broadcast and reversed rows', () => {
    const base = rand([4, 6], 80, 'float64');
    const b = rand([6, 3], 81, 'float64');
    const cases: [string, T.Tensor][] = [
      ['rows 3 apart, 6 long (overlapping)', base.withLayout([5, 6], [3, 1], 0)],
      ['a row broadcast (stride 0)', T.expand(T.narrow(base, 0, 0, 1), [4, 6])],
      ['reversed rows', T.flip(base, [0])],
      ['reversed columns', T.flip(base, [1])],
      ['a broadcast batch dim outside a real one', T.expand(T.unsqueeze(rand([3, 4, 6], 82, 'float64'), 0), [2, 3, 4, 6])],
    ];
    for (const [name, a] of cases) {
      const r = a.shape[a.ndim - 2]!;
      const batch = a.numel / (r * 6);
      const { result: got, copies } = observe(a, () => T.matmul(a, b));
      assert.equal(copies, 1, `${name}: one copy`);
      const want = naiveMatmul(T.reshape(T.contiguous(a), [batch, r, 6]), T.expand(T.unsqueeze(b, 0), [batch, 6, 3]));
      assert.deepEqual([...got.toFloat64Array()], [...want], name);
    }
  });
});

describe('the CPU matmul kernel with leading dimensions', () => {
  const args = (over: Partial<MatmulArgs>): MatmulArgs => ({ batch: 1, m: 2, n: 3, k: 4, transA: false, transB: false, strideA: 0, strideB: 0, ...over });

  test('reads rows ldA / ldB apart, transposed or not, in float32 and float64 (the gemmLoop path)', () => {
    for (const dtype of ['float32', 'float64', 'int32'] as const) {
      // a: 2 rows of 4 stored 6 apart; b: 4 rows of 3 stored 5 apart (the gaps hold 1000s, which must not leak in).
      const aBuf = T.cast(T.tensor([1, 2, 3, 4, 1000, 1000, 5, 6, 7, 8]), dtype);
      const bBuf = T.cast(T.tensor([1, 0, 0, 1000, 1000, 0, 1, 0, 1000, 1000, 0, 0, 1, 1000, 1000, 1, 1, 1]), dtype);
      const out = T.Tensor.empty([1, 2, 3], dtype, cpu);
      cpu.kernels.matmul(aBuf, bBuf, out, args({ ldA: 6, ldB: 5 }));
      assert.deepEqual([...out.toFloat64Array()], [5, 6, 7, 13, 14, 15], dtype);
      // The same a stored transposed: 4 rows of 2, 3 apart.
      const aT = T.cast(T.tensor([1, 5, 1000, 2, 6, 1000, 3, 7, 1000, 4, 8]), dtype);
      cpu.kernels.matmul(aT, bBuf, out, args({ transA: true, ldA: 3, ldB: 5 }));
      assert.deepEqual([...out.toFloat64Array()], [5, 6, 7, 13, 14, 15], `${dtype} transA`);
    }
  });

  test('a leading dimension below the row length, not an integer, or reaching past the storage is refused by name', () => {
    const a = T.ones([2, 4]);
    const b = T.ones([4, 3]);
    const out = T.Tensor.empty([1, 2, 3], 'float32', cpu);
    assert.throws(() => cpu.kernels.matmul(a, b, out, args({ ldA: 3 })), /ldA must be an integer >= 4, the elements in each stored row of a \(2 rows of 4, transA false\); got 3/);
    assert.throws(() => cpu.kernels.matmul(a, b, out, args({ ldB: 2 })), /ldB must be an integer >= 3, .* got 2/);
    assert.throws(() => cpu.kernels.matmul(a, b, out, args({ transB: true, ldB: 3, n: 3 })), /ldB must be an integer >= 4, .*transB true\); got 3/);
    assert.throws(() => cpu.kernels.matmul(a, b, out, args({ ldA: 4.5 })), /ldA must be an integer >= 4, .* got 4.5/);
    assert.throws(() => cpu.kernels.matmul(a, b, out, args({ ldA: 5 })), /a spans 9 elements .* but its storage holds 8 from offset 0/);
    assert.throws(() => cpu.kernels.matmul(a, b, out, args({ strideA: -1 })), /strideA must be a non-negative integer, got -1/);
    const a64 = T.ones([2, 4], { dtype: 'float64' });
    assert.throws(() => cpu.kernels.matmul(a64, T.ones([4, 3], { dtype: 'float64' }), T.Tensor.empty([1, 2, 3], 'float64', cpu), args({ ldA: 3 })),
      /ldA must be an integer >= 4/, 'the float64 path checks too');
  });
});

function pick(c: MatmulArgs): Record<string, unknown> {
  return { batch: c.batch, m: c.m, n: c.n, k: c.k, transA: c.transA, transB: c.transB, ldA: c.ldA, ldB: c.ldB };
}
