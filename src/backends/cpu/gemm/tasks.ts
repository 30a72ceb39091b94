/**
 * GEMM work that runs on every thread of the CPU pool (see ../threads). Addresses and sizes
 * travel as task arguments; operands are already in the shared heap.
 */

import { defineTask } from '../threads/index.js';
import { computeTile, LAYOUT_ARGS, layoutFromArgs, packOperands } from './blocked.js';
import { taskHeap } from './heap.js';

/** One large problem, already packed: threads claim tiles of C. args = layoutArgs(p). */
export const gemmTiles = defineTask(import.meta.url, 'gemmTiles', (args, ctx) => {
  const { kernel } = taskHeap(ctx);
  const p = layoutFromArgs(args);
  for (let item = ctx.claim(); item >= 0; item = ctx.claim()) computeTile(kernel, p, item);
});

/** Arguments of `gemmBatch` after the layout template. */
export interface BatchArgs {
  /** Float index in the heap of entry 0's A (raw, caller layout), the batch stride, lda, transposed. */
  rawA: number; strideA: number; lda: number; transA: boolean;
  rawB: number; strideB: number; ldb: number; transB: boolean;
  /** Byte address of per-thread packing scratch and its size per thread. */
  scratch: number; scratchBytes: number;
  /** Byte address of entry 0's C buffer and the bytes per entry. */
  cRegion: number; cBytes: number;
}

export function batchArgs(b: BatchArgs): number[] {
  return [b.rawA, b.strideA, b.lda, b.transA ? 1 : 0, b.rawB, b.strideB, b.ldb, b.transB ? 1 : 0,
    b.scratch, b.scratchBytes, b.cRegion, b.cBytes];
}

/**
 * Many small problems: threads claim whole batch entries, each packed into the thread's own
 * scratch and computed there. args = [...layoutArgs(template at base 0), ...batchArgs].
 */
export const gemmBatch = defineTask(import.meta.url, 'gemmBatch', (args, ctx) => {
  const heap = taskHeap(ctx);
  const tpl = layoutFromArgs(args);
  const v = (i: number): number => args[LAYOUT_ARGS + i]!;
  const [rawA, strideA, lda, transA, rawB, strideB, ldb, transB, scratch, scratchBytes, cRegion, cBytes] =
    [v(0), v(1), v(2), v(3) === 1, v(4), v(5), v(6), v(7) === 1, v(8), v(9), v(10), v(11)];
  const base = scratch + ctx.thread * scratchBytes;
  const tiles = tpl.mTiles * tpl.nTiles;
  for (let e = ctx.claim(); e >= 0; e = ctx.claim()) {
    const f32 = heap.view();
    const p = { ...tpl, aBase: base + tpl.aBase, bBase: base + tpl.bBase, cBase: cRegion + e * cBytes };
    packOperands(f32,
      p,
      { data: f32, offset: rawA + e * strideA, ld: lda, wContiguous: transA },
      { data: f32, offset: rawB + e * strideB, ld: ldb, wContiguous: !transB });
    for (let t = 0; t < tiles; t++) computeTile(heap.kernel, p, t);
  }
});
