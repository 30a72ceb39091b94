/** Where and how layers create their parameters. */
import { empty } from '../ops/create.js';
import type { Device } from '../tensor/device.js';
import type { DType } from '../tensor/dtype.js';
import type { Shape } from '../tensor/shape.js';
import type { Generator } from '../random/generator.js';
import { Parameter, type ParameterOptions } from './parameter.js';

export interface FactoryOptions {
  /** Parameter dtype (default float32). */
  dtype?: DType;
  /** Parameter device (default 'cpu'). */
  device?: string | Device;
  /** Generator for random initial values (default: the global default generator). */
  generator?: Generator;
}

/** A Parameter with unspecified values; the layer's initialiser fills it. */
export function emptyParameter(shape: Shape, options: FactoryOptions, paramOptions: ParameterOptions = {}): Parameter {
  return new Parameter(empty(shape, { dtype: options.dtype, device: options.device }), paramOptions);
}

/** Checks a layer size argument: an integer >= min. */
export function checkSize(op: string, name: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${op}: ${name} must be an integer >= ${min}, got ${value}`);
}
