/**
 * CAME (Luo et al. 2023, "CAME: Confidence-guided Adaptive Memory Efficient Optimization"), in
 * the order of operations of the authors' reference implementation (yangluo7/CAME), which the
 * PixArt-alpha and Dimba training configs use. Per step t, with gradient g:
 *   second moment of g^2 + eps1: factored for ndim >= 2 into row/column means over the last two
 *     dims (Adafactor style; V ~ R C / mean(R)), a full tensor for vectors;
 *   u = g / sqrt(V), then u /= max(1, RMS(u) / clipThreshold)  (update clipping);
 *   m = beta1 m + (1 - beta1) u;
 *   instability (u - m)^2 + eps2, factored the same way with beta3, gives the confidence
 *     S; the step is m / sqrt(S) (matrices) or plain m (vectors, as the reference does);
 *   w <- w - lr * weightDecay * w - lr * step.
 * There is no bias correction, as in the reference.
 */
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../ops/create.js';
import { add, div, maximum, mul, rsqrt, sqrt, square, sub } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { unsqueeze } from '../ops/layout.js';
import { Optimizer, type FusedBatch, type ParamState } from './optimizer.js';
import type { CAMECoefficients, FusedKernels } from '../backends/backend.js';
import { f32 } from './fused.js';
import { addScaledInPlace, emaInPlace, free } from './inplace.js';
import { checkBetas, checkNonNegative, checkPositive } from './checks.js';
import { mergeOptions, type ParamsArg } from './param-groups.js';
import { OptimizerError } from './errors.js';

export interface CAMEOptions {
  lr: number;
  /** Moving-average rates of the update (beta1), squared gradient (beta2) and instability (beta3). */
  betas: readonly [number, number, number];
  /** Added to the squared gradient (eps1) and to the instability (eps2). */
  eps: readonly [number, number];
  /** Largest RMS of the normalised update before it is scaled down. */
  clipThreshold: number;
  weightDecay: number;
}

export const CAME_DEFAULTS: Readonly<Omit<CAMEOptions, 'lr'>> = {
  betas: [0.9, 0.999, 0.9999],
  eps: [1e-30, 1e-16],
  clipThreshold: 1.0,
  weightDecay: 0,
};

/** Matrices (and higher) keep row and column statistics over their last two dims only. */
function isFactored(param: Tensor): boolean {
  return param.ndim >= 2;
}

export class CAME extends Optimizer<CAMEOptions> {
  constructor(params: ParamsArg<CAMEOptions>, options: Partial<CAMEOptions> & { lr: number }) {
    super('CAME', params, mergeOptions('CAME', { ...CAME_DEFAULTS, lr: options.lr }, options));
  }

  protected validateOptions(o: CAMEOptions, where: string): void {
    checkPositive(where, 'lr', o.lr);
    checkPositive(where, 'clipThreshold', o.clipThreshold);
    checkNonNegative(where, 'weightDecay', o.weightDecay);
    if (o.betas.length !== 3) throw new OptimizerError(`${where}: betas must be 3 numbers, got ${o.betas.length}`);
    if (o.eps.length !== 2) throw new OptimizerError(`${where}: eps must be 2 numbers, got ${o.eps.length}`);
    checkBetas(where, o.betas);
    o.eps.forEach((e, i) => checkNonNegative(where, `eps[${i}]`, e));
  }

  protected initBuffers(param: Tensor, dtype: 'float32' | 'float64'): Map<string, Tensor> {
    const make = (shape: readonly number[]) => zeros(shape, { dtype, device: param.device });
    const shape = param.shape;
    if (!isFactored(param)) return new Map([['exp_avg', make(shape)], ['exp_avg_sq', make(shape)]]);
    const rowShape = shape.slice(0, -1);
    const colShape = [...shape.slice(0, -2), shape[shape.length - 1]!];
    return new Map([
      ['exp_avg', make(shape)],
      ['exp_avg_sq_row', make(rowShape)],
      ['exp_avg_sq_col', make(colShape)],
      ['exp_avg_res_row', make(rowShape)],
      ['exp_avg_res_col', make(colShape)],
    ]);
  }

  protected override canFuse(fused: FusedKernels): boolean {
    return fused.cameStep !== undefined;
  }

  protected override stepFused(b: FusedBatch<CAMEOptions>): void {
    const buffer = (name: string) => b.states.map((s) => s.buffers.get(name) ?? null);
    b.fused.cameStep!({
      weights: b.states.map((s, i) => s.master ?? b.params[i]!),
      grads: b.grads,
      expAvg: b.states.map((s) => s.buffers.get('exp_avg')!),
      expAvgSq: buffer('exp_avg_sq'),
      sqRow: buffer('exp_avg_sq_row'),
      sqCol: buffer('exp_avg_sq_col'),
      resRow: buffer('exp_avg_res_row'),
      resCol: buffer('exp_avg_res_col'),
      halfParams: b.states.map((s, i) => (s.master ? b.params[i]! : null)),
      decay: b.decays,
    }, cameCoefficients(b.options), { cacheKey: b.cacheKey, control: b.control });
  }

  /** Only the learning-rate terms change between steps (CAME has no bias correction). */
  protected override controlCoefficients(o: CAMEOptions): number[] {
    const c = cameCoefficients(o);
    return [c.decayScale, c.negLr];
  }

  protected updateParam(w: Tensor, g: Tensor, state: ParamState, o: CAMEOptions): void {
    const [beta1, beta2, beta3] = o.betas;
    const [eps1, eps2] = o.eps;
    const buffer = (name: string): Tensor => state.buffers.get(name)!;
    const factored = isFactored(w);

    const g2 = square(g);
    const g2eps = add(g2, eps1);
    let normalized: Tensor;
    if (factored) {
      updateFactored(buffer('exp_avg_sq_row'), buffer('exp_avg_sq_col'), g2eps, beta2);
      const inverseRoot = factoredRsqrt(buffer('exp_avg_sq_row'), buffer('exp_avg_sq_col'));
      normalized = mul(inverseRoot, g);
      free(inverseRoot);
    } else {
      emaInPlace(buffer('exp_avg_sq'), g2eps, beta2);
      const inverseRoot = rsqrt(buffer('exp_avg_sq'));
      normalized = mul(inverseRoot, g);
      free(inverseRoot);
    }
    free(g2, g2eps);
    const clipped = clipByRms(normalized, o.clipThreshold);
    free(normalized);

    const m = buffer('exp_avg');
    emaInPlace(m, clipped, beta1);
    if (o.weightDecay !== 0) addScaledInPlace(w, w, -o.weightDecay * o.lr);
    if (factored) {
      const diff = sub(clipped, m);
      const diff2 = square(diff);
      const instability = add(diff2, eps2);
      updateFactored(buffer('exp_avg_res_row'), buffer('exp_avg_res_col'), instability, beta3);
      const confidence = factoredRsqrt(buffer('exp_avg_res_row'), buffer('exp_avg_res_col'));
      const step = mul(confidence, m);
      addScaledInPlace(w, step, -o.lr);
      free(diff, diff2, instability, confidence, step);
    } else {
      addScaledInPlace(w, m, -o.lr);
    }
    free(clipped);
  }
}

/** Row (mean over the last dim) and column (mean over the second-to-last) moving averages of x. */
function updateFactored(row: Tensor, col: Tensor, x: Tensor, beta: number): void {
  const rowMean = mean(x, -1);
  const colMean = mean(x, -2);
  emaInPlace(row, rowMean, beta);
  emaInPlace(col, colMean, beta);
  free(rowMean, colMean);
}

/**
 * 1 / sqrt(V) for the rank-1 estimate V[i, j] = R[i] C[j] / mean(R) (Adafactor, eq. 4 of the
 * CAME paper), as rsqrt(R / mean(R))[:, None] * rsqrt(C)[None, :] over the last two dims.
 */
function factoredRsqrt(row: Tensor, col: Tensor): Tensor {
  const rowMean = mean(row, -1, true);
  const relRow = div(row, rowMean);
  const r = rsqrt(relRow);
  const c = rsqrt(col);
  const out = mul(unsqueeze(r, -1), unsqueeze(c, -2));
  free(rowMean, relRow, r, c);
  return out;
}

/** u / max(1, RMS(u) / threshold), kept on the device (no host sync for the scalar). */
function clipByRms(u: Tensor, threshold: number): Tensor {
  const u2 = square(u);
  const meanSquare = mean(u2);
  const rms = sqrt(meanSquare);
  const ratio = div(rms, threshold);
  const scale = maximum(ratio, 1);
  const out = div(u, scale);
  free(u2, meanSquare, rms, ratio, scale);
  return out;
}

/** The scalars of updateParam's ops, rounded as those ops round them (see CAMECoefficients). */
export function cameCoefficients(o: CAMEOptions): CAMECoefficients {
  const [beta1, beta2, beta3] = o.betas;
  return {
    beta1: f32(beta1), oneMinusBeta1: f32(1 - beta1),
    beta2: f32(beta2), oneMinusBeta2: f32(1 - beta2),
    beta3: f32(beta3), oneMinusBeta3: f32(1 - beta3),
    eps1: f32(o.eps[0]), eps2: f32(o.eps[1]),
    clipThreshold: f32(o.clipThreshold),
    decayScale: f32(-o.weightDecay * o.lr),
    negLr: f32(-o.lr),
  };
}
