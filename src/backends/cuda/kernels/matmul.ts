/**
 * matmul: float dtypes through gemm.ts (cuBLASLt or cuBLAS GemmEx, fp32 accumulation for the
 * half types, TF32 for float32 only when the backend allows it); int32, int64 and bool through
 * int-matmul.cu, since the engine multiplies integer tensors on every backend.
 */
import type { Kernels } from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { CudaNotImplementedError } from './unimplemented.js';
import { copyKernels } from './copy.js';
import { gemm } from './gemm.js';
import { DTYPE_SUFFIX, INT_MATMUL_MODULE } from './source.js';


const FLOAT: ReadonlySet<DType> = new Set(['float32', 'float64', 'bfloat16', 'float16']);
const INTEGER: ReadonlySet<DType> = new Set(['int32', 'int64', 'bool']);

export function matmulKernels(rt: CudaRuntime): Pick<Kernels, 'matmul'> {
  const { fill } = copyKernels(rt);
  return {
    matmul(a, b, out, args) {
      const { batch, m, n, k, transA, transB, strideA, strideB } = args;
      if (out.numel === 0) return;
      const dtype = out.dtype;
      if (a.dtype !== dtype || b.dtype !== dtype || !(FLOAT.has(dtype) || INTEGER.has(dtype))) {
        throw new CudaNotImplementedError(`matmul on ${a.dtype} x ${b.dtype} -> ${dtype}`);
      }
      if (!out.isContiguous) throw new TypeError('matmul: CUDA output must be contiguous');
      // cuBLAS with k = 0 need not touch C; the product of empty matrices is zeros.
      if (k === 0) { fill(out, 0); return; }
      if (INTEGER.has(dtype)) {
        rt.params.begin().ptr(addressOf(a)).ptr(addressOf(b)).ptr(addressOf(out)).i64(batch).i64(m).i64(n).i64(k)
          .i64(strideA).i64(strideB).i32(transA ? 1 : 0).i32(transB ? 1 : 0);
        rt.launch(rt.fn(INT_MATMUL_MODULE, `int_matmul_${DTYPE_SUFFIX[dtype]}`), rt.gridFor(batch * m * n), 256);
        return;
      }
      gemm(rt, {
        m, n, k, batch, transA, transB,
        a: { address: addressOf(a), ld: transA ? m : k, stride: strideA },
        b: { address: addressOf(b), ld: transB ? k : n, stride: strideB },
        c: { address: addressOf(out), ld: n, stride: m * n },
        abType: dtype, cType: dtype, beta: 0, tf32: dtype === 'float32' && rt.allowTf32,
      });
    },
  };
}
