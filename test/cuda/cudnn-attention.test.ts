/**
 * cuDNN's fused attention (src/backends/cuda/cudnn-attention/) on the GPU: forward and backward
 * against a float64 CPU reference and against our flash kernel, for bf16 [2, 16, 1024, 72] with
 * split-head ([B, L, H, E]-stored) and contiguous operands, odd lengths [1, 4, 77, 64], head dims
 * 64 / 72 / 128 and float16; the log-sum-exp convention shared with our kernel (each backward after
 * the other's forward); dispatch (auto takes cuDNN through the op, a mask falls back to our kernel,
 * DIMBA_ATTENTION=ours never touches cuDNN, DIMBA_ATTENTION=cudnn refuses a mask by name); CUDA
 * graph capture and replay of cuDNN attention, and the capture error for an unbuilt plan.
 *
 * Tolerance (as test/cuda/attention.test.ts explains): |a - e| <= c u B per element, u the unit
 * roundoff, B the sum of magnitudes behind the element. cuDNN's internal roundings are not ours,
 * so c is looser than our kernel's (3.5 for out and dV, 5 for dQ and dK); a wrong scale, softmax
 * or transpose gives errors of order B itself. The reference covers the first two heads (the rest
 * are compared with our kernel). Every cuDNN plan built is printed with its engine, workspace and
 * build time; a declined call prints cuDNN's reasons, the configs tried and their errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as T from '../../src/index.js';
import { assign_ } from '../../src/ops/inplace.js';
import type { AttentionArgs } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import type { CudaBackend } from '../../src/backends/cuda/backend.js';
import { CudaGraph, CudaGraphCaptureError } from '../../src/backends/cuda/graph.js';
import { cudnnAttentionFor } from '../../src/backends/cuda/cudnn-attention/plan.js';
import { cudnnBackward, cudnnForward } from '../../src/backends/cuda/cudnn-attention/run.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { cudaSkip, randomCpu, realCuda } from './helpers.js';

function backend(): CudaBackend {
  return getBackend('cuda') as CudaBackend;
}

const skip: string | false = (() => {
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

interface Case {
  readonly dtype: 'bfloat16' | 'float16';
  readonly b: number;
  readonly h: number;
  readonly l: number;
  readonly e: number;
  readonly split: boolean;
}

const CASES: Case[] = [
  { dtype: 'bfloat16', b: 2, h: 16, l: 1024, e: 72, split: true },
  { dtype: 'bfloat16', b: 2, h: 16, l: 1024, e: 72, split: false },
  { dtype: 'bfloat16', b: 1, h: 4, l: 77, e: 64, split: false },
  { dtype: 'bfloat16', b: 1, h: 4, l: 77, e: 64, split: true },
  { dtype: 'bfloat16', b: 2, h: 4, l: 256, e: 128, split: true },
  { dtype: 'bfloat16', b: 2, h: 4, l: 300, e: 72, split: false },
  { dtype: 'float16', b: 2, h: 4, l: 300, e: 72, split: true },
];

const caseName = (c: Case) => `${c.dtype} [${c.b}, ${c.h}, ${c.l}, ${c.e}]${c.split ? ' split heads' : ' contiguous'}`;

/** [B, H, L, E] on the CPU and on CUDA; split: views of [B, L, H * E] rows (as the model's head split). */
function heads(c: Case, scale = 1): [Tensor, Tensor] {
  if (!c.split) {
    const t = randomCpu([c.b, c.h, c.l, c.e], c.dtype, (v) => v * scale);
    return [t, t.to('cuda')];
  }
  const rows = randomCpu([c.b, c.l, c.h * c.e], c.dtype, (v) => v * scale);
  const view = (r: Tensor) => T.permute(T.reshape(r, [c.b, c.l, c.h, c.e]), [0, 2, 1, 3]);
  return [view(rows), view(rows.to('cuda'))];
}

/** An empty [B, H, L, E] output laid out like `like` (split heads stay [B, L, H, E] in storage, as the op does). */
function emptyLike(like: Tensor): Tensor {
  const [b, h, l, e] = like.shape as [number, number, number, number];
  if (like.strides[2]! <= like.strides[1]!) return T.Tensor.empty([b, h, l, e], like.dtype, like.backend);
  const store = T.Tensor.empty([b, l, h, e], like.dtype, like.backend);
  return store.withLayout([b, h, l, e], [l * h * e, e, h * e, 1], 0);
}

interface Reference {
  readonly out: Float64Array; readonly lse: Float64Array; readonly dq: Float64Array; readonly dk: Float64Array; readonly dv: Float64Array;
  readonly outB: Float64Array; readonly dqB: Float64Array; readonly dkB: Float64Array; readonly dvB: Float64Array;
}

/** float64 values and error bounds for the first `hr` heads. */
function reference(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, scale: number, hr: number): Reference {
  const f64 = (t: Tensor) => T.contiguous(T.cast(T.narrow(t, 1, 0, hr), 'float64'));
  const [q64, k64, v64, dO64] = [q, k, v, dO].map(f64) as [Tensor, Tensor, Tensor, Tensor];
  return T.noGrad(() => {
    const s = T.mul(T.matmul(q64, T.transpose(k64, -2, -1)), scale);
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

const firstHeads = (t: Tensor, hr: number) => T.narrow(t, 1, 0, hr).to('cpu').toFloat64Array();

/** Largest |a - e| / bound (exact where the bound is 0); asserts it is at most tol and returns it. */
function assertBounded(what: string, actual: Float64Array, expected: Float64Array, bound: Float64Array, tol: number): number {
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

function assertLse(what: string, actual: Float64Array, expected: Float64Array): void {
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    assert.ok(Math.abs(actual[i]! - e) <= 1e-4 * (1 + Math.abs(e)), `${what}[${i}]: ${actual[i]} vs float64 ${e} (natural-log logsumexp of the scaled scores)`);
  }
}

/** Largest |a - b| over mean |b|: how far cuDNN and our kernel are apart on every head. */
function relativeGap(a: Tensor, b: Tensor): number {
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
function worstHeadRms(a: Tensor, b: Tensor): number {
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

function withMode<R>(mode: string | undefined, fn: () => R): R {
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

function executions(): number {
  return cudnnAttentionFor(backend().runtime).stats().plans.reduce((n, p) => n + p.executions, 0);
}

/** Every plan and every declined problem, for the log of a GPU run. */
function printPlans(): void {
  const st = cudnnAttentionFor(backend().runtime).stats();
  for (const p of st.plans) {
    console.log(`# cuDNN plan ${p.key}: ${p.label}, workspace ${p.layout.total} B (cuDNN ${p.planWorkspace} B), built in ${p.buildMs.toFixed(0)} ms, `
      + `${p.executions} runs${p.notes.length ? `, ${p.notes.join(', ')}` : ''}`
      + `${p.tried.length > 1 ? `; tried ${p.tried.map((t) => `${t.label}${t.error ? ` (${t.error})` : ''}`).join('; ')}` : ''}`);
  }
  for (const u of st.unsupported) console.log(`# cuDNN declined ${u.key}: ${u.reason}`);
}

interface Run { out: Tensor; lse: Tensor; gq: Tensor; gk: Tensor; gv: Tensor }

function runOurs(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, args: AttentionArgs): Run {
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

function runCudnn(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, args: AttentionArgs): Run {
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

function checkCase(c: Case): void {
  const [q, qg] = heads(c, 1.5);
  const [k, kg] = heads(c, 1.5);
  const [v, vg] = heads(c);
  const [dO, dOg] = heads(c);
  const scale = 1 / Math.sqrt(c.e);
  const args: AttentionArgs = { scale, mask: null };
  const hr = Math.min(c.h, 2);
  const ref = reference(q, k, v, dO, scale, hr);
  const u = c.dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11;

  const before = executions();
  const cd = runCudnn(qg, kg, vg, dOg, args);
  assert.equal(executions(), before + 2, 'two cuDNN executions (forward, backward)');
  const ours = runOurs(qg, kg, vg, dOg, args);
  const worst = {
    out: assertBounded('cuDNN out', firstHeads(cd.out, hr), ref.out, ref.outB, 3.5 * u),
    dq: assertBounded('cuDNN dq', firstHeads(cd.gq, hr), ref.dq, ref.dqB, 5 * u),
    dk: assertBounded('cuDNN dk', firstHeads(cd.gk, hr), ref.dk, ref.dkB, 5 * u),
    dv: assertBounded('cuDNN dv', firstHeads(cd.gv, hr), ref.dv, ref.dvB, 3.5 * u),
  };
  assertLse('cuDNN lse', firstHeads(cd.lse, hr), ref.lse);
  assertLse('our lse', firstHeads(ours.lse, hr), ref.lse);
  const gaps = (['out', 'lse', 'gq', 'gk', 'gv'] as const).map((n) => `${n} ${relativeGap(cd[n], ours[n]).toExponential(2)}`);
  console.log(`# ${caseName(c)}: cuDNN error / (u bound): out ${(worst.out / u).toFixed(2)}, dq ${(worst.dq / u).toFixed(2)}, `
    + `dk ${(worst.dk / u).toFixed(2)}, dv ${(worst.dv / u).toFixed(2)}; cuDNN vs ours (max abs / mean abs): ${gaps.join(', ')}`);
  const rms = (['out', 'gq', 'gk', 'gv'] as const).map((n) => [n, worstHeadRms(cd[n], ours[n])] as const);
  console.log(`# ${caseName(c)}: cuDNN vs ours, worst head's relative RMS difference: ${rms.map(([n, r]) => `${n} ${r.toExponential(2)}`).join(', ')}`);
  for (const [n, r] of rms) assert.ok(r < 0.03, `${n}: cuDNN and our kernel disagree on some head (relative RMS difference ${r})`);
  assert.ok(relativeGap(cd.lse, ours.lse) < 1e-4, 'cuDNN Stats and our lse are the same quantity');
}

// koffi dlcloses a library whose handle is collected; cuDNN's sub-libraries were loaded through
// handles nobody kept, and a collection between plans crashed the process (SIGSEGV) inside
// cudnnBackendExecute. Forced collections between executions must leave cuDNN working.
test('cuDNN attention keeps running across garbage collections', { skip }, async () => {
  setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  const c: Case = { dtype: 'bfloat16', b: 2, h: 4, l: 128, e: 64, split: true };
  const [, q] = heads(c);
  const [, k] = heads(c);
  const [, v] = heads(c);
  const args: AttentionArgs = { scale: 0.125, mask: null };
  const outputs: number[][] = [];
  for (let round = 0; round < 3; round++) {
    const out = emptyLike(q);
    const lse = T.Tensor.empty([c.b, c.h, c.l], 'float32', backend());
    assert.ok(cudnnForward(backend().runtime, q, k, v, out, lse, args, 'cudnn'));
    outputs.push(Array.from(out.to('cpu').toFloat64Array()));
    // Native finalizers run after the collection, from the event loop: yield to let them.
    for (let i = 0; i < 4; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  assert.deepEqual(outputs[1], outputs[0], 'same output after a collection');
  assert.deepEqual(outputs[2], outputs[0], 'same output after two collections');
});

for (const c of CASES) test(`cuDNN attention ${caseName(c)} against float64 and our kernel`, { skip }, () => checkCase(c));

const MID: Case = { dtype: 'bfloat16', b: 2, h: 4, l: 256, e: 72, split: true };

test('either backward follows either forward (the log-sum-exp conventions agree)', { skip }, () => {
  const [q, qg] = heads(MID, 1.5);
  const [k, kg] = heads(MID, 1.5);
  const [v, vg] = heads(MID);
  const [dO, dOg] = heads(MID);
  const args: AttentionArgs = { scale: 1 / Math.sqrt(MID.e), mask: null };
  const ref = reference(q, k, v, dO, args.scale, 2);
  const u = 2 ** -8;
  const rt = backend().runtime;
  const fused = backend().fused;
  for (const [fwd, bwd] of [['cudnn', 'ours'], ['ours', 'cudnn']] as const) {
    const out = emptyLike(qg);
    const lse = T.Tensor.empty([MID.b, MID.h, MID.l], 'float32', backend());
    if (fwd === 'cudnn') assert.ok(cudnnForward(rt, qg, kg, vg, out, lse, args, 'cudnn'));
    else withMode('ours', () => fused.attention!(qg, kg, vg, out, lse, args));
    const [gq, gk, gv] = [emptyLike(qg), emptyLike(kg), emptyLike(vg)];
    if (bwd === 'cudnn') assert.ok(cudnnBackward(rt, qg, kg, vg, out, lse, dOg, gq, gk, gv, args, 'cudnn'));
    else withMode('ours', () => fused.attentionBackward!(qg, kg, vg, out, lse, dOg, gq, gk, gv, args));
    assertBounded(`${fwd} forward, ${bwd} backward: dq`, firstHeads(gq, 2), ref.dq, ref.dqB, 5 * u);
    assertBounded(`${fwd} forward, ${bwd} backward: dk`, firstHeads(gk, 2), ref.dk, ref.dkB, 5 * u);
    assertBounded(`${fwd} forward, ${bwd} backward: dv`, firstHeads(gv, 2), ref.dv, ref.dvB, 3.5 * u);
  }
});

test('through the op: auto takes cuDNN, a mask falls back to our kernel, ours never touches cuDNN', { skip }, () => {
  const [q, qg] = heads(MID, 1.5);
  const [k, kg] = heads(MID, 1.5);
  const [v, vg] = heads(MID);
  const [dO, dOg] = heads(MID);
  const scale = 1 / Math.sqrt(MID.e);
  const ref = reference(q, k, v, dO, scale, 2);
  const u = 2 ** -8;
  const op = (options: T.AttentionOptions = {}) => {
    const leaves = [qg, kg, vg].map((t) => t.detach().requiresGrad_(true)) as [Tensor, Tensor, Tensor];
    const y = T.scaledDotProductAttention(leaves[0], leaves[1], leaves[2], { ...options, scale });
    T.sum(T.mul(T.cast(y, 'float32'), T.cast(dOg, 'float32'))).backward();
    return { y, gq: leaves[0].grad!, gk: leaves[1].grad!, gv: leaves[2].grad! };
  };

  let n = executions();
  const auto = withMode(undefined, () => op());
  assert.equal(executions(), n + 2, 'auto ran the forward and backward on cuDNN');
  assertBounded('op out (auto)', firstHeads(auto.y, 2), ref.out, ref.outB, 3.5 * u);
  assertBounded('op dq (auto)', firstHeads(auto.gq, 2), ref.dq, ref.dqB, 5 * u);
  assertBounded('op dk (auto)', firstHeads(auto.gk, 2), ref.dk, ref.dkB, 5 * u);
  assertBounded('op dv (auto)', firstHeads(auto.gv, 2), ref.dv, ref.dvB, 3.5 * u);

  n = executions();
  const ours = withMode('ours', () => op());
  assert.equal(executions(), n, 'DIMBA_ATTENTION=ours ran no cuDNN plan');
  const direct = runOurs(qg, kg, vg, dOg, { scale, mask: null });
  assert.deepEqual(ours.y.to('cpu').toFloat64Array(), direct.out.to('cpu').toFloat64Array(), 'ours through the op = our kernel called directly');

  // Key padding keeping every key: the same attention, but masked, so it must be our kernel.
  const keep = T.Tensor.fromHost(new Uint8Array(MID.b * MID.l).fill(1), [MID.b, MID.l], 'bool').to('cuda');
  n = executions();
  const masked = withMode(undefined, () => op({ keyPadding: keep }));
  assert.equal(executions(), n, 'a masked call stays off cuDNN');
  const maskedOurs = withMode('ours', () => op({ keyPadding: keep }));
  assert.deepEqual(masked.y.to('cpu').toFloat64Array(), maskedOurs.y.to('cpu').toFloat64Array(), 'masked auto = masked ours');

  assert.throws(() => withMode('cudnn', () => op({ keyPadding: keep })), /DIMBA_ATTENTION=cudnn, but cuDNN attention cannot take forward .*: a mask/);
  printPlans();
});

test('cuDNN attention replays in a CUDA graph; an unbuilt plan is refused during capture', { skip }, () => {
  const b = backend();
  const fused = b.fused;
  const c: Case = { dtype: 'bfloat16', b: 2, h: 4, l: 192, e: 64, split: true };
  const [, q] = heads(c, 1.5);
  const [, k] = heads(c, 1.5);
  const [, v] = heads(c);
  const [, dO] = heads(c);
  const args: AttentionArgs = { scale: 0.125, mask: null };
  const step = (): Run => {
    const out = emptyLike(q);
    const lse = T.Tensor.empty([c.b, c.h, c.l], 'float32', b);
    fused.attention!(q, k, v, out, lse, args);
    const [gq, gk, gv] = [emptyLike(q), emptyLike(k), emptyLike(v)];
    fused.attentionBackward!(q, k, v, out, lse, dO, gq, gk, gv, args);
    return { out, lse, gq, gk, gv };
  };
  withMode('cudnn', () => {
    // Not run before: building the plan inside the capture is refused by name.
    assert.throws(() => CudaGraph.capture(b.runtime, step, 'attention'), (e: unknown) => {
      assert.ok(e instanceof CudaGraphCaptureError, `expected CudaGraphCaptureError, got ${String(e)}`);
      assert.match(e.message, /cuDNN attention plan for forward bfloat16 B2 H4 Lq192 Lk192 E64 during CUDA graph capture of 'attention'/);
      return true;
    });
    step(); // warm-up: builds and runs both plans
    const n = executions();
    const { result, graph } = CudaGraph.capture(b.runtime, step, 'attention');
    assert.equal(executions(), n + 2, 'capture recorded both executions');
    for (let round = 0; round < 2; round++) {
      for (const [t, s] of [[q, 1.5], [k, 1.5], [v, 1], [dO, 1]] as const) {
        assign_(t, randomCpu(t.shape as number[], c.dtype, (x) => x * s).to('cuda'));
      }
      graph.replay();
      const eager = step();
      assert.deepEqual(result.out.to('cpu').toFloat64Array(), eager.out.to('cpu').toFloat64Array(), `round ${round}: replayed out = eager out`);
      assert.deepEqual(result.lse.to('cpu').toFloat64Array(), eager.lse.to('cpu').toFloat64Array(), `round ${round}: replayed lse = eager lse`);
      // dQ accumulates with atomics in cuDNN: equal up to float32 summation order.
      for (const n2 of ['gq', 'gk', 'gv'] as const) {
        const gap = relativeGap(result[n2], eager[n2]);
        assert.ok(gap < 2e-2, `round ${round}: replayed ${n2} differs from eager by ${gap}`);
      }
    }
    assert.equal(graph.replays, 2);
    graph.destroy();
  });
  printPlans();
});
