/**
 * How scaledDotProductAttention uses a backend's fused kernels, on the CPU: a float64 reference
 * of the fused contract (out and the row log-sum-exp forward; the backward from lse and
 * Delta = rowsum(dO * O), as the CUDA flash kernels do it) is installed as the CPU backend's
 * FusedKernels, and the op must then give the composed path's values and gradients, pass masks as
 * [B, H, Lq, Lk] views, decline to the composed path when the mask needs a gradient or the backend
 * declines the call, and lay outputs out as [B, L, H, E] when q comes from split heads.
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/index.js';
import type { AttentionArgs, FusedKernels } from '../../src/backends/backend.js';

const cpu = T.getBackend('cpu');
const fused = cpu.fused as FusedKernels;
const calls = { forward: 0, backward: 0, supports: 0, masks: [] as (readonly number[])[] };
let decline = false;

function uninstall(): void {
  delete fused.attention;
  delete fused.attentionBackward;
  delete fused.attentionSupports;
  calls.forward = calls.backward = calls.supports = 0;
  calls.masks = [];
  decline = false;
}

afterEach(uninstall);

function host(t: T.Tensor): Float64Array {
  return T.noGrad(() => t.toFloat64Array());
}

function write(values: Float64Array, out: T.Tensor): void {
  T.noGrad(() => cpu.kernels.copy(T.Tensor.fromHost(values, out.shape, 'float64'), out));
}

/** Scores of one (batch, head) row block: s[i * lk + j] = q_i . k_j * scale + mask. */
function scores(q: Float64Array, k: Float64Array, mask: Float64Array | null, bh: number, lq: number, lk: number, e: number, scale: number): Float64Array {
  const s = new Float64Array(lq * lk);
  for (let i = 0; i < lq; i++) {
    for (let j = 0; j < lk; j++) {
      let acc = 0;
      for (let d = 0; d < e; d++) acc += q[(bh * lq + i) * e + d]! * k[(bh * lk + j) * e + d]!;
      s[i * lk + j] = acc * scale + (mask ? mask[(bh * lq + i) * lk + j]! : 0);
    }
  }
  return s;
}

function install(): void {
  fused.attentionSupports = (_q, _k, _v, args: AttentionArgs) => {
    calls.supports++;
    calls.masks.push(args.mask ? args.mask.shape : []);
    return !decline;
  };
  fused.attention = (q, k, v, out, lse, args) => {
    calls.forward++;
    const [b, h, lq, e] = q.shape as [number, number, number, number];
    const lk = k.shape[2]!;
    const ev = v.shape[3]!;
    const [Q, K, V] = [host(q), host(k), host(v)];
    const M = args.mask ? host(args.mask) : null;
    const O = new Float64Array(b * h * lq * ev);
    const L = new Float64Array(b * h * lq);
    for (let bh = 0; bh < b * h; bh++) {
      const s = scores(Q, K, M, bh, lq, lk, e, args.scale);
      for (let i = 0; i < lq; i++) {
        let m = -Infinity;
        for (let j = 0; j < lk; j++) m = Math.max(m, s[i * lk + j]!);
        let l = 0;
        if (m !== -Infinity) for (let j = 0; j < lk; j++) l += Math.exp(s[i * lk + j]! - m);
        L[bh * lq + i] = l > 0 ? m + Math.log(l) : -Infinity;
        for (let j = 0; j < lk && l > 0; j++) {
          const p = Math.exp(s[i * lk + j]! - m) / l;
          for (let d = 0; d < ev; d++) O[(bh * lq + i) * ev + d] += p * V[(bh * lk + j) * ev + d]!;
        }
      }
    }
    write(O, out);
    write(L, lse);
  };
  fused.attentionBackward = (q, k, v, out, lse, gy, gq, gk, gv, args) => {
    calls.backward++;
    const [b, h, lq, e] = q.shape as [number, number, number, number];
    const lk = k.shape[2]!;
    const ev = v.shape[3]!;
    const [Q, K, V, O, L, dO] = [host(q), host(k), host(v), host(out), host(lse), host(gy)];
    const M = args.mask ? host(args.mask) : null;
    const dQ = new Float64Array(Q.length);
    const dK = new Float64Array(K.length);
    const dV = new Float64Array(V.length);
    for (let bh = 0; bh < b * h; bh++) {
      const s = scores(Q, K, M, bh, lq, lk, e, args.scale);
      for (let i = 0; i < lq; i++) {
        const r = bh * lq + i;
        let delta = 0;
        for (let d = 0; d < ev; d++) delta += dO[r * ev + d]! * O[r * ev + d]!;
        for (let j = 0; j < lk; j++) {
          // A fully masked row has lse -inf: its P is 0, not exp(NaN).
          const p = L[r] === -Infinity ? 0 : Math.exp(s[i * lk + j]! - L[r]!);
          let dp = 0;
          for (let d = 0; d < ev; d++) {
            dp += dO[r * ev + d]! * V[(bh * lk + j) * ev + d]!;
            dV[(bh * lk + j) * ev + d] += p * dO[r * ev + d]!;
          }
          const ds = p * (dp - delta) * args.scale;
          for (let d = 0; d < e; d++) {
            dQ[r * e + d] += ds * K[(bh * lk + j) * e + d]!;
            dK[(bh * lk + j) * e + d] += ds * Q[r * e + d]!;
          }
        }
      }
    }
    write(dQ, gq);
    write(dK, gk);
    write(dV, gv);
  };
}

function randn(shape: number[], seed: number): T.Tensor {
  return T.randn(shape, { dtype: 'float64', generator: new T.Generator(seed) });
}

/** Output and q, k, v gradients of attention(q, k, v) under loss sum(out * w). */
function run(qkv: T.Tensor[], w: T.Tensor, options: T.AttentionOptions = {}): { out: T.Tensor; grads: T.Tensor[] } {
  const leaves = qkv.map((t) => t.detach().requiresGrad_(true));
  const out = T.scaledDotProductAttention(leaves[0]!, leaves[1]!, leaves[2]!, options);
  T.sum(T.mul(out, w)).backward();
  return { out, grads: leaves.map((t) => t.grad!) };
}

/** The contract keeps lse in float32, so the backward's P = exp(s - lse) carries ~2^-24 |lse| relative error. */
const LSE_TOL = 1e-6;

function assertClose(name: string, a: T.Tensor, e: T.Tensor, tol = 1e-12): void {
  assert.deepEqual([...a.shape], [...e.shape], `${name} shape`);
  const x = a.toFloat64Array();
  const y = e.toFloat64Array();
  for (let i = 0; i < y.length; i++) {
    assert.ok(Number.isFinite(x[i]!), `${name}[${i}] = ${x[i]}`);
    assert.ok(Math.abs(x[i]! - y[i]!) <= tol * (1 + Math.abs(y[i]!)), `${name}[${i}]: ${x[i]} vs ${y[i]}`);
  }
}

function compareWithComposed(name: string, qkv: T.Tensor[], options: T.AttentionOptions = {}): void {
  const [b, h, lq] = qkv[0]!.shape as number[];
  uninstall();
  const w = randn([b!, h!, lq!, qkv[2]!.shape[3]!], 99);
  const composed = run(qkv, w, options);
  install();
  const viaFused = run(qkv, w, options);
  assert.equal(calls.forward, 1, `${name}: the fused forward ran`);
  assert.equal(calls.backward, 1, `${name}: the fused backward ran`);
  assertClose(`${name} out`, viaFused.out, composed.out);
  viaFused.grads.forEach((g, i) => assertClose(`${name} grad ${'qkv'[i]}`, g, composed.grads[i]!, LSE_TOL));
}

test('the fused path gives the composed values and gradients', () => {
  compareWithComposed('self-attention', [randn([2, 3, 5, 4], 1), randn([2, 3, 5, 4], 2), randn([2, 3, 5, 4], 3)]);
  compareWithComposed('cross-attention, Ev != E, scale', [randn([2, 2, 6, 4], 4), randn([2, 2, 3, 4], 5), randn([2, 2, 3, 5], 6)]);
});

test('key padding with a fully masked batch: zeros, no NaN, and the mask reaches the kernel as [B, H, Lq, Lk]', () => {
  const keyPadding = T.Tensor.fromHost(new Uint8Array([0, 0, 0, 1, 1, 0]), [2, 3], 'bool');
  compareWithComposed('key padding', [randn([2, 2, 4, 4], 7), randn([2, 2, 3, 4], 8), randn([2, 2, 3, 4], 9)], { keyPadding, scale: 0.7 });
  assert.deepEqual(calls.masks, [[2, 2, 4, 3]]);
});

test('keyBias reaches the kernel as keyPadding does: the same [B, H, Lq, Lk] view of the same values', () => {
  const keyPadding = T.Tensor.fromHost(new Uint8Array([0, 0, 0, 1, 1, 0]), [2, 3], 'bool');
  const keyBias = T.keyPaddingBias(keyPadding, 'float64');
  const qkv = [randn([2, 2, 4, 4], 25), randn([2, 2, 3, 4], 26), randn([2, 2, 3, 4], 27)];
  compareWithComposed('key bias', qkv, { keyBias, scale: 0.7 });
  const seen: { values: number[]; strides: number[] }[] = [];
  const inner = fused.attention!;
  fused.attention = (q, k, v, out, lse, args) => {
    seen.push({ values: Array.from(host(args.mask!)), strides: [...args.mask!.strides] });
    inner(q, k, v, out, lse, args);
  };
  const w = randn([2, 2, 4, 4], 28);
  const a = run(qkv, w, { keyPadding, scale: 0.7 });
  const b = run(qkv, w, { keyBias, scale: 0.7 });
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[1], seen[0], 'the kernel sees the same mask view for keyBias as for keyPadding');
  assert.deepEqual(seen[0]!.strides, [3, 0, 0, 1], 'one row of Lk per batch, broadcast over heads and queries');
  assert.deepEqual(b.out.toArray(), a.out.toArray());
  b.grads.forEach((g, i) => assert.deepEqual(g.toArray(), a.grads[i]!.toArray(), `grad ${'qkv'[i]}`));
});

test('boolean and additive masks broadcast from [Lq, Lk]', () => {
  const bool = T.Tensor.fromHost(new Uint8Array([1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1]), [4, 3], 'bool');
  compareWithComposed('bool mask', [randn([1, 2, 4, 4], 10), randn([1, 2, 3, 4], 11), randn([1, 2, 3, 4], 12)], { mask: bool });
  const additive = randn([4, 3], 13);
  compareWithComposed('additive mask', [randn([1, 2, 4, 4], 14), randn([1, 2, 3, 4], 15), randn([1, 2, 3, 4], 16)], { mask: additive });
});

test('a mask that needs a gradient, or a declined call, composes instead', () => {
  install();
  const qkv = [randn([1, 2, 3, 4], 17), randn([1, 2, 3, 4], 18), randn([1, 2, 3, 4], 19)];
  const mask = randn([3, 3], 20).requiresGrad_(true);
  const out = T.scaledDotProductAttention(qkv[0]!, qkv[1]!, qkv[2]!, { mask });
  T.sum(out).backward();
  assert.equal(calls.forward, 0);
  assert.ok(mask.grad, 'the mask got its gradient from the composed path');
  decline = true;
  T.scaledDotProductAttention(qkv[0]!, qkv[1]!, qkv[2]!);
  assert.equal(calls.supports, 1);
  assert.equal(calls.forward, 0);
});

test('heads split from [B, L, H * E] rows give outputs and gradients in that layout', () => {
  const [b, l, h, e] = [2, 5, 3, 4];
  const rows = [randn([b, l, h * e], 21), randn([b, l, h * e], 22), randn([b, l, h * e], 23)];
  const split = (x: T.Tensor) => T.permute(T.reshape(x, [b, l, h, e]), [0, 2, 1, 3]);
  const merged = (leaves: T.Tensor[]) => {
    const out = T.scaledDotProductAttention(split(leaves[0]!), split(leaves[1]!), split(leaves[2]!));
    return { out, merged: T.reshape(T.permute(out, [0, 2, 1, 3]), [b, l, h * e]) };
  };
  const w = randn([b, l, h * e], 24);
  const go = () => {
    const leaves = rows.map((t) => t.detach().requiresGrad_(true));
    const r = merged(leaves);
    T.sum(T.mul(r.merged, w)).backward();
    return { ...r, grads: leaves.map((t) => t.grad!) };
  };
  const composed = go();
  install();
  const viaFused = go();
  assert.equal(calls.forward, 1);
  assert.deepEqual([...viaFused.out.strides], [l * h * e, e, h * e, 1]);
  assert.ok(viaFused.merged.isContiguous, 'merging heads back is a view');
  assertClose('merged out', viaFused.merged, composed.merged);
  viaFused.grads.forEach((g, i) => assertClose(`rows grad ${i}`, g, composed.grads[i]!, LSE_TOL));
});
