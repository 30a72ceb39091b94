/**
 * Compiles (or loads from the NVRTC disk cache) every CUDA kernel module and prints the time each
 * took; run before the CUDA tests so parallel test processes find a warm cache. Modules compiled
 * per storage type (KernelModule.typeSplit) are compiled for each of their types in --types
 * (default all). Usage: node dist/bench/cuda/warm-kernels.js [--types bf16,f32,i64,bool]
 */
import { parseArgs } from 'node:util';
import { getBackend } from '../../src/backends/registry.js';
import { CudaBackend, loadCuda } from '../../src/backends/cuda/index.js';
import { ALL_MODULES, KERNEL_PARTS } from '../../src/backends/cuda/kernels/source.js';

const { values: args } = parseArgs({ options: { types: { type: 'string' } } });
const parts = (args.types ?? KERNEL_PARTS.join(',')).split(',').map((t) => t.trim()).filter((t) => t !== '');
for (const p of parts) {
  if (!(KERNEL_PARTS as readonly string[]).includes(p)) throw new Error(`--types: unknown storage type '${p}' (one of ${KERNEL_PARTS.join(', ')})`);
}

loadCuda();
const backend = getBackend('cuda');
if (!(backend instanceof CudaBackend)) throw new Error('cuda device did not give a CudaBackend');
const target = backend.runtime.compileTarget();
console.log(`${backend.info.name}: compiling for ${target.kind === 'cubin' ? 'sm' : 'compute'}_${target.arch}`);
let total = 0;
for (const m of ALL_MODULES) {
  for (const part of m.typeSplit ? m.typeSplit.filter((p) => parts.includes(p)) : [undefined]) {
    const t0 = performance.now();
    const r = backend.runtime.loadModule(m, part);
    total += r.compileMs;
    console.log(`  ${r.module.padEnd(22)} ${r.fromCache ? 'cached' : `NVRTC ${r.compileMs.toFixed(0)} ms`}, loaded in ${(performance.now() - t0).toFixed(0)} ms`);
  }
}
console.log(`  NVRTC total ${(total / 1000).toFixed(1)} s`);
