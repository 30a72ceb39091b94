/**
 * Parameter: a leaf Tensor that a Module registers as trainable. It is a Tensor subclass so the
 * autograd engine treats it like any leaf (gradients accumulate into `.grad`, hooks fire) and ops
 * accept it unchanged; being its own class lets modules and optimizers tell it apart from buffers.
 */
import { Tensor } from '../tensor/tensor.js';

export interface ParameterOptions {
  /** Default true; false freezes it (e.g. a pretrained text encoder). */
  requiresGrad?: boolean;
  /**
   * Optimizers that support it skip weight decay for this parameter. Modules set it on norm
   * scales/shifts, biases and embedding tables, whose magnitude is not a capacity to be shrunk.
   */
  noWeightDecay?: boolean;
}

export class Parameter extends Tensor {
  noWeightDecay: boolean;

  /** Wraps `data`'s storage (shared, not copied) as a new leaf, detached from any graph `data` is in. */
  constructor(data: Tensor, options: ParameterOptions = {}) {
    super(data.storage, data.shape, data.strides, data.offset);
    this.noWeightDecay = options.noWeightDecay ?? false;
    this.requiresGrad_(options.requiresGrad ?? true);
  }

  override toString(): string {
    return `Parameter${super.toString().slice('Tensor'.length)}`;
  }
}
