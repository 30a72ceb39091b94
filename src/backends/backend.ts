/**
 * The Backend interface: buffers, host transfers and kernels. Op definitions (src/ops) call
 * kernels through this interface only, so a backend never sees autograd and an op never sees
 * device code. Kernels write into `out` tensors that the op allocated (contiguous unless a kernel
 * says otherwise); inputs may be strided unless the signature says "contiguous".
 */
import type { DType, HostArray } from '../tensor/dtype.js';
import type { Device } from '../tensor/device.js';
import type { Tensor } from '../tensor/tensor.js';

/** Backend-owned memory. Views of one tensor share one Storage. */
export interface Storage {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly numel: number;
  /** Returns the memory to the backend; later use is an error. Called when no tensor refers to it. */
  release(): void;
}

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'sign' | 'tanh' | 'sigmoid' | 'silu' | 'relu'
  | 'gelu' | 'gelu_tanh' | 'softplus' | 'sin' | 'cos' | 'square' | 'reciprocal' | 'clamp' | 'pow_scalar'
  | 'floor' | 'logical_not' | 'isnan' | 'isinf';

/** Scalar parameters some unary ops take: clamp (min, max), pow_scalar (exponent). */
export interface UnaryParams {
  readonly min?: number;
  readonly max?: number;
  readonly exponent?: number;
}

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum' | 'atan2'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'logical_and' | 'logical_or';

export type ReduceOp = 'sum' | 'max' | 'min' | 'prod' | 'argmax' | 'argmin';

export interface MatmulArgs {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /**
   * a is stored per batch entry as k rows of m (true: a^T, so element (i, p) of op(a) sits at
   * p * ldA + i) or m rows of k (false: at i * ldA + p); rows are unit-stride inside.
   */
  readonly transA: boolean;
  /** b likewise: n rows of k (true: element (p, j) of op(b) at j * ldB + p) or k rows of n (false: at p * ldB + j). */
  readonly transB: boolean;
  /** Element strides between batch entries (0 = broadcast one matrix). */
  readonly strideA: number;
  readonly strideB: number;
  /**
   * Leading dimensions: elements between the starts of consecutive stored rows of a (of b) within
   * one batch entry, as BLAS's lda/ldb for row-major storage. Stored rows have m elements when
   * transA (else k), n when transB (else k); the leading dimension must be an integer at least
   * that long (a row view of a wider buffer, e.g. the first 72 of 104 columns, has ld 104), and
   * omitted means exactly that long (dense rows). Every kernel honours them, integer types included.
   */
  readonly ldA?: number;
  readonly ldB?: number;
  /**
   * Optional contiguous [n] vector in out's dtype added to every row of every batch entry
   * (linear's bias), in the same kernel call so out is written once. Float types add it to the
   * float32 (float64) accumulator before the one rounding to out's dtype; integer types add
   * exactly; bool has no bias.
   */
  readonly bias?: Tensor | null;
}

export interface Conv2dArgs {
  readonly stride: readonly [number, number];
  /** Zero rows/columns before the input; the output size (out or gy) fixes how many follow it. */
  readonly padding: readonly [number, number];
  readonly dilation: readonly [number, number];
  readonly groups: number;
}

export type InterpolateMode = 'nearest' | 'bilinear';

export interface InterpolateArgs {
  readonly mode: InterpolateMode;
  readonly alignCorners: boolean;
  /**
   * Input pixels per output pixel along H and W, as PyTorch's area_pixel_compute_scale gives it:
   * (in - 1) / (out - 1) with alignCorners, else 1 / scaleFactor when a scale factor was given,
   * else in / out. Sizes out == in (and out == 2 in for nearest) map indices exactly instead.
   */
  readonly ratio: readonly [number, number];
}

/**
 * Selective-scan tensors, laid out as mamba_ssm's selective_scan_fn takes them (all contiguous).
 * B and C are input-dependent with G groups; channel d reads group floor(d / (D / G)). The op
 * layer passes the single-group [B, N, L] form as G = 1. Dtypes may differ (e.g. bf16 u with
 * float32 A); kernels compute in float32 or wider.
 */
export interface ScanInputs {
  readonly u: Tensor;        // [B, D, L]
  readonly delta: Tensor;    // [B, D, L]
  readonly A: Tensor;        // [D, N]: A, or A_log when aLog
  readonly B: Tensor;        // [B, G, N, L]
  readonly C: Tensor;        // [B, G, N, L]
  readonly D: Tensor | null; // [D]
  readonly z: Tensor | null; // [B, D, L]
  readonly deltaBias: Tensor | null; // [D]
  readonly deltaSoftplus: boolean;
  /**
   * A holds A_log (Mamba's parameter): the scan uses A = -exp(A_log), computed by the kernel in
   * its compute type, and grads.dA receives ∂loss/∂A_log = ∂loss/∂A · A. Absent: false.
   */
  readonly aLog?: boolean;
}

/** Gradient outputs of selectiveScanBackward: contiguous, allocated by the op, one per input (null where the input is absent). */
export interface ScanGrads {
  readonly du: Tensor;
  readonly ddelta: Tensor;
  readonly dA: Tensor;       // w.r.t. the A operand: A_log when inputs.aLog
  readonly dB: Tensor;
  readonly dC: Tensor;
  readonly dD: Tensor | null;
  readonly dz: Tensor | null;
  readonly ddeltaBias: Tensor | null;
}

export interface AttentionArgs {
  readonly scale: number;
  /** Additive float mask broadcastable to [B, H, Lq, Lk], already expanded by strides; or null. */
  readonly mask: Tensor | null;
}

/**
 * Kernels every backend supplies. Tensors are [rows, cols]-shaped views where a kernel speaks of
 * rows; the op layer reshapes before calling.
 */
export interface Kernels {
  /** out[i] = cast(src[i]); src and out may both be strided views of equal shape. */
  copy(src: Tensor, out: Tensor): void;
  fill(out: Tensor, value: number): void;
  /** out[i] = start + i * step (contiguous out). */
  arange(out: Tensor, start: number, step: number): void;
  unary(op: UnaryOp, x: Tensor, out: Tensor, params: UnaryParams): void;
  /** gx = gy * d op(x) / dx, elementwise; x, gy, gx contiguous of one shape. */
  unaryBackward(op: UnaryOp, x: Tensor, gy: Tensor, gx: Tensor, params: UnaryParams): void;
  /** a and b are views with out's shape (stride 0 on broadcast dims). */
  binary(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor): void;
  where(cond: Tensor, a: Tensor, b: Tensor, out: Tensor): void;
  /** Reduces each row of contiguous x [rows, cols] into out [rows]. */
  reduceRows(op: ReduceOp, x: Tensor, out: Tensor): void;
  /**
   * Reduces the middle dim of x [outer, reduced, inner] into contiguous out [outer, inner] (argmax/argmin:
   * index along the middle dim). x is a view with inner stride 1 and any outer/reduced strides (0 included),
   * so a leading-dim reduction needs no transposing copy. Same ops, dtypes and NaN rules as reduceRows.
   */
  reduceColumns(op: ReduceOp, x: Tensor, out: Tensor): void;
  /** out = op(a) @ op(b) (+ args.bias on every row) per batch entry; out contiguous [batch, m, n]. */
  matmul(a: Tensor, b: Tensor, out: Tensor, args: MatmulArgs): void;
  /** Row softmax (or log-softmax) of contiguous x [rows, cols]. */
  softmax(x: Tensor, out: Tensor, log: boolean): void;
  softmaxBackward(y: Tensor, gy: Tensor, gx: Tensor, log: boolean): void;
  /** Row normalisation of x [rows, cols]: out = (x - mean) * rstd (layer) or x * rstd (rms); stats [rows] float32. */
  normRows(kind: 'layer' | 'rms', x: Tensor, eps: number, out: Tensor, mean: Tensor, rstd: Tensor): void;
  /** Gradient of normRows (without affine) with respect to x. */
  normRowsBackward(kind: 'layer' | 'rms', x: Tensor, mean: Tensor, rstd: Tensor, gy: Tensor, gx: Tensor): void;
  /** out = x.index_select(dim, index) for contiguous x; index int32/int64 1-D. */
  indexSelect(x: Tensor, dim: number, index: Tensor, out: Tensor): void;
  /** out.index_add_(dim, index, src): accumulates rows of src into out (out contiguous, pre-filled). */
  indexAdd(out: Tensor, dim: number, index: Tensor, src: Tensor): void;
  /** out = x.gather(dim, index) (all contiguous, index has out's shape). */
  gather(x: Tensor, dim: number, index: Tensor, out: Tensor): void;
  /** out.scatter_add_(dim, index, src). */
  scatterAdd(out: Tensor, dim: number, index: Tensor, src: Tensor): void;
  /** Philox-based random numbers: element i of out uses counter (offset + i); see src/random/philox.ts. */
  random(out: Tensor, dist: 'uniform' | 'normal', seed: bigint, offset: bigint): void;
  /**
   * Cross-correlation as torch.nn.functional.conv2d: x [N, C, H, W], weight [Co, C/groups, kh, kw],
   * bias [Co] or null, out [N, Co, Ho, Wo], all contiguous.
   */
  conv2d(x: Tensor, weight: Tensor, bias: Tensor | null, out: Tensor, args: Conv2dArgs): void;
  /** Overwrites gx [N, C, H, W] with the gradient of conv2d's x; gy, weight contiguous. */
  conv2dBackwardInput(gy: Tensor, weight: Tensor, gx: Tensor, args: Conv2dArgs): void;
  /** Overwrites gw [Co, C/groups, kh, kw] with the gradient of conv2d's weight; gy, x contiguous. */
  conv2dBackwardWeight(gy: Tensor, x: Tensor, gw: Tensor, args: Conv2dArgs): void;
  /**
   * Depthwise causal conv1d with fused bias and SiLU: x, out [B, D, L] with any strides (a
   * channel-last or time-flipped view is read and written in place), weight [D, K] and bias [D]
   * contiguous; v[b,d,t] = bias[d] + sum_k w[d,k] x[b,d,t-K+1+k] (x = 0 before t = 0), out = silu ? silu(v) : v.
   */
  causalConv1d(x: Tensor, weight: Tensor, bias: Tensor | null, silu: boolean, out: Tensor): void;
  /**
   * Overwrites gx (any strides, like x and gy), gw [D, K] and gbias [D] (when given) from gy = d loss / d out;
   * v is recomputed from x, gv = gy silu'(v) (gy without silu), gx[t] = sum_k w[k] gv[t+K-1-k],
   * gw[d,k] = sum_{b,t} gv x[t-K+1+k], gbias[d] = sum_{b,t} gv. Reductions are deterministic.
   */
  causalConv1dBackward(x: Tensor, weight: Tensor, bias: Tensor | null, silu: boolean, gy: Tensor, gx: Tensor, gw: Tensor,
    gbias: Tensor | null): void;
  /** Resamples contiguous x [N, C, H, W] into out [N, C, Ho, Wo] (torch.nn.functional.interpolate). */
  interpolate2d(x: Tensor, out: Tensor, args: InterpolateArgs): void;
  /** Overwrites gx [N, C, H, W] with the gradient of interpolate2d; gy contiguous. */
  interpolate2dBackward(gy: Tensor, gx: Tensor, args: InterpolateArgs): void;
  /**
   * Mamba-1 selective scan: out [B, D, L]; lastState [B, D, N] (or null) receives the final state.
   * Nothing is saved for the backward, which recomputes the states from the inputs.
   */
  selectiveScan(inputs: ScanInputs, out: Tensor, lastState: Tensor | null): void;
  /** Writes every gradient in `grads` (overwriting) given gy = d loss / d out (contiguous [B, D, L]). */
  selectiveScanBackward(inputs: ScanInputs, gy: Tensor, grads: ScanGrads): void;
}

/**
 * Fused kernels a backend may add. Ops use them when present and otherwise compose the same
 * computation from the required kernels, so the CPU reference defines the semantics.
 */
export interface FusedKernels {
  /**
   * Two independent selective scans (the bidirectional mixer's directions) in one launch, no
   * gradient, no final state: outA/outB as selectiveScan writes them. false: not taken (the
   * problems differ in shape or types, or the kernels do not cover them); nothing was written.
   */
  selectiveScanPair?(a: ScanInputs, b: ScanInputs, outA: Tensor, outB: Tensor): boolean;
  /** out, lse = softmax(q k^T * scale + mask) v; q [B,H,Lq,E], k [B,H,Lk,E], v [B,H,Lk,Ev]. */
  attention?(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, args: AttentionArgs): void;
  attentionBackward?(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gy: Tensor,
    gq: Tensor, gk: Tensor, gv: Tensor, args: AttentionArgs): void;
  /** Whether attention / attentionBackward take this call (absent: every call); otherwise the op composes. */
  attentionSupports?(q: Tensor, k: Tensor, v: Tensor, args: AttentionArgs): boolean;

  // adaLN modulation (src/ops/modulate.ts). x, y, gy and outputs are contiguous [G, M, C] (G
  // groups of M rows); a modulation tensor (shift, scale, gate) is a [G, C] view of x's dtype
  // with column stride 1 and any group stride (0: one row shared by every group). Statistics
  // are float32 [G * M]; gradients of modulation tensors are contiguous [G, C] (overwritten).
  /** out = norm(x) * (1 + scale) + shift, norm as normRows. */
  normModulate?(kind: 'layer' | 'rms', x: Tensor, shift: Tensor, scale: Tensor, eps: number, out: Tensor, mean: Tensor, rstd: Tensor): void;
  /** gx from gy through the modulation and the norm; gshift = sum over M of gy, gscale = sum over M of gy * xhat. */
  normModulateBackward?(kind: 'layer' | 'rms', x: Tensor, scale: Tensor, mean: Tensor, rstd: Tensor, gy: Tensor,
    gx: Tensor, gshift: Tensor, gscale: Tensor): void;
  /** out = x + gate * y. */
  gatedResidual?(x: Tensor, gate: Tensor, y: Tensor, out: Tensor): void;
  /** gy = g * gate, ggate = sum over M of g * y (x's gradient is g itself). */
  gatedResidualBackward?(gate: Tensor, y: Tensor, g: Tensor, gy: Tensor, ggate: Tensor): void;
  /** Whether the modulation kernels take rows of x [G, M, C] (absent: every x); otherwise the ops compose. */
  modulateSupports?(x: Tensor): boolean;

  // Linear + GELU(tanh) GEMM epilogues (src/ops/linear-gelu.ts). a, b, args as Kernels.matmul with
  // batch 1; out, preact and the GEMM's result contiguous [m, n] of a's dtype. Each returns false,
  // writing nothing, where it declines the call (dtype, alignment, the GEMM route); the op then
  // composes matmul and the gelu_tanh unary kernels, which define the semantics.
  /** out = gelu_tanh(op(a) op(b) + bias) (bias [n]); preact, when given, receives op(a) op(b) + bias. */
  linearGelu?(a: Tensor, b: Tensor, bias: Tensor, out: Tensor, preact: Tensor | null, args: MatmulArgs): boolean;
  /** out = (op(a) op(b)) * gelu_tanh'(preact); gbias, when given ([n]), = out summed over its m rows. */
  matmulGeluBackward?(a: Tensor, b: Tensor, preact: Tensor, out: Tensor, gbias: Tensor | null, args: MatmulArgs): boolean;

  // Residual add + RMSNorm (src/ops/add-rms-norm.ts). Rows [R, C]: residual (or null: zeros),
  // resOut, gResidual, weight ([C] or null: ones), gWeight [C] of the stream dtype S (float32; the
  // CPU also takes float64 with T float64); x, normed, gNormed, gx one float dtype T; rstd
  // float32 [R]. All contiguous.
  /** resOut = residual + x; normed = resOut * rstd * weight rounded to T, rstd = 1 / sqrt(mean(resOut^2) + eps). */
  addRmsNorm?(residual: Tensor | null, x: Tensor, weight: Tensor | null, eps: number, resOut: Tensor, normed: Tensor, rstd: Tensor): void;
  /**
   * With xhat = res * rstd and gn = gNormed * weight: gResidual = rstd * (gn - xhat * mean(gn * xhat)) + gResOut
   * (gResOut null: zeros), gx = gResidual rounded to T (when given), gWeight = sum over rows of gNormed * xhat (when given).
   */
  addRmsNormBackward?(res: Tensor, weight: Tensor | null, rstd: Tensor, gResOut: Tensor | null, gNormed: Tensor,
    gResidual: Tensor, gx: Tensor | null, gWeight: Tensor | null): void;
  /** Whether addRmsNorm takes rows of this dtype T and width C (absent: every call); otherwise the op composes. */
  addRmsNormSupports?(dtype: DType, cols: number): boolean;

  // Multi-tensor optimizer kernels (src/optim uses them per device when present; see MultiTensor).
  adamwStep?(t: AdamWTensors, c: AdamWCoefficients, options?: MultiTensorOptions): void;
  cameStep?(t: CAMETensors, c: CAMECoefficients, options?: MultiTensorOptions): void;
  /** shadows[i] <- shadows[i] * keep + params[i] * take (shadows float32; params float32/bfloat16/float16). */
  emaUpdate?(shadows: readonly Tensor[], params: readonly Tensor[], keep: number, take: number, options?: MultiTensorOptions): void;
  /** out (float32, one element) <- the sum over every tensor (float32/bfloat16/float16) of each element's square rounded to float32. */
  sumSquares?(tensors: readonly Tensor[], out: Tensor, options?: MultiTensorOptions): void;
  /** out[i] <- src[i] * factor in src[i]'s dtype (factor rounded to that dtype first, as a scalar operand is); out[i] like src[i]. */
  scaleTensors?(src: readonly Tensor[], out: readonly Tensor[], factor: number, options?: MultiTensorOptions): void;
  /**
   * clipGradNorm's host arithmetic on the device, for captured steps: from sumSquares' float32
   * output and the float32 loss (one element each), norm (float64) = sqrt(sum), factor (float64) =
   * min(1, maxNorm / (norm + 1e-6)), skip (int32) = 1 if the loss or the norm is not finite, else 0.
   */
  gradNormCheck?(sumSquares: Tensor, loss: Tensor, maxNorm: number, norm: Tensor, factor: Tensor, skip: Tensor): void;
}

/*
 * Multi-tensor kernels. Lists are parallel (entry i of each list belongs to one parameter), every
 * tensor contiguous, non-empty and on the backend's device. Each arithmetic step is one float32
 * operation rounded to nearest, in the order the formulas give (no fused multiply-add), so
 * results equal the CPU's composition of engine ops bit for bit wherever no sum is involved; the
 * coefficients are float32 values that the caller rounded as the engine rounds scalar operands.
 */

export interface MultiTensorOptions {
  /**
   * An object the backend may keep its device-side table of these lists under (addresses and
   * sizes), reused while they are unchanged; pass the same key only for lists of the same tensors
   * (the gradients may change: they are checked every call).
   */
  readonly cacheKey?: object;
  /**
   * The call belongs to a captured training step (src/train/graphed-step.ts): the kernels read
   * the step's device-side scalars and skip flag from here, and the tables under cacheKey are the
   * step's own for its graph's life (a table that changed during capture is written when the
   * capture ends instead of being refused).
   */
  readonly control?: StepControl;
}

/**
 * What a captured (CUDA graph) training step's kernels read from device memory instead of their
 * arguments, since a graph replays the capture's arguments: the host rewrites `coefficients`
 * before each replay, and gradNormCheck sets `skip` on the device.
 */
export interface StepControl {
  /** int32 [1]: non-zero makes adamwStep, cameStep and emaUpdate change nothing (a non-finite loss or gradient norm). */
  readonly skip: Tensor;
  /**
   * float32: AdamW's 8 coefficients in AdamWCoefficients' order (lerpFromGrad as 0/1); CAME's
   * [decayScale, negLr] (its other coefficients do not change between steps). The argument
   * coefficients' values are then unused.
   */
  readonly coefficients?: Tensor;
  /** float64 [1]: scaleTensors' factor (the argument is then unused). */
  readonly factor?: Tensor;
}

/** AdamW's tensors: weights (float32, the parameter or its master copy) and moments (float32) are updated in place. */
export interface AdamWTensors {
  readonly weights: readonly Tensor[];
  /** float32, bfloat16 or float16. */
  readonly grads: readonly Tensor[];
  readonly expAvg: readonly Tensor[];
  readonly expAvgSq: readonly Tensor[];
  /** bfloat16/float16 parameters that receive their updated weight rounded, or null where the weight is the parameter. */
  readonly halfParams: readonly (Tensor | null)[];
  /** Whether weights[i] is multiplied by decayScale. */
  readonly decay: readonly boolean[];
}

/**
 * One AdamW step (src/optim/adamw.ts):
 *   w <- w * decayScale (where decay[i]);  d = g - m;  m <- lerpFromGrad ? g - d * lerpWeight : m + d * lerpWeight;
 *   v <- v * beta2 + (g * g) * oneMinusBeta2;  w <- w + (m / (sqrt(v) / rootBias2 + eps)) * stepScale.
 */
export interface AdamWCoefficients {
  readonly decayScale: number;
  readonly lerpWeight: number;
  readonly lerpFromGrad: boolean;
  readonly beta2: number;
  readonly oneMinusBeta2: number;
  readonly rootBias2: number;
  readonly eps: number;
  readonly stepScale: number;
}

/**
 * CAME's tensors (src/optim/came.ts has the algorithm and the buffers' meaning). Parameters of
 * two or more dims (factored) have row/column statistics over their last two dims and null
 * expAvgSq; vectors have expAvgSq and null statistics.
 */
export interface CAMETensors {
  readonly weights: readonly Tensor[];
  readonly grads: readonly Tensor[];
  readonly expAvg: readonly Tensor[];
  readonly expAvgSq: readonly (Tensor | null)[];
  readonly sqRow: readonly (Tensor | null)[];
  readonly sqCol: readonly (Tensor | null)[];
  readonly resRow: readonly (Tensor | null)[];
  readonly resCol: readonly (Tensor | null)[];
  readonly halfParams: readonly (Tensor | null)[];
  /** Whether weights[i] takes w <- w + w * decayScale. */
  readonly decay: readonly boolean[];
}

/** CAME's scalars, each as the engine rounds it: the betas and their complements, eps pair, clip threshold, decay (-lr * wd) and -lr. */
export interface CAMECoefficients {
  readonly beta1: number;
  readonly oneMinusBeta1: number;
  readonly beta2: number;
  readonly oneMinusBeta2: number;
  readonly beta3: number;
  readonly oneMinusBeta3: number;
  readonly eps1: number;
  readonly eps2: number;
  readonly clipThreshold: number;
  readonly decayScale: number;
  readonly negLr: number;
}

/**
 * Capture and replay of a fixed sequence of device work (CUDA graphs). Optional: a backend
 * without it runs work eagerly, and src/backends/replayable.ts hides the difference from library
 * code. JS values the work uses (kernel parameters, scalars, shapes) are baked in at capture;
 * values that change between replays must live in device tensors the work reads.
 */
export interface GraphCapability {
  /**
   * Records the device work `fn` queues, without running it, and returns fn's result (tensors
   * that each replay overwrites) with the graph that replays the work.
   */
  capture<T>(fn: () => T, label?: string): { readonly result: T; readonly graph: CapturedGraph };
}

export interface CapturedGraph {
  /** Queues one run of the captured work (asynchronous, like a kernel launch). */
  replay(): void;
  /** Frees the graph and its private memory; tensors it allocated keep their last values. */
  destroy(): void;
  readonly replays: number;
  readonly destroyed: boolean;
}

export interface Backend {
  readonly device: Device;
  readonly kernels: Kernels;
  readonly fused: FusedKernels;
  /** Graph capture and replay, where the backend has it (CUDA). */
  readonly graphs?: GraphCapability;
  alloc(dtype: DType, numel: number): Storage;
  /** Copies host data (length numel, layout as in dtype.ts) into new storage. */
  fromHost(dtype: DType, data: HostArray): Storage;
  /** Copies `numel` elements starting at element `offset` of storage to the host. */
  toHost(storage: Storage, offset: number, numel: number): HostArray;
  /** Waits for queued work (no-op on CPU). */
  synchronize(): void;
}
