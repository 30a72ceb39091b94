/**
 * cuDNN's attention with key padding (cudnn-attention/: a bias, one row per batch, in the composite
 * forward and backward graphs) on the GPU, forward and every gradient against a float64 CPU
 * reference and against our kernel: issue 7's cross-attention (1024 queries to 120 caption keys,
 * 16 heads of 72, split heads) with random prefix masks, a non-prefix mask, a batch row with no
 * valid key (O = 0, lse = -inf and zero gradients, exactly, as our kernel), keys whose rows are
 * off 16 bytes (Lk 77: the bias is staged into padded rows), one batch row, contiguous operands,
 * float16; either backward after either forward with a fully masked row; the op's routing with a
 * caption mask; the op's keyBias (the caption mask made additive once) giving keyPadding's results
 * on the cuDNN route, from one cached decision per direction (no spec rebuilt per call) and with
 * every per-call block handed back; CUDA graph capture and replay of the masked route; Lk = 64
 * mod 128 declined for the backward (pytorch#196678).
 *
 * Bounds as cudnn-attention.test.ts: |a - e| <= c u B, B the sum of magnitudes behind the element,
 * so elements whose bound is 0 (everything of a fully masked batch row) must be exactly 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { AttentionArgs } from '../../src/backends/backend.js';
import { CudaGraph } from '../../src/backends/cuda/graph.js';
import { cudnnBackward, cudnnCallStats, cudnnForward } from '../../src/backends/cuda/cudnn-attention/run.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { randomCpu } from './helpers.js';
import {
  attentionReference, assertCudnnAgainstReference, assertReplaysMatchEager, backend, checkMixedRoutes, emptyLike, executions, fusedStep, printPlans, runCudnn, runOurs, skip, withMode,
  worstHeadRms, type AttentionReference, type Run,
} from './cudnn-attention-helpers.js';

interface MaskedCase {
  readonly name: string;
  readonly dtype: 'bfloat16' | 'float16';
  readonly b: number;
  readonly h: number;
  readonly lq: number;
  readonly lk: number;
  readonly e: number;
  readonly split: boolean;
  /** Valid keys per batch row. */
  readonly keep: (b: number, lk: number) => boolean[][];
}

let seed = 12345;
function rand(): number {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

/** Caption-like masks: the first n keys of each row valid, n random in [1, Lk]. */
const prefix = (b: number, lk: number) => Array.from({ length: b }, () => {
  const n = 1 + Math.floor(rand() * lk);
  return Array.from({ length: lk }, (_, j) => j < n);
});
/** Valid keys scattered (about half), at least one per row. */
const scattered = (b: number, lk: number) => Array.from({ length: b }, () => {
  const row = Array.from({ length: lk }, () => rand() < 0.5);
  row[Math.floor(rand() * lk)] = true;
  return row;
});
/** Prefix masks with batch row 1 fully masked. */
const oneEmpty = (b: number, lk: number) => prefix(b, lk).map((row, i) => (i === 1 ? row.map(() => false) : row));

const CASES: MaskedCase[] = [
  { name: 'cross bf16 [2, 16, 1024 x 120, 72] split, prefix masks', dtype: 'bfloat16', b: 2, h: 16, lq: 1024, lk: 120, e: 72, split: true, keep: prefix },
  { name: 'cross bf16 [3, 4, 256 x 120, 72] split, a fully masked batch row', dtype: 'bfloat16', b: 3, h: 4, lq: 256, lk: 120, e: 72, split: true, keep: oneEmpty },
  { name: 'cross bf16 [2, 4, 300 x 120, 72] contiguous, non-prefix mask', dtype: 'bfloat16', b: 2, h: 4, lq: 300, lk: 120, e: 72, split: false, keep: scattered },
  { name: 'cross bf16 [2, 4, 256 x 77, 64] split, rows off 16 bytes (staged bias)', dtype: 'bfloat16', b: 2, h: 4, lq: 256, lk: 77, e: 64, split: true, keep: prefix },
  { name: 'cross bf16 [1, 4, 200 x 120, 128] split, one batch row', dtype: 'bfloat16', b: 1, h: 4, lq: 200, lk: 120, e: 128, split: true, keep: prefix },
  { name: 'cross f16 [2, 4, 256 x 120, 72] split, prefix masks', dtype: 'float16', b: 2, h: 4, lq: 256, lk: 120, e: 72, split: true, keep: prefix },
  { name: 'self bf16 [2, 4, 256 x 256, 64] split, non-prefix mask', dtype: 'bfloat16', b: 2, h: 4, lq: 256, lk: 256, e: 64, split: true, keep: scattered },
];

/** [B, H, L, E] on the CPU and CUDA; split: views of [B, L, H * E] rows. */
function operand(c: MaskedCase, l: number, scale = 1): [Tensor, Tensor] {
  if (!c.split) {
    const t = randomCpu([c.b, c.h, l, c.e], c.dtype, (v) => v * scale);
    return [t, t.to('cuda')];
  }
  const rows = randomCpu([c.b, l, c.h * c.e], c.dtype, (v) => v * scale);
  const view = (r: Tensor) => T.permute(T.reshape(r, [c.b, l, c.h, c.e]), [0, 2, 1, 3]);
  return [view(rows), view(rows.to('cuda'))];
}

/** The op's additive mask for `keep`, expanded as the op hands it to the kernels. */
function additive(c: MaskedCase, keep: boolean[][], q: Tensor): Tensor {
  const flags = new Uint8Array(c.b * c.lk);
  keep.forEach((row, i) => row.forEach((k, j) => { flags[i * c.lk + j] = k ? 1 : 0; }));
  const kp = T.Tensor.fromHost(flags, [c.b, c.lk], 'bool').to('cuda');
  const m = T.additiveMask(q, c.lk, { keyPadding: kp })!;
  return T.expand(m, [c.b, c.h, c.lq, c.lk]);
}

/**
 * float64 attention with the key padding over the first `hr` heads, batch row by batch row; a row
 * without a valid key gives O = 0, lse = -inf, zero gradients and zero bounds.
 */
function reference(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, keep: boolean[][], scale: number, hr: number): AttentionReference {
  const parts: Record<keyof AttentionReference, Float64Array[]> = { out: [], lse: [], dq: [], dk: [], dv: [], outB: [], dqB: [], dkB: [], dvB: [] };
  const [, , lq, e] = q.shape as [number, number, number, number];
  const lk = k.shape[2]!;
  T.noGrad(() => {
    keep.forEach((row, bi) => {
      const f64 = (t: Tensor) => T.contiguous(T.cast(T.narrow(T.narrow(t, 0, bi, 1), 1, 0, hr), 'float64'));
      const [q64, k64, v64, dO64] = [q, k, v, dO].map(f64) as [Tensor, Tensor, Tensor, Tensor];
      if (!row.some(Boolean)) {
        for (const [n, size] of [['out', lq * e], ['dq', lq * e], ['dk', lk * e], ['dv', lk * e]] as const) {
          parts[n].push(new Float64Array(hr * size));
          parts[`${n}B` as keyof AttentionReference].push(new Float64Array(hr * size));
        }
        parts.lse.push(new Float64Array(hr * lq).fill(-Infinity));
        return;
      }
      const bias = T.Tensor.fromHost(Float64Array.from(row, (x) => (x ? 0 : -Infinity)), [1, 1, 1, lk], 'float64');
      const r = attentionReference(q64, k64, v64, dO64, scale, bias);
      for (const n of Object.keys(parts) as (keyof AttentionReference)[]) parts[n].push(r[n]);
    });
  });
  const join = (xs: Float64Array[]) => {
    const out = new Float64Array(xs.reduce((n, x) => n + x.length, 0));
    let at = 0;
    for (const x of xs) { out.set(x, at); at += x.length; }
    return out;
  };
  return Object.fromEntries(Object.entries(parts).map(([n, xs]) => [n, join(xs)])) as unknown as AttentionReference;
}

/** Per-head relative RMS difference, skipping heads whose reference is all zero (fully masked) and comparing those exactly. */
function assertAgrees(what: string, a: Tensor, b: Tensor): number {
  const x = a.to('cpu').toFloat64Array();
  const y = b.to('cpu').toFloat64Array();
  assert.ok(x.every(Number.isFinite), `${what}: cuDNN gave a non-finite value`);
  const rms = worstHeadRms(a, b);
  assert.ok(rms < 0.03, `${what}: cuDNN and our kernel disagree on some head (relative RMS difference ${rms})`);
  for (let i = 0; i < y.length; i++) if (y[i] === 0 && x[i] !== 0 && Math.abs(x[i]!) > 1e-2) assert.fail(`${what}[${i}]: ${x[i]} where our kernel has 0`);
  return rms;
}

function checkCase(c: MaskedCase): void {
  const [q, qg] = operand(c, c.lq, 1.5);
  const [k, kg] = operand(c, c.lk, 1.5);
  const [v, vg] = operand(c, c.lk);
  const [dO, dOg] = operand(c, c.lq);
  const keep = c.keep(c.b, c.lk);
  const scale = 1 / Math.sqrt(c.e);
  const args: AttentionArgs = { scale, mask: additive(c, keep, qg) };
  const hr = Math.min(c.h, 2);
  const ref = reference(q, k, v, dO, keep, scale, hr);
  const u = c.dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11;

  const before = executions();
  const cd = runCudnn(qg, kg, vg, dOg, args);
  assert.equal(executions(), before + 2, 'two cuDNN executions (masked forward, masked backward)');
  const ours = runOurs(qg, kg, vg, dOg, args);
  const worst = assertCudnnAgainstReference(cd, ours, ref, hr, u);
  const rms = (['out', 'gq', 'gk', 'gv'] as const).map((n) => `${n} ${assertAgrees(n, cd[n], ours[n]).toExponential(2)}`);
  const lc = cd.lse.to('cpu').toFloat64Array();
  const lo = ours.lse.to('cpu').toFloat64Array();
  for (let i = 0; i < lo.length; i++) {
    if (lo[i] === -Infinity) assert.equal(lc[i], -Infinity, `lse[${i}]: cuDNN ${lc[i]}, ours -inf`);
    else assert.ok(Math.abs(lc[i]! - lo[i]!) <= 1e-4 * (1 + Math.abs(lo[i]!)), `lse[${i}]: cuDNN ${lc[i]}, ours ${lo[i]}`);
  }
  console.log(`# ${c.name}: cuDNN error / (u bound): out ${(worst.out / u).toFixed(2)}, dq ${(worst.dq / u).toFixed(2)}, `
    + `dk ${(worst.dk / u).toFixed(2)}, dv ${(worst.dv / u).toFixed(2)}; cuDNN vs ours, worst head's relative RMS: ${rms.join(', ')}`);
}

for (const c of CASES) test(`masked cuDNN attention: ${c.name}, against float64 and our kernel`, { skip }, () => checkCase(c));

const EMPTY: MaskedCase = CASES[1]!;

test('with a fully masked batch row, either backward follows either forward without NaN', { skip }, () => {
  const c = EMPTY;
  const [q, qg] = operand(c, c.lq, 1.5);
  const [k, kg] = operand(c, c.lk, 1.5);
  const [v, vg] = operand(c, c.lk);
  const [dO, dOg] = operand(c, c.lq);
  const keep = c.keep(c.b, c.lk);
  const args: AttentionArgs = { scale: 1 / Math.sqrt(c.e), mask: additive(c, keep, qg) };
  const ref = reference(q, k, v, dO, keep, args.scale, 2);
  checkMixedRoutes(qg, kg, vg, dOg, args, ref);
});

test('through the op: a caption mask (keyPadding) runs on cuDNN under auto and matches our kernel', { skip }, () => {
  const c = CASES[0]!;
  const [, qg] = operand(c, c.lq, 1.5);
  const [, kg] = operand(c, c.lk, 1.5);
  const [, vg] = operand(c, c.lk);
  const [, dOg] = operand(c, c.lq);
  const keep = oneEmpty(c.b, c.lk);
  const flags = new Uint8Array(c.b * c.lk);
  keep.forEach((row, i) => row.forEach((x, j) => { flags[i * c.lk + j] = x ? 1 : 0; }));
  const keyPadding = T.Tensor.fromHost(flags, [c.b, c.lk], 'bool').to('cuda');
  const op = () => {
    const leaves = [qg, kg, vg].map((t) => t.detach().requiresGrad_(true)) as [Tensor, Tensor, Tensor];
    const y = T.scaledDotProductAttention(leaves[0], leaves[1], leaves[2], { keyPadding });
    T.sum(T.mul(T.cast(y, 'float32'), T.cast(dOg, 'float32'))).backward();
    return { out: y, gq: leaves[0].grad!, gk: leaves[1].grad!, gv: leaves[2].grad! };
  };
  let n = executions();
  const auto = withMode(undefined, op);
  assert.equal(executions(), n + 2, 'auto ran the masked forward and backward on cuDNN');
  n = executions();
  const ours = withMode('ours', op);
  assert.equal(executions(), n, 'DIMBA_ATTENTION=ours ran no cuDNN plan');
  for (const name of ['out', 'gq', 'gk', 'gv'] as const) assertAgrees(`op ${name}`, auto[name], ours[name]);
  const y = auto.out.to('cpu').toFloat64Array();
  const per = c.h * c.lq * c.e;
  assert.ok(y.subarray(per, 2 * per).every((x) => x === 0), 'the fully masked batch row attends to nothing: 0');
  printPlans();
});

/** Key padding flags of `keep` as a bool [B, Lk] tensor on CUDA. */
function keyPaddingOf(c: MaskedCase, keep: boolean[][]): Tensor {
  const flags = new Uint8Array(c.b * c.lk);
  keep.forEach((row, i) => row.forEach((x, j) => { flags[i * c.lk + j] = x ? 1 : 0; }));
  return T.Tensor.fromHost(flags, [c.b, c.lk], 'bool').to('cuda');
}

for (const c of [CASES[0]!, CASES[3]!]) {
  test(`through the op: keyBias gives keyPadding's results on the cuDNN route (${c.name}, a fully masked batch row)`, { skip }, () => {
    const [, qg] = operand(c, c.lq, 1.5);
    const [, kg] = operand(c, c.lk, 1.5);
    const [, vg] = operand(c, c.lk);
    const [, dOg] = operand(c, c.lq);
    const keyPadding = keyPaddingOf(c, oneEmpty(c.b, c.lk));
    const keyBias = T.keyPaddingBias(keyPadding, c.dtype);
    const op = (options: T.AttentionOptions) => {
      const leaves = [qg, kg, vg].map((t) => t.detach().requiresGrad_(true)) as [Tensor, Tensor, Tensor];
      const y = T.scaledDotProductAttention(leaves[0], leaves[1], leaves[2], options);
      T.sum(T.mul(T.cast(y, 'float32'), T.cast(dOg, 'float32'))).backward();
      return { out: y, gq: leaves[0].grad!, gk: leaves[1].grad!, gv: leaves[2].grad! };
    };
    withMode('cudnn', () => {
      const n = executions();
      const a = op({ keyPadding });
      const b = op({ keyBias });
      assert.equal(executions(), n + 4, 'both ran their masked forward and backward on cuDNN');
      assert.deepEqual(b.out.to('cpu').toFloat64Array(), a.out.to('cpu').toFloat64Array(), 'the same forward, bit for bit');
      for (const name of ['gq', 'gk', 'gv'] as const) {
        const rms = worstHeadRms(b[name], a[name]);
        assert.ok(rms < 1e-3, `${name}: keyBias and keyPadding gradients differ (worst head relative RMS ${rms})`);
        assert.ok(b[name].to('cpu').toFloat64Array().every(Number.isFinite), `${name} finite`);
      }
      const per = c.h * c.lq * c.e;
      assert.ok(b.out.to('cpu').toFloat64Array().subarray(per, 2 * per).every((x) => x === 0), 'the fully masked batch row is 0');
    });
  });
}

test('repeated masked calls (28 blocks\' worth) reuse one decision per direction, build no spec, and hand every block back', { skip }, () => {
  const c = CASES[0]!;
  const rt = backend().runtime;
  const [, qg] = operand(c, c.lq, 1.5);
  const [, dOg] = operand(c, c.lq);
  const keyBias = T.keyPaddingBias(keyPaddingOf(c, prefix(c.b, c.lk)), c.dtype);
  // Each block's own k and v (new tensors, same layout), as in the model.
  const kvs = Array.from({ length: 28 }, () => [operand(c, c.lk, 1.5)[1], operand(c, c.lk)[1]] as const);
  const block = (k: Tensor, v: Tensor) => T.tidy(() => {
    const leaves = [qg, k, v].map((t) => t.detach().requiresGrad_(true)) as [Tensor, Tensor, Tensor];
    const y = T.scaledDotProductAttention(leaves[0], leaves[1], leaves[2], { keyBias });
    T.sum(T.mul(T.cast(y, 'float32'), T.cast(dOg, 'float32'))).backward();
  });
  withMode('cudnn', () => {
    block(kvs[0]![0], kvs[0]![1]); // warm-up: decides, builds or finds both plans
    const before = cudnnCallStats(rt);
    const n = executions();
    const allocated = backend().memoryStats().allocatedBytes;
    for (const [k, v] of kvs) block(k, v);
    const after = cudnnCallStats(rt);
    assert.equal(executions(), n + 56, '28 masked forwards and backwards ran on cuDNN');
    assert.equal(after.specBuilds, before.specBuilds, 'no graph spec was built for a call seen before');
    assert.equal(after.misses, before.misses, 'every call found its decision');
    assert.equal(after.hits, before.hits + 56);
    assert.equal(backend().memoryStats().allocatedBytes, allocated, 'workspaces and temporaries all went back to the allocator');
    console.log(`# cuDNN call cache: ${after.signatures} signatures, ${after.specBuilds} specs built, ${after.hits} hits, ${after.misses} misses`);
  });
});

test('the masked cuDNN route replays in a CUDA graph', { skip }, () => {
  const b = backend();
  const c = EMPTY;
  const [, q] = operand(c, c.lq, 1.5);
  const [, k] = operand(c, c.lk, 1.5);
  const [, v] = operand(c, c.lk);
  const [, dO] = operand(c, c.lq);
  const args: AttentionArgs = { scale: 1 / Math.sqrt(c.e), mask: additive(c, c.keep(c.b, c.lk), q) };
  const step = (): Run => fusedStep(q, k, v, dO, args);
  withMode('cudnn', () => {
    step(); // warm-up: builds and runs both plans, loads the fix-up kernels
    const n = executions();
    const { result, graph } = CudaGraph.capture(b.runtime, step, 'masked attention');
    assert.equal(executions(), n + 2, 'capture recorded both executions');
    assertReplaysMatchEager(graph, result, step, [q, k, v, dO], c.dtype, (what, replayed, eager) => {
      assert.ok(replayed.to('cpu').toFloat64Array().every(Number.isFinite), `${what} is finite`);
      const rms = worstHeadRms(replayed, eager);
      assert.ok(rms < 1e-2, `${what} differs from eager (relative RMS ${rms})`);
    });
    graph.destroy();
  });
  printPlans();
});

test('a masked backward with Lk = 64 mod 128 stays on our kernel (pytorch#196678), its forward on cuDNN', { skip }, () => {
  const c: MaskedCase = { ...CASES[1]!, lk: 192, keep: prefix };
  const [, q] = operand(c, c.lq);
  const [, k] = operand(c, c.lk);
  const [, v] = operand(c, c.lk);
  const [, dO] = operand(c, c.lq);
  const args: AttentionArgs = { scale: 1 / Math.sqrt(c.e), mask: additive(c, c.keep(c.b, c.lk), q) };
  const n = executions();
  const run = withMode(undefined, () => fusedStep(q, k, v, dO, args).gq);
  assert.equal(executions(), n + 1, 'only the forward ran on cuDNN');
  assert.ok(run.to('cpu').toFloat64Array().every(Number.isFinite));
  const out = emptyLike(q);
  const lse = T.Tensor.empty([c.b, c.h, c.lq], 'float32', backend());
  cudnnForward(backend().runtime, q, k, v, out, lse, args, 'cudnn');
  const [gq, gk, gv] = [emptyLike(q), emptyLike(k), emptyLike(v)];
  assert.throws(() => cudnnBackward(backend().runtime, q, k, v, out, lse, dO, gq, gk, gv, args, 'cudnn'), /Lk 192 = 64 mod 128 with a mask/);
});
