/**
 * CUDA convolutions against the CPU backend, forward and every gradient, each float dtype:
 * conv2d (im2col + cuBLAS: strides, padding, dilation, groups, bias, patch embedding, the 1x1 fast
 * path, and the sample-chunked and row-blocked column paths) and the depthwise causal conv1d.
 */
import { test } from 'node:test';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { Conv2dOptions } from '../../src/ops/conv.js';
import { withConvColumnBudget } from '../../src/backends/cuda/kernels/conv.js';
import { FLOATS, checkOp, cudaSkip, randomCpu } from './helpers.js';

const skip = cudaSkip;

interface ConvCase {
  readonly name: string;
  readonly x: number[];
  readonly w: number[];
  readonly bias: boolean;
  readonly options: Conv2dOptions;
}

const CASES: readonly ConvCase[] = [
  { name: '3x3 same (VAE)', x: [2, 5, 9, 11], w: [7, 5, 3, 3], bias: true, options: { padding: 1 } },
  { name: 'patch embedding (kernel = stride)', x: [2, 4, 8, 6], w: [6, 4, 2, 2], bias: true, options: { stride: 2 } },
  { name: 'strided, padded, dilated, grouped', x: [2, 6, 10, 9], w: [4, 3, 3, 2], bias: false, options: { stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 2 } },
  { name: 'depthwise', x: [1, 4, 7, 7], w: [4, 1, 3, 3], bias: true, options: { padding: 1, groups: 4 } },
  { name: '1x1 pointwise', x: [3, 5, 6, 7], w: [3, 5, 1, 1], bias: true, options: {} },
  { name: '1x1 pointwise grouped', x: [2, 6, 3, 5], w: [4, 3, 1, 1], bias: false, options: { groups: 2 } },
];

function conv(c: ConvCase) {
  return (x: Tensor, w: Tensor, b?: Tensor): Tensor => ops.conv2d(x, w, b ?? null, c.options);
}

test('conv2d forward, input and weight (and bias) gradients, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const c of CASES) {
        const inputs = [randomCpu(c.x, dtype), randomCpu(c.w, dtype, (v) => 0.3 * v)];
        if (c.bias) inputs.push(randomCpu([c.w[0]!], dtype));
        checkOp(`conv2d ${c.name} ${dtype}`, inputs, conv(c));
      }
    });
  }
});

test('conv2d with small column budgets: samples in chunks, then output rows in blocks', { skip }, () => {
  const c = CASES[2]!;
  const inputs = [randomCpu([3, 6, 10, 9], 'float32'), randomCpu(c.w, 'float32')];
  // One sample's columns: groups * K * Ho * Wo = 2 * 6 * 5 * 7 = 420 elements.
  for (const budget of [420, 900, 170, 1]) {
    withConvColumnBudget(budget, () => checkOp(`conv2d budget ${budget}`, inputs, conv(c)));
  }
  const vae = CASES[0]!;
  const bf = [randomCpu(vae.x, 'bfloat16'), randomCpu(vae.w, 'bfloat16'), randomCpu([vae.w[0]!], 'bfloat16')];
  withConvColumnBudget(500, () => checkOp('conv2d 3x3 bfloat16 in row blocks', bf, conv(vae)));
});

test('causalConv1d forward, input and weight gradients, with bias and silu, every float dtype', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const [batch, dim, len, taps] of [[2, 7, 19, 4], [1, 3, 2, 4], [3, 2, 300, 3], [1, 1, 5, 1]] as const) {
        const x = randomCpu([batch, dim, len], dtype);
        const w = randomCpu([dim, taps], dtype, (v) => 0.5 * v);
        const b = randomCpu([dim], dtype);
        checkOp(`causalConv1d ${dtype} ${[batch, dim, len, taps]}`, [x, w], (xx, ww) => ops.causalConv1d(xx, ww));
        checkOp(`causalConv1d bias silu ${dtype} ${[batch, dim, len, taps]}`, [x, w, b], (xx, ww, bb) => ops.causalConv1d(xx, ww, bb, 'silu'));
      }
      // nn.Conv1d's depthwise weight layout [dim, 1, K].
      checkOp(`causalConv1d [D, 1, K] weight ${dtype}`, [randomCpu([2, 4, 11], dtype), randomCpu([4, 1, 4], dtype)], (xx, ww) => ops.causalConv1d(xx, ww));
    });
  }
});

test('causalConv1d with bfloat16 activations and a float32 weight', { skip }, () => {
  const x = randomCpu([2, 6, 23], 'bfloat16');
  const w = randomCpu([6, 4], 'float32', (v) => 0.5 * v);
  checkOp('causalConv1d bf16 x, f32 weight', [x, w], (xx, ww) => ops.causalConv1d(xx, ww, null, 'silu'));
});
