/**
 * matmul: float dtypes through gemm.ts (cuBLASLt or cuBLAS GemmEx, fp32 accumulation for the
 * half types, TF32 for float32 only when the backend allows it); int32, int64 and bool through
 * int-matmul.cu, since the engine multiplies integer tensors on every backend. A bias (linear's)
 * goes into the GEMM (gemm.ts: cuBLASLt epilogue, or written into C before a GemmEx that
 * accumulates); the integer kernel is followed by one broadcast add. Both read operands with
 * the leading dimensions MatmulArgs gives (row views of wider buffers, no copy).
 */
import type { Kernels } from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { CudaNotImplementedError } from './unimplemented.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { copyInto, copyKernels } from './copy.js';
import { elementwiseKernels } from './elementwise.js';
import { gemm } from './gemm.js';
import { DTYPE_SUFFIX, INT_MATMUL_MODULE } from './source.js';
import { matmulOperand } from '../../matmul-operands.js';


const FLOAT: ReadonlySet<DType> = new Set(['float32', 'float64', 'bfloat16', 'float16']);
const INTEGER: ReadonlySet<DType> = new Set(['int32', 'int64', 'bool']);

export function matmulKernels(rt: CudaRuntime): Pick<Kernels, 'matmul'> {
  const { fill } = copyKernels(rt);
  const { binary } = elementwiseKernels(rt);
  /** Runs fn with bias [n] viewed as out's shape (every row the bias). */
  const broadcast = (bias: Tensor, out: Tensor, fn: (rows: Tensor) => void) => {
    const rows = bias.withLayout(out.shape, out.shape.map((_, i) => (i === out.ndim - 1 ? 1 : 0)), bias.offset);
    try { fn(rows); } finally { rows.dispose(); }
  };
  return {
    matmul(a, b, out, args) {
      const { batch, m, n, k, transA, transB, strideA, strideB } = args;
      const bias = args.bias ?? null;
      if (bias) checkBias(bias, n, out);
      const ldA = matmulOperand('a', a, args).ld;
      const ldB = matmulOperand('b', b, args).ld;
      if (out.numel === 0) return;
      const dtype = out.dtype;
      if (a.dtype !== dtype || b.dtype !== dtype || !(FLOAT.has(dtype) || INTEGER.has(dtype))) {
        throw new CudaNotImplementedError(`matmul on ${a.dtype} x ${b.dtype} -> ${dtype}`);
      }
      if (!out.isContiguous) throw new TypeError('matmul: CUDA output must be contiguous');
      // cuBLAS with k = 0 need not touch C; the product of empty matrices is zeros (plus the bias).
      if (k === 0) {
        if (bias) broadcast(bias, out, (rows) => copyInto(rt, rows, out));
        else fill(out, 0);
        return;
      }
      if (INTEGER.has(dtype)) {
        rt.params.begin().ptr(addressOf(a)).ptr(addressOf(b)).ptr(addressOf(out)).i64(batch).i64(m).i64(n).i64(k)
          .i64(strideA).i64(strideB).i64(ldA).i64(ldB).i32(transA ? 1 : 0).i32(transB ? 1 : 0);
        rt.launch(rt.fn(INT_MATMUL_MODULE, `int_matmul_${DTYPE_SUFFIX[dtype]}`), rt.gridFor(batch * m * n), 256);
        if (bias) broadcast(bias, out, (rows) => binary('add', out, rows, out));
        return;
      }
      gemm(rt, {
        m, n, k, batch, transA, transB,
        a: { address: addressOf(a), ld: ldA, stride: strideA },
        b: { address: addressOf(b), ld: ldB, stride: strideB },
        c: { address: addressOf(out), ld: n, stride: m * n },
        abType: dtype, cType: dtype, beta: 0, tf32: dtype === 'float32' && rt.allowTf32,
        bias: bias && { address: addressOf(bias), broadcastInto: () => broadcast(bias, out, (rows) => copyInto(rt, rows, out)) },
      });
    },
  };
}

/** The checks MatmulArgs.bias promises the kernel: a contiguous [n] vector in out's dtype. */
function checkBias(bias: Tensor, n: number, out: Tensor): void {
  if (bias.dtype !== out.dtype) throw new TypeError(`matmul: bias is ${bias.dtype}, out is ${out.dtype}; the op layer casts it first`);
  if (bias.dtype === 'bool') throw new TypeError('matmul: a bool product takes no bias');
  if (bias.ndim !== 1 || bias.shape[0] !== n) throw new RangeError(`matmul: bias must be [${n}], got [${bias.shape.join(', ')}]`);
  if (n > 1 && bias.strides[0] !== 1) throw new TypeError(`matmul: bias must be contiguous, got stride ${bias.strides[0]}`);
}
