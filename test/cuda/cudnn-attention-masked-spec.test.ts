/**
 * The masked (key-padding) cuDNN attention graphs without a GPU: the forward is the frontend's
 * composite SDPA lowering with a bias (declared [B, 1, Lq, Lk], query stride 0), the backward the unmasked composite graph
 * with one bias ADD after the scale; both are run through a float64 evaluator of the backend
 * graph semantics (cudnn-graph-eval.ts) and compared with attention computed directly, including
 * a batch row whose keys are all masked (the backward then gets Stats with -inf turned into +inf,
 * as run.ts hands it, and must give zero gradients there, not NaN). Also: which masks count as key
 * padding and when they are used in place, and that the mask is part of the plan key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backwardGraph, forwardGraph, maskLayout, paddedKeys, validateSpec, UID, type BackwardProblem, type Dims4, type GraphSpec, type OpSpec,
} from '../../src/backends/cuda/cudnn-attention/spec.js';
import { evaluate, gather, type Memory } from './cudnn-graph-eval.js';

function opLine(op: OpSpec): string {
  switch (op.kind) {
    case 'pointwise': return `${op.name} ${op.mode} X${op.x}${op.b === null ? '' : ` B${op.b}`} Y${op.y}`;
    case 'reduction': return `${op.name} reduce-${op.mode} X${op.x} Y${op.y}`;
    case 'matmul': return `${op.name} matmul A${op.a} B${op.b} C${op.c}`;
    case 'reshape': return `${op.name} reshape X${op.x} Y${op.y}`;
    case 'sdpaForward': return `${op.name} sdpa`;
  }
}

const tensorOf = (spec: GraphSpec, uid: number) => spec.tensors.find((t) => t.uid === uid)!;

// Issue 7's cross-attention: 1024 queries to 120 caption keys, 16 heads of 72, [B, L, H, E] storage.
const B = 2;
const H = 16;
const LQ = 1024;
const LK = 120;
const E = 72;
const split = (l: number): Dims4 => [l * H * E, E, H * E, 1];
const cross: BackwardProblem = {
  dtype: 'bfloat16', shape: { batch: B, heads: H, lq: LQ, lk: LK, e: E },
  q: split(LQ), k: split(LK), v: split(LK), o: split(LQ), dO: split(LQ), dQ: split(LQ), dK: split(LK), dV: split(LK),
  biasBatchStride: LK,
};

test('the masked forward is the frontend\'s composite lowering: bmm1, scale, bias, softmax, bmm2', () => {
  const spec = forwardGraph(cross);
  validateSpec(spec);
  assert.deepEqual(spec.ops.map(opLine), [
    'bmm1 matmul A0 B1 C14',
    'attn_scale mul X14 B5 Y15',
    'bias_add add X15 B26 Y27',
    'Max reduce-max X27 Y28',
    'sub sub X27 B28 Y29',
    'exp exp X29 Y30',
    'sum reduce-add X30 Y31',
    'log log X31 Y32',
    'add add X28 B32 Y8',
    'div div X30 B31 Y33',
    'bmm2 matmul A33 B2 C3',
  ]);
  const bias = tensorOf(spec, UID.bias);
  // PyTorch's form of a [B, 1, 1, Lk] attn_mask: expanded over the queries with stride 0.
  assert.deepEqual([bias.dtype, bias.dims, bias.strides, bias.virtual], ['bfloat16', [B, 1, LQ, LK], [LK, LK, 0, 1], false]);
  const kT = tensorOf(spec, UID.k);
  assert.deepEqual([kT.dims, kT.strides], [[B, H, E, LK], [LK * H * E, E, 1, H * E]], 'K declared transposed for bmm1');
  const p = tensorOf(spec, UID.pFwd);
  assert.deepEqual([p.dtype, p.virtual, p.dims], ['bfloat16', true, [B, H, LQ, LK]], 'bmm2 takes P in the io dtype');
  const stats = tensorOf(spec, UID.stats);
  assert.deepEqual([stats.dtype, stats.virtual, stats.dims, stats.strides], ['float32', false, [B, H, LQ, 1], [H * LQ, LQ, 1, 1]]);
  for (const t of spec.tensors) {
    const expected = [UID.q, UID.k, UID.v, UID.o, UID.stats, UID.bias, UID.scale].includes(t.uid as never);
    assert.equal(!t.virtual, expected, `${t.name} (uid ${t.uid}) virtual=${t.virtual}`);
  }
  assert.deepEqual(spec.byValue, [UID.scale]);
  assert.deepEqual(spec.scratch, []);
});

test('the unmasked forward stays the single SDPA_FWD node', () => {
  assert.deepEqual(forwardGraph({ ...cross, biasBatchStride: null }).ops.map(opLine), ['sdpa_fwd sdpa']);
  assert.deepEqual(forwardGraph({ ...cross, biasBatchStride: undefined }).ops.map(opLine), ['sdpa_fwd sdpa']);
});

test('the masked backward is the unmasked graph with one bias ADD after the scale', () => {
  const masked = backwardGraph(cross);
  const plain = backwardGraph({ ...cross, biasBatchStride: null });
  validateSpec(masked);
  const lines = masked.ops.map(opLine);
  const at = lines.indexOf('bias_add add X15 B26 Y27');
  assert.equal(lines[at - 1], 'mul_s_attn_scale mul X14 B5 Y15');
  assert.equal(lines[at + 1], 'sub_s_m sub X27 B8 Y16');
  const back = lines.filter((_, i) => i !== at).map((l) => l.replace('sub_s_m sub X27', 'sub_s_m sub X15'));
  assert.deepEqual(back, plain.ops.map(opLine));
  // Same tensors plus the bias and the biased scores; no dBias.
  const extra = masked.tensors.filter((t) => !plain.tensors.some((u) => u.uid === t.uid)).map((t) => t.uid);
  assert.deepEqual(extra.sort((a, b) => a - b), [UID.bias, UID.sBiased]);
  assert.deepEqual(masked.scratch, plain.scratch);
});

test('the mask is part of the plan key, and so is its row step', () => {
  const keys = [
    forwardGraph(cross).key, forwardGraph({ ...cross, biasBatchStride: null }).key, forwardGraph({ ...cross, biasBatchStride: 128 }).key,
    backwardGraph(cross).key, backwardGraph({ ...cross, biasBatchStride: null }).key, backwardGraph({ ...cross, biasBatchStride: 128 }).key,
  ];
  assert.equal(new Set(keys).size, keys.length);
  assert.equal(forwardGraph({ ...cross }).key, keys[0]);
});

test('one batch row: the bias\'s batch and head strides are the row\'s span, not 0', () => {
  const one = { ...cross, shape: { ...cross.shape, batch: 1 }, biasBatchStride: 0 };
  assert.deepEqual(tensorOf(forwardGraph(one), UID.bias).strides, [LK, LK, 0, 1]);
  assert.throws(() => forwardGraph({ ...cross, biasBatchStride: -8 }), /bias batch stride -8/);
});

test('key padding is a mask constant over heads and queries; it is used in place on 16-byte rows', () => {
  const shape = [4, H, LQ, LK];
  assert.deepEqual(maskLayout(shape, [LK, 0, 0, 1], 0, 2), { kind: 'keys', batchStride: LK });
  assert.deepEqual(maskLayout(shape, [LK, 0, 0, 1], 6, 2), { kind: 'keys', batchStride: null }, 'address off 16 bytes');
  assert.deepEqual(maskLayout([4, H, LQ, 77], [77, 0, 0, 1], 0, 2), { kind: 'keys', batchStride: null }, 'rows of 154 bytes');
  assert.deepEqual(maskLayout(shape, [0, 0, 0, 1], 0, 2), { kind: 'keys', batchStride: null }, 'one row broadcast over the batch');
  assert.deepEqual(maskLayout(shape, [1, 0, 0, 4], 0, 2), { kind: 'keys', batchStride: null }, 'keys not at stride 1');
  assert.equal(maskLayout([1, H, LQ, LK], [0, 0, 0, 1], 32, 2).kind, 'keys');
  assert.deepEqual(maskLayout(shape, [LK * LQ, 0, LK, 1], 0, 2), { kind: 'full' }, 'varies over queries');
  assert.deepEqual(maskLayout(shape, [LK * H, LK, 0, 1], 0, 2), { kind: 'full' }, 'varies over heads');
  // Size-1 head and query dims are never stepped along, whatever their stride.
  assert.deepEqual(maskLayout([4, 1, 1, LK], [LK, 7, 9, 1], 0, 2), { kind: 'keys', batchStride: LK });
  assert.deepEqual(maskLayout([4, LK], [LK, 1], 0, 2), { kind: 'full' }, 'not 4-d');
  assert.deepEqual([paddedKeys(77, 2), paddedKeys(3, 2), paddedKeys(120, 2), paddedKeys(5, 4)], [80, 8, 120, 8]);
});

// ---- The graphs' arithmetic, evaluated ----

/** Small problem: heads split from [B, L, H, E] rows, Lq != Lk, batch 1's keys all masked. */
const b = 3;
const h = 2;
const lq = 5;
const lk = 4;
const e = 8;
const small = (l: number): Dims4 => [l * h * e, e, h * e, 1];
const prob: BackwardProblem = {
  dtype: 'bfloat16', shape: { batch: b, heads: h, lq, lk, e },
  q: small(lq), k: small(lk), v: small(lk), o: small(lq), dO: small(lq), dQ: small(lq), dK: small(lk), dV: small(lk),
  biasBatchStride: 8,
};
/** Keys kept per batch row: a prefix, nothing, and a non-prefix pattern. */
const KEEP = [[1, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]];
const scale = 1 / Math.sqrt(e);

let seed = 7;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648 * 2 - 1;
};
/** [B, H, L, E] values and their memory under `strides` (the [B, L, H, E] storage). */
function operand(l: number, strides: Dims4): { at: (bi: number, hi: number, li: number, ei: number) => number; mem: Float64Array } {
  const mem = new Float64Array(b * l * h * e);
  for (let i = 0; i < mem.length; i++) mem[i] = rand();
  return { at: (bi, hi, li, ei) => mem[bi * strides[0] + hi * strides[1] + li * strides[2] + ei]!, mem };
}
const Q = operand(lq, prob.q);
const K = operand(lk, prob.k);
const V = operand(lk, prob.v);
const DO = operand(lq, prob.dO);
const biasMem = new Float64Array(b * 8).fill(Number.NaN); // padding past Lk must never be read
for (let bi = 0; bi < b; bi++) for (let j = 0; j < lk; j++) biasMem[bi * 8 + j] = KEEP[bi]![j] ? 0 : -Infinity;

/** Attention and its gradients computed directly (float64); fully masked rows: O = 0, lse = -inf, gradients 0. */
function reference() {
  const o = new Float64Array(b * h * lq * e);
  const lse = new Float64Array(b * h * lq);
  const dq = new Float64Array(b * h * lq * e);
  const dk = new Float64Array(b * h * lk * e);
  const dv = new Float64Array(b * h * lk * e);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      for (let i = 0; i < lq; i++) {
        const row = (bi * h + hi) * lq + i;
        const s = Array.from({ length: lk }, (_, j) => {
          let dot = 0;
          for (let x = 0; x < e; x++) dot += Q.at(bi, hi, i, x) * K.at(bi, hi, j, x);
          return dot * scale + biasMem[bi * 8 + j]!;
        });
        const m = Math.max(...s);
        if (m === -Infinity) {
          lse[row] = -Infinity;
          continue;
        }
        const w = s.map((x) => Math.exp(x - m));
        const z = w.reduce((a, c) => a + c, 0);
        lse[row] = m + Math.log(z);
        const p = w.map((x) => x / z);
        for (let x = 0; x < e; x++) o[row * e + x] = p.reduce((a, pj, j) => a + pj * V.at(bi, hi, j, x), 0);
        const dp = p.map((_, j) => {
          let d = 0;
          for (let x = 0; x < e; x++) d += DO.at(bi, hi, i, x) * V.at(bi, hi, j, x);
          return d;
        });
        let delta = 0;
        for (let x = 0; x < e; x++) delta += DO.at(bi, hi, i, x) * o[row * e + x]!;
        const ds = p.map((pj, j) => pj * (dp[j]! - delta) * scale);
        for (let j = 0; j < lk; j++) {
          const krow = (bi * h + hi) * lk + j;
          for (let x = 0; x < e; x++) {
            dq[row * e + x] += ds[j]! * K.at(bi, hi, j, x);
            dk[krow * e + x] += ds[j]! * Q.at(bi, hi, i, x);
            dv[krow * e + x] += p[j]! * DO.at(bi, hi, i, x);
          }
        }
      }
    }
  }
  return { o, lse, dq, dk, dv };
}

function close(actual: Float64Array, expected: Float64Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const [a, x] = [actual[i]!, expected[i]!];
    if (x === -Infinity) {
      assert.equal(a, -Infinity, `${what}[${i}]`);
      continue;
    }
    assert.ok(Math.abs(a - x) <= 1e-9 * (1 + Math.abs(x)), `${what}[${i}] = ${a}, expected ${x}`);
  }
}

/** Values of batch rows other than `skip` (in [B, ...] order, `per` values a batch row). */
const without = (v: Float64Array, per: number, skip: number) => v.filter((_, i) => Math.floor(i / per) !== skip);

test('the masked forward graph computes attention with the key padding; the all-masked batch row is left undefined (NaN)', () => {
  const spec = forwardGraph(prob);
  const inputs: Memory = new Map([[UID.q, Q.mem], [UID.k, K.mem], [UID.v, V.mem], [UID.bias, biasMem]]);
  const mem = evaluate(spec, inputs, new Map([[UID.scale, scale]]));
  const ref = reference();
  const o = gather(tensorOf(spec, UID.o), mem.get(UID.o)!);
  const lse = gather(tensorOf(spec, UID.stats), mem.get(UID.stats)!);
  close(without(o, h * lq * e, 1), without(ref.o, h * lq * e, 1), 'O');
  close(without(lse, h * lq, 1), without(ref.lse, h * lq, 1), 'Stats');
  // Why run.ts fixes these rows up after cuDNN: the graph's softmax is 0/0 there.
  assert.ok(o.subarray(h * lq * e, 2 * h * lq * e).every(Number.isNaN));
});

test('the unmasked graphs agree with the masked ones on an all-zero bias', () => {
  const zero = new Float64Array(b * 8);
  const masked = evaluate(forwardGraph(prob), new Map([[UID.q, Q.mem], [UID.k, K.mem], [UID.v, V.mem], [UID.bias, zero]]),
    new Map([[UID.scale, scale]]));
  // The unmasked forward is cuDNN's SDPA_FWD node (not evaluable here); its backward is composite.
  const stats = masked.get(UID.stats)!;
  const o = masked.get(UID.o)!;
  const run = (p: BackwardProblem, bias: Float64Array | null) => evaluate(backwardGraph(p),
    new Map([[UID.q, Q.mem], [UID.k, K.mem], [UID.v, V.mem], [UID.o, o], [UID.dO, DO.mem], [UID.stats, stats],
      ...(bias ? [[UID.bias, bias] as [number, Float64Array]] : [])]),
    new Map([[UID.scale, scale], [UID.one, 1]]));
  const withBias = run(prob, zero);
  const plain = run({ ...prob, biasBatchStride: null }, null);
  for (const uid of [UID.dQ, UID.dK, UID.dV]) close(withBias.get(uid)!, plain.get(uid)!, `uid ${uid}`);
});

test('the masked backward graph gives the gradients, and zeros for the all-masked batch row once Stats there is +inf', () => {
  const ref = reference();
  const fwd = forwardGraph(prob);
  const bwd = backwardGraph(prob);
  // O and Stats as run.ts leaves them after the forward (the fix-up's O = 0, lse = -inf), then the
  // backward's Stats with -inf turned into +inf (cudnn_attn_bwd_stats).
  const oMem = new Float64Array(tensorOf(fwd, UID.o).dims.reduce((x, y) => x * y, 1));
  const oT = tensorOf(fwd, UID.o);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      for (let i = 0; i < lq; i++) for (let x = 0; x < e; x++) oMem[bi * oT.strides[0] + hi * oT.strides[1] + i * oT.strides[2] + x] = ref.o[((bi * h + hi) * lq + i) * e + x]!;
    }
  }
  const stats = ref.lse.map((l) => (l === -Infinity ? Infinity : l));
  const mem = evaluate(bwd, new Map([[UID.q, Q.mem], [UID.k, K.mem], [UID.v, V.mem], [UID.o, oMem], [UID.dO, DO.mem], [UID.stats, stats],
    [UID.bias, biasMem]]), new Map([[UID.scale, scale], [UID.one, 1]]));
  close(gather(tensorOf(bwd, UID.dQ), mem.get(UID.dQ)!), ref.dq, 'dQ');
  close(gather(tensorOf(bwd, UID.dK), mem.get(UID.dK)!), ref.dk, 'dK');
  close(gather(tensorOf(bwd, UID.dV), mem.get(UID.dV)!), ref.dv, 'dV');
  // With -inf left in Stats the same graph gives NaN there: the reason for the conversion.
  const raw = evaluate(bwd, new Map([[UID.q, Q.mem], [UID.k, K.mem], [UID.v, V.mem], [UID.o, oMem], [UID.dO, DO.mem], [UID.stats, ref.lse],
    [UID.bias, biasMem]]), new Map([[UID.scale, scale], [UID.one, 1]]));
  assert.ok(gather(tensorOf(bwd, UID.dV), raw.get(UID.dV)!).some(Number.isNaN));
});
