/**
 * TextToImage behaviour: seeded generation is reproducible, guidance batches the null caption with
 * the prompts, modes are restored, parameters follow trainTextEncoder, and parts or options that do
 * not fit together fail with errors that say what to change.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, randn, mul, backward, type Tensor } from '../../src/index.js';
import { assign_ } from '../../src/nn/index.js';
import { Dimba, presetConfig, type DimbaInputs } from '../../src/models/dimba/index.js';
import { PipelineError, TextToImage, type GenerateOptions, type Objective } from '../../src/pipeline/index.js';
import { CAPTIONS, shapeImages, tinyTextToImage } from './fixtures.js';

/**
 * A tiny system whose output depends on the prompt from the start: the released init zeroes the
 * final layer and the cross-attention output projections, so random values stand in for them.
 */
function conditioned(objective: Objective, seed = 4): TextToImage {
  const pipe = tinyTextToImage({ objective, seed });
  const g = new Generator(seed + 50);
  for (const [name, p] of pipe.model.namedParameters()) {
    if (/cross_attn\.proj|final_layer\.linear/.test(name)) assign_(p, mul(randn(p.shape, { generator: g }), 0.1));
  }
  return pipe;
}

function run(pipe: TextToImage, options: Partial<GenerateOptions> = {}): number[] {
  return pipe.generate({ prompts: CAPTIONS.slice(0, 2), steps: 4, sampler: 'ddim', guidanceScale: 3, seed: 1, height: 8, width: 8, ...options }).toArray();
}

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
}

/** Batch sizes of the model calls made while running f. */
function modelBatches(model: Dimba, f: () => void): number[] {
  const batches: number[] = [];
  const forward = model.forward.bind(model);
  model.forward = (inputs: DimbaInputs): Tensor => {
    batches.push(inputs.x.shape[0]!);
    return forward(inputs);
  };
  try {
    f();
  } finally {
    model.forward = forward;
  }
  return batches;
}

describe('TextToImage.generate', () => {
  for (const [objective, samplers] of [['epsilon', ['ddim', 'dpm++']], ['v', ['ddim', 'dpm++']], ['flow', ['euler']]] as const) {
    for (const sampler of samplers) {
      test(`${objective} / ${sampler}: same seed gives identical images, another seed and another prompt different ones`, () => {
        const pipe = conditioned(objective);
        // Train mode on purpose: generate must sample in eval mode (no random caption dropout).
        pipe.train();
        const a = run(pipe, { sampler });
        const again = run(pipe, { sampler });
        assert.deepEqual(again, a);
        assert.deepEqual(run(conditioned(objective), { sampler }), a, 'a second system built with the same seeds differs');
        assert.ok(maxAbsDiff(run(pipe, { sampler, seed: 2 }), a) > 0.1, 'seed has no effect');
        const otherPrompt = run(pipe, { sampler, prompts: [CAPTIONS[0]!, CAPTIONS[2]!] });
        const half = a.length / 2;
        assert.deepEqual(otherPrompt.slice(0, half), a.slice(0, half), 'first image changed with the second prompt');
        assert.ok(maxAbsDiff(otherPrompt.slice(half), a.slice(half)) > 1e-3, 'prompt has no effect');
        assert.equal(pipe.model.training, true, 'train mode not restored');
      });
    }
  }

  test('guidance runs [null caption; prompts] as one batch; scale 0 is the null-caption model, scale 1 skips it', () => {
    const pipe = conditioned('v');
    let guided: number[] = [];
    assert.deepEqual(modelBatches(pipe.model, () => { guided = run(pipe, { guidanceScale: 0, steps: 3 }); }), [4, 4, 4]);
    let unguided: number[] = [];
    assert.deepEqual(modelBatches(pipe.model, () => { unguided = run(pipe, { prompts: ['', ''], guidanceScale: 1, steps: 3 }); }), [2, 2, 2]);
    // ε̃ = ε(∅) + 0 (ε(c) - ε(∅)) is the null-caption prediction; only float rounding may differ.
    assert.ok(maxAbsDiff(guided, unguided) < 1e-5, `scale 0 differs from the null caption by ${maxAbsDiff(guided, unguided)}`);
  });

  test('onStep reports steps done and the total', () => {
    const pipe = conditioned('flow');
    const calls: [number, number][] = [];
    pipe.generate({ prompts: ['a red square'], steps: 3, sampler: 'euler', guidanceScale: 2, seed: 0, height: 8, width: 8, onStep: (i, n) => calls.push([i, n]) });
    assert.deepEqual(calls, [[1, 3], [2, 3], [3, 3]]);
  });

  test('unsupported sampler, bad sizes and seeds fail with the reason', () => {
    const eps = conditioned('epsilon');
    const flow = conditioned('flow');
    const base: GenerateOptions = { prompts: ['a red square'], steps: 2, sampler: 'ddim', guidanceScale: 1, seed: 0, height: 8, width: 8 };
    assert.throws(() => eps.generate({ ...base, sampler: 'euler' }), (e: unknown) => e instanceof PipelineError && /'euler' cannot sample a 'epsilon' model; use ddim or dpm\+\+/.test(e.message));
    assert.throws(() => flow.generate({ ...base, sampler: 'dpm++' }), /'dpm\+\+' cannot sample a 'flow' model; use euler/);
    assert.throws(() => eps.generate({ ...base, height: 7 }), /height must be a positive multiple of the patch size 2, got 7/);
    assert.throws(() => eps.generate({ ...base, seed: -1 }), /seed must be a non-negative integer, got -1/);
    assert.throws(() => eps.generate({ ...base, prompts: [] }), /at least one prompt/);
    assert.throws(() => eps.generate({ ...base, steps: 0 }), /steps must be a positive integer, got 0/);
  });
});

describe('TextToImage.loss and parts', () => {
  test('parts that do not fit together are refused', () => {
    const { textEncoder } = tinyTextToImage({ objective: 'flow' });
    const make = (overrides: Parameters<typeof presetConfig>[1]) => new Dimba(presetConfig('Dimba-XS', {
      inputSize: 8, inChannels: 3, hiddenSize: 32, numHeads: 2, captionChannels: 32, captionTokens: 8, learnSigma: false, ...overrides,
    }));
    assert.throws(() => new TextToImage({ model: make({ learnSigma: true }), textEncoder, objective: 'v' }), /objective 'v' has no variance output; build the model with learnSigma: false/);
    assert.throws(() => new TextToImage({ model: make({ captionChannels: 16 }), textEncoder, objective: 'flow' }), /text encoder channels 32 differ from the model's captionChannels 16/);
    assert.throws(() => new TextToImage({ model: make({ captionTokens: 10 }), textEncoder, objective: 'flow' }), /text encoder maxTokens 8 differs from the model's captionTokens 10/);
    const pipe = new TextToImage({ model: make({}), textEncoder, objective: 'flow' });
    const images = shapeImages(8);
    assert.throws(() => pipe.loss(images, CAPTIONS.slice(0, 3)), /3 captions for a batch of 4 images/);
    assert.throws(() => pipe.loss(images, CAPTIONS, { minSnrGamma: 5 }), /minSnrGamma applies to the epsilon and v objectives, not flow/);
  });

  test('a frozen text encoder is left out of parameters() and gets no gradient', () => {
    const joint = conditioned('epsilon');
    const frozen = new TextToImage({ model: joint.model, textEncoder: joint.textEncoder, objective: 'epsilon', trainTextEncoder: false });
    assert.equal(frozen.parameters().length, joint.model.parameters().length);
    const { loss } = frozen.loss(shapeImages(8), CAPTIONS, { generator: new Generator(0) });
    backward(loss);
    assert.ok(joint.model.parameters().some((p) => p.grad !== null));
    assert.ok(joint.parameters().slice(joint.model.parameters().length).every((p) => p.grad === null), 'text encoder got gradients');
  });

  test('min-SNR weighting changes the epsilon and v losses only through the regression term', () => {
    for (const objective of ['epsilon', 'v'] as const) {
      const pipe = conditioned(objective);
      pipe.eval();
      const images = shapeImages(8);
      const plain = pipe.loss(images, CAPTIONS, { generator: new Generator(3) });
      // γ small enough that min(SNR, γ) < SNR at nearly every timestep, so the weights are < 1.
      const weighted = pipe.loss(images, CAPTIONS, { generator: new Generator(3), minSnrGamma: 0.05 });
      assert.equal(weighted.terms['mse']!.item(), plain.terms['mse']!.item(), `${objective}: same draws, same mse`);
      // loss = mean(w · mse) + mean(vb); with every w <= 1 the regression part must shrink.
      const regression = weighted.loss.item() - (weighted.terms['vb']?.item() ?? 0);
      const mse = plain.terms['mse']!.item();
      assert.ok(regression < mse * 0.9, `${objective}: weighted regression ${regression} vs unweighted ${mse}`);
      assert.ok(Number.isFinite(weighted.loss.item()));
      if (objective === 'epsilon') assert.equal(weighted.terms['vb']!.item(), plain.terms['vb']!.item(), 'vb term is not weighted');
    }
  });
});
