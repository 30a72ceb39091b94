/**
 * What the bench/cuda comparison scripts need from a device, on CUDA or (for --device cpu smoke
 * runs that keep the scripts from rotting) on the CPU: timing of a call (CUDA events around it on
 * the GPU, wall clock on the CPU), the allocator's peak bytes, cache release after an
 * out-of-memory, and the device's name.
 */
import * as T from '../../src/index.js';
import { getBackend, withDefaultDevice } from '../../src/backends/registry.js';
import { Dimba } from '../../src/models/dimba/model.js';
import type { DimbaConfig } from '../../src/models/dimba/config.js';
import { CudaBackend, CudaEvent, CudaOutOfMemoryError, loadCuda } from '../../src/backends/cuda/index.js';

export interface BenchDevice {
  /** 'cuda' or 'cpu': the device string for tensors. */
  readonly name: 'cuda' | 'cpu';
  /** Human-readable (the GPU's name). */
  readonly label: string;
  /** Milliseconds per call of fn, `reps` calls after `warmup` untimed ones. */
  time(fn: () => void, warmup: number, reps: number): number[];
  synchronize(): void;
  resetPeak(): void;
  /** Peak bytes since resetPeak(): the CUDA caching allocator's allocated bytes, or live tensor bytes on the CPU. */
  peakBytes(): number;
  /** Frees cached device memory (after an out-of-memory). */
  releaseCache(): void;
  isOutOfMemory(e: unknown): boolean;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function openDevice(name: string): BenchDevice {
  if (name === 'cpu') return cpuDevice();
  if (name === 'cuda') return cudaDevice();
  throw new Error(`--device must be cuda or cpu, got '${name}'`);
}

function cpuDevice(): BenchDevice {
  const backend = getBackend('cpu');
  return {
    name: 'cpu',
    label: 'cpu',
    time(fn, warmup, reps) {
      for (let i = 0; i < warmup; i++) fn();
      const out: number[] = [];
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        fn();
        backend.synchronize();
        out.push(performance.now() - t0);
      }
      return out;
    },
    synchronize: () => backend.synchronize(),
    resetPeak: () => T.resetPeakMemoryStats('cpu'),
    peakBytes: () => T.memoryStats('cpu').peakLiveBytes,
    releaseCache: () => undefined,
    isOutOfMemory: () => false,
  };
}

function cudaDevice(): BenchDevice {
  loadCuda();
  const backend = getBackend('cuda');
  if (!(backend instanceof CudaBackend)) throw new Error('the cuda device did not give a CudaBackend');
  const rt = backend.runtime;
  const start = CudaEvent.create(rt.api);
  const end = CudaEvent.create(rt.api);
  return {
    name: 'cuda',
    label: rt.info.name,
    time(fn, warmup, reps) {
      for (let i = 0; i < warmup; i++) fn();
      backend.synchronize();
      const out: number[] = [];
      for (let i = 0; i < reps; i++) {
        start.record(rt.stream);
        fn();
        end.record(rt.stream);
        end.synchronize();
        out.push(end.elapsedSince(start));
      }
      return out;
    },
    synchronize: () => backend.synchronize(),
    resetPeak: () => rt.allocator.resetPeakStats(),
    peakBytes: () => rt.allocator.stats().peakAllocatedBytes,
    releaseCache: () => {
      backend.synchronize();
      rt.allocator.emptyCache();
    },
    isOutOfMemory: (e) => e instanceof CudaOutOfMemoryError,
  };
}

/** Prints one result: a JSON line with --json, else key=value pairs. Adds impl and device. */
export function emit(json: boolean, device: BenchDevice, record: Record<string, unknown>): void {
  const full = { impl: 'dimba', device_name: device.label, ...record };
  if (json) {
    console.log(JSON.stringify(full));
    return;
  }
  console.log(Object.entries(full).map(([k, v]) => `${k}=${show(v)}`).join('  '));
}

function show(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`;
  if (v && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** "256,512" -> [256, 512]; every entry a positive integer. */
export function intList(flag: string, text: string): number[] {
  const out = text.split(',').filter((s) => s !== '').map(Number);
  if (out.length === 0 || out.some((v) => !Number.isInteger(v) || v <= 0)) throw new Error(`${flag} must be a comma list of positive integers, got '${text}'`);
  return out;
}

export function positiveInt(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${flag} must be a non-negative integer, got '${text}'`);
  return v;
}

/** The latent side res / 8, checked to be a whole number of patches. */
export function latentSide(res: number, patchSize: number): number {
  const latent = res / 8;
  if (!Number.isInteger(latent) || latent % patchSize !== 0) throw new Error(`--res ${res}: res / 8 must be a multiple of the patch size ${patchSize}`);
  return latent;
}

/** Real tokens per caption (same rule as bench/reference/bench.py): tokens - (37 i mod 3/4 tokens). */
export function captionLengths(batch: number, tokens: number): number[] {
  const span = Math.max(1, Math.floor((3 * tokens) / 4));
  return Array.from({ length: batch }, (_, i) => tokens - ((37 * i) % span));
}

/** [batch, tokens] bool mask, true for each caption's real tokens. */
export function captionMask(batch: number, tokens: number, device: string): T.Tensor {
  const lengths = captionLengths(batch, tokens);
  const values = new Uint8Array(batch * tokens);
  lengths.forEach((n, b) => values.fill(1, b * tokens, b * tokens + n));
  return T.cast(T.tensor(Array.from(values), { shape: [batch, tokens] }), 'bool').to(device);
}

/**
 * The benchmarked model: built on the device itself (initialisers draw there; an L-2 built on the
 * CPU takes minutes) inside a tidy scope (construction temporaries go at once), then cast to bf16
 * on the GPU (the comparison's precision; cast() frees the float32 originals). CPU smoke runs stay
 * float32.
 */
export function buildBenchModel(config: DimbaConfig, device: BenchDevice): { model: Dimba; buildMs: number; dtype: 'bfloat16' | 'float32' } {
  const t0 = performance.now();
  const model = withDefaultDevice(device.name, () => T.tidy(() => new Dimba(config, { seed: 0 })));
  const buildMs = performance.now() - t0;
  const dtype = device.name === 'cuda' ? 'bfloat16' : 'float32';
  if (dtype === 'bfloat16') model.cast('bfloat16');
  return { model, buildMs, dtype };
}
