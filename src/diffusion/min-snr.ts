/**
 * Min-SNR-γ loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
 * Strategy", §3.4): weight the x_0-space loss by min(SNR(t), γ), SNR(t) = ᾱ_t / (1 - ᾱ_t). For other
 * targets the same weight divides by how that target's loss scales with the x_0 loss:
 *   'sample': min(SNR, γ)    'epsilon': min(SNR, γ) / SNR    'v': min(SNR, γ) / (SNR + 1)
 */
import type { Tensor } from '../tensor/tensor.js';
import { cast, reshape } from '../ops/layout.js';
import { zeros } from '../ops/create.js';
import { DiffusionError } from './errors.js';
import type { NoiseSchedule } from './schedule.js';
import type { Prediction } from './prediction.js';
import { checkIntegerTimesteps } from './loss-epsilon.js';

export function minSnrWeight(snr: number, gamma: number, prediction: Prediction): number {
  const clipped = Math.min(snr, gamma);
  switch (prediction) {
    case 'sample': return clipped;
    case 'epsilon': return clipped / snr;
    case 'v': return clipped / (snr + 1);
  }
}

/** Weights [B] (float32, on t's device) for integer timesteps t [B]; γ = 5 in the paper. */
export function minSnrWeights(schedule: NoiseSchedule, t: Tensor, options: { gamma?: number; prediction?: Prediction } = {}): Tensor {
  const gamma = options.gamma ?? 5;
  if (!(gamma > 0)) throw new DiffusionError(`minSnrWeights: gamma must be > 0, got ${gamma}`);
  checkIntegerTimesteps('minSnrWeights', t);
  if (t.ndim !== 1) throw new DiffusionError(`minSnrWeights: t must be [B], got ${t.ndim} dims`);
  const prediction = options.prediction ?? 'epsilon';
  const table = Float64Array.from({ length: schedule.numTimesteps }, (_, i) => minSnrWeight(schedule.snr(i), gamma, prediction));
  const like = zeros([t.shape[0]!], { dtype: 'float32', device: t.device });
  return reshape(cast(schedule.gather(table, t, like), 'float32'), [t.shape[0]!]);
}
