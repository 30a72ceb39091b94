/**
 * Which cuDNN graph an attention call runs, decided once per call signature: whether cuDNN takes
 * the call (spec.ts's rules), the graph spec and its plan. A signature is the numbers those
 * depend on (direction, sizes, dtypes, each operand's cuDNN strides and whether it must be
 * staged, the mask's layout); the cache (call-key.ts) finds the decision from them without
 * rebuilding the spec, its string key or the reason, which made every call pay for building a
 * graph description it already had a plan for.
 *
 * Pure TypeScript over tensors' shapes, strides and dtypes: cuDNN, the device and addresses come
 * through PlannerEnv, so the CPU tests check the cache against fresh decisions.
 */
import type { Tensor } from '../../../tensor/tensor.js';
import { itemSize } from '../../../tensor/dtype.js';
import { contiguousStrides } from '../../../tensor/shape.js';
import { DTYPE_CODE } from '../kernels/source.js';
import { CallCache, CallKey } from './call-key.js';
import {
  backwardGraph, cudnnOperand, cudnnUnsupportedReason, forwardGraph, maskLayout, paddedKeys,
  type Direction, type GraphSpec, type IoDType, type MaskLayout, type SdpaShape, type Strides4,
} from './spec.js';

/** How an operand reaches cuDNN: in place, or through a contiguous temporary. */
export interface Placed {
  readonly t: Tensor;
  readonly strides: Strides4;
  readonly staged: boolean;
}

export function place(t: Tensor, address: number): Placed {
  const direct = cudnnOperand(t.shape, t.strides, address, itemSize(t.dtype));
  if (direct) return { t, strides: direct, staged: false };
  const c = contiguousStrides(t.shape);
  return { t, strides: [c[0]!, c[1]!, c[2]!, c[3]!], staged: true };
}

export function shapeOf(q: Tensor, k: Tensor, v: Tensor): SdpaShape & { ev: number } {
  const [batch, heads, lq, e] = q.shape as [number, number, number, number];
  return { batch, heads, lq, lk: k.shape[2]!, e, ev: v.shape[3]! };
}

export function describeCall(direction: Direction, dtype: string, s: SdpaShape, masked = false): string {
  return `${direction} ${dtype} B${s.batch} H${s.heads} Lq${s.lq} Lk${s.lk} E${s.e}${masked ? ' masked' : ''}`;
}

/** What the decisions need from cuDNN and the device. */
export interface PlannerEnv<P> {
  /** cudnnGetVersion() (0 when cuDNN is not loaded). */
  version(): number;
  /** Compute capability, major * 10 + minor. */
  arch(): number;
  /** Why cuDNN cannot run in this process, or null. */
  unavailableReason(): string | null;
  /** The spec's plan (built on first use), or why no engine takes it; may throw (e.g. during capture). */
  prepare(spec: GraphSpec, label: string): { readonly plan: P } | { readonly reason: string };
  /** Address of a tensor's first element (alignment decides between in place and staged). */
  address(t: Tensor): number;
}

export type Decision<P> =
  | { readonly label: string; readonly reason: string }
  | { readonly label: string; readonly reason: null; readonly spec: GraphSpec; readonly plan: P };

export interface PlannedCall<P> {
  readonly decision: Decision<P>;
  /** The operands as given, placed; empty when the call is declined before looking at layouts. */
  readonly placed: readonly Placed[];
  /** Key padding's row step in the mask's memory (null: rows are copied to a padded buffer); null when unmasked. */
  readonly bias: { readonly batchStride: number | null } | null;
}

export interface PlannerStats {
  /** Calls whose signature was seen before, and those that were not. */
  readonly hits: number;
  readonly misses: number;
  /** Graph specs built (one per distinct signature cuDNN takes). */
  readonly specBuilds: number;
  readonly signatures: number;
}

/** Calls cuDNN may take, their decisions cached by signature. One per runtime (cuDNN version and device fixed). */
export class CallPlanner<P> {
  private readonly key = new CallKey(128);
  private readonly cache = new CallCache<Decision<P>>();
  private specBuilds = 0;

  constructor(private readonly env: PlannerEnv<P>) {}

  stats(): PlannerStats {
    return { hits: this.cache.hits, misses: this.cache.misses, specBuilds: this.specBuilds, signatures: this.cache.size };
  }

  /**
   * The decision for attention over `operands`: q, k, v, out for the forward; q, k, v, out, dO,
   * dQ, dK, dV for the backward. `mask` is the op's additive mask, expanded to [B, H, Lq, Lk].
   */
  plan(direction: Direction, operands: readonly Tensor[], mask: Tensor | null): PlannedCall<P> {
    const q = operands[0]!;
    if (operands.some((t) => t.ndim !== 4) || (mask !== null && (mask.ndim !== 4 || mask.backend !== q.backend))) {
      // Declined before any layout is looked at (and rare): no signature.
      const reason = this.staticReason(direction, operands, mask, null);
      if (reason !== null) return { decision: { label: this.label(direction, operands, mask), reason }, placed: [], bias: null };
    }
    const key = this.key.clear().push(direction === 'forward' ? 0 : 1);
    key.push4(q.shape).push(operands[1]!.shape[2]!).push(operands[2]!.shape[3]!);
    const placed: Placed[] = [];
    for (const t of operands) {
      const p = place(t, this.env.address(t));
      placed.push(p);
      key.push(DTYPE_CODE[t.dtype]).push(p.staged ? 1 : 0).push4(p.strides);
    }
    let layout: MaskLayout | null = null;
    if (mask === null) key.push(-1);
    else {
      layout = maskLayout(mask.shape, mask.strides, this.env.address(mask), itemSize(mask.dtype));
      key.push(DTYPE_CODE[mask.dtype]).push4(mask.shape).push(layout.kind === 'full' ? -2 : layout.batchStride ?? -1);
    }
    let decision = this.cache.get(key);
    if (decision === undefined) {
      // Not cached when this throws (a plan that cannot be built during capture): the next call tries again.
      decision = this.decide(direction, operands, placed, mask, layout);
      this.cache.set(key, decision);
    }
    const bias = layout !== null && layout.kind === 'keys' ? { batchStride: layout.batchStride } : null;
    return { decision, placed, bias };
  }

  private label(direction: Direction, operands: readonly Tensor[], mask: Tensor | null): string {
    return describeCall(direction, operands[0]!.dtype, shapeOf(operands[0]!, operands[1]!, operands[2]!), mask !== null);
  }

  private decide(direction: Direction, operands: readonly Tensor[], placed: readonly Placed[], mask: Tensor | null,
    layout: MaskLayout | null): Decision<P> {
    const label = this.label(direction, operands, mask);
    const reason = this.staticReason(direction, operands, mask, layout);
    if (reason !== null) return { label, reason };
    const q = operands[0]!;
    const shape = shapeOf(q, operands[1]!, operands[2]!);
    const s = placed.map((p) => p.strides);
    const biasBatchStride = layout === null ? null : (layout.kind === 'keys' ? layout.batchStride : null) ?? paddedKeys(shape.lk, itemSize(mask!.dtype));
    const problem = { dtype: q.dtype as IoDType, shape, q: s[0]!, k: s[1]!, v: s[2]!, o: s[3]!, biasBatchStride };
    const spec = direction === 'forward' ? forwardGraph(problem) : backwardGraph({ ...problem, dO: s[4]!, dQ: s[5]!, dK: s[6]!, dV: s[7]! });
    this.specBuilds++;
    const prepared = this.env.prepare(spec, label);
    if ('reason' in prepared) return { label, reason: prepared.reason };
    return { label, reason: null, spec, plan: prepared.plan };
  }

  /** Why not, before any plan: the call's kind, then whether cuDNN is here at all. */
  private staticReason(direction: Direction, operands: readonly Tensor[], mask: Tensor | null, layout: MaskLayout | null): string | null {
    const q = operands[0]!;
    const others = operands.slice(1);
    if (q.ndim !== 4 || others.some((t) => t.ndim !== 4)) return 'q, k, v must be [B, H, L, E]';
    const shape = shapeOf(q, others[0]!, others[1]!);
    if (mask !== null && (mask.ndim !== 4 || mask.shape[0] !== shape.batch || mask.shape[3] !== shape.lk)) {
      return `mask of shape [${mask.shape.join(', ')}] (expected [B, H, Lq, Lk] = [${shape.batch}, ${shape.heads}, ${shape.lq}, ${shape.lk}])`;
    }
    if (mask !== null && mask.backend !== q.backend) return `mask is on ${mask.deviceName}, q on ${q.deviceName}`;
    const keys = mask === null ? false
      : (layout ?? maskLayout(mask.shape, mask.strides, this.env.address(mask), itemSize(mask.dtype))).kind === 'keys';
    const reason = cudnnUnsupportedReason({
      direction, dtype: q.dtype, otherDTypes: others.map((t) => t.dtype), shape, mask: mask === null ? null : { dtype: mask.dtype, keyPadding: keys },
      version: this.env.version(), arch: this.env.arch(),
    });
    if (reason !== null) return reason;
    return this.env.unavailableReason();
  }
}
