/**
 * Benchmark harness for the CPU backend: a case is a named workload, with a FLOP count when it
 * has a meaningful one; the runner warms it up, times several runs and reports the median time
 * (and rate).
 */

export interface BenchCase {
  /** Row label, e.g. "sgemm 1024x1024x1024". */
  name: string;
  /** Key in the --json output: GFLOP/s when `flops` is set, else median milliseconds. */
  key: string;
  /** Threads for the CPU pool (sets DIMBA_CPU_THREADS while the case runs); undefined = all. */
  threads?: number;
  /** Floating-point operations per run (omitted for whole-model workloads, reported in ms). */
  flops?: number;
  /** Overrides of DEFAULT_TIMING (a training step takes seconds, not microseconds). */
  timing?: Partial<TimingOptions>;
  /** Allocates inputs and returns one run. */
  setup(): () => void;
}

export interface BenchResult {
  name: string;
  key: string;
  threads: string;
  medianMs: number;
  /** NaN for cases without a FLOP count. */
  gflops: number;
  runs: number;
}

/** The value the --json output reports for a result: GFLOP/s or median ms, as its key says. */
export function headline(r: BenchResult): number {
  return Number((Number.isNaN(r.gflops) ? r.medianMs : r.gflops).toFixed(3));
}

export interface TimingOptions {
  /** Minimum warm-up runs and time (ms). */
  warmupRuns: number;
  warmupMs: number;
  /** Timed runs: at least `minRuns`, continuing until `minMs` has been spent (capped at maxRuns). */
  minRuns: number;
  minMs: number;
  maxRuns: number;
}

export const DEFAULT_TIMING: TimingOptions = { warmupRuns: 3, warmupMs: 300, minRuns: 7, minMs: 1000, maxRuns: 50 };

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function runCase(c: BenchCase, defaults: TimingOptions = DEFAULT_TIMING): BenchResult {
  const timing = { ...defaults, ...c.timing };
  const saved = process.env['DIMBA_CPU_THREADS'];
  if (c.threads !== undefined) process.env['DIMBA_CPU_THREADS'] = String(c.threads);
  try {
    const run = c.setup();
    const warmStart = performance.now();
    for (let i = 0; i < timing.warmupRuns || performance.now() - warmStart < timing.warmupMs; i++) run();
    const times: number[] = [];
    const start = performance.now();
    while (times.length < timing.minRuns || (performance.now() - start < timing.minMs && times.length < timing.maxRuns)) {
      const t0 = performance.now();
      run();
      times.push(performance.now() - t0);
    }
    const medianMs = median(times);
    return {
      name: c.name, key: c.key, threads: c.threads === undefined ? 'all' : String(c.threads),
      medianMs, gflops: c.flops === undefined ? NaN : c.flops / (medianMs * 1e6), runs: times.length,
    };
  } finally {
    if (saved === undefined) delete process.env['DIMBA_CPU_THREADS'];
    else process.env['DIMBA_CPU_THREADS'] = saved;
  }
}

export function formatTable(results: readonly BenchResult[]): string {
  const header = ['case', 'threads', 'median ms', 'GFLOP/s', 'runs'];
  const rows = results.map((r) => [r.name, r.threads, r.medianMs.toFixed(3), Number.isNaN(r.gflops) ? '-' : r.gflops.toFixed(2), String(r.runs)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
