/** GEMM benchmark cases: square fp32 products with the full thread pool and with one thread. */

import { sgemm, sgemmBatched } from '../../src/backends/cpu/gemm/index.js';
import type { BenchCase } from './harness.js';

function randomFloats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

export function sgemmCase(n: number, threads?: number): BenchCase {
  return {
    name: `sgemm f32 ${n}x${n}x${n}`,
    key: `gemm_f32_${n}${threads === undefined ? '' : `_${threads}t`}_gflops`,
    threads,
    flops: 2 * n * n * n,
    setup: () => {
      const A = randomFloats(n * n, 1);
      const B = randomFloats(n * n, 2);
      const C = new Float32Array(n * n);
      return () => sgemm(false, false, n, n, n, 1, A, 0, n, B, 0, n, 0, C, 0, n);
    },
  };
}

/** Attention-like batched product: batch x [seq, d] @ [d, seq]^T-style (B transposed). */
export function sgemmBatchedCase(batch: number, seq: number, d: number, threads?: number): BenchCase {
  return {
    name: `sgemmBatched f32 ${batch}x(${seq}x${seq}x${d}) B^T`,
    key: `gemm_batched_f32_${batch}x${seq}x${d}${threads === undefined ? '' : `_${threads}t`}_gflops`,
    threads,
    flops: 2 * batch * seq * seq * d,
    setup: () => {
      const A = randomFloats(batch * seq * d, 3);
      const B = randomFloats(batch * seq * d, 4);
      const C = new Float32Array(batch * seq * seq);
      return () => sgemmBatched(false, true, seq, seq, d, 1, A, 0, d, seq * d, B, 0, d, seq * d, 0, C, 0, seq, seq * seq, batch);
    },
  };
}
