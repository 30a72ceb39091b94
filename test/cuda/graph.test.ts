/**
 * CUDA graphs on the GPU: a captured multi-kernel computation (cuBLAS, reductions, softmax,
 * copies) replays on new input values and matches the CPU; memory allocated during capture stays
 * with the graph (later tensors never get its blocks, nothing leaks, destroy() returns the pool);
 * calls that cannot be captured (host reads and writes, synchronisation, random draws, a kernel
 * not loaded yet) fail with an error naming the call and leave the device usable; the
 * backend-agnostic captureReplayable warms up, captures once and replays; and Dimba sampling with
 * graphs equals sampling without them, with one replay per step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { assign_ } from '../../src/ops/inplace.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend } from '../../src/backends/cuda/backend.js';
import { CudaGraph, CudaGraphCaptureError } from '../../src/backends/cuda/graph.js';
import { addressOf } from '../../src/backends/cuda/storage.js';
import { captureReplayable } from '../../src/backends/replayable.js';
import { Module } from '../../src/nn/module.js';
import { tinyTextToImage, CAPTIONS } from '../pipeline/fixtures.js';
import { cudaSkip, realCuda, randomCpu } from './helpers.js';

const skip = cudaSkip || (realCuda ? false : 'graph capture needs a real GPU (the CPU stand-in has no graphs)');
if (cudaSkip === false && !realCuda) console.log(`# CUDA graph tests skipped: ${skip}`);

function backend(): CudaBackend {
  const b = getBackend('cuda');
  assert.ok(b instanceof CudaBackend);
  return b;
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.to('cpu').toFloat64Array();
  const y = b.to('cpu').toFloat64Array();
  assert.equal(x.length, y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  return worst;
}

const isCaptureError = (pattern: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof CudaGraphCaptureError, `expected CudaGraphCaptureError, got ${String(e)}`);
  assert.match(e.message, pattern);
  return true;
};

// First in this file (each test file is its own process): the causal-conv1d module is not loaded yet.
test('a kernel whose module is not loaded yet is refused by name during capture; the device stays usable', { skip }, () => {
  const b = backend();
  const x = randomCpu([2, 8, 16]).to('cuda');
  const w = randomCpu([8, 4]).to('cuda');
  const before = b.memoryStats();
  assert.throws(() => CudaGraph.capture(b.runtime, () => T.causalConv1d(x, w), 'conv'),
    isCaptureError(/(resolving kernel \S+ of \S+\.cu|loading kernel module \S+\.cu) during CUDA graph capture of 'conv': compiling and loading kernels/));
  assert.equal(b.memoryStats().graphPools, before.graphPools, 'the failed capture returned its pool');
  // Eager use afterwards loads it and computes the right values.
  const got = T.causalConv1d(x, w);
  assert.ok(maxAbsDiff(got, T.causalConv1d(x.to('cpu'), w.to('cpu'))) < 1e-5);
  // And now it captures.
  const { result, graph } = CudaGraph.capture(b.runtime, () => T.causalConv1d(x, w), 'conv');
  graph.replay();
  assert.ok(maxAbsDiff(result, got) < 1e-6);
  graph.destroy();
});

test('a captured multi-kernel computation replays on new input values and matches the CPU', { skip }, () => {
  const b = backend();
  const wCpu = randomCpu([16, 24]);
  const bCpu = randomCpu([24]);
  const w = wCpu.to('cuda');
  const bias = bCpu.to('cuda');
  // matmul (cuBLAS), broadcast add, softmax rows, a row reduction, a strided copy, sigmoid, product.
  const f = (x: Tensor, wt: Tensor, bt: Tensor): Tensor => {
    const p = T.softmax(T.add(T.matmul(x, wt), bt), -1);
    const gate = T.sigmoid(T.sum(x, -1, true));
    return T.mul(T.contiguous(T.transpose(T.mul(p, gate), 0, 1)), 2);
  };
  const xs = randomCpu([8, 16]).to('cuda');
  T.tidy(() => { f(xs, w, bias); }); // warm-up: loads every kernel this uses
  const { result: out, graph } = CudaGraph.capture(b.runtime, () => f(xs, w, bias), 'mlp');
  assert.ok(graph.nodes >= 6, `graph holds ${graph.nodes} nodes`);
  for (let round = 0; round < 3; round++) {
    const xc = randomCpu([8, 16]);
    assign_(xs, xc.to('cuda'));
    graph.replay();
    const worst = maxAbsDiff(out, f(xc, wCpu, bCpu));
    assert.ok(worst < 1e-5, `round ${round}: replay differs from the CPU by ${worst}`);
    assert.ok(maxAbsDiff(out, f(xs, w, bias)) < 1e-6, `round ${round}: replay differs from eager CUDA`);
  }
  assert.equal(graph.replays, 3);
  const s = graph.stats();
  console.log(`# graph 'mlp': ${s.nodes} nodes, pool ${s.poolBytes} bytes (${s.poolDeviceAllocs} new, ${s.poolFromCache} from cache, ${s.poolReuses} reused), capture ${s.captureMs.toFixed(2)} ms, instantiate ${s.instantiateMs.toFixed(2)} ms`);
  graph.destroy();
  assert.throws(() => graph.replay(), /CUDA graph 'mlp' was destroyed/);
});

test('memory allocated during capture stays with the graph: later tensors never alias it, destroy returns it', { skip }, () => {
  const b = backend();
  const xs = randomCpu([64, 1024]).to('cuda');
  T.tidy(() => { T.mul(T.add(T.mul(T.exp(xs), 2), 1), 3); });
  const base = b.memoryStats();
  const inCapture: number[] = [];
  // tidy: temporaries (exp's result, scalar operands) go back to the pool as the capture ends.
  const { result: out, graph } = CudaGraph.capture(b.runtime, () => T.tidy(() => {
    const h = T.mul(T.exp(xs), 2);
    inCapture.push(addressOf(h));
    const y = T.add(h, 1);
    inCapture.push(addressOf(y));
    h.dispose(); // back to the graph's pool: reusable by this capture only
    const z = T.mul(y, 3);
    y.dispose();
    return z;
  }), 'alias');
  inCapture.push(addressOf(out));
  const during = b.memoryStats();
  assert.equal(during.graphPools, base.graphPools + 1);
  assert.ok(during.graphPoolBytes >= 2 * xs.numel * 4, `pool holds ${during.graphPoolBytes} bytes`);
  assert.ok(!inCapture.includes(addressOf(xs)), 'capture never hands out a live tensor\'s block');
  // Eager tensors of the same size, written after capture, never get the graph's blocks...
  const others = Array.from({ length: 8 }, () => T.full(xs.shape, 123, { device: 'cuda' }));
  for (const o of others) assert.ok(!inCapture.includes(addressOf(o)), 'an eager tensor got a block of the graph');
  // ...so a replay still computes from x, not from their values.
  const xc = randomCpu([64, 1024]);
  T.tidy(() => { assign_(xs, xc.to('cuda')); });
  graph.replay();
  assert.ok(maxAbsDiff(out, T.mul(T.add(T.mul(T.exp(xc), 2), 1), 3)) < 1e-4);
  for (const o of others) assert.equal(o.to('cpu').toFloat64Array()[7], 123, 'the replay wrote into an eager tensor');
  graph.destroy();
  const after = b.memoryStats();
  assert.equal(after.graphPools, base.graphPools);
  assert.equal(after.graphPoolBytes, base.graphPoolBytes);
  // The output keeps its last values after destroy, then goes back like any tensor.
  assert.ok(T.tidy(() => maxAbsDiff(out, T.mul(T.add(T.mul(T.exp(xs), 2), 1), 3))) < 1e-6);
  out.dispose();
  for (const o of others) o.dispose();
  const end = b.memoryStats();
  assert.equal(end.allocatedBytes, base.allocatedBytes, 'nothing allocated during capture is still held');
  assert.equal(end.reservedBytes, end.allocatedBytes + end.cachedBytes, 'every pool block went back to the shared cache');
});

test('destroying a graph returns its pool; capturing again reuses that memory without new device allocations', { skip }, () => {
  const b = backend();
  const xs = randomCpu([256, 1024]).to('cuda');
  const f = (x: Tensor): Tensor => T.sum(T.mul(T.tanh(x), T.sigmoid(x)), -1);
  T.tidy(() => { f(xs); });
  const base = b.memoryStats();
  const first = CudaGraph.capture(b.runtime, () => T.tidy(() => f(xs)), 'pool');
  const mid = b.memoryStats();
  assert.equal(mid.graphPools, base.graphPools + 1);
  assert.ok(first.graph.stats().poolBytes > 0);
  assert.equal(mid.graphPoolBytes - base.graphPoolBytes, first.graph.stats().poolBytes);
  first.graph.destroy();
  first.result.dispose();
  const after = b.memoryStats();
  assert.equal(after.graphPools, base.graphPools);
  assert.equal(after.graphPoolBytes, base.graphPoolBytes);
  assert.equal(after.reservedBytes, mid.reservedBytes, 'destroy returned the pool to the cache, not to the device');
  assert.equal(after.allocatedBytes, base.allocatedBytes);
  const second = CudaGraph.capture(b.runtime, () => T.tidy(() => f(xs)), 'pool');
  assert.equal(second.graph.stats().poolDeviceAllocs, 0, 'the second capture found every block in the cache');
  second.graph.replay();
  assert.ok(maxAbsDiff(second.result, f(xs.to('cpu'))) < 1e-4);
  second.graph.destroy();
  second.result.dispose();
});

test('calls that cannot be captured fail by name, and the device stays usable', { skip }, () => {
  const b = backend();
  const xs = randomCpu([4, 8]).to('cuda');
  // Warm-up: every kernel the cases use is loaded, so each fails on the call it names.
  T.tidy(() => { T.sum(T.add(xs, 1)).item(); T.add(xs, 1).toFloat64Array(); T.randn([4], { device: 'cuda' }); T.mul(xs, 2); });
  const pools = b.memoryStats().graphPools;
  const cases: [string, () => unknown, RegExp][] = [
    ['item', () => T.sum(T.add(xs, 1)).item(), /reading 1 float64 values to the host during CUDA graph capture of 'item': a copy to the host/],
    ['toFloat64Array', () => T.add(xs, 1).toFloat64Array(), /reading 32 float64 values to the host during CUDA graph capture/],
    ['upload', () => T.add(xs, T.tensor([1, 2, 3, 4, 5, 6, 7, 8], { device: 'cuda' })), /copying 8 float32 values from the host during CUDA graph capture of 'upload'/],
    ['random', () => T.add(xs, T.randn([4, 8], { device: 'cuda' })), /drawing random numbers during CUDA graph capture of 'random': the seed and counter are kernel parameters/],
    ['sync', () => { const y = T.add(xs, 1); b.synchronize(); return y; }, /synchronize\(\) during CUDA graph capture of 'sync'/],
    ['emptyCache', () => { b.emptyCache(); return xs; }, /emptyCache\(\) during CUDA graph capture/],
    ['nested', () => CudaGraph.capture(b.runtime, () => T.add(xs, 1), 'inner'), /capturing 'inner' during CUDA graph capture of 'nested': captures do not nest/],
  ];
  for (const [label, fn, pattern] of cases) {
    assert.throws(() => CudaGraph.capture(b.runtime, fn, label), isCaptureError(pattern), label);
    assert.equal(b.memoryStats().graphPools, pools, `${label}: the failed capture returned its pool`);
    // Usable at once: eager work, a host read, and a fresh capture.
    assert.deepEqual(T.add(xs, 1).toArray(), xs.toArray().map((v) => Math.fround(v + 1)), `${label}: eager work after the failure`);
    const { result, graph } = CudaGraph.capture(b.runtime, () => T.mul(xs, 2), `${label}-after`);
    graph.replay();
    assert.deepEqual(result.toArray(), xs.toArray().map((v) => v * 2), `${label}: a capture after the failure`);
    graph.destroy();
  }
  assert.throws(() => CudaGraph.capture(b.runtime, () => Promise.resolve(T.add(xs, 1)), 'async'),
    isCaptureError(/'async' returned a Promise during CUDA graph capture/));
});

test('captureReplayable on CUDA: one warm-up, one capture, then every run is a replay', { skip }, () => {
  const b = backend();
  const xs = randomCpu([4, 32]).to('cuda');
  const ts = T.zeros([4], { device: 'cuda' });
  let calls = 0;
  const r = captureReplayable((x, t) => {
    calls++;
    return T.add(T.mul(T.silu(x!), 0.5), T.unsqueeze(t!, 1));
  }, [xs, ts], { label: 'silu' });
  assert.equal(r.mode, 'graph');
  const outs: Tensor[] = [];
  for (let i = 0; i < 5; i++) {
    const xc = randomCpu([4, 32]);
    assign_(xs, xc.to('cuda'));
    assign_(ts, i * 10); // the per-call scalar reaches the graph through a device tensor
    const out = r.run();
    outs.push(out);
    const expect = T.add(T.mul(T.silu(xc), 0.5), i * 10);
    assert.ok(maxAbsDiff(out, expect) < 1e-5, `run ${i}`);
  }
  assert.equal(calls, 2, 'the function ran for the warm-up and the capture only');
  assert.equal(r.replays, 5);
  assert.ok(outs.every((o) => o === outs[0]), 'every run returns the same static output');
  const pools = b.memoryStats().graphPools;
  r.dispose({ outputs: true });
  assert.equal(b.memoryStats().graphPools, pools - 1);
  assert.ok(outs[0]!.isDisposed);
});

test('Dimba sampling with CUDA graphs equals sampling without them, one replay per step', { skip }, () => {
  const runs = [
    { objective: 'flow', sampler: 'euler', guidanceScale: 3, config: {} },
    { objective: 'epsilon', sampler: 'dpm++', guidanceScale: 1, config: {} },
    // KV compression by token subsampling: its index tensors are made on the device.
    { objective: 'flow', sampler: 'euler', guidanceScale: 2, config: { kvCompress: { sampling: 'uniform', scaleFactor: 2, layers: [0] } } },
  ] as const;
  for (const { objective, sampler, guidanceScale, config } of runs) {
    const pipe = tinyTextToImage({ objective, size: 16, layers: 'AM', repeats: 2, seed: 3, config });
    // The released initialisation zeroes the output layers; give them signal so the samples depend on the model.
    const generator = new T.Generator(11);
    for (const [, p] of pipe.model.namedParameters()) {
      if (T.max(T.abs(p)).item() === 0) T.nn.init.normal_(p, 0, 0.05, { generator });
    }
    pipe.model.to('cuda');
    assert.ok(pipe.textEncoder instanceof Module);
    pipe.textEncoder.to('cuda');
    const steps = 6;
    const options = { prompts: CAPTIONS.slice(0, 2), steps, sampler, guidanceScale, seed: 4, height: 16, width: 16 };
    const eager = pipe.generate({ ...options, cudaGraph: false });
    assert.deepEqual(pipe.lastGraphStats, { calls: steps, eagerCalls: steps, captures: 0, replays: 0, fallback: null });
    const graphed = pipe.generate({ ...options, cudaGraph: true });
    assert.deepEqual(pipe.lastGraphStats, { calls: steps, eagerCalls: 0, captures: 1, replays: steps, fallback: null });
    const worst = maxAbsDiff(graphed, eager);
    const name = `${objective}/${sampler} (guidance ${guidanceScale}${'kvCompress' in config ? ', uniform KV compression' : ''})`;
    console.log(`# ${name}: graphs vs eager max |Δ| ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `${name}: graphed samples differ by ${worst}`);
    // The default ('auto') uses graphs on CUDA.
    pipe.generate(options);
    assert.equal(pipe.lastGraphStats?.replays, steps);
    assert.equal(backend().memoryStats().graphPools, 0, 'generate destroyed its graphs');
  }
});
