/**
 * CUDA graphs: record the kernels a JS function queues on a device's stream once, then replay
 * them with one cuGraphLaunch, which takes the per-kernel host cost (JS op dispatch, parameter
 * packing, cuLaunchKernel at ~4 µs each) off every later run.
 *
 * Capture records work without running it, so what the function reads from the host is frozen:
 * kernel parameters, scalars and shapes are the capture's; only device memory contents change
 * between replays. Inputs are therefore static tensors the caller overwrites before each replay,
 * and outputs are tensors allocated during capture that each replay overwrites.
 *
 * Memory: allocations during capture come from a graph-private pool of the caching allocator,
 * which stays reserved while the graph lives, so the addresses baked into the graph are never
 * handed to other tensors (allocator.ts). destroy() returns the pool.
 *
 * Capture mode: CU_STREAM_CAPTURE_MODE_THREAD_LOCAL. Every CUDA call of this backend comes from
 * the one JS thread, and thread-local mode makes the driver refuse that thread's potentially
 * unsafe calls (cuMemFree, module loads, synchronous copies...) while capturing, which turns a
 * bug our own checks missed into an error instead of a graph that silently replays wrong work.
 * GLOBAL would also fail unrelated calls made meanwhile by other threads of the process (a
 * worker's CUDA device, a koffi async call on the thread pool) for no gain here; RELAXED would
 * drop the driver's check altogether. The one unsafe call made on purpose is cuMemAlloc when the
 * pool has no free block: it is switched to RELAXED for that call alone
 * (cuThreadExchangeStreamCaptureMode, push-pop as cuda.h advises). That is safe because the block
 * is never freed while the graph lives, and capture ignores the allocation (replays do not repeat
 * it). The calls that cannot be captured are refused by name before they reach the driver
 * (CudaRuntime.refuseDuringCapture, capture.ts).
 */
import type { CapturedGraph } from '../backend.js';
import {
  check, CudaError, CUDA_ERROR_OUT_OF_MEMORY, CUDA_SUCCESS, CU_STREAM_CAPTURE_MODE_RELAXED, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
  CU_STREAM_CAPTURE_STATUS_NONE, CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH, type DriverApi,
} from './ffi/driver.js';
import { RawOutOfMemory, type CachingAllocator, type GraphPool, type RawAllocator } from './allocator.js';
import { captureError, CudaGraphCaptureError } from './capture.js';
import type { CudaRuntime } from './runtime.js';

export { CudaGraphCaptureError } from './capture.js';

export interface CudaGraphStats {
  readonly label: string;
  /** Nodes (kernels, copies, memsets...) in the captured graph. */
  readonly nodes: number;
  readonly replays: number;
  /** Bytes the graph's private pool reserves, and where its blocks came from during capture. */
  readonly poolBytes: number;
  readonly poolDeviceAllocs: number;
  readonly poolFromCache: number;
  readonly poolReuses: number;
  /** Pre-capture blocks freed during capture, kept for the graph's lifetime. */
  readonly poolAdopted: number;
  readonly captureMs: number;
  readonly instantiateMs: number;
}

interface Held {
  readonly api: DriverApi;
  readonly allocator: CachingAllocator;
  readonly exec: number;
  readonly pool: GraphPool;
}

/** A graph dropped without destroy() still frees its executable and pool (never during a capture: finalizers run between tasks, captures within one). */
const finalizer = new FinalizationRegistry<Held>((held) => {
  held.api.cuGraphExecDestroy(held.exec);
  held.allocator.releasePool(held.pool);
});

/** Status codes that mean an operation broke the capture (cuda.h 900-908). */
function isCaptureStatus(status: number): boolean {
  return status >= 900 && status <= 908;
}

function isPromiseLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** cuMemAlloc for the pool during capture: legal only in RELAXED mode, switched for this call alone. */
function captureMalloc(api: DriverApi): RawAllocator {
  const mode = new Int32Array(1);
  const out = new BigUint64Array(1);
  const free = new BigUint64Array(1);
  const total = new BigUint64Array(1);
  return {
    malloc(bytes: number): number {
      mode[0] = CU_STREAM_CAPTURE_MODE_RELAXED;
      check(api, 'cuThreadExchangeStreamCaptureMode', api.cuThreadExchangeStreamCaptureMode(mode));
      let status: number;
      try {
        status = api.cuMemAlloc(out, bytes);
      } finally {
        // mode now holds the previous (thread-local) mode: swap it back.
        check(api, 'cuThreadExchangeStreamCaptureMode', api.cuThreadExchangeStreamCaptureMode(mode));
      }
      if (status === CUDA_ERROR_OUT_OF_MEMORY) throw new RawOutOfMemory(`cuMemAlloc(${bytes}) during capture`);
      check(api, 'cuMemAlloc (during CUDA graph capture)', status);
      return Number(out[0]!);
    },
    free(): void {
      throw new Error('CachingAllocator: cuMemFree during CUDA graph capture');
    },
    memInfo(): { free: number; total: number } {
      check(api, 'cuMemGetInfo', api.cuMemGetInfo(free, total));
      return { free: Number(free[0]!), total: Number(total[0]!) };
    },
  };
}

/** Writes queued during a capture, to run once it has ended (or be abandoned if it fails). */
interface Deferred {
  readonly run: (() => void)[];
  readonly abandon: (() => void)[];
}

const deferred = new WeakMap<CudaRuntime, Deferred>();

/**
 * Queues `run` (a host-to-device write of memory the captured work reads) to run right after the
 * capture in progress on `rt` ends, before the graph is uploaded and first replayed; `abandon`
 * runs instead if the capture fails. A graph bakes in addresses, not contents, so memory whose
 * contents are fixed for the graph's life (a multi-tensor kernel's table of the addresses the
 * capture allocated) can be written after capture, where an upload inside it would be refused.
 * Throws when no capture is in progress.
 */
export function deferUntilCaptured(rt: CudaRuntime, run: () => void, abandon: () => void): void {
  const d = deferred.get(rt);
  if (d === undefined) throw new CudaGraphCaptureError('deferUntilCaptured: no CUDA graph capture is in progress on this device');
  d.run.push(run);
  d.abandon.push(abandon);
}

export class CudaGraph implements CapturedGraph {
  private replayCount = 0;
  private isDestroyed = false;

  private constructor(private readonly rt: CudaRuntime, private readonly exec: number, readonly pool: GraphPool,
    readonly nodes: number, readonly label: string, readonly captureMs: number, readonly instantiateMs: number) {
    finalizer.register(this, { api: rt.api, allocator: rt.allocator, exec, pool }, this);
  }

  /**
   * Captures the device work `fn` queues on `rt`'s stream (without running it) and instantiates
   * it. Returns fn's result and the graph; call replay() to run the work. If fn throws (e.g. a
   * host read refused with CudaGraphCaptureError), the capture is ended, its pool returned and
   * the error rethrown; the device stays usable.
   */
  static capture<T>(rt: CudaRuntime, fn: () => T, label = 'graph'): { result: T; graph: CudaGraph } {
    const api = rt.api;
    const allocator = rt.allocator;
    const outer = allocator.capturing;
    if (outer !== null) throw new CudaGraphCaptureError(`capturing '${label}' during CUDA graph capture of '${outer.label}': captures do not nest`);
    rt.activate();
    const stream = rt.stream.handle;
    const status = new Int32Array(1);
    check(api, 'cuStreamIsCapturing', api.cuStreamIsCapturing(stream, status));
    if (status[0] !== CU_STREAM_CAPTURE_STATUS_NONE) {
      throw new CudaGraphCaptureError(`capturing '${label}': the stream of ${rt.label} is already capturing (status ${status[0]}) outside this backend`);
    }
    const t0 = performance.now();
    const pool = allocator.beginCapture(label, captureMalloc(api));
    let capturing = false;
    const writes: Deferred = { run: [], abandon: [] };
    deferred.set(rt, writes);
    try {
      check(api, 'cuStreamBeginCapture', api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
      capturing = true;
      const result = fn();
      if (isPromiseLike(result)) {
        throw new CudaGraphCaptureError(`'${label}' returned a Promise during CUDA graph capture: only work queued synchronously is captured, `
          + 'and work queued after an await would run outside the graph; make the function synchronous');
      }
      capturing = false;
      const graphOut = new BigUint64Array(1);
      // An operation the driver refused invalidated the capture: this fails (and the catch explains).
      check(api, 'cuStreamEndCapture', api.cuStreamEndCapture(stream, graphOut));
      const graph = Number(graphOut[0]!);
      const captureMs = performance.now() - t0;
      const t1 = performance.now();
      let exec: number;
      let nodes: number;
      try {
        const count = new BigUint64Array(1);
        check(api, 'cuGraphGetNodes', api.cuGraphGetNodes(graph, null, count));
        nodes = Number(count[0]!);
        const execOut = new BigUint64Array(1);
        // AUTO_FREE_ON_LAUNCH: libraries may allocate in-graph (cuBLAS workspace via stream-ordered allocation).
        check(api, 'cuGraphInstantiateWithFlags', api.cuGraphInstantiateWithFlags(execOut, graph, CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH));
        exec = Number(execOut[0]!);
      } finally {
        api.cuGraphDestroy(graph);
      }
      allocator.endCapture(pool);
      deferred.delete(rt);
      try {
        for (const w of writes.run) w();
        check(api, 'cuGraphUpload', api.cuGraphUpload(exec, stream));
      } catch (e) {
        api.cuGraphExecDestroy(exec);
        throw e;
      }
      return { result, graph: new CudaGraph(rt, exec, pool, nodes, label, captureMs, performance.now() - t1) };
    } catch (e) {
      if (capturing) {
        const graphOut = new BigUint64Array(1);
        if (api.cuStreamEndCapture(stream, graphOut) === CUDA_SUCCESS && graphOut[0] !== 0n) api.cuGraphDestroy(Number(graphOut[0]!));
      }
      if (allocator.capturing === pool) allocator.endCapture(pool);
      deferred.delete(rt);
      for (const a of writes.abandon) a();
      allocator.releasePool(pool);
      throw e instanceof CudaError ? CudaGraph.describe(e, label) : e;
    }
  }

  /** A driver error that broke the capture, said as such (other errors pass through). */
  private static describe(e: CudaError, label: string): Error {
    if (!isCaptureStatus(e.status)) return e;
    const err = new CudaGraphCaptureError(`${e.message} during CUDA graph capture of '${label}': the driver refused an operation that `
      + 'cannot be captured (a synchronous copy, a synchronisation, or an allocation), and the capture was abandoned');
    (err as { cause?: unknown }).cause = e;
    return err;
  }

  get replays(): number {
    return this.replayCount;
  }

  get destroyed(): boolean {
    return this.isDestroyed;
  }

  /** Queues one run of the captured work on the device's stream. */
  replay(): void {
    if (this.isDestroyed) throw new Error(`CUDA graph '${this.label}' was destroyed`);
    const outer = this.rt.allocator.capturing;
    if (outer !== null) throw captureError(`replaying CUDA graph '${this.label}'`, 'replay', outer.label);
    this.rt.activate();
    check(this.rt.api, 'cuGraphLaunch', this.rt.api.cuGraphLaunch(this.exec, this.rt.stream.handle));
    this.replayCount++;
  }

  /** Frees the executable graph and returns its pool to the allocator (idempotent). */
  destroy(): void {
    if (this.isDestroyed) return;
    const outer = this.rt.allocator.capturing;
    if (outer !== null) throw captureError(`destroying CUDA graph '${this.label}'`, 'replay', outer.label);
    this.isDestroyed = true;
    finalizer.unregister(this);
    this.rt.activate();
    // An in-flight launch is not cut short: the driver frees the graph when it completes, and the
    // pool's blocks only go to work queued after it on the same stream.
    check(this.rt.api, 'cuGraphExecDestroy', this.rt.api.cuGraphExecDestroy(this.exec));
    this.rt.allocator.releasePool(this.pool);
  }

  stats(): CudaGraphStats {
    const p = this.pool;
    return {
      label: this.label, nodes: this.nodes, replays: this.replayCount, poolBytes: p.reservedBytes,
      poolDeviceAllocs: p.deviceAllocs, poolFromCache: p.fromCache, poolReuses: p.reuses, poolAdopted: p.adopted,
      captureMs: this.captureMs, instantiateMs: this.instantiateMs,
    };
  }
}
