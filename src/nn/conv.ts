/** Conv2d over [N, C, H, W] (or unbatched [C, H, W]) with torch's weight layout and default init. */
import { conv2d, type Conv2dOptions, type IntPair } from '../ops/conv.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Generator } from '../random/generator.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';
import { checkSize, emptyParameter, type FactoryOptions } from './factory.js';
import { calculateFanInAndFanOut, kaimingUniform_, uniform_ } from './init.js';

export interface Conv2dLayerOptions extends FactoryOptions, Conv2dOptions {
  /** Default true. */
  bias?: boolean;
}

function pair(value: IntPair): [number, number] {
  return typeof value === 'number' ? [value, value] : [value[0], value[1]];
}

export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: readonly [number, number];
  /** Passed to conv2d unchanged (validated there, against the input). */
  readonly conv: Readonly<Conv2dOptions>;
  weight: Parameter;
  bias: Parameter | null;

  constructor(inChannels: number, outChannels: number, kernelSize: IntPair, options: Conv2dLayerOptions = {}) {
    super();
    const groups = options.groups ?? 1;
    checkSize('Conv2d', 'groups', groups);
    checkSize('Conv2d', 'inChannels', inChannels);
    checkSize('Conv2d', 'outChannels', outChannels);
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new RangeError(`Conv2d: groups=${groups} must divide inChannels=${inChannels} and outChannels=${outChannels}`);
    }
    const [kh, kw] = pair(kernelSize);
    checkSize('Conv2d', 'kernel height', kh);
    checkSize('Conv2d', 'kernel width', kw);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = [kh, kw];
    this.conv = { stride: options.stride ?? 1, padding: options.padding ?? 0, dilation: options.dilation ?? 1, groups };
    this.weight = this.registerParameter('weight', emptyParameter([outChannels, inChannels / groups, kh, kw], options));
    this.bias = this.registerParameter('bias', (options.bias ?? true) ? emptyParameter([outChannels], options, { noWeightDecay: true }) : null);
    this.resetParameters(options.generator);
  }

  /** torch's default: W ~ U(±1/√fan_in) via kaiming_uniform(a=√5), b ~ U(±1/√fan_in), fan_in = in/groups·kh·kw. */
  resetParameters(generator?: Generator): void {
    kaimingUniform_(this.weight, { a: Math.sqrt(5), generator });
    if (this.bias) {
      const bound = 1 / Math.sqrt(calculateFanInAndFanOut(this.weight).fanIn);
      uniform_(this.bias, -bound, bound, { generator });
    }
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, this.conv);
  }

  override extraRepr(): string {
    const { stride, padding, dilation, groups } = this.conv;
    return `${this.inChannels}, ${this.outChannels}, kernel=[${this.kernelSize.join(', ')}], stride=${JSON.stringify(stride)}, ` +
      `padding=${JSON.stringify(padding)}, dilation=${JSON.stringify(dilation)}, groups=${groups}, bias=${this.bias !== null}`;
  }
}
