/**
 * The PixArt-alpha style Transformer block (`blocks.{i}`): adaLN-single modulation from
 * `scale_shift_table` + the shared timestep vector, self-attention, cross-attention to the
 * caption, GELU-tanh MLP. Order of operations as released (DimbaBlock.forward):
 *   x += gate_msa * attn(norm1(x) * (1 + scale_msa) + shift_msa)
 *   x += cross_attn(x, y, mask)
 *   x += gate_mlp * mlp(norm2(x) * (1 + scale_mlp) + shift_mlp)
 */
import * as T from '../../index.js';
import { Module, LayerNorm, type Parameter } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Generator } from '../../random/generator.js';
import { SelfAttention, CrossAttention, type SelfAttentionOptions } from './attention.js';
import { Mlp, geluTanh, scaleShiftTable } from './embedders.js';
import { dropPath } from './drop-path.js';

/** x * (1 + scale) + shift (t2i_modulate). */
export function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  return T.add(T.mul(x, T.add(scale, 1)), shift);
}

export class TransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: SelfAttention;
  readonly crossAttn: CrossAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly scaleShiftTable: Parameter;

  constructor(hiddenSize: number, numHeads: number, mlpRatio: number, attention: SelfAttentionOptions,
    readonly dropPathProb: number, generator?: Generator) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(hiddenSize, { elementwiseAffine: false, eps: 1e-6 }));
    this.attn = this.registerModule('attn', new SelfAttention(hiddenSize, numHeads, attention, generator));
    this.crossAttn = this.registerModule('cross_attn', new CrossAttention(hiddenSize, numHeads, generator));
    this.norm2 = this.registerModule('norm2', new LayerNorm(hiddenSize, { elementwiseAffine: false, eps: 1e-6 }));
    this.mlp = this.registerModule('mlp', new Mlp(hiddenSize, Math.floor(hiddenSize * mlpRatio), hiddenSize, geluTanh, generator));
    this.scaleShiftTable = this.registerParameter('scale_shift_table', scaleShiftTable(6, hiddenSize, generator));
  }

  /** x [B, N, C]; y [B, L, C] caption tokens; t0 [B, 6C] from t_block; hw the token grid. */
  forward(x: Tensor, y: Tensor, t0: Tensor, captionMask: Tensor | null, hw: readonly [number, number]): Tensor {
    const [b, , c] = x.shape as [number, number, number];
    const mods = T.add(T.unsqueeze(this.scaleShiftTable, 0), T.reshape(t0, [b, 6, c]));
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = T.chunk(mods, 6, 1) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const attnOut = this.attn.forward(modulate(this.norm1.forward(x), shiftMsa, scaleMsa), hw);
    let h = T.add(x, dropPath(T.mul(gateMsa, attnOut), this.dropPathProb, this.training));
    h = T.add(h, this.crossAttn.forward(h, y, captionMask));
    const mlpOut = this.mlp.forward(modulate(this.norm2.forward(h), shiftMlp, scaleMlp));
    return T.add(h, dropPath(T.mul(gateMlp, mlpOut), this.dropPathProb, this.training));
  }
}
