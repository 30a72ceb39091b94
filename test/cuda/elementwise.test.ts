/** CUDA copy/cast, fill, arange, unary, binary and where against the CPU backend (skipped without a GPU). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { DTYPES } from '../../src/tensor/dtype.js';
import { FLOATS, assertClose, checkOp, cudaSkip, randomCpu, randomInts } from './helpers.js';

const skip = cudaSkip;

/** Values typical of each dtype: normals for floats, small integers, random bools. */
function sample(shape: number[], dtype: DType): Tensor {
  if (dtype === 'bool') return randomInts(shape, 0, 2, 'bool');
  if (dtype === 'int32' || dtype === 'int64') return randomInts(shape, -50, 50, dtype);
  return randomCpu(shape, dtype, (v) => 3 * v);
}

test('copy and cast between every pair of dtypes, through strided, flipped and broadcast views', { skip }, async (t) => {
  for (const from of DTYPES) {
    await t.test(`from ${from}`, () => {
      const x = sample([5, 7, 3], from);
      for (const to of DTYPES) {
        checkOp(`cast ${from}->${to} permuted+narrowed`, [x], (v) => ops.cast(ops.narrow(ops.permute(v, [2, 0, 1]), 2, 1, 5), to), { rtol: 0, grad: false });
        checkOp(`cast ${from}->${to} flipped`, [x], (v) => ops.cast(ops.flip(v, [0, 2]), to), { rtol: 0, grad: false });
      }
      checkOp(`contiguous ${from} of expand`, [x], (v) => ops.contiguous(ops.expand(ops.narrow(v, 1, 2, 1), [5, 4, 3])), { rtol: 0, grad: false });
      checkOp(`clone ${from}`, [x], (v) => ops.clone(v), { rtol: 0, grad: false });
    });
  }
});

test('cat writes into strided slices of its output (forward and backward)', { skip }, () => {
  const a = randomCpu([3, 4, 5]);
  const b = randomCpu([3, 2, 5]);
  checkOp('cat dim 1', [a, b], (x, y) => ops.cat([x, y], 1));
  checkOp('stack dim 2', [a, a], (x, y) => ops.stack([ops.transpose(x, 0, 2), y.transpose(0, 2)], 2));
});

test('fill and arange give the CPU bit patterns for every dtype', { skip }, () => {
  for (const dtype of DTYPES) {
    const values = dtype === 'bool' ? [0, 1, 2.5] : dtype.startsWith('int') ? [0, -7, 123456, 2.9, -2.9] : [0, -7, 2.7182818, 1e-3, NaN, Infinity];
    for (const v of values) {
      const cpu = ops.full([3, 17], v, { dtype });
      const gpu = ops.full([3, 17], v, { dtype, device: 'cuda' });
      assertClose(`full(${v}) ${dtype}`, gpu, cpu, 0);
    }
    if (dtype === 'bool') continue;
    const step = dtype.startsWith('int') ? 3 : 0.37;
    assertClose(`arange ${dtype}`, ops.arange(-5, 41, step, { dtype, device: 'cuda' }), ops.arange(-5, 41, step, { dtype }), 0);
  }
  assertClose('linspace', ops.linspace(-1, 2, 1001, { device: 'cuda' }), ops.linspace(-1, 2, 1001), 0);
});

/** Unary ops with the input domain each needs. */
const UNARY: readonly [string, (x: Tensor) => Tensor, 'any' | 'positive'][] = [
  ['neg', ops.neg, 'any'], ['exp', ops.exp, 'any'], ['log', ops.log, 'positive'], ['sqrt', ops.sqrt, 'positive'],
  ['rsqrt', ops.rsqrt, 'positive'], ['abs', ops.abs, 'any'], ['tanh', ops.tanh, 'any'], ['sigmoid', ops.sigmoid, 'any'],
  ['silu', ops.silu, 'any'], ['relu', ops.relu, 'any'], ['gelu', (x) => ops.gelu(x), 'any'],
  ['gelu_tanh', (x) => ops.gelu(x, 'tanh'), 'any'], ['softplus', ops.softplus, 'any'], ['sin', ops.sin, 'any'],
  ['cos', ops.cos, 'any'], ['square', ops.square, 'any'], ['reciprocal', ops.reciprocal, 'positive'],
  ['clamp', (x) => ops.clamp(x, -0.7, 1.3), 'any'], ['pow_scalar', (x) => ops.pow(x, 2.5), 'positive'],
  ['pow_scalar 2', (x) => ops.pow(x, 2), 'any'], ['floor', ops.floor, 'any'], ['sign', ops.sign, 'any'],
];

test('unary ops forward and backward on transposed inputs, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const [name, f, domain] of UNARY) {
        const x = randomCpu([37, 29], dtype, domain === 'positive' ? (v) => Math.abs(v) + 0.3 : (v) => 2 * v);
        checkOp(`${name} ${dtype}`, [x], (v) => f(ops.transpose(v, 0, 1)));
      }
    });
  }
});

test('unary ops on integers and the bool predicates', { skip }, () => {
  for (const dtype of ['int32', 'int64'] as const) {
    const x = randomInts([6, 11], -20, 20, dtype);
    for (const f of [ops.neg, ops.abs, ops.sign, ops.square, ops.relu, (v: Tensor) => ops.clamp(v, -5, 7)]) {
      checkOp(`int unary ${dtype}`, [x], (v) => f(v), { rtol: 0 });
    }
  }
  const special = Tensor.fromHost(new Float32Array([0, -0, 1.5, NaN, Infinity, -Infinity, -2, 3e38]), [8], 'float32');
  for (const f of [ops.isnan, ops.isinf, ops.logicalNot]) checkOp('predicate', [special], (v) => f(v), { rtol: 0, grad: false });
  checkOp('predicate on bool', [randomInts([9], 0, 2, 'bool')], (v) => ops.logicalNot(v), { rtol: 0 });
});

const BINARY: readonly [string, (a: Tensor, b: Tensor | number) => Tensor][] = [
  ['add', ops.add], ['sub', ops.sub], ['mul', ops.mul], ['div', ops.div], ['pow', ops.pow],
  ['maximum', ops.maximum], ['minimum', ops.minimum], ['atan2', ops.atan2],
];

test('binary ops broadcast through strides, forward and backward, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const [name, f] of BINARY) {
        const positive = name === 'pow';
        const map = positive ? (v: number) => Math.abs(v) + 0.5 : (v: number) => v;
        const a = randomCpu([9, 1, 4], dtype, map);
        const b = randomCpu([5, 1], dtype, (v) => (name === 'div' ? Math.sign(v) * (Math.abs(v) + 0.5) : map(v)));
        // a seen transposed as [4, 1, 9] -> broadcast with b [5, 1] to [4, 5, 9].
        checkOp(`${name} ${dtype}`, [a, b], (x, y) => f(ops.permute(x, [2, 1, 0]), y));
        checkOp(`${name} ${dtype} scalar`, [a], (x) => f(x, 1.5));
      }
    });
  }
});

test('comparisons and logical ops, and integer arithmetic', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16', 'int32', 'int64'] as const) {
    // Small integers make ties common, so eq/le/ge see both outcomes.
    const a = randomInts([7, 1, 5], -3, 3, dtype);
    const b = randomInts([1, 6, 5], -3, 3, dtype);
    for (const f of [ops.eq, ops.ne, ops.lt, ops.le, ops.gt, ops.ge, ops.logicalAnd, ops.logicalOr]) {
      checkOp(`compare ${dtype}`, [a, b], (x, y) => f(x, y), { rtol: 0, grad: false });
    }
  }
  for (const dtype of ['int32', 'int64'] as const) {
    const a = randomInts([13, 8], -1000, 1000, dtype);
    const b = randomInts([8], 1, 50, dtype);
    for (const f of [ops.add, ops.sub, ops.mul, ops.maximum, ops.minimum]) checkOp(`int ${dtype}`, [a, b], (x, y) => f(x, y), { rtol: 0 });
    checkOp(`int ${dtype} div -> float32`, [a, b], (x, y) => ops.div(x, y));
  }
});

test('where broadcasts condition and both branches; gradients go to the chosen branch', { skip }, () => {
  for (const dtype of FLOATS) {
    const c = randomInts([4, 1, 6], 0, 2, 'bool');
    const a = randomCpu([1, 5, 6], dtype);
    const b = randomCpu([4, 5, 1], dtype);
    checkOp(`where ${dtype}`, [c, a, b], (cc, x, y) => ops.where(cc, x, y));
    checkOp(`where ${dtype} scalar`, [c, a], (cc, x) => ops.where(cc, x, 0));
  }
});

test('cuda tensors report their device and round-trip host data exactly', { skip }, () => {
  for (const dtype of DTYPES) {
    const x = sample([3, 4], dtype);
    const y = x.to('cuda');
    assert.equal(y.deviceName, 'cuda:0');
    assert.deepEqual(Array.from(y.toHost() as ArrayLike<number | bigint>), Array.from(x.toHost() as ArrayLike<number | bigint>));
  }
});
