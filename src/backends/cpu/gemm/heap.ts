/**
 * The GEMM's shared WebAssembly memory ("heap") and each thread's kernel instance over it.
 *
 * One shared memory per process holds packed operands and C buffers. The main thread owns its
 * layout (a bump allocation per call, see blocked.ts) and grows it on demand; worker threads
 * receive the memory and the compiled module once through the thread pool and instantiate
 * the kernel over the same memory. Only the main thread reads or writes the heap from JS (its
 * view is re-created after it grows the memory); workers touch it only through wasm, since
 * their `memory.buffer` may briefly lag behind a growth done by the main thread.
 */

import { onThreadPoolCreate, type TaskContext } from '../threads/index.js';
import { gemmModule, instantiateGemm, MAX_PAGES, PAGE_BYTES, type GemmExports } from './kernel.js';
import { wasm, type WasmMemory, type WasmModule } from './wasm-api.js';

export class GemmWorkspaceError extends Error {
  override name = 'GemmWorkspaceError';
}

/** The largest workspace one call may use (the rest of the 2 GiB is kept as headroom). */
export const MAX_WORKSPACE_BYTES = MAX_PAGES * PAGE_BYTES - PAGE_BYTES;

export class GemmHeap {
  readonly kernel: GemmExports;
  private f32: Float32Array;

  constructor(readonly memory: WasmMemory, module: WasmModule) {
    this.kernel = instantiateGemm(module, memory);
    this.f32 = new Float32Array(memory.buffer);
  }

  /** A Float32Array over the whole memory (re-created after growth). Main thread only. */
  view(): Float32Array {
    if (this.f32.byteLength !== this.memory.buffer.byteLength) this.f32 = new Float32Array(this.memory.buffer);
    return this.f32;
  }

  /** Grows the memory to at least `bytes`. Only the main thread calls this, between jobs. */
  reserve(bytes: number): void {
    if (bytes > MAX_WORKSPACE_BYTES) {
      throw new GemmWorkspaceError(`GEMM workspace of ${bytes} bytes exceeds the ${MAX_WORKSPACE_BYTES}-byte wasm memory limit`);
    }
    const have = this.memory.buffer.byteLength;
    if (bytes > have) this.memory.grow(Math.ceil((bytes - have) / PAGE_BYTES));
  }
}

const SHARE_KEY = 'gemm.heap';

interface SharedHeap { memory: WasmMemory; module: WasmModule }

let mainHeap: GemmHeap | undefined;

/** The main thread's heap, created (and shared with the thread pool) on first use. */
export function gemmHeap(): GemmHeap {
  if (mainHeap === undefined) {
    const module = gemmModule();
    const memory = new wasm.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    const heap = new GemmHeap(memory, module);
    mainHeap = heap;
    threadHeaps.set(memory, heap);
    onThreadPoolCreate((pool) => pool.share(SHARE_KEY, { memory, module } satisfies SharedHeap));
  }
  return mainHeap;
}

const threadHeaps = new WeakMap<WasmMemory, GemmHeap>();

/** The heap as seen from the thread running a task (instantiated once per thread). */
export function taskHeap(ctx: TaskContext): GemmHeap {
  const shared = ctx.shared(SHARE_KEY) as SharedHeap | undefined;
  if (shared === undefined) throw new GemmWorkspaceError('GEMM task ran on a thread pool that never received the GEMM heap');
  let heap = threadHeaps.get(shared.memory);
  if (heap === undefined) {
    heap = new GemmHeap(shared.memory, shared.module);
    threadHeaps.set(shared.memory, heap);
  }
  return heap;
}
