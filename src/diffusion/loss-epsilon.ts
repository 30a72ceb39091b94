/**
 * ε-prediction training, optionally with a learned variance: improved DDPM's hybrid objective
 * (Nichol & Dhariwal 2021, §3.1), as PixArt-alpha / Dimba train it (GaussianDiffusion.training_losses
 * with learn_sigma=True, LossType.MSE).
 *
 * The model outputs 2C channels: ε̂ and v ∈ [-1, 1] that interpolates the log variance between the
 * posterior's β̃_t and β_t:   Σ_θ = exp(v' log β_t + (1 - v') log β̃_t),  v' = (v + 1) / 2   (eq. 15)
 *   L_simple = ||ε - ε̂||²                        (DDPM eq. 14; averaged over elements)
 *   L_t      = KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t))   for t > 0          (eq. 5)
 *   L_0      = -log p_θ(x_0 | x_1), the discretised Gaussian decoder                  (DDPM §3.3)
 * both in bits per dimension, with p_θ's mean built from a stop-gradient copy of ε̂, so the VLB term
 * trains only the variance ("L_vlb ... with a stop-gradient on μ", §3.1). Per sample:
 *   loss = L_simple + L_t.
 * improved DDPM writes L_hybrid = L_simple + λ L_vlb with λ = 0.001; L_vlb = Σ_t L_t = T E_t[L_t],
 * so one sampled L_t stands for λ T L_t = (T / 1000) L_t. PixArt's LossType.MSE adds L_t as is;
 * vbRescale 'timesteps' multiplies it by T / 1000 (LossType.RESCALED_MSE). With T = 1000, as PixArt
 * and Dimba train, the two are the same.
 */
import type { Tensor } from '../tensor/tensor.js';
import { add, div, eq, mul, neg, square, sub, where } from '../ops/elementwise.js';
import { cast, detach, narrow } from '../ops/layout.js';
import { DiffusionError } from './errors.js';
import type { Condition } from './model.js';
import type { NoiseSchedule } from './schedule.js';
import { discretizedGaussianLogLikelihood, meanFlat, normalKl } from './gaussian.js';
import { toDataAndNoise } from './prediction.js';
import { checkObjectiveArgs, checkOutput, finishObjective, type ObjectiveArgs, type ObjectiveResult } from './objective.js';

export interface EpsilonLossOptions {
  /** The model also outputs the variance values (2x channels); default true, as PixArt and Dimba. */
  learnedSigma?: boolean;
  /** 'none' (default, PixArt's LossType.MSE) or 'timesteps' (× T / 1000, LossType.RESCALED_MSE). */
  vbRescale?: 'none' | 'timesteps';
}

export function checkIntegerTimesteps(what: string, t: Tensor): void {
  if (t.dtype !== 'int32' && t.dtype !== 'int64') throw new DiffusionError(`${what}: t must hold integer timesteps (int32 or int64), got ${t.dtype}`);
}

export function epsilonLoss<C extends Condition>(schedule: NoiseSchedule, args: ObjectiveArgs<C>, options: EpsilonLossOptions = {}): ObjectiveResult {
  const batch = checkObjectiveArgs('epsilonLoss', args);
  checkIntegerTimesteps('epsilonLoss', args.t);
  const { x0, noise, t } = args;
  const xt = schedule.addNoise(x0, noise, t);
  const output = args.model(xt, cast(t, 'float32'), args.cond);
  const channels = x0.shape[1]!;
  if (!(options.learnedSigma ?? true)) {
    checkOutput('epsilonLoss', output, x0.shape);
    return finishObjective(meanFlat(square(sub(noise, output))), args.weights);
  }
  checkOutput('epsilonLoss (learnedSigma: 2x channels)', output, [batch, 2 * channels, ...x0.shape.slice(2)]);
  const eps = narrow(output, 1, 0, channels);
  const varValues = narrow(output, 1, channels, channels);
  const mse = meanFlat(square(sub(noise, eps)));
  let vb = variationalBoundTerm(schedule, x0, xt, t, detach(eps), varValues);
  if (options.vbRescale === 'timesteps') vb = mul(vb, schedule.numTimesteps / 1000);
  return finishObjective(mse, args.weights, vb);
}

/**
 * L_t in bits per dimension [B] for the learned-range variance: the decoder NLL where t = 0, the KL
 * between the true posterior and p_θ elsewhere (improved DDPM `_vb_terms_bpd`, clip_denoised=False).
 * `eps` gives p_θ's mean (pass it detached for the hybrid loss); `varValues` is v of eq. 15.
 */
export function variationalBoundTerm(schedule: NoiseSchedule, x0: Tensor, xt: Tensor, t: Tensor, eps: Tensor, varValues: Tensor): Tensor {
  checkIntegerTimesteps('variationalBoundTerm', t);
  const at = (table: Float64Array) => schedule.gather(table, t, x0);
  const minLog = at(schedule.posteriorLogVarianceClipped);
  const maxLog = at(schedule.logBetas);
  const frac = mul(add(varValues, 1), 0.5);
  const modelLogVar = add(mul(frac, maxLog), mul(sub(1, frac), minLog));
  const { x0: x0Hat } = toDataAndNoise('epsilon', eps, xt, at(schedule.sqrtAlphasCumprod), at(schedule.sqrtOneMinusAlphasCumprod));
  const coef1 = at(schedule.posteriorMeanCoef1);
  const coef2 = at(schedule.posteriorMeanCoef2);
  const modelMean = add(mul(coef1, x0Hat), mul(coef2, xt));
  const trueMean = add(mul(coef1, x0), mul(coef2, xt));
  const kl = div(meanFlat(normalKl(trueMean, minLog, modelMean, modelLogVar)), Math.LN2);
  const decoderNll = div(neg(meanFlat(discretizedGaussianLogLikelihood(x0, modelMean, mul(modelLogVar, 0.5)))), Math.LN2);
  return where(eq(t, 0), decoderNll, kl);
}
