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
 *
 * Graph-private pools (CUDA graphs, graph.ts): a captured graph bakes in the device addresses its
 * kernels read and write, and replays them long after capture. While a capture is under way every
 * allocation is served from that graph's pool, and every block freed comes back into that pool
 * only, where later allocations of the same capture may reuse it (the graph orders them on one
 * stream). Pre-capture blocks freed during capture are adopted by the pool too: the graph may have
 * read them. After capture the pool stays reserved: its free blocks are handed to nobody and its
 * live blocks (the graph's outputs) come back to it, so replays never write into memory that
 * someone else was given. releasePool (when the graph is destroyed) returns its free blocks to
 * the shared cache, and its live blocks go there when they are released.
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
  /** Bytes obtained from the device: allocated, cached, and free in graph pools. */
  readonly reservedBytes: number;
  readonly peakReservedBytes: number;
  /** Free blocks in the shared cache (graph pools' free blocks are not in it). */
  readonly cachedBytes: number;
  readonly liveBlocks: number;
  readonly cachedBlocks: number;
  /** Calls to the raw allocator, and allocations served from the cache. */
  readonly deviceAllocs: number;
  readonly cacheHits: number;
  /** Graph-private pools alive, and the bytes they reserve (their live and free blocks). */
  readonly graphPools: number;
  readonly graphPoolBytes: number;
}

/** One graph's private memory (see the header). */
export class GraphPool {
  private static nextId = 1;
  readonly id = GraphPool.nextId++;
  /** Free blocks by size class: reusable by this pool's capture only. */
  readonly free = new Map<number, number[]>();
  liveBytes = 0;
  liveBlocks = 0;
  freeBytes = 0;
  freeBlocks = 0;
  /** Blocks obtained from the device, taken from the shared cache, reused from this pool, and adopted on release during capture. */
  deviceAllocs = 0;
  fromCache = 0;
  reuses = 0;
  adopted = 0;
  released = false;

  constructor(readonly label: string) {}

  get reservedBytes(): number {
    return this.liveBytes + this.freeBytes;
  }
}

export class CudaOutOfMemoryError extends Error {
  override name = 'CudaOutOfMemoryError';
  /** `duringCapture`: the label of the graph being captured, when the cache could not be released (cuMemFree is illegal then). */
  constructor(readonly device: string, readonly requested: number, readonly inUse: number, readonly cached: number,
    readonly deviceFree: number | null, readonly deviceTotal: number | null, readonly duringCapture: string | null = null) {
    super(`CUDA out of memory on ${device}: tried to allocate ${formatBytes(requested)}`
      + (duringCapture !== null ? ` during CUDA graph capture${duringCapture ? ` of '${duringCapture}'` : ''}` : '')
      + `; ${formatBytes(inUse)} in use by tensors, `
      + (duringCapture !== null
        ? `${formatBytes(cached)} cached by the allocator could not be released (cuMemFree is not allowed during capture; call emptyCache() before capturing)`
        : `${formatBytes(cached)} was cached by the allocator (released and retried)`)
      + (deviceFree !== null && deviceTotal !== null ? `; the device has ${formatBytes(deviceFree)} free of ${formatBytes(deviceTotal)}` : '')
      + '. Run loops inside T.tidy (outside a scope, dead intermediates wait for the garbage collector), free tensors with dispose(), use smaller batches, gradient checkpointing, or bfloat16.');
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
  /** Live blocks: address -> the graph pool that owns the block (null: the shared cache). */
  private readonly live = new Map<number, GraphPool | null>();
  private readonly pools = new Set<GraphPool>();
  private capturePool: GraphPool | null = null;
  /** Device allocations during capture (the caller makes cuMemAlloc legal there, graph.ts). */
  private captureRaw: RawAllocator | null = null;
  private allocated = 0;
  private peakAllocated = 0;
  private cached = 0;
  private cachedCount = 0;
  /** Free bytes held by graph pools (reserved, but not in the shared cache). */
  private poolFree = 0;
  private peakReserved = 0;
  private deviceAllocs = 0;
  private cacheHits = 0;

  constructor(private readonly raw: RawAllocator, readonly device = 'cuda') {}

  /** The pool a capture under way allocates from, or null. */
  get capturing(): GraphPool | null {
    return this.capturePool;
  }

  alloc(bytes: number): Block {
    const size = sizeClass(bytes);
    if (size === 0) return { address: 0, size: 0, requested: 0 };
    const pool = this.capturePool;
    const address = pool ? this.fromPool(pool, size, bytes) : this.fromCache(size) ?? this.fresh(size, bytes);
    this.live.set(address, pool);
    this.allocated += size;
    this.peakAllocated = Math.max(this.peakAllocated, this.allocated);
    this.peakReserved = Math.max(this.peakReserved, this.reserved());
    return { address, size, requested: bytes };
  }

  private reserved(): number {
    return this.allocated + this.cached + this.poolFree;
  }

  private fromCache(size: number): number | undefined {
    const address = this.free.get(size)?.pop();
    if (address !== undefined) {
      this.cached -= size;
      this.cachedCount--;
      this.cacheHits++;
    }
    return address;
  }

  /**
   * A block for the capture of `pool`: one this capture freed, else one from the shared cache
   * (its earlier users queued their work before the capture began, on the same stream, so every
   * replay runs after them; the pool keeps it from then on), else a new one from the device.
   */
  private fromPool(pool: GraphPool, size: number, requested: number): number {
    let address = pool.free.get(size)?.pop();
    if (address !== undefined) {
      pool.freeBytes -= size;
      pool.freeBlocks--;
      this.poolFree -= size;
      pool.reuses++;
    } else {
      address = this.fromCache(size);
      if (address !== undefined) pool.fromCache++;
    }
    if (address === undefined) {
      try {
        address = (this.captureRaw ?? this.raw).malloc(size);
      } catch (e) {
        if (!(e instanceof RawOutOfMemory)) throw e;
        const info = this.raw.memInfo?.() ?? null;
        throw new CudaOutOfMemoryError(this.device, requested, this.allocated, this.cached, info?.free ?? null, info?.total ?? null, pool.label);
      }
      this.deviceAllocs++;
      pool.deviceAllocs++;
    }
    pool.liveBytes += size;
    pool.liveBlocks++;
    return address;
  }

  private fresh(size: number, requested: number): number {
    const first = this.tryMalloc(size);
    if (first !== null) return first;
    const cachedBefore = this.cached;
    this.emptyCache();
    const second = this.tryMalloc(size);
    if (second !== null) return second;
    const info = this.raw.memInfo?.() ?? null;
    throw new CudaOutOfMemoryError(this.device, requested, this.allocated, cachedBefore, info?.free ?? null, info?.total ?? null);
  }

  /** A device block, or null when the device is out of memory (other errors pass through). */
  private tryMalloc(size: number): number | null {
    try {
      const address = this.raw.malloc(size);
      this.deviceAllocs++;
      return address;
    } catch (e) {
      if (!(e instanceof RawOutOfMemory)) throw e;
      return null;
    }
  }

  /** Returns a block to its pool, or to the shared cache (no driver call). */
  release(block: Block): void {
    if (block.size === 0) return;
    const owner = this.live.get(block.address);
    if (owner === undefined) throw new Error(`CachingAllocator: block at 0x${block.address.toString(16)} released twice or never allocated`);
    this.live.delete(block.address);
    this.allocated -= block.size;
    if (owner !== null) {
      owner.liveBytes -= block.size;
      owner.liveBlocks--;
      this.toPool(owner, block);
    } else if (this.capturePool !== null) {
      // Allocated before the capture and freed during it: the graph may read it at every replay.
      this.capturePool.adopted++;
      this.toPool(this.capturePool, block);
    } else {
      this.toCache(block.address, block.size);
    }
  }

  private toPool(pool: GraphPool, block: Block): void {
    let list = pool.free.get(block.size);
    if (!list) {
      list = [];
      pool.free.set(block.size, list);
    }
    list.push(block.address);
    pool.freeBytes += block.size;
    pool.freeBlocks++;
    this.poolFree += block.size;
  }

  private toCache(address: number, size: number): void {
    let list = this.free.get(size);
    if (!list) {
      list = [];
      this.free.set(size, list);
    }
    list.push(address);
    this.cached += size;
    this.cachedCount++;
  }

  /**
   * Starts routing every allocation and release to a new graph-private pool (see the header).
   * `raw` serves device allocations meanwhile (the caller makes them legal under capture).
   */
  beginCapture(label: string, raw: RawAllocator | null = null): GraphPool {
    if (this.capturePool !== null) {
      throw new Error(`CachingAllocator: a capture ('${this.capturePool.label}') is already under way on ${this.device}; captures do not nest`);
    }
    const pool = new GraphPool(label);
    this.pools.add(pool);
    this.capturePool = pool;
    this.captureRaw = raw;
    return pool;
  }

  /** Stops routing allocations to the capture's pool; the pool stays reserved until releasePool. */
  endCapture(pool: GraphPool): void {
    if (this.capturePool !== pool) throw new Error(`CachingAllocator: pool ${pool.id} ('${pool.label}') is not capturing`);
    this.capturePool = null;
    this.captureRaw = null;
  }

  /**
   * Gives a graph's pool back (the graph was destroyed, or its capture failed): free blocks go to
   * the shared cache; live ones (outputs still held) go there when released. Stream order makes
   * this safe even with a replay still running: later work on the stream runs after it.
   */
  releasePool(pool: GraphPool): void {
    if (pool.released) return;
    if (this.capturePool === pool) throw new Error(`CachingAllocator: pool ${pool.id} ('${pool.label}') is still capturing; end the capture first`);
    for (const [size, list] of pool.free) for (const address of list) this.toCache(address, size);
    this.poolFree -= pool.freeBytes;
    pool.free.clear();
    pool.freeBytes = 0;
    pool.freeBlocks = 0;
    if (pool.liveBlocks > 0) {
      for (const [address, owner] of this.live) if (owner === pool) this.live.set(address, null);
    }
    pool.liveBytes = 0;
    pool.liveBlocks = 0;
    pool.released = true;
    this.pools.delete(pool);
  }

  /** Gives every block of the shared cache back to the device; returns the bytes released. Graph pools keep theirs. */
  emptyCache(): number {
    if (this.capturePool !== null) {
      throw new Error(`CachingAllocator.emptyCache during CUDA graph capture of '${this.capturePool.label}': cuMemFree synchronises the device`);
    }
    const released = this.cached;
    for (const list of this.free.values()) for (const address of list) this.raw.free(address);
    this.free.clear();
    this.cached = 0;
    this.cachedCount = 0;
    return released;
  }

  stats(): MemoryStats {
    let poolBytes = 0;
    for (const p of this.pools) poolBytes += p.reservedBytes;
    return {
      allocatedBytes: this.allocated,
      peakAllocatedBytes: this.peakAllocated,
      reservedBytes: this.reserved(),
      peakReservedBytes: this.peakReserved,
      cachedBytes: this.cached,
      liveBlocks: this.live.size,
      cachedBlocks: this.cachedCount,
      deviceAllocs: this.deviceAllocs,
      cacheHits: this.cacheHits,
      graphPools: this.pools.size,
      graphPoolBytes: poolBytes,
    };
  }

  resetPeakStats(): void {
    this.peakAllocated = this.allocated;
    this.peakReserved = this.reserved();
  }
}
