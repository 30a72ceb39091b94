/**
 * The host side of captured training steps (src/train/graphed-step.ts), on the CPU: the draw tape
 * that moves random draws out of a captured function, the split caption encoding, the fallback
 * reasons (the CPU has no graphs: run() must leave everything as it was), and the config field.
 * test/cuda/graphed-train-step.test.ts runs captured steps against eager ones on a GPU.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { checkpoint } from '../../src/autograd/checkpoint.js';
import { Generator, defaultGenerator } from '../../src/random/generator.js';
import { DrawTape, GraphedTrainStep, captionArrays, encodeOnDevice } from '../../src/train/graphed-step.js';
import { TrainingError } from '../../src/train/errors.js';
import { AdamW, adamwCoefficients } from '../../src/optim/adamw.js';
import { CAME } from '../../src/optim/came.js';
import { EMA } from '../../src/optim/ema.js';
import { encodeCaptions } from '../../src/pipeline/conditioning.js';
import { SmallTextEncoder } from '../../src/models/text/small-encoder.js';
import { parseTrainConfig, trajectoryOf } from '../../src/train/config.js';
import { TrainConfigError } from '../../src/train/errors.js';
import { tinyTextToImage } from '../pipeline/fixtures.js';
import { tinyConfigJson } from './helpers.js';

function values(ts: readonly T.Tensor[]): number[][] {
  return ts.map((t) => [...t.toFloat64Array()]);
}

/**
 * Draws from two generators in a fixed pattern, one of them (the global one) rewound and drawn
 * again as activation checkpointing's recomputation does, and a draw through a checkpointed
 * function's forward and backward.
 */
function drawing(g: Generator): T.Tensor[] {
  const a = T.randn([3], { generator: g });
  const saved = defaultGenerator.getState();
  const b = T.rand([2, 2]);
  defaultGenerator.setState(saved);
  const again = T.rand([2, 2]);
  const c = T.randn([4], { generator: g, dtype: 'float64' });
  const x = T.ones([2], { requiresGrad: true });
  const y = checkpoint((xi: T.Tensor) => T.mul(xi, T.rand([2])), x);
  T.sum(y).backward();
  return [a, b, again, c, y.detach(), x.grad!];
}

test('DrawTape: fill then substitute computes what a plain call computes and leaves the generators where it would', () => {
  const g = new Generator(7);
  defaultGenerator.manualSeed(11);
  const tape = new DrawTape('test');
  const first = tape.record(() => drawing(g));
  assert.equal(tape.length, 6, 'two of g; four global: one, its rewound repeat, a checkpointed forward draw and its recomputation');
  for (let call = 0; call < 2; call++) {
    const before = { g: g.getState(), global: defaultGenerator.getState() };
    const plain = drawing(g);
    const after = { g: g.getState(), global: defaultGenerator.getState() };
    g.setState(before.g);
    defaultGenerator.setState(before.global);
    tape.fill();
    assert.deepEqual({ g: g.getState(), global: defaultGenerator.getState() }, after, 'fill advances the generators as the call does');
    const taped = tape.substitute(() => drawing(g));
    assert.deepEqual({ g: g.getState(), global: defaultGenerator.getState() }, after, 'substitute advances nothing');
    assert.deepEqual(values(taped), values(plain));
    assert.notDeepEqual(values(taped)[0], values(first)[0], 'each call draws new numbers');
    // The rewound draw repeats the first one, as in the plain call.
    assert.deepEqual(values(taped)[2], values(taped)[1]);
  }
  tape.dispose();
});

test('DrawTape: a call that draws otherwise than the recorded one is refused by name', () => {
  const g = new Generator(1);
  const tape = new DrawTape('step');
  tape.record(() => [T.randn([3], { generator: g }), T.rand([2], { generator: g })]);
  tape.fill();
  assert.throws(() => tape.substitute(() => T.randn([4], { generator: g })), (e: unknown) => e instanceof TrainingError
    && /step: random draw 1 \(normal \[4\] float32\) differs from the recorded draw 1 \(normal \[3\] float32\)/.test(e.message));
  assert.throws(() => tape.substitute(() => T.randn([3], { generator: new Generator(1) })), /another generator/);
  assert.throws(() => tape.substitute(() => T.randn([3], { generator: g })), /made 1 random draws, the recorded one 2/);
  assert.throws(() => new DrawTape('fresh').fill(), /no draws recorded yet/);
});

test('the split caption encoding equals encodeCaptions (features, mask, null captions), gradients included', () => {
  const pipe = tinyTextToImage({ objective: 'epsilon' });
  const encoder = pipe.textEncoder as SmallTextEncoder;
  const captions = ['a red circle', '', 'blue square on a green circle with more words than fit', 'a'];
  const want = encodeCaptions(encoder, captions, true);
  const host = captionArrays(encoder, captions);
  const b = captions.length;
  const L = host.length;
  const got = encodeOnDevice(encoder, true, T.tensor(host.ids, { dtype: 'int32', shape: [b, L] }), T.tensor(host.tokenMask, { dtype: 'bool', shape: [b, L] }),
    T.tensor(host.keepMask, { dtype: 'bool', shape: [b, L, 1] }), T.tensor(host.outMask, { dtype: 'bool', shape: [b, L] }),
    T.tensor(host.isNull, { dtype: 'bool', shape: [b] }));
  assert.deepEqual([...got.caption.toFloat64Array()], [...want.caption.toFloat64Array()]);
  assert.deepEqual([...got.captionMask!.toFloat64Array()], [...want.captionMask!.toFloat64Array()]);
  assert.deepEqual([...got.forceDropCaption!.toFloat64Array()], [...want.forceDropCaption!.toFloat64Array()]);
  assert.deepEqual([...host.isNull], [0, 1, 0, 0]);
  const w = encoder.tokenEmbedding.weight;
  T.sum(T.square(want.caption)).backward();
  const gWant = [...w.grad!.toFloat64Array()];
  w.grad = null;
  T.sum(T.square(got.caption)).backward();
  assert.deepEqual([...w.grad!.toFloat64Array()], gWant);
});

test('GraphedTrainStep on the CPU: says why it does not capture, and run() changes nothing (the caller steps eagerly)', () => {
  const pipe = tinyTextToImage({ objective: 'epsilon' });
  const params = pipe.parameters();
  const optimizer = new AdamW(params, { lr: 1e-3 });
  const ema = new EMA(params, { decay: 0.9 });
  const noise = new Generator(3);
  const make = (setting: boolean | 'auto', extra: { gradAccumulation?: number } = {}) => new GraphedTrainStep({
    pipeline: pipe, params, optimizer, ema, gradClip: 1, minSnrGamma: null, noise, setting, ...extra,
  });
  const auto = make('auto');
  assert.match(auto.fallback!, /the cpu backend has no CUDA graphs/);
  const weights = values(params);
  const state = noise.getState();
  const images = T.randn([2, 3, 8, 8]);
  assert.equal(auto.run(images, ['a red circle', 'a blue square']), null);
  assert.deepEqual(values(params), weights);
  assert.deepEqual(noise.getState(), state);
  assert.equal(optimizer.stateOf(params[0]!), undefined);
  assert.deepEqual(auto.stats(), { steps: 0, warmups: 0, captures: 0, replays: 0, uncaptured: 0, fallback: auto.fallback });
  assert.equal(make(false).fallback, 'cudaGraphs is false');
  assert.throws(() => make(true), (e: unknown) => e instanceof TrainingError && /cudaGraphs is true but the step cannot be captured: the cpu backend has no CUDA graphs/.test(e.message));
  assert.throws(() => make('yes' as never), /cudaGraphs must be true, false or 'auto', got yes/);
  assert.throws(() => new GraphedTrainStep({ pipeline: pipe, params, optimizer, ema, gradClip: 1, minSnrGamma: null, noise, setting: 'auto', maxGraphs: 0 }),
    /maxGraphs must be a positive integer, got 0/);
  auto.dispose();
});

test('config: cudaGraphs is true, false or \'auto\' (default), and not part of the trajectory', () => {
  const base = tinyConfigJson('/tmp/out', '/tmp/data/manifest.jsonl');
  assert.equal(parseTrainConfig(base).stages[0]!.cudaGraphs, 'auto');
  for (const v of [true, false, 'auto'] as const) assert.equal(parseTrainConfig({ ...base, cudaGraphs: v }).stages[0]!.cudaGraphs, v);
  assert.throws(() => parseTrainConfig({ ...base, cudaGraphs: 'on' }), (e: unknown) => e instanceof TrainConfigError
    && /cudaGraphs must be true, false or 'auto', got/.test(e.message));
  const on = parseTrainConfig({ ...base, cudaGraphs: true });
  const off = parseTrainConfig({ ...base, cudaGraphs: false });
  assert.deepEqual(trajectoryOf(on, on.stages[0]!), trajectoryOf(off, off.stages[0]!));
});

test('OptimizerControl: prepare writes the next step\'s coefficients (lr and step as now), commit advances counts unless skipped', () => {
  const a = T.ones([3], { requiresGrad: true });
  const b = T.ones([2, 2], { requiresGrad: true });
  const opt = new AdamW([a, b], { lr: 0.01, betas: [0.9, 0.99], weightDecay: 0.1 });
  const control = opt.createControl(T.zeros([], { dtype: 'int32' }));
  const expected = (lr: number, step: number) => {
    const c = adamwCoefficients({ lr, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 }, step);
    return [c.decayScale, c.lerpWeight, c.lerpFromGrad ? 1 : 0, c.beta2, c.oneMinusBeta2, c.rootBias2, c.eps, c.stepScale];
  };
  control.prepare();
  assert.deepEqual([...control.coefficients[0]!.toFloat64Array()], expected(0.01, 1));
  for (const p of [a, b]) p.grad = T.ones(p.shape);
  opt.step();
  opt.paramGroups[0]!.options.lr = 0.004;
  control.prepare();
  assert.deepEqual([...control.coefficients[0]!.toFloat64Array()], expected(0.004, 2));
  // The CPU has no multi-tensor kernel: refused by name, nothing updated, no count advanced.
  const before = values([a, b]);
  assert.throws(() => opt.stepControlled(control), /AdamW: group 0 param 0 .* cannot take a captured step/);
  assert.deepEqual(values([a, b]), before);
  control.stepped = [opt.stateOf(a)!, opt.stateOf(b)!];
  control.commit(true);
  assert.equal(opt.stateOf(a)!.step, 1);
  control.commit(false);
  assert.deepEqual([opt.stateOf(a)!.step, opt.stateOf(b)!.step], [2, 2]);
  assert.equal(opt.controlProblem(), null);
  a.grad = T.ones([3]);
  b.grad = null;
  opt.step();
  assert.match(opt.controlProblem()!, /group 0's parameters have taken different numbers of steps \(3, 2\)/);
  const came = new CAME([a], { lr: 0.5, weightDecay: 0.2 }).createControl(T.zeros([], { dtype: 'int32' }));
  came.prepare();
  assert.deepEqual([...came.coefficients[0]!.toFloat64Array()], [Math.fround(-0.2 * 0.5), Math.fround(-0.5)]);
});
