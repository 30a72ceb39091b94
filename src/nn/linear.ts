/** Linear (y = x Wᵀ + b, W [out, in] as torch stores it) and Identity. */
import { linear } from '../ops/matmul.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';
import { checkSize, emptyParameter, type FactoryOptions } from './factory.js';
import { kaimingUniform_, uniform_ } from './init.js';

export interface LinearOptions extends FactoryOptions {
  /** Default true. */
  bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Parameter;
  bias: Parameter | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    checkSize('Linear', 'inFeatures', inFeatures, 0);
    checkSize('Linear', 'outFeatures', outFeatures, 0);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = this.registerParameter('weight', emptyParameter([outFeatures, inFeatures], options));
    this.bias = this.registerParameter('bias', (options.bias ?? true) ? emptyParameter([outFeatures], options, { noWeightDecay: true }) : null);
    this.resetParameters(options.generator);
  }

  /**
   * torch.nn.Linear's default: kaiming_uniform(a=√5), i.e. W ~ U(±1/√in), and b ~ U(±1/√in).
   * (Same distributions as torch; the values differ because the generators differ.)
   */
  resetParameters(generator?: Generator): void {
    if (this.weight.numel > 0) kaimingUniform_(this.weight, { a: Math.sqrt(5), generator });
    if (this.bias) {
      const bound = this.inFeatures > 0 ? 1 / Math.sqrt(this.inFeatures) : 0;
      uniform_(this.bias, -bound, bound, { generator });
    }
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `in=${this.inFeatures}, out=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

/** Returns its input; a placeholder where a configuration turns a layer off. */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
