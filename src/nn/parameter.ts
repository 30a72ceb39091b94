/**
 * Parameter: a leaf Tensor that a Module registers as trainable. It is a Tensor subclass so the
 * autograd engine treats it like any leaf (gradients accumulate into `.grad`, hooks fire) and ops
 * accept it unchanged; being its own class lets modules and optimizers tell it apart from buffers.
 */
import { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/lifetime.js';

export interface ParameterOptions {
  /** Default true; false freezes it (e.g. a pretrained text encoder). */
  requiresGrad?: boolean;
  /**
   * Optimizers that support it skip weight decay for this parameter. Modules set it on norm
   * scales/shifts, biases and embedding tables, whose magnitude is not a capacity to be shrunk.
   */
  noWeightDecay?: boolean;
  /**
   * Module.cast to a half-precision dtype leaves this parameter in float32 (float64 stays
   * float64). For parameters whose rounding would change the computation itself rather than add
   * noise, e.g. the Mamba state matrix A_log and skip D, which mamba_ssm keeps in float32 too.
   */
  keepFloat32?: boolean;
}

export class Parameter extends Tensor {
  noWeightDecay: boolean;
  readonly keepFloat32: boolean;

  /** Wraps `data`'s storage (shared, not copied) as a new leaf, detached from any graph `data` is in. */
  constructor(data: Tensor, options: ParameterOptions = {}) {
    super(data.storage, data.shape, data.strides, data.offset);
    this.noWeightDecay = options.noWeightDecay ?? false;
    this.keepFloat32 = options.keepFloat32 ?? false;
    this.requiresGrad_(options.requiresGrad ?? true);
    // Model state outlives any T.tidy scope it happens to be created in.
    keep(this);
  }

  override toString(): string {
    return `Parameter${super.toString().slice('Tensor'.length)}`;
  }
}
