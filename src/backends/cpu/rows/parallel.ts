/**
 * Row-parallel kernels on the thread pool: the arrays of a [rows, cols] problem are copied into
 * the kernel arena (float32 or float64, as given), threads claim blocks of rows and run the same
 * row loop the single-threaded kernel runs, and the outputs are copied back. Each row is computed
 * by one thread with the same code, so results do not depend on the thread count.
 *
 * Job arguments: [rows, rowBlock, arrays, (byteOffset, elements, bytesPer) per array, ...extra].
 */

import type { NumArray } from '../access.js';
import { ArenaLayout, KERNEL_ARENA, MAX_ARENA_BYTES, arenaBuffer, floatView, kernelArena } from '../arena.js';
import type { TaskContext, TaskRef, ThreadPool } from '../threads/index.js';

/** Elements per claimed block of rows: tens of microseconds of work, many blocks per thread. */
const BLOCK_ELEMENTS = 1 << 14;

export interface RowArray {
  readonly data: NumArray;
  /** Copied back into `data` after the job (else only copied in). */
  readonly output: boolean;
}

const HEADER = 3;
const PER_ARRAY = 3;

/** Runs `task` over the rows on `pool`; false (nothing done) when the arrays would not fit the arena. */
export function runRowsOnPool(pool: ThreadPool, task: TaskRef, rows: number, cols: number, arrays: readonly RowArray[], extra: readonly number[]): boolean {
  const layout = new ArenaLayout();
  const placed = arrays.map((a) => {
    const bytesPer = a.data.BYTES_PER_ELEMENT === 4 ? 4 : 8;
    return { ...a, bytesPer, at: layout.reserve(a.data.length, bytesPer) };
  });
  if (layout.bytes > MAX_ARENA_BYTES) return false;
  const buffer = kernelArena.prepare(pool, layout.bytes);
  const views = placed.map((p) => floatView(buffer, p.at, p.data.length, p.bytesPer));
  placed.forEach((p, i) => {
    if (!p.output) views[i]!.set(p.data);
  });
  const rowBlock = Math.max(1, Math.floor(BLOCK_ELEMENTS / Math.max(1, cols)));
  const args = [rows, rowBlock, placed.length, ...placed.flatMap((p) => [p.at, p.data.length, p.bytesPer]), ...extra];
  pool.run(task, args, Math.ceil(rows / rowBlock));
  placed.forEach((p, i) => {
    if (p.output) p.data.set(views[i]!);
  });
  return true;
}

export interface RowJob {
  readonly arrays: NumArray[];
  /** The `extra` arguments. */
  readonly extra: Float64Array;
  /** Calls fn(r0, r1) for every block of rows this thread claims. */
  forBlocks(fn: (r0: number, r1: number) => void): void;
}

export function rowJob(args: Float64Array, ctx: TaskContext): RowJob {
  const [rows, rowBlock, count] = [args[0]!, args[1]!, args[2]!];
  const buffer = arenaBuffer(ctx, KERNEL_ARENA);
  const arrays: NumArray[] = [];
  for (let i = 0; i < count; i++) {
    const at = HEADER + PER_ARRAY * i;
    arrays.push(floatView(buffer, args[at]!, args[at + 1]!, args[at + 2]!));
  }
  return {
    arrays,
    extra: args.subarray(HEADER + PER_ARRAY * count),
    forBlocks: (fn) => {
      for (let item = ctx.claim(); item >= 0; item = ctx.claim()) fn(item * rowBlock, Math.min(rows, (item + 1) * rowBlock));
    },
  };
}
