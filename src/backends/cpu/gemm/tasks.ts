/**
 * GEMM work that runs on every thread of the CPU pool (see ../threads). Addresses and sizes
 * travel as task arguments; operands are already in the shared heap. Tasks touch the heap only
 * through wasm (see pack-kernel.ts for why).
 */

import { defineTask } from '../threads/index.js';
import { computeTile, gemmOnThread, LAYOUT_ARGS, layoutFromArgs, packItem } from './blocked.js';
import { taskHeap } from './heap.js';

/** One large problem, raw operands copied in: threads claim packing items. args = layoutArgs(p). */
export const gemmPack = defineTask(import.meta.url, 'gemmPack', (args, ctx) => {
  const { kernel } = taskHeap(ctx);
  const p = layoutFromArgs(args);
  for (let item = ctx.claim(); item >= 0; item = ctx.claim()) packItem(kernel, p, item);
});

/** One large problem, packed: threads claim tiles of C. args = layoutArgs(p). */
export const gemmTiles = defineTask(import.meta.url, 'gemmTiles', (args, ctx) => {
  const { kernel } = taskHeap(ctx);
  const p = layoutFromArgs(args);
  for (let item = ctx.claim(); item >= 0; item = ctx.claim()) computeTile(kernel, p, item);
});

/** Arguments of `gemmBatch` after the layout template (all byte addresses / byte strides). */
export interface BatchArgs {
  /** Entry 0's raw A in the heap and the distance between entries (0: one A for all). */
  rawA: number; rawStrideA: number;
  rawB: number; rawStrideB: number;
  /** Per-thread packing scratch: start and size per thread. */
  scratch: number; scratchBytes: number;
  /** Entry 0's C buffer and the bytes per entry. */
  cRegion: number; cBytes: number;
}

export function batchArgs(b: BatchArgs): number[] {
  return [b.rawA, b.rawStrideA, b.rawB, b.rawStrideB, b.scratch, b.scratchBytes, b.cRegion, b.cBytes];
}

/**
 * Many small problems: threads claim whole batch entries, pack them into their own scratch
 * and compute them there. args = [...layoutArgs(template planned at 0 without raw), ...batchArgs].
 */
export const gemmBatch = defineTask(import.meta.url, 'gemmBatch', (args, ctx) => {
  const { kernel } = taskHeap(ctx);
  const tpl = layoutFromArgs(args);
  const v = (i: number): number => args[LAYOUT_ARGS + i]!;
  const [rawA, rawStrideA, rawB, rawStrideB, scratch, scratchBytes, cRegion, cBytes] = [v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7)];
  const base = scratch + ctx.thread * scratchBytes;
  for (let e = ctx.claim(); e >= 0; e = ctx.claim()) {
    gemmOnThread(kernel, {
      ...tpl, rawA: rawA + e * rawStrideA, rawB: rawB + e * rawStrideB,
      aBase: base + tpl.aBase, bBase: base + tpl.bBase, cBase: cRegion + e * cBytes,
    });
  }
});
