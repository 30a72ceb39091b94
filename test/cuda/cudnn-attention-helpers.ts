/**
 * Shared by the cuDNN attention GPU tests (cudnn-attention.test.ts, cudnn-attention-masked.test.ts):
 * the skip decision, [B, H, L, E] operands (split heads or contiguous), error bounds, comparisons
 * with our kernel, and the two routes called directly.
 */
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { AttentionArgs } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import type { CudaBackend } from '../../src/backends/cuda/backend.js';
import { cudnnAttentionFor } from '../../src/backends/cuda/cudnn-attention/plan.js';
import { cudnnBackward, cudnnForward } from '../../src/backends/cuda/cudnn-attention/run.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { cudaSkip, randomCpu, realCuda } from './helpers.js';

export function backend(): CudaBackend {
  return getBackend('cuda') as CudaBackend;
}

export const skip: string | false = (() => {
  if (cudaSkip) return cudaSkip;
  if (!realCuda) return 'cuDNN attention needs the real CUDA backend (DIMBA_CUDA_TEST_FAKE=cpu has none)';
  const reason = cudnnAttentionFor(backend().runtime).unavailableReason();
  if (reason !== null) {
    console.log(`# cuDNN attention tests skipped: ${reason}`);
    return reason;
  }
  console.log(`# cuDNN ${cudnnAttentionFor(backend().runtime).stats().version} from ${backend().runtime.info.name}`);
  return false;
})();


export interface Case {
  readonly dtype: 'bfloat16' | 'float16';
  readonly b: number;
  readonly h: number;
  readonly l: number;
  readonly e: number;
  readonly split: boolean;
}


export const caseName = (c: Case) => `${c.dtype} [${c.b}, ${c.h}, ${c.l}, ${c.e}]${c.split ? ' split heads' : ' contiguous'}`;

/** [B, H, L, E] on the CPU and on CUDA; split: views of [B, L, H * E] rows (as the model's head split). */
export function heads(c: Case, scale = 1): [Tensor, Tensor] {
  if (!c.split) {
    const t = randomCpu([c.b, c.h, c.l, c.e], c.dtype, (v) => v * scale);
    return [t, t.to('cuda')];
  }
  const rows = randomCpu([c.b, c.l, c.h * c.e], c.dtype, (v) => v * scale);
  const view = (r: Tensor) => T.permute(T.reshape(r, [c.b, c.l, c.h, c.e]), [0, 2, 1, 3]);
  return [view(rows), view(rows.to('cuda'))];
}

/** An empty [B, H, L, E] output laid out like `like` (split heads stay [B, L, H, E] in storage, as the op does). */
export function emptyLike(like: Tensor): Tensor {
  const [b, h, l, e] = like.shape as [number, number, number, number];
  if (like.strides[2]! <= like.strides[1]!) return T.Tensor.empty([b, h, l, e], like.dtype, like.backend);
  const store = T.Tensor.empty([b, l, h, e], like.dtype, like.backend);
  return store.withLayout([b, h, l, e], [l * h * e, e, h * e, 1], 0);
}


export const firstHeads = (t: Tensor, hr: number) => T.narrow(t, 1, 0, hr).to('cpu').toFloat64Array();

/** Largest |a - e| / bound (exact where the bound is 0); asserts it is at most tol and returns it. */
export function assertBounded(what: string, actual: Float64Array, expected: Float64Array, bound: Float64Array, tol: number): number {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} elements, expected ${expected.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Number.isFinite(actual[i]!), `${what}[${i}] = ${actual[i]} (expected ${expected[i]})`);
    const d = Math.abs(actual[i]! - expected[i]!);
    if (bound[i] === 0) assert.equal(d, 0, `${what}[${i}]: ${actual[i]} where the value must be exactly ${expected[i]}`);
    else if (d / bound[i]! > worst) { worst = d / bound[i]!; at = i; }
  }
  assert.ok(worst <= tol, `${what}: error ${worst.toExponential(3)} x bound above ${tol.toExponential(3)} at [${at}]: `
    + `got ${actual[at]}, float64 ${expected[at]}, bound ${bound[at]}`);
  return worst;
}

export function assertLse(what: string, actual: Float64Array, expected: Float64Array): void {
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    assert.ok(Math.abs(actual[i]! - e) <= 1e-4 * (1 + Math.abs(e)), `${what}[${i}]: ${actual[i]} vs float64 ${e} (natural-log logsumexp of the scaled scores)`);
  }
}

/** Largest |a - b| over mean |b|: how far cuDNN and our kernel are apart on every head. */
export function relativeGap(a: Tensor, b: Tensor): number {
  const x = a.to('cpu').toFloat64Array();
  const y = b.to('cpu').toFloat64Array();
  let worst = 0;
  let mean = 0;
  for (let i = 0; i < y.length; i++) { worst = Math.max(worst, Math.abs(x[i]! - y[i]!)); mean += Math.abs(y[i]!); }
  return worst / (mean / y.length || 1);
}

/**
 * The largest per-head relative RMS difference ||a - b|| / ||b|| over [B, H, ...] heads. Two
 * correct bf16 results differ by rounding (~u per element, well under 1 %); a wrong head (scale,
 * transpose, a missed block) differs by the order of its values (~1). The max-abs / mean-abs gap
 * above is printed but not asserted on: a few large elements rounded differently dominate it.
 */
export function worstHeadRms(a: Tensor, b: Tensor): number {
  const x = a.to('cpu').toFloat64Array();
  const y = b.to('cpu').toFloat64Array();
  const heads = a.shape[0]! * a.shape[1]!;
  const per = y.length / heads;
  let worst = 0;
  for (let h = 0; h < heads; h++) {
    let d2 = 0;
    let y2 = 0;
    for (let i = h * per; i < (h + 1) * per; i++) { d2 += (x[i]! - y[i]!) ** 2; y2 += y[i]! ** 2; }
    worst = Math.max(worst, Math.sqrt(d2 / (y2 || 1)));
  }
  return worst;
}

export function withMode<R>(mode: string | undefined, fn: () => R): R {
  const before = process.env.DIMBA_ATTENTION;
  if (mode === undefined) delete process.env.DIMBA_ATTENTION;
  else process.env.DIMBA_ATTENTION = mode;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env.DIMBA_ATTENTION;
    else process.env.DIMBA_ATTENTION = before;
  }
}

export function executions(): number {
  return cudnnAttentionFor(backend().runtime).stats().plans.reduce((n, p) => n + p.executions, 0);
}

/** Every plan and every declined problem, for the log of a GPU run. */
export function printPlans(): void {
  const st = cudnnAttentionFor(backend().runtime).stats();
  for (const p of st.plans) {
    console.log(`# cuDNN plan ${p.key}: ${p.label}, workspace ${p.layout.total} B (cuDNN ${p.planWorkspace} B), built in ${p.buildMs.toFixed(0)} ms, `
      + `${p.executions} runs${p.notes.length ? `, ${p.notes.join(', ')}` : ''}`
      + `${p.tried.length > 1 ? `; tried ${p.tried.map((t) => `${t.label}${t.error ? ` (${t.error})` : ''}`).join('; ')}` : ''}`);
  }
  for (const u of st.unsupported) console.log(`# cuDNN declined ${u.key}: ${u.reason}`);
}

export interface Run { out: Tensor; lse: Tensor; gq: Tensor; gk: Tensor; gv: Tensor }

export function runOurs(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, args: AttentionArgs): Run {
  const fused = backend().fused;
  return withMode('ours', () => {
    const out = emptyLike(q);
    const lse = T.Tensor.empty(q.shape.slice(0, 3), 'float32', backend());
    fused.attention!(q, k, v, out, lse, args);
    const [gq, gk, gv] = [emptyLike(q), emptyLike(k), emptyLike(v)];
    fused.attentionBackward!(q, k, v, out, lse, dO, gq, gk, gv, args);
    return { out, lse, gq, gk, gv };
  });
}

export function runCudnn(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, args: AttentionArgs): Run {
  const rt = backend().runtime;
  const out = emptyLike(q);
  const lse = T.Tensor.empty(q.shape.slice(0, 3), 'float32', backend());
  try {
    assert.equal(cudnnForward(rt, q, k, v, out, lse, args, 'cudnn'), true, 'cuDNN took the forward');
  } finally {
    printPlans();
  }
  const [gq, gk, gv] = [emptyLike(q), emptyLike(k), emptyLike(v)];
  try {
    assert.equal(cudnnBackward(rt, q, k, v, out, lse, dO, gq, gk, gv, args, 'cudnn'), true, 'cuDNN took the backward');
  } finally {
    printPlans();
  }
  return { out, lse, gq, gk, gv };
}


/** float64 reference gradients of the first heads and their error bounds (each test's reference()). */
export interface GradReference {
  readonly dq: Float64Array; readonly dk: Float64Array; readonly dv: Float64Array;
  readonly dqB: Float64Array; readonly dkB: Float64Array; readonly dvB: Float64Array;
}

/**
 * Either backward after either forward (the two routes share lse's meaning): cuDNN's forward with
 * our backward, then ours with cuDNN's; the first two heads' gradients against `ref`.
 */
export function checkMixedRoutes(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, args: AttentionArgs, ref: GradReference): void {
  const u = 2 ** -8;
  const rt = backend().runtime;
  const fused = backend().fused;
  for (const [fwd, bwd] of [['cudnn', 'ours'], ['ours', 'cudnn']] as const) {
    const out = emptyLike(q);
    const lse = T.Tensor.empty(q.shape.slice(0, 3), 'float32', backend());
    if (fwd === 'cudnn') assert.ok(cudnnForward(rt, q, k, v, out, lse, args, 'cudnn'));
    else withMode('ours', () => fused.attention!(q, k, v, out, lse, args));
    const [gq, gk, gv] = [emptyLike(q), emptyLike(k), emptyLike(v)];
    if (bwd === 'cudnn') assert.ok(cudnnBackward(rt, q, k, v, out, lse, dO, gq, gk, gv, args, 'cudnn'));
    else withMode('ours', () => fused.attentionBackward!(q, k, v, out, lse, dO, gq, gk, gv, args));
    assertBounded(`${fwd} forward, ${bwd} backward: dq`, firstHeads(gq, 2), ref.dq, ref.dqB, 5 * u);
    assertBounded(`${fwd} forward, ${bwd} backward: dk`, firstHeads(gk, 2), ref.dk, ref.dkB, 5 * u);
    assertBounded(`${fwd} forward, ${bwd} backward: dv`, firstHeads(gv, 2), ref.dv, ref.dvB, 3.5 * u);
  }
}
