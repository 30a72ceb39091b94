/**
 * Shared by the CUDA matmul, linear-bias and linear-gelu tests: the real CUDA backend (null under
 * DIMBA_CUDA_TEST_FAKE=cpu or without a GPU), and running a body under a DIMBA_CUBLASLT setting
 * while checking, on a real GPU, that its GEMMs took the expected route (so a silently skipped
 * route cannot pass).
 */
import assert from 'node:assert/strict';
import type { DType } from '../../src/tensor/dtype.js';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend } from '../../src/backends/cuda/index.js';
import { gemmStats, setLtUse, type GemmStats, type LtUse } from '../../src/backends/cuda/kernels/gemm.js';
import { realCuda } from './helpers.js';

export function cudaBackend(): CudaBackend | null {
  if (!realCuda) return null;
  const b = getBackend('cuda');
  assert.ok(b instanceof CudaBackend);
  return b;
}

/**
 * Runs `body` with cuBLASLt used as `use` says (the previous setting restored after), returning the
 * GEMM statistics before and after it; null off a real GPU (the body still runs).
 */
export function underLtUse(use: LtUse, body: () => void): [GemmStats, GemmStats] | null {
  const b = cudaBackend();
  if (!b) { body(); return null; }
  const rt = b.runtime;
  const before = gemmStats(rt).use;
  setLtUse(rt, use);
  try {
    const s0 = gemmStats(rt);
    body();
    return [s0, gemmStats(rt)];
  } finally {
    setLtUse(rt, before);
  }
}

/** Runs `body` with cuBLASLt used as `use` says and checks the route its calls took. */
export function withRoute(use: LtUse, expect: 'lt' | 'gemmEx' | 'none', body: () => void): void {
  const stats = underLtUse(use, body);
  if (stats) {
    const [s0, s1] = stats;
    const lt = s1.ltCalls - s0.ltCalls;
    const ex = s1.gemmExCalls - s0.gemmExCalls;
    if (expect === 'lt') {
      assert.ok(lt > 0, `expected cuBLASLt calls under DIMBA_CUBLASLT=${use}: ${JSON.stringify(s1)}`);
      // Problems the heuristic has no algorithm for fall back to GemmEx; worth seeing, not an error.
      if (ex > 0) console.log(`# DIMBA_CUBLASLT=${use}: ${ex} GemmEx fallbacks beside ${lt} cuBLASLt calls (${s1.heuristicMisses - s0.heuristicMisses} new heuristic misses)`);
    } else if (expect === 'gemmEx') {
      assert.equal(lt, 0, `no cuBLASLt calls expected under DIMBA_CUBLASLT=${use}`);
      assert.ok(ex > 0, 'expected GemmEx calls');
    } else {
      assert.equal(lt + ex, 0, 'no cuBLAS call expected');
    }
  }
}

/** The route a float dtype takes under `use`. */
export function routeOf(use: LtUse, dtype: DType): 'lt' | 'gemmEx' {
  if (use === 'off' || dtype === 'float64') return 'gemmEx';
  return dtype === 'float32' && use !== 'all' ? 'gemmEx' : 'lt';
}
