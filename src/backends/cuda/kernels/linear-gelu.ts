/**
 * FusedKernels.linearGelu / matmulGeluBackward on cuBLASLt's GELU epilogues (src/ops/linear-gelu.ts):
 *   forward:  GELU_AUX_BIAS (GELU_BIAS without grad) — D = gelu(A B + bias), aux = A B + bias
 *   backward: DGELU_BGRAD (DGELU without a bias gradient) — D = (A B) * gelu'(aux), bias = D summed
 * cuBLASLt's GELU is the tanh approximation (PyTorch's _addmm_activation relies on this, see
 * pytorch/pytorch#104061; NVIDIA's page only says "GELU"): test/cuda/linear-gelu.test.ts checks
 * it on the device against both forms in float32.
 *
 * The calls decline (return false, the op composes) for float64, for a dtype that DIMBA_CUBLASLT
 * does not send to cuBLASLt (float32 unless DIMBA_CUBLASLT=all, every dtype under 0), for hidden
 * widths n not a multiple of 8 (the aux leading dimension must be), and where cuBLASLt has no
 * algorithm. DIMBA_FUSED_GELU=0 leaves them out.
 */
import type { FusedKernels, MatmulArgs } from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { EPILOGUE } from '../blas-lt.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { gemmEpilogue, type GemmSpec } from './gemm.js';

const DTYPES: ReadonlySet<DType> = new Set(['float32', 'bfloat16', 'float16']);

export function geluEpiloguesDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DIMBA_FUSED_GELU === '0';
}

/** Whether every tensor is one served dtype, [m, n] outputs contiguous, and the GEMM is one matrix. */
function eligible(args: MatmulArgs, dense: readonly Tensor[], like: Tensor): boolean {
  if (!DTYPES.has(like.dtype) || args.batch !== 1 || args.n % 8 !== 0) return false;
  return dense.every((t) => t.dtype === like.dtype && t.isContiguous);
}

function spec(rt: CudaRuntime, a: Tensor, b: Tensor, out: Tensor, args: MatmulArgs): Omit<GemmSpec, 'epilogue'> {
  const { m, n, k, transA, transB } = args;
  return {
    m, n, k, batch: 1, transA, transB,
    a: { address: addressOf(a), ld: transA ? m : k, stride: 0 },
    b: { address: addressOf(b), ld: transB ? k : n, stride: 0 },
    c: { address: addressOf(out), ld: n, stride: m * n },
    abType: out.dtype, cType: out.dtype, beta: 0, tf32: out.dtype === 'float32' && rt.allowTf32,
  };
}

/** A bias for gemmEpilogue: the epilogue reads (or writes) it; there is no GemmEx form to broadcast into. */
function vector(t: Tensor): GemmSpec['bias'] {
  return {
    address: addressOf(t),
    broadcastInto: () => { throw new Error('linear-gelu: an epilogue bias has no GemmEx form'); },
  };
}

export function linearGeluKernels(rt: CudaRuntime, env: NodeJS.ProcessEnv = process.env): FusedKernels {
  if (geluEpiloguesDisabled(env)) return {};
  return {
    linearGelu(a, b, bias, out, preact, args) {
      const dense = preact ? [a, b, bias, out, preact] : [a, b, bias, out];
      if (!eligible(args, dense, out) || bias.numel !== args.n) return false;
      rt.activate();
      return gemmEpilogue(rt, {
        ...spec(rt, a, b, out, args),
        bias: vector(bias),
        epilogue: preact ? EPILOGUE.geluAuxBias : EPILOGUE.geluBias,
        aux: preact ? { address: addressOf(preact), ld: args.n } : null,
      });
    },

    matmulGeluBackward(a, b, preact, out, gbias, args) {
      const dense = gbias ? [a, b, preact, out, gbias] : [a, b, preact, out];
      if (!eligible(args, dense, out) || (gbias && gbias.numel !== args.n)) return false;
      rt.activate();
      return gemmEpilogue(rt, {
        ...spec(rt, a, b, out, args),
        bias: gbias ? vector(gbias) : null,
        epilogue: gbias ? EPILOGUE.dgeluBgrad : EPILOGUE.dgelu,
        aux: { address: addressOf(preact), ld: args.n },
      });
    },
  };
}
