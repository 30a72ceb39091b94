/**
 * Layout ops: views that share storage (reshape/view, permute, transpose, narrow, expand,
 * squeeze/unsqueeze, flip via a negative stride), and the copies that change layout or place
 * (contiguous, clone, cast, to, cat, stack).
 */
import { isFloating, type DType } from '../tensor/dtype.js';
import { isDType } from '../tensor/dtype.js';
import { parseDevice, deviceKey } from '../tensor/device.js';
import {
  ShapeError, contiguousStrides, formatShape, inferShape, normalizeDim, normalizeDims, viewStrides, shapesEqual,
} from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { getBackend } from '../backends/registry.js';
import { record } from './record.js';
import { zeros } from './create.js';

/** A view of x with another layout, differentiable through `backward`. */
function viewOf(name: string, x: Tensor, shape: readonly number[], strides: readonly number[], offset: number,
  backward: (g: Tensor) => Tensor): Tensor {
  const out = x.withLayout(shape, strides, offset);
  record(name, [x], [out], ([g]) => [backward(g!)]);
  return out;
}

export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  return copyToNew(x, x.dtype, 'contiguous');
}

/** A fresh contiguous copy (differentiable). */
export function clone(x: Tensor): Tensor {
  return copyToNew(x, x.dtype, 'clone');
}

function copyToNew(x: Tensor, dtype: DType, name: string): Tensor {
  const out = Tensor.empty(x.shape, dtype, x.backend);
  if (out.numel > 0) x.backend.kernels.copy(x, out);
  record(name, [x], [out], ([g]) => [g!]);
  return out;
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const out = Tensor.empty(x.shape, dtype, x.backend);
  if (out.numel > 0) x.backend.kernels.copy(x, out);
  if (isFloating(dtype)) record('cast', [x], [out], ([g]) => [cast(g!, x.dtype)]);
  return out;
}

/** Moves to a device ('cpu', 'cuda:0') or casts to a dtype. */
export function to(x: Tensor, target: string): Tensor {
  if (isDType(target)) return cast(x, target);
  const device = parseDevice(target);
  if (deviceKey(device) === x.deviceName) return x;
  const backend = getBackend(device);
  const src = contiguous(x);
  const out = new Tensor(backend.fromHost(x.dtype, src.toHost()), x.shape);
  record('to', [x], [out], ([g]) => [to(g!, x.deviceName)]);
  return out;
}

export function detach(x: Tensor): Tensor {
  return x.withLayout(x.shape, x.strides, x.offset);
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(shape, x.numel, 'reshape');
  const strides = viewStrides(x.shape, x.strides, target);
  const src = strides ? x : contiguous(x);
  return viewOf('reshape', src, target, strides ?? contiguousStrides(target), src.offset, (g) => reshape(g, x.shape));
}

/** Like reshape, but fails instead of copying (as torch.view does). */
export function view(x: Tensor, shape: readonly number[]): Tensor {
  const target = inferShape(shape, x.numel, 'view');
  const strides = viewStrides(x.shape, x.strides, target);
  if (!strides) throw new ShapeError(`view: shape ${formatShape(target)} is incompatible with the layout of a ${formatShape(x.shape)} tensor with strides [${x.strides.join(', ')}]; use reshape`);
  return viewOf('view', x, target, strides, x.offset, (g) => reshape(g, x.shape));
}

export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normalizeDim(startDim, x.ndim, 'flatten');
  const e = normalizeDim(endDim, x.ndim, 'flatten');
  const merged = x.shape.slice(s, e + 1).reduce((a, b) => a * b, 1);
  return reshape(x, [...x.shape.slice(0, s), merged, ...x.shape.slice(e + 1)]);
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  if (dims.length !== x.ndim) throw new ShapeError(`permute: ${dims.length} dims given for a ${x.ndim}-d tensor`);
  const perm = dims.map((d) => normalizeDim(d, x.ndim, 'permute'));
  if (new Set(perm).size !== perm.length) throw new ShapeError(`permute: repeated dim in [${dims.join(', ')}]`);
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => { inverse[p] = i; });
  return viewOf('permute', x, perm.map((p) => x.shape[p]!), perm.map((p) => x.strides[p]!), x.offset, (g) => permute(g, inverse));
}

export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const a = normalizeDim(d0, x.ndim, 'transpose');
  const b = normalizeDim(d1, x.ndim, 'transpose');
  const perm = Array.from({ length: x.ndim }, (_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normalizeDim(dim, x.ndim + 1, 'unsqueeze');
  const shape = [...x.shape];
  const strides = [...x.strides];
  const stride = d < x.ndim ? x.strides[d]! * x.shape[d]! : 1;
  shape.splice(d, 0, 1);
  strides.splice(d, 0, stride);
  return viewOf('unsqueeze', x, shape, strides, x.offset, (g) => reshape(g, x.shape));
}

/** Removes size-1 dims (all of them, or just `dim`). */
export function squeeze(x: Tensor, dim?: number): Tensor {
  const drop = dim === undefined
    ? x.shape.map((s, i) => (s === 1 ? i : -1)).filter((i) => i >= 0)
    : [normalizeDim(dim, x.ndim, 'squeeze')].filter((i) => x.shape[i] === 1);
  if (drop.length === 0) return x;
  const keep = (_: number, i: number) => !drop.includes(i);
  return viewOf('squeeze', x, x.shape.filter(keep), x.strides.filter(keep), x.offset, (g) => reshape(g, x.shape));
}

/** Broadcasts to `shape` without copying (-1 keeps a dim). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.ndim) throw new ShapeError(`expand: target ${formatShape(shape)} has fewer dims than ${formatShape(x.shape)}`);
  const lead = shape.length - x.ndim;
  const target = shape.map((s, i) => (s === -1 && i >= lead ? x.shape[i - lead]! : s));
  const strides = target.map((s, i) => {
    if (i < lead) return 0;
    const src = x.shape[i - lead]!;
    if (src === s) return x.strides[i - lead]!;
    if (src === 1) return 0;
    throw new ShapeError(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
  });
  if (shapesEqual(target, x.shape)) return x;
  // The engine sums the full-shape gradient back down to x's shape (un-broadcast).
  return viewOf('expand', x, target, strides, x.offset, (g) => g);
}

export function expandAs(x: Tensor, other: Tensor): Tensor {
  return expand(x, other.shape);
}

/** Elements start..start+length-1 along dim, as a view. */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  const d = normalizeDim(dim, x.ndim, 'narrow');
  const size = x.shape[d]!;
  const s = start < 0 ? start + size : start;
  if (!Number.isInteger(s) || !Number.isInteger(length) || s < 0 || length < 0 || s + length > size) {
    throw new ShapeError(`narrow: range [${start}, ${start}+${length}) is outside dim ${dim} of size ${size}`);
  }
  const shape = [...x.shape];
  shape[d] = length;
  return viewOf('narrow', x, shape, x.strides, x.offset + s * x.strides[d]!, (g) => {
    // Pad with zeros through cat (itself differentiable), so higher-order gradients work.
    const zerosOf = (n: number) => zeros(shape.map((v, i) => (i === d ? n : v)), { dtype: g.dtype, device: g.device });
    const parts = [s > 0 ? zerosOf(s) : null, g, size - s - length > 0 ? zerosOf(size - s - length) : null];
    return cat(parts.filter((p): p is Tensor => p !== null), d);
  });
}

/** Index `index` of dim, removing that dim (x[..., i, ...]). */
export function select(x: Tensor, dim: number, index: number): Tensor {
  return squeeze(narrow(x, dim, index, 1), dim);
}

/** Reverses the given dims, as a view with negative strides. */
export function flip(x: Tensor, dims: readonly number[]): Tensor {
  const ds = normalizeDims(dims, x.ndim, 'flip');
  let offset = x.offset;
  const strides = [...x.strides];
  for (const d of ds) {
    if (x.shape[d]! > 0) offset += (x.shape[d]! - 1) * x.strides[d]!;
    strides[d] = -x.strides[d]!;
  }
  return viewOf('flip', x, x.shape, strides, offset, (g) => flip(g, ds));
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('cat: no tensors given');
  const first = tensors[0]!;
  const d = normalizeDim(dim, first.ndim, 'cat');
  let total = 0;
  for (const [i, t] of tensors.entries()) {
    if (t.ndim !== first.ndim || t.shape.some((s, j) => j !== d && s !== first.shape[j])) {
      throw new ShapeError(`cat: tensor ${i} has shape ${formatShape(t.shape)}, incompatible with ${formatShape(first.shape)} along dim ${dim}`);
    }
    if (t.dtype !== first.dtype) throw new TypeError(`cat: tensor ${i} is ${t.dtype}, tensor 0 is ${first.dtype}`);
    if (t.deviceName !== first.deviceName) throw new TypeError(`cat: tensor ${i} is on ${t.deviceName}, tensor 0 on ${first.deviceName}`);
    total += t.shape[d]!;
  }
  const shape = [...first.shape];
  shape[d] = total;
  const out = Tensor.empty(shape, first.dtype, first.backend);
  let at = 0;
  const starts: number[] = [];
  for (const t of tensors) {
    starts.push(at);
    const partShape = [...shape];
    partShape[d] = t.shape[d]!;
    if (t.numel > 0) first.backend.kernels.copy(t, out.withLayout(partShape, out.strides, at * out.strides[d]!));
    at += t.shape[d]!;
  }
  record('cat', tensors, [out], ([g]) => tensors.map((t, i) => narrow(g!, d, starts[i]!, t.shape[d]!)));
  return out;
}

export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError('stack: no tensors given');
  const d = normalizeDim(dim, tensors[0]!.ndim + 1, 'stack');
  return cat(tensors.map((t) => unsqueeze(t, d)), d);
}

/** Splits into pieces of `size` along dim (the last may be smaller), or of the given sizes. */
export function split(x: Tensor, size: number | readonly number[], dim = 0): Tensor[] {
  const d = normalizeDim(dim, x.ndim, 'split');
  const total = x.shape[d]!;
  const sizes: number[] = [];
  if (typeof size === 'number') {
    if (size <= 0) throw new ShapeError(`split: size must be positive, got ${size}`);
    for (let at = 0; at < total; at += size) sizes.push(Math.min(size, total - at));
  } else {
    if (size.reduce((a, b) => a + b, 0) !== total) throw new ShapeError(`split: sizes [${size.join(', ')}] do not sum to ${total}`);
    sizes.push(...size);
  }
  if (sizes.length <= 1) return sizes.map((n) => narrow(x, d, 0, n));
  // One node for all the pieces: its backward writes their gradients side by side with one cat
  // (the engine supplies zeros for a piece that got none), where a narrow per piece would pad
  // each gradient to the full size and the engine would then sum the padded copies.
  const parts: Tensor[] = [];
  let at = 0;
  for (const s of sizes) {
    const shape = [...x.shape];
    shape[d] = s;
    parts.push(x.withLayout(shape, x.strides, x.offset + at * x.strides[d]!));
    at += s;
  }
  record('split', [x], parts, (gs) => [cat(gs, d)]);
  return parts;
}

export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const d = normalizeDim(dim, x.ndim, 'chunk');
  return split(x, Math.ceil(x.shape[d]! / chunks), d);
}
