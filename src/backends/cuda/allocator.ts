/**
 * Caching device allocator. cuMemAlloc/cuMemFree cost tens of microseconds to milliseconds and
 * cuMemFree synchronises the device, so freed blocks go to a cache keyed by size class and are
 * handed out again without a driver call. All work of a backend runs on its one stream, so a
 * block freed after queued kernels may be reused at once by later work on that stream: the
 * stream orders the old reads before the new writes.
 *
 * Size classes: below 1 MiB, multiples of 512 bytes; above, a multiple of one eighth of the power
 * of two below the size (at most 12.5% rounding waste, and few distinct classes so reuse hits).
 * A miss allocates a fresh block; an out-of-memory answer releases the whole cache and retries
 * once before raising CudaOutOfMemoryError.
 */

/** The device memory the cache draws on; malloc throws RawOutOfMemory when the device is full. */
export interface RawAllocator {
  malloc(bytes: number): number;
  free(address: number): void;
  /** Free and total device bytes, for error messages. */
  memInfo?(): { free: number; total: number };
}

export class RawOutOfMemory extends Error {
  override name = 'RawOutOfMemory';
}

export interface Block {
  readonly address: number;
  /** Bytes reserved (the size class). */
  readonly size: number;
  /** Bytes asked for. */
  readonly requested: number;
}

export interface MemoryStats {
  /** Bytes held by live blocks (size classes), now and at most since the last reset. */
  readonly allocatedBytes: number;
  readonly peakAllocatedBytes: number;
  /** Bytes obtained from the device: allocated plus cached. */
  readonly reservedBytes: number;
  readonly peakReservedBytes: number;
  readonly cachedBytes: number;
  readonly liveBlocks: number;
  readonly cachedBlocks: number;
  /** Calls to the raw allocator, and allocations served from the cache. */
  readonly deviceAllocs: number;
  readonly cacheHits: number;
}

export class CudaOutOfMemoryError extends Error {
  override name = 'CudaOutOfMemoryError';
  constructor(readonly device: string, readonly requested: number, readonly inUse: number, readonly cached: number,
    readonly deviceFree: number | null, readonly deviceTotal: number | null) {
    super(`CUDA out of memory on ${device}: tried to allocate ${formatBytes(requested)}; ${formatBytes(inUse)} in use by tensors, `
      + `${formatBytes(cached)} was cached by the allocator (released and retried)`
      + (deviceFree !== null && deviceTotal !== null ? `; the device has ${formatBytes(deviceFree)} free of ${formatBytes(deviceTotal)}` : '')
      + '. Free tensors (dispose()), use smaller batches, or bfloat16.');
  }
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} bytes` : `${v.toFixed(2)} ${units[u]} (${n} bytes)`;
}

const SMALL_LIMIT = 1 << 20;
const SMALL_STEP = 512;

export function sizeClass(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`sizeClass: bad byte count ${bytes}`);
  if (bytes === 0) return 0;
  if (bytes <= SMALL_LIMIT) return Math.ceil(bytes / SMALL_STEP) * SMALL_STEP;
  const step = 2 ** (Math.floor(Math.log2(bytes)) - 3);
  return Math.ceil(bytes / step) * step;
}

export class CachingAllocator {
  private readonly free = new Map<number, number[]>();
  private readonly live = new Set<number>();
  private allocated = 0;
  private peakAllocated = 0;
  private cached = 0;
  private cachedCount = 0;
  private peakReserved = 0;
  private deviceAllocs = 0;
  private cacheHits = 0;

  constructor(private readonly raw: RawAllocator, readonly device = 'cuda') {}

  alloc(bytes: number): Block {
    const size = sizeClass(bytes);
    if (size === 0) return { address: 0, size: 0, requested: 0 };
    let address: number | undefined = this.free.get(size)?.pop();
    if (address !== undefined) {
      this.cached -= size;
      this.cachedCount--;
      this.cacheHits++;
    } else {
      address = this.fresh(size, bytes);
    }
    this.live.add(address);
    this.allocated += size;
    this.peakAllocated = Math.max(this.peakAllocated, this.allocated);
    this.peakReserved = Math.max(this.peakReserved, this.allocated + this.cached);
    return { address, size, requested: bytes };
  }

  private fresh(size: number, requested: number): number {
    try {
      const address = this.raw.malloc(size);
      this.deviceAllocs++;
      return address;
    } catch (e) {
      if (!(e instanceof RawOutOfMemory)) throw e;
    }
    const cachedBefore = this.cached;
    this.emptyCache();
    try {
      const address = this.raw.malloc(size);
      this.deviceAllocs++;
      return address;
    } catch (e) {
      if (!(e instanceof RawOutOfMemory)) throw e;
      const info = this.raw.memInfo?.() ?? null;
      throw new CudaOutOfMemoryError(this.device, requested, this.allocated, cachedBefore, info?.free ?? null, info?.total ?? null);
    }
  }

  /** Returns a block to the cache (no driver call). */
  release(block: Block): void {
    if (block.size === 0) return;
    if (!this.live.delete(block.address)) throw new Error(`CachingAllocator: block at 0x${block.address.toString(16)} released twice or never allocated`);
    this.allocated -= block.size;
    let list = this.free.get(block.size);
    if (!list) {
      list = [];
      this.free.set(block.size, list);
    }
    list.push(block.address);
    this.cached += block.size;
    this.cachedCount++;
  }

  /** Gives every cached block back to the device; returns the bytes released. */
  emptyCache(): number {
    const released = this.cached;
    for (const list of this.free.values()) for (const address of list) this.raw.free(address);
    this.free.clear();
    this.cached = 0;
    this.cachedCount = 0;
    return released;
  }

  stats(): MemoryStats {
    return {
      allocatedBytes: this.allocated,
      peakAllocatedBytes: this.peakAllocated,
      reservedBytes: this.allocated + this.cached,
      peakReservedBytes: this.peakReserved,
      cachedBytes: this.cached,
      liveBlocks: this.live.size,
      cachedBlocks: this.cachedCount,
      deviceAllocs: this.deviceAllocs,
      cacheHits: this.cacheHits,
    };
  }

  resetPeakStats(): void {
    this.peakAllocated = this.allocated;
    this.peakReserved = this.allocated + this.cached;
  }
}
