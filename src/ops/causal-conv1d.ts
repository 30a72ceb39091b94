/**
 * Depthwise causal conv1d as in Mamba's mixer (nn.Conv1d with groups = channels, padding K-1,
 * output cut to the first L steps), with the optional bias and SiLU of causal_conv1d_fn fused
 * into one kernel (and one backward kernel giving the x, weight and bias gradients).
 * x [batch, dim, L]; weight [dim, K] or nn.Conv1d's depthwise [dim, 1, K]; bias [dim].
 *
 * x is read through its strides, never copied: the mixer passes a [B, D, L] view of in_proj's
 * [B, L, 2D] output (channel-last, and time-flipped for the backward direction). The output is
 * allocated in x's memory order with time running forward: for a channel-last x, [B, L, D]
 * storage returned as its [B, D, L] view, so the mixer's transpose(u, 1, 2) is contiguous. The
 * gradient of x is laid out like x including the time direction, so that the view ops x came
 * from (flip, transpose) hand back a plain contiguous gradient.
 */
import { isFloating } from '../tensor/dtype.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { contiguous, reshape } from './layout.js';

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

/**
 * An uninitialised [B, D, L] tensor laid out like x: channel-last storage [B, L, D] when x's
 * channel stride is the smaller one, otherwise [B, D, L]; time reversed only when `followFlip`
 * and x's time stride is negative.
 */
function allocLike(x: Tensor, followFlip: boolean): Tensor {
  const [batch, dim, len] = x.shape as [number, number, number];
  // A size-1 dim's stride is arbitrary; rank it so that it never decides the order.
  const sd = dim === 1 ? Infinity : Math.abs(x.strides[1]!);
  const st = len === 1 ? Infinity : Math.abs(x.strides[2]!);
  const flip = followFlip && len > 1 && x.strides[2]! < 0;
  if (!(sd < st) && !flip) return Tensor.empty([batch, dim, len], x.dtype, x.backend);
  const base = Tensor.empty(sd < st ? [batch, len, dim] : [batch, dim, len], x.dtype, x.backend);
  const [strideD, strideT] = sd < st ? [1, dim] : [len, 1];
  const view = flip ? base.withLayout([batch, dim, len], [len * dim, strideD, -strideT], (len - 1) * strideT)
    : base.withLayout([batch, dim, len], [len * dim, strideD, strideT], 0);
  // The view holds the storage; the base would otherwise keep it until collected.
  base.dispose();
  return view;
}

export function causalConv1d(x: Tensor, weight0: Tensor, bias0?: Tensor | null, activation: CausalConv1dActivation = null): Tensor {
  if (x.ndim !== 3) throw new ShapeError(`${OP}: x must be [batch, dim, L], got ${formatShape(x.shape)}`);
  const dim = x.shape[1]!;
  checkFloating('x', x, x.deviceName);
  checkFloating('weight', weight0, x.deviceName);
  const bias = bias0 ?? null;
  if (bias) {
    checkFloating('bias', bias, x.deviceName);
    if (bias.ndim !== 1 || bias.shape[0] !== dim) throw new ShapeError(`${OP}: bias must be [dim] = [${dim}], got ${formatShape(bias.shape)}`);
  }
  if (activation !== null && activation !== 'silu') {
    throw new TypeError(`${OP}: activation must be 'silu' or null, got ${JSON.stringify(activation)}`);
  }
  const silu = activation === 'silu';
  const weight = contiguous(weightRows(weight0, dim));
  const b = bias ? contiguous(bias) : null;
  // The output keeps x's dtype, as causal_conv1d_fn's does; weight and bias join in the compute type.
  const out = allocLike(x, false);
  if (out.numel > 0) x.backend.kernels.causalConv1d(x, weight, b, silu, out);
  const inputs = b ? [x, weight, b] : [x, weight];
  record(OP, inputs, [out], ([g]) => {
    const gx = allocLike(x, true);
    const gw = Tensor.empty(weight.shape, weight.dtype, weight.backend);
    const gb = b ? Tensor.empty(b.shape, b.dtype, b.backend) : null;
    x.backend.kernels.causalConv1dBackward(x, weight, b, silu, g!, gx, gw, gb);
    return gb ? [gx, gw, gb] : [gx, gw];
  }, { onceDifferentiable: true, saved: [x, weight, b] });
  return out;
}
