/**
 * Linear layers with a GELU (tanh approximation) between them, as one op each:
 *   linearGelu(x, w, b)            = gelu_tanh(x @ w^T + b)
 *   mlpGelu(x, w1, b1, w2, b2)      = gelu_tanh(x @ w1^T + b1) @ w2^T + b2     (timm's Mlp, PixArt's FFN)
 *
 * Backends with FusedKernels.linearGelu run the first GEMM with the GELU in its epilogue (on CUDA,
 * cuBLASLt's GELU_AUX_BIAS, which also stores the pre-activation for the backward), so the
 * [M, hidden] activation is not re-read by a separate GELU kernel. mlpGelu's backward also fuses
 * the other side: the GEMM that forms the gradient of the GELU output (g @ w2) applies
 * gelu_tanh'(pre-activation) in its epilogue (cuBLASLt DGELU; DGELU_BGRAD, which also sums the
 * bias gradient, measured slower: DIMBA_FUSED_GELU_BACKWARD), so the GELU backward kernel
 * disappears too. That is why the MLP is one op:
 * linearGelu alone cannot reach the GEMM of the layer after it.
 *
 * Where a backend lacks the kernels or declines a call (dtype, alignment, a GEMM route without
 * epilogues), the ops run the matmul kernel with the bias and the gelu_tanh unary kernels: the
 * same rounding as linear followed by gelu(x, 'tanh') (the pre-activation is rounded to the
 * dtype before the GELU), which defines the semantics. The fused epilogue applies the GELU to the
 * float32 accumulator instead, one rounding fewer.
 *
 * Operands of mixed dtypes, a missing bias, or a bias that is not a [out] vector compose the
 * ordinary ops instead.
 */
import type { FusedKernels, MatmulArgs } from '../backends/backend.js';
import { isFloating } from '../tensor/dtype.js';
import { ShapeError, formatShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { needsGrad, record } from './record.js';
import { noGrad } from '../autograd/grad-mode.js';
import { contiguous, reshape, transpose } from './layout.js';
import { gelu } from './elementwise.js';
import { linear, matmul } from './matmul.js';
import { sum } from './reduce.js';

/** Whether the fused epilogues are used at all (DIMBA_FUSED_GELU=0 keeps the composed ops, for comparison). */
export function fusedGeluDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DIMBA_FUSED_GELU === '0';
}

function checkLinear(op: string, name: string, x: Tensor, weight: Tensor, bias: Tensor | null | undefined): void {
  if (weight.ndim !== 2) throw new ShapeError(`${op}: ${name} must be 2-D [out, in], got ${formatShape(weight.shape)}`);
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(`${op}: input ${formatShape(x.shape)} does not match ${name} ${formatShape(weight.shape)} (last dim must be ${weight.shape[1]})`);
  }
  if (weight.deviceName !== x.deviceName) throw new TypeError(`${op}: ${name} is on ${weight.deviceName}, x on ${x.deviceName}`);
  if (bias && bias.deviceName !== x.deviceName) throw new TypeError(`${op}: bias of ${name} is on ${bias.deviceName}, x on ${x.deviceName}`);
}

/** Whether the one-node path applies: one float dtype throughout and [out] biases. */
function fusable(x: Tensor, pairs: readonly [Tensor, Tensor | null | undefined][]): boolean {
  if (!isFloating(x.dtype)) return false;
  return pairs.every(([w, b]) => w.dtype === x.dtype && !!b && b.dtype === x.dtype && b.ndim === 1 && b.shape[0] === w.shape[0]);
}

/** x2 [m, k] @ w^T for w [n, k] as the matmul kernel takes it (w read transposed, no copy). */
function argsXWt(m: number, n: number, k: number, bias: Tensor | null = null): MatmulArgs {
  return { batch: 1, m, n, k, transA: false, transB: true, strideA: 0, strideB: 0, bias };
}

/**
 * Which epilogue the MLP backward's g @ w2 GEMM uses (DIMBA_FUSED_GELU_BACKWARD): 'bgrad' = DGELU_BGRAD
 * (gelu' and the bias gradient in the GEMM), 'dgelu' = DGELU (the bias gradient summed
 * separately), 'off' = a plain GEMM and the elementwise GELU backward.
 */
export type GeluBackwardMode = 'bgrad' | 'dgelu' | 'off';
// DGELU with the bias gradient summed apart: on the H100 (bench/cuda/linear-gelu.ts, [8192, 1152] ->
// 4608, bf16) fwd+bwd 0.928 ms against 1.008 composed, 1.140 with DGELU_BGRAD, 0.974 off.
export const DEFAULT_GELU_BACKWARD: GeluBackwardMode = 'dgelu';

export function geluBackwardMode(env: NodeJS.ProcessEnv = process.env): GeluBackwardMode {
  const v = env.DIMBA_FUSED_GELU_BACKWARD?.trim() || DEFAULT_GELU_BACKWARD;
  if (v !== 'bgrad' && v !== 'dgelu' && v !== 'off') {
    throw new RangeError(`DIMBA_FUSED_GELU_BACKWARD=${JSON.stringify(env.DIMBA_FUSED_GELU_BACKWARD)}: expected bgrad, dgelu or off`);
  }
  return v;
}

function fusedKernels(x: Tensor): FusedKernels {
  return fusedGeluDisabled() ? {} : x.backend.fused;
}

/**
 * gelu_tanh(x2 @ w^T + b) into a new [m, n] tensor; the pre-activation too when `keep` (or when
 * composing, which needs it anyway). x2 contiguous [m, k].
 */
function forwardGelu(x2: Tensor, w: Tensor, b: Tensor, keep: boolean): { out: Tensor; preact: Tensor | null } {
  const [m, k] = x2.shape as [number, number];
  const n = w.shape[0]!;
  const be = x2.backend;
  const out = Tensor.empty([m, n], x2.dtype, be);
  if (out.numel === 0) return { out, preact: keep ? Tensor.empty([m, n], x2.dtype, be) : null };
  const bias = contiguous(b);
  // The kernels read w as a row-major [n, k] matrix (transposed in the GEMM).
  w = contiguous(w);
  const fused = fusedKernels(x2);
  if (fused.linearGelu) {
    const preact = keep ? Tensor.empty([m, n], x2.dtype, be) : null;
    if (fused.linearGelu(x2, w, bias, out, preact, argsXWt(m, n, k))) return { out, preact };
    preact?.dispose();
  }
  const preact = Tensor.empty([m, n], x2.dtype, be);
  be.kernels.matmul(x2, w, preact, argsXWt(m, n, k, bias));
  be.kernels.unary('gelu_tanh', preact, out, {});
  return { out, preact: keep ? preact : (preact.dispose(), null) };
}

/** gh = (g [m, n2] @ w2 [n2, n]) * gelu_tanh'(preact [m, n]), and gb = gh summed over rows when asked. */
function backwardGelu(g: Tensor, w2: Tensor, preact: Tensor, wantBias: boolean): { gh: Tensor; gb: Tensor | null } {
  const [m, n] = preact.shape as [number, number];
  const n2 = g.shape[1]!;
  const be = g.backend;
  const gh = Tensor.empty([m, n], preact.dtype, be);
  const args: MatmulArgs = { batch: 1, m, n, k: n2, transA: false, transB: false, strideA: 0, strideB: 0 };
  const fused = fusedKernels(g);
  const mode = geluBackwardMode();
  if (mode !== 'off' && fused.matmulGeluBackward && n2 > 0 && m > 0 && n > 0) {
    const w2c = contiguous(w2);
    if (wantBias && mode === 'bgrad') {
      const gb = Tensor.empty([n], preact.dtype, be);
      if (fused.matmulGeluBackward(g, w2c, preact, gh, gb, args)) return { gh, gb };
      gb.dispose();
    }
    if (fused.matmulGeluBackward(g, w2c, preact, gh, null, args)) return { gh, gb: wantBias ? sum(gh, 0) : null };
  }
  const ga = matmul(g, w2);
  if (gh.numel > 0) be.kernels.unaryBackward('gelu_tanh', preact, contiguous(ga), gh, {});
  return { gh, gb: wantBias ? sum(gh, 0) : null };
}

/** The gradients of x2 [m, k] @ w^T from gh [m, n]: gx [m, k] and gw [n, k]. */
function linearGrads(gh: Tensor, x2: Tensor, w: Tensor, needX: boolean, needW: boolean): [Tensor | null, Tensor | null] {
  return [needX ? matmul(gh, w) : null, needW ? matmul(transpose(gh, 0, 1), x2) : null];
}

/** gelu_tanh(x @ weight^T + bias), weight [out, in] as torch.nn.Linear stores it. */
export function linearGelu(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const op = 'linearGelu';
  checkLinear(op, 'weight', x, weight, bias);
  if (!fusable(x, [[weight, bias]])) return gelu(linear(x, weight, bias), 'tanh');
  const k = weight.shape[1]!;
  const n = weight.shape[0]!;
  const x2 = reshape(contiguous(x), [-1, k]);
  const grad = needsGrad(x2, weight, bias);
  const { out, preact } = forwardGelu(x2, weight, bias!, grad);
  record(op, [x2, weight, bias!], [out], ([g]) => {
    const gh = Tensor.empty(preact!.shape, preact!.dtype, preact!.backend);
    if (gh.numel > 0) x2.backend.kernels.unaryBackward('gelu_tanh', preact!, contiguous(g!), gh, {});
    const [gx, gw] = linearGrads(gh, x2, weight, x2.requiresGrad, weight.requiresGrad);
    return [gx, gw, bias!.requiresGrad ? sum(gh, 0) : null];
  }, { onceDifferentiable: true, saved: [x2, weight, preact] });
  return reshape(out, [...x.shape.slice(0, -1), n]);
}

/** The composed form mlpGelu must equal. */
export function composedMlpGelu(x: Tensor, w1: Tensor, b1: Tensor | null, w2: Tensor, b2: Tensor | null): Tensor {
  return linear(gelu(linear(x, w1, b1), 'tanh'), w2, b2);
}

/**
 * fc2(gelu_tanh(fc1(x))): w1 [hidden, in], b1 [hidden], w2 [out, hidden], b2 [out] (nn.Linear
 * layout). One node; see the module comment for what is fused.
 */
export function mlpGelu(x: Tensor, w1: Tensor, b1: Tensor | null, w2: Tensor, b2: Tensor | null): Tensor {
  const op = 'mlpGelu';
  checkLinear(op, 'w1', x, w1, b1);
  if (w2.ndim !== 2 || w2.shape[1] !== w1.shape[0]) {
    throw new ShapeError(`${op}: w2 ${formatShape(w2.shape)} must be [out, ${w1.shape[0]}] to follow w1 ${formatShape(w1.shape)}`);
  }
  if (w2.deviceName !== x.deviceName) throw new TypeError(`${op}: w2 is on ${w2.deviceName}, x on ${x.deviceName}`);
  if (b2 && b2.deviceName !== x.deviceName) throw new TypeError(`${op}: b2 is on ${b2.deviceName}, x on ${x.deviceName}`);
  if (!fusable(x, [[w1, b1], [w2, b2]])) return composedMlpGelu(x, w1, b1, w2, b2);
  const k = w1.shape[1]!;
  const nOut = w2.shape[0]!;
  const x2 = reshape(contiguous(x), [-1, k]);
  const grad = needsGrad(x2, w1, b1, w2, b2);
  const { out: act, preact } = forwardGelu(x2, w1, b1!, grad);
  // fc2 runs outside the graph: this one node stands for the whole MLP.
  const out = noGrad(() => linear(act, w2, b2));
  if (!grad) return reshape(out, [...x.shape.slice(0, -1), nOut]);
  return finish(op, x, x2, w1, b1!, w2, b2!, act, preact!, out);
}

/** Records mlpGelu's node on its output. */
function finish(op: string, x: Tensor, x2: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, act: Tensor, preact: Tensor,
  out: Tensor): Tensor {
  record(op, [x2, w1, b1, w2, b2], [out], ([g0]) => {
    const g = contiguous(g0!);
    const gw2 = w2.requiresGrad ? matmul(transpose(g, 0, 1), act) : null;
    const gb2 = b2.requiresGrad ? sum(g, 0) : null;
    const needH = x2.requiresGrad || w1.requiresGrad || b1.requiresGrad;
    if (!needH) return [null, null, null, gw2, gb2];
    const { gh, gb } = backwardGelu(g, w2, preact, b1.requiresGrad);
    const [gx, gw1] = linearGrads(gh, x2, w1, x2.requiresGrad, w1.requiresGrad);
    return [gx, gw1, gb, gw2, gb2];
  }, { onceDifferentiable: true, saved: [x2, w1, w2, act, preact] });
  return reshape(out, [...x.shape.slice(0, -1), w2.shape[0]!]);
}
