/** SmallTextEncoder feeding a tiny Dimba: forward and backward through both, null captions. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../../src/index.js';
import { assign_, type Parameter } from '../../../src/nn/index.js';
import { Dimba, presetConfig } from '../../../src/models/dimba/index.js';
import { SmallTextEncoder, ByteTokenizer, captionInputs } from '../../../src/models/text/index.js';

const ENCODER = { width: 32, depth: 1, numHeads: 2, mlpRatio: 2, maxTokens: 16, channels: 24 };

function build(): { encoder: SmallTextEncoder; model: Dimba } {
  const encoder = new SmallTextEncoder(new ByteTokenizer(), ENCODER, { seed: 1 });
  const model = new Dimba(presetConfig('Dimba-XS', { inputSize: 8, captionChannels: encoder.channels, captionTokens: encoder.maxTokens }), { seed: 2 });
  // The released init zeroes cross_attn.proj and final_layer, so at step 0 no gradient reaches
  // the caption path; random values stand in for weights after some training.
  const g = new T.Generator(3);
  for (const [name, p] of model.namedParameters()) {
    if (/cross_attn\.proj|final_layer\.linear/.test(name)) assign_(p, T.mul(T.randn(p.shape, { generator: g }), 0.05));
  }
  return { encoder, model };
}

function inputs(batch: number) {
  const g = new T.Generator(4);
  return { x: T.randn([batch, 4, 8, 8], { generator: g }), timestep: T.tensor([10, 500, 999].slice(0, batch)) };
}

describe('SmallTextEncoder + Dimba', () => {
  test('forward and backward: encoder and backbone both get gradients', () => {
    const { encoder, model } = build();
    const encoded = encoder.encode(['a red cat on a mat', '', 'a blue dog']);
    const out = model.forward({ ...inputs(3), ...captionInputs(encoded) });
    assert.deepEqual(out.shape, [3, 8, 8, 8]);
    const target = T.randn([3, 4, 8, 8], { generator: new T.Generator(5) });
    T.backward(T.mean(T.pow(T.sub(T.narrow(out, 1, 0, 4), target), 2)));
    const noGrad = (params: [string, Parameter][]) => params
      .filter(([, p]) => !p.grad || !p.grad.toArray().some((v) => v !== 0) || !p.grad.toArray().every(Number.isFinite))
      .map(([n]) => n);
    assert.deepEqual(noGrad(encoder.namedParameters()), []);
    assert.deepEqual(noGrad(model.namedParameters()), []);
  });

  test('the caption conditions the output; a null caption is the model\'s null embedding', () => {
    const { encoder, model } = build();
    model.eval();
    const base = inputs(2);
    const run = (captions: string[]) => model.forward({ ...base, ...captionInputs(encoder.encode(captions)) }).toArray();
    const a = run(['a red cat', 'a blue dog']);
    const b = run(['a red cat', 'a green frog']);
    const half = a.length / 2;
    assert.deepEqual(b.slice(0, half), a.slice(0, half));
    assert.ok(b.slice(half).some((v, i) => Math.abs(v - a[half + i]!) > 1e-4), 'caption has no effect');
    // '' gives the same output as any caption dropped to y_embedding with its full-length mask.
    const nullOut = run(['a red cat', '']);
    const real = encoder.encode(['a red cat', 'a blue dog']);
    const dropped = model.forward({
      ...base, caption: real.features, captionMask: T.ones([2, encoder.maxTokens], { dtype: 'bool' }),
      forceDropCaption: T.tensor([false, true]),
    }).toArray();
    const err = Math.max(...nullOut.slice(half).map((v, i) => Math.abs(v - dropped[half + i]!)));
    assert.ok(err < 1e-5, `null caption differs from y_embedding by ${err}`);
  });
});
