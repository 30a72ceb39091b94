/**
 * LayerNorm, RMSNorm and GroupNorm modules over the ops in src/ops/norm.ts. Scales start at 1 and
 * shifts at 0; both are marked noWeightDecay (decaying a norm's gain toward 0 fights the
 * normalisation itself).
 */
import { groupNorm, layerNorm, rmsNorm } from '../ops/norm.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';
import { checkSize, emptyParameter, type FactoryOptions } from './factory.js';
import { ones_, zeros_ } from './init.js';

function normShape(op: string, shape: number | readonly number[]): readonly number[] {
  const dims = typeof shape === 'number' ? [shape] : [...shape];
  if (dims.length === 0) throw new RangeError(`${op}: normalizedShape must have at least one dim`);
  dims.forEach((d, i) => checkSize(op, `normalizedShape[${i}]`, d));
  return Object.freeze(dims);
}

function affineParameter(shape: readonly number[], options: FactoryOptions, value: 0 | 1): Parameter {
  const p = emptyParameter(shape, options, { noWeightDecay: true });
  if (value === 1) ones_(p);
  else zeros_(p);
  return p;
}

export interface LayerNormOptions extends FactoryOptions {
  /** Default 1e-5 (torch's). */
  eps?: number;
  /** Default true. PixArt-style adaLN blocks use false and modulate with shift/scale instead. */
  elementwiseAffine?: boolean;
  /** Default true; only with elementwiseAffine. */
  bias?: boolean;
}

export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = normShape('LayerNorm', normalizedShape);
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.weight = this.registerParameter('weight', affine ? affineParameter(this.normalizedShape, options, 1) : null);
    this.bias = this.registerParameter('bias', affine && (options.bias ?? true) ? affineParameter(this.normalizedShape, options, 0) : null);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `[${this.normalizedShape.join(', ')}], eps=${this.eps}, affine=${this.weight !== null}`;
  }
}

export interface RMSNormOptions extends FactoryOptions {
  /** Default 1e-6 (as rmsNorm in src/ops/norm.ts); Mamba blocks pass their norm_epsilon. */
  eps?: number;
  /** Default true. */
  elementwiseAffine?: boolean;
}

/** y = x / sqrt(mean(x²) + eps) · weight (Zhang & Sennrich 2019), no mean subtraction, no bias. */
export class RMSNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  weight: Parameter | null;

  constructor(normalizedShape: number | readonly number[], options: RMSNormOptions = {}) {
    super();
    this.normalizedShape = normShape('RMSNorm', normalizedShape);
    this.eps = options.eps ?? 1e-6;
    const affine = options.elementwiseAffine ?? true;
    this.weight = this.registerParameter('weight', affine ? affineParameter(this.normalizedShape, options, 1) : null);
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }

  override extraRepr(): string {
    return `[${this.normalizedShape.join(', ')}], eps=${this.eps}, affine=${this.weight !== null}`;
  }
}

export interface GroupNormOptions extends FactoryOptions {
  /** Default 1e-5; the SD VAE uses 1e-6. */
  eps?: number;
  /** Default true: per-channel weight and bias. */
  affine?: boolean;
}

/** Wu & He (2018): statistics per sample over each group of numChannels/numGroups channels. */
export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  weight: Parameter | null;
  bias: Parameter | null;

  constructor(numGroups: number, numChannels: number, options: GroupNormOptions = {}) {
    super();
    checkSize('GroupNorm', 'numGroups', numGroups);
    checkSize('GroupNorm', 'numChannels', numChannels);
    if (numChannels % numGroups !== 0) throw new RangeError(`GroupNorm: numGroups=${numGroups} must divide numChannels=${numChannels}`);
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.weight = this.registerParameter('weight', affine ? affineParameter([numChannels], options, 1) : null);
    this.bias = this.registerParameter('bias', affine ? affineParameter([numChannels], options, 0) : null);
  }

  forward(x: Tensor): Tensor {
    if (x.ndim < 2 || x.shape[1] !== this.numChannels) {
      throw new RangeError(`GroupNorm: expected input [N, ${this.numChannels}, ...], got [${x.shape.join(', ')}]`);
    }
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}, eps=${this.eps}, affine=${this.weight !== null}`;
  }
}
