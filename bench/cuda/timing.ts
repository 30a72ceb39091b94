/**
 * What the per-kernel benches (elementwise, reduce, modulate, add-rms-norm, linear-gelu,
 * causal-conv1d, attention, scan-kernel) share: the CUDA backend they run on, their two device timers (CUDA events on the
 * runtime's stream) and their common command-line options. Importing this loads nothing; only
 * cudaBackend() needs a GPU, so the pure parts are tested on the CPU (test/bench/timing.test.ts).
 */
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, CudaEvent, loadCuda } from '../../src/backends/cuda/index.js';

/** Loads the CUDA runtime and returns its backend (throws when there is no usable GPU). */
export function cudaBackend(): CudaBackend {
  loadCuda();
  const backend = getBackend('cuda');
  if (!(backend instanceof CudaBackend)) throw new Error('the cuda device did not give a CudaBackend');
  return backend;
}

/** The upper median (the middle element, or the later of the two middle ones). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export interface EachCallOptions {
  /** Timed calls (the median is over these). */
  readonly reps: number;
  /** Untimed calls first (compilation, allocator and cache warm-up). */
  readonly warmup: number;
}

/**
 * Median device ms of one call of fn: events around every call, the stream drained between
 * calls, so each figure is that call alone (short kernels included, no overlap with the next).
 */
export function timeEachCall(backend: CudaBackend, fn: () => void, o: EachCallOptions): number {
  const rt = backend.runtime;
  for (let i = 0; i < o.warmup; i++) fn();
  backend.synchronize();
  const ms: number[] = [];
  for (let i = 0; i < o.reps; i++) {
    const a = CudaEvent.create(rt.api).record(rt.stream);
    fn();
    const b = CudaEvent.create(rt.api).record(rt.stream);
    backend.synchronize();
    ms.push(b.elapsedSince(a));
    a.destroy();
    b.destroy();
  }
  return median(ms);
}

/** Back-to-back calls a round needs to last ~30 ms (2 to 100), from a probe's ms per call. */
export function callsPerRound(probeMsPerCall: number): number {
  return Math.max(2, Math.min(100, Math.ceil(30 / Math.max(probeMsPerCall, 1e-3))));
}

export interface RoundsOptions {
  /** Timed rounds (the median is over these); 7 unless given. */
  readonly rounds?: number;
  /** Untimed calls first; 3 unless given. */
  readonly warmup?: number;
  /** Calls the probe that sizes the rounds averages over; 1 unless given. */
  readonly probeCalls?: number;
}

/**
 * Median device ms per call of fn over rounds of back-to-back calls sized to ~30 ms, so host-side
 * work (ops, autograd, allocation) that overlaps the device's is not counted twice and short
 * calls are not dominated by event resolution.
 */
export function timeRounds(backend: CudaBackend, fn: () => void, o: RoundsOptions = {}): number {
  const { rounds = 7, warmup = 3, probeCalls = 1 } = o;
  const rt = backend.runtime;
  for (let i = 0; i < warmup; i++) fn();
  const a = CudaEvent.create(rt.api);
  const b = CudaEvent.create(rt.api);
  try {
    a.record(rt.stream);
    for (let i = 0; i < probeCalls; i++) fn();
    b.record(rt.stream);
    b.synchronize();
    const inner = callsPerRound(b.elapsedSince(a) / probeCalls);
    const ms: number[] = [];
    for (let r = 0; r < rounds; r++) {
      a.record(rt.stream);
      for (let i = 0; i < inner; i++) fn();
      b.record(rt.stream);
      b.synchronize();
      ms.push(b.elapsedSince(a) / inner);
    }
    return median(ms);
  } finally {
    a.destroy();
    b.destroy();
  }
}

// Command-line options shared by the benches (node:util parseArgs option specs, spread into theirs).

export const JSON_OPTION = { json: { type: 'boolean', default: false } } as const;

/** --reps and --warmup for timeEachCall, with a bench's defaults. */
export function repsOptions(reps: number, warmup: number) {
  return { reps: { type: 'string', default: String(reps) }, warmup: { type: 'string', default: String(warmup) } } as const;
}

/** --reps (at least 20, so the median is stable) and --warmup (a whole number >= 0), checked. */
export function parseReps(args: { readonly reps?: string; readonly warmup?: string }): EachCallOptions {
  const reps = Number(args.reps);
  const warmup = Number(args.warmup);
  if (!(Number.isInteger(reps) && reps >= 20)) throw new Error(`--reps must be a whole number of at least 20, got ${args.reps}`);
  if (!(Number.isInteger(warmup) && warmup >= 0)) throw new Error(`--warmup must be a whole number >= 0, got ${args.warmup}`);
  return { reps, warmup };
}

/** --rounds for timeRounds (default 7). */
export const ROUNDS_OPTION = { rounds: { type: 'string', default: '7' } } as const;

/** --rounds checked: a positive integer. */
export function parseRounds(value: string | undefined): number {
  const rounds = Number(value);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${value}`);
  return rounds;
}

/** --batch, --tokens, --channels and --dtype of the benches over [B, N, C] activations, with a bench's defaults. */
export function activationOptions(batch: number, tokens: number) {
  return {
    batch: { type: 'string', default: String(batch) }, tokens: { type: 'string', default: String(tokens) },
    channels: { type: 'string', default: '1152' }, dtype: { type: 'string', default: 'bf16' },
  } as const;
}

export interface ActivationShape {
  readonly B: number;
  readonly N: number;
  readonly C: number;
  readonly dtype: 'bfloat16' | 'float32';
  /** Bytes an element of dtype takes. */
  readonly bytes: 2 | 4;
}

/** activationOptions' values checked: positive whole sizes, --dtype bf16 or float32. */
export function parseActivation(args: { readonly batch?: string; readonly tokens?: string; readonly channels?: string; readonly dtype?: string }): ActivationShape {
  const sizes = ([['--batch', args.batch], ['--tokens', args.tokens], ['--channels', args.channels]] as const).map(([name, v]) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
    return n;
  });
  if (args.dtype !== 'bf16' && args.dtype !== 'float32') throw new Error(`--dtype must be bf16 or float32, got ${args.dtype}`);
  const bf16 = args.dtype === 'bf16';
  return { B: sizes[0]!, N: sizes[1]!, C: sizes[2]!, dtype: bf16 ? 'bfloat16' : 'float32', bytes: bf16 ? 2 : 4 };
}
