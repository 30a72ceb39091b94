/**
 * cuBLASLt matmuls with cached plans. Building a matmul descriptor, four layouts and asking the
 * heuristic for an algorithm costs tens of microseconds, so each distinct problem (types, ops,
 * sizes, leading dimensions, batch strides, pointer alignment) gets its plan once and later calls
 * are a single cublasLtMatmul. The workspace is one block from the caching allocator, held for
 * the runtime's life: every matmul runs on the runtime's one stream, so they can share it.
 */
import { koffi, outI32, outU64, takeU64 } from './ffi/koffi.js';
import {
  bindCublasLt, check, CUBLAS_STATUS_NOT_SUPPORTED, CUBLASLT_EPILOGUE_BIAS, HEURISTIC_RESULT_BYTES, HEURISTIC_WORKSPACE_OFFSET, LAYOUT, MATMUL_DESC, PREF,
  type CublasLtApi,
} from './ffi/cublaslt.js';
import type { Block } from './allocator.js';
import type { CudaRuntime } from './runtime.js';

/** NVIDIA's recommended cuBLASLt workspace for Hopper. */
export const LT_WORKSPACE_BYTES = 32 * 1024 * 1024;

/** Plans kept per runtime; the oldest is destroyed beyond this (a model uses a few dozen shapes). */
const MAX_PLANS = 1024;

/** One operand in cuBLAS's column-major terms: the matrix as stored, and whether the GEMM transposes it. */
export interface LtOperand {
  readonly address: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  /** Elements between batch entries (0: one matrix for every entry). */
  readonly stride: number;
  readonly trans: boolean;
}

/** D = op(A) op(B) (+ C when accumulate) (+ bias on every column), D and C the same matrix, all column-major. */
export interface LtProblem {
  readonly a: LtOperand;
  readonly b: LtOperand;
  readonly c: LtOperand;
  readonly batch: number;
  /** cudaDataType of A and B, and of C/D. */
  readonly abType: number;
  readonly cType: number;
  /** cublasComputeType_t; the scale type (alpha, beta) is float32 for every compute type used here. */
  readonly computeType: number;
  readonly accumulate: boolean;
  /**
   * Device address of a bias vector (c.rows elements of cType) that the epilogue adds to every
   * column of D in float32 before D is rounded; null or absent: no epilogue. With the DGELU_BGRAD
   * epilogue it is instead where the bias gradient (D summed along its columns) is written.
   */
  readonly bias?: number | null;
  /** A cublasLtEpilogue_t other than BIAS (GELU_AUX_BIAS, GELU_BIAS, DGELU, DGELU_BGRAD); absent: BIAS when bias is set. */
  readonly epilogue?: number;
  /**
   * The GELU epilogues' auxiliary matrix (the pre-activation, shaped as D, of cType): written by
   * GELU_AUX_BIAS, read by DGELU / DGELU_BGRAD. ld must be a multiple of 8 and >= c.rows; batch 1 only.
   */
  readonly aux?: { readonly address: number; readonly ld: number } | null;
}

/** cublasLtMatmulDescAttributes_t values beyond those in ffi/cublaslt.ts (cublasLt.h, CUDA 12/13). */
const DESC_AUX_POINTER = 11;
const DESC_AUX_LD = 12;

/** cublasLtEpilogue_t values of the GELU epilogues (cublasLt.h). */
export const EPILOGUE = {
  bias: CUBLASLT_EPILOGUE_BIAS,
  geluBias: 36,
  geluAuxBias: 164,
  dgelu: 192,
  dgeluBgrad: 208,
} as const;

interface Plan {
  readonly desc: number;
  readonly a: number;
  readonly b: number;
  readonly c: number;
  /** Native heuristic result, whose first 64 bytes are the algorithm cublasLtMatmul takes by pointer. */
  readonly result: unknown;
  readonly algo: number;
  /** The bias and aux pointers the descriptor holds now (0: none). */
  bias: number;
  aux: number;
}

export interface LtStats {
  readonly plans: number;
  /** Problems cuBLASLt had no working algorithm for (they run on cublasGemmEx). */
  readonly heuristicMisses: number;
}

/** Largest power of two dividing the address, capped at the 256 bytes cuBLASLt asks for by default. */
export function addressAlignment(address: number): number {
  const low = address % 256;
  return low === 0 ? 256 : low & -low;
}

export function planKey(p: LtProblem): string {
  const one = p.batch === 1;
  const op = (o: LtOperand) => `${o.trans ? 'T' : 'N'}${o.rows}x${o.cols}/${o.ld}/${one ? 0 : o.stride}@${addressAlignment(o.address)}`;
  // The heuristic reads the bias pointer only for its alignment, so one plan serves every bias
  // vector aligned alike; run() points the descriptor at each call's vector.
  const bias = p.bias ? `:bias@${addressAlignment(p.bias)}` : '';
  // Likewise the aux pointer: its alignment and ld pick the algorithm, its address does not.
  const epi = p.epilogue !== undefined ? `:epi${p.epilogue}` : '';
  const aux = p.aux ? `:aux${p.aux.ld}@${addressAlignment(p.aux.address)}` : '';
  return `${p.computeType}:${p.abType}:${p.cType}:${p.batch}:${op(p.a)}:${op(p.b)}:${op(p.c)}${bias}${epi}${aux}`;
}

export class LtMatmul {
  readonly api: CublasLtApi;
  readonly handle: number;
  private readonly workspace: Block;
  private readonly plans = new Map<string, Plan | null>();
  private misses = 0;
  /** float32 1 then 0, in native memory: alpha and beta pointers for every call. */
  private readonly scalars: number;

  constructor(private readonly rt: CudaRuntime) {
    this.api = bindCublasLt(rt.blas().api.library);
    check(this.api, 'cublasLtCreate', this.api.cublasLtCreate(outU64));
    this.handle = takeU64();
    this.workspace = rt.allocator.alloc(LT_WORKSPACE_BYTES);
    const k = koffi();
    const scalars = k.alloc('float', 2);
    new Float32Array(k.view(scalars, 8)).set([1, 0]);
    this.scalars = Number(scalars);
  }

  stats(): LtStats {
    return { plans: this.plans.size, heuristicMisses: this.misses };
  }

  /** Runs the problem; false when cuBLASLt has no algorithm for it (the caller falls back to GemmEx). */
  run(p: LtProblem): boolean {
    const key = planKey(p);
    let plan = this.plans.get(key);
    if (plan === undefined) {
      plan = this.build(p);
      if (this.plans.size >= MAX_PLANS) this.evictOldest();
      this.plans.set(key, plan);
    }
    if (plan === null) return false;
    const api = this.api;
    // Host-side descriptor state: cublasLtMatmul copies it into the launch, so changing it for
    // the next call cannot affect queued work (or a captured graph).
    if (p.bias && plan.bias !== p.bias) {
      check(api, 'cublasLtMatmulDescSetAttribute(BIAS_POINTER)',
        api.cublasLtMatmulDescSetAttribute(plan.desc, MATMUL_DESC.biasPointer, new BigUint64Array([BigInt(p.bias)]), 8));
      plan.bias = p.bias;
    }
    if (p.aux && plan.aux !== p.aux.address) {
      check(api, 'cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)',
        api.cublasLtMatmulDescSetAttribute(plan.desc, DESC_AUX_POINTER, new BigUint64Array([BigInt(p.aux.address)]), 8));
      plan.aux = p.aux.address;
    }
    const status = api.cublasLtMatmul(this.handle, plan.desc, this.scalars, p.a.address, plan.a, p.b.address, plan.b,
      this.scalars + (p.accumulate ? 0 : 4), p.c.address, plan.c, p.c.address, plan.c, plan.algo,
      this.workspace.address, LT_WORKSPACE_BYTES, this.rt.stream.handle);
    if (status === CUBLAS_STATUS_NOT_SUPPORTED) {
      // The heuristic's choice refused these operands after all: remember the problem as one
      // cuBLASLt cannot serve, so it goes to GemmEx from now on.
      this.misses++;
      this.destroy(plan);
      this.plans.set(key, null);
      return false;
    }
    if (status !== 0) check(api, `cublasLtMatmul (${key}; DIMBA_CUBLASLT=0 switches to cublasGemmEx)`, status);
    return true;
  }

  private layout(type: number, o: LtOperand, batch: number): number {
    const api = this.api;
    check(api, 'cublasLtMatrixLayoutCreate', api.cublasLtMatrixLayoutCreate(outU64, type, o.rows, o.cols, o.ld));
    const layout = takeU64();
    if (batch > 1) {
      check(api, 'cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)',
        api.cublasLtMatrixLayoutSetAttribute(layout, LAYOUT.batchCount, new Int32Array([batch]), 4));
      check(api, 'cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)',
        api.cublasLtMatrixLayoutSetAttribute(layout, LAYOUT.stridedBatchOffset, new BigInt64Array([BigInt(o.stride)]), 8));
    }
    return layout;
  }

  private build(p: LtProblem): Plan | null {
    const api = this.api;
    const k = koffi();
    check(api, 'cublasLtMatmulDescCreate', api.cublasLtMatmulDescCreate(outU64, p.computeType, 0 /* CUDA_R_32F */));
    const desc = takeU64();
    check(api, 'cublasLtMatmulDescSetAttribute(TRANSA)',
      api.cublasLtMatmulDescSetAttribute(desc, MATMUL_DESC.transA, new Int32Array([p.a.trans ? 1 : 0]), 4));
    check(api, 'cublasLtMatmulDescSetAttribute(TRANSB)',
      api.cublasLtMatmulDescSetAttribute(desc, MATMUL_DESC.transB, new Int32Array([p.b.trans ? 1 : 0]), 4));
    const epilogue = p.epilogue ?? (p.bias ? CUBLASLT_EPILOGUE_BIAS : null);
    if (epilogue !== null) {
      check(api, 'cublasLtMatmulDescSetAttribute(EPILOGUE)',
        api.cublasLtMatmulDescSetAttribute(desc, MATMUL_DESC.epilogue, new Uint32Array([epilogue]), 4));
    }
    if (p.bias) {
      // The bias type defaults to D's (bfloat16 for bfloat16 output, and so on): what MatmulArgs.bias holds.
      check(api, 'cublasLtMatmulDescSetAttribute(BIAS_POINTER)',
        api.cublasLtMatmulDescSetAttribute(desc, MATMUL_DESC.biasPointer, new BigUint64Array([BigInt(p.bias)]), 8));
    }
    if (p.aux) {
      // The aux type defaults to D's as well: the pre-activation is stored rounded like D.
      check(api, 'cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)',
        api.cublasLtMatmulDescSetAttribute(desc, DESC_AUX_POINTER, new BigUint64Array([BigInt(p.aux.address)]), 8));
      check(api, 'cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)',
        api.cublasLtMatmulDescSetAttribute(desc, DESC_AUX_LD, new BigInt64Array([BigInt(p.aux.ld)]), 8));
    }
    const a = this.layout(p.abType, p.a, p.batch);
    const b = this.layout(p.abType, p.b, p.batch);
    const c = this.layout(p.cType, p.c, p.batch);
    check(api, 'cublasLtMatmulPreferenceCreate', api.cublasLtMatmulPreferenceCreate(outU64));
    const pref = takeU64();
    const result = k.alloc('uint8_t', HEURISTIC_RESULT_BYTES);
    try {
      check(api, 'cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)',
        api.cublasLtMatmulPreferenceSetAttribute(pref, PREF.maxWorkspaceBytes, new BigUint64Array([BigInt(LT_WORKSPACE_BYTES)]), 8));
      // Views into tensors need not start on 256 bytes; say how aligned these pointers are so the
      // heuristic only offers algorithms that can read them.
      for (const [attr, o] of [[PREF.minAlignmentA, p.a], [PREF.minAlignmentB, p.b], [PREF.minAlignmentC, p.c], [PREF.minAlignmentD, p.c]] as const) {
        check(api, 'cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)',
          api.cublasLtMatmulPreferenceSetAttribute(pref, attr, new Uint32Array([addressAlignment(o.address)]), 4));
      }
      const status = api.cublasLtMatmulAlgoGetHeuristic(this.handle, desc, a, b, c, c, pref, 1, Number(result), outI32);
      // An epilogue problem cuBLASLt rejects (INVALID_VALUE for an aux layout or type it does not
      // take) is a miss too: its caller has a composed route.
      const refused = status === CUBLAS_STATUS_NOT_SUPPORTED || (p.epilogue !== undefined && status !== 0);
      if (refused || (status === 0 && outI32[0] === 0)) {
        this.misses++;
        this.destroy({ desc, a, b, c, result, algo: 0, bias: 0, aux: 0 });
        return null;
      }
      check(api, 'cublasLtMatmulAlgoGetHeuristic', status);
      const needed = Number(new BigUint64Array(k.view(result, HEURISTIC_RESULT_BYTES), HEURISTIC_WORKSPACE_OFFSET, 1)[0]!);
      if (needed > LT_WORKSPACE_BYTES) throw new Error(`cuBLASLt heuristic asked for ${needed} workspace bytes, more than the ${LT_WORKSPACE_BYTES} offered`);
    } catch (e) {
      this.destroy({ desc, a, b, c, result, algo: 0, bias: 0, aux: 0 });
      throw e;
    } finally {
      api.cublasLtMatmulPreferenceDestroy(pref);
    }
    return { desc, a, b, c, result, algo: Number(result), bias: p.bias ?? 0, aux: p.aux?.address ?? 0 };
  }

  private destroy(plan: Plan): void {
    const api = this.api;
    api.cublasLtMatrixLayoutDestroy(plan.a);
    api.cublasLtMatrixLayoutDestroy(plan.b);
    api.cublasLtMatrixLayoutDestroy(plan.c);
    api.cublasLtMatmulDescDestroy(plan.desc);
    koffi().free(plan.result);
  }

  /** Host-side descriptors only: queued matmuls no longer need them once cublasLtMatmul has returned. */
  private evictOldest(): void {
    const [key, plan] = this.plans.entries().next().value as [string, Plan | null];
    this.plans.delete(key);
    if (plan) this.destroy(plan);
  }
}
