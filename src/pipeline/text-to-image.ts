/**
 * Text-to-image glue: a Dimba backbone, a text encoder and a diffusion objective become one
 * object that computes the training loss for captioned images and samples images for prompts.
 * It owns no weights of its own; the backbone and encoder are shared with the caller (trainer,
 * checkpointing, EMA).
 *
 * Objectives (what the backbone outputs, and so which samplers apply):
 *   'epsilon': ε̂, and with learnSigma the learned-range variance (improved-DDPM hybrid loss, as
 *              PixArt-alpha and Dimba train): samplers 'ddim' and 'dpm++'
 *   'v':       v̂ = α_t ε - σ_t x_0 on the same linear-β schedule: samplers 'ddim' and 'dpm++'
 *   'flow':    rectified-flow velocity ε - x_0 at model time σ·1000: sampler 'euler'
 * v and flow have no variance output, so they need a model built with learnSigma false.
 */
import type { Tensor } from '../tensor/tensor.js';
import { Generator } from '../random/generator.js';
import { randn } from '../ops/random.js';
import { detach } from '../ops/layout.js';
import { mean } from '../ops/reduce.js';
import { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import type { Dimba } from '../models/dimba/model.js';
import type { TextEncoder } from '../models/text/text-encoder.js';
import { NoiseSchedule } from '../diffusion/schedule.js';
import { epsilonLoss } from '../diffusion/loss-epsilon.js';
import { vPredictionLoss } from '../diffusion/loss-v.js';
import { flowMatchingLoss } from '../diffusion/loss-flow.js';
import { minSnrWeights } from '../diffusion/min-snr.js';
import { sampleFlowTimes, sampleTimesteps } from '../diffusion/timestep-sampling.js';
import { sampleDDIM, sampleDPMSolver, sampleFlowEuler } from '../diffusion/samplers.js';
import type { SampleOptions } from '../diffusion/sampling.js';
import type { ObjectiveResult } from '../diffusion/objective.js';
import { formatShape } from '../tensor/shape.js';
import { PipelineError } from './errors.js';
import { dimbaDenoiser, encodeCaptions, type CaptionCondition } from './conditioning.js';
import { checkGraphSetting, graphedDenoiser, type DenoiserGraphStats, type GraphSetting } from './graphed-denoiser.js';

export type Objective = 'epsilon' | 'v' | 'flow';
export type SamplerName = 'ddim' | 'dpm++' | 'euler';

export const OBJECTIVES: readonly Objective[] = ['epsilon', 'v', 'flow'];
export const SAMPLERS: readonly SamplerName[] = ['ddim', 'dpm++', 'euler'];

/** Samplers that can integrate a model trained with each objective. */
export const SAMPLERS_FOR: Readonly<Record<Objective, readonly SamplerName[]>> = {
  epsilon: ['ddim', 'dpm++'],
  v: ['ddim', 'dpm++'],
  flow: ['euler'],
};

/** Model time units per unit of flow time σ ∈ [0, 1] (as SD3 feeds its transformer). */
const FLOW_TIME_SCALE = 1000;

export interface TextToImageParts {
  model: Dimba;
  textEncoder: TextEncoder;
  objective: Objective;
  /** The noise schedule of 'epsilon' and 'v' (default: the 1000-step linear schedule of PixArt and Dimba). */
  schedule?: NoiseSchedule;
  /**
   * Train the text encoder jointly (its parameters are in parameters() and get gradients).
   * Default: true when the encoder is an nn Module (SmallTextEncoder); pass false for a frozen one.
   */
  trainTextEncoder?: boolean;
  /**
   * How 'flow' training draws σ (default 'logit-normal', SD3's choice for large data, which rarely
   * visits σ > 0.9; 'uniform' trains the high-noise end, where a sample's content is decided, as
   * often as the rest).
   */
  flowTimes?: 'logit-normal' | 'uniform';
}

export interface LossOptions {
  /** Source of noise and timesteps (default: the global generator). */
  generator?: Generator;
  /** Min-SNR-γ weighting of the regression term ('epsilon' and 'v' only; γ = 5 in the paper). */
  minSnrGamma?: number;
}

export interface LossResult {
  /** Scalar to backpropagate. */
  loss: Tensor;
  /** Batch means for logging (detached scalars): 'mse', and 'vb' (bits/dim) for the hybrid loss. */
  terms: Record<string, Tensor>;
}

export interface GenerateOptions {
  prompts: string[];
  /** Model evaluations (each one batched call on 2B samples with guidance, B without). */
  steps: number;
  sampler: SamplerName;
  /** Classifier-free guidance scale; 1 means no guidance (the unconditional branch is skipped). */
  guidanceScale: number;
  /** Seeds the starting noise (and nothing else: samplers here are deterministic). */
  seed: number;
  height: number;
  width: number;
  /** After each step: steps done (1..total) and total. */
  onStep?: (i: number, total: number) => void;
  /**
   * Replay the model call (the guided batch) from a CUDA graph: captured at the first step (after
   * one eager warm-up call), launched at every step. 'auto' (default): where the model's device
   * supports graphs, calling the model eagerly (with a warning) if capture fails; true: require
   * graphs; false: call the model at every step. Results match eager sampling to float rounding.
   */
  cudaGraph?: GraphSetting;
}

export class TextToImage {
  readonly model: Dimba;
  readonly textEncoder: TextEncoder;
  readonly objective: Objective;
  readonly schedule: NoiseSchedule;
  readonly trainTextEncoder: boolean;
  readonly flowTimes: 'logit-normal' | 'uniform';
  private readonly denoiser: ReturnType<typeof dimbaDenoiser>;
  /** How the last generate() called the model (graph captures and replays, eager calls). */
  lastGraphStats: DenoiserGraphStats | null = null;

  constructor(parts: TextToImageParts) {
    const { model, textEncoder, objective } = parts;
    if (!OBJECTIVES.includes(objective)) throw new PipelineError(`TextToImage: objective must be one of ${OBJECTIVES.join(', ')}, got '${String(objective)}'`);
    const c = model.config;
    if (textEncoder.channels !== c.captionChannels) {
      throw new PipelineError(`TextToImage: text encoder channels ${textEncoder.channels} differ from the model's captionChannels ${c.captionChannels}`);
    }
    // The null caption y_embedding has captionTokens rows and replaces whole encoded captions.
    if (textEncoder.maxTokens !== c.captionTokens) {
      throw new PipelineError(`TextToImage: text encoder maxTokens ${textEncoder.maxTokens} differs from the model's captionTokens ${c.captionTokens}`);
    }
    if (objective !== 'epsilon' && c.learnSigma) {
      throw new PipelineError(`TextToImage: objective '${objective}' has no variance output; build the model with learnSigma: false`);
    }
    this.model = model;
    this.textEncoder = textEncoder;
    this.objective = objective;
    this.schedule = parts.schedule ?? NoiseSchedule.linear();
    this.trainTextEncoder = parts.trainTextEncoder ?? textEncoder instanceof Module;
    if (this.trainTextEncoder && !(textEncoder instanceof Module)) {
      throw new PipelineError('TextToImage: trainTextEncoder is true but the text encoder has no parameters (not an nn Module)');
    }
    this.flowTimes = parts.flowTimes ?? 'logit-normal';
    if (this.flowTimes !== 'logit-normal' && this.flowTimes !== 'uniform') {
      throw new PipelineError(`TextToImage: flowTimes must be 'logit-normal' or 'uniform', got '${String(this.flowTimes)}'`);
    }
    this.denoiser = dimbaDenoiser(model);
  }

  /** Trainable parameters: the backbone's, then the text encoder's when it trains jointly. */
  parameters(): Parameter[] {
    const params = this.model.parameters();
    if (this.trainTextEncoder && this.textEncoder instanceof Module) params.push(...this.textEncoder.parameters());
    return params;
  }

  /** Train (true) or eval mode for the backbone and, when it trains, the text encoder. */
  train(mode = true): this {
    this.model.train(mode);
    if (this.trainTextEncoder && this.textEncoder instanceof Module) this.textEncoder.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Training loss for images (or latents) x_0 [B, C, H, W] in the model's data space and their
   * captions. Caption dropout for classifier-free guidance happens inside the model while it is
   * in train mode; '' captions always use the null caption.
   */
  loss(images: Tensor, captions: string[], options: LossOptions = {}): LossResult {
    this.checkLossInputs(images, options);
    const batch = images.shape[0]!;
    if (captions.length !== batch) throw new PipelineError(`TextToImage.loss: ${captions.length} captions for a batch of ${batch} images`);
    return this.lossWithCondition(images, encodeCaptions(this.textEncoder, captions, this.trainTextEncoder), options);
  }

  private checkLossInputs(images: Tensor, options: LossOptions): void {
    const c = this.model.config;
    if (images.ndim !== 4 || images.shape[1] !== c.inChannels) {
      throw new PipelineError(`TextToImage.loss: images must be [B, ${c.inChannels}, H, W], got ${formatShape(images.shape)}`);
    }
    if (options.minSnrGamma !== undefined && this.objective === 'flow') {
      throw new PipelineError('TextToImage.loss: minSnrGamma applies to the epsilon and v objectives, not flow');
    }
  }

  /**
   * loss() for captions already encoded (encodeCaptions' result): a captured training step
   * encodes on the device from token tensors it writes before each replay (src/train/graphed-step.ts).
   */
  lossWithCondition(images: Tensor, cond: CaptionCondition, options: LossOptions = {}): LossResult {
    this.checkLossInputs(images, options);
    const c = this.model.config;
    const batch = images.shape[0]!;
    const generator = options.generator;
    const draw = { generator, device: images.deviceName };
    const noise = randn(images.shape, { dtype: images.dtype, device: images.deviceName, generator });
    let result: ObjectiveResult;
    if (this.objective === 'flow') {
      const t = sampleFlowTimes(batch, { ...draw, distribution: this.flowTimes });
      result = flowMatchingLoss({ model: this.denoiser, x0: images, noise, t, cond }, { timeScale: FLOW_TIME_SCALE });
    } else {
      const t = sampleTimesteps(batch, this.schedule.numTimesteps, draw);
      const weights = options.minSnrGamma === undefined ? undefined
        : minSnrWeights(this.schedule, t, { gamma: options.minSnrGamma, prediction: this.objective });
      const args = { model: this.denoiser, x0: images, noise, t, cond, weights };
      result = this.objective === 'v'
        ? vPredictionLoss(this.schedule, args)
        : epsilonLoss(this.schedule, args, { learnedSigma: c.learnSigma });
    }
    const terms: Record<string, Tensor> = { mse: detach(mean(result.terms.mse)) };
    if (result.terms.vb) terms['vb'] = detach(mean(result.terms.vb));
    return { loss: result.loss, terms };
  }

  /**
   * Samples images [B, C, height, width] in the model's data space (e.g. [-1, 1], unclamped) for
   * the prompts. With guidanceScale != 1 each step is one batched call on [uncond; cond], the
   * unconditional half using the learned null caption. The model is in eval mode while sampling
   * (no caption dropout or drop-path) and its mode is restored afterwards.
   */
  generate(options: GenerateOptions): Tensor {
    const { prompts, steps, sampler, guidanceScale, seed, height, width } = options;
    const c = this.model.config;
    if (!SAMPLERS_FOR[this.objective].includes(sampler)) {
      throw new PipelineError(`TextToImage.generate: sampler '${String(sampler)}' cannot sample a '${this.objective}' model; use ${SAMPLERS_FOR[this.objective].join(' or ')}`);
    }
    if (prompts.length === 0) throw new PipelineError('TextToImage.generate: prompts must hold at least one prompt');
    for (const [name, v] of [['height', height], ['width', width]] as const) {
      if (!Number.isInteger(v) || v <= 0 || v % c.patchSize !== 0) {
        throw new PipelineError(`TextToImage.generate: ${name} must be a positive multiple of the patch size ${c.patchSize}, got ${v}`);
      }
    }
    if (!Number.isInteger(steps) || steps < 1) throw new PipelineError(`TextToImage.generate: steps must be a positive integer, got ${steps}`);
    if (!Number.isFinite(guidanceScale)) throw new PipelineError(`TextToImage.generate: guidanceScale must be finite, got ${guidanceScale}`);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new PipelineError(`TextToImage.generate: seed must be a non-negative integer, got ${seed}`);
    const graphSetting = checkGraphSetting('TextToImage.generate: cudaGraph', options.cudaGraph);

    const device = this.model.xEmbedder.proj.weight.deviceName;
    const guided = guidanceScale !== 1;
    const modelMode = this.model.training;
    const encoderMode = this.textEncoder instanceof Module ? this.textEncoder.training : false;
    this.model.eval();
    if (this.textEncoder instanceof Module) this.textEncoder.eval();
    // Graphs live for this call only: the weights they read stay where they are until it returns.
    const denoiser = graphedDenoiser(this.denoiser, graphSetting, 'TextToImage denoiser');
    try {
      const cond = encodeCaptions(this.textEncoder, prompts, false);
      const uncond = guided ? encodeCaptions(this.textEncoder, prompts.map(() => ''), false) : undefined;
      const run: SampleOptions<CaptionCondition> = {
        model: denoiser.fn,
        shape: [prompts.length, c.inChannels, height, width],
        steps,
        guidanceScale,
        cond,
        uncond,
        generator: new Generator(seed),
        device,
        onStep: options.onStep ? (info) => options.onStep!(info.index + 1, info.steps) : undefined,
      };
      if (sampler === 'euler') return sampleFlowEuler({ ...run, numTrainTimesteps: FLOW_TIME_SCALE });
      const vp = { ...run, schedule: this.schedule, prediction: this.prediction(), learnedSigma: c.learnSigma };
      return sampler === 'ddim' ? sampleDDIM(vp) : sampleDPMSolver(vp);
    } finally {
      this.lastGraphStats = denoiser.stats();
      denoiser.dispose();
      this.model.train(modelMode);
      if (this.textEncoder instanceof Module) this.textEncoder.train(encoderMode);
    }
  }

  private prediction(): 'epsilon' | 'v' {
    return this.objective === 'v' ? 'v' : 'epsilon';
  }
}
