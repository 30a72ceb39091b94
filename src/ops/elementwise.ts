/**
 * Elementwise ops. Binary ops broadcast (the kernel sees stride-0 views; the engine un-broadcasts
 * gradients). Each op's derivative is written once here, in terms of other ops.
 */
import { isFloating, promoteTypes, type DType } from '../tensor/dtype.js';
import { broadcastShapes, broadcastStrides } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { BinaryOp, UnaryOp, UnaryParams } from '../backends/backend.js';
import { record } from './record.js';
import { scalarLike } from './create.js';
import { cast, contiguous } from './layout.js';

export type TensorOrScalar = Tensor | number;

/** Float dtype to compute a float-only op in (ints and bools go to float32). */
function floatDType(dtype: DType): DType {
  return isFloating(dtype) ? dtype : 'float32';
}

const BOOL_RESULT: ReadonlySet<UnaryOp> = new Set(['logical_not', 'isnan', 'isinf']);
const NOT_DIFFERENTIABLE: ReadonlySet<UnaryOp> = new Set(['sign', 'floor', 'logical_not', 'isnan', 'isinf']);

function unary(op: UnaryOp, x: Tensor, params: UnaryParams = {}): Tensor {
  const keepsInts = op === 'neg' || op === 'abs' || op === 'sign' || op === 'clamp' || op === 'square' || op === 'relu';
  const computeType = keepsInts || BOOL_RESULT.has(op) ? x.dtype : floatDType(x.dtype);
  const input = contiguous(cast(x, computeType));
  const out = Tensor.empty(x.shape, BOOL_RESULT.has(op) ? 'bool' : computeType, x.backend);
  if (out.numel > 0) x.backend.kernels.unary(op, input, out, params);
  if (!NOT_DIFFERENTIABLE.has(op)) {
    record(op, [x], [out], ([g]) => {
      const gx = Tensor.empty(input.shape, input.dtype, input.backend);
      if (gx.numel > 0) input.backend.kernels.unaryBackward(op, input, contiguous(g!), gx, params);
      return [gx];
    }, { onceDifferentiable: true, saved: [input] });
  }
  return out;
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const abs = (x: Tensor) => unary('abs', x);
export const sign = (x: Tensor) => unary('sign', x);
export const floor = (x: Tensor) => unary('floor', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const silu = (x: Tensor) => unary('silu', x);
export const relu = (x: Tensor) => unary('relu', x);
export const sin = (x: Tensor) => unary('sin', x);
export const cos = (x: Tensor) => unary('cos', x);
export const square = (x: Tensor) => unary('square', x);
export const reciprocal = (x: Tensor) => unary('reciprocal', x);
export const softplus = (x: Tensor) => unary('softplus', x);
export const logicalNot = (x: Tensor) => unary('logical_not', x);
export const isnan = (x: Tensor) => unary('isnan', x);
export const isinf = (x: Tensor) => unary('isinf', x);

/** GELU: exact (erf) by default, or the tanh approximation PixArt's MLPs use. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  return unary('clamp', x, { min: min ?? -Infinity, max: max ?? Infinity });
}

function asTensor(v: TensorOrScalar, like: Tensor): Tensor {
  if (typeof v !== 'number') return v;
  // A Python-style scalar takes the tensor's dtype, unless an int tensor meets a fractional scalar.
  const dtype = !isFloating(like.dtype) && !Number.isInteger(v) ? 'float32' : like.dtype;
  return scalarLike(like, v, dtype === 'bool' ? 'float32' : dtype);
}

function binaryOperands(op: string, a: TensorOrScalar, b: TensorOrScalar): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') throw new TypeError(`${op}: at least one operand must be a tensor`);
  const ta = typeof a === 'number' ? asTensor(a, b as Tensor) : a;
  const tb = typeof b === 'number' ? asTensor(b, ta) : b;
  if (ta.deviceName !== tb.deviceName) throw new TypeError(`${op}: operands on different devices (${ta.deviceName} and ${tb.deviceName})`);
  return [ta, tb];
}

const COMPARISONS: ReadonlySet<BinaryOp> = new Set(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logical_and', 'logical_or']);

/** Which of (a, b, out) a binary op's backward reads. */
type Saves = readonly ('a' | 'b' | 'out')[];

function binary(op: BinaryOp, a0: TensorOrScalar, b0: TensorOrScalar,
  backward?: (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor | null, Tensor | null], saves: Saves = []): Tensor {
  const [ta, tb] = binaryOperands(op, a0, b0);
  let computeType = promoteTypes(ta.dtype, tb.dtype);
  if (op === 'div' || op === 'pow' || op === 'atan2') computeType = floatDType(computeType);
  const a = cast(ta, computeType);
  const b = cast(tb, computeType);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = Tensor.empty(shape, COMPARISONS.has(op) ? 'bool' : computeType, a.backend);
  if (out.numel > 0) {
    a.backend.kernels.binary(op,
      a.withLayout(shape, broadcastStrides(a.shape, a.strides, shape), a.offset),
      b.withLayout(shape, broadcastStrides(b.shape, b.strides, shape), b.offset), out);
  }
  if (backward) {
    const named = { a, b, out };
    record(op, [a, b], [out], ([g]) => backward(g!, a, b, out), { saved: saves.map((k) => named[k]) });
  }
  return out;
}

export function add(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return binary('add', a, b, (g) => [g, g]);
}

export function sub(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return binary('sub', a, b, (g) => [g, neg(g)]);
}

export function mul(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return binary('mul', a, b, (g, x, y) => [mul(g, y), mul(g, x)], ['a', 'b']);
}

export function div(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return binary('div', a, b, (g, x, y, out) => {
    const gx = div(g, y);
    return [gx, neg(mul(gx, out))];
  }, ['b', 'out']);
}

/** a ** b elementwise; a scalar exponent uses the cheaper unary form. */
export function pow(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (typeof b === 'number' && typeof a !== 'number') return unary('pow_scalar', a, { exponent: b });
  return binary('pow', a, b, (g, x, y, out) => [
    mul(g, mul(y, pow(x, sub(y, 1)))),
    mul(g, mul(out, log(x))),
  ], ['a', 'b', 'out']);
}

export function maximum(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return binary('maximum', a, b, (g, x, y) => splitTies(g, x, y, 'gt'), ['a', 'b']);
}

export function minimum(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return binary('minimum', a, b, (g, x, y) => splitTies(g, x, y, 'lt'), ['a', 'b']);
}

/** Gradient of max/min: to the winner, split evenly on ties (as PyTorch does). */
function splitTies(g: Tensor, x: Tensor, y: Tensor, wins: 'gt' | 'lt'): [Tensor, Tensor] {
  const xWins = cast(binary(wins, x, y), g.dtype);
  const tie = mul(cast(binary('eq', x, y), g.dtype), 0.5);
  return [mul(g, add(xWins, tie)), mul(g, sub(sub(1, xWins), tie))];
}

export function atan2(a: TensorOrScalar, b: TensorOrScalar): Tensor {
  return binary('atan2', a, b, (g, y, x) => {
    const r2 = add(square(x), square(y));
    return [mul(g, div(x, r2)), mul(g, div(neg(y), r2))];
  }, ['a', 'b']);
}

export const eq = (a: TensorOrScalar, b: TensorOrScalar) => binary('eq', a, b);
export const ne = (a: TensorOrScalar, b: TensorOrScalar) => binary('ne', a, b);
export const lt = (a: TensorOrScalar, b: TensorOrScalar) => binary('lt', a, b);
export const le = (a: TensorOrScalar, b: TensorOrScalar) => binary('le', a, b);
export const gt = (a: TensorOrScalar, b: TensorOrScalar) => binary('gt', a, b);
export const ge = (a: TensorOrScalar, b: TensorOrScalar) => binary('ge', a, b);
export const logicalAnd = (a: TensorOrScalar, b: TensorOrScalar) => binary('logical_and', a, b);
export const logicalOr = (a: TensorOrScalar, b: TensorOrScalar) => binary('logical_or', a, b);

/** cond ? a : b, broadcasting all three. */
export function where(cond: Tensor, a0: TensorOrScalar, b0: TensorOrScalar): Tensor {
  const [ta, tb] = binaryOperands('where', a0, b0);
  const dtype = promoteTypes(ta.dtype, tb.dtype);
  const a = cast(ta, dtype);
  const b = cast(tb, dtype);
  const c = cast(cond, 'bool');
  const shape = broadcastShapes('where', c.shape, a.shape, b.shape);
  const out = Tensor.empty(shape, dtype, a.backend);
  const view = (t: Tensor) => t.withLayout(shape, broadcastStrides(t.shape, t.strides, shape), t.offset);
  if (out.numel > 0) a.backend.kernels.where(view(c), view(a), view(b), out);
  record('where', [a, b], [out], ([g]) => {
    const zero = scalarLike(g!, 0);
    return [where(c, g!, zero), where(c, zero, g!)];
  }, { saved: [c] });
  return out;
}

/** a + alpha * b, a common fused-looking form (alpha defaults to 1). */
export function addScaled(a: Tensor, b: Tensor, alpha: number): Tensor {
  return add(a, mul(b, alpha));
}
