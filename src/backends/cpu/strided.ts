/**
 * Row iteration over strided views: dims that are contiguous with each other in every operand
 * are merged first, so a typical permuted or broadcast view becomes a few long rows, and kernels
 * run a tight inner loop per row instead of a callback per element.
 */

export interface RowPlan {
  /** Shape after merging, last dim = row length. */
  shape: number[];
  /** Per operand, strides of the merged dims. */
  strides: number[][];
}

/** Merges adjacent dims that every operand can step through as one, and drops size-1 dims. */
export function planRows(shape: readonly number[], strides: readonly (readonly number[])[]): RowPlan {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d]!;
    if (size === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k]![last] === s[d]! * size)) {
      dims[last] = dims[last]! * size;
      strides.forEach((s, k) => { st[k]![last] = s[d]!; });
      continue;
    }
    dims.push(size);
    strides.forEach((s, k) => st[k]!.push(s[d]!));
  }
  if (dims.length === 0) {
    dims.push(1);
    st.forEach((s) => s.push(0));
  }
  return { shape: dims, strides: st };
}

/**
 * Calls fn(rowStarts, rowLength, innerStrides) once per row of the merged view. `rowStarts` is
 * reused between calls (copy it if kept).
 */
export function forEachRow(shape: readonly number[], strides: readonly (readonly number[])[], offsets: readonly number[],
  fn: (starts: number[], length: number, inner: readonly number[]) => void): void {
  for (const s of shape) if (s === 0) return;
  const plan = planRows(shape, strides);
  const nd = plan.shape.length;
  const ops = strides.length;
  const rowLen = plan.shape[nd - 1]!;
  const inner = plan.strides.map((s) => s[nd - 1]!);
  const starts = [...offsets];
  const idx = new Array<number>(nd).fill(0);
  let rows = 1;
  for (let d = 0; d < nd - 1; d++) rows *= plan.shape[d]!;
  for (let r = 0; r < rows; r++) {
    fn(starts, rowLen, inner);
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]!++;
      if (idx[d]! < plan.shape[d]!) {
        for (let k = 0; k < ops; k++) starts[k]! += plan.strides[k]![d]!;
        break;
      }
      for (let k = 0; k < ops; k++) starts[k]! -= plan.strides[k]![d]! * (plan.shape[d]! - 1);
      idx[d] = 0;
    }
  }
}
