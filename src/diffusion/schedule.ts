/**
 * The discrete variance-preserving noise schedule of DDPM (Ho et al. 2020), with every derived
 * quantity computed once in float64 on the host, as PixArt-alpha's GaussianDiffusion does.
 *
 * Symbols (DDPM §2): β_t = betas[t], α_t = 1 - β_t, ᾱ_t = alphasCumprod[t] = Π_{s<=t} α_s, so
 * q(x_t | x_0) = N(√ᾱ_t x_0, (1 - ᾱ_t) I) (eq. 4). Timesteps are 0-based: index 0 is DDPM's t = 1.
 * The posterior q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I) has (eq. 6-7)
 *   μ̃_t = posteriorMeanCoef1[t] x_0 + posteriorMeanCoef2[t] x_t,   β̃_t = posteriorVariance[t].
 * In the continuous notation of DDIM / DPM-Solver, α_t there is √ᾱ_t here and σ_t is √(1 - ᾱ_t);
 * `alpha`, `sigma` and `lambda` (= log α - log σ, half the log-SNR) use that notation.
 */
import { Tensor } from '../tensor/tensor.js';
import { add, mul } from '../ops/elementwise.js';
import { indexSelect } from '../ops/indexing.js';
import { cast, reshape } from '../ops/layout.js';
import { tensor } from '../ops/create.js';
import { formatShape } from '../tensor/shape.js';
import { keep } from '../tensor/lifetime.js';
import { DiffusionError } from './errors.js';

/**
 * numpy.linspace in float64, element for element: start + i * step with step = (stop - start) / (n - 1),
 * and the last element set to `stop` exactly (so betas match PixArt's numpy ones bit for bit).
 */
export function linspace64(start: number, stop: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = n > 1 ? (stop - start) / (n - 1) : 0;
  for (let i = 0; i < n; i++) out[i] = i * step + start;
  if (n > 1) out[n - 1] = stop;
  return out;
}

/**
 * PixArt's / improved-DDPM's "linear" schedule: DDPM's β from 1e-4 to 0.02 over 1000 steps, with both
 * ends scaled by 1000 / numTimesteps so that other lengths keep the same total noise.
 */
export function linearBetas(numTimesteps = 1000, betaStart = 1e-4, betaEnd = 0.02): Float64Array {
  if (!Number.isInteger(numTimesteps) || numTimesteps < 2) {
    throw new DiffusionError(`linearBetas: numTimesteps must be an integer >= 2, got ${numTimesteps}`);
  }
  const scale = 1000 / numTimesteps;
  return linspace64(scale * betaStart, scale * betaEnd, numTimesteps);
}

export class NoiseSchedule {
  readonly numTimesteps: number;
  readonly betas: Float64Array;
  readonly logBetas: Float64Array;
  /** ᾱ_t (DDPM eq. 4). */
  readonly alphasCumprod: Float64Array;
  /** ᾱ_{t-1}, with ᾱ_{-1} = 1. */
  readonly alphasCumprodPrev: Float64Array;
  /** β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) (DDPM eq. 7); 0 at t = 0. */
  readonly posteriorVariance: Float64Array;
  /** log β̃_t with the t = 0 entry replaced by log β̃_1, since β̃_0 = 0 (improved DDPM §3.1). */
  readonly posteriorLogVarianceClipped: Float64Array;
  /** Coefficients of x_0 and x_t in μ̃_t (DDPM eq. 7). */
  readonly posteriorMeanCoef1: Float64Array;
  readonly posteriorMeanCoef2: Float64Array;
  /** √ᾱ_t and √(1 - ᾱ_t): the coefficients of x_0 and ε in x_t. */
  readonly sqrtAlphasCumprod: Float64Array;
  readonly sqrtOneMinusAlphasCumprod: Float64Array;

  /** Device copies of the tables above, by table and device/dtype (uploaded once, gathered per batch). */
  private readonly deviceTables = new WeakMap<Float64Array, Map<string, Tensor>>();

  constructor(betas: Float64Array) {
    const n = betas.length;
    if (n < 2) throw new DiffusionError(`NoiseSchedule: need at least 2 betas, got ${n}`);
    betas.forEach((b, i) => {
      if (!(b > 0 && b <= 1)) throw new DiffusionError(`NoiseSchedule: betas[${i}] = ${b} is outside (0, 1]`);
    });
    this.numTimesteps = n;
    this.betas = Float64Array.from(betas);
    this.logBetas = this.betas.map(Math.log);
    this.alphasCumprod = new Float64Array(n);
    let prod = 1;
    for (let t = 0; t < n; t++) {
      prod *= 1 - this.betas[t]!;
      this.alphasCumprod[t] = prod;
    }
    this.alphasCumprodPrev = new Float64Array(n);
    this.alphasCumprodPrev[0] = 1;
    this.alphasCumprodPrev.set(this.alphasCumprod.subarray(0, n - 1), 1);
    const abar = this.alphasCumprod;
    const abarPrev = this.alphasCumprodPrev;
    this.posteriorVariance = this.betas.map((b, t) => (b * (1 - abarPrev[t]!)) / (1 - abar[t]!));
    this.posteriorLogVarianceClipped = this.posteriorVariance.map((v, t) => Math.log(t === 0 ? this.posteriorVariance[1]! : v));
    this.posteriorMeanCoef1 = this.betas.map((b, t) => (b * Math.sqrt(abarPrev[t]!)) / (1 - abar[t]!));
    this.posteriorMeanCoef2 = this.betas.map((b, t) => ((1 - abarPrev[t]!) * Math.sqrt(1 - b)) / (1 - abar[t]!));
    this.sqrtAlphasCumprod = abar.map(Math.sqrt);
    this.sqrtOneMinusAlphasCumprod = abar.map((a) => Math.sqrt(1 - a));
  }

  /** The 1000-step linear schedule PixArt-alpha and Dimba train and sample with. */
  static linear(numTimesteps = 1000, betaStart = 1e-4, betaEnd = 0.02): NoiseSchedule {
    return new NoiseSchedule(linearBetas(numTimesteps, betaStart, betaEnd));
  }

  private checkTimestep(t: number, what: string): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.numTimesteps) {
      throw new DiffusionError(`NoiseSchedule.${what}: timestep must be an integer in [0, ${this.numTimesteps}), got ${t}`);
    }
  }

  /** √ᾱ_t (DDIM's / DPM-Solver's α_t). */
  alpha(t: number): number {
    this.checkTimestep(t, 'alpha');
    return this.sqrtAlphasCumprod[t]!;
  }

  /** √(1 - ᾱ_t) (DPM-Solver's σ_t). */
  sigma(t: number): number {
    this.checkTimestep(t, 'sigma');
    return this.sqrtOneMinusAlphasCumprod[t]!;
  }

  /** λ_t = log(α_t / σ_t), half the log signal-to-noise ratio (DPM-Solver eq. 3.2). */
  lambda(t: number): number {
    this.checkTimestep(t, 'lambda');
    const abar = this.alphasCumprod[t]!;
    return 0.5 * (Math.log(abar) - Math.log1p(-abar));
  }

  /** SNR(t) = ᾱ_t / (1 - ᾱ_t) (Kingma et al. 2021). */
  snr(t: number): number {
    this.checkTimestep(t, 'snr');
    const abar = this.alphasCumprod[t]!;
    return abar / (1 - abar);
  }

  /**
   * values[t_i] for each sample i, as a [B, 1, ..., 1] tensor with `like`'s rank, dtype and device,
   * ready to broadcast against a batch. `t` holds integer timesteps [B] (int32 or int64).
   */
  gather(values: Float64Array, t: Tensor, like: Tensor): Tensor {
    if (values.length !== this.numTimesteps) {
      throw new DiffusionError(`NoiseSchedule.gather: table has ${values.length} entries, schedule has ${this.numTimesteps}`);
    }
    if (t.dtype !== 'int32' && t.dtype !== 'int64') throw new DiffusionError(`NoiseSchedule.gather: timesteps must be int32 or int64, got ${t.dtype}`);
    if (t.ndim !== 1 || like.ndim < 1 || t.shape[0] !== like.shape[0]) {
      throw new DiffusionError(`NoiseSchedule.gather: timesteps ${formatShape(t.shape)} must be [B] for a batch of shape ${formatShape(like.shape)}`);
    }
    const picked = indexSelect(this.deviceTable(values, like), 0, t);
    return reshape(picked, [like.shape[0]!, ...new Array<number>(like.ndim - 1).fill(1)]);
  }

  private deviceTable(values: Float64Array, like: Tensor): Tensor {
    let byDevice = this.deviceTables.get(values);
    if (!byDevice) {
      byDevice = new Map();
      this.deviceTables.set(values, byDevice);
    }
    const key = `${like.deviceName}/${like.dtype}`;
    let table = byDevice.get(key);
    if (!table) {
      // A cache: it outlives the T.tidy scope of the step that first needed it.
      table = keep(cast(tensor(values, { dtype: 'float64', device: like.device }), like.dtype));
      byDevice.set(key, table);
    }
    return table;
  }

  /**
   * A sample of q(x_t | x_0): √ᾱ_t x_0 + √(1 - ᾱ_t) ε (DDPM eq. 4), with t one timestep for the
   * whole batch or a [B] tensor of integer timesteps.
   */
  addNoise(x0: Tensor, noise: Tensor, t: Tensor | number): Tensor {
    if (x0.shape.length !== noise.shape.length || x0.shape.some((s, i) => s !== noise.shape[i])) {
      throw new DiffusionError(`NoiseSchedule.addNoise: noise ${formatShape(noise.shape)} must match x0 ${formatShape(x0.shape)}`);
    }
    if (typeof t === 'number') return add(mul(x0, this.alpha(t)), mul(noise, this.sigma(t)));
    return add(mul(this.gather(this.sqrtAlphasCumprod, t, x0), x0), mul(this.gather(this.sqrtOneMinusAlphasCumprod, t, x0), noise));
  }
}
