/**
 * One training step of a small Dimba on the CPU: forward and backward of mean(out²) for the
 * Dimba-S layout shrunk to hidden 128, depth 4 (4 Transformer + 4 bidirectional Mamba blocks),
 * batch 8 of 3x32x32 images (256 tokens) with 16 caption tokens. It is the workload of issue 6
 * (training a small model on the emoji dataset on a laptop CPU).
 *
 * `npm run bench:cpu -- --filter dimba` reports the median step as `dimba_step_ms`. Run this file
 * directly to see forward and backward separately, e.g. under the profiler:
 *   node --cpu-prof dist/bench/cpu/dimba-step.js --steps 3
 * `--by-kernel` also times every CPU kernel call (wall clock, summed per kernel and op) over the
 * measured steps; the rest of a step is op-level work: allocation, views, autograd, GC outside
 * kernels.
 */

import { pathToFileURL } from 'node:url';
import * as T from '../../src/index.js';
import { Dimba, presetConfig } from '../../src/models/dimba/index.js';
import { threadPool } from '../../src/backends/cpu/threads/index.js';
import { getBackend } from '../../src/backends/registry.js';
import type { BenchCase } from './harness.js';

export interface DimbaStep {
  forward(): T.Tensor;
  backward(out: T.Tensor): void;
}

export function dimbaStep(): DimbaStep {
  const model = new Dimba(presetConfig('Dimba-S', {
    inputSize: 32, inChannels: 3, hiddenSize: 128, depth: 4, numHeads: 4, captionChannels: 128, captionTokens: 16,
  }));
  // The released init zeroes the final layer, which would make every gradient zero; a real step
  // after a few updates has non-zero gradients everywhere.
  T.nn.init.normal_(model.finalLayer.linear.weight, 0, 0.02, { generator: new T.Generator(3) });
  const x = T.randn([8, 3, 32, 32], { generator: new T.Generator(1) });
  const caption = T.randn([8, 16, 128], { generator: new T.Generator(2) });
  const timestep = T.tensor([1, 100, 200, 300, 400, 500, 700, 999]);
  return {
    forward: () => model.forward({ x, timestep, caption }),
    backward: (out) => {
      model.zeroGrad();
      T.mean(T.square(out)).backward();
    },
  };
}

export function dimbaStepCase(threads?: number): BenchCase {
  return {
    name: 'Dimba-S h128 d4, batch 8 x 3x32x32: forward + backward',
    key: `dimba_step${threads === undefined ? '' : `_${threads}t`}_ms`,
    threads,
    timing: { warmupRuns: 1, warmupMs: 0, minRuns: 5, minMs: 0, maxRuns: 5 },
    setup: () => {
      const step = dimbaStep();
      return () => step.backward(step.forward());
    },
  };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Kernel name (with the op for unary/binary/reduce kernels) -> [calls, ms]. */
type KernelTimes = Map<string, [number, number]>;

/** Replaces every CPU kernel with a timed wrapper (this process only: a profiling aid). */
function timeKernels(): { times: KernelTimes; enabled: { on: boolean } } {
  const times: KernelTimes = new Map();
  const enabled = { on: false };
  const kernels = getBackend('cpu').kernels;
  for (const [name, fn] of Object.entries(kernels)) {
    if (typeof fn !== 'function') continue;
    const wrapped = (...args: unknown[]): unknown => {
      if (!enabled.on) return Reflect.apply(fn, kernels, args);
      const t0 = performance.now();
      try {
        return Reflect.apply(fn, kernels, args);
      } finally {
        const key = typeof args[0] === 'string' ? `${name} ${args[0]}` : name;
        const entry = times.get(key) ?? [0, 0];
        entry[0]++;
        entry[1] += performance.now() - t0;
        times.set(key, entry);
      }
    };
    Object.defineProperty(kernels, name, { value: wrapped });
  }
  return { times, enabled };
}

function kernelTable(times: KernelTimes, steps: number, stepMs: number): string {
  const row = (label: string, calls: string, ms: number): string =>
    `${label.padEnd(36)} ${calls.padStart(6)} ${(ms / steps).toFixed(1).padStart(9)} ${(100 * ms / steps / stepMs).toFixed(1).padStart(6)} %`;
  const rows = [...times].sort((a, b) => b[1][1] - a[1][1]);
  const total = rows.reduce((sum, [, [, ms]]) => sum + ms, 0);
  const header = `${'kernel'.padEnd(36)} ${'calls'.padStart(6)} ${'ms/step'.padStart(9)} ${'share'.padStart(8)}`;
  return [header, ...rows.map(([key, [calls, ms]]) => row(key, String(Math.round(calls / steps)), ms)), row('all kernels', '', total)].join('\n');
}

function main(argv: string[]): void {
  const at = argv.indexOf('--steps');
  const steps = at >= 0 ? Number(argv[at + 1]) : 5;
  const byKernel = argv.includes('--by-kernel') ? timeKernels() : null;
  threadPool().waitUntilReady(10_000);
  const step = dimbaStep();
  const fwd: number[] = [];
  const bwd: number[] = [];
  for (let i = 0; i <= steps; i++) {
    if (byKernel) byKernel.enabled.on = i > 0;
    const t0 = performance.now();
    const out = step.forward();
    const t1 = performance.now();
    step.backward(out);
    const t2 = performance.now();
    // Step 0 warms up (JIT, thread start-up, heap growth).
    if (i > 0) {
      fwd.push(t1 - t0);
      bwd.push(t2 - t1);
    }
    process.stdout.write(`step ${i}: forward ${(t1 - t0).toFixed(0)} ms, backward ${(t2 - t1).toFixed(0)} ms${i === 0 ? ' (warm-up)' : ''}\n`);
  }
  if (steps > 0) {
    const stepMs = median(fwd.map((f, i) => f + bwd[i]!));
    const [f, b] = [median(fwd), median(bwd)];
    process.stdout.write(`median of ${steps}: forward ${f.toFixed(0)} ms, backward ${b.toFixed(0)} ms, step ${stepMs.toFixed(0)} ms\n`);
    if (byKernel) {
      const mean = fwd.reduce((a, fw, i) => a + fw + bwd[i]!, 0) / steps;
      process.stdout.write(`\nper kernel, mean over the ${steps} steps (share of the mean step, ${mean.toFixed(0)} ms):\n`);
      process.stdout.write(`${kernelTable(byKernel.times, steps, mean)}\n`);
    }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
