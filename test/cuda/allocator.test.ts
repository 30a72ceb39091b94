/** The caching allocator's size classes, reuse, statistics and out-of-memory error, over a fake device (runs everywhere). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CachingAllocator, CudaOutOfMemoryError, RawOutOfMemory, sizeClass, type RawAllocator } from '../../src/backends/cuda/allocator.js';

/** A device with `capacity` bytes that records every malloc and free. */
function fakeDevice(capacity: number): RawAllocator & { used: number; mallocs: number[]; frees: number[] } {
  let next = 0x10000;
  const sizes = new Map<number, number>();
  const dev = {
    used: 0,
    mallocs: [] as number[],
    frees: [] as number[],
    malloc(bytes: number): number {
      if (dev.used + bytes > capacity) throw new RawOutOfMemory(`fake malloc ${bytes}`);
      const address = next;
      next += bytes + 256;
      sizes.set(address, bytes);
      dev.used += bytes;
      dev.mallocs.push(bytes);
      return address;
    },
    free(address: number): void {
      const bytes = sizes.get(address);
      assert.ok(bytes !== undefined, `fake free of unknown address ${address}`);
      sizes.delete(address);
      dev.used -= bytes;
      dev.frees.push(address);
    },
    memInfo: () => ({ free: capacity - dev.used, total: capacity }),
  };
  return dev;
}

test('size classes: 512-byte steps below 1 MiB, eighths of a power of two above, never below the request', () => {
  assert.equal(sizeClass(0), 0);
  assert.equal(sizeClass(1), 512);
  assert.equal(sizeClass(512), 512);
  assert.equal(sizeClass(513), 1024);
  assert.equal(sizeClass(1 << 20), 1 << 20);
  assert.equal(sizeClass((1 << 20) + 1), (1 << 20) + (1 << 17));
  for (const n of [3, 1000, 123457, 3_000_001, 987_654_321, 2 ** 40 + 12345]) {
    const c = sizeClass(n);
    assert.ok(c >= n && c <= Math.max(n * 1.125, n + 512), `class ${c} for ${n}`);
  }
  assert.throws(() => sizeClass(-1), RangeError);
});

test('freed blocks are reused by later allocations of the same class without a device call', () => {
  const dev = fakeDevice(1 << 30);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const a = alloc.alloc(1000);
  const b = alloc.alloc(3000);
  assert.equal(dev.mallocs.length, 2);
  alloc.release(a);
  const c = alloc.alloc(700); // same 1024-byte class as a
  assert.equal(c.address, a.address);
  assert.equal(dev.mallocs.length, 2);
  const s = alloc.stats();
  assert.equal(s.cacheHits, 1);
  assert.equal(s.allocatedBytes, 1024 + 3072);
  assert.equal(s.cachedBytes, 0);
  alloc.release(b);
  alloc.release(c);
  assert.throws(() => alloc.release(c), /released twice/);
  const after = alloc.stats();
  assert.equal(after.allocatedBytes, 0);
  assert.equal(after.cachedBytes, 1024 + 3072);
  assert.equal(after.peakAllocatedBytes, 1024 + 3072);
  assert.equal(after.reservedBytes, 1024 + 3072);
  assert.equal(alloc.emptyCache(), 1024 + 3072);
  assert.equal(dev.used, 0);
  assert.equal(alloc.stats().reservedBytes, 0);
  assert.equal(alloc.stats().peakReservedBytes, 1024 + 3072);
  alloc.resetPeakStats();
  assert.equal(alloc.stats().peakAllocatedBytes, 0);
});

test('zero-byte allocations touch no device memory', () => {
  const dev = fakeDevice(1024);
  const alloc = new CachingAllocator(dev);
  const z = alloc.alloc(0);
  assert.equal(z.size, 0);
  alloc.release(z);
  assert.equal(dev.mallocs.length, 0);
});

test('out of memory: the cache is emptied and the allocation retried before raising', () => {
  const dev = fakeDevice(10 * 1024);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const a = alloc.alloc(4096);
  const b = alloc.alloc(4096);
  alloc.release(a);
  // 8 KiB reserved; 6 KiB more only fits once a's cached 4 KiB is released.
  const c = alloc.alloc(6144);
  assert.equal(dev.frees.length, 1);
  assert.equal(alloc.stats().cachedBytes, 0);
  alloc.release(b);
  assert.throws(() => alloc.alloc(8192), (e: unknown) => {
    assert.ok(e instanceof CudaOutOfMemoryError);
    assert.equal(e.requested, 8192);
    assert.equal(e.inUse, 6144);
    assert.equal(e.cached, 4096);
    assert.equal(e.deviceTotal, 10 * 1024);
    assert.match(e.message, /CUDA out of memory on fake:0: tried to allocate 8\.00 KiB \(8192 bytes\); 6\.00 KiB \(6144 bytes\) in use by tensors, 4\.00 KiB \(4096 bytes\) was cached/);
    return true;
  });
  alloc.release(c);
});

test('errors other than out-of-memory pass through unchanged', () => {
  const dev = fakeDevice(1 << 20);
  dev.malloc = () => { throw new Error('device lost'); };
  assert.throws(() => new CachingAllocator(dev).alloc(10), /device lost/);
});

// ---- graph-private pools (CUDA graph capture) ---------------------------------------------------

/** Every block reserved from the device is live, cached, or free in a pool: the counters add up. */
function assertBalanced(alloc: CachingAllocator, dev: { used: number }): void {
  const s = alloc.stats();
  assert.equal(s.reservedBytes, dev.used, 'reserved bytes equal what the device handed out');
}

test('during capture blocks come from the pool: its own frees first, then the shared cache, then the device through the capture allocator', () => {
  const dev = fakeDevice(1 << 30);
  const captureDev = { mallocs: 0 };
  const alloc = new CachingAllocator(dev, 'fake:0');
  const old = alloc.alloc(2048);
  alloc.release(old); // in the shared cache
  const pool = alloc.beginCapture('g', {
    malloc(bytes) { captureDev.mallocs++; return dev.malloc(bytes); },
    free() { throw new Error('no frees during capture'); },
  });
  assert.equal(alloc.capturing, pool);
  const a = alloc.alloc(2048);
  assert.equal(a.address, old.address, 'a cached block of the class is taken into the pool');
  assert.equal(pool.fromCache, 1);
  const b = alloc.alloc(2048);
  assert.equal(captureDev.mallocs, 1, 'a miss goes to the capture allocator');
  assert.equal(dev.mallocs.length, 2);
  alloc.release(a);
  const c = alloc.alloc(1900);
  assert.equal(c.address, a.address, 'a block freed during the capture is reused by it');
  assert.equal(pool.reuses, 1);
  assert.equal(pool.liveBlocks, 2);
  assert.equal(alloc.stats().cachedBytes, 0);
  alloc.endCapture(pool);
  assert.equal(alloc.capturing, null);
  assertBalanced(alloc, dev);
  alloc.release(b);
  alloc.release(c);
  alloc.releasePool(pool);
  assertBalanced(alloc, dev);
});

test('after capture the pool stays reserved: eager allocations never get its blocks, its outputs come back to it', () => {
  const dev = fakeDevice(1 << 30);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const pool = alloc.beginCapture('g');
  const temp = alloc.alloc(4096);
  const out = alloc.alloc(4096);
  alloc.release(temp);
  alloc.endCapture(pool);
  const eager = Array.from({ length: 4 }, () => alloc.alloc(4096));
  for (const e of eager) assert.ok(e.address !== temp.address && e.address !== out.address, 'an eager block aliases the graph');
  alloc.release(out);
  const again = alloc.alloc(4096);
  assert.ok(again.address !== out.address && again.address !== temp.address, 'a graph output released after capture went to the shared cache');
  let s = alloc.stats();
  assert.equal(s.graphPools, 1);
  assert.equal(s.graphPoolBytes, 2 * 4096);
  assert.equal(s.cachedBytes, 0);
  assertBalanced(alloc, dev);
  for (const e of [...eager, again]) alloc.release(e);
  alloc.releasePool(pool);
  s = alloc.stats();
  assert.equal(s.graphPools, 0);
  assert.equal(s.graphPoolBytes, 0);
  assert.equal(s.cachedBytes, 7 * 4096, 'the pool\'s blocks joined the shared cache');
  assertBalanced(alloc, dev);
  assert.equal(alloc.emptyCache(), 7 * 4096);
  assert.equal(dev.used, 0);
});

test('a pre-capture block freed during capture is adopted by the pool (the graph may read it) until the pool goes', () => {
  const dev = fakeDevice(1 << 30);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const input = alloc.alloc(1000);
  const pool = alloc.beginCapture('g');
  alloc.release(input);
  assert.equal(pool.adopted, 1);
  assert.equal(alloc.stats().cachedBytes, 0);
  alloc.endCapture(pool);
  const eager = alloc.alloc(1000);
  assert.notEqual(eager.address, input.address);
  alloc.releasePool(pool);
  const later = alloc.alloc(1000);
  assert.equal(later.address, input.address, 'released with the pool');
  alloc.release(eager);
  alloc.release(later);
  assertBalanced(alloc, dev);
});

test('a live graph output released after its pool is gone goes to the shared cache', () => {
  const dev = fakeDevice(1 << 30);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const pool = alloc.beginCapture('g');
  const out = alloc.alloc(3000);
  alloc.endCapture(pool);
  alloc.releasePool(pool);
  assert.equal(alloc.stats().graphPoolBytes, 0);
  assert.equal(alloc.stats().allocatedBytes, 3072);
  alloc.release(out);
  assert.throws(() => alloc.release(out), /released twice/);
  assert.equal(alloc.alloc(3000).address, out.address);
  assert.equal(alloc.stats().cachedBytes, 0);
});

test('captures do not nest; a capturing pool cannot be released; emptyCache is refused during capture and never frees pools', () => {
  const dev = fakeDevice(1 << 30);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const cached = alloc.alloc(512);
  alloc.release(cached);
  const pool = alloc.beginCapture('outer');
  assert.throws(() => alloc.beginCapture('inner'), /a capture \('outer'\) is already under way on fake:0; captures do not nest/);
  assert.throws(() => alloc.releasePool(pool), /pool \d+ \('outer'\) is still capturing/);
  assert.throws(() => alloc.emptyCache(), /emptyCache during CUDA graph capture of 'outer'/);
  const block = alloc.alloc(8192);
  alloc.release(block);
  alloc.endCapture(pool);
  assert.throws(() => alloc.endCapture(pool), /is not capturing/);
  assert.equal(alloc.emptyCache(), 512, 'only the shared cache is emptied');
  assert.equal(dev.used, 8192, 'the pool keeps its block');
  alloc.releasePool(pool);
  alloc.releasePool(pool); // idempotent
  assert.equal(alloc.emptyCache(), 8192);
  assert.equal(dev.used, 0);
});

test('out of memory during capture: no cache release (cuMemFree is illegal then), an error that says so', () => {
  const dev = fakeDevice(8192);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const cached = alloc.alloc(4096);
  alloc.release(cached);
  const pool = alloc.beginCapture('denoiser');
  assert.throws(() => alloc.alloc(6144), (e: unknown) => {
    assert.ok(e instanceof CudaOutOfMemoryError);
    assert.equal(e.duringCapture, 'denoiser');
    assert.match(e.message, /tried to allocate 6\.00 KiB \(6144 bytes\) during CUDA graph capture of 'denoiser'; .* 4\.00 KiB \(4096 bytes\) cached by the allocator could not be released \(cuMemFree is not allowed during capture; call emptyCache\(\) before capturing\)/);
    return true;
  });
  assert.equal(dev.frees.length, 0);
  alloc.endCapture(pool);
  alloc.releasePool(pool);
  assertBalanced(alloc, dev);
});

test('peak and reserved statistics count graph pools', () => {
  const dev = fakeDevice(1 << 30);
  const alloc = new CachingAllocator(dev, 'fake:0');
  const pool = alloc.beginCapture('g');
  const a = alloc.alloc(1 << 20);
  const b = alloc.alloc(1 << 20);
  alloc.release(a);
  alloc.endCapture(pool);
  const s = alloc.stats();
  assert.equal(s.allocatedBytes, 1 << 20);
  assert.equal(s.reservedBytes, 2 << 20);
  assert.equal(s.peakAllocatedBytes, 2 << 20);
  assert.equal(s.peakReservedBytes, 2 << 20);
  assert.equal(s.graphPoolBytes, 2 << 20);
  assert.equal(s.liveBlocks, 1);
  assert.equal(s.cachedBlocks, 0);
  alloc.resetPeakStats();
  assert.equal(alloc.stats().peakReservedBytes, 2 << 20);
  alloc.release(b);
  alloc.releasePool(pool);
});
