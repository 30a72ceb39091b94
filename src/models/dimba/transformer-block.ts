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

  /**
   * x [B, N, C]; y [B, L, C] caption tokens; t0 [B, 6C] from t_block; keyBias [B, L] the caption's
   * padding as an additive bias (T.keyPaddingBias; null = every token real); hw the token grid.
   */
  forward(x: Tensor, y: Tensor, t0: Tensor, keyBias: Tensor | null, hw: readonly [number, number]): Tensor {
    const [b, , c] = x.shape as [number, number, number];
    const mods = T.add(T.unsqueeze(this.scaleShiftTable, 0), T.reshape(t0, [b, 6, c]));
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = T.chunk(mods, 6, 1) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const attnOut = this.attn.forward(T.layerNormModulate(x, shiftMsa, scaleMsa, this.norm1.eps), hw);
    let h = T.gatedResidual(x, this.droppedGate(gateMsa), attnOut);
    h = T.add(h, this.crossAttn.forward(h, y, keyBias));
    const mlpOut = this.mlp.forward(T.layerNormModulate(h, shiftMlp, scaleMlp, this.norm2.eps));
    return T.gatedResidual(h, this.droppedGate(gateMlp), mlpOut);
  }

  /**
   * Drop-path of the gated branch, applied to the gate: dropPath(gate * branch) equals
   * dropPath(gate) * branch, since the per-sample mask is [B, 1, 1] either way (the same random
   * draw, the same samples dropped and the same 1 / (1 - p) scale).
   */
  private droppedGate(gate: Tensor): Tensor {
    return dropPath(gate, this.dropPathProb, this.training);
  }
}
