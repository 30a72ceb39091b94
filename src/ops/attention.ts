/**
 * Scaled dot-product attention, q [B, H, Lq, E], k [B, H, Lk, E], v [B, H, Lk, Ev].
 * Masks: `keyPadding` bool [B, Lk] (true = real token, as the caption mask of cross-attention),
 * `mask` bool (true = attend) or additive float, broadcastable to [B, H, Lq, Lk].
 * A query whose keys are all masked gets a zero output (not NaN), so padded captions are safe.
 * Backends with a fused kernel use it; otherwise this composes matmul and softmax.
 */
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { add, where, mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { softmax } from './softmax.js';
import { reshape, transpose, cast } from './layout.js';
import { full } from './create.js';

export interface AttentionOptions {
  mask?: Tensor | null;
  keyPadding?: Tensor | null;
  /** Defaults to 1/sqrt(E). */
  scale?: number;
}

/** Folds the boolean and additive masks into one additive float mask (or null). */
export function additiveMask(q: Tensor, lk: number, options: AttentionOptions): Tensor | null {
  const [b] = q.shape;
  let mask: Tensor | null = null;
  if (options.mask) {
    const m = options.mask;
    mask = m.dtype === 'bool' ? where(m, 0, full([], -Infinity, { dtype: q.dtype, device: q.device })) : cast(m, q.dtype);
  }
  if (options.keyPadding) {
    const kp = options.keyPadding;
    if (kp.ndim !== 2 || kp.shape[0] !== b || kp.shape[1] !== lk) {
      throw new ShapeError(`attention: keyPadding must be [batch=${b}, keys=${lk}], got ${formatShape(kp.shape)}`);
    }
    const pad = where(reshape(cast(kp, 'bool'), [b!, 1, 1, lk]), 0, full([], -Infinity, { dtype: q.dtype, device: q.device }));
    mask = mask ? add(mask, pad) : pad;
  }
  return mask;
}

export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new ShapeError(`attention: q, k, v must be [B, H, L, E]; got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`);
  }
  const e = q.shape[3]!;
  if (k.shape[3] !== e || k.shape[2] !== v.shape[2] || k.shape[0] !== q.shape[0] || k.shape[1] !== q.shape[1]) {
    throw new ShapeError(`attention: incompatible q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`);
  }
  const scale = options.scale ?? 1 / Math.sqrt(e);
  const mask = additiveMask(q, k.shape[2]!, options);
  let scores = mul(matmul(q, transpose(k, -2, -1)), scale);
  if (mask) scores = add(scores, mask);
  return matmul(softmax(scores, -1), v);
}
