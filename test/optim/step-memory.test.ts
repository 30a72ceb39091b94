/**
 * A composed optimizer step (no multi-tensor kernels, as on the CPU) called outside any T.tidy
 * scope leaves only parameters, gradients and optimizer state live: each parameter's update runs
 * in its own scope, so temporaries never pile up across a model (on a GPU they would otherwise
 * wait for the garbage collector).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { CAME } from '../../src/optim/came.js';
import { Parameter } from '../../src/nn/parameter.js';
import { EMA } from '../../src/optim/ema.js';
import { clipGradNorm } from '../../src/optim/clip-grad.js';

for (const [name, make] of [
  ['AdamW', (ps: Parameter[]) => new AdamW(ps, { lr: 1e-3, weightDecay: 0.01 })],
  ['CAME', (ps: Parameter[]) => new CAME(ps, { lr: 1e-3, weightDecay: 0.01 })],
] as const) {
  test(`${name}.step outside a scope leaves no temporaries live`, () => {
    const params = [[64, 32], [32], [128, 64], [7, 3]].map((s) => new Parameter(T.randn(s)));
    const optimizer = make(params);
    const setGrads = () => { for (const p of params) p.grad = T.randn(p.shape); };
    setGrads();
    optimizer.step(); // creates the state
    setGrads();
    const before = T.memoryStats('cpu').liveBytes;
    optimizer.step();
    const after = T.memoryStats('cpu').liveBytes;
    assert.equal(after, before, `${name} step left ${after - before} bytes of temporaries live`);
  });
}

test('EMA.update and clipGradNorm outside a scope leave no temporaries live', () => {
  const params = [[64, 32], [32], [7, 3]].map((s) => new Parameter(T.randn(s)));
  for (const p of params) p.grad = T.randn(p.shape);
  const ema = new EMA(params, { decay: 0.9 });
  ema.update();
  const before = T.memoryStats('cpu').liveBytes;
  ema.update();
  const norm = clipGradNorm(params, 1e9);
  assert.ok(norm > 0);
  assert.equal(T.memoryStats('cpu').liveBytes, before);
});
