/**
 * Launchers for attention.cu: the fused (flash) attention forward and backward, registered as the
 * CUDA backend's FusedKernels. They take bfloat16 / float16 q, k, v with equal head dims, a
 * multiple of 8 up to 128; other calls are declined through attentionSupports and compose (see
 * attention-plan.ts). Operands whose (batch, head, row) strides keep 16-byte rows are read and
 * written in place (no copy for the [B, L, H, E] views that splitting heads produces).
 *
 * DIMBA_FLASH=0 in the environment leaves the fused kernels out (the composed path runs).
 *
 * cuDNN's fused attention (cudnn-attention/) takes the calls it applies to first: bfloat16 /
 * float16, unmasked or with a key-padding mask (one row of Lk per batch, cuDNN's bias), with cuDNN
 * >= 9.13 (DIMBA_ATTENTION=auto, the default). DIMBA_ATTENTION=ours
 * keeps every call on our kernel; DIMBA_ATTENTION=cudnn makes a call cuDNN cannot take an error
 * naming the reason. The environment is read per call, so tests can switch it.
 */
import type { AttentionArgs, FusedKernels } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { formatShape } from '../../../tensor/shape.js';
import { check } from '../ffi/driver.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { copyKernels } from './copy.js';
import { Scratch } from './scratch.js';
import { ATTENTION_MODULE } from './source.js';
import { cudnnBackward, cudnnForward } from '../cudnn-attention/run.js';
import { attentionMode } from '../cudnn-attention/spec.js';
import {
  DEFAULT_SHARED_BYTES, headStrides, maskKind, maskStrides, planAttention, unsupportedReason, MASK_NONE,
  type AttentionPlan, type AttentionShape, type FlashDType,
} from './attention-plan.js';


const LOG2E = Math.LOG2E;
/** CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (cuda.h). */
const MAX_DYNAMIC_SHARED = 8;

/** Whether the environment switches the fused kernels off (DIMBA_FLASH=0). */
export function flashDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DIMBA_FLASH === '0';
}

function shapeOf(q: Tensor, k: Tensor, v: Tensor): AttentionShape {
  const [batch, heads, lq, e] = q.shape as [number, number, number, number];
  return { batch, heads, lq, lk: k.shape[2]!, e, ev: v.shape[3]! };
}

/** Why this call cannot run fused, or null. */
export function flashUnsupportedReason(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, args: AttentionArgs): string | null {
  for (const [name, t] of [['k', k], ['v', v]] as const) {
    if (t.dtype !== q.dtype) return `${name} is ${t.dtype}, q ${q.dtype}`;
    if (t.backend !== q.backend) return `${name} is on ${t.deviceName}, q on ${q.deviceName}`;
  }
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) return 'q, k, v must be [B, H, L, E]';
  if (args.mask && args.mask.backend !== q.backend) return `mask is on ${args.mask.deviceName}, q on ${q.deviceName}`;
  const info = rt.info;
  return unsupportedReason(q.dtype, shapeOf(q, k, v), args.mask?.dtype ?? null, {
    arch: info.arch, multiprocessors: info.multiprocessors, maxSharedPerBlock: info.maxSharedMemoryPerBlockOptin,
  });
}

interface HeadOperand {
  readonly t: Tensor;
  readonly strides: [number, number, number];
}

/** `t` itself when the kernels can address it, else a contiguous copy (disposed by s.finish()). */
function readable(s: Scratch, t: Tensor): HeadOperand {
  const direct = headStrides(t.shape, t.strides, t.offset);
  if (direct) return { t, strides: direct };
  const c = s.input(t);
  return { t: c, strides: headStrides(c.shape, c.strides, c.offset)! };
}

/** `t` itself when the kernels can write it in place, else a contiguous temporary copied back by s.finish(). */
function writable(s: Scratch, t: Tensor): HeadOperand {
  const direct = headStrides(t.shape, t.strides, t.offset);
  if (direct) return { t, strides: direct };
  const c = s.output(t, t.dtype);
  return { t: c, strides: headStrides(c.shape, c.strides, c.offset)! };
}

function checkMask(args: AttentionArgs, shape: AttentionShape): void {
  const m = args.mask;
  if (!m) return;
  const want = [shape.batch, shape.heads, shape.lq, shape.lk];
  if (m.ndim !== 4 || m.shape.some((s, i) => s !== want[i])) {
    throw new TypeError(`fused attention: the mask must be expanded to [B, H, Lq, Lk] = ${formatShape(want)}, got ${formatShape(m.shape)}`);
  }
}

export function attentionKernels(runtime: () => CudaRuntime, env: NodeJS.ProcessEnv = process.env): FusedKernels {
  if (flashDisabled(env)) return {};
  const optedIn = new Set<number>();
  let setAttribute: ((fn: number, attribute: number, value: number) => number) | null = null;

  /** The kernel's function handle, allowed `bytes` of dynamic shared memory (above 48 KiB needs opting in). */
  function kernel(rt: CudaRuntime, name: string, bytes: number): number {
    const fn = rt.fn(ATTENTION_MODULE, name);
    if (bytes > DEFAULT_SHARED_BYTES && !optedIn.has(fn)) {
      // Bound here rather than in ffi/driver.ts: only these kernels need more than 48 KiB.
      setAttribute ??= rt.api.library.handle.func('cuFuncSetAttribute', 'int', ['uintptr_t', 'int', 'int']) as
        (fn: number, attribute: number, value: number) => number;
      check(rt.api, `cuFuncSetAttribute(${name}, max dynamic shared ${bytes})`, setAttribute(fn, MAX_DYNAMIC_SHARED, bytes));
      optedIn.add(fn);
    }
    return fn;
  }

  function prepare(rt: CudaRuntime, q: Tensor, k: Tensor, v: Tensor, args: AttentionArgs): { shape: AttentionShape; plan: AttentionPlan } {
    const reason = flashUnsupportedReason(rt, q, k, v, args);
    if (reason) throw new TypeError(`fused attention cannot take this call: ${reason} (ops check attentionSupports first)`);
    const shape = shapeOf(q, k, v);
    checkMask(args, shape);
    return { shape, plan: planAttention(q.dtype as FlashDType, shape, rt.info.multiprocessors) };
  }

  function maskParams(args: AttentionArgs): { address: number; kind: number; strides: [number, number, number, number] } {
    const m = args.mask;
    if (!m) return { address: 0, kind: MASK_NONE, strides: [0, 0, 0, 0] };
    return { address: addressOf(m), kind: maskKind(m), strides: maskStrides(m) };
  }

  return {
    attentionSupports(q, k, v, args) {
      return flashUnsupportedReason(runtime(), q, k, v, args) === null;
    },

    attention(q0, k0, v0, out0, lse0, args) {
      const rt = runtime();
      rt.activate();
      if (cudnnForward(rt, q0, k0, v0, out0, lse0, args, attentionMode(env))) return;
      const { shape, plan } = prepare(rt, q0, k0, v0, args);
      const { heads, lq, lk, e } = shape;
      if (plan.forward.grid === 0) return;
      const s = new Scratch(rt);
      const q = readable(s, q0);
      const k = readable(s, k0);
      const v = readable(s, v0);
      const out = writable(s, out0);
      const lse = s.output(lse0, 'float32');
      const mask = maskParams(args);
      const f = plan.forward;
      rt.params.begin().ptr(addressOf(q.t)).ptr(addressOf(k.t)).ptr(addressOf(v.t)).ptr(addressOf(out.t)).ptr(addressOf(lse))
        .ptr(mask.address).i64Struct(q.strides).i64Struct(k.strides).i64Struct(v.strides).i64Struct(out.strides)
        .i64Struct(mask.strides).i32(heads).i32(lq).i32(lk).i32(e).f32(args.scale * LOG2E).i32(mask.kind);
      rt.launch(kernel(rt, f.kernel, f.sharedBytes), f.grid, f.threads, f.sharedBytes);
      s.finish();
    },

    attentionBackward(q0, k0, v0, out0, lse0, gy0, gq0, gk0, gv0, args) {
      const rt = runtime();
      rt.activate();
      if (cudnnBackward(rt, q0, k0, v0, out0, lse0, gy0, gq0, gk0, gv0, args, attentionMode(env))) return;
      const { shape, plan } = prepare(rt, q0, k0, v0, args);
      const { batch, heads, lq, lk, e } = shape;
      const fill = copyKernels(rt).fill;
      const rows = batch * heads * lq;
      if (rows === 0 || lk === 0) {
        // No queries: dK = dV = 0. No keys: the output was 0 whatever q was, so dQ = 0.
        for (const t of [gq0, gk0, gv0]) if (t.numel > 0) fill(t, 0);
        return;
      }
      const s = new Scratch(rt);
      const q = readable(s, q0);
      const k = readable(s, k0);
      const v = readable(s, v0);
      const out = readable(s, out0);
      const gy = readable(s, gy0);
      const lse = s.input(lse0, 'float32');
      const gq = writable(s, gq0);
      const gk = writable(s, gk0);
      const gv = writable(s, gv0);
      const mask = maskParams(args);
      const b = plan.backward;
      const stats = s.buffer(lse, [2 * rows], 'float32');
      const dqAcc = b.dqDirect ? null : s.buffer(lse, [rows * e], 'float32');
      const statsAddress = addressOf(stats);

      const p = plan.prep;
      rt.params.begin().ptr(addressOf(out.t)).ptr(addressOf(gy.t)).ptr(addressOf(lse)).ptr(statsAddress).ptr(dqAcc ? addressOf(dqAcc) : 0)
        .i64Struct(out.strides).i64Struct(gy.strides).i32(heads).i32(lq).i32(e).i64(rows);
      rt.launch(rt.fn(ATTENTION_MODULE, p.kernel), p.grid, p.threads);

      const split = b.splits > 1;
      const keyRows = batch * heads * lk;
      const dkAcc = split ? s.buffer(lse, [keyRows * e], 'float32', true) : null;
      const dvAcc = split ? s.buffer(lse, [keyRows * e], 'float32', true) : null;
      rt.params.begin().ptr(addressOf(q.t)).ptr(addressOf(k.t)).ptr(addressOf(v.t)).ptr(addressOf(gy.t))
        .ptr(statsAddress).ptr(statsAddress + rows * 4).ptr(dqAcc ? addressOf(dqAcc) : 0)
        .ptr(addressOf(gq.t)).ptr(addressOf(gk.t)).ptr(addressOf(gv.t)).ptr(dkAcc ? addressOf(dkAcc) : 0).ptr(dvAcc ? addressOf(dvAcc) : 0)
        .ptr(mask.address).i64Struct(q.strides).i64Struct(k.strides).i64Struct(v.strides).i64Struct(gy.strides).i64Struct(gq.strides)
        .i64Struct(gk.strides).i64Struct(gv.strides).i64Struct(mask.strides).i32(heads).i32(lq).i32(lk).i32(e)
        .f32(args.scale * LOG2E).f32(args.scale).i32(mask.kind).i32(b.splits).i32(b.dqDirect ? 1 : 0);
      rt.launch(kernel(rt, b.kernel, b.sharedBytes), b.grid, b.threads, b.sharedBytes);

      const convert = (acc: Tensor, dst: HeadOperand, len: number, scale: number) => {
        const pairs = batch * heads * len * (e / 2);
        rt.params.begin().ptr(addressOf(acc)).ptr(addressOf(dst.t)).i64Struct(dst.strides).i32(heads).i32(len).i32(e).f32(scale).i64(pairs);
        rt.launch(rt.fn(ATTENTION_MODULE, plan.convert), rt.gridFor(pairs), 256);
      };
      if (dqAcc) convert(dqAcc, gq, lq, args.scale);
      if (dkAcc && dvAcc) {
        convert(dkAcc, gk, lk, 1);
        convert(dvAcc, gv, lk, 1);
      }
      s.finish();
    },
  };
}
