/**
 * The cuDNN attention graphs as data, without a GPU: the forward and backward specs for PyTorch's
 * logged problem (q, k, v [2, 16, 1024, 72] bf16 stored [B, L, H, E]) must declare exactly the
 * tensors (uid, type, dims, strides, virtual, by value) and operations, in order, that
 * cudnn-frontend 1.18 built for cuDNN 9.19 (API log, /tmp/cudnn-facts of the session that made
 * this test; the table below is copied from it), and the workspace must be laid out as the
 * frontend's (dQ_accum, softmax_sum, then cuDNN's own). Also: which calls the cuDNN path takes,
 * which operand layouts it addresses in place, DIMBA_ATTENTION parsing, and plan keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  attentionMode, backwardGraph, cudnnOperand, cudnnUnsupportedReason, forwardGraph, validateSpec, workspaceLayout, UID,
  type BackwardProblem, type DecisionInput, type Dims4, type GraphSpec, type OpSpec,
} from '../../src/backends/cuda/cudnn-attention/spec.js';

const B = 2;
const H = 16;
const L = 1024;
const E = 72;
/** [B, H, L, E] strides of heads split from [B, L, H * E] rows. */
const SPLIT: Dims4 = [L * H * E, E, H * E, 1];

const logged: BackwardProblem = {
  dtype: 'bfloat16', shape: { batch: B, heads: H, lq: L, lk: L, e: E },
  q: SPLIT, k: SPLIT, v: SPLIT, o: SPLIT, dO: SPLIT, dQ: SPLIT, dK: SPLIT, dV: SPLIT,
};

type Row = [uid: number, dtype: 'BFLOAT16' | 'FLOAT', dims: number[], strides: number[], virtual: boolean, byValue: boolean];

/** The backward's tensors as cudnn-frontend created them (fe.log, "CREATE TENSORS"), in creation order. */
const FRONTEND_BACKWARD: Row[] = [
  [8, 'FLOAT', [2, 16, 1024, 1], [16384, 1024, 1, 1], false, false],
  [9, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
  [3, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
  [2, 'BFLOAT16', [2, 16, 72, 1024], [1179648, 72, 1, 1152], false, false],
  [1, 'BFLOAT16', [2, 16, 72, 1024], [1179648, 72, 1, 1152], false, false],
  [0, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
  [5, 'FLOAT', [1, 1, 1, 1], [1, 1, 1, 1], false, true],
  [12, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
  [11, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
  [10, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
  [4, 'FLOAT', [2, 16, 1024, 72], [1179648, 73728, 1152, 1], true, false],
  [6, 'FLOAT', [2, 16, 1024, 1], [16384, 1024, 1, 1], true, false],
  [7, 'FLOAT', [1, 1, 1, 1], [1, 1, 1, 1], false, true],
  [13, 'FLOAT', [2, 16, 1024, 1], [16384, 1024, 1, 1], false, false],
  [14, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [15, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [16, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [17, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [18, 'BFLOAT16', [2, 16, 1024, 1024], [16777216, 1048576, 1, 1024], true, false],
  [19, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [20, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [21, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [22, 'FLOAT', [2, 16, 1024, 1024], [16777216, 1048576, 1024, 1], true, false],
  [23, 'BFLOAT16', [2, 16, 1024, 1024], [16777216, 1048576, 1, 1024], true, false],
  [24, 'FLOAT', [2, 16, 1024, 72], [1179648, 72, 1152, 1], true, false],
  [25, 'FLOAT', [2, 16, 1024, 72], [1179648, 73728, 72, 1], false, false],
];

/** The backward's operations (fe.log "CREATE OPERATIONS" order; operands from the backend's graph JSON). */
const FRONTEND_BACKWARD_OPS: string[] = [
  'mul_dO_O pointwise mul X9 B3 Y4',
  'reduce_dO_o reduction X4 Y6',
  'scale_dropout_inv pointwise mul X6 B7 Y13',
  'matmul_Q_KT matmul A0 B1 C14',
  'mul_s_attn_scale pointwise mul X14 B5 Y15',
  'sub_s_m pointwise sub X15 B8 Y16',
  'exp_s pointwise exp X16 Y17',
  'reshape_p reshape X17 Y18',
  'matmul_pT_dO matmul A18 B9 C12',
  'matmul_dO_VT matmul A9 B2 C19',
  'sub_dP_softmax_sum pointwise sub X19 B13 Y20',
  'mul_dP_exp_s pointwise mul X20 B17 Y21',
  'mul_dS_attn_scale pointwise mul X21 B5 Y22',
  'reshape_dS reshape X22 Y23',
  'matmul_dST_Q matmul A23 B0 C11',
  'reshape_k reshape X1 Y24',
  'matmul_dS_K matmul A22 B24 C25',
  'identity_dQ pointwise identity X25 Y10',
];

function rows(spec: GraphSpec): Row[] {
  return spec.tensors.map((t) => [t.uid, t.dtype === 'float32' ? 'FLOAT' : 'BFLOAT16', [...t.dims], [...t.strides], t.virtual, t.byValue]);
}

function opLine(op: OpSpec): string {
  switch (op.kind) {
    case 'pointwise': return `${op.name} pointwise ${op.mode} X${op.x}${op.b === null ? '' : ` B${op.b}`} Y${op.y}`;
    case 'reduction': return `${op.name} reduction X${op.x} Y${op.y}`;
    case 'matmul': return `${op.name} matmul A${op.a} B${op.b} C${op.c}`;
    case 'reshape': return `${op.name} reshape X${op.x} Y${op.y}`;
    case 'sdpaForward': return `${op.name} sdpa Q${op.q} K${op.k} V${op.v} O${op.o} Stats${op.stats} scale${op.scale}`;
  }
}

test('the backward graph declares the tensors cudnn-frontend built for the logged problem', () => {
  const spec = backwardGraph(logged);
  assert.deepEqual(rows(spec), FRONTEND_BACKWARD);
  assert.deepEqual(spec.byValue, [UID.scale, UID.one]);
  validateSpec(spec);
});

test('the backward graph has the frontend\'s 18 operations in its order', () => {
  assert.deepEqual(backwardGraph(logged).ops.map(opLine), FRONTEND_BACKWARD_OPS);
});

test('the forward graph is one SDPA_FWD node over the frontend\'s tensors', () => {
  const spec = forwardGraph(logged);
  assert.deepEqual(rows(spec), [
    [2, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
    [1, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
    [0, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
    [5, 'FLOAT', [1, 1, 1, 1], [1, 1, 1, 1], false, true],
    [8, 'FLOAT', [2, 16, 1024, 1], [16384, 1024, 1, 1], false, false],
    [3, 'BFLOAT16', [2, 16, 1024, 72], [1179648, 72, 1152, 1], false, false],
  ] satisfies Row[]);
  assert.deepEqual(spec.ops.map(opLine), ['sdpa_fwd sdpa Q0 K1 V2 O3 Stats8 scale5']);
  assert.deepEqual(spec.scratch, []);
});

test('the backward workspace is laid out as the frontend\'s: dQ_accum, softmax_sum, then cuDNN\'s 256 bytes', () => {
  // cudnn.log: uid 25 at base, uid 13 at base + 0x900000, the plan's workspace at base + 0x920000,
  // get_workspace_size() 9568512.
  const layout = workspaceLayout(backwardGraph(logged), 256);
  assert.equal(layout.offsets.get(UID.dQAccum), 0);
  assert.equal(layout.offsets.get(UID.softmaxSum), 0x900000);
  assert.equal(layout.planOffset, 0x920000);
  assert.equal(layout.total, 9568512);
});

test('odd sizes keep every workspace piece on a 256-byte boundary', () => {
  const odd: BackwardProblem = {
    ...logged, shape: { batch: 1, heads: 3, lq: 77, lk: 50, e: 64 },
    q: [77 * 3 * 64, 64, 3 * 64, 1], k: [50 * 3 * 64, 64, 3 * 64, 1], v: [50 * 3 * 64, 64, 3 * 64, 1], o: [77 * 3 * 64, 64, 3 * 64, 1],
    dO: [77 * 3 * 64, 77 * 64, 64, 1], dQ: [77 * 3 * 64, 77 * 64, 64, 1], dK: [50 * 3 * 64, 50 * 64, 64, 1], dV: [50 * 3 * 64, 50 * 64, 64, 1],
  };
  const spec = backwardGraph(odd);
  const layout = workspaceLayout(spec, 100);
  assert.equal(layout.offsets.get(UID.dQAccum), 0);
  assert.equal(layout.offsets.get(UID.softmaxSum), 3 * 77 * 64 * 4);
  assert.equal(layout.planOffset, Math.ceil((3 * 77 * 64 * 4 + 3 * 77 * 4) / 256) * 256);
  assert.equal(layout.total, layout.planOffset + 100);
  // Lq != Lk: the transposed score views are [B, H, Lk, Lq] over the row-major [B, H, Lq, Lk] scores.
  const pT = spec.tensors.find((t) => t.uid === UID.pT)!;
  assert.deepEqual([pT.dims, pT.strides], [[1, 3, 50, 77], [3 * 77 * 50, 77 * 50, 1, 50]]);
  const s = spec.tensors.find((t) => t.uid === UID.s)!;
  assert.deepEqual([s.dims, s.strides], [[1, 3, 77, 50], [3 * 77 * 50, 77 * 50, 50, 1]]);
  const kT = spec.tensors.find((t) => t.uid === UID.k)!;
  assert.deepEqual([kT.dims, kT.strides], [[1, 3, 64, 50], [50 * 3 * 64, 64, 1, 3 * 64]]);
  const dV = spec.tensors.find((t) => t.uid === UID.dV)!;
  assert.deepEqual([dV.dims, dV.strides], [[1, 3, 50, 64], [50 * 3 * 64, 50 * 64, 64, 1]]);
});

test('validateSpec names a duplicated or undeclared uid', () => {
  const spec = forwardGraph(logged);
  assert.throws(() => validateSpec({ ...spec, tensors: [...spec.tensors, spec.tensors[0]!] }), /uid 2 \(V\) declared twice/);
  assert.throws(() => validateSpec({ ...spec, tensors: spec.tensors.filter((t) => t.uid !== UID.stats) }), /sdpa_fwd uses undeclared uid 8/);
});

test('plan keys separate direction, dtype, sizes and every operand\'s strides', () => {
  const base = backwardGraph(logged).key;
  assert.equal(backwardGraph({ ...logged }).key, base);
  const contiguous: Dims4 = [H * L * E, L * E, E, 1];
  const variants = [
    forwardGraph(logged).key,
    backwardGraph({ ...logged, dtype: 'float16' }).key,
    backwardGraph({ ...logged, shape: { ...logged.shape, lk: 512 } }).key,
    backwardGraph({ ...logged, dO: contiguous }).key,
    backwardGraph({ ...logged, dV: contiguous }).key,
    backwardGraph({ ...logged, q: contiguous }).key,
  ];
  assert.equal(new Set([base, ...variants]).size, variants.length + 1);
});

const call = (over: Partial<DecisionInput> = {}, shape: Partial<DecisionInput['shape']> = {}): DecisionInput => ({
  direction: 'backward', dtype: 'bfloat16', otherDTypes: ['bfloat16', 'bfloat16'], mask: null, version: 91900, arch: 90,
  ...over, shape: { batch: 2, heads: 16, lq: 1024, lk: 1024, e: 72, ev: 72, ...shape },
});

test('the cuDNN path takes unmasked bf16/f16 attention with head dims 8..128 on cuDNN >= 9.13', () => {
  for (const e of [8, 64, 72, 128]) assert.equal(cudnnUnsupportedReason(call({}, { e, ev: e })), null, `E ${e}`);
  assert.equal(cudnnUnsupportedReason(call({ dtype: 'float16', otherDTypes: ['float16'] })), null);
  assert.equal(cudnnUnsupportedReason(call({ direction: 'forward' }, { lq: 1, lk: 1 })), null);
  assert.equal(cudnnUnsupportedReason(call({}, { lq: 77, lk: 77 })), null, 'odd lengths on 9.19');
  assert.equal(cudnnUnsupportedReason(call({ version: 91300, direction: 'forward' }, { lk: 77 })), null);
});

test('calls the cuDNN path declines name their reason', () => {
  const cases: [DecisionInput, RegExp][] = [
    [call({ mask: { dtype: 'bfloat16', keyPadding: false } }), /varies over heads or queries/],
    [call({ mask: { dtype: 'float32', keyPadding: true } }), /mask dtype float32 .*bfloat16/],
    [call({ mask: { dtype: 'bfloat16', keyPadding: true } }, { lk: 192 }), /Lk 192 = 64 mod 128 with a mask/],
    [call({ mask: { dtype: 'bfloat16', keyPadding: true }, version: 91500 }, { lk: 120 }), /Lk 120 .* cuDNN 9\.15\.0/],
    [call({ dtype: 'float32', otherDTypes: ['float32'] }), /dtype float32/],
    [call({ otherDTypes: ['bfloat16', 'float16'] }), /mixed dtypes \(bfloat16 and float16\)/],
    [call({}, { ev: 64 }), /head dims differ \(q\/k 72, v 64\)/],
    [call({}, { e: 76, ev: 76 }), /head dim 76/],
    [call({}, { e: 136, ev: 136 }), /head dim 136/],
    [call({}, { lq: 0 }), /empty/],
    [call({ arch: 75 }), /compute capability 7.5/],
    [call({ version: 91200 }), /cuDNN 9\.12\.0 .*9\.13/],
    [call({}, { lq: 1, lk: 1 }), /Lq = Lk = 1/],
    [call({ version: 91400 }, { lk: 77 }), /Lk 77 .* cuDNN 9\.14\.0/],
  ];
  for (const [c, pattern] of cases) {
    const reason = cudnnUnsupportedReason(c);
    assert.ok(reason !== null && pattern.test(reason), `${JSON.stringify(c)} -> ${reason}`);
  }
  assert.equal(cudnnUnsupportedReason(call({ version: 91400 }, { lk: 1024 })), null, 'multiples of 128 are fine on 9.14');
});

test('operands are addressed in place with 16-byte steps, else staged', () => {
  const shape = [B, H, L, E];
  assert.deepEqual(cudnnOperand(shape, SPLIT, 4096, 2), SPLIT, 'split heads in place');
  assert.deepEqual(cudnnOperand(shape, [H * L * E, L * E, E, 1], 0, 2), [H * L * E, L * E, E, 1]);
  assert.equal(cudnnOperand(shape, SPLIT, 4096 + 2, 2), null, 'address off a 16-byte boundary');
  assert.equal(cudnnOperand([B, H, L, 68], [L * H * 68, 68, H * 68, 1], 0, 2), null, 'rows of 136 bytes');
  assert.equal(cudnnOperand(shape, [H * L * E, L * E, 1, L], 0, 2), null, 'E not innermost');
  assert.equal(cudnnOperand([B, H, L], [H * L, L, 1], 0, 2), null, 'not 4-d');
  // A size-1 batch (stride 0 from an expand) gets the span of the other dims instead of 0.
  assert.deepEqual(cudnnOperand([1, H, L, E], [0, E, H * E, 1], 0, 2), [L * H * E, E, H * E, 1]);
  assert.deepEqual(cudnnOperand([2, 1, L, E], [L * E, 0, E, 1], 0, 2), [L * E, 2 * L * E, E, 1]);
});

test('DIMBA_ATTENTION selects auto (default), cudnn or ours and names a bad value', () => {
  assert.equal(attentionMode({}), 'auto');
  assert.equal(attentionMode({ DIMBA_ATTENTION: '' }), 'auto');
  assert.equal(attentionMode({ DIMBA_ATTENTION: 'auto' }), 'auto');
  assert.equal(attentionMode({ DIMBA_ATTENTION: 'cudnn' }), 'cudnn');
  assert.equal(attentionMode({ DIMBA_ATTENTION: 'ours' }), 'ours');
  assert.throws(() => attentionMode({ DIMBA_ATTENTION: 'flash' }), /DIMBA_ATTENTION="flash": expected auto, cudnn or ours/);
});
