/** T2IFinalLayer: LayerNorm (no affine), shift/scale from `scale_shift_table` + t, then a linear map to patches. */
import * as T from '../../index.js';
import { Module, Linear, LayerNorm, type Parameter } from '../../nn/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Generator } from '../../random/generator.js';
import { scaleShiftTable } from './embedders.js';

export class FinalLayer extends Module {
  readonly normFinal: LayerNorm;
  readonly linear: Linear;
  readonly scaleShiftTable: Parameter;

  constructor(hiddenSize: number, patchSize: number, outChannels: number, generator?: Generator) {
    super();
    this.normFinal = this.registerModule('norm_final', new LayerNorm(hiddenSize, { elementwiseAffine: false, eps: 1e-6 }));
    this.linear = this.registerModule('linear', new Linear(hiddenSize, patchSize * patchSize * outChannels, { generator }));
    this.scaleShiftTable = this.registerParameter('scale_shift_table', scaleShiftTable(2, hiddenSize, generator));
  }

  /** x [B, N, C], t [B, C] (the timestep embedding before t_block). */
  forward(x: Tensor, t: Tensor): Tensor {
    const mods = T.add(T.unsqueeze(this.scaleShiftTable, 0), T.unsqueeze(t, 1));
    const [shift, scale] = T.chunk(mods, 2, 1) as [Tensor, Tensor];
    return this.linear.forward(T.layerNormModulate(x, shift, scale, this.normFinal.eps));
  }
}
