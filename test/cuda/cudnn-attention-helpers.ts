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
import { assign_ } from '../../src/ops/inplace.js';
import type { CudaGraph } from '../../src/backends/cuda/graph.js';
import { assertBounded, cudaSkip, randomCpu, realCuda } from './helpers.js';

export { assertBounded };

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

/** Natural-log logsumexp per row against float64; -inf exactly where every key is masked. */
export function assertLse(what: string, actual: Float64Array, expected: Float64Array): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} rows, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    if (e === -Infinity) assert.equal(actual[i], -Infinity, `${what}[${i}]: ${actual[i]} for a row with every key masked (our kernel's -inf)`);
    else assert.ok(Math.abs(actual[i]! - e) <= 1e-4 * (1 + Math.abs(e)), `${what}[${i}]: ${actual[i]} vs float64 ${e} (natural-log logsumexp of the scaled scores)`);
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
  return withMode('ours', () => fusedStep(q, k, v, dO, args));
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
 * dq, dk, dv of the first `hr` heads within 5, 5 and 3.5 times their bounds (u: the dtype's unit
 * roundoff); returns the worst error of each in multiples of the bound.
 */
export function assertGradsBounded(what: string, g: { gq: Tensor; gk: Tensor; gv: Tensor }, ref: GradReference, hr: number, u: number): { dq: number; dk: number; dv: number } {
  return {
    dq: assertBounded(`${what} dq`, firstHeads(g.gq, hr), ref.dq, ref.dqB, 5 * u),
    dk: assertBounded(`${what} dk`, firstHeads(g.gk, hr), ref.dk, ref.dkB, 5 * u),
    dv: assertBounded(`${what} dv`, firstHeads(g.gv, hr), ref.dv, ref.dvB, 3.5 * u),
  };
}

/** float64 forward and gradients of the first heads with their error bounds (each test's reference()). */
export interface AttentionReference extends GradReference {
  readonly out: Float64Array; readonly lse: Float64Array; readonly outB: Float64Array;
}

/**
 * float64 attention of [B, H, L, E] operands (already float64) with an optional additive bias,
 * its gradients for the upstream gradient dO, and error bounds: each value's sum of absolute
 * terms (the bound's unit is the roundoff of the kernel's dtype).
 */
export function attentionReference(q64: Tensor, k64: Tensor, v64: Tensor, dO64: Tensor, scale: number, bias: Tensor | null = null): AttentionReference {
  return T.noGrad(() => {
    const scores = T.mul(T.matmul(q64, T.transpose(k64, -2, -1)), scale);
    const s = bias ? T.add(scores, bias) : scores;
    const m = T.max(s, -1, true);
    const lse = T.add(T.log(T.sum(T.exp(T.sub(s, m)), -1, true)), m);
    const P = T.exp(T.sub(s, lse));
    const out = T.matmul(P, v64);
    const dP = T.matmul(dO64, T.transpose(v64, -2, -1));
    const delta = T.sum(T.mul(out, dO64), -1, true);
    const dS = T.mul(T.mul(P, T.sub(dP, delta)), scale);
    const dSabs = T.mul(P, T.add(T.abs(dP), T.sum(T.abs(T.mul(out, dO64)), -1, true)));
    const Pt = T.transpose(P, -2, -1);
    return {
      out: out.toFloat64Array(), lse: lse.toFloat64Array(),
      dq: T.matmul(dS, k64).toFloat64Array(), dk: T.matmul(T.transpose(dS, -2, -1), q64).toFloat64Array(), dv: T.matmul(Pt, dO64).toFloat64Array(),
      outB: T.matmul(P, T.abs(v64)).toFloat64Array(),
      dvB: T.matmul(Pt, T.abs(dO64)).toFloat64Array(),
      dqB: T.mul(T.matmul(dSabs, T.abs(k64)), scale).toFloat64Array(),
      dkB: T.mul(T.matmul(T.transpose(dSabs, -2, -1), T.abs(q64)), scale).toFloat64Array(),
    };
  });
}

/**
 * cuDNN's out and gradients within their bounds of the float64 reference (u: the unit roundoff of
 * the dtype), and both routes' lse at the reference's; returns the worst error per output, in
 * multiples of the bound.
 */
export function assertCudnnAgainstReference(cd: Run, ours: Run, ref: AttentionReference, hr: number, u: number): { out: number; dq: number; dk: number; dv: number } {
  const worst = { out: assertBounded('cuDNN out', firstHeads(cd.out, hr), ref.out, ref.outB, 3.5 * u), ...assertGradsBounded('cuDNN', cd, ref, hr, u) };
  assertLse('cuDNN lse', firstHeads(cd.lse, hr), ref.lse);
  assertLse('our lse', firstHeads(ours.lse, hr), ref.lse);
  return worst;
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
    assertGradsBounded(`${fwd} forward, ${bwd} backward:`, { gq, gk, gv }, ref, 2, u);
  }
}

/** One forward and backward through the backend's fused kernels (whichever route the mode picks), as a graph step. */
export function fusedStep(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, args: AttentionArgs): Run {
  const fused = backend().fused;
  const out = emptyLike(q);
  const lse = T.Tensor.empty(q.shape.slice(0, 3), 'float32', backend());
  fused.attention!(q, k, v, out, lse, args);
  const [gq, gk, gv] = [emptyLike(q), emptyLike(k), emptyLike(v)];
  fused.attentionBackward!(q, k, v, out, lse, dO, gq, gk, gv, args);
  return { out, lse, gq, gk, gv };
}

/**
 * Two rounds of fresh q, k, v, dO (scaled 1.5, 1.5, 1, 1), a replay of `graph` (captured from
 * `step`, its outputs `result`) and an eager step: out and lse must equal the eager ones exactly;
 * `gradsAgree` judges each gradient (cuDNN's dQ accumulates with atomics).
 */
export function assertReplaysMatchEager(graph: CudaGraph, result: Run, step: () => Run, inputs: readonly [Tensor, Tensor, Tensor, Tensor],
  dtype: 'bfloat16' | 'float16', gradsAgree: (what: string, replayed: Tensor, eager: Tensor) => void): void {
  const [q, k, v, dO] = inputs;
  for (let round = 0; round < 2; round++) {
    for (const [t, s] of [[q, 1.5], [k, 1.5], [v, 1], [dO, 1]] as const) {
      assign_(t, randomCpu(t.shape as number[], dtype, (x) => x * s).to('cuda'));
    }
    graph.replay();
    const eager = step();
    assert.deepEqual(result.out.to('cpu').toFloat64Array(), eager.out.to('cpu').toFloat64Array(), `round ${round}: replayed out = eager out`);
    assert.deepEqual(result.lse.to('cpu').toFloat64Array(), eager.lse.to('cpu').toFloat64Array(), `round ${round}: replayed lse = eager lse`);
    for (const n of ['gq', 'gk', 'gv'] as const) gradsAgree(`round ${round}: replayed ${n}`, result[n], eager[n]);
  }
}
