/**
 * Scaled dot-product attention, q [B, H, Lq, E], k [B, H, Lk, E], v [B, H, Lk, Ev].
 * Masks: `keyPadding` bool [B, Lk] (true = real token, as the caption mask of cross-attention),
 * `mask` bool (true = attend) or additive float, broadcastable to [B, H, Lq, Lk].
 * A query whose keys are all masked gets a zero output (not NaN), so padded captions are safe.
 * Backends with a fused kernel use it (when it takes the call and the mask needs no gradient);
 * otherwise this composes matmul and softmax, which defines the semantics.
 */
import type { AttentionArgs, FusedKernels } from '../backends/backend.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { add, log, where, mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { softmax } from './softmax.js';
import { reshape, transpose, cast, expand } from './layout.js';
import { full } from './create.js';
import { record } from './record.js';

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
    // log of the 0/1 mask is the additive one (log 1 = 0, log 0 = -inf): two kernels, where
    // where(mask, 0, -inf) would also fill two scalar tensors on every call.
    const valid = kp.dtype === 'bool' ? kp : cast(kp, 'bool');
    const pad = log(cast(reshape(valid, [b!, 1, 1, lk]), q.dtype));
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
  const fused = q.backend.fused;
  if (fused.attention && fused.attentionBackward && !mask?.requiresGrad) {
    const [b, h, lq] = q.shape as [number, number, number];
    const args: AttentionArgs = { scale, mask: mask ? expand(mask, [b, h, lq, k.shape[2]!]) : null };
    if (fused.attentionSupports?.(q, k, v, args) ?? true) return fusedAttention(fused, q, k, v, args);
  }
  let scores = mul(matmul(q, transpose(k, -2, -1)), scale);
  if (mask) scores = add(scores, mask);
  return matmul(softmax(scores, -1), v);
}

/**
 * A [B, H, L, E] tensor stored as [B, L, H, E] when `like` is laid out that way (heads split
 * from [B, L, H * E] rows): the kernels write either layout, and this one makes merging heads
 * afterwards (and the gradient flowing back through the split) a free reshape.
 */
function emptyHeads(like: Tensor, e: number, dtype = like.dtype): Tensor {
  const [b, h, l] = like.shape as [number, number, number];
  const rowsFirst = h > 1 && l > 1 && like.strides[2]! > like.strides[1]!;
  if (!rowsFirst) return Tensor.empty([b, h, l, e], dtype, like.backend);
  const store = Tensor.empty([b, l, h, e], dtype, like.backend);
  const view = store.withLayout([b, h, l, e], [l * h * e, e, h * e, 1], 0);
  store.dispose();
  return view;
}

function fusedAttention(fused: FusedKernels, q: Tensor, k: Tensor, v: Tensor, args: AttentionArgs): Tensor {
  const backend = q.backend;
  const [b, h, lq] = q.shape as [number, number, number];
  const out = emptyHeads(q, v.shape[3]!);
  // Log-sum-exp of each query row (float32), what the backward recomputes the weights from.
  const lse = Tensor.empty([b, h, lq], 'float32', backend);
  fused.attention!(q, k, v, out, lse, args);
  record('scaledDotProductAttention', [q, k, v], [out], ([g]) => {
    const gq = emptyHeads(q, q.shape[3]!);
    const gk = emptyHeads(k, k.shape[3]!);
    const gv = emptyHeads(v, v.shape[3]!);
    fused.attentionBackward!(q, k, v, out, lse, g!, gq, gk, gv, args);
    return [gq, gk, gv];
  }, { onceDifferentiable: true, saved: [q, k, v, out, lse, args.mask] });
  return out;
}
