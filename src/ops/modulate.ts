/**
 * adaLN modulation as PixArt / Dimba blocks use it, each as one op:
 *   layerNormModulate(x, shift, scale) = norm(x) * (1 + scale) + shift   (norm without affine)
 *   gatedResidual(x, gate, y)          = x + gate * y
 *
 * x [B, ..., C] is normalised over its last dim. Modulation tensors broadcast against x by the
 * usual rules and may vary only along x's first (batch) and last (channel) dims: [B, 1, C],
 * [1, 1, C], [C], [B, 1, 1] for a 3-D x. A [B, C] modulation of a 3-D x is refused rather than
 * reinterpreted as [B, 1, C]: broadcasting would read it as [1, B, C], and the composed ops
 * would then disagree with the fused ones.
 *
 * Backends with the fused kernels (FusedKernels.normModulate, ...) run one pass over x each way,
 * computing in float32 (float64 for float64) and rounding once to x's dtype, and save float32
 * mean / rstd. Otherwise, or when the dtypes of x and its modulation differ, the ops compose
 * normalizeRows, mul and add, which defines the semantics (with their type promotion).
 */
import type { FusedKernels } from '../backends/backend.js';
import { isFloating } from '../tensor/dtype.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { contiguous, expand, reshape } from './layout.js';
import { add, mul } from './elementwise.js';
import { normalizeRows } from './norm.js';

export type ModulateNorm = 'layer' | 'rms';

/** x viewed as G groups of M rows of C: G = x's first dim (1 for a vector). */
interface Groups {
  readonly g: number;
  readonly m: number;
  readonly c: number;
}

function groupsOf(x: Tensor): Groups {
  const c = x.ndim === 0 ? 1 : x.shape[x.ndim - 1]!;
  const g = x.ndim >= 2 ? x.shape[0]! : 1;
  const m = g * c === 0 ? 0 : x.numel / (g * c);
  return { g, m, c };
}

/** Checks that `mod` broadcasts against x varying only along x's first and last dims. */
function checkModulation(op: string, name: string, x: Tensor, mod: Tensor): void {
  if (x.ndim === 0) throw new ShapeError(`${op}: x must have at least one dim, got a scalar`);
  if (mod.deviceName !== x.deviceName) throw new TypeError(`${op}: ${name} is on ${mod.deviceName}, x on ${x.deviceName}`);
  const lead = x.ndim - mod.ndim;
  const ok = lead >= 0 && mod.shape.every((s, i) => {
    const d = i + lead;
    if (s === 1) return true;
    return s === x.shape[d] && (d === 0 || d === x.ndim - 1);
  });
  if (!ok) {
    const form = x.ndim >= 2 ? [x.shape[0]!, ...x.shape.slice(1, -1).map(() => 1), x.shape[x.ndim - 1]!] : [x.shape[0]!];
    throw new ShapeError(`${op}: ${name} ${formatShape(mod.shape)} must broadcast as ${formatShape(form)} against x ${formatShape(x.shape)} `
      + '(only the first and last dims of x may vary; write [B, C] as [B, 1, C])');
  }
}

/**
 * The [G, C] view of a modulation tensor the kernels read: column stride 1, group stride 0
 * where it is shared. A channel-broadcast modulation ([B, 1, 1]) is expanded into a copy.
 */
function modulationRows(mod: Tensor, x: Tensor, { g, c }: Groups): Tensor {
  const lead = x.ndim - mod.ndim;
  const dimOf = (d: number) => (d - lead >= 0 ? mod.shape[d - lead]! : 1);
  const strideOf = (d: number) => (d - lead >= 0 ? mod.strides[d - lead]! : 0);
  const perGroup = x.ndim >= 2 && dimOf(0) !== 1;
  const last = x.ndim - 1;
  if (dimOf(last) === c && (c === 1 || strideOf(last) === 1)) {
    return mod.withLayout([g, c], [perGroup ? strideOf(0) : 0, 1], mod.offset);
  }
  const rows = reshape(contiguous(mod), [perGroup ? g : 1, dimOf(last)]);
  return contiguous(expand(rows, [g, c]));
}

/** The fused kernels when the backend has them and they take this call. */
function fusedFor(x: Tensor, mods: readonly Tensor[], names: readonly (keyof FusedKernels)[]): FusedKernels | null {
  const fused = x.backend.fused;
  if (!names.every((n) => fused[n])) return null;
  if (!isFloating(x.dtype) || mods.some((t) => t.dtype !== x.dtype)) return null;
  return fused.modulateSupports?.(x) ?? true ? fused : null;
}

/** The composed form the fused op must equal (used where a backend lacks the kernels). */
export function composedNormModulate(x: Tensor, shift: Tensor, scale: Tensor, eps = 1e-6, kind: ModulateNorm = 'layer'): Tensor {
  const c = x.shape[x.ndim - 1]!;
  return add(mul(normalizeRows(kind, x, c, eps), add(scale, 1)), shift);
}

/** The composed form of gatedResidual. */
export function composedGatedResidual(x: Tensor, gate: Tensor, y: Tensor): Tensor {
  return add(x, mul(gate, y));
}

/** The gradient shape of a modulation tensor before the engine sums it to the input's shape: [G, 1, ..., 1, C]. */
function groupedShape(x: Tensor, { g, c }: Groups): number[] {
  return x.ndim >= 2 ? [g, ...x.shape.slice(1, -1).map(() => 1), c] : [c];
}

/**
 * norm(x) * (1 + scale) + shift over x's last dim, kind 'layer' (LayerNorm without affine, the
 * default) or 'rms'. See the module comment for the shapes shift and scale may take.
 */
export function layerNormModulate(x0: Tensor, shift: Tensor, scale: Tensor, eps = 1e-6, kind: ModulateNorm = 'layer'): Tensor {
  const op = 'layerNormModulate';
  if (kind !== 'layer' && kind !== 'rms') throw new TypeError(`${op}: kind must be 'layer' or 'rms', got ${JSON.stringify(kind)}`);
  if (!(eps >= 0)) throw new RangeError(`${op}: eps must be >= 0, got ${eps}`);
  checkModulation(op, 'shift', x0, shift);
  checkModulation(op, 'scale', x0, scale);
  const fused = fusedFor(x0, [shift, scale], ['normModulate', 'normModulateBackward']);
  if (!fused) return composedNormModulate(x0, shift, scale, eps, kind);
  const x = contiguous(x0);
  const groups = groupsOf(x);
  const { g, m, c } = groups;
  const out = Tensor.empty(x.shape, x.dtype, x.backend);
  const mean = Tensor.empty([g * m], 'float32', x.backend);
  const rstd = Tensor.empty([g * m], 'float32', x.backend);
  // [G, M, C] views made where they are used: a view made here and read by the backward would
  // not be kept alive by saving x.
  const as3 = (t: Tensor) => t.withLayout([g, m, c], [m * c, c, 1], t.offset);
  const scaleRows = modulationRows(scale, x, groups);
  if (out.numel > 0) fused.normModulate!(kind, as3(x), modulationRows(shift, x, groups), scaleRows, eps, as3(out), mean, rstd);
  record(op, [x, shift, scale], [out], ([gy]) => {
    const gx = Tensor.empty(x.shape, x.dtype, x.backend);
    const gshift = Tensor.empty([g, c], x.dtype, x.backend);
    const gscale = Tensor.empty([g, c], x.dtype, x.backend);
    if (gx.numel > 0) {
      fused.normModulateBackward!(kind, as3(x), scaleRows, mean, rstd, as3(contiguous(gy!)), as3(gx), gshift, gscale);
    } else {
      x.backend.kernels.fill(gshift, 0);
      x.backend.kernels.fill(gscale, 0);
    }
    const shape = groupedShape(x, groups);
    return [gx, reshape(gshift, shape), reshape(gscale, shape)];
  }, { onceDifferentiable: true, saved: [x, scaleRows, mean, rstd] });
  return out;
}

/** x + gate * y, for x and y of one shape; gate as a modulation tensor (see the module comment). */
export function gatedResidual(x0: Tensor, gate: Tensor, y0: Tensor): Tensor {
  const op = 'gatedResidual';
  if (y0.ndim !== x0.ndim || y0.shape.some((s, i) => s !== x0.shape[i])) {
    throw new ShapeError(`${op}: y ${formatShape(y0.shape)} must have x's shape ${formatShape(x0.shape)}`);
  }
  if (y0.deviceName !== x0.deviceName) throw new TypeError(`${op}: y is on ${y0.deviceName}, x on ${x0.deviceName}`);
  checkModulation(op, 'gate', x0, gate);
  const fused = fusedFor(x0, [gate, y0], ['gatedResidual', 'gatedResidualBackward']);
  if (!fused) return composedGatedResidual(x0, gate, y0);
  const x = contiguous(x0);
  const y = contiguous(y0);
  const groups = groupsOf(x);
  const { g, m, c } = groups;
  const out = Tensor.empty(x.shape, x.dtype, x.backend);
  const as3 = (t: Tensor) => t.withLayout([g, m, c], [m * c, c, 1], t.offset);
  const gateRows = modulationRows(gate, x, groups);
  if (out.numel > 0) fused.gatedResidual!(as3(x), gateRows, as3(y), as3(out));
  record(op, [x, gate, y], [out], ([gout]) => {
    const g3 = contiguous(gout!);
    const gy = Tensor.empty(x.shape, x.dtype, x.backend);
    const ggate = Tensor.empty([g, c], x.dtype, x.backend);
    if (gy.numel > 0) fused.gatedResidualBackward!(gateRows, as3(y), as3(g3), as3(gy), ggate);
    else x.backend.kernels.fill(ggate, 0);
    return [g3, reshape(ggate, groupedShape(x, groups)), gy];
  }, { onceDifferentiable: true, saved: [y, gateRows] });
  return out;
}
