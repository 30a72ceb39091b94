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
