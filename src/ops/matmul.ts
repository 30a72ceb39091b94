/**
 * Matrix products. Operands reach the kernel as (batch, m, k) matrices that are row-major or
 * transposed per batch entry, so transposed views (x @ w.T) cost no copy.
 */
import { ShapeError, broadcastShapes, formatShape } from '../tensor/shape.js';
import { isFloating, promoteTypes } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { cast, contiguous, expand, reshape, squeeze, transpose, unsqueeze } from './layout.js';
import { add } from './elementwise.js';
import { sum } from './reduce.js';

interface MatrixOperand {
  t: Tensor;
  trans: boolean;
  batchStride: number;
}

/**
 * Describes `t` ([...batch, r, c], already expanded to the batch shape) as a batched matrix the
 * kernel can read without copying, copying only when its layout is irregular.
 */
function asMatrix(t: Tensor, batch: number): MatrixOperand {
  const nd = t.ndim;
  const r = t.shape[nd - 2]!;
  const c = t.shape[nd - 1]!;
  const sr = t.strides[nd - 2]!;
  const sc = t.strides[nd - 1]!;
  let trans: boolean | null = null;
  if ((sc === 1 || c === 1) && (sr === c || r === 1)) trans = false;
  else if ((sr === 1 || r === 1) && (sc === r || c === 1)) trans = true;
  const batchStride = uniformBatchStride(t, r * c);
  if (trans === null || batchStride === null) {
    const dense = contiguous(t);
    return { t: dense, trans: false, batchStride: batch > 1 ? r * c : 0 };
  }
  return { t, trans, batchStride };
}

/** The single element stride between batch entries, if the batch dims collapse to one (or are all broadcast). */
function uniformBatchStride(t: Tensor, matrixSize: number): number | null {
  const nb = t.ndim - 2;
  if (nb === 0) return 0;
  if (t.strides.slice(0, nb).every((s, i) => s === 0 || t.shape[i] === 1)) return 0;
  let expected = matrixSize;
  for (let i = nb - 1; i >= 0; i--) {
    if (t.shape[i] === 1) continue;
    if (t.strides[i] !== expected) return null;
    expected *= t.shape[i]!;
  }
  return matrixSize;
}

/** torch.matmul semantics: 1-D operands are promoted and squeezed back; batch dims broadcast. */
export function matmul(a0: Tensor, b0: Tensor): Tensor {
  return matmulBias(a0, b0, null);
}

/** matmul with an optional [n] bias (already in the product's dtype) added by the GEMM kernel. */
function matmulBias(a0: Tensor, b0: Tensor, bias: Tensor | null): Tensor {
  if (a0.ndim === 0 || b0.ndim === 0) throw new ShapeError('matmul: operands must have at least one dim');
  if (a0.deviceName !== b0.deviceName) throw new TypeError(`matmul: operands on ${a0.deviceName} and ${b0.deviceName}`);
  const dtype = promoteTypes(a0.dtype, b0.dtype);
  let a = cast(a0, dtype);
  let b = cast(b0, dtype);
  const vecA = a.ndim === 1;
  const vecB = b.ndim === 1;
  if (vecA) a = unsqueeze(a, 0);
  if (vecB) b = unsqueeze(b, 1);
  let out = matmulNd(a, b, bias);
  if (vecA) out = squeeze(out, -2);
  if (vecB) out = squeeze(out, -1);
  return out;
}

function matmulNd(a: Tensor, b: Tensor, bias: Tensor | null): Tensor {
  const m = a.shape[a.ndim - 2]!;
  const k = a.shape[a.ndim - 1]!;
  const n = b.shape[b.ndim - 1]!;
  if (b.shape[b.ndim - 2] !== k) {
    throw new ShapeError(`matmul: inner dims differ: ${formatShape(a.shape)} @ ${formatShape(b.shape)}`);
  }
  // A weight matrix applied to a batch of rows: fold the batch into m for one large GEMM.
  if (b.ndim === 2 && a.ndim > 2 && a.isContiguous) {
    const rows = reshape(a, [-1, k]);
    return reshape(matmul2(rows, b, 1, m * (a.numel / (m * k || 1)), n, k, bias), [...a.shape.slice(0, -1), n]);
  }
  const batchShape = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const ae = expand(a, [...batchShape, m, k]);
  const be = expand(b, [...batchShape, k, n]);
  return reshape(matmul2(ae, be, batch, m, n, k, bias), [...batchShape, m, n]);
}

/**
 * The differentiable core: out [batch, m, n] (+ bias [n] on every row). With a bias it is
 * recorded as 'linear', whose third gradient is the bias's: g summed over all rows.
 */
function matmul2(a: Tensor, b: Tensor, batch: number, m: number, n: number, k: number, bias: Tensor | null): Tensor {
  const out = Tensor.empty([batch, m, n], a.dtype, a.backend);
  if (out.numel > 0) {
    const A = asMatrix(a, batch);
    const B = asMatrix(b, batch);
    a.backend.kernels.matmul(A.t, B.t, out, {
      batch, m, n, k, transA: A.trans, transB: B.trans, strideA: A.batchStride, strideB: B.batchStride, bias,
    });
  }
  record(bias ? 'linear' : 'matmul', bias ? [a, b, bias] : [a, b], [out], ([g]) => {
    const g3 = reshape(g!, a.ndim === 2 ? [m, n] : [...a.shape.slice(0, -2), m, n]);
    const grads: (Tensor | null)[] = [matmul(g3, transpose(b, -1, -2)), matmul(transpose(a, -1, -2), g3)];
    if (bias) grads.push(bias.requiresGrad ? sum(reshape(g!, [-1, n]), 0) : null);
    return grads;
  }, { saved: [a, b] });
  return out;
}

/**
 * y = x @ weight^T + bias, weight [out, in] as torch.nn.Linear stores it. A [out] bias of the
 * product's dtype (the usual case) is added inside the GEMM, so y is written once: on CUDA the
 * cuBLASLt bias epilogue adds it to the float32 accumulator before the one rounding to
 * bfloat16/float16 (matmul then add rounded twice). Other biases (broadcastable shapes, a wider
 * dtype that promotes the result) keep the separate add.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.ndim !== 2) throw new ShapeError(`linear: weight must be 2-D [out, in], got ${formatShape(weight.shape)}`);
  if (x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(`linear: input features ${x.shape[x.ndim - 1]} do not match weight ${formatShape(weight.shape)}`);
  }
  const wT = transpose(weight, 0, 1);
  if (!bias) return matmul(x, wT);
  const dtype = promoteTypes(x.dtype, weight.dtype);
  const fusable = isFloating(dtype) && bias.ndim === 1 && bias.shape[0] === weight.shape[0]
    && promoteTypes(dtype, bias.dtype) === dtype && bias.deviceName === x.deviceName && x.ndim > 0;
  if (!fusable) return add(matmul(x, wT), bias);
  return matmulBias(x, wT, contiguous(cast(bias, dtype)));
}
