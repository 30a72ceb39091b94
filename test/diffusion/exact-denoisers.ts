/**
 * Data distributions whose denoisers are known in closed form, for testing samplers without a
 * trained model. For a mixture of diagonal Gaussians Σ_k w_k N(μ_k, diag(s_k²)) and x_t = a x_0 + σ ε:
 *   x_t | k ~ N(a μ_k, diag(a² s_k² + σ²)),  E[x_0 | x_t, k] = μ_k + a s_k² (x_t - a μ_k) / (a² s_k² + σ²),
 *   E[x_0 | x_t] = Σ_k P(k | x_t) E[x_0 | x_t, k],  E[ε | x_t] = (x_t - a E[x_0 | x_t]) / σ.
 * These are the exact minimisers of the ε-, v-, x_0- and flow-velocity regression losses.
 */
import { Tensor, tensor, diffusion } from '../../src/index.js';

export interface Component {
  weight: number;
  mean: readonly number[];
  std: readonly number[];
}

export class GaussianMixture {
  readonly dim: number;

  constructor(readonly components: readonly Component[]) {
    this.dim = components[0]!.mean.length;
  }

  /** E[x_0 | x_t] for one sample x (length dim). */
  posteriorMean(x: ArrayLike<number>, a: number, sigma: number): Float64Array {
    const d = this.dim;
    const logPost = this.components.map((c) => {
      let lp = Math.log(c.weight);
      for (let j = 0; j < d; j++) {
        const v = a * a * c.std[j]! ** 2 + sigma * sigma;
        lp += -0.5 * Math.log(2 * Math.PI * v) - (x[j]! - a * c.mean[j]!) ** 2 / (2 * v);
      }
      return lp;
    });
    const top = Math.max(...logPost);
    const w = logPost.map((l) => Math.exp(l - top));
    const total = w.reduce((p, q) => p + q, 0);
    const out = new Float64Array(d);
    this.components.forEach((c, k) => {
      for (let j = 0; j < d; j++) {
        const s2 = c.std[j]! ** 2;
        const cond = c.mean[j]! + (a * s2 * (x[j]! - a * c.mean[j]!)) / (a * a * s2 + sigma * sigma);
        out[j] += (w[k]! / total) * cond;
      }
    });
    return out;
  }

  mean(): number[] {
    return Array.from({ length: this.dim }, (_, j) => this.components.reduce((m, c) => m + c.weight * c.mean[j]!, 0));
  }

  /** Σ_k w_k (diag(s_k²) + μ_k μ_kᵀ) - m mᵀ, row-major dim × dim. */
  covariance(): number[][] {
    const m = this.mean();
    return Array.from({ length: this.dim }, (_, i) => Array.from({ length: this.dim }, (_, j) => {
      let e = 0;
      for (const c of this.components) e += c.weight * ((i === j ? c.std[i]! ** 2 : 0) + c.mean[i]! * c.mean[j]!);
      return e - m[i]! * m[j]!;
    }));
  }
}

type Output = 'epsilon' | 'v' | 'sample';

/** Picks the data distribution of sample i from the first value of its condition row. */
export type Pick = (condValue: number) => GaussianMixture;

/**
 * Applies `f` to each row of a [B, D] tensor with that row's time and distribution, returning a
 * float64 [B, D] tensor. `cond` is [B, k]; its first column selects the distribution.
 */
function rowwise(xt: Tensor, t: Tensor, cond: Tensor, pick: Pick,
  f: (row: Float64Array, time: number, dist: GaussianMixture) => Float64Array): Tensor {
  const [b, d] = [xt.shape[0]!, xt.shape[1]!];
  const xs = xt.toFloat64Array();
  const ts = t.toFloat64Array();
  const cs = cond.toFloat64Array();
  const k = cond.numel / b;
  const out = new Float64Array(b * d);
  for (let i = 0; i < b; i++) out.set(f(xs.subarray(i * d, (i + 1) * d), ts[i]!, pick(cs[i * k]!)), i * d);
  return tensor(out, { dtype: 'float64', shape: [b, d] });
}

/** ε-, v- or x_0-prediction oracle for a VP schedule. */
export function vpDenoiser(schedule: diffusion.NoiseSchedule, pick: Pick, output: Output = 'epsilon') {
  return (xt: Tensor, t: Tensor, cond: Tensor): Tensor => rowwise(xt, t, cond, pick, (x, time, dist) => {
    if (!Number.isInteger(time)) throw new Error(`vpDenoiser: non-integer timestep ${time}`);
    const a = schedule.alpha(time);
    const s = schedule.sigma(time);
    const x0 = dist.posteriorMean(x, a, s);
    return x0.map((v, j) => {
      const eps = (x[j]! - a * v) / s;
      return output === 'epsilon' ? eps : output === 'v' ? a * eps - s * v : v;
    });
  });
}

/** Velocity oracle E[ε - x_0 | x_σ] for x_σ = (1 - σ) x_0 + σ ε, with model time σ · 1000. */
export function flowDenoiser(pick: Pick) {
  return (xt: Tensor, t: Tensor, cond: Tensor): Tensor => rowwise(xt, t, cond, pick, (x, time, dist) => {
    const sigma = time / 1000;
    const x0 = dist.posteriorMean(x, 1 - sigma, sigma);
    return x0.map((v, j) => (x[j]! - (1 - sigma) * v) / sigma - v);
  });
}

/** Sample mean and covariance of a [N, D] tensor. */
export function moments(samples: Tensor): { mean: number[]; cov: number[][] } {
  const [n, d] = [samples.shape[0]!, samples.shape[1]!];
  const x = samples.toFloat64Array();
  const mean = Array.from({ length: d }, (_, j) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i * d + j]!;
    return s / n;
  });
  const cov = Array.from({ length: d }, (_, j) => Array.from({ length: d }, (_, k) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += (x[i * d + j]! - mean[j]!) * (x[i * d + k]! - mean[k]!);
    return s / (n - 1);
  }));
  return { mean, cov };
}
