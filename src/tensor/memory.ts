/**
 * Live-storage accounting per device: how many storages tensors still refer to and their bytes,
 * counted when the first tensor takes a storage and when the last one lets go (dispose, scope end,
 * or garbage collection). It measures what the engine holds, independent of any allocator cache;
 * for CUDA, memoryStats also reports the caching allocator's own counters.
 */
import type { Backend, Storage } from '../backends/backend.js';
import { itemSize } from './dtype.js';
import { deviceKey, parseDevice, type Device } from './device.js';
import { defaultDevice, getBackend } from '../backends/registry.js';

interface Counters {
  storages: number;
  bytes: number;
  peakBytes: number;
  allocatedBytes: number;
}

const byBackend = new WeakMap<Backend, Counters>();
const byDevice = new Map<string, Counters>();

function countersOf(backend: Backend): Counters {
  let c = byBackend.get(backend);
  if (!c) {
    const key = deviceKey(backend.device);
    c = byDevice.get(key) ?? { storages: 0, bytes: 0, peakBytes: 0, allocatedBytes: 0 };
    byBackend.set(backend, c);
    byDevice.set(key, c);
  }
  return c;
}

/** Called by Tensor when a storage gains its first tensor (+1) or loses its last (-1). */
export function countStorage(storage: Storage, delta: 1 | -1): void {
  const c = countersOf(storage.backend);
  const bytes = storage.numel * itemSize(storage.dtype);
  c.storages += delta;
  c.bytes += delta * bytes;
  if (delta > 0) {
    c.allocatedBytes += bytes;
    if (c.bytes > c.peakBytes) c.peakBytes = c.bytes;
  }
}

export interface TensorMemoryStats {
  readonly device: string;
  /** Storages that some undisposed, uncollected tensor refers to, and their bytes. */
  readonly liveStorages: number;
  readonly liveBytes: number;
  /** Most live bytes since the process started or resetPeakMemoryStats. */
  readonly peakLiveBytes: number;
  /** Bytes of every storage tensors have taken so far (what would be live if nothing were ever released). */
  readonly allocatedBytes: number;
  /** The backend's allocator counters where it has some (CUDA: allocated/reserved bytes, peaks, cache hits), else null. */
  readonly allocator: Readonly<Record<string, number>> | null;
}

interface WithAllocatorStats {
  memoryStats?: () => Readonly<Record<string, number>>;
  resetPeakMemoryStats?: () => void;
}

function keyOf(device: string | Device | undefined): string {
  const d = device ?? defaultDevice();
  return deviceKey(typeof d === 'string' ? parseDevice(d) : d);
}

/** Live tensor storage on `device` (default: the default device). */
export function memoryStats(device?: string | Device): TensorMemoryStats {
  const key = keyOf(device);
  const c = byDevice.get(key) ?? { storages: 0, bytes: 0, peakBytes: 0, allocatedBytes: 0 };
  const backend = getBackend(key) as Backend & WithAllocatorStats;
  return {
    device: key, liveStorages: c.storages, liveBytes: c.bytes, peakLiveBytes: c.peakBytes, allocatedBytes: c.allocatedBytes,
    allocator: backend.memoryStats ? { ...backend.memoryStats() } : null,
  };
}

/** Starts peak tracking afresh (peak = current) for tensors and, where it has one, the allocator. */
export function resetPeakMemoryStats(device?: string | Device): void {
  const key = keyOf(device);
  const c = byDevice.get(key);
  if (c) c.peakBytes = c.bytes;
  (getBackend(key) as Backend & WithAllocatorStats).resetPeakMemoryStats?.();
}
