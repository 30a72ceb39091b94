/**
 * Sampling glue: start from seeded noise, ask the (guided) model at each timestep the scheduler
 * names, hand its output to scheduler.step. Every sampler is this loop with another scheduler.
 *
 * Each step runs in a T.tidy scope that keeps only the new sample, and the loop disposes the
 * sample it replaces, so memory stays flat over the steps without waiting for garbage collection.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import type { Generator } from '../random/generator.js';
import { noGrad } from '../autograd/grad-mode.js';
import { tidy } from '../tensor/lifetime.js';
import { randn } from '../ops/random.js';
import { mul } from '../ops/elementwise.js';
import { formatShape } from '../tensor/shape.js';
import { DiffusionError } from './errors.js';
import { checkConditionBatch, type Condition, type ModelFn } from './model.js';
import { guidedPrediction } from './guidance.js';
import type { Scheduler } from './scheduler.js';

export interface StepInfo {
  /** 0-based step index and the model timestep it used. */
  index: number;
  timestep: number;
  steps: number;
  /** The sample after this step; valid during the callback only (the next step disposes it): clone() or keep() it to hold on. */
  sample: Tensor;
}

export interface SampleOptions<C extends Condition> {
  model: ModelFn<C>;
  /** [B, C, ...] of the samples (latents). */
  shape: readonly number[];
  /** Number of model evaluations (scheduler steps). */
  steps: number;
  /** Classifier-free guidance scale s (default 1); used only when `uncond` is given. */
  guidanceScale?: number;
  cond: C;
  /** The null condition; with it every step is one batched call on 2B samples. */
  uncond?: C;
  /** Source of the starting noise and of any stochastic steps (default: the global generator). */
  generator?: Generator;
  onStep?: (info: StepInfo) => void;
  /** The model outputs ε̂ and learned-variance values (2x channels); only the first half is used. */
  learnedSigma?: boolean;
  /** Starting x_T instead of drawing it (still scaled by the scheduler's initNoiseSigma). */
  noise?: Tensor;
  /** dtype and device of the drawn noise (defaults float32, cpu). */
  dtype?: DType;
  device?: string;
}

/** Runs `scheduler` over options.steps steps and returns the final sample. No graph is recorded. */
export function runSampler<C extends Condition>(scheduler: Scheduler, options: SampleOptions<C>): Tensor {
  const scale = options.guidanceScale ?? 1;
  if (!Number.isFinite(scale)) throw new DiffusionError(`sample: guidanceScale must be finite, got ${scale}`);
  const batch = options.shape[0];
  if (options.shape.length < 2 || batch === undefined || options.shape.some((s) => !Number.isInteger(s) || s < 1)) {
    throw new DiffusionError(`sample: shape must be [B, C, ...] of positive integers, got ${formatShape(options.shape)}`);
  }
  if (options.noise && (options.noise.ndim !== options.shape.length || options.noise.shape.some((s, i) => s !== options.shape[i]))) {
    throw new DiffusionError(`sample: noise ${formatShape(options.noise.shape)} does not match shape ${formatShape(options.shape)}`);
  }
  checkConditionBatch('sample: cond', options.cond, batch);
  if (options.uncond !== undefined) checkConditionBatch('sample: uncond', options.uncond, batch);
  const call = {
    model: options.model, cond: options.cond, uncond: options.uncond, guidanceScale: scale, learnedSigma: options.learnedSigma ?? false,
  };
  return noGrad(() => {
    scheduler.setTimesteps(options.steps);
    const start = options.noise ?? randn(options.shape, { dtype: options.dtype ?? 'float32', device: options.device, generator: options.generator });
    let x = scheduler.initNoiseSigma === 1 ? start : mul(start, scheduler.initNoiseSigma);
    if (x !== start && start !== options.noise) start.dispose();
    const timesteps = [...scheduler.timesteps];
    for (const [index, t] of timesteps.entries()) {
      const next = tidy(() => scheduler.step(guidedPrediction(call, x, t), t, x, options.generator));
      // The sample this step replaces is the loop's own (never the caller's noise).
      if (next !== x && x !== options.noise) x.dispose();
      x = next;
      options.onStep?.({ index, timestep: t, steps: timesteps.length, sample: x });
    }
    return x;
  });
}
