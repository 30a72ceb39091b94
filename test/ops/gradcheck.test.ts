/** Finite-difference gradient checks for every differentiable op of the core engine. */
import { describe, test } from 'node:test';
import * as T from '../../src/index.js';
import { gradcheck, rand64 } from '../helpers/gradcheck.js';

const positive = (shape: number[], seed: number) => rand64(shape, seed, 0.3, 1.5);

describe('elementwise gradients', () => {
  const unaries: [string, (x: T.Tensor) => T.Tensor, boolean][] = [
    ['neg', T.neg, false], ['exp', T.exp, false], ['log', T.log, true], ['sqrt', T.sqrt, true],
    ['rsqrt', T.rsqrt, true], ['abs', T.abs, false], ['tanh', T.tanh, false], ['sigmoid', T.sigmoid, false],
    ['silu', T.silu, false], ['relu', T.relu, false], ['gelu', (x) => T.gelu(x), false],
    ['gelu_tanh', (x) => T.gelu(x, 'tanh'), false], ['softplus', T.softplus, false], ['sin', T.sin, false],
    ['cos', T.cos, false], ['square', T.square, false], ['reciprocal', T.reciprocal, true],
    ['clamp', (x) => T.clamp(x, -0.5, 0.7), false], ['pow_scalar', (x) => T.pow(x, 2.5), true],
  ];
  for (const [name, f, needsPositive] of unaries) {
    test(name, () => gradcheck(name, f, [needsPositive ? positive([3, 4], 1) : rand64([3, 4], 1)]));
  }
  test('gelu at large |x| (erf continued-fraction branch)', () => {
    gradcheck('gelu', (x) => T.gelu(x), [rand64([6], 3, 2, 0)]);
  });

  const binaries: [string, (a: T.Tensor, b: T.Tensor) => T.Tensor][] = [
    ['add', T.add], ['sub', T.sub], ['mul', T.mul], ['div', T.div], ['pow', T.pow],
    ['maximum', T.maximum], ['minimum', T.minimum], ['atan2', T.atan2],
  ];
  for (const [name, f] of binaries) {
    test(`${name} with broadcasting`, () => {
      gradcheck(name, f, [positive([2, 3, 4], 2), positive([3, 1], 3)]);
      gradcheck(name, f, [positive([4], 4), positive([2, 1, 4], 5)]);
    });
  }
  test('scalar operands', () => {
    gradcheck('mul scalar', (x) => T.mul(T.add(x, 2), -3), [rand64([5], 6)]);
    gradcheck('div scalar', (x) => T.div(1.5, T.add(T.square(x), 1)), [rand64([5], 7)]);
  });
  test('where', () => {
    const cond = T.gt(T.randn([3, 4], { generator: new T.Generator(9) }), 0);
    gradcheck('where', (a, b) => T.where(cond, a, b), [rand64([3, 4], 8), rand64([4], 10)]);
  });
});

describe('reduction gradients', () => {
  test('sum and mean over dims', () => {
    gradcheck('sum', (x) => T.sum(x, [0, 2]), [rand64([2, 3, 4], 11)]);
    gradcheck('sum keepdim', (x) => T.sum(x, -1, true), [rand64([2, 3, 4], 12)]);
    gradcheck('mean', (x) => T.mean(x, 1), [rand64([2, 3, 4], 13)]);
    gradcheck('sum all', (x) => T.sum(x), [rand64([2, 3], 14)]);
  });
  test('max, min, prod, variance', () => {
    gradcheck('max', (x) => T.max(x, 1), [rand64([3, 5], 15)]);
    gradcheck('min', (x) => T.min(x, [0, 1]), [rand64([3, 5], 16)]);
    gradcheck('prod', (x) => T.prod(x, 1), [positive([3, 4], 17)]);
    gradcheck('variance', (x) => T.variance(x, 1), [rand64([3, 5], 18)]);
  });
  test('softmax and log-softmax along any dim', () => {
    gradcheck('softmax', (x) => T.softmax(x, 1), [rand64([2, 4, 3], 19)]);
    gradcheck('logSoftmax', (x) => T.logSoftmax(x, -1), [rand64([2, 4, 3], 20)]);
  });
});

describe('normalisation gradients', () => {
  test('layerNorm with and without affine', () => {
    gradcheck('layerNorm', (x) => T.layerNorm(x, [5]), [rand64([3, 5], 21)]);
    gradcheck('layerNorm affine', (x, w, b) => T.layerNorm(x, [5], w, b), [rand64([2, 3, 5], 22), rand64([5], 23), rand64([5], 24)]);
  });
  test('rmsNorm', () => {
    gradcheck('rmsNorm', (x, w) => T.rmsNorm(x, [6], w), [rand64([4, 6], 25), rand64([6], 26)]);
  });
  test('groupNorm', () => {
    gradcheck('groupNorm', (x, w, b) => T.groupNorm(x, 2, w, b), [rand64([2, 4, 3, 2], 27), rand64([4], 28), rand64([4], 29)]);
  });
});

describe('matmul gradients', () => {
  test('2-D, batched, broadcast batch, vectors', () => {
    gradcheck('mm', T.matmul, [rand64([3, 4], 30), rand64([4, 5], 31)]);
    gradcheck('bmm', T.matmul, [rand64([2, 3, 4], 32), rand64([2, 4, 2], 33)]);
    gradcheck('broadcast', T.matmul, [rand64([2, 1, 3, 4], 34), rand64([3, 4, 2], 35)]);
    gradcheck('weight fold', T.matmul, [rand64([2, 3, 4], 36), rand64([4, 2], 37)]);
    gradcheck('vec-mat', T.matmul, [rand64([4], 38), rand64([4, 3], 39)]);
    gradcheck('mat-vec', T.matmul, [rand64([3, 4], 40), rand64([4], 41)]);
  });
  test('transposed and permuted operands', () => {
    gradcheck('a^T b', (a, b) => T.matmul(T.transpose(a, 0, 1), b), [rand64([4, 3], 42), rand64([4, 2], 43)]);
    gradcheck('permuted batch', (a, b) => T.matmul(T.permute(a, [1, 0, 2]), b), [rand64([3, 2, 4], 44), rand64([2, 4, 2], 45)]);
  });
  test('linear', () => {
    gradcheck('linear', (x, w, b) => T.linear(x, w, b), [rand64([2, 3, 4], 46), rand64([5, 4], 47), rand64([5], 48)]);
  });
});

describe('layout gradients', () => {
  test('views', () => {
    gradcheck('reshape', (x) => T.mul(T.reshape(x, [3, -1]), T.arange(4, undefined, 1, { dtype: 'float64' })), [rand64([2, 6], 49)]);
    gradcheck('permute', (x) => T.permute(x, [2, 0, 1]), [rand64([2, 3, 4], 50)]);
    gradcheck('narrow', (x) => T.narrow(x, 1, 1, 2), [rand64([2, 4], 51)]);
    gradcheck('expand', (x) => T.expand(x, [3, 2, 4]), [rand64([2, 1], 52)]);
    gradcheck('flip', (x) => T.mul(T.flip(x, [0, 1]), T.arange(6, undefined, 1, { dtype: 'float64' }).reshape(2, 3)), [rand64([2, 3], 53)]);
    gradcheck('squeeze/unsqueeze', (x) => T.unsqueeze(T.squeeze(x, 1), 0), [rand64([3, 1, 2], 54)]);
    gradcheck('select', (x) => T.select(x, 1, 2), [rand64([2, 3], 55)]);
  });
  test('cat, stack, split, chunk', () => {
    gradcheck('cat', (a, b) => T.cat([a, b], 1), [rand64([2, 3], 56), rand64([2, 2], 57)]);
    gradcheck('stack', (a, b) => T.stack([a, b], 2), [rand64([2, 3], 58), rand64([2, 3], 59)]);
    gradcheck('split', (x) => { const [a, b] = T.split(x, [1, 3], 1); return T.mul(T.sum(a!), b!); }, [rand64([2, 4], 60)]);
    gradcheck('chunk', (x) => { const [a, b] = T.chunk(x, 2, 0); return T.mul(a!, b!); }, [rand64([4, 3], 61)]);
    // Pieces without a gradient (the first and the last unused) and a strided middle dim.
    gradcheck('split, some pieces unused', (x) => T.split(x, [2, 1, 2], 1)[1]!, [rand64([3, 5, 2], 63)]);
    gradcheck('split of a transposed view', (x) => { const [a, , c] = T.split(T.transpose(x, 0, 1), 2, 0); return T.add(a!, T.mul(c!, 3)); }, [rand64([3, 6], 64)]);
  });
  test('cast round trip carries gradient', () => {
    gradcheck('cast', (x) => T.cast(T.mul(T.cast(x, 'float32'), 2), 'float64'), [rand64([4], 62)], { atol: 1e-3, rtol: 1e-3, eps: 1e-3 });
  });
});

describe('indexing gradients', () => {
  test('embedding with repeated ids', () => {
    const ids = T.tensor([[0, 2, 2], [1, 0, 3]], { dtype: 'int32' });
    gradcheck('embedding', (w) => T.embedding(ids, w), [rand64([4, 3], 63)]);
  });
  test('indexSelect on a middle dim', () => {
    const idx = T.tensor([2, 0, 2], { dtype: 'int64' });
    gradcheck('indexSelect', (x) => T.indexSelect(x, 1, idx), [rand64([2, 3, 2], 64)]);
  });
  test('gather', () => {
    const idx = T.tensor([[0, 1, 1], [2, 0, 0]], { dtype: 'int32' });
    gradcheck('gather', (x) => T.gather(x, 1, idx), [rand64([2, 3], 65)]);
  });
});

describe('attention gradients', () => {
  test('self-attention', () => {
    gradcheck('sdpa', (q, k, v) => T.scaledDotProductAttention(q, k, v), [rand64([1, 2, 3, 4], 66), rand64([1, 2, 3, 4], 67), rand64([1, 2, 3, 4], 68)]);
  });
  test('cross-attention with key padding', () => {
    const keyPadding = T.tensor([[true, true, false, false, true], [true, false, false, false, false]]);
    gradcheck('sdpa padded', (q, k, v) => T.scaledDotProductAttention(q, k, v, { keyPadding }),
      [rand64([2, 2, 3, 4], 69), rand64([2, 2, 5, 4], 70), rand64([2, 2, 5, 3], 71)]);
  });
  test('additive and boolean masks', () => {
    const additive = rand64([3, 3], 72).detach();
    const causal = T.tensor([[true, false, false], [true, true, false], [true, true, true]]);
    gradcheck('sdpa additive', (q, k, v) => T.scaledDotProductAttention(q, k, v, { mask: additive }), [rand64([1, 1, 3, 2], 73), rand64([1, 1, 3, 2], 74), rand64([1, 1, 3, 2], 75)]);
    gradcheck('sdpa causal', (q, k, v) => T.scaledDotProductAttention(q, k, v, { mask: causal }), [rand64([1, 1, 3, 2], 76), rand64([1, 1, 3, 2], 77), rand64([1, 1, 3, 2], 78)]);
  });
});

describe('random-op gradients', () => {
  test('dropout with a fixed generator', () => {
    gradcheck('dropout', (x) => T.dropout(x, 0.4, true, new T.Generator(5)), [rand64([4, 5], 79)]);
  });
});

describe('checkpoint gradients', () => {
  test('recomputed block gives the same gradients', () => {
    const block = (x: T.Tensor, w: T.Tensor) => T.gelu(T.matmul(x, w), 'tanh');
    gradcheck('checkpoint', (x, w) => T.checkpoint(block, x, w), [rand64([2, 3], 80), rand64([3, 3], 81)]);
  });
});
