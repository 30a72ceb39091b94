/**
 * cuDNN's fused attention (src/backends/cuda/cudnn-attention/) on the GPU: forward and backward
 * against a float64 CPU reference and against our flash kernel, for bf16 [2, 16, 1024, 72] with
 * split-head ([B, L, H, E]-stored) and contiguous operands, odd lengths [1, 4, 77, 64], head dims
 * 64 / 72 / 128 and float16; the log-sum-exp convention shared with our kernel (each backward after
 * the other's forward); dispatch (auto takes cuDNN through the op, key padding included, a mask
 * varying over queries falls back to our kernel, DIMBA_ATTENTION=ours never touches cuDNN,
 * DIMBA_ATTENTION=cudnn refuses that mask by name); masked cases are cudnn-attention-masked.test.ts; CUDA
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
import type { AttentionArgs } from '../../src/backends/backend.js';
import { CudaGraph, CudaGraphCaptureError } from '../../src/backends/cuda/graph.js';
import { cudnnForward } from '../../src/backends/cuda/cudnn-attention/run.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import {
  assertBounded, attentionReference, assertCudnnAgainstReference, assertReplaysMatchEager, assertGradsBounded, backend, caseName, checkMixedRoutes, emptyLike, executions, firstHeads, fusedStep,
  heads, printPlans, relativeGap, runCudnn, runOurs, skip, withMode, worstHeadRms, type AttentionReference, type Case, type Run,
} from './cudnn-attention-helpers.js';

const CASES: Case[] = [
  { dtype: 'bfloat16', b: 2, h: 16, l: 1024, e: 72, split: true },
  { dtype: 'bfloat16', b: 2, h: 16, l: 1024, e: 72, split: false },
  { dtype: 'bfloat16', b: 1, h: 4, l: 77, e: 64, split: false },
  { dtype: 'bfloat16', b: 1, h: 4, l: 77, e: 64, split: true },
  { dtype: 'bfloat16', b: 2, h: 4, l: 256, e: 128, split: true },
  { dtype: 'bfloat16', b: 2, h: 4, l: 300, e: 72, split: false },
  { dtype: 'float16', b: 2, h: 4, l: 300, e: 72, split: true },
];

/** float64 values and error bounds for the first `hr` heads. */
function reference(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, scale: number, hr: number): AttentionReference {
  const f64 = (t: Tensor) => T.contiguous(T.cast(T.narrow(t, 1, 0, hr), 'float64'));
  const [q64, k64, v64, dO64] = [q, k, v, dO].map(f64) as [Tensor, Tensor, Tensor, Tensor];
  return attentionReference(q64, k64, v64, dO64, scale);
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
  const worst = assertCudnnAgainstReference(cd, ours, ref, hr, u);
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
  checkMixedRoutes(qg, kg, vg, dOg, args, ref);
});

test('through the op: auto takes cuDNN (key padding too), a query-varying mask falls back to our kernel, ours never touches cuDNN', { skip }, () => {
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
  assertGradsBounded('op (auto)', auto, ref, 2, u);

  n = executions();
  const ours = withMode('ours', () => op());
  assert.equal(executions(), n, 'DIMBA_ATTENTION=ours ran no cuDNN plan');
  const direct = runOurs(qg, kg, vg, dOg, { scale, mask: null });
  assert.deepEqual(ours.y.to('cpu').toFloat64Array(), direct.out.to('cpu').toFloat64Array(), 'ours through the op = our kernel called directly');

  // Key padding keeping every key: the same attention through cuDNN's masked graphs (a bias of zeros).
  const keep = T.Tensor.fromHost(new Uint8Array(MID.b * MID.l).fill(1), [MID.b, MID.l], 'bool').to('cuda');
  n = executions();
  const padded = withMode(undefined, () => op({ keyPadding: keep }));
  assert.equal(executions(), n + 2, 'key padding runs on cuDNN (masked forward and backward)');
  assertBounded('op out (auto, key padding)', firstHeads(padded.y, 2), ref.out, ref.outB, 3.5 * u);
  assertGradsBounded('op (auto, key padding)', padded, ref, 2, u);

  // A mask that varies over queries (all true, so again the same attention) is not key padding: our kernel.
  const everywhere = T.Tensor.fromHost(new Uint8Array(MID.b * MID.l * MID.l).fill(1), [MID.b, 1, MID.l, MID.l], 'bool').to('cuda');
  n = executions();
  const masked = withMode(undefined, () => op({ mask: everywhere }));
  assert.equal(executions(), n, 'a query-varying mask stays off cuDNN');
  const maskedOurs = withMode('ours', () => op({ mask: everywhere }));
  assert.deepEqual(masked.y.to('cpu').toFloat64Array(), maskedOurs.y.to('cpu').toFloat64Array(), 'masked auto = masked ours');

  assert.throws(() => withMode('cudnn', () => op({ mask: everywhere })),
    /DIMBA_ATTENTION=cudnn, but cuDNN attention cannot take forward .*: a mask that varies over heads or queries/);
  printPlans();
});

test('cuDNN attention replays in a CUDA graph; an unbuilt plan is refused during capture', { skip }, () => {
  const b = backend();
  const c: Case = { dtype: 'bfloat16', b: 2, h: 4, l: 192, e: 64, split: true };
  const [, q] = heads(c, 1.5);
  const [, k] = heads(c, 1.5);
  const [, v] = heads(c);
  const [, dO] = heads(c);
  const args: AttentionArgs = { scale: 0.125, mask: null };
  const step = (): Run => fusedStep(q, k, v, dO, args);
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
    // dQ accumulates with atomics in cuDNN: equal up to float32 summation order.
    assertReplaysMatchEager(graph, result, step, [q, k, v, dO], c.dtype, (what, replayed, eager) => {
      const gap = relativeGap(replayed, eager);
      assert.ok(gap < 2e-2, `${what} differs from eager by ${gap}`);
    });
    assert.equal(graph.replays, 2);
    graph.destroy();
  });
  printPlans();
});
