/**
 * AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), numerically as
 * torch.optim.AdamW (amsgrad off): decay the weight by (1 - lr * weightDecay) first, then the
 * bias-corrected Adam step
 *   m <- lerp(m, g, 1 - beta1),  v <- beta2 v + (1 - beta2) g^2,
 *   w <- w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
 */
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../ops/create.js';
import { add, div, sqrt, square } from '../ops/elementwise.js';
import { Optimizer, type FusedBatch, type ParamState } from './optimizer.js';
import type { AdamWCoefficients, FusedKernels } from '../backends/backend.js';
import { f32 } from './fused.js';
import { addScaledInPlace, emaInPlace, free, lerpInPlace, scaleInPlace } from './inplace.js';
import { checkBetas, checkNonNegative, checkPositive } from './checks.js';
import { mergeOptions, type ParamsArg } from './param-groups.js';
import { OptimizerError } from './errors.js';

export interface AdamWOptions {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: Readonly<AdamWOptions> = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 };

export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: ParamsArg<AdamWOptions>, options: Partial<AdamWOptions> = {}) {
    super('AdamW', params, mergeOptions('AdamW', ADAMW_DEFAULTS, options));
  }

  protected validateOptions(o: AdamWOptions, where: string): void {
    checkNonNegative(where, 'lr', o.lr);
    checkNonNegative(where, 'eps', o.eps);
    checkNonNegative(where, 'weightDecay', o.weightDecay);
    if (o.betas.length !== 2) throw new OptimizerError(`${where}: betas must be 2 numbers, got ${o.betas.length}`);
    checkBetas(where, o.betas);
    checkPositive(where, '1 - beta1', 1 - o.betas[0]);
  }

  protected initBuffers(param: Tensor, dtype: 'float32' | 'float64'): Map<string, Tensor> {
    const make = () => zeros(param.shape, { dtype, device: param.device });
    return new Map([['exp_avg', make()], ['exp_avg_sq', make()]]);
  }

  protected override canFuse(fused: FusedKernels): boolean {
    return fused.adamwStep !== undefined;
  }

  protected override stepFused(b: FusedBatch<AdamWOptions>): void {
    b.fused.adamwStep!({
      weights: b.states.map((s, i) => s.master ?? b.params[i]!),
      grads: b.grads,
      expAvg: b.states.map((s) => s.buffers.get('exp_avg')!),
      expAvgSq: b.states.map((s) => s.buffers.get('exp_avg_sq')!),
      halfParams: b.states.map((s, i) => (s.master ? b.params[i]! : null)),
      decay: b.decays,
    }, adamwCoefficients(b.options, b.step), { cacheKey: b.cacheKey, control: b.control });
  }

  protected override controlCoefficients(o: AdamWOptions, step: number): number[] {
    const c = adamwCoefficients(o, step);
    return [c.decayScale, c.lerpWeight, c.lerpFromGrad ? 1 : 0, c.beta2, c.oneMinusBeta2, c.rootBias2, c.eps, c.stepScale];
  }

  protected updateParam(w: Tensor, g: Tensor, state: ParamState, o: AdamWOptions): void {
    const [beta1, beta2] = o.betas;
    const m = state.buffers.get('exp_avg')!;
    const v = state.buffers.get('exp_avg_sq')!;
    if (o.weightDecay !== 0) scaleInPlace(w, 1 - o.lr * o.weightDecay);
    lerpInPlace(m, g, 1 - beta1);
    const g2 = square(g);
    emaInPlace(v, g2, beta2);
    const biasCorrection1 = 1 - beta1 ** state.step;
    const biasCorrection2 = 1 - beta2 ** state.step;
    const rootV = sqrt(v);
    const scaledRootV = div(rootV, Math.sqrt(biasCorrection2));
    const denom = add(scaledRootV, o.eps);
    const direction = div(m, denom);
    addScaledInPlace(w, direction, -o.lr / biasCorrection1);
    free(g2, rootV, scaledRootV, denom, direction);
  }
}

/** The scalars of updateParam's ops at step `step`, rounded as those ops round them (see AdamWCoefficients). */
export function adamwCoefficients(o: AdamWOptions, step: number): AdamWCoefficients {
  const [beta1, beta2] = o.betas;
  const weight = 1 - beta1;
  const fromGrad = !(weight < 0.5);
  return {
    decayScale: f32(1 - o.lr * o.weightDecay),
    lerpWeight: f32(fromGrad ? 1 - weight : weight),
    lerpFromGrad: fromGrad,
    beta2: f32(beta2),
    oneMinusBeta2: f32(1 - beta2),
    rootBias2: f32(Math.sqrt(1 - beta2 ** step)),
    eps: f32(o.eps),
    stepScale: f32(-o.lr / (1 - beta1 ** step)),
  };
}
