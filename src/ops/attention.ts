/**
 * Scaled dot-product attention, q [B, H, Lq, E], k [B, H, Lk, E], v [B, H, Lk, Ev].
 * Masks: `keyPadding` bool [B, Lk] (true = real token, as the caption mask of cross-attention),
 * `keyBias` its additive form [B, Lk] (0 = real token, -inf = padding; keyPaddingBias makes it),
 * `mask` bool (true = attend) or additive float, broadcastable to [B, H, Lq, Lk].
 * A query whose keys are all masked gets a zero output (not NaN), so padded captions are safe.
 * Backends with a fused kernel use it (when it takes the call and the mask needs no gradient);
 * otherwise this composes matmul and softmax, which defines the semantics.
 */
import type { AttentionArgs, FusedKernels } from '../backends/backend.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { isFloating, type DType } from '../tensor/dtype.js';
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
  /**
   * Key padding already in additive form: [B, Lk] of a floating dtype, 0 for a real key and -inf
   * for padding (keyPaddingBias(keyPadding, q.dtype) makes it). Gives the results keyPadding
   * gives, without converting the mask on every call: a model whose blocks all attend to one
   * caption converts it once per forward. Of q's dtype it costs no kernel here (another dtype is
   * cast per call). Not together with keyPadding.
   */
  keyBias?: Tensor | null;
  /** Defaults to 1/sqrt(E). */
  scale?: number;
}

/**
 * The additive key bias [B, Lk] of `dtype` for a key-padding mask [B, Lk] (true or nonzero = real
 * token): 0 where real, -inf where padding, as `keyBias` takes it.
 */
export function keyPaddingBias(keyPadding: Tensor, dtype: DType): Tensor {
  if (keyPadding.ndim !== 2) throw new ShapeError(`keyPaddingBias: keyPadding must be [batch, keys], got ${formatShape(keyPadding.shape)}`);
  if (!isFloating(dtype)) throw new TypeError(`keyPaddingBias: the bias dtype must be floating, got ${dtype}`);
  const valid = keyPadding.dtype === 'bool' ? keyPadding : cast(keyPadding, 'bool');
  // log of the 0/1 mask is the additive one (log 1 = 0, log 0 = -inf): two kernels, where
  // where(mask, 0, -inf) would also fill two scalar tensors.
  return log(cast(valid, dtype));
}

/** keyBias checked against q and k, as [B, 1, 1, Lk] of q's dtype. */
function keyBiasMask(q: Tensor, lk: number, keyBias: Tensor): Tensor {
  const b = q.shape[0]!;
  if (keyBias.ndim !== 2 || keyBias.shape[0] !== b || keyBias.shape[1] !== lk) {
    throw new ShapeError(`attention: keyBias must be [batch=${b}, keys=${lk}], got ${formatShape(keyBias.shape)}`);
  }
  if (!isFloating(keyBias.dtype)) {
    throw new TypeError(`attention: keyBias must be a floating additive bias (0 or -inf), got dtype ${keyBias.dtype}; pass a boolean mask as keyPadding`);
  }
  if (keyBias.backend !== q.backend) throw new TypeError(`attention: keyBias is on ${keyBias.deviceName}, q on ${q.deviceName}`);
  return reshape(cast(keyBias, q.dtype), [b, 1, 1, lk]);
}

/** Folds the boolean and additive masks into one additive float mask (or null). */
export function additiveMask(q: Tensor, lk: number, options: AttentionOptions): Tensor | null {
  const [b] = q.shape;
  let mask: Tensor | null = null;
  if (options.mask) {
    const m = options.mask;
    mask = m.dtype === 'bool' ? where(m, 0, full([], -Infinity, { dtype: q.dtype, device: q.device })) : cast(m, q.dtype);
  }
  if (options.keyPadding && options.keyBias) {
    throw new TypeError('attention: keyPadding and keyBias are two forms of the same mask; pass one');
  }
  let keys: Tensor | null = null;
  if (options.keyPadding) {
    const kp = options.keyPadding;
    if (kp.ndim !== 2 || kp.shape[0] !== b || kp.shape[1] !== lk) {
      throw new ShapeError(`attention: keyPadding must be [batch=${b}, keys=${lk}], got ${formatShape(kp.shape)}`);
    }
    keys = reshape(keyPaddingBias(kp, q.dtype), [b!, 1, 1, lk]);
  } else if (options.keyBias) {
    keys = keyBiasMask(q, lk, options.keyBias);
  }
  if (keys) mask = mask ? add(mask, keys) : keys;
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
