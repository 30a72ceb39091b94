/**
 * Launchers for elementwise.cu: unary (+ backward), broadcasting binary ops and where. Each plans
 * its layout (layout.ts planMap): a vector kernel along a contiguous or broadcast innermost dim
 * where one exists for the op and dtype, else a strided kernel with 32-bit indexing, else (past
 * int32 offsets) the 64-bit kernels.
 */
import type { BinaryOp, Kernels, UnaryOp, UnaryParams } from '../../backend.js';
import { itemSize } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { mergeDims, planItems, planMap, putDims, putMap, putRows, putStrides, type MapOperand, type RowsPlan, type StridedPlan } from '../layout.js';
import type { KernelParams } from '../params.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { contiguousOn } from './copy.js';
import { DTYPE_SUFFIX, ELEMENTWISE_MODULE } from './source.js';

/** Op codes: positions here are the `op` values elementwise.cu switches on. */
export const UNARY_OPS: readonly UnaryOp[] = [
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sign', 'tanh', 'sigmoid', 'silu', 'relu', 'gelu', 'gelu_tanh',
  'softplus', 'sin', 'cos', 'square', 'reciprocal', 'clamp', 'pow_scalar', 'floor', 'logical_not', 'isnan', 'isinf',
];
export const BINARY_OPS: readonly BinaryOp[] = [
  'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'atan2',
  'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logical_and', 'logical_or',
];
/** Ops and dtypes with vector kernels (elementwise.cu DIMBA_ROWS_UNARY / DIMBA_ROWS_BINARY). */
export const ROWS_UNARY: ReadonlySet<UnaryOp> = new Set(['neg', 'exp', 'sqrt', 'rsqrt', 'sigmoid', 'silu', 'gelu', 'gelu_tanh', 'softplus', 'square']);
export const ROWS_BINARY: ReadonlySet<BinaryOp> = new Set(['add', 'sub', 'mul', 'div', 'maximum', 'minimum']);
export const ROWS_DTYPES: ReadonlySet<string> = new Set(['float32', 'bfloat16', 'float16']);
const PREDICATES: ReadonlySet<UnaryOp> = new Set(['logical_not', 'isnan', 'isinf']);
const COMPARISONS: ReadonlySet<BinaryOp> = new Set(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logical_and', 'logical_or']);

function opCode<T>(table: readonly T[], op: T): number {
  const i = table.indexOf(op);
  if (i < 0) throw new TypeError(`no CUDA elementwise kernel for op '${String(op)}'`);
  return i;
}

/** clamp's (min, max) or pow_scalar's exponent, as the kernels' p0 and p1. */
function scalars(op: UnaryOp, params: UnaryParams): [number, number] {
  if (op === 'clamp') return [params.min ?? -Infinity, params.max ?? Infinity];
  if (op === 'pow_scalar') return [params.exponent ?? 1, 0];
  return [0, 0];
}

function requireContiguous(op: string, name: string, t: Tensor): void {
  if (!t.isContiguous) throw new TypeError(`${op}: CUDA kernel needs a contiguous ${name}, got strides [${t.strides.join(', ')}]`);
}

function requireSameDType(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype) throw new TypeError(`${op}: CUDA kernel got ${a.dtype} and ${b.dtype}; the op layer casts operands to one dtype first`);
}

function operand(t: Tensor): MapOperand {
  return { strides: t.strides, address: addressOf(t), bytes: itemSize(t.dtype) };
}

/** The plan, with a rows plan turned strided when the op has no vector kernel. */
function plan(shape: readonly number[], operands: readonly Tensor[], vector: boolean, op: string): RowsPlan | StridedPlan | null {
  const p = planMap(shape, operands.map(operand), op);
  if (p.kind === 'wide') return null;
  if (p.kind === 'rows' && !vector) return { kind: 'strided', layout: p.layout };
  return p;
}

/** Writes Map then Rows or n, and returns the grid for the plan. */
function putPlan(rt: CudaRuntime, p: KernelParams, pl: RowsPlan | StridedPlan, n: number): number {
  putMap(p, pl.layout);
  if (pl.kind === 'rows') putRows(p, pl);
  else p.i64(n);
  return rt.gridFor(planItems(pl, n));
}

export function elementwiseKernels(rt: CudaRuntime): Pick<Kernels, 'unary' | 'unaryBackward' | 'binary' | 'where'> {
  return {
    unary(op, x0, out, params) {
      const n = out.numel;
      if (n === 0) return;
      requireContiguous(op, 'output', out);
      const pred = PREDICATES.has(op);
      if (!pred) requireSameDType(op, x0, out);
      else if (out.dtype !== 'bool') throw new TypeError(`${op}: CUDA kernel writes bool, got a ${out.dtype} output`);
      const [p0, p1] = scalars(op, params);
      const code = opCode(UNARY_OPS, op);
      const pl = plan(out.shape, [out, x0], !pred && ROWS_UNARY.has(op) && ROWS_DTYPES.has(x0.dtype), op);
      if (pl) {
        const p = rt.params.begin().i32(code);
        const grid = putPlan(rt, p, pl, n);
        p.ptr(addressOf(out)).ptr(addressOf(x0));
        if (pl.kind === 'strided') p.f64(p0).f64(p1);
        rt.launch(rt.fn(ELEMENTWISE_MODULE, `${pred ? 'unary_pred' : 'unary'}_${pl.kind}_${DTYPE_SUFFIX[x0.dtype]}`), grid, 256);
        return;
      }
      const x = contiguousOn(rt, x0);
      rt.params.begin().i32(code).ptr(addressOf(x)).ptr(addressOf(out)).i64(n).f64(p0).f64(p1);
      rt.launch(rt.fn(ELEMENTWISE_MODULE, `${pred ? 'unary_pred' : 'unary'}_${DTYPE_SUFFIX[x.dtype]}`), rt.gridFor(n), 256);
      if (x !== x0) x.dispose();
    },

    unaryBackward(op, x0, gy0, gx, params) {
      const n = gx.numel;
      if (n === 0) return;
      requireContiguous(`${op} backward`, 'gradient output', gx);
      requireSameDType(`${op} backward`, x0, gx);
      requireSameDType(`${op} backward`, gy0, gx);
      const [p0, p1] = scalars(op, params);
      const code = opCode(UNARY_OPS, op);
      const pl = plan(gx.shape, [gx, x0, gy0], ROWS_UNARY.has(op) && ROWS_DTYPES.has(gx.dtype), `${op} backward`);
      if (pl) {
        const p = rt.params.begin().i32(code);
        const grid = putPlan(rt, p, pl, n);
        p.ptr(addressOf(gx)).ptr(addressOf(x0)).ptr(addressOf(gy0));
        if (pl.kind === 'strided') p.f64(p0).f64(p1);
        rt.launch(rt.fn(ELEMENTWISE_MODULE, `unary_backward_${pl.kind}_${DTYPE_SUFFIX[gx.dtype]}`), grid, 256);
        return;
      }
      const x = contiguousOn(rt, x0);
      const gy = contiguousOn(rt, gy0);
      rt.params.begin().i32(code).ptr(addressOf(x)).ptr(addressOf(gy)).ptr(addressOf(gx)).i64(n).f64(p0).f64(p1);
      rt.launch(rt.fn(ELEMENTWISE_MODULE, `unary_backward_${DTYPE_SUFFIX[x.dtype]}`), rt.gridFor(n), 256);
      if (x !== x0) x.dispose();
      if (gy !== gy0) gy.dispose();
    },

    binary(op, a, b, out) {
      const n = out.numel;
      if (n === 0) return;
      requireContiguous(op, 'output', out);
      requireSameDType(op, a, b);
      const cmp = COMPARISONS.has(op);
      if (cmp ? out.dtype !== 'bool' : out.dtype !== a.dtype) {
        throw new TypeError(`${op}: CUDA kernel got a ${out.dtype} output for ${a.dtype} operands`);
      }
      const code = opCode(BINARY_OPS, op);
      const pl = plan(out.shape, [out, a, b], !cmp && ROWS_BINARY.has(op) && ROWS_DTYPES.has(a.dtype), op);
      if (pl) {
        const p = rt.params.begin().i32(code);
        const grid = putPlan(rt, p, pl, n);
        p.ptr(addressOf(out)).ptr(addressOf(a)).ptr(addressOf(b));
        rt.launch(rt.fn(ELEMENTWISE_MODULE, `${cmp ? 'binary_cmp' : 'binary'}_${pl.kind}_${DTYPE_SUFFIX[a.dtype]}`), grid, 256);
        return;
      }
      const layout = mergeDims(out.shape, [a.strides, b.strides], op);
      const p = rt.params.begin().i32(code);
      putDims(p, layout.sizes);
      putStrides(p, layout.strides[0]!, 0);
      putStrides(p, layout.strides[1]!, 0);
      p.ptr(addressOf(a)).ptr(addressOf(b)).ptr(addressOf(out)).i64(n);
      rt.launch(rt.fn(ELEMENTWISE_MODULE, `${cmp ? 'binary_cmp' : 'binary'}_${DTYPE_SUFFIX[a.dtype]}`), rt.gridFor(n), 256);
    },

    where(cond, a, b, out) {
      const n = out.numel;
      if (n === 0) return;
      requireContiguous('where', 'output', out);
      requireSameDType('where', a, out);
      requireSameDType('where', b, out);
      if (cond.dtype !== 'bool') throw new TypeError(`where: CUDA kernel needs a bool condition, got ${cond.dtype}`);
      const pl = plan(out.shape, [out, cond, a, b], true, 'where');
      if (pl) {
        const p = rt.params.begin();
        const grid = putPlan(rt, p, pl, n);
        p.ptr(addressOf(out)).ptr(addressOf(cond)).ptr(addressOf(a)).ptr(addressOf(b));
        rt.launch(rt.fn(ELEMENTWISE_MODULE, `where_${pl.kind}_${itemSize(out.dtype)}`), grid, 256);
        return;
      }
      const layout = mergeDims(out.shape, [cond.strides, a.strides, b.strides], 'where');
      const p = rt.params.begin();
      putDims(p, layout.sizes);
      for (const s of layout.strides) putStrides(p, s, 0);
      p.ptr(addressOf(cond)).ptr(addressOf(a)).ptr(addressOf(b)).ptr(addressOf(out)).i64(n);
      rt.launch(rt.fn(ELEMENTWISE_MODULE, `where_${itemSize(out.dtype)}`), rt.gridFor(n), 256);
    },
  };
}
