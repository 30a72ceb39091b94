/** Input embedders of the Dimba backbone: patches, timesteps, captions, micro-conditions. */
import * as T from '../../index.js';
import { Module, Linear, Conv2d, Parameter } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ShapeError, formatShape } from '../../tensor/shape.js';
import type { Generator } from '../../random/generator.js';

/** Conv with kernel = stride = patch, flattened to tokens [B, (H/p)(W/p), hidden]. */
export class PatchEmbed extends Module {
  readonly proj: Conv2d;

  constructor(readonly patchSize: number, inChannels: number, hiddenSize: number, generator?: Generator) {
    super();
    this.proj = this.registerModule('proj', new Conv2d(inChannels, hiddenSize, patchSize, { stride: patchSize, generator }));
  }

  forward(x: Tensor): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    if (x.ndim !== 4 || h % this.patchSize !== 0 || w % this.patchSize !== 0) {
      throw new ShapeError(`PatchEmbed: input must be [B, C, H, W] with H and W multiples of ${this.patchSize}, got ${formatShape(x.shape)}`);
    }
    void c;
    const y = this.proj.forward(x);
    return T.transpose(T.flatten(y, 2), 1, 2).reshape(b, -1, y.shape[1]!);
  }
}

/** Two-layer MLP with the names timm's Mlp gives (fc1, fc2). */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(inFeatures: number, hiddenFeatures: number, outFeatures: number, private readonly act: (x: Tensor) => Tensor,
    generator?: Generator) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(inFeatures, hiddenFeatures, { generator }));
    this.fc2 = this.registerModule('fc2', new Linear(hiddenFeatures, outFeatures, { generator }));
  }

  forward(x: Tensor): Tensor {
    // GELU-tanh MLPs (the blocks' FFN, the caption projection) run as one op whose GEMMs carry the
    // GELU and its derivative in their epilogues where the backend has them (src/ops/linear-gelu.ts).
    if (this.act === geluTanh) return T.mlpGelu(x, this.fc1.weight, this.fc1.bias, this.fc2.weight, this.fc2.bias);
    return this.fc2.forward(this.act(this.fc1.forward(x)));
  }
}

export const geluTanh = (x: Tensor): Tensor => T.gelu(x, 'tanh');

/**
 * Sinusoidal embedding of (possibly fractional) timesteps: [cos(t f), sin(t f)] with
 * f_i = 10000^(-i / half), as GLIDE/DiT define it.
 */
export function timestepEmbedding(t: Tensor, dim: number, maxPeriod = 10000): Tensor {
  // float32 at least (the released code always uses float32: t * f reaches ~1000 radians, where
  // half precision would lose the phase); float64 models keep float64.
  const dtype = t.dtype === 'float64' ? 'float64' : 'float32';
  const half = Math.floor(dim / 2);
  const freqs = T.exp(T.mul(T.arange(0, half, 1, { dtype, device: t.device }), -Math.log(maxPeriod) / half));
  const args = T.mul(T.unsqueeze(T.cast(t, dtype), 1), T.unsqueeze(freqs, 0));
  let emb = T.cat([T.cos(args), T.sin(args)], -1);
  if (dim % 2) emb = T.cat([emb, T.zeros([t.shape[0]!, 1], { dtype, device: t.device })], -1);
  return emb;
}

/** Timestep MLP: `mlp.0` (256 → hidden), SiLU, `mlp.2` (hidden → hidden). */
export class TimestepEmbedder extends Module {
  readonly mlp0: Linear;
  readonly mlp2: Linear;
  private readonly mlp: Module;

  constructor(hiddenSize: number, generator?: Generator, readonly frequencySize = 256) {
    super();
    this.mlp = this.registerModule('mlp', new Module());
    this.mlp0 = this.mlp.registerModule('0', new Linear(frequencySize, hiddenSize, { generator }));
    this.mlp2 = this.mlp.registerModule('2', new Linear(hiddenSize, hiddenSize, { generator }));
  }

  forward(t: Tensor): Tensor {
    const freq = T.cast(timestepEmbedding(t, this.frequencySize), this.mlp0.weight.dtype);
    return this.mlp2.forward(T.silu(this.mlp0.forward(freq)));
  }
}

/** Embeds each of the `dims` values of s [B, dims] separately and concatenates: [B, dims * hidden]. */
export class SizeEmbedder extends TimestepEmbedder {
  embed(s: Tensor, batch: number): Tensor {
    let v = s.ndim === 1 ? T.unsqueeze(s, 1) : s;
    if (v.ndim !== 2) throw new ShapeError(`SizeEmbedder: expected [B, dims], got ${formatShape(s.shape)}`);
    if (v.shape[0] !== batch) {
      if (batch % v.shape[0]! !== 0) throw new ShapeError(`SizeEmbedder: ${v.shape[0]} rows do not tile batch ${batch}`);
      v = T.reshape(T.expand(T.unsqueeze(v, 0), [batch / v.shape[0]!, v.shape[0]!, v.shape[1]!]), [batch, v.shape[1]!]);
    }
    const dims = v.shape[1]!;
    const e = this.forward(T.reshape(v, [-1]));
    return T.reshape(e, [batch, dims * e.shape[1]!]);
  }
}

/**
 * Caption projection `y_proj` (fc1, GELU-tanh, fc2) with the learned null caption `y_embedding`
 * [tokens, channels] that replaces dropped captions (classifier-free guidance).
 */
export class CaptionEmbedder extends Module {
  readonly yProj: Mlp;
  readonly yEmbedding: Tensor;

  constructor(captionChannels: number, hiddenSize: number, readonly uncondProb: number, tokens: number, generator?: Generator) {
    super();
    this.yProj = this.registerModule('y_proj', new Mlp(captionChannels, hiddenSize, hiddenSize, geluTanh, generator));
    const init = T.div(T.randn([tokens, captionChannels], { generator }), Math.sqrt(captionChannels));
    this.yEmbedding = this.registerBuffer('y_embedding', init);
  }

  /** Replaces captions where drop[b] is true with the null caption. caption [B, L, C]. */
  dropCaptions(caption: Tensor, drop: Tensor): Tensor {
    const nullCaption = T.cast(this.yEmbedding, caption.dtype);
    return T.where(T.reshape(drop, [-1, 1, 1]), T.unsqueeze(nullCaption, 0), caption);
  }

  forward(caption: Tensor): Tensor {
    return this.yProj.forward(caption);
  }
}

/** A learned table of 6 (or 2) shift/scale/gate rows, randn / sqrt(hidden) at init. */
export function scaleShiftTable(rows: number, hiddenSize: number, generator?: Generator): Parameter {
  return new Parameter(T.div(T.randn([rows, hiddenSize], { generator }), Math.sqrt(hiddenSize)));
}
