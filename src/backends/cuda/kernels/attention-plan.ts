/**
 * Launch geometry for attention.cu, kept free of the FFI so it can be tested without a GPU: which
 * calls the fused kernels take (the rest fall back to the composed path), the padded head dim,
 * tile shapes (mirroring fwd_warps / fwd_keys / bwd_queries in attention.cu), grids, dynamic
 * shared memory and the backward's query split.
 */
import type { DType } from '../../../tensor/dtype.js';

/** Largest head dim the kernels take (registers hold D / 2 accumulators per thread and operand). */
export const MAX_HEAD_DIM = 128;
/** Shared memory a block may use without opting in (cuFuncSetAttribute). */
export const DEFAULT_SHARED_BYTES = 48 * 1024;

export type FlashDType = 'bfloat16' | 'float16';

export interface AttentionShape {
  readonly batch: number;
  readonly heads: number;
  readonly lq: number;
  readonly lk: number;
  /** Head dim of q and k. */
  readonly e: number;
  /** Head dim of v. */
  readonly ev: number;
}

export interface DeviceLimits {
  /** Compute capability as major * 10 + minor. */
  readonly arch: number;
  readonly multiprocessors: number;
  /** Shared memory one block may opt in to. */
  readonly maxSharedPerBlock: number;
}

export interface KernelLaunch {
  readonly kernel: string;
  readonly grid: number;
  readonly threads: number;
  readonly sharedBytes: number;
}

export interface AttentionPlan {
  /** Head dim padded to a multiple of 16 (the kernel instantiation). */
  readonly headDim: number;
  readonly suffix: 'bf16' | 'f16';
  readonly forward: KernelLaunch & { readonly queriesPerBlock: number; readonly keysPerTile: number };
  readonly backward: KernelLaunch & {
    readonly keysPerBlock: number;
    readonly queriesPerTile: number;
    readonly splits: number;
    /**
     * One key tile: each dQ row has a single contributing block, which stores it directly (no
     * float32 accumulator to zero, reduce into and convert).
     */
    readonly dqDirect: boolean;
  };
  /** One warp per query row. */
  readonly prep: KernelLaunch;
  readonly convert: string;
}

export const SUFFIX: Readonly<Record<FlashDType, 'bf16' | 'f16'>> = { bfloat16: 'bf16', float16: 'f16' };

export function paddedHeadDim(e: number): number {
  return Math.ceil(e / 16) * 16;
}

/** Forward tiles: 4 warps of 2 x 16 query rows; 64 keys per tile (32 above D = 96, for registers). */
export function forwardTiles(d: number): { warps: number; queries: number; keys: number } {
  const warps = 4;
  return { warps, queries: warps * 16 * 2, keys: d <= 96 ? 64 : 32 };
}

/** Backward tiles: 8 warps of 16 keys; 64 queries per step (32 above D = 96). */
export function backwardTiles(d: number): { warps: number; keys: number; queries: number } {
  const warps = 8;
  return { warps, keys: warps * 16, queries: d <= 96 ? 64 : 32 };
}

export function forwardSharedBytes(d: number): number {
  const { queries, keys } = forwardTiles(d);
  return (queries + 2 * keys) * (d + 8) * 2 + keys * 4;
}

export function backwardSharedBytes(d: number): number {
  const { keys, queries } = backwardTiles(d);
  return (2 * keys + 4 * queries) * (d + 8) * 2 + keys * (queries + 8) * 2 + 4 * queries * 4;
}

/**
 * Why the fused kernels cannot take this call (the op then composes matmul and softmax), or null.
 * float32 and float64 stay on the composed path: it is cuBLAS-bound there anyway and keeps the
 * CPU reference's rounding.
 */
export function unsupportedReason(dtype: DType, shape: AttentionShape, maskDType: DType | null, limits: DeviceLimits): string | null {
  if (dtype !== 'bfloat16' && dtype !== 'float16') return `dtype ${dtype} (fused attention takes bfloat16 and float16)`;
  if (limits.arch < 80) return `compute capability ${limits.arch / 10} (mma.sync bf16 and cp.async need 8.0)`;
  const { e, ev } = shape;
  if (e !== ev) return `head dims differ (q/k ${e}, v ${ev})`;
  if (e < 8 || e > MAX_HEAD_DIM || e % 8 !== 0) return `head dim ${e} (fused attention takes multiples of 8 up to ${MAX_HEAD_DIM})`;
  if (maskDType !== null && maskDType !== dtype) return `mask dtype ${maskDType} differs from ${dtype}`;
  const d = paddedHeadDim(e);
  const need = Math.max(forwardSharedBytes(d), backwardSharedBytes(d));
  if (need > limits.maxSharedPerBlock) return `needs ${need} bytes of shared memory per block, the device allows ${limits.maxSharedPerBlock}`;
  return null;
}

/**
 * Blocks of the backward split the query range when key tiles alone would leave the GPU short of
 * two blocks per multiprocessor (cross-attention over a short caption); dK and dV then reduce
 * through float32 accumulators.
 */
export function backwardSplits(blocks: number, queryTiles: number, multiprocessors: number): number {
  const target = 2 * multiprocessors;
  if (blocks <= 0 || queryTiles <= 1 || blocks >= target) return 1;
  const splits = Math.min(queryTiles, Math.ceil(target / blocks));
  // Equal shares: drop splits that would leave the last one empty.
  const per = Math.ceil(queryTiles / splits);
  return Math.ceil(queryTiles / per);
}

export function planAttention(dtype: FlashDType, shape: AttentionShape, multiprocessors: number): AttentionPlan {
  const { batch, heads, lq, lk, e } = shape;
  const d = paddedHeadDim(e);
  const suffix = SUFFIX[dtype];
  const bh = batch * heads;
  const f = forwardTiles(d);
  const bt = backwardTiles(d);
  const keyTiles = Math.ceil(lk / bt.keys);
  const queryTiles = Math.ceil(lq / bt.queries);
  const splits = backwardSplits(bh * keyTiles, queryTiles, multiprocessors);
  const prepWarps = 8;
  return {
    headDim: d,
    suffix,
    forward: {
      kernel: `attn_fwd_${suffix}_d${d}`,
      grid: bh * Math.ceil(lq / f.queries),
      threads: f.warps * 32,
      sharedBytes: forwardSharedBytes(d),
      queriesPerBlock: f.queries,
      keysPerTile: f.keys,
    },
    backward: {
      kernel: `attn_bwd_${suffix}_d${d}`,
      grid: bh * keyTiles * splits,
      threads: bt.warps * 32,
      sharedBytes: backwardSharedBytes(d),
      keysPerBlock: bt.keys,
      queriesPerTile: bt.queries,
      splits,
      dqDirect: keyTiles === 1,
    },
    prep: { kernel: `attn_bwd_prep_${suffix}`, grid: Math.ceil((bh * lq) / prepWarps), threads: prepWarps * 32, sharedBytes: 0 },
    convert: `attn_convert_${suffix}`,
  };
}

/** Element strides (batch, head, row) the kernels can read or write in place, else null. */
export function headStrides(shape: readonly number[], strides: readonly number[], offset: number): [number, number, number] | null {
  if (shape.length !== 4) return null;
  // A dim of size 1 is never stepped along: its stride is irrelevant (an expand may leave 0 there).
  const s = strides.map((st, i) => (shape[i] === 1 ? 0 : st));
  if (shape[3]! > 1 && s[3] !== 1) return null;
  // 16-byte rows for cp.async and 4-byte pairs for the stores: every step a multiple of 8 elements.
  if (offset % 8 !== 0 || s[0]! % 8 !== 0 || s[1]! % 8 !== 0 || s[2]! % 8 !== 0) return null;
  if (s[0]! < 0 || s[1]! < 0 || s[2]! < 0) return null;
  return [s[0]!, s[1]!, s[2]!];
}

export type MaskKind = 0 | 1 | 2;
export const MASK_NONE: MaskKind = 0;
export const MASK_KEYS: MaskKind = 1;
export const MASK_FULL: MaskKind = 2;

/**
 * How the kernels read the additive mask (viewed as [B, H, Lq, Lk] by strides): a row per
 * (batch, head) when it does not vary over queries (key padding), else element by element.
 */
export function maskKind(mask: { shape: readonly number[]; strides: readonly number[] } | null): MaskKind {
  if (!mask) return MASK_NONE;
  const queryStride = mask.shape[2] === 1 ? 0 : mask.strides[2]!;
  return queryStride === 0 ? MASK_KEYS : MASK_FULL;
}

/** The mask's (batch, head, query, key) strides with size-1 dims zeroed. */
export function maskStrides(mask: { shape: readonly number[]; strides: readonly number[] }): [number, number, number, number] {
  const s = mask.strides.map((st, i) => (mask.shape[i] === 1 ? 0 : st));
  return [s[0]!, s[1]!, s[2]!, s[3]!];
}
