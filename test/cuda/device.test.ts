/**
 * CUDA device plumbing on a real GPU: memory statistics and release, out-of-memory errors, the
 * NVRTC compile path (log on error, disk cache), and the limits of CUDA kernels (skipped without a GPU).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ops from '../../src/ops/index.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, CudaNotImplementedError, CudaOutOfMemoryError, NvrtcError } from '../../src/backends/cuda/index.js';
import { DiskCache, KernelCompiler } from '../../src/backends/cuda/compiler.js';
import { sizeClass } from '../../src/backends/cuda/allocator.js';
import { bindNvrtc } from '../../src/backends/cuda/ffi/nvrtc.js';
import { cudaSkip, randomCpu, realCuda } from './helpers.js';

const skip = cudaSkip || (!realCuda && 'needs a real GPU');

function backend(): CudaBackend {
  const b = getBackend('cuda');
  assert.ok(b instanceof CudaBackend);
  return b;
}

test('the device is described and kernels compile for its own architecture', { skip }, () => {
  const b = backend();
  console.log(`device: ${b.info.name}, compute capability ${b.info.computeCapability.join('.')}, ${b.info.multiprocessors} SMs`);
  assert.ok(b.info.name.length > 0);
  const target = b.runtime.compileTarget();
  assert.equal(target.arch, b.info.arch);
  assert.equal(target.kind, 'cubin');
});

test('storage goes back to the cache on dispose and is reused; statistics track current and peak bytes', { skip }, () => {
  const b = backend();
  b.synchronize();
  b.emptyCache();
  const before = b.memoryStats();
  const cls = sizeClass(4_000_000);
  const x = ops.zeros([1000, 1000], { device: 'cuda' });
  const during = b.memoryStats();
  assert.equal(during.allocatedBytes - before.allocatedBytes, cls, 'a 4 MB tensor takes its size class');
  const view = x.transpose(0, 1);
  x.dispose();
  assert.equal(b.memoryStats().allocatedBytes, during.allocatedBytes, 'a live view keeps the storage');
  view.dispose();
  const after = b.memoryStats();
  assert.equal(after.allocatedBytes, before.allocatedBytes);
  assert.equal(after.cachedBytes - before.cachedBytes, cls);
  assert.ok(after.peakAllocatedBytes >= during.allocatedBytes);
  const hits = after.cacheHits;
  const y = ops.ones([1000, 1000], { device: 'cuda' });
  assert.equal(b.memoryStats().cacheHits, hits + 1);
  // (No ops on y here: views an op makes internally keep the storage until garbage collection.)
  y.dispose();
  assert.ok(b.emptyCache() >= cls);
  assert.equal(b.memoryStats().cachedBytes, 0);
});

test('an allocation larger than the device raises CudaOutOfMemoryError with what was asked, in use and cached', { skip }, () => {
  const b = backend();
  const keep = ops.zeros([1 << 20], { device: 'cuda' });
  assert.throws(() => ops.empty([2 ** 42], { device: 'cuda' }), (e: unknown) => {
    assert.ok(e instanceof CudaOutOfMemoryError, String(e));
    assert.equal(e.requested, 2 ** 44);
    assert.ok(e.inUse >= 4 << 20);
    assert.match(e.message, /CUDA out of memory on cuda:0: tried to allocate 16\.00 TiB .* in use by tensors, .* cached by the allocator .* the device has .* free of /);
    return true;
  });
  // The device still works afterwards.
  assert.equal(ops.add(keep, 1).sum().item(), 1 << 20);
});

test('NVRTC reports compile errors with its log, and the disk cache serves a second compile', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-nvrtc-'));
  try {
    const compiler = new KernelCompiler(bindNvrtc(), new DiskCache(dir));
    const target = backend().runtime.compileTarget();
    const good = { name: 'ok.cu', source: 'extern "C" __global__ void k(float* x) { x[threadIdx.x] += 1.0f; }', headers: {} };
    const first = compiler.compile(good, target);
    assert.equal(first.fromCache, false);
    console.log(`NVRTC ${compiler.version}: small kernel compiled in ${first.ms.toFixed(1)} ms`);
    assert.equal(compiler.compile(good, target).fromCache, true);
    const bad = { name: 'bad.cu', source: 'extern "C" __global__ void k(float* x) { x[0] = undefined_name; }', headers: {} };
    assert.throws(() => compiler.compile(bad, target), (e: unknown) => {
      assert.ok(e instanceof NvrtcError);
      assert.match(e.message, /NVRTC could not compile bad\.cu/);
      assert.match(e.log, /undefined_name/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a selective scan with more states than the CUDA kernel holds says so by name', { skip }, () => {
  const [batch, dim, len, nState] = [1, 2, 3, 129];
  const cuda = (shape: number[]) => randomCpu(shape).to('cuda');
  const u = cuda([batch, dim, len]);
  assert.throws(() => ops.selectiveScan(u, cuda([batch, dim, len]), cuda([dim, nState]), cuda([batch, nState, len]), cuda([batch, nState, len])),
    (e: unknown) => e instanceof CudaNotImplementedError && /^selectiveScan with N = 129 states/.test(e.message));
});

test('tensors on the CPU are refused by CUDA kernels with a clear message', { skip }, () => {
  const b = backend();
  const cpu = randomCpu([4]);
  const gpu = ops.empty([4], { device: 'cuda' });
  assert.throws(() => b.kernels.copy(cpu, gpu), /CUDA kernel got a tensor on cpu/);
});

test('events on the backend stream time queued work', { skip }, () => {
  const b = backend();
  const a = ops.randn([512, 512], { device: 'cuda' });
  const start = CudaEvent.create(b.runtime.api).record(b.runtime.stream);
  for (let i = 0; i < 10; i++) ops.matmul(a, a).dispose();
  const end = CudaEvent.create(b.runtime.api).record(b.runtime.stream);
  end.synchronize();
  const ms = end.elapsedSince(start);
  console.log(`10 float32 512^3 matmuls: ${ms.toFixed(3)} ms`);
  assert.ok(ms > 0 && ms < 1000, `elapsed ${ms} ms`);
  start.destroy();
  end.destroy();
});
