/**
 * CUDA adaLN modulation kernels (kernels/modulate.cu) against the CPU backend's, forward and
 * backward: layer and RMS norm + modulate, gated residual; float32, bfloat16 (and float16,
 * float64); C = 1152 (vector path) and odd C = 1151 (scalar path); modulation as [B, 1, C],
 * strided chunks of [B, 6, C] (as the Transformer block passes them), and shared [C]; long
 * groups, so each group's rows spread over many blocks whose partial sums are added up.
 * Skipped without a GPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { composedGatedResidual, composedNormModulate, type ModulateNorm } from '../../src/ops/modulate.js';
import { getBackend } from '../../src/backends/registry.js';
import { FLOATS, TOL, assertClose, checkOp, cudaSkip, randomCpu, realCuda } from './helpers.js';

const skip = cudaSkip;
const KINDS: readonly ModulateNorm[] = ['layer', 'rms'];

test('the CUDA backend registers the fused modulation kernels (unless DIMBA_FUSED_MODULATE=0)', { skip }, () => {
  const fused = getBackend('cuda').fused;
  const want = process.env.DIMBA_FUSED_MODULATE !== '0';
  for (const k of ['normModulate', 'normModulateBackward', 'gatedResidual', 'gatedResidualBackward'] as const) {
    assert.equal(typeof fused[k] === 'function', want, `${k} registered: ${typeof fused[k]}`);
  }
});

test('layerNormModulate, every float dtype, C = 1152 and 1151, modulation [B, 1, C], chunks and shared', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const c of [1152, 1151, 40]) {
        const x = randomCpu([3, 37, c], dtype, (v) => 2 * v + 0.5);
        for (const kind of KINDS) {
          checkOp(`${kind} [B, 1, C] ${dtype} ${c}`, [x, randomCpu([3, 1, c], dtype), randomCpu([3, 1, c], dtype, (v) => 0.5 * v)],
            (v, s, k) => T.layerNormModulate(v, s, k, 1e-6, kind));
          // Shift and scale as chunks of one [B, 6, C] tensor: group stride 6C.
          checkOp(`${kind} chunks ${dtype} ${c}`, [x, randomCpu([3, 6, c], dtype, (v) => 0.5 * v)], (v, mods) => {
            const [shift, scale] = T.chunk(mods, 6, 1) as [Tensor, Tensor];
            return T.layerNormModulate(v, shift, scale, 1e-6, kind);
          });
          checkOp(`${kind} shared [C] ${dtype} ${c}`, [x, randomCpu([c], dtype), randomCpu([c], dtype, (v) => 0.5 * v)],
            (v, s, k) => T.layerNormModulate(v, s, k, 1e-6, kind));
        }
      }
    });
  }
});

test('gatedResidual, every float dtype, C = 1152 and 1151, gate [B, 1, C], chunk and shared', { skip }, async (t) => {
  for (const dtype of FLOATS) {
    await t.test(dtype, () => {
      for (const c of [1152, 1151, 40]) {
        const x = randomCpu([3, 37, c], dtype);
        const y = randomCpu([3, 37, c], dtype);
        checkOp(`gated [B, 1, C] ${dtype} ${c}`, [x, randomCpu([3, 1, c], dtype), y], (a, g, b) => T.gatedResidual(a, g, b));
        checkOp(`gated chunk ${dtype} ${c}`, [x, randomCpu([3, 6, c], dtype), y], (a, mods, b) => T.gatedResidual(a, T.chunk(mods, 6, 1)[2]!, b));
        checkOp(`gated shared ${dtype} ${c}`, [x, randomCpu([c], dtype), y], (a, g, b) => T.gatedResidual(a, g, b));
      }
    });
  }
});

test('long groups (thousands of rows, many blocks per group): partial sums add up, and deterministically', { skip }, () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const x = randomCpu([2, 3000, 256], dtype);
    const m = randomCpu([2, 1, 256], dtype, (v) => 0.3 * v);
    checkOp(`norm long ${dtype}`, [x, m, m], (v, s, k) => T.layerNormModulate(v, s, k));
    checkOp(`gated long ${dtype}`, [x, m, x], (a, g, b) => T.gatedResidual(a, g, b));
    // The same backward twice gives bit-identical modulation gradients.
    const grads = () => {
      const s = m.to('cuda').requiresGrad_(true);
      const g = m.to('cuda').requiresGrad_(true);
      const xx = x.to('cuda');
      T.sum(T.gatedResidual(xx, g, T.layerNormModulate(xx, s, s))).backward();
      return [s.grad!.toFloat64Array(), g.grad!.toFloat64Array()];
    };
    assert.deepEqual(grads(), grads(), `${dtype}: modulation gradients differ between identical runs`);
  }
});

test('fused CUDA ops equal the composed ops on CUDA (bf16 within its rounding)', { skip: skip || (!realCuda && 'needs a real GPU') }, () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const x = randomCpu([4, 64, 1152], dtype).to('cuda');
    const s = randomCpu([4, 1, 1152], dtype).to('cuda');
    const k = randomCpu([4, 1, 1152], dtype, (v) => 0.5 * v).to('cuda');
    const rtol = dtype === 'float32' ? 2e-5 : 2 * TOL.bfloat16;
    assertClose(`norm ${dtype}`, T.layerNormModulate(x, s, k), composedNormModulate(x, s, k).to('cpu'), rtol);
    assertClose(`gated ${dtype}`, T.gatedResidual(x, s, T.contiguous(T.expand(k, [4, 64, 1152]))),
      composedGatedResidual(x, s, T.contiguous(T.expand(k, [4, 64, 1152]))).to('cpu'), rtol);
  }
});
