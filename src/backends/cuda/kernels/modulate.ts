/**
 * Launchers for modulate.cu: layer / RMS norm with the adaLN modulation, and the gated residual,
 * with their backward passes, registered as the CUDA backend's FusedKernels (src/ops/modulate.ts
 * composes the same computation where they are absent). DIMBA_FUSED_MODULATE=0 in the
 * environment leaves them out.
 *
 * One block spans a row of C (threads own K vectors of V elements); the blocks of a group share
 * its modulation row and visit rowsPer rows each. Gradients of the modulation rows are summed
 * per block into a float32 (float64) workspace and then over the blocks in a fixed order, so
 * they are deterministic.
 */
import type { FusedKernels } from '../../backend.js';
import { itemSize, type DType } from '../../../tensor/dtype.js';
import { formatShape } from '../../../tensor/shape.js';
import { Tensor } from '../../../tensor/tensor.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { DTYPE_SUFFIX, MODULATE_MODULE } from './source.js';

const DTYPES: ReadonlySet<DType> = new Set(['float32', 'float64', 'bfloat16', 'float16']);
/** Vectors per thread the module instantiates (modulate.cu's DIMBA_MODULATE_V). */
const KS = [1, 2, 4, 8] as const;
const MAX_THREADS = 1024;
/** Registers per thread the row kernels take (ptxas: 47 to 64 at K = 1), for the blocks-per-SM estimate. */
const REGISTERS = 64;

/** The widest C the kernels take: 1024 threads of 8 scalar elements (vector paths reach further). */
export const MAX_MODULATE_COLS = MAX_THREADS * KS[KS.length - 1]!;

export interface ModulateGeometry {
  /** Elements per vector access (16 bytes of the dtype, or 1). */
  readonly vec: number;
  /** Vectors per thread. */
  readonly k: number;
  readonly threads: number;
  /** Blocks per group, and rows each visits. */
  readonly blocksPerGroup: number;
  readonly rowsPer: number;
}

/**
 * Launch geometry for G groups of M rows of C. `aligned`: every base address is 16-byte aligned
 * and every group stride a whole number of 16 bytes. Enough blocks for about one resident wave.
 */
export function modulateGeometry(dtype: DType, groups: number, m: number, c: number, aligned: boolean, multiprocessors: number): ModulateGeometry {
  const wide = 16 / itemSize(dtype);
  const vec = aligned && c % wide === 0 ? wide : 1;
  const nvec = c / vec;
  const k = KS.find((kk) => Math.ceil(nvec / kk) <= MAX_THREADS);
  if (k === undefined) throw new RangeError(`modulate: rows of ${c} elements exceed what the CUDA kernels take (${MAX_MODULATE_COLS} scalar)`);
  const threads = Math.max(32, Math.ceil(Math.ceil(nvec / k) / 32) * 32);
  const perSm = Math.max(1, Math.min(32, Math.floor(2048 / threads), Math.floor(65536 / (threads * REGISTERS))));
  const target = multiprocessors * perSm;
  const wanted = Math.max(1, Math.min(m, Math.ceil(target / Math.max(1, groups))));
  const rowsPer = Math.max(1, Math.ceil(m / wanted));
  return { vec, k, threads, blocksPerGroup: Math.max(1, Math.ceil(m / rowsPer)), rowsPer };
}

function dims(op: string, x: Tensor): [number, number, number] {
  if (x.ndim !== 3 || !x.isContiguous) throw new TypeError(`${op}: CUDA kernel needs a contiguous [G, M, C] tensor, got ${formatShape(x.shape)}`);
  if (!DTYPES.has(x.dtype)) throw new TypeError(`${op}: CUDA kernel needs a float dtype, got ${x.dtype}`);
  return [x.shape[0]!, x.shape[1]!, x.shape[2]!];
}

/** The group stride of a [G, C] modulation view (column stride 1, as src/ops/modulate.ts makes them). */
function rowStride(op: string, name: string, t: Tensor, like: Tensor, groups: number, c: number): number {
  const ok = t.ndim === 2 && t.shape[0] === groups && t.shape[1] === c && (c === 1 || t.strides[1] === 1) && t.dtype === like.dtype;
  if (!ok) throw new TypeError(`${op}: ${name} must be a [${groups}, ${c}] ${like.dtype} view with column stride 1, got ${t.dtype} ${formatShape(t.shape)} strides ${formatShape(t.strides)}`);
  return groups === 1 ? 0 : t.strides[0]!;
}

function sameShape(op: string, name: string, t: Tensor, like: Tensor): void {
  if (!t.isContiguous || t.dtype !== like.dtype || t.shape.some((s, i) => s !== like.shape[i])) {
    throw new TypeError(`${op}: ${name} must be contiguous ${like.dtype} ${formatShape(like.shape)}, got ${t.dtype} ${formatShape(t.shape)}`);
  }
}

/** Whether the tensors' addresses and the modulation group strides allow 16-byte accesses. */
function alignedFor(dense: readonly Tensor[], mods: readonly [Tensor, number][]): boolean {
  return dense.every((t) => addressOf(t) % 16 === 0)
    && mods.every(([t, stride]) => addressOf(t) % 16 === 0 && (stride * itemSize(t.dtype)) % 16 === 0);
}

export function modulateDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DIMBA_FUSED_MODULATE === '0';
}

export function modulateKernels(rt: CudaRuntime, env: NodeJS.ProcessEnv = process.env): FusedKernels {
  if (modulateDisabled(env)) return {};

  const name = (kernel: string, dtype: DType, g: ModulateGeometry) => `${kernel}_${DTYPE_SUFFIX[dtype]}_v${g.vec}_k${g.k}`;
  const geometry = (dtype: DType, groups: number, m: number, c: number, aligned: boolean) =>
    modulateGeometry(dtype, groups, m, c, aligned, rt.info.multiprocessors);

  /** Sums partials [count, G * P, C] over P into outs [G, C]. */
  function columnSums(part: Tensor, outs: readonly Tensor[], groups: number, p: number, c: number): void {
    const dtype = outs[0]!.dtype;
    const n = outs.length * groups * c;
    rt.params.begin().ptr(addressOf(part)).ptr(addressOf(outs[0]!)).ptr(addressOf(outs[outs.length - 1]!))
      .i64(groups).i64(p).i64(c).i32(outs.length);
    rt.launch(rt.fn(MODULATE_MODULE, `modulate_colsum_${DTYPE_SUFFIX[dtype]}`), rt.gridFor(n), 256);
  }

  const workspace = (like: Tensor, count: number, groups: number, p: number, c: number) =>
    Tensor.empty([count * groups * p * c], like.dtype === 'float64' ? 'float64' : 'float32', like.backend);

  return {
    modulateSupports(x) {
      return DTYPES.has(x.dtype) && (x.ndim === 0 ? 1 : x.shape[x.ndim - 1]!) <= MAX_MODULATE_COLS;
    },

    normModulate(kind, x, shift, scale, eps, out, mean, rstd) {
      const op = `${kind}NormModulate`;
      const [groups, m, c] = dims(op, x);
      sameShape(op, 'out', out, x);
      if (mean.dtype !== 'float32' || rstd.dtype !== 'float32' || mean.numel !== groups * m || rstd.numel !== groups * m) {
        throw new TypeError(`${op}: mean and rstd must be float32 [${groups * m}]`);
      }
      if (groups * m * c === 0) return;
      rt.activate();
      const shiftStride = rowStride(op, 'shift', shift, x, groups, c);
      const scaleStride = rowStride(op, 'scale', scale, x, groups, c);
      const g = geometry(x.dtype, groups, m, c, alignedFor([x, out], [[shift, shiftStride], [scale, scaleStride]]));
      rt.params.begin().i32(kind === 'rms' ? 1 : 0).ptr(addressOf(x)).ptr(addressOf(shift)).i64(shiftStride)
        .ptr(addressOf(scale)).i64(scaleStride).ptr(addressOf(out)).ptr(addressOf(mean)).ptr(addressOf(rstd))
        .i64(m).i64(c).i64(g.blocksPerGroup).i64(g.rowsPer).f64(eps);
      rt.launch(rt.fn(MODULATE_MODULE, name('norm_modulate', x.dtype, g)), groups * g.blocksPerGroup, g.threads);
    },

    normModulateBackward(kind, x, scale, mean, rstd, gy, gx, gshift, gscale) {
      const op = `${kind}NormModulate backward`;
      const [groups, m, c] = dims(op, x);
      sameShape(op, 'gy', gy, x);
      sameShape(op, 'gx', gx, x);
      for (const [n, t] of [['gshift', gshift], ['gscale', gscale]] as const) {
        if (!t.isContiguous || t.dtype !== x.dtype || t.numel !== groups * c) throw new TypeError(`${op}: ${n} must be contiguous ${x.dtype} [${groups}, ${c}]`);
      }
      if (!mean.isContiguous || !rstd.isContiguous || mean.dtype !== 'float32' || rstd.dtype !== 'float32') {
        throw new TypeError(`${op}: mean and rstd must be contiguous float32`);
      }
      if (groups * c === 0) return;
      rt.activate();
      const scaleStride = rowStride(op, 'scale', scale, x, groups, c);
      const g = geometry(x.dtype, groups, m, c, alignedFor([x, gy, gx], [[scale, scaleStride]]));
      const part = workspace(x, 2, groups, g.blocksPerGroup, c);
      rt.params.begin().i32(kind === 'rms' ? 1 : 0).ptr(addressOf(x)).ptr(addressOf(scale)).i64(scaleStride)
        .ptr(addressOf(mean)).ptr(addressOf(rstd)).ptr(addressOf(gy)).ptr(addressOf(gx)).ptr(addressOf(part))
        .i64(groups).i64(m).i64(c).i64(g.blocksPerGroup).i64(g.rowsPer);
      rt.launch(rt.fn(MODULATE_MODULE, name('norm_modulate_backward', x.dtype, g)), groups * g.blocksPerGroup, g.threads);
      columnSums(part, [gshift, gscale], groups, g.blocksPerGroup, c);
      part.dispose();
    },

    gatedResidual(x, gate, y, out) {
      const op = 'gatedResidual';
      const [groups, m, c] = dims(op, x);
      sameShape(op, 'y', y, x);
      sameShape(op, 'out', out, x);
      if (groups * m * c === 0) return;
      rt.activate();
      const gateStride = rowStride(op, 'gate', gate, x, groups, c);
      const g = geometry(x.dtype, groups, m, c, alignedFor([x, y, out], [[gate, gateStride]]));
      rt.params.begin().ptr(addressOf(x)).ptr(addressOf(gate)).i64(gateStride).ptr(addressOf(y)).ptr(addressOf(out))
        .i64(m).i64(c).i64(g.blocksPerGroup).i64(g.rowsPer);
      rt.launch(rt.fn(MODULATE_MODULE, name('gated_residual', x.dtype, g)), groups * g.blocksPerGroup, g.threads);
    },

    gatedResidualBackward(gate, y, gout, gy, ggate) {
      const op = 'gatedResidual backward';
      const [groups, m, c] = dims(op, y);
      sameShape(op, 'g', gout, y);
      sameShape(op, 'gy', gy, y);
      if (!ggate.isContiguous || ggate.dtype !== y.dtype || ggate.numel !== groups * c) throw new TypeError(`${op}: ggate must be contiguous ${y.dtype} [${groups}, ${c}]`);
      if (groups * c === 0) return;
      rt.activate();
      const gateStride = rowStride(op, 'gate', gate, y, groups, c);
      const g = geometry(y.dtype, groups, m, c, alignedFor([y, gout, gy], [[gate, gateStride]]));
      const part = workspace(y, 1, groups, g.blocksPerGroup, c);
      rt.params.begin().ptr(addressOf(gate)).i64(gateStride).ptr(addressOf(y)).ptr(addressOf(gout)).ptr(addressOf(gy))
        .ptr(addressOf(part)).i64(m).i64(c).i64(g.blocksPerGroup).i64(g.rowsPer);
      rt.launch(rt.fn(MODULATE_MODULE, name('gated_residual_backward', y.dtype, g)), groups * g.blocksPerGroup, g.threads);
      columnSums(part, [ggate], groups, g.blocksPerGroup, c);
      part.dispose();
    },
  };
}
