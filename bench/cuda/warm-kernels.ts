/**
 * Compiles (or loads from the NVRTC disk cache) every CUDA kernel module and prints the time each
 * took; run before the CUDA tests so parallel test processes find a warm cache.
 * Usage: node dist/bench/cuda/warm-kernels.js
 */
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, loadCuda } from '../../src/backends/cuda/index.js';
import { ALL_MODULES } from '../../src/backends/cuda/kernels/source.js';

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('cuda device did not give a CudaBackend');
const target = backend.runtime.compileTarget();
console.log(`${backend.info.name}: compiling for ${target.kind === 'cubin' ? 'sm' : 'compute'}_${target.arch}`);
for (const m of ALL_MODULES) {
  const t0 = performance.now();
  const r = backend.runtime.loadModule(m);
  console.log(`  ${r.module.padEnd(12)} ${r.fromCache ? 'cached' : `NVRTC ${r.compileMs.toFixed(0)} ms`}, loaded in ${(performance.now() - t0).toFixed(0)} ms`);
}
