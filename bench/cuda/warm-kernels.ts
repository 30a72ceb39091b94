/**
 * Compiles (or loads from the NVRTC disk cache) every CUDA kernel module and prints the time each
 * took; run before the CUDA tests so parallel test processes find a warm cache. Modules compiled
 * per storage type (KernelModule.typeSplit) are compiled for each of their types in --types
 * (default all). `dimba doctor --compile` does the same for users.
 * Usage: node dist/bench/cuda/warm-kernels.js [--types bf16,f32,i64,bool]
 */
import { parseArgs } from 'node:util';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, loadCuda } from '../../src/backends/cuda/index.js';
import { KERNEL_PARTS } from '../../src/backends/cuda/kernels/source.js';
import { parseKernelParts, warmKernels } from '../../src/backends/cuda/warm.js';

const { values: args } = parseArgs({ options: { types: { type: 'string' } } });
const parts = parseKernelParts(args.types ?? KERNEL_PARTS.join(','));

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('cuda device did not give a CudaBackend');
const target = backend.runtime.compileTarget();
console.log(`${backend.info.name}: compiling for ${target.kind === 'cubin' ? 'sm' : 'compute'}_${target.arch}`);
const warmed = warmKernels(backend.runtime, parts, (r) => {
  console.log(`  ${r.module.padEnd(22)} ${r.fromCache ? 'cached' : `NVRTC ${r.compileMs.toFixed(0)} ms`}, loaded in ${r.totalMs.toFixed(0)} ms`);
});
console.log(`  NVRTC total ${(warmed.reduce((a, r) => a + r.compileMs, 0) / 1000).toFixed(1)} s`);
