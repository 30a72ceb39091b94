/**
 * Matrix products. Operands reach the kernel as (batch, m, k) matrices that are row-major or
 * transposed per batch entry, with a leading dimension, so transposed views (x @ w.T) and row
 * views of wider buffers (a split's piece along the last dim) cost no copy.
 */
import { ShapeError, broadcastShapes, formatShape, viewStrides } from '../tensor/shape.js';
import { isFloating, promoteTypes } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from './record.js';
import { cast, contiguous, expand, reshape, squeeze, transpose, unsqueeze } from './layout.js';
import { add } from './elementwise.js';
import { sum } from './reduce.js';

interface MatrixOperand {
  t: Tensor;
  trans: boolean;
  /** Elements between the matrix's stored rows (MatmulArgs.ldA / ldB). */
  ld: number;
  batchStride: number;
}

/**
 * Describes `t` ([...batch, r, c], already expanded to the batch shape) as a batched matrix the
 * kernel can read without copying, copying only when its layout is irregular.
 */
function asMatrix(t: Tensor): MatrixOperand {
  const nd = t.ndim;
  const r = t.shape[nd - 2]!;
  const c = t.shape[nd - 1]!;
  const layout = matrixLayout(r, c, t.strides[nd - 2]!, t.strides[nd - 1]!);
  const batchStride = layout ? uniformBatchStride(t) : null;
  if (layout === null || batchStride === null) {
    const dense = contiguous(t);
    return { t: dense, trans: false, ld: c, batchStride: r * c };
  }
  return { t, ...layout, batchStride };
}

/**
 * How the kernel reads an r x c matrix with strides (sr, sc) in place: rows unit-stride and at
 * least a row apart (a row view of a wider buffer, as a split's first piece), or the same for its
 * columns (a transposed view, read transposed); null if neither. Rows closer than their length
 * (overlapping, broadcast with stride 0, or reversed) are left to a copy.
 */
function matrixLayout(r: number, c: number, sr: number, sc: number): { trans: boolean; ld: number } | null {
  if (r === 0 || c === 0) return { trans: false, ld: c };
  if (sc === 1 || c === 1) {
    if (r === 1) return { trans: false, ld: c };
    if (sr >= c) return { trans: false, ld: sr };
  }
  if (sr === 1 || r === 1) {
    if (c === 1) return { trans: true, ld: r };
    if (sc >= r) return { trans: true, ld: sc };
  }
  return null;
}

/**
 * The one element stride between batch entries, if the batch dims collapse to one (each a whole
 * number of the next dim's steps apart; 0 when all are broadcast or there is one entry); null if
 * they do not (or step backwards).
 */
function uniformBatchStride(t: Tensor): number | null {
  let stride: number | null = null;
  let expected = 0;
  for (let i = t.ndim - 3; i >= 0; i--) {
    const size = t.shape[i]!;
    if (size === 1) continue;
    const s = t.strides[i]!;
    if (stride === null) stride = s;
    else if (s !== expected) return null;
    expected = s * size;
  }
  if (stride === null) return 0;
  return stride >= 0 ? stride : null;
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
  // A weight matrix applied to a batch of rows: fold the batch into m for one large GEMM, when
  // the rows of every batch entry form one matrix the kernel reads in place (a contiguous batch,
  // or a row view of a wider buffer such as the Mamba mixer's dt piece of x_proj's output).
  if (b.ndim === 2 && a.ndim > 2) {
    const rows = a.shape.slice(0, -1).reduce((x, y) => x * y, 1);
    const strides = viewStrides(a.shape, a.strides, [rows, k]);
    if (strides && matrixLayout(rows, k, strides[0]!, strides[1]!)) {
      return reshape(matmul2(reshape(a, [rows, k]), b, 1, rows, n, k, bias), [...a.shape.slice(0, -1), n]);
    }
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
    const A = asMatrix(a);
    const B = asMatrix(b);
    a.backend.kernels.matmul(A.t, B.t, out, {
      batch, m, n, k, transA: A.trans, transB: B.trans, strideA: batch > 1 ? A.batchStride : 0,
      strideB: batch > 1 ? B.batchStride : 0, ldA: A.ld, ldB: B.ld, bias,
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
