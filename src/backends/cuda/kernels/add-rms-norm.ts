/**
 * Launchers for add-rms-norm.cu, registered as the CUDA backend's FusedKernels.addRmsNorm /
 * addRmsNormBackward (src/ops/add-rms-norm.ts composes the same computation where they are
 * absent). DIMBA_FUSED_ADD_RMSNORM=0 in the environment leaves them out.
 *
 * One block per row of C (threads own K columns each, K in 1, 2, 4, 8; rows up to 8192 wide).
 * The forward runs a block per row; the backward a fixed grid of about one resident wave whose
 * blocks stride over the rows and sum their weight-gradient columns into float32 partials, then
 * one kernel sums the partials in block order (deterministic).
 */
import type { FusedKernels } from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import { formatShape } from '../../../tensor/shape.js';
import { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { ADD_RMS_NORM_MODULE, DTYPE_SUFFIX } from './source.js';

const DTYPES: ReadonlySet<DType> = new Set(['float32', 'bfloat16', 'float16']);
const KS = [1, 2, 4, 8] as const;
const MAX_THREADS = 1024;
/** The widest rows the kernels take. */
export const MAX_ADD_RMS_NORM_COLS = MAX_THREADS * KS[KS.length - 1]!;
/** Grid cap for the forward (blocks stride over the rows beyond it). */
const MAX_FORWARD_BLOCKS = 1 << 16;

export interface AddRmsNormGeometry {
  /** Columns per thread, threads per block. */
  readonly k: number;
  readonly threads: number;
  /** Blocks of the forward, and of the backward (also the number of weight-gradient partial rows). */
  readonly forwardBlocks: number;
  readonly backwardBlocks: number;
}

export function addRmsNormGeometry(rows: number, c: number, multiprocessors: number): AddRmsNormGeometry {
  const k = KS.find((kk) => Math.ceil(c / kk) <= MAX_THREADS);
  if (k === undefined) throw new RangeError(`addRmsNorm: rows of ${c} elements exceed what the CUDA kernels take (${MAX_ADD_RMS_NORM_COLS})`);
  const threads = Math.max(32, Math.ceil(Math.ceil(c / k) / 32) * 32);
  const perSm = Math.max(1, Math.min(32, Math.floor(2048 / threads)));
  return {
    k, threads,
    forwardBlocks: Math.max(1, Math.min(rows, MAX_FORWARD_BLOCKS)),
    backwardBlocks: Math.max(1, Math.min(rows, multiprocessors * perSm)),
  };
}

export function addRmsNormDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DIMBA_FUSED_ADD_RMSNORM === '0';
}

function rowsOf(op: string, t: Tensor, dtype: DType, rows: number, c: number, name: string): void {
  if (!t.isContiguous || t.dtype !== dtype || t.ndim !== 2 || t.shape[0] !== rows || t.shape[1] !== c) {
    throw new TypeError(`${op}: ${name} must be contiguous ${dtype} [${rows}, ${c}], got ${t.dtype} ${formatShape(t.shape)}`);
  }
}

function vectorOf(op: string, t: Tensor, n: number, name: string): void {
  if (!t.isContiguous || t.dtype !== 'float32' || t.numel !== n) throw new TypeError(`${op}: ${name} must be contiguous float32 [${n}], got ${t.dtype} ${formatShape(t.shape)}`);
}

export function addRmsNormKernels(rt: CudaRuntime, env: NodeJS.ProcessEnv = process.env): FusedKernels {
  if (addRmsNormDisabled(env)) return {};
  const ptr = (t: Tensor | null) => (t ? addressOf(t) : 0);
  const geometry = (rows: number, c: number) => addRmsNormGeometry(rows, c, rt.info.multiprocessors);

  return {
    addRmsNormSupports(dtype, cols) {
      return DTYPES.has(dtype) && cols <= MAX_ADD_RMS_NORM_COLS;
    },

    addRmsNorm(residual, x, weight, eps, resOut, normed, rstd) {
      const op = 'addRmsNorm';
      if (!DTYPES.has(x.dtype) || x.ndim !== 2) throw new TypeError(`${op}: CUDA kernel needs [R, C] float32/bfloat16/float16 x, got ${x.dtype} ${formatShape(x.shape)}`);
      const [rows, c] = [x.shape[0]!, x.shape[1]!];
      rowsOf(op, x, x.dtype, rows, c, 'x');
      rowsOf(op, normed, x.dtype, rows, c, 'normed');
      rowsOf(op, resOut, 'float32', rows, c, 'resOut');
      if (residual) rowsOf(op, residual, 'float32', rows, c, 'residual');
      if (weight) vectorOf(op, weight, c, 'weight');
      vectorOf(op, rstd, rows, 'rstd');
      if (rows * c === 0) return;
      rt.activate();
      const g = geometry(rows, c);
      rt.params.begin().ptr(ptr(residual)).ptr(addressOf(x)).ptr(ptr(weight)).ptr(addressOf(resOut)).ptr(addressOf(normed))
        .ptr(addressOf(rstd)).i64(rows).i64(c).f32(eps);
      rt.launch(rt.fn(ADD_RMS_NORM_MODULE, `add_rms_norm_${DTYPE_SUFFIX[x.dtype]}_k${g.k}`), g.forwardBlocks, g.threads);
    },

    addRmsNormBackward(res, weight, rstd, gResOut, gNormed, gResidual, gx, gWeight) {
      const op = 'addRmsNorm backward';
      const dtype = gNormed.dtype;
      if (!DTYPES.has(dtype) || res.ndim !== 2) throw new TypeError(`${op}: CUDA kernel needs [R, C] float32 res and float32/bfloat16/float16 gNormed, got ${dtype} ${formatShape(res.shape)}`);
      const [rows, c] = [res.shape[0]!, res.shape[1]!];
      rowsOf(op, res, 'float32', rows, c, 'res');
      rowsOf(op, gNormed, dtype, rows, c, 'gNormed');
      rowsOf(op, gResidual, 'float32', rows, c, 'gResidual');
      if (gResOut) rowsOf(op, gResOut, 'float32', rows, c, 'gResOut');
      if (gx) rowsOf(op, gx, dtype, rows, c, 'gx');
      if (weight) vectorOf(op, weight, c, 'weight');
      if (gWeight) vectorOf(op, gWeight, c, 'gWeight');
      vectorOf(op, rstd, rows, 'rstd');
      // The op fills gWeight itself when there are no rows (src/ops/add-rms-norm.ts).
      if (rows * c === 0) return;
      rt.activate();
      const g = geometry(rows, c);
      const part = gWeight ? Tensor.empty([g.backwardBlocks * c], 'float32', res.backend) : null;
      rt.params.begin().ptr(addressOf(res)).ptr(ptr(weight)).ptr(addressOf(rstd)).ptr(ptr(gResOut)).ptr(addressOf(gNormed))
        .ptr(addressOf(gResidual)).ptr(ptr(gx)).ptr(ptr(part)).i64(rows).i64(c);
      rt.launch(rt.fn(ADD_RMS_NORM_MODULE, `add_rms_norm_backward_${DTYPE_SUFFIX[dtype]}_k${g.k}`), g.backwardBlocks, g.threads);
      if (part && gWeight) {
        rt.params.begin().ptr(addressOf(part)).ptr(addressOf(gWeight)).i64(g.backwardBlocks).i64(c);
        rt.launch(rt.fn(ADD_RMS_NORM_MODULE, 'add_rms_norm_colsum'), rt.gridFor(c), 256);
        part.dispose();
      }
    },
  };
}
