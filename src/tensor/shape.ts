/** Shape and stride arithmetic shared by every op. Pure functions, no device code. */

export type Shape = readonly number[];

export class ShapeError extends Error {
  override name = 'ShapeError';
}

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides, in elements. */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

/** True when the elements are laid out row-major with no gaps (size-1 dims may have any stride). */
export function isContiguousLayout(shape: Shape, strides: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === 1) continue;
    if (strides[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Resolves a possibly negative dim against `ndim`, naming the op on error. */
export function normalizeDim(dim: number, ndim: number, op: string): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(dim) || d < 0 || d >= ndim) {
    throw new ShapeError(`${op}: dim ${dim} is out of range for a tensor with ${ndim} dims`);
  }
  return d;
}

/** Resolves a list of dims (or all dims when undefined), sorted and unique. */
export function normalizeDims(dims: number | readonly number[] | undefined, ndim: number, op: string): number[] {
  if (dims === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : dims;
  const out = [...new Set(list.map((d) => normalizeDim(d, ndim, op)))].sort((a, b) => a - b);
  if (out.length !== list.length) throw new ShapeError(`${op}: repeated dim in [${list.join(', ')}]`);
  return out;
}

/** NumPy/PyTorch broadcasting of two or more shapes. */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const ndim = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(ndim).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = ndim - s.length + i;
      const d = s[i]!;
      if (d === out[o] || d === 1) continue;
      if (out[o] === 1) out[o] = d;
      else throw new ShapeError(`${op}: shapes ${shapes.map(formatShape).join(' and ')} cannot be broadcast together`);
    }
  }
  return out;
}

/** Strides that make a tensor of `shape`/`strides` appear with `target` shape (stride 0 on broadcast dims). */
export function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const out = new Array<number>(target.length).fill(0);
  const lead = target.length - shape.length;
  for (let i = 0; i < shape.length; i++) {
    out[lead + i] = shape[i] === 1 && target[lead + i] !== 1 ? 0 : strides[i]!;
  }
  return out;
}

/** Resolves a reshape target that may contain one -1. */
export function inferShape(target: readonly number[], numel: number, op: string): number[] {
  let unknown = -1;
  let known = 1;
  target.forEach((d, i) => {
    if (d === -1) {
      if (unknown >= 0) throw new ShapeError(`${op}: only one dimension can be -1, got ${formatShape(target)}`);
      unknown = i;
    } else if (!Number.isInteger(d) || d < 0) {
      throw new ShapeError(`${op}: invalid dimension ${d} in ${formatShape(target)}`);
    } else known *= d;
  });
  const out = [...target];
  if (unknown >= 0) {
    if (known === 0 || numel % known !== 0) throw new ShapeError(`${op}: cannot infer -1 in ${formatShape(target)} for ${numel} elements`);
    out[unknown] = numel / known;
  } else if (known !== numel) {
    throw new ShapeError(`${op}: shape ${formatShape(target)} has ${known} elements, the tensor has ${numel}`);
  }
  return out;
}

/**
 * Strides for viewing a tensor with `shape`/`strides` as `newShape` without copying, or null when
 * the memory layout does not allow it (then reshape must copy). Works by merging runs of dims that
 * are contiguous with each other, like PyTorch's computeStride.
 */
export function viewStrides(shape: Shape, strides: readonly number[], newShape: Shape): number[] | null {
  const n = numelOf(shape);
  if (n === 0 || shape.length === 0) return contiguousStrides(newShape);
  const out = new Array<number>(newShape.length);
  let viewD = newShape.length - 1;
  let chunkBase = strides[strides.length - 1]!;
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tensorNumel *= shape[d]!;
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tensorNumel * chunkBase)) {
      while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] === 1)) {
        out[viewD] = viewNumel * chunkBase;
        viewNumel *= newShape[viewD]!;
        viewD--;
      }
      if (viewNumel !== tensorNumel) return null;
      if (d > 0) {
        chunkBase = strides[d - 1]!;
        tensorNumel = 1;
        viewNumel = 1;
      }
    }
  }
  if (viewD !== -1) return null;
  return out;
}
