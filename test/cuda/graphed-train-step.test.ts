/**
 * Captured training steps on the GPU (src/train/graphed-step.ts): a tiny hybrid Dimba stepped by
 * GraphedTrainStep (warm-up, capture, replays) against the same model stepped eagerly as
 * src/train/stage.ts does (pipeline.loss, backward, clipGradNorm, optimizer.step, scheduler,
 * EMA): losses, weights, EMA and optimizer state agree (float32 AdamW with clipping that bites
 * and a warmup schedule whose lr changes every step; bf16 CAME with float32 masters); a NaN batch
 * skips the update on the device (weights, state, counts untouched) and training goes on; a new
 * batch shape gets its own graph and the old one still replays; the trainer with cudaGraphs on
 * and off writes the same checkpoint.
 * DIMBA_CUDA_TEST_FAKE=graphs runs it on the CPU stand-in of test/train/fake-graph-device.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as T from '../../src/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Generator, defaultGenerator } from '../../src/random/generator.js';
import { AdamW } from '../../src/optim/adamw.js';
import { CAME } from '../../src/optim/came.js';
import { EMA } from '../../src/optim/ema.js';
import { LrScheduler } from '../../src/optim/schedule.js';
import { clipGradNorm } from '../../src/optim/clip-grad.js';
import { GraphedTrainStep } from '../../src/train/graphed-step.js';
import { train } from '../../src/train/train.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { loadStateDictFile } from '../../src/nn/serialize.js';
import type { TextToImage } from '../../src/pipeline/text-to-image.js';
import type { SmallTextEncoder } from '../../src/models/text/small-encoder.js';
import { CAPTIONS, tinyTextToImage } from '../pipeline/fixtures.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from '../train/helpers.js';
import { cudaSkip, realCuda } from './helpers.js';
import { installFakeGraphDevice } from '../train/fake-graph-device.js';

// DIMBA_CUDA_TEST_FAKE=graphs: the specs against the CPU stand-in with re-running "graphs"
// (test/train/fake-graph-device.ts), a check of this file's own logic on machines without a GPU.
const fakeGraphs = process.env.DIMBA_CUDA_TEST_FAKE === 'graphs';
if (fakeGraphs) installFakeGraphDevice();
const skip = fakeGraphs ? false : cudaSkip || (!realCuda && 'the CPU stand-in (DIMBA_CUDA_TEST_FAKE=cpu) has no graphs');

interface Setup {
  pipe: TextToImage;
  params: Tensor[];
  optimizer: AdamW | CAME;
  scheduler: LrScheduler;
  ema: EMA;
  noise: Generator;
}

const LR = 2e-3;
const CLIP = 0.05;

function setup(dtype: 'float32' | 'bfloat16', optimizer: 'adamw' | 'came'): Setup {
  const pipe = tinyTextToImage({ objective: 'epsilon', seed: 3, config: { classDropoutProb: 0.25, dropPath: 0.1 } });
  pipe.model.to('cuda');
  const encoder = pipe.textEncoder as SmallTextEncoder;
  encoder.to('cuda');
  if (dtype === 'bfloat16') {
    pipe.model.cast('bfloat16');
    encoder.cast('bfloat16');
  }
  pipe.train();
  const params = pipe.parameters();
  const opt = optimizer === 'adamw' ? new AdamW(params, { lr: LR, weightDecay: 0.01 }) : new CAME(params, { lr: LR, weightDecay: 0.01 });
  // Warmup: the lr differs at every one of the first steps, so a graph that baked it in would drift.
  const scheduler = new LrScheduler(opt, { kind: 'cosine', warmupSteps: 3, totalSteps: 12 });
  return { pipe, params, optimizer: opt, scheduler, ema: new EMA(params, { decay: 0.9 }), noise: new Generator(21) };
}

/** The stage's eager step (src/train/stage.ts with gradAccumulation 1). */
function eagerStep(s: Setup, images: Tensor, captions: string[]): { loss: number; skipped: boolean } {
  s.optimizer.zeroGrad();
  const loss = T.tidy(() => {
    const out = T.tidy(() => s.pipe.loss(images, captions, { generator: s.noise }));
    const v = out.loss.item();
    if (Number.isFinite(v)) out.loss.backward();
    return v;
  });
  if (!Number.isFinite(loss)) {
    s.optimizer.zeroGrad();
    return { loss, skipped: true };
  }
  const norm = T.tidy(() => clipGradNorm(s.params, CLIP));
  if (!Number.isFinite(norm)) {
    s.optimizer.zeroGrad();
    return { loss, skipped: true };
  }
  T.tidy(() => {
    s.optimizer.step();
    s.scheduler.step();
    s.ema.update();
  });
  s.optimizer.zeroGrad();
  return { loss, skipped: false };
}

function graphedStep(s: Setup, g: GraphedTrainStep, images: Tensor, captions: string[]): { loss: number; skipped: boolean; mode: string } {
  const r = g.run(images, captions);
  assert.equal(g.fallback, null);
  // A signature beyond maxGraphs: the caller's eager step, as the stage does.
  if (r === null) return { ...eagerStep(s, images, captions), mode: 'eager (beyond maxGraphs)' };
  if (!r.skipped) s.scheduler.step();
  return { loss: r.loss, skipped: r.skipped, mode: r.mode };
}

function makeGraphed(s: Setup, maxGraphs?: number): GraphedTrainStep {
  return new GraphedTrainStep({
    pipeline: s.pipe, params: s.params, optimizer: s.optimizer, ema: s.ema, gradClip: CLIP, minSnrGamma: null, noise: s.noise, setting: true, maxGraphs,
  });
}

function host(t: Tensor): Float64Array {
  return T.cast(t.to('cpu'), 'float64').toFloat64Array();
}

/** Largest |a - b| over tensor lists, and the fraction of elements above `threshold`. */
function difference(a: readonly Tensor[], b: readonly Tensor[], threshold: number): { maxAbs: number; above: number } {
  let maxAbs = 0;
  let above = 0;
  let total = 0;
  a.forEach((x, i) => {
    const va = host(x);
    const vb = host(b[i]!);
    for (let k = 0; k < va.length; k++) {
      const d = Math.abs(va[k]! - vb[k]!);
      assert.ok(Number.isFinite(d), `tensor ${i}[${k}]: ${va[k]} vs ${vb[k]}`);
      maxAbs = Math.max(maxAbs, d);
      if (d > threshold) above++;
      total++;
    }
  });
  return { maxAbs, above: above / total };
}

/** Weights, masters, moments and EMA of a setup (what the next step reads). */
function stateTensors(s: Setup): Tensor[] {
  const out: Tensor[] = [...s.params, ...s.ema.shadowParams];
  for (const p of s.params) {
    const st = s.optimizer.stateOf(p);
    if (!st) continue;
    if (st.master) out.push(st.master);
    out.push(...st.buffers.values());
  }
  return out;
}

function batch(step: number, size: number, poison = false): { images: Tensor; captions: string[] } {
  const images = T.randn([size, 3, 8, 8], { generator: new Generator(1000 + step), device: 'cuda' });
  const captions = Array.from({ length: size }, (_, i) => (i === 1 ? '' : CAPTIONS[(step + i) % CAPTIONS.length]!));
  return { images: poison ? T.mul(images, NaN) : images, captions };
}

interface RunPlan { size: number; poison?: boolean }

/** Runs the plan eagerly on one setup and graphed on another built alike; compares after each step. */
function compare(dtype: 'float32' | 'bfloat16', optimizer: 'adamw' | 'came', plan: RunPlan[], tol: { loss: number; weight: number; fraction: number },
  maxGraphs?: number): GraphedTrainStep {
  const eager = setup(dtype, optimizer);
  const graphed = setup(dtype, optimizer);
  const g = makeGraphed(graphed, maxGraphs);
  let previous = stateTensors(graphed).map((t) => host(t));
  defaultGenerator.manualSeed(77);
  const globals = { eager: defaultGenerator.getState(), graphed: defaultGenerator.getState() };
  plan.forEach((p, k) => {
    const step = k + 1;
    const b = batch(step, p.size, p.poison);
    // Drop-path draws from the global generator: each side keeps its own position in it.
    defaultGenerator.setState(globals.eager);
    const e = eagerStep(eager, b.images, b.captions);
    globals.eager = defaultGenerator.getState();
    defaultGenerator.setState(globals.graphed);
    const r = graphedStep(graphed, g, b.images, b.captions);
    globals.graphed = defaultGenerator.getState();
    assert.deepEqual(globals.graphed, globals.eager, `step ${step}: the global generator advanced differently`);
    assert.deepEqual(graphed.noise.getState(), eager.noise.getState(), `step ${step}: the noise generator advanced differently`);
    assert.equal(r.skipped, e.skipped, `step ${step}: skipped ${r.skipped} (graph) vs ${e.skipped} (eager)`);
    if (p.poison) {
      assert.ok(!Number.isFinite(r.loss), `step ${step}: a NaN batch gave loss ${r.loss}`);
      const now = stateTensors(graphed).map((t) => host(t));
      now.forEach((v, i) => assert.deepEqual(v, previous[i], `step ${step}: the skipped replay changed state tensor ${i}`));
    } else {
      const rel = Math.abs(r.loss - e.loss) / Math.max(1, Math.abs(e.loss));
      assert.ok(rel <= tol.loss, `step ${step} (${r.mode}): loss ${r.loss} (graph) vs ${e.loss} (eager)`);
    }
    const d = difference(stateTensors(graphed), stateTensors(eager), tol.weight);
    console.log(`# ${dtype} ${optimizer} step ${step} (${r.mode}${p.poison ? ', NaN batch' : ''}, B${p.size}): loss ${r.loss.toPrecision(6)} vs ${e.loss.toPrecision(6)}, `
      + `max |Δ| ${d.maxAbs.toExponential(2)}, ${(d.above * 100).toFixed(3)}% above ${tol.weight}`);
    assert.ok(d.above <= tol.fraction, `step ${step}: ${(d.above * 100).toFixed(3)}% of state elements differ by more than ${tol.weight} (max ${d.maxAbs})`);
    assert.ok(d.maxAbs <= 2 * LR * step + tol.weight, `step ${step}: max |Δ| ${d.maxAbs}`);
    const st = graphed.optimizer.stateOf(graphed.params[0]!)!;
    assert.equal(st.step, eager.optimizer.stateOf(eager.params[0]!)!.step, `step ${step}: optimizer step counts`);
    assert.equal(graphed.ema.numUpdates, eager.ema.numUpdates, `step ${step}: EMA updates`);
    assert.equal(graphed.scheduler.lastStep, eager.scheduler.lastStep, `step ${step}: scheduler steps`);
    const now = stateTensors(graphed).map((t) => host(t));
    // A replay that ran must move the weights (a graph whose work went missing would not).
    if (!p.poison && step > 1) assert.ok(now.some((v, i) => v.some((x, j) => x !== previous[i]![j])), `step ${step}: the replay changed nothing`);
    previous = now;
  });
  return g;
}

describe('graphed training steps on CUDA', { skip }, () => {
  test('float32 AdamW: warm-up, capture, replays equal eager steps (clipping active, lr changing every step)', () => {
    const g = compare('float32', 'adamw', [{ size: 4 }, { size: 4 }, { size: 4 }, { size: 4 }, { size: 4 }], { loss: 1e-5, weight: 1e-5, fraction: 0.01 });
    const s = g.stats();
    assert.deepEqual([s.warmups, s.captures, s.replays, s.fallback], [1, 1, 4, null]);
    g.dispose();
  });

  test('bf16 CAME with float32 masters: replays follow eager steps within bf16 tolerance', () => {
    const g = compare('bfloat16', 'came', [{ size: 4 }, { size: 4 }, { size: 4 }, { size: 4 }], { loss: 2e-2, weight: 1e-2, fraction: 0.02 });
    assert.equal(g.stats().replays, 3);
    g.dispose();
  });

  test('a NaN batch skips the update on the device (state and counts untouched); the next steps go on as eager ones', () => {
    const g = compare('float32', 'adamw', [{ size: 4 }, { size: 4 }, { size: 4, poison: true }, { size: 4 }, { size: 4 }], { loss: 1e-5, weight: 1e-5, fraction: 0.01 });
    assert.equal(g.stats().replays, 4);
    g.dispose();
  });

  test('a new batch shape gets its own warm-up and graph; the first graph still replays afterwards', () => {
    const g = compare('float32', 'adamw', [{ size: 4 }, { size: 4 }, { size: 2 }, { size: 2 }, { size: 4 }, { size: 2 }], { loss: 1e-5, weight: 1e-5, fraction: 0.01 });
    const s = g.stats();
    assert.deepEqual([s.warmups, s.captures, s.replays], [2, 2, 4]);
    g.dispose();
  });

  test('with maxGraphs 1 a second shape steps eagerly between replays of the first graph, and the results still follow', () => {
    const g = compare('float32', 'adamw', [{ size: 4 }, { size: 4 }, { size: 2 }, { size: 4 }, { size: 2 }, { size: 4 }], { loss: 1e-5, weight: 1e-5, fraction: 0.01 }, 1);
    const s = g.stats();
    assert.deepEqual([s.warmups, s.captures, s.replays, s.uncaptured], [1, 1, 3, 2]);
    g.dispose();
  });

  test('the trainer with cudaGraphs true and false: same losses and checkpoint', async () => {
    const root = tempDir('cuda-graphs');
    const manifest = await makeTinyDataset(join(root, 'data'));
    const overrides = { steps: 5, optimizer: { lr: LR }, emaDecay: 0.9, gradClip: CLIP, checkpoint: { every: 0, keepLast: 1 } };
    const on = await train({ config: tinyConfig(join(root, 'on'), manifest, { ...overrides, cudaGraphs: true }), reporter: quietReporter(), device: 'cuda' });
    const off = await train({ config: tinyConfig(join(root, 'off'), manifest, { ...overrides, cudaGraphs: false }), reporter: quietReporter(), device: 'cuda' });
    const lossOn = new MetricsLog(join(root, 'on', 'metrics.jsonl')).read().map((r) => r['loss'] as number);
    const lossOff = new MetricsLog(join(root, 'off', 'metrics.jsonl')).read().map((r) => r['loss'] as number);
    assert.equal(lossOn.length, 5);
    lossOn.forEach((l, i) => assert.ok(Math.abs(l - lossOff[i]!) <= 1e-5 * Math.max(1, Math.abs(lossOff[i]!)), `step ${i + 1}: ${l} (graphs) vs ${lossOff[i]} (eager)`));
    for (const file of ['model.safetensors', 'model.ema.safetensors']) {
      const a = await loadStateDictFile(join(on.checkpoint!, file));
      const b = await loadStateDictFile(join(off.checkpoint!, file));
      const names = [...a.keys()].sort();
      const d = difference(names.map((n) => a.get(n)!), names.map((n) => b.get(n)!), 1e-5);
      console.log(`# trainer ${file}: graphs on vs off max |Δ| ${d.maxAbs.toExponential(2)}`);
      assert.ok(d.above < 0.01 && d.maxAbs <= 2 * LR * 5, `${file}: max |Δ| ${d.maxAbs}, ${(d.above * 100).toFixed(2)}% above 1e-5`);
    }
  });
});
