/**
 * Dimba training step, ours, for issue 7's comparison with bench/reference/bench.py --mode train:
 * random latents [B, 4, res/8, res/8] and 120 caption tokens of 4096 channels (a key-padding mask
 * with the reference's lengths) through the model's y_embedder; epsilon MSE on a random timestep
 * of the linear schedule; backward; AdamW (lr 2e-5, weight decay 0.03). On CUDA the parameters are
 * bf16 with float32 master weights in the optimizer (A_log, D and the dt bias stay float32).
 *
 * Reported per resolution: step ms (CUDA events around each step after warm-up, median), images/s,
 * the caching allocator's peak allocated bytes over the timed steps, and MFU with bench/gpu/flops.ts
 * (the reference uses the same formula).
 *
 *   node dist/bench/cuda/train-step.js [--preset Dimba-L-2] [--res 256,512] [--batch 32,8]
 *        [--find-batch '32,48,64;8,12,16'] [--steps 5] [--warmup 2] [--checkpointing]
 *        [--depth N] [--device cuda|cpu] [--tiny] [--json] [--graphs]
 * --tiny: Dimba-XS at 64 px, batch 2, one timed step (a quick CPU smoke run).
 * --depth N: the preset with N blocks (e.g. 4: a step short enough for the host to matter).
 *
 * --graphs: eager trainer steps against CUDA-graph replayed ones (src/train/graphed-step.ts), the
 * whole trainer step each: TextToImage with a small trained text encoder (width 64, one layer,
 * projecting to the caption channels), epsilon loss, backward, gradient clipping (1.0), AdamW,
 * EMA, as src/train/stage.ts runs it (the eager step reads the loss and the gradient norm, the
 * graphed one a packed [loss, norm, skip, terms] tensor). Per timed step: wall ms (host clock
 * around the step, which ends in a read of its results), stream ms (CUDA events at the step's
 * start and end on the stream: kernel time plus the gaps where the GPU waited for the host), and
 * for graphed steps replay ms (events around the graph launch alone: the same kernels as the
 * eager step's, back to back). Per mode: medians, GPU busy ms = the median replay ms, and
 * GPU idle ms per step = wall - busy.
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { AdamW } from '../../src/optim/adamw.js';
import { Generator } from '../../src/random/generator.js';
import { NoiseSchedule } from '../../src/diffusion/schedule.js';
import { sampleTimesteps } from '../../src/diffusion/timestep-sampling.js';
import { dimbaFlops, mfu, H100_BF16_DENSE_TFLOPS } from '../gpu/flops.js';
import { buildBenchModel, captionMask, emit, intList, latentSide, median, openDevice, positiveInt } from '../gpu/device.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent } from '../../src/backends/cuda/index.js';
import { SmallTextEncoder } from '../../src/models/text/small-encoder.js';
import { buildWordVocabulary } from '../../src/models/text/word-tokenizer.js';
import { TextToImage } from '../../src/pipeline/text-to-image.js';
import { EMA } from '../../src/optim/ema.js';
import { clipGradNorm } from '../../src/optim/clip-grad.js';
import { GraphedTrainStep } from '../../src/train/graphed-step.js';

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string' }, res: { type: 'string' }, batch: { type: 'string' }, 'find-batch': { type: 'string' },
    steps: { type: 'string' }, warmup: { type: 'string' }, checkpointing: { type: 'boolean', default: false },
    device: { type: 'string', default: 'cuda' }, tiny: { type: 'boolean', default: false }, json: { type: 'boolean', default: false },
    'peak-tflops': { type: 'string' }, depth: { type: 'string' }, graphs: { type: 'boolean', default: false },
  },
});

const tiny = args.tiny!;
const preset = args.preset ?? (tiny ? 'Dimba-XS' : 'Dimba-L-2');
const resolutions = intList('--res', args.res ?? (tiny ? '64' : '256,512'));
const batches = intList('--batch', args.batch ?? (tiny ? '2' : '32,8'));
const candidates = args['find-batch']?.split(';').map((s) => intList('--find-batch', s)) ?? null;
const steps = positiveInt('--steps', args.steps, tiny ? 1 : 5);
const warmup = positiveInt('--warmup', args.warmup, tiny ? 1 : 2);
const peakTflops = args['peak-tflops'] ? Number(args['peak-tflops']) : H100_BF16_DENSE_TFLOPS;
if (steps < 1) throw new Error('--steps must be at least 1');

const device = openDevice(args.device!);
const dev = device.name;
const patchSize = presetConfig(preset).patchSize;
const latents = resolutions.map((r) => latentSide(r, patchSize));
const depth = args.depth === undefined ? undefined : positiveInt('--depth', args.depth, 1);
const config = presetConfig(preset, { inputSize: latents[0]!, ...(depth === undefined ? {} : { depth }) });
const { model, buildMs, dtype } = buildBenchModel(config, device);
model.gradientCheckpointing = args.checkpointing!;
model.train();
const optimizer = new AdamW(model.parameters(), { lr: 2e-5, weightDecay: 0.03 });
const schedule = NoiseSchedule.linear();

interface Step {
  run(): void;
  dispose(): void;
}

function makeStep(batch: number, latent: number): Step {
  const gen = new Generator(1);
  const x0 = T.keep(T.randn([batch, config.inChannels, latent, latent], { device: dev, generator: gen }));
  const caption = T.keep(T.randn([batch, config.captionTokens, config.captionChannels], { device: dev, generator: gen }));
  const mask = T.keep(captionMask(batch, config.captionTokens, dev));
  const draws = new Generator(2);
  return {
    run() {
      // As the trainer: the forward's scope frees what backward does not need before backward runs.
      T.tidy(() => {
        const loss = T.tidy(() => {
          const t = sampleTimesteps(batch, schedule.numTimesteps, { generator: draws, device: dev });
          const noise = T.randn(x0.shape, { device: dev, generator: draws });
          const xt = schedule.addNoise(x0, noise, t);
          const out = model.forward({ x: xt, timestep: T.cast(t, 'float32'), caption, captionMask: mask });
          const eps = T.narrow(T.cast(out, 'float32'), 1, 0, config.inChannels);
          return T.mean(T.square(T.sub(eps, noise)));
        });
        loss.backward();
      });
      T.tidy(() => optimizer.step());
      optimizer.zeroGrad();
    },
    dispose() {
      x0.dispose();
      caption.dispose();
      mask.dispose();
    },
  };
}

/** The largest candidate whose step runs twice (optimizer state exists after the first), tried from the largest down. */
function findBatch(latent: number, list: number[]): number | null {
  for (const b of [...list].sort((x, y) => y - x)) {
    let step: Step | null = null;
    try {
      step = makeStep(b, latent);
      step.run();
      step.run();
      device.synchronize();
      return b;
    } catch (e) {
      if (!device.isOutOfMemory(e)) throw e;
      optimizer.zeroGrad();
    } finally {
      step?.dispose();
      device.releaseCache();
    }
  }
  return null;
}


function plainStep(res: number, i: number): void {
  const latent = latents[i]!;
  let batch = batches[Math.min(i, batches.length - 1)]!;
  if (candidates) {
    const found = findBatch(latent, candidates[Math.min(i, candidates.length - 1)]!);
    if (found === null) {
      emit(args.json!, device, { kind: 'train', res, error: 'no candidate batch fits' });
      return;
    }
    batch = found;
  }
  const step = makeStep(batch, latent);
  let times: number[];
  try {
    const warm0 = performance.now();
    for (let w = 0; w < warmup; w++) step.run();
    device.synchronize();
    const warmupMs = performance.now() - warm0;
    device.resetPeak();
    times = device.time(() => step.run(), 0, steps);
    const stepMs = median(times);
    const flops = dimbaFlops(config, res);
    emit(args.json!, device, {
      kind: 'train', preset, res, batch, dtype, checkpointing: args.checkpointing, step_ms: stepMs, steps_ms: times,
      images_per_s: (batch * 1000) / stepMs, peak_bytes: device.peakBytes(), train_flops_per_image: flops.train,
      mfu: mfu(flops.train, (batch * 1000) / stepMs, peakTflops), build_ms: buildMs, warmup_ms: warmupMs,
    });
  } catch (e) {
    if (!device.isOutOfMemory(e)) throw e;
    optimizer.zeroGrad();
    emit(args.json!, device, { kind: 'train', res, batch, error: `out of memory: ${(e as Error).message.slice(0, 200)}` });
  } finally {
    step.dispose();
    device.releaseCache();
  }
}

/** Words for random captions of the graph comparison's text encoder. */
const WORDS = ('a an the red green blue yellow black white small large round square cat dog bird fish tree house car boat '
  + 'flower mountain river city night day sunny rainy painting photo of on in with under over near').split(' ');

function randomCaptions(n: number, seed: number): string[] {
  let x = seed >>> 0;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, () => Array.from({ length: 3 + Math.floor(next() * 25) }, () => WORDS[Math.floor(next() * WORDS.length)]!).join(' '));
}

interface TimedStep { mode: 'eager' | 'graphed'; step: number; wall_ms: number; stream_ms: number; replay_ms: number | null }

function graphComparison(res: number, latent: number, batch: number): void {
  if (device.name !== 'cuda') {
    emit(args.json!, device, { kind: 'train-graphs', res, batch, error: 'CUDA graphs need --device cuda' });
    return;
  }
  const backend = getBackend('cuda') as CudaBackend;
  const rt = backend.runtime;
  const start = CudaEvent.create(rt.api);
  const end = CudaEvent.create(rt.api);
  const replayStart = CudaEvent.create(rt.api);
  let replayed = false;
  const encoder = new SmallTextEncoder(buildWordVocabulary(WORDS), {
    width: 64, depth: 1, numHeads: 2, mlpRatio: 2, maxTokens: config.captionTokens, channels: config.captionChannels,
  }, { seed: 1 });
  encoder.to(dev);
  encoder.cast(dtype);
  const pipeline = new TextToImage({ model, textEncoder: encoder, objective: 'epsilon' });
  pipeline.train();
  const params = pipeline.parameters();
  const opt = new AdamW(params, { lr: 2e-5, weightDecay: 0.03 });
  const ema = new EMA(params, { decay: 0.9999 });
  const noise = new Generator(3);
  const x0 = T.keep(T.randn([batch, config.inChannels, latent, latent], { device: dev, generator: new Generator(1) }));
  const captions = randomCaptions(batch, 7);
  const eager = (): void => {
    opt.zeroGrad();
    const value = T.tidy(() => {
      const out = T.tidy(() => pipeline.loss(x0, captions, { generator: noise }));
      const v = out.loss.item();
      if (Number.isFinite(v)) out.loss.backward();
      return v;
    });
    if (Number.isFinite(value) && Number.isFinite(T.tidy(() => clipGradNorm(params, 1)))) {
      T.tidy(() => {
        opt.step();
        ema.update();
      });
    }
    opt.zeroGrad();
  };
  const graphed = new GraphedTrainStep({
    pipeline, params, optimizer: opt, ema, gradClip: 1, minSnrGamma: null, noise, setting: true, label: 'bench step',
    beforeReplay: () => {
      replayStart.record(rt.stream);
      replayed = true;
    },
  });
  const graphedStep = (): void => {
    graphed.run(x0, captions);
  };
  const records: TimedStep[] = [];
  try {
    for (const [mode, fn] of [['eager', eager], ['graphed', graphedStep]] as const) {
      // The graphed step's first call is its eager warm-up, the second captures: both untimed.
      for (let w = 0; w < Math.max(warmup, mode === 'graphed' ? 2 : 1); w++) fn();
      backend.synchronize();
      for (let i = 0; i < steps; i++) {
        replayed = false;
        const t0 = performance.now();
        start.record(rt.stream);
        fn();
        end.record(rt.stream);
        end.synchronize();
        const r: TimedStep = { mode, step: i + 1, wall_ms: performance.now() - t0, stream_ms: end.elapsedSince(start), replay_ms: replayed ? end.elapsedSince(replayStart) : null };
        records.push(r);
        if (!args.json) console.log(`  ${mode} step ${i + 1}: wall ${r.wall_ms.toFixed(2)} ms, stream ${r.stream_ms.toFixed(2)} ms${r.replay_ms === null ? '' : `, replay ${r.replay_ms.toFixed(2)} ms`}`);
      }
    }
    const of = (mode: string, key: 'wall_ms' | 'stream_ms' | 'replay_ms') => median(records.filter((r) => r.mode === mode).map((r) => r[key] ?? NaN));
    // The replay's end event follows the graph's kernels directly (the results are read after it).
    const busy = of('graphed', 'replay_ms');
    const summary = (mode: string) => ({ wall_ms: of(mode, 'wall_ms'), stream_ms: of(mode, 'stream_ms'), busy_ms: busy, idle_ms: of(mode, 'wall_ms') - busy });
    const stats = graphed.stats();
    emit(args.json!, device, {
      kind: 'train-graphs', preset, depth: config.depth, res, batch, dtype, checkpointing: args.checkpointing,
      eager: summary('eager'), graphed: summary('graphed'), speedup: of('eager', 'wall_ms') / of('graphed', 'wall_ms'),
      graph: { captures: stats.captures, replays: stats.replays, fallback: stats.fallback }, steps: records,
    });
  } catch (e) {
    if (!device.isOutOfMemory(e)) throw e;
    opt.zeroGrad();
    emit(args.json!, device, { kind: 'train-graphs', res, batch, error: `out of memory: ${(e as Error).message.slice(0, 200)}` });
  } finally {
    graphed.dispose();
    x0.dispose();
    device.releaseCache();
  }
}

// Last: the functions above read module constants declared after their definitions (WORDS).
if (args.graphs) {
  resolutions.forEach((res, i) => graphComparison(res, latents[i]!, batches[Math.min(i, batches.length - 1)]!));
} else {
  resolutions.forEach((res, i) => plainStep(res, i));
}
