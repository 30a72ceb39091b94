/**
 * Reductions over leading dims on the shapes the Dimba-L-2 training profile spends them in
 * (bench/NOTES.md, bf16): bias gradients (sum over N of [N, C]) and broadcast gradients (sum over
 * L of [B, L, C]). Each case times the column kernel (reduceColumns: x read in place) against the
 * path every such reduction took before, a transposing copy (reduced dim last) plus reduceRows,
 * with CUDA events around every call, median of --reps calls after --warmup. GB/s counts x read
 * once plus the output written once, for both paths (so the old path's figure is its effective
 * rate); the fraction is of 3.0 TB/s. The two results are compared as a sanity check.
 *
 *   node dist/bench/cuda/reduce.js [--reps 50] [--warmup 10] [--only substring] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { addressOf } from '../../src/backends/cuda/storage.js';
import { columnPlan } from '../../src/backends/cuda/kernels/reduce.js';
import { itemSize } from '../../src/tensor/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { JSON_OPTION, cudaBackend, parseReps, repsOptions, timeEachCall } from './timing.js';

const { values: args } = parseArgs({
  options: {
    ...repsOptions(50, 10), only: { type: 'string' }, ...JSON_OPTION,
  },
});
const { reps, warmup } = parseReps(args);
const PEAK = 3.0e12;

const backend = cudaBackend();
const rt = backend.runtime;
const K = backend.kernels;
const time = (fn: () => void) => timeEachCall(backend, fn, { reps, warmup });

interface Case {
  name: string;
  /** x viewed as [outer, reduced, inner]. */
  x: Tensor;
}

const cases: Case[] = [];
const want = (name: string) => !args.only || name.includes(args.only);
function rand(shape: number[], dtype: 'bfloat16' | 'float32' = 'bfloat16'): Tensor {
  return T.keep(T.cast(T.randn(shape, { device: 'cuda' }), dtype));
}
for (const c of [1152, 3456, 4608]) cases.push({ name: `sum dim 0 of [8192, ${c}] bf16`, x: T.reshape(rand([8192, c]), [1, 8192, c]) });
cases.push({ name: 'sum over L of [32, 256, 1152] bf16', x: rand([32, 256, 1152]) });
cases.push({ name: 'sum over L of [32, 256, 4608] bf16', x: rand([32, 256, 4608]) });
cases.push({ name: 'sum dim 0 of [8192, 1152] f32', x: T.reshape(rand([8192, 1152], 'float32'), [1, 8192, 1152]) });

interface Result {
  name: string;
  plan: string;
  ms: number;
  gbs: number;
  fraction: number;
  oldMs: number;
  oldGbs: number;
  speedup: number;
  maxRelDiff: number;
}

const results: Result[] = [];
for (const c of cases) {
  if (!want(c.name)) continue;
  const x = c.x;
  const [outer, reduced, inner] = x.shape as [number, number, number];
  const out = T.keep(T.Tensor.empty([outer * inner], x.dtype, backend));
  const oldOut = T.keep(T.Tensor.empty([outer * inner], x.dtype, backend));
  const moved = T.keep(T.Tensor.empty([outer, inner, reduced], x.dtype, backend));
  const permuted = T.permute(x, [0, 2, 1]);
  const rows = T.reshape(moved, [outer * inner, reduced]);
  const p = columnPlan('sum', x, rt.info.multiprocessors, addressOf(x));
  const ms = time(() => K.reduceColumns('sum', x, out));
  const oldMs = time(() => { K.copy(permuted, moved); K.reduceRows('sum', rows, oldOut); });
  const a = out.toFloat64Array();
  const b = oldOut.toFloat64Array();
  let scale = 0;
  for (const v of b) scale += Math.abs(v) / b.length;
  let maxRelDiff = 0;
  for (let i = 0; i < a.length; i++) maxRelDiff = Math.max(maxRelDiff, Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + scale));
  const bytes = x.numel * itemSize(x.dtype) + out.numel * itemSize(out.dtype);
  const gbs = bytes / (ms * 1e-3) / 1e9;
  const oldGbs = bytes / (oldMs * 1e-3) / 1e9;
  results.push({
    name: c.name, plan: `vec ${p.vec} tx ${p.tx} strips ${p.strips} chunks ${p.chunks} grid ${p.grid}`,
    ms, gbs, fraction: (gbs * 1e9) / PEAK, oldMs, oldGbs, speedup: oldMs / ms, maxRelDiff,
  });
}

if (args.json) {
  console.log(JSON.stringify({ device: rt.info.name, reps, warmup, peakTBs: PEAK / 1e12, results }, null, 2));
} else {
  console.log(`device: ${rt.info.name}; median of ${reps} calls after ${warmup}; fraction of ${PEAK / 1e12} TB/s`);
  for (const r of results) {
    console.log(`${r.name.padEnd(38)} ${r.plan.padEnd(44)} ${(r.ms * 1e3).toFixed(1).padStart(7)} us ${r.gbs.toFixed(0).padStart(5)} GB/s `
      + `${(100 * r.fraction).toFixed(0).padStart(3)} %   copy+rows ${(r.oldMs * 1e3).toFixed(1).padStart(7)} us ${r.oldGbs.toFixed(0).padStart(5)} GB/s `
      + `(x${r.speedup.toFixed(2)})  max rel diff ${r.maxRelDiff.toExponential(1)}`);
  }
}
