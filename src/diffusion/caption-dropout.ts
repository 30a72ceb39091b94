/**
 * Condition dropout for classifier-free guidance training (Ho & Salimans 2022): a random fraction of
 * the batch trains on the null condition, which the model supplies (PixArt / Dimba: the learned
 * `y_embedding`, replacing the caption embedding with probability class_dropout_prob = 0.1, as
 * CaptionEmbedder.token_drop does).
 */
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { rand } from '../ops/random.js';
import { lt, where } from '../ops/elementwise.js';
import { cast, reshape } from '../ops/layout.js';
import { broadcastShapes, formatShape } from '../tensor/shape.js';
import { DiffusionError } from './errors.js';

export type DropoutChoice =
  | { probability: number; generator?: Generator }
  /** Which samples to drop, bool (or 0/1) [B]: PixArt's force_drop_ids. */
  | { mask: Tensor };

export interface DroppedConditions {
  cond: Tensor;
  /** bool [B]: true where the null condition was used. */
  dropped: Tensor;
}

/**
 * where(drop_i, nullCond, cond_i) per sample. `cond` is [B, ...]; `nullCond` broadcasts to one
 * sample's shape (e.g. [L, D] against captions [B, 1, L, D]). Gradients reach both cond and nullCond.
 */
export function dropConditions(cond: Tensor, nullCond: Tensor, choice: DropoutChoice): DroppedConditions {
  if (cond.ndim < 1) throw new DiffusionError('dropConditions: cond must be [B, ...], got a 0-d tensor');
  const batch = cond.shape[0]!;
  let dropped: Tensor;
  if ('mask' in choice) {
    const m = choice.mask;
    if (m.ndim !== 1 || m.shape[0] !== batch) throw new DiffusionError(`dropConditions: mask must be [${batch}], got ${formatShape(m.shape)}`);
    dropped = cast(m, 'bool');
  } else {
    const p = choice.probability;
    if (!(p >= 0 && p <= 1)) throw new DiffusionError(`dropConditions: probability must be in [0, 1], got ${p}`);
    dropped = lt(rand([batch], { generator: choice.generator, device: cond.device }), p);
  }
  const out = broadcastShapes('dropConditions', cond.shape, nullCond.shape);
  if (out.length !== cond.ndim || out.some((s, i) => s !== cond.shape[i])) {
    throw new DiffusionError(`dropConditions: null condition ${formatShape(nullCond.shape)} must broadcast to a sample of cond ${formatShape(cond.shape)}`);
  }
  const perSample = reshape(dropped, [batch, ...new Array<number>(cond.ndim - 1).fill(1)]);
  return { cond: where(perSample, nullCond, cond), dropped };
}
