/**
 * Pre-norm Transformer encoder layer of the small text encoder:
 *   x += attn(norm1(x), keyPadding)
 *   x += fc2(gelu(fc1(norm2(x))))
 * Padding keys are masked out of every softmax, so the outputs at real tokens do not depend on
 * how much padding follows them.
 */
import * as T from '../../index.js';
import { Module, Linear, LayerNorm, type FactoryOptions } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ShapeError, formatShape } from '../../tensor/shape.js';

/** Multi-head self-attention with a fused qkv projection and a key-padding mask. */
export class EncoderSelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;

  constructor(readonly dim: number, readonly numHeads: number, options: FactoryOptions = {}) {
    super();
    if (dim % numHeads !== 0) throw new ShapeError(`EncoderSelfAttention: dim ${dim} is not divisible by numHeads ${numHeads}`);
    this.qkv = this.registerModule('qkv', new Linear(dim, 3 * dim, options));
    this.proj = this.registerModule('proj', new Linear(dim, dim, options));
  }

  /** x [B, L, dim]; keyPadding [B, L] bool, true for real tokens. */
  forward(x: Tensor, keyPadding: Tensor): Tensor {
    const [b, l, c] = x.shape as [number, number, number];
    const h = this.numHeads;
    // [B, L, 3, H, D] -> [3, B, H, L, D]
    const qkv = T.permute(T.reshape(this.qkv.forward(x), [b, l, 3, h, c / h]), [2, 0, 3, 1, 4]);
    const out = T.scaledDotProductAttention(T.select(qkv, 0, 0), T.select(qkv, 0, 1), T.select(qkv, 0, 2), { keyPadding });
    return this.proj.forward(T.reshape(T.permute(out, [0, 2, 1, 3]), [b, l, c]));
  }
}

export class EncoderMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number, options: FactoryOptions = {}) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(dim, hidden, options));
    this.fc2 = this.registerModule('fc2', new Linear(hidden, dim, options));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(T.gelu(this.fc1.forward(x)));
  }
}

export class TextEncoderLayer extends Module {
  readonly norm1: LayerNorm;
  readonly attn: EncoderSelfAttention;
  readonly norm2: LayerNorm;
  readonly mlp: EncoderMlp;

  constructor(dim: number, numHeads: number, mlpHidden: number, options: FactoryOptions = {}) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, { dtype: options.dtype, device: options.device }));
    this.attn = this.registerModule('attn', new EncoderSelfAttention(dim, numHeads, options));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, { dtype: options.dtype, device: options.device }));
    this.mlp = this.registerModule('mlp', new EncoderMlp(dim, mlpHidden, options));
  }

  /** x [B, L, dim]; keyPadding [B, L] bool. */
  forward(x: Tensor, keyPadding: Tensor): Tensor {
    if (x.ndim !== 3 || keyPadding.ndim !== 2 || keyPadding.shape[0] !== x.shape[0] || keyPadding.shape[1] !== x.shape[1]) {
      throw new ShapeError(`TextEncoderLayer: x must be [B, L, C] and keyPadding [B, L], got ${formatShape(x.shape)} and ${formatShape(keyPadding.shape)}`);
    }
    const h = T.add(x, this.attn.forward(this.norm1.forward(x), keyPadding));
    return T.add(h, this.mlp.forward(this.norm2.forward(h)));
  }
}
