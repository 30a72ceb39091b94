/**
 * The graphed denoiser without a GPU: generate() validates cudaGraph and calls the model eagerly
 * on the CPU (one call per step); through a CPU backend with a stand-in graph capability, the
 * wrapper copies each call's arguments into static inputs, captures once per input signature,
 * replays at every call and returns results equal to the eager model's (fresh tensors, not the
 * replayed output); under 'auto' a failed capture warns and falls back to eager calls, under true
 * it throws.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { graphedDenoiser } from '../../src/pipeline/graphed-denoiser.js';
import { PipelineError } from '../../src/pipeline/index.js';
import type { ModelFn } from '../../src/diffusion/model.js';
import { FakeGraphBackend } from '../backends/fake-graph-backend.js';
import { tinyTextToImage, CAPTIONS } from './fixtures.js';

type Cond = { caption: Tensor; mask: Tensor };

/** A small denoiser reading every argument: x * t + sum of the unmasked caption values. */
const model: ModelFn<Cond> = (x, t, cond) => {
  const b = x.shape[0]!;
  const captionTerm = T.sum(T.mul(cond.caption, T.cast(cond.mask, 'float32')), [1]);
  return T.add(T.mul(x, T.reshape(t, [b, 1, 1])), T.reshape(captionTerm, [b, 1, 1]));
};

function inputs(fake: FakeGraphBackend, batch: number, seed: number): [Tensor, Tensor, Cond] {
  const g = new T.Generator(seed);
  const on = (t: Tensor) => fake.tensor(Array.from(t.toFloat64Array()), [...t.shape]);
  const x = on(T.randn([batch, 3, 2], { generator: g }));
  const t = on(T.mul(T.rand([batch], { generator: g }), 1000));
  const caption = on(T.randn([batch, 4], { generator: g }));
  const mask = on(T.cast(T.lt(T.rand([batch, 4], { generator: g }), 0.7), 'float32'));
  return [x, t, { caption, mask }];
}

test('generate on the CPU calls the model eagerly at every step and validates cudaGraph', () => {
  const pipe = tinyTextToImage({ objective: 'flow' });
  const base = { prompts: CAPTIONS.slice(0, 2), steps: 3, sampler: 'euler' as const, guidanceScale: 2, seed: 1, height: 8, width: 8 };
  const plain = pipe.generate(base);
  assert.deepEqual(pipe.lastGraphStats, { calls: 3, eagerCalls: 3, captures: 0, replays: 0, fallback: null });
  assert.deepEqual(pipe.generate({ ...base, cudaGraph: false }).toArray(), plain.toArray());
  assert.throws(() => pipe.generate({ ...base, cudaGraph: 'maybe' as never }),
    (e: unknown) => e instanceof PipelineError && /cudaGraph must be true, false or 'auto', got maybe/.test(e.message));
  assert.throws(() => pipe.generate({ ...base, cudaGraph: true }), /cudaGraph is true but cpu has no graph capture/);
});

test('graphed calls copy arguments into static inputs, replay, and equal the eager model', () => {
  const fake = new FakeGraphBackend();
  const d = graphedDenoiser(model, 'auto', 'toy');
  const results: Tensor[] = [];
  for (let i = 0; i < 4; i++) {
    const [x, t, cond] = inputs(fake, 2, i);
    const got = d.fn(x, t, cond);
    results.push(got);
    assert.deepEqual(got.toArray(), model(x, t, cond).toArray(), `call ${i}`);
  }
  // Each call returned its own tensor: later replays did not overwrite earlier results.
  const [x0, t0, c0] = inputs(fake, 2, 0);
  assert.deepEqual(results[0]!.toArray(), model(x0, t0, c0).toArray());
  assert.equal(new Set(results).size, 4);
  // Another batch size is another signature: a second capture.
  const [x, t, cond] = inputs(fake, 3, 9);
  assert.deepEqual(d.fn(x, t, cond).toArray(), model(x, t, cond).toArray());
  assert.deepEqual(d.stats(), { calls: 5, eagerCalls: 0, captures: 2, replays: 5, fallback: null });
  assert.equal(fake.captures, 2);
  d.dispose();
  assert.equal(fake.destroyed, 2);
});

test('under auto a failed capture warns once and the calls run eagerly; under true it throws', async () => {
  const fake = new FakeGraphBackend();
  fake.failNextCapture = new Error('host read during CUDA graph capture');
  const d = graphedDenoiser(model, 'auto', 'toy');
  const warned = once(process, 'warning');
  for (let i = 0; i < 3; i++) {
    const [x, t, cond] = inputs(fake, 2, i);
    assert.deepEqual(d.fn(x, t, cond).toArray(), model(x, t, cond).toArray());
  }
  const [warning] = await warned as [Error & { code?: string }];
  assert.equal(warning.code, 'DIMBA_GRAPH_FALLBACK');
  assert.match(warning.message, /toy: CUDA graph capture failed, calling the model eagerly instead: host read during CUDA graph capture/);
  assert.deepEqual(d.stats(), { calls: 3, eagerCalls: 3, captures: 0, replays: 0, fallback: 'host read during CUDA graph capture' });
  assert.equal(fake.captures, 0);

  fake.failNextCapture = new Error('refused');
  const strict = graphedDenoiser(model, true, 'toy');
  const [x, t, cond] = inputs(fake, 2, 0);
  assert.throws(() => strict.fn(x, t, cond), /refused/);
});
