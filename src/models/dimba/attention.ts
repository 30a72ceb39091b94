/**
 * Attention layers of the Transformer block, with the released parameter names:
 * self-attention `attn.qkv` / `attn.proj` (+ `q_norm`/`k_norm`, + `sr`/`norm` for KV
 * compression) and cross-attention `cross_attn.q_linear` / `kv_linear` / `proj`.
 */
import * as T from '../../index.js';
import { Module, Linear, LayerNorm, Conv2d, init } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Generator } from '../../random/generator.js';

/** [B, N, C] -> [B, heads, N, C / heads]. */
function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, n, c] = x.shape as [number, number, number];
  return T.permute(T.reshape(x, [b, n, heads, c / heads]), [0, 2, 1, 3]);
}

function mergeHeads(x: Tensor): Tensor {
  const [b, h, n, d] = x.shape as [number, number, number, number];
  return T.reshape(T.permute(x, [0, 2, 1, 3]), [b, n, h * d]);
}

export interface SelfAttentionOptions {
  qkNorm: boolean;
  /** KV compression factor (1 = off) and how tokens are reduced. */
  srRatio: number;
  sampling: 'conv' | 'uniform';
}

export class SelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly qNorm: LayerNorm | null;
  readonly kNorm: LayerNorm | null;
  readonly sr: Conv2d | null;
  readonly srNorm: LayerNorm | null;

  constructor(readonly dim: number, readonly numHeads: number, readonly options: SelfAttentionOptions, generator?: Generator) {
    super();
    this.qkv = this.registerModule('qkv', new Linear(dim, dim * 3, { generator }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { generator }));
    const compress = options.srRatio > 1 && options.sampling === 'conv';
    this.sr = compress ? this.registerModule('sr', new Conv2d(dim, dim, options.srRatio, { stride: options.srRatio, groups: dim, generator })) : null;
    this.srNorm = compress ? this.registerModule('norm', new LayerNorm(dim)) : null;
    if (this.sr) {
      // Released init: an averaging convolution.
      init.constant_(this.sr.weight, 1 / options.srRatio ** 2);
      init.zeros_(this.sr.bias!);
    }
    this.qNorm = options.qkNorm ? this.registerModule('q_norm', new LayerNorm(dim)) : null;
    this.kNorm = options.qkNorm ? this.registerModule('k_norm', new LayerNorm(dim)) : null;
  }

  /** Reduces an [B, H*W, C] token grid by srRatio (KV compression). */
  private downsample(t: Tensor, h: number, w: number): Tensor {
    const r = this.options.srRatio;
    const [b, , c] = t.shape as [number, number, number];
    const grid = T.permute(T.reshape(t, [b, h, w, c]), [0, 3, 1, 2]);
    if (this.sr && this.srNorm) {
      const y = this.sr.forward(grid);
      return this.srNorm.forward(T.transpose(T.flatten(y, 2), 1, 2));
    }
    // 'uniform': every r-th token along each axis.
    // Indices on the tokens' device (a CPU index would not reach a CUDA kernel).
    const rows = T.indexSelect(grid, 2, T.arange(0, h, r, { device: grid.device }));
    const picked = T.indexSelect(rows, 3, T.arange(0, w, r, { device: grid.device }));
    return T.reshape(T.permute(picked, [0, 2, 3, 1]), [b, -1, c]);
  }

  forward(x: Tensor, hw: readonly [number, number]): Tensor {
    const [b, n, c] = x.shape as [number, number, number];
    const [q0, k0, v0] = T.chunk(T.reshape(this.qkv.forward(x), [b, n, 3, c]), 3, 2).map((t) => T.reshape(t, [b, n, c])) as [Tensor, Tensor, Tensor];
    const q = this.qNorm ? this.qNorm.forward(q0) : q0;
    let k = this.kNorm ? this.kNorm.forward(k0) : k0;
    let v = v0;
    if (this.options.srRatio > 1) {
      k = this.downsample(k, hw[0], hw[1]);
      v = this.downsample(v, hw[0], hw[1]);
    }
    const out = T.scaledDotProductAttention(splitHeads(q, this.numHeads), splitHeads(k, this.numHeads), splitHeads(v, this.numHeads));
    return this.proj.forward(mergeHeads(out));
  }
}

/**
 * Image tokens attend to caption tokens; `keyBias` [B, L] is the caption's padding as an additive
 * bias (0 for a real token, -inf for padding: T.keyPaddingBias of the caption mask, made once per
 * model forward rather than in every block), or null when every token is real.
 */
export class CrossAttention extends Module {
  readonly qLinear: Linear;
  readonly kvLinear: Linear;
  readonly proj: Linear;

  constructor(readonly dim: number, readonly numHeads: number, generator?: Generator) {
    super();
    this.qLinear = this.registerModule('q_linear', new Linear(dim, dim, { generator }));
    this.kvLinear = this.registerModule('kv_linear', new Linear(dim, dim * 2, { generator }));
    this.proj = this.registerModule('proj', new Linear(dim, dim, { generator }));
  }

  forward(x: Tensor, cond: Tensor, keyBias: Tensor | null): Tensor {
    const [b, l, c] = cond.shape as [number, number, number];
    const q = splitHeads(this.qLinear.forward(x), this.numHeads);
    const [k, v] = T.chunk(T.reshape(this.kvLinear.forward(cond), [b, l, 2, c]), 2, 2).map((t) => splitHeads(T.reshape(t, [b, l, c]), this.numHeads)) as [Tensor, Tensor];
    const out = T.scaledDotProductAttention(q, k, v, { keyBias });
    return this.proj.forward(mergeHeads(out));
  }
}
