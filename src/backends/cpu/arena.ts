/**
 * Shared scratch memory for kernels that run on the thread pool (see threads/). Pool tasks can
 * only see memory that was shared with them, so a threaded kernel copies its operands into an
 * arena, lets the threads work there and copies the results out. The copies are O(elements)
 * against kernels that do much more work per element (the selective scan: N state updates).
 *
 * An arena is one shared WebAssembly memory (so wasm kernels can run over it too) that only
 * grows: it is kept at the largest size a call needed, so steady-state training allocates
 * nothing. The main thread lays a call's regions out with `ArenaLayout` and passes their byte
 * offsets as task arguments; tasks find the memory under the arena's key. A larger memory is
 * shared again before the next job; workers read announcements before joining a job, so they
 * never see a stale one.
 */

import { wasm, type WasmMemory } from './gemm/wasm-api.js';
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

const PAGE_BYTES = 65536;
/** 2 GiB: byte addresses stay non-negative int32 for the wasm kernels. */
const MAX_PAGES = 32768;
/** The most an arena can hold; kernels whose data would not fit run without the pool. */
export const MAX_ARENA_BYTES = MAX_PAGES * PAGE_BYTES;

export class SharedArena {
  private memory: WasmMemory | null = null;
  private readonly sharedWith = new WeakMap<ThreadPool, WasmMemory>();

  constructor(readonly key: string) {}

  /**
   * Makes the arena at least `bytes` long and makes sure `pool`'s threads have the current
   * memory; returns its buffer. A larger arena is a new memory (with headroom: batch sizes and
   * sequence lengths vary a little between calls), never a grown one, so no thread can hold a
   * stale view.
   */
  prepare(pool: ThreadPool, bytes: number): SharedArrayBuffer {
    const have = this.memory === null ? 0 : this.memory.buffer.byteLength;
    if (bytes > have) {
      if (bytes > MAX_ARENA_BYTES) throw new ArenaError(`the CPU kernel arena cannot hold ${bytes} bytes (at most ${MAX_ARENA_BYTES})`);
      const pages = Math.min(MAX_PAGES, Math.ceil(Math.max(bytes, have * 1.25) / PAGE_BYTES));
      this.memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
    }
    const memory = this.memory!;
    if (this.sharedWith.get(pool) !== memory) {
      pool.share(this.key, memory);
      this.sharedWith.set(pool, memory);
    }
    return sharedBuffer(memory);
  }
}

function sharedBuffer(memory: WasmMemory): SharedArrayBuffer {
  const buffer = memory.buffer;
  if (!(buffer instanceof SharedArrayBuffer)) throw new ArenaError('the CPU kernel arena is not a shared memory');
  return buffer;
}

/** The arena memory as seen by a task (the same one on every thread of a job): wasm kernels run over it. */
export function arenaMemory(ctx: TaskContext, key: string): WasmMemory {
  const memory = ctx.shared(key);
  if (!(memory instanceof wasm.Memory)) throw new ArenaError(`task ran on a thread pool that never received the '${key}' arena`);
  return memory;
}

/** The arena's bytes as seen by a task. */
export function arenaBuffer(ctx: TaskContext, key: string): SharedArrayBuffer {
  return sharedBuffer(arenaMemory(ctx, key));
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
