/**
 * The cuDNN attention graphs as plain data, before any FFI: which calls cuDNN may take, the
 * tensors (uid, type, dims, strides, virtual or not) and operations of the forward and backward
 * operation graphs, and the workspace layout. plan.ts turns a GraphSpec into backend descriptors;
 * keeping the spec separate lets the CPU tests check it against what NVIDIA's frontend builds.
 *
 * Forward: one CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR node (cuDNN >= 9.13), O and the row
 * statistics Stats = logsumexp(scale * q k^T) (natural log, float32 [B, H, Lq, 1]) — the same
 * quantity our kernel stores as lse, so either backward can follow either forward.
 *
 * Backward: the dedicated SDPA backward operation does not build on cuDNN 9.19, so this is the
 * composite graph cudnn-frontend (1.18, CompositeSDPABackwardNode) lowers to, with the same uids,
 * dims, strides and order (checked against an API log in test/cuda/cudnn-attention-spec.test.ts):
 *   softmax_sum = rowsum(dO * O)                       (non-virtual, in the workspace)
 *   P   = exp(scale * Q K^T - Stats)                   (K declared transposed: [B, H, E, Lk])
 *   dV  = P^T dO
 *   dS  = scale * P * (dO V^T - softmax_sum)           (V declared transposed)
 *   dK  = dS^T Q
 *   dQ  = dS K, accumulated in float32 (dQ_accum, in the workspace; zeroed by cuDNN >= 9.6) then
 *         converted by an identity pointwise op.
 * Key padding (the additive mask our op builds from a [B, Lk] caption mask, 0 or -inf, the same for
 * every head and query) goes in as cuDNN's bias of the io dtype, declared [B, 1, Lq, Lk] with query
 * stride 0 (how PyTorch passes a [B, 1, 1, Lk] attn_mask to cuDNN), as
 * cudnn-frontend lowers SDPA with a bias on cuDNN 9.13..9.20 (the SDPA_FWD node takes no bias
 * before its 9.21 subgraph):
 *   forward:  the composite graph (CompositeSDPANode + its softmax node): S = Q K^T; S*scale;
 *             + bias; Max = rowmax; exp(. - Max); SumExp = rowsum; Stats = Max + log(SumExp);
 *             P = exp / SumExp (io dtype); O = P V.
 *   backward: one pointwise ADD of the bias after the scale (P = exp(scale * Q K^T + bias - Stats)),
 *             no dBias.
 * A query whose keys are all masked: cuDNN's softmax has no defined value there, so run.ts zeroes O
 * and sets Stats to -inf for such batch rows after the forward (our kernel's result), and hands the
 * backward Stats with -inf replaced by +inf, so P = exp(-inf - inf) = 0 in that row.
 * Masks that vary over heads or queries, dropout, causal and grouped heads are not in these
 * graphs: such calls use our kernel.
 */
import type { DType } from '../../../tensor/dtype.js';

export type IoDType = 'bfloat16' | 'float16';
export type SpecDType = IoDType | 'float32';
export type Dims4 = readonly [number, number, number, number];
export type Direction = 'forward' | 'backward';

/** Oldest cuDNN with the SDPA forward operation in the backend API. */
export const MIN_CUDNN_VERSION = 91300;
/** Largest head dim this path takes (cuDNN goes to 256 on Hopper; our kernel and tests stop at 128). */
export const CUDNN_MAX_HEAD_DIM = 128;
/** Byte alignment declared for every tensor (and required of every operand address). */
export const CUDNN_ALIGNMENT = 16;
/** Placement of the workspace-held tensors (and cuDNN's own workspace after them). */
export const WORKSPACE_ALIGNMENT = 256;

/** Tensor uids, as cudnn-frontend numbers them for these graphs. */
export const UID = {
  q: 0, k: 1, v: 2, o: 3, dOxO: 4, scale: 5, rowsum: 6, one: 7, stats: 8, dO: 9, dQ: 10, dK: 11, dV: 12,
  softmaxSum: 13, s: 14, sScaled: 15, sCentered: 16, p: 17, pT: 18, dP: 19, dPCentered: 20, dSUnscaled: 21, dS: 22,
  dST: 23, kRows: 24, dQAccum: 25,
  // Masked graphs only (numbers past the frontend's unmasked ones, so the unmasked graphs keep theirs).
  bias: 26, sBiased: 27, max: 28, sCenteredFwd: 29, expS: 30, sumExp: 31, logSumExp: 32, pFwd: 33,
} as const;

export interface TensorSpec {
  readonly uid: number;
  readonly name: string;
  readonly dtype: SpecDType;
  readonly dims: Dims4;
  readonly strides: Dims4;
  readonly virtual: boolean;
  /** A host scalar passed in the variant pack (the scale, the constant 1). */
  readonly byValue: boolean;
}

export type PointwiseMode = 'mul' | 'sub' | 'exp' | 'identity' | 'add' | 'div' | 'log';

export type ReductionMode = 'add' | 'max';

export type OpSpec =
  | { readonly kind: 'sdpaForward'; readonly name: string; readonly q: number; readonly k: number; readonly v: number;
    readonly o: number; readonly stats: number; readonly scale: number }
  | { readonly kind: 'pointwise'; readonly name: string; readonly mode: PointwiseMode; readonly x: number; readonly b: number | null; readonly y: number }
  | { readonly kind: 'reduction'; readonly name: string; readonly mode: ReductionMode; readonly x: number; readonly y: number }
  | { readonly kind: 'matmul'; readonly name: string; readonly a: number; readonly b: number; readonly c: number }
  | { readonly kind: 'reshape'; readonly name: string; readonly x: number; readonly y: number };

/** A non-virtual intermediate the caller provides (in the workspace, ahead of cuDNN's own). */
export interface ScratchSpec {
  readonly uid: number;
  readonly bytes: number;
}

export interface GraphSpec {
  readonly direction: Direction;
  /** Plan cache key: direction, dtype, sizes and every operand's strides. */
  readonly key: string;
  readonly tensors: readonly TensorSpec[];
  readonly ops: readonly OpSpec[];
  readonly scratch: readonly ScratchSpec[];
  /** Host scalars by uid: the scale is filled in per call, the rest are constants. */
  readonly byValue: readonly number[];
}

export interface SdpaShape {
  readonly batch: number;
  readonly heads: number;
  readonly lq: number;
  readonly lk: number;
  /** Head dim of q, k and v (equal here). */
  readonly e: number;
}

/** Element strides of a [B, H, L, E] operand (E stride 1). */
export type Strides4 = Dims4;

export interface ForwardProblem {
  readonly dtype: IoDType;
  readonly shape: SdpaShape;
  readonly q: Strides4;
  readonly k: Strides4;
  readonly v: Strides4;
  readonly o: Strides4;
  /**
   * Key padding as an additive bias of the io dtype, one row of Lk per batch: the element stride between
   * batch rows (keys at stride 1). Absent or null: unmasked.
   */
  readonly biasBatchStride?: number | null;
}

export interface BackwardProblem extends ForwardProblem {
  readonly dO: Strides4;
  readonly dQ: Strides4;
  readonly dK: Strides4;
  readonly dV: Strides4;
}

const contiguous = (d: Dims4): Dims4 => [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1];

/** The graphs' shapes: q/o rows [B, H, Lq, E], k/v rows [B, H, Lk, E], row-major scores [B, H, Lq, Lk]. */
function graphDims(s: SdpaShape): { qDims: Dims4; kDims: Dims4; scores: Dims4; scoreStrides: Dims4 } {
  const scores: Dims4 = [s.batch, s.heads, s.lq, s.lk];
  return { qDims: [s.batch, s.heads, s.lq, s.e], kDims: [s.batch, s.heads, s.lk, s.e], scores, scoreStrides: contiguous(scores) };
}

function statsDims(s: SdpaShape): { dims: Dims4; strides: Dims4 } {
  return { dims: [s.batch, s.heads, s.lq, 1], strides: [s.heads * s.lq, s.lq, 1, 1] };
}

function scalar(uid: number, name: string): TensorSpec {
  return { uid, name, dtype: 'float32', dims: [1, 1, 1, 1], strides: [1, 1, 1, 1], virtual: false, byValue: true };
}

function io(uid: number, name: string, dtype: IoDType, dims: Dims4, strides: Strides4): TensorSpec {
  return { uid, name, dtype, dims, strides, virtual: false, byValue: false };
}
/** An intermediate the graph keeps to itself (no memory bound to it). */
function virt(uid: number, name: string, dtype: SpecDType, dims: Dims4, strides: Dims4): TensorSpec {
  return { uid, name, dtype, dims, strides, virtual: true, byValue: false };
}
/** A pointwise op y = mode(x[, b]). */
function pw(name: string, mode: PointwiseMode, x: number, b: number | null, y: number): OpSpec {
  return { kind: 'pointwise', name, mode, x, b, y };
}

/** [B, H, L, E] -> the transposed [B, H, E, L] declaration of the same memory (cuDNN's K^T, V^T). */
function transposed(dims: Dims4, strides: Strides4): { dims: Dims4; strides: Dims4 } {
  return { dims: [dims[0], dims[1], dims[3], dims[2]], strides: [strides[0], strides[1], strides[3], strides[2]] };
}

function stridesKey(name: string, s: Strides4): string {
  return `${name}${s.join(',')}`;
}

function problemKey(direction: Direction, p: ForwardProblem, extra: [string, Strides4][] = []): string {
  const { batch, heads, lq, lk, e } = p.shape;
  const operands: [string, Strides4][] = [['q', p.q], ['k', p.k], ['v', p.v], ['o', p.o], ...extra];
  const bias = biasOf(p);
  if (bias) operands.push(['bias', bias.strides]);
  return `${direction}:${p.dtype}:${batch}x${heads}x${lq}x${lk}x${e}:${operands.map(([n, s]) => stridesKey(n, s)).join(':')}`;
}

/**
 * The bias tensor of a masked problem: [B, 1, Lq, Lk] with query stride 0, as PyTorch hands
 * cuDNN a [B, 1, 1, Lk] attn_mask (expanded over the queries, the head dim left at 1), the
 * batch step as given and the head dim declared with that step too.
 */
function biasOf(p: ForwardProblem): { dims: Dims4; strides: Dims4 } | null {
  const sb = p.biasBatchStride;
  if (sb === undefined || sb === null) return null;
  if (!Number.isInteger(sb) || sb < 0) throw new RangeError(`cuDNN attention: bias batch stride ${sb} is not a non-negative integer`);
  // A single batch row is never stepped along; give it the row's span so the batch stride is not 0.
  const step = p.shape.batch === 1 ? p.shape.lk : sb;
  return { dims: [p.shape.batch, 1, p.shape.lq, p.shape.lk], strides: [step, step, 0, 1] };
}

export function forwardGraph(p: ForwardProblem): GraphSpec {
  if (biasOf(p)) return maskedForwardGraph(p);
  const s = p.shape;
  const { qDims, kDims } = graphDims(s);
  const stats = statsDims(s);
  const tensors: TensorSpec[] = [
    io(UID.v, 'V', p.dtype, kDims, p.v),
    io(UID.k, 'K', p.dtype, kDims, p.k),
    io(UID.q, 'Q', p.dtype, qDims, p.q),
    scalar(UID.scale, 'Attn_scale'),
    { uid: UID.stats, name: 'Stats', dtype: 'float32', ...stats, virtual: false, byValue: false },
    io(UID.o, 'O', p.dtype, qDims, p.o),
  ];
  const ops: OpSpec[] = [
    { kind: 'sdpaForward', name: 'sdpa_fwd', q: UID.q, k: UID.k, v: UID.v, o: UID.o, stats: UID.stats, scale: UID.scale },
  ];
  return { direction: 'forward', key: problemKey('forward', p), tensors, ops, scratch: [], byValue: [UID.scale] };
}

/**
 * The forward with a key-padding bias: CompositeSDPANode's lowering (bmm1, attn_scale, bias_add,
 * then its softmax node Max / sub / exp / sum / log / add / div, then bmm2), for cuDNN's runtime
 * fusion engines to match.
 */
function maskedForwardGraph(p: ForwardProblem): GraphSpec {
  const s = p.shape;
  const f32 = 'float32';
  const { qDims, kDims, scores, scoreStrides } = graphDims(s);
  const stats = statsDims(s);
  const kT = transposed(kDims, p.k);
  const bias = biasOf(p)!;
  const tensors: TensorSpec[] = [
    io(UID.q, 'Q', p.dtype, qDims, p.q),
    io(UID.k, 'K^T', p.dtype, kT.dims, kT.strides),
    io(UID.v, 'V', p.dtype, kDims, p.v),
    scalar(UID.scale, 'Attn_scale'),
    io(UID.bias, 'Bias', p.dtype, bias.dims, bias.strides),
    { uid: UID.stats, name: 'Stats', dtype: f32, ...stats, virtual: false, byValue: false },
    io(UID.o, 'O', p.dtype, qDims, p.o),
    virt(UID.s, 'S', f32, scores, scoreStrides),
    virt(UID.sScaled, 'S*scale', f32, scores, scoreStrides),
    virt(UID.sBiased, 'S*scale+bias', f32, scores, scoreStrides),
    virt(UID.max, 'Max', f32, stats.dims, stats.strides),
    virt(UID.sCenteredFwd, 'sub_M', f32, scores, scoreStrides),
    virt(UID.expS, 'exp_sub_M', f32, scores, scoreStrides),
    virt(UID.sumExp, 'SumExp', f32, stats.dims, stats.strides),
    virt(UID.logSumExp, 'log(SumExp)', f32, stats.dims, stats.strides),
    // bmm2's A operand in the io dtype, as the frontend sets it ("aType of bmm2").
    virt(UID.pFwd, 'P', p.dtype, scores, scoreStrides),
  ];
  const ops: OpSpec[] = [
    { kind: 'matmul', name: 'bmm1', a: UID.q, b: UID.k, c: UID.s },
    pw('attn_scale', 'mul', UID.s, UID.scale, UID.sScaled),
    pw('bias_add', 'add', UID.sScaled, UID.bias, UID.sBiased),
    { kind: 'reduction', name: 'Max', mode: 'max', x: UID.sBiased, y: UID.max },
    pw('sub', 'sub', UID.sBiased, UID.max, UID.sCenteredFwd),
    pw('exp', 'exp', UID.sCenteredFwd, null, UID.expS),
    { kind: 'reduction', name: 'sum', mode: 'add', x: UID.expS, y: UID.sumExp },
    pw('log', 'log', UID.sumExp, null, UID.logSumExp),
    pw('add', 'add', UID.max, UID.logSumExp, UID.stats),
    pw('div', 'div', UID.expS, UID.sumExp, UID.pFwd),
    { kind: 'matmul', name: 'bmm2', a: UID.pFwd, b: UID.v, c: UID.o },
  ];
  return { direction: 'forward', key: problemKey('forward', p), tensors, ops, scratch: [], byValue: [UID.scale] };
}

export function backwardGraph(p: BackwardProblem): GraphSpec {
  const s = p.shape;
  const { batch: b, heads: h, lq, lk, e } = s;
  const f32 = 'float32';
  const { qDims, kDims, scores, scoreStrides } = graphDims(s);
  // P^T and dS^T: [B, H, Lk, Lq] views of the row-major [B, H, Lq, Lk] scores.
  const scoresT: Dims4 = [b, h, lk, lq];
  const scoresTStrides: Dims4 = [h * lq * lk, lq * lk, 1, lk];
  const stats = statsDims(s);
  const kT = transposed(kDims, p.k);
  const vT = transposed(kDims, p.v);
  const bias = biasOf(p);

  const tensors: TensorSpec[] = [
    // The frontend's creation order: the node's own inputs and outputs, then each sub-node's new tensors.
    { uid: UID.stats, name: 'Stats', dtype: f32, ...stats, virtual: false, byValue: false },
    io(UID.dO, 'dO', p.dtype, qDims, p.dO),
    io(UID.o, 'O', p.dtype, qDims, p.o),
    io(UID.v, 'V^T', p.dtype, vT.dims, vT.strides),
    io(UID.k, 'K^T', p.dtype, kT.dims, kT.strides),
    io(UID.q, 'Q', p.dtype, qDims, p.q),
    scalar(UID.scale, 'Attn_scale'),
    io(UID.dV, 'dV', p.dtype, kDims, p.dV),
    io(UID.dK, 'dK', p.dtype, kDims, p.dK),
    io(UID.dQ, 'dQ', p.dtype, qDims, p.dQ),
    ...(bias ? [io(UID.bias, 'Bias', p.dtype, bias.dims, bias.strides)] : []),
    // dO * O: the frontend sets these strides (batch and row steps of a [B, L, H, E] layout, head step L*E).
    virt(UID.dOxO, 'dO*O', f32, qDims, [h * lq * e, lq * e, h * e, 1]),
    virt(UID.rowsum, 'rowsum(dO*O)', f32, stats.dims, stats.strides),
    scalar(UID.one, 'one'),
    { uid: UID.softmaxSum, name: 'softmax_sum', dtype: f32, ...stats, virtual: false, byValue: false },
    virt(UID.s, 'S', f32, scores, scoreStrides),
    virt(UID.sScaled, 'S*scale', f32, scores, scoreStrides),
    ...(bias ? [virt(UID.sBiased, 'S*scale+bias', f32, scores, scoreStrides)] : []),
    virt(UID.sCentered, 'S*scale-Stats', f32, scores, scoreStrides),
    virt(UID.p, 'P', f32, scores, scoreStrides),
    virt(UID.pT, 'P^T', p.dtype, scoresT, scoresTStrides),
    virt(UID.dP, 'dP', f32, scores, scoreStrides),
    virt(UID.dPCentered, 'dP-softmax_sum', f32, scores, scoreStrides),
    virt(UID.dSUnscaled, 'P*(dP-softmax_sum)', f32, scores, scoreStrides),
    virt(UID.dS, 'dS', f32, scores, scoreStrides),
    virt(UID.dST, 'dS^T', p.dtype, scoresT, scoresTStrides),
    virt(UID.kRows, 'K', f32, kDims, p.k),
    { uid: UID.dQAccum, name: 'dQ_accum', dtype: f32, dims: qDims, strides: contiguous(qDims), virtual: false, byValue: false },
  ];
  const ops: OpSpec[] = [
    pw('mul_dO_O', 'mul', UID.dO, UID.o, UID.dOxO),
    { kind: 'reduction', name: 'reduce_dO_o', mode: 'add', x: UID.dOxO, y: UID.rowsum },
    pw('scale_dropout_inv', 'mul', UID.rowsum, UID.one, UID.softmaxSum),
    { kind: 'matmul', name: 'matmul_Q_KT', a: UID.q, b: UID.k, c: UID.s },
    pw('mul_s_attn_scale', 'mul', UID.s, UID.scale, UID.sScaled),
    ...(bias ? [pw('bias_add', 'add', UID.sScaled, UID.bias, UID.sBiased)] : []),
    pw('sub_s_m', 'sub', bias ? UID.sBiased : UID.sScaled, UID.stats, UID.sCentered),
    pw('exp_s', 'exp', UID.sCentered, null, UID.p),
    { kind: 'reshape', name: 'reshape_p', x: UID.p, y: UID.pT },
    { kind: 'matmul', name: 'matmul_pT_dO', a: UID.pT, b: UID.dO, c: UID.dV },
    { kind: 'matmul', name: 'matmul_dO_VT', a: UID.dO, b: UID.v, c: UID.dP },
    pw('sub_dP_softmax_sum', 'sub', UID.dP, UID.softmaxSum, UID.dPCentered),
    pw('mul_dP_exp_s', 'mul', UID.dPCentered, UID.p, UID.dSUnscaled),
    pw('mul_dS_attn_scale', 'mul', UID.dSUnscaled, UID.scale, UID.dS),
    { kind: 'reshape', name: 'reshape_dS', x: UID.dS, y: UID.dST },
    { kind: 'matmul', name: 'matmul_dST_Q', a: UID.dST, b: UID.q, c: UID.dK },
    { kind: 'reshape', name: 'reshape_k', x: UID.k, y: UID.kRows },
    { kind: 'matmul', name: 'matmul_dS_K', a: UID.dS, b: UID.kRows, c: UID.dQAccum },
    pw('identity_dQ', 'identity', UID.dQAccum, null, UID.dQ),
  ];
  const scratch: ScratchSpec[] = [
    { uid: UID.dQAccum, bytes: b * h * lq * e * 4 },
    { uid: UID.softmaxSum, bytes: b * h * lq * 4 },
  ];
  const key = problemKey('backward', p, [['dO', p.dO], ['dQ', p.dQ], ['dK', p.dK], ['dV', p.dV]]);
  return { direction: 'backward', key, tensors, ops, scratch, byValue: [UID.scale, UID.one] };
}

export interface WorkspaceLayout {
  /** Byte offset of each scratch tensor. */
  readonly offsets: ReadonlyMap<number, number>;
  /** Where cuDNN's own workspace starts. */
  readonly planOffset: number;
  readonly total: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Scratch tensors first (in spec order), then cuDNN's workspace, each on a 256-byte boundary. */
export function workspaceLayout(spec: GraphSpec, planBytes: number): WorkspaceLayout {
  const offsets = new Map<number, number>();
  let at = 0;
  for (const t of spec.scratch) {
    offsets.set(t.uid, at);
    at = alignUp(at + t.bytes, WORKSPACE_ALIGNMENT);
  }
  return { offsets, planOffset: at, total: at + planBytes };
}

/** Every uid a tensor of the spec declares; throws on duplicates and on ops naming unknown uids. */
export function validateSpec(spec: GraphSpec): void {
  const uids = new Set<number>();
  for (const t of spec.tensors) {
    if (uids.has(t.uid)) throw new Error(`cuDNN attention ${spec.direction} graph: uid ${t.uid} (${t.name}) declared twice`);
    uids.add(t.uid);
  }
  for (const op of spec.ops) {
    const refs: number[] = op.kind === 'sdpaForward' ? [op.q, op.k, op.v, op.o, op.stats, op.scale]
      : op.kind === 'pointwise' ? [op.x, op.y, ...(op.b === null ? [] : [op.b])]
        : op.kind === 'matmul' ? [op.a, op.b, op.c] : [op.x, op.y];
    for (const r of refs) if (!uids.has(r)) throw new Error(`cuDNN attention ${spec.direction} graph: ${op.name} uses undeclared uid ${r}`);
  }
}

// ---- Which calls the cuDNN path takes ----

export type AttentionMode = 'auto' | 'cudnn' | 'ours';

/** DIMBA_ATTENTION: auto (cuDNN where it applies, else our kernel), cudnn (error where it does not), ours. */
export function attentionMode(env: NodeJS.ProcessEnv = process.env): AttentionMode {
  const v = env.DIMBA_ATTENTION;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'cudnn' || v === 'ours') return v;
  throw new RangeError(`DIMBA_ATTENTION=${JSON.stringify(v)}: expected auto, cudnn or ours`);
}

export interface DecisionInput {
  readonly direction: Direction;
  /** q's dtype, and the dtypes of the other operands (k, v, out, ...). */
  readonly dtype: DType;
  readonly otherDTypes: readonly DType[];
  readonly shape: SdpaShape & { readonly ev: number };
  /** The additive mask, if any: its dtype, and whether it is key padding (see maskLayout). */
  readonly mask: { readonly dtype: DType; readonly keyPadding: boolean } | null;
  /** cudnnGetVersion(). */
  readonly version: number;
  /** Compute capability, major * 10 + minor. */
  readonly arch: number;
}

/**
 * Why the cuDNN graphs cannot take this call (the caller then runs our kernel), or null. Layouts
 * are not a reason: operands cuDNN cannot address are copied (see cudnnOperand).
 */
export function cudnnUnsupportedReason(c: DecisionInput): string | null {
  const { batch, heads, lq, lk, e, ev } = c.shape;
  if (c.dtype !== 'bfloat16' && c.dtype !== 'float16') return `dtype ${c.dtype} (cuDNN attention takes bfloat16 and float16)`;
  if (c.mask !== null) {
    if (!c.mask.keyPadding) return 'a mask that varies over heads or queries (the cuDNN graphs here take key padding: one row of Lk per batch)';
    if (c.mask.dtype !== c.dtype) return `mask dtype ${c.mask.dtype} (cuDNN's bias here is the io dtype, ${c.dtype})`;
  }
  const other = c.otherDTypes.find((d) => d !== c.dtype);
  if (other !== undefined) return `mixed dtypes (${c.dtype} and ${other})`;
  if (e !== ev) return `head dims differ (q/k ${e}, v ${ev})`;
  if (e % 8 !== 0 || e < 8 || e > CUDNN_MAX_HEAD_DIM) return `head dim ${e} (cuDNN attention here takes multiples of 8 up to ${CUDNN_MAX_HEAD_DIM})`;
  if (batch * heads * lq === 0 || lk === 0) return 'an empty problem';
  if (c.arch < 80) return `compute capability ${c.arch / 10} (cuDNN fused attention needs 8.0)`;
  if (c.version < MIN_CUDNN_VERSION) return `cuDNN ${versionText(c.version)} (the SDPA forward operation needs 9.13)`;
  if (c.direction === 'backward') {
    if (lq === 1 && lk === 1) return 'Lq = Lk = 1 (cuDNN\'s backward does not take it)';
    // cudnn-frontend adds a padding mask for these on cuDNN <= 9.15 to avoid a known bug; this graph has none.
    if (c.version <= 91500 && lk % 128 !== 0) return `Lk ${lk} not a multiple of 128 on cuDNN ${versionText(c.version)} (needs 9.15.1 or newer)`;
    // pytorch/pytorch#196678: with a bias, the padded half of the last 128-key tile is scored 0
    // instead of -inf in the Hopper backward, and dQ turns NaN once a row's logsumexp is below -88.7.
    if (c.mask !== null && lk % 128 === 64) return `Lk ${lk} = 64 mod 128 with a mask (cuDNN's masked backward has a NaN bug there, pytorch#196678)`;
  }
  return null;
}

function versionText(v: number): string {
  return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
}

/**
 * The [B, H, L, E] strides cuDNN is given for an operand, or null when it must be copied first:
 * the E stride 1 and every other step a multiple of 8 elements (16 bytes), from a 16-byte-aligned
 * address. A size-1 dim is never stepped along (an expand may leave 0 there); it gets the span
 * of the other dims, so no declared stride is 0.
 */
export function cudnnOperand(shape: readonly number[], strides: readonly number[], address: number, itemBytes: number): Strides4 | null {
  if (shape.length !== 4) return null;
  if (address % CUDNN_ALIGNMENT !== 0) return null;
  if (shape[3]! > 1 && strides[3] !== 1) return null;
  // Loops rather than maps: this runs for every operand of every attention call.
  const step = CUDNN_ALIGNMENT / itemBytes;
  let span = 1;
  for (let i = 0; i < 4; i++) {
    const n = shape[i]!;
    if (n === 1) continue;
    const st = strides[i]!;
    if (i < 3 && (st < 0 || st % step !== 0)) return null;
    span = Math.max(span, n * st);
  }
  return [shape[0] === 1 ? span : strides[0]!, shape[1] === 1 ? span : strides[1]!, shape[2] === 1 ? span : strides[2]!, 1];
}


/** How an additive mask (already expanded to [B, H, Lq, Lk] by strides) can reach cuDNN. */
export type MaskLayout =
  /** Varies over heads or queries: not key padding, our kernel takes it. */
  | { readonly kind: 'full' }
  /**
   * One row of Lk per batch. batchStride: the element step between rows cuDNN is given the
   * mask's memory with, or null when the rows must be copied into a padded buffer first (keys
   * not at stride 1, or a row step or address off 16 bytes).
   */
  | { readonly kind: 'keys'; readonly batchStride: number | null };

export function maskLayout(shape: readonly number[], strides: readonly number[], address: number, itemBytes: number): MaskLayout {
  if (shape.length !== 4) return { kind: 'full' };
  // A size-1 dim is never stepped along (an expand may leave anything there).
  const s = strides.map((st, i) => (shape[i] === 1 ? 0 : st));
  if (s[1] !== 0 || s[2] !== 0) return { kind: 'full' };
  const step = CUDNN_ALIGNMENT / itemBytes;
  const keysOk = shape[3]! <= 1 || s[3] === 1;
  const rowsOk = shape[0]! <= 1 || (s[0]! > 0 && s[0]! % step === 0);
  const inPlace = keysOk && rowsOk && address % CUDNN_ALIGNMENT === 0;
  return { kind: 'keys', batchStride: inPlace ? (shape[0]! <= 1 ? paddedKeys(shape[3]!, itemBytes) : s[0]!) : null };
}

/** The row step of a staged bias: Lk rounded up to 16 bytes. */
export function paddedKeys(lk: number, itemBytes: number): number {
  const step = CUDNN_ALIGNMENT / itemBytes;
  return Math.max(step, Math.ceil(lk / step) * step);
}
