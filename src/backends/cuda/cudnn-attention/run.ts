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
 *
 * Per call, the host work is what the call's addresses need: the decision, spec and plan come
 * from calls.ts's cache by the call's signature, the workspace (and the masked backward's Stats)
 * is one block from the caching allocator (no tensor objects), and the variant pack is written
 * from the plan's precomputed slots (plan.ts).
 */
import type { AttentionArgs } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { itemSize, type DType } from '../../../tensor/dtype.js';
import type { Block } from '../allocator.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { copyInto } from '../kernels/copy.js';
import { Scratch } from '../kernels/scratch.js';
import { CUDNN_ATTENTION_MODULE, DTYPE_SUFFIX } from '../kernels/source.js';
import { cudnnAttentionFor, type CudnnAttention, type PlanHandle } from './plan.js';
import { CallPlanner, type Placed, type PlannerStats } from './calls.js';
import { attentionMode, paddedKeys, UID, WORKSPACE_ALIGNMENT, type AttentionMode, type SdpaShape } from './spec.js';

export { describeCall } from './calls.js';

/** One runtime's route: its cuDNN, the decisions by call signature, and per-call scratch that is reused. */
interface Route {
  readonly cudnn: CudnnAttention;
  readonly planner: CallPlanner<PlanHandle>;
  /** Device address by uid for the call being run (0: not given). */
  readonly addresses: Float64Array;
  /** The fix-up kernels' function handles (rt.fn builds a string key per lookup). */
  readonly emptyRowsFns: Partial<Record<DType, number>>;
  bwdStatsFn: number;
}

const routes = new WeakMap<CudaRuntime, Route>();

function routeFor(rt: CudaRuntime): Route {
  let r = routes.get(rt);
  if (r === undefined) {
    const cudnn = cudnnAttentionFor(rt);
    const planner = new CallPlanner<PlanHandle>({
      version: () => cudnn.version(),
      arch: () => rt.info.arch,
      unavailableReason: () => cudnn.unavailableReason(),
      prepare: (spec, label) => {
        const built = cudnn.prepare(spec, label);
        return 'reason' in built ? { reason: built.reason } : { plan: built };
      },
      address: addressOf,
    });
    r = { cudnn, planner, addresses: new Float64Array(64), emptyRowsFns: {}, bwdStatsFn: 0 };
    routes.set(rt, r);
  }
  return r;
}

/** Hits, misses and spec builds of the runtime's call cache (what the cache tests and benchmarks read). */
export function cudnnCallStats(rt: CudaRuntime): PlannerStats {
  return routeFor(rt).planner.stats();
}

/** false (auto) or a thrown error (cudnn) for a call cuDNN does not take. */
function decline(mode: AttentionMode, label: string, reason: string): false {
  if (mode === 'cudnn') throw new Error(`DIMBA_ATTENTION=cudnn, but cuDNN attention cannot take ${label}: ${reason}`);
  return false;
}

/** The tensor cuDNN reads for an input: itself, or a contiguous copy. */
function input(rt: CudaRuntime, s: Scratch, p: Placed): Tensor {
  if (!p.staged) return p.t;
  const t = s.buffer(p.t, p.t.shape, p.t.dtype);
  copyInto(rt, p.t, t);
  return t;
}

/** The tensor cuDNN writes for an output: itself, or a contiguous temporary queued for copying back. */
function output(s: Scratch, p: Placed, copyBack: [Tensor, Tensor][]): Tensor {
  if (!p.staged) return p.t;
  const t = s.buffer(p.t, p.t.shape, p.t.dtype);
  copyBack.push([t, p.t]);
  return t;
}

/** lse / Stats: float32 [B, H, Lq] contiguous from a 16-byte boundary, else staged. */
function statsInPlace(lse: Tensor): boolean {
  return lse.dtype === 'float32' && lse.isContiguous && addressOf(lse) % 16 === 0;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * The route's address slots cleared and q, k, v placed (staged where their layout needs it);
 * copyBack collects the outputs that must be copied from staging once the plan has run.
 */
function qkvAddresses(rt: CudaRuntime, route: Route, s: Scratch, pq: Placed, pk: Placed, pv: Placed): { a: Float64Array; copyBack: [Tensor, Tensor][] } {
  const a = route.addresses.fill(0);
  a[UID.q] = addressOf(input(rt, s, pq));
  a[UID.k] = addressOf(input(rt, s, pk));
  a[UID.v] = addressOf(input(rt, s, pv));
  return { a, copyBack: [] };
}

/** out, lse = attention(q, k, v) through cuDNN; false: use our kernel. */
export function cudnnForward(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, args: AttentionArgs,
  mode: AttentionMode = attentionMode()): boolean {
  if (mode === 'ours') return false;
  const route = routeFor(rt);
  const call = route.planner.plan('forward', [q, k, v, out], args.mask);
  const d = call.decision;
  if (d.reason !== null) return decline(mode, d.label, d.reason);
  const [pq, pk, pv, po] = call.placed as [Placed, Placed, Placed, Placed];
  const shape = sdpaShape(q, k);
  const s = new Scratch(rt);
  let block: Block | null = null;
  try {
    const { a, copyBack } = qkvAddresses(rt, route, s, pq, pk, pv);
    const o = output(s, po, copyBack);
    a[UID.o] = addressOf(o);
    let stats = lse;
    if (!statsInPlace(lse)) {
      stats = s.buffer(lse, lse.shape, 'float32');
      copyBack.push([stats, lse]);
    }
    a[UID.stats] = addressOf(stats);
    const bias = call.bias ? placeBias(rt, s, args.mask!, call.bias.batchStride, shape) : null;
    if (bias) a[UID.bias] = addressOf(bias.t);
    block = rt.allocator.alloc(d.plan.info.layout.total);
    route.cudnn.execute(d.plan, a, args.scale, block.address, d.label);
    if (bias) emptyRows(rt, route, bias, o, stats, shape);
    for (const [src, dst] of copyBack) copyInto(rt, src, dst);
    return true;
  } finally {
    if (block) rt.allocator.release(block);
    s.finish();
  }
}

/** gq, gk, gv from the saved forward through cuDNN; false: use our kernel. */
export function cudnnBackward(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, gy: Tensor,
  gq: Tensor, gk: Tensor, gv: Tensor, args: AttentionArgs, mode: AttentionMode = attentionMode()): boolean {
  if (mode === 'ours') return false;
  const route = routeFor(rt);
  const call = route.planner.plan('backward', [q, k, v, out, gy, gq, gk, gv], args.mask);
  const d = call.decision;
  if (d.reason !== null) return decline(mode, d.label, d.reason);
  const [pq, pk, pv, po, pdo, pdq, pdk, pdv] = call.placed as [Placed, Placed, Placed, Placed, Placed, Placed, Placed, Placed];
  const shape = sdpaShape(q, k);
  const s = new Scratch(rt);
  let block: Block | null = null;
  try {
    const { a, copyBack } = qkvAddresses(rt, route, s, pq, pk, pv);
    a[UID.o] = addressOf(input(rt, s, po));
    a[UID.dO] = addressOf(input(rt, s, pdo));
    a[UID.dQ] = addressOf(output(s, pdq, copyBack));
    a[UID.dK] = addressOf(output(s, pdk, copyBack));
    a[UID.dV] = addressOf(output(s, pdv, copyBack));
    const bias = call.bias ? placeBias(rt, s, args.mask!, call.bias.batchStride, shape) : null;
    if (bias) a[UID.bias] = addressOf(bias.t);
    const total = d.plan.info.layout.total;
    // The masked backward's Stats (-inf turned into +inf) go after the workspace, in the same block.
    const statsAt = alignUp(total, WORKSPACE_ALIGNMENT);
    block = rt.allocator.alloc(bias ? statsAt + lse.numel * 4 : total);
    if (bias) {
      a[UID.stats] = block.address + statsAt;
      backwardStats(rt, route, s, lse, a[UID.stats]);
    } else if (statsInPlace(lse)) {
      a[UID.stats] = addressOf(lse);
    } else {
      const staged = s.buffer(lse, lse.shape, 'float32');
      copyInto(rt, lse, staged);
      a[UID.stats] = addressOf(staged);
    }
    route.cudnn.execute(d.plan, a, args.scale, block.address, d.label);
    for (const [src, dst] of copyBack) copyInto(rt, src, dst);
    return true;
  } finally {
    if (block) rt.allocator.release(block);
    s.finish();
  }
}

function sdpaShape(q: Tensor, k: Tensor): SdpaShape {
  const [batch, heads, lq, e] = q.shape as [number, number, number, number];
  return { batch, heads, lq, lk: k.shape[2]!, e };
}

/** The bias cuDNN reads: the mask's rows in place, or a copy on a padded row step. */
interface Bias {
  readonly t: Tensor;
  /** Element step between batch rows of t (keys at stride 1). */
  readonly batchStride: number;
}

/** `batchStride`: the row step cuDNN reads the mask's own memory with, or null to copy its rows to a padded buffer. */
function placeBias(rt: CudaRuntime, s: Scratch, mask: Tensor, batchStride: number | null, shape: SdpaShape): Bias {
  if (batchStride !== null) return { t: mask, batchStride };
  const { batch: b, lk } = shape;
  const step = paddedKeys(lk, itemSize(mask.dtype));
  const buffer = s.buffer(mask, [b, step], mask.dtype);
  const rows = mask.withLayout([b, lk], [b === 1 ? 0 : mask.strides[0]!, lk === 1 ? 0 : mask.strides[3]!], mask.offset);
  const into = buffer.withLayout([b, lk], [step, 1], buffer.offset);
  copyInto(rt, rows, into);
  rows.dispose();
  into.dispose();
  return { t: buffer, batchStride: step };
}

/** Rows of H * Lq one block of cudnn_attn_empty_rows covers. */
export const EMPTY_ROWS_PER_BLOCK = 256;

/** Batch rows whose keys are all masked get O = 0 and lse = -inf (our kernel's result). */
function emptyRows(rt: CudaRuntime, route: Route, bias: Bias, o: Tensor, lse: Tensor, shape: SdpaShape): void {
  const { batch, heads, lq, lk, e } = shape;
  const blocksPerBatch = Math.ceil((heads * lq) / EMPTY_ROWS_PER_BLOCK);
  if (batch * blocksPerBatch === 0) return;
  const fn = route.emptyRowsFns[o.dtype] ??= rt.fn(CUDNN_ATTENTION_MODULE, `cudnn_attn_empty_rows_${DTYPE_SUFFIX[o.dtype]}`);
  rt.params.begin().ptr(addressOf(bias.t)).i64(bias.batchStride).i64(1).i32(lk)
    .ptr(addressOf(o)).i64(o.strides[0]!).i64(o.strides[1]!).i64(o.strides[2]!)
    .ptr(addressOf(lse)).i32(heads).i32(lq).i32(e).i32(EMPTY_ROWS_PER_BLOCK).i32(blocksPerBatch);
  rt.launch(fn, batch * blocksPerBatch, 256);
}

/** lse with -inf turned into +inf, written as contiguous float32 at device address `into`. */
function backwardStats(rt: CudaRuntime, route: Route, s: Scratch, lse: Tensor, into: number): void {
  const src = s.input(lse, 'float32');
  const n = src.numel;
  if (n === 0) return;
  route.bwdStatsFn ||= rt.fn(CUDNN_ATTENTION_MODULE, 'cudnn_attn_bwd_stats');
  rt.params.begin().ptr(addressOf(src)).ptr(into).i64(n);
  rt.launch(route.bwdStatsFn, rt.gridFor(n), 256);
}
