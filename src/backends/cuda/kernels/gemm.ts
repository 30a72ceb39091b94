/**
 * Row-major strided-batched GEMM on raw device addresses: the one place matmul (kernels/matmul.ts)
 * and conv2d's im2col blocks reach cuBLAS. C[M, N] = op(A) op(B) + beta C per batch entry, with
 * leading dimensions as stored row-major. cuBLAS is column-major, so we ask for
 * C^T = op(B)^T op(A)^T: the row-major operands read as column-major are already the transposes.
 *
 * Two routes: cuBLASLt (cached plans, blas-lt.ts) for bfloat16/float16 inputs by default, and
 * cublasGemmStridedBatchedEx for the rest and as the fallback. DIMBA_CUBLASLT picks: 0 = GemmEx
 * only, 1 (default) = cuBLASLt for bfloat16/float16, all = float32 too. Which route is faster per
 * shape is for measurement (bench/cuda/gemm.ts) to decide.
 *
 * A and B share one dtype; C may be float32 when they are bfloat16 / float16 (float32
 * accumulation kept unrounded). bfloat16/float16 accumulate in float32; float32 uses plain FP32
 * unless `tf32` asks for TF32 tensor cores; float64 uses FP64.
 *
 * A bias (one value per column n of C, as linear's) rides in cuBLASLt's BIAS epilogue; the
 * GemmEx route writes it into C first and accumulates (beta 1). Either way it joins the float32
 * sum before the one rounding to C's type.
 */
import type { DType } from '../../../tensor/dtype.js';
import {
  check, CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT, CUBLAS_OP_N, CUBLAS_OP_T,
  CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUDA_R_64F,
} from '../ffi/cublas.js';
import { LtMatmul, type LtProblem, type LtStats } from '../blas-lt.js';
import type { CudaRuntime } from '../runtime.js';
import { CudaNotImplementedError } from './unimplemented.js';

const DATA_TYPE: Partial<Record<DType, number>> = {
  float32: CUDA_R_32F, float64: CUDA_R_64F, bfloat16: CUDA_R_16BF, float16: CUDA_R_16F,
};

const SCALARS32 = [new Float32Array([0]), new Float32Array([1])] as const;
const SCALARS64 = [new Float64Array([0]), new Float64Array([1])] as const;

export interface GemmOperand {
  /** Device address of batch entry 0. */
  readonly address: number;
  /** Leading dimension as stored row-major (elements between rows). */
  readonly ld: number;
  /** Elements between batch entries. */
  readonly stride: number;
}

export interface GemmSpec {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batch: number;
  /** A is stored [k][m] (transposed) rather than [m][k]; likewise B [n][k] rather than [k][n]. */
  readonly transA: boolean;
  readonly transB: boolean;
  readonly a: GemmOperand;
  readonly b: GemmOperand;
  readonly c: GemmOperand;
  readonly abType: DType;
  readonly cType: DType;
  /** 0 overwrites C, 1 adds onto it. */
  readonly beta: 0 | 1;
  /** float32 only: allow TF32 tensor cores (about 1e-3 relative error). */
  readonly tf32?: boolean;
  /**
   * A contiguous [n] vector of cType added to every row of C (needs beta 0): `address` for the
   * cuBLASLt epilogue, `broadcastInto` writes it into every row of C for the GemmEx route.
   */
  readonly bias?: GemmBias | null;
  /**
   * A cuBLASLt epilogue beyond the bias (blas-lt.ts EPILOGUE: the GELU ones), for gemmEpilogue
   * only; `bias.address` is then the epilogue's bias (or bias-gradient) vector and `aux` its
   * pre-activation matrix, [m rows][ld] row-major like C.
   */
  readonly epilogue?: number;
  readonly aux?: { readonly address: number; readonly ld: number } | null;
}

export interface GemmBias {
  readonly address: number;
  readonly broadcastInto: () => void;
}

/** Which inputs go through cuBLASLt: none, bfloat16/float16, or float32 as well. */
export type LtUse = 'off' | 'half' | 'all';

export function parseLtUse(value: string | undefined): LtUse {
  if (value === undefined || value === '' || value === '1') return 'half';
  if (value === '0') return 'off';
  if (value === 'all') return 'all';
  throw new RangeError(`DIMBA_CUBLASLT must be 0 (cuBLAS GemmEx only), 1 (cuBLASLt for bfloat16/float16, the default) `
    + `or all (float32 too); got '${value}'`);
}

export interface GemmStats extends LtStats {
  readonly use: LtUse;
  readonly ltCalls: number;
  readonly gemmExCalls: number;
  /** Of ltCalls, those with a GELU epilogue (gemmEpilogue), and the epilogue calls cuBLASLt declined. */
  readonly epilogueCalls: number;
  readonly epilogueDeclined: number;
  /** Why cuBLASLt is not used at all here (library missing), or null. */
  readonly ltUnavailable: string | null;
}

/** Per-runtime routing state: the cuBLASLt plans (made on first use) and call counts. */
class Routing {
  use: LtUse = parseLtUse(process.env.DIMBA_CUBLASLT);
  lt: LtMatmul | null | undefined;
  ltUnavailable: string | null = null;
  ltCalls = 0;
  gemmExCalls = 0;
  epilogueCalls = 0;
  epilogueDeclined = 0;

  ltFor(rt: CudaRuntime): LtMatmul | null {
    if (this.lt === undefined) {
      try {
        this.lt = new LtMatmul(rt);
      } catch (e) {
        // cuBLASLt ships beside cuBLAS, so this is rare; GemmEx still serves every matmul.
        this.lt = null;
        this.ltUnavailable = e instanceof Error ? e.message : String(e);
      }
    }
    return this.lt;
  }
}

const routings = new WeakMap<CudaRuntime, Routing>();

function routing(rt: CudaRuntime): Routing {
  let r = routings.get(rt);
  if (!r) {
    r = new Routing();
    routings.set(rt, r);
  }
  return r;
}

/** Overrides DIMBA_CUBLASLT for one device (tests, benchmarks). */
export function setLtUse(rt: CudaRuntime, use: LtUse): void {
  routing(rt).use = use;
}

export function gemmStats(rt: CudaRuntime): GemmStats {
  const r = routing(rt);
  const lt = r.lt?.stats() ?? { plans: 0, heuristicMisses: 0 };
  return {
    use: r.use, ltCalls: r.ltCalls, gemmExCalls: r.gemmExCalls, epilogueCalls: r.epilogueCalls, epilogueDeclined: r.epilogueDeclined,
    ltUnavailable: r.ltUnavailable, ...lt,
  };
}

function computeTypeOf(g: GemmSpec): number {
  if (g.abType === 'float64') return CUBLAS_COMPUTE_64F;
  return g.abType === 'float32' && g.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

/**
 * The row-major problem in cuBLAS's column-major terms: D (n x m) = op(B') op(A') where A' is our
 * B and B' our A, each read as stored. Exported for the CPU test of this index arithmetic.
 */
export function columnMajorProblem(g: GemmSpec): LtProblem {
  return {
    a: { address: g.b.address, rows: g.transB ? g.k : g.n, cols: g.transB ? g.n : g.k, ld: g.b.ld, stride: g.b.stride, trans: g.transB },
    b: { address: g.a.address, rows: g.transA ? g.m : g.k, cols: g.transA ? g.k : g.m, ld: g.a.ld, stride: g.a.stride, trans: g.transA },
    c: { address: g.c.address, rows: g.n, cols: g.m, ld: g.c.ld, stride: g.c.stride, trans: false },
    batch: g.batch,
    abType: DATA_TYPE[g.abType]!,
    cType: DATA_TYPE[g.cType]!,
    computeType: computeTypeOf(g),
    accumulate: g.beta === 1,
    // Column-major D is n x m: the bias runs along D's rows, each output feature.
    bias: g.bias ? g.bias.address : null,
    // The aux matrix is shaped as D (n x m column-major), so C's row-major [m][ld] reads the same way.
    ...(g.epilogue !== undefined ? { epilogue: g.epilogue } : {}),
    ...(g.aux ? { aux: g.aux } : {}),
  };
}

function wantsLt(use: LtUse, abType: DType): boolean {
  if (use === 'off') return false;
  if (abType === 'bfloat16' || abType === 'float16') return true;
  return use === 'all' && abType === 'float32';
}

export function gemm(rt: CudaRuntime, g: GemmSpec): void {
  if (g.m === 0 || g.n === 0 || g.batch === 0) return;
  // An empty sum adds nothing; with beta 0 cuBLAS need not write C, so callers zero it themselves.
  if (g.k === 0 && g.beta === 1) return;
  if (g.k === 0) throw new RangeError('gemm: k = 0 with beta = 0 would leave C unwritten');
  if (g.bias && g.beta !== 0) throw new RangeError('gemm: a bias needs beta 0 (C is overwritten with op(A) op(B) + bias)');
  const ab = DATA_TYPE[g.abType];
  const c = DATA_TYPE[g.cType];
  if (ab === undefined || c === undefined) throw new CudaNotImplementedError(`GEMM on ${g.abType} -> ${g.cType}`);
  const r = routing(rt);
  if (wantsLt(r.use, g.abType)) {
    const lt = r.ltFor(rt);
    if (lt !== null && lt.run(columnMajorProblem(g))) {
      r.ltCalls++;
      return;
    }
  }
  r.gemmExCalls++;
  let beta = g.beta;
  if (g.bias) {
    g.bias.broadcastInto();
    beta = 1;
  }
  const scalars = g.abType === 'float64' ? SCALARS64 : SCALARS32;
  const { api, handle } = rt.blas();
  check(api, 'cublasGemmStridedBatchedEx', api.cublasGemmStridedBatchedEx(handle,
    g.transB ? CUBLAS_OP_T : CUBLAS_OP_N, g.transA ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k,
    scalars[1], g.b.address, ab, g.b.ld, g.b.stride,
    g.a.address, ab, g.a.ld, g.a.stride,
    scalars[beta], g.c.address, c, g.c.ld, g.c.stride, g.batch,
    computeTypeOf(g), CUBLAS_GEMM_DEFAULT));
}

/**
 * Runs g with its cuBLASLt epilogue (g.epilogue), which GemmEx has no form of: false, with
 * nothing written, where cuBLASLt is not the route for this dtype (DIMBA_CUBLASLT), is missing,
 * or declines the problem, so the caller composes instead. Batch 1 and beta 0 only; an aux
 * matrix needs ld a multiple of 8 (cuBLASLt's rule).
 */
export function gemmEpilogue(rt: CudaRuntime, g: GemmSpec): boolean {
  if (g.epilogue === undefined) throw new RangeError('gemmEpilogue: no epilogue given (use gemm)');
  if (g.m === 0 || g.n === 0 || g.k === 0 || g.batch !== 1 || g.beta !== 0) return false;
  if (g.aux && (g.aux.ld % 8 !== 0 || g.aux.ld < g.n)) return false;
  if (DATA_TYPE[g.abType] === undefined || DATA_TYPE[g.cType] === undefined) return false;
  const r = routing(rt);
  if (!wantsLt(r.use, g.abType)) return false;
  const lt = r.ltFor(rt);
  if (lt === null) return false;
  if (!lt.run(columnMajorProblem(g))) {
    r.epilogueDeclined++;
    return false;
  }
  r.ltCalls++;
  r.epilogueCalls++;
  return true;
}
