/**
 * Compiles (or loads from the NVRTC disk cache) every kernel module ahead of use: each module
 * whole, and each type-split module for the storage types asked for. `dimba doctor --compile`
 * and bench/cuda/warm-kernels.ts use it, so a first training or sampling run does not wait.
 */
import { ALL_MODULES, KERNEL_PARTS, type KernelPart } from './kernels/source.js';
import type { CudaRuntime } from './runtime.js';

export interface WarmedModule {
  /** scan.cu[bf16], copy.cu */
  readonly module: string;
  /** NVRTC milliseconds (0 from the cache). */
  readonly compileMs: number;
  readonly fromCache: boolean;
  /** Compile (or cache read) plus module load, milliseconds. */
  readonly totalMs: number;
}

/** Storage types from a comma list ("bf16,f32"); an unknown name is an error naming it. */
export function parseKernelParts(list: string, option = '--types'): KernelPart[] {
  const parts = list.split(',').map((t) => t.trim()).filter((t) => t !== '');
  if (parts.length === 0) throw new Error(`${option}: no storage types given (any of ${KERNEL_PARTS.join(', ')})`);
  for (const p of parts) {
    if (!(KERNEL_PARTS as readonly string[]).includes(p)) throw new Error(`${option}: unknown storage type '${p}' (one of ${KERNEL_PARTS.join(', ')})`);
  }
  return parts as KernelPart[];
}

export function warmKernels(runtime: CudaRuntime, parts: readonly KernelPart[] = KERNEL_PARTS,
  each?: (warmed: WarmedModule) => void): WarmedModule[] {
  const out: WarmedModule[] = [];
  for (const m of ALL_MODULES) {
    for (const part of m.typeSplit ? m.typeSplit.filter((p) => parts.includes(p)) : [undefined]) {
      const t0 = performance.now();
      const r = runtime.loadModule(m, part);
      const warmed = { module: r.module, compileMs: r.compileMs, fromCache: r.fromCache, totalMs: performance.now() - t0 };
      out.push(warmed);
      each?.(warmed);
    }
  }
  return out;
}
