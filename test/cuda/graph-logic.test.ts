/**
 * CudaGraph's driver protocol over a scripted driver (runs everywhere): begin/end capture in
 * thread-local mode, pool misses allocated with the thread switched to relaxed mode and switched
 * back, instantiate with auto-free, upload, replay and destroy; and every failure path (the
 * function throws, the driver refuses a call, the capture is invalidated, a Promise, nesting, a
 * stream already capturing) ends the capture, destroys the partial graph and returns the pool.
 * The scripted driver refuses cuMemAlloc during capture unless the thread is in relaxed mode, as
 * the real one does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachingAllocator } from '../../src/backends/cuda/allocator.js';
import {
  check, CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
  CU_STREAM_CAPTURE_MODE_GLOBAL, CU_STREAM_CAPTURE_MODE_RELAXED, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, type DriverApi,
} from '../../src/backends/cuda/ffi/driver.js';
import { CudaGraph, CudaGraphCaptureError } from '../../src/backends/cuda/graph.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';

const NAMES: Record<number, string> = {
  [CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED]: 'CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED',
  [CUDA_ERROR_STREAM_CAPTURE_INVALIDATED]: 'CUDA_ERROR_STREAM_CAPTURE_INVALIDATED',
  [CUDA_ERROR_STREAM_CAPTURE_IMPLICIT]: 'CUDA_ERROR_STREAM_CAPTURE_IMPLICIT',
};

/** A driver that plays the capture protocol and logs the calls that matter. */
function scriptedDriver() {
  const log: string[] = [];
  const s = {
    log,
    threadMode: CU_STREAM_CAPTURE_MODE_GLOBAL,
    captureMode: -1,
    capturing: false,
    invalidated: false,
    externalCapture: false,
    nextAddress: 0x100000,
    graphs: 0,
    liveGraphs: new Set<number>(),
    liveExecs: new Set<number>(),
    launches: 0,
    instantiateFlags: -1,
    endStatus: 0,
  };
  const api = {
    cuStreamBeginCapture(stream: number, mode: number) {
      log.push(`begin(${stream}, ${mode})`);
      s.capturing = true;
      s.invalidated = false;
      s.captureMode = mode;
      return 0;
    },
    cuStreamEndCapture(stream: number, out: BigUint64Array) {
      log.push(`end(${stream})`);
      const wasInvalid = s.invalidated;
      s.capturing = false;
      s.invalidated = false;
      if (wasInvalid) { out[0] = 0n; return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED; }
      if (s.endStatus !== 0) { out[0] = 0n; return s.endStatus; }
      const g = ++s.graphs;
      s.liveGraphs.add(g);
      out[0] = BigInt(g);
      return 0;
    },
    cuStreamIsCapturing(_stream: number, status: Int32Array) {
      status[0] = s.capturing || s.externalCapture ? 1 : 0;
      return 0;
    },
    cuThreadExchangeStreamCaptureMode(mode: Int32Array) {
      const previous = s.threadMode;
      s.threadMode = mode[0]!;
      mode[0] = previous;
      log.push(`mode(${s.threadMode})`);
      return 0;
    },
    cuMemAlloc(out: BigUint64Array, bytes: number) {
      // The real driver: a potentially unsafe call during a non-relaxed capture fails and invalidates it.
      if (s.capturing && s.threadMode !== CU_STREAM_CAPTURE_MODE_RELAXED) {
        s.invalidated = true;
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
      }
      log.push(`alloc(${bytes})`);
      out[0] = BigInt(s.nextAddress);
      s.nextAddress += bytes;
      return 0;
    },
    cuMemGetInfo(free: BigUint64Array, total: BigUint64Array) {
      free[0] = 0n;
      total[0] = 1n << 30n;
      return 0;
    },
    cuGraphGetNodes(_graph: number, nodes: null, count: BigUint64Array) {
      assert.equal(nodes, null);
      count[0] = 7n;
      return 0;
    },
    cuGraphInstantiateWithFlags(out: BigUint64Array, graph: number, flags: number) {
      assert.ok(s.liveGraphs.has(graph), 'instantiate of a live graph');
      s.instantiateFlags = flags;
      const exec = 1000 + graph;
      s.liveExecs.add(exec);
      out[0] = BigInt(exec);
      return 0;
    },
    cuGraphUpload(exec: number) {
      assert.ok(s.liveExecs.has(exec));
      log.push('upload');
      return 0;
    },
    cuGraphLaunch(exec: number, stream: number) {
      assert.ok(s.liveExecs.has(exec), 'launch of a live executable graph');
      assert.ok(!s.capturing);
      log.push(`launch(${stream})`);
      s.launches++;
      return 0;
    },
    cuGraphExecDestroy(exec: number) {
      assert.ok(s.liveExecs.delete(exec), 'exec destroyed once');
      return 0;
    },
    cuGraphDestroy(graph: number) {
      assert.ok(s.liveGraphs.delete(graph), 'graph destroyed once');
      return 0;
    },
    cuGetErrorName(status: number, name: (string | null)[]) {
      name[0] = NAMES[status] ?? `CUDA_ERROR_${status}`;
      return 0;
    },
    cuGetErrorString(_status: number, text: (string | null)[]) {
      text[0] = 'scripted';
      return 0;
    },
  } as unknown as DriverApi;
  return { api, s };
}

const STREAM = 77;

/** The parts of a CudaRuntime CudaGraph uses, over the scripted driver and a fake device. */
function runtime() {
  const { api, s } = scriptedDriver();
  let next = 0x10;
  const allocator = new CachingAllocator({
    malloc(bytes: number) {
      if (s.capturing) throw new Error('the base allocator was used during capture');
      const a = next;
      next += bytes;
      return a;
    },
    free() { /* device memory of the fake */ },
  }, 'scripted:0');
  const rt = { api, allocator, label: 'scripted:0', stream: { handle: STREAM }, activate() { /* one context */ } } as unknown as CudaRuntime;
  return { rt, s, allocator };
}

test('capture: thread-local mode, pool misses allocated in relaxed mode and switched back, auto-free instantiate, upload; replay and destroy', () => {
  const { rt, s, allocator } = runtime();
  const { result, graph } = CudaGraph.capture(rt, () => {
    const a = allocator.alloc(4096);
    const b = allocator.alloc(8192);
    allocator.release(a);
    const c = allocator.alloc(4000); // reuses a's block: no device call
    assert.equal(c.address, a.address);
    return [b, c];
  }, 'g');
  assert.equal(s.captureMode, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
  assert.deepEqual(s.log, [
    `begin(${STREAM}, ${CU_STREAM_CAPTURE_MODE_THREAD_LOCAL})`,
    `mode(${CU_STREAM_CAPTURE_MODE_RELAXED})`, 'alloc(4096)', `mode(${CU_STREAM_CAPTURE_MODE_GLOBAL})`,
    `mode(${CU_STREAM_CAPTURE_MODE_RELAXED})`, 'alloc(8192)', `mode(${CU_STREAM_CAPTURE_MODE_GLOBAL})`,
    `end(${STREAM})`, 'upload',
  ]);
  assert.equal(s.threadMode, CU_STREAM_CAPTURE_MODE_GLOBAL, 'the thread\'s mode is restored');
  assert.equal(s.instantiateFlags, 1, 'CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH');
  assert.equal(s.liveGraphs.size, 0, 'the graph is destroyed once instantiated');
  assert.equal(graph.nodes, 7);
  assert.equal(allocator.capturing, null);
  assert.equal(result.length, 2);
  assert.equal(allocator.stats().graphPools, 1);
  graph.replay();
  graph.replay();
  assert.equal(graph.replays, 2);
  assert.equal(s.launches, 2);
  assert.equal(s.log.at(-1), `launch(${STREAM})`);
  assert.deepEqual(graph.stats().poolDeviceAllocs, 2);
  graph.destroy();
  graph.destroy();
  assert.equal(s.liveExecs.size, 0);
  assert.equal(allocator.stats().graphPools, 0);
  assert.throws(() => graph.replay(), /CUDA graph 'g' was destroyed/);
});

test('a function that throws: the capture is ended, its partial graph destroyed, the pool returned, the error passed on', () => {
  const { rt, s, allocator } = runtime();
  const boom = new Error('shape mismatch');
  assert.throws(() => CudaGraph.capture(rt, () => { allocator.alloc(1024); throw boom; }, 'g'), (e) => e === boom);
  assert.equal(s.capturing, false);
  assert.equal(s.liveGraphs.size, 0);
  assert.equal(s.liveExecs.size, 0);
  assert.equal(allocator.capturing, null);
  assert.equal(allocator.stats().graphPools, 0);
  // Usable afterwards.
  const { graph } = CudaGraph.capture(rt, () => 1, 'again');
  graph.replay();
  graph.destroy();
});

test('a call the driver refuses during capture becomes a CudaGraphCaptureError naming the status and the graph', () => {
  const { rt, s, allocator } = runtime();
  assert.throws(() => CudaGraph.capture(rt, () => check(rt.api, 'cuMemcpyDtoH', CUDA_ERROR_STREAM_CAPTURE_IMPLICIT), 'denoiser'), (e: unknown) => {
    assert.ok(e instanceof CudaGraphCaptureError);
    assert.match(e.message, /cuMemcpyDtoH failed: CUDA_ERROR_STREAM_CAPTURE_IMPLICIT \(906\).* during CUDA graph capture of 'denoiser': the driver refused an operation that cannot be captured/);
    return true;
  });
  assert.equal(s.capturing, false);
  assert.equal(allocator.stats().graphPools, 0);
});

test('an invalidated capture fails at its end with a CudaGraphCaptureError', () => {
  const { rt, s, allocator } = runtime();
  assert.throws(() => CudaGraph.capture(rt, () => { s.invalidated = true; return 0; }, 'inv'),
    (e: unknown) => e instanceof CudaGraphCaptureError && /cuStreamEndCapture failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED \(901\).* during CUDA graph capture of 'inv'/.test(e.message));
  assert.equal(allocator.stats().graphPools, 0);
  assert.equal(allocator.capturing, null);
});

test('an out-of-memory pool miss during capture raises CudaOutOfMemoryError and ends the capture', () => {
  const { rt, s, allocator } = runtime();
  (rt.api as unknown as { cuMemAlloc: () => number }).cuMemAlloc = () => 2; // CUDA_ERROR_OUT_OF_MEMORY
  assert.throws(() => CudaGraph.capture(rt, () => allocator.alloc(1 << 20), 'big'),
    /CUDA out of memory on scripted:0: tried to allocate 1\.00 MiB \(1048576 bytes\) during CUDA graph capture of 'big'/);
  assert.equal(s.threadMode, CU_STREAM_CAPTURE_MODE_GLOBAL, 'the thread\'s mode is restored after the failed allocation');
  assert.equal(s.capturing, false);
  assert.equal(allocator.stats().graphPools, 0);
});

test('Promises, nested captures and a stream already capturing are refused; replay and destroy are refused inside a capture', () => {
  const { rt, s, allocator } = runtime();
  assert.throws(() => CudaGraph.capture(rt, () => Promise.resolve(1), 'async'),
    (e: unknown) => e instanceof CudaGraphCaptureError && /'async' returned a Promise during CUDA graph capture/.test(e.message));
  assert.equal(s.capturing, false);
  assert.throws(() => CudaGraph.capture(rt, () => CudaGraph.capture(rt, () => 1, 'inner'), 'outer'),
    /capturing 'inner' during CUDA graph capture of 'outer': captures do not nest/);
  assert.equal(s.capturing, false);
  const { graph } = CudaGraph.capture(rt, () => 1, 'g');
  assert.throws(() => CudaGraph.capture(rt, () => graph.replay(), 'outer'),
    /replaying CUDA graph 'g' during CUDA graph capture of 'outer'/);
  assert.throws(() => CudaGraph.capture(rt, () => graph.destroy(), 'outer'),
    /destroying CUDA graph 'g' during CUDA graph capture of 'outer'/);
  assert.equal(graph.destroyed, false);
  graph.destroy();
  s.externalCapture = true;
  assert.throws(() => CudaGraph.capture(rt, () => 1, 'x'), /the stream of scripted:0 is already capturing/);
  assert.equal(allocator.stats().graphPools, 0);
});
