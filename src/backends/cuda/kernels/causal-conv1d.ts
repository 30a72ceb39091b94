/**
 * Launchers for causal-conv1d.cu: depthwise causal conv1d over x [B, D, L] with weight [D, K],
 * optional bias [D] and SiLU fused. x, out, gy and gx are read and written through their strides
 * (no copies) when they are in the kernel's storage type, which is x's dtype except when a
 * float64 weight makes the compute float64. The weight and bias are read in their own dtypes
 * (the kernels convert them in registers, so no cast launch precedes a call); their gradients
 * are summed in the compute type. The thread layout follows x's memory order
 * (causalConv1dGeometry).
 */
import type { Kernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { itemSize, type DType } from '../../../tensor/dtype.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { Scratch, computeType, sharedType } from './scratch.js';
import { CAUSAL_CONV1D_MODULE, DTYPE_CODE, DTYPE_SUFFIX } from './source.js';

/** One [B, D, L] operand as the kernel sees it: element strides and its first element's address. */
export interface ConvOperand {
  readonly strides: readonly number[];
  readonly address: number;
}

export interface CausalConv1dGeometry {
  /** 'walk': threads along channels walking time chunks (K <= 4); 'direct': one thread per time step. */
  readonly kind: 'walk' | 'direct';
  /** Channels per thread (walk; vector loads when > 1). */
  readonly vec: 1 | 2 | 4;
  /** Time steps per thread (walk). */
  readonly chunk: number;
  /** Walk block: bx channel groups by `by` time chunks. */
  readonly bx: number;
  readonly by: number;
  readonly groupBlocks: number;
  readonly chunkBlocks: number;
  /** Direct: time tiles per row (a block each). */
  readonly tiles: number;
  readonly blocks: number;
  readonly threads: number;
  /** Rows of per-block partial sums the backward writes (gw, gbias), summed by cc1d_reduce. */
  readonly partialRows: number;
}

/**
 * Channels per thread the walk kernels try first (then smaller), the time chunk range, and the
 * forward's block size and residency.
 */
export const causalConv1dTuning = {
  // The backward at V = 4 needs ~150 registers a thread (one 256-thread block per SM); V = 2 ~90.
  forwardVec: 4 as 1 | 2 | 4,
  backwardVec: 2 as 1 | 2 | 4,
  maxChunk: 64,
  /** Chunks shrink (from maxChunk) down to this while the grid has fewer than 2048 threads an SM. */
  minChunk: 16,
  /** Below minChunk, down to this, only while the halved-chunk grid still fits in one resident wave. */
  smallChunk: 8,
  /**
   * Forward threads a block: small blocks spread a small grid evenly (B2 x D2304 x L1024 is 1152
   * blocks of 64, 8.7 an SM, against 288 blocks of 256 before: 2 or 3 an SM, 1.4x apart).
   */
  forwardThreads: 64,
  /**
   * Forward threads one SM holds at once: the V = 4 forward uses 95 (bf16) to 104 (f16) registers
   * on sm_90, so 9-10 blocks of 64 fit 65536 registers; 640 is the bf16 figure.
   */
  forwardResidentThreads: 640,
};

const MAX_THREADS = 256;
const MAX_WALK_TAPS = 4;
const INT32_MAX = 2 ** 31 - 1;

/**
 * True when x's channels are closer in memory than its time steps (the mixer's [B, D, L] view
 * of a [B, L, 2D] buffer). A size-1 dim's stride is arbitrary, so it never decides.
 */
export function isChannelLast(shape: readonly number[], strides: readonly number[]): boolean {
  const sd = shape[1] === 1 ? Infinity : Math.abs(strides[1]!);
  const st = shape[2] === 1 ? Infinity : Math.abs(strides[2]!);
  return sd < st;
}

function vecFits(v: number, shape: readonly number[], ops: readonly ConvOperand[], item: number): boolean {
  const [batch, dim, len] = shape as [number, number, number];
  if (dim % v !== 0) return false;
  return ops.every((o) => o.strides[1] === 1 && (batch === 1 || o.strides[0]! % v === 0)
    && (len === 1 || o.strides[2]! % v === 0) && o.address % (v * item) === 0);
}

/**
 * The launch for x [B, D, L] with K taps. `ops` are every strided operand the kernel touches
 * (x first; then out, or gy and gx), `sms` the card's multiprocessors. Pure, for tests.
 */
export function causalConv1dGeometry(shape: readonly number[], taps: number, ops: readonly ConvOperand[], item: number,
  sms: number, backward: boolean): CausalConv1dGeometry {
  const [batch, dim, len] = shape as [number, number, number];
  for (const [name, v] of [['batch', batch], ['dim', dim], ['L', len], ['K', taps]] as const) {
    if (!(Number.isInteger(v) && v >= 1 && v <= INT32_MAX)) throw new RangeError(`causalConv1d (cuda): ${name} = ${v} is outside [1, 2^31)`);
  }
  if (dim * (taps + 1) > INT32_MAX) throw new RangeError(`causalConv1d (cuda): dim * (K + 1) = ${dim * (taps + 1)} exceeds 2^31 - 1`);
  const none = { vec: 1 as const, chunk: 0, bx: 0, by: 0, groupBlocks: 0, chunkBlocks: 0, tiles: 0 };
  if (taps > MAX_WALK_TAPS || !isChannelLast(shape, ops[0]!.strides)) {
    const threads = Math.min(MAX_THREADS, Math.ceil(len / 32) * 32);
    const tiles = Math.ceil(len / threads);
    const blocks = batch * dim * tiles;
    if (blocks > INT32_MAX) throw new RangeError(`causalConv1d (cuda): ${blocks} blocks exceed 2^31 - 1`);
    return { ...none, kind: 'direct', tiles, blocks, threads, partialRows: batch * tiles };
  }
  const tune = causalConv1dTuning;
  const want = item === 8 ? 1 : backward ? tune.backwardVec : tune.forwardVec;
  const vec = ([4, 2, 1] as const).find((v) => v <= want && vecFits(v, shape, ops, item)) ?? 1;
  const groups = dim / vec;
  const threadsFor = (c: number) => batch * Math.ceil(len / c) * groups;
  // Long chunks re-read fewer halo steps (K-1 per chunk); shorter ones give enough threads.
  let chunk = tune.maxChunk;
  while (chunk > tune.minChunk && threadsFor(chunk) < sms * 2048) chunk /= 2;
  // A small grid (batch 1-2 at the mixer's widths) halves again while the halved grid still runs
  // in one wave: more warps an SM at no extra wave. Past that, shorter threads only add waves.
  if (!backward) {
    while (chunk > tune.smallChunk && threadsFor(chunk) < sms * 2048 && threadsFor(chunk / 2) <= sms * tune.forwardResidentThreads) {
      chunk /= 2;
    }
  }
  chunk = Math.min(chunk, len);
  const chunks = Math.ceil(len / chunk);
  // Whole warps (idle lanes past D are cheap); the backward's 64 groups x 4 chunks for the
  // mixer's widths, whose per-block partial sums shrink with more chunks a block.
  const blockThreads = backward ? MAX_THREADS : Math.min(MAX_THREADS, Math.max(32, tune.forwardThreads));
  const bx = Math.min(64, Math.ceil(groups / 32) * 32);
  const by = Math.min(Math.max(1, Math.floor(blockThreads / bx)), chunks);
  const groupBlocks = Math.ceil(groups / bx);
  const chunkBlocks = Math.ceil(chunks / by);
  const blocks = groupBlocks * chunkBlocks * batch;
  if (blocks > INT32_MAX) throw new RangeError(`causalConv1d (cuda): ${blocks} blocks exceed 2^31 - 1`);
  return { kind: 'walk', vec, chunk, bx, by, groupBlocks, chunkBlocks, tiles: 0, blocks, threads: bx * by, partialRows: batch * chunkBlocks };
}

function operand(t: Tensor): ConvOperand {
  return { strides: t.strides, address: addressOf(t) };
}

/** The kernels' parameter dtype code (common.cuh's codes) for a weight or bias, refusing non-floating ones. */
export function paramCode(name: string, dtype: DType): number {
  if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'bfloat16' && dtype !== 'float16') {
    throw new TypeError(`causalConv1d (cuda): ${name} must be float32, float64, bfloat16 or float16, got ${dtype}`);
  }
  return DTYPE_CODE[dtype];
}

export function causalConv1dKernels(rt: CudaRuntime): Pick<Kernels, 'causalConv1d' | 'causalConv1dBackward'> {
  const sms = rt.info.multiprocessors;
  return {
    causalConv1d(x0, weight0, bias0, silu, out0) {
      if (x0.numel === 0) return;
      const [, dim, len] = x0.shape as [number, number, number];
      const taps = weight0.shape[1]!;
      const s = new Scratch(rt);
      const compute = computeType(x0, weight0, bias0);
      const storage = sharedType(compute, x0);
      // Same dtype: the kernel reads and writes the views themselves; otherwise contiguous casts.
      const x = x0.dtype === storage ? x0 : s.input(x0, storage);
      const out = out0.dtype === storage ? out0 : s.output(out0, storage);
      // In their own dtypes (contiguous, as the op passes them): the kernel converts while loading.
      const w = s.input(weight0);
      const bias = bias0 ? s.input(bias0) : null;
      const g = causalConv1dGeometry(x.shape, taps, [operand(x), operand(out)], itemSize(storage), sms, false);
      const p = rt.params.begin().ptr(addressOf(x)).i64(x.strides[0]!).i64(x.strides[1]!).i64(x.strides[2]!)
        .ptr(addressOf(w)).i32(paramCode('weight', w.dtype)).ptr(bias ? addressOf(bias) : 0).i32(bias ? paramCode('bias', bias.dtype) : 0)
        .ptr(addressOf(out)).i64(out.strides[0]!).i64(out.strides[1]!).i64(out.strides[2]!).i32(dim).i32(len);
      const suffix = DTYPE_SUFFIX[storage];
      let name: string;
      if (g.kind === 'walk') {
        p.i32(g.chunk).i32(g.bx).i32(g.groupBlocks).i32(g.chunkBlocks).i32(silu ? 1 : 0);
        name = `cc1d_fwd_walk_${suffix}_k${taps}_v${g.vec}`;
      } else {
        p.i32(taps).i32(g.tiles).i32(silu ? 1 : 0);
        name = `cc1d_fwd_direct_${suffix}`;
      }
      rt.launch(rt.fn(CAUSAL_CONV1D_MODULE, name), g.blocks, g.threads);
      s.finish();
    },

    causalConv1dBackward(x0, weight0, bias0, silu, gy0, gx0, gw0, gbias0) {
      const [, dim, len] = x0.shape as [number, number, number];
      const taps = weight0.shape[1]!;
      const s = new Scratch(rt);
      const compute = computeType(x0, weight0, bias0);
      const storage = sharedType(compute, x0, gy0);
      // Nothing to sum over (B or L is 0): the weight and bias gradients are zero.
      const empty = x0.numel === 0;
      const gw = s.output(gw0, compute, empty);
      const gb = gbias0 ? s.output(gbias0, compute, empty) : null;
      if (!empty) {
        const x = x0.dtype === storage ? x0 : s.input(x0, storage);
        const gy = gy0.dtype === storage ? gy0 : s.input(gy0, storage);
        const gx = gx0.dtype === storage ? gx0 : s.output(gx0, storage);
        const w = s.input(weight0);
        const bias = bias0 ? s.input(bias0) : null;
        const g = causalConv1dGeometry(x.shape, taps, [operand(x), operand(gy), operand(gx)], itemSize(storage), sms, true);
        const partial = s.buffer(x0, [g.partialRows, dim, taps + 1], compute);
        const p = rt.params.begin().ptr(addressOf(x)).i64(x.strides[0]!).i64(x.strides[1]!).i64(x.strides[2]!)
          .ptr(addressOf(w)).i32(paramCode('weight', w.dtype)).ptr(bias ? addressOf(bias) : 0).i32(bias ? paramCode('bias', bias.dtype) : 0)
          .ptr(addressOf(gy)).i64(gy.strides[0]!).i64(gy.strides[1]!).i64(gy.strides[2]!)
          .ptr(addressOf(gx)).i64(gx.strides[0]!).i64(gx.strides[1]!).i64(gx.strides[2]!)
          .ptr(addressOf(partial)).i32(dim).i32(len);
        const suffix = DTYPE_SUFFIX[storage];
        let name: string;
        if (g.kind === 'walk') {
          p.i32(g.chunk).i32(g.bx).i32(g.groupBlocks).i32(g.chunkBlocks).i32(silu ? 1 : 0);
          name = `cc1d_bwd_walk_${suffix}_k${taps}_v${g.vec}`;
        } else {
          p.i32(taps).i32(g.tiles).i32(silu ? 1 : 0);
          name = `cc1d_bwd_direct_${suffix}`;
        }
        rt.launch(rt.fn(CAUSAL_CONV1D_MODULE, name), g.blocks, g.threads);
        const n = dim * (taps + 1);
        rt.params.begin().ptr(addressOf(partial)).i32(g.partialRows).i32(dim).i32(taps).ptr(addressOf(gw)).ptr(gb ? addressOf(gb) : 0);
        rt.launch(rt.fn(CAUSAL_CONV1D_MODULE, `cc1d_reduce_${compute === 'float64' ? 'f64' : 'f32'}`), Math.ceil(n / 256), 256);
      }
      s.finish();
    },
  };
}
