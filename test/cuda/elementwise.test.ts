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

// ---------------------------------------------------------------------------------------------
// The planned kernel shapes (layout.ts planMap / planCopy): vector kernels along contiguous or
// broadcast inner dims, with tails and misaligned views falling back; tiled transposes; casts.

/** `x` stored transposed in memory but with the same logical values (forces the strided kernels). */
function transposedStorage(x: Tensor): Tensor {
  const nd = x.shape.length;
  if (nd < 2) return x;
  return ops.transpose(ops.contiguous(ops.transpose(x, 0, nd - 1)), 0, nd - 1);
}

test('vector binary kernels: inner sizes with and without tails, misaligned views, broadcasts in every position', { skip }, async (t) => {
  const ROWS_OPS: readonly [string, (a: Tensor, b: Tensor) => Tensor][] = [
    ['add', ops.add], ['sub', ops.sub], ['mul', ops.mul], ['div', ops.div], ['maximum', ops.maximum], ['minimum', ops.minimum],
  ];
  // [a shape, b shape]: full, bias [C], [B,1,C], [B,L,1], [1,L,C], scalar, one-row tails.
  const PAIRS: readonly [number[], number[]][] = [
    [[4, 6, 16], [4, 6, 16]], [[3, 5, 24], [24]], [[3, 5, 24], [3, 1, 24]], [[3, 5, 24], [3, 5, 1]], [[3, 5, 24], [1, 5, 24]],
    [[2, 40], [1]], [[1, 1027], [1027]], [[13], [13]], [[7], [7]], [[5, 13], [13]], [[6, 1, 16], [1, 4, 16]],
  ];
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    await t.test(dtype, () => {
      for (const [name, f] of ROWS_OPS) {
        const nz = (v: number) => (name === 'div' ? Math.sign(v) * (Math.abs(v) + 0.5) : v);
        for (const [sa, sb] of PAIRS) {
          const a = randomCpu(sa, dtype);
          const b = randomCpu(sb, dtype, nz);
          checkOp(`${name} ${dtype} ${sa}+${sb}`, [a, b], (x, y) => f(x, y));
          checkOp(`${name} ${dtype} ${sb}+${sa}`, [b, a], (x, y) => f(x, y), { grad: false });
        }
        // Views one element into their storage (misaligned for 16-byte loads) and narrowed rows.
        const big = randomCpu([6, 33], dtype, nz);
        checkOp(`${name} ${dtype} misaligned`, [big, big], (x, y) => f(ops.narrow(x, 1, 1, 32), ops.narrow(y, 1, 0, 32)));
        checkOp(`${name} ${dtype} narrowed rows`, [big], (x) => f(ops.narrow(x, 1, 0, 16), ops.narrow(x, 1, 16, 16)));
      }
    });
  }
});

test('vector and strided kernels give bit-identical results (same per-element arithmetic)', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    const a = randomCpu([24, 40], dtype).to('cuda');
    const b = randomCpu([24, 40], dtype, (v) => Math.sign(v) * (Math.abs(v) + 0.5)).to('cuda');
    const bias = randomCpu([40], dtype).to('cuda');
    const at = transposedStorage(a);
    const bt = transposedStorage(b);
    for (const f of [ops.add, ops.sub, ops.mul, ops.div, ops.maximum, ops.minimum]) {
      assertClose(`binary ${dtype}`, f(a, b), f(at, bt).to('cpu'), 0);
      assertClose(`bias ${dtype}`, f(a, bias), f(at, bias).to('cpu'), 0);
    }
    for (const f of [ops.neg, ops.exp, ops.sigmoid, ops.silu, (x: Tensor) => ops.gelu(x), (x: Tensor) => ops.gelu(x, 'tanh'), ops.softplus, ops.square]) {
      assertClose(`unary ${dtype}`, f(a), f(at).to('cpu'), 0);
    }
    const pos = ops.abs(a);
    for (const f of [ops.sqrt, ops.rsqrt]) assertClose(`unary ${dtype}`, f(pos), f(transposedStorage(pos)).to('cpu'), 0);
  }
});

test('vector unary kernels forward and backward on contiguous inputs with tails', { skip }, async (t) => {
  const HOT: readonly [string, (x: Tensor) => Tensor, boolean][] = [
    ['neg', ops.neg, false], ['exp', ops.exp, false], ['sqrt', ops.sqrt, true], ['rsqrt', ops.rsqrt, true],
    ['sigmoid', ops.sigmoid, false], ['silu', ops.silu, false], ['gelu', (x) => ops.gelu(x), false],
    ['gelu_tanh', (x) => ops.gelu(x, 'tanh'), false], ['softplus', ops.softplus, false], ['square', ops.square, false],
  ];
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    await t.test(dtype, () => {
      for (const [name, f, positive] of HOT) {
        for (const shape of [[8, 64], [3, 37], [5]]) {
          const x = randomCpu(shape, dtype, positive ? (v) => Math.abs(v) + 0.3 : (v) => 2 * v);
          checkOp(`${name} ${dtype} ${shape}`, [x], (v) => f(v));
          checkOp(`${name} ${dtype} ${shape} misaligned`, [x], (v) => f(ops.narrow(v, 0, 1, shape[0]! - 1)));
        }
      }
    });
  }
});

test('where on contiguous and broadcast operands (vector kernel) for every element width', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16', 'float64', 'int32', 'bool'] as const) {
    const c = randomInts([6, 32], 0, 2, 'bool');
    const a = sample([6, 32], dtype);
    const b = sample([32], dtype);
    checkOp(`where ${dtype} contiguous`, [c, a, b], (cc, x, y) => ops.where(cc, x, y), { rtol: 0, grad: false });
    checkOp(`where ${dtype} tail`, [c, a], (cc, x) => ops.where(ops.reshape(cc, [192]), ops.reshape(x, [192]), ops.reshape(ops.flip(x, [0]), [192])), { rtol: 0, grad: false });
  }
});

test('copies: transposes of several shapes (odd sizes, batches, flips), slices, broadcasts; every dtype exact', { skip }, async (t) => {
  const VIEWS: readonly [string, number[], (v: Tensor) => Tensor][] = [
    ['2-d transpose 37x45', [37, 45], (v) => ops.transpose(v, 0, 1)],
    ['batched transpose 3x33x65', [3, 33, 65], (v) => ops.transpose(v, 1, 2)],
    ['flipped transpose', [3, 33, 65], (v) => ops.flip(ops.transpose(v, 1, 2), [2])],
    ['flipped both', [40, 41], (v) => ops.flip(ops.transpose(v, 0, 1), [0, 1])],
    ['permute 4-d', [2, 9, 12, 40], (v) => ops.permute(v, [1, 3, 0, 2])],
    ['narrowed slice', [4, 10, 48], (v) => ops.narrow(v, 1, 2, 5)],
    ['misaligned slice', [4, 10, 48], (v) => ops.narrow(v, 2, 3, 40)],
    ['expand inner', [5, 1], (v) => ops.expand(v, [5, 64])],
    ['expand outer', [1, 64], (v) => ops.expand(v, [7, 64])],
    ['small dims', [3, 5], (v) => ops.transpose(v, 0, 1)],
  ];
  for (const dtype of DTYPES) {
    await t.test(dtype, () => {
      for (const [name, shape, view] of VIEWS) {
        checkOp(`${name} ${dtype}`, [sample(shape, dtype)], (v) => ops.contiguous(view(v)), { rtol: 0, grad: false });
      }
    });
  }
  // Copies into strided destinations (cat writes slices; stack along an inner dim writes transposed).
  checkOp('cat into slices', [randomCpu([3, 7, 16]), randomCpu([3, 9, 16])], (a, b) => ops.cat([a, b], 1), { rtol: 0 });
  checkOp('stack inner', [randomCpu([33, 40]), randomCpu([33, 40])], (a, b) => ops.stack([a, b], 2), { rtol: 0 });
});

test('casts between float dtypes through the vector and tile kernels; other casts strided; all exact', { skip }, () => {
  for (const from of FLOATS) {
    for (const to of DTYPES) {
      const x = sample([6, 40, 33], from);
      checkOp(`cast ${from}->${to}`, [x], (v) => ops.cast(v, to), { rtol: 0, grad: false });
      checkOp(`cast ${from}->${to} rows`, [x], (v) => ops.cast(ops.narrow(v, 2, 0, 32), to), { rtol: 0, grad: false });
      checkOp(`cast ${from}->${to} transposed`, [x], (v) => ops.cast(ops.transpose(v, 1, 2), to), { rtol: 0, grad: false });
      checkOp(`cast ${from}->${to} flipped transpose`, [x], (v) => ops.cast(ops.flip(ops.transpose(v, 0, 2), [1]), to), { rtol: 0, grad: false });
    }
  }
});

test('fill of contiguous tensors with tails and of strided views', { skip }, () => {
  for (const dtype of DTYPES) {
    for (const n of [1, 7, 16, 33, 1000]) {
      assertClose(`full ${dtype} ${n}`, ops.full([n], 3, { dtype, device: 'cuda' }), ops.full([n], 3, { dtype }), 0);
    }
  }
  checkOp('zeros through a pad-like narrow', [randomCpu([4, 20])], (x) => ops.mul(ops.narrow(x, 1, 2, 16), 0), { rtol: 0, grad: false });
});
