/** Embedding: a [numEmbeddings, embeddingDim] lookup table (torch.nn.Embedding without padding_idx/max_norm). */
import { embedding } from '../ops/indexing.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';
import { checkSize, emptyParameter, type FactoryOptions } from './factory.js';
import { normal_ } from './init.js';

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  /** noWeightDecay: decay would pull rarely seen rows toward 0 between their updates. */
  weight: Parameter;

  constructor(numEmbeddings: number, embeddingDim: number, options: FactoryOptions = {}) {
    super();
    checkSize('Embedding', 'numEmbeddings', numEmbeddings);
    checkSize('Embedding', 'embeddingDim', embeddingDim);
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = this.registerParameter('weight', emptyParameter([numEmbeddings, embeddingDim], options, { noWeightDecay: true }));
    this.resetParameters(options.generator);
  }

  /** torch's default: N(0, 1). */
  resetParameters(generator?: Generator): void {
    normal_(this.weight, 0, 1, { generator });
  }

  /** ids: int32/int64 of any shape → [...ids.shape, embeddingDim]. */
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }

  override extraRepr(): string {
    return `${this.numEmbeddings}, ${this.embeddingDim}`;
  }
}
