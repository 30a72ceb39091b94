/**
 * Dimba under Module.cast('bfloat16'): matmul weights become bf16, the Mamba scan's A_log, D and
 * step-size bias stay float32 (as mamba_ssm keeps them), and a forward/backward runs with
 * gradients in each parameter's own dtype.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { Dimba } from '../../src/models/dimba/model.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { assign_ } from '../../src/ops/inplace.js';

test('bf16 Dimba keeps the scan parameters in float32 and trains', () => {
  const model = new Dimba({ ...presetConfig('Dimba-XS', { depth: 2 }), inputSize: 8 }, { seed: 1 });
  model.cast('bfloat16');
  const f32 = model.namedParameters().filter(([, p]) => p.dtype === 'float32').map(([n]) => n).sort();
  const expected = model.namedParameters().map(([n]) => n).filter((n) => /\.(A_log|A_b_log|D|D_b|dt_proj\.bias|dt_proj_b\.bias)$/.test(n)).sort();
  assert.ok(expected.length >= 6, `expected scan parameters, got ${expected.join(', ')}`);
  assert.deepEqual(f32, expected);
  for (const [name, p] of model.namedParameters()) if (!expected.includes(name)) assert.equal(p.dtype, 'bfloat16', name);

  // The released initialisation zeroes the final layer (and cross-attention output), which would
  // stop every gradient upstream of it on the first step: give it values.
  T.noGrad(() => { for (const p of model.finalLayer.parameters()) assign_(p, T.mul(T.randn(p.shape), 0.1)); });
  const c = model.config;
  const out = model.forward({
    x: T.randn([2, c.inChannels, 8, 8]), timestep: T.tensor([10, 500]), caption: T.randn([2, c.captionTokens, c.captionChannels]),
  });
  T.mean(T.square(T.cast(out, 'float32'))).backward();
  for (const [name, p] of model.namedParameters()) {
    assert.ok(p.grad, `${name} has no gradient`);
    assert.equal(p.grad!.dtype, p.dtype, `${name}: gradient dtype`);
  }
  const aGrad = model.namedParameters().find(([n]) => n.endsWith('mixer.A_log'))![1].grad!;
  assert.ok(Math.max(...Array.from(aGrad.toArray() as number[], Math.abs)) > 0, 'A_log receives a gradient');
});

test('a model built in T.tidy holds only its parameters and buffers; cast frees the replaced ones', () => {
  const before = T.memoryStats('cpu').liveBytes;
  const model = T.tidy(() => new Dimba({ ...presetConfig('Dimba-XS', { depth: 2 }), inputSize: 8 }, { seed: 1 }));
  const bytes = (): number => [...model.parameters(), ...model.namedBuffers().map(([, b]) => b)]
    .reduce((n, t) => n + t.numel * (t.dtype === 'bfloat16' ? 2 : t.dtype === 'float64' ? 8 : 4), 0);
  assert.equal(T.memoryStats('cpu').liveBytes - before, bytes(), 'live bytes after construction = parameters + buffers');
  model.cast('bfloat16');
  assert.equal(T.memoryStats('cpu').liveBytes - before, bytes(), 'live bytes after cast = the cast parameters + buffers');
});
