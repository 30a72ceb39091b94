/**
 * The cuDNN route of the CUDA fused attention (kernels/attention.ts calls these first): decide
 * whether cuDNN takes the call (spec.ts), build or look up its plan (plan.ts), stage operands it
 * cannot address in place, and execute. Each returns false when the call should go to our kernel
 * (DIMBA_ATTENTION=auto), and throws naming the reason under DIMBA_ATTENTION=cudnn.
 *
 * Operands are used in place when cuDNN can address them (E stride 1, 16-byte steps and address),
 * which covers the [B, L, H, E] views the model's head split makes; anything else is copied into a
 * contiguous temporary (outputs copied back), so a layout never decides between the two paths.
 *
 * Key padding (an additive mask that is one row of Lk per batch, the same for every head and
 * query) is cuDNN's bias: the mask's own memory when its rows sit on 16-byte steps, else a padded
 * copy. Around the masked graphs, kernels/cudnn-attention.cu gives batch rows with every key
 * masked our kernel's result (O = 0, lse = -inf) after the forward, and hands the backward Stats
 * with -inf turned into +inf (see spec.ts). Neither reads anything back to the host, so masked
 * calls stay capturable and never wait on the device.
 */
import type { AttentionArgs } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { contiguousStrides } from '../../../tensor/shape.js';
import { itemSize } from '../../../tensor/dtype.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { copyInto } from '../kernels/copy.js';
import { Scratch } from '../kernels/scratch.js';
import { CUDNN_ATTENTION_MODULE, DTYPE_SUFFIX } from '../kernels/source.js';
import { cudnnAttentionFor } from './plan.js';
import {
  attentionMode, backwardGraph, cudnnOperand, cudnnUnsupportedReason, forwardGraph, maskLayout, paddedKeys, UID, type AttentionMode,
  type Direction, type GraphSpec, type IoDType, type SdpaShape, type Strides4,
} from './spec.js';

/** How an operand reaches cuDNN: in place, or through a contiguous temporary. */
interface Placed {
  readonly t: Tensor;
  readonly strides: Strides4;
  readonly staged: boolean;
}

function place(t: Tensor): Placed {
  const direct = cudnnOperand(t.shape, t.strides, addressOf(t), itemSize(t.dtype));
  if (direct) return { t, strides: direct, staged: false };
  const c = contiguousStrides(t.shape);
  return { t, strides: [c[0]!, c[1]!, c[2]!, c[3]!], staged: true };
}

/** lse / Stats: float32 [B, H, Lq] contiguous from a 16-byte boundary, else staged. */
function statsInPlace(lse: Tensor): boolean {
  return lse.dtype === 'float32' && lse.isContiguous && addressOf(lse) % 16 === 0;
}

function shapeOf(q: Tensor, k: Tensor, v: Tensor): SdpaShape & { ev: number } {
  const [batch, heads, lq, e] = q.shape as [number, number, number, number];
  return { batch, heads, lq, lk: k.shape[2]!, e, ev: v.shape[3]! };
}

export function describeCall(direction: Direction, dtype: string, s: SdpaShape, masked = false): string {
  return `${direction} ${dtype} B${s.batch} H${s.heads} Lq${s.lq} Lk${s.lk} E${s.e}${masked ? ' masked' : ''}`;
}

/** false (auto) or a thrown error (cudnn) for a call cuDNN does not take. */
function decline(mode: AttentionMode, label: string, reason: string): false {
  if (mode === 'cudnn') throw new Error(`DIMBA_ATTENTION=cudnn, but cuDNN attention cannot take ${label}: ${reason}`);
  return false;
}

/** The mask as cuDNN's decision sees it (null: unmasked). */
function maskInfo(args: AttentionArgs): { dtype: Tensor['dtype']; keyPadding: boolean } | null {
  const m = args.mask;
  if (m === null) return null;
  const layout = maskLayout(m.shape, m.strides, addressOf(m), itemSize(m.dtype));
  return { dtype: m.dtype, keyPadding: layout.kind === 'keys' };
}

/** Why not, before any plan: the call's kind, then whether cuDNN is here at all. */
function staticReason(rt: CudaRuntime, direction: Direction, q: Tensor, others: Tensor[], args: AttentionArgs): string | null {
  if (q.ndim !== 4 || others.some((t) => t.ndim !== 4)) return 'q, k, v must be [B, H, L, E]';
  const [k, v] = others as [Tensor, Tensor];
  const shape = shapeOf(q, k, v);
  const m = args.mask;
  if (m !== null && (m.ndim !== 4 || m.shape[0] !== shape.batch || m.shape[3] !== shape.lk)) {
    return `mask of shape [${m.shape.join(', ')}] (expected [B, H, Lq, Lk] = [${shape.batch}, ${shape.heads}, ${shape.lq}, ${shape.lk}])`;
  }
  if (m !== null && m.backend !== q.backend) return `mask is on ${m.deviceName}, q on ${q.deviceName}`;
  const reason = cudnnUnsupportedReason({
    direction, dtype: q.dtype, otherDTypes: others.map((t) => t.dtype), shape, mask: maskInfo(args),
    version: cudnnAttentionFor(rt).version(), arch: rt.info.arch,
  });
  if (reason !== null) return reason;
  return cudnnAttentionFor(rt).unavailableReason();
}

/**
 * Builds (or finds) the plan, stages operands, allocates the workspace and runs; `after` sees the
 * tensors cuDNN actually wrote (staged temporaries included) before they are copied back. `s`
 * holds the caller's temporaries too and is finished here (also when cuDNN declines).
 */
function run(rt: CudaRuntime, s: Scratch, spec: GraphSpec, label: string, scale: number, mode: AttentionMode,
  operands: [number, Placed, 'in' | 'out'][], stats: { t: Tensor; io: 'in' | 'out' },
  after?: (written: ReadonlyMap<number, Tensor>) => void): boolean {
  try {
    return runWith(rt, s, spec, label, scale, mode, operands, stats, after);
  } finally {
    s.finish();
  }
}

function runWith(rt: CudaRuntime, s: Scratch, spec: GraphSpec, label: string, scale: number, mode: AttentionMode,
  operands: [number, Placed, 'in' | 'out'][], stats: { t: Tensor; io: 'in' | 'out' },
  after?: (written: ReadonlyMap<number, Tensor>) => void): boolean {
  const cudnn = cudnnAttentionFor(rt);
  const plan = cudnn.prepare(spec, label);
  if ('reason' in plan) return decline(mode, label, plan.reason);
  const written = new Map<number, Tensor>();
  const copyBack: [Tensor, Tensor][] = [];
  const pointers = new Map<number, number>();
  for (const [uid, p, io] of operands) {
    let t = p.t;
    if (p.staged) {
      t = s.buffer(p.t, p.t.shape, p.t.dtype);
      if (io === 'in') copyInto(rt, p.t, t);
      else copyBack.push([t, p.t]);
    }
    pointers.set(uid, addressOf(t));
    written.set(uid, t);
  }
  let statsT = stats.t;
  if (!statsInPlace(stats.t)) {
    statsT = s.buffer(stats.t, stats.t.shape, 'float32');
    if (stats.io === 'in') copyInto(rt, stats.t, statsT);
    else copyBack.push([statsT, stats.t]);
  }
  pointers.set(UID.stats, addressOf(statsT));
  written.set(UID.stats, statsT);
  const total = plan.layout.total;
  const workspace = total > 0 ? addressOf(s.buffer(stats.t, [Math.ceil(total / 4)], 'float32')) : 0;
  cudnn.execute(spec, pointers, scale, workspace, label);
  after?.(written);
  for (const [src, dst] of copyBack) copyInto(rt, src, dst);
  return true;
}

/** out, lse = attention(q, k, v) through cuDNN; false: use our kernel. */
export function cudnnForward(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, args: AttentionArgs,
  mode: AttentionMode = attentionMode()): boolean {
  if (mode === 'ours') return false;
  const shape = shapeOf(q, k, v);
  const label = describeCall('forward', q.dtype, shape, args.mask !== null);
  const why = staticReason(rt, 'forward', q, [k, v, out], args);
  if (why !== null) return decline(mode, label, why);
  const [pq, pk, pv, po] = [place(q), place(k), place(v), place(out)];
  const s = new Scratch(rt);
  const bias = args.mask === null ? null : placeBias(rt, s, args.mask, shape);
  const spec = forwardGraph({
    dtype: q.dtype as IoDType, shape, q: pq.strides, k: pk.strides, v: pv.strides, o: po.strides, biasBatchStride: bias?.batchStride ?? null,
  });
  const operands: [number, Placed, 'in' | 'out'][] = [[UID.q, pq, 'in'], [UID.k, pk, 'in'], [UID.v, pv, 'in'], [UID.o, po, 'out']];
  if (bias) operands.push([UID.bias, bias.placed, 'in']);
  return run(rt, s, spec, label, args.scale, mode, operands, { t: lse, io: 'out' },
    bias ? (written) => emptyRows(rt, bias, written.get(UID.o)!, written.get(UID.stats)!, shape) : undefined);
}

/** gq, gk, gv from the saved forward through cuDNN; false: use our kernel. */
export function cudnnBackward(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gy: Tensor,
  gq: Tensor, gk: Tensor, gv: Tensor, args: AttentionArgs, mode: AttentionMode = attentionMode()): boolean {
  if (mode === 'ours') return false;
  const shape = shapeOf(q, k, v);
  const label = describeCall('backward', q.dtype, shape, args.mask !== null);
  const why = staticReason(rt, 'backward', q, [k, v, out, gy, gq, gk, gv], args);
  if (why !== null) return decline(mode, label, why);
  const [pq, pk, pv, po, pdo, pdq, pdk, pdv] = [q, k, v, out, gy, gq, gk, gv].map(place) as
    [Placed, Placed, Placed, Placed, Placed, Placed, Placed, Placed];
  const s = new Scratch(rt);
  const bias = args.mask === null ? null : placeBias(rt, s, args.mask, shape);
  const spec = backwardGraph({
    dtype: q.dtype as IoDType, shape, q: pq.strides, k: pk.strides, v: pv.strides, o: po.strides,
    dO: pdo.strides, dQ: pdq.strides, dK: pdk.strides, dV: pdv.strides, biasBatchStride: bias?.batchStride ?? null,
  });
  const operands: [number, Placed, 'in' | 'out'][] = [
    [UID.q, pq, 'in'], [UID.k, pk, 'in'], [UID.v, pv, 'in'], [UID.o, po, 'in'], [UID.dO, pdo, 'in'],
    [UID.dQ, pdq, 'out'], [UID.dK, pdk, 'out'], [UID.dV, pdv, 'out'],
  ];
  if (bias) operands.push([UID.bias, bias.placed, 'in']);
  const stats = bias ? backwardStats(rt, s, lse) : lse;
  return run(rt, s, spec, label, args.scale, mode, operands, { t: stats, io: 'in' });
}

/** The bias cuDNN reads: the mask's rows in place, or a copy on a padded row step. */
interface Bias {
  readonly placed: Placed;
  /** Element step between batch rows of placed.t (keys at stride 1). */
  readonly batchStride: number;
}

function placeBias(rt: CudaRuntime, s: Scratch, mask: Tensor, shape: SdpaShape): Bias {
  const item = itemSize(mask.dtype);
  const layout = maskLayout(mask.shape, mask.strides, addressOf(mask), item);
  if (layout.kind !== 'keys') throw new Error('cuDNN attention: placeBias got a mask that is not key padding (staticReason admits only those)');
  const { batch: b, lk } = shape;
  const unused: Strides4 = [0, 0, 0, 0];
  if (layout.batchStride !== null) return { placed: { t: mask, strides: unused, staged: false }, batchStride: layout.batchStride };
  const step = paddedKeys(lk, item);
  const buffer = s.buffer(mask, [b, step], mask.dtype);
  const rows = mask.withLayout([b, lk], [b === 1 ? 0 : mask.strides[0]!, lk === 1 ? 0 : mask.strides[3]!], mask.offset);
  const into = buffer.withLayout([b, lk], [step, 1], buffer.offset);
  copyInto(rt, rows, into);
  rows.dispose();
  into.dispose();
  return { placed: { t: buffer, strides: unused, staged: false }, batchStride: step };
}

/** Rows of H * Lq one block of cudnn_attn_empty_rows covers. */
export const EMPTY_ROWS_PER_BLOCK = 256;

/** Batch rows whose keys are all masked get O = 0 and lse = -inf (our kernel's result). */
function emptyRows(rt: CudaRuntime, bias: Bias, o: Tensor, lse: Tensor, shape: SdpaShape): void {
  const { batch, heads, lq, lk, e } = shape;
  const blocksPerBatch = Math.ceil((heads * lq) / EMPTY_ROWS_PER_BLOCK);
  if (batch * blocksPerBatch === 0) return;
  rt.params.begin().ptr(addressOf(bias.placed.t)).i64(bias.batchStride).i64(1).i32(lk)
    .ptr(addressOf(o)).i64(o.strides[0]!).i64(o.strides[1]!).i64(o.strides[2]!)
    .ptr(addressOf(lse)).i32(heads).i32(lq).i32(e).i32(EMPTY_ROWS_PER_BLOCK).i32(blocksPerBatch);
  rt.launch(rt.fn(CUDNN_ATTENTION_MODULE, `cudnn_attn_empty_rows_${DTYPE_SUFFIX[o.dtype]}`), batch * blocksPerBatch, 256);
}

/** lse with -inf turned into +inf, in a contiguous float32 temporary of `s`. */
function backwardStats(rt: CudaRuntime, s: Scratch, lse: Tensor): Tensor {
  const src = s.input(lse, 'float32');
  const out = s.buffer(lse, lse.shape, 'float32');
  const n = out.numel;
  if (n > 0) {
    rt.params.begin().ptr(addressOf(src)).ptr(addressOf(out)).i64(n);
    rt.launch(rt.fn(CUDNN_ATTENTION_MODULE, 'cudnn_attn_bwd_stats'), rt.gridFor(n), 256);
  }
  return out;
}
