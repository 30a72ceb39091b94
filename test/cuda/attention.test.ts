/**
 * The CUDA flash attention kernels (kernels/attention.cu) against a float64 CPU reference computed
 * from the same bfloat16 / float16 values: output, row log-sum-exp and the gradients of q, k and v,
 * called directly (FusedKernels) and through scaledDotProductAttention (which must take the fused
 * path), for head dims 8, 64, 72, 88, 128, odd lengths 1 to 1000, several batches and heads, self-
 * and cross-attention, key padding with a fully masked batch, boolean and additive masks, and
 * operands laid out as split heads ([B, L, H, E] storage).
 *
 * Tolerance, per element: |a - e| <= c u B, u the unit roundoff (2^-8 bfloat16, 2^-11 float16) and
 * B the sum of the magnitudes of the products that make the element (so elements that cancel to
 * almost nothing are not held to their own size): out = P V with B = P |V|, dV with P^T |dO|, dQ
 * and dK with the dS terms bounded by P (|dP| + rowsum |O dO|). Each rounding to the storage type
 * costs at most u: P for the tensor-core product and the result give out, dV <= 2u B; dS, Delta
 * (from the rounded output) and the result give dQ, dK <= 3u B; half a u more for float32
 * accumulation (c = 2.5 and 3.5). The log-sum-exp is float32: |a - e| <= 1e-5 (1 + |e|). Fully
 * masked rows must give exactly 0 (output and dQ) and lse -inf. The same criterion runs on the CPU
 * emulator of these kernels in attention-emu.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import { additiveMask, type AttentionOptions } from '../../src/ops/attention.js';
import type { AttentionArgs, FusedKernels } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { assertBounded, cudaSkip, randomCpu, realCuda } from './helpers.js';

// These specs are about our flash kernels: keep unmasked calls off cuDNN (cudnn-attention.test.ts covers that route).
process.env.DIMBA_ATTENTION ??= 'ours';

const skip = cudaSkip || (realCuda ? false : 'the fused kernels need the real CUDA backend (DIMBA_CUDA_TEST_FAKE=cpu has none)');
if (cudaSkip === false && !realCuda) console.log(`# flash attention tests skipped: ${skip}`);

type Mask = 'none' | 'keys' | 'bool' | 'additive';

interface Case {
  readonly dtype: 'bfloat16' | 'float16';
  readonly b: number;
  readonly h: number;
  readonly lq: number;
  readonly lk: number;
  readonly e: number;
  readonly mask: Mask;
  /** q, k, v (and dO) as views of [B, L, H * E] rows, as the model splits heads. */
  readonly split: boolean;
}

const CASES: Case[] = [
  { dtype: 'bfloat16', b: 2, h: 3, lq: 257, lk: 257, e: 72, mask: 'none', split: true },
  { dtype: 'bfloat16', b: 3, h: 2, lq: 1000, lk: 120, e: 72, mask: 'keys', split: true },
  { dtype: 'bfloat16', b: 3, h: 2, lq: 120, lk: 17, e: 88, mask: 'keys', split: false },
  { dtype: 'bfloat16', b: 2, h: 2, lq: 17, lk: 1000, e: 64, mask: 'none', split: false },
  { dtype: 'bfloat16', b: 2, h: 2, lq: 257, lk: 257, e: 128, mask: 'bool', split: false },
  { dtype: 'bfloat16', b: 2, h: 2, lq: 1, lk: 17, e: 8, mask: 'none', split: false },
  { dtype: 'bfloat16', b: 2, h: 2, lq: 1, lk: 1, e: 72, mask: 'none', split: true },
  { dtype: 'float16', b: 1, h: 2, lq: 1000, lk: 1000, e: 72, mask: 'none', split: false },
  { dtype: 'float16', b: 3, h: 2, lq: 257, lk: 120, e: 88, mask: 'keys', split: true },
  { dtype: 'float16', b: 2, h: 2, lq: 120, lk: 257, e: 64, mask: 'additive', split: false },
];

const name = (c: Case) => `${c.dtype} B${c.b} H${c.h} Lq${c.lq} Lk${c.lk} E${c.e} mask ${c.mask}${c.split ? ' split heads' : ''}`;

/** [B, H, L, E] values in `dtype` on the CPU and on CUDA; split: views of [B, L, H * E] storage on each. */
function heads(c: Case, l: number, dtype: DType, scale = 1): [Tensor, Tensor] {
  if (!c.split) {
    const t = randomCpu([c.b, c.h, l, c.e], dtype, (v) => v * scale);
    return [t, t.to('cuda')];
  }
  const rows = randomCpu([c.b, l, c.h * c.e], dtype, (v) => v * scale);
  const view = (r: Tensor) => T.permute(T.reshape(r, [c.b, l, c.h, c.e]), [0, 2, 1, 3]);
  return [view(rows), view(rows.to('cuda'))];
}

/** Key padding keeps a prefix per batch; batch 0 keeps none (every query row fully masked). */
function options(c: Case): AttentionOptions {
  if (c.mask === 'keys') {
    const keep = new Uint8Array(c.b * c.lk);
    for (let b = 1; b < c.b; b++) for (let j = 0; j < Math.max(1, Math.floor((c.lk * b) / c.b)); j++) keep[b * c.lk + j] = 1;
    return { keyPadding: T.Tensor.fromHost(keep, [c.b, c.lk], 'bool') };
  }
  if (c.mask === 'bool') {
    // [Lq, Lk], about a third masked, query row 3 fully masked.
    const u = T.rand([c.lq, c.lk], { dtype: 'float64', generator: new T.Generator(7) }).toFloat64Array();
    const keep = new Uint8Array(c.lq * c.lk);
    for (let i = 0; i < c.lq; i++) for (let j = 0; j < c.lk; j++) keep[i * c.lk + j] = i !== 3 && u[i * c.lk + j]! > 0.33 ? 1 : 0;
    return { mask: T.Tensor.fromHost(keep, [c.lq, c.lk], 'bool') };
  }
  if (c.mask === 'additive') {
    // Per (batch, key) biases in [-3, 0] with some -inf, as [B, 1, 1, Lk] in the inputs' dtype.
    const u = T.rand([c.b, c.lk], { dtype: 'float64', generator: new T.Generator(8) }).toFloat64Array();
    const m = u.map((x) => (x < 0.15 ? -Infinity : -3 * x));
    return { mask: T.reshape(T.cast(T.Tensor.fromHost(m, [c.b, c.lk], 'float64'), c.dtype), [c.b, 1, 1, c.lk]) };
  }
  return {};
}

/** The options with masks moved to `device` (float masks cast to `dtype`). */
function optionsOn(o: AttentionOptions, device: string, dtype: DType): AttentionOptions {
  return {
    ...o,
    keyPadding: o.keyPadding ? o.keyPadding.to(device) : o.keyPadding,
    mask: o.mask ? (o.mask.dtype === 'bool' ? o.mask.to(device) : T.cast(o.mask, dtype).to(device)) : o.mask,
  };
}

interface Reference {
  out: Float64Array; lse: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array;
  outB: Float64Array; dqB: Float64Array; dkB: Float64Array; dvB: Float64Array;
}

/** float64 values (composed path, autograd) and their error bounds (see the file comment). */
function reference(q: Tensor, k: Tensor, v: Tensor, dO: Tensor, o: AttentionOptions, scale: number): Reference {
  const [q64, k64, v64, dO64] = [q, k, v, dO].map((t) => T.contiguous(T.cast(t, 'float64')));
  const leaves = [q64, k64, v64].map((t) => t!.detach().requiresGrad_(true));
  const o64 = optionsOn(o, 'cpu', 'float64');
  const out = T.scaledDotProductAttention(leaves[0]!, leaves[1]!, leaves[2]!, { ...o64, scale });
  T.sum(T.mul(out, dO64!)).backward();
  return T.noGrad(() => {
    const mask = additiveMask(q64!, k64!.shape[2]!, o64);
    let s = T.mul(T.matmul(q64!, T.transpose(k64!, -2, -1)), scale);
    if (mask) s = T.add(s, mask);
    const P = T.softmax(s, -1);
    const sv = s.toFloat64Array();
    const lk = k64!.shape[2]!;
    const lse = new Float64Array(sv.length / lk);
    for (let r = 0; r < lse.length; r++) {
      let m = -Infinity;
      for (let j = 0; j < lk; j++) m = Math.max(m, sv[r * lk + j]!);
      let l = 0;
      if (m !== -Infinity) for (let j = 0; j < lk; j++) l += Math.exp(sv[r * lk + j]! - m);
      lse[r] = l > 0 ? m + Math.log(l) : -Infinity;
    }
    const dP = T.matmul(dO64!, T.transpose(v64!, -2, -1));
    const dSabs = T.mul(P, T.add(T.abs(dP), T.sum(T.abs(T.mul(out.detach(), dO64!)), -1, true)));
    const Pt = T.transpose(P, -2, -1);
    return {
      out: out.toFloat64Array(), lse,
      dq: leaves[0]!.grad!.toFloat64Array(), dk: leaves[1]!.grad!.toFloat64Array(), dv: leaves[2]!.grad!.toFloat64Array(),
      outB: T.matmul(P, T.abs(v64!)).toFloat64Array(),
      dvB: T.matmul(Pt, T.abs(dO64!)).toFloat64Array(),
      dqB: T.mul(T.matmul(dSabs, T.abs(k64!)), scale).toFloat64Array(),
      dkB: T.mul(T.matmul(T.transpose(dSabs, -2, -1), T.abs(q64!)), scale).toFloat64Array(),
    };
  });
}

function assertLse(what: string, actual: Tensor, expected: Float64Array): void {
  const a = actual.to('cpu').toFloat64Array();
  for (let i = 0; i < a.length; i++) {
    const e = expected[i]!;
    if (e === -Infinity) assert.equal(a[i], -Infinity, `${what}[${i}]: a fully masked row has lse -inf, got ${a[i]}`);
    else assert.ok(Math.abs(a[i]! - e) <= 1e-5 * (1 + Math.abs(e)), `${what}[${i}]: ${a[i]} vs ${e}`);
  }
}

function checkCase(c: Case): void {
  const cuda = getBackend('cuda');
  const fused = cuda.fused;
  assert.ok(fused.attention && fused.attentionBackward && fused.attentionSupports, 'the CUDA backend registers flash attention (is DIMBA_FLASH=0 set?)');
  const [q, qg] = heads(c, c.lq, c.dtype, 1.5);
  const [k, kg] = heads(c, c.lk, c.dtype, 1.5);
  const [v, vg] = heads(c, c.lk, c.dtype);
  const [dO, dOg] = heads(c, c.lq, c.dtype);
  if (c.split && c.lq > 1) assert.ok(!qg.isContiguous && qg.strides[2]! > qg.strides[1]!, 'split heads stay views on the device');
  const o = options(c);
  const scale = 1 / Math.sqrt(c.e);
  const ref = reference(q, k, v, dO, o, scale);
  const u = c.dtype === 'bfloat16' ? 2 ** -8 : 2 ** -11;

  // Direct kernel calls: the only way to see the log-sum-exp.
  const og = optionsOn(o, 'cuda', c.dtype);
  const m = additiveMask(qg, c.lk, og);
  const args: AttentionArgs = { scale, mask: m ? T.expand(m, [c.b, c.h, c.lq, c.lk]) : null };
  assert.equal(fused.attentionSupports!(qg, kg, vg, args), true, 'the kernels take this call');
  const out = T.Tensor.empty([c.b, c.h, c.lq, c.e], c.dtype, cuda);
  const lse = T.Tensor.empty([c.b, c.h, c.lq], 'float32', cuda);
  fused.attention!(qg, kg, vg, out, lse, args);
  const gq = T.Tensor.empty(qg.shape, c.dtype, cuda);
  const gk = T.Tensor.empty(kg.shape, c.dtype, cuda);
  const gv = T.Tensor.empty(vg.shape, c.dtype, cuda);
  fused.attentionBackward!(qg, kg, vg, out, lse, dOg, gq, gk, gv, args);
  assertBounded('out', out.to('cpu').toFloat64Array(), ref.out, ref.outB, 2.5 * u);
  assertLse('lse', lse, ref.lse);
  assertBounded('dq', gq.to('cpu').toFloat64Array(), ref.dq, ref.dqB, 3.5 * u);
  assertBounded('dk', gk.to('cpu').toFloat64Array(), ref.dk, ref.dkB, 3.5 * u);
  assertBounded('dv', gv.to('cpu').toFloat64Array(), ref.dv, ref.dvB, 2.5 * u);

  // Through the op: it must take the fused path and give the same values.
  const counts = countCalls(fused);
  try {
    const leaves = [qg, kg, vg].map((t) => t.detach().requiresGrad_(true));
    const y = T.scaledDotProductAttention(leaves[0]!, leaves[1]!, leaves[2]!, { ...og, scale });
    T.sum(T.mul(T.cast(y, 'float32'), T.cast(dOg, 'float32'))).backward();
    assert.deepEqual([counts.forward, counts.backward], [1, 1], 'the op ran the fused forward and backward once each');
    assert.deepEqual(y.to('cpu').toFloat64Array(), out.to('cpu').toFloat64Array(), 'op output = direct call');
    assertBounded('op dq', leaves[0]!.grad!.to('cpu').toFloat64Array(), ref.dq, ref.dqB, 3.5 * u);
    assertBounded('op dk', leaves[1]!.grad!.to('cpu').toFloat64Array(), ref.dk, ref.dkB, 3.5 * u);
    assertBounded('op dv', leaves[2]!.grad!.to('cpu').toFloat64Array(), ref.dv, ref.dvB, 2.5 * u);
  } finally {
    counts.restore();
  }
}

/** Counts fused calls until restore(). */
function countCalls(fused: FusedKernels): { forward: number; backward: number; restore(): void } {
  const f = fused.attention!;
  const b = fused.attentionBackward!;
  const counts = {
    forward: 0,
    backward: 0,
    restore() { fused.attention = f; fused.attentionBackward = b; },
  };
  fused.attention = (...a) => { counts.forward++; f(...a); };
  fused.attentionBackward = (...a) => { counts.backward++; b(...a); };
  return counts;
}

for (const c of CASES) test(`flash attention ${name(c)}`, { skip }, () => checkCase(c));

test('float32 attention is declined and composes (cuBLAS path), matching the CPU', { skip }, () => {
  const cuda = getBackend('cuda');
  const q = randomCpu([2, 2, 9, 16], 'float32');
  const k = randomCpu([2, 2, 5, 16], 'float32');
  const v = randomCpu([2, 2, 5, 16], 'float32');
  const [qg, kg, vg] = [q, k, v].map((t) => t.to('cuda')) as [Tensor, Tensor, Tensor];
  assert.equal(cuda.fused.attentionSupports!(qg, kg, vg, { scale: 0.25, mask: null }), false);
  const counts = countCalls(cuda.fused);
  try {
    const y = T.scaledDotProductAttention(qg, kg, vg).to('cpu').toFloat64Array();
    const e = T.scaledDotProductAttention(q, k, v).toFloat64Array();
    assert.equal(counts.forward, 0);
    for (let i = 0; i < e.length; i++) assert.ok(Math.abs(y[i]! - e[i]!) <= 1e-5 * (1 + Math.abs(e[i]!)), `[${i}] ${y[i]} vs ${e[i]}`);
  } finally {
    counts.restore();
  }
});
