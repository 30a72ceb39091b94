/**
 * Captured training steps end to end on the CPU, through the stand-in 'cuda' device of
 * fake-graph-device.ts (the multi-tensor formulas honouring the step control; a "replay" that runs
 * the captured function again): the trainer's loop, warm-up, capture, draw tape, control
 * coefficients and counts, skip handling, checkpoints and resume. Results must equal eager steps
 * bit for bit. test/cuda/graphed-train-step.test.ts runs on this device too with
 * DIMBA_CUDA_TEST_FAKE=graphs (a check of that test itself).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import * as T from '../../src/index.js';
import { Generator } from '../../src/random/generator.js';
import { AdamW } from '../../src/optim/adamw.js';
import { EMA } from '../../src/optim/ema.js';
import { GraphedTrainStep } from '../../src/train/graphed-step.js';
import { train } from '../../src/train/train.js';
import { MetricsLog } from '../../src/train/metrics.js';
import type { SmallTextEncoder } from '../../src/models/text/small-encoder.js';
import { installFakeGraphDevice } from './fake-graph-device.js';
import { CAPTIONS, tinyTextToImage } from '../pipeline/fixtures.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

const graphs = installFakeGraphDevice();

function checkpointFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const f of fs.readdirSync(dir)) {
    if (f === 'trainer.json' || f === 'config.json') {
      // Wall-clock seconds differ between runs, and the config records cudaGraphs; nothing else may differ.
      const { seconds: _s, cudaGraphs: _g, ...rest } = JSON.parse(fs.readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
      out.set(f, Buffer.from(JSON.stringify(rest)));
    } else out.set(f, fs.readFileSync(join(dir, f)));
  }
  return out;
}

function assertSameCheckpoint(a: string, b: string): void {
  const fa = checkpointFiles(a);
  const fb = checkpointFiles(b);
  assert.deepEqual([...fb.keys()].sort(), [...fa.keys()].sort());
  for (const [name, bytes] of fa) assert.ok(bytes.equals(fb.get(name)!), `${name} differs between ${a} and ${b}`);
}

const overrides = {
  steps: 6, optimizer: { lr: 3e-3 }, emaDecay: 0.9, gradClip: 0.05, schedule: { kind: 'cosine', warmupSteps: 3 },
  checkpoint: { every: 3, keepLast: 3 }, model: { classDropoutProb: 0.2, dropPath: 0.1 },
  // No sample grids: sampling replays its own (denoiser) graphs, which would muddle the counts.
  samples: { prompts: [] },
};

test('the trainer on the stand-in device: captured steps equal eager ones bit for bit (weights, EMA, optimizer state, generators, losses)', async () => {
  const root = tempDir('graphs-fake');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const before = { captures: graphs.captures, replays: graphs.replays };
  const on = await train({ config: tinyConfig(join(root, 'on'), manifest, { ...overrides, cudaGraphs: true }), reporter: quietReporter(), device: 'cuda' });
  // The tiny dataset's batches come in two shapes: two warm-ups, one of them captured and replayed.
  assert.equal(graphs.captures - before.captures, 1);
  assert.equal(graphs.replays - before.replays, 4, 'one shape: warm-up, capture, three more replays; the other: one warm-up');
  const off = await train({ config: tinyConfig(join(root, 'off'), manifest, { ...overrides, cudaGraphs: false }), reporter: quietReporter(), device: 'cuda' });
  assert.equal(graphs.replays - before.replays, 4, 'cudaGraphs false captures nothing');
  const loss = (dir: string) => new MetricsLog(join(dir, 'metrics.jsonl')).read().map((r) => [r['loss'], r['gradNorm'], r['lr'], r['mse']]);
  assert.deepEqual(loss(join(root, 'on')), loss(join(root, 'off')));
  assertSameCheckpoint(on.checkpoint!, off.checkpoint!);
  assertSameCheckpoint(join(root, 'on', 'base', 'step-3'), join(root, 'off', 'base', 'step-3'));
});

test('the trainer on the stand-in device: stopped after 3 captured steps and resumed, it ends where an uninterrupted run ends', async () => {
  const root = tempDir('graphs-fake-resume');
  const manifest = await makeTinyDataset(join(root, 'data'));
  const config = (dir: string) => tinyConfig(join(root, dir), manifest, { ...overrides, cudaGraphs: true });
  const straight = await train({ config: config('straight'), reporter: quietReporter(), device: 'cuda' });
  const controller = new AbortController();
  const first = await train({
    config: config('split'), reporter: quietReporter(), device: 'cuda', signal: controller.signal,
    hooks: { onStep: (_stage, step) => { if (step === 3) controller.abort('test'); } },
  });
  assert.equal(first.completed, false);
  const resumed = await train({ config: config('split'), reporter: quietReporter(), device: 'cuda', resume: true });
  assert.equal(resumed.completed, true);
  assertSameCheckpoint(straight.checkpoint!, resumed.checkpoint!);
});

test('GraphedTrainStep on the stand-in device: a NaN batch is skipped on the device (weights, state and counts untouched), then steps go on', () => {
  const pipe = tinyTextToImage({ objective: 'epsilon', seed: 2 });
  pipe.model.to('cuda');
  (pipe.textEncoder as SmallTextEncoder).to('cuda');
  pipe.train();
  const params = pipe.parameters();
  const optimizer = new AdamW(params, { lr: 1e-3 });
  const ema = new EMA(params, { decay: 0.9 });
  const g = new GraphedTrainStep({ pipeline: pipe, params, optimizer, ema, gradClip: 1, minSnrGamma: null, noise: new Generator(4), setting: true });
  const images = (seed: number) => T.randn([2, 3, 8, 8], { generator: new Generator(seed), device: 'cuda' });
  const snapshot = () => [...params, ...ema.shadowParams, ...params.flatMap((p) => [...optimizer.stateOf(p)!.buffers.values()])].map((t) => [...t.toFloat64Array()]);
  const captions = CAPTIONS.slice(0, 2);
  assert.equal(g.run(images(1), captions)!.mode, 'warmup');
  assert.equal(g.run(images(2), captions)!.mode, 'replay');
  const before = snapshot();
  const r = g.run(T.mul(images(3), NaN), captions)!;
  assert.equal(r.skipped, true);
  assert.ok(Number.isNaN(r.loss));
  assert.equal(r.gradNorm, null);
  assert.deepEqual(snapshot(), before);
  assert.equal(optimizer.stateOf(params[0]!)!.step, 2);
  assert.equal(ema.numUpdates, 2);
  const next = g.run(images(4), captions)!;
  assert.equal(next.skipped, false);
  assert.ok(Number.isFinite(next.loss) && next.gradNorm! > 0);
  assert.equal(optimizer.stateOf(params[0]!)!.step, 3);
  assert.notDeepEqual(snapshot(), before);
  assert.deepEqual(g.stats().replays, 3);
  assert.throws(() => g.run(images(5), ['one caption']), /training step: 1 captions for a batch of 2 images \(\[2, 3, 8, 8\]\)/);
  g.dispose();
});
