/**
 * linear with its bias added inside the GEMM kernel (MatmulArgs.bias): the fused result against
 * matmul + add, the one rounding for half dtypes, gradients by finite differences, biases that
 * keep the separate add, and the kernel's checks of the bias it is given.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { getBackend } from '../../src/backends/registry.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

const rand = (shape: number[], seed: number, dtype: T.DType = 'float32') =>
  T.cast(T.randn(shape, { dtype: 'float64', generator: new T.Generator(seed) }), dtype);

const composed = (x: T.Tensor, w: T.Tensor, b: T.Tensor) => T.add(T.matmul(x, T.transpose(w, 0, 1)), b);

function assertSame(name: string, got: T.Tensor, want: T.Tensor): void {
  assert.deepEqual([...got.shape], [...want.shape], `${name}: shape`);
  assert.equal(got.dtype, want.dtype, `${name}: dtype`);
  const a = got.toFloat64Array();
  const e = want.toFloat64Array();
  for (let i = 0; i < a.length; i++) assert.equal(a[i], e[i], `${name}: element ${i}`);
}

describe('linear with a fused bias', () => {
  test('float64 and float32 equal matmul + add exactly (2-D, 3-D, 1-D and transposed x)', () => {
    for (const dtype of ['float64', 'float32'] as const) {
      const w = rand([7, 5], 1, dtype);
      const b = rand([7], 2, dtype);
      const cases: [string, T.Tensor][] = [
        ['2-D', rand([4, 5], 3, dtype)],
        ['3-D (batch folded into rows)', rand([2, 3, 5], 4, dtype)],
        ['1-D', rand([5], 5, dtype)],
        // Not contiguous: the batched route with the weight broadcast (stride 0) over the batch.
        ['transposed 3-D', T.transpose(rand([2, 5, 3], 6, dtype), 1, 2)],
      ];
      for (const [name, x] of cases) assertSame(`${dtype} ${name}`, T.linear(x, w, b), composed(x, w, b));
    }
  });

  test('bias values reach every row of every batch entry', () => {
    // x = 0: the output is the bias alone, so a bias dropped from any row shows.
    const x = T.zeros([3, 4, 6]);
    const w = rand([5, 6], 7);
    const b = T.tensor([1, -2, 3.5, 4, -5]);
    const y = T.linear(x, w, b).toFloat64Array();
    for (let r = 0; r < 12; r++) assert.deepEqual([...y.subarray(r * 5, r * 5 + 5)], [1, -2, 3.5, 4, -5], `row ${r}`);
  });

  test('k = 0 gives the bias on every row; zero rows give an empty output', () => {
    const y = T.linear(T.zeros([3, 0]), T.zeros([2, 0]), T.tensor([0.5, -1]));
    assert.deepEqual([...y.toFloat64Array()], [0.5, -1, 0.5, -1, 0.5, -1]);
    assert.deepEqual([...T.linear(T.zeros([0, 4]), rand([2, 4], 8), T.tensor([1, 2])).shape], [0, 2]);
  });

  test('bfloat16 and float16: the bias joins the float32 sum before the one rounding', () => {
    for (const dtype of ['bfloat16', 'float16'] as const) {
      // Magnitudes where a second rounding often moves the result (a large sum plus a small bias).
      const x = rand([9, 33], 9, dtype);
      const w = rand([17, 33], 10, dtype);
      const b = T.cast(T.mul(rand([17], 11), 0.01), dtype);
      const fused = T.linear(x, w, b);
      const once = T.cast(T.linear(T.cast(x, 'float32'), T.cast(w, 'float32'), T.cast(b, 'float32')), dtype);
      assertSame(`${dtype} fused = float32 result rounded once`, fused, once);
      // The old composition rounds twice; it stays within a rounding step of the fused result.
      const old = composed(x, w, b).toFloat64Array();
      const got = fused.toFloat64Array();
      const ulp = dtype === 'bfloat16' ? 2 ** -7 : 2 ** -10;
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - old[i]!) <= ulp * Math.abs(old[i]!) + 1e-6, `${dtype} element ${i}: ${got[i]} vs ${old[i]}`);
    }
  });

  test('recorded as one linear node (no separate add)', () => {
    const x = rand([3, 4], 12).requiresGrad_();
    // Below the view that gives the output its shape: the node that computed it.
    const producer = (y: T.Tensor) => (y.gradFn?.name === 'reshape' ? y.gradFn.inputs[0]?.gradFn : y.gradFn)?.name;
    assert.equal(producer(T.linear(x, rand([2, 4], 13), rand([2], 14))), 'linear');
    assert.equal(producer(T.linear(x, rand([2, 4], 13))), 'matmul');
  });

  test('float64 gradients match finite differences: x, weight and bias', () => {
    gradcheck('linear 2-D', (x, w, b) => T.linear(x, w, b), [rand64([3, 4], 20), rand64([5, 4], 21), rand64([5], 22)]);
    gradcheck('linear 3-D', (x, w, b) => T.linear(x, w, b), [rand64([2, 3, 4], 23), rand64([5, 4], 24), rand64([5], 25)]);
    gradcheck('linear 1-D', (x, w, b) => T.linear(x, w, b), [rand64([4], 26), rand64([3, 4], 27), rand64([3], 28)]);
    gradcheck('linear transposed x', (x, w, b) => T.linear(T.transpose(x, 1, 2), w, b),
      [rand64([2, 4, 3], 29), rand64([5, 4], 30), rand64([5], 31)]);
    gradcheck('linear strided bias', (x, w, b) => T.linear(x, w, T.narrow(b, 0, 1, 5)), [rand64([3, 4], 32), rand64([5, 4], 33), rand64([7], 34)]);
  });

  test('gradients equal those of matmul + add', () => {
    const inputs = () => [rand64([2, 3, 4], 40), rand64([5, 4], 41), rand64([5], 42)];
    const a = inputs();
    const b = inputs();
    T.sum(T.mul(T.linear(a[0]!, a[1]!, a[2]!), rand([2, 3, 5], 43, 'float64'))).backward();
    T.sum(T.mul(composed(b[0]!, b[1]!, b[2]!), rand([2, 3, 5], 43, 'float64'))).backward();
    for (let i = 0; i < 3; i++) {
      const g = a[i]!.grad!.toFloat64Array();
      const e = b[i]!.grad!.toFloat64Array();
      for (let j = 0; j < g.length; j++) assert.ok(Math.abs(g[j]! - e[j]!) <= 1e-12 * (1 + Math.abs(e[j]!)), `input ${i} element ${j}`);
    }
  });

  test('biases the kernel does not take keep the separate add: broadcast shapes, a wider dtype, integers', () => {
    const x = rand([3, 4], 50);
    const w = rand([2, 4], 51);
    const row = rand([1, 2], 52);
    assertSame('[1, n] bias', T.linear(x, w, row), composed(x, w, row));
    const wide = rand([2], 53, 'float64');
    const y = T.linear(x, w, wide);
    assert.equal(y.dtype, 'float64', 'a float64 bias promotes a float32 product, as add does');
    assertSame('float64 bias', y, composed(x, w, wide));
    const xi = T.tensor([[1, 2], [3, 4]], { dtype: 'int32' });
    const wi = T.tensor([[1, 0], [2, -1]], { dtype: 'int32' });
    const bi = T.tensor([10, 20], { dtype: 'int32' });
    assert.deepEqual([...T.linear(xi, wi, bi).toFloat64Array()], [11, 20, 13, 22]);
  });

  test('meta tensors: shape only', () => {
    const meta = getBackend('meta');
    const y = T.linear(T.Tensor.empty([2, 3, 8], 'bfloat16', meta), T.Tensor.empty([5, 8], 'bfloat16', meta), T.Tensor.empty([5], 'bfloat16', meta));
    assert.deepEqual([...y.shape], [2, 3, 5]);
    assert.equal(y.dtype, 'bfloat16');
  });
});

describe('the CPU matmul kernel with a bias', () => {
  const cpu = getBackend('cpu');
  const run = (a: T.Tensor, b: T.Tensor, out: T.Tensor, bias: T.Tensor, m: number, n: number, k: number, batch = 1) =>
    cpu.kernels.matmul(a, b, out, { batch, m, n, k, transA: false, transB: false, strideA: m * k, strideB: 0, bias });

  test('batched entries with one shared weight each get the bias (float32, float64, int32)', () => {
    for (const dtype of ['float32', 'float64', 'int32'] as const) {
      const a = T.cast(T.tensor([1, 2, 3, 4, 5, 6, 7, 8]), dtype); // [2 batch][2][2]
      const b = T.cast(T.tensor([1, 0, 0, 1]), dtype); // identity
      const out = T.Tensor.empty([2, 2, 2], dtype, cpu);
      run(a, b, out, T.cast(T.tensor([100, -100]), dtype), 2, 2, 2, 2);
      assert.deepEqual([...out.toFloat64Array()], [101, -98, 103, -96, 105, -94, 107, -92], dtype);
    }
  });

  test('a bias of the wrong dtype, length or layout is refused by name', () => {
    const a = T.ones([2, 3]);
    const b = T.ones([3, 4]);
    const out = T.Tensor.empty([1, 2, 4], 'float32', cpu);
    assert.throws(() => run(a, b, out, T.ones([4], { dtype: 'float64' }), 2, 4, 3), /bias is float64, out is float32/);
    assert.throws(() => run(a, b, out, T.ones([3]), 2, 4, 3), /bias must be \[4\], got \[3\]/);
    assert.throws(() => run(a, b, out, T.ones([2, 4]), 2, 4, 3), /bias must be \[4\], got \[2, 4\]/);
    assert.throws(() => run(a, b, out, T.ones([8]).withLayout([4], [2], 0), 2, 4, 3), /bias must be contiguous, got stride 2/);
  });
});
