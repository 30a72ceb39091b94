/**
 * The fused causal conv1d (bias + SiLU) on CUDA against the CPU backend, forward and every
 * gradient, with x as the Mamba mixer passes it (a [B, D, L] view of a channel-last [B, L, 2D]
 * buffer, time-flipped for the backward direction) and plain layouts; bfloat16 and float32, odd D
 * and L, K = 4 and K = 1 (walk kernels), K = 5 (direct). Also: the weight and bias gradients are
 * bitwise repeatable (no atomics), and the output is channel-last for a channel-last x. The weight
 * and bias in dtypes other than the compute type (bf16 as the model holds them, f16, f32 with
 * bf16 x, f64 with f32 x) are read by the kernels as stored: one launch a forward, no casts. The
 * sampler's shapes (B2 and B1 x D2304 x L1024, the small-batch forward geometry) run at full size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend } from '../../src/backends/cuda/backend.js';
import { checkOp, cudaSkip, randomCpu, realCuda } from './helpers.js';

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

// [x, weight, bias] dtypes: the model's (all bf16), f32 x with a bf16 weight, bf16 x with an f16
// weight and bf16 bias, f32 x with a float64 weight (the compute turns float64), f16 x with f32 + bf16.
const PARAM_DTYPES: [DType, DType, DType][] = [
  ['bfloat16', 'bfloat16', 'bfloat16'], ['float32', 'bfloat16', 'float32'], ['bfloat16', 'float16', 'bfloat16'],
  ['float32', 'float64', 'float32'], ['float16', 'float32', 'bfloat16'],
];

test('causalConv1d: weight and bias in their own dtypes (read as stored by the kernels), walk and direct', { skip }, async (t) => {
  for (const [xd, wd, bd] of PARAM_DTYPES) {
    await t.test(`x ${xd}, weight ${wd}, bias ${bd}`, () => {
      for (const [b, d, l, k] of [[2, 16, 67, 4], [3, 6, 19, 3], [1, 5, 9, 5]] as const) {
        const x = randomCpu([b, l, 2 * d], xd);
        const w = randomCpu([d, k], wd, (v) => 0.5 * v);
        const bias = randomCpu([d], bd);
        for (const layout of ['mixer', 'mixer-flipped', 'contiguous'] as const) {
          const base = layout === 'contiguous' ? randomCpu([b, d, l], xd) : x;
          checkOp(`${layout} [${b}, ${d}, ${l}] K ${k} x ${xd} w ${wd} b ${bd} silu`, [base, w, bias],
            (xx, ww, bb) => ops.causalConv1d(view(layout, xx), ww, bb, 'silu'));
        }
        checkOp(`mixer [${b}, ${d}, ${l}] K ${k} x ${xd} w ${wd} no bias, no silu`, [x, w], (xx, ww) => ops.causalConv1d(view('mixer', xx), ww));
      }
    });
  }
});

test('causalConv1d: the sampler\'s shapes at full size (B2 and B1 x D2304 x L1024, bf16 weight and bias), and an L with a partial last chunk', { skip }, async (t) => {
  for (const [b, d, l] of [[2, 2304, 1024], [1, 2304, 1024], [3, 768, 1001]] as const) {
    for (const layout of ['mixer', 'mixer-flipped'] as const) {
      await t.test(`${layout} [${b}, ${d}, ${l}]`, () => {
        const x = randomCpu([b, l, 2 * d], 'bfloat16');
        const w = randomCpu([d, 1, 4], 'bfloat16', (v) => 0.5 * v);
        const bias = randomCpu([d], 'bfloat16');
        checkOp(`${layout} bf16 [${b}, ${d}, ${l}] nn.Conv1d weight [D, 1, 4]`, [x, w, bias],
          (xx, ww, bb) => ops.causalConv1d(view(layout, xx), ww, bb, 'silu'));
      });
    }
  }
});

test('causalConv1d on CUDA: a forward is one kernel launch whatever the weight and bias dtypes', { skip: skip || (realCuda ? false : 'needs a real GPU (counts launches)') }, () => {
  const backend = getBackend('cuda');
  assert.ok(backend instanceof CudaBackend);
  const rt = backend.runtime;
  const base = randomCpu([2, 64, 2 * 128], 'bfloat16').to('cuda');
  const x = view('mixer', base);
  const launch = rt.launch;
  let launches = 0;
  rt.launch = function counted(...args: Parameters<typeof launch>) {
    launches++;
    return launch.apply(this, args);
  };
  try {
    for (const [wd, bd] of [['bfloat16', 'bfloat16'], ['float32', 'bfloat16'], ['float16', 'float32']] as const) {
      const w = randomCpu([128, 4], wd).to('cuda');
      const bias = randomCpu([128], bd).to('cuda');
      launches = 0;
      const out = ops.causalConv1d(x, w, bias, 'silu');
      assert.equal(launches, 1, `weight ${wd}, bias ${bd}: ${launches} launches`);
      out.dispose();
    }
  } finally {
    rt.launch = launch;
  }
});
