/**
 * The fused causal conv1d (bias + SiLU) on CUDA against the CPU backend, forward and every
 * gradient, with x as the Mamba mixer passes it (a [B, D, L] view of a channel-last [B, L, 2D]
 * buffer, time-flipped for the backward direction) and plain layouts; bfloat16 and float32, odd D
 * and L, K = 4 and K = 1 (walk kernels), K = 5 (direct). Also: the weight and bias gradients are
 * bitwise repeatable (no atomics), and the output is channel-last for a channel-last x.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { checkOp, cudaSkip, randomCpu } from './helpers.js';

const skip = cudaSkip;

type Layout = 'mixer' | 'mixer-flipped' | 'channel-last' | 'contiguous' | 'flipped';

/** Base shape for x [B, D, L] in each layout, and the view of the base the op gets. */
function baseShape(layout: Layout, b: number, d: number, l: number): number[] {
  if (layout === 'mixer' || layout === 'mixer-flipped') return [b, l, 2 * d];
  return layout === 'channel-last' ? [b, l, d] : [b, d, l];
}

function view(layout: Layout, base: Tensor): Tensor {
  switch (layout) {
    case 'contiguous': return base;
    case 'flipped': return ops.flip(base, [2]);
    case 'channel-last': return ops.transpose(base, 1, 2);
    default: {
      const xz = ops.transpose(base, 1, 2);
      return ops.chunk(layout === 'mixer' ? xz : ops.flip(xz, [2]), 2, 1)[0]!;
    }
  }
}

const LAYOUTS: Layout[] = ['mixer', 'mixer-flipped', 'channel-last', 'contiguous', 'flipped'];
// [B, D, L, K]: the mixer's K = 4 with D a multiple of 4 (vector loads), odd D and L, K = 1, K = 5.
const SHAPES: [number, number, number, number][] = [[2, 16, 67, 4], [3, 7, 19, 4], [2, 6, 33, 1], [1, 5, 3, 5]];

for (const dtype of ['bfloat16', 'float32'] as const) {
  test(`causalConv1d fused bias + silu, ${dtype}: every layout and shape, forward and gradients`, { skip }, async (t) => {
    for (const layout of LAYOUTS) {
      await t.test(layout, () => {
        for (const [b, d, l, k] of SHAPES) {
          const x = randomCpu(baseShape(layout, b, d, l), dtype);
          const w = randomCpu([d, k], 'float32', (v) => 0.5 * v);
          const bias = randomCpu([d], 'float32');
          checkOp(`${layout} ${dtype} [${b}, ${d}, ${l}] K ${k} bias silu`, [x, w, bias],
            (xx, ww, bb) => ops.causalConv1d(view(layout, xx), ww, bb, 'silu'));
          checkOp(`${layout} ${dtype} [${b}, ${d}, ${l}] K ${k} plain`, [x, w],
            (xx, ww) => ops.causalConv1d(view(layout, xx), ww));
        }
      });
    }
  });
}

test('causalConv1d: float64 and float16 on the mixer view, bias without silu and silu without bias', { skip }, () => {
  for (const dtype of ['float64', 'float16'] as const) {
    const x = randomCpu([2, 21, 2 * 12], dtype);
    const w = randomCpu([12, 4], dtype, (v) => 0.5 * v);
    const bias = randomCpu([12], dtype);
    checkOp(`mixer ${dtype} bias only`, [x, w, bias], (xx, ww, bb) => ops.causalConv1d(view('mixer-flipped', xx), ww, bb));
    checkOp(`mixer ${dtype} silu only`, [x, w], (xx, ww) => ops.causalConv1d(view('mixer', xx), ww, null, 'silu'));
  }
});

test('causalConv1d on CUDA: weight and bias gradients are bitwise repeatable; channel-last output', { skip }, () => {
  const base = randomCpu([4, 300, 2 * 64], 'bfloat16').to('cuda');
  const w = randomCpu([64, 4], 'float32', (v) => 0.5 * v).to('cuda');
  const bias = randomCpu([64], 'float32').to('cuda');
  const gy = randomCpu([4, 64, 300], 'bfloat16').to('cuda');
  const grads = () => {
    const wl = w.detach().requiresGrad_(true);
    const bl = bias.detach().requiresGrad_(true);
    const out = ops.causalConv1d(view('mixer-flipped', base), wl, bl, 'silu');
    assert.deepEqual(out.strides, [300 * 64, 1, 64], 'output is a view of [B, L, D] storage');
    out.backward(gy);
    return [wl.grad!.toFloat64Array(), bl.grad!.toFloat64Array()];
  };
  const [w1, b1] = grads();
  const [w2, b2] = grads();
  assert.deepEqual(Array.from(w2!), Array.from(w1!));
  assert.deepEqual(Array.from(b2!), Array.from(b1!));
});
