/**
 * Parameter initialisation as the released Dimba.__init__ leaves it:
 *  1. `initialize()`: every Linear gets xavier_uniform weights and zero bias; the patch conv is
 *     xavier over its [out, in*p*p] view; timestep, t_block, micro-condition and caption MLP
 *     weights N(0, 0.02); cross-attention output projections and the final linear layer zero.
 *  2. `_init_weights` (mamba_ssm's, applied to every module): each `out_proj.weight` (Mamba
 *     mixers) and `fc2.weight` (every Mlp: Transformer MLPs and the caption projection) is redrawn
 *     kaiming_uniform(a=√5) and divided by √(number of Mamba blocks).
 * One deliberate difference: step 1 also overwrites mamba_ssm's dt_proj initialisation (weight
 * U(±dt_rank^-½), bias = softplus⁻¹ of log-uniform dt in [1e-3, 0.1]) with xavier / zero, which
 * makes every initial step size softplus(0) ≈ 0.69. We keep mamba_ssm's dt_proj init unless
 * `releasedDtInit` asks for the released behaviour.
 */
import { Linear, init, assign_, type Module } from '../../nn/index.js';
import type { Generator } from '../../random/generator.js';
import * as T from '../../index.js';
import type { Dimba } from './model.js';
import { Mlp } from './embedders.js';
import { BiMambaMixer } from './mamba.js';

export function initializeAsReleased(model: Dimba, generator: Generator, options: { releasedDtInit: boolean }): void {
  const dtProjs = new Set<Module>();
  for (const m of model.mambaBlocks) {
    dtProjs.add(m.mixer.dtProj);
    dtProjs.add(m.mixer.dtProjB);
  }
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Linear)) continue;
    if (dtProjs.has(m) && !options.releasedDtInit) continue;
    init.xavierUniform_(m.weight, { generator });
    if (m.bias) init.zeros_(m.bias);
  }
  const patch = model.xEmbedder.proj.weight;
  const [out, ...rest] = patch.shape as [number, ...number[]];
  const fanIn = rest.reduce((a, b) => a * b, 1);
  const bound = Math.sqrt(6 / (fanIn + out));
  assign_(patch, T.uniform(patch.shape, -bound, bound, { generator }));

  const small = [model.tEmbedder.mlp0, model.tEmbedder.mlp2, model.tBlock, model.yEmbedder.yProj.fc1, model.yEmbedder.yProj.fc2];
  if (model.csizeEmbedder && model.arEmbedder) {
    small.push(model.csizeEmbedder.mlp0, model.csizeEmbedder.mlp2, model.arEmbedder.mlp0, model.arEmbedder.mlp2);
  }
  for (const l of small) init.normal_(l.weight, 0, 0.02, { generator });
  for (const block of model.blocks) {
    init.zeros_(block.crossAttn.proj.weight);
    init.zeros_(block.crossAttn.proj.bias!);
  }
  init.zeros_(model.finalLayer.linear.weight);
  init.zeros_(model.finalLayer.linear.bias!);

  // mamba_ssm's GPT-2 style rescaling of residual-branch outputs, by the number of Mamba blocks.
  const nLayer = Math.max(model.mambaBlocks.length, 1);
  for (const [, m] of model.namedModules()) {
    const target = m instanceof BiMambaMixer ? m.outProj.weight : m instanceof Mlp ? m.fc2.weight : null;
    if (!target) continue;
    init.kaimingUniform_(target, { a: Math.sqrt(5), generator });
    assign_(target, T.div(target, Math.sqrt(nLayer)));
  }
}
