/**
 * Dimba sampling, ours, for issue 7's comparison with bench/reference/bench.py --mode sample:
 * 20 DPM-Solver++(2M) steps with classifier-free guidance (scale 4.5; each step one batched model
 * call on [uncond; cond], the unconditional half on the learned null caption), from the model's
 * denoiser through src/diffusion's sampler, the model call replayed from a CUDA graph
 * (src/pipeline/graphed-denoiser.ts) unless --cuda-graph false. Seconds per image = the median
 * run (CUDA events around the whole sampling run, after a warm-up run that also captures the
 * graph) divided by the batch.
 *
 *   node dist/bench/cuda/sample.js [--preset Dimba-L-2] [--res 512] [--batch 1,8] [--sample-steps 20]
 *        [--guidance 4.5] [--cuda-graph auto|true|false] [--steps 3] [--warmup 1] [--device cuda|cpu]
 *        [--tiny] [--json]
 * --tiny: Dimba-XS at 64 px, batches 1 and 2, 3 sampler steps (a quick CPU smoke run).
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { Generator } from '../../src/random/generator.js';
import { NoiseSchedule } from '../../src/diffusion/schedule.js';
import { sampleDPMSolver } from '../../src/diffusion/samplers.js';
import { dimbaDenoiser, type CaptionCondition } from '../../src/pipeline/conditioning.js';
import { checkGraphSetting, graphedDenoiser } from '../../src/pipeline/graphed-denoiser.js';
import { buildBenchModel, captionMask, emit, intList, latentSide, median, openDevice, positiveInt } from '../gpu/device.js';

const { values: args } = parseArgs({
  options: {
    preset: { type: 'string' }, res: { type: 'string' }, batch: { type: 'string' }, 'sample-steps': { type: 'string' },
    guidance: { type: 'string', default: '4.5' }, 'cuda-graph': { type: 'string', default: 'auto' },
    steps: { type: 'string' }, warmup: { type: 'string' }, device: { type: 'string', default: 'cuda' },
    tiny: { type: 'boolean', default: false }, json: { type: 'boolean', default: false },
  },
});

const tiny = args.tiny!;
const preset = args.preset ?? (tiny ? 'Dimba-XS' : 'Dimba-L-2');
const res = intList('--res', args.res ?? (tiny ? '64' : '512'))[0]!;
const batches = intList('--batch', args.batch ?? (tiny ? '1,2' : '1,8'));
const sampleSteps = positiveInt('--sample-steps', args['sample-steps'], tiny ? 3 : 20);
const reps = positiveInt('--steps', args.steps, tiny ? 1 : 3);
const warmup = positiveInt('--warmup', args.warmup, 1);
const guidance = Number(args.guidance);
if (!Number.isFinite(guidance)) throw new Error(`--guidance must be a number, got '${args.guidance}'`);
const graphText = args['cuda-graph']!;
const graphSetting = checkGraphSetting('--cuda-graph', graphText === 'true' ? true : graphText === 'false' ? false : graphText);
if (reps < 1 || sampleSteps < 1) throw new Error('--steps and --sample-steps must be at least 1');

const device = openDevice(args.device!);
const dev = device.name;
const latent = latentSide(res, presetConfig(preset).patchSize);
const config = presetConfig(preset, { inputSize: latent });
const { model, buildMs, dtype } = buildBenchModel(config, device);
model.eval();
const schedule = NoiseSchedule.linear();

for (const batch of batches) {
  const gen = new Generator(2);
  const tokens = config.captionTokens;
  const cond: CaptionCondition = {
    caption: T.keep(T.randn([batch, tokens, config.captionChannels], { device: dev, generator: gen })),
    captionMask: T.keep(captionMask(batch, tokens, dev)),
    forceDropCaption: T.keep(T.zeros([batch], { dtype: 'bool', device: dev })),
  };
  const uncond: CaptionCondition = {
    caption: T.keep(T.zeros([batch, tokens, config.captionChannels], { device: dev })),
    captionMask: T.keep(T.ones([batch, tokens], { dtype: 'bool', device: dev })),
    forceDropCaption: T.keep(T.ones([batch], { dtype: 'bool', device: dev })),
  };
  const denoiser = graphedDenoiser(dimbaDenoiser(model), graphSetting, 'bench sample');
  let seed = 0;
  const run = () => {
    T.tidy(() => {
      sampleDPMSolver({
        model: denoiser.fn, shape: [batch, config.inChannels, latent, latent], steps: sampleSteps, guidanceScale: guidance,
        cond, uncond, generator: new Generator(seed++), device: dev, learnedSigma: config.learnSigma, schedule,
      });
    });
  };
  try {
    device.resetPeak();
    const times = device.time(run, warmup, reps);
    const runMs = median(times);
    emit(args.json!, device, {
      kind: 'sample', preset, res, batch, dtype, sample_steps: sampleSteps, guidance, cuda_graph: String(graphSetting),
      graph: denoiser.stats(), run_ms: runMs, runs_ms: times, seconds_per_image: runMs / 1000 / batch,
      peak_bytes: device.peakBytes(), build_ms: buildMs,
    });
  } catch (e) {
    if (!device.isOutOfMemory(e)) throw e;
    emit(args.json!, device, { kind: 'sample', res, batch, error: `out of memory: ${(e as Error).message.slice(0, 200)}` });
  } finally {
    denoiser.dispose();
    for (const c of [cond, uncond]) for (const t of Object.values(c)) t.dispose();
    device.releaseCache();
  }
}
