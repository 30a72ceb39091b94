/**
 * Where kernel sources live and how dtypes name kernels. Each kernels/<module>.cu sits beside
 * its TypeScript launcher; both NVRTC (at run time) and nvcc (the CI compile check) read it.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { DType } from '../../../tensor/dtype.js';

export interface KernelModule {
  /** Module name (also the .cu file's base name). */
  readonly name: string;
  /**
   * The storage types it is compiled for one at a time (common.cuh DIMBA_ONLY_TYPE), when its
   * kernels take much of NVRTC's time and a process launches only a few of its types. A kernel
   * name carries its type's suffix (kernelPart); one that names none is in every part.
   */
  readonly typeSplit?: readonly KernelPart[];
}

/** The storage types a type-split module can be compiled for, one part each (DTYPE_SUFFIX). */
export type KernelPart = 'f32' | 'f64' | 'bf16' | 'f16' | 'i32' | 'i64' | 'bool';
export const KERNEL_PARTS: readonly KernelPart[] = ['f32', 'f64', 'bf16', 'f16', 'i32', 'i64', 'bool'];
const FLOAT_PARTS: readonly KernelPart[] = ['f32', 'f64', 'bf16', 'f16'];

export const COPY_MODULE: KernelModule = { name: 'copy' };
export const ELEMENTWISE_MODULE: KernelModule = { name: 'elementwise', typeSplit: KERNEL_PARTS };
export const REDUCE_MODULE: KernelModule = { name: 'reduce', typeSplit: KERNEL_PARTS };
export const ROWS_MODULE: KernelModule = { name: 'rows' };
export const INDEXING_MODULE: KernelModule = { name: 'indexing' };
export const RANDOM_MODULE: KernelModule = { name: 'random' };
export const SCAN_MODULE: KernelModule = { name: 'scan', typeSplit: FLOAT_PARTS };
export const CAUSAL_CONV1D_MODULE: KernelModule = { name: 'causal-conv1d', typeSplit: FLOAT_PARTS };
export const CONV_MODULE: KernelModule = { name: 'conv' };
export const INTERPOLATE_MODULE: KernelModule = { name: 'interpolate' };
export const INT_MATMUL_MODULE: KernelModule = { name: 'int-matmul' };
export const ATTENTION_MODULE: KernelModule = { name: 'attention', typeSplit: ['bf16', 'f16'] };
export const OPTIM_MODULE: KernelModule = { name: 'optim' };
export const MODULATE_MODULE: KernelModule = { name: 'modulate', typeSplit: FLOAT_PARTS };
export const ADD_RMS_NORM_MODULE: KernelModule = { name: 'add-rms-norm' };
export const CUDNN_ATTENTION_MODULE: KernelModule = { name: 'cudnn-attention' };

/** Every module (warm-kernels compiles them all; test/cuda/nvcc.test.ts checks none is missing). */
export const ALL_MODULES: readonly KernelModule[] = [
  COPY_MODULE, ELEMENTWISE_MODULE, REDUCE_MODULE, ROWS_MODULE, INDEXING_MODULE, RANDOM_MODULE,
  SCAN_MODULE, CAUSAL_CONV1D_MODULE, CONV_MODULE, INTERPOLATE_MODULE, INT_MATMUL_MODULE,
  ATTENTION_MODULE, OPTIM_MODULE, MODULATE_MODULE, ADD_RMS_NORM_MODULE, CUDNN_ATTENTION_MODULE,
];

/**
 * The part of a type-split module that defines kernel `name`: its first storage-type token
 * (scan_fwd_pair_bf16_8x2 -> bf16, cc1d_reduce_f32 -> f32), or null when it names none.
 */
export function kernelPart(name: string): KernelPart | null {
  for (const token of name.split('_')) {
    if ((KERNEL_PARTS as readonly string[]).includes(token)) return token as KernelPart;
  }
  return null;
}

/** The NVRTC/nvcc options that compile one part (common.cuh DIMBA_WANTS): the part's dtype code. */
export function partDefines(part: KernelPart): string[] {
  const dtype = (Object.keys(DTYPE_SUFFIX) as DType[]).find((d) => DTYPE_SUFFIX[d] === part)!;
  return [`-DDIMBA_ONLY_TYPE=${DTYPE_CODE[dtype]}`];
}

/** dtype codes shared with common.cuh (load_dyn / store_dyn). */
export const DTYPE_CODE: Readonly<Record<DType, number>> = {
  float32: 0, float64: 1, bfloat16: 2, float16: 3, int32: 4, int64: 5, bool: 6,
};

/** Kernel-name suffix per dtype (unary_f32, reduce_warp_bf16, ...). */
export const DTYPE_SUFFIX: Readonly<Record<DType, string>> = {
  float32: 'f32', float64: 'f64', bfloat16: 'bf16', float16: 'f16', int32: 'i32', int64: 'i64', bool: 'bool',
};

/**
 * The folder holding the .cu files. Compiled JavaScript runs from dist/src/backends/cuda/kernels,
 * where tsc does not copy them, so fall back from this module's own folder to the source tree.
 */
export function kernelSourceDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  if (existsSync(`${here}common.cuh`)) return here;
  const inSource = fileURLToPath(new URL('../../../../../src/backends/cuda/kernels/', import.meta.url));
  if (existsSync(`${inSource}common.cuh`)) return inSource;
  throw new Error(`CUDA kernel sources not found: looked for common.cuh in ${here} and ${inSource}`);
}

/** Every .cu file (for the nvcc compile check). */
export function kernelSourceFiles(): string[] {
  const dir = kernelSourceDir();
  return readdirSync(dir).filter((f) => f.endsWith('.cu')).sort().map((f) => `${dir}${f}`);
}

export interface KernelSource {
  readonly name: string;
  readonly source: string;
  /** Headers the source includes by name, for NVRTC (which cannot read files itself). */
  readonly headers: Readonly<Record<string, string>>;
}

export function readKernelSource(module: KernelModule): KernelSource {
  const dir = kernelSourceDir();
  return {
    name: `${module.name}.cu`,
    source: readFileSync(`${dir}${module.name}.cu`, 'utf8'),
    headers: { 'common.cuh': readFileSync(`${dir}common.cuh`, 'utf8') },
  };
}
