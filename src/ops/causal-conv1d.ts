/**
 * Depthwise causal conv1d as in Mamba's mixer (nn.Conv1d with groups = channels, padding K-1,
 * output cut to the first L steps), with the optional bias and SiLU of causal_conv1d_fn.
 * x [batch, dim, L]; weight [dim, K] or nn.Conv1d's depthwise [dim, 1, K]; bias [dim].
 * The kernel does the convolution; bias and activation are ordinary ops (their gradients come
 * from those ops), so a backend only supplies the two convolution kernels.
 */
import { isFloating } from '../tensor/dtype.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { cast, contiguous, reshape } from './layout.js';
import { add, silu } from './elementwise.js';

export type CausalConv1dActivation = 'silu' | null;

const OP = 'causalConv1d';

function checkFloating(name: string, t: Tensor, device: string): void {
  if (!isFloating(t.dtype)) throw new TypeError(`${OP}: ${name} must be a floating tensor, got ${t.dtype}`);
  if (t.deviceName !== device) throw new TypeError(`${OP}: ${name} is on ${t.deviceName}, x on ${device}`);
}

/** The weight as [dim, K], accepting nn.Conv1d's depthwise [dim, 1, K]. */
function weightRows(weight: Tensor, dim: number): Tensor {
  const ok = (weight.ndim === 2 || (weight.ndim === 3 && weight.shape[1] === 1)) && weight.shape[0] === dim && weight.shape[weight.ndim - 1]! >= 1;
  if (!ok) {
    throw new ShapeError(`${OP}: weight must be [dim, K] or [dim, 1, K] with dim = ${dim} and K >= 1, got ${formatShape(weight.shape)}`);
  }
  return weight.ndim === 2 ? weight : reshape(weight, [dim, weight.shape[2]!]);
}

export function causalConv1d(x0: Tensor, weight0: Tensor, bias?: Tensor | null, activation: CausalConv1dActivation = null): Tensor {
  if (x0.ndim !== 3) throw new ShapeError(`${OP}: x must be [batch, dim, L], got ${formatShape(x0.shape)}`);
  const dim = x0.shape[1]!;
  checkFloating('x', x0, x0.deviceName);
  checkFloating('weight', weight0, x0.deviceName);
  if (bias) {
    checkFloating('bias', bias, x0.deviceName);
    if (bias.ndim !== 1 || bias.shape[0] !== dim) throw new ShapeError(`${OP}: bias must be [dim] = [${dim}], got ${formatShape(bias.shape)}`);
  }
  if (activation !== null && activation !== 'silu') {
    throw new TypeError(`${OP}: activation must be 'silu' or null, got ${JSON.stringify(activation)}`);
  }
  const x = contiguous(x0);
  const weight = contiguous(weightRows(weight0, dim));
  const out = Tensor.empty(x.shape, x.dtype, x.backend);
  x.backend.kernels.causalConv1d(x, weight, out);
  record(OP, [x, weight], [out], ([g]) => {
    const gx = Tensor.empty(x.shape, x.dtype, x.backend);
    const gw = Tensor.empty(weight.shape, weight.dtype, weight.backend);
    x.backend.kernels.causalConv1dBackward(x, weight, contiguous(g!), gx, gw);
    return [gx, gw];
  }, { onceDifferentiable: true, saved: [x, weight] });
  // The bias joins in x's dtype, so the output keeps x's dtype as causal_conv1d_fn's does.
  const biased = bias ? add(out, cast(reshape(bias, [dim, 1]), out.dtype)) : out;
  return activation === 'silu' ? silu(biased) : biased;
}
