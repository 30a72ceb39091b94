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
 *        [--device cuda|cpu] [--tiny] [--json]
 * --tiny: Dimba-XS at 64 px, batch 2, one timed step (a quick CPU smoke run).
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

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string' }, res: { type: 'string' }, batch: { type: 'string' }, 'find-batch': { type: 'string' },
    steps: { type: 'string' }, warmup: { type: 'string' }, checkpointing: { type: 'boolean', default: false },
    device: { type: 'string', default: 'cuda' }, tiny: { type: 'boolean', default: false }, json: { type: 'boolean', default: false },
    'peak-tflops': { type: 'string' },
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
const config = presetConfig(preset, { inputSize: latents[0]! });
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

resolutions.forEach((res, i) => {
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
});
