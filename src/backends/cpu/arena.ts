/**
 * Shared scratch memory for kernels that run on the thread pool (see threads/). Pool tasks can
 * only see memory that was shared with them, so a threaded kernel copies its operands into an
 * arena, lets the threads work there and copies the results out. The copies are O(elements)
 * against kernels that do much more work per element (the selective scan: N state updates).
 *
 * An arena is one SharedArrayBuffer that only grows (kept at the largest size a call needed, so
 * steady-state training allocates nothing). The main thread lays a call's regions out with
 * `ArenaLayout` and passes their byte offsets as task arguments; tasks find the buffer under the
 * arena's key. A grown buffer is shared again before the next job; workers read announcements
 * before joining a job, so they never see a stale buffer.
 */

import { ThreadPool, type TaskContext } from './threads/index.js';

export class ArenaError extends Error {
  override name = 'ArenaError';
}

/** Regions start on cache-line boundaries, so threads writing neighbouring regions do not share lines. */
const ALIGN = 64;

/** Bump allocation of regions within one call's arena use. */
export class ArenaLayout {
  bytes = 0;

  /** Reserves `count` elements of `bytesPer` bytes; returns the region's byte offset. */
  reserve(count: number, bytesPer: 4 | 8): number {
    const at = this.bytes;
    this.bytes = Math.ceil((at + bytesPer * count) / ALIGN) * ALIGN;
    return at;
  }

  f64(count: number): number {
    return this.reserve(count, 8);
  }
}

export class SharedArena {
  private buffer = new SharedArrayBuffer(0);
  private readonly sharedWith = new WeakMap<ThreadPool, SharedArrayBuffer>();

  constructor(readonly key: string) {}

  /** Grows the arena to at least `bytes` and makes sure `pool`'s threads have the current buffer. */
  prepare(pool: ThreadPool, bytes: number): SharedArrayBuffer {
    if (bytes > this.buffer.byteLength) {
      // Headroom: batch sizes and sequence lengths vary a little between calls.
      this.buffer = new SharedArrayBuffer(Math.ceil(Math.max(bytes, this.buffer.byteLength * 1.25) / ALIGN) * ALIGN);
    }
    if (this.sharedWith.get(pool) !== this.buffer) {
      pool.share(this.key, this.buffer);
      this.sharedWith.set(pool, this.buffer);
    }
    return this.buffer;
  }
}

/** The arena buffer as seen by a task (the same one on every thread of a job). */
export function arenaBuffer(ctx: TaskContext, key: string): SharedArrayBuffer {
  const buffer = ctx.shared(key);
  if (!(buffer instanceof SharedArrayBuffer)) throw new ArenaError(`task ran on a thread pool that never received the '${key}' arena`);
  return buffer;
}

/** A float64 view of `count` elements at byte offset `at` of an arena buffer. */
export function f64View(buffer: SharedArrayBuffer, at: number, count: number): Float64Array {
  return new Float64Array(buffer, at, count);
}

/** A float32 (bytesPer 4) or float64 (8) view of `count` elements at byte offset `at`. */
export function floatView(buffer: SharedArrayBuffer, at: number, count: number, bytesPer: number): Float32Array | Float64Array {
  return bytesPer === 4 ? new Float32Array(buffer, at, count) : new Float64Array(buffer, at, count);
}

/**
 * The arena of the CPU kernels. One is enough: pool jobs run one at a time and a kernel lays
 * out its regions afresh on every call, so it only ever holds the largest call's data.
 */
export const KERNEL_ARENA = 'cpu.kernel-arena';
export const kernelArena = new SharedArena(KERNEL_ARENA);

let callerPool: ThreadPool | undefined;

/** A pool of the calling thread alone: runs a task inline (small problems, single-thread references). */
export function callerOnlyPool(): ThreadPool {
  callerPool ??= new ThreadPool(1);
  return callerPool;
}
