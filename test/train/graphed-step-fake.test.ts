/**
 * Captured training steps end to end on the CPU, through a stand-in 'cuda' device: the CPU backend
 * with the multi-tensor kernels' documented formulas (test/optim/fused-emulation.ts, pinned to the
 * composed optimizers; test/cuda/optim-emu.test.ts pins optim.cu to them, _ctl twins included)
 * honouring the captured-step control (device coefficients, skip flag, device clip factor), and a
 * graph capability whose "replay" calls the captured function again. That is not a CUDA graph (JS
 * runs at every replay, so values baked in at capture go unnoticed: test/cuda/graphed-train-step
 * checks those on a GPU), but everything around it is the real path: the trainer's loop, warm-up,
 * capture, draw tape, control coefficients and counts, skip handling, checkpoints and resume.
 * Results must equal eager steps bit for bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import * as T from '../../src/index.js';
import { assign_ } from '../../src/ops/inplace.js';
import { registerBackendFactory } from '../../src/backends/registry.js';
import { CpuBackend } from '../../src/backends/cpu/index.js';
import type { AdamWCoefficients, CAMECoefficients, CapturedGraph, FusedKernels, GraphCapability, MultiTensorOptions } from '../../src/backends/backend.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Generator } from '../../src/random/generator.js';
import { AdamW } from '../../src/optim/adamw.js';
import { EMA } from '../../src/optim/ema.js';
import { GraphedTrainStep } from '../../src/train/graphed-step.js';
import { train } from '../../src/train/train.js';
import { MetricsLog } from '../../src/train/metrics.js';
import type { SmallTextEncoder } from '../../src/models/text/small-encoder.js';
import { EMULATED } from '../optim/fused-emulation.js';
import { CAPTIONS, tinyTextToImage } from '../pipeline/fixtures.js';
import { makeTinyDataset, quietReporter, tempDir, tinyConfig } from './helpers.js';

function scalar(t: Tensor): number {
  return t.toFloat64Array()[0]!;
}

/**
 * A real capture records without running; this one runs the function to get its outputs, so the
 * updates it would make are dropped (a captured step's state changes come from its kernels alone).
 */
function skipped(o?: MultiTensorOptions): boolean {
  return o?.control !== undefined && (graphs.capturing || scalar(o.control.skip) !== 0);
}

const fakeOptim: FusedKernels = {
  adamwStep(t, c, o) {
    if (skipped(o)) return;
    let k: AdamWCoefficients = c;
    if (o?.control?.coefficients) {
      const v = o.control.coefficients.toFloat64Array();
      k = { decayScale: v[0]!, lerpWeight: v[1]!, lerpFromGrad: v[2] !== 0, beta2: v[3]!, oneMinusBeta2: v[4]!, rootBias2: v[5]!, eps: v[6]!, stepScale: v[7]! };
    }
    EMULATED.adamwStep(t, k);
  },
  cameStep(t, c, o) {
    if (skipped(o)) return;
    let k: CAMECoefficients = c;
    if (o?.control?.coefficients) {
      const v = o.control.coefficients.toFloat64Array();
      k = { ...c, decayScale: v[0]!, negLr: v[1]! };
    }
    EMULATED.cameStep(t, k);
  },
  emaUpdate(shadows, params, keep, take, o) {
    if (!skipped(o)) EMULATED.emaUpdate(shadows, params, keep, take);
  },
  sumSquares: (tensors, out) => EMULATED.sumSquares(tensors, out),
  scaleTensors(src, out, factor, o) {
    EMULATED.scaleTensors(src, out, o?.control?.factor ? scalar(o.control.factor) : factor);
  },
  gradNormCheck(sumSquares, loss, maxNorm, norm, factor, skip) {
    const total = Math.sqrt(scalar(sumSquares));
    const coef = maxNorm / (total + 1e-6);
    assign_(norm, total);
    assign_(factor, coef < 1 ? coef : 1);
    assign_(skip, Number.isFinite(scalar(loss)) && Number.isFinite(total) ? 0 : 1);
  },
};

/** "Capture" runs the function; "replay" runs it again and writes its result into the captured output. */
class RerunGraphs implements GraphCapability {
  captures = 0;
  replays = 0;
  capturing = false;

  capture<R>(fn: () => R): { result: R; graph: CapturedGraph } {
    this.captures++;
    this.capturing = true;
    let result: R;
    try {
      result = fn();
    } finally {
      this.capturing = false;
    }
    assert.ok(result instanceof T.Tensor, 'the captured step returns one tensor');
    const owner = this;
    const graph = {
      replays: 0,
      destroyed: false,
      replay(): void {
        const again = fn() as Tensor;
        assign_(result, again);
        again.dispose();
        this.replays++;
        owner.replays++;
      },
      destroy(): void {
        this.destroyed = true;
      },
    };
    return { result, graph };
  }
}

const graphs = new RerunGraphs();
registerBackendFactory('cuda', (d) => {
  const b = new CpuBackend(d);
  Object.assign(b.fused, fakeOptim);
  return Object.assign(b, { graphs });
});

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
  g.dispose();
});
