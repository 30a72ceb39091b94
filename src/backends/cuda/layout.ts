/**
 * Strided layouts for elementwise and copy kernels. Dims that every operand walks contiguously
 * (the outer stride equals the inner stride times the inner size) are merged and size-1 dims
 * dropped, so contiguous tensors reach a kernel as one dim, and few shapes exceed the kernels'
 * 8 dims.
 *
 * planMap / planCopy then pick the kernel shape (common.cuh map_rows / map_strided, copy.cu's
 * tiled transpose) from the merged layout and the operands' addresses:
 *   rows     the innermost dim is contiguous in the output and contiguous or broadcast (stride
 *            0) in every input, with aligned addresses: a thread moves 16 bytes (VEC elements)
 *            with one vector load per operand; outer dims index through fast division.
 *   tile     a copy whose source is unit-stride along one dim and whose destination is
 *            unit-stride along another (transposes, permutes): 32x32 tiles through shared memory.
 *   strided  anything else that fits 32-bit indexing: one element per thread, fast division.
 *   wide     offsets or the element count beyond int32: the 64-bit kernels (offset1/2/3).
 */
import type { KernelParams } from './params.js';

export const MAX_DIMS = 8;

export class LayoutError extends Error {
  override name = 'LayoutError';
}

export interface MergedLayout {
  /** Sizes, outer to inner (at least one dim). */
  readonly sizes: number[];
  /** Per operand, one stride per merged dim. */
  readonly strides: number[][];
}

export function mergeDims(shape: readonly number[], operands: readonly (readonly number[])[], op = 'kernel'): MergedLayout {
  const sizes: number[] = [];
  const strides: number[][] = operands.map(() => []);
  for (let d = shape.length - 1; d >= 0; d--) {
    const size = shape[d]!;
    if (size === 1) continue;
    const last = sizes.length - 1;
    const mergeable = last >= 0 && operands.every((s, k) => s[d] === strides[k]![0]! * sizes[0]!);
    if (mergeable) {
      sizes[0] = sizes[0]! * size;
    } else {
      sizes.unshift(size);
      operands.forEach((s, k) => strides[k]!.unshift(s[d]!));
    }
  }
  if (sizes.length === 0) {
    sizes.push(1);
    strides.forEach((s) => s.push(0));
  }
  if (sizes.length > MAX_DIMS) {
    throw new LayoutError(`${op}: a ${shape.length}-d strided layout still has ${sizes.length} dims after merging; CUDA elementwise kernels take at most ${MAX_DIMS} (make the input contiguous first)`);
  }
  return { sizes, strides };
}

/** Writes common.cuh's Dims: size[8], ndim. */
export function putDims(p: KernelParams, sizes: readonly number[]): KernelParams {
  const words = new Array<number>(MAX_DIMS + 1).fill(0);
  sizes.forEach((s, i) => { words[i] = s; });
  words[MAX_DIMS] = sizes.length;
  return p.i64Struct(words);
}

/** Writes common.cuh's Strides: stride[8], offset (elements). */
export function putStrides(p: KernelParams, strides: readonly number[], offset: number): KernelParams {
  const words = new Array<number>(MAX_DIMS + 1).fill(0);
  strides.forEach((s, i) => { words[i] = s; });
  words[MAX_DIMS] = offset;
  return p.i64Struct(words);
}

/** Largest element count or |offset| the 32-bit kernels take. */
export const INT32_LIMIT = 2 ** 31 - 1;
const TWO_32 = 4294967296;

const divisorCache = new Map<number, number>();

/**
 * Magic number and shift for dividing 32-bit values by `d` (1 <= d < 2^31) with a multiply-high,
 * an add and a shift: q = (umulhi(n, magic) + n) >> shift, exact for 0 <= n < 2^31
 * (Granlund-Montgomery with shift = ceil(log2 d), magic = floor(2^32 (2^shift - d) / d) + 1).
 * Returned packed as common.cuh fast_div reads it: magic + shift * 2^32.
 */
export function fastDivisor(d: number): number {
  const cached = divisorCache.get(d);
  if (cached !== undefined) return cached;
  if (!Number.isInteger(d) || d < 1 || d > INT32_LIMIT) throw new RangeError(`fastDivisor: divisor ${d} is not an integer in [1, 2^31)`);
  let shift = 0;
  while (2 ** shift < d) shift++;
  const magic = Number(((1n << 32n) * (2n ** BigInt(shift) - BigInt(d))) / BigInt(d) + 1n);
  // magic <= 2^32 - 1 for every d < 2^31 (2^shift < 2d keeps the quotient below 2^32 - 1).
  const word = magic + shift * TWO_32;
  divisorCache.set(d, word);
  return word;
}

/** floor(a * b / 2^32) for 32-bit unsigned a, b, exactly (the GPU's __umulhi). */
export function umulhi32(a: number, b: number): number {
  const bh = Math.floor(b / 65536);
  const bl = b % 65536;
  // a * b = a*bh*2^16 + a*bl; both partial products are below 2^48, so exact in doubles.
  return Math.floor((a * bh + Math.floor((a * bl) / 65536)) / 65536);
}

/** What common.cuh fast_div computes for 0 <= n < 2^31 (n / d for the d the word was made for). */
export function fastDivide(n: number, word: number): number {
  const magic = word % TWO_32;
  const shift = Math.floor(word / TWO_32);
  // The sum is below 2^32, as the kernel's unsigned add needs.
  return Math.floor((umulhi32(n, magic) + n) / 2 ** shift);
}

/** True when n and every operand's reachable offsets fit the 32-bit kernels. */
export function fitsInt32(layout: MergedLayout): boolean {
  let n = 1;
  for (const s of layout.sizes) n *= s;
  if (n > INT32_LIMIT) return false;
  return layout.strides.every((st) => st.reduce((acc, s, k) => acc + (layout.sizes[k]! - 1) * Math.abs(s), 0) <= INT32_LIMIT);
}

/** Operands of the kernels map common.cuh declares (the output first, then inputs). */
export const MAP_OPERANDS = 4;

/** Writes common.cuh's Map: size[8], magic[8], stride[4][8], ndim. */
export function putMap(p: KernelParams, layout: MergedLayout): KernelParams {
  const { sizes, strides } = layout;
  if (strides.length > MAP_OPERANDS) throw new LayoutError(`a map takes at most ${MAP_OPERANDS} operands, got ${strides.length}`);
  const words = new Array<number>(MAX_DIMS * (2 + MAP_OPERANDS) + 1).fill(0);
  sizes.forEach((s, k) => {
    words[k] = s;
    words[MAX_DIMS + k] = fastDivisor(s);
  });
  strides.forEach((st, j) => st.forEach((s, k) => { words[MAX_DIMS * (2 + j) + k] = s; }));
  words[MAX_DIMS * (2 + MAP_OPERANDS)] = sizes.length;
  return p.i64Struct(words);
}

/** One operand of a planned kernel: its element strides, device address and element bytes. */
export interface MapOperand {
  readonly strides: readonly number[];
  readonly address: number;
  readonly bytes: number;
}

export interface RowsPlan {
  readonly kind: 'rows';
  readonly layout: MergedLayout;
  /** Elements per thread step: 16 bytes of the widest operand. */
  readonly vec: number;
  /** VEC-element chunks in all, and per row (the innermost dim). */
  readonly chunks: number;
  readonly rowChunks: number;
  /** Elements after the last whole chunk (only a one-row layout has them). */
  readonly tail: number;
  /** Bit j set: operand j is broadcast (stride 0) along the innermost dim. */
  readonly bcast: number;
}

export interface StridedPlan {
  readonly kind: 'strided';
  readonly layout: MergedLayout;
}

export interface WidePlan {
  readonly kind: 'wide';
}

export interface TilePlan {
  readonly kind: 'tile';
  /** The dims other than the two tiled ones (operand 0 the destination, 1 the source). */
  readonly batch: MergedLayout;
  /** The tiled dims: `p` unit-stride in the source, `q` unit-stride in the destination. */
  readonly sizeP: number;
  readonly sizeQ: number;
  readonly srcP: number;
  readonly srcQ: number;
  readonly dstP: number;
  readonly dstQ: number;
  readonly tilesP: number;
  readonly tilesQ: number;
  readonly tiles: number;
}

export type MapPlan = RowsPlan | StridedPlan | WidePlan;
export type CopyPlan = MapPlan | TilePlan;

/** Side of copy.cu's square transpose tiles. */
export const TILE = 32;
/** Smallest tiled dims worth a tile (smaller ones leave most of each tile idle). */
const MIN_TILE_DIM = 8;

function rowsPlan(layout: MergedLayout, operands: readonly MapOperand[]): RowsPlan | null {
  const { sizes, strides } = layout;
  const k = sizes.length - 1;
  const vec = 16 / Math.max(...operands.map((o) => o.bytes));
  if (!Number.isInteger(vec) || vec < 2) return null;
  if (strides[0]![k] !== 1) return null;
  const inner = sizes[k]!;
  let rows = 1;
  for (let d = 0; d < k; d++) rows *= sizes[d]!;
  if (rows > 1 && inner % vec !== 0) return null;
  let bcast = 0;
  for (let j = 0; j < operands.length; j++) {
    const s = strides[j]!;
    if (s[k] === 0) {
      bcast |= 1 << j;
      continue;
    }
    if (s[k] !== 1) return null;
    if (operands[j]!.address % (vec * operands[j]!.bytes) !== 0) return null;
    for (let d = 0; d < k; d++) if (s[d]! % vec !== 0) return null;
  }
  const rowChunks = Math.floor(inner / vec);
  return { kind: 'rows', layout, vec, chunks: rows * rowChunks, rowChunks, tail: rows === 1 ? inner % vec : 0, bcast };
}

/**
 * The kernel shape for an elementwise map over `shape` (operand 0 the output). Throws
 * LayoutError when the merged layout has more than 8 dims.
 */
export function planMap(shape: readonly number[], operands: readonly MapOperand[], op = 'kernel'): MapPlan {
  const layout = mergeDims(shape, operands.map((o) => o.strides), op);
  if (!fitsInt32(layout)) return { kind: 'wide' };
  return rowsPlan(layout, operands) ?? { kind: 'strided', layout };
}

/**
 * The kernel shape for a copy from `src` into `dst` over `shape`: as planMap, plus the tiled
 * transpose (when `tile` allows it). `rows` false keeps the vector kernel out (casts without one).
 */
export function planCopy(shape: readonly number[], dst: MapOperand, src: MapOperand,
    options: { rows: boolean; tile: boolean }, op = 'copy'): CopyPlan {
  const layout = mergeDims(shape, [dst.strides, src.strides], op);
  if (!fitsInt32(layout)) return { kind: 'wide' };
  const rows = options.rows ? rowsPlan(layout, [dst, src]) : null;
  if (rows) return rows;
  if (options.tile) {
    const { sizes, strides } = layout;
    const [ds, ss] = [strides[0]!, strides[1]!];
    let q = -1;
    let p = -1;
    for (let d = 0; d < sizes.length; d++) {
      if (Math.abs(ds[d]!) === 1) q = d;
      if (Math.abs(ss[d]!) === 1) p = d;
    }
    if (p >= 0 && q >= 0 && p !== q && sizes[p]! >= MIN_TILE_DIM && sizes[q]! >= MIN_TILE_DIM) {
      const others = sizes.map((_, d) => d).filter((d) => d !== p && d !== q);
      const batch: MergedLayout = { sizes: others.map((d) => sizes[d]!), strides: [others.map((d) => ds[d]!), others.map((d) => ss[d]!)] };
      const tilesP = Math.ceil(sizes[p]! / TILE);
      const tilesQ = Math.ceil(sizes[q]! / TILE);
      const count = batch.sizes.reduce((a, b) => a * b, 1);
      if (count * tilesP * tilesQ <= INT32_LIMIT) return {
        kind: 'tile', batch, sizeP: sizes[p]!, sizeQ: sizes[q]!, srcP: ss[p]!, srcQ: ss[q]!, dstP: ds[p]!, dstQ: ds[q]!,
        tilesP, tilesQ, tiles: count * tilesP * tilesQ,
      };
    }
  }
  return { kind: 'strided', layout };
}

/** Writes common.cuh's Rows: rowMagic, rowChunks, chunks, tail, bcast. */
export function putRows(p: KernelParams, plan: RowsPlan): KernelParams {
  return p.i64Struct([fastDivisor(Math.max(1, plan.rowChunks)), plan.rowChunks, plan.chunks, plan.tail, plan.bcast]);
}

/** Writes copy.cu's Tile: sizes, strides and tile counts of the two tiled dims, with magics. */
export function putTile(p: KernelParams, plan: TilePlan): KernelParams {
  return p.i64Struct([plan.sizeP, plan.sizeQ, plan.srcP, plan.srcQ, plan.dstP, plan.dstQ, plan.tilesP, plan.tilesQ,
    fastDivisor(plan.tilesP), fastDivisor(plan.tilesQ), plan.tiles]);
}

/** Threads' work items a plan launches over (the grid-stride loop's bound). */
export function planItems(plan: RowsPlan | StridedPlan, n: number): number {
  return plan.kind === 'rows' ? Math.max(plan.chunks, plan.tail) : n;
}
