/** Training-time draws of the diffusion time per sample. */
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { randint, randn, rand } from '../ops/random.js';
import { add, mul, sigmoid } from '../ops/elementwise.js';
import { DiffusionError } from './errors.js';

export interface DrawOptions {
  generator?: Generator;
  device?: string;
}

/** Integer timesteps uniform in [0, numTimesteps) as int32 [B] (PixArt: torch.randint(0, T, (B,))). */
export function sampleTimesteps(batch: number, numTimesteps: number, options: DrawOptions = {}): Tensor {
  if (!Number.isInteger(batch) || batch < 1) throw new DiffusionError(`sampleTimesteps: batch must be a positive integer, got ${batch}`);
  return randint(0, numTimesteps, [batch], { generator: options.generator, device: options.device });
}

export interface FlowTimeOptions extends DrawOptions {
  /** 'logit-normal' (SD3's best, default) or 'uniform'. */
  distribution?: 'logit-normal' | 'uniform';
  /** Location m and scale s of the logit-normal (SD3 eq. 19; defaults 0 and 1). */
  mean?: number;
  std?: number;
}

/**
 * Flow times t ∈ (0, 1) as float32 [B]: uniform, or logit-normal t = sigmoid(m + s u), u ~ N(0, 1),
 * whose density π(t; m, s) = exp(-(logit t - m)² / 2s²) / (s √(2π) t (1 - t)) is SD3's eq. 19.
 */
export function sampleFlowTimes(batch: number, options: FlowTimeOptions = {}): Tensor {
  if (!Number.isInteger(batch) || batch < 1) throw new DiffusionError(`sampleFlowTimes: batch must be a positive integer, got ${batch}`);
  const draw = { generator: options.generator, device: options.device };
  if ((options.distribution ?? 'logit-normal') === 'uniform') return rand([batch], draw);
  const std = options.std ?? 1;
  if (!(std > 0)) throw new DiffusionError(`sampleFlowTimes: std must be > 0, got ${std}`);
  return sigmoid(add(mul(randn([batch], draw), std), options.mean ?? 0));
}
