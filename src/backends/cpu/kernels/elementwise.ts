/** CPU kernels: copies, fills and elementwise arithmetic. */
import type { BinaryOp, Kernels, UnaryOp, UnaryParams } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, withOutput, writeNumbers, type NumArray } from '../access.js';
import { forEachRow } from '../strided.js';
import { hostOf } from '../storage.js';
import { gelu, geluGrad, geluTanh, geluTanhGrad, sigmoid, softplus } from './math.js';

function copy(src: Tensor, out: Tensor): void {
  const s = hostOf(src);
  const o = hostOf(out);
  if (src.dtype === out.dtype) {
    // Same element type: move raw elements (exact for every dtype, including int64 and half bits).
    if (src.isContiguous && out.isContiguous) {
      o.set(s.subarray(src.offset, src.offset + src.numel) as never, out.offset);
      return;
    }
    forEachRow(out.shape, [src.strides, out.strides], [src.offset, out.offset], (starts, n, inner) => {
      let si = starts[0]!;
      let oi = starts[1]!;
      const ss = inner[0]!;
      const os = inner[1]!;
      for (let j = 0; j < n; j++, si += ss, oi += os) o[oi] = s[si]!;
    });
    return;
  }
  writeNumbers(out, readNumbers(src));
}

function fill(out: Tensor, value: number): void {
  const o = hostOf(out);
  if (o instanceof BigInt64Array) o.fill(BigInt(Math.trunc(value)), out.offset, out.offset + out.numel);
  else withOutput(out, (dst) => dst.fill(value));
}

function arange(out: Tensor, start: number, step: number): void {
  withOutput(out, (dst) => {
    for (let i = 0; i < dst.length; i++) dst[i] = start + i * step;
  });
}

function unaryFn(op: UnaryOp, p: UnaryParams): (x: number) => number {
  switch (op) {
    case 'neg': return (x) => -x;
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'rsqrt': return (x) => 1 / Math.sqrt(x);
    case 'abs': return Math.abs;
    case 'sign': return (x) => (x > 0 ? 1 : x < 0 ? -1 : x);
    case 'floor': return Math.floor;
    case 'tanh': return Math.tanh;
    case 'sigmoid': return sigmoid;
    case 'silu': return (x) => x * sigmoid(x);
    case 'relu': return (x) => (x > 0 ? x : 0);
    case 'gelu': return gelu;
    case 'gelu_tanh': return geluTanh;
    case 'softplus': return softplus;
    case 'sin': return Math.sin;
    case 'cos': return Math.cos;
    case 'square': return (x) => x * x;
    case 'reciprocal': return (x) => 1 / x;
    case 'clamp': {
      const lo = p.min ?? -Infinity;
      const hi = p.max ?? Infinity;
      return (x) => (Number.isNaN(x) ? x : x < lo ? lo : x > hi ? hi : x);
    }
    case 'pow_scalar': {
      const e = p.exponent ?? 1;
      return e === 2 ? (x) => x * x : (x) => Math.pow(x, e);
    }
    case 'logical_not': return (x) => (x === 0 ? 1 : 0);
    case 'isnan': return (x) => (Number.isNaN(x) ? 1 : 0);
    case 'isinf': return (x) => (x === Infinity || x === -Infinity ? 1 : 0);
  }
}

/** d op(x)/dx as a function of x. */
function derivative(op: UnaryOp, p: UnaryParams): (x: number) => number {
  switch (op) {
    case 'neg': return () => -1;
    case 'exp': return Math.exp;
    case 'log': return (x) => 1 / x;
    case 'sqrt': return (x) => 0.5 / Math.sqrt(x);
    case 'rsqrt': return (x) => -0.5 / (x * Math.sqrt(x));
    case 'abs': return (x) => (x > 0 ? 1 : x < 0 ? -1 : 0);
    case 'tanh': return (x) => { const t = Math.tanh(x); return 1 - t * t; };
    case 'sigmoid': return (x) => { const s = sigmoid(x); return s * (1 - s); };
    case 'silu': return (x) => { const s = sigmoid(x); return s * (1 + x * (1 - s)); };
    case 'relu': return (x) => (x > 0 ? 1 : 0);
    case 'gelu': return geluGrad;
    case 'gelu_tanh': return geluTanhGrad;
    case 'softplus': return (x) => (x > 20 ? 1 : sigmoid(x));
    case 'sin': return Math.cos;
    case 'cos': return (x) => -Math.sin(x);
    case 'square': return (x) => 2 * x;
    case 'reciprocal': return (x) => -1 / (x * x);
    case 'clamp': {
      const lo = p.min ?? -Infinity;
      const hi = p.max ?? Infinity;
      return (x) => (x >= lo && x <= hi ? 1 : 0);
    }
    case 'pow_scalar': {
      const e = p.exponent ?? 1;
      return (x) => (e === 0 ? 0 : e * Math.pow(x, e - 1));
    }
    case 'sign': case 'floor': case 'logical_not': case 'isnan': case 'isinf':
      return () => 0;
  }
}

function unary(op: UnaryOp, x: Tensor, out: Tensor, params: UnaryParams): void {
  const f = unaryFn(op, params);
  const xs = readNumbers(x);
  withOutput(out, (dst) => {
    for (let i = 0; i < dst.length; i++) dst[i] = f(xs[i]!);
  });
}

function unaryBackward(op: UnaryOp, x: Tensor, gy: Tensor, gx: Tensor, params: UnaryParams): void {
  const d = derivative(op, params);
  const xs = readNumbers(x);
  const gs = readNumbers(gy);
  withOutput(gx, (dst) => {
    for (let i = 0; i < dst.length; i++) dst[i] = gs[i]! * d(xs[i]!);
  });
}

function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'pow': return Math.pow;
    case 'maximum': return (a, b) => (Number.isNaN(a) || a > b ? a : b);
    case 'minimum': return (a, b) => (Number.isNaN(a) || a < b ? a : b);
    case 'atan2': return Math.atan2;
    case 'eq': return (a, b) => (a === b ? 1 : 0);
    case 'ne': return (a, b) => (a !== b ? 1 : 0);
    case 'lt': return (a, b) => (a < b ? 1 : 0);
    case 'le': return (a, b) => (a <= b ? 1 : 0);
    case 'gt': return (a, b) => (a > b ? 1 : 0);
    case 'ge': return (a, b) => (a >= b ? 1 : 0);
    case 'logical_and': return (a, b) => (a !== 0 && b !== 0 ? 1 : 0);
    case 'logical_or': return (a, b) => (a !== 0 || b !== 0 ? 1 : 0);
  }
}

const isScalarView = (t: Tensor) => t.strides.every((s) => s === 0);

function binary(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor): void {
  const f = binaryFn(op);
  // Broadcast scalars are common (x * 0.5): read them once instead of expanding.
  if (isScalarView(b)) {
    const bv = readNumbers(b.withLayout([], [], b.offset))[0]!;
    const as = readNumbers(a);
    if (op === 'add') return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = as[i]! + bv; });
    if (op === 'mul') return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = as[i]! * bv; });
    return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = f(as[i]!, bv); });
  }
  const da = hostOf(a);
  const db = hostOf(b);
  if (!(a.isContiguous && b.isContiguous) && (da instanceof Float32Array || da instanceof Float64Array)
    && (db instanceof Float32Array || db instanceof Float64Array)) {
    // Broadcast or permuted float operands: walk rows of the views instead of gathering copies.
    return withOutput(out, (dst) => binaryRows(op, f, a, da, b, db, dst));
  }
  const as = readNumbers(a);
  const bs = readNumbers(b);
  switch (op) {
    case 'add': return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = as[i]! + bs[i]!; });
    case 'sub': return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = as[i]! - bs[i]!; });
    case 'mul': return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = as[i]! * bs[i]!; });
    case 'div': return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = as[i]! / bs[i]!; });
    default: return withOutput(out, (dst) => { for (let i = 0; i < dst.length; i++) dst[i] = f(as[i]!, bs[i]!); });
  }
}

function binaryRows(op: BinaryOp, f: (x: number, y: number) => number, a: Tensor, da: NumArray, b: Tensor, db: NumArray, dst: NumArray): void {
  let at = 0;
  forEachRow(a.shape, [a.strides, b.strides], [a.offset, b.offset], (starts, n, inner) => {
    let ia = starts[0]!;
    let ib = starts[1]!;
    const sa = inner[0]!;
    const sb = inner[1]!;
    switch (op) {
      case 'add': for (let j = 0; j < n; j++, ia += sa, ib += sb) dst[at++] = da[ia]! + db[ib]!; break;
      case 'sub': for (let j = 0; j < n; j++, ia += sa, ib += sb) dst[at++] = da[ia]! - db[ib]!; break;
      case 'mul': for (let j = 0; j < n; j++, ia += sa, ib += sb) dst[at++] = da[ia]! * db[ib]!; break;
      default: for (let j = 0; j < n; j++, ia += sa, ib += sb) dst[at++] = f(da[ia]!, db[ib]!);
    }
  });
}

function where(cond: Tensor, a: Tensor, b: Tensor, out: Tensor): void {
  const cs = readNumbers(cond);
  const as = readNumbers(a);
  const bs = readNumbers(b);
  withOutput(out, (dst) => {
    for (let i = 0; i < dst.length; i++) dst[i] = cs[i] ? as[i]! : bs[i]!;
  });
}

export const elementwiseKernels: Pick<Kernels, 'copy' | 'fill' | 'arange' | 'unary' | 'unaryBackward' | 'binary' | 'where'> = {
  copy, fill, arange, unary, unaryBackward, binary, where,
};
