/**
 * One training stage: build (or restore) the model, text encoder, optimizer, schedule, EMA, RNGs
 * and data position; run optimizer steps; save checkpoints and sample grids.
 *
 * Exact resume. Everything that decides the next step is in a checkpoint: weights, optimizer
 * state, LR-schedule step, EMA averages and counters, the three random generators (noise and
 * timesteps; the model's caption dropout; the global one that drop-path draws from) and the data
 * loader position. A run resumed from step k therefore computes bit for bit what an
 * uninterrupted run computes after step k (on the CPU, whose kernels are deterministic).
 */
import { join } from 'node:path';
import * as T from '../index.js';
import { defaultGenerator, Generator } from '../random/generator.js';
import { Dimba } from '../models/dimba/model.js';
import type { DimbaConfig } from '../models/dimba/config.js';
import { SmallTextEncoder } from '../models/text/small-encoder.js';
import { textEncoderMetadata } from '../models/text/checkpoint.js';
import { TextToImage } from '../pipeline/text-to-image.js';
import { AdamW } from '../optim/adamw.js';
import { CAME } from '../optim/came.js';
import { LrScheduler, type LrSchedule } from '../optim/schedule.js';
import { EMA } from '../optim/ema.js';
import { clipGradNorm } from '../optim/clip-grad.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Batch, DataLoader } from '../data/loader.js';
import { loadStateDictFile } from '../nn/serialize.js';
import type { StageConfig, TrainConfig } from './config.js';
import { digestOf, trajectoryOf, changedFields } from './config.js';
import { buildTextEncoder, buildTokenizer, dimbaConfigFor, type PositionalSource } from './build.js';
import { makeLoader, openData } from './data.js';
import {
  CONFIG_FILE, MODEL_EMA_FILE, MODEL_FILE, TEXT_ENCODER_EMA_FILE, TEXT_ENCODER_FILE, TOKENIZER_FILE,
  emaStateDict, loadWeights, modelMetadata, optimizerFiles, readModelMetadata, readOptimizerState, readTrainerState, textEncoderFromCheckpoint,
  safetensorsFile, type TrainerState,
} from './checkpoint.js';
import { TRAINER_STATE_FILE, jsonFile, pruneCheckpoints, writeCheckpoint, type WriteHooks } from './checkpoint-store.js';
import { CheckpointError, TrainingError } from './errors.js';
import { MetricsLog } from './metrics.js';
import { RateMeter } from './progress.js';
import type { TrainReporter } from './reporter.js';
import { writeSampleGrid } from './samples.js';
import { GraphedTrainStep, type GraphSetting } from './graphed-step.js';

export interface StageHooks {
  /** After each optimizer step. */
  onStep?: (stage: string, step: number) => void;
  /** Replaces the loss value the NaN check sees (tests inject NaN here). */
  lossValue?: (stage: string, step: number, value: number) => number;
  checkpoint?: WriteHooks;
}

export interface StageContext {
  config: TrainConfig;
  stage: StageConfig;
  index: number;
  device: string;
  reporter: TrainReporter;
  metrics: MetricsLog;
  signal?: AbortSignal;
  hooks?: StageHooks;
  /** Overrides the stage's cudaGraphs (the CLI's --cuda-graphs). */
  cudaGraphs?: GraphSetting;
}

/** Where a stage's weights come from: a checkpoint folder to resume, or one to start from. */
export type StageStart = { resume: string } | { from: string | null };

export interface StageResult {
  name: string;
  steps: number;
  completed: boolean;
  /** Mean loss of the last logged window, and of the last step. */
  loss: number | null;
  skippedSteps: number;
  imagesSeen: number;
  seconds: number;
  checkpoint: string | null;
  samples: string[];
}

interface Parts {
  dimba: DimbaConfig;
  model: Dimba;
  encoder: SmallTextEncoder;
}

export function stageDir(config: TrainConfig, stage: StageConfig): string {
  return join(config.outputDir, stage.name);
}

/** The noise generator's seed for a stage: distinct per stage, fixed by the config seed. */
function noiseSeed(seed: number, index: number): bigint {
  return BigInt(seed) * 1_000_003n + BigInt(index) * 7919n + 17n;
}

/** Model file and text-encoder file of a checkpoint folder, or of a model.safetensors path. */
export function weightFiles(path: string): { model: string; encoder: string; dir: string } {
  const dir = path.endsWith('.safetensors') ? join(path, '..') : path;
  return { dir, model: join(dir, MODEL_FILE), encoder: join(dir, TEXT_ENCODER_FILE) };
}

async function buildParts(ctx: StageContext, start: StageStart, captions: () => AsyncIterable<string>): Promise<Parts> {
  const { stage, config } = ctx;
  const weights = 'resume' in start ? start.resume : start.from;
  let source: PositionalSource | null = null;
  let encoder: SmallTextEncoder;
  if (weights !== null) {
    const files = weightFiles(weights);
    source = readModelMetadata(files.model).config;
    encoder = textEncoderFromCheckpoint(files.encoder, { seed: config.seed });
  } else {
    encoder = buildTextEncoder(await buildTokenizer(stage.textEncoder, captions), stage.textEncoder, config.seed);
  }
  const dimba = 'resume' in start ? readModelMetadata(weightFiles(start.resume).model).config : dimbaConfigFor(stage, source);
  // tidy: construction temporaries go now (to()/cast() below then free the replaced originals).
  const model = T.tidy(() => new Dimba(dimba, { seed: config.seed }));
  model.gradientCheckpointing = stage.model.gradientCheckpointing;
  if (weights !== null) {
    const files = weightFiles(weights);
    const describe = `stage '${stage.name}': ${stage.model.preset}, layers ${model.pattern.join('')}, hidden ${dimba.hiddenSize}`;
    // pos_embed is a buffer recomputed for the grid: a lower-resolution source has a smaller one.
    await loadWeights(model, files.model, { recomputed: 'resume' in start ? [] : ['pos_embed'], describe });
    await loadWeights(encoder, files.encoder, { describe: 'the text encoder' });
  }
  return { dimba, model, encoder };
}

function makeOptimizer(stage: StageConfig, params: Tensor[]): AdamW | CAME {
  const o = stage.optimizer;
  if (o.kind === 'adamw') return new AdamW(params, { lr: o.lr, weightDecay: o.weightDecay, betas: [o.betas[0]!, o.betas[1]!], eps: o.eps[0]! });
  return new CAME(params, { lr: o.lr, weightDecay: o.weightDecay, betas: [o.betas[0]!, o.betas[1]!, o.betas[2]!], eps: [o.eps[0]!, o.eps[1]!] });
}

function lrSchedule(stage: StageConfig): LrSchedule {
  const s = stage.schedule;
  return s.kind === 'constant' ? { kind: 'constant', warmupSteps: s.warmupSteps } : { kind: 'cosine', warmupSteps: s.warmupSteps, totalSteps: stage.steps, minLr: s.minLr };
}

/** EMA tensors as EMA.loadStateDict wants them (`shadow.<param index>`), from the two EMA files. */
async function emaTensors(dir: string, parts: Parts): Promise<Map<string, Tensor>> {
  const out = new Map<string, Tensor>();
  let index = 0;
  for (const [module, file] of [[parts.model, MODEL_EMA_FILE], [parts.encoder, TEXT_ENCODER_EMA_FILE]] as const) {
    const saved = await loadStateDictFile(join(dir, file));
    for (const [name] of module.namedParameters()) {
      const t = saved.get(name);
      if (!t) throw new CheckpointError(`${join(dir, file)} lacks the average of '${name}'`);
      out.set(`shadow.${index++}`, t);
    }
  }
  return out;
}

export async function runStage(ctx: StageContext, start: StageStart): Promise<StageResult> {
  const { config, stage, index, reporter, device } = ctx;
  const dir = stageDir(config, stage);
  const trajectory = trajectoryOf(config, stage);
  const digest = digestOf(trajectory);
  let saved: TrainerState | null = null;
  if ('resume' in start) {
    saved = readTrainerState(start.resume);
    if (saved.digest !== digest) {
      const fields = changedFields(saved.trajectory, trajectory);
      throw new CheckpointError(`cannot resume from ${start.resume}: the config changed since it was written (changed: ${fields.join(', ') || 'settings'}); `
        + 'restore those settings, or start a new run in another outputDir');
    }
  }

  const data = await openData(stage.data);
  const parts = await buildParts(ctx, start, data.captions);
  if (device !== 'cpu') {
    parts.model.to(device);
    parts.encoder.to(device);
  }
  if (stage.precision === 'bf16') {
    if (device === 'cpu') throw new TrainingError(`stage '${stage.name}': precision 'bf16' needs a CUDA device (--device cuda); use 'float32' on the CPU`);
    parts.model.cast('bfloat16');
    parts.encoder.cast('bfloat16');
  }
  const pipeline = new TextToImage({ model: parts.model, textEncoder: parts.encoder, objective: stage.objective });
  pipeline.train();
  const params: Tensor[] = pipeline.parameters();
  const optimizer = makeOptimizer(stage, params);
  const scheduler = new LrScheduler(optimizer, lrSchedule(stage));
  const ema = stage.emaDecay === null ? null : new EMA(params, { decay: stage.emaDecay });
  const noise = new Generator(noiseSeed(config.seed, index));
  const state = {
    step: 0, skippedSteps: 0, nanStreak: 0, imagesSeen: 0, seconds: 0,
    loader: null as Batch['state'] | null,
  };
  if (saved !== null && 'resume' in start) {
    optimizer.loadStateDict(await readOptimizerState(start.resume));
    scheduler.loadStateDict(saved.scheduler);
    if (ema) {
      if (!saved.ema) throw new CheckpointError(`${start.resume} has no EMA state but the config has emaDecay ${stage.emaDecay}`);
      ema.loadStateDict({ tensors: await emaTensors(start.resume, parts), meta: saved.ema });
    }
    noise.setState(saved.generators.noise);
    parts.model.trainingGenerator.setState(saved.generators.model);
    defaultGenerator.setState(saved.generators.global);
    Object.assign(state, { step: saved.step, skippedSteps: saved.skippedSteps, nanStreak: saved.nanStreak, imagesSeen: saved.imagesSeen, seconds: saved.seconds, loader: saved.loader });
    ctx.metrics.truncateAfter(index, saved.step);
  } else {
    defaultGenerator.manualSeed(noiseSeed(config.seed, index) + 1n);
  }
  const loader: DataLoader = makeLoader({
    source: data.source, data: stage.data, batchSize: stage.batchSize, multiple: parts.dimba.patchSize,
    seed: config.seed + index, device, resume: state.loader, log: (m) => reporter.warn(m),
  });

  const from = 'resume' in start ? start.resume : start.from;
  reporter.event({ event: 'stage', stage: stage.name, index, steps: stage.steps, from, resumed: 'resume' in start, params: params.reduce((n, p) => n + p.numel, 0), device });
  const result: StageResult = { name: stage.name, steps: state.step, completed: false, loss: null, skippedSteps: state.skippedSteps, imagesSeen: state.imagesSeen, seconds: state.seconds, checkpoint: null, samples: [] };

  const save = async (): Promise<string> => {
    const trainer: TrainerState = {
      version: 1, stage: { index, name: stage.name }, step: state.step, skippedSteps: state.skippedSteps, nanStreak: state.nanStreak,
      imagesSeen: state.imagesSeen, seconds: state.seconds,
      generators: { noise: noise.getState(), model: parts.model.trainingGenerator.getState(), global: defaultGenerator.getState() },
      loader: state.loader ?? loader.state, scheduler: scheduler.stateDict(), ema: ema ? ema.stateDict().meta : null, trajectory, digest,
    };
    const modelCount = parts.model.namedParameters().length;
    const files = [
      safetensorsFile(MODEL_FILE, parts.model.stateDict(), modelMetadata(parts.dimba, stage.objective)),
      safetensorsFile(TEXT_ENCODER_FILE, parts.encoder.stateDict(), textEncoderMetadata(parts.encoder)),
      ...(ema ? [
        safetensorsFile(MODEL_EMA_FILE, emaStateDict(parts.model, ema.shadowParams.slice(0, modelCount)), modelMetadata(parts.dimba, stage.objective)),
        safetensorsFile(TEXT_ENCODER_EMA_FILE, emaStateDict(parts.encoder, ema.shadowParams.slice(modelCount)), textEncoderMetadata(parts.encoder)),
      ] : []),
      ...optimizerFiles(optimizer.stateDict()),
      jsonFile(TOKENIZER_FILE, parts.encoder.tokenizer.toJSON()),
      jsonFile(CONFIG_FILE, { seed: config.seed, ...stage }),
      jsonFile(TRAINER_STATE_FILE, trainer),
    ];
    const path = await writeCheckpoint(dir, state.step, files, ctx.hooks?.checkpoint);
    const pruned = await pruneCheckpoints(dir, stage.checkpoint.keepLast);
    reporter.event({ event: 'checkpoint', stage: stage.name, step: state.step, path, pruned });
    result.checkpoint = path;
    return path;
  };
  const sample = async (): Promise<void> => {
    if (stage.samples.prompts.length === 0) return;
    const path = await writeSampleGrid({
      pipeline, params, ema, samples: stage.samples, size: stage.data.resolution, dir: join(dir, 'samples'), name: `step-${state.step}`,
      text: { stage: stage.name, step: String(state.step) },
    });
    result.samples.push(path);
    reporter.event({ event: 'samples', stage: stage.name, step: state.step, path });
  };

  // Captured steps: the hook that rewrites the loss on the host before the update needs eager steps.
  const graphSetting: GraphSetting = ctx.hooks?.lossValue ? false : ctx.cudaGraphs ?? stage.cudaGraphs;
  const graphed = new GraphedTrainStep({
    pipeline, params, optimizer, ema, gradClip: stage.gradClip, minSnrGamma: stage.minSnrGamma, noise, setting: graphSetting,
    gradAccumulation: stage.gradAccumulation, label: `stage '${stage.name}' step`,
  });
  let graphNote: string | null = null;
  const noteFallback = (): void => {
    // Once per reason, and only where graphs were possible (CUDA) or asked for.
    const why = graphed.fallback;
    if (why === null || why === graphNote || graphSetting === false || device === 'cpu') return;
    graphNote = why;
    reporter.warn(`stage '${stage.name}': steps run eagerly (no CUDA graph): ${why}`);
  };
  noteFallback();
  const batches = loader.batches()[Symbol.asyncIterator]();
  const rate = new RateMeter();
  const window: number[] = [];
  let lastTime = performance.now();
  try {
    while (state.step < stage.steps) {
      if (ctx.signal?.aborted) {
        reporter.event({ event: 'stopped', stage: stage.name, step: state.step, reason: String(ctx.signal.reason ?? 'stop requested') });
        await save();
        result.steps = state.step;
        return result;
      }
      optimizer.zeroGrad();
      let lossSum = 0;
      let images = 0;
      let bad: string | null = null;
      let gradNorm: number | null = null;
      // The whole step ran on the device (a CUDA graph, or its eager warm-up): only the schedule is left.
      let stepped = false;
      const terms = new Map<string, number>();
      for (let micro = 0; micro < stage.gradAccumulation && bad === null; micro++) {
        const next = await batches.next();
        if (next.done) throw new TrainingError(`stage '${stage.name}': the data loader ended`);
        const batch = next.value;
        state.loader = batch.state;
        images += batch.images.shape[0]!;
        if (micro === 0 && graphed.fallback === null) {
          const r = graphed.run(batch.images, batch.captions);
          noteFallback();
          if (r !== null) {
            batch.images.dispose();
            stepped = true;
            const value = r.loss;
            gradNorm = r.gradNorm;
            if (!Number.isFinite(value)) bad = `loss is ${value}`;
            else if (r.skipped) bad = `gradient norm is ${r.gradNorm}`;
            lossSum = value;
            for (const [k, v] of Object.entries(r.terms)) terms.set(k, v);
            break;
          }
        }
        // Memory is released deterministically (no waiting for garbage collection): the forward's
        // own scope frees what backward does not need before backward starts, backward frees
        // activations as it passes them, and the outer scope frees the rest; gradients stay in .grad.
        const outcome = T.tidy(() => {
          const out = T.tidy(() => pipeline.loss(batch.images, batch.captions, stage.minSnrGamma === null ? { generator: noise } : { generator: noise, minSnrGamma: stage.minSnrGamma }));
          let value = out.loss.item();
          value = ctx.hooks?.lossValue?.(stage.name, state.step + 1, value) ?? value;
          if (!Number.isFinite(value)) return { value, terms: null };
          const scaled = stage.gradAccumulation > 1 ? T.mul(out.loss, 1 / stage.gradAccumulation) : out.loss;
          scaled.backward();
          return { value, terms: Object.entries(out.terms).map(([k, t]) => [k, t.item()] as const) };
        });
        batch.images.dispose();
        if (outcome.terms === null) {
          bad = `loss is ${outcome.value}`;
          break;
        }
        lossSum += outcome.value / stage.gradAccumulation;
        for (const [k, v] of outcome.terms) terms.set(k, (terms.get(k) ?? 0) + v / stage.gradAccumulation);
      }
      state.imagesSeen += images;
      if (bad === null && !stepped) {
        gradNorm = T.tidy(() => clipGradNorm(params, stage.gradClip ?? Infinity));
        if (!Number.isFinite(gradNorm)) bad = `gradient norm is ${gradNorm}`;
      }
      const now = performance.now();
      state.seconds += (now - lastTime) / 1000;
      lastTime = now;
      if (bad !== null) {
        optimizer.zeroGrad();
        state.nanStreak += 1;
        state.skippedSteps += 1;
        reporter.warn(`stage '${stage.name}' step ${state.step + 1}: ${bad}; step skipped (${state.nanStreak} in a row; training stops at ${stage.maxNanSteps})`);
        reporter.event({ event: 'skip', stage: stage.name, step: state.step + 1, streak: state.nanStreak, reason: bad });
        if (state.nanStreak >= stage.maxNanSteps) {
          throw new TrainingError(`stage '${stage.name}': the loss was NaN or infinite for ${state.nanStreak} steps in a row (maxNanSteps) at step ${state.step + 1}; `
            + `lower optimizer.lr, set gradClip, or check the data. The last checkpoint is ${result.checkpoint ?? 'from before this run'}`);
        }
        continue;
      }
      state.nanStreak = 0;
      const lr = optimizer.paramGroups[0]!.options.lr;
      T.tidy(() => {
        if (!stepped) optimizer.step();
        scheduler.step();
        if (!stepped) ema?.update();
      });
      // The gradients outlived the step's scopes only in .grad, so clearing them releases them.
      optimizer.zeroGrad();
      state.step += 1;
      rate.tick(now);
      window.push(lossSum);
      if (window.length > stage.logEvery) window.shift();
      const mean = window.reduce((a, b) => a + b, 0) / window.length;
      result.loss = mean;
      const itPerSec = rate.perSecond;
      const imagesPerSec = itPerSec * stage.batchSize * stage.gradAccumulation;
      reporter.progress({ label: stage.name, step: state.step, total: stage.steps, loss: mean, lr, itPerSec, imagesPerSec });
      if (state.step % stage.logEvery === 0 || state.step === stage.steps) {
        ctx.metrics.append({ stage: stage.name, stageIndex: index, step: state.step, loss: lossSum, lossMean: mean, lr, gradNorm, itPerSec, imagesPerSec, seconds: state.seconds, ...Object.fromEntries(terms) });
        reporter.event({ event: 'step', stage: stage.name, step: state.step, steps: stage.steps, loss: lossSum, lr, gradNorm, itPerSec, imagesPerSec });
      }
      const last = state.step === stage.steps;
      if (!last && stage.checkpoint.every > 0 && state.step % stage.checkpoint.every === 0) await save();
      if (!last && stage.samples.every > 0 && state.step % stage.samples.every === 0) await sample();
      ctx.hooks?.onStep?.(stage.name, state.step);
      lastTime = performance.now(); // checkpoint and sample time is not training time
    }
    await save();
    await sample();
    Object.assign(result, { steps: state.step, completed: true, skippedSteps: state.skippedSteps, imagesSeen: state.imagesSeen, seconds: state.seconds });
    return result;
  } finally {
    graphed.dispose();
    await batches.return?.(undefined);
    Object.assign(result, { skippedSteps: state.skippedSteps, imagesSeen: state.imagesSeen, seconds: state.seconds });
  }
}
