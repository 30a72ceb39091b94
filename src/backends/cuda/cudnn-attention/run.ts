/**
 * The cuDNN route of the CUDA fused attention (kernels/attention.ts calls these first): decide
 * whether cuDNN takes the call (spec.ts), build or look up its plan (plan.ts), stage operands it
 * cannot address in place, and execute. Each returns false when the call should go to our kernel
 * (DIMBA_ATTENTION=auto), and throws naming the reason under DIMBA_ATTENTION=cudnn.
 *
 * Operands are used in place when cuDNN can address them (E stride 1, 16-byte steps and address),
 * which covers the [B, L, H, E] views the model's head split makes; anything else is copied into a
 * contiguous temporary (outputs copied back), so a layout never decides between the two paths.
 */
import type { AttentionArgs } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { contiguousStrides } from '../../../tensor/shape.js';
import { itemSize } from '../../../tensor/dtype.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { copyInto } from '../kernels/copy.js';
import { Scratch } from '../kernels/scratch.js';
import { cudnnAttentionFor } from './plan.js';
import {
  attentionMode, backwardGraph, cudnnOperand, cudnnUnsupportedReason, forwardGraph, UID, type AttentionMode, type Direction,
  type GraphSpec, type IoDType, type SdpaShape, type Strides4,
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

export function describeCall(direction: Direction, dtype: string, s: SdpaShape): string {
  return `${direction} ${dtype} B${s.batch} H${s.heads} Lq${s.lq} Lk${s.lk} E${s.e}`;
}

/** false (auto) or a thrown error (cudnn) for a call cuDNN does not take. */
function decline(mode: AttentionMode, label: string, reason: string): false {
  if (mode === 'cudnn') throw new Error(`DIMBA_ATTENTION=cudnn, but cuDNN attention cannot take ${label}: ${reason}`);
  return false;
}

/** Why not, before any plan: the call's kind, then whether cuDNN is here at all. */
function staticReason(rt: CudaRuntime, direction: Direction, q: Tensor, others: Tensor[], args: AttentionArgs): string | null {
  if (q.ndim !== 4 || others.some((t) => t.ndim !== 4)) return 'q, k, v must be [B, H, L, E]';
  // Masked calls never load cuDNN.
  if (args.mask !== null) return 'a mask or key padding (the cuDNN graphs here are unmasked)';
  const [k, v] = others as [Tensor, Tensor];
  const reason = cudnnUnsupportedReason({
    direction, dtype: q.dtype, otherDTypes: others.map((t) => t.dtype), shape: shapeOf(q, k, v), masked: args.mask !== null,
    version: cudnnAttentionFor(rt).version(), arch: rt.info.arch,
  });
  if (reason !== null) return reason;
  return cudnnAttentionFor(rt).unavailableReason();
}

/** Builds (or finds) the plan, stages operands, allocates the workspace and runs. */
function run(rt: CudaRuntime, spec: GraphSpec, label: string, scale: number, mode: AttentionMode,
  operands: [number, Placed, 'in' | 'out'][], stats: { t: Tensor; io: 'in' | 'out' }): boolean {
  const cudnn = cudnnAttentionFor(rt);
  const plan = cudnn.prepare(spec, label);
  if ('reason' in plan) return decline(mode, label, plan.reason);
  const s = new Scratch(rt);
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
  }
  let statsT = stats.t;
  if (!statsInPlace(stats.t)) {
    statsT = s.buffer(stats.t, stats.t.shape, 'float32');
    if (stats.io === 'in') copyInto(rt, stats.t, statsT);
    else copyBack.push([statsT, stats.t]);
  }
  pointers.set(UID.stats, addressOf(statsT));
  const total = plan.layout.total;
  const workspace = total > 0 ? addressOf(s.buffer(stats.t, [Math.ceil(total / 4)], 'float32')) : 0;
  cudnn.execute(spec, pointers, scale, workspace, label);
  for (const [src, dst] of copyBack) copyInto(rt, src, dst);
  s.finish();
  return true;
}

/** out, lse = attention(q, k, v) through cuDNN; false: use our kernel. */
export function cudnnForward(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, args: AttentionArgs,
  mode: AttentionMode = attentionMode()): boolean {
  if (mode === 'ours') return false;
  const shape = shapeOf(q, k, v);
  const label = describeCall('forward', q.dtype, shape);
  const why = staticReason(rt, 'forward', q, [k, v, out], args);
  if (why !== null) return decline(mode, label, why);
  const [pq, pk, pv, po] = [place(q), place(k), place(v), place(out)];
  const spec = forwardGraph({ dtype: q.dtype as IoDType, shape, q: pq.strides, k: pk.strides, v: pv.strides, o: po.strides });
  return run(rt, spec, label, args.scale, mode, [[UID.q, pq, 'in'], [UID.k, pk, 'in'], [UID.v, pv, 'in'], [UID.o, po, 'out']],
    { t: lse, io: 'out' });
}

/** gq, gk, gv from the saved forward through cuDNN; false: use our kernel. */
export function cudnnBackward(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gy: Tensor,
  gq: Tensor, gk: Tensor, gv: Tensor, args: AttentionArgs, mode: AttentionMode = attentionMode()): boolean {
  if (mode === 'ours') return false;
  const shape = shapeOf(q, k, v);
  const label = describeCall('backward', q.dtype, shape);
  const why = staticReason(rt, 'backward', q, [k, v, out, gy, gq, gk, gv], args);
  if (why !== null) return decline(mode, label, why);
  const [pq, pk, pv, po, pdo, pdq, pdk, pdv] = [q, k, v, out, gy, gq, gk, gv].map(place) as
    [Placed, Placed, Placed, Placed, Placed, Placed, Placed, Placed];
  const spec = backwardGraph({
    dtype: q.dtype as IoDType, shape, q: pq.strides, k: pk.strides, v: pv.strides, o: po.strides,
    dO: pdo.strides, dQ: pdq.strides, dK: pdk.strides, dV: pdv.strides,
  });
  return run(rt, spec, label, args.scale, mode, [
    [UID.q, pq, 'in'], [UID.k, pk, 'in'], [UID.v, pv, 'in'], [UID.o, po, 'in'], [UID.dO, pdo, 'in'],
    [UID.dQ, pdq, 'out'], [UID.dK, pdk, 'out'], [UID.dV, pdv, 'out'],
  ], { t: lse, io: 'in' });
}
